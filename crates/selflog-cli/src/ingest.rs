//! `selflog ingest [FILE|-]`: append events read as JSON Lines.
//!
//! Bad lines are reported on stderr with their line number and skipped; good lines are
//! stored. Reading a pipe, the store is flushed whenever the input pauses, so a long-running
//! producer's events become visible (and durable) as they arrive.
//!
//! A second thread reads, parses and checks the input against the store's limits (most of
//! the work: JSON parsing) while this one appends, each chunk's good events as one batch
//! (`Store::append_batch_into`, which says what became of each even when the store fails
//! part way), in line order. Memory stays bounded whatever the input: a
//! line is read in pieces and rejected as soon as it passes [`line_len_max`], the rest of it
//! discarded up to the next newline, and chunks are bounded in lines and in bytes.
//!
//! What ingest says it stored is what the store holds. When the store fails (a full disk,
//! a file-size limit), ingest closes it and counts the events of this run that were
//! committed, by id, and names the line to ingest again from. SIGINT or SIGTERM stops the
//! reading; what was read is committed and the summary printed, with exit status 130.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use selflog::{Appended, Config, Event, EventId, Store, Timestamp};

use crate::interrupt::{Interrupt, EXIT_INTERRUPTED};
use crate::{output, Failure, Outcome};

/// The UTF-8 byte order mark, accepted (and ignored) at the start of the first line.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Lines rejected before ingest gives up reporting each one (it keeps counting).
const REPORTED_LINES_MAX: u64 = 100;

/// Lines the parsing thread hands over at once (fewer when the input pauses).
const CHUNK_LINES: usize = 256;
/// Bytes of input lines the parsing thread hands over at once, at most (plus one line):
/// 256 lines of 4 MiB would otherwise make a 1 GiB chunk.
const CHUNK_BYTES_MAX: usize = 8 << 20;
/// Chunks parsed ahead of the appending thread: bounds memory when the store is slower.
const CHUNKS_AHEAD: usize = 4;
/// Events appended but not yet acknowledged by a flush, at most: ingest remembers the line
/// of each (16 bytes) to say, after a failure, which lines were stored.
const UNACKNOWLEDGED_MAX: usize = 1 << 16;
/// Room in a line for everything but the event data: three names of at most
/// `NAME_LEN_MAX` bytes, a timestamp, the keys and some whitespace.
const LINE_OVERHEAD_LEN: usize = 3 * selflog::NAME_LEN_MAX + 1024;

/// Longest line accepted, in bytes before its newline: the store's default limit on event
/// data (4 MiB) plus room for the other fields. A longer line cannot hold a storable event.
pub fn line_len_max() -> usize {
    Config::default().data_len_max + LINE_OVERHEAD_LEN
}

/// Parsed lines, by line number, and whether the input paused after the last of them (a
/// pipe with nothing more to read yet): the appender then flushes.
struct Chunk {
    lines: Vec<(u64, Result<Event, String>)>,
    paused: bool,
}

/// What the parsing thread (and the signal thread) send the appender.
enum Msg {
    Lines(Chunk),
    /// Reading the input failed after the lines sent before.
    ReadFailed(io::Error),
    /// The input ended after the lines sent before.
    End,
    /// SIGINT or SIGTERM arrived: wakes an appender waiting for input.
    Interrupted,
}

/// Splits the input into lines of at most `len_max` bytes, holding at most that much of
/// one line: a longer line is reported as soon as it passes the limit, and its rest is
/// discarded as it is read.
struct Lines<R> {
    reader: BufReader<R>,
    line: Vec<u8>,
    line_no: u64,
    len_max: usize,
    /// The current line passed the limit and was reported; skip to its newline.
    skipping: bool,
    /// Bytes of the reader's buffer handed out as the last line, in place: consumed at the
    /// next call, once the caller is done with them.
    lent_len: usize,
}

/// One step of [`Lines`].
enum Piece<'a> {
    /// A whole line (without its newline), and its number.
    Line(u64, &'a [u8]),
    /// Line number N passed the limit; its rest will be skipped.
    TooLong(u64),
    /// The input ended.
    End,
}

