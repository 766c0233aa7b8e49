//! selflog side by side with the `SQLite` layer it replaces, on the same generated events:
//! ingest rates, bytes per event, every old-CLI query, opening after a clean shutdown and
//! after a SIGKILL, and peak memory, printed as one markdown table (issue 6).
//!
//! `cargo bench --bench compare` runs at each scale of `SELFLOG_COMPARE_SCALES` (default
//! `100000,1000000`; add `10000000` for the third scale, about 25 minutes more).
//! The events come from [`selflog::workload`] with its defaults: 1% exact duplicates, 2%
//! out-of-order timestamps, 40 days. `SQLite` runs exactly as the old layer did: its schema
//! and three indexes, WAL, `mmap_size` 256 MB, 100 events per transaction, data above
//! 1 KiB gzipped, `hash TEXT UNIQUE` with `INSERT OR IGNORE`. Like is compared with like:
//! `synchronous=NORMAL` with selflog's `Buffered`, `FULL` with `Sync`.
//!
//! What is measured, per scale:
//! - ingest through the library: events generated in chunks of [`CHUNK_EVENTS`] outside
//!   the timed stretches; selflog `append` one at a time plus `flush` at the end of each
//!   chunk, `SQLite` 100 inserts per transaction (content hash and gzip included);
//! - ingest of a JSON Lines file: the real `selflog ingest` binary against a child process
//!   that parses each line with the same parser and inserts as above; each child's peak
//!   `RssAnon` and `VmHWM` are sampled from `/proc/<pid>/status`;
//! - bytes per event after the library ingest (`SQLite`: database plus WAL after a
//!   checkpoint; selflog: log bytes, and disk blocks with the preallocated active segment);
//! - each old-CLI query (shared with `benches/queries.rs`), checking that both sides return
//!   the same ids and hashes;
//! - open plus the first query (newest 50) after a clean close, and after a child process
//!   writing to the same store or database is killed with SIGKILL.
//!
//! Under `cargo test` (no `--bench` argument) it runs a smoke pass of 3,000 events at one
//! scale, and exits non-zero when the two sides disagree on any query or count.

use std::io::{BufRead as _, BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::events::Events;
use rusqlite::Connection;
use selflog::{Appended, Config, Durability, Event, Store, Timestamp};
use selflog_workload::{to_json_line, Workload, WorkloadConfig};

#[allow(
    dead_code,
    reason = "shared with benches/queries.rs, which uses the rest"
)]
mod common;

use common::{
    file_len, indexed_queries, insert_old, load_average, machine, open_old_database,
    scanning_queries, show, sql_rows, Bench, Synchronous, BATCH, SQL_INSERT,
};

/// Set in a child process of this bench to the role it plays (see [`child_main`]).
const CHILD_ENV: &str = "SELFLOG_COMPARE_CHILD";
/// The path a child works on (a database or a store directory).
const CHILD_PATH_ENV: &str = "SELFLOG_COMPARE_CHILD_PATH";
/// The JSON Lines file a child ingests.
const CHILD_FILE_ENV: &str = "SELFLOG_COMPARE_CHILD_FILE";
/// The workload's start in microseconds, so children generate the parent's timestamps.
const CHILD_START_ENV: &str = "SELFLOG_COMPARE_CHILD_START_US";
/// The seed a killed writer child generates its events from.
const CHILD_SEED_ENV: &str = "SELFLOG_COMPARE_CHILD_SEED";

/// Events generated ahead of each timed stretch of the library ingest: small enough to
/// keep 10,000,000 events out of memory, large enough that the stretches' ends cost nothing.
const CHUNK_EVENTS: usize = 50_000;

/// The scales run by default under `cargo bench`.
const SCALES_DEFAULT: [u64; 2] = [100_000, 1_000_000];
/// The one scale of the smoke pass under `cargo test`.
const SMOKE_EVENTS: u64 = 3_000;
/// Most events of the `Sync` / `synchronous=FULL` pair (`SELFLOG_COMPARE_SYNC_EVENTS`):
/// `SQLite` syncs every 100 events, so a whole scale would take too long.
const SYNC_EVENTS_DEFAULT: u64 = 100_000;

/// The targets: library ingest at least 1,500,000 events/s (90 times the 16,300
/// events/s it measured for `SQLite`), `selflog ingest` at least 25 times `SQLite`, at
/// most 0.6 of `SQLite`'s bytes, open after a SIGKILL under 200 ms, anonymous memory under
/// 50 MB.
const LIBRARY_RATE_MIN: f64 = 1_500_000.0;
/// See [`LIBRARY_RATE_MIN`].
const JSONL_RATIO_MIN: f64 = 25.0;
/// See [`LIBRARY_RATE_MIN`].
const BYTES_RATIO_MAX: f64 = 0.6;
/// See [`LIBRARY_RATE_MIN`].
const KILLED_OPEN_MAX: Duration = Duration::from_millis(200);
/// See [`LIBRARY_RATE_MIN`].
const ANON_BYTES_MAX: u64 = 50_000_000;

