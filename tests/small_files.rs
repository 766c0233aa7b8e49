//! The small files beside the event log (`counters`, the cursor files, the dedup window
//! image, the pattern and stats sidecars) damaged in the ways issue #20 found: each is
//! reported by `verify` with its file, and its damage stops nothing that does not need it.
//! Before #20, garbage in `counters` failed `stats` and every writable open, garbage in one
//! cursor file failed the listing of all cursors, a damaged sidecar failed every read-only
//! open, and `verify` called each of these stores sound.

use std::path::{Path, PathBuf};

use selflog::{Appended, Config, Error, Event, EventId, NewPattern, Store, SystemStats, Timestamp};

const T0: i64 = 1_732_460_000_000_000;

fn event(i: u64) -> Event {
    Event::new(
        Timestamp(T0 + i64::try_from(i).unwrap() * 1000),
        "app_switch",
        Some("focus"),
        "Dock",
        Some(&format!(r#"{{"i":{i}}}"#)),
    )
    .unwrap()
}

fn config() -> Config {
    let mut c = Config::default();
    c.segment_len = 256 << 10;
    c.data_len_max = 16 << 10;
    c.dedup_window = 1000;
    c
}

/// A closed store at `dir/s` holding events `1..=n` and one duplicate dropped.
fn store_with(dir: &Path, n: u64) -> PathBuf {
    let path = dir.join("s");
    let store = Store::open(&path, config()).unwrap();
    for i in 1..=n {
        store.append(event(i)).unwrap();
    }
    assert_eq!(
        store.append(event(n)).unwrap(),
        Appended::Duplicate(EventId(n))
    );
    store.close().unwrap();
    path
}

/// Bytes no selflog file starts with, of `len` bytes.
fn garbage(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 37 + 11) % 251).unwrap())
        .collect()
}

/// The problems `verify` reports about `file`.
fn problems_about(store: &Path, file: &Path) -> Vec<String> {
    selflog::verify(store)
        .unwrap()
        .problems
        .into_iter()
        .filter(|p| p.path == file)
        .map(|p| p.what)
        .collect()
}

/// Garbage in `counters` made `stats` and every writable open (so `ingest`) fail with "not a
/// selflog cursor", and `verify` said sound (#20).
#[test]
fn garbage_in_counters_is_reported_by_verify_and_stops_neither_stats_nor_a_writable_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with(dir.path(), 20);
    let counters = path.join("counters");
    assert_eq!(
        Store::open_read_only(&path)
            .unwrap()
            .stats()
            .unwrap()
            .duplicates_dropped,
        1
    );
    std::fs::write(&counters, garbage(32)).unwrap();

    let problems = problems_about(&path, &counters);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("cannot be rebuilt"), "{problems:?}");

    let stats = Store::open_read_only(&path).unwrap().stats().unwrap();
    assert_eq!(stats.total_events, 20, "every other figure is exact");
    assert_eq!(stats.duplicates_dropped, 0);
    let why = stats.duplicates_unknown.expect("the count is unknown");
    assert!(why.contains("counters"), "{why}");

    // The writable open (what `ingest` does) resets the count and rewrites a sound file.
    let store = Store::open(&path, config()).unwrap();
    let reset = store
        .open_report()
        .counters_reset
        .clone()
        .expect("reported");
    assert!(reset.contains("restarted at 0"), "{reset}");
    let warnings = store.open_report().warning_lines();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("duplicates dropped count reset: "),
        "{warnings:?}"
    );
    assert_eq!(store.append(event(21)).unwrap(), Appended::New(EventId(21)));
    assert_eq!(
        store.append(event(2)).unwrap(),
        Appended::Duplicate(EventId(2))
    );
    store.close().unwrap();
    let report = selflog::verify(&path).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let stats = Store::open_read_only(&path).unwrap().stats().unwrap();
    assert_eq!(stats.duplicates_unknown, None);
    assert_eq!(stats.duplicates_dropped, 1, "counted again from 0");
}

/// A `counters` file of the wrong length, or one that cannot be read as a file at all, is
/// reported the same way.
#[test]
fn a_truncated_counters_file_is_reported_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with(dir.path(), 3);
    let counters = path.join("counters");
    let sound = std::fs::read(&counters).unwrap();
    std::fs::write(&counters, &sound[..20]).unwrap();
    assert_eq!(problems_about(&path, &counters).len(), 1);
    assert!(Store::open_read_only(&path)
        .unwrap()
        .stats()
        .unwrap()
        .duplicates_unknown
        .is_some());
    Store::open(&path, config()).unwrap().close().unwrap();
    assert_eq!(std::fs::read(&counters).unwrap().len(), 32);
    assert!(selflog::verify(&path).unwrap().problems.is_empty());
}

