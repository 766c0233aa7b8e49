//! `selflog ingest [FILE|-]`: append events read as JSON Lines.
//!
//! Bad lines are reported on stderr with their line number and skipped; good lines are
//! stored. Reading a pipe, the store is flushed whenever the input pauses, so a long-running
//! producer's events become visible (and durable) as they arrive.
//!
//! Other threads read the input and parse and check it against the store's limits (most
//! of the work: JSON parsing; [`read`]) while this one appends, each chunk's good events as
//! one batch (`Store::append_batch_into`, which says what became of each even when the
//! store fails part way), in line order. Memory stays bounded whatever the input: a line is
//! read in pieces and rejected as soon as it passes [`read::line_len_max`], the rest of it
//! discarded up to the next newline, and chunks are bounded in lines and in bytes.
//!
//! What ingest says it stored is what the store holds. When the store fails (a full disk,
//! a file-size limit), ingest closes it and counts the events of this run that were
//! committed, by id, and names the line to ingest again from. SIGINT or SIGTERM stops the
//! reading; what was read is committed and the summary printed, with exit status 130.

use std::fs::File;
use std::io::{self, Read, Write as _};
use std::path::{Path, PathBuf};

use selflog::{Appended, Config, EventId, Store};

use crate::interrupt::{Interrupt, EXIT_INTERRUPTED};
use crate::{output, Failure, Outcome};

mod read;

use read::{Msg, Parsed};

/// Lines rejected before ingest gives up reporting each one (it keeps counting).
const REPORTED_LINES_MAX: u64 = 100;
/// Events appended but not yet acknowledged by a flush, at most: ingest remembers the line
/// of each (16 bytes) to say, after a failure, which lines were stored.
const UNACKNOWLEDGED_MAX: usize = 1 << 16;

#[derive(clap::Args)]
#[command(after_help = "Each line is one JSON object, one event:\n  \
{\"timestamp\": 1732460000.5, \"event_type\": \"file_op\", \"action\": \"modified\", \
\"source\": \"Finder\", \"data\": {\"path\": \"/Users/a/notes.md\"}}\n\
Fields:\n  \
timestamp   required: epoch seconds (a number, up to microseconds) or an RFC 3339 string \
(\"2024-11-24T15:00:00Z\", \"2024-11-24T16:00:00.5+01:00\"), at most 24 hours ahead of \
the clock\n  \
event_type  required: a non-empty string (file_op, app_launch, clipboard, ...), at most 1024 bytes\n  \
source      required: a non-empty string, the application or subsystem, at most 1024 bytes\n  \
action      optional: a string or null (modified, created, ...), at most 1024 bytes\n  \
data        optional: any JSON value or null, stored as its exact text, at most 4 MiB\n\
Other keys, such as `id` and `hash` in the output of `selflog inspect export`, are ignored, \
so an export ingests back. Blank lines are skipped; a UTF-8 byte order mark before the first \
line is accepted; lines may end in \\n or \\r\\n.\n\n\
Lines longer than 4 MiB plus room for the other fields are rejected as soon as \
they pass the limit; memory stays bounded.\n\
On a store failure (a full disk) ingest says how many events of this run the store holds \
and from which line to ingest again, and exits 1. SIGINT (Ctrl-C) or SIGTERM stops the \
reading; what was read is stored, the summary printed, and the exit status is 130.")]
pub struct Args {
    /// JSON Lines file to read; `-` or nothing reads standard input.
    file: Option<PathBuf>,
    /// Print the summary as JSON: `{"appended": N, "duplicates": N, "rejected": N}`, plus
    /// `"interrupted": true` and `"lines_read": N` when a signal stopped it, or `"error"`
    /// and `"resume_line"` when the store failed.
    #[arg(long)]
    json: bool,
}

/// What a run did: counts of lines, and which events are not yet known to be committed.
#[derive(Default)]
struct Tally {
    /// Events acknowledged by a flush.
    stored: u64,
    /// Appended since the last successful flush: id and line number.
    unacknowledged: Vec<(EventId, u64)>,
    duplicates: u64,
    rejected: u64,
    /// The last line handed to the store or rejected.
    last_line: u64,
}

impl Tally {
    fn acknowledge(&mut self) {
        self.stored += self.unacknowledged.len() as u64;
        self.unacknowledged.clear();
    }

