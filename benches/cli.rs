//! What a person at the terminal waits for (issue 21): the `selflog` command as whole
//! processes against the `sqlite3` command-line shell on the old layer's database of the
//! same events, and the writable open a daemon pays after a clean close and after SIGKILL.
//!
//! `cargo bench --bench cli` builds a store and a database of `SELFLOG_CLI_EVENTS` events
//! (default 1,000,000; `10000000` for the large store) from [`selflog::workload`]'s
//! defaults (1% duplicates, 2% out of order, 40 days), the store with the library (`append`,
//! a `flush` per 50,000 events, its sealed segments compacted as the compaction thread does
//! (`SELFLOG_CLI_COMPACT=0`: left as written), closed cleanly: its last segment stays
//! unsealed, as a capture daemon's does) and the database as the old layer did (schema, indexes, WAL,
//! gzip above 1 KiB). Then, each the median of `SELFLOG_CLI_RUNS` runs (default 7) after a
//! warm-up run that checks both sides answer the same:
//! - `selflog inspect stats --json` against `SELECT event_type, count(*) … GROUP BY 1`;
//! - `selflog inspect list --limit 50 --json` against the newest 50 rows;
//! - `selflog inspect search zqxjv --json` (no event matches: a full scan) against the old
//!   CLI's `LIKE '%zqxjv%'` over type, action, source and data, newest 10;
//! - peak resident memory of each `selflog` process (`/usr/bin/time -f %M`);
//! - `Store::open` after a clean close, and after a child appending to the store was
//!   killed with SIGKILL, against opening the database and reading the newest 50 rows after
//!   the same.
//!
//! `SELFLOG_CLI_BEFORE_BIN` names another `selflog` build (an earlier commit's) to time on
//! the same store in the same run, shown beside each command's figure.
//!
//! `SELFLOG_CLI_KEEP` names a folder where the store and database are built once and kept:
//! a later run with the same folder reuses them (10M events take minutes to generate),
//! whatever `SELFLOG_CLI_EVENTS` says; the SIGKILL rows' writers add events to each per
//! run (tens of thousands to the store, hundreds to the database), of a type of their own
//! that the stats comparison leaves out; their timestamps are the workload's oldest, so
//! the newest 50 stay the same on both sides. `SELFLOG_CLI_ONLY=opens` times only the two writable opens;
//! `SELFLOG_CLI_ONLY=store-opens` also leaves out `SQLite` (not built, its column "—"), for
//! a 10M-event store on a machine where building the database would take too long;
//! `SELFLOG_CLI_ONLY=clean-open` times only the writable open after a clean close, in a
//! loop of `SELFLOG_CLI_RUNS` opens (no SIGKILL rows, no `SQLite`), so that a profiler
//! attached to this process sees that open and its close alone; it prints the median,
//! the fastest and each run, and also the median of open + one append + `flush` (what a
//! daemon waits for before its first event is safe), timed on the same store.
//!
//! Under `cargo test` (no `--bench`) it runs a smoke pass of 3,000 events, one run each, and
//! fails when the two sides disagree. It needs the `sqlite3` shell (and `/usr/bin/time` for
//! the memory column, which is otherwise left out).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::events::Events;
use selflog::{Config, Event, Store, Timestamp};
use selflog_workload::WorkloadConfig;

#[allow(
    dead_code,
    reason = "shared with the other benches, which use the rest"
)]
mod common;

use common::{insert_old, load_average, machine, open_old_database, show, Synchronous, BATCH};

/// Set in a child process of this bench that appends until it is killed.
const CHILD_ENV: &str = "SELFLOG_CLI_CHILD";
/// The store or database the child appends to.
const CHILD_PATH_ENV: &str = "SELFLOG_CLI_CHILD_PATH";
/// The workload's start, so the child generates the parent's timestamps.
const CHILD_START_ENV: &str = "SELFLOG_CLI_CHILD_START_US";

/// Events per library `flush` while building the store.
const CHUNK_EVENTS: usize = 50_000;
/// Text no event holds: a search for it reads everything.
const ABSENT: &str = "zqxjv";

