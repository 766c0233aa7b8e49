//! What the benches comparing selflog with `SQLite` share: the old `SelFlow` layer's schema,
//! pragmas, inserts and queries, each old-CLI query run on both sides with a check that both
//! return the same events, and the report's helpers (durations, machine description).
//!
//! `benches/queries.rs` and `benches/compare.rs` include this file with `mod common;`. The
//! old layer stored data above 1 KiB gzipped in `data_compressed`; `queries.rs` loads every
//! event's data uncompressed (so plain `LIKE` sees all text), `compare.rs` loads it as the
//! old layer did, and the search here then decompresses those rows to test them, which is
//! what a correct search over the old schema has to do.

pub mod events;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use rusqlite::{params, Connection, ToSql};
use selflog::{Event, EventId, Field, Order, Query, Store, StoredEvent, Timestamp};

/// The old layer's schema and indexes, verbatim.
pub const SCHEMA: &str = "
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp REAL NOT NULL,
  event_type TEXT NOT NULL, action TEXT, source TEXT NOT NULL, data_json TEXT,
  data_compressed BLOB, hash TEXT UNIQUE, processed BOOLEAN DEFAULT FALSE,
  created_at DATETIME DEFAULT CURRENT_TIMESTAMP);
CREATE INDEX idx_events_timestamp ON events(timestamp);
CREATE INDEX idx_events_type ON events(event_type);
CREATE INDEX idx_events_source ON events(source);
";

/// The old layer's insert: a duplicate content hash is ignored.
pub const SQL_INSERT: &str = "INSERT OR IGNORE INTO events \
     (timestamp, event_type, action, source, data_json, data_compressed, hash) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

// The queries as the old CLI wrote them (`SELECT * ... ORDER BY timestamp DESC LIMIT n`),
// with `id` added as the tie-break so that events with equal timestamps come out in the
// same order as selflog's (timestamp, then id). Every index entry ends in the rowid, so the
// tie-break costs nothing: the plans are the same with or without it.

/// One event by id.
pub const SQL_GET: &str = "SELECT * FROM events WHERE id = ?1";
/// The newest events since a time.
pub const SQL_SINCE: &str =
    "SELECT * FROM events WHERE timestamp >= ?1 ORDER BY timestamp DESC, id DESC LIMIT ?2";
/// The newest events of a type.
pub const SQL_TYPE: &str =
    "SELECT * FROM events WHERE event_type = ?1 ORDER BY timestamp DESC, id DESC LIMIT ?2";
/// The newest events from a source.
pub const SQL_SOURCE: &str =
    "SELECT * FROM events WHERE source = ?1 ORDER BY timestamp DESC, id DESC LIMIT ?2";
/// The old CLI's search, which sees only uncompressed data.
pub const SQL_SEARCH: &str = "SELECT * FROM events WHERE event_type LIKE ?1 OR action LIKE ?1 \
     OR source LIKE ?1 OR data_json LIKE ?1 ORDER BY timestamp DESC, id DESC LIMIT ?2";
/// The search over a database with gzipped data: rows whose text columns match, plus every
/// row with compressed data, which the caller decompresses and tests (no `LIMIT`: the caller
/// stops once it has enough matches).
pub const SQL_SEARCH_GZIP: &str = "SELECT * FROM events WHERE event_type LIKE ?1 \
     OR action LIKE ?1 OR source LIKE ?1 OR data_json LIKE ?1 OR data_compressed IS NOT NULL \
     ORDER BY timestamp DESC, id DESC";
/// Events per type.
pub const SQL_COUNTS: &str = "SELECT event_type, COUNT(*) FROM events GROUP BY event_type";
/// Every event since a time, oldest first.
pub const SQL_EXPORT: &str =
    "SELECT * FROM events WHERE timestamp >= ?1 ORDER BY timestamp ASC, id ASC";

/// Events per `SQLite` transaction and per selflog `append_batch`: the daemon's batch size.
pub const BATCH: usize = 100;