/// Garbage in one cursor file made `cursors()` (and `inspect cursors`) fail whole, and
/// `verify` said sound (#20).
#[test]
fn garbage_in_one_cursor_file_hides_no_other_cursor_is_reported_and_a_commit_rewrites_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with(dir.path(), 10);
    let store = Store::open_read_only(&path).unwrap();
    for (name, at) in [("a", 3), ("b", 5), ("c", 7)] {
        store.cursor(name).unwrap().commit(EventId(at)).unwrap();
    }
    let b = path.join("cursors").join("b");
    std::fs::write(&b, garbage(32)).unwrap();

    let list = store.cursors().unwrap();
    assert_eq!(
        list.sound,
        [("a".to_owned(), EventId(3)), ("c".to_owned(), EventId(7))]
    );
    assert_eq!(list.damaged.len(), 1);
    assert_eq!(list.damaged[0].name, "b");
    assert_eq!(list.damaged[0].path, b);
    assert!(
        matches!(&list.damaged[0].error, Error::Corrupt { path, .. } if *path == b),
        "{:?}",
        list.damaged[0].error
    );

    match store.cursor("b").unwrap().position() {
        Err(Error::Corrupt { path, what, .. }) => {
            assert_eq!(path, b);
            assert!(what.contains("cursor"), "{what}");
        }
        other => panic!("expected a corruption naming the file, got {other:?}"),
    }
    assert_eq!(problems_about(&path, &b).len(), 1);

    store.cursor("b").unwrap().commit(EventId(9)).unwrap();
    assert_eq!(
        store.cursor("b").unwrap().position().unwrap(),
        Some(EventId(9))
    );
    let list = store.cursors().unwrap();
    assert_eq!(list.sound.len(), 3);
    assert!(list.damaged.is_empty());
    assert!(selflog::verify(&path).unwrap().problems.is_empty());
}

/// An empty cursor file (a crash of a tool that wrote it in place) is damage too.
#[test]
fn an_empty_cursor_file_is_listed_as_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with(dir.path(), 5);
    let store = Store::open_read_only(&path).unwrap();
    store.cursor("x").unwrap().commit(EventId(5)).unwrap();
    std::fs::write(path.join("cursors").join("x"), b"").unwrap();
    let list = store.cursors().unwrap();
    assert!(list.sound.is_empty());
    assert_eq!(list.damaged.len(), 1);
    assert_eq!(
        problems_about(&path, &path.join("cursors").join("x")).len(),
        1
    );
}

/// A damaged dedup window image was invisible to `verify` (#20). It is a cache, so the
/// report says the next writable open rebuilds it; the store is otherwise sound.
#[test]
fn a_damaged_dedup_image_is_reported_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with(dir.path(), 1200);
    let image = path.join("dedup.window");
    assert!(image.exists(), "a full window leaves an image at close");
    assert!(selflog::verify(&path).unwrap().problems.is_empty());

    let sound = std::fs::read(&image).unwrap();
    let mut damaged = sound.clone();
    damaged[100] ^= 0x40;
    std::fs::write(&image, &damaged).unwrap();
    let problems = problems_about(&path, &image);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("checksum"), "{problems:?}");
    assert!(problems[0].contains("rebuilds"), "{problems:?}");

    // Garbage of any length, and a truncated image.
    for bytes in [
        garbage(sound.len()),
        garbage(77),
        sound[..sound.len() - 1].to_vec(),
    ] {
        std::fs::write(&image, &bytes).unwrap();
        assert_eq!(
            problems_about(&path, &image).len(),
            1,
            "{} bytes",
            bytes.len()
        );
    }

    // The writable open rebuilds the window and writes a sound image at close.
    let store = Store::open(&path, config()).unwrap();
    assert!(store.open_report().dedup_image_rejected.is_some());
    store.close().unwrap();
    assert!(selflog::verify(&path).unwrap().problems.is_empty());
}