/// The newest 50 events: the first query after an open, on the `SQLite` side.
const SQL_NEWEST: &str = "SELECT * FROM events ORDER BY timestamp DESC, id DESC LIMIT 50";

fn main() {
    if let Ok(role) = std::env::var(CHILD_ENV) {
        child_main(&role);
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let scales = if full {
        std::env::var("SELFLOG_COMPARE_SCALES").map_or_else(
            |_| SCALES_DEFAULT.to_vec(),
            |v| {
                v.split(',')
                    .map(|s| s.trim().parse().expect("SELFLOG_COMPARE_SCALES: numbers"))
                    .collect()
            },
        )
    } else {
        vec![SMOKE_EVENTS]
    };
    let sync_events = if full {
        env_u64("SELFLOG_COMPARE_SYNC_EVENTS").unwrap_or(SYNC_EVENTS_DEFAULT)
    } else {
        500
    };
    let machine_before = machine();
    let commit = format!(
        "{} ({}){}",
        git(&["rev-parse", "--short", "HEAD"]),
        git(&["log", "-1", "--format=%s"]),
        if git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
            ""
        } else {
            ", with uncommitted changes in the working tree"
        }
    );
    let started = Instant::now();
    let start = Timestamp(Timestamp::now().0 - 40 * 86_400 * 1_000_000);
    if full && std::env::var_os("SELFLOG_COMPARE_LIBRARY_INGEST_ONLY").is_some() {
        library_ingest_only(&scales, start);
        return;
    }
    let mut table = Table::default();
    let mut failures = 0;
    let mut notes = Vec::new();
    for &n in &scales {
        let run = Scale {
            n,
            start,
            full,
            sync_events: sync_events.min(n),
        };
        failures += run.run(&mut table, &mut notes);
        if full {
            // A long run's figures survive a failure at a later scale.
            eprintln!("compare: rows so far:");
            eprint!("{}", table.markdown());
        }
    }
    print_report(
        &table,
        &notes,
        full,
        &[&machine_before, &commit],
        started.elapsed(),
    );
    if failures > 0 {
        eprintln!("!!!!!!!! MISMATCH: {failures} results differed between SQLite and selflog");
        std::process::exit(1);
    }
}

/// `SELFLOG_COMPARE_LIBRARY_INGEST_ONLY=1`: selflog's side of the library ingest row alone
/// at each scale, timed exactly as in the full run ([`Scale::ingest_selflog`]), for
/// comparing builds and profiling without the minutes of `SQLite` ingest, queries and the
/// JSON Lines ingest around it.
fn library_ingest_only(scales: &[u64], start: Timestamp) {
    for &n in scales {
        let root = tempfile::tempdir().expect("temp dir");
        let scale = Scale {
            n,
            start,
            full: true,
            sync_events: 0,
        };
        let load = load_average();
        let (store, ingested) =
            scale.ingest_selflog(&root.path().join("selflog"), n, Durability::Buffered);
        store.close().expect("close");
        println!(
            "library ingest, selflog `Buffered` `append`, {}: {} ({} stored, load average before {load})",
            scale_label(n),
            show_rate(rate(ingested.stored, ingested.elapsed)),
            thousands(ingested.stored),
        );
    }
}

/// An environment variable parsed as a number, if set.
fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}: not a number"))
    })
}

/// The generated events of one side: the workload's defaults (1% duplicates, 2% late, 40
/// days) from `start`.
fn workload(count: u64, start: Timestamp, seed: u64) -> Events {
    common::events::generate(workload_config(count, start, seed))
}

/// The generator's configuration for [`workload`].
fn workload_config(count: u64, start: Timestamp, seed: u64) -> WorkloadConfig {
    WorkloadConfig {
        count,
        start_us: start.0,
        seed,
        ..WorkloadConfig::default()
    }
}

/// The default workload seed.
fn seed() -> u64 {
    WorkloadConfig::default().seed
}

/// The store configuration of every selflog side here: the defaults, with retention off
/// (the `SQLite` side keeps all 40 days too, and a store opened later must still hold
/// every event the queries compare).
fn store_config(durability: Durability) -> Config {
    let mut config = Config::default();
    config.durability = durability;
    config.retention_age = None;
    config
}

/// One row of the report.
struct Row {
    /// What is measured, without the scale.
    measure: String,
    /// Events at this scale.
    scale: u64,
    /// Extra words after the scale (rows returned, events used).
    detail: String,
    /// `SQLite`'s figure.
    sqlite: String,
    /// selflog's figure.
    selflog: String,
    /// How selflog compares.
    ratio: String,
    /// The target and whether it is met.
    target: String,
}

/// The rows of every scale, printed grouped by measure, scales in order within a group.
#[derive(Default)]
struct Table {
    /// The rows in the order they were measured.
    rows: Vec<Row>,
}

