//! Output helpers: the output modes of event listings (`-o short|json|jsonl|cat`), the
//! aligned event table, colour (only on a terminal, never with `NO_COLOR` set), JSON values
//! of store types, and quiet handling of a closed stdout.
//!
//! On a terminal a table row is cut to the terminal's width; in a pipe every line is whole,
//! so `grep` and `cut` see everything.

use std::io::{self, IsTerminal as _};

use selflog::StoredEvent;

use crate::time;

/// Message of the I/O error a write to a closed pipe returns.
const BROKEN_PIPE: &str = "stdout closed";

/// Converts a write error to a failure; a closed pipe ends the program quietly.
pub fn write_err(e: &io::Error) -> crate::Failure {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return crate::Failure {
            message: BROKEN_PIPE.to_owned(),
            hint: None,
        };
    }
    crate::Failure {
        message: format!("writing output: {e}"),
        hint: None,
    }
}

/// Whether a failure is the quiet end of a closed stdout.
pub fn is_broken_pipe(message: &str) -> bool {
    message == BROKEN_PIPE
}

/// A timestamp as float seconds with microsecond precision, for JSON.
pub fn secs(ts: selflog::Timestamp) -> serde_json::Value {
    serde_json::Number::from_f64(ts.as_secs_f64())
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// A byte count for people: `12.3 MiB`.
#[expect(clippy::cast_precision_loss, reason = "display only")]
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// How a listing prints events: `-o`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// An aligned table: id, time, type, action, source, data (cut to the terminal's
    /// width on a terminal, whole in a pipe).
    #[default]
    Short,
    /// One JSON array of events.
    Json,
    /// JSON Lines: one event object per line (the fields of `selflog ingest`, plus `id` and
    /// `hash`).
    Jsonl,
    /// The data of each event alone, one per line (an empty line for an event without
    /// data).
    Cat,
}