/// A sound image of another store (same window, other events) is foreign, and one newer
/// than the log is stale: both are reported.
#[test]
fn a_foreign_dedup_image_is_reported_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with(dir.path(), 1200);
    let other = dir.path().join("other");
    {
        let store = Store::open(&other, config()).unwrap();
        for i in 5000..6300 {
            store.append(event(i)).unwrap();
        }
        store.close().unwrap();
    }
    std::fs::copy(other.join("dedup.window"), path.join("dedup.window")).unwrap();
    let problems = problems_about(&path, &path.join("dedup.window"));
    assert_eq!(problems.len(), 1, "{problems:?}");
}

/// A store with patterns and stats records in its sidecars, closed.
fn store_with_sidecars(dir: &Path) -> PathBuf {
    let path = dir.join("s");
    let store = Store::open(&path, config()).unwrap();
    for i in 1..=10 {
        store.append(event(i)).unwrap();
    }
    for i in 1..=5 {
        store
            .record_pattern(
                &NewPattern::new("burst", 0.5, format!(r#"{{"n":{i}}}"#)).about(EventId(i)),
            )
            .unwrap();
        store
            .record_system_stats(&SystemStats {
                timestamp: Timestamp(T0 + i64::try_from(i).unwrap()),
                total_events: i,
                events_per_second: 1.0,
                active_embryos: 0,
                avg_fitness: 0.0,
                storage_mb: 1.0,
            })
            .unwrap();
    }
    store.close().unwrap();
    path
}

/// A damaged pattern segment made every read-only open fail (so `inspect stats` and
/// `inspect list`), and `verify` never looked at the sidecars (#20).
#[test]
fn a_damaged_sidecar_segment_is_reported_by_verify_and_stops_no_read_of_the_event_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with_sidecars(dir.path());
    assert!(selflog::verify(&path).unwrap().problems.is_empty());
    let seg = path.join("patterns").join("events-00000001.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[256 + 6] ^= 0xff; // the first frame's checksum
    std::fs::write(&seg, &bytes).unwrap();
    // The clean close left an index image over every frame (issue 21), and opens do not
    // read the frames it covers: this damaged frame (a string definition, whose text the
    // image holds) would then be found by `verify` only. This test is about the damage an
    // open meets, as after a crash, so the image goes; `verify` reports the damage either way.
    let image = seg.with_extension("idx");
    assert!(image.exists());
    {
        let with_image = selflog::verify(&path).unwrap();
        assert!(with_image.problems.iter().any(|p| p.path == seg));
        let store = Store::open_read_only(&path).unwrap();
        assert_eq!(store.query().count().unwrap(), 10);
        let patterns = store.patterns(&selflog::PatternFilter::default()).unwrap();
        assert_eq!(
            patterns.len(),
            5,
            "intact frames are read right past the image"
        );
    }
    std::fs::remove_file(&image).unwrap();

    let report = selflog::verify(&path).unwrap();
    assert!(
        report.problems.iter().any(|p| p.path == seg),
        "{:?}",
        report.problems
    );
    assert_eq!(report.events, 10, "the event log is checked as before");

    let store = Store::open_read_only(&path).unwrap();
    assert_eq!(store.stats().unwrap().total_events, 10);
    assert_eq!(store.query().count().unwrap(), 10);
    assert_eq!(store.system_stats(None, None).unwrap().len(), 5);
    match store.patterns(&selflog::PatternFilter::default()) {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, seg),
        other => panic!("expected the pattern stream's damage, got {other:?}"),
    }
    drop(store);

    // The writable open (`ingest`) refused the store for the sidecar's damaged synced frame.
    // Now it appends events, writes neither sidecar, and says why.
    let store = Store::open(&path, config()).unwrap();
    let why = store
        .open_report()
        .sidecars_unwritable
        .clone()
        .expect("reported");
    assert_eq!(why.path, seg);
    assert_eq!(store.append(event(11)).unwrap(), Appended::New(EventId(11)));
    store.flush().unwrap();
    assert!(matches!(
        store.record_pattern(&NewPattern::new("burst", 0.5, "{}")),
        Err(Error::Corrupt { .. })
    ));
    assert_eq!(store.system_stats(None, None).unwrap().len(), 5);
    store.close().unwrap();
    assert_eq!(
        Store::open_read_only(&path)
            .unwrap()
            .stats()
            .unwrap()
            .total_events,
        11
    );
}

/// A sidecar whose `selflog.meta` is garbage: the other sidecar and the event log stay
/// readable, and `verify` names it.
#[test]
fn a_damaged_sidecar_meta_is_reported_by_verify_and_stops_no_other_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with_sidecars(dir.path());
    let stats_dir = path.join("stats");
    std::fs::write(stats_dir.join("selflog.meta"), garbage(32)).unwrap();
    let report = selflog::verify(&path).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.path.starts_with(&stats_dir)),
        "{:?}",
        report.problems
    );
    let store = Store::open_read_only(&path).unwrap();
    assert_eq!(store.stats().unwrap().total_events, 10);
    assert_eq!(
        store
            .patterns(&selflog::PatternFilter::default())
            .unwrap()
            .len(),
        5
    );
    assert!(store.system_stats(None, None).is_err());
    drop(store);
    let store = Store::open(&path, config()).unwrap();
    assert!(store.open_report().sidecars_unwritable.is_some());
    store.append(event(11)).unwrap();
    store.close().unwrap();
}

