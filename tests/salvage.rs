//! Salvage as the last resort (issue 20): each test writes a store with the library (small
//! segments), damages real files the way a disk or a person does, salvages it, and
//! compares what the new store holds with what was written, event by event, and the
//! report's counts with the damage.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use selflog::{Config, Event, EventId, IdOrigin, NewPattern, Store, TimeOrigin, Timestamp};

const N: u64 = 5000;
const T0: i64 = 1_732_460_000_000_000;

fn config() -> Config {
    let mut c = Config::default();
    c.segment_len = selflog::SEGMENT_LEN_MIN;
    c.data_len_max = 16 << 10;
    c.retention_age = None;
    c
}

/// Event `i` (from 0): id `i + 1`, a millisecond after the one before.
fn event(i: u64) -> Event {
    let types = ["file_op", "app_launch", "clipboard", "window_focus"];
    let data = format!(r#"{{"i":{i},"path":"/home/ada/{}.txt"}}"#, i * 7919 % 1000);
    Event::new(
        Timestamp(T0 + i.cast_signed() * 1000),
        types[(i % 4) as usize],
        (!i.is_multiple_of(3)).then_some("modified"),
        format!("app-{}", i % 5),
        Some(&data),
    )
    .unwrap()
}

/// A store of `N` events in several 64 KiB segments, closed (its last segment unsealed).
fn written(dir: &Path) -> PathBuf {
    let path = dir.join("s");
    let store = Store::open(&path, config()).unwrap();
    for i in 0..N {
        store.append(event(i)).unwrap();
    }
    store.close().unwrap();
    path
}

fn segment(store: &Path, n: u32) -> PathBuf {
    store.join(format!("events-{n:08}.seg"))
}

fn segment_count(store: &Path) -> u32 {
    let n = std::fs::read_dir(store)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".seg")
        })
        .count();
    u32::try_from(n).unwrap()
}

/// The ids of the events stored in each segment, read before damaging it.
fn ids_by_segment(store: &Path) -> Vec<(u64, u64)> {
    let ro = Store::open_read_only(store).unwrap();
    ro.segments()
        .unwrap()
        .iter()
        .map(|s| s.ids.map_or((0, 0), |(a, b)| (a.0, b.0)))
        .collect()
}

/// Every event of the store at `path`, by id.
fn contents(path: &Path) -> BTreeMap<u64, Event> {
    let ro = Store::open_read_only(path).unwrap();
    ro.scan()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.id.0, e.to_event().unwrap())
        })
        .collect()
}

/// Checks that every event the copy holds is the one written under that id, and returns
/// how many it holds.
fn check_copy(copy: &Path) -> u64 {
    let got = contents(copy);
    for (id, e) in &got {
        assert_eq!(e, &event(id - 1), "event {id}");
    }
    assert!(selflog::verify(copy).unwrap().problems.is_empty());
    got.len() as u64
}

/// 32 bytes of garbage over `selflog.meta` made every command refuse the store, salvage
/// included ("not a selflog store"); salvage now recognises the store by its segments.
#[test]
fn meta_overwritten_with_garbage_salvage_gets_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = written(dir.path());
    let garbage: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(97) ^ 0x5A).collect();
    std::fs::write(store.join("selflog.meta"), garbage).unwrap();
    let copy = dir.path().join("copy");
    let report = selflog::salvage(&store, &copy).unwrap();
    assert!(report.meta_damaged.is_some(), "{report:?}");
    assert_eq!(report.events_copied, N);
    assert_eq!(report.events_lost, 0);
    assert_eq!(check_copy(&copy), N);
}

/// A sealed segment's 256-byte header zeroed: salvage skipped the whole file ("0
/// unreadable"). Its frames are intact; the footer gives the first id and, checked by the
/// content hashes, the timestamp base.
#[test]
fn header_zeroed_every_event_of_that_segment_is_copied() {
    let dir = tempfile::tempdir().unwrap();
    let store = written(dir.path());
    assert!(segment_count(&store) >= 4);
    let seg = segment(&store, 2);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[..256].fill(0);
    std::fs::write(&seg, &bytes).unwrap();
    let copy = dir.path().join("copy");
    let report = selflog::salvage(&store, &copy).unwrap();
    assert_eq!(report.events_copied, N, "{report:#?}");
    assert_eq!((report.events_lost, report.events_unreadable), (0, 0));
    let file = &report.files[1];
    assert_eq!(file.path, seg);
    assert_eq!(file.ids, IdOrigin::Footer);
    assert_eq!(file.timestamps, TimeOrigin::Footer);
    assert_eq!(check_copy(&copy), N);
}

