//! `selflog inspect ...`: read-only commands. They never create or modify anything, and
//! work while another process writes the store.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use selflog::EventId;

use crate::export::ExportFormat;
use crate::filter::FilterArgs;
use crate::list::ShowArgs;
use crate::time::{self, TimeArg};
use crate::{output, Failure, Outcome};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Totals, time span, size on disk, compression and events per type.
    ///
    /// A damaged `counters` file does not fail it: the duplicates dropped are shown as
    /// `unknown (counters damaged)` (`null` in JSON), with one stderr line
    /// `selflog: warning: duplicates dropped unknown: <why>`; exit status 0.
    Stats {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Check every frame's checksum and every segment's metadata, then `counters`, every
    /// cursor file, the dedup window image and the pattern and stats streams.
    ///
    /// Prints one line per problem, `FILE: byte OFFSET: WHAT`, then a summary line
    /// (`sound: ...` or `DAMAGED: ...`). Exit status 1 when there is any problem, else 0.
    Verify {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Recent events, newest first; with -f, then new events as they are appended.
    #[command(
        after_help = "-f prints the newest 10 events (or -n N), oldest of them first, then \
each new event as another process appends it, like `journalctl -f`; Ctrl-C ends it with exit \
status 0, as does closing its stdout (`| head`)."
    )]
    List {
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        show: ShowArgs,
        /// Follow: after the newest events, print new ones as they are appended.
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Events whose type, action, source or data contain TEXT (ASCII case-insensitive).
    #[command(
        after_help = "Exit status: 0 when something matched, 1 when nothing did (and \
nothing is printed), like grep and ripgrep; 2 on a usage error."
    )]
    Search {
        /// The text to find.
        text: String,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        show: ShowArgs,
    },
    /// How many events match, or how many per type, source, action, hour or day, with a
    /// histogram.
    #[command(
        after_help = "Without --by: the number alone. With --by: one row per group \
(largest first; hours and days in time order, in local time or UTC with --utc), its share \
and a bar, then the total. --json: {\"total\": N} or {\"by\": \"type\", \"total\": N, \
\"counts\": [{\"type\": \"file_op\", \"count\": N}, ...]}, with \"start\" (epoch seconds) \
for hours and days and null for events without an action."
    )]
    Count {
        /// Group by this field or time bucket.
        #[arg(long, value_enum, value_name = "FIELD")]
        by: Option<crate::count::By>,
        #[command(flatten)]
        filter: FilterArgs,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// One row per segment file: id range, time range, events, bytes, sealed or active.
    Segments {
        /// JSON Lines: one segment per line.
        #[arg(long)]
        json: bool,
    },
    /// The durable consumer cursors and how many events each has left to process.
    ///
    /// The sound cursors go to stdout; each damaged cursor file is one stderr line
    /// `selflog: cursor "NAME" damaged: <what, with the file>`. Exit status 1 when any
    /// cursor is damaged (after listing the sound ones), else 0.
    Cursors {
        /// JSON Lines: one cursor per line.
        #[arg(long)]
        json: bool,
    },
    /// Patterns learners recorded (the old patterns table).
    Patterns {
        /// About this event id.
        #[arg(long = "event", value_name = "ID")]
        event: Option<u64>,
        /// Of this pattern type.
        #[arg(short = 't', long = "type", value_name = "TYPE")]
        pattern_type: Option<String>,
        /// Found by this embryo.
        #[arg(long, value_name = "E")]
        embryo: Option<String>,
        /// With at least this confidence.
        #[arg(long, value_name = "C")]
        min_confidence: Option<f64>,
        /// JSON Lines: one pattern per line.
        #[arg(long)]
        json: bool,
    },
    /// Periodic system statistics records (the old `system_stats` table).
    SystemStats {
        /// Records at or after T (the syntax of `inspect list --since`).
        #[arg(long, value_name = "T", value_parser = crate::time::parse, allow_hyphen_values = true)]
        since: Option<TimeArg>,
        /// Records before T.
        #[arg(long, value_name = "T", value_parser = crate::time::parse, allow_hyphen_values = true)]
        until: Option<TimeArg>,
        /// The newest N records (default: all).
        #[arg(short = 'n', long, value_name = "N")]
        limit: Option<usize>,
        /// JSON Lines: one record per line.
        #[arg(long)]
        json: bool,
    },
    /// One event by id.
    Get {
        /// The event id.
        id: u64,
        /// Output mode: short (field by field), json or jsonl (one JSON object on one
        /// line), cat (the data alone).
        #[arg(short = 'o', long = "output", value_enum, value_name = "MODE")]
        output: Option<output::Mode>,
        /// One JSON object (same as -o json).
        #[arg(long, conflicts_with = "output")]
        json: bool,
    },
    /// Write events to FILE: `.json` (one array), `.jsonl` (JSON Lines), `-` (stdout, JSON Lines).
    ///
    /// Events are written oldest first (by timestamp; -r: newest first). With -n N, the
    /// newest N matching events, still written oldest first unless -r.
    Export {
        /// Destination; it appears only once complete, readable by its owner only (0600).
        file: PathBuf,
        #[command(flatten)]
        filter: FilterArgs,
        /// Only the newest N matching events (default: all).
        #[arg(short = 'n', long, value_name = "N")]
        limit: Option<u64>,
        /// Newest first (default: oldest first).
        #[arg(short = 'r', long)]
        reverse: bool,
        /// Override the format the file name implies.
        #[arg(long, value_enum)]
        format: Option<ExportFormat>,
        /// Replace FILE if it exists (without this, an existing FILE is an error).
        #[arg(long)]
        force: bool,
    },
}