    /// After a failure: counts the unacknowledged events the store committed anyway (ids up
    /// to `last_committed`), and returns the line of the first one it did not.
    fn settle(&mut self, last_committed: Option<EventId>) -> Option<u64> {
        let lost = self
            .unacknowledged
            .iter()
            .position(|&(id, _)| Some(id) > last_committed);
        let kept = lost.unwrap_or(self.unacknowledged.len());
        let first_lost_line = lost.map(|i| self.unacknowledged[i].1);
        self.stored += kept as u64;
        self.unacknowledged.clear();
        first_lost_line
    }
}

/// Why the appender stopped before the end of the input.
enum Stop {
    /// The store failed at this line, or after the last line read when flushing (`None`).
    Failed {
        line: Option<u64>,
        failure: Failure,
    },
    Interrupted,
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
    let interrupt = Interrupt::install()?;
    let store = crate::open_writable(store_dir, Config::default())?;
    let (parsed, wakes) = read::start(input, is_pipe, &interrupt).map_err(|e| {
        Failure::from(io::Error::new(
            e.kind(),
            format!("starting the parser: {e}"),
        ))
    })?;
    interrupt.on_signal(move || {
        // Only to wake an appender waiting for input, on whichever parser's turn it waits;
        // when a channel is full the appender is busy and sees the flag itself.
        for wake in &wakes {
            let _ = wake.try_send(Msg::Interrupted);
        }
    })?;
    let mut tally = Tally::default();
    let stop = append_all(&store, parsed, &interrupt, &mut tally);
    // Close, so that nothing more can be committed after the count below.
    let stop = match (stop, store.close()) {
        (None, Ok(())) => {
            tally.acknowledge();
            None
        }
        (Some(Stop::Interrupted), Ok(())) => {
            tally.acknowledge();
            Some(Stop::Interrupted)
        }
        (Some(failed @ Stop::Failed { .. }), _) => Some(failed),
        (_, Err(e)) => Some(Stop::Failed {
            line: None,
            failure: store_failure(e),
        }),
    };
    match stop {
        None => {
            summary(store_dir, args, &tally, None)?;
            Ok(u8::from(tally.rejected > 0))
        }
        Some(Stop::Interrupted) => {
            summary(store_dir, args, &tally, Some(tally.last_line))?;
            Ok(EXIT_INTERRUPTED)
        }
        Some(Stop::Failed { line, failure }) => {
            Err(after_failure(store_dir, args, &mut tally, line, &failure))
        }
    }
}

/// Appends every chunk of `parsed` until the input ends (`None`), the store fails or a
/// signal arrives. Flushes when the input pauses and every `UNACKNOWLEDGED_MAX` events.
fn append_all(
    store: &Store,
    parsed: Parsed,
    interrupt: &Interrupt,
    tally: &mut Tally,
) -> Option<Stop> {
    let failed = |line: Option<u64>, e: selflog::Error| {
        Some(Stop::Failed {
            line,
            failure: store_failure(e),
        })
    };
    let mut appended = Vec::new();
    for msg in parsed {
        let chunk = match msg {
            Msg::Lines(chunk) => chunk,
            Msg::End => break,
            Msg::Interrupted => return Some(Stop::Interrupted),
            Msg::ReadFailed(e) => {
                return Some(Stop::Failed {
                    line: None,
                    failure: Failure::from(io::Error::new(e.kind(), format!("reading input: {e}"))),
                })
            }
        };
        if interrupt.is_set() {
            return Some(Stop::Interrupted);
        }
        // The chunk's good events go to the store as one batch; its lines are then gone
        // through in order, each good one taking its outcome from the batch's.
        let mut events = Vec::with_capacity(chunk.lines.len());
        let mut lines = Vec::with_capacity(chunk.lines.len());
        for (line_no, parsed) in chunk.lines {
            lines.push((
                line_no,
                match parsed {
                    Ok(event) => {
                        events.push(event);
                        None
                    }
                    Err(why) => Some(why),
                },
            ));
        }
        let first_event_line = lines.iter().find(|(_, why)| why.is_none()).map(|l| l.0);
        let mut batch_failure = match store.append_batch_into(events, &mut appended) {
            // The parser checked every event against the same limits, so this cannot
            // happen unless they changed under it; nothing of the batch was queued.
            Err(e @ (selflog::Error::InvalidEvent { .. } | selflog::Error::TooLarge { .. })) => {
                return failed(first_event_line, e)
            }
            other => other.err(),
        };
        let mut outcomes = appended.iter();
        for (line_no, rejected) in lines {
            match rejected {
                None => match outcomes.next() {
                    Some(&Appended::New(id)) => tally.unacknowledged.push((id, line_no)),
                    Some(&Appended::Duplicate(_)) => tally.duplicates += 1,
                    // The store failed at this event: those before it were queued.
                    None => {
                        let e = batch_failure
                            .take()
                            .expect("a batch gives an outcome per event unless it failed");
                        return failed(Some(line_no), e);
                    }
                },
                Some(why) => {
                    tally.rejected += 1;
                    if tally.rejected <= REPORTED_LINES_MAX {
                        eprintln!("selflog: line {line_no}: {why}");
                    } else if tally.rejected == REPORTED_LINES_MAX + 1 {
                        eprintln!(
                            "selflog: more lines rejected; only the count is reported from here on"
                        );
                    }
                }
            }
            tally.last_line = line_no;
        }
        if let Some(e) = batch_failure {
            // A failure after the batch's last event was queued (a batch fails at an
            // event today, so this is only a safe default).
            return failed(None, e);
        }
        if tally.unacknowledged.len() >= UNACKNOWLEDGED_MAX {
            if let Err(e) = store.flush() {
                return failed(None, e);
            }
            tally.acknowledge();
        }
        if chunk.paused {
            if let Err(e) = store.flush() {
                return failed(None, e);
            }
            tally.acknowledge();
        }
        if interrupt.is_set() {
            return Some(Stop::Interrupted);
        }
    }
    if interrupt.is_set() {
        return Some(Stop::Interrupted);
    }
    if let Err(e) = store.flush() {
        return failed(None, e);
    }
    tally.acknowledge();
    None
}

