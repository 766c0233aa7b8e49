//! Library-level behaviour of the core engine: round trips of every field, reopen, segment
//! rolling, compression, ids, concurrency of appenders and readers, and bad input.

use std::sync::Arc;

use selflog::{Appended, Config, Error, Event, EventId, NewPattern, Store, Timestamp};

const T0: i64 = 1_732_460_000_000_000;

fn event(i: u64, data_len: usize) -> Event {
    let filler: String = "abcdefghij".repeat(data_len / 10 + 1)[..data_len].to_owned();
    Event::new(
        Timestamp(
            T0 + i64::try_from(i).unwrap() * 1000 - if i.is_multiple_of(7) { 5_000_000 } else { 0 },
        ),
        ["file_op", "app_launch", "clipboard", "ünïcødé ✓"][usize::try_from(i % 4).unwrap()],
        if i.is_multiple_of(3) {
            None
        } else {
            Some("modified")
        },
        format!("source-{}", i % 13),
        if i.is_multiple_of(5) {
            None
        } else {
            Some(format!(r#"{{"i":{i},"text":"{filler}","emoji":"🦀"}}"#))
        }
        .as_deref(),
    )
    .unwrap()
}

fn small_config() -> Config {
    let mut c = Config::default();
    c.segment_len = 256 << 10;
    c.data_len_max = 64 << 10;
    c
}

#[test]
fn every_field_round_trips_across_segments_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let events: Vec<Event> = (0..3000)
        .map(|i| event(i, if i % 50 == 1 { 5000 } else { 200 }))
        .collect();
    {
        let store = Store::open(&path, small_config()).unwrap();
        for (i, e) in events.iter().enumerate() {
            let got = store.append(e.clone()).unwrap();
            assert_eq!(got, Appended::New(EventId(i as u64 + 1)));
        }
        store.flush().unwrap();
        let stats = store.stats().unwrap();
        assert_eq!(stats.total_events, 3000);
        assert!(
            stats.segments > 2,
            "rolled into {} segments",
            stats.segments
        );
        assert!(
            stats.compressed_events >= 50,
            "{} compressed",
            stats.compressed_events
        );
        let back: Vec<_> = store.scan().unwrap().map(Result::unwrap).collect();
        assert_eq!(back.len(), 3000);
        for (i, (b, e)) in back.iter().zip(&events).enumerate() {
            assert_eq!(b.id, EventId(i as u64 + 1));
            assert_eq!(&b.to_event().unwrap(), e);
            assert_eq!(b.hash, e.content_hash());
        }
        store.close().unwrap();
    }
    let store = Store::open(&path, small_config()).unwrap();
    assert_eq!(store.open_report().torn_tail_bytes, 0);
    for id in [1u64, 2, 33, 64, 65, 1500, 2999, 3000] {
        let got = store.get(EventId(id)).unwrap().unwrap();
        assert_eq!(
            got.to_event().unwrap(),
            events[usize::try_from(id).unwrap() - 1]
        );
    }
    assert_eq!(store.get(EventId(3001)).unwrap(), None);
    assert_eq!(store.get(EventId(0)).unwrap(), None);
    // Ids continue after a reopen.
    assert_eq!(
        store.append(event(9, 10)).unwrap(),
        Appended::New(EventId(3001))
    );
    store.flush().unwrap();
    let ro = Store::open_read_only(&path).unwrap();
    assert_eq!(ro.stats().unwrap().total_events, 3001);
    assert_eq!(ro.scan().unwrap().count(), 3001);
    assert!(selflog::verify(&path).unwrap().problems.is_empty());
}

#[test]
fn many_threads_append_while_readers_scan() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("s"), small_config()).unwrap());
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..2000 {
                    store.append(event(t * 10_000 + i, 100)).unwrap();
                }
            })
        })
        .collect();
    let reader = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            let mut last = 0;
            for _ in 0..50 {
                store.flush().unwrap();
                let ids: Vec<u64> = store.scan().unwrap().map(|e| e.unwrap().id.0).collect();
                assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "dense ids");
                assert!(ids.len() >= last, "never goes back");
                last = ids.len();
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    reader.join().unwrap();
    store.flush().unwrap();
    assert_eq!(store.scan().unwrap().count(), 8000);
}

