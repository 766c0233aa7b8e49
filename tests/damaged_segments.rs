//! Segment files that cannot be read at all (issue 20): a zeroed 256-byte header, a sealed
//! segment cut short. Every read failed, although every other segment was intact. Now such a
//! file is treated like a missing segment: a read-only open skips it and names it, with the
//! events lost, in its warnings; `verify` reports it; a writable open refuses the store and
//! points to salvage. Damage inside a frame is still an error at the read that meets it
//! (`tests/recovery.rs`).

use std::os::unix::fs::FileExt as _;
use std::path::Path;

use selflog::{EventId, Store};

#[path = "common/segments.rs"]
mod segments;

use segments::{build, config, event, ids_of, ids_read, problems, refused, seg};

fn newest_segment(dir: &Path) -> u32 {
    let store = Store::open_read_only(dir).unwrap();
    store.segments().unwrap().last().unwrap().segment_id
}

fn zero_header(path: &Path) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&[0u8; 256], 0).unwrap();
}

fn cut_in_half(path: &Path) {
    let len = std::fs::metadata(path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len / 2).unwrap();
}

/// Checks everything a damaged, unreadable segment `k` holding `victim` (first id, last id,
/// count) must lead to in a store of `last` events: `verify` names it once with what is
/// lost, a writable open refuses with the salvage hint, and a read-only open warns and
/// serves every other event (scan, count, stats, get, query).
fn check_unreadable(dir: &Path, k: u32, victim: (u64, u64, u64), last: u64, why: &str) {
    let (first, end, count) = victim;
    let file = format!("events-{k:08}.seg");
    let want = format!("segment {k} is unreadable: {why}");
    let ids = format!("events {first}..{end} ({count} events");

    let found = problems(dir);
    let about: Vec<&String> = found.iter().filter(|p| p.contains(&file)).collect();
    assert_eq!(about.len(), 1, "one problem for the file: {found:?}");
    assert!(
        about[0].contains(&want) && about[0].contains(&ids),
        "{found:?}"
    );

    let msg = refused(dir);
    assert!(
        msg.contains(&file) && msg.contains(&want) && msg.contains(&ids),
        "{msg}"
    );
    assert!(msg.contains("selflog salvage --to NEW_DIR"), "{msg}");

    let ro = Store::open_read_only(dir).unwrap();
    let w: Vec<String> = ro
        .warnings()
        .iter()
        .map(|w| format!("{}: {}", w.path.display(), w.what))
        .collect();
    assert!(
        w.iter()
            .any(|w| w.contains(&file) && w.contains(&want) && w.contains(&ids)),
        "{w:?}"
    );
    let expected: Vec<u64> = (1..=last).filter(|i| *i < first || *i > end).collect();
    assert_eq!(ids_read(&ro), expected, "every other event is served");
    assert_eq!(ro.query().count().unwrap(), last - count);
    assert_eq!(ro.stats().unwrap().total_events, last - count);
    assert!(ro.get(EventId(first)).unwrap().is_none());
    assert_eq!(ro.get(EventId(end + 1)).unwrap().unwrap().id.0, end + 1);
    assert_eq!(ro.get(EventId(first - 1)).unwrap().unwrap().id.0, first - 1);
}

/// Issue 20: a sealed middle segment's 256-byte header zeroed made every read fail.
#[test]
fn zeroed_header_of_a_sealed_middle_segment_is_skipped_named_and_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let last = build(&dir, 5);
    let victim = ids_of(&dir, 3);
    zero_header(&seg(&dir, 3));
    check_unreadable(&dir, 3, victim, last, "its header is damaged");
}

/// Issue 20: a sealed segment truncated made every read fail.
#[test]
fn sealed_segment_cut_in_half_is_skipped_named_and_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let last = build(&dir, 5);
    let victim = ids_of(&dir, 2);
    cut_in_half(&seg(&dir, 2));
    check_unreadable(&dir, 2, victim, last, "the file is cut short");
}

/// A sealed segment that lost only its footer (cut at its committed end) is cut short too.
#[test]
fn sealed_segment_cut_at_its_footer_is_skipped_named_and_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let last = build(&dir, 4);
    let victim = ids_of(&dir, 2);
    let path = seg(&dir, 2);
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 10).unwrap();
    check_unreadable(&dir, 2, victim, last, "the file is cut short");
}