/// The unsealed last segment's header zeroed: no footer, no slot. Ids continue the previous
/// segment's; the timestamp base is found near the previous segment's last event and
/// checked by the content hashes.
#[test]
fn header_of_the_last_segment_zeroed_every_event_is_copied() {
    let dir = tempfile::tempdir().unwrap();
    let store = written(dir.path());
    let last = segment(&store, segment_count(&store));
    let mut bytes = std::fs::read(&last).unwrap();
    bytes[..256].fill(0);
    std::fs::write(&last, &bytes).unwrap();
    let copy = dir.path().join("copy");
    let report = selflog::salvage(&store, &copy).unwrap();
    assert_eq!(report.events_copied, N, "{report:#?}");
    let file = report.files.last().unwrap();
    assert_eq!(file.ids, IdOrigin::PreviousFile);
    assert_eq!(file.timestamps, TimeOrigin::Searched);
    assert_eq!(
        file.bytes_skipped, 0,
        "the unwritten zero end is not damage"
    );
    assert_eq!(check_copy(&copy), N);
}

/// The header and the first frames zeroed (string definitions with them): the footer's
/// dictionary stands in for the lost definitions, and the events whose frames were zeroed
/// are counted lost, exactly.
#[test]
fn header_and_first_frames_zeroed_strings_come_from_the_footer() {
    let dir = tempfile::tempdir().unwrap();
    let store = written(dir.path());
    let (first, last) = ids_by_segment(&store)[2];
    let seg = segment(&store, 3);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[..700].fill(0);
    std::fs::write(&seg, &bytes).unwrap();
    let copy = dir.path().join("copy");
    let report = selflog::salvage(&store, &copy).unwrap();
    let file = &report.files[2];
    assert!(file.events_lost > 0, "{file:#?}");
    assert_eq!(file.events_copied + file.events_lost, last - first + 1);
    assert_eq!(report.events_copied + report.events_lost, N);
    assert_eq!(check_copy(&copy), report.events_copied);
}

/// A sealed segment cut in half: every read of the store failed. The prefix is copied,
/// the rest of the segment counted lost from its commit slot, every other segment copied.
#[test]
fn truncated_sealed_segment_prefix_is_copied_and_the_loss_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = written(dir.path());
    let (first, last) = ids_by_segment(&store)[1];
    let seg = segment(&store, 2);
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let copy = dir.path().join("copy");
    let report = selflog::salvage(&store, &copy).unwrap();
    let file = &report.files[1];
    assert!(file.events_copied > 0 && file.events_lost > 0, "{file:#?}");
    assert_eq!(file.events_copied + file.events_lost, last - first + 1);
    assert!(file.bytes_missing > 0);
    assert_eq!(report.events_copied + report.events_lost, N);
    let got = check_copy(&copy);
    assert_eq!(got, report.events_copied);
    let held = contents(&copy);
    // The prefix: ids first..first + copied − 1 of that segment, nothing after.
    for id in first..first + file.events_copied {
        assert!(held.contains_key(&id), "id {id}");
    }
    for id in first + file.events_copied..=last {
        assert!(!held.contains_key(&id), "id {id}");
    }
}

/// Garbage over the middle of a segment: the frames after it are copied, the events whose
/// frames it covered are counted lost.
#[test]
fn garbage_in_the_middle_of_a_segment_the_frames_after_it_are_copied() {
    let dir = tempfile::tempdir().unwrap();
    let store = written(dir.path());
    let (first, last) = ids_by_segment(&store)[1];
    let seg = segment(&store, 2);
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    for (k, b) in bytes[mid..mid + 500].iter_mut().enumerate() {
        *b = (k as u8).wrapping_mul(31) ^ 0xA5;
    }
    std::fs::write(&seg, &bytes).unwrap();
    let copy = dir.path().join("copy");
    let report = selflog::salvage(&store, &copy).unwrap();
    let file = &report.files[1];
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    assert!(file.bytes_skipped >= 500);
    assert!((1..=10).contains(&file.events_lost), "{file:#?}");
    assert_eq!(file.events_copied + file.events_lost, last - first + 1);
    assert_eq!(report.events_copied + report.events_lost, N);
    let held = contents(&copy);
    assert!(
        held.contains_key(&last),
        "the segment's last event, after the garbage"
    );
    assert_eq!(check_copy(&copy), report.events_copied);
}