/// Imported ids may leave gaps, but must increase and stay at most `EventId::MAX`; a
/// duplicate of an event imported past a gap is found whether it is still queued or
/// stored.
#[test]
fn imported_ids_increase_and_stay_in_range() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s"), small_config()).unwrap();
    let too_big = EventId(EventId::MAX.0 + 1);
    match store.append_with_id(too_big, event(1, 10)).unwrap_err() {
        Error::InvalidEvent {
            field: "id",
            reason,
        } => {
            assert!(reason.contains(&too_big.to_string()), "{reason}");
        }
        e => panic!("{e}"),
    }
    // Held in the queue (the writer waits for 100 events or 5 s), so the duplicate checks
    // below meet their originals queued behind a gap.
    assert_eq!(
        store.append_with_id(EventId(1000), event(2, 10)).unwrap(),
        Appended::New(EventId(1000))
    );
    assert_eq!(
        store.append_with_id(EventId(5000), event(3, 10)).unwrap(),
        Appended::New(EventId(5000))
    );
    assert_eq!(
        store.append(event(3, 10)).unwrap(),
        Appended::Duplicate(EventId(5000)),
        "queued past a gap"
    );
    assert!(matches!(
        store
            .append_with_id(EventId(4999), event(4, 10))
            .unwrap_err(),
        Error::InvalidEvent { field: "id", .. }
    ));
    assert_eq!(
        store.append_with_id(EventId::MAX, event(4, 10)).unwrap(),
        Appended::New(EventId::MAX)
    );
    assert_eq!(
        store.append(event(4, 10)).unwrap(),
        Appended::Duplicate(EventId::MAX),
        "queued, next to the largest id"
    );
    store.flush().unwrap();
    assert_eq!(
        store.append(event(4, 10)).unwrap(),
        Appended::Duplicate(EventId::MAX),
        "stored, next to the largest id"
    );
    assert_eq!(
        store.append(event(5, 10)).unwrap(),
        Appended::New(EventId(EventId::MAX.0 + 1)),
        "later events continue after it"
    );
    store.flush().unwrap();
    assert_eq!(
        store
            .get(EventId::MAX)
            .unwrap()
            .unwrap()
            .to_event()
            .unwrap(),
        event(4, 10)
    );
}

#[test]
fn invalid_events_are_rejected_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s"), small_config()).unwrap();
    let mut e = event(1, 10);
    e.event_type.clear();
    assert!(matches!(
        store.append(e).unwrap_err(),
        Error::InvalidEvent {
            field: "event_type",
            ..
        }
    ));
    let mut e = event(1, 10);
    e.source.clear();
    assert!(matches!(
        store.append(e).unwrap_err(),
        Error::InvalidEvent {
            field: "source",
            ..
        }
    ));
    let mut e = event(1, 10);
    e.timestamp = Timestamp::now().saturating_add(std::time::Duration::from_secs(3 * 86_400));
    assert!(matches!(
        store.append(e).unwrap_err(),
        Error::InvalidEvent {
            field: "timestamp",
            ..
        }
    ));
    let huge = event(1, 100 << 10);
    assert!(matches!(
        store.append(huge).unwrap_err(),
        Error::TooLarge { .. }
    ));
    assert!(Event::new(Timestamp(T0), "t", None, "s", Some("{not json")).is_err());
    // A batch with one bad event stores none of it.
    let mut bad = event(2, 10);
    bad.source.clear();
    assert!(store.append_batch(vec![event(1, 10), bad]).is_err());
    assert_eq!(
        store.append(event(3, 10)).unwrap(),
        Appended::New(EventId(1))
    );
}

#[test]
fn second_writer_is_refused_and_readers_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = Store::open(&path, small_config()).unwrap();
    match Store::open(&path, small_config()) {
        Err(Error::Locked { pid, .. }) => assert_eq!(pid, std::process::id()),
        other => panic!("expected Locked, got {:?}", other.map(|_| ())),
    }
    store.append(event(1, 10)).unwrap();
    store.flush().unwrap();
    let ro = Store::open_read_only(&path).unwrap();
    assert_eq!(ro.scan().unwrap().count(), 1);
    assert!(matches!(ro.append(event(1, 1)), Err(Error::ReadOnly)));
    store.append(event(2, 10)).unwrap();
    store.flush().unwrap();
    assert_eq!(ro.scan().unwrap().count(), 2, "a reader sees later commits");
    drop(store);
    Store::open(&path, small_config()).unwrap();
}