pub fn run(store_dir: &Path, cmd: &Command) -> Outcome {
    match cmd {
        Command::Stats { json } => stats(store_dir, *json),
        Command::Verify { json } => verify(store_dir, *json),
        Command::List {
            filter,
            show,
            follow,
        } => crate::list::list(store_dir, filter, show, *follow),
        Command::Search { text, filter, show } => {
            crate::list::search(store_dir, filter, show, text)
        }
        Command::Count { by, filter, json } => crate::count::run(store_dir, filter, *by, *json),
        Command::Get { id, output, json } => {
            let mode = if *json {
                output::Mode::Json
            } else {
                output.unwrap_or_default()
            };
            get(store_dir, *id, mode)
        }
        Command::Segments { json } => segments(store_dir, *json),
        Command::Cursors { json } => cursors(store_dir, *json),
        Command::Patterns {
            event,
            pattern_type,
            embryo,
            min_confidence,
            json,
        } => {
            let filter = selflog::PatternFilter {
                event_id: event.map(EventId),
                pattern_type: pattern_type.clone(),
                embryo_id: embryo.clone(),
                min_confidence: *min_confidence,
                ..selflog::PatternFilter::default()
            };
            patterns(store_dir, &filter, *json)
        }
        Command::SystemStats {
            since,
            until,
            limit,
            json,
        } => system_stats(
            store_dir,
            crate::time::resolve(since.as_ref())?,
            crate::time::resolve(until.as_ref())?,
            *limit,
            *json,
        ),
        Command::Export {
            file,
            filter,
            limit,
            reverse,
            format,
            force,
        } => crate::export::run(
            store_dir,
            file,
            filter,
            crate::export::Selection {
                limit: *limit,
                reverse: *reverse,
            },
            *format,
            *force,
        ),
    }
}

fn get(store_dir: &Path, id: u64, mode: output::Mode) -> Outcome {
    let store = crate::open_read_only(store_dir)?;
    let Some(e) = store.get(EventId(id))? else {
        return Err(Failure::hinted(
            format!("no event with id {id} in {}", store_dir.display()),
            "`selflog inspect stats` shows the id range",
        ));
    };
    let text = match mode {
        output::Mode::Json | output::Mode::Jsonl => selflog::jsonl::to_line(&e) + "\n",
        output::Mode::Cat => output::cat_line(&e) + "\n",
        output::Mode::Short => output::detail(&e),
    };
    io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| output::write_err(&e))?;
    Ok(0)
}

/// The `inspect stats --json` object.
fn stats_json(
    store_dir: &Path,
    s: &selflog::StoreStats,
    ratio: f64,
    last_hour: u64,
    recent_rate: f64,
) -> serde_json::Value {
    serde_json::json!({
        "store": store_dir.display().to_string(),
        "total_events": s.total_events,
        "first_timestamp": s.first_timestamp.map(output::secs),
        "last_timestamp": s.last_timestamp.map(output::secs),
        "first_id": s.first_id.map(|i| i.0),
        "last_id": s.last_id.map(|i| i.0),
        "segments": s.segments,
        "disk_bytes": s.disk_bytes,
        "log_bytes": s.log_bytes,
        "bytes_per_event": s.bytes_per_event(),
        "sealed_events": s.sealed_events,
        "sealed_bytes": s.sealed_bytes,
        "sealed_bytes_per_event": s.sealed_bytes_per_event(),
        "sealed_segments": s.sealed_segments,
        "compacted_segments": s.compacted_segments,
        "active_events": s.active_events,
        "active_bytes": s.active_bytes,
        "active_bytes_per_event": s.active_bytes_per_event(),
        "compressed_events": s.compressed_events,
        "data_raw_bytes": s.data_raw_bytes,
        "data_stored_bytes": s.data_stored_bytes,
        "compression_ratio": ratio,
        "duplicates_dropped": s.duplicates_unknown.is_none().then_some(s.duplicates_dropped),
        "events_last_hour": last_hour,
        "recent_events_per_second": recent_rate,
        "events_by_type": s.events_by_type,
    })
}

