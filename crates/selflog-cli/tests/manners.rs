//! The CLI with journalctl's and ripgrep's manners (issue 24), tried the way a new user
//! would: every time syntax of `--since`/`--until`, every short flag, `list -f`, `export
//! -n`, `count`, whole lines in pipes and cut ones on a terminal, `NO_COLOR`, followers
//! ending when their pipe closes, `maintain --dry-run` read-only, unknown types and sources,
//! `search`'s exit status, `ingest --help` and a byte order mark, progress bars only on a
//! terminal. Every run pins `TZ` (POSIX strings: no tz database needed).

mod common;

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{command, json, selflog_stdin, text};

/// India: +05:30 all year, a zone whose offset is not whole hours.
const INDIA: &str = "IST-5:30";

/// `selflog` on `store` with `TZ` set to `tz`.
fn run_tz(store: &Path, tz: &str, args: &[&str]) -> Output {
    command(store, args)
        .env("TZ", tz)
        .env_remove("NO_COLOR")
        .output()
        .expect("run selflog")
}

/// The ids `list -o jsonl` prints with `args`, in `TZ=tz`.
fn ids(store: &Path, tz: &str, args: &[&str]) -> Vec<u64> {
    let mut all = vec!["inspect", "list", "-o", "jsonl"];
    if !args.contains(&"-n") {
        all.extend(["-n", "1000"]);
    }
    all.extend_from_slice(args);
    let out = run_tz(store, tz, &all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        text(&out.stderr)
    );
    lines(&out)
        .iter()
        .map(|v| v["id"].as_u64().expect("id"))
        .collect()
}

