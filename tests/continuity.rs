//! Segment continuity (issue 20): the store records which segments it must have and the ids
//! it used, so a deleted, renamed, swapped or overwritten segment file is noticed and named
//! by `verify`, refused by a writable open, warned about (and read around) by a read-only
//! open, and ids are never handed out twice. Every test damages a real store in a temporary
//! directory the way a person with a shell would.

use std::path::Path;

use selflog::{EventId, Store};

#[path = "common/segments.rs"]
mod segments;

use segments::{build, config, event, ids_of, ids_read, problems, refused, seg};

fn segment_count(dir: &Path) -> u32 {
    let n = std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("events-") && name.ends_with(".seg")
        })
        .count();
    u32::try_from(n).unwrap()
}

/// Issue 20: `rm events-00000004.seg`, then verify said "sound" while its events were gone,
/// and the writer appended as if nothing happened.
#[test]
fn removing_a_sealed_middle_segment_is_reported_refused_and_read_around() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let last = build(&dir, 5);
    let (first, end, count) = ids_of(&dir, 3);
    std::fs::remove_file(seg(&dir, 3)).unwrap();

    let found = problems(&dir);
    let want = format!("segment 3 is missing: events {first}..{end} ({count} events, time ");
    assert!(
        found
            .iter()
            .any(|p| p.contains("events-00000003.seg") && p.contains(&want)),
        "{found:?}"
    );

    let msg = refused(&dir);
    assert!(msg.contains(&want), "{msg}");
    assert!(msg.contains("selflog salvage --to NEW_DIR"), "{msg}");

    let ro = Store::open_read_only(&dir).unwrap();
    assert!(
        ro.warnings().iter().any(|w| w.what.contains(&want)),
        "{:?}",
        ro.warnings()
    );
    let ids = ids_read(&ro);
    let expected: Vec<u64> = (1..=last).filter(|i| *i < first || *i > end).collect();
    assert_eq!(ids, expected, "the read-only open serves every other event");
}

/// Issue 20: `rm` the newest (active) segment, then ingest one event: the new event got an
/// id an earlier event had, and a cursor at the old last id showed nothing unprocessed.
#[test]
fn removing_the_active_segment_refuses_a_writable_open_and_reports_the_cursor() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let last = build(&dir, 3);
    {
        let store = Store::open(&dir, config()).unwrap();
        store
            .cursor("learner")
            .unwrap()
            .commit(EventId(last))
            .unwrap();
        store.close().unwrap();
    }
    let newest = segment_count(&dir);
    let (first, _, _) = ids_of(&dir, newest);
    std::fs::remove_file(seg(&dir, newest)).unwrap();

    let msg = refused(&dir);
    assert!(
        msg.contains(&format!("segment {newest} is missing")) && msg.contains("newest segment"),
        "{msg}"
    );
    assert!(msg.contains(&format!("events from {first} on")), "{msg}");

    let found = problems(&dir);
    assert!(
        found
            .iter()
            .any(|p| p.contains(&format!("events-{newest:08}.seg"))),
        "{found:?}"
    );
    let cursor = format!(
        "cursor \"learner\" is at event {last}, past the last event that exists ({})",
        first - 1
    );
    assert!(found.iter().any(|p| p.contains(&cursor)), "{found:?}");

    let ro = Store::open_read_only(&dir).unwrap();
    assert!(
        ro.warnings().iter().any(|w| w.what.contains(&cursor)),
        "{:?}",
        ro.warnings()
    );
    assert_eq!(ids_read(&ro).last().copied(), Some(first - 1));
}

/// A clean close records where the log ends: an older copy of the newest segment put back
/// (a restore from a backup) loses the events after it, and that is noticed.
#[test]
fn an_older_copy_of_the_newest_segment_is_a_lost_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let last = build(&dir, 2);
    let newest = segment_count(&dir);
    let old_copy = std::fs::read(seg(&dir, newest)).unwrap();
    {
        let store = Store::open(&dir, config()).unwrap();
        store.append(event(last + 1)).unwrap();
        store.close().unwrap();
    }
    assert_eq!(segment_count(&dir), newest, "still the same newest segment");
    std::fs::write(seg(&dir, newest), old_copy).unwrap();

    let want = format!("events {}..{} are missing", last + 1, last + 1);
    let msg = refused(&dir);
    assert!(msg.contains(&want), "{msg}");
    assert!(problems(&dir).iter().any(|p| p.contains(&want)));
}

