//! Compaction: sealed segments rewritten as compressed blocks hold exactly the events they
//! held (every field and content hash), answer every query the same, pass `verify`, and
//! survive a store closed and reopened. `format-spec/FORMAT.md#compacted-segments`

use std::path::Path;

use selflog::{CompactOutcome, Config, Event, EventId, Store, StoredEvent, Timestamp};
use selflog_workload::{Workload, WorkloadConfig};

/// Small segments, no background compaction: the tests compact when they choose.
fn config() -> Config {
    let mut c = Config::default();
    c.segment_len = 256 << 10;
    c.data_len_max = 64 << 10;
    c.compaction_level = None;
    c.retention_age = None;
    c
}

fn workload_events(n: u64) -> Vec<Event> {
    let w = Workload::new(WorkloadConfig {
        count: n,
        seed: 7,
        ..WorkloadConfig::default()
    });
    w.map(|r| {
        Event::new(
            Timestamp(r.timestamp_us),
            &r.event_type,
            r.action.as_deref(),
            &r.source,
            r.data_text(),
        )
        .expect("valid event")
    })
    .collect()
}

fn all(store: &Store) -> Vec<StoredEvent> {
    store
        .scan()
        .expect("scan")
        .map(|e| e.expect("event"))
        .collect()
}

fn sealed_bytes(dir: &Path) -> u64 {
    let store = Store::open_read_only(dir).expect("open");
    store
        .segments()
        .expect("segments")
        .iter()
        .filter(|s| s.sealed)
        .map(|s| s.file_len)
        .sum()
}

fn build(dir: &Path, n: u64) -> Vec<StoredEvent> {
    let store = Store::open(dir, config()).expect("open");
    for chunk in workload_events(n).chunks(500) {
        store.append_batch(chunk.to_vec()).expect("append");
        store.flush().expect("flush");
    }
    let before = all(&store);
    store.close().expect("close");
    before
}

#[test]
fn compaction_keeps_every_event_and_answer_and_shrinks_the_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let before = build(&path, 6_000);
    let bytes_before = sealed_bytes(&path);
    let reader_before = Store::open_read_only(&path).expect("reader");
    let search_before: Vec<u64> = reader_before
        .query()
        .text("github")
        .run()
        .expect("query")
        .map(|e| e.expect("event").id.0)
        .collect();

    let store = Store::open(&path, config()).expect("open");
    let done = store.compact().expect("compact");
    let compacted = done
        .iter()
        .filter(|c| matches!(c.outcome, CompactOutcome::Compacted { .. }))
        .count();
    assert!(
        compacted >= 3,
        "several sealed segments compacted: {done:?}"
    );
    assert!(
        store.compact().expect("again").is_empty(),
        "nothing left to compact"
    );

    // The writable store, a reader opened before and one opened after all agree.
    let after = all(&store);
    assert_eq!(after, before, "every field of every event, hashes included");
    assert_eq!(all(&reader_before), before);
    let reader = Store::open_read_only(&path).expect("reader");
    assert_eq!(all(&reader), before);
    for e in before.iter().step_by(97) {
        assert_eq!(reader.get(e.id).expect("get").as_ref(), Some(e));
        assert_eq!(store.get(e.id).expect("get").as_ref(), Some(e));
    }
    assert_eq!(
        reader.get(EventId(before.len() as u64 + 10)).expect("get"),
        None
    );
    let search_after: Vec<u64> = reader
        .query()
        .text("github")
        .run()
        .expect("query")
        .map(|e| e.expect("event").id.0)
        .collect();
    assert_eq!(search_after, search_before);
    assert!(!search_after.is_empty());
    let report = selflog::verify(&path).expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.events, before.len() as u64);
    store.close().expect("close");

    let bytes_after = sealed_bytes(&path);
    assert!(
        bytes_after * 2 < bytes_before,
        "compacted sealed segments are far smaller: {bytes_before} -> {bytes_after}"
    );
    // Reopened for writing, appended to, read again.
    let store = Store::open(&path, config()).expect("reopen");
    assert_eq!(all(&store), before);
    store.close().expect("close");
}

#[test]
fn the_background_thread_compacts_sealed_segments_and_close_stops_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let before = build(&path, 3_000);
    let mut c = config();
    c.compaction_level = Some(3);
    let store = Store::open(&path, c).expect("open");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let segments = store.segments().expect("segments");
        let sealed: Vec<_> = segments.iter().filter(|s| s.sealed).collect();
        let raw = sealed
            .iter()
            .filter(|s| {
                let mut head = [0u8; 12];
                std::fs::File::open(&s.path)
                    .and_then(|f| std::os::unix::fs::FileExt::read_exact_at(&f, &mut head, 0))
                    .is_ok()
                    && head[8] == 1
            })
            .count();
        if raw == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{raw} segments left");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(all(&store), before);
    store.close().expect("close");
    assert_eq!(all(&Store::open_read_only(&path).expect("reader")), before);
}