#[test]
fn foreign_paths_are_not_stores() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"SQLite format 3\0").unwrap();
    assert!(matches!(
        Store::open(&file, Config::default()),
        Err(Error::NotAStore { .. })
    ));
    assert!(matches!(
        Store::open_read_only(&file),
        Err(Error::NotAStore { .. })
    ));
    assert!(matches!(
        Store::open_read_only(dir.path().join("missing")),
        Err(Error::NotAStore { .. })
    ));
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), b"hi").unwrap();
    assert!(matches!(
        Store::open(&other, Config::default()),
        Err(Error::NotAStore { .. })
    ));
    assert!(matches!(
        Store::open_read_only(&other),
        Err(Error::NotAStore { .. })
    ));
    assert_eq!(
        std::fs::read_dir(&other).unwrap().count(),
        1,
        "nothing created"
    );
}

#[test]
fn store_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    fn check(dir: &std::path::Path) {
        assert_eq!(
            std::fs::metadata(dir).unwrap().permissions().mode() & 0o777,
            0o700,
            "{}",
            dir.display()
        );
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                check(&entry.path());
            } else {
                let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", entry.path().display());
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = Store::open(&path, small_config()).unwrap();
    store.append(event(1, 10)).unwrap();
    store
        .record_pattern(&NewPattern::new("p", 0.5, "{}").about(EventId(1)))
        .unwrap();
    store.cursor("c").unwrap().commit(EventId(1)).unwrap_or(());
    store.flush().unwrap();
    check(&path);
}

#[test]
fn sync_durability_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = small_config();
    c.durability = selflog::Durability::Sync;
    let store = Store::open(dir.path().join("s"), c).unwrap();
    for i in 0..500 {
        store.append(event(i, 300)).unwrap();
    }
    store.flush().unwrap();
    assert_eq!(store.scan().unwrap().count(), 500);
}

#[test]
fn cursors_are_durable_named_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = Store::open(&path, small_config()).unwrap();
    for i in 0..20 {
        store.append(event(i, 10)).unwrap();
    }
    store.flush().unwrap();
    let c = store.cursor("processed").unwrap();
    assert_eq!(c.position().unwrap(), None);
    assert_eq!(c.unprocessed().unwrap().count(), 20);
    c.commit(EventId(15)).unwrap();
    assert!(c.commit(EventId(21)).is_err(), "past the last event");
    store.cursor("other").unwrap().commit(EventId(3)).unwrap();
    let ids: Vec<u64> = c.unprocessed().unwrap().map(|e| e.unwrap().id.0).collect();
    assert_eq!(ids, [16, 17, 18, 19, 20]);
    assert!(store.cursor("../escape").is_err());
    drop(store);
    let ro = Store::open_read_only(&path).unwrap();
    assert_eq!(
        ro.cursors().unwrap().sound,
        [
            ("other".to_owned(), EventId(3)),
            ("processed".to_owned(), EventId(15))
        ]
    );
}

/// The same event again: inside one batch, in a later batch, after a reopen. Each is
/// stored once and `append` names the original's id.
#[test]
fn duplicates_are_stored_once_within_batches_across_batches_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = Store::open(&path, small_config()).unwrap();
    let got = store
        .append_batch(vec![event(1, 50), event(2, 50), event(1, 50)])
        .unwrap();
    assert_eq!(
        got,
        [
            Appended::New(EventId(1)),
            Appended::New(EventId(2)),
            Appended::Duplicate(EventId(1))
        ]
    );
    store.flush().unwrap();
    assert_eq!(
        store.append(event(2, 50)).unwrap(),
        Appended::Duplicate(EventId(2))
    );
    // Differs only in data: a new event.
    assert_eq!(
        store.append(event(2, 51)).unwrap(),
        Appended::New(EventId(3))
    );
    assert_eq!(store.stats().unwrap().duplicates_dropped, 2);
    drop(store);
    let ro = Store::open_read_only(&path).unwrap();
    assert_eq!(
        ro.stats().unwrap().duplicates_dropped,
        2,
        "persisted for other processes"
    );
    let store = Store::open(&path, small_config()).unwrap();
    assert_eq!(
        store.append(event(1, 50)).unwrap(),
        Appended::Duplicate(EventId(1))
    );
    assert_eq!(
        store.append(event(3, 50)).unwrap(),
        Appended::New(EventId(4))
    );
    store.flush().unwrap();
    assert_eq!(store.scan().unwrap().count(), 4);
    // With the window disabled, duplicates are stored.
    drop(store);
    let mut c = small_config();
    c.dedup_window = 0;
    let store = Store::open(&path, c).unwrap();
    assert_eq!(
        store.append(event(1, 50)).unwrap(),
        Appended::New(EventId(5))
    );
}