/// `mv events-00000002.seg events-00000009.seg`: segment 2 is gone from its place, and the
/// file under another number is not read as that segment.
#[test]
fn a_segment_renamed_to_another_number_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let last = build(&dir, 4);
    let (first, end, count) = ids_of(&dir, 2);
    std::fs::rename(seg(&dir, 2), seg(&dir, 9)).unwrap();

    let found = problems(&dir);
    let missing = format!("segment 2 is missing: events {first}..{end} ({count} events");
    assert!(found.iter().any(|p| p.contains(&missing)), "{found:?}");
    assert!(
        found.iter().any(|p| p.contains("events-00000009.seg")
            && p.contains("header says segment 2, the file name says 9")),
        "{found:?}"
    );
    let msg = refused(&dir);
    assert!(msg.contains(&missing), "{msg}");

    let ro = Store::open_read_only(&dir).unwrap();
    let expected: Vec<u64> = (1..=last).filter(|i| *i < first || *i > end).collect();
    assert_eq!(ids_read(&ro), expected);
}

/// `mv 2 x; mv 3 2; mv x 3`: each file holds the other's segment; both segments are named
/// with the events they held.
#[test]
fn two_segments_swapped_are_both_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let last = build(&dir, 5);
    let two = ids_of(&dir, 2);
    let three = ids_of(&dir, 3);
    let x = dir.join("x");
    std::fs::rename(seg(&dir, 2), &x).unwrap();
    std::fs::rename(seg(&dir, 3), seg(&dir, 2)).unwrap();
    std::fs::rename(&x, seg(&dir, 3)).unwrap();

    let found = problems(&dir);
    for (k, (a, b, n), other) in [(2, two, 3), (3, three, 2)] {
        let want = format!(
            "its file holds segment {other} (moved, swapped or copied over), so segment {k} is missing: events {a}..{b} ({n} events"
        );
        assert!(found.iter().any(|p| p.contains(&want)), "{want}: {found:?}");
    }
    let msg = refused(&dir);
    assert!(msg.contains("so segment 2 is missing"), "{msg}");

    let ro = Store::open_read_only(&dir).unwrap();
    let expected: Vec<u64> = (1..=last).filter(|i| *i < two.0 || *i > three.1).collect();
    assert_eq!(ids_read(&ro), expected);
}

/// `cp events-00000002.seg events-00000003.seg`: segment 3's events are gone under a copy.
#[test]
fn a_segment_copied_over_another_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    build(&dir, 5);
    let (a, b, n) = ids_of(&dir, 3);
    std::fs::copy(seg(&dir, 2), seg(&dir, 3)).unwrap();

    let want = format!(
        "its file holds segment 2 (moved, swapped or copied over), so segment 3 is missing: events {a}..{b} ({n} events"
    );
    let found = problems(&dir);
    assert!(found.iter().any(|p| p.contains(&want)), "{found:?}");
    assert!(refused(&dir).contains(&want));
}

/// A segment of another store copied in under the right number: its header is consistent,
/// but its ids are not the ones the manifest recorded.
#[test]
fn a_segment_of_another_store_copied_in_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    build(&dir, 4);
    let other = tmp.path().join("other");
    {
        let store = Store::open(&other, config()).unwrap();
        store.append_with_id(EventId(999_999), event(1)).unwrap();
        let mut n = 1;
        while store.stats().unwrap().segments < 3 {
            n += 1;
            store.append(event(n)).unwrap();
            store.flush().unwrap();
        }
        store.close().unwrap();
    }
    let (theirs, _, _) = ids_of(&other, 2);
    std::fs::copy(seg(&other, 2), seg(&dir, 2)).unwrap();
    let found = problems(&dir);
    assert!(
        found.iter().any(|p| p.contains(&format!(
            "segment 2 starts at event {theirs}, the manifest records"
        ))),
        "{found:?}"
    );
    let _ = refused(&dir);
}

/// Retention deletes whole old segments and records it first: that is not a loss.
#[test]
fn retention_is_not_a_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    build(&dir, 5);
    let mut c = config();
    c.retention_bytes_max = Some(150 << 10);
    c.dedup_window = 0;
    let before = segment_count(&dir);
    let store = Store::open(&dir, c).unwrap();
    store.retain(false).unwrap();
    store.close().unwrap();
    assert!(segment_count(&dir) < before, "retention deleted segments");
    assert_eq!(problems(&dir), Vec::<String>::new());
    Store::open(&dir, config()).unwrap().close().unwrap();
}