fn stats(store_dir: &Path, json: bool) -> Outcome {
    let store = crate::open_read_only(store_dir)?;
    let s = store.stats()?;
    if let Some(why) = &s.duplicates_unknown {
        eprintln!("selflog: warning: duplicates dropped unknown: {why}");
    }
    // Recent rate: events whose timestamp falls in the last hour, per second.
    let hour = std::time::Duration::from_hours(1);
    let last_hour = store
        .query()
        .since(selflog::Timestamp::now().saturating_sub(hour))
        .count()?;
    #[expect(clippy::cast_precision_loss, reason = "a rate for display")]
    let recent_rate = last_hour as f64 / 3600.0;
    #[expect(clippy::cast_precision_loss, reason = "a ratio for display")]
    let ratio = if s.data_stored_bytes == 0 {
        1.0
    } else {
        s.data_raw_bytes as f64 / s.data_stored_bytes as f64
    };
    let mut out = io::stdout().lock();
    let res = if json {
        let v = stats_json(store_dir, &s, ratio, last_hour, recent_rate);
        writeln!(out, "{v}")
    } else {
        let span = match (s.first_timestamp, s.last_timestamp) {
            (Some(a), Some(b)) => format!("{} .. {}", time::display(a), time::display(b)),
            _ => "(empty)".to_owned(),
        };
        let sealed = if s.sealed_segments == 0 {
            "none yet".to_owned()
        } else {
            format!(
                "{:.1} in {} segments, {} compacted",
                s.sealed_bytes_per_event(),
                s.sealed_segments,
                s.compacted_segments
            )
        };
        let mut text = format!(
            "store              {}\n\
             events             {}\n\
             time span          {span}\n\
             segments           {}\n\
             disk size          {} ({} of log)\n\
             bytes per event    {:.1} (sealed: {sealed}; active: {:.1})\n\
             compressed events  {} (data {} -> {}, ratio {ratio:.2})\n\
             duplicates dropped {}\n\
             recent rate        {last_hour} events in the last hour ({recent_rate:.2}/s)\n",
            store_dir.display(),
            s.total_events,
            s.segments,
            output::human_bytes(s.disk_bytes),
            output::human_bytes(s.log_bytes),
            s.bytes_per_event(),
            s.active_bytes_per_event(),
            s.compressed_events,
            output::human_bytes(s.data_raw_bytes),
            output::human_bytes(s.data_stored_bytes),
            if s.duplicates_unknown.is_some() {
                "unknown (counters damaged)".to_owned()
            } else {
                s.duplicates_dropped.to_string()
            },
        );
        if !s.events_by_type.is_empty() {
            let mut rows: Vec<_> = s.events_by_type.iter().collect();
            rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let width = rows
                .iter()
                .map(|(t, _)| t.chars().count())
                .max()
                .unwrap_or(4)
                .max(4);
            text.push_str(&format!(
                "\n{:<width$}  {:>12}  {:>6}\n",
                "type", "events", "share"
            ));
            for (t, n) in rows {
                #[expect(clippy::cast_precision_loss, reason = "a share for display")]
                let share = *n as f64 * 100.0 / s.total_events as f64;
                text.push_str(&format!("{t:<width$}  {n:>12}  {share:>5.1}%\n"));
            }
        }
        out.write_all(text.as_bytes())
    };
    res.map_err(|e| output::write_err(&e))?;
    Ok(0)
}