/// The newest (active, unsealed) segment's header zeroed: the read-only open serves the
/// sealed segments and warns; the writable open refuses (it cannot know where ids stand).
#[test]
fn zeroed_header_of_the_newest_segment_is_skipped_named_and_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let last = build(&dir, 3);
    let newest = newest_segment(&dir);
    let (first, _, _) = ids_of(&dir, newest);
    zero_header(&seg(&dir, newest));

    let file = format!("events-{newest:08}.seg");
    let want = format!("segment {newest} is unreadable: its header is damaged");
    let found = problems(&dir);
    assert!(
        found
            .iter()
            .any(|p| p.contains(&file) && p.contains(&want) && p.contains("newest segment")),
        "{found:?}"
    );
    let msg = refused(&dir);
    assert!(
        msg.contains(&want) && msg.contains(&format!("events from {first} on")),
        "{msg}"
    );
    assert!(msg.contains("selflog salvage --to NEW_DIR"), "{msg}");

    let ro = Store::open_read_only(&dir).unwrap();
    assert!(
        ro.warnings()
            .iter()
            .any(|w| w.path.ends_with(&file) && w.what.contains(&want)),
        "{:?}",
        ro.warnings()
    );
    let ids = ids_read(&ro);
    assert_eq!(ids, (1..first).collect::<Vec<_>>());
    assert!(first <= last);
    // Later refreshes go on skipping it, without an error.
    ro.refresh().unwrap();
    assert_eq!(ro.query().count().unwrap(), first - 1);
}

/// A file only cut short past its footer (the allocated length a crash during the seal's
/// shrink leaves, or less, down to the footer's end) is not damage.
#[test]
fn a_sealed_segment_cut_exactly_at_its_footer_end_is_sound() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let last = build(&dir, 3);
    let path = seg(&dir, 1);
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len + 4096).unwrap();
    assert_eq!(problems(&dir), Vec::<String>::new());
    f.set_len(len).unwrap();
    assert_eq!(problems(&dir), Vec::<String>::new());
    let ro = Store::open_read_only(&dir).unwrap();
    assert!(ro.warnings().is_empty());
    assert_eq!(ids_read(&ro).len() as u64, last);
}

/// A reader racing the writer's rolls never sees a segment being created as unreadable:
/// the file gets its name only once its header is written (temporary name, rename).
#[test]
fn readers_racing_rolls_never_see_an_unreadable_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let store = Store::open(&dir, config()).unwrap();
    store.append(event(1)).unwrap();
    store.flush().unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut opens = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let ro = Store::open_read_only(&dir).unwrap();
                assert!(ro.warnings().is_empty(), "{:?}", ro.warnings());
                let ids = ids_read(&ro);
                assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "no gap");
                opens += 1;
            }
            opens
        });
        for i in 2..=1500 {
            store.append(event(i)).unwrap();
            if i % 20 == 0 {
                store.flush().unwrap();
            }
        }
        store.flush().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    });
    assert!(store.segments().unwrap().len() > 3);
    store.close().unwrap();
}

/// A sidecar's segment header zeroed is a loss in that sidecar alone: the events stay
/// writable (the store opens without writing the sidecars and says why), and a read-only
/// open still reads the events.
#[test]
fn zeroed_header_of_a_sidecar_segment_leaves_the_events_writable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let mut c = config();
    c.sidecars = true;
    {
        let store = Store::open(&dir, c.clone()).unwrap();
        store.append(event(1)).unwrap();
        store
            .record_pattern(&selflog::NewPattern::new("burst", 0.5, "{}").about(EventId(1)))
            .unwrap();
        store.close().unwrap();
    }
    let victim = dir.join("patterns").join("events-00000001.seg");
    zero_header(&victim);

    let store = Store::open(&dir, c).unwrap();
    let p = store
        .open_report()
        .sidecars_unwritable
        .clone()
        .expect("the damage is reported");
    assert!(p.what.contains("segment 1 is unreadable"), "{p:?}");
    store.append(event(2)).unwrap();
    store.close().unwrap();
    let ro = Store::open_read_only(&dir).unwrap();
    assert_eq!(ids_read(&ro), [1, 2]);
}
