//! The `selflog` binary as a person or a script uses it: each command, its output on stdout,
//! its diagnostics on stderr, and its exit status (0 success, 1 error or rejected input,
//! 2 usage error; never 101, which would be a panic).

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn selflog(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_selflog"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("SELFLOG_STORE")
        .output()
        .expect("run selflog")
}

fn selflog_stdin(store: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_selflog"))
        .arg("--store")
        .arg(store)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run selflog");
    // The command may refuse to run and exit before reading its input.
    if let Err(e) = child.stdin.take().expect("stdin").write_all(input) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    child.wait_with_output().expect("wait")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", text(&out.stdout)))
}

const GOOD: &str = r#"{"timestamp": 1732460000.123456, "event_type": "file_op", "action": "modified", "source": "Finder", "data": {"path": "/Users/ada/a.txt", "size": 12}}
{"timestamp": "2024-11-24T15:00:00Z", "event_type": "app_launch", "source": "Google Chrome"}
{"timestamp": 1732460001, "event_type": "clipboard", "action": "copied", "source": "Terminal", "data": "ünïcødé ✓"}
"#;

#[test]
fn ingest_stores_good_lines_and_reports_bad_ones_by_number() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let input = format!(
        "{GOOD}\n{{\"timestamp\": 1,\n[1, 2]\n{{\"timestamp\": 1, \"source\": \"x\"}}\n{{\"timestamp\": 1, \"event_type\": \"\", \"source\": \"x\"}}\n{{\"timestamp\": 99999999999, \"event_type\": \"t\", \"source\": \"x\"}}\n"
    );
    let mut bytes = input.into_bytes();
    bytes.extend_from_slice(b"{\"timestamp\": 1, \"event_type\": \"\xff\", \"source\": \"x\"}\n");
    let file = dir.path().join("in.jsonl");
    std::fs::write(&file, &bytes).unwrap();
    let out = selflog(&store, &["ingest", file.to_str().unwrap(), "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "rejected lines make the exit status 1"
    );
    assert_eq!(
        json(&out),
        serde_json::json!({"appended": 3, "duplicates": 0, "rejected": 6})
    );
    let err = text(&out.stderr);
    for (line, why) in [
        (5, "not valid JSON"),
        (6, "not a JSON object"),
        (7, "`event_type`"),
        (8, "non-empty"),
        (9, "timestamp"),
        (10, "UTF-8"),
    ] {
        assert!(
            err.contains(&format!("line {line}: ")) && err.contains(why),
            "line {line} ({why}) in:\n{err}"
        );
    }
    assert_eq!(
        err.lines().count(),
        6,
        "one line per rejected input line:\n{err}"
    );
    let stats = json(&selflog(&store, &["inspect", "stats", "--json"]));
    assert_eq!(stats["total_events"], 3);
    assert_eq!(stats["events_by_type"]["clipboard"], 1);
    assert_eq!(
        stats["first_timestamp"],
        serde_json::json!(1_732_460_000.123_456)
    );
}

#[test]
fn ingest_reads_stdin_and_prints_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let out = selflog_stdin(&store, &["ingest"], GOOD.as_bytes());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("ingested 3 events"),
        "{}",
        text(&out.stdout)
    );
    assert!(out.stderr.is_empty());
    let out = selflog_stdin(&store, &["ingest", "-", "--json"], b"\n\n   \n");
    assert_eq!(out.status.code(), Some(0), "blank lines are skipped");
    assert_eq!(json(&out)["appended"], 0);
    let out = selflog(&store, &["inspect", "stats"]);
    assert_eq!(out.status.code(), Some(0));
    let s = text(&out.stdout);
    assert!(s.contains("events             3"), "{s}");
    assert!(s.contains("app_launch"), "{s}");
}