/// Data longer than this is gzipped into `data_compressed` by the old layer ("over 1 KB").
pub const GZIP_LEN_MIN: usize = 1024;

/// The common type (about 30% of events).
pub const COMMON_TYPE: &str = "window_change";
/// The rare type (about 0.1% of events).
pub const RARE_TYPE: &str = "usb_device";
/// A source the queries filter on.
pub const SOURCE: &str = "Slack";

/// `PRAGMA synchronous` of the old layer's database: `NORMAL` compares with selflog's
/// `Buffered`, `FULL` with `Sync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synchronous {
    /// `synchronous=NORMAL`: WAL synced at checkpoints only.
    Normal,
    /// `synchronous=FULL`: WAL synced at every commit.
    Full,
}

/// Opens (creating if needed) the old database at `path` with the old layer's pragmas: WAL,
/// the given `synchronous`, `mmap_size` 256 MB; creates the schema when `create` is set.
pub fn open_old_database(
    path: &Path,
    synchronous: Synchronous,
    create: bool,
) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    assert_eq!(mode, "wal", "SQLite runs in WAL mode");
    let sync = match synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    pragma(&conn, &format!("PRAGMA synchronous={sync}"))?;
    pragma(&conn, "PRAGMA mmap_size=268435456")?;
    if create {
        conn.execute_batch(SCHEMA)?;
    }
    Ok(conn)
}

/// Inserts one event as the old layer did: data above [`GZIP_LEN_MIN`] gzipped into
/// `data_compressed`, the rest as text; the content hash as 16 hex digits. With `gzip`
/// unset, all data goes into `data_json` uncompressed.
pub fn insert_old(
    stmt: &mut rusqlite::Statement<'_>,
    e: &Event,
    gzip: bool,
) -> rusqlite::Result<()> {
    let text = e.data_text();
    let (json, compressed) = match text {
        Some(t) if gzip && t.len() > GZIP_LEN_MIN => (None, Some(gzip_bytes(t.as_bytes()))),
        other => (other, None),
    };
    stmt.execute(params![
        e.timestamp.as_secs_f64(),
        e.event_type,
        e.action,
        e.source,
        json,
        compressed,
        format!("{:016x}", e.content_hash()),
    ])?;
    Ok(())
}

/// `bytes` gzipped at the default level.
pub fn gzip_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(bytes.len() / 2),
        flate2::Compression::default(),
    );
    enc.write_all(bytes).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// The text of gzipped `bytes`; panics on damage, which only a bug here could cause.
pub fn gunzip_text(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 3);
    GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("the bench wrote this gzip stream");
    text
}

/// Runs a `PRAGMA` that may return a row.
pub fn pragma(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

/// A row of the old table, every column fetched into Rust values as the old CLI did, with
/// gzipped data decompressed into `data_json`.
#[expect(
    dead_code,
    reason = "every column is materialised, as the old CLI did; only id and hash are compared"
)]
pub struct SqlRow {
    /// `id`.
    pub id: i64,
    /// `timestamp`.
    pub timestamp: f64,
    /// `event_type`.
    pub event_type: String,
    /// `action`.
    pub action: Option<String>,
    /// `source`.
    pub source: String,
    /// `data_json`, or the text of `data_compressed`.
    pub data_json: Option<String>,
    /// Whether the data was stored gzipped.
    pub compressed: bool,
    /// `hash`.
    pub hash: Option<String>,
    /// `processed`.
    pub processed: bool,
    /// `created_at`.
    pub created_at: Option<String>,
}

/// Reads one row of `SELECT *` on the events table.
pub fn sql_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SqlRow> {
    let compressed: Option<Vec<u8>> = r.get(6)?;
    let data_json = match &compressed {
        Some(bytes) => Some(gunzip_text(bytes)),
        None => r.get(5)?,
    };
    Ok(SqlRow {
        id: r.get(0)?,
        timestamp: r.get(1)?,
        event_type: r.get(2)?,
        action: r.get(3)?,
        source: r.get(4)?,
        data_json,
        compressed: compressed.is_some(),
        hash: r.get(7)?,
        processed: r.get(8)?,
        created_at: r.get(9)?,
    })
}