impl Table {
    /// Adds a row.
    fn add(&mut self, measure: &str, scale: u64, detail: &str, figures: [String; 4]) {
        let [sqlite, selflog, ratio, target] = figures;
        self.rows.push(Row {
            measure: measure.to_owned(),
            scale,
            detail: detail.to_owned(),
            sqlite,
            selflog,
            ratio,
            target,
        });
    }

    /// The table in markdown.
    fn markdown(&self) -> String {
        let mut out = String::from(
            "| measure | SQLite | selflog | ratio | target |\n|---|---|---|---|---|\n",
        );
        for r in self.ordered() {
            let detail = if r.detail.is_empty() {
                String::new()
            } else {
                format!(", {}", r.detail)
            };
            out.push_str(&format!(
                "| {} — **{}**{detail} | {} | {} | {} | {} |\n",
                r.measure,
                scale_label(r.scale),
                r.sqlite,
                r.selflog,
                r.ratio,
                r.target
            ));
        }
        out
    }

    /// Rows grouped by measure (in the order measures first appeared), then by scale.
    fn ordered(&self) -> Vec<&Row> {
        let mut measures: Vec<&str> = Vec::new();
        for r in &self.rows {
            if !measures.contains(&r.measure.as_str()) {
                measures.push(&r.measure);
            }
        }
        let mut rows: Vec<&Row> = self.rows.iter().collect();
        rows.sort_by_key(|r| {
            let group = measures.iter().position(|m| *m == r.measure);
            (group, r.scale)
        });
        rows
    }
}

/// `n` with thousands separators.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A scale as a short label: `100k`, `1M`, `10M`.
fn scale_label(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// Events per second.
#[expect(clippy::cast_precision_loss, reason = "a rate for display")]
fn rate(events: u64, d: Duration) -> f64 {
    events as f64 / d.as_secs_f64().max(1e-9)
}

/// A rate as text.
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a positive rate for display"
)]
fn show_rate(r: f64) -> String {
    format!("{} events/s", thousands(r.round() as u64))
}

/// Megabytes as text.
#[expect(clippy::cast_precision_loss, reason = "a size for display")]
fn show_mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// How many times faster selflog is, from the ratio of `SQLite`'s cost to selflog's.
fn speedup(ratio: f64) -> String {
    if ratio >= 1.0 {
        format!("{ratio:.1}× faster")
    } else {
        format!("{:.1}× slower", 1.0 / ratio)
    }
}

/// "met" or "MISSED".
fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// One scale's measurements.
struct Scale {
    /// Events generated (duplicates included).
    n: u64,
    /// The workload's first timestamp.
    start: Timestamp,
    /// Full measurement or smoke pass.
    full: bool,
    /// Events of the `Sync` / `FULL` pair.
    sync_events: u64,
}

/// What a library ingest stored and how long it took.
struct Ingested {
    /// Time spent in the timed stretches.
    elapsed: Duration,
    /// Events stored.
    stored: u64,
}

impl Scale {
    /// Runs every measurement of this scale, adding rows; returns how many results differed
    /// between the two sides.
    fn run(&self, table: &mut Table, notes: &mut Vec<String>) -> usize {
        let n = self.n;
        let root = match std::env::var("SELFLOG_COMPARE_DIR") {
            Ok(dir) => tempfile::tempdir_in(dir),
            Err(_) => tempfile::tempdir(),
        }
        .expect("temp dir");
        let dir = root.path();
        eprintln!(
            "compare: {n} events: library ingest (load average {})",
            load_average()
        );
        let mut failures = 0;

        // Library ingest, Buffered against synchronous=NORMAL.
        let db = dir.join("events.db");
        let (conn, sqlite_ingest) = self.ingest_sqlite(&db, n, Synchronous::Normal);
        let store_dir = dir.join("selflog");
        let (store, selflog_ingest) = self.ingest_selflog(&store_dir, n, Durability::Buffered);
        let (sr, lr) = (
            rate(sqlite_ingest.stored, sqlite_ingest.elapsed),
            rate(selflog_ingest.stored, selflog_ingest.elapsed),
        );
        table.add(
            "ingest, library API (selflog `Buffered` `append` / SQLite `synchronous=NORMAL`)",
            n,
            "",
            [
                show_rate(sr),
                show_rate(lr),
                speedup(lr / sr),
                format!(
                    "≥ 1,500,000 events/s, 90× the issue's 16,300 ({})",
                    met(lr >= LIBRARY_RATE_MIN)
                ),
            ],
        );
        if sqlite_ingest.stored != selflog_ingest.stored {
            eprintln!(
                "!!!!!!!! MISMATCH: SQLite stored {} events, selflog {}",
                sqlite_ingest.stored, selflog_ingest.stored
            );
            failures += 1;
        }
        notes.push(format!(
            "{}: {} events generated, {} stored by each side after deduplication",
            scale_label(n),
            thousands(n),
            thousands(selflog_ingest.stored)
        ));

        // Bytes per event.
        common::pragma(&conn, "PRAGMA wal_checkpoint(TRUNCATE)").expect("checkpoint");
        let sqlite_bytes = file_len(&db) + file_len(&dir.join("events.db-wal"));
        let stats = store.stats().expect("stats");
        self.bytes_rows(table, sqlite_bytes, &stats, selflog_ingest.stored);

        // Compaction of the sealed segments (what the compaction thread of a running
        // daemon does in the background), then their bytes against the JSON Lines export
        // compressed; the queries below run on the compacted store.
        eprintln!("compare: {n} events: compaction");
        self.compaction_rows(table, &store, sqlite_bytes, selflog_ingest.stored);

        // The old CLI's queries.
        eprintln!("compare: {n} events: queries");
        let mut bench = Bench::new(self.full);
        bench.ids_line_up = false;
        indexed_queries(&mut bench, &conn, &store, selflog_ingest.stored);
        scanning_queries(&mut bench, &conn, &store, true);
        failures += bench.mismatches;
        for line in &bench.lines {
            let detail = line
                .name
                .strip_prefix(line.query.as_str())
                .unwrap_or("")
                .trim()
                .trim_start_matches('(')
                .trim_end_matches(')');
            let ratio = line.ratio();
            table.add(
                &format!("query: {}", line.query),
                n,
                detail,
                [
                    show(line.sqlite),
                    show(line.selflog),
                    speedup(ratio),
                    line.target_text(),
                ],
            );
        }

        // Open after a clean close, then after a SIGKILL of a writer.
        eprintln!("compare: {n} events: open after close and after SIGKILL");
        drop(conn);
        store.close().expect("close");
        self.open_rows(table, &db, &store_dir);

        // The sync pair, on fewer events.
        eprintln!("compare: {n} events: Sync / FULL pair");
        self.sync_rows(table, dir);

        // JSON Lines ingest through the real binary, and peak memory.
        eprintln!("compare: {n} events: JSON Lines ingest");
        failures += self.jsonl_rows(table, dir);
        failures
    }