impl<R: Read> Lines<R> {
    fn new(input: R, len_max: usize) -> Lines<R> {
        Lines {
            reader: BufReader::with_capacity(1 << 20, input),
            line: Vec::new(),
            line_no: 0,
            len_max,
            skipping: false,
            lent_len: 0,
        }
    }

    /// Whether everything read from the input so far has been handed out.
    fn drained(&self) -> bool {
        self.reader.buffer().len() == self.lent_len
    }

    fn next_piece(&mut self) -> io::Result<Piece<'_>> {
        self.reader.consume(std::mem::take(&mut self.lent_len));
        // Most lines lie whole in the reader's buffer: they are handed out from there,
        // without a copy. (Decided here, and the line borrowed again below: a borrow
        // returned from inside the loop would hold the reader for the whole loop.)
        if !self.skipping {
            let buf = loop {
                match self.reader.fill_buf() {
                    Ok(b) => break b,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            };
            if let Some(i) = memchr::memchr(b'\n', buf).filter(|&i| i <= self.len_max) {
                self.line_no += 1;
                self.lent_len = i + 1;
                return Ok(Piece::Line(self.line_no, &self.reader.buffer()[..i]));
            }
        }
        self.line.clear();
        if self.line.capacity() > 1 << 20 {
            // Memory of a long line goes back once it is done.
            self.line = Vec::new();
        }
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                // The end; a last line without a newline still counts.
                if self.skipping {
                    self.skipping = false;
                    return Ok(Piece::End);
                }
                if self.line.is_empty() {
                    return Ok(Piece::End);
                }
                self.line_no += 1;
                return Ok(Piece::Line(self.line_no, &self.line));
            }
            let (content_len, ends) = match memchr_newline(buf) {
                Some(i) => (i, true),
                None => (buf.len(), false),
            };
            if !self.skipping {
                if self.line.len() + content_len > self.len_max {
                    self.skipping = true;
                    self.line = Vec::new();
                    // Consume nothing yet: the next call skips to the newline.
                    return Ok(Piece::TooLong(self.line_no + 1));
                }
                self.line.extend_from_slice(&buf[..content_len]);
            }
            self.reader.consume(content_len + usize::from(ends));
            if ends {
                self.line_no += 1;
                if std::mem::take(&mut self.skipping) {
                    self.line.clear();
                    continue;
                }
                return Ok(Piece::Line(self.line_no, &self.line));
            }
        }
    }
}

fn memchr_newline(buf: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', buf)
}

