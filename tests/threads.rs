//! The threads of a writable open (issue 19): the writer, its sync thread, the
//! maintenance thread, which also writes the pattern and stats streams, and the compaction
//! thread (issue 26), and nothing else; close ends all four. Before, each sidecar was a store of its own with a writer, a
//! maintenance and (after a sealed segment) a sync thread: nine threads in all. (A test
//! binary of its own: it counts this process's threads by name.)

use selflog::{Config, Event, EventId, NewPattern, Store, SystemStats, Timestamp};

/// Names of this process's threads that start with `selflog`. The test harness names its
/// threads after tests, so no other thread matches.
fn selflog_threads() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| n.starts_with("selflog"))
        .collect();
    names.sort();
    names
}

/// A thread's name as `/proc/*/task/*/comm` shows it: at most 15 bytes.
fn comm(name: &str) -> &str {
    &name[..name.len().min(15)]
}

/// Text of `len` hex digits that LZ4 cannot shrink much.
fn noise(seed: u64, len: usize) -> String {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from_digit((x % 16) as u32, 16).unwrap()
        })
        .collect()
}

#[test]
fn a_writable_open_runs_four_threads_and_close_ends_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut config = Config::default();
    config.stats_interval = std::time::Duration::from_millis(5);
    let store = Store::open(&path, config).unwrap();
    // 18 MB of events: the writer starts its sync thread after 8 MiB.
    let data = format!(r#"{{"text":"{}"}}"#, "x".repeat(900));
    for i in 0..20_000i64 {
        let ts = Timestamp(1_732_460_000_000_000 + i);
        store
            .append(Event::new(ts, "t", None, "s", Some(&data)).unwrap())
            .unwrap();
    }
    // 5 MB of patterns: more than a sidecar segment (4 MiB), so the pattern stream seals
    // one, which started a sync thread of its own when the sidecar was a store.
    for i in 0..2_500u64 {
        let pattern = NewPattern::new("burst", 0.5, format!(r#""{}""#, noise(i, 2_000)))
            .about(EventId(i + 1))
            .found_by("embryo-1");
        assert_eq!(store.record_pattern(&pattern).unwrap(), i + 1);
    }
    store
        .record_system_stats(&SystemStats {
            timestamp: Timestamp::now(),
            total_events: 20_000,
            events_per_second: 1.0,
            active_embryos: 3,
            avg_fitness: 0.5,
            storage_mb: 1.0,
        })
        .unwrap();
    store.flush().unwrap();
    let sealed = std::fs::read_dir(path.join(selflog::PATTERNS_DIR))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "seg")
        })
        .count();
    assert!(sealed >= 2, "the pattern stream rolled: {sealed} segments");
    assert_eq!(
        store
            .patterns(&selflog::PatternFilter::default())
            .unwrap()
            .len(),
        2_500
    );
    let want: Vec<&str> = [
        "selflog-compact",
        "selflog-maintenance",
        "selflog-sync",
        "selflog-writer",
    ]
    .into_iter()
    .map(comm)
    .collect();
    assert_eq!(selflog_threads(), want, "each of the four, once");
    store.close().unwrap();
    // A joined thread can still be listed for a moment while the kernel reaps it: a
    // thread the store left running would stay.
    let since = std::time::Instant::now();
    while !selflog_threads().is_empty() && since.elapsed() < std::time::Duration::from_secs(2) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(selflog_threads(), Vec::<String>::new(), "2 s after close");
    let ro = Store::open_read_only(&path).unwrap();
    assert_eq!(ro.stats().unwrap().total_events, 20_000);
    assert_eq!(
        ro.patterns(&selflog::PatternFilter::default())
            .unwrap()
            .len(),
        2_500
    );
    assert!(!ro.system_stats(None, None).unwrap().is_empty());
    for sub in ["", selflog::PATTERNS_DIR, selflog::STATS_DIR] {
        let problems = selflog::verify(&path.join(sub)).unwrap().problems;
        assert!(problems.is_empty(), "{sub}: {problems:?}");
    }
}