/// Events alike in everything that picks their dedup bucket (timestamp, name and data
/// lengths, the first and last 8 bytes of short data) but different in the middle of their
/// data, as an import with second-resolution timestamps can make them: all are stored,
/// and each one's duplicate is found, before and after a reopen (which rebuilds the window
/// from the frames), also where short data is stored compressed.
#[test]
fn events_sharing_a_dedup_bucket_chain_are_stored_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut c = small_config();
    // Short data stored compressed: the rebuild decompresses it for its edges.
    c.compress_len_min = 64;
    let alike = |i: usize| {
        let middle = format!("{i:04}").repeat(50);
        let data = format!(r#"{{"path":"/Users/a/{middle}/report.txt"}}"#);
        Event::new(
            Timestamp(T0),
            "file_op",
            Some("modified"),
            "Finder",
            Some(&data),
        )
        .unwrap()
    };
    let n = 300;
    let store = Store::open(&path, c.clone()).unwrap();
    for i in 0..n {
        assert_eq!(
            store.append(alike(i)).unwrap(),
            Appended::New(EventId(i as u64 + 1))
        );
    }
    for i in (0..n).rev() {
        let again = store.append(alike(i)).unwrap();
        assert_eq!(
            again,
            Appended::Duplicate(EventId(i as u64 + 1)),
            "event {i}"
        );
    }
    store.close().unwrap();
    let store = Store::open(&path, c).unwrap();
    assert!(
        store.stats().unwrap().compressed_events > 0,
        "short data compressed"
    );
    let batch = store.append_batch((0..n).map(alike).collect()).unwrap();
    for (i, a) in batch.iter().enumerate() {
        assert_eq!(*a, Appended::Duplicate(EventId(i as u64 + 1)), "event {i}");
    }
    assert_eq!(store.stats().unwrap().total_events, n as u64);
}

/// Two different events whose dedup keys collide (forced by the test hook) are both
/// stored: a hit is confirmed by content. Identical events are still dropped.
#[test]
fn a_hash_collision_never_drops_a_distinct_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = small_config();
    c.dedup_key_for_tests = Some(|_| 42);
    let store = Store::open(dir.path().join("s"), c).unwrap();
    let a = Event::new(Timestamp(T0), "t", None, "s", Some("1")).unwrap();
    let b = Event::new(Timestamp(T0), "t", None, "s", Some("2")).unwrap();
    assert_eq!(store.append(a.clone()).unwrap(), Appended::New(EventId(1)));
    store.flush().unwrap();
    assert_eq!(
        store.append(b.clone()).unwrap(),
        Appended::New(EventId(2)),
        "collision kept (stored)"
    );
    assert_eq!(
        store.append(b).unwrap(),
        Appended::Duplicate(EventId(2)),
        "queued original"
    );
    store.flush().unwrap();
    // `a` is now hidden behind `b`'s key: it may be stored again, never wrongly dropped.
    assert_ne!(store.append(a).unwrap(), Appended::Duplicate(EventId(2)));
    assert_eq!(
        store.get(EventId(2)).unwrap().unwrap().data.as_deref(),
        Some("2")
    );
}

