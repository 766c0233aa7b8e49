//! `selflog replay`: stream events in id order as JSON Lines, for a restarting daemon or
//! learner to rebuild its state; with `--follow`, keep streaming as another process
//! appends, like `tail -f`.

use std::io::{self, Write as _};
use std::path::Path;
use std::time::Duration;

use selflog::{EventId, Timestamp};

use crate::filter::parse_time;
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
    /// Only events with timestamp at or after T (epoch seconds, RFC 3339 or an age like 2h).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    since: Option<Timestamp>,
    /// Keep streaming events as they are appended, until interrupted.
    #[arg(long)]
    follow: bool,
}

pub fn run(store_dir: &Path, args: &Args) -> Outcome {
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
            if args.since.is_some_and(|t| e.timestamp < t) {
                continue;
            }
            line.clear();
            selflog::jsonl::push_line(&mut line, &e);
            line.push(b'\n');
            out.write_all(&line).map_err(|e| output::write_err(&e))?;
            wrote = true;
            last_written = Some(e.id);
        }
        // Hand events over as soon as they are read; a consumer may be waiting for them.
        out.flush().map_err(|e| output::write_err(&e))?;
        if let (true, Some(c), Some(id)) = (args.commit, &cursor, last_written.take()) {
            c.commit(id)?;
        }
        if !args.follow {
            return Ok(0);
        }
        if !wrote {
            std::thread::sleep(FOLLOW_POLL);
        }
    }
}