/// Reads and parses `input` into chunks sent to `tx`, until the input ends, a read fails
/// (sent as the last message), a signal arrives or the receiver is gone.
fn parse_input(
    input: Box<dyn Read + Send>,
    is_pipe: bool,
    interrupt: &Interrupt,
    tx: &mpsc::SyncSender<Msg>,
) {
    let len_max = line_len_max();
    let config = Config::default();
    let mut lines = Lines::new(input, len_max);
    let mut chunk = Vec::with_capacity(CHUNK_LINES);
    let mut chunk_len = 0usize;
    let send = |chunk: &mut Vec<_>, paused: bool| {
        let lines = std::mem::replace(chunk, Vec::with_capacity(CHUNK_LINES));
        tx.send(Msg::Lines(Chunk { lines, paused })).is_ok()
    };
    loop {
        if interrupt.is_set() {
            let _ = send(&mut chunk, false);
            return;
        }
        let (line_no, result, len) = match lines.next_piece() {
            Err(e) => {
                let _ = send(&mut chunk, false);
                let _ = tx.send(Msg::ReadFailed(e));
                return;
            }
            Ok(Piece::End) => {
                if send(&mut chunk, false) {
                    let _ = tx.send(Msg::End);
                }
                return;
            }
            Ok(Piece::TooLong(line_no)) => (
                line_no,
                Some(Err(format!(
                    "is longer than the limit of {len_max} bytes per line (event data is at most {} bytes); skipped",
                    Config::default().data_len_max
                ))),
                None,
            ),
            Ok(Piece::Line(line_no, line)) => {
                let text = trim_line(line);
                // Editors on some systems begin a UTF-8 file with a byte order mark.
                let text = match text.strip_prefix(UTF8_BOM) {
                    Some(rest) if line_no == 1 => rest,
                    _ => text,
                };
                // Checked against the store's limits here too, off the appending thread, so
                // that a chunk's good events go to the store as one batch.
                let parsed = (!text.iter().all(u8::is_ascii_whitespace)).then(|| {
                    selflog::jsonl::parse_line(text)
                        .map_err(|e| e.to_string())
                        .and_then(|e| match e.validate(&config, Timestamp::now()) {
                            Ok(()) => Ok(e),
                            Err(e) => Err(e.to_string()),
                        })
                });
                (line_no, parsed, Some(text.len()))
            }
        };
        // A line over the limit is reported at once, before its rest is read.
        let too_long = len.is_none();
        let len = len.unwrap_or(0);
        if let Some(result) = result {
            chunk.push((line_no, result));
            chunk_len += len;
        }
        let paused = is_pipe && lines.drained();
        if paused || too_long || chunk.len() == CHUNK_LINES || chunk_len >= CHUNK_BYTES_MAX {
            chunk_len = 0;
            if !send(&mut chunk, paused) {
                return;
            }
        }
    }
}

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
    let (tx, rx) = mpsc::sync_channel(CHUNKS_AHEAD);
    let wake = tx.clone();
    interrupt.on_signal(move || {
        // Only to wake an appender waiting for input; when the channel is full the appender
        // is busy and sees the flag itself.
        let _ = wake.try_send(Msg::Interrupted);
    })?;
    // Not joined: on a store failure or a signal this thread may be blocked reading a pipe,
    // and the process exits; otherwise it has ended when its last chunk arrives.
    let parser_interrupt = interrupt.clone();
    std::thread::Builder::new()
        .name("selflog-parse".into())
        .spawn(move || parse_input(input, is_pipe, &parser_interrupt, &tx))
        .map_err(|e| {
            Failure::from(io::Error::new(
                e.kind(),
                format!("starting the parser: {e}"),
            ))
        })?;
    let mut tally = Tally::default();
    let stop = append_all(&store, &rx, &interrupt, &mut tally);
    drop(rx);
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

/// Appends every chunk from `rx` until the input ends (`None`), the store fails or a
/// signal arrives. Flushes when the input pauses and every `UNACKNOWLEDGED_MAX` events.
fn append_all(
    store: &Store,
    rx: &mpsc::Receiver<Msg>,
    interrupt: &Interrupt,
    tally: &mut Tally,
) -> Option<Stop> {
    let failed = |line: Option<u64>, e: selflog::Error| {
        Some(Stop::Failed {
            line,
            failure: store_failure(e),
        })
    };
    let mut appended = Vec::with_capacity(CHUNK_LINES);
    for msg in rx {
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

/// The line without its `\n` or `\r\n`.
fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line that lies whole in the reader's buffer is handed out from it, one that
    /// straddles the buffer's end is copied (issue 21): either way every line comes out
    /// whole, with its number, and one over the limit is reported as such.
    #[test]
    fn lines_come_out_whole_across_the_buffer_ends() {
        let len_max = 250;
        let texts: Vec<String> = (0..40_000usize)
            .map(|i| format!("{i}:{}", "x".repeat(i * 7919 % 300)))
            .collect();
        let mut input = texts.join("\n").into_bytes();
        assert!(input.len() > 3 << 20, "several buffers' worth");
        input.extend_from_slice(b"\nlast, without a newline");
        let mut lines = Lines::new(&input[..], len_max);
        for (i, text) in texts.iter().enumerate() {
            let no = i as u64 + 1;
            match lines.next_piece().unwrap() {
                Piece::Line(n, line) => {
                    assert_eq!((n, line), (no, text.as_bytes()), "line {no}");
                    assert!(text.len() <= len_max);
                }
                Piece::TooLong(n) => {
                    assert_eq!(n, no);
                    assert!(text.len() > len_max, "line {no} is within the limit");
                }
                Piece::End => panic!("ended before line {no}"),
            }
        }
        assert!(matches!(
            lines.next_piece().unwrap(),
            Piece::Line(40_001, b"last, without a newline")
        ));
        assert!(matches!(lines.next_piece().unwrap(), Piece::End));
    }
}