fn aged(i: u64, age_days: i64) -> Event {
    let ts = Timestamp::now().0 - age_days * 86_400_000_000 + i64::try_from(i).unwrap();
    Event::new(
        Timestamp(ts),
        "file_op",
        Some("modified"),
        "Finder",
        Some(&format!(r#"{{"i":{i},"pad":"{}"}}"#, "x".repeat(300))),
    )
    .unwrap()
}

fn retention_config() -> Config {
    let mut c = small_config();
    c.segment_len = 64 << 10;
    c.data_len_max = 16 << 10;
    c.dedup_window = 10;
    c.retention_on_open = false;
    c
}

/// Whole sealed segments older than the retention age go; a segment holding one late,
/// recent event stays, the last segment stays, and a scan begun before the deletion
/// finishes over the deleted files.
#[test]
fn retention_deletes_expired_segments_and_keeps_what_it_must() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = Store::open(&path, retention_config()).unwrap();
    for i in 0..600 {
        // Event 300 is recent: its segment must be kept.
        let age = if i == 300 { 1 } else { 60 };
        store.append(aged(i, age)).unwrap();
    }
    for i in 600..700 {
        store.append(aged(i, 1)).unwrap();
    }
    store.flush().unwrap();
    let before = store.segments().unwrap();
    assert!(before.len() >= 4, "{} segments", before.len());
    let holding_recent = before
        .iter()
        .find(|s| s.ids.is_some_and(|(a, b)| a.0 <= 301 && 301 <= b.0))
        .unwrap()
        .segment_id;
    let planned = store.retain(true).unwrap();
    assert!(!planned.is_empty());
    assert_eq!(
        store.segments().unwrap().len(),
        before.len(),
        "a dry run deletes nothing"
    );
    for d in &planned {
        assert_ne!(
            d.segment.segment_id, holding_recent,
            "late recent event keeps its segment"
        );
        assert_ne!(
            d.segment.segment_id,
            before.last().unwrap().segment_id,
            "never the last"
        );
        assert_eq!(d.reason, selflog::Reason::Expired);
    }
    let running_scan = store.scan().unwrap();
    let deleted = store.retain(false).unwrap();
    assert_eq!(deleted, planned);
    for d in &deleted {
        assert!(!d.segment.path.exists());
    }
    assert_eq!(
        running_scan.count(),
        700,
        "a scan begun before the deletion finishes"
    );
    let gone: u64 = deleted.iter().map(|d| d.segment.events).sum();
    assert_eq!(store.scan().unwrap().count() as u64, 700 - gone);
    assert_eq!(store.stats().unwrap().total_events, 700 - gone);
    let first_deleted = deleted[0].segment.ids.unwrap().0;
    assert_eq!(store.get(first_deleted).unwrap(), None);
    assert!(store.get(EventId(301)).unwrap().is_some());
    drop(store);
    assert!(selflog::verify(&path).unwrap().problems.is_empty());
    let ro = Store::open_read_only(&path).unwrap();
    assert_eq!(ro.scan().unwrap().count() as u64, 700 - gone);
    let store = Store::open(&path, retention_config()).unwrap();
    assert_eq!(
        store.append(aged(9999, 0)).unwrap(),
        Appended::New(EventId(701))
    );
}

/// With a size cap, the oldest sealed segments go until the log fits; the dedup window
/// protects the segments it covers.
#[test]
fn retention_size_cap_and_dedup_window() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut c = retention_config();
    c.retention_age = None;
    c.retention_bytes_max = Some(200 << 10);
    let store = Store::open(&path, c.clone()).unwrap();
    for i in 0..1000 {
        store.append(aged(i, 1)).unwrap();
    }
    store.flush().unwrap();
    let deleted = store.retain(false).unwrap();
    assert!(!deleted.is_empty());
    assert!(deleted
        .iter()
        .all(|d| d.reason == selflog::Reason::OverSizeCap));
    let total: u64 = store.segments().unwrap().iter().map(|s| s.file_len).sum();
    assert!(total <= 200 << 10, "{total}");
    drop(store);
    // The default window (1,000,000 events) covers everything here: nothing goes.
    c.dedup_window = 1_000_000;
    c.retention_bytes_max = Some(1);
    let store = Store::open(&path, c).unwrap();
    assert!(store.retain(false).unwrap().is_empty());
}

/// A reader left behind while retention deletes segments newer than the newest it has
/// seen catches up with exactly the segments that exist: new segments are opened by number
/// from its newest view on, and the numbers retention took in between are passed over.
#[test]
fn a_reader_behind_retention_catches_up_with_what_exists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut c = retention_config();
    c.retention_age = None;
    c.retention_bytes_max = Some(200 << 10);
    let store = Store::open(&path, c).unwrap();
    for i in 0..300 {
        store.append(aged(i, 1)).unwrap();
    }
    store.flush().unwrap();
    let reader = Store::open_read_only(&path).unwrap();
    let seen = reader.segments().unwrap();
    assert!(seen.len() >= 2, "{seen:?}");
    let newest_seen = seen.last().unwrap().segment_id;
    for i in 300..3000 {
        store.append(aged(i, 1)).unwrap();
    }
    store.flush().unwrap();
    store.retain(false).unwrap();
    let now = store.segments().unwrap();
    assert!(
        now[0].segment_id > newest_seen + 1,
        "retention took segments past the reader's newest: {now:?}"
    );
    // The reader still holds its old views (their maps stay readable); everything newer
    // than them is what exists now, in order.
    let after: Vec<u32> = reader
        .segments()
        .unwrap()
        .iter()
        .map(|s| s.segment_id)
        .filter(|&id| id > newest_seen)
        .collect();
    let want: Vec<u32> = now.iter().map(|s| s.segment_id).collect();
    assert_eq!(after, want);
    let first_kept = now[0].ids.unwrap().0;
    let ids: Vec<u64> = reader
        .scan_from(first_kept)
        .unwrap()
        .map(|e| e.unwrap().id.0)
        .collect();
    assert_eq!(ids, (first_kept.0..=3000).collect::<Vec<_>>());
}