#[test]
fn stats_json_has_the_documented_fields() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    selflog_stdin(&store, &["ingest"], GOOD.as_bytes());
    let v = json(&selflog(&store, &["inspect", "stats", "--json"]));
    for field in [
        "total_events",
        "first_timestamp",
        "last_timestamp",
        "segments",
        "disk_bytes",
        "bytes_per_event",
        "compressed_events",
        "events_by_type",
        "log_bytes",
        "compression_ratio",
        "duplicates_dropped",
        "events_last_hour",
        "recent_events_per_second",
    ] {
        assert!(v.get(field).is_some(), "{field} missing from {v}");
    }
    assert_eq!(v["segments"], 1);
    assert!(v["disk_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn verify_is_clean_on_a_sound_store_and_names_file_and_offset_of_damage() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    selflog_stdin(&store, &["ingest"], GOOD.as_bytes());
    let out = selflog(&store, &["inspect", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).starts_with("sound: 1 segments, 3 events"),
        "{}",
        text(&out.stdout)
    );
    let seg = store.join("events-00000001.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[300] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();
    let out = selflog(&store, &["inspect", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("events-00000001.seg: byte "), "{stdout}");
    assert!(stdout.contains("checksum"), "{stdout}");
    let v = json(&selflog(&store, &["inspect", "verify", "--json"]));
    assert_eq!(v["sound"], false);
    let offset = v["problems"][0]["offset"].as_u64().unwrap();
    assert!((256..=300).contains(&offset), "damage located at {offset}");
}

#[test]
fn inspect_refuses_what_is_not_a_store_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let file = dir.path().join("file.db");
    std::fs::write(&file, b"SQLite format 3\0").unwrap();
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), b"hello").unwrap();
    for path in [&missing, &file, &foreign] {
        for cmd in [&["inspect", "stats"][..], &["inspect", "verify"][..]] {
            let out = selflog(path, cmd);
            assert_eq!(out.status.code(), Some(1), "{cmd:?} on {}", path.display());
            let err = text(&out.stderr);
            assert!(
                err.starts_with("selflog: ") && err.contains("not a selflog store"),
                "{err}"
            );
            assert!(out.stdout.is_empty());
        }
    }
    assert!(!missing.exists(), "inspect created the missing directory");
    assert_eq!(std::fs::read_dir(&foreign).unwrap().count(), 1);
    // A writer refuses a foreign directory too, and leaves it alone.
    let out = selflog_stdin(&foreign, &["ingest"], GOOD.as_bytes());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_dir(&foreign).unwrap().count(), 1);
}

#[test]
fn usage_errors_exit_2_and_help_documents_exit_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let out = selflog(dir.path(), &["inspect", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));
    let out = selflog(dir.path(), &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("Exit status"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn store_comes_from_the_environment_when_not_given() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("from-env");
    let mut child = Command::new(env!("CARGO_BIN_EXE_selflog"))
        .args(["ingest", "--json"])
        .env("SELFLOG_STORE", &store)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(GOOD.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(store.join("selflog.meta").exists());
}

#[test]
fn a_second_writer_is_refused_with_the_holders_pid() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    // A long-running ingest holds the writer lock while its stdin stays open.
    let mut holder = Command::new(env!("CARGO_BIN_EXE_selflog"))
        .arg("--store")
        .arg(&store)
        .arg("ingest")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = holder.stdin.take().unwrap();
    stdin.write_all(GOOD.as_bytes()).unwrap();
    stdin.flush().unwrap();
    // Wait until the holder has committed (it flushes when its input pauses).
    let mut seen = 0;
    for _ in 0..500 {
        let out = selflog(&store, &["inspect", "stats", "--json"]);
        if out.status.success() {
            seen = json(&out)["total_events"].as_u64().unwrap_or(0);
            if seen == 3 {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        seen, 3,
        "a reader sees the running writer's committed events"
    );
    let out = selflog_stdin(&store, &["ingest"], GOOD.as_bytes());
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("process {}", holder.id())), "{err}");
    drop(stdin);
    let out = holder.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        json(&selflog(&store, &["inspect", "stats", "--json"]))["total_events"],
        3
    );
}

