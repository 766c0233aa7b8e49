//! `selflog salvage` as a person runs it on a damaged store (issue 20): what it prints per
//! file, its `--json` object, and its exit status (0 when everything whose checksum holds
//! was copied, 1 when it refuses or fails, with one line on stderr).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use selflog::{Config, Event, EventId, Store, Timestamp};

const N: u64 = 4000;

fn selflog(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_selflog"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("SELFLOG_STORE")
        .output()
        .expect("run selflog")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A store of `N` events in 64 KiB segments, with a cursor.
fn written(dir: &Path) -> PathBuf {
    let path = dir.join("s");
    let mut c = Config::default();
    c.segment_len = selflog::SEGMENT_LEN_MIN;
    c.data_len_max = 16 << 10;
    c.retention_age = None;
    let store = Store::open(&path, c).unwrap();
    for i in 0..N {
        let e = Event::new(
            Timestamp(1_732_460_000_000_000 + i.cast_signed() * 1000),
            "file_op",
            Some("modified"),
            format!("app-{}", i % 7),
            Some(&format!(r#"{{"i":{i}}}"#)),
        )
        .unwrap();
        store.append(e).unwrap();
    }
    store.flush().unwrap();
    store.cursor("learner").unwrap().commit(EventId(N)).unwrap();
    store.close().unwrap();
    path
}

/// Garbage over `selflog.meta` made salvage refuse the store ("not a selflog store").
#[test]
fn salvage_with_garbage_meta_copies_every_event_and_says_meta_was_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let store = written(dir.path());
    std::fs::write(store.join("selflog.meta"), [0x42u8; 32]).unwrap();
    let copy = dir.path().join("copy");
    let out = selflog(&store, &["salvage", "--to", copy.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("selflog.meta is damaged"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "copied {N} events into {} (0 unreadable, 0 lost, 0 bytes skipped)",
            copy.display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("1 cursors"), "{stdout}");
    let ro = Store::open_read_only(&copy).unwrap();
    assert_eq!(ro.stats().unwrap().total_events, N);
    assert_eq!(
        ro.cursors().unwrap().sound,
        vec![("learner".to_owned(), EventId(N))]
    );
}

/// A zeroed header made salvage skip the whole segment and say "0 unreadable". The JSON
/// report now has a line per file saying where its ids came from, with the old fields kept.
#[test]
fn salvage_json_counts_per_file_after_a_zeroed_header() {
    let dir = tempfile::tempdir().unwrap();
    let store = written(dir.path());
    let seg = store.join("events-00000002.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[..256].fill(0);
    std::fs::write(&seg, &bytes).unwrap();
    let copy = dir.path().join("copy");
    let out = selflog(
        &store,
        &["salvage", "--to", copy.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["events_copied"], N);
    assert_eq!(v["events_unreadable"], 0);
    assert_eq!(v["events_lost"], 0);
    assert_eq!(v["bytes_skipped"], 0);
    assert_eq!(v["skipped"], serde_json::json!([]));
    assert_eq!(v["meta_damaged"], serde_json::Value::Null);
    let files = v["files"].as_array().unwrap();
    assert!(files.len() >= 3);
    let sum: u64 = files
        .iter()
        .map(|f| f["events_copied"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, N);
    assert_eq!(files[1]["file"], seg.display().to_string());
    assert_eq!(files[1]["stream"], "events");
    assert_eq!(files[1]["ids"], "footer");
    assert_eq!(files[1]["timestamps"], "footer");
    assert_eq!(files[0]["ids"], "header");
    assert_eq!(
        files[1]["first_id"],
        files[0]["last_id"].as_u64().unwrap() + 1
    );
    assert!(files[1]["notes"][0]
        .as_str()
        .unwrap()
        .starts_with("header unusable"));
    assert_eq!(v["cursors_copied"][0]["name"], "learner");
}

/// Salvage into a store that held events said "copied 990064" and exited 0 though it
/// copied nothing: now one line on stderr, exit 1, nothing written.
#[test]
fn salvage_into_a_non_empty_destination_exits_1_and_copies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = written(dir.path());
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("keep.txt"), "mine").unwrap();
    let out = selflog(&store, &["salvage", "--to", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("selflog: ") && stderr.contains("not empty"),
        "{stderr}"
    );
    let entries: Vec<_> = std::fs::read_dir(&other).unwrap().collect();
    assert_eq!(entries.len(), 1);
}

/// Salvage into its own source (or a directory inside it) is refused the same way.
#[test]
fn salvage_into_its_own_source_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let store = written(dir.path());
    let before = std::fs::read_dir(&store).unwrap().count();
    for to in [store.clone(), store.join("rescued")] {
        let out = selflog(&store, &["salvage", "--to", to.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("source store"), "{stderr}");
        assert_eq!(std::fs::read_dir(&store).unwrap().count(), before);
    }
}