/// The maintenance thread runs retention every cleanup interval, while the store is open.
#[test]
fn maintenance_thread_runs_retention_periodically() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = retention_config();
    c.cleanup_interval = std::time::Duration::from_millis(20);
    let store = Store::open(dir.path().join("s"), c).unwrap();
    for i in 0..600 {
        store.append(aged(i, 60)).unwrap();
    }
    store.flush().unwrap();
    // The thread may already have run while the events were appended: wait until the
    // oldest events are gone, whenever that happened.
    let oldest = || store.segments().unwrap()[0].ids.map(|(first, _)| first.0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while oldest() == Some(1) {
        assert!(std::time::Instant::now() < deadline, "retention never ran");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(oldest() > Some(1), "{:?}", store.segments().unwrap());
    assert!(
        store.append(aged(700, 0)).is_ok(),
        "the store stays healthy"
    );
    store.close().unwrap();
}

/// A flipped byte in a sealed segment loses one event to salvage, not the rest: salvage
/// resynchronises past the damaged frame and copies every intact event with its id.
#[test]
fn salvage_copies_everything_intact_past_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = Store::open(&path, retention_config()).unwrap();
    let events: Vec<Event> = (0..800).map(|i| aged(i, 1)).collect();
    for e in &events {
        store.append(e.clone()).unwrap();
    }
    store.close().unwrap();
    let seg = path.join("events-00000001.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[20_000] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap();
    assert!(!selflog::verify(&path).unwrap().problems.is_empty());
    let copy = dir.path().join("copy");
    let report = selflog::salvage(&path, &copy).unwrap();
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    assert!(report.skipped[0].offset <= 20_000 && report.skipped[0].offset + 1000 > 20_000);
    assert!(report.bytes_skipped > 0);
    assert_eq!(
        report.events_copied, 799,
        "exactly the damaged event is lost"
    );
    assert!(selflog::verify(&copy).unwrap().problems.is_empty());
    let ro = Store::open_read_only(&copy).unwrap();
    let mut missing = 0;
    for (i, e) in events.iter().enumerate() {
        match ro.get(EventId(i as u64 + 1)).unwrap() {
            Some(got) => assert_eq!(&got.to_event().unwrap(), e, "event {}", i + 1),
            None => missing += 1,
        }
    }
    assert_eq!(missing, 1);
}

/// A stats record the application takes, carrying its gauges, with nothing counted.
fn gauges(active_embryos: u64, avg_fitness: f64) -> selflog::SystemStats {
    selflog::SystemStats {
        timestamp: Timestamp::now(),
        total_events: 0,
        events_per_second: 0.0,
        active_embryos,
        avg_fitness,
        storage_mb: 0.0,
    }
}

/// Patterns go to their own stream, queryable by event (indexed), type, embryo, confidence
/// and time; the maintenance thread appends stats records every stats interval with the
/// host's gauges; both are visible to a read-only opener.
#[test]
fn patterns_and_system_stats_streams() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let mut c = small_config();
    c.stats_interval = std::time::Duration::from_millis(20);
    let store = Store::open(&path, c).unwrap();
    for i in 0..10 {
        store.append(event(i, 10)).unwrap();
    }
    store.flush().unwrap();
    // The gauges come from a record the application takes (here with no events counted,
    // so that it is not one of the thread's, which the loop below waits for).
    store.record_system_stats(&gauges(30, 0.75)).unwrap();
    let a = store
        .record_pattern(
            &NewPattern::new("burst", 0.9, r#"{"n":3}"#)
                .about(EventId(3))
                .found_by("e1"),
        )
        .unwrap();
    let b = store
        .record_pattern(
            &NewPattern::new("burst", 0.2, "[1,2]")
                .about(EventId(4))
                .found_by("e2"),
        )
        .unwrap();
    store
        .record_pattern(&NewPattern::new("daily", 0.5, "{}"))
        .unwrap();
    assert!(store
        .record_pattern(&NewPattern::new("bad", f64::NAN, "{}"))
        .is_err());
    assert!(store
        .record_pattern(&NewPattern::new("bad", 0.5, "{not json"))
        .is_err());
    assert_eq!((a, b), (1, 2));
    store.flush().unwrap();
    let about3 = store
        .patterns(&selflog::PatternFilter {
            event_id: Some(EventId(3)),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(about3.len(), 1);
    assert_eq!(about3[0].pattern_data, r#"{"n":3}"#);
    assert_eq!(about3[0].embryo_id.as_deref(), Some("e1"));
    let bursts = store
        .patterns(&selflog::PatternFilter {
            pattern_type: Some("burst".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(bursts.len(), 2);
    let sure = store
        .patterns(&selflog::PatternFilter {
            min_confidence: Some(0.5),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(sure.len(), 2);
    let by_e2 = store
        .patterns(&selflog::PatternFilter {
            embryo_id: Some("e2".into()),
            ..Default::default()
        })
        .unwrap();
    assert!((by_e2[0].confidence - 0.2).abs() < 1e-12);
    // Records taken before the appends were flushed or the gauges set (the thread may run
    // first on a busy machine) say so; wait for two taken after.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let current = || {
        store
            .system_stats(None, None)
            .unwrap()
            .into_iter()
            .filter(|s| s.total_events == 10 && s.active_embryos == 30)
            .collect::<Vec<_>>()
    };
    while current().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no stats records with the appended events and the gauges: {:?}",
            store.system_stats(None, None).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let s = current();
    assert!((s[0].avg_fitness - 0.75).abs() < 1e-12);
    assert!(s[0].storage_mb > 0.0);
    let all = store.system_stats(None, None).unwrap();
    assert!(all.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    assert!(all.iter().all(|s| s.total_events <= 10));
    store.close().unwrap();
    let ro = Store::open_read_only(&path).unwrap();
    assert_eq!(
        ro.patterns(&selflog::PatternFilter::default())
            .unwrap()
            .len(),
        3
    );
    assert!(ro.system_stats(None, None).unwrap().len() >= 2);
}

/// A pattern or stats record recorded again with the same times (an import run twice) is
/// stored once, also after a reopen, where each sidecar's dedup window is rebuilt; `flush`
/// waits for both streams in either durability mode. The maintenance thread's own records
/// carry zero gauges until the application records one (issue 19: the gauges are values of
/// a record, not state of the writer).
#[test]
fn sidecar_records_recorded_twice_are_stored_once() {
    let created = Timestamp(1_732_460_000_000_000);
    let pattern = NewPattern::new("habit", 0.7, r#"{"k":1}"#)
        .about(EventId(1))
        .at(created);
    let record = selflog::SystemStats {
        timestamp: created,
        ..gauges(2, 0.5)
    };
    for durability in [selflog::Durability::Buffered, selflog::Durability::Sync] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut c = small_config();
        c.durability = durability;
        c.stats_interval = std::time::Duration::from_millis(5);
        for round in 0..2 {
            let store = Store::open(&path, c.clone()).unwrap();
            if round == 0 {
                // The thread's own records, before the application recorded any.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while store.system_stats(None, None).unwrap().is_empty() {
                    assert!(std::time::Instant::now() < deadline, "no stats record");
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                let own = store.system_stats(None, None).unwrap();
                assert!(own
                    .iter()
                    .all(|s| s.active_embryos == 0 && s.avg_fitness == 0.0));
            }
            for _ in 0..2 {
                assert_eq!(store.record_pattern(&pattern).unwrap(), 1, "{durability:?}");
                store.record_system_stats(&record).unwrap();
            }
            store.flush().unwrap();
            assert_eq!(
                store.patterns(&selflog::PatternFilter::default()).unwrap(),
                [selflog::Pattern {
                    id: 1,
                    event_id: Some(EventId(1)),
                    pattern_type: "habit".into(),
                    confidence: 0.7,
                    pattern_data: r#"{"k":1}"#.into(),
                    embryo_id: None,
                    created,
                }]
            );
            let imported = store
                .system_stats(Some(created), Some(Timestamp(created.0 + 1)))
                .unwrap();
            assert_eq!(imported, [record], "{durability:?} round {round}");
            store.close().unwrap();
        }
    }
}

/// Whatever a flush or a duplicate check has been told is written, a read in the same
/// process finds: an event appended again just after it was written is answered with its
/// original id (the duplicate check waits for the write, then reads it back), and after
/// `flush` every event is there. Found by the comparison bench: 3 of 10,000,000 events
/// were stored twice because the writer announced a write before its in-process readers
/// could see it. The window is nanoseconds wide: this test only catches a regression
/// sometimes (`SELFLOG_SAME_PROCESS_PAIRS` runs more pairs).
#[test]
fn a_written_event_is_readable_at_once_in_the_same_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = small_config();
    c.batch_events = 1;
    let store = Store::open(dir.path().join("s"), c).unwrap();
    let pairs: u64 =
        std::env::var("SELFLOG_SAME_PROCESS_PAIRS").map_or(20_000, |v| v.parse().unwrap());
    let mut previous: Option<(Event, EventId)> = None;
    for i in 0..pairs {
        let e = event(i, 20);
        let id = store.append(e.clone()).unwrap().id();
        // The event before this one is most likely being written right now.
        if let Some((p, p_id)) = previous.take() {
            assert_eq!(
                store.append(p).unwrap(),
                Appended::Duplicate(p_id),
                "pair {i}"
            );
        }
        if i.is_multiple_of(97) {
            store.flush().unwrap();
            assert!(store.get(id).unwrap().is_some(), "event {id} after flush");
        }
        previous = Some((e, id));
    }
}

/// Point lookups start from the footer's checkpoints (or the in-memory ones of the active
/// segment) and find every event, in the writer's process and a reader's, with string
/// definitions between frames; a footer whose checkpoints are wrong under a valid checksum
/// (a writer bug) still gives every event right, and `verify` reports that footer.
#[test]
fn get_finds_every_event_from_checkpoints_and_survives_wrong_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let events: Vec<Event> = (0..4000u64)
        .map(|i| {
            let e = event(
                i,
                if i % 50 == 1 {
                    5000
                } else {
                    100 + (i % 7) as usize * 60
                },
            );
            // A new source every 97 events puts string definitions inside blocks.
            Event::new(
                e.timestamp,
                &e.event_type,
                e.action.as_deref(),
                format!("src-{}", i / 97),
                e.data.as_ref().map(|d| d.get()),
            )
            .unwrap()
        })
        .collect();
    let store = Store::open(&path, small_config()).unwrap();
    store.append_batch(events.clone()).unwrap();
    store.flush().unwrap();
    assert!(store.stats().unwrap().segments > 3);
    let check = |store: &Store| {
        for (i, e) in events.iter().enumerate() {
            let id = EventId(i as u64 + 1);
            let got = store
                .get(id)
                .unwrap()
                .unwrap_or_else(|| panic!("{id:?} missing"));
            assert_eq!((got.id, &got.to_event().unwrap()), (id, e));
        }
        assert_eq!(store.get(EventId(4001)).unwrap(), None);
    };
    check(&store);
    store.close().unwrap();
    check(&Store::open_read_only(&path).unwrap());

    let first = path.join("events-00000001.seg");
    let mut bytes = std::fs::read(&first).unwrap();
    let rewritten = selflog::fuzzing::rewrite_checkpoints(&mut bytes, |points| {
        for (b, block) in points.chunks_mut(7).enumerate() {
            block.reverse(); // frame boundaries, of the wrong events
            if b % 2 == 1 {
                for p in block.iter_mut().filter(|p| **p != 0) {
                    *p += 3; // inside a frame
                }
            }
        }
    });
    assert!(rewritten, "the first segment is sealed, with checkpoints");
    std::fs::write(&first, &bytes).unwrap();
    check(&Store::open_read_only(&path).unwrap());
    let report = selflog::verify(&path).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.path == first && p.what.contains("footer does not match")),
        "{:?}",
        report.problems
    );
}

/// A single event, fewer than `batch_events`, was never committed while the store stayed
/// open: the writer slept without a deadline until a flush or the close, so a daemon
/// appending a trickle of events published none of them (issue 23). It is committed once
/// the batch timeout passes, without a flush, and a read-only open sees it.
#[test]
fn a_lone_event_is_committed_after_the_batch_timeout_without_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.batch_timeout = std::time::Duration::from_millis(50);
    let store = Store::open(dir.path(), config).unwrap();
    // One event written and synced, so the writer goes idle with nothing queued or
    // unsynced; the pause lets it get there (if it has not, the test is merely easier).
    store.append(event(1, 10)).unwrap();
    store.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let id = store.append(event(2, 10)).unwrap().id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let reader = Store::open_read_only(dir.path()).unwrap();
        if reader.get(id).unwrap().is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the event was not committed within 20 s of a 50 ms batch timeout"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    store.close().unwrap();
}
