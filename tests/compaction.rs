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

fn search_ids(store: &Store, text: &str) -> Vec<u64> {
    store
        .query()
        .text(text)
        .run()
        .expect("query")
        .map(|e| e.expect("event").id.0)
        .collect()
}

#[test]
fn compaction_keeps_every_event_and_answer_and_shrinks_the_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let before = build(&path, 6_000);
    let bytes_before = sealed_bytes(&path);
    let reader_before = Store::open_read_only(&path).expect("reader");
    let search_before = search_ids(&reader_before, "github");

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
    let search_after = search_ids(&reader, "github");
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

/// Reads a little-endian integer of `n` bytes at `at`.
fn le(b: &[u8], at: usize, n: usize) -> u64 {
    let mut a = [0u8; 8];
    a[..n].copy_from_slice(&b[at..at + n]);
    u64::from_le_bytes(a)
}

#[test]
fn a_damaged_block_is_reported_by_verify_and_skipped_by_salvage_with_exact_counts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let before = build(&path, 4_000);
    let store = Store::open(&path, config()).expect("open");
    store.compact().expect("compact");
    store.close().expect("close");

    // Block 3 of segment 1: its stored bytes found through the layout record and the
    // block table (format-spec/FORMAT.md#compacted-segments).
    let seg = path.join("events-00000001.seg");
    let mut bytes = std::fs::read(&seg).expect("read");
    assert_eq!(le(&bytes, 8, 4), 2, "segment 1 is compacted");
    let table = usize::try_from(le(&bytes, 176 + 24, 8)).expect("offset");
    let entry = table + 3 * 40;
    let stored = usize::try_from(le(&bytes, entry + 8, 8)).expect("offset");
    let stored_len = usize::try_from(le(&bytes, entry + 24, 4)).expect("len");
    bytes[stored + stored_len / 2] ^= 0x40;
    std::fs::write(&seg, &bytes).expect("write");

    let report = selflog::verify(&path).expect("verify");
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let p = &report.problems[0];
    assert_eq!(p.path, seg);
    assert_eq!(p.offset, stored as u64);
    assert!(p.what.contains("block 3"), "{}", p.what);

    // A reader reads every other block; the damaged one fails the read that meets it.
    let ro = Store::open_read_only(&path).expect("reader");
    assert!(ro.scan().expect("scan").any(|e| e.is_err()));
    let last = before.last().expect("events").id;
    assert_eq!(ro.get(last).expect("get").as_ref(), before.last());

    let to = dir.path().join("salvaged");
    let salvaged = selflog::salvage(&path, &to).expect("salvage");
    let total = before.len() as u64;
    assert!(
        salvaged.events_lost > 0 && salvaged.events_lost < 200,
        "{salvaged:?}"
    );
    assert_eq!(
        salvaged.events_copied + salvaged.events_lost,
        total,
        "every event copied or counted lost"
    );
    let copied = all(&Store::open_read_only(&to).expect("salvaged store"));
    assert_eq!(copied.len() as u64, salvaged.events_copied);
    let by_id: std::collections::BTreeMap<u64, &StoredEvent> =
        before.iter().map(|e| (e.id.0, e)).collect();
    for e in &copied {
        assert_eq!(Some(&e), by_id.get(&e.id.0), "copied as it was");
    }
    // The missing ids are one run: the events of the damaged block.
    let kept: std::collections::BTreeSet<u64> = copied.iter().map(|e| e.id.0).collect();
    let missing: Vec<u64> = by_id
        .keys()
        .filter(|id| !kept.contains(id))
        .copied()
        .collect();
    assert_eq!(missing.len() as u64, salvaged.events_lost);
    assert_eq!(
        missing.last().expect("lost") - missing[0] + 1,
        missing.len() as u64,
        "one run of ids: {missing:?}"
    );
}
