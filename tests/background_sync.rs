//! The writer's background sync thread: it starts once a writer has appended enough to be
//! worth syncing ahead of the seal, and it ends with the store. (A test binary of its own:
//! it counts this process's threads by name.)

use std::sync::Mutex;

use selflog::{Config, Event, Store, Timestamp};

/// Held by each test: the first counts this process's threads, so the tests take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

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
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
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
    // A joined thread can still be listed for a moment while the kernel reaps it (its
    // join returns when it clears its tid, before its task is released): a thread the
    // store left running would stay.
    let left = |names: &[String]| names.iter().any(|n| n.starts_with("selflog-"));
    let since = std::time::Instant::now();
    while left(&thread_names()) && since.elapsed() < std::time::Duration::from_secs(2) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        !left(&thread_names()),
        "threads left 2 s after close: {:?}",
        thread_names()
    );
    let ro = Store::open_read_only(&path).unwrap();
    assert_eq!(ro.stats().unwrap().total_events, 20_000);
    assert!(selflog::verify(&path).unwrap().problems.is_empty());
}

/// Bytes of the store's segment files in the page cache, as `fincore` (util-linux)
/// counts them.
fn resident_bytes(dir: &std::path::Path) -> u64 {
    let segments: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    assert!(segments.len() >= 3, "{segments:?}");
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .args(&segments)
        .output()
        .expect("fincore (util-linux) runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse::<u64>().unwrap())
        .sum()
}

/// Appends ~77 MB into 16 MiB segments with `keep`, closes, and returns how much of the
/// log is still in the page cache.
fn resident_after_appending(keep: Option<u64>) -> u64 {
    // Under the target directory rather than the system's temporary one, which may be a
    // tmpfs (whose pages are the only copy, so nothing can be dropped).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("s");
    let mut config = Config::default();
    config.segment_len = 16 << 20;
    config.page_cache_keep = keep;
    // The writer's own page cache use is measured: sealed segments stay as written (a
    // compacted file is a fifth of the size, and compaction drops what it read).
    config.compaction_level = None;
    let store = Store::open(&path, config).unwrap();
    let data = format!(r#"{{"text":"{}"}}"#, "y".repeat(940));
    for i in 0..80_000i64 {
        let e = Event::new(
            Timestamp(1_732_460_000_000_000 + i),
            "t",
            None,
            "s",
            Some(&data),
        );
        store.append(e.unwrap()).unwrap();
    }
    store.close().unwrap();
    let resident = resident_bytes(&path);
    let ro = Store::open_read_only(&path).unwrap();
    assert_eq!(ro.stats().unwrap().total_events, 80_000);
    assert!(selflog::verify(&path).unwrap().problems.is_empty());
    resident
}

#[test]
fn what_is_on_the_disk_leaves_the_page_cache_but_for_the_newest_part() {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let kept = resident_after_appending(Some(4 << 20));
    // The newest 4 MiB and up to one range between two background syncs (8 MiB) that
    // keeps them, the newest segment's part not yet synced in the background when the
    // store closed (up to another 8 MiB), and the pages holding footers and headers.
    assert!(kept <= (4 + 8 + 8 + 1) << 20, "{kept} bytes still cached");
    let all = resident_after_appending(None);
    assert!(all >= 70 << 20, "without the drop {all} bytes cached");
}