/// Salvage into a store that already held events said "copied 990064" and exited 0 though
/// it copied nothing, and inflated that store's duplicate counter. It is refused now, and
/// nothing is written.
#[test]
fn non_empty_destination_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = written(dir.path());
    let other = dir.path().join("other");
    let s = Store::open(&other, config()).unwrap();
    s.append(event(0)).unwrap();
    s.close().unwrap();
    let before = listing(&other);
    let err = selflog::salvage(&store, &other).unwrap_err();
    assert!(
        matches!(err, selflog::Error::DestinationRefused { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(listing(&other), before, "nothing written");
    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    std::fs::write(plain.join("notes.txt"), "x").unwrap();
    assert!(selflog::salvage(&store, &plain).is_err());
    assert_eq!(listing(&plain), vec![plain.join("notes.txt")]);
    // An empty directory is fine.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_eq!(selflog::salvage(&store, &empty).unwrap().events_copied, N);
}

/// Salvage into its own source (the same directory, a path inside it, a symbolic link to
/// it) is refused before anything is written.
#[test]
fn own_source_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = written(dir.path());
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&store, &link).unwrap();
    let before = listing(&store);
    for to in [
        store.clone(),
        store.join("inside"),
        store.join("a/b"),
        link.clone(),
        link.join("inside"),
        store.join("../s/x"),
    ] {
        let err = selflog::salvage(&store, &to).unwrap_err();
        assert!(
            matches!(err, selflog::Error::DestinationRefused { .. }),
            "{}: {err}",
            to.display()
        );
        assert!(err.to_string().contains("source"), "{err}");
        assert_eq!(listing(&store), before, "{}: nothing written", to.display());
    }
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walk(dir);
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

/// Salvage of a store with cursors, patterns and stats left the cursors behind. Cursors,
/// the pattern and stats streams (salvaged like the log) and the duplicate count are
/// copied now.
#[test]
fn cursors_patterns_and_stats_copied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = Store::open(&path, config()).unwrap();
    for i in 0..200 {
        store.append(event(i)).unwrap();
    }
    store.append(event(5)).unwrap(); // a duplicate, counted
    for i in 0..40u64 {
        store
            .record_pattern(
                &NewPattern::new("burst", 0.5, format!(r#"{{"n":{i}}}"#))
                    .about(EventId(i + 1))
                    .found_by("embryo-1"),
            )
            .unwrap();
    }
    store
        .record_system_stats(&selflog::SystemStats {
            timestamp: Timestamp(T0),
            total_events: 200,
            events_per_second: 1.5,
            active_embryos: 3,
            avg_fitness: 0.25,
            storage_mb: 1.0,
        })
        .unwrap();
    store.flush().unwrap();
    store
        .cursor("learner")
        .unwrap()
        .commit(EventId(150))
        .unwrap();
    store
        .cursor("exporter")
        .unwrap()
        .commit(EventId(7))
        .unwrap();
    store.close().unwrap();
    let ro = Store::open_read_only(&path).unwrap();
    let patterns = ro.patterns(&selflog::PatternFilter::default()).unwrap();
    let stats = ro.system_stats(None, None).unwrap();
    let duplicates = ro.stats().unwrap().duplicates_dropped;
    drop(ro);
    assert_eq!(patterns.len(), 40);
    assert_eq!(duplicates, 1);

    let copy = dir.path().join("copy");
    let report = selflog::salvage(&path, &copy).unwrap();
    assert_eq!(report.events_copied, 200);
    assert_eq!(report.patterns_copied, 40);
    assert_eq!(report.stats_copied, stats.len() as u64);
    let copied = Store::open_read_only(&copy).unwrap();
    assert_eq!(
        copied.cursors().unwrap().sound,
        vec![
            ("exporter".to_owned(), EventId(7)),
            ("learner".to_owned(), EventId(150))
        ]
    );
    assert_eq!(
        copied.patterns(&selflog::PatternFilter::default()).unwrap(),
        patterns
    );
    assert_eq!(copied.system_stats(None, None).unwrap(), stats);
    assert_eq!(copied.stats().unwrap().duplicates_dropped, 1);
    drop(copied);
    // The copy is a store a writer opens and goes on with.
    let w = Store::open(&copy, config()).unwrap();
    assert_eq!(w.append(event(1000)).unwrap().id(), EventId(201));
    w.close().unwrap();
}

/// The counts add up to what was written when several kinds of damage meet in one store:
/// garbage meta, a zeroed header, a cut segment and garbage in another.
#[test]
fn counts_are_exact_under_combined_damage() {
    let dir = tempfile::tempdir().unwrap();
    let store = written(dir.path());
    let ranges = ids_by_segment(&store);
    assert!(ranges.len() >= 5, "{ranges:?}");
    std::fs::write(store.join("selflog.meta"), [0xEEu8; 32]).unwrap();
    let zero = |n: u32, r: std::ops::Range<usize>| {
        let mut b = std::fs::read(segment(&store, n)).unwrap();
        b[r].fill(0);
        std::fs::write(segment(&store, n), b).unwrap();
    };
    zero(1, 0..256);
    zero(3, 20_000..21_000);
    let seg4 = segment(&store, 4);
    let len = std::fs::metadata(&seg4).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg4)
        .unwrap()
        .set_len(len - 9000)
        .unwrap();
    let copy = dir.path().join("copy");
    let report = selflog::salvage(&store, &copy).unwrap();
    assert!(report.meta_damaged.is_some());
    assert_eq!(report.events_copied + report.events_lost, N, "{report:#?}");
    for (f, (first, last)) in report.files.iter().zip(&ranges) {
        assert_eq!(f.events_copied + f.events_lost, last - first + 1, "{f:#?}");
        assert_eq!(f.events_unreadable, 0, "{f:#?}");
    }
    assert_eq!(report.files[0].ids, IdOrigin::Footer);
    assert_eq!(check_copy(&copy), report.events_copied);
}

/// Two sealed segments swapped by name: each is copied with its own ids, none is lost for
/// coming after higher ids.
#[test]
fn swapped_segments_are_copied_with_their_ids() {
    let dir = tempfile::tempdir().unwrap();
    let store = written(dir.path());
    let (a, b) = (segment(&store, 2), segment(&store, 3));
    let tmp = store.join("swap");
    std::fs::rename(&a, &tmp).unwrap();
    std::fs::rename(&b, &a).unwrap();
    std::fs::rename(&tmp, &b).unwrap();
    let copy = dir.path().join("copy");
    let report = selflog::salvage(&store, &copy).unwrap();
    assert_eq!(report.events_copied, N, "{report:#?}");
    assert_eq!(check_copy(&copy), N);
}

/// A sealed segment cut inside its header: nothing of it holds, and nothing in it says how
/// many events it had; the ids missing between its neighbours are counted lost.
#[test]
fn segment_cut_inside_its_header_the_ids_between_its_neighbours_are_counted_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = written(dir.path());
    let (first, last) = ids_by_segment(&store)[1];
    std::fs::OpenOptions::new()
        .write(true)
        .open(segment(&store, 2))
        .unwrap()
        .set_len(100)
        .unwrap();
    let copy = dir.path().join("copy");
    let report = selflog::salvage(&store, &copy).unwrap();
    assert_eq!(report.files[1].events_lost, last - first + 1, "{report:#?}");
    assert_eq!(report.events_copied + report.events_lost, N);
    assert_eq!(check_copy(&copy), report.events_copied);
}

