//! `selflog dashboard --once`: one [`Snapshot`] as plain text, for scripts, tests and a
//! terminal that cannot show the full-screen view. The same figures as the panes, in the
//! same order (capture, learning, storage and health), without colour or escapes.

use super::collect::Snapshot;
use super::health::Writer;
use super::show;
use crate::output::human_bytes;

/// Events of the tail a snapshot lists.
const TAIL_ROWS: usize = 10;
/// Longest data summary of a tail row.
const DATA_LEN_MAX: usize = 60;
/// Widest bar of the events-by-type chart.
const BAR_WIDTH: usize = 30;
/// Types the chart lists; the rest are summed on one line.
const TYPES_MAX: usize = 12;

/// The snapshot as text, ending with a newline. The open's warnings are not in it: they
/// go to stderr, as every command's do.
pub fn render(s: &Snapshot) -> String {
    let mut out = format!(
        "selflog dashboard: {} at {}\n",
        s.dir.display(),
        crate::time::display(selflog::Timestamp::now())
    );
    if let Some(e) = &s.error {
        out.push_str(&format!("error: {e}\n"));
    }
    out.push_str(&capture(s));
    out.push_str(&learning(s));
    out.push_str(&storage(s));
    out
}

/// The capture section: totals, rates, the hour's sparkline, types and the tail.
pub fn capture(s: &Snapshot) -> String {
    let mut out = String::from("\ncapture\n");
    let ids = s
        .ids
        .map_or_else(String::new, |(a, b)| format!(" (ids {a}..{b})"));
    out.push_str(&format!("  events           {}{ids}\n", s.total_events));
    out.push_str(&format!(
        "  events/s         now {}  last minute {}  last hour {}  (by event time)\n",
        show::rate(s.rates.now),
        show::rate(s.rates.minute),
        show::rate(s.rates.hour)
    ));
    if let Some(r) = s.appended_per_second {
        out.push_str(&format!(
            "  appended         {} (as committed)\n",
            show::rate(r)
        ));
    }
    out.push_str(&format!(
        "  last hour        {} events, per minute: |{}|\n",
        s.rates.events_last_hour,
        show::sparkline(&s.rates.per_minute)
    ));
    out.push_str("  by type\n");
    let width = s
        .by_type
        .iter()
        .take(TYPES_MAX)
        .map(|(t, _)| t.chars().count())
        .max()
        .unwrap_or(0);
    let max = s.by_type.first().map_or(0, |(_, n)| *n);
    for (t, n) in s.by_type.iter().take(TYPES_MAX) {
        out.push_str(&format!(
            "    {t:<width$}  {n:>10}  {:>6}  {}\n",
            show::share(*n, s.total_events),
            show::bar(*n, max, BAR_WIDTH)
        ));
    }
    if s.by_type.len() > TYPES_MAX {
        let rest: u64 = s.by_type.iter().skip(TYPES_MAX).map(|(_, n)| n).sum();
        out.push_str(&format!(
            "    ({} more types: {rest} events)\n",
            s.by_type.len() - TYPES_MAX
        ));
    }
    if s.by_type.is_empty() {
        out.push_str("    (no events)\n");
    }
    out.push_str(&format!("  newest events{}\n", filter_note(s)));
    for e in s.tail.iter().take(TAIL_ROWS) {
        out.push_str(&format!("    {}\n", tail_row(e, DATA_LEN_MAX)));
    }
    if s.tail.is_empty() {
        out.push_str("    (none)\n");
    }
    out
}

