//! `selflog maintain [--dry-run] [--json] [--compact]`: runs retention now (and with
//! `--compact` compacts every sealed segment not compacted yet) and prints what it deleted
//! (or, with `--dry-run`, what it would delete), and why each segment past the retention
//! age is kept (the last segment; ids inside the dedup window).
//!
//! A real run needs the writer lock (while the daemon runs, its own store does this) and,
//! like any writer, creates a missing store. `--dry-run` opens the store read-only: it
//! never creates or changes anything, and works while another process writes.
//!
//! `--json` prints one object: `dry_run`, `deleted` (`[{file, reason, events, bytes,
//! last_timestamp}]`, what was or would be deleted; `reason` is `expired` or
//! `over size cap`), `kept` (`[{file, why, events, bytes, last_timestamp}]`, `why` being
//! `last segment`, `unsealed` or `dedup window`), `segments_deleted`, `events_deleted`.

use std::io::{self, Write as _};
use std::path::Path;

use selflog::{Config, Deletion, Keep, Kept, Reason, SegmentInfo, Timestamp};

use crate::{output, time, Outcome};

#[derive(clap::Args)]
pub struct Args {
    /// Only print what would be deleted; opens the store read-only.
    #[arg(long)]
    dry_run: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
    /// Also compact every sealed segment not compacted yet, now (a writable store does it
    /// in the background; this waits for it).
    #[arg(long, conflicts_with = "dry_run")]
    compact: bool,
}

pub fn run(store_dir: &Path, args: &Args) -> Outcome {
    let mut config = Config::default();
    config.retention_on_open = false;
    let (deletions, kept) = if args.dry_run {
        let store = crate::open_read_only(store_dir)?;
        selflog::retention_plan(&store.segments()?, &config, Timestamp::now())
    } else {
        let store = crate::open_writable(store_dir, config.clone())?;
        let (_, kept) = selflog::retention_plan(&store.segments()?, &config, Timestamp::now());
        let deletions = store.retain(false)?;
        let compacted = if args.compact {
            store.compact()?
        } else {
            Vec::new()
        };
        store.close()?;
        report_compacted(&compacted, args.json);
        (deletions, kept)
    };
    let mut out = io::stdout().lock();
    let w = |e: io::Error| output::write_err(&e);
    let newest = |s: &SegmentInfo| {
        s.time_range
            .map_or_else(|| "none".to_owned(), |(_, b)| time::display(b))
    };
    let events: u64 = deletions.iter().map(|d| d.segment.events).sum();
    if args.json {
        writeln!(out, "{}", json(args.dry_run, &deletions, &kept)).map_err(w)?;
        return Ok(0);
    }
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    for d in &deletions {
        let s = &d.segment;
        writeln!(
            out,
            "{verb} {}: {} events, {}, {} (newest event {})",
            file_name(s),
            s.events,
            output::human_bytes(s.file_len),
            reason(d.reason),
            newest(s),
        )
        .map_err(w)?;
    }
    for k in &kept {
        let because = match k.why {
            Kept::Last => "it is the last segment, which retention never deletes",
            Kept::Unsealed => "it is not sealed yet",
            _ => "it holds ids inside the dedup window (the newest ids, kept so that duplicates are still recognised)",
        };
        writeln!(
            out,
            "keeping {}: expired (newest event {}), but {because}",
            file_name(&k.segment),
            newest(&k.segment),
        )
        .map_err(w)?;
    }
    writeln!(out, "{verb} {} segments ({events} events)", deletions.len()).map_err(w)?;
    Ok(0)
}

/// One line per compacted segment on stderr (stdout keeps the retention report, and its
/// JSON object, as they were).
#[expect(
    clippy::cast_precision_loss,
    reason = "a ratio of byte and event counts, shown to one decimal"
)]
fn report_compacted(done: &[selflog::Compaction], json: bool) {
    for c in done {
        if let selflog::CompactOutcome::Compacted {
            before,
            after,
            events,
        } = c.outcome
        {
            if json {
                continue;
            }
            eprintln!(
                "compacted events-{:08}.seg: {events} events, {} -> {} ({:.1} bytes per event)",
                c.segment_id,
                output::human_bytes(before),
                output::human_bytes(after),
                after as f64 / events.max(1) as f64,
            );
        }
    }
}

fn file_name(s: &SegmentInfo) -> String {
    s.path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

fn reason(r: Reason) -> &'static str {
    match r {
        Reason::Expired => "expired",
        Reason::OverSizeCap => "over size cap",
        _ => "other",
    }
}

fn why(k: Kept) -> &'static str {
    match k {
        Kept::Last => "last segment",
        Kept::Unsealed => "unsealed",
        Kept::DedupWindow => "dedup window",
        _ => "other",
    }
}

/// The `--json` object (see the module docs).
fn json(dry_run: bool, deletions: &[Deletion], kept: &[Keep]) -> serde_json::Value {
    let row = |s: &SegmentInfo, key: &str, value: &str| {
        serde_json::json!({
            "file": file_name(s),
            key: value,
            "events": s.events,
            "bytes": s.file_len,
            "last_timestamp": s.time_range.map(|(_, b)| output::secs(b)),
        })
    };
    let deleted: Vec<_> = deletions
        .iter()
        .map(|d| row(&d.segment, "reason", reason(d.reason)))
        .collect();
    let kept: Vec<_> = kept
        .iter()
        .map(|k| row(&k.segment, "why", why(k.why)))
        .collect();
    serde_json::json!({
        "dry_run": dry_run,
        "deleted": deleted,
        "kept": kept,
        "segments_deleted": deletions.len(),
        "events_deleted": deletions.iter().map(|d| d.segment.events).sum::<u64>(),
    })
}
