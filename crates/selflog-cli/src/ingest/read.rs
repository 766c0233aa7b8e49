//! Reading `selflog ingest`'s input: one thread splits it into lines and hands them out in
//! chunks, in turn, to parsing threads (as many as the machine has cores, up to
//! [`PARSERS_MAX`]), each of which parses and checks its chunks and passes them on; the
//! appender takes the parsed chunks back in turn, so in input order ([`Parsed`]).
//!
//! Parsing (JSON and the store's limits) is most of an ingest's work; one thread of it was
//! the whole run's critical path (issue 21). Memory stays bounded: every channel holds at
//! most one chunk, and a chunk at most [`CHUNK_LINES`] lines or [`CHUNK_BYTES_MAX`] bytes.

use std::io::{self, BufRead, BufReader, Read};
use std::ops::Range;
use std::sync::mpsc;

use selflog::{Config, Event, Timestamp};

use crate::interrupt::Interrupt;

/// The UTF-8 byte order mark, accepted (and ignored) at the start of the first line.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Lines the reading thread hands over at once (fewer when the input pauses).
const CHUNK_LINES: usize = 256;
/// Bytes of input lines the reading thread hands over at once, at most (plus one line):
/// 256 lines of 4 MiB would otherwise make a 1 GiB chunk.
const CHUNK_BYTES_MAX: usize = 8 << 20;
/// Parsing threads at most, whatever the number of cores: past the appender's own rate,
/// more only cost memory.
const PARSERS_MAX: usize = 4;
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
pub struct Chunk {
    pub lines: Vec<(u64, Result<Event, String>)>,
    pub paused: bool,
}

/// What the appender receives, in input order (and, to wake it, from the signal thread).
pub enum Msg {
    Lines(Chunk),
    /// Reading the input failed after the lines sent before.
    ReadFailed(io::Error),
    /// The input ended after the lines sent before.
    End,
    /// SIGINT or SIGTERM arrived: wakes an appender waiting for input.
    Interrupted,
}

/// Lines read but not yet parsed: their bytes one after another, and for each its number
/// and its place in the bytes, or why it was refused unread (too long).
struct RawChunk {
    bytes: Vec<u8>,
    lines: Vec<(u64, Result<Range<usize>, String>)>,
    paused: bool,
}

impl RawChunk {
    fn new() -> RawChunk {
        RawChunk {
            bytes: Vec::new(),
            lines: Vec::with_capacity(CHUNK_LINES),
            paused: false,
        }
    }
}

/// What the reading thread hands a parsing thread.
enum Raw {
    Lines(RawChunk),
    ReadFailed(io::Error),
    End,
}

/// The parsed chunks, taken from the parsing threads in the turn they were handed out, so
/// in input order. Ends after [`Msg::End`] or [`Msg::ReadFailed`]; a parsing thread that
/// stopped without either (it cannot, short of a panic) is reported as a failed read, never
/// taken for the end of the input.
pub struct Parsed {
    from: Vec<mpsc::Receiver<Msg>>,
    turn: usize,
    done: bool,
}

impl Iterator for Parsed {
    type Item = Msg;

    fn next(&mut self) -> Option<Msg> {
        if self.done {
            return None;
        }
        let msg = self.from[self.turn].recv().unwrap_or_else(|_| {
            Msg::ReadFailed(io::Error::other("a parsing thread stopped unexpectedly"))
        });
        self.turn = (self.turn + 1) % self.from.len();
        self.done = matches!(msg, Msg::End | Msg::ReadFailed(_));
        Some(msg)
    }
}

/// Starts the reading thread and the parsing threads over `input`. Returns the parsed
/// chunks in order, and senders the signal thread may use to wake the appender (one per
/// parsing thread: the appender waits on any one of them).
///
/// The threads are not joined: on a store failure or a signal the reader may be blocked
/// reading a pipe, and the process exits; otherwise they end once the input has.
pub fn start(
    input: Box<dyn Read + Send>,
    is_pipe: bool,
    interrupt: &Interrupt,
) -> io::Result<(Parsed, Vec<mpsc::SyncSender<Msg>>)> {
    let parsers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, PARSERS_MAX);
    start_parsers(input, is_pipe, interrupt, parsers)
}

/// [`start`] with `parsers` parsing threads.
fn start_parsers(
    input: Box<dyn Read + Send>,
    is_pipe: bool,
    interrupt: &Interrupt,
    parsers: usize,
) -> io::Result<(Parsed, Vec<mpsc::SyncSender<Msg>>)> {
    let mut to_parsers = Vec::with_capacity(parsers);
    let mut from_parsers = Vec::with_capacity(parsers);
    let mut wakes = Vec::with_capacity(parsers);
    for i in 0..parsers {
        let (raw_tx, raw_rx) = mpsc::sync_channel::<Raw>(1);
        let (tx, rx) = mpsc::sync_channel::<Msg>(1);
        wakes.push(tx.clone());
        std::thread::Builder::new()
            .name(format!("selflog-parse-{i}"))
            .spawn(move || parse_chunks(&raw_rx, &tx))?;
        to_parsers.push(raw_tx);
        from_parsers.push(rx);
    }
    let interrupt = interrupt.clone();
    std::thread::Builder::new()
        .name("selflog-read".into())
        .spawn(move || read_input(input, is_pipe, &interrupt, &to_parsers))?;
    let parsed = Parsed {
        from: from_parsers,
        turn: 0,
        done: false,
    };
    Ok((parsed, wakes))
}

