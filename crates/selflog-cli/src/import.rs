//! `selflog import-sqlite PATH`: migrates an old `SelFlow` `events.db` into the store.
//!
//! Events are read in id order; gzip-compressed `data_compressed` is decompressed (at most
//! the store's data limit, so a compressed bomb cannot take memory). Into an empty store, or
//! one whose ids all lie below the database's, the original ids are kept (gaps allowed).
//! Otherwise the ids would collide, and the events get new ids after the store's: ingest
//! keeps the mapping old id -> new id (in runs, so it stays small) and the patterns'
//! `event_id`s follow it, so every pattern stays on its event; a pattern whose event is not
//! in the database then loses its `event_id` (the store's event with that id is another
//! one). The summary says which happened. Importing the same database again stores nothing
//! twice (deduplication): duplicates map to the events already stored. The `processed`
//! flags become the cursor `processed`, at the last id before which every event was
//! processed. Patterns and system stats go to the pattern and stats streams (their own old
//! ids are not kept).

use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use rusqlite::{Connection, OpenFlags};
use selflog::{Appended, Config, Event, EventId, Store, Timestamp};

use crate::{output, Failure, Outcome};

#[derive(clap::Args)]
#[command(
    after_help = "Ids: into an empty store, or one whose ids are all below the database's, \
the original ids are kept. Otherwise they would collide with the store's: events get new ids \
after the store's last, patterns are moved to the new ids of their events (a pattern whose \
event is not in the database loses its event id), and the summary says how ids were mapped. \
Importing the same database twice stores nothing twice."
)]
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
    /// Lengths in bytes, which tell a column too long to fetch from a NULL one.
    data_json_len: Option<i64>,
    data_compressed_len: Option<i64>,
}

/// Longest name fetched, in characters: one past the limit, so that a longer one is still
/// rejected, by name.
#[expect(clippy::cast_possible_wrap, reason = "NAME_LEN_MAX is 1024")]
const NAME_CHARS_MAX: i64 = selflog::NAME_LEN_MAX as i64 + 1;

