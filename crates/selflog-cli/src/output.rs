//! Output helpers: JSON values of store types, and quiet handling of a closed stdout.

use std::io;

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

/// A timestamp as RFC 3339 in UTC with microseconds, for people.
pub fn rfc3339(ts: selflog::Timestamp) -> String {
    chrono::DateTime::from_timestamp_micros(ts.micros()).map_or_else(
        || ts.to_string(),
        |d| d.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
    )
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

/// Width of the terminal on stdout, if it is one.
fn terminal_width() -> Option<usize> {
    terminal_size::terminal_size_of(std::io::stdout()).map(|(w, _)| usize::from(w.0))
}

/// Longest data summary in a pipe, where there is no terminal width to fit.
const SUMMARY_LEN_PIPE: usize = 200;

/// A timestamp in local time for people: `2024-11-24 15:00:00.123`.
pub fn local_time(ts: selflog::Timestamp) -> String {
    chrono::DateTime::from_timestamp_micros(ts.micros()).map_or_else(
        || ts.to_string(),
        |d| {
            d.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S%.3f")
                .to_string()
        },
    )
}

/// `text` cut to `width` characters, with `…` marking the cut; control characters become
/// spaces so a row stays one line.
fn one_line(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(width.min(text.len()));
    for (n, c) in text.chars().enumerate() {
        if n + 1 >= width && text.chars().nth(n + 1).is_some() {
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

/// The aligned table of `list` and `search`: id, local time, type, action, source and a
/// one-line data summary cut to the terminal width. Colour only on a terminal.
pub fn table(events: &[selflog::StoredEvent], tty: bool, search: Option<&str>) -> String {
    let headers = ["ID", "TIME", "TYPE", "ACTION", "SOURCE"];
    let rows: Vec<[String; 5]> = events
        .iter()
        .map(|e| {
            [
                e.id.to_string(),
                local_time(e.timestamp),
                one_line(&e.event_type, 40),
                one_line(e.action.as_deref().unwrap_or("-"), 24),
                one_line(&e.source, 40),
            ]
        })
        .collect();
    let mut widths = headers.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let used: usize = widths.iter().map(|w| w + 2).sum();
    let data_width = match terminal_width().filter(|_| tty) {
        Some(w) => w.saturating_sub(used).max(10),
        None => SUMMARY_LEN_PIPE,
    };
    let mut out = String::new();
    let pad = |cells: &[String], out: &mut String| {
        for (c, w) in cells.iter().zip(widths) {
            out.push_str(c);
            out.push_str(&" ".repeat(w - c.chars().count() + 2));
        }
    };
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    if tty {
        out.push_str("\x1b[1m");
    }
    pad(&header, &mut out);
    out.push_str("DATA");
    if tty {
        out.push_str("\x1b[0m");
    }
    out.push('\n');
    for (r, e) in rows.iter().zip(events) {
        let summary = one_line(e.data.as_deref().unwrap_or("-"), data_width);
        let mut line = String::new();
        pad(r, &mut line);
        line.push_str(&summary);
        match search.filter(|_| tty) {
            Some(needle) => out.push_str(&highlight(line.trim_end(), needle)),
            None => out.push_str(line.trim_end()),
        }
        out.push('\n');
    }
    out
}

/// One event in full, for `get`: fields one per line, data pretty-printed.
pub fn detail(e: &selflog::StoredEvent) -> String {
    let data = match &e.data {
        None => "null".to_owned(),
        Some(d) => serde_json::from_str::<serde_json::Value>(d)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or_else(|_| d.clone()),
    };
    format!(
        "id          {}\ntimestamp   {} ({}, {})\nevent_type  {}\naction      {}\nsource      {}\nhash        {:016x}\ndata        {}\n",
        e.id,
        e.timestamp,
        local_time(e.timestamp),
        rfc3339(e.timestamp),
        e.event_type,
        e.action.as_deref().unwrap_or("-"),
        e.source,
        e.hash,
        data.replace('\n', "\n            "),
    )
}