fn verify(store_dir: &Path, json: bool) -> Outcome {
    let spinner =
        crate::progress::spinner(format!("verifying every frame of {}", store_dir.display()));
    let report = selflog::verify(store_dir);
    spinner.finish_and_clear();
    let report = report?;
    let mut out = io::stdout().lock();
    let res = if json {
        let problems: Vec<_> = report
            .problems
            .iter()
            .map(|p| serde_json::json!({"file": p.path.display().to_string(), "offset": p.offset, "problem": p.what}))
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::json!({
                "sound": report.problems.is_empty(),
                "segments": report.segments,
                "events": report.events,
                "bytes_checked": report.bytes_checked,
                "torn_tail_bytes": report.torn_tail_bytes,
                "problems": problems,
            })
        )
    } else {
        let mut text = String::new();
        for p in &report.problems {
            text.push_str(&format!(
                "{}: byte {}: {}\n",
                p.path.display(),
                p.offset,
                p.what
            ));
        }
        text.push_str(&format!(
            "{}: {} segments, {} events, {} checked",
            if report.problems.is_empty() {
                "sound"
            } else {
                "DAMAGED"
            },
            report.segments,
            report.events,
            output::human_bytes(report.bytes_checked),
        ));
        if report.torn_tail_bytes > 0 {
            text.push_str(&format!(
                "; {} past the committed end (left by a killed writer, never acknowledged, not damage)",
                output::human_bytes(report.torn_tail_bytes)
            ));
        }
        text.push('\n');
        out.write_all(text.as_bytes())
    };
    res.map_err(|e| output::write_err(&e))?;
    if report.problems.is_empty() {
        Ok(0)
    } else {
        drop(out);
        Err(Failure::hinted(
            format!(
                "{} problems found in {}",
                report.problems.len(),
                store_dir.display()
            ),
            "each line names a damaged file and what its damage costs; `selflog salvage --to DIR` \
             copies every intact event into a new store",
        ))
    }
}

/// Default retention age: a sealed segment whose newest event is older than this is
/// eligible for deletion.
const RETENTION_DEFAULT: std::time::Duration = std::time::Duration::from_hours(30 * 24);

fn segments(store_dir: &Path, json: bool) -> Outcome {
    let store = crate::open_read_only(store_dir)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    let w = |e: io::Error| output::write_err(&e);
    let segs = store.segments()?;
    let rw = 2 * time::display_width() + 4;
    if !json {
        writeln!(
            out,
            "{:<22} {:>21} {:>9} {:>10}  {:<6}  {:<rw$}  EXPIRES (30-day retention)",
            "FILE", "IDS", "EVENTS", "BYTES", "STATE", "TIME RANGE"
        )
        .map_err(w)?;
    }
    for s in segs {
        let file = s
            .path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let expires = s
            .time_range
            .filter(|_| s.sealed)
            .map(|(_, hi)| hi.saturating_add(RETENTION_DEFAULT));
        if json {
            let v = serde_json::json!({
                "file": file,
                "segment_id": s.segment_id,
                "first_id": s.ids.map(|(a, _)| a.0),
                "last_id": s.ids.map(|(_, b)| b.0),
                "first_timestamp": s.time_range.map(|(a, _)| output::secs(a)),
                "last_timestamp": s.time_range.map(|(_, b)| output::secs(b)),
                "events": s.events,
                "bytes": s.file_len,
                "committed_bytes": s.committed_len,
                "sealed": s.sealed,
                "expires": expires.map(output::secs),
            });
            writeln!(out, "{v}").map_err(w)?;
        } else {
            let ids = s
                .ids
                .map_or_else(|| "-".to_owned(), |(a, b)| format!("{a}..{b}"));
            let range = s.time_range.map_or_else(
                || "-".to_owned(),
                |(a, b)| format!("{} .. {}", time::display(a), time::display(b)),
            );
            let expires = expires.map_or_else(|| "- (active)".to_owned(), time::display);
            writeln!(
                out,
                "{file:<22} {ids:>21} {:>9} {:>10}  {:<6}  {range:<rw$}  {expires}",
                s.events,
                output::human_bytes(s.file_len),
                if s.sealed { "sealed" } else { "active" },
            )
            .map_err(w)?;
        }
    }
    out.flush().map_err(w)?;
    Ok(0)
}