const SQL_STATS: &str = "SELECT event_type, count(*) FROM events GROUP BY 1";
const SQL_LIST: &str = "SELECT * FROM events ORDER BY timestamp DESC, id DESC LIMIT 50";

fn sql_search() -> String {
    format!(
        "SELECT * FROM events WHERE event_type LIKE '%{ABSENT}%' OR action LIKE '%{ABSENT}%' \
         OR source LIKE '%{ABSENT}%' OR data_json LIKE '%{ABSENT}%' \
         ORDER BY timestamp DESC, id DESC LIMIT 10"
    )
}

#[expect(clippy::too_many_lines, reason = "one run, step by step")]
fn main() {
    if let Ok(role) = std::env::var(CHILD_ENV) {
        child(&role);
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let n: u64 = if full {
        env("SELFLOG_CLI_EVENTS").unwrap_or(1_000_000)
    } else {
        3_000
    };
    let runs: usize = if full {
        env("SELFLOG_CLI_RUNS").map_or(7, |r| usize::try_from(r).expect("runs"))
    } else {
        1
    };
    let machine_at_start = machine();
    let started = Instant::now();
    let only = std::env::var("SELFLOG_CLI_ONLY").unwrap_or_default();
    let with_sqlite = only != "store-opens" && only != "clean-open";
    let only_opens = only == "opens" || !with_sqlite;
    let kept = std::env::var_os("SELFLOG_CLI_KEEP").map(PathBuf::from);
    let temp = match (&kept, std::env::var("SELFLOG_CLI_DIR")) {
        (Some(_), _) => None,
        (None, Ok(dir)) => Some(tempfile::tempdir_in(dir).expect("temp dir")),
        (None, Err(_)) => Some(tempfile::tempdir().expect("temp dir")),
    };
    let root = kept
        .clone()
        .unwrap_or_else(|| temp.as_ref().expect("a temp dir").path().to_owned());
    let db = root.join("events.db");
    let store_dir = root.join("store");
    // A kept store's workload start is kept beside it, so the killed writers' events
    // continue its timeline.
    let start_file = root.join("start_us");
    let (start, generated) = match std::fs::read_to_string(&start_file) {
        Ok(s) if kept.is_some() => (
            Timestamp(s.trim().parse().expect("a kept start_us")),
            "a kept store (SELFLOG_CLI_KEEP), not built by this run".to_owned(),
        ),
        _ => {
            let start = Timestamp(Timestamp::now().0 - 40 * 86_400 * 1_000_000);
            eprintln!("cli bench: building both sides with {n} events");
            std::fs::create_dir_all(&root).expect("create the bench folder");
            if with_sqlite {
                build_sqlite(&db, n, start);
            }
            build_store(&store_dir, n, start);
            std::fs::write(&start_file, start.0.to_string()).expect("write start_us");
            (start, format!("{n} events generated"))
        }
    };

    // The opens are timed in this process: no `selflog` build (nor `cargo` run) for them.
    let bin = if only_opens {
        PathBuf::new()
    } else {
        common::selflog_binary()
    };
    let selflog = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.arg("--store").arg(&store_dir).args(args);
        c
    };
    let sqlite = |sql: &str| {
        // ASCII mode: unit and record separators, which no event's text holds.
        let mut c = Command::new("sqlite3");
        c.arg("-ascii").arg(&db).arg(sql);
        c
    };

    let mut rows = Vec::new();
    let mut mismatches = 0;
    // Each row: what, the selflog arguments, the timed SQL, the SQL whose output is checked
    // against selflog's (only the hash column: gzipped blobs can hold any separator).
    for (what, args, sql, check_sql, check) in [
        (
            "`inspect stats --json` / `SELECT event_type, count(*) … GROUP BY 1`",
            vec!["inspect", "stats", "--json"],
            SQL_STATS.to_owned(),
            SQL_STATS.to_owned(),
            Check::Counts,
        ),
        (
            "`inspect list --limit 50 --json` / newest 50 rows",
            vec!["inspect", "list", "--limit", "50", "--json"],
            SQL_LIST.to_owned(),
            SQL_LIST.replace("SELECT *", "SELECT hash"),
            Check::Hashes(50),
        ),
        (
            "`inspect search zqxjv --json` (no match: full scan) / `LIKE '%zqxjv%'`",
            vec!["inspect", "search", ABSENT, "--json"],
            sql_search(),
            sql_search().replace("SELECT *", "SELECT hash"),
            Check::Hashes(0),
        ),
    ]
    .into_iter()
    .filter(|_| !only_opens)
    {
        let (ours, theirs) = (output(&mut selflog(&args)), output(&mut sqlite(&check_sql)));
        if let Err(why) = check.agree(&ours, &theirs) {
            eprintln!("!!!!!!!! MISMATCH: {what}: {why}");
            mismatches += 1;
        }
        let sqlite_t = median(runs, || timed(&mut sqlite(&sql)));
        let selflog_t = median(runs, || timed(&mut selflog(&args)));
        let rss = peak_rss(&bin, &store_dir, &args);
        // Another build of `selflog` (an earlier commit's) on the same store, same run.
        let before = std::env::var_os("SELFLOG_CLI_BEFORE_BIN").map(|b| {
            let before_bin = PathBuf::from(b);
            let before_t = median(runs, || {
                timed(
                    Command::new(&before_bin)
                        .arg("--store")
                        .arg(&store_dir)
                        .args(&args),
                )
            });
            let rss = peak_rss(&before_bin, &store_dir, &args);
            format!(
                " (before: {}, {}, {})",
                show(before_t),
                ratio(sqlite_t, before_t),
                rss.map_or_else(|| "n/a".to_owned(), mb)
            )
        });
        rows.push([
            what.to_owned(),
            show(sqlite_t),
            format!("{}{}", show(selflog_t), before.unwrap_or_default()),
            ratio(sqlite_t, selflog_t),
            rss.map_or_else(|| "n/a".to_owned(), mb),
        ]);
    }

    if only == "clean-open" {
        clean_open_rows(&mut rows, &store_dir, start, runs);
        print_table(&rows, &generated, runs, full, &machine_at_start, started);
        return;
    }
    open_rows(
        &mut rows,
        with_sqlite.then_some(&*db),
        &store_dir,
        start,
        runs,
        full,
    );

    print_table(&rows, &generated, runs, full, &machine_at_start, started);
    if mismatches > 0 {
        eprintln!("!!!!!!!! {mismatches} commands answered differently");
        std::process::exit(1);
    }
}

