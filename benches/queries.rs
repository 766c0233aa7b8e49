//! Query latency of a selflog store next to the `SQLite` layer it replaces, on the same
//! events.
//!
//! `cargo bench --bench queries` generates `SELFLOG_BENCH_EVENTS` events (default
//! 1,000,000) with the deterministic workload generator (no duplicates, so the ids of both
//! sides line up), loads them into a selflog store and into `SQLite` exactly as the old
//! `SelFlow` layer did (its schema, indexes and pragmas, 100 events per transaction,
//! `INSERT OR IGNORE`), then times the queries people ran, warm, on both sides, checking
//! that both return the same events. Under `cargo test` (no `--bench` argument) it runs a
//! smoke pass: 5,000 events, one timed run per query, and a non-zero exit when the two
//! sides disagree.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, ToSql};
use selflog::workload::{Workload, WorkloadConfig};
use selflog::{Config, Event, EventId, Field, Order, Query, Store, StoredEvent, Timestamp};

/// The old layer's schema and indexes, verbatim.
const SCHEMA: &str = "
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp REAL NOT NULL,
  event_type TEXT NOT NULL, action TEXT, source TEXT NOT NULL, data_json TEXT,
  data_compressed BLOB, hash TEXT UNIQUE, processed BOOLEAN DEFAULT FALSE,
  created_at DATETIME DEFAULT CURRENT_TIMESTAMP);
CREATE INDEX idx_events_timestamp ON events(timestamp);
CREATE INDEX idx_events_type ON events(event_type);
CREATE INDEX idx_events_source ON events(source);
";

// The queries as the old CLI wrote them (`SELECT * ... ORDER BY timestamp DESC LIMIT n`),
// with `id` added as the tie-break so that events with equal timestamps come out in the
// same order as selflog's (timestamp, then id). Every index entry ends in the rowid, so the
// tie-break costs nothing: the plans are the same with or without it.
const SQL_GET: &str = "SELECT * FROM events WHERE id = ?1";
const SQL_SINCE: &str =
    "SELECT * FROM events WHERE timestamp >= ?1 ORDER BY timestamp DESC, id DESC LIMIT ?2";
const SQL_TYPE: &str =
    "SELECT * FROM events WHERE event_type = ?1 ORDER BY timestamp DESC, id DESC LIMIT ?2";
const SQL_SOURCE: &str =
    "SELECT * FROM events WHERE source = ?1 ORDER BY timestamp DESC, id DESC LIMIT ?2";
const SQL_SEARCH: &str = "SELECT * FROM events WHERE event_type LIKE ?1 OR action LIKE ?1 \
     OR source LIKE ?1 OR data_json LIKE ?1 ORDER BY timestamp DESC, id DESC LIMIT ?2";
const SQL_COUNTS: &str = "SELECT event_type, COUNT(*) FROM events GROUP BY event_type";
const SQL_EXPORT: &str =
    "SELECT * FROM events WHERE timestamp >= ?1 ORDER BY timestamp ASC, id ASC";

/// Events per `SQLite` transaction and per selflog `append_batch`: the daemon's batch size.
const BATCH: usize = 100;

/// The common type (about 30% of events), the rare one (about 0.1%) and a source.
const COMMON_TYPE: &str = "window_change";
const RARE_TYPE: &str = "usb_device";
const SOURCE: &str = "Slack";

/// A row of the old table, every column fetched into Rust values as the old CLI did.
#[expect(
    dead_code,
    reason = "every column is materialised, as the old CLI did; only id and hash are compared"
)]
struct SqlRow {
    id: i64,
    timestamp: f64,
    event_type: String,
    action: Option<String>,
    source: String,
    data_json: Option<String>,
    data_compressed: Option<Vec<u8>>,
    hash: Option<String>,
    processed: bool,
    created_at: Option<String>,
}

fn sql_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SqlRow> {
    Ok(SqlRow {
        id: r.get(0)?,
        timestamp: r.get(1)?,
        event_type: r.get(2)?,
        action: r.get(3)?,
        source: r.get(4)?,
        data_json: r.get(5)?,
        data_compressed: r.get(6)?,
        hash: r.get(7)?,
        processed: r.get(8)?,
        created_at: r.get(9)?,
    })
}