#[test]
fn demo_appends_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let out = selflog(&store, &["demo", "--events", "20000"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("appended 20000 events"), "{s}");
    assert!(
        s.contains("events/s") && s.contains("bytes per event"),
        "{s}"
    );
    assert!(
        s.contains("inspect stats"),
        "suggests the next command: {s}"
    );
    let v = json(&selflog(&store, &["inspect", "stats", "--json"]));
    // The generator repeats ~1% of events exactly; the store keeps one of each.
    let stored = v["total_events"].as_u64().unwrap();
    assert!((19_600..20_000).contains(&stored), "{stored} stored");
    assert!(s.contains(&format!("now holds {stored} events")), "{s}");
    assert_eq!(
        selflog(&store, &["inspect", "verify"]).status.code(),
        Some(0)
    );
}

#[test]
fn closed_stdout_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    selflog(&store, &["demo", "--events", "2000"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_selflog"))
        .arg("--store")
        .arg(&store)
        .args(["inspect", "stats"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(101), "no panic on a closed pipe");
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
}

/// Stores `n` deterministic events through `ingest`: event `i` has timestamp
/// `1732460000 + i` seconds, type `t{i % 3}`, source "Google Chrome" when `i % 4 == 0`.
fn store_with(n: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let mut input = String::new();
    for i in 0..n {
        let source = if i.is_multiple_of(4) {
            "Google Chrome"
        } else {
            "Finder"
        };
        input.push_str(&format!(
            "{{\"timestamp\": {}, \"event_type\": \"t{}\", \"action\": \"a\", \"source\": \"{source}\", \"data\": {{\"i\": {i}, \"z\": \"last key\"}}}}\n",
            1_732_460_000 + i,
            i % 3
        ));
    }
    let out = selflog_stdin(&store, &["ingest"], input.as_bytes());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    (dir, store)
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn list_is_newest_first_with_a_default_limit_and_filters() {
    let (_d, store) = store_with(120);
    let rows = json_lines(&selflog(&store, &["inspect", "list", "--json"]));
    assert_eq!(rows.len(), 50, "default limit 50");
    assert_eq!(rows[0]["id"], 120);
    assert_eq!(rows[49]["id"], 71);
    let e = &rows[0];
    assert_eq!(e["timestamp"], serde_json::json!(1_732_460_119.0));
    assert_eq!(e["event_type"], "t2");
    assert_eq!(e["action"], "a");
    assert_eq!(e["source"], "Finder");
    assert_eq!(e["data"], serde_json::json!({"i": 119, "z": "last key"}));
    assert_eq!(e["hash"].as_str().unwrap().len(), 16);
    let rows = json_lines(&selflog(
        &store,
        &[
            "inspect",
            "list",
            "--json",
            "--type",
            "t0",
            "--source",
            "Google Chrome",
            "--oldest-first",
            "--limit",
            "3",
        ],
    ));
    let ids: Vec<u64> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [1, 13, 25], "i % 3 == 0 and i % 4 == 0, oldest first");
    let rows = json_lines(&selflog(
        &store,
        &[
            "inspect",
            "list",
            "--json",
            "--since",
            "1732460010",
            "--until",
            "2024-11-24T14:53:40Z",
            "--limit",
            "1000",
        ],
    ));
    assert_eq!(rows.len(), 10, "[since, until)");
    let rows = json_lines(&selflog(
        &store,
        &["inspect", "list", "--json", "--action", "a", "--limit", "7"],
    ));
    assert_eq!(rows.len(), 7, "--action");
    let rows = json_lines(&selflog(
        &store,
        &["inspect", "list", "--json", "--action", "zzz"],
    ));
    assert!(rows.is_empty(), "an action nobody has: nothing");
    let rows = json_lines(&selflog(
        &store,
        &["inspect", "list", "--json", "--hours", "1"],
    ));
    assert!(
        rows.is_empty(),
        "the events are from 2024, none in the last hour"
    );
    // Human output: a header and one aligned row per event, no colour in a pipe.
    let out = selflog(&store, &["inspect", "list", "--limit", "3"]);
    let s = text(&out.stdout);
    assert_eq!(s.lines().count(), 4, "{s}");
    assert!(s.starts_with("ID"), "{s}");
    assert!(!s.contains('\x1b'), "no colour in a pipe");
}

#[test]
fn search_is_case_insensitive_and_get_and_export_round_trip() {
    let (dir, store) = store_with(40);
    let rows = json_lines(&selflog(&store, &["inspect", "search", "CHROME", "--json"]));
    assert_eq!(rows.len(), 10, "default limit 10");
    assert!(rows.iter().all(|r| r["source"] == "Google Chrome"));
    let out = selflog(&store, &["inspect", "get", "7", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["id"], 7);
    assert_eq!(v["data"]["i"], 6);
    let out = selflog(&store, &["inspect", "get", "4000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no event with id 4000"));
    // Export, then ingest the export into a new store: the same events.
    let file = dir.path().join("all.json");
    let out = selflog(&store, &["inspect", "export", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let array: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(array.len(), 40);
    assert_eq!(array[0]["id"], 1, "oldest first");
    let lines = dir.path().join("all.jsonl");
    selflog(&store, &["inspect", "export", lines.to_str().unwrap()]);
    let copy = dir.path().join("copy");
    let out = selflog(&copy, &["ingest", lines.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let a = json_lines(&selflog(&store, &["inspect", "export", "-"]));
    let b = json_lines(&selflog(&copy, &["inspect", "export", "-"]));
    assert_eq!(a, b, "export round trip");
    assert!(!dir.path().read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
    let out = selflog(
        &store,
        &[
            "inspect",
            "export",
            dir.path().join("x.csv").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "unknown format");
    let out = selflog(&store, &["inspect", "list", "--since", "someday"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an invalid time is a usage error"
    );
    assert!(text(&out.stderr).contains("invalid time"));
}

#[test]
fn segments_replay_and_completions() {
    let (_d, store) = store_with(30);
    let rows = json_lines(&selflog(&store, &["inspect", "segments", "--json"]));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["events"], 30);
    assert_eq!(rows[0]["first_id"], 1);
    assert_eq!(rows[0]["last_id"], 30);
    assert_eq!(rows[0]["sealed"], false);
    let out = selflog(&store, &["inspect", "segments"]);
    assert!(text(&out.stdout).contains("events-00000001.seg"));
    let all = json_lines(&selflog(&store, &["replay"]));
    let ids: Vec<u64> = all.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=30).collect::<Vec<_>>(), "id order");
    let tail = json_lines(&selflog(&store, &["replay", "--from-id", "28"]));
    assert_eq!(tail.len(), 3);
    let since = json_lines(&selflog(&store, &["replay", "--since", "1732460025"]));
    assert_eq!(since.len(), 5);
    let out = selflog(&store, &["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("selflog"));
}

#[test]
fn replay_follow_sees_events_another_process_appends() {
    use std::io::BufRead as _;
    let (_d, store) = store_with(3);
    let mut follower = Command::new(env!("CARGO_BIN_EXE_selflog"))
        .arg("--store")
        .arg(&store)
        .args(["replay", "--follow", "--from-id", "2"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(follower.stdout.take().unwrap()).lines();
    let mut next_id = || -> u64 {
        let line = lines.next().expect("a line").expect("readable");
        serde_json::from_str::<serde_json::Value>(&line).unwrap()["id"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(next_id(), 2);
    assert_eq!(next_id(), 3);
    let more = r#"{"timestamp": 1732470000, "event_type": "late", "source": "writer"}"#;
    let out = selflog_stdin(&store, &["ingest"], more.as_bytes());
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(next_id(), 4, "the follower sees the new event");
    follower.kill().unwrap();
    follower.wait().unwrap();
}

#[test]
fn replay_with_a_cursor_commits_what_stdout_accepted() {
    let (_d, store) = store_with(10);
    let rows = json_lines(&selflog(
        &store,
        &["replay", "--cursor", "learner", "--commit"],
    ));
    assert_eq!(rows.len(), 10);
    let c = json_lines(&selflog(&store, &["inspect", "cursors", "--json"]));
    assert_eq!(
        c,
        [serde_json::json!({"name": "learner", "position": 10, "unprocessed": 0})]
    );
    let more = r#"{"timestamp": 1732470000, "event_type": "x", "source": "y"}"#;
    selflog_stdin(&store, &["ingest"], more.as_bytes());
    let c = json_lines(&selflog(&store, &["inspect", "cursors", "--json"]));
    assert_eq!(c[0]["unprocessed"], 1);
    let rows = json_lines(&selflog(&store, &["replay", "--cursor", "learner"]));
    assert_eq!(rows.len(), 1, "only what is after the cursor");
    assert_eq!(rows[0]["id"], 11);
    let rows = json_lines(&selflog(&store, &["replay", "--cursor", "learner"]));
    assert_eq!(rows.len(), 1, "without --commit the cursor stays");
    let out = selflog(&store, &["replay", "--cursor", "bad/name"]);
    assert_eq!(out.status.code(), Some(1));
}

/// An old `SelFlow` `events.db` with the exact old schema: ids with a gap, gzip-compressed
/// data, NULL action and data, processed flags, and a pattern whose event was cleaned up.
#[expect(clippy::too_many_lines, reason = "one fixture, row by row")]
#[expect(
    clippy::type_complexity,
    reason = "the old table's columns, as a literal"
)]
fn old_database(path: &Path) {
    use std::io::Write as _;
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp REAL NOT NULL,
           event_type TEXT NOT NULL, action TEXT, source TEXT NOT NULL, data_json TEXT,
           data_compressed BLOB, hash TEXT UNIQUE, processed BOOLEAN DEFAULT FALSE,
           created_at DATETIME DEFAULT CURRENT_TIMESTAMP);
         CREATE TABLE patterns (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id INTEGER,
           pattern_type TEXT NOT NULL, confidence REAL NOT NULL, pattern_data TEXT NOT NULL,
           embryo_id TEXT, created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
           FOREIGN KEY (event_id) REFERENCES events (id));
         CREATE TABLE system_stats (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp REAL NOT NULL,
           total_events INTEGER, events_per_second REAL, active_embryos INTEGER, avg_fitness REAL,
           storage_mb REAL, created_at DATETIME DEFAULT CURRENT_TIMESTAMP);
         CREATE INDEX idx_events_timestamp ON events(timestamp);
         CREATE INDEX idx_events_type ON events(event_type);
         CREATE INDEX idx_events_source ON events(source);",
    )
    .unwrap();
    let big = format!(r#"{{"clipboard":"{}"}}"#, "copied text ".repeat(200));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(big.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let mut insert = conn
        .prepare(
            "INSERT INTO events (id, timestamp, event_type, action, source, data_json, data_compressed, hash, processed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .unwrap();
    let rows: [(
        i64,
        f64,
        &str,
        Option<&str>,
        &str,
        Option<&str>,
        Option<&[u8]>,
        bool,
    ); 5] = [
        (
            1,
            1_732_460_000.5,
            "file_op",
            Some("modified"),
            "Finder",
            Some(r#"{"path":"/a"}"#),
            None,
            true,
        ),
        (
            2,
            1_732_460_001.25,
            "app_launch",
            None,
            "Google Chrome",
            None,
            None,
            true,
        ),
        (
            3,
            1_732_460_002.0,
            "clipboard",
            Some("copied"),
            "Terminal",
            None,
            Some(&gz),
            true,
        ),
        (
            5,
            1_732_460_003.0,
            "file_op",
            Some("created"),
            "Finder",
            Some(r#"{"path":"/b"}"#),
            None,
            false,
        ),
        (
            8,
            1_732_460_004.0,
            "idle",
            None,
            "system",
            Some("null"),
            None,
            true,
        ),
    ];
    for (id, ts, t, a, s, d, z, p) in rows {
        insert
            .execute(rusqlite::params![
                id,
                ts,
                t,
                a,
                s,
                d,
                z,
                format!("h{id}"),
                p
            ])
            .unwrap();
    }
    // The old system ran without foreign-key enforcement (Python's sqlite3 default), which
    // is how a pattern outlives its event after cleanup.
    conn.execute_batch(
        "PRAGMA foreign_keys = OFF;
         INSERT INTO patterns (event_id, pattern_type, confidence, pattern_data, embryo_id)
           VALUES (3, 'burst', 0.9, '{}', 'e1'), (99, 'gone', 0.5, '{}', NULL);
         INSERT INTO system_stats (timestamp, total_events, events_per_second, active_embryos,
           avg_fitness, storage_mb) VALUES (1732460005, 5, 1.0, 30, 0.5, 0.1);",
    )
    .unwrap();
}

#[test]
fn import_sqlite_keeps_ids_decompresses_and_maps_processed_to_a_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    old_database(&db);
    let store = dir.path().join("s");
    let out = selflog(&store, &["import-sqlite", db.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = json(&out);
    assert_eq!(v["imported"], 5);
    assert_eq!(v["duplicates"], 0);
    assert_eq!(v["processed_cursor"], 3, "1..=3 processed, 5 not");
    assert_eq!(v["patterns"], 2);
    assert_eq!(v["system_stats"], 1);
    let pats = json_lines(&selflog(&store, &["inspect", "patterns", "--json"]));
    assert_eq!(pats.len(), 2);
    assert_eq!(
        pats[1]["event_id"], 99,
        "a pattern whose event was cleaned up is kept"
    );
    let about3 = json_lines(&selflog(
        &store,
        &["inspect", "patterns", "--event", "3", "--json"],
    ));
    assert_eq!(about3.len(), 1);
    assert_eq!(about3[0]["pattern_type"], "burst");
    assert_eq!(about3[0]["embryo_id"], "e1");
    assert_eq!(
        json_lines(&selflog(
            &store,
            &["inspect", "patterns", "--min-confidence", "0.8", "--json"]
        ))
        .len(),
        1
    );
    let stats = json_lines(&selflog(&store, &["inspect", "system-stats", "--json"]));
    assert_eq!(stats.len(), 1);
    // The table's time column is the one time display (issue 24): a snapshot in India.
    let out = Command::new(env!("CARGO_BIN_EXE_selflog"))
        .arg("--store")
        .arg(&store)
        .args(["inspect", "system-stats", "--since", "2024-11-24 20:23:25"])
        .env("TZ", "IST-5:30")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    check_snapshot("system_stats.txt", &text(&out.stdout));
    assert_eq!(stats[0]["total_events"], 5);
    assert_eq!(stats[0]["active_embryos"], 30);
    let rows = json_lines(&selflog(&store, &["replay"]));
    let ids: Vec<u64> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [1, 2, 3, 5, 8], "original ids kept, gaps and all");
    assert_eq!(rows[0]["timestamp"], serde_json::json!(1_732_460_000.5));
    assert_eq!(rows[0]["data"], serde_json::json!({"path": "/a"}));
    assert_eq!(rows[1]["action"], serde_json::Value::Null);
    assert_eq!(rows[1]["data"], serde_json::Value::Null);
    assert_eq!(
        rows[2]["data"]["clipboard"].as_str().unwrap().len(),
        2400,
        "gzip decompressed"
    );
    assert_eq!(rows[4]["data"], serde_json::Value::Null);
    let cursors = json_lines(&selflog(&store, &["inspect", "cursors", "--json"]));
    assert_eq!(cursors[0]["name"], "processed");
    assert_eq!(cursors[0]["position"], 3);
    assert_eq!(cursors[0]["unprocessed"], 2);
    // Again: nothing is stored twice.
    let out = selflog(&store, &["import-sqlite", db.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(json(&out)["duplicates"], 5);
    assert_eq!(
        json(&selflog(&store, &["inspect", "stats", "--json"]))["total_events"],
        5
    );
    // Not a database: a clear error.
    let out = selflog(
        &store,
        &[
            "import-sqlite",
            dir.path().join("nope.db").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not a file"));
}

#[test]
fn maintain_reports_what_retention_deletes() {
    let (_d, store) = store_with(20);
    let out = selflog(&store, &["maintain", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // One unsealed segment, from 2024: expired, but the last one, so nothing to delete
    // (the output changed with issue 24: it says why the expired segment stays).
    assert_eq!(
        text(&out.stdout).lines().last(),
        Some("would delete 0 segments (0 events)")
    );
    assert!(
        text(&out.stdout).contains("keeping events-00000001.seg: expired"),
        "{}",
        text(&out.stdout)
    );
    let out = selflog(&store, &["maintain"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).lines().last(),
        Some("deleted 0 segments (0 events)")
    );
    let out = selflog(&store.join("missing"), &["maintain", "--dry-run"]);
    assert_eq!(out.status.code(), Some(1), "a dry run creates nothing");
    assert!(!store.join("missing").exists());
    let out = selflog(&store.join("missing"), &["maintain"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "maintain creates a missing store like any writer"
    );
}

#[test]
fn unknown_type_is_an_error_naming_the_known_ones() {
    let (_d, store) = store_with(6);
    let out = selflog(&store, &["inspect", "list", "--type", "fileop"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("unknown event type `fileop`"), "{err}");
    assert!(err.contains("t0, t1, t2"), "{err}");
}

/// Human output in a pipe is stable: compared with checked-in snapshots, with the time zone
/// pinned (`TZ`, POSIX strings, so no tz database is needed) and the temporary store's path
/// replaced by `STORE`. Regenerate with
/// `SELFLOG_WRITE_SNAPSHOTS=1 cargo test -p selflog-cli --test cli snapshots`.
#[test]
fn human_output_snapshots() {
    let (_d, store) = store_with(8);
    // Issue 24: one time display everywhere (local time with its offset, or UTC with
    // --utc), count's histogram, maintain's reasons, -o modes.
    let india = "IST-5:30";
    let new_york = "EST5EDT,M3.2.0,M11.1.0";
    for (name, tz, args) in [
        ("list.txt", "UTC", &["inspect", "list", "--limit", "5"][..]),
        (
            "list_offset.txt",
            india,
            &["inspect", "list", "-n", "3"][..],
        ),
        (
            "list_utc.txt",
            india,
            &["inspect", "list", "-n", "3", "--utc"][..],
        ),
        (
            "list_reverse_cat.txt",
            new_york,
            &["inspect", "list", "-r", "-n", "3", "-o", "cat"][..],
        ),
        (
            "list_json.txt",
            "UTC",
            &["inspect", "list", "-n", "2", "-o", "json"][..],
        ),
        ("search.txt", "UTC", &["inspect", "search", "chrome"][..]),
        ("get.txt", "UTC", &["inspect", "get", "3"][..]),
        ("get_offset.txt", new_york, &["inspect", "get", "3"][..]),
        ("stats.txt", india, &["inspect", "stats"][..]),
        ("segments.txt", india, &["inspect", "segments"][..]),
        ("count.txt", "UTC", &["inspect", "count"][..]),
        (
            "count_by_type.txt",
            "UTC",
            &["inspect", "count", "--by", "type"][..],
        ),
        (
            "count_by_source.txt",
            "UTC",
            &["inspect", "count", "--by", "source", "-t", "t0"][..],
        ),
        (
            "count_by_hour.txt",
            india,
            &["inspect", "count", "--by", "hour"][..],
        ),
        (
            "count_by_day.txt",
            new_york,
            &["inspect", "count", "--by", "day", "--json"][..],
        ),
        (
            "maintain_dry_run.txt",
            india,
            &["maintain", "--dry-run"][..],
        ),
        (
            "maintain_dry_run_json.txt",
            "UTC",
            &["maintain", "--dry-run", "--json"][..],
        ),
        (
            "export_newest.txt",
            "UTC",
            &["inspect", "export", "-", "-n", "3"][..],
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_selflog"))
            .arg("--store")
            .arg(&store)
            .args(args)
            .env("TZ", tz)
            .env_remove("NO_COLOR")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        let got = text(&out.stdout).replace(store.to_str().unwrap(), "STORE");
        check_snapshot(name, &got);
    }
}

/// Compares `got` with `tests/snapshots/NAME`, or writes it there when
/// `SELFLOG_WRITE_SNAPSHOTS` is set.
fn check_snapshot(name: &str, got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("SELFLOG_WRITE_SNAPSHOTS").is_some() {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(got, want, "{name} changed");
}