/// A segment cut short, then the last segment's header zeroed: the cut segment's commit
/// slot still says which ids it held, so the last segment's ids continue after those, not
/// after the last id copied (which would give its events ids that others had).
#[test]
fn header_zeroed_after_a_cut_segment_ids_continue_after_what_the_cut_one_held() {
    let dir = tempfile::tempdir().unwrap();
    let store = written(dir.path());
    let count = segment_count(&store);
    let prev = segment(&store, count - 1);
    let len = std::fs::metadata(&prev).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&prev)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let last = segment(&store, count);
    let mut bytes = std::fs::read(&last).unwrap();
    bytes[..256].fill(0);
    std::fs::write(&last, &bytes).unwrap();
    let copy = dir.path().join("copy");
    let report = selflog::salvage(&store, &copy).unwrap();
    let file = report.files.last().unwrap();
    assert_eq!(file.ids, IdOrigin::PreviousFile, "{file:#?}");
    assert_eq!(file.ids_copied.unwrap().1, EventId(N));
    assert_eq!(report.events_copied + report.events_lost, N);
    assert_eq!(check_copy(&copy), report.events_copied);
}

/// Issue 20: a store whose newest segment was lost, salvaged, handed out the lost ids
/// again to the next events, so a consumer that had seen them took new events for old.
/// The copy keeps every id the source's manifest records as used out of its future.
#[test]
fn newest_segment_lost_the_copy_never_hands_out_its_ids_again() {
    let dir = tempfile::tempdir().unwrap();
    let src = written(dir.path());
    let newest = segment_count(&src);
    assert!(newest >= 3, "{newest} segments");
    let last_held = ids_by_segment(&src)
        .iter()
        .map(|&(_, last)| last)
        .max()
        .unwrap();
    assert_eq!(last_held, N);
    std::fs::remove_file(segment(&src, newest)).unwrap();
    let to = dir.path().join("copy");
    selflog::salvage(&src, &to).unwrap();
    let copy = Store::open(&to, config()).unwrap();
    let id = copy.append(event(N + 1)).unwrap().id();
    assert!(
        id.0 > N,
        "new event got id {id}, an id the lost segment had used"
    );
    copy.close().unwrap();
}