fn sql_rows(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Vec<SqlRow> {
    let mut stmt = conn.prepare_cached(sql).expect("prepare");
    stmt.query_map(params, sql_row)
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("row")
}

fn selflog_rows(q: Query<'_>) -> Vec<StoredEvent> {
    q.run()
        .expect("run")
        .collect::<selflog::Result<_>>()
        .expect("event")
}

/// What a query returned, reduced to what both sides must agree on.
#[derive(PartialEq)]
enum Key {
    /// (id, content hash as 16 hex digits) of each event, in order.
    Rows(Vec<(u64, String)>),
    /// Events per type.
    Counts(BTreeMap<String, u64>),
}

impl Key {
    fn len(&self) -> usize {
        match self {
            Key::Rows(r) => r.len(),
            Key::Counts(c) => c.len(),
        }
    }
}

trait Outcome {
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
fn report_mismatch(name: &str, sqlite: &Key, selflog: &Key) {
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

/// The target for a query at 1,000,000 events.
#[derive(Clone, Copy)]
enum Target {
    /// selflog's median at most this long.
    Within(Duration),
    /// selflog at least this many times faster than `SQLite`.
    Faster(f64),
    None,
}

struct Line {
    name: String,
    sqlite: Duration,
    selflog: Duration,
    target: Target,
}

impl Line {
    #[expect(clippy::cast_precision_loss, reason = "a ratio for display")]
    fn ratio(&self) -> f64 {
        self.sqlite.as_nanos() as f64 / self.selflog.as_nanos().max(1) as f64
    }

    fn target_text(&self) -> String {
        let met = |ok: bool| if ok { "met" } else { "MISSED" };
        match self.target {
            Target::Within(d) => format!("≤ {} ({})", show(d), met(self.selflog <= d)),
            Target::Faster(x) => format!("≤ 1/{x} of SQLite ({})", met(self.ratio() >= x)),
            Target::None => "—".to_owned(),
        }
    }
}

/// A duration in µs below a millisecond, else in ms.
fn show(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.2} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

struct Bench {
    full: bool,
    lines: Vec<Line>,
    mismatches: usize,
}

impl Bench {
    /// The median time of `f`: at least 5 runs and 0.3 s in full mode, one run in smoke
    /// mode. Dropping the result is part of the time.
    fn time<T>(&self, f: &mut impl FnMut() -> T) -> Duration {
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
    fn case<A: Outcome, B: Outcome>(
        &mut self,
        name: &str,
        target: Target,
        per_call: u32,
        mut sqlite: impl FnMut() -> A,
        mut selflog: impl FnMut() -> B,
    ) {
        let (a, b) = (sqlite().key(), selflog().key());
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
            sqlite,
            selflog,
            target,
        });
    }
}

/// Runs a `PRAGMA` that may return a row.
fn pragma(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

/// Creates the old database at `path` and inserts `events` as the old layer did; returns
/// the connection and the time the inserts took.
///
/// The old layer gzipped data over 1 KiB into `data_compressed`; here every event's data is
/// stored uncompressed in `data_json`, so that `LIKE` searches see the same text as
/// selflog's search (the old search could not find text in compressed events at all).
fn load_sqlite(path: &Path, events: &[Event]) -> rusqlite::Result<(Connection, Duration)> {
    let mut conn = Connection::open(path)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    assert_eq!(mode, "wal");
    pragma(&conn, "PRAGMA synchronous=NORMAL")?;
    pragma(&conn, "PRAGMA mmap_size=268435456")?;
    conn.execute_batch(SCHEMA)?;
    let start = Instant::now();
    for chunk in events.chunks(BATCH) {
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO events (timestamp, event_type, action, source, data_json, hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for e in chunk {
                stmt.execute(params![
                    e.timestamp.as_secs_f64(),
                    e.event_type,
                    e.action,
                    e.source,
                    e.data_text(),
                    format!("{:016x}", e.content_hash()),
                ])?;
            }
        }
        tx.commit()?;
    }
    Ok((conn, start.elapsed()))
}

/// Opens a store at `path` and appends `events` in batches, then flushes; returns the
/// store and the time appending and flushing took.
fn load_selflog(path: &Path, events: Vec<Event>) -> (Store, Duration) {
    let store = Store::open(path, Config::default()).expect("open store");
    let start = Instant::now();
    let mut it = events.into_iter();
    loop {
        let batch: Vec<Event> = it.by_ref().take(BATCH).collect();
        if batch.is_empty() {
            break;
        }
        store.append_batch(batch).expect("append_batch");
    }
    store.flush().expect("flush");
    (store, start.elapsed())
}

/// `count` ids spread over `1..=n` by splitmix64, the same every run.
fn sample_ids(n: u64, count: usize) -> Vec<u64> {
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
fn indexed_queries(bench: &mut Bench, conn: &Connection, store: &Store, n: u64) {
    let ids = sample_ids(n, if bench.full { 1000 } else { 100 });
    let lookups = u32::try_from(ids.len()).expect("a small sample");
    bench.case(
        "get by id",
        Target::Within(Duration::from_micros(1)),
        lookups,
        || {
            let mut stmt = conn.prepare_cached(SQL_GET).expect("prepare");
            ids.iter()
                .map(|&id| {
                    let id = i64::try_from(id).expect("small id");
                    stmt.query_row([id], sql_row).expect("row")
                })
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

/// Text searches, counts by type and an export of the last day.
fn scanning_queries(bench: &mut Bench, conn: &Connection, store: &Store) {
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
            || sql_rows(conn, SQL_SEARCH, params![pattern, 10]),
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

fn print_plans(conn: &Connection) {
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

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The machine: CPUs, CPU model, kernel and load average.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let model = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let kernel = read("/proc/sys/kernel/osrelease");
    let load: Vec<String> = read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .map(str::to_owned)
        .collect();
    format!(
        "nproc {cpus} ({model}), Linux {}, load average {}",
        kernel.trim(),
        load.join(" ")
    )
}

/// Load and size figures of both sides.
struct Loads {
    events: u64,
    sqlite: Duration,
    selflog: Duration,
    sqlite_db: u64,
    sqlite_wal: u64,
    log_bytes: u64,
    disk_bytes: u64,
}

#[expect(clippy::cast_precision_loss, reason = "figures for display")]
fn print_report(bench: &Bench, loads: &Loads, generated: Duration) {
    let n = loads.events;
    let command = match std::env::var("SELFLOG_BENCH_EVENTS") {
        Ok(v) if bench.full => format!("SELFLOG_BENCH_EVENTS={v} cargo bench --bench queries"),
        _ if bench.full => "cargo bench --bench queries".to_owned(),
        _ => "cargo test --bench queries (smoke mode: one run per query)".to_owned(),
    };
    println!("\n## Queries: SQLite vs selflog, {n} events\n");
    println!("Command: `{command}`");
    println!("Machine: {}", machine());
    println!(
        "Events: {n} from the workload generator (40 days, duplicate_share 0), generated in {:.2} s",
        generated.as_secs_f64()
    );
    println!(
        "Times: median per query after one warm-up run{}\n",
        if bench.full {
            " (at least 5 runs and 0.3 s)"
        } else {
            " (smoke mode: 1 run)"
        }
    );
    println!("| query | SQLite | selflog | ratio (SQLite/selflog) | target |");
    println!("|---|---|---|---|---|");
    for l in &bench.lines {
        println!(
            "| {} | {} | {} | {:.1} | {} |",
            l.name,
            show(l.sqlite),
            show(l.selflog),
            l.ratio(),
            l.target_text()
        );
    }
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nLoad: SQLite {:.0} events/s ({:.2} s, {BATCH} per transaction); selflog {:.0} events/s ({:.2} s, append_batch({BATCH}) + flush)",
        rate(loads.sqlite),
        loads.sqlite.as_secs_f64(),
        rate(loads.selflog),
        loads.selflog.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "On disk: SQLite {:.1} bytes/event (db {} + wal {} bytes, data uncompressed); selflog {:.1} bytes/event of log ({} bytes), {:.1} bytes/event of disk blocks ({} bytes)",
        (loads.sqlite_db + loads.sqlite_wal) as f64 / n as f64,
        loads.sqlite_db,
        loads.sqlite_wal,
        loads.log_bytes as f64 / n as f64,
        loads.log_bytes,
        loads.disk_bytes as f64 / n as f64,
        loads.disk_bytes
    );
    print!("{out}");
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: u64 = if full {
        std::env::var("SELFLOG_BENCH_EVENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000)
    } else {
        5_000
    };
    let start = Instant::now();
    let events: Vec<Event> = Workload::new(WorkloadConfig {
        count: n,
        duplicate_share: 0.0,
        ..WorkloadConfig::default()
    })
    .collect();
    let generated = start.elapsed();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("events.db");
    let (conn, sqlite_load) = load_sqlite(&db, &events).expect("SQLite load");
    let (store, selflog_load) = load_selflog(&dir.path().join("selflog"), events);
    let stats = store.stats().expect("stats");
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .expect("count");
    assert_eq!(stats.total_events, n, "selflog stored every event");
    assert_eq!(rows.unsigned_abs(), n, "SQLite stored every event");
    assert_eq!(stats.last_id, Some(EventId(n)), "ids line up");
    let loads = Loads {
        events: n,
        sqlite: sqlite_load,
        selflog: selflog_load,
        sqlite_db: file_len(&db),
        sqlite_wal: file_len(&dir.path().join("events.db-wal")),
        log_bytes: stats.log_bytes,
        disk_bytes: stats.disk_bytes,
    };
    let mut bench = Bench {
        full,
        lines: Vec::new(),
        mismatches: 0,
    };
    indexed_queries(&mut bench, &conn, &store, n);
    scanning_queries(&mut bench, &conn, &store);
    print_report(&bench, &loads, generated);
    print_plans(&conn);
    drop((conn, store));
    drop(dir);
    if bench.mismatches > 0 {
        eprintln!(
            "!!!!!!!! MISMATCH: {} queries returned different results in SQLite and selflog",
            bench.mismatches
        );
        std::process::exit(1);
    }
}