/// A store failure that ends the run. The library's words on a full disk promise that
/// events held in memory are written once space returns, which holds for a process that
/// stays; ingest closes the store, so its hint says what was stored instead.
fn store_failure(e: selflog::Error) -> Failure {
    match e {
        selflog::Error::DiskFull { path } => Failure {
            message: format!("disk full while writing {}", path.display()),
            hint: None,
        },
        other => other.into(),
    }
}

/// Prints the summary; `interrupted_after` is the last line read when a signal stopped the
/// run.
fn summary(
    store_dir: &Path,
    args: &Args,
    tally: &Tally,
    interrupted_after: Option<u64>,
) -> Result<(), Failure> {
    let Tally {
        stored,
        duplicates,
        rejected,
        ..
    } = *tally;
    let mut out = io::stdout().lock();
    let res = if args.json {
        let mut v =
            serde_json::json!({"appended": stored, "duplicates": duplicates, "rejected": rejected});
        if let Some(line) = interrupted_after {
            v["interrupted"] = true.into();
            v["lines_read"] = line.into();
        }
        writeln!(out, "{v}")
    } else {
        let tail = interrupted_after.map_or_else(String::new, |line| {
            format!("; interrupted after line {line}, the rest of the input was not read")
        });
        writeln!(
            out,
            "ingested {stored} events into {} ({duplicates} duplicates, {rejected} lines rejected){tail}",
            store_dir.display()
        )
    };
    res.map_err(|e| output::write_err(&e))
}

/// The failure to report after the store failed at `line` (or after the last line read):
/// how many events of this run the store holds, counted by id once the store is closed, and
/// the line to ingest again from.
fn after_failure(
    store_dir: &Path,
    args: &Args,
    tally: &mut Tally,
    line: Option<u64>,
    failure: &Failure,
) -> Failure {
    let message = match line {
        Some(line) => format!("line {line}: {}", failure.message),
        None => format!("after line {}: {}", tally.last_line, failure.message),
    };
    let line = line.unwrap_or(tally.last_line + 1);
    let last_committed = match Store::open_read_only(store_dir).and_then(|s| s.stats()) {
        Ok(s) => s.last_id,
        Err(e) => {
            return Failure::hinted(
                message,
                format!(
                    "cannot tell how many events were stored ({e}); at most {} of this input; run `selflog inspect stats`",
                    tally.stored + tally.unacknowledged.len() as u64
                ),
            )
        }
    };
    let resume_line = tally.settle(last_committed).unwrap_or(line);
    if args.json {
        let v = serde_json::json!({
            "appended": tally.stored,
            "duplicates": tally.duplicates,
            "rejected": tally.rejected,
            "error": failure.message,
            "resume_line": resume_line,
        });
        let _ = writeln!(io::stdout().lock(), "{v}");
    }
    let before = if resume_line > 1 {
        format!("every line before line {resume_line} is stored, a duplicate or reported; ")
    } else {
        String::new()
    };
    Failure::hinted(
        message,
        format!(
            "{} events of this input are stored ({} duplicates, {} lines rejected); {before}fix the cause and ingest again from line {resume_line}",
            tally.stored, tally.duplicates, tally.rejected
        ),
    )
}
