//! `selflog replay`: stream events in id order as JSON Lines, for a restarting daemon or
//! learner to rebuild its state; with `--follow`, keep streaming as another process
//! appends, like `tail -f`.
//!
//! A follower ends with exit status 0 on SIGINT or SIGTERM (after committing `--cursor`
//! with `--commit` to what it wrote), and as soon as its stdout is closed: a write then
//! fails with EPIPE, and while it waits for events it polls stdout for the reader's
//! hang-up, so `replay --follow | head -1` ends without waiting for another event.
//! Writing to a file, a bar on stderr shows progress (on a terminal only).

use std::io::{self, Write as _};
use std::path::Path;
use std::time::Duration;

use selflog::{EventId, Timestamp};

use crate::interrupt::Interrupt;
use crate::time::{self, TimeArg};
use crate::{output, Outcome};

/// How often `--follow` looks for new events when it has caught up.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

#[derive(clap::Args)]
pub struct Args {
    /// Start at this event id.
    #[arg(long, value_name = "N", conflicts_with_all = ["since", "cursor"])]
    from_id: Option<u64>,
    /// Start after the position of this durable cursor.
    #[arg(long, value_name = "NAME")]
    cursor: Option<String>,
    /// Advance --cursor to the last event written, once stdout has accepted it.
    #[arg(long, requires = "cursor")]
    commit: bool,
    /// Only events with timestamp at or after T (the syntax of `inspect list --since`).
    #[arg(long, value_name = "T", value_parser = time::parse, allow_hyphen_values = true)]
    since: Option<TimeArg>,
    /// Keep streaming events as they are appended, until interrupted (exit status 0) or
    /// stdout is closed.
    #[arg(short = 'f', long)]
    follow: bool,
}

pub fn run(store_dir: &Path, args: &Args) -> Outcome {
    let since: Option<Timestamp> = time::resolve(args.since.as_ref())?;
    let interrupt = if args.follow {
        Some(Interrupt::install()?)
    } else {
        None
    };
    let store = crate::open_read_only(store_dir)?;
    let cursor = args
        .cursor
        .as_deref()
        .map(|name| store.cursor(name))
        .transpose()?;
    let mut next = match &cursor {
        Some(c) => EventId(c.position()?.map_or(1, |p| p.0 + 1)),
        None => EventId(args.from_id.unwrap_or(1)),
    };
    let bar = if !args.follow && output::stdout_is_file() {
        let mut q = store.query().ids(next, EventId(u64::MAX));
        if let Some(t) = since {
            q = q.since(t);
        }
        crate::progress::bar(q.count()?, "replaying", "events")
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut last_written: Option<EventId> = None;
    // Events are borrowed and each line is built in one reused buffer.
    let mut line = Vec::new();
    loop {
        let mut wrote = false;
        let mut scan = store.scan_from(next)?;
        while let Some(e) = scan.next_ref() {
            let e = e?;
            next = EventId(e.id.0 + 1);
            if since.is_some_and(|t| e.timestamp < t) {
                continue;
            }
            line.clear();
            selflog::jsonl::push_line(&mut line, &e);
            line.push(b'\n');
            out.write_all(&line).map_err(|e| output::write_err(&e))?;
            wrote = true;
            last_written = Some(e.id);
            bar.inc(1);
        }
        // Hand events over as soon as they are read; a consumer may be waiting for them.
        out.flush().map_err(|e| output::write_err(&e))?;
        if let (true, Some(c), Some(id)) = (args.commit, &cursor, last_written.take()) {
            c.commit(id)?;
        }
        if !args.follow {
            bar.finish_and_clear();
            return Ok(0);
        }
        if interrupt.as_ref().is_some_and(Interrupt::is_set) {
            return Ok(0);
        }
        if !wrote && output::wait_for_closed_stdout(FOLLOW_POLL) {
            return Ok(0);
        }
    }
}