fn cursors(store_dir: &Path, json: bool) -> Outcome {
    let store = crate::open_read_only(store_dir)?;
    let segs = store.segments()?;
    // Exact even with id gaps (imports): whole segments by their counts, the one the
    // cursor falls in by counting.
    let unprocessed = |pos: u64| -> selflog::Result<u64> {
        let mut n = 0;
        for s in &segs {
            match s.ids {
                Some((first, _)) if first.0 > pos => n += s.events,
                Some((_, last)) if last.0 > pos => {
                    n += store
                        .query()
                        .ids(EventId(pos + 1), EventId(last.0 + 1))
                        .count()?;
                }
                _ => {}
            }
        }
        Ok(n)
    };
    let mut out = io::BufWriter::new(io::stdout().lock());
    let w = |e: io::Error| output::write_err(&e);
    let list = store.cursors()?;
    for d in &list.damaged {
        eprintln!("selflog: cursor {:?} damaged: {}", d.name, d.error);
    }
    if !json {
        writeln!(
            out,
            "{:<32} {:>12} {:>12}",
            "CURSOR", "POSITION", "UNPROCESSED"
        )
        .map_err(w)?;
    }
    for (name, id) in &list.sound {
        let behind = unprocessed(id.0)?;
        if json {
            writeln!(
                out,
                "{}",
                serde_json::json!({"name": name, "position": id.0, "unprocessed": behind})
            )
            .map_err(w)?;
        } else {
            writeln!(out, "{name:<32} {:>12} {behind:>12}", id.0).map_err(w)?;
        }
    }
    out.flush().map_err(w)?;
    if list.damaged.is_empty() {
        Ok(0)
    } else {
        drop(out);
        Err(Failure::hinted(
            format!(
                "{} of {} cursors damaged in {}",
                list.damaged.len(),
                list.damaged.len() + list.sound.len(),
                store_dir.display()
            ),
            "the consumer's next commit (`Cursor::commit`) rewrites a damaged cursor; removing its \
             file makes that consumer start over from the first event",
        ))
    }
}

fn patterns(store_dir: &Path, filter: &selflog::PatternFilter, json: bool) -> Outcome {
    let store = crate::open_read_only(store_dir)?;
    let tw = time::display_width();
    let mut out = io::BufWriter::new(io::stdout().lock());
    let w = |e: io::Error| output::write_err(&e);
    if !json {
        writeln!(
            out,
            "{:>8} {:>10} {:<24} {:>10}  {:<16} {:<tw$}  DATA",
            "ID", "EVENT", "TYPE", "CONFIDENCE", "EMBRYO", "CREATED"
        )
        .map_err(w)?;
    }
    for p in store.patterns(filter)? {
        if json {
            let data: serde_json::Value =
                serde_json::from_str(&p.pattern_data).unwrap_or(serde_json::Value::Null);
            let v = serde_json::json!({
                "id": p.id,
                "event_id": p.event_id.map(|i| i.0),
                "pattern_type": p.pattern_type,
                "confidence": p.confidence,
                "pattern_data": data,
                "embryo_id": p.embryo_id,
                "created": output::secs(p.created),
            });
            writeln!(out, "{v}").map_err(w)?;
        } else {
            writeln!(
                out,
                "{:>8} {:>10} {:<24} {:>10.3}  {:<16} {:<tw$}  {}",
                p.id,
                p.event_id.map_or_else(|| "-".to_owned(), |i| i.to_string()),
                p.pattern_type,
                p.confidence,
                p.embryo_id.as_deref().unwrap_or("-"),
                time::display(p.created),
                p.pattern_data
            )
            .map_err(w)?;
        }
    }
    out.flush().map_err(w)?;
    Ok(0)
}

fn system_stats(
    store_dir: &Path,
    since: Option<selflog::Timestamp>,
    until: Option<selflog::Timestamp>,
    limit: Option<usize>,
    json: bool,
) -> Outcome {
    let store = crate::open_read_only(store_dir)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    let w = |e: io::Error| output::write_err(&e);
    let tw = time::display_width();
    if !json {
        writeln!(
            out,
            "{:<tw$} {:>12} {:>12} {:>8} {:>10} {:>11}",
            "TIME", "EVENTS", "EVENTS/S", "EMBRYOS", "FITNESS", "STORAGE MB"
        )
        .map_err(w)?;
    }
    let mut records = store.system_stats(since, until)?;
    if let Some(n) = limit {
        records.drain(..records.len().saturating_sub(n));
    }
    for s in records {
        if json {
            let v = serde_json::json!({
                "timestamp": output::secs(s.timestamp),
                "total_events": s.total_events,
                "events_per_second": s.events_per_second,
                "active_embryos": s.active_embryos,
                "avg_fitness": s.avg_fitness,
                "storage_mb": s.storage_mb,
            });
            writeln!(out, "{v}").map_err(w)?;
        } else {
            writeln!(
                out,
                "{:<tw$} {:>12} {:>12.1} {:>8} {:>10.3} {:>11.2}",
                time::display(s.timestamp),
                s.total_events,
                s.events_per_second,
                s.active_embryos,
                s.avg_fitness,
                s.storage_mb
            )
            .map_err(w)?;
        }
    }
    out.flush().map_err(w)?;
    Ok(0)
}