/// A parsing thread: parses and checks each chunk's lines against the store's limits, off
/// the appending thread, so that a chunk's good events go to the store as one batch.
fn parse_chunks(rx: &mpsc::Receiver<Raw>, tx: &mpsc::SyncSender<Msg>) {
    let config = Config::default();
    for raw in rx {
        let msg = match raw {
            Raw::End => Msg::End,
            Raw::ReadFailed(e) => Msg::ReadFailed(e),
            Raw::Lines(chunk) => {
                let now = Timestamp::now();
                let lines = chunk
                    .lines
                    .into_iter()
                    .map(|(line_no, line)| {
                        let parsed = line.and_then(|range| {
                            selflog::jsonl::parse_line(&chunk.bytes[range])
                                .map_err(|e| e.to_string())
                                .and_then(|e| match e.validate(&config, now) {
                                    Ok(()) => Ok(e),
                                    Err(e) => Err(e.to_string()),
                                })
                        });
                        (line_no, parsed)
                    })
                    .collect();
                Msg::Lines(Chunk {
                    lines,
                    paused: chunk.paused,
                })
            }
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

/// The reading thread: splits `input` into lines and hands them out in chunks, in turn,
/// until the input ends, a read fails (handed on as the last message), a signal arrives or
/// the parsing threads are gone.
fn read_input(
    input: Box<dyn Read + Send>,
    is_pipe: bool,
    interrupt: &Interrupt,
    to: &[mpsc::SyncSender<Raw>],
) {
    let len_max = line_len_max();
    let mut lines = Lines::new(input, len_max);
    let mut chunk = RawChunk::new();
    let mut turn = 0;
    let mut send = |msg: Raw| {
        let sent = to[turn].send(msg).is_ok();
        turn = (turn + 1) % to.len();
        sent
    };
    loop {
        if interrupt.is_set() {
            // The appender stops at the flag; what it has not taken is not counted read.
            return;
        }
        let too_long = match lines.next_piece() {
            Err(e) => {
                if send(Raw::Lines(std::mem::replace(&mut chunk, RawChunk::new()))) {
                    send(Raw::ReadFailed(e));
                }
                return;
            }
            Ok(Piece::End) => {
                if send(Raw::Lines(std::mem::replace(&mut chunk, RawChunk::new()))) {
                    send(Raw::End);
                }
                return;
            }
            Ok(Piece::TooLong(line_no)) => {
                chunk.lines.push((
                    line_no,
                    Err(format!(
                        "is longer than the limit of {len_max} bytes per line (event data is at most {} bytes); skipped",
                        Config::default().data_len_max
                    )),
                ));
                true
            }
            Ok(Piece::Line(line_no, line)) => {
                let text = trim_line(line);
                // Editors on some systems begin a UTF-8 file with a byte order mark.
                let text = match text.strip_prefix(UTF8_BOM) {
                    Some(rest) if line_no == 1 => rest,
                    _ => text,
                };
                if !text.iter().all(u8::is_ascii_whitespace) {
                    let at = chunk.bytes.len();
                    chunk.bytes.extend_from_slice(text);
                    chunk.lines.push((line_no, Ok(at..chunk.bytes.len())));
                }
                false
            }
        };
        let paused = is_pipe && lines.drained();
        // A line over the limit is reported at once, before its rest is read.
        if paused
            || too_long
            || chunk.lines.len() == CHUNK_LINES
            || chunk.bytes.len() >= CHUNK_BYTES_MAX
        {
            let mut full = std::mem::replace(&mut chunk, RawChunk::new());
            full.paused = paused;
            if !send(Raw::Lines(full)) {
                return;
            }
        }
    }
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

    /// However many parsing threads take the chunks in turn, the appender gets every line
    /// back once, in input order, with its own outcome, and then the end.
    #[test]
    fn parsed_chunks_come_back_in_input_order() {
        let lines = 10_000u64;
        let mut input = String::new();
        for i in 1..=lines {
            if i.is_multiple_of(97) {
                input.push_str("{not json\n");
            } else if i.is_multiple_of(101) {
                input.push_str("   \n");
            } else {
                input.push_str(&format!(
                    "{{\"timestamp\": {i}, \"event_type\": \"t\", \"source\": \"s\", \"data\": {{\"n\": {i}}}}}\n"
                ));
            }
        }
        let interrupt = Interrupt::install().unwrap();
        for parsers in [1, 2, 3] {
            let (parsed, _wakes) = start_parsers(
                Box::new(io::Cursor::new(input.clone())),
                false,
                &interrupt,
                parsers,
            )
            .unwrap();
            let mut next = 1u64;
            let mut ended = false;
            for msg in parsed {
                match msg {
                    Msg::Lines(chunk) => {
                        for (line_no, result) in chunk.lines {
                            while next.is_multiple_of(101) && !next.is_multiple_of(97) {
                                next += 1; // blank lines are skipped
                            }
                            assert_eq!(line_no, next, "{parsers} parsers");
                            match result {
                                Ok(e) => assert_eq!(
                                    e.data.as_deref().map(serde_json::value::RawValue::get),
                                    Some(format!("{{\"n\": {line_no}}}").as_str())
                                ),
                                Err(why) => {
                                    assert!(line_no.is_multiple_of(97), "line {line_no}: {why}");
                                    assert!(why.contains("not valid JSON"), "{why}");
                                }
                            }
                            next += 1;
                        }
                    }
                    Msg::End => ended = true,
                    Msg::ReadFailed(e) => panic!("{e}"),
                    Msg::Interrupted => panic!("no signal was sent"),
                }
            }
            assert!(ended, "{parsers} parsers: the end is reported");
            assert_eq!(next, lines + 1, "{parsers} parsers: every line came back");
        }
    }
}
