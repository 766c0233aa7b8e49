//! `selflog ingest [FILE|-]`: append events read as JSON Lines.
//!
//! Bad lines are reported on stderr with their line number and skipped; good lines are
//! stored. Reading a pipe, the store is flushed whenever the input pauses, so a long-running
//! producer's events become visible (and durable) as they arrive.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};

use selflog::{Appended, Config, Store};

use crate::{output, Failure, Outcome};

/// Lines rejected before ingest gives up reporting each one (it keeps counting).
const REPORTED_LINES_MAX: u64 = 100;

#[derive(clap::Args)]
pub struct Args {
    /// JSON Lines file to read; `-` or nothing reads standard input.
    file: Option<PathBuf>,
    /// Print the summary as JSON: {"appended": N, "duplicates": N, "rejected": N}.
    #[arg(long)]
    json: bool,
}

pub fn run(store_dir: &Path, args: &Args) -> Outcome {
    let (input, is_pipe): (Box<dyn Read>, bool) = match args.file.as_deref() {
        None => (Box::new(io::stdin()), true),
        Some(p) if p == Path::new("-") => (Box::new(io::stdin()), true),
        Some(p) => {
            let f = File::open(p).map_err(|e| {
                Failure::hinted(
                    format!("cannot read {}: {e}", p.display()),
                    "check the path of the JSON Lines file",
                )
            })?;
            (Box::new(f), false)
        }
    };
    let store = Store::open(store_dir, Config::default())?;
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut line = Vec::new();
    let (mut appended, mut duplicates, mut rejected) = (0u64, 0u64, 0u64);
    let mut line_no = 0u64;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Failure::from(io::Error::new(e.kind(), format!("reading input: {e}"))))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let text = trim_line(&line);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let outcome = selflog::jsonl::parse_line(text)
            .map_err(|why| (why, false))
            .and_then(|event| {
                store.append(event).map_err(|e| match e {
                    selflog::Error::InvalidEvent { .. } | selflog::Error::TooLarge { .. } => {
                        (e.to_string(), false)
                    }
                    other => (other.to_string(), true),
                })
            });
        match outcome {
            Ok(Appended::New(_)) => appended += 1,
            Ok(Appended::Duplicate(_)) => duplicates += 1,
            Err((why, false)) => {
                rejected += 1;
                if rejected <= REPORTED_LINES_MAX {
                    eprintln!("selflog: line {line_no}: {why}");
                } else if rejected == REPORTED_LINES_MAX + 1 {
                    eprintln!(
                        "selflog: more lines rejected; only the count is reported from here on"
                    );
                }
            }
            Err((why, true)) => {
                // The store itself failed: stop, keeping what was committed.
                let _ = store.flush();
                return Err(Failure::hinted(
                    format!("line {line_no}: {why}"),
                    format!("{appended} events before this line were stored; fix the cause and ingest the rest"),
                ));
            }
        }
        if is_pipe && reader.buffer().is_empty() {
            store.flush()?;
        }
    }
    store.flush()?;
    store.close()?;
    let mut out = io::stdout().lock();
    let res = if args.json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"appended": appended, "duplicates": duplicates, "rejected": rejected})
        )
    } else {
        writeln!(
            out,
            "ingested {appended} events into {} ({duplicates} duplicates, {rejected} lines rejected)",
            store_dir.display()
        )
    };
    res.map_err(|e| output::write_err(&e))?;
    Ok(u8::from(rejected > 0))
}

/// The line without its `\n` or `\r\n`.
fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}
