//! Progress on stderr for commands that can take more than a second on a large store
//! (`inspect verify`, `inspect export`, `salvage`, `import-sqlite`, `replay` to a file): a
//! bar when the amount of work is known, a spinner with the elapsed time when it is not.
//! Drawn only when stderr is a terminal, so pipes, files and scripts see none of it.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a spinner redraws.
const SPINNER_TICK: Duration = Duration::from_millis(120);

fn visible() -> bool {
    std::io::stderr().is_terminal()
}

/// A bar of `len` items: `{verb} [=====>    ] 120/4000 {unit}, eta 3s`; hidden unless
/// stderr is a terminal. `finish_and_clear` removes it before the summary is printed.
pub(crate) fn bar(len: u64, verb: &str, unit: &str) -> ProgressBar {
    if !visible() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{verb} [{{bar:40}}] {{pos}}/{{len}} {unit}, eta {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// A spinner saying `message` and the time elapsed, for work whose amount is not known in
/// advance (a library call with no progress of its own); hidden unless stderr is a terminal.
pub(crate) fn spinner(message: String) -> ProgressBar {
    if !visible() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message);
    // Drawn at once, however short the work turns out.
    bar.tick();
    bar.enable_steady_tick(SPINNER_TICK);
    bar
}
