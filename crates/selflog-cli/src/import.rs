//! `selflog import-sqlite PATH`: migrates an old `SelFlow` `events.db` into the store.
//!
//! Events are read in id order; gzip-compressed `data_compressed` is decompressed. Into an
//! empty store the original ids are kept (gaps allowed), so event ids that patterns refer
//! to stay valid; into a non-empty store events get new ids. Importing the same database
//! again stores nothing twice (deduplication). The `processed` flags become the cursor
//! `processed`, at the last id before which every event was processed. Patterns and
//! system stats go to the pattern and stats streams (their old ids are not kept; the event
//! ids patterns refer to are).

use std::io::{self, IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rusqlite::{Connection, OpenFlags};
use selflog::{Appended, Config, Event, EventId, Store, Timestamp};

use crate::{output, Failure, Outcome};

#[derive(clap::Args)]
pub struct Args {
    /// The old `SelFlow` `SQLite` database (`data/events.db`).
    path: PathBuf,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

/// One row of the old `events` table.
struct Row {
    id: i64,
    timestamp: f64,
    event_type: String,
    action: Option<String>,
    source: String,
    data_json: Option<String>,
    data_compressed: Option<Vec<u8>>,
    processed: bool,
}

fn sql_failure(path: &Path, e: &rusqlite::Error) -> Failure {
    Failure::hinted(
        format!(
            "cannot read {} as a SelFlow events database: {e}",
            path.display()
        ),
        "pass the old system's events.db (schema: events, patterns, system_stats)",
    )
}

fn count(conn: &Connection, table: &str) -> u64 {
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
        r.get::<_, i64>(0)
    })
    .map_or(0, |n| u64::try_from(n).unwrap_or(0))
}

/// The data text of a row: decompressed when stored gzip-compressed.
fn data_text(row: &Row) -> Result<Option<String>, String> {
    if let Some(blob) = &row.data_compressed {
        let mut text = String::new();
        flate2::read::GzDecoder::new(blob.as_slice())
            .read_to_string(&mut text)
            .map_err(|e| format!("data_compressed is not gzip-compressed UTF-8: {e}"))?;
        return Ok(Some(text));
    }
    Ok(row.data_json.clone())
}

fn to_event(row: &Row) -> Result<Event, String> {
    let ts = Timestamp::from_secs_f64(row.timestamp)
        .ok_or_else(|| format!("timestamp {} is out of range", row.timestamp))?;
    let data = data_text(row)?.filter(|d| d.trim() != "null");
    Event::new(
        ts,
        row.event_type.clone(),
        row.action.as_deref(),
        row.source.clone(),
        data.as_deref(),
    )
    .map_err(|e| e.to_string())
}