/// Longest data column fetched, in bytes: the store's data limit, plus room for gzip's
/// framing of data that does not compress.
fn column_len_max() -> i64 {
    i64::try_from(Config::default().data_len_max + (64 << 10)).unwrap_or(i64::MAX)
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
    for (column, value_absent, len) in [
        ("data_json", row.data_json.is_none(), row.data_json_len),
        (
            "data_compressed",
            row.data_compressed.is_none(),
            row.data_compressed_len,
        ),
    ] {
        if let Some(len) = len.filter(|&n| value_absent && n > column_len_max()) {
            return Err(format!(
                "{column} is {len} bytes, over the limit of {} bytes",
                column_len_max()
            ));
        }
    }
    if let Some(blob) = &row.data_compressed {
        // One byte past the limit is enough to know the data is too long.
        let len_max = Config::default().data_len_max;
        let mut text = String::new();
        flate2::read::GzDecoder::new(blob.as_slice())
            .take(len_max as u64 + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("data_compressed is not gzip-compressed UTF-8: {e}"))?;
        if text.len() > len_max {
            return Err(format!(
                "data_compressed holds more than {len_max} bytes, the data limit"
            ));
        }
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
            // Columns too long to be stored are not fetched, only their length: a
            // database's huge value must not take memory. A name cut one character past
            // the name limit is still rejected by `Event::new`.
            "SELECT id, timestamp, substr(event_type, 1, ?2), substr(action, 1, ?2), substr(source, 1, ?2), \
               CASE WHEN length(CAST(data_json AS BLOB)) > ?1 THEN NULL ELSE data_json END, \
               CASE WHEN length(data_compressed) > ?1 THEN NULL ELSE data_compressed END, \
               processed, length(CAST(data_json AS BLOB)), length(data_compressed) \
             FROM events ORDER BY id",
        )
        .map_err(|e| sql_failure(path, &e))?;
    let db_first_id: Option<i64> = conn
        .query_row("SELECT MIN(id) FROM events", [], |r| r.get(0))
        .map_err(|e| sql_failure(path, &e))?;
    let store = crate::open_writable(store_dir, Config::default())?;
    let store_last_id = store.stats()?.last_id;
    // Kept unless they would collide with the store's.
    let keep_ids = match (store_last_id, db_first_id) {
        (None, _) | (_, None) => true,
        (Some(last), Some(first)) => u64::try_from(first).is_ok_and(|first| first > last.0),
    };
    let bar = crate::progress::bar(total, "importing", "events");
    let rows = stmt
        .query_map(rusqlite::params![column_len_max(), NAME_CHARS_MAX], |r| {
            Ok(Row {
                id: r.get(0)?,
                timestamp: r.get(1)?,
                event_type: r.get(2)?,
                action: r.get(3)?,
                source: r.get(4)?,
                data_json: r.get(5)?,
                data_compressed: r.get(6)?,
                processed: r.get::<_, Option<bool>>(7)?.unwrap_or(false),
                data_json_len: r.get(8)?,
                data_compressed_len: r.get(9)?,
            })
        })
        .map_err(|e| sql_failure(path, &e))?;
    let summary = import_rows(&store, rows, keep_ids, &bar, path)?;
    let Summary {
        imported,
        duplicates,
        rejected,
        processed_prefix,
        ids,
    } = summary;
    bar.finish_and_clear();
    store.flush()?;
    if let Some(id) = processed_prefix {
        store.cursor("processed")?.commit(id)?;
    }
    let (patterns, patterns_rejected, patterns_unlinked) =
        import_patterns(&conn, &store, path, &ids)?;
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
                "patterns_unlinked": patterns_unlinked,
                "system_stats": stats_rows,
                "ids": if ids.kept() { "kept" } else { "renumbered" },
                "id_ranges": ids.range_json(),
            })
        )
    } else {
        writeln!(
            out,
            "imported {imported} events from {} ({duplicates} duplicates, {rejected} rejected), {patterns} patterns, {stats_rows} system stats; cursor `processed` at {}\n{}",
            path.display(),
            processed_prefix.map_or_else(|| "none".to_owned(), |i| i.to_string()),
            ids.describe(store_last_id, patterns_unlinked),
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
    ids: IdMap,
}

/// Where the database's event ids went: runs of consecutive old ids stored under
/// consecutive ids (16 bytes a run, not a map entry per event), in old id order.
struct IdMap {
    /// The original ids were kept (new events); duplicates still map to their originals.
    keep: bool,
    /// (first old id, first new id, count), old ids increasing.
    runs: Vec<(u64, u64, u64)>,
    /// Old ids of events imported as new ones, and the new ids they got: first and last.
    new_range: Option<((u64, u64), (u64, u64))>,
}

impl IdMap {
    fn new(keep: bool) -> IdMap {
        IdMap {
            keep,
            runs: Vec::new(),
            new_range: None,
        }
    }

    /// Records that old id `old` is now `new` (`fresh`: a new event, not a duplicate).
    fn insert(&mut self, old: u64, new: u64, fresh: bool) {
        match self.runs.last_mut() {
            Some((o, n, count)) if *o + *count == old && *n + *count == new => *count += 1,
            _ => self.runs.push((old, new, 1)),
        }
        if fresh {
            let r = self.new_range.get_or_insert(((old, new), (old, new)));
            r.1 = (old, new);
        }
    }

    /// Whether every event kept its id: imported under it, or a duplicate of an event
    /// stored under it (the same database imported again).
    fn kept(&self) -> bool {
        self.keep || self.runs.iter().all(|&(o, n, _)| o == n)
    }

    /// The new id of old id `old`. An id the database had no event for keeps its number
    /// when ids were kept, and has no event otherwise.
    fn get(&self, old: u64) -> Option<u64> {
        let i = self.runs.partition_point(|&(o, _, _)| o <= old);
        let found = i
            .checked_sub(1)
            .and_then(|i| self.runs.get(i))
            .filter(|&&(o, _, count)| old < o + count)
            .map(|&(o, n, _)| n + (old - o));
        found.or(self.kept().then_some(old))
    }

    fn range_json(&self) -> serde_json::Value {
        self.new_range.map_or(serde_json::Value::Null, |((o1, n1), (o2, n2))| {
            serde_json::json!({"old_first": o1, "old_last": o2, "new_first": n1, "new_last": n2})
        })
    }

    /// The summary's line on ids.
    fn describe(&self, store_last_id: Option<EventId>, patterns_unlinked: u64) -> String {
        let Some(((o1, n1), (o2, n2))) = self.new_range else {
            return format!(
                "ids {}: no new events",
                if self.kept() { "kept" } else { "renumbered" }
            );
        };
        if self.kept() {
            return format!("ids kept: {o1}..{o2}");
        }
        let mut s = format!(
            "ids renumbered, as the store already held ids up to {}: old ids {o1}..{o2} imported as {n1}..{n2}; patterns moved with their events",
            store_last_id.map_or(0, |i| i.0)
        );
        if patterns_unlinked > 0 {
            s.push_str(&format!(
                " ({patterns_unlinked} patterns about events not in the database lost their event id)"
            ));
        }
        s
    }
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
    let mut ids = IdMap::new(keep_ids);
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
                if let Ok(old) = u64::try_from(row.id) {
                    ids.insert(old, id.0, true);
                }
                id
            }
            Ok(Appended::Duplicate(id)) => {
                duplicates += 1;
                if let Ok(old) = u64::try_from(row.id) {
                    ids.insert(old, id.0, false);
                }
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
        ids,
    })
}

/// The old `DATETIME DEFAULT CURRENT_TIMESTAMP` text (UTC), or now when absent.
fn created_at(text: Option<&str>) -> Timestamp {
    text.and_then(|t| chrono::NaiveDateTime::parse_from_str(t.trim(), "%Y-%m-%d %H:%M:%S").ok())
        .map_or_else(Timestamp::now, |d| {
            Timestamp(d.and_utc().timestamp_micros())
        })
}

/// Copies the `patterns` table into the pattern stream, each `event_id` mapped by `ids`;
/// returns (imported, rejected, unlinked: patterns whose event has no new id).
fn import_patterns(
    conn: &Connection,
    store: &Store,
    path: &Path,
    ids: &IdMap,
) -> Result<(u64, u64, u64), Failure> {
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
    let (mut imported, mut rejected, mut unlinked) = (0, 0, 0);
    for row in rows {
        let (id, event_id, kind, confidence, data, embryo, created) =
            row.map_err(|e| sql_failure(path, &e))?;
        let old = event_id.and_then(|e| u64::try_from(e).ok());
        let event_id = old.and_then(|old| ids.get(old)).map(EventId);
        if old.is_some() && event_id.is_none() {
            unlinked += 1;
        }
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
    Ok((imported, rejected, unlinked))
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
