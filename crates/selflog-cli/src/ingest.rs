//! `selflog ingest [FILE|-]`: append events read as JSON Lines.
//!
//! Bad lines are reported on stderr with their line number and skipped; good lines are
//! stored. Reading a pipe, the store is flushed whenever the input pauses, so a long-running
//! producer's events become visible (and durable) as they arrive.
//!
//! A second thread reads and parses the input (most of the work: JSON parsing) while this
//! one appends, chunk by chunk, in line order.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use selflog::{Appended, Config, Event, Store};

use crate::{output, Failure, Outcome};

/// Lines rejected before ingest gives up reporting each one (it keeps counting).
const REPORTED_LINES_MAX: u64 = 100;

/// Lines the parsing thread hands over at once (fewer when the input pauses).
const CHUNK_LINES: usize = 256;
/// Chunks parsed ahead of the appending thread: bounds memory when the store is slower.
const CHUNKS_AHEAD: usize = 4;

/// Parsed lines, by line number, and whether the input paused after the last of them (a
/// pipe with nothing more to read yet): the appender then flushes.
struct Chunk {
    lines: Vec<(u64, Result<Event, selflog::jsonl::LineError>)>,
    paused: bool,
}

/// Reads and parses `input` into chunks sent to `tx`, until the input ends, a read fails
/// (sent as the last message) or the receiver is gone.
fn parse_input(
    input: Box<dyn Read + Send>,
    is_pipe: bool,
    tx: &mpsc::SyncSender<io::Result<Chunk>>,
) {
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut line = Vec::new();
    let mut line_no = 0u64;
    let mut lines = Vec::with_capacity(CHUNK_LINES);
    loop {
        line.clear();
        let n = match reader.read_until(b'\n', &mut line) {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(Ok(Chunk {
                    lines,
                    paused: false,
                }));
                let _ = tx.send(Err(e));
                return;
            }
        };
        if n == 0 {
            let _ = tx.send(Ok(Chunk {
                lines,
                paused: false,
            }));
            return;
        }
        line_no += 1;
        let text = trim_line(&line);
        if !text.iter().all(u8::is_ascii_whitespace) {
            lines.push((line_no, selflog::jsonl::parse_line(text)));
        }
        let paused = is_pipe && reader.buffer().is_empty();
        if paused || lines.len() == CHUNK_LINES {
            let full = std::mem::replace(&mut lines, Vec::with_capacity(CHUNK_LINES));
            if tx
                .send(Ok(Chunk {
                    lines: full,
                    paused,
                }))
                .is_err()
            {
                return;
            }
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// JSON Lines file to read; `-` or nothing reads standard input.
    file: Option<PathBuf>,
    /// Print the summary as JSON: {"appended": N, "duplicates": N, "rejected": N}.
    #[arg(long)]
    json: bool,
}

pub fn run(store_dir: &Path, args: &Args) -> Outcome {
    let (input, is_pipe): (Box<dyn Read + Send>, bool) = match args.file.as_deref() {
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
    let (tx, rx) = mpsc::sync_channel(CHUNKS_AHEAD);
    // Not joined: on a store failure this thread may be blocked reading a pipe, and the
    // process exits; otherwise it has ended when its last chunk arrives.
    std::thread::Builder::new()
        .name("selflog-parse".into())
        .spawn(move || parse_input(input, is_pipe, &tx))
        .map_err(|e| {
            Failure::from(io::Error::new(
                e.kind(),
                format!("starting the parser: {e}"),
            ))
        })?;
    let (mut appended, mut duplicates, mut rejected) = (0u64, 0u64, 0u64);
    for chunk in rx {
        let chunk = chunk
            .map_err(|e| Failure::from(io::Error::new(e.kind(), format!("reading input: {e}"))))?;
        for (line_no, parsed) in chunk.lines {
            let outcome = parsed
                .map_err(|why| (why.to_string(), false))
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
        }
        if chunk.paused {
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
