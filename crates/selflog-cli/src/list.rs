//! `selflog inspect list` and `inspect search`: events matching filters, printed in one of
//! the output modes (`-o short|json|jsonl|cat`), and `list -f`, which then keeps printing
//! new events as another process appends them, like `journalctl -f`.
//!
//! `search` exits 1 when nothing matched, like grep and ripgrep; `list` exits 0 either way.
//! `list -f` prints the newest N (10 unless `-n` says otherwise), oldest of them first,
//! then waits; it ends with exit status 0 on SIGINT (Ctrl-C) or SIGTERM and as soon as
//! stdout is closed (`| head`), without waiting for another event.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use selflog::{EventId, EventRef, Order, StoredEvent};

use crate::filter::FilterArgs;
use crate::interrupt::Interrupt;
use crate::output::{self, Mode, Table};
use crate::Outcome;

/// How long `list -f` waits between looks for new events.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Events `list` prints without `-n`.
const LIST_LIMIT_DEFAULT: u64 = 50;
/// Events `list -f` prints before following, without `-n` (as `journalctl -f`).
const FOLLOW_LIMIT_DEFAULT: u64 = 10;
/// Events `search` prints without `-n`.
const SEARCH_LIMIT_DEFAULT: u64 = 10;

/// How a listing shows its events: flags `list` and `search` share.
#[derive(clap::Args, Debug, Clone)]
pub struct ShowArgs {
    /// At most N events (list: 50, or 10 with -f; search: 10).
    #[arg(short = 'n', long = "limit", value_name = "N")]
    limit: Option<u64>,
    /// Reverse the order: oldest first (default: newest first).
    #[arg(short = 'r', long = "reverse", alias = "oldest-first")]
    reverse: bool,
    /// Output mode: short (a table), json (one array), jsonl (one event per line), cat
    /// (each event's data alone).
    #[arg(short = 'o', long = "output", value_enum, value_name = "MODE")]
    output: Option<Mode>,
    /// JSON Lines, one event per line (same as -o jsonl).
    #[arg(long, conflicts_with = "output")]
    json: bool,
}

impl ShowArgs {
    fn mode(&self) -> Mode {
        if self.json {
            Mode::Jsonl
        } else {
            self.output.unwrap_or_default()
        }
    }
}

/// Writes events in one output mode, batch by batch.
struct Printer<W: Write> {
    out: W,
    mode: Mode,
    table: Table,
    /// Rows of the current batch (short mode: a table needs them all for its widths).
    rows: Vec<StoredEvent>,
    /// Events written so far.
    count: u64,
    header_written: bool,
    line: Vec<u8>,
}

impl<W: Write> Printer<W> {
    fn new(out: W, mode: Mode, search: Option<&str>) -> Printer<W> {
        Printer {
            out,
            mode,
            table: Table::new(search),
            rows: Vec::new(),
            count: 0,
            header_written: false,
            line: Vec::new(),
        }
    }

    fn event(&mut self, e: &EventRef<'_>) -> io::Result<()> {
        self.line.clear();
        match self.mode {
            Mode::Short => self.rows.push(e.to_stored()),
            Mode::Jsonl => {
                selflog::jsonl::push_line(&mut self.line, e);
                self.line.push(b'\n');
            }
            Mode::Json => {
                self.line
                    .extend_from_slice(if self.count == 0 { b"[\n" } else { b",\n" });
                selflog::jsonl::push_line(&mut self.line, e);
            }
            Mode::Cat => {
                self.line
                    .extend_from_slice(output::cat_line(&e.to_stored()).as_bytes());
                self.line.push(b'\n');
            }
        }
        self.count += 1;
        self.out.write_all(&self.line)
    }

    /// Ends a batch: a table's rows are written now, the header before the first.
    fn batch_end(&mut self) -> io::Result<()> {
        if self.mode == Mode::Short && (!self.rows.is_empty() || !self.header_written) {
            let text = self.table.render(&self.rows, !self.header_written);
            self.header_written = true;
            self.rows.clear();
            self.out.write_all(text.as_bytes())?;
        }
        self.out.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.batch_end()?;
        if self.mode == Mode::Json {
            self.out
                .write_all(if self.count == 0 { b"[]\n" } else { b"\n]\n" })?;
        }
        self.out.flush()
    }
}