/// Every row `sql` returns.
pub fn sql_rows(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Vec<SqlRow> {
    let mut stmt = conn.prepare_cached(sql).expect("prepare");
    stmt.query_map(params, sql_row)
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("row")
}

/// The newest `limit` events containing `text` (ASCII case-insensitive) in type, action,
/// source or data, from a database whose large data is gzipped: rows matched by `LIKE` are
/// taken as they come, rows with compressed data are decompressed and tested.
pub fn sql_search_gzip(conn: &Connection, text: &str, limit: usize) -> Vec<SqlRow> {
    let needle = text.to_ascii_lowercase();
    let contains = |hay: &str| hay.to_ascii_lowercase().contains(&needle);
    let mut stmt = conn.prepare_cached(SQL_SEARCH_GZIP).expect("prepare");
    let rows = stmt
        .query_map([format!("%{text}%")], sql_row)
        .expect("query");
    let mut found = Vec::with_capacity(limit);
    for row in rows {
        if found.len() == limit {
            break;
        }
        let row = row.expect("row");
        let matches = !row.compressed
            || contains(&row.event_type)
            || row.action.as_deref().is_some_and(contains)
            || contains(&row.source)
            || row.data_json.as_deref().is_some_and(contains);
        if matches {
            found.push(row);
        }
    }
    found
}

/// Every event a selflog query returns.
pub fn selflog_rows(q: Query<'_>) -> Vec<StoredEvent> {
    q.run()
        .expect("run")
        .collect::<selflog::Result<_>>()
        .expect("event")
}

/// What a listing returned when read through borrowed rows: per row its id and content
/// hash (`None` where `SQLite` has no hash), and the bytes of text the rows held (which both
/// sides read: every name and the data).
pub struct RowRefs {
    /// (id, content hash) of each row, in order.
    pub rows: Vec<(u64, Option<u64>)>,
    /// Bytes of type, action, source and data over all rows.
    pub text_bytes: usize,
}

/// Every row `sql` returns, read in place: text columns are borrowed from `SQLite`'s row
/// (`get_ref`, checked to be UTF-8) instead of copied into `String`s; gzipped data is
/// decompressed, as it must be to be read.
pub fn sql_refs(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> RowRefs {
    let mut stmt = conn.prepare_cached(sql).expect("prepare");
    let mut rows = stmt.query(params).expect("query");
    let mut out = RowRefs {
        rows: Vec::new(),
        text_bytes: 0,
    };
    let text = |r: &rusqlite::Row<'_>, i: usize| -> usize {
        r.get_ref(i)
            .expect("column")
            .as_str_or_null()
            .expect("text")
            .map_or(0, str::len)
    };
    while let Some(r) = rows.next().expect("row") {
        let id: i64 = r.get(0).expect("id");
        let data = match r
            .get_ref(6)
            .expect("column")
            .as_blob_or_null()
            .expect("blob")
        {
            Some(gz) => gunzip_text(gz).len(),
            None => text(r, 5),
        };
        out.text_bytes += text(r, 2) + text(r, 3) + text(r, 4) + data;
        let hash = r
            .get_ref(7)
            .expect("column")
            .as_str_or_null()
            .expect("text");
        out.rows.push((
            u64::try_from(id).expect("ids are positive"),
            hash.and_then(|h| u64::from_str_radix(h, 16).ok()),
        ));
    }
    out
}

/// Every event `q` returns, read through [`selflog::Events::next_ref`]: borrowed, not
/// copied.
pub fn selflog_refs(q: Query<'_>) -> RowRefs {
    let mut events = q.run().expect("run");
    let mut out = RowRefs {
        rows: Vec::new(),
        text_bytes: 0,
    };
    while let Some(e) = events.next_ref() {
        let e = e.expect("event");
        out.text_bytes += e.event_type.len()
            + e.action.map_or(0, str::len)
            + e.source.len()
            + e.data.map_or(0, str::len);
        out.rows.push((e.id.0, Some(e.hash)));
    }
    out
}

/// What a query returned, reduced to what both sides must agree on.
#[derive(PartialEq)]
pub enum Key {
    /// (id, content hash as 16 hex digits) of each event, in order.
    Rows(Vec<(u64, String)>),
    /// Events per type.
    Counts(BTreeMap<String, u64>),
}

impl Key {
    /// Sets every id to 0, leaving the hashes to compare.
    pub fn forget_ids(&mut self) {
        if let Key::Rows(rows) = self {
            for row in rows {
                row.0 = 0;
            }
        }
    }

    /// Rows or groups.
    pub fn len(&self) -> usize {
        match self {
            Key::Rows(r) => r.len(),
            Key::Counts(c) => c.len(),
        }
    }
}

/// A query's result that can be reduced to a [`Key`].
pub trait Outcome {
    /// What both sides must agree on.
    fn key(&self) -> Key;
}

impl Outcome for Vec<SqlRow> {
    fn key(&self) -> Key {
        Key::Rows(
            self.iter()
                .map(|r| {
                    let id = u64::try_from(r.id).expect("ids are positive");
                    (id, r.hash.clone().unwrap_or_default())
                })
                .collect(),
        )
    }
}

impl Outcome for Vec<StoredEvent> {
    fn key(&self) -> Key {
        Key::Rows(
            self.iter()
                .map(|e| (e.id.0, format!("{:016x}", e.hash)))
                .collect(),
        )
    }
}

impl Outcome for RowRefs {
    fn key(&self) -> Key {
        Key::Rows(
            self.rows
                .iter()
                .map(|&(id, h)| (id, h.map(|h| format!("{h:016x}")).unwrap_or_default()))
                .collect(),
        )
    }
}

impl Outcome for Vec<(String, i64)> {
    fn key(&self) -> Key {
        Key::Counts(
            self.iter()
                .map(|(t, n)| (t.clone(), n.unsigned_abs()))
                .collect(),
        )
    }
}

impl Outcome for BTreeMap<String, u64> {
    fn key(&self) -> Key {
        Key::Counts(self.clone())
    }
}

/// Prints where two results first differ.
pub fn report_mismatch(name: &str, sqlite: &Key, selflog: &Key) {
    eprintln!("!!!!!!!! MISMATCH in {name:?}: SQLite and selflog return different results");
    match (sqlite, selflog) {
        (Key::Rows(a), Key::Rows(b)) => {
            let at = a.iter().zip(b).position(|(x, y)| x != y);
            let at = at.unwrap_or(a.len().min(b.len()));
            eprintln!(
                "  SQLite {} rows, selflog {} rows; first difference at row {at}",
                a.len(),
                b.len()
            );
            let show = |rows: &[(u64, String)]| -> String {
                let end = (at + 5).min(rows.len());
                let start = at.min(end);
                format!("{:?}", &rows[start..end])
            };
            eprintln!("  SQLite  from there: {}", show(a));
            eprintln!("  selflog from there: {}", show(b));
        }
        (Key::Counts(a), Key::Counts(b)) => {
            eprintln!("  SQLite  {a:?}\n  selflog {b:?}");
        }
        _ => eprintln!("  results of different kinds"),
    }
}

/// The query issue's target for a query at 1,000,000 events.
#[derive(Clone, Copy)]
pub enum Target {
    /// selflog's median at most this long.
    Within(Duration),
    /// selflog at least this many times faster than `SQLite`.
    Faster(f64),
    /// No target.
    None,
}

/// One timed query: both sides' median times.
pub struct Line {
    /// The query, with how many rows it returned.
    pub name: String,
    /// The query alone, without the row count, to group lines across scales.
    pub query: String,
    /// `SQLite`'s median.
    pub sqlite: Duration,
    /// selflog's median.
    pub selflog: Duration,
    /// The target selflog is held to.
    pub target: Target,
}

impl Line {
    /// How many times faster selflog is.
    #[expect(clippy::cast_precision_loss, reason = "a ratio for display")]
    pub fn ratio(&self) -> f64 {
        self.sqlite.as_nanos() as f64 / self.selflog.as_nanos().max(1) as f64
    }

    /// The target and whether it was met.
    pub fn target_text(&self) -> String {
        let met = |ok: bool| if ok { "met" } else { "MISSED" };
        match self.target {
            Target::Within(d) => format!("≤ {} ({})", show(d), met(self.selflog <= d)),
            Target::Faster(x) => format!("≤ 1/{x} of SQLite ({})", met(self.ratio() >= x)),
            Target::None => "—".to_owned(),
        }
    }
}

/// A duration in µs below a millisecond, in ms below ten seconds, else in s.
pub fn show(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.2} µs")
    } else if us < 10_000_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// The timed queries of one run, and how many disagreed.