    /// Inserts the scale's events into a new old-layer database at `path`, as the old layer
    /// did; returns the connection and the timed figures.
    fn ingest_sqlite(&self, path: &Path, n: u64, sync: Synchronous) -> (Connection, Ingested) {
        let mut conn = open_old_database(path, sync, true).expect("open SQLite");
        let mut events = workload(n, self.start, seed());
        let mut elapsed = Duration::ZERO;
        loop {
            let chunk: Vec<Event> = events.by_ref().take(CHUNK_EVENTS).collect();
            if chunk.is_empty() {
                break;
            }
            let started = Instant::now();
            for batch in chunk.chunks(BATCH) {
                let tx = conn.transaction().expect("begin");
                {
                    let mut stmt = tx.prepare_cached(SQL_INSERT).expect("prepare");
                    for e in batch {
                        insert_old(&mut stmt, e, true).expect("insert");
                    }
                }
                tx.commit().expect("commit");
            }
            elapsed += started.elapsed();
        }
        let stored: i64 = conn
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .expect("count");
        let stored = stored.unsigned_abs();
        (conn, Ingested { elapsed, stored })
    }

    /// Appends the scale's events one at a time to a new store at `path`, flushing at the
    /// end of each chunk; returns the store and the timed figures.
    fn ingest_selflog(&self, path: &Path, n: u64, durability: Durability) -> (Store, Ingested) {
        let store = Store::open(path, store_config(durability)).expect("open store");
        let mut events = workload(n, self.start, seed());
        let mut elapsed = Duration::ZERO;
        let mut stored = 0;
        loop {
            let chunk: Vec<Event> = events.by_ref().take(CHUNK_EVENTS).collect();
            if chunk.is_empty() {
                break;
            }
            let started = Instant::now();
            for e in chunk {
                if let Appended::New(_) = store.append(e).expect("append") {
                    stored += 1;
                }
            }
            store.flush().expect("flush");
            elapsed += started.elapsed();
        }
        (store, Ingested { elapsed, stored })
    }

    /// Bytes per stored event on both sides.
    #[expect(clippy::cast_precision_loss, reason = "figures for display")]
    fn bytes_rows(
        &self,
        table: &mut Table,
        sqlite_bytes: u64,
        stats: &selflog::StoreStats,
        stored: u64,
    ) {
        let per = |b: u64| b as f64 / stored.max(1) as f64;
        let (s, l, d) = (
            per(sqlite_bytes),
            per(stats.log_bytes),
            per(stats.disk_bytes),
        );
        table.add(
            "bytes per event on disk (SQLite db + WAL after checkpoint; selflog log)",
            self.n,
            "",
            [
                format!("{s:.1}"),
                format!("{l:.1}"),
                format!("{:.2}× the bytes", l / s),
                format!("≤ 0.6× SQLite ({})", met(l / s <= BYTES_RATIO_MAX)),
            ],
        );
        table.add(
            "bytes per event, disk blocks (selflog: with the preallocated active segment)",
            self.n,
            "",
            [
                format!("{s:.1}"),
                format!("{d:.1}"),
                format!("{:.2}× the bytes", d / s),
                "—".to_owned(),
            ],
        );
    }

