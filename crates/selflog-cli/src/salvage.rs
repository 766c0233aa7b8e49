//! `selflog salvage --to DIR`: copies every event whose frame still passes its checksum from
//! a damaged store into a new one, keeping ids, and says what it had to skip. The damaged
//! store is only read.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::{output, Outcome};

#[derive(clap::Args)]
pub struct Args {
    /// The new store to copy into (created; must not hold events yet).
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(store_dir: &Path, args: &Args) -> Outcome {
    let report = selflog::salvage(store_dir, &args.to)?;
    let mut out = io::stdout().lock();
    let w = |e: io::Error| output::write_err(&e);
    if args.json {
        let skipped: Vec<_> = report
            .skipped
            .iter()
            .map(|p| serde_json::json!({"file": p.path.display().to_string(), "offset": p.offset}))
            .collect();
        let v = serde_json::json!({
            "events_copied": report.events_copied,
            "events_unreadable": report.events_unreadable,
            "bytes_skipped": report.bytes_skipped,
            "skipped": skipped,
        });
        writeln!(out, "{v}").map_err(w)?;
    } else {
        for p in &report.skipped {
            writeln!(
                out,
                "skipped damage in {} from byte {}",
                p.path.display(),
                p.offset
            )
            .map_err(w)?;
        }
        writeln!(
            out,
            "copied {} events into {} ({} unreadable, {} bytes skipped)",
            report.events_copied,
            args.to.display(),
            report.events_unreadable,
            report.bytes_skipped
        )
        .map_err(w)?;
    }
    Ok(0)
}