pub struct Bench {
    /// Full measurement (`--bench`) or a smoke pass (one run per query).
    pub full: bool,
    /// The timed queries, in order.
    pub lines: Vec<Line>,
    /// Queries whose results differed between the two sides.
    pub mismatches: usize,
    /// Whether both sides gave the same events the same ids. They do when no event is a
    /// duplicate; otherwise `SQLite`'s ids have gaps (an ignored insert still takes an
    /// `AUTOINCREMENT` id), and results are compared by content hash alone.
    pub ids_line_up: bool,
}

impl Bench {
    /// A bench with no lines yet.
    pub fn new(full: bool) -> Bench {
        Bench {
            full,
            lines: Vec::new(),
            mismatches: 0,
            ids_line_up: true,
        }
    }

    /// The median time of `f`: at least 5 runs and 0.3 s in full mode, one run in smoke
    /// mode. Dropping the result is part of the time.
    pub fn time<T>(&self, f: &mut impl FnMut() -> T) -> Duration {
        if !self.full {
            let start = Instant::now();
            drop(black_box(f()));
            return start.elapsed();
        }
        let mut samples = Vec::new();
        let start = Instant::now();
        while samples.len() < 5 || start.elapsed() < Duration::from_millis(300) {
            let t = Instant::now();
            drop(black_box(f()));
            samples.push(t.elapsed());
        }
        samples.sort_unstable();
        samples[samples.len() / 2]
    }

