//! `selflog dashboard`: the live view of a store another process is writing, as a
//! full-screen terminal UI, or one plain-text snapshot with `--once`.
//!
//! The store is opened read-only (no lock taken, nothing written). Once a second the
//! [`collect::Collector`] looks at it; the screen is drawn again only when what it shows
//! changed or a key changed the view, so an idle dashboard costs next to nothing. The
//! terminal is put back (raw mode off, main screen, cursor shown) on every way out: `q`,
//! Esc, Ctrl-C, SIGINT, SIGTERM, SIGHUP, an error, and a panic (a hook restores it before
//! the panic message is printed). A terminal that goes away ends the dashboard too.
//!
//! `collect.rs` gathers a `Snapshot`, `health.rs` finds the writer and runs verify,
//! `app.rs` holds the keys and focus, `view.rs` draws, `plain.rs` writes `--once`, and
//! `show.rs` formats values for both.

mod app;
mod collect;
mod health;
mod plain;
mod show;
#[cfg(test)]
mod tests;
mod view;

use std::io::{self, IsTerminal as _, Write as _};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyEventKind};
use crossterm::{cursor, execute, terminal};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

use crate::{output, Failure, Outcome};

/// How often the store is looked at (and so the most often data redraws the screen).
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for a key before checking for a signal.
const SIGNAL_CHECK_EVERY: Duration = Duration::from_millis(250);

#[derive(clap::Args)]
#[command(
    after_help = "Keys: q or Esc quits, Tab moves between panes, / filters the live tail \
by text, t by type, c clears the filters, v verifies the store, ? shows help.\n\n\
Rates count events by their timestamps: now (last 10 s), last minute, last hour (the figure \
`inspect stats` reports). The writer is alive while a process holds the store's lock."
)]
pub struct Args {
    /// Print one plain-text snapshot and exit (no terminal needed).
    #[arg(long)]
    once: bool,
    /// Verify the store first (reads every frame; shown as the last verify result).
    #[arg(long)]
    verify: bool,
}

/// Runs the dashboard.
pub fn run(store_dir: &Path, args: &Args) -> Outcome {
    let mut collector = collect::Collector::open(store_dir)?;
    if args.once {
        if args.verify {
            collector.verify_now();
        }
        let snap = collector.sample();
        if let Some(e) = &snap.error {
            return Err(Failure::hinted(
                format!("reading {}: {e}", store_dir.display()),
                "run `selflog inspect verify` to list all damage",
            ));
        }
        if let Some(first) = snap.warnings.first() {
            let more = match snap.warnings.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            eprintln!("selflog: warning: {first}{more}; run `selflog inspect verify`");
        }
        let text = plain::render(&snap);
        let mut out = io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| output::write_err(&e))?;
        return Ok(0);
    }
    if !io::stdout().is_terminal() || !io::stdin().is_terminal() {
        return Err(Failure::hinted(
            "the dashboard needs a terminal on stdin and stdout",
            "`selflog dashboard --once` prints one plain-text snapshot instead",
        ));
    }
    if args.verify {
        collector.start_verify();
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let palette = view::Palette {
        color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    };
    let screen = Screen::enter()?;
    let result = run_loop(&mut collector, &stop, palette);
    drop(screen);
    result.map(|()| 0).map_err(|e| {
        Failure::hinted(
            format!("dashboard: the terminal failed: {e}"),
            "`selflog dashboard --once` prints one plain-text snapshot without a terminal",
        )
    })
}

/// The main loop: keys as they come, a sample a second, a redraw when something changed.
fn run_loop(
    collector: &mut collect::Collector,
    stop: &AtomicBool,
    palette: view::Palette,
) -> io::Result<()> {
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    terminal.clear()?;
    let mut ui = app::Ui::default();
    let mut snap = collector.sample();
    let mut next_sample = Instant::now() + SAMPLE_EVERY;
    let mut dirty = true;
    let keys = read_events()?;
    // A terminal that went away (its window closed, tmux killed) reads as end of input
    // forever; SIGHUP or the terminal no longer answering ends the loop.
    while !stop.load(Ordering::SeqCst) && io::stdin().is_terminal() {
        if dirty {
            terminal.draw(|f| view::draw(f, &snap, &ui, palette))?;
            dirty = false;
        }
        let wait = next_sample
            .saturating_duration_since(Instant::now())
            .min(SIGNAL_CHECK_EVERY);
        match keys.recv_timeout(wait) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Ok(event) => match event? {
                Event::Key(key) if key.kind != KeyEventKind::Release => {
                    panic_for_tests(key.code);
                    let types: Vec<String> = snap.by_type.iter().map(|(t, _)| t.clone()).collect();
                    match ui.key(key, collector.filter(), &types) {
                        app::Action::Quit => break,
                        app::Action::Nothing => {}
                        app::Action::Redraw => dirty = true,
                        app::Action::Filter(filter) => {
                            collector.set_filter(filter);
                            snap = collector.sample();
                            dirty = true;
                        }
                        app::Action::Verify => {
                            collector.start_verify();
                            snap = collector.sample();
                            dirty = true;
                        }
                    }
                }
                Event::Resize(..) => {
                    terminal.autoresize()?;
                    dirty = true;
                }
                _ => {}
            },
        }
        if Instant::now() >= next_sample {
            let new = collector.sample();
            if new != snap {
                snap = new;
                dirty = true;
            }
            next_sample = Instant::now() + SAMPLE_EVERY;
        }
    }
    Ok(())
}

/// Reads terminal events on a thread of its own and sends them over the returned channel,
/// the first error ending it. Off the main loop because crossterm's reader retries end of
/// input without end (crossterm 0.29, `event/source/unix/mio.rs`): when the terminal goes
/// away, only this thread spins, until the main loop, which notices, exits the process.
fn read_events() -> io::Result<mpsc::Receiver<io::Result<Event>>> {
    let (tx, rx) = mpsc::sync_channel(64);
    std::thread::Builder::new()
        .name("selflog-keys".into())
        .spawn(move || loop {
            let event = event::read();
            let failed = event.is_err();
            if tx.send(event).is_err() || failed {
                break;
            }
        })?;
    Ok(rx)
}

/// In debug builds, the key named by `SELFLOG_DASHBOARD_PANIC_KEY` panics, so that the
/// tests can check the panic hook restores the terminal; release builds have no such key.
fn panic_for_tests(code: event::KeyCode) {
    if cfg!(debug_assertions) {
        let key = std::env::var("SELFLOG_DASHBOARD_PANIC_KEY").unwrap_or_default();
        let panic_key = key.chars().next().map(event::KeyCode::Char);
        assert!(
            panic_key != Some(code),
            "dashboard test panic on key {key:?}"
        );
    }
}

/// Whether the terminal is in the dashboard's state (raw, alternate screen), so that the
/// panic hook and the guard restore it once.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The terminal in raw mode on the alternate screen; dropping it, or a panic, restores it.
struct Screen;

impl Screen {
    fn enter() -> io::Result<Screen> {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        terminal::enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let screen = Screen;
        execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
        Ok(screen)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the terminal back as the shell left it, if the dashboard changed it.
fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = terminal::disable_raw_mode();
        let _ = execute!(io::stdout(), terminal::LeaveAlternateScreen, cursor::Show);
    }
}