/// Stdout with every run of whitespace made one space: help text, whatever its wrapping.
fn words(out: &Output) -> String {
    text(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// One JSON Lines event.
fn event(ts: f64, event_type: &str, action: Option<&str>, source: &str, data: &str) -> String {
    let action = action.map_or_else(|| "null".to_owned(), |a| format!("\"{a}\""));
    format!(
        "{{\"timestamp\": {ts}, \"event_type\": \"{event_type}\", \"action\": {action}, \"source\": \"{source}\", \"data\": {data}}}\n"
    )
}

/// A store with `events` ingested.
fn store_of(events: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let out = selflog_stdin(&store, &["ingest"], events.as_bytes());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    (dir, store)
}

/// Ten events one second apart from 2024-11-24 14:53:20 UTC (20:23:20 in India): event `i`
/// has id `i + 1`, type `t{i % 3}`, source `Chrome` for even `i` else `Finder`, action `a`
/// except for `i == 9`.
fn ten() -> (tempfile::TempDir, PathBuf) {
    let mut input = String::new();
    for i in 0..10u32 {
        input += &event(
            1_732_460_000.0 + f64::from(i),
            &format!("t{}", i % 3),
            (i != 9).then_some("a"),
            if i % 2 == 0 { "Chrome" } else { "Finder" },
            &format!("{{\"i\": {i}}}"),
        );
    }
    store_of(&input)
}

#[test]
fn since_and_until_take_what_the_tables_print_and_calendar_times() {
    let (_d, store) = ten();
    let from = |n: u64| (n..=10).collect::<Vec<_>>();
    // What the table prints, pasted back, with and without milliseconds and zone.
    let out = run_tz(&store, INDIA, &["inspect", "list", "-r", "-n", "6"]);
    let row = text(&out.stdout).lines().nth(6).unwrap().to_owned();
    let printed: String = row.split("  ").nth(1).unwrap().trim().to_owned();
    assert_eq!(printed, "2024-11-24 20:23:25.000 +05:30");
    for since in [
        printed.as_str(),
        "2024-11-24 20:23:25",
        "2024-11-24 20:23:25.000",
        "2024-11-24T20:23:25",
        "2024-11-24 14:53:25 UTC",
        "2024-11-24T14:53:25Z",
        "2024-11-24T15:53:25+01:00",
        "1732460005",
    ] {
        let mut got = ids(&store, INDIA, &["--since", since]);
        got.sort_unstable();
        assert_eq!(got, from(6), "--since {since:?}");
    }
    // --utc prints UTC and reads zone-less times as UTC.
    let out = run_tz(&store, INDIA, &["inspect", "list", "-n", "1", "--utc"]);
    assert!(
        text(&out.stdout).contains("2024-11-24 14:53:29.000 UTC"),
        "{}",
        text(&out.stdout)
    );
    let got = ids(
        &store,
        INDIA,
        &["--utc", "--since", "2024-11-24 14:53:25", "-r"],
    );
    assert_eq!(got, from(6));
    // --until is exclusive; minutes without seconds.
    let got = ids(&store, INDIA, &["--until", "2024-11-24 20:23:22", "-r"]);
    assert_eq!(got, [1, 2]);
    let got = ids(&store, INDIA, &["--until", "2024-11-24 20:24"]);
    assert_eq!(got.len(), 10);
    // A date is its midnight, in the display's zone.
    assert_eq!(ids(&store, INDIA, &["--since", "2024-11-24"]).len(), 10);
    assert!(ids(&store, INDIA, &["--since", "2024-11-25"]).is_empty());
    assert!(ids(&store, INDIA, &["--until", "2024-11-24"]).is_empty());
    // 14:53 UTC is already the 25th ten hours east.
    assert_eq!(ids(&store, "AEST-10", &["--since", "2024-11-25"]).len(), 10);
    // Bad values are usage errors that teach the syntax.
    for bad in ["someday", "2024-11-24 25:00", "5 parsecs", "+1h ago"] {
        let out = run_tz(&store, INDIA, &["inspect", "list", "--since", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = text(&out.stderr);
        assert!(
            err.contains("invalid time") && err.contains("yesterday") && err.contains("1h30m"),
            "{err}"
        );
    }
}

#[test]
fn since_and_until_take_ages_and_named_days() {
    use chrono::{Timelike as _, Utc};
    let now = Utc::now();
    let now_s = now.timestamp();
    let midnight = now_s - i64::from(now.num_seconds_from_midnight());
    // Event `i + 1` at `times[i]`; the expectations below are computed from these times, so
    // they hold whatever the hour the test runs at.
    let times = [
        midnight - 12 * 3600,
        midnight - 1,
        midnight,
        now_s - 2 * 3600 - 60,
        now_s - 100 * 60,
        now_s - 50 * 60,
        now_s - 60,
    ];
    let input: String = times
        .iter()
        .zip(1..)
        .map(|(&t, i): (&i64, u32)| {
            #[expect(clippy::cast_precision_loss, reason = "seconds since 1970 fit")]
            let t = t as f64;
            event(t, "t", None, "s", &i.to_string())
        })
        .collect();
    let (_d, store) = store_of(&input);
    let within = |lo: i64, hi: i64| -> Vec<u64> {
        (1..)
            .zip(times)
            .filter(|&(_, t)| lo <= t && t < hi)
            .map(|(i, _)| i)
            .collect()
    };
    let set = |args: &[&str]| {
        let mut v = ids(&store, "UTC", args);
        v.sort_unstable();
        v
    };
    let far = i64::MAX / 2;
    assert_eq!(set(&["--since", "1h30m"]), within(now_s - 5400, far));
    assert_eq!(set(&["--since", "1h 30min"]), within(now_s - 5400, far));
    assert_eq!(set(&["--since", "-1h"]), within(now_s - 3600, far));
    assert_eq!(set(&["--since", "90s"]), [7]);
    assert_eq!(set(&["--since", "2h"]), within(now_s - 7200, far));
    assert_eq!(set(&["--since", "2 hours ago"]), within(now_s - 7200, far));
    assert_eq!(
        set(&["--since", "3h", "--until", "-1h"]),
        within(now_s - 3 * 3600, now_s - 3600)
    );
    assert_eq!(set(&["--until", "now"]), [1, 2, 3, 4, 5, 6, 7]);
    assert!(set(&["--since", "now"]).is_empty());
    assert!(set(&["--since", "+1h"]).is_empty());
    assert!(set(&["--since", "tomorrow"]).is_empty());
    assert_eq!(set(&["--since", "today"]), within(midnight, far));
    assert_eq!(
        set(&["--since", "yesterday", "--until", "today"]),
        within(midnight - 86_400, midnight)
    );
    assert_eq!(set(&["--since", "yesterday"]), [1, 2, 3, 4, 5, 6, 7]);
    // The same flags on the other commands that take times.
    let out = run_tz(&store, "UTC", &["inspect", "count", "--since", "1h30m"]);
    assert_eq!(
        text(&out.stdout),
        format!("{}\n", within(now_s - 5400, far).len())
    );
    let out = run_tz(&store, "UTC", &["replay", "--since", "-1h"]);
    assert_eq!(lines(&out).len(), within(now_s - 3600, far).len());
    let out = run_tz(&store, "UTC", &["inspect", "export", "-", "--since", "90s"]);
    assert_eq!(lines(&out).len(), 1);
    let out = run_tz(
        &store,
        "UTC",
        &["inspect", "system-stats", "--since", "yesterday"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn short_flags_mean_what_their_long_forms_mean() {
    let (_d, store) = ten();
    let same = |short: &[&str], long: &[&str]| {
        let a = run_tz(&store, "UTC", short);
        let b = run_tz(&store, "UTC", long);
        assert_eq!(a.status.code(), Some(0), "{short:?}: {}", text(&a.stderr));
        assert_eq!(text(&a.stdout), text(&b.stdout), "{short:?} vs {long:?}");
        assert!(!a.stdout.is_empty(), "{short:?} printed nothing");
        a
    };
    same(
        &[
            "inspect", "list", "-n", "3", "-r", "-t", "t0", "-s", "Chrome", "-o", "jsonl",
        ],
        &[
            "inspect",
            "list",
            "--limit",
            "3",
            "--reverse",
            "--type",
            "t0",
            "--source",
            "Chrome",
            "--output",
            "jsonl",
        ],
    );
    same(
        &["inspect", "list", "-o", "jsonl"],
        &["inspect", "list", "--json"],
    );
    same(
        &["inspect", "list", "-r"],
        &["inspect", "list", "--oldest-first"],
    );
    same(
        &[
            "inspect", "search", "chrome", "-n", "2", "-r", "-t", "t1", "-o", "cat",
        ],
        &[
            "inspect",
            "search",
            "chrome",
            "--limit",
            "2",
            "--reverse",
            "--type",
            "t1",
            "--output",
            "cat",
        ],
    );
    same(
        &["inspect", "export", "-", "-n", "2", "-r", "-s", "Finder"],
        &[
            "inspect",
            "export",
            "-",
            "--limit",
            "2",
            "--reverse",
            "--source",
            "Finder",
        ],
    );
    same(
        &["inspect", "count", "-t", "t0", "-s", "Chrome"],
        &["inspect", "count", "--type", "t0", "--source", "Chrome"],
    );
    same(
        &["inspect", "get", "3", "-o", "json"],
        &["inspect", "get", "3", "--json"],
    );
    same(
        &["inspect", "system-stats", "-n", "1"],
        &["inspect", "system-stats", "--limit", "1"],
    );
}

#[test]
fn short_flags_limit_reverse_filter_and_choose_the_output_mode() {
    let (_d, store) = ten();
    let got = ids(&store, "UTC", &["-n", "3"]);
    assert_eq!(got, [10, 9, 8], "-n: the newest N");
    let got = ids(&store, "UTC", &["-n", "3", "-r"]);
    assert_eq!(got, [1, 2, 3], "-r: oldest first");
    let got = ids(&store, "UTC", &["-t", "t0", "-t", "t1", "-r"]);
    assert_eq!(got, [1, 2, 4, 5, 7, 8, 10], "-t repeated");
    let got = ids(&store, "UTC", &["-s", "Finder", "-r"]);
    assert_eq!(got, [2, 4, 6, 8, 10], "-s");
    // Output modes: cat is the data alone, json one array, jsonl one object per line.
    let out = run_tz(&store, "UTC", &["inspect", "list", "-n", "2", "-o", "cat"]);
    assert_eq!(text(&out.stdout), "{\"i\": 9}\n{\"i\": 8}\n");
    let out = run_tz(&store, "UTC", &["inspect", "list", "-n", "2", "-o", "json"]);
    let v = json(&out);
    assert_eq!(v.as_array().map(Vec::len), Some(2));
    assert_eq!(v[0]["id"], 10);
    let out = run_tz(
        &store,
        "UTC",
        &["inspect", "list", "-t", "t0", "-s", "Finder", "-o", "json"],
    );
    assert_eq!(json(&out)[0]["id"], 10);
    let out = run_tz(&store, "UTC", &["inspect", "get", "3", "-o", "cat"]);
    assert_eq!(text(&out.stdout), "{\"i\": 2}\n");
    let out = run_tz(
        &store,
        "UTC",
        &["inspect", "list", "-o", "short", "-n", "1"],
    );
    assert!(text(&out.stdout).starts_with("ID  TIME"));
    let out = run_tz(&store, "UTC", &["inspect", "list", "-o", "yaml"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown mode is a usage error"
    );
    // -f on replay is --follow (checked with a closed pipe below); -t on patterns is --type.
    let out = run_tz(&store, "UTC", &["inspect", "patterns", "-t", "burst"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// Reads one line from a follower's stdout, failing after a generous deadline instead of
/// hanging the test run.
fn read_line(reader: &mut BufReader<std::process::ChildStdout>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("read a line");
    line
}

/// Waits for `child` to exit, killing it and failing if it has not within a minute (it
/// should exit at once; the minute only keeps a broken build from hanging the suite).
fn exits(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn follower(store: &Path, args: &[&str]) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = command(store, args)
        .env("TZ", "UTC")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    (child, out)
}

#[test]
fn list_follow_prints_the_newest_then_new_events_and_ends_on_sigint() {
    let (_d, store) = ten();
    let (mut child, mut out) = follower(
        &store,
        &[
            "inspect", "list", "-f", "-n", "2", "-o", "jsonl", "-t", "t0",
        ],
    );
    let id = |line: &str| serde_json::from_str::<serde_json::Value>(line).unwrap()["id"].clone();
    assert_eq!(
        id(&read_line(&mut out)),
        7,
        "the newest 2 of type t0, oldest first"
    );
    assert_eq!(id(&read_line(&mut out)), 10);
    let more = [
        event(1_732_470_000.0, "t1", None, "Finder", "1"),
        event(1_732_470_001.0, "t0", None, "Finder", "2"),
    ]
    .concat();
    let added = selflog_stdin(&store, &["ingest"], more.as_bytes());
    assert_eq!(added.status.code(), Some(0));
    assert_eq!(
        id(&read_line(&mut out)),
        12,
        "a new event of type t0; 11 is t1"
    );
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = exits(&mut child, "list -f after SIGINT");
    assert_eq!(status.code(), Some(0), "Ctrl-C ends a follow cleanly");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.is_empty(), "{err}");

    // The table: one header, then rows as they come; without -n, the newest 10.
    let (mut child, mut out) = follower(&store, &["inspect", "list", "-f"]);
    assert!(read_line(&mut out).starts_with("ID  TIME"));
    let first_row = read_line(&mut out);
    assert!(
        first_row.starts_with("3 "),
        "10 newest of 12, oldest first: {first_row}"
    );
    // Closing the pipe ends it, with no further event.
    drop(out);
    let status = exits(&mut child, "list -f after its stdout closed");
    assert_eq!(status.code(), Some(0));
    // -f prints a growing listing: -o json and -r are refused as usage errors.
    for bad in [&["-o", "json"][..], &["-r"][..]] {
        let mut args = vec!["inspect", "list", "-f"];
        args.extend_from_slice(bad);
        let out = run_tz(&store, "UTC", &args);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}

#[test]
fn replay_follow_ends_as_soon_as_its_pipe_closes() {
    let (_d, store) = ten();
    for args in [
        &["replay", "--follow"][..],
        &["replay", "-f", "--from-id", "10"][..],
    ] {
        let (mut child, mut out) = follower(&store, args);
        assert!(read_line(&mut out).contains("\"id\":"));
        // `| head -1`: the reader goes away while replay waits for new events, and none
        // will come.
        drop(out);
        let status = exits(&mut child, "replay --follow after its stdout closed");
        assert_eq!(status.code(), Some(0), "{args:?}");
    }
    // And through a real shell pipe.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' --store '{}' replay --follow | head -1",
            env!("CARGO_BIN_EXE_selflog"),
            store.display()
        ))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout).lines().count(), 1);
}

#[test]
fn export_limit_takes_the_newest_n_written_oldest_first() {
    // Timestamps out of id order and ties: the newest 4 by time are ids 5, 2, 6, 3.
    let input = [
        event(100.0, "t", None, "s", "1"), // id 1
        event(400.0, "t", None, "s", "2"), // id 2
        event(500.0, "t", None, "s", "3"), // id 3
        event(200.0, "t", None, "s", "4"), // id 4
        event(400.0, "t", None, "s", "5"), // id 5: ties with 2
        event(400.0, "t", None, "s", "6"), // id 6: ties with 2 and 5
        event(300.0, "t", None, "s", "7"), // id 7
    ]
    .concat();
    let (dir, store) = store_of(&input);
    let export = |args: &[&str]| -> Vec<u64> {
        let mut all = vec!["inspect", "export", "-"];
        all.extend_from_slice(args);
        lines(&run_tz(&store, "UTC", &all))
            .iter()
            .map(|v| v["id"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(export(&[]), [1, 4, 7, 2, 5, 6, 3], "all, oldest first");
    assert_eq!(
        export(&["-n", "4"]),
        [2, 5, 6, 3],
        "the newest 4, oldest first"
    );
    assert_eq!(export(&["-n", "2"]), [6, 3], "a tie cut between ids");
    assert_eq!(export(&["-n", "4", "-r"]), [3, 6, 5, 2], "-r: newest first");
    assert_eq!(export(&["-r"]), [3, 6, 5, 2, 7, 4, 1]);
    assert_eq!(export(&["-n", "100"]).len(), 7);
    assert!(export(&["-n", "0"]).is_empty());
    assert_eq!(
        ids(&store, "UTC", &["-n", "4"]),
        [3, 6, 5, 2],
        "the same events `list -n 4` shows"
    );
    // To a file, as one array.
    let file = dir.path().join("newest.json");
    let out = run_tz(
        &store,
        "UTC",
        &["inspect", "export", file.to_str().unwrap(), "-n", "3"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let array: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let got: Vec<u64> = array.iter().map(|v| v["id"].as_u64().unwrap()).collect();
    assert_eq!(got, [5, 6, 3]);
    assert!(text(&out.stderr).contains("exported 3 events"));
    let help = words(&run_tz(&store, "UTC", &["inspect", "export", "--help"]));
    assert!(
        help.contains("the newest N matching events, still written oldest first unless -r"),
        "{help}"
    );
}

#[test]
fn count_groups_like_group_by_with_a_histogram() {
    let (_d, store) = ten();
    let count = |args: &[&str]| {
        let mut all = vec!["inspect", "count"];
        all.extend_from_slice(args);
        let out = run_tz(&store, INDIA, &all);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        out
    };
    assert_eq!(text(&count(&[]).stdout), "10\n");
    assert_eq!(text(&count(&["-t", "t0"]).stdout), "4\n");
    assert_eq!(text(&count(&["--action", "a"]).stdout), "9\n");
    assert_eq!(
        json(&count(&["--json", "-s", "Chrome"])),
        serde_json::json!({"total": 5})
    );
    let v = json(&count(&["--by", "type", "--json"]));
    assert_eq!(
        v,
        serde_json::json!({"by": "type", "total": 10, "counts": [
            {"type": "t0", "count": 4}, {"type": "t1", "count": 3}, {"type": "t2", "count": 3}]})
    );
    let v = json(&count(&["--by", "action", "--json"]));
    assert_eq!(
        v["counts"],
        serde_json::json!([{"action": "a", "count": 9}, {"action": null, "count": 1}]),
        "events without an action are a group of their own"
    );
    let v = json(&count(&["--by", "source", "--json", "-t", "t1"]));
    assert_eq!(
        v["counts"],
        serde_json::json!([{"source": "Finder", "count": 2}, {"source": "Chrome", "count": 1}])
    );
    // Hours and days in the display's zone: 20:23 in India, 14:53 in UTC.
    let v = json(&count(&["--by", "hour", "--json"]));
    assert_eq!(v["counts"][0]["hour"], "2024-11-24 20:00 +05:30");
    assert_eq!(v["counts"][0]["start"], 1_732_458_600.0);
    assert_eq!(v["counts"][0]["count"], 10);
    let v = json(&count(&["--by", "hour", "--json", "--utc"]));
    assert_eq!(v["counts"][0]["hour"], "2024-11-24 14:00 UTC");
    let v = json(&count(&["--by", "day", "--json"]));
    assert_eq!(
        v["counts"],
        serde_json::json!([{"day": "2024-11-24", "count": 10, "start": 1_732_386_600.0}])
    );
    // The table: a bar per group, the largest the longest, then the total.
    let table = text(&count(&["--by", "type"]).stdout);
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(
        rows[0].split_whitespace().collect::<Vec<_>>(),
        ["TYPE", "COUNT", "SHARE"]
    );
    assert!(
        rows[1].starts_with("t0") && rows[1].contains("40.0%"),
        "{table}"
    );
    let bar = |row: &str| row.chars().filter(|&c| ('█'..='▏').contains(&c)).count();
    assert!(bar(rows[1]) > 0 && bar(rows[1]) >= bar(rows[2]), "{table}");
    assert_eq!(
        rows[4].split_whitespace().collect::<Vec<_>>(),
        ["total", "10"]
    );
    // Unknown names and fields.
    let out = run_tz(&store, "UTC", &["inspect", "count", "-t", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    let out = run_tz(&store, "UTC", &["inspect", "count", "--by", "week"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn unknown_types_and_sources_are_refused_alike_and_search_exits_1_on_nothing() {
    let (_d, store) = ten();
    for (flag, value, what, known) in [
        (
            "-t",
            "fileop",
            "unknown event type `fileop`",
            "known types: t0, t1, t2",
        ),
        (
            "-s",
            "Chrom",
            "unknown source `Chrom`",
            "known sources: Chrome, Finder",
        ),
    ] {
        for cmd in [
            &["inspect", "list"][..],
            &["inspect", "search", "x"][..],
            &["inspect", "count"][..],
            &["inspect", "export", "-"][..],
        ] {
            let mut args = cmd.to_vec();
            args.extend([flag, value]);
            let out = run_tz(&store, "UTC", &args);
            assert_eq!(out.status.code(), Some(1), "{args:?}");
            let err = text(&out.stderr);
            assert!(err.contains(what) && err.contains(known), "{args:?}: {err}");
            assert!(out.stdout.is_empty());
        }
    }
    // search: 1 and silence when nothing matched, 0 when something did; list: 0 either way.
    for mode in ["short", "jsonl", "json", "cat"] {
        let out = run_tz(
            &store,
            "UTC",
            &["inspect", "search", "nothing-like-this", "-o", mode],
        );
        assert_eq!(out.status.code(), Some(1), "{mode}");
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{mode}");
    }
    let out = run_tz(&store, "UTC", &["inspect", "search", "CHROME"]);
    assert_eq!(out.status.code(), Some(0));
    let out = run_tz(&store, "UTC", &["inspect", "list", "--action", "nothing"]);
    assert_eq!(out.status.code(), Some(0));
    let help = words(&run_tz(&store, "UTC", &["inspect", "search", "--help"]));
    assert!(help.contains("1 when nothing did"), "{help}");
}

/// Runs `script` so that `shell_command` has a terminal (80 columns) for stdout and stderr;
/// returns what the terminal showed.
fn on_terminal(shell_command: &str, no_color: bool) -> String {
    let mut c = Command::new("script");
    c.args([
        "-qec",
        &format!("stty cols 80 rows 24; {shell_command}"),
        "/dev/null",
    ])
    .env("TZ", "UTC")
    .stdin(Stdio::null());
    if no_color {
        c.env("NO_COLOR", "1");
    } else {
        c.env_remove("NO_COLOR");
    }
    let out = c.output().expect("run script(1)");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn lines_are_whole_in_pipes_cut_on_terminals_and_colour_obeys_no_color() {
    let long = format!("\"{}\"", "word ".repeat(100));
    let input = [
        event(1_732_460_000.0, "t", Some("a"), "Chrome", &long),
        event(1_732_460_001.0, "u", Some("a"), "Chrome", "{\"short\": 1}"),
    ]
    .concat();
    let (_d, store) = store_of(&input);
    let out = run_tz(&store, "UTC", &["inspect", "list"]);
    let s = text(&out.stdout);
    assert!(s.contains(&"word ".repeat(99)), "whole in a pipe: {s}");
    assert!(!s.contains('…') && !s.contains('\x1b'), "{s}");
    let bin = env!("CARGO_BIN_EXE_selflog");
    let store_arg = store.display();
    let shown = on_terminal(
        &format!("'{bin}' --store '{store_arg}' inspect list"),
        false,
    );
    let row = shown.lines().find(|l| l.contains("word")).unwrap();
    assert!(row.trim_end_matches('\r').chars().count() <= 80, "{row}");
    assert!(row.contains('…'), "cut on a terminal: {row}");
    assert!(
        shown.contains("\x1b[1mID"),
        "a bold header on a terminal: {shown:?}"
    );
    let shown = on_terminal(
        &format!(
            "'{bin}' --store '{store_arg}' inspect list; '{bin}' --store '{store_arg}' inspect search chrome; '{bin}' --store '{store_arg}' inspect count --by type"
        ),
        true,
    );
    assert!(
        !shown.contains('\x1b'),
        "NO_COLOR: no escape at all: {shown:?}"
    );
    assert!(
        shown.contains("ID  TIME") && shown.contains("COUNT   SHARE"),
        "{shown:?}"
    );
    let shown = on_terminal(
        &format!("'{bin}' --store '{store_arg}' inspect search chrome"),
        false,
    );
    assert!(
        shown.contains("\x1b[1;31mChrome\x1b[0m"),
        "matches highlighted: {shown:?}"
    );
}

#[test]
fn progress_bars_only_on_a_terminal() {
    let (dir, store) = ten();
    let file = dir.path().join("all.jsonl");
    let copy = dir.path().join("copy");
    let replayed = dir.path().join("replayed.jsonl");
    let bin = env!("CARGO_BIN_EXE_selflog");
    let store_arg = store.display();
    // In pipes: stderr holds the summary lines only.
    let out = run_tz(
        &store,
        "UTC",
        &["inspect", "export", file.to_str().unwrap()],
    );
    assert_eq!(
        text(&out.stderr),
        format!("exported 10 events to {}\n", file.display())
    );
    let out = run_tz(&store, "UTC", &["inspect", "verify"]);
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let out = run_tz(&store, "UTC", &["salvage", "--to", copy.to_str().unwrap()]);
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let replay = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{bin}' --store '{store_arg}' replay > '{}'",
            replayed.display()
        ))
        .output()
        .unwrap();
    assert!(replay.stderr.is_empty(), "{}", text(&replay.stderr));
    assert_eq!(
        std::fs::read_to_string(&replayed).unwrap().lines().count(),
        10
    );
    // On a terminal: the bars appear on stderr (and are cleared before the summary).
    std::fs::remove_file(&file).unwrap();
    let shown = on_terminal(
        &format!(
            "'{bin}' --store '{store_arg}' inspect export '{}'; '{bin}' --store '{store_arg}' replay > '{}'",
            file.display(),
            replayed.display()
        ),
        false,
    );
    assert!(
        shown.contains("exporting [") && shown.contains("10/10 events"),
        "{shown:?}"
    );
    assert!(shown.contains("replaying ["), "{shown:?}");
    let shown = on_terminal(
        &format!("'{bin}' --store '{store_arg}' inspect verify"),
        false,
    );
    assert!(shown.contains("verifying every frame"), "{shown:?}");
}

#[test]
fn maintain_dry_run_is_read_only_and_says_why_expired_segments_stay() {
    let dir = tempfile::tempdir().unwrap();
    // Four sealed-or-active small segments of 2024 events, the writer still holding the
    // store: all expired, none deletable (every id is inside the dedup window).
    let store_dir = dir.path().join("s");
    let (writer, _n) = common::small_segments(&store_dir);
    let out = run_tz(&store_dir, "UTC", &["maintain", "--dry-run"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "works while a writer runs: {}",
        text(&out.stderr)
    );
    let s = text(&out.stdout);
    let kept: Vec<&str> = s.lines().filter(|l| l.starts_with("keeping ")).collect();
    let segments = writer.segments().unwrap().len();
    assert_eq!(kept.len(), segments, "{s}");
    assert!(kept[0].contains("inside the dedup window"), "{s}");
    assert!(kept[segments - 1].contains("the last segment"), "{s}");
    assert!(kept[0].contains("newest event 2024-11-24 "), "{s}");
    assert_eq!(s.lines().last(), Some("would delete 0 segments (0 events)"));
    let v = json(&run_tz(
        &store_dir,
        "UTC",
        &["maintain", "--dry-run", "--json"],
    ));
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["deleted"], serde_json::json!([]));
    assert_eq!(v["kept"][0]["why"], "dedup window");
    assert_eq!(v["kept"][segments - 1]["why"], "last segment");
    assert_eq!(v["segments_deleted"], 0);
    // A real run needs the writer lock.
    let out = run_tz(&store_dir, "UTC", &["maintain"]);
    assert_eq!(out.status.code(), Some(1));
    writer.close().unwrap();
    let v = json(&run_tz(&store_dir, "UTC", &["maintain", "--json"]));
    assert_eq!(v["dry_run"], false);
    assert_eq!(v["events_deleted"], 0);
    // Never creates a store.
    let missing = dir.path().join("missing");
    let out = run_tz(&missing, "UTC", &["maintain", "--dry-run", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not a selflog store"));
    assert!(!missing.exists());
}

#[test]
fn ingest_help_documents_the_fields_and_a_byte_order_mark_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let help = words(&run_tz(&store, "UTC", &["ingest", "--help"]));
    for field in [
        "timestamp",
        "event_type",
        "source",
        "action",
        "data",
        "RFC 3339",
        "required",
        "optional",
    ] {
        assert!(help.contains(field), "{field} in:\n{help}");
    }
    let mut input = b"\xEF\xBB\xBF".to_vec();
    input.extend_from_slice(event(1_732_460_000.0, "t", None, "s", "1").as_bytes());
    input.extend_from_slice(b"\xEF\xBB\xBF");
    input.extend_from_slice(event(1_732_460_001.0, "t", None, "s", "2").as_bytes());
    let out = selflog_stdin(&store, &["ingest", "--json"], &input);
    assert_eq!(
        json(&out),
        serde_json::json!({"appended": 1, "duplicates": 0, "rejected": 1}),
        "a mark on line 1 is accepted; elsewhere it is not JSON"
    );
    assert!(
        text(&out.stderr).contains("line 2: "),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn local_times_at_clock_changes_are_the_earlier_instant_or_refused() {
    // New York: clocks went back at 2024-11-03 02:00 EDT (01:00-02:00 happened twice) and
    // forward at 2024-03-10 02:00 EST (02:00-03:00 never happened).
    let new_york = "EST5EDT,M3.2.0,M11.1.0";
    let input = [
        event(1_730_611_800.0, "t", None, "s", "1"), // 2024-11-03 05:30 UTC = 01:30 EDT
        event(1_730_615_400.0, "t", None, "s", "2"), // 2024-11-03 06:30 UTC = 01:30 EST
    ]
    .concat();
    let (_d, store) = store_of(&input);
    let out = run_tz(&store, new_york, &["inspect", "list", "-r"]);
    let s = text(&out.stdout);
    assert!(s.contains("2024-11-03 01:30:00.000 -04:00"), "{s}");
    assert!(s.contains("2024-11-03 01:30:00.000 -05:00"), "{s}");
    // A repeated wall time means its first occurrence; with an offset, exactly that one.
    assert_eq!(
        ids(&store, new_york, &["--since", "2024-11-03 01:30:00"]).len(),
        2
    );
    assert_eq!(
        ids(&store, new_york, &["--since", "2024-11-03 01:30:00 -05:00"]),
        [2]
    );
    let out = run_tz(
        &store,
        new_york,
        &["inspect", "list", "--since", "2024-03-10 02:30"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("does not exist in the local time zone"),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");
}
