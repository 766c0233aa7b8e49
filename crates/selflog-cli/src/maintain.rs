//! `selflog maintain [--dry-run]`: runs retention now and prints what it deleted (or, with
//! `--dry-run`, what it would delete). Needs the writer lock: while the daemon runs, its own
//! store does this.

use std::io::{self, Write as _};
use std::path::Path;

use selflog::{Config, Reason};

use crate::{output, Outcome};

#[derive(clap::Args)]
pub struct Args {
    /// Only print what would be deleted.
    #[arg(long)]
    dry_run: bool,
    /// One JSON object per segment.
    #[arg(long)]
    json: bool,
}

pub fn run(store_dir: &Path, args: &Args) -> Outcome {
    let mut config = Config::default();
    config.retention_on_open = false;
    let store = crate::open_writable(store_dir, config)?;
    let deletions = store.retain(args.dry_run)?;
    store.close()?;
    let mut out = io::stdout().lock();
    let w = |e: io::Error| output::write_err(&e);
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    for d in &deletions {
        let s = &d.segment;
        let file = s
            .path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let reason = match d.reason {
            Reason::Expired => "expired",
            Reason::OverSizeCap => "over size cap",
            _ => "other",
        };
        if args.json {
            let v = serde_json::json!({
                "file": file,
                "deleted": !args.dry_run,
                "reason": reason,
                "events": s.events,
                "bytes": s.file_len,
                "last_timestamp": s.time_range.map(|(_, b)| output::secs(b)),
            });
            writeln!(out, "{v}").map_err(w)?;
        } else {
            writeln!(
                out,
                "{verb} {file}: {} events, {}, {reason}",
                s.events,
                output::human_bytes(s.file_len)
            )
            .map_err(w)?;
        }
    }
    if !args.json {
        let events: u64 = deletions.iter().map(|d| d.segment.events).sum();
        writeln!(out, "{verb} {} segments ({events} events)", deletions.len()).map_err(w)?;
    }
    Ok(0)
}