/// Prints the table with the command, date, machine and load.
fn print_table(
    rows: &[[String; 5]],
    generated: &str,
    runs: usize,
    full: bool,
    machine_at_start: &str,
    started: Instant,
) {
    println!("\n## The `selflog` command against the `sqlite3` shell, same events\n");
    println!(
        "Command: `{}cargo bench --bench cli`{}",
        [
            "SELFLOG_CLI_EVENTS",
            "SELFLOG_CLI_RUNS",
            "SELFLOG_CLI_DIR",
            "SELFLOG_CLI_KEEP",
            "SELFLOG_CLI_ONLY",
            "SELFLOG_CLI_COMPACT"
        ]
        .iter()
        .filter_map(|v| std::env::var(v).ok().map(|x| format!("{v}={x} ")))
        .collect::<String>(),
        if full {
            ""
        } else {
            " (smoke mode: 3,000 events, 1 run)"
        }
    );
    println!(
        "Date: {}; {generated}; machine at start: {machine_at_start}; load average at end: {}; took {:.0} s",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        load_average(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "Whole processes, median of {runs} (warm page cache); SIGKILL rows median of {}\n",
        runs.min(3)
    );
    println!("| command (selflog / sqlite3) | sqlite3 | selflog | ratio | selflog peak RSS |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!("| {} |", r.join(" | "));
    }
}

/// The writable opens, in this process: after a clean close and after a SIGKILL.
fn open_rows(
    rows: &mut Vec<[String; 5]>,
    db: Option<&Path>,
    store_dir: &Path,
    start: Timestamp,
    runs: usize,
    full: bool,
) {
    let cfg = config();
    let none = || "—".to_owned();
    let s = db.map(|db| median(runs, || open_sqlite(db)));
    let l = median(runs, || open_store(store_dir, &cfg));
    rows.push([
        "writable open after a clean close (`Store::open` / open + newest 50)".to_owned(),
        s.map_or_else(none, show),
        show(l),
        s.map_or_else(none, |s| ratio(s, l)),
        "in-process".to_owned(),
    ]);
    let mut killed_sqlite = Vec::new();
    let mut killed_store = Vec::new();
    for _ in 0..runs.min(3) {
        if let Some(db) = db {
            kill_writer("sqlite", db, start, full);
            killed_sqlite.push(open_sqlite(db));
        }
        kill_writer("selflog", store_dir, start, full);
        killed_store.push(open_store(store_dir, &cfg));
    }
    let s = db.map(|_| mid(killed_sqlite));
    let l = mid(killed_store);
    rows.push([
        "writable open after SIGKILL of a writer (`Store::open` / open + newest 50)".to_owned(),
        s.map_or_else(none, show),
        show(l),
        s.map_or_else(none, |s| ratio(s, l)),
        "in-process".to_owned(),
    ]);
}

/// The writable open after a clean close alone (`SELFLOG_CLI_ONLY=clean-open`): `runs`
/// opens, each closed cleanly (the close not timed), then `runs` opens each followed by one
/// append and its `flush`, timed together.
fn clean_open_rows(rows: &mut Vec<[String; 5]>, store_dir: &Path, start: Timestamp, runs: usize) {
    let cfg = config();
    let opens: Vec<Duration> = (0..runs.max(1))
        .map(|_| open_store(store_dir, &cfg))
        .collect();
    eprintln!(
        "cli bench: clean opens: {}",
        opens.iter().map(|d| show(*d)).collect::<Vec<_>>().join(" ")
    );
    rows.push([
        "writable open after a clean close (`Store::open`)".to_owned(),
        "—".to_owned(),
        show(mid(opens)),
        "—".to_owned(),
        "in-process".to_owned(),
    ]);
    // Events of their own seed and no duplicates among them, so each append is written.
    let mut events = common::events::generate(WorkloadConfig {
        count: 1 << 32,
        start_us: start.0,
        seed: WorkloadConfig::default().seed ^ 0x5eed,
        duplicate_share: 0.0,
        ..WorkloadConfig::default()
    });
    let with_append: Vec<Duration> = (0..runs.max(1))
        .map(|_| {
            let e = events.next().expect("an event");
            let started = Instant::now();
            let store = Store::open(store_dir, cfg.clone()).expect("open store");
            store.append(e).expect("append");
            store.flush().expect("flush");
            let elapsed = started.elapsed();
            store.close().expect("close");
            elapsed
        })
        .collect();
    rows.push([
        "writable open after a clean close + one append + `flush`".to_owned(),
        "—".to_owned(),
        show(mid(with_append)),
        "—".to_owned(),
        "in-process".to_owned(),
    ]);
}

/// The store's configuration: the defaults, with retention off (the events span 40 days).
fn config() -> Config {
    let mut c = Config::default();
    c.retention_age = None;
    c
}

fn workload(n: u64, start: Timestamp, seed: u64) -> Events {
    common::events::generate(WorkloadConfig {
        count: n,
        start_us: start.0,
        seed,
        ..WorkloadConfig::default()
    })
}

fn build_sqlite(db: &Path, n: u64, start: Timestamp) {
    let mut conn = open_old_database(db, Synchronous::Normal, true).expect("open SQLite");
    let mut events = workload(n, start, WorkloadConfig::default().seed);
    loop {
        let batch: Vec<Event> = events.by_ref().take(BATCH).collect();
        if batch.is_empty() {
            break;
        }
        let tx = conn.transaction().expect("begin");
        {
            let mut stmt = tx.prepare_cached(common::SQL_INSERT).expect("prepare");
            for e in &batch {
                insert_old(&mut stmt, e, true).expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    common::pragma(&conn, "PRAGMA wal_checkpoint(TRUNCATE)").expect("checkpoint");
}

fn build_store(dir: &Path, n: u64, start: Timestamp) {
    let store = Store::open(dir, config()).expect("open store");
    let mut events = workload(n, start, WorkloadConfig::default().seed);
    loop {
        let chunk: Vec<Event> = events.by_ref().take(CHUNK_EVENTS).collect();
        if chunk.is_empty() {
            break;
        }
        for e in chunk {
            store.append(e).expect("append");
        }
        store.flush().expect("flush");
    }
    // The sealed segments as a running daemon leaves them: compacted by its background
    // thread (done here at once; `SELFLOG_CLI_COMPACT=0` leaves them as written).
    if std::env::var("SELFLOG_CLI_COMPACT").as_deref() != Ok("0") {
        store.compact().expect("compact");
    }
    store.close().expect("close");
}

/// How the two sides' outputs must agree.
#[derive(Clone, Copy)]
enum Check {
    /// The same count per event type.
    Counts,
    /// The same events (by content hash), this many of them, in the same order.
    Hashes(usize),
}

impl Check {
    fn agree(self, selflog: &str, sqlite: &str) -> Result<(), String> {
        match self {
            Check::Counts => {
                let v: serde_json::Value =
                    serde_json::from_str(selflog).map_err(|e| e.to_string())?;
                let mut ours: Vec<(String, u64)> = v["events_by_type"]
                    .as_object()
                    .ok_or("no events_by_type")?
                    .iter()
                    .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
                    .collect();
                let mut theirs: Vec<(String, u64)> = sqlite
                    .split('\x1e')
                    .filter_map(|l| l.rsplit_once('\x1f'))
                    .map(|(t, n)| (t.to_owned(), n.parse().unwrap_or(0)))
                    .collect();
                ours.retain(|(t, _)| t != KILLED_TYPE);
                theirs.retain(|(t, _)| t != KILLED_TYPE);
                ours.sort();
                theirs.sort();
                (ours == theirs && !ours.is_empty())
                    .then_some(())
                    .ok_or_else(|| format!("{ours:?} against {theirs:?}"))
            }
            Check::Hashes(want) => {
                // Ids differ (the old table's AUTOINCREMENT spends one on each ignored
                // duplicate); content hashes do not.
                let ours: Vec<String> = selflog
                    .lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .filter_map(|v| v["hash"].as_str().map(str::to_owned))
                    .collect();
                let theirs: Vec<String> = sqlite
                    .split('\x1e')
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect();
                (ours == theirs && ours.len() == want)
                    .then_some(())
                    .ok_or_else(|| format!("hashes {ours:?} against {theirs:?}"))
            }
        }
    }
}

/// Runs `cmd` to completion and returns its standard output; panics if it fails.
fn output(cmd: &mut Command) -> String {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (is the sqlite3 shell installed?): {e}"));
    assert!(
        succeeded(cmd, out.status) && (out.status.success() || out.stdout.is_empty()),
        "{cmd:?} failed: {}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `cmd` ended as it should: exit 0, or 1 from `selflog inspect search`, which
/// exits 1 when nothing matched, like grep (the no-match search is a row of this bench).
fn succeeded(cmd: &Command, status: std::process::ExitStatus) -> bool {
    status.success() || (status.code() == Some(1) && cmd.get_args().any(|a| a == "search"))
}

/// Wall time of `cmd` from spawn to exit, output discarded.
fn timed(cmd: &mut Command) -> Duration {
    let started = Instant::now();
    let status = cmd.stdout(Stdio::null()).status().expect("run the command");
    let elapsed = started.elapsed();
    assert!(succeeded(cmd, status), "{cmd:?} failed: {status}");
    elapsed
}

/// Peak resident memory of `selflog` running `args`, by `/usr/bin/time`; `None` without it.
fn peak_rss(bin: &Path, store: &Path, args: &[&str]) -> Option<u64> {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(bin)
        .arg("--store")
        .arg(store)
        .args(args)
        .stdout(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    let kb: u64 = text.lines().last()?.trim().parse().ok()?;
    Some(kb * 1024)
}

#[expect(clippy::cast_precision_loss, reason = "a figure for display")]
fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn median(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    mid((0..runs.max(1)).map(|_| f()).collect())
}

fn mid(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    // On a loaded machine the fastest run is nearer a quiet machine's median than the
    // median is: said on stderr, beside the table's medians.
    eprintln!("cli bench: {} runs, fastest {}", v.len(), show(v[0]));
    v[v.len() / 2]
}

/// How many times faster selflog is (or slower, said so).
fn ratio(sqlite: Duration, selflog: Duration) -> String {
    let r = sqlite.as_secs_f64() / selflog.as_secs_f64().max(1e-9);
    if r >= 1.0 {
        format!("{r:.1}× faster")
    } else {
        format!("{:.1}× slower", 1.0 / r)
    }
}

/// Opens the database as the old CLI did and reads the newest 50 rows.
fn open_sqlite(db: &Path) -> Duration {
    let started = Instant::now();
    let conn = open_old_database(db, Synchronous::Normal, false).expect("open SQLite");
    let rows = common::sql_rows(&conn, SQL_LIST, []);
    let elapsed = started.elapsed();
    assert_eq!(rows.len(), 50);
    elapsed
}

/// `Store::open` alone (recovery, dedup window, threads); the close is not timed.
fn open_store(dir: &Path, cfg: &Config) -> Duration {
    let started = Instant::now();
    let store = Store::open(dir, cfg.clone()).expect("open store");
    let elapsed = started.elapsed();
    store.close().expect("close");
    elapsed
}

/// The event type of what the killed writers append; the workload never uses it.
const KILLED_TYPE: &str = "cli_bench_killed_writer";

/// Starts a child appending to `path` (`role` "selflog" or "sqlite"), waits until it has
/// committed, lets it write on and kills it with SIGKILL.
fn kill_writer(role: &str, path: &Path, start: Timestamp, full: bool) {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .env(CHILD_ENV, role)
        .env(CHILD_PATH_ENV, path)
        .env(CHILD_START_ENV, start.0.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the writer child");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("read from the writer child");
    assert_eq!(line.trim(), "ready", "the writer child committed");
    std::thread::sleep(Duration::from_millis(if full { 300 } else { 50 }));
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
}

/// A child: appends new events to the store or database at `SELFLOG_CLI_CHILD_PATH` until
/// killed, printing `ready` once some are committed.
fn child(role: &str) {
    let path = PathBuf::from(std::env::var_os(CHILD_PATH_ENV).expect("path"));
    let start = Timestamp(
        std::env::var(CHILD_START_ENV)
            .expect("start")
            .parse()
            .expect("start"),
    );
    let seed = WorkloadConfig::default().seed + u64::from(std::process::id());
    // Each side's killed writer commits a different number of events (the store's tens of
    // thousands, the database's a few hundred), so a kept store and database no longer
    // hold the same events: theirs get a type of their own, which the comparison leaves out.
    let mut events = workload(1 << 32, start, seed).map(|mut e| {
        KILLED_TYPE.clone_into(&mut e.event_type);
        e
    });
    if role == "sqlite" {
        let mut conn = open_old_database(&path, Synchronous::Normal, false).expect("open");
        for batch in 0u64.. {
            let tx = conn.transaction().expect("begin");
            {
                let mut stmt = tx.prepare_cached(common::SQL_INSERT).expect("prepare");
                for e in events.by_ref().take(BATCH) {
                    insert_old(&mut stmt, &e, true).expect("insert");
                }
            }
            tx.commit().expect("commit");
            if batch == 10 {
                println!("ready");
            }
        }
    } else {
        let store = Store::open(&path, config()).expect("open store");
        for (i, e) in events.enumerate() {
            store.append(e).expect("append");
            if i == 1000 {
                store.flush().expect("flush");
                println!("ready");
            }
        }
    }
}