    /// Runs both sides once (warming the cache) and compares their results, then times
    /// each; `per_call` divides the times when one run does several lookups.
    pub fn case<A: Outcome, B: Outcome>(
        &mut self,
        name: &str,
        target: Target,
        per_call: u32,
        mut sqlite: impl FnMut() -> A,
        mut selflog: impl FnMut() -> B,
    ) {
        let (mut a, mut b) = (sqlite().key(), selflog().key());
        if !self.ids_line_up {
            a.forget_ids();
            b.forget_ids();
        }
        if a != b {
            self.mismatches += 1;
            report_mismatch(name, &a, &b);
        }
        let sqlite = self.time(&mut sqlite) / per_call;
        let selflog = self.time(&mut selflog) / per_call;
        let unit = if matches!(b, Key::Counts(_)) {
            "groups"
        } else {
            "rows"
        };
        let count = if per_call > 1 {
            format!("{per_call} lookups")
        } else {
            format!("{} {unit}", b.len())
        };
        self.lines.push(Line {
            name: format!("{name} ({count})"),
            query: name.to_owned(),
            sqlite,
            selflog,
            target,
        });
    }
}

/// `count` ids spread over `1..=n` by splitmix64, the same every run.
pub fn sample_ids(n: u64, count: usize) -> Vec<u64> {
    let mut state = 0x5E1F_106E_u64;
    (0..count)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            1 + (z ^ (z >> 31)) % n
        })
        .collect()
}

