//! What the CLI says it did is what it did (issue 20): after a full disk `ingest` reports the
//! events the store really holds; SIGINT and SIGTERM stop `ingest` with a true summary;
//! a huge line does not take memory; `import-sqlite` into a non-empty store keeps patterns
//! on their events; exports never clobber a file, are private, and leave no temporary file.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    command, event_line, event_lines, feed_and_wait, json, selflog, selflog_stdin, text,
    total_events, Tmpfs,
};

/// Sends `signal` (`INT`, `TERM`, `KILL`) to process `pid`.
fn kill(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{signal} {pid}");
}

/// Waits (up to 60 s) until `inspect stats` shows `n` events.
fn wait_for_events(store: &Path, n: u64) {
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        let out = selflog(store, &["inspect", "stats", "--json"]);
        if out.status.success() && json(&out)["total_events"] == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the store never showed {n} events"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks an `ingest --json` that stopped on a store failure: exit 1, one `selflog:` line
/// and a hint on stderr, and a stored count equal to what `inspect stats` shows.
fn assert_failed_ingest_tells_the_truth(store: &Path, out: &std::process::Output, lines: u64) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("selflog: ") && err.contains("disk full"),
        "{err}"
    );
    // The count the hint gives, in words: the number before the first " events".
    let said: u64 = err
        .split(" events")
        .next()
        .and_then(|head| head.rsplit(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of stored events in {err}"));
    assert_eq!(
        said,
        total_events(store),
        "ingest said {said} stored: {err}"
    );
    assert!(
        err.contains(&format!("{said} events of this input are stored")),
        "{err}"
    );
    let v = json(out);
    assert_eq!(v["appended"].as_u64(), Some(said), "{v}");
    // Every line is a distinct event: lines 1..=said are stored, the rest are not.
    assert_eq!(v["resume_line"].as_u64(), Some(said + 1), "{v}");
    assert!(
        err.contains(&format!("ingest again from line {}", said + 1)),
        "{err}"
    );
    assert!(
        said < lines,
        "the disk was meant to fill: {said} of {lines}"
    );
}

/// Issue 20: on a 20 MB tmpfs `ingest` said "100 events before this line were stored"
/// while `inspect stats` showed 0; on 100 MB it claimed 391,044 stored, 382,752 were.
/// 80 MB holds the first 64 MiB segment and not the second: some events are stored, the
/// ones held in memory when the disk filled are not.
#[test]
fn ingest_on_a_full_disk_claims_only_what_stats_shows() {
    let Some(fs) = Tmpfs::mount("80m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let store = fs.path().join("s");
    let lines = 400_000;
    let out = selflog_stdin(&store, &["ingest", "--json"], &event_lines(lines));
    assert_failed_ingest_tells_the_truth(&store, &out, lines);
    assert!(
        total_events(&store) > 100_000,
        "the first segment was filled"
    );
}

/// Issue 20: the 20 MB case: not even the first segment fits, nothing is stored, and
/// ingest must say so.
#[test]
fn ingest_on_a_tiny_disk_claims_nothing_stored() {
    let Some(fs) = Tmpfs::mount("20m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let store = fs.path().join("s");
    let out = selflog_stdin(&store, &["ingest", "--json"], &event_lines(5_000));
    assert_failed_ingest_tells_the_truth(&store, &out, 5_000);
}

/// Issue 20: under `ulimit -f` (no `trap`, as a user's shell runs it) the first segment
/// cannot be allocated: ingest must neither die of SIGXFSZ nor claim events it lost. The
/// limit (20 or 40 MB, depending on the shell's block size) lets the 4 MiB sidecar segments
/// be allocated and not the 64 MiB event segment.
#[test]
fn ingest_under_a_file_size_limit_claims_only_what_stats_shows() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let script = format!(
        "ulimit -f 40000; exec '{}' --store '{}' ingest --json",
        env!("CARGO_BIN_EXE_selflog"),
        store.display()
    );
    let child = Command::new("sh")
        .args(["-c", &script])
        .env_remove("SELFLOG_STORE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = feed_and_wait(child, &event_lines(5_000));
    assert_failed_ingest_tells_the_truth(&store, &out, 5_000);
}

/// Runs `ingest` on a pipe kept open, waits until 1,000 lines are acknowledged, sends more
/// and then `signal`: the summary must say interrupted, exit 130, and count what `inspect
/// stats` shows.
fn ingest_stops_on(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let mut child = command(&store, &["ingest", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&event_lines(1_000)).unwrap();
    stdin.flush().unwrap();
    wait_for_events(&store, 1_000);
    let more: Vec<u8> = (1_000..1_500)
        .flat_map(|i| event_line(i).into_bytes())
        .collect();
    stdin.write_all(&more).unwrap();
    stdin.flush().unwrap();
    kill(child.id(), signal);
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "SIG{signal}: {err}");
    let v = json(&out);
    assert_eq!(v["interrupted"], true, "{v}");
    let said = v["appended"].as_u64().unwrap();
    assert!((1_000..=1_500).contains(&said), "{v}");
    assert_eq!(v["lines_read"].as_u64(), Some(said), "{v}");
    assert_eq!(
        said,
        total_events(&store),
        "SIG{signal}: the summary tells the truth"
    );
}

/// Issue 20: Ctrl-C during `ingest` printed no summary; nothing said what was stored.
#[test]
fn ingest_interrupted_by_sigint_commits_and_says_what_it_stored() {
    ingest_stops_on("INT");
}

/// Issue 20: SIGTERM (a service manager stopping ingest) alike.
#[test]
fn ingest_stopped_by_sigterm_commits_and_says_what_it_stored() {
    ingest_stops_on("TERM");
}

/// The human summary of an interrupted ingest says so.
#[test]
fn ingest_interrupted_says_so_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let mut child = command(&store, &["ingest"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&event_lines(10)).unwrap();
    stdin.flush().unwrap();
    wait_for_events(&store, 10);
    kill(child.id(), "INT");
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(out.status.code(), Some(130));
    let s = text(&out.stdout);
    assert!(
        s.starts_with("ingested 10 events into ")
            && s.contains("; interrupted after line 10, the rest of the input was not read"),
        "{s}"
    );
}

/// Peak resident memory of process `pid` in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Issue 20: a 500 MB line without a newline was held whole in memory (543 MB peak) before
/// it was rejected. A 64 MiB line must be rejected by number, naming the limit, with the
/// peak memory far below the line's size, and the next line still ingested.
#[test]
fn ingest_of_a_huge_line_stays_in_bounded_memory() {
    const HUGE_LEN: usize = 64 << 20;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let mut child = command(&store, &["ingest", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(event_line(1).as_bytes()).unwrap();
    stdin
        .write_all(br#"{"timestamp": 1732460000, "event_type": "t", "source": "s", "data": ""#)
        .unwrap();
    let block = vec![b'x'; 1 << 20];
    for _ in 0..HUGE_LEN >> 20 {
        stdin.write_all(&block).unwrap();
    }
    stdin.write_all(b"\"}\n").unwrap();
    stdin.write_all(event_line(3).as_bytes()).unwrap();
    stdin.flush().unwrap();
    // The pipe stays open: the process is alive while its peak is read.
    wait_for_events(&store, 2);
    let peak_kib = peak_rss_kib(child.id());
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    eprintln!("peak memory {peak_kib} KiB");
    assert!(
        peak_kib * 1024 < HUGE_LEN as u64 / 2,
        "peak memory {peak_kib} KiB for a {HUGE_LEN}-byte line"
    );
    assert_eq!(out.status.code(), Some(1), "a rejected line: {err}");
    assert_eq!(
        json(&out),
        serde_json::json!({"appended": 2, "duplicates": 0, "rejected": 1})
    );
    assert!(
        err.starts_with("selflog: line 2: is longer than the limit of ")
            && err.contains("bytes per line"),
        "{err}"
    );
}

/// A store of 100,000 events (~30 MB of JSON to export, over a second in a debug build),
/// built once per test run under the target directory and shared by the export tests.
fn big_store() -> &'static Path {
    static STORE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    STORE.get_or_init(|| {
        let store = Path::new(env!("CARGO_TARGET_TMPDIR")).join("truth-big-store");
        let _ = std::fs::remove_dir_all(&store);
        let out = selflog_stdin(&store, &["ingest"], &event_lines(100_000));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        store
    })
}

/// The hidden temporary files (`.NAME.PID.tmp`) in `dir`.
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && Path::new(n).extension().is_some_and(|e| e == "tmp"))
        .collect()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Issue 20: `inspect export out.json` over an existing file overwrote it silently, and its
/// 0600 became 0644.
#[test]
fn export_over_an_existing_file_refuses_without_force() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let out = selflog_stdin(&store, &["ingest"], &event_lines(10));
    assert_eq!(out.status.code(), Some(0));
    let file = dir.path().join("out.json");
    std::fs::write(&file, b"precious").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = selflog(&store, &["inspect", "export", file.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err,
        format!(
            "selflog: {} exists; not overwritten\nhint: pass --force to replace it, or choose another name\n",
            file.display()
        )
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
    assert_eq!(mode(&file), 0o600);
    assert!(temp_files(dir.path()).is_empty());
    let out = selflog(
        &store,
        &["inspect", "export", file.to_str().unwrap(), "--force"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let array: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(array.len(), 10);
    assert_eq!(mode(&file), 0o600, "a replaced file is private too");
}

/// Issue 20: exports of private data followed the umask (0644 under umask 022); they must
/// be created 0600 like the store's files, under any umask.
#[test]
fn export_creates_a_private_file_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    selflog_stdin(&store, &["ingest"], &event_lines(10));
    for (umask, name) in [("022", "a.jsonl"), ("000", "b.json"), ("277", "c.json")] {
        let file = dir.path().join(name);
        let script = format!(
            "umask {umask}; exec '{}' --store '{}' inspect export '{}'",
            env!("CARGO_BIN_EXE_selflog"),
            store.display(),
            file.display()
        );
        let out = Command::new("sh").args(["-c", &script]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(mode(&file), 0o600, "umask {umask}");
    }
}

/// Starts `inspect export` of the big store to `file`, and returns once its temporary file
/// exists, with the process stopped (SIGSTOP) so that a signal sent next arrives mid-export.
fn export_caught_writing(file: &Path) -> std::process::Child {
    let child = command(big_store(), &["inspect", "export", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let dir = file.parent().unwrap();
    let deadline = Instant::now() + Duration::from_mins(1);
    while temp_files(dir).is_empty() {
        assert!(Instant::now() < deadline, "no temporary file appeared");
        std::thread::sleep(Duration::from_millis(1));
    }
    kill(child.id(), "STOP");
    assert!(
        !temp_files(dir).is_empty() && !file.exists(),
        "the export finished before it could be stopped"
    );
    child
}

/// Issue 20: Ctrl-C during `inspect export` left a hidden `.NAME.PID.tmp` for good.
#[test]
fn export_interrupted_removes_its_temporary_file() {
    for signal in ["INT", "TERM"] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("all.json");
        let child = export_caught_writing(&file);
        kill(child.id(), signal);
        kill(child.id(), "CONT");
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "SIG{signal}: {err}");
        assert!(err.contains("export interrupted"), "{err}");
        assert_eq!(temp_files(dir.path()), Vec::<String>::new(), "SIG{signal}");
        assert!(!file.exists(), "SIG{signal}: no partial export");
    }
}

/// Issue 20: `kill -9` during `inspect export` left its temporary file for good; the next
/// export to the same name removes it, as its process is gone.
#[test]
fn export_after_a_killed_export_removes_the_stale_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.jsonl");
    let mut child = export_caught_writing(&file);
    kill(child.id(), "KILL");
    child.wait().unwrap();
    let stale = temp_files(dir.path());
    assert_eq!(stale.len(), 1, "{stale:?}");
    // One of a live process stays: it may be an export still running.
    let alive = dir
        .path()
        .join(format!(".all.jsonl.{}.tmp", std::process::id()));
    std::fs::write(&alive, b"").unwrap();
    let store = dir.path().join("s");
    selflog_stdin(&store, &["ingest"], &event_lines(5));
    let out = selflog(&store, &["inspect", "export", file.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("removed {}", dir.path().join(&stale[0]).display())),
        "{err}"
    );
    let left = temp_files(dir.path());
    assert_eq!(left, [format!(".all.jsonl.{}.tmp", std::process::id())]);
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 5);
}

/// An old `SelFlow` `events.db` (the old schema's columns that matter here): events 1, 2,
/// 3, 5, 8 with distinct sources, a pattern about event 3 and one about event 99, which the
/// old system had cleaned up.
fn old_database(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp REAL NOT NULL,
           event_type TEXT NOT NULL, action TEXT, source TEXT NOT NULL, data_json TEXT,
           data_compressed BLOB, hash TEXT UNIQUE, processed BOOLEAN DEFAULT FALSE,
           created_at DATETIME DEFAULT CURRENT_TIMESTAMP);
         CREATE TABLE patterns (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id INTEGER,
           pattern_type TEXT NOT NULL, confidence REAL NOT NULL, pattern_data TEXT NOT NULL,
           embryo_id TEXT, created_at DATETIME DEFAULT CURRENT_TIMESTAMP);
         CREATE TABLE system_stats (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp REAL NOT NULL,
           total_events INTEGER, events_per_second REAL, active_embryos INTEGER, avg_fitness REAL,
           storage_mb REAL, created_at DATETIME DEFAULT CURRENT_TIMESTAMP);
         INSERT INTO events (id, timestamp, event_type, source, data_json, processed) VALUES
           (1, 1732460000.5, 'file_op', 'old-1', '{\"path\":\"/a\"}', 1),
           (2, 1732460001, 'app_launch', 'old-2', NULL, 1),
           (3, 1732460002, 'clipboard', 'old-3', '{\"text\":\"copied\"}', 1),
           (5, 1732460003, 'file_op', 'old-5', NULL, 0),
           (8, 1732460004, 'idle', 'old-8', NULL, 1);
         INSERT INTO patterns (event_id, pattern_type, confidence, pattern_data, embryo_id,
           created_at) VALUES (3, 'burst', 0.9, '{}', 'e1', '2024-11-24 15:00:00'),
           (99, 'gone', 0.5, '{}', NULL, '2024-11-24 15:00:01');",
    )
    .unwrap();
}

/// The pattern of `pattern_type` in `store`, as `inspect patterns --json` prints it.
fn pattern(store: &Path, pattern_type: &str) -> serde_json::Value {
    let out = selflog(store, &["inspect", "patterns", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|p| p["pattern_type"] == pattern_type)
        .unwrap_or_else(|| panic!("no pattern {pattern_type}"))
}

/// Issue 20: `import-sqlite` into a non-empty store renumbered events silently and left
/// `patterns.event_id` as it was, so patterns pointed at unrelated events. A pattern must
/// stay on the event with the same content, and the summary must say how ids were mapped.
#[test]
fn import_into_a_non_empty_store_keeps_patterns_on_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    old_database(&db);
    let store = dir.path().join("s");
    let out = selflog_stdin(&store, &["ingest"], &event_lines(4));
    assert_eq!(out.status.code(), Some(0));
    let out = selflog(&store, &["import-sqlite", db.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("ids renumbered, as the store already held ids up to 4: old ids 1..8 imported as 5..9; patterns moved with their events (1 patterns about events not in the database lost their event id)"),
        "{s}"
    );
    let burst = pattern(&store, "burst");
    let id = burst["event_id"].as_u64().expect("burst keeps an event id");
    let out = selflog(&store, &["inspect", "get", &id.to_string(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let event = json(&out);
    assert_eq!(event["source"], "old-3", "the pattern is about old event 3");
    assert_eq!(event["data"]["text"], "copied");
    assert_eq!(
        pattern(&store, "gone")["event_id"],
        serde_json::Value::Null,
        "old event 99 is not in the store: no event id rather than another event's"
    );
    // Again: nothing twice, and the patterns' ids map to the events already stored.
    let out = selflog(&store, &["import-sqlite", db.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = json(&out);
    assert_eq!(v["duplicates"], 5, "{v}");
    assert_eq!(v["ids"], "renumbered", "{v}");
    assert_eq!(total_events(&store), 9);
    let out = selflog(&store, &["inspect", "patterns", "--json"]);
    assert_eq!(text(&out.stdout).lines().count(), 2, "patterns stored once");
}

/// Into an empty store the original ids are kept, and the summary says so.
#[test]
fn import_into_an_empty_store_keeps_ids_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    old_database(&db);
    let store = dir.path().join("s");
    let out = selflog(&store, &["import-sqlite", db.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("\nids kept: 1..8"),
        "{}",
        text(&out.stdout)
    );
    let out = selflog(&store, &["import-sqlite", db.to_str().unwrap(), "--json"]);
    let v = json(&out);
    assert_eq!(v["duplicates"], 5, "{v}");
    assert_eq!(
        v["ids"], "kept",
        "duplicates of events under their own ids: {v}"
    );
    let out = selflog(&store, &["inspect", "patterns", "--json"]);
    assert_eq!(text(&out.stdout).lines().count(), 2, "patterns stored once");
    assert_eq!(pattern(&store, "burst")["event_id"], 3);
    assert_eq!(pattern(&store, "gone")["event_id"], 99);
    let out = selflog(&store, &["inspect", "get", "3", "--json"]);
    assert_eq!(json(&out)["source"], "old-3");
}

/// A database row whose data is larger than the store accepts is rejected by its size,
/// named with its column, without being fetched; the other rows are imported.
#[test]
fn import_rejects_a_huge_row_by_its_length() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    old_database(&db);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "INSERT INTO events (id, timestamp, event_type, source, data_json) VALUES (9, 1732460005, 't', 'big', ?1)",
        [format!("\"{}\"", "x".repeat(16 << 20))],
    )
    .unwrap();
    drop(conn);
    let store = dir.path().join("s");
    let out = selflog(&store, &["import-sqlite", db.to_str().unwrap(), "--json"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("events row id 9: data_json is 16777218 bytes, over the limit of"),
        "{err}"
    );
    assert_eq!(json(&out)["imported"], 5);
}
