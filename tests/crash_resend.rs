//! After a writer process is killed with SIGKILL: a cursor committed just before the kill
//! is there after reopening, and a daemon that re-sends everything it had in flight stores
//! each event once (each re-sent event already stored is answered with its original id).
//!
//! The child is this test binary re-run on `child_commits_then_appends`, selected by an
//! environment variable naming the store.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use selflog::{Appended, Config, Event, EventId, Store, Timestamp};

const CHILD_ENV: &str = "SELFLOG_RESEND_CHILD";
const T0: i64 = 1_732_460_000_000_000;

fn event(i: u64) -> Event {
    Event::new(
        Timestamp(T0 + i64::try_from(i).unwrap() * 1000),
        "file_op",
        Some("modified"),
        "Finder",
        Some(&format!(r#"{{"i":{i}}}"#)),
    )
    .unwrap()
}

fn config() -> Config {
    let mut c = Config::default();
    c.segment_len = 128 << 10;
    c.data_len_max = 16 << 10;
    c
}

/// The child: stores 1..=300, commits the cursor at 300, says so, then keeps appending and
/// flushing until it is killed.
#[test]
fn child_commits_then_appends() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = Store::open(&dir, config()).unwrap();
    for i in 1..=300 {
        store.append(event(i)).unwrap();
    }
    store.flush().unwrap();
    store
        .cursor("learner")
        .unwrap()
        .commit(EventId(300))
        .unwrap();
    println!("@@ committed 300");
    let mut i = 301;
    loop {
        store.append(event(i)).unwrap();
        if i.is_multiple_of(25) {
            store.flush().unwrap();
            println!("@@ flushed {i}");
        }
        i += 1;
        if i > 200_000 {
            break;
        }
    }
}

#[test]
fn cursor_survives_sigkill_and_a_resend_stores_nothing_twice() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_commits_then_appends",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut flushed = 0u64;
    let mut committed = false;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let Some((_, report)) = line.split_once("@@ ") else {
            continue;
        };
        if report == "committed 300" {
            committed = true;
        } else if let Some(n) = report.strip_prefix("flushed ") {
            flushed = n.parse().unwrap();
            if flushed >= 1000 {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(committed);
    let store = Store::open(&path, config()).unwrap();
    assert_eq!(
        store.cursor("learner").unwrap().position().unwrap(),
        Some(EventId(300)),
        "the cursor committed before the kill"
    );
    let stored = store.stats().unwrap().total_events;
    assert!(stored >= flushed, "{stored} stored, {flushed} flushed");
    // The daemon restarts and re-sends everything it may have had in flight.
    let mut new = 0;
    for i in 1..=stored + 200 {
        match store.append(event(i)).unwrap() {
            Appended::Duplicate(id) => assert_eq!(id, EventId(i), "the original of event {i}"),
            Appended::New(id) => {
                assert!(i > stored, "event {i} was stored already");
                assert_eq!(id, EventId(i));
                new += 1;
            }
        }
    }
    assert_eq!(new, 200);
    store.flush().unwrap();
    assert_eq!(
        store.stats().unwrap().total_events,
        stored + 200,
        "each event once"
    );
}