/// Whether to colour output on stdout: only on a terminal, and never when `NO_COLOR` is
/// set to anything but the empty string (<https://no-color.org>).
pub fn colour(tty: bool) -> bool {
    tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Whether stdout is a terminal.
pub fn stdout_is_terminal() -> bool {
    io::stdout().is_terminal()
}

/// Width of the terminal on stdout, if it is one.
pub fn terminal_width() -> Option<usize> {
    terminal_size::terminal_size_of(io::stdout()).map(|(w, _)| usize::from(w.0))
}

/// `text` on one line (control characters become spaces), cut to `width` characters with
/// `…` marking the cut when `width` is given.
fn one_line(text: &str, width: Option<usize>) -> String {
    let mut out = String::with_capacity(text.len());
    for (n, c) in text.chars().enumerate() {
        if width.is_some_and(|w| n + 1 >= w && text.chars().nth(n + 1).is_some()) {
            out.push('…');
            return out;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// Wraps ASCII-case-insensitive matches of `needle` in bold red.
fn highlight(text: &str, needle: &str) -> String {
    if needle.is_empty() {
        return text.to_owned();
    }
    let lower = text.to_ascii_lowercase();
    let pat = needle.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len() + 16);
    let mut at = 0;
    while let Some(found) = lower[at..].find(&pat) {
        let start = at + found;
        let end = start + pat.len();
        out.push_str(&text[at..start]);
        out.push_str("\x1b[1;31m");
        out.push_str(&text[start..end]);
        out.push_str("\x1b[0m");
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// Column headers of the event table.
const HEADERS: [&str; 5] = ["ID", "TIME", "TYPE", "ACTION", "SOURCE"];

/// The aligned table of `list` and `search`: id, time ([`time::display`]), type, action,
/// source and the data on one line. On a terminal, cells and data are cut to fit its width
/// and the header is bold, matches of a search bold red (unless `NO_COLOR`); in a pipe
/// nothing is cut or coloured. Rendered batch by batch for `list -f`: columns only widen.
pub struct Table {
    tty: bool,
    colour: bool,
    search: Option<String>,
    widths: [usize; 5],
}

impl Table {
    /// A table for stdout, highlighting `search` on a colour terminal.
    pub fn new(search: Option<&str>) -> Table {
        let tty = stdout_is_terminal();
        Table {
            tty,
            colour: colour(tty),
            search: search.map(str::to_owned),
            widths: HEADERS.map(|h| h.chars().count()),
        }
    }

    /// The rows of `events`, after the header line when `header`.
    pub fn render(&mut self, events: &[StoredEvent], header: bool) -> String {
        let cut = |width| Some(width).filter(|_| self.tty);
        let rows: Vec<[String; 5]> = events
            .iter()
            .map(|e| {
                [
                    e.id.to_string(),
                    time::display(e.timestamp),
                    one_line(&e.event_type, cut(40)),
                    one_line(e.action.as_deref().unwrap_or("-"), cut(24)),
                    one_line(&e.source, cut(40)),
                ]
            })
            .collect();
        for r in &rows {
            for (w, c) in self.widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let widths = self.widths;
        let used: usize = widths.iter().map(|w| w + 2).sum();
        let data_width = terminal_width()
            .filter(|_| self.tty)
            .map(|w| w.saturating_sub(used).max(10));
        let pad = |cells: &[String], out: &mut String| {
            for (c, w) in cells.iter().zip(widths) {
                out.push_str(c);
                out.push_str(&" ".repeat(w - c.chars().count() + 2));
            }
        };
        let mut out = String::new();
        if header {
            let header: Vec<String> = HEADERS.iter().map(|h| (*h).to_owned()).collect();
            if self.colour {
                out.push_str("\x1b[1m");
            }
            pad(&header, &mut out);
            out.push_str("DATA");
            if self.colour {
                out.push_str("\x1b[0m");
            }
            out.push('\n');
        }
        for (r, e) in rows.iter().zip(events) {
            let summary = one_line(e.data.as_deref().unwrap_or("-"), data_width);
            let mut line = String::new();
            pad(r, &mut line);
            line.push_str(&summary);
            match self.search.as_deref().filter(|_| self.colour) {
                Some(needle) => out.push_str(&highlight(line.trim_end(), needle)),
                None => out.push_str(line.trim_end()),
            }
            out.push('\n');
        }
        out
    }
}

/// One event in full, for `get`: fields one per line, data pretty-printed.
pub fn detail(e: &StoredEvent) -> String {
    let data = match &e.data {
        None => "null".to_owned(),
        Some(d) => serde_json::from_str::<serde_json::Value>(d)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or_else(|_| d.clone()),
    };
    format!(
        "id          {}\ntimestamp   {} ({} epoch seconds)\nevent_type  {}\naction      {}\nsource      {}\nhash        {:016x}\ndata        {}\n",
        e.id,
        time::display(e.timestamp),
        e.timestamp,
        e.event_type,
        e.action.as_deref().unwrap_or("-"),
        e.source,
        e.hash,
        data.replace('\n', "\n            "),
    )
}

/// One event as a line of `-o cat`: its data on one line, or nothing.
pub fn cat_line(e: &StoredEvent) -> String {
    e.data
        .as_deref()
        .map_or_else(String::new, |d| one_line(d, None))
}

/// Waits up to `timeout` and says whether stdout was closed meanwhile (the reader of a
/// pipe or socket gone: `poll` reports an error or hang-up on the write end), so a
/// follower waiting for events ends at once when `| head` has what it wanted, instead of
/// at its next write. A terminal or a file never reports either: the full wait.
pub fn wait_for_closed_stdout(timeout: std::time::Duration) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let stdout = io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
    let timeout = Timespec {
        tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    // An error (a signal interrupted the wait) counts as open: the caller looks at its
    // flag and comes back.
    matches!(poll(&mut fds, Some(&timeout)), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .intersects(PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL)
}

/// Whether stdout is a regular file (`> out.jsonl`), where a long write earns a progress
/// bar on stderr.
pub fn stdout_is_file() -> bool {
    rustix::fs::fstat(io::stdout()).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
    })
}