    /// Compacts every sealed segment (timed), then compares the sealed segments' bytes per
    /// event with `zstd -3`, `zstd -9` and `gzip -6` of the same events as JSON Lines and
    /// with `SQLite`, and times lookups by id in compacted segments.
    #[expect(clippy::cast_precision_loss, reason = "figures for display")]
    fn compaction_rows(&self, table: &mut Table, store: &Store, sqlite_bytes: u64, stored: u64) {
        let t = Instant::now();
        let done = store.compact().expect("compact");
        let took = t.elapsed();
        let events: u64 = done
            .iter()
            .map(|c| match c.outcome {
                selflog::CompactOutcome::Compacted { events, .. } => events,
                _ => 0,
            })
            .sum();
        let stats = store.stats().expect("stats");
        table.add(
            "compaction of sealed segments, one thread",
            self.n,
            &format!("{} segments", done.len()),
            [
                "—".to_owned(),
                show_rate(rate(events, took)),
                "—".to_owned(),
                "rate in RESULTS".to_owned(),
            ],
        );
        // The JSON Lines export of every event, compressed as a user would.
        let mut jsonl = Vec::new();
        for e in store.scan().expect("scan") {
            jsonl.extend_from_slice(selflog::jsonl::to_line(&e.expect("event")).as_bytes());
            jsonl.push(b'\n');
        }
        let per_all = |b: usize| b as f64 / stored.max(1) as f64;
        let zstd3 = per_all(zstd::bulk::compress(&jsonl, 3).expect("zstd").len());
        let zstd9 = per_all(zstd::bulk::compress(&jsonl, 9).expect("zstd").len());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        gz.write_all(&jsonl).expect("gzip");
        let gzip6 = per_all(gz.finish().expect("gzip").len());
        let sealed = stats.sealed_bytes_per_event();
        let sqlite = sqlite_bytes as f64 / stored.max(1) as f64;
        table.add(
            "bytes per event, sealed segments compacted (selflog) / SQLite db",
            self.n,
            &format!(
                "{} of {} segments; JSON Lines {:.1}, zstd -3 {zstd3:.1}, zstd -9 {zstd9:.1}, gzip -6 {gzip6:.1}",
                stats.compacted_segments,
                stats.sealed_segments,
                per_all(jsonl.len()),
            ),
            [
                format!("{sqlite:.1}"),
                format!("{sealed:.1}"),
                format!("{:.2}× zstd -3", sealed / zstd3),
                if stats.sealed_segments == 0 {
                    "no sealed segment at this scale".to_owned()
                } else {
                    format!("≤ 0.8× zstd -3 ({})", met(sealed <= 0.8 * zstd3))
                },
            ],
        );
        self.lookup_rows(table, store, &stats);
    }

    /// Median time of `Store::get` of ids in compacted segments: the first read of each
    /// (its block not in the block cache; the file in the page cache) and a second one.
    fn lookup_rows(&self, table: &mut Table, store: &Store, stats: &selflog::StoreStats) {
        let sealed_last = stats.sealed_events;
        if stats.compacted_segments == 0 || sealed_last == 0 {
            return;
        }
        let first = stats.first_id.map_or(1, |i| i.0);
        let tries = if self.full { 2_000 } else { 200 };
        let mut cold = Vec::with_capacity(tries);
        let mut warm = Vec::with_capacity(tries);
        let mut x = 0x9E37_79B9_7F4A_7C15_u64;
        for _ in 0..tries {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let id = selflog::EventId(first + (x >> 33) % sealed_last);
            let t = Instant::now();
            let got = store.get(id).expect("get");
            cold.push(t.elapsed());
            let t = Instant::now();
            let again = store.get(id).expect("get");
            warm.push(t.elapsed());
            assert_eq!(got, again);
        }
        cold.sort_unstable();
        warm.sort_unstable();
        let (c, w) = (cold[tries / 2], warm[tries / 2]);
        table.add(
            "get by id in a compacted segment, block cached / not cached (median)",
            self.n,
            &format!("{tries} random ids"),
            [
                "—".to_owned(),
                format!("{} / {}", show(w), show(c)),
                "—".to_owned(),
                format!(
                    "≤ 2 µs cached ({}), ≤ 50 µs not ({})",
                    met(w <= Duration::from_micros(2)),
                    met(c <= Duration::from_micros(50))
                ),
            ],
        );
    }