pub fn run(store_dir: &Path, args: &Args) -> Outcome {
    let path = &args.path;
    if !path.is_file() {
        return Err(Failure::hinted(
            format!("{} is not a file", path.display()),
            "pass the path of the old system's events.db",
        ));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| sql_failure(path, &e))?;
    let total = count(&conn, "events");
    let mut stmt = conn
        .prepare(
            "SELECT id, timestamp, event_type, action, source, data_json, data_compressed, processed \
             FROM events ORDER BY id",
        )
        .map_err(|e| sql_failure(path, &e))?;
    let store = Store::open(store_dir, Config::default())?;
    let keep_ids = store.stats()?.total_events == 0;
    let bar = if io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("importing [{bar:40}] {pos}/{len} events, eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let rows = stmt
        .query_map([], |r| {
            Ok(Row {
                id: r.get(0)?,
                timestamp: r.get(1)?,
                event_type: r.get(2)?,
                action: r.get(3)?,
                source: r.get(4)?,
                data_json: r.get(5)?,
                data_compressed: r.get(6)?,
                processed: r.get::<_, Option<bool>>(7)?.unwrap_or(false),
            })
        })
        .map_err(|e| sql_failure(path, &e))?;
    let summary = import_rows(&store, rows, keep_ids, &bar, path)?;
    let Summary {
        imported,
        duplicates,
        rejected,
        processed_prefix,
    } = summary;
    bar.finish_and_clear();
    store.flush()?;
    if let Some(id) = processed_prefix {
        store.cursor("processed")?.commit(id)?;
    }
    let (patterns, patterns_rejected) = import_patterns(&conn, &store, path)?;
    let stats_rows = import_stats(&conn, &store, path)?;
    store.close()?;
    let mut out = io::stdout().lock();
    let res = if args.json {
        writeln!(
            out,
            "{}",
            serde_json::json!({
                "imported": imported,
                "duplicates": duplicates,
                "rejected": rejected,
                "processed_cursor": processed_prefix.map(|i| i.0),
                "patterns": patterns,
                "patterns_rejected": patterns_rejected,
                "system_stats": stats_rows,
            })
        )
    } else {
        writeln!(
            out,
            "imported {imported} events from {} ({duplicates} duplicates, {rejected} rejected), {patterns} patterns, {stats_rows} system stats; cursor `processed` at {}",
            path.display(),
            processed_prefix.map_or_else(|| "none".to_owned(), |i| i.to_string())
        )
    };
    res.map_err(|e| output::write_err(&e))?;
    Ok(u8::from(rejected + patterns_rejected > 0))
}

/// What an import did.
struct Summary {
    imported: u64,
    duplicates: u64,
    rejected: u64,
    processed_prefix: Option<EventId>,
}

/// Appends every row, keeping original ids when `keep_ids`; reports bad rows on stderr.
fn import_rows(
    store: &Store,
    rows: impl Iterator<Item = rusqlite::Result<Row>>,
    keep_ids: bool,
    bar: &ProgressBar,
    path: &Path,
) -> Result<Summary, Failure> {
    let (mut imported, mut duplicates, mut rejected) = (0u64, 0u64, 0u64);
    // The processed flags become one cursor: the last id before which all were processed.
    let mut processed_prefix: Option<EventId> = None;
    let mut prefix_open = true;
    for row in rows {
        let row = row.map_err(|e| sql_failure(path, &e))?;
        bar.inc(1);
        let appended = match to_event(&row) {
            Ok(event) if keep_ids => match u64::try_from(row.id) {
                Ok(id) if id > 0 => store.append_with_id(EventId(id), event),
                _ => Err(selflog::Error::InvalidEvent {
                    field: "id",
                    reason: format!("{} is not a positive id", row.id),
                }),
            },
            Ok(event) => store.append(event),
            Err(why) => {
                rejected += 1;
                eprintln!("selflog: events row id {}: {why}; skipped", row.id);
                prefix_open = false;
                continue;
            }
        };
        let id = match appended {
            Ok(Appended::New(id)) => {
                imported += 1;
                id
            }
            Ok(Appended::Duplicate(id)) => {
                duplicates += 1;
                id
            }
            Err(e @ (selflog::Error::InvalidEvent { .. } | selflog::Error::TooLarge { .. })) => {
                rejected += 1;
                eprintln!("selflog: events row id {}: {e}; skipped", row.id);
                prefix_open = false;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if prefix_open && row.processed {
            processed_prefix = Some(processed_prefix.map_or(id, |p| p.max(id)));
        } else {
            prefix_open = false;
        }
    }
    Ok(Summary {
        imported,
        duplicates,
        rejected,
        processed_prefix,
    })
}

/// The old `DATETIME DEFAULT CURRENT_TIMESTAMP` text (UTC), or now when absent.
fn created_at(text: Option<&str>) -> Timestamp {
    text.and_then(|t| chrono::NaiveDateTime::parse_from_str(t.trim(), "%Y-%m-%d %H:%M:%S").ok())
        .map_or_else(Timestamp::now, |d| {
            Timestamp(d.and_utc().timestamp_micros())
        })
}

/// Copies the `patterns` table into the pattern stream; returns (imported, rejected).
fn import_patterns(conn: &Connection, store: &Store, path: &Path) -> Result<(u64, u64), Failure> {
    let mut stmt = conn
        .prepare("SELECT id, event_id, pattern_type, confidence, pattern_data, embryo_id, created_at FROM patterns ORDER BY id")
        .map_err(|e| sql_failure(path, &e))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, f64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })
        .map_err(|e| sql_failure(path, &e))?;
    let (mut imported, mut rejected) = (0, 0);
    for row in rows {
        let (id, event_id, kind, confidence, data, embryo, created) =
            row.map_err(|e| sql_failure(path, &e))?;
        let event_id = event_id.and_then(|e| u64::try_from(e).ok()).map(EventId);
        let pattern = selflog::NewPattern {
            event_id,
            pattern_type: kind,
            confidence,
            pattern_data: data,
            embryo_id: embryo,
            created: created_at(created.as_deref()),
        };
        match store.record_pattern(&pattern) {
            Ok(_) => imported += 1,
            Err(e @ (selflog::Error::InvalidEvent { .. } | selflog::Error::TooLarge { .. })) => {
                rejected += 1;
                eprintln!("selflog: patterns row id {id}: {e}; skipped");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((imported, rejected))
}

/// Copies the `system_stats` table into the stats stream; NULL columns become 0.
fn import_stats(conn: &Connection, store: &Store, path: &Path) -> Result<u64, Failure> {
    let mut stmt = conn
        .prepare(
            "SELECT timestamp, total_events, events_per_second, active_embryos, avg_fitness, storage_mb \
             FROM system_stats ORDER BY id",
        )
        .map_err(|e| sql_failure(path, &e))?;
    let rows = stmt
        .query_map([], |r| {
            Ok(selflog::SystemStats {
                timestamp: Timestamp::from_secs_f64(r.get(0)?).unwrap_or_default(),
                total_events: r
                    .get::<_, Option<i64>>(1)?
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
                events_per_second: r.get::<_, Option<f64>>(2)?.unwrap_or(0.0),
                active_embryos: r
                    .get::<_, Option<i64>>(3)?
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
                avg_fitness: r.get::<_, Option<f64>>(4)?.unwrap_or(0.0),
                storage_mb: r.get::<_, Option<f64>>(5)?.unwrap_or(0.0),
            })
        })
        .map_err(|e| sql_failure(path, &e))?;
    let mut imported = 0;
    for row in rows {
        store.record_system_stats(&row.map_err(|e| sql_failure(path, &e))?)?;
        imported += 1;
    }
    store.flush()?;
    Ok(imported)
}
