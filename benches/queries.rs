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

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use selflog::{Config, Event, EventId, Store};
use selflog_workload::WorkloadConfig;

#[allow(
    dead_code,
    reason = "shared with benches/compare.rs, which uses the rest"
)]
mod common;

use common::{
    file_len, indexed_queries, insert_old, machine, open_old_database, print_plans,
    scanning_queries, show, Bench, Synchronous, BATCH, SQL_INSERT,
};

/// Creates the old database at `path` and inserts `events` as the old layer did; returns
/// the connection and the time the inserts took.
///
/// The old layer gzipped data over 1 KiB into `data_compressed`; here every event's data is
/// stored uncompressed in `data_json`, so that `LIKE` searches see the same text as
/// selflog's search (the old search could not find text in compressed events at all).
fn load_sqlite(path: &Path, events: &[Event]) -> rusqlite::Result<(Connection, Duration)> {
    let mut conn = open_old_database(path, Synchronous::Normal, true)?;
    let start = Instant::now();
    for chunk in events.chunks(BATCH) {
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(SQL_INSERT)?;
            for e in chunk {
                insert_old(&mut stmt, e, false)?;
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
    let events: Vec<Event> = common::events::generate(WorkloadConfig {
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
    let mut bench = Bench::new(full);
    indexed_queries(&mut bench, &conn, &store, n);
    scanning_queries(&mut bench, &conn, &store, false);
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
