//! `selflog inspect ...`: read-only commands. They never create or modify anything, and
//! work while another process writes the store.

use std::io::{self, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use selflog::{EventId, StoredEvent};

use crate::export::ExportFormat;
use crate::filter::FilterArgs;
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
    /// Recent events, newest first.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// At most N events.
        #[arg(long, value_name = "N", default_value_t = 50)]
        limit: u64,
        /// JSON Lines: one event per line.
        #[arg(long)]
        json: bool,
    },
    /// Events whose type, action, source or data contain TEXT (ASCII case-insensitive).
    Search {
        /// The text to find.
        text: String,
        #[command(flatten)]
        filter: FilterArgs,
        /// At most N events.
        #[arg(long, value_name = "N", default_value_t = 10)]
        limit: u64,
        /// JSON Lines: one event per line.
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
        #[arg(long = "type", value_name = "TYPE")]
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
        /// Records at or after T (epoch seconds, RFC 3339 or an age like 2h).
        #[arg(long, value_name = "T", value_parser = crate::filter::parse_time)]
        since: Option<selflog::Timestamp>,
        /// Records before T.
        #[arg(long, value_name = "T", value_parser = crate::filter::parse_time)]
        until: Option<selflog::Timestamp>,
        /// JSON Lines: one record per line.
        #[arg(long)]
        json: bool,
    },
    /// One event by id.
    Get {
        /// The event id.
        id: u64,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Write events to FILE: `.json` (one array), `.jsonl` (JSON Lines), `-` (stdout, JSON Lines).
    Export {
        /// Destination; it appears only once complete, readable by its owner only (0600).
        file: PathBuf,
        #[command(flatten)]
        filter: FilterArgs,
        /// At most N events (default: all).
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
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
            limit,
            json,
        } => list(store_dir, filter, None, *limit, *json),
        Command::Search {
            text,
            filter,
            limit,
            json,
        } => list(store_dir, filter, Some(text), *limit, *json),
        Command::Get { id, json } => get(store_dir, *id, *json),
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
        Command::SystemStats { since, until, json } => {
            system_stats(store_dir, *since, *until, *json)
        }
        Command::Export {
            file,
            filter,
            limit,
            format,
            force,
        } => crate::export::run(store_dir, file, filter, *limit, *format, *force),
    }
}

fn list(
    store_dir: &Path,
    filter: &FilterArgs,
    text: Option<&str>,
    limit: u64,
    json: bool,
) -> Outcome {
    let store = crate::open_read_only(store_dir)?;
    let mut q = filter.query(&store)?.limit(limit);
    if let Some(t) = text {
        q = q.text(t);
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    if json {
        let mut events = q.run()?;
        let mut line = Vec::new();
        while let Some(e) = events.next_ref() {
            line.clear();
            selflog::jsonl::push_line(&mut line, &e?);
            line.push(b'\n');
            out.write_all(&line).map_err(|e| output::write_err(&e))?;
        }
    } else {
        let events: Vec<StoredEvent> = q.run()?.collect::<selflog::Result<_>>()?;
        let tty = io::stdout().is_terminal();
        let table = output::table(&events, tty, text);
        out.write_all(table.as_bytes())
            .map_err(|e| output::write_err(&e))?;
    }
    out.flush().map_err(|e| output::write_err(&e))?;
    Ok(0)
}

fn get(store_dir: &Path, id: u64, json: bool) -> Outcome {
    let store = crate::open_read_only(store_dir)?;
    let Some(e) = store.get(EventId(id))? else {
        return Err(Failure::hinted(
            format!("no event with id {id} in {}", store_dir.display()),
            "`selflog inspect stats` shows the id range",
        ));
    };
    let text = if json {
        selflog::jsonl::to_line(&e) + "\n"
    } else {
        output::detail(&e)
    };
    io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| output::write_err(&e))?;
    Ok(0)
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
        let v = serde_json::json!({
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
            "compressed_events": s.compressed_events,
            "data_raw_bytes": s.data_raw_bytes,
            "data_stored_bytes": s.data_stored_bytes,
            "compression_ratio": ratio,
            "duplicates_dropped": s.duplicates_unknown.is_none().then_some(s.duplicates_dropped),
            "events_last_hour": last_hour,
            "recent_events_per_second": recent_rate,
            "events_by_type": s.events_by_type,
        });
        writeln!(out, "{v}")
    } else {
        let span = match (s.first_timestamp, s.last_timestamp) {
            (Some(a), Some(b)) => format!("{} .. {}", output::rfc3339(a), output::rfc3339(b)),
            _ => "(empty)".to_owned(),
        };
        let mut text = format!(
            "store              {}\n\
             events             {}\n\
             time span          {span}\n\
             segments           {}\n\
             disk size          {} ({} of log)\n\
             bytes per event    {:.1}\n\
             compressed events  {} (data {} -> {}, ratio {ratio:.2})\n\
             duplicates dropped {}\n\
             recent rate        {last_hour} events in the last hour ({recent_rate:.2}/s)\n",
            store_dir.display(),
            s.total_events,
            s.segments,
            output::human_bytes(s.disk_bytes),
            output::human_bytes(s.log_bytes),
            s.bytes_per_event(),
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
    let report = selflog::verify(store_dir)?;
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
    if !json {
        writeln!(
            out,
            "{:<22} {:>21} {:>9} {:>10}  {:<6}  {:<47}  EXPIRES (30-day retention)",
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
                |(a, b)| format!("{} .. {}", output::local_time(a), output::local_time(b)),
            );
            let expires = expires.map_or_else(|| "- (active)".to_owned(), output::local_time);
            writeln!(
                out,
                "{file:<22} {ids:>21} {:>9} {:>10}  {:<6}  {range:<47}  {expires}",
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
    let mut out = io::BufWriter::new(io::stdout().lock());
    let w = |e: io::Error| output::write_err(&e);
    if !json {
        writeln!(
            out,
            "{:>8} {:>10} {:<24} {:>10}  {:<16} {:<23}  DATA",
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
                "{:>8} {:>10} {:<24} {:>10.3}  {:<16} {:<23}  {}",
                p.id,
                p.event_id.map_or_else(|| "-".to_owned(), |i| i.to_string()),
                p.pattern_type,
                p.confidence,
                p.embryo_id.as_deref().unwrap_or("-"),
                output::local_time(p.created),
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
    json: bool,
) -> Outcome {
    let store = crate::open_read_only(store_dir)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    let w = |e: io::Error| output::write_err(&e);
    if !json {
        writeln!(
            out,
            "{:<23} {:>12} {:>12} {:>8} {:>10} {:>11}",
            "TIME", "EVENTS", "EVENTS/S", "EMBRYOS", "FITNESS", "STORAGE MB"
        )
        .map_err(w)?;
    }
    for s in store.system_stats(since, until)? {
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
                "{:<23} {:>12} {:>12.1} {:>8} {:>10.3} {:>11.2}",
                output::local_time(s.timestamp),
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