/// Get by id, the newest of the last two hours, and the newest of a type and a source.
/// `n` is the number of events stored, with ids `1..=n` in selflog; `SQLite`'s ids are the
/// same unless duplicates left gaps in them ([`Bench::ids_line_up`]), when the same events
/// are looked up by their `SQLite` ids.
pub fn indexed_queries(bench: &mut Bench, conn: &Connection, store: &Store, n: u64) {
    let ids = sample_ids(n, if bench.full { 1000 } else { 100 });
    let lookups = u32::try_from(ids.len()).expect("a small sample");
    let sqlite_ids: Vec<i64> = if bench.ids_line_up {
        ids.iter()
            .map(|&id| i64::try_from(id).expect("small id"))
            .collect()
    } else {
        let mut stmt = conn
            .prepare("SELECT id FROM events ORDER BY id")
            .expect("prepare");
        let all: Vec<i64> = stmt
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("row");
        ids.iter()
            .map(|&id| all[usize::try_from(id - 1).expect("small id")])
            .collect()
    };
    bench.case(
        "get by id",
        Target::Within(Duration::from_micros(1)),
        lookups,
        || {
            let mut stmt = conn.prepare_cached(SQL_GET).expect("prepare");
            sqlite_ids
                .iter()
                .map(|&id| stmt.query_row([id], sql_row).expect("row"))
                .collect::<Vec<_>>()
        },
        || {
            ids.iter()
                .map(|&id| store.get(EventId(id)).expect("get").expect("present"))
                .collect::<Vec<_>>()
        },
    );
    let newest = store
        .stats()
        .expect("stats")
        .last_timestamp
        .expect("events");
    let since = newest.saturating_sub(Duration::from_secs(2 * 3600));
    bench.case(
        "newest 50 of the last 2 h",
        Target::Within(Duration::from_micros(8)),
        1,
        || sql_rows(conn, SQL_SINCE, params![since.as_secs_f64(), 50]),
        || selflog_rows(store.query().since(since).limit(50)),
    );
    // The same listing read the way a viewer that only shows or serialises rows reads it:
    // both sides borrow each row's text in place instead of copying it out.
    bench.case(
        "newest 50 of the last 2 h, borrowed rows",
        Target::Within(Duration::from_micros(8)),
        1,
        || sql_refs(conn, SQL_SINCE, params![since.as_secs_f64(), 50]),
        || selflog_refs(store.query().since(since).limit(50)),
    );
    for (name, target_us, ty) in [
        (
            "newest 100 of the common type `window_change`",
            50,
            COMMON_TYPE,
        ),
        ("newest 100 of the rare type `usb_device`", 200, RARE_TYPE),
    ] {
        bench.case(
            name,
            Target::Within(Duration::from_micros(target_us)),
            1,
            || sql_rows(conn, SQL_TYPE, params![ty, 100]),
            || selflog_rows(store.query().event_type(ty).limit(100)),
        );
    }
    bench.case(
        &format!("newest 100 from source `{SOURCE}`"),
        Target::Within(Duration::from_micros(200)),
        1,
        || sql_rows(conn, SQL_SOURCE, params![SOURCE, 100]),
        || selflog_rows(store.query().source(SOURCE).limit(100)),
    );
}