/// A store written before the manifest existed (the golden v1 store) reads as before, and
/// its first writable open records what is present.
#[test]
fn a_store_from_before_the_manifest_opens_and_gains_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    std::fs::create_dir(&dir).unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v1/store");
    for e in std::fs::read_dir(&golden).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    let manifest = dir.join(selflog::fuzzing::MANIFEST_FILE);
    assert!(!manifest.exists());
    let before = ids_read(&Store::open_read_only(&dir).unwrap());
    assert!(Store::open_read_only(&dir).unwrap().warnings().is_empty());
    assert!(problems(&dir).is_empty());

    let mut c = config();
    c.sidecars = false;
    Store::open(&dir, c).unwrap().close().unwrap();
    let m = selflog::fuzzing::Manifest::decode(&std::fs::read(&manifest).unwrap()).unwrap();
    let segments: Vec<u32> = m.entries.iter().map(|e| e.segment_id).collect();
    assert_eq!(segments, [1, 2]);
    assert!(m.entries[0].sealed);
    assert_eq!(m.entries[0].first_id, before[0]);
    assert_eq!(m.durable_last_id, *before.last().unwrap());
    assert_eq!(ids_read(&Store::open_read_only(&dir).unwrap()), before);
    assert!(problems(&dir).is_empty());

    // From now on a loss is noticed.
    std::fs::remove_file(seg(&dir, 1)).unwrap();
    assert!(refused(&dir).contains("segment 1 is missing"));
}

/// Rolls record each new segment as it is created: a store killed without a close (here:
/// dropped without its writer ever closing cleanly is not possible, so the manifest is
/// checked while the writer still runs) names every segment with its ids.
#[test]
fn the_manifest_follows_rolls_while_the_writer_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let store = Store::open(&dir, config()).unwrap();
    for i in 1..=600 {
        store.append(event(i)).unwrap();
    }
    store.flush().unwrap();
    let segments = store.segments().unwrap();
    assert!(segments.len() >= 3);
    let m = selflog::fuzzing::Manifest::decode(
        &std::fs::read(dir.join(selflog::fuzzing::MANIFEST_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(m.entries.len(), segments.len());
    for (e, s) in m.entries.iter().zip(&segments) {
        assert_eq!(e.segment_id, s.segment_id);
        assert_eq!(e.sealed, s.sealed);
        assert_eq!(e.first_id, s.ids.unwrap().0 .0);
        if e.sealed {
            assert_eq!((e.last_id, e.event_count), (s.ids.unwrap().1 .0, s.events));
        }
    }
    assert!(
        m.id_high_water >= 600,
        "ids are recorded before they are written"
    );
    // A verify while the writer runs finds nothing wrong.
    assert_eq!(problems(&dir), Vec::<String>::new());
    store.close().unwrap();
}

/// The manifest deleted along with the newest segment: nothing records the loss any more,
/// but a cursor still shows which ids a consumer saw, so new ids start above it and the
/// cursor is reported as past the end, never silently "all processed".
#[test]
fn with_the_manifest_gone_too_new_ids_still_start_above_every_cursor() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let last = build(&dir, 3);
    {
        let store = Store::open(&dir, config()).unwrap();
        store
            .cursor("learner")
            .unwrap()
            .commit(EventId(last))
            .unwrap();
        store.close().unwrap();
    }
    let newest = segment_count(&dir);
    std::fs::remove_file(seg(&dir, newest)).unwrap();
    std::fs::remove_file(dir.join(selflog::fuzzing::MANIFEST_FILE)).unwrap();

    let store = Store::open(&dir, config()).unwrap();
    assert!(
        store
            .warnings()
            .iter()
            .any(|w| w.what.contains("cursor \"learner\" is at event")),
        "{:?}",
        store.warnings()
    );
    let id = store.append(event(last + 1)).unwrap().id();
    store.flush().unwrap();
    assert!(id.0 > last, "new id {id} reuses an id up to {last}");
    let unprocessed: Vec<u64> = store
        .cursor("learner")
        .unwrap()
        .unprocessed()
        .unwrap()
        .map(|e| e.unwrap().id.0)
        .collect();
    assert_eq!(unprocessed, [id.0], "the new event is unprocessed");
    store.close().unwrap();
}

/// Salvage copies the events that are left with their ids; the ids of the lost ones must
/// stay used in the new store, across a close and reopen.
#[test]
fn reserved_ids_stay_used_after_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    {
        let store = Store::open(&dir, config()).unwrap();
        store.append_with_id(EventId(10), event(1)).unwrap();
        store.reserve_ids_through(EventId(5_000)).unwrap();
        assert_eq!(store.append(event(2)).unwrap().id(), EventId(5_001));
        store.reserve_ids_through(EventId(9_000)).unwrap();
        store.close().unwrap();
    }
    let store = Store::open(&dir, config()).unwrap();
    assert_eq!(store.append(event(3)).unwrap().id(), EventId(9_001));
    store.close().unwrap();
    assert_eq!(problems(&dir), Vec::<String>::new());
}
