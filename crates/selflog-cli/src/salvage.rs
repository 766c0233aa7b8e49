//! `selflog salvage --to DIR`: copies everything whose checksum holds from a damaged store
//! (events, patterns, stats, cursors) into a new one, keeping ids where they can be
//! recovered, and says per file what it copied, what is known lost and what it skipped.
//! The damaged store is only read; a destination that is not new or empty, or that is the
//! source, is refused before anything is written.
//!
//! Exit status: 0 when everything whose checksum holds was copied (what could not be is
//! listed), 1 on an operational error (nothing readable, destination refused, I/O).
//!
//! `--json` prints one object:
//! - `events_copied`, `events_unreadable`, `events_lost`: the event log's counts (intact
//!   frames not copied; events known lost with damaged bytes);
//! - `bytes_skipped` and `skipped` (`[{file, offset, what}]`): damaged regions of
//!   every file;
//! - `meta_damaged`: why `selflog.meta` was not used, or null;
//! - `patterns_copied`, `stats_copied`: records copied into the sidecar streams;
//! - `cursors_copied`: `[{name, position}]`;
//! - `problems`: `[{file, offset, what}]`, other files not copied (damaged cursors);
//! - `files`: per segment file `{file, stream, events_copied, events_unreadable,
//!   events_lost, bytes_skipped, bytes_missing, first_id, last_id, ids, ids_first,
//!   timestamps, timestamps_base_us, notes}`, where `ids` is `header`, `footer`,
//!   `commit_slot`, `neighbours`, `previous_file`, `next_file`, `first_file`, `reassigned`
//!   (then `ids_first` is the new id of its first frame) or `no_events`, and `timestamps`
//!   is `header`, `footer`, `damaged_header`, `searched`, `guessed` (then
//!   `timestamps_base_us` is the base used) or `no_events`.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use selflog::{IdOrigin, TimeOrigin};

use crate::{output, Outcome};

#[derive(clap::Args)]
pub struct Args {
    /// The new store to copy into (created; must be new or an empty directory).
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(store_dir: &Path, args: &Args) -> Outcome {
    let spinner = crate::progress::spinner(format!(
        "salvaging {} into {}",
        store_dir.display(),
        args.to.display()
    ));
    let report = selflog::salvage(store_dir, &args.to);
    spinner.finish_and_clear();
    let report = report?;
    let mut out = io::stdout().lock();
    let w = |e: io::Error| output::write_err(&e);
    if args.json {
        writeln!(out, "{}", json(&report)).map_err(w)?;
        return Ok(0);
    }
    if let Some(why) = &report.meta_damaged {
        writeln!(out, "{why}: the store was recognised by its segment files").map_err(w)?;
    }
    for p in &report.skipped {
        writeln!(
            out,
            "skipped damage in {} from byte {}: {}",
            p.path.display(),
            p.offset,
            p.what
        )
        .map_err(w)?;
    }
    for f in &report.files {
        let mut line = format!(
            "{}: {} copied, {} lost, {} unreadable, {} bytes skipped",
            f.path.display(),
            f.events_copied,
            f.events_lost,
            f.events_unreadable,
            f.bytes_skipped
        );
        if f.bytes_missing > 0 {
            line += &format!(", {} bytes missing", f.bytes_missing);
        }
        if let Some((a, b)) = f.ids_copied {
            line += &format!("; ids {a}..={b}");
        }
        if !matches!(f.ids, IdOrigin::Header | IdOrigin::NoEvents) {
            line += &format!("; {}", f.ids);
        }
        if !matches!(f.timestamps, TimeOrigin::Header | TimeOrigin::NoEvents) {
            line += &format!("; {}", f.timestamps);
        }
        writeln!(out, "{line}").map_err(w)?;
        for note in &f.notes {
            writeln!(out, "  {note}").map_err(w)?;
        }
    }
    for p in &report.problems {
        writeln!(out, "not copied: {}: {}", p.path.display(), p.what).map_err(w)?;
    }
    writeln!(
        out,
        "copied {} events into {} ({} unreadable, {} lost, {} bytes skipped)",
        report.events_copied,
        args.to.display(),
        report.events_unreadable,
        report.events_lost,
        report.bytes_skipped
    )
    .map_err(w)?;
    writeln!(
        out,
        "copied {} pattern records, {} stats records, {} cursors",
        report.patterns_copied,
        report.stats_copied,
        report.cursors_copied.len()
    )
    .map_err(w)?;
    Ok(0)
}

fn json(report: &selflog::SalvageReport) -> serde_json::Value {
    let problem = |p: &selflog::Problem| serde_json::json!({"file": p.path.display().to_string(), "offset": p.offset, "what": p.what});
    let files: Vec<_> = report
        .files
        .iter()
        .map(|f| {
            serde_json::json!({
                "file": f.path.display().to_string(),
                "stream": f.stream,
                "events_copied": f.events_copied,
                "events_unreadable": f.events_unreadable,
                "events_lost": f.events_lost,
                "bytes_skipped": f.bytes_skipped,
                "bytes_missing": f.bytes_missing,
                "first_id": f.ids_copied.map(|(a, _)| a.0),
                "last_id": f.ids_copied.map(|(_, b)| b.0),
                "ids": f.ids.name(),
                "ids_first": match f.ids { IdOrigin::Reassigned { first } => Some(first.0), _ => None },
                "timestamps": f.timestamps.name(),
                "timestamps_base_us": match f.timestamps { TimeOrigin::Guessed { base_us } => Some(base_us), _ => None },
                "notes": f.notes,
            })
        })
        .collect();
    serde_json::json!({
        "events_copied": report.events_copied,
        "events_unreadable": report.events_unreadable,
        "events_lost": report.events_lost,
        "bytes_skipped": report.bytes_skipped,
        "skipped": report.skipped.iter().map(problem).collect::<Vec<_>>(),
        "meta_damaged": report.meta_damaged,
        "patterns_copied": report.patterns_copied,
        "stats_copied": report.stats_copied,
        "cursors_copied": report.cursors_copied.iter().map(|(n, id)| serde_json::json!({"name": n, "position": id.0})).collect::<Vec<_>>(),
        "problems": report.problems.iter().map(problem).collect::<Vec<_>>(),
        "files": files,
    })
}