    /// Open plus the first query after a clean close, and after a writer child was killed.
    fn open_rows(&self, table: &mut Table, db: &Path, store_dir: &Path) {
        let repeats = if self.full { 3 } else { 1 };
        let median = |mut v: Vec<Duration>| {
            v.sort_unstable();
            v[v.len() / 2]
        };
        let clean_sqlite = median((0..repeats).map(|_| open_sqlite(db)).collect());
        let clean_selflog = median((0..repeats).map(|_| open_selflog(store_dir).0).collect());
        table.add(
            "open + first query (newest 50), after a clean close",
            self.n,
            "warm page cache",
            [
                show(clean_sqlite),
                show(clean_selflog),
                speedup(clean_sqlite.as_secs_f64() / clean_selflog.as_secs_f64()),
                "—".to_owned(),
            ],
        );
        let read_only = median(
            (0..repeats)
                .map(|_| open_selflog_read_only(store_dir))
                .collect(),
        );
        table.add(
            "open read-only + first query (newest 50), after a clean close (`selflog inspect`)",
            self.n,
            "warm page cache; SQLite as above",
            [
                show(clean_sqlite),
                show(read_only),
                speedup(clean_sqlite.as_secs_f64() / read_only.as_secs_f64()),
                "—".to_owned(),
            ],
        );
        let mut killed_sqlite = Vec::new();
        let mut killed_selflog = Vec::new();
        let mut killed_open_only = Vec::new();
        for repeat in 0..repeats {
            let child_seed = seed() + 1 + repeat;
            self.kill_writer("kill-sqlite", db, child_seed);
            killed_sqlite.push(open_sqlite(db));
            self.kill_writer("kill-selflog", store_dir, child_seed);
            let (total, open_only) = open_selflog(store_dir);
            killed_selflog.push(total);
            killed_open_only.push(open_only);
        }
        let (ks, kl, ko) = (
            median(killed_sqlite),
            median(killed_selflog),
            median(killed_open_only),
        );
        table.add(
            "open + first query (newest 50), after SIGKILL of a writer",
            self.n,
            &format!("selflog `Store::open` alone {}", show(ko)),
            [
                show(ks),
                show(kl),
                speedup(ks.as_secs_f64() / kl.as_secs_f64()),
                format!("< 200 ms at 10M ({})", met(kl < KILLED_OPEN_MAX)),
            ],
        );
    }