/// A sidecar's own `counters` is checked like the store's.
#[test]
fn garbage_in_a_sidecar_counters_is_reported_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with_sidecars(dir.path());
    let counters = path.join("patterns").join("counters");
    std::fs::write(&counters, garbage(32)).unwrap();
    assert_eq!(problems_about(&path, &counters).len(), 1);
    let store = Store::open(&path, config()).unwrap();
    let reset = store
        .open_report()
        .counters_reset
        .clone()
        .expect("reported");
    assert!(reset.contains(&counters.display().to_string()), "{reset}");
    store.close().unwrap();
    assert!(selflog::verify(&path).unwrap().problems.is_empty());
}

/// A cursor past the store's last event (its events lost, say a segment removed) was taken
/// as "all processed" without a word (#20): `verify` names it.
#[test]
fn a_cursor_past_the_last_event_is_reported_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with(dir.path(), 10);
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let longer = store_with(&other, 20);
    Store::open_read_only(&longer)
        .unwrap()
        .cursor("learner")
        .unwrap()
        .commit(EventId(20))
        .unwrap();
    std::fs::create_dir(path.join("cursors")).unwrap();
    let cursor = path.join("cursors").join("learner");
    std::fs::copy(longer.join("cursors").join("learner"), &cursor).unwrap();
    let problems = problems_about(&path, &cursor);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("past the last event that exists (10)"),
        "{problems:?}"
    );
}

/// A writable open killed while creating a sidecar leaves its directory without
/// `selflog.meta`; the next writable open completes it. That is not damage.
#[test]
fn a_sidecar_whose_creation_was_interrupted_is_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with_sidecars(dir.path());
    let stats_dir = path.join("stats");
    std::fs::remove_dir_all(&stats_dir).unwrap();
    std::fs::create_dir(&stats_dir).unwrap();
    std::fs::write(stats_dir.join("LOCK"), b"").unwrap();
    let report = selflog::verify(&path).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // Removed altogether while the other exists: damage.
    std::fs::remove_dir_all(&stats_dir).unwrap();
    let report = selflog::verify(&path).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].path, stats_dir);
}

/// The image a close left stays on disk while the next writer runs; once that writer's
/// retention deletes the segment holding the image's newest event, the image is outdated,
/// not damaged, and `verify` must not call the store damaged (found by `tests/model.rs`).
#[test]
fn an_image_outdated_by_retention_is_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with(dir.path(), 1200);
    let pad = "p".repeat(400);
    let mut c = config();
    c.retention_bytes_max = Some(512 << 10);
    c.retention_on_open = false;
    let store = Store::open(&path, c).unwrap();
    for i in 2000..6000_i64 {
        let e = Event::new(
            Timestamp(T0 + i * 1000),
            "app_switch",
            None,
            "Dock",
            Some(&format!(r#"{{"i":{i},"pad":"{pad}"}}"#)),
        )
        .unwrap();
        store.append(e).unwrap();
    }
    store.flush().unwrap();
    let deleted = store.retain(false).unwrap();
    assert!(
        deleted.iter().any(|d| d.segment.ids.unwrap().1 .0 >= 1200),
        "the image's newest event was deleted: {deleted:?}"
    );
    assert!(store.get(EventId(1200)).unwrap().is_none());
    let report = selflog::verify(&path).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    store.close().unwrap();
    assert!(selflog::verify(&path).unwrap().problems.is_empty());
}