/// Text searches, counts by type and an export of the last day. `gzip_data` says whether
/// the database holds gzipped data, which the search must then decompress and test.
pub fn scanning_queries(bench: &mut Bench, conn: &Connection, store: &Store, gzip_data: bool) {
    for (name, text, target) in [
        (
            "search \"chrome\", newest 10",
            "chrome",
            Target::Within(Duration::from_micros(20)),
        ),
        (
            "search matching nothing (full scan)",
            "zq-no-such-text",
            Target::Faster(5.0),
        ),
    ] {
        let pattern = format!("%{text}%");
        bench.case(
            name,
            target,
            1,
            || {
                if gzip_data {
                    sql_search_gzip(conn, text, 10)
                } else {
                    sql_rows(conn, SQL_SEARCH, params![pattern, 10])
                }
            },
            || selflog_rows(store.query().text(text).order(Order::NewestFirst).limit(10)),
        );
    }
    bench.case(
        "count by type, all events",
        Target::Within(Duration::from_millis(1)),
        1,
        || {
            let mut stmt = conn.prepare_cached(SQL_COUNTS).expect("prepare");
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .expect("query")
                .collect::<rusqlite::Result<Vec<_>>>()
                .expect("row")
        },
        || {
            store
                .query()
                .counts_by(Field::EventType)
                .expect("counts_by")
        },
    );
    let newest = store
        .stats()
        .expect("stats")
        .last_timestamp
        .expect("events");
    let since = newest.saturating_sub(Duration::from_secs(24 * 3600));
    bench.case(
        "export of the last 24 h, oldest first",
        Target::None,
        1,
        || sql_rows(conn, SQL_EXPORT, params![since.as_secs_f64()]),
        || selflog_rows(store.query().since(since).order(Order::OldestFirst)),
    );
}

/// `SQLite`'s plan for `sql`, one line.
fn plan(conn: &Connection, sql: &str, params: &[&dyn ToSql]) -> String {
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("explain");
    let steps: Vec<String> = stmt
        .query_map(params, |r| r.get::<_, String>(3))
        .expect("explain")
        .collect::<rusqlite::Result<_>>()
        .expect("explain");
    steps.join("; ")
}

/// Prints `SQLite`'s plan of each query.
pub fn print_plans(conn: &Connection) {
    let t = Timestamp::now().as_secs_f64();
    let like = "%chrome%";
    let plans = [
        ("get by id", plan(conn, SQL_GET, &[&1])),
        ("last 2 h", plan(conn, SQL_SINCE, &[&t, &50])),
        ("type", plan(conn, SQL_TYPE, &[&COMMON_TYPE, &100])),
        ("source", plan(conn, SQL_SOURCE, &[&SOURCE, &100])),
        ("search", plan(conn, SQL_SEARCH, &[&like, &10])),
        ("count by type", plan(conn, SQL_COUNTS, &[])),
        ("export", plan(conn, SQL_EXPORT, &[&t])),
    ];
    println!("SQLite plans:");
    for (name, p) in plans {
        println!("- {name}: {p}");
    }
}

/// The length of the file at `path`, 0 if there is none.
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The machine: CPUs, CPU model, kernel and load average.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let model = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let kernel = read("/proc/sys/kernel/osrelease");
    format!(
        "nproc {cpus} ({model}), Linux {}, load average {}",
        kernel.trim(),
        load_average()
    )
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = text.split_whitespace().take(3).collect();
    load.join(" ")
}

/// The `selflog` binary: it lives in `crates/selflog-cli`, another package, so cargo does
/// not hand its path to this one. `SELFLOG_BIN` names a binary to measure. Under
/// `cargo test` (smoke mode) it is the debug binary beside this one, which the same
/// `cargo test` built with every target before running any; a measured run (`--bench`), or a
/// smoke run without that binary, builds the release binary first (in `target/release`,
/// whose lock the cargo running a debug test does not hold).
pub fn selflog_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("SELFLOG_BIN") {
        return PathBuf::from(bin);
    }
    // This bench runs as target/<profile>/deps/compare-<hash>.
    let exe = std::env::current_exe().expect("the bench's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let beside = profile_dir.join("selflog");
    let measured = std::env::args().any(|a| a == "--bench");
    if !measured && beside.exists() {
        return beside;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "selflog-cli",
            "--bin",
            "selflog",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build for the selflog binary");
    assert!(status.success(), "cargo build of the selflog binary failed");
    let bin = profile_dir
        .parent()
        .expect("target")
        .join("release")
        .join("selflog");
    assert!(bin.exists(), "{} was not built", bin.display());
    bin
}
