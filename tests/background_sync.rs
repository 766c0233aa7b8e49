//! The writer's background sync thread: it starts once a writer has appended enough to be
//! worth syncing ahead of the seal, and it ends with the store. (A test binary of its own:
//! it counts this process's threads by name.)

use selflog::{Config, Event, Store, Timestamp};

/// Names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .collect()
}

#[test]
fn the_sync_thread_starts_under_load_and_ends_with_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = Store::open(&path, Config::default()).unwrap();
    let data = format!(r#"{{"text":"{}"}}"#, "x".repeat(900));
    let events = (0..20_000i64).map(|i| {
        Event::new(
            Timestamp(1_732_460_000_000_000 + i),
            "t",
            None,
            "s",
            Some(&data),
        )
        .unwrap()
    });
    for e in events {
        store.append(e).unwrap();
    }
    store.flush().unwrap();
    assert!(
        thread_names().iter().any(|n| n == "selflog-sync"),
        "18 MB appended: {:?}",
        thread_names()
    );
    store.close().unwrap();
    assert!(
        !thread_names().iter().any(|n| n.starts_with("selflog-")),
        "threads left after close: {:?}",
        thread_names()
    );
    let ro = Store::open_read_only(&path).unwrap();
    assert_eq!(ro.stats().unwrap().total_events, 20_000);
    assert!(selflog::verify(&path).unwrap().problems.is_empty());
}