/// ` (filter: text "x", type t)`, or nothing without a filter.
pub fn filter_note(s: &Snapshot) -> String {
    let mut parts = Vec::new();
    if let Some(t) = &s.filter.text {
        parts.push(format!("text {t:?}"));
    }
    if let Some(t) = &s.filter.event_type {
        parts.push(format!("type {t}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" (filter: {})", parts.join(", "))
    }
}

/// One event of the tail: id, local time, type, action, source, data cut to `data_len`.
pub fn tail_row(e: &selflog::StoredEvent, data_len: usize) -> String {
    format!(
        "{:>8}  {}  {}  {}  {}  {}",
        e.id,
        crate::time::display(e.timestamp),
        e.event_type,
        e.action.as_deref().unwrap_or("-"),
        show::one_line(&e.source, 40),
        show::one_line(e.data.as_deref().unwrap_or(""), data_len)
    )
    .trim_end()
    .to_owned()
}

/// The learning section: patterns by type, the newest gauges, cursors and their lag.
pub fn learning(s: &Snapshot) -> String {
    let mut out = String::from("\nlearning\n");
    out.push_str(&format!("  patterns         {}\n", patterns_line(s)));
    out.push_str(&format!("  gauges           {}\n", gauges_line(s)));
    out.push_str("  cursors\n");
    for c in &s.cursors {
        out.push_str(&format!(
            "    {:<24} position {:>10}  lag {:>10}\n",
            c.name, c.position, c.lag
        ));
    }
    for (name, why) in &s.cursors_damaged {
        out.push_str(&format!("    {name:<24} DAMAGED: {why}\n"));
    }
    if s.cursors.is_empty() && s.cursors_damaged.is_empty() {
        out.push_str("    (none)\n");
    }
    out
}

/// Patterns in all and by type, or why there are none to show.
pub fn patterns_line(s: &Snapshot) -> String {
    match &s.patterns {
        Ok(types) if types.is_empty() => "0".to_owned(),
        Ok(types) => {
            let total: u64 = types.iter().map(|(_, n)| n).sum();
            let each: Vec<String> = types.iter().map(|(t, n)| format!("{t} {n}")).collect();
            format!("{total} ({})", each.join(", "))
        }
        Err(why) => format!("unavailable: {why}"),
    }
}

/// The newest stats record's gauges, or why there are none.
pub fn gauges_line(s: &Snapshot) -> String {
    match &s.gauges {
        Ok(Some(g)) => format!(
            "active embryos {}, average fitness {:.3} (stats record of {})",
            g.active_embryos,
            g.avg_fitness,
            crate::time::display(g.timestamp)
        ),
        Ok(None) => "no stats record yet".to_owned(),
        Err(why) => format!("unavailable: {why}"),
    }
}

/// The storage and health section.
pub fn storage(s: &Snapshot) -> String {
    let mut out = String::from("\nstorage and health\n");
    for (label, value) in storage_rows(s) {
        out.push_str(&format!("  {label:<17}{value}\n"));
    }
    out
}

/// The storage and health figures as (label, value) rows, shared with the pane.
pub fn storage_rows(s: &Snapshot) -> Vec<(&'static str, String)> {
    let st = &s.storage;
    let per = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |b| format!("{b:.1}"));
    #[expect(clippy::cast_precision_loss, reason = "a ratio for display")]
    let ratio = if st.data_stored_bytes == 0 {
        1.0
    } else {
        st.data_raw_bytes as f64 / st.data_stored_bytes as f64
    };
    let mut rows = vec![
        ("writer", writer_line(s)),
        (
            "disk size",
            format!(
                "{} ({} of log)",
                human_bytes(st.disk_bytes),
                human_bytes(st.log_bytes)
            ),
        ),
        (
            "bytes/event",
            format!(
                "{:.1} (sealed {}, active {})",
                st.bytes_per_event,
                per(st.bytes_per_event_sealed),
                per(st.bytes_per_event_active)
            ),
        ),
        (
            "segments",
            format!(
                "{} ({} sealed, {} active)",
                st.segments,
                st.sealed_segments,
                st.segments - st.sealed_segments
            ),
        ),
        (
            "compression",
            format!(
                "{} events compressed, data {} -> {} (ratio {ratio:.2})",
                st.compressed_events,
                human_bytes(st.data_raw_bytes),
                human_bytes(st.data_stored_bytes)
            ),
        ),
        (
            "duplicates",
            match &st.duplicates_dropped {
                Ok(n) => format!("{n} dropped"),
                Err(why) => format!("unknown (counters damaged: {why})"),
            },
        ),
        ("last verify", verify_line(s)),
    ];
    rows.retain(|(_, v)| !v.is_empty());
    rows
}

/// Whether a writer is at work, and its last commit.
pub fn writer_line(s: &Snapshot) -> String {
    let who = match &s.writer {
        Writer::Alive { pid } => format!("alive (pid {pid})"),
        Writer::Absent => "none (no process has the store open to write)".to_owned(),
        Writer::Unknown(why) => format!("unknown ({why})"),
    };
    match &s.last_commit {
        Some((at, age)) => format!(
            "{who}; last commit {} ({age} ago)",
            crate::time::display(*at)
        ),
        None => who,
    }
}

/// The last verify this dashboard ran.
pub fn verify_line(s: &Snapshot) -> String {
    let done = match &s.verified {
        None => "none run (press v, or `selflog dashboard --once --verify`)".to_owned(),
        Some(Err(e)) => format!("failed: {e}"),
        Some(Ok(v)) if v.problems == 0 => format!(
            "sound at {}: {} segments, {} events",
            crate::time::display(v.at),
            v.segments,
            v.events
        ),
        Some(Ok(v)) => format!(
            "DAMAGED at {}: {} problems; first: {}",
            crate::time::display(v.at),
            v.problems,
            v.first.as_deref().unwrap_or("-")
        ),
    };
    if s.verifying {
        format!("running...; before: {done}")
    } else {
        done
    }
}