/// `inspect list`: `follow` is `-f`.
pub fn list(store_dir: &Path, filter: &FilterArgs, show: &ShowArgs, follow: bool) -> Outcome {
    if follow {
        return list_follow(store_dir, filter, show);
    }
    let limit = show.limit.unwrap_or(LIST_LIMIT_DEFAULT);
    print(store_dir, filter, show, None, limit).map(|_| 0)
}

/// `inspect search TEXT`: exit status 1 when nothing matched.
pub fn search(store_dir: &Path, filter: &FilterArgs, show: &ShowArgs, text: &str) -> Outcome {
    let limit = show.limit.unwrap_or(SEARCH_LIMIT_DEFAULT);
    let n = print(store_dir, filter, show, Some(text), limit)?;
    Ok(u8::from(n == 0))
}

/// Prints the matches; returns how many. A search that matched nothing prints nothing.
fn print(
    store_dir: &Path,
    filter: &FilterArgs,
    show: &ShowArgs,
    text: Option<&str>,
    limit: u64,
) -> Result<u64, crate::Failure> {
    let store = crate::open_read_only(store_dir)?;
    let mut q = filter.query(store)?.limit(limit).order(if show.reverse {
        Order::OldestFirst
    } else {
        Order::NewestFirst
    });
    if let Some(t) = text {
        q = q.text(t);
    }
    let w = |e: io::Error| output::write_err(&e);
    let mut printer = Printer::new(io::BufWriter::new(io::stdout().lock()), show.mode(), text);
    let mut events = q.run()?;
    while let Some(e) = events.next_ref() {
        printer.event(&e?).map_err(w)?;
    }
    if text.is_some() && printer.count == 0 {
        return Ok(0);
    }
    printer.finish().map_err(w)?;
    Ok(printer.count)
}

/// `inspect list -f`.
fn list_follow(store_dir: &Path, filter: &FilterArgs, show: &ShowArgs) -> Outcome {
    if show.mode() == Mode::Json {
        clap::Error::raw(
            clap::error::ErrorKind::ArgumentConflict,
            "-o json writes one array, which a follow never closes; use -o jsonl with -f\n",
        )
        .exit();
    }
    if show.reverse {
        clap::Error::raw(
            clap::error::ErrorKind::ArgumentConflict,
            "-f prints new events last; it cannot be combined with -r\n",
        )
        .exit();
    }
    let interrupt = Interrupt::install()?;
    let store = crate::open_read_only(store_dir)?;
    let w = |e: io::Error| output::write_err(&e);
    let mut printer = Printer::new(io::BufWriter::new(io::stdout().lock()), show.mode(), None);
    // Every id up to `seen` has been considered; new events have larger ids.
    let mut seen = last_id(store)?;
    let limit = show.limit.unwrap_or(FOLLOW_LIMIT_DEFAULT);
    let newest: Vec<StoredEvent> = filter
        .query(store)?
        .ids(EventId(1), EventId(seen.saturating_add(1)))
        .limit(limit)
        .run()?
        .collect::<selflog::Result<_>>()?;
    for e in newest.iter().rev() {
        printer.event(&e.as_event_ref()).map_err(w)?;
    }
    printer.batch_end().map_err(w)?;
    loop {
        if interrupt.is_set() || output::wait_for_closed_stdout(FOLLOW_POLL) {
            return Ok(0);
        }
        let last = last_id(store)?;
        if last <= seen {
            continue;
        }
        let mut events = filter
            .query(store)?
            .ids(EventId(seen + 1), EventId(last.saturating_add(1)))
            .order(Order::OldestFirst)
            .run()?;
        while let Some(e) = events.next_ref() {
            printer.event(&e?).map_err(w)?;
        }
        printer.batch_end().map_err(w)?;
        seen = last;
    }
}

/// The id of the newest committed event, 0 when there is none.
fn last_id(store: &selflog::Store) -> Result<u64, crate::Failure> {
    Ok(store
        .segments()?
        .iter()
        .filter_map(|s| s.ids.map(|(_, last)| last.0))
        .max()
        .unwrap_or(0))
}