    /// Starts a child that writes to `path` (a `role` of [`child_main`]), waits until it has
    /// committed, lets it write a little longer and kills it with SIGKILL.
    fn kill_writer(&self, role: &str, path: &Path, child_seed: u64) {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .env(CHILD_ENV, role)
            .env(CHILD_PATH_ENV, path)
            .env(CHILD_START_ENV, self.start.0.to_string())
            .env(CHILD_SEED_ENV, child_seed.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the writer child");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("read from the writer child");
        assert_eq!(line.trim(), "ready", "the writer child committed");
        std::thread::sleep(Duration::from_millis(if self.full { 300 } else { 50 }));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    /// The `Sync` / `synchronous=FULL` pair on the first `sync_events` events.
    fn sync_rows(&self, table: &mut Table, dir: &Path) {
        let m = self.sync_events;
        let (conn, sqlite) = self.ingest_sqlite(&dir.join("full.db"), m, Synchronous::Full);
        drop(conn);
        let (store, selflog) = self.ingest_selflog(&dir.join("sync"), m, Durability::Sync);
        store.close().expect("close");
        let (sr, lr) = (
            rate(sqlite.stored, sqlite.elapsed),
            rate(selflog.stored, selflog.elapsed),
        );
        table.add(
            "ingest, library API (selflog `Sync` / SQLite `synchronous=FULL`)",
            self.n,
            &format!("first {} events only", thousands(m)),
            [
                show_rate(sr),
                show_rate(lr),
                speedup(lr / sr),
                "—".to_owned(),
            ],
        );
        let _ = std::fs::remove_dir_all(dir.join("sync"));
        for name in ["full.db", "full.db-wal", "full.db-shm"] {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }

    /// Writes the scale's events as JSON Lines, ingests them with `selflog ingest` and with
    /// a `SQLite` child, and adds the rate and peak memory rows; returns how many counts
    /// differed.
    fn jsonl_rows(&self, table: &mut Table, dir: &Path) -> usize {
        let file = dir.join("events.jsonl");
        {
            let mut out = BufWriter::new(std::fs::File::create(&file).expect("create JSONL"));
            for r in Workload::new(workload_config(self.n, self.start, seed())) {
                out.write_all(to_json_line(&r).as_bytes()).expect("write");
                out.write_all(b"\n").expect("write");
            }
            out.flush().expect("write");
        }
        let store_dir = dir.join("ingested");
        let selflog = measure(
            Command::new(common::selflog_binary())
                .env("SELFLOG_STORE", &store_dir)
                .arg("ingest")
                .arg(&file)
                .arg("--json"),
        );
        let selflog_stored = serde_json::from_str::<serde_json::Value>(&selflog.stdout)
            .ok()
            .and_then(|v| v["appended"].as_u64())
            .unwrap_or_else(|| panic!("selflog ingest printed {:?}", selflog.stdout));
        let db = dir.join("ingested.db");
        let sqlite = measure(
            Command::new(std::env::current_exe().expect("own path"))
                .env(CHILD_ENV, "jsonl-sqlite")
                .env(CHILD_PATH_ENV, &db)
                .env(CHILD_FILE_ENV, &file),
        );
        let sqlite_stored: u64 = sqlite
            .stdout
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the SQLite child printed {:?}", sqlite.stdout));
        let (sr, lr) = (
            rate(sqlite_stored, sqlite.elapsed),
            rate(selflog_stored, selflog.elapsed),
        );
        table.add(
            "ingest of a JSON Lines file (`selflog ingest` / SQLite child: parse + insert)",
            self.n,
            &format!("{} of JSON Lines", show_mb(file_len(&file))),
            [
                show_rate(sr),
                show_rate(lr),
                speedup(lr / sr),
                format!("≥ 25× SQLite ({})", met(lr / sr >= JSONL_RATIO_MIN)),
            ],
        );
        let ratio = |a: u64, b: u64| {
            #[expect(clippy::cast_precision_loss, reason = "a ratio for display")]
            let r = a as f64 / b.max(1) as f64;
            format!("{r:.2}× the memory")
        };
        table.add(
            "peak anonymous memory (RssAnon) of the JSON Lines ingest process",
            self.n,
            "",
            [
                show_mb(sqlite.rss_anon_peak),
                show_mb(selflog.rss_anon_peak),
                ratio(selflog.rss_anon_peak, sqlite.rss_anon_peak),
                format!("< 50 MB ({})", met(selflog.rss_anon_peak < ANON_BYTES_MAX)),
            ],
        );
        table.add(
            "peak RSS (VmHWM, with mapped file pages) of the JSON Lines ingest process",
            self.n,
            "",
            [
                show_mb(sqlite.vm_hwm),
                show_mb(selflog.vm_hwm),
                ratio(selflog.vm_hwm, sqlite.vm_hwm),
                "— (issue: SQLite 266 MB at 1M)".to_owned(),
            ],
        );
        let _ = std::fs::remove_file(&file);
        if sqlite_stored == selflog_stored {
            0
        } else {
            eprintln!(
                "!!!!!!!! MISMATCH: from JSON Lines SQLite stored {sqlite_stored} events, selflog {selflog_stored}"
            );
            1
        }
    }
}

/// Opens the old database, as the old CLI did, and runs the first query; returns the time.
fn open_sqlite(db: &Path) -> Duration {
    let started = Instant::now();
    let conn = open_old_database(db, Synchronous::Normal, false).expect("open SQLite");
    let rows = sql_rows(&conn, SQL_NEWEST, []);
    let elapsed = started.elapsed();
    assert_eq!(rows.len(), 50, "the database has events");
    drop(conn);
    elapsed
}

/// Opens the store for writing (recovery, dedup window) and runs the first query; returns
/// the time of both and of the open alone. The store is closed outside the timed part.
fn open_selflog(dir: &Path) -> (Duration, Duration) {
    let started = Instant::now();
    let store = Store::open(dir, store_config(Durability::Buffered)).expect("open store");
    let open_only = started.elapsed();
    let rows = common::selflog_rows(store.query().limit(50));
    let elapsed = started.elapsed();
    assert_eq!(rows.len(), 50, "the store has events");
    store.close().expect("close");
    (elapsed, open_only)
}

/// Opens the store read-only, as `selflog inspect` does, and runs the first query;
/// returns the time.
fn open_selflog_read_only(dir: &Path) -> Duration {
    let started = Instant::now();
    let store = Store::open_read_only(dir).expect("open store read-only");
    let rows = common::selflog_rows(store.query().limit(50));
    let elapsed = started.elapsed();
    assert_eq!(rows.len(), 50, "the store has events");
    elapsed
}

/// A child process's wall time, peak memory and standard output.
struct Measured {
    /// From spawn to exit.
    elapsed: Duration,
    /// The largest `RssAnon` sampled.
    rss_anon_peak: u64,
    /// The last `VmHWM` sampled (the kernel's peak resident set).
    vm_hwm: u64,
    /// Everything it printed.
    stdout: String,
}

/// Runs `cmd` to completion, sampling its memory every 2 ms; panics if it fails.
fn measure(cmd: &mut Command) -> Measured {
    let started = Instant::now();
    let child = cmd.stdout(Stdio::piped()).spawn().expect("start the child");
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let anon = Arc::new(AtomicU64::new(0));
    let hwm = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, anon, hwm) = (Arc::clone(&done), Arc::clone(&anon), Arc::clone(&hwm));
        std::thread::spawn(move || {
            let path = format!("/proc/{pid}/status");
            while !done.load(Ordering::Relaxed) {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    anon.fetch_max(status_field(&text, "RssAnon:"), Ordering::Relaxed);
                    hwm.fetch_max(status_field(&text, "VmHWM:"), Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let output = child.wait_with_output().expect("wait for the child");
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    assert!(
        output.status.success(),
        "the child failed: {:?}",
        output.status
    );
    Measured {
        elapsed,
        rss_anon_peak: anon.load(Ordering::Relaxed),
        vm_hwm: hwm.load(Ordering::Relaxed),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
    }
}

/// A `kB` field of `/proc/<pid>/status`, in bytes; 0 when absent.
fn status_field(status: &str, name: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A child process's work, chosen by `role`:
/// - `jsonl-sqlite`: parse the JSON Lines file and insert every event into a new old-layer
///   database as the old daemon did (`synchronous=NORMAL`); print the events stored.
/// - `kill-sqlite`, `kill-selflog`: append generated events to the existing database or
///   store for ever, printing `ready` once some are committed; the parent kills it.
fn child_main(role: &str) {
    let path = PathBuf::from(std::env::var_os(CHILD_PATH_ENV).expect("child path"));
    match role {
        "jsonl-sqlite" => {
            let file = std::env::var_os(CHILD_FILE_ENV).expect("child file");
            println!("{}", jsonl_into_sqlite(&path, Path::new(&file)));
        }
        "kill-sqlite" | "kill-selflog" => {
            let start = Timestamp(
                std::env::var(CHILD_START_ENV)
                    .expect("start")
                    .parse()
                    .expect("start"),
            );
            let seed = env_u64(CHILD_SEED_ENV).expect("seed");
            let events = workload(1 << 32, start, seed);
            if role == "kill-sqlite" {
                write_sqlite_until_killed(&path, events);
            } else {
                write_selflog_until_killed(&path, events);
            }
        }
        other => panic!("unknown child role {other:?}"),
    }
}

/// Parses each line of `file` and inserts the events into a new old-layer database at
/// `db`, 100 per transaction; returns the rows stored.
fn jsonl_into_sqlite(db: &Path, file: &Path) -> u64 {
    let mut conn = open_old_database(db, Synchronous::Normal, true).expect("open SQLite");
    let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(file).expect("open"));
    let mut line = Vec::new();
    let mut done = false;
    while !done {
        let tx = conn.transaction().expect("begin");
        {
            let mut stmt = tx.prepare_cached(SQL_INSERT).expect("prepare");
            for _ in 0..BATCH {
                line.clear();
                if reader.read_until(b'\n', &mut line).expect("read") == 0 {
                    done = true;
                    break;
                }
                let text = line.strip_suffix(b"\n").unwrap_or(&line);
                let event = selflog::jsonl::parse_line(text).expect("a generated line parses");
                insert_old(&mut stmt, &event, true).expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    let stored: i64 = conn
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .expect("count");
    stored.unsigned_abs()
}

/// Inserts `events` into the database at `db` in transactions of 100 until killed.
fn write_sqlite_until_killed(db: &Path, mut events: Events) -> ! {
    let mut conn = open_old_database(db, Synchronous::Normal, false).expect("open SQLite");
    for batch in 0u64.. {
        let tx = conn.transaction().expect("begin");
        {
            let mut stmt = tx.prepare_cached(SQL_INSERT).expect("prepare");
            for e in events.by_ref().take(BATCH) {
                insert_old(&mut stmt, &e, true).expect("insert");
            }
        }
        tx.commit().expect("commit");
        if batch == 10 {
            println!("ready");
        }
    }
    unreachable!("the parent kills this process")
}

/// Appends `events` to the store at `dir` until killed.
fn write_selflog_until_killed(dir: &Path, events: Events) -> ! {
    let store = Store::open(dir, store_config(Durability::Buffered)).expect("open store");
    for (i, e) in events.enumerate() {
        store.append(e).expect("append");
        if i == 1000 {
            store.flush().expect("flush");
            println!("ready");
        }
    }
    unreachable!("the parent kills this process")
}

/// The command that produced this run.
fn command(full: bool) -> String {
    if !full {
        return "cargo test --bench compare (smoke mode: 3,000 events, one run per query)"
            .to_owned();
    }
    let mut vars = Vec::new();
    for name in [
        "SELFLOG_COMPARE_SCALES",
        "SELFLOG_COMPARE_SYNC_EVENTS",
        "SELFLOG_COMPARE_DIR",
    ] {
        if let Ok(v) = std::env::var(name) {
            vars.push(format!("{name}={v} "));
        }
    }
    format!("{}cargo bench --bench compare", vars.concat())
}

/// The output of `git` with `args`, trimmed, or "unknown".
fn git(args: &[&str]) -> String {
    Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        )
}

/// Prints the table with the machine, date, commit and command;
/// `at_start` is the machine and the commit, both taken when the run started.
fn print_report(table: &Table, notes: &[String], full: bool, at_start: &[&str; 2], took: Duration) {
    let [machine, commit] = at_start;
    println!("\n## SQLite vs selflog, same events\n");
    println!("Command: `{}`", command(full));
    println!(
        "Date: {}; built at commit {commit}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
    );
    println!("Machine at start: {machine}");
    println!(
        "Load average at end: {}; run took {:.0} s",
        load_average(),
        took.as_secs_f64()
    );
    println!(
        "Workload: selflog_workload defaults (1% duplicates, 2% out of order up to 5 s, 40 days, ~2% of events 2-20 KiB); {}",
        notes.join("; ")
    );
    println!(
        "Queries: median of at least 5 runs and 0.3 s after a warm-up run that also checks both sides return the same ids and hashes{}\n",
        if full { "" } else { " (smoke mode: 1 run)" }
    );
    print!("{}", table.markdown());
}
