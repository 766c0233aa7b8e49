//! The index image beside the unsealed segment (`events-DDDDDDDD.idx`, issue 21): after a
//! clean close the next open scans nothing, and an image that is damaged, cut short, stale,
//! of another segment or store, or whose checksums hold over a lie, costs a longer scan and
//! never a wrong answer. Every store here is compared with a copy of itself without the
//! image, through a writable and a read-only open: events, lookups, filtered queries,
//! counts.

use std::path::{Path, PathBuf};

use selflog::fuzzing as f;
use selflog::{Config, Event, EventId, Store, Timestamp};

const T0: i64 = 1_732_460_000_000_000;

fn event(i: u64) -> Event {
    let ty = ["file_op", "app_launch", "clipboard", "window_focus"][(i % 4) as usize];
    let data = format!(r#"{{"i":{i},"pad":"{}"}}"#, "x".repeat((i % 300) as usize));
    Event::new(
        Timestamp(T0 + i64::try_from(i).unwrap() * 1000),
        ty,
        Some(["opened", "closed"][(i % 2) as usize]),
        format!("source-{}", i % 7),
        Some(data.as_str()),
    )
    .unwrap()
}

fn config() -> Config {
    let mut c = Config::default();
    c.sidecars = false;
    c.segment_len = 1 << 20;
    c.data_len_max = 16 << 10;
    c
}

/// A store of `n` events whose last segment is unsealed, closed cleanly.
fn build(dir: &Path, n: u64) {
    let store = Store::open(dir, config()).unwrap();
    for i in 1..=n {
        store.append(event(i)).unwrap();
    }
    store.close().unwrap();
}

fn active(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

fn image(dir: &Path) -> PathBuf {
    active(dir).with_extension("idx")
}

fn copy_store(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Everything a reader answers that the index decides.
fn answers(store: &Store) -> String {
    let mut out = String::new();
    let all: Vec<_> = store.scan().unwrap().map(Result::unwrap).collect();
    out += &format!("{} events\n", all.len());
    for e in all.iter().step_by(5) {
        out += &format!("{:?}\n", store.get(e.id).unwrap());
    }
    for ty in ["clipboard", "file_op"] {
        let ids: Vec<u64> = store
            .query()
            .event_type(ty)
            .run()
            .unwrap()
            .map(|e| e.unwrap().id.0)
            .collect();
        out += &format!("{ty}: {ids:?}\n");
    }
    let ids: Vec<u64> = store
        .query()
        .source("source-3")
        .since(Timestamp(T0 + 500_000))
        .until(Timestamp(T0 + 900_000))
        .run()
        .unwrap()
        .map(|e| e.unwrap().id.0)
        .collect();
    out += &format!("source-3 in range: {ids:?}\n");
    let s = store.stats().unwrap();
    out += &format!(
        "{} {:?} {:?} {:?} {:?} {:?} {} {}\n",
        s.total_events,
        s.first_id,
        s.last_id,
        s.first_timestamp,
        s.last_timestamp,
        s.events_by_type,
        s.data_raw_bytes,
        s.compressed_events
    );
    out
}

/// What a store answers through a read-only open and a writable one (which then appends
/// one more event, read back), and what the writable open scanned.
fn check(dir: &Path, want: &str, n: u64, ctx: &str) -> u64 {
    let ro = Store::open_read_only(dir).unwrap();
    assert_eq!(answers(&ro), want, "{ctx}: read-only open");
    drop(ro);
    let store = Store::open(dir, config()).unwrap();
    let scanned = store.open_report().tail_scanned_bytes;
    assert_eq!(answers(&store), want, "{ctx}: writable open");
    assert_eq!(store.open_report().torn_tail_bytes, 0, "{ctx}");
    assert_eq!(store.append(event(n + 1)).unwrap().id(), EventId(n + 1));
    store.flush().unwrap();
    assert_eq!(
        store.get(EventId(n + 1)).unwrap().map(|e| e.data),
        Some(event(n + 1).data.map(|d| d.get().to_owned()))
    );
    store.close().unwrap();
    let report = selflog::verify(dir).unwrap();
    assert!(report.problems.is_empty(), "{ctx}: {:?}", report.problems);
    scanned
}

/// The truth: the store's answers with no image at all.
fn truth(dir: &Path, tmp: &Path) -> String {
    let bare = tmp.join("bare");
    copy_store(dir, &bare);
    std::fs::remove_file(image(&bare)).unwrap();
    let ro = Store::open_read_only(&bare).unwrap();
    answers(&ro)
}

#[test]
fn after_a_clean_close_an_open_scans_nothing_and_answers_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let n = 3000;
    build(&dir, n);
    let want = truth(&dir, tmp.path());
    assert!(image(&dir).exists(), "a clean close writes the image");
    let head = f::ImageHead::decode(&std::fs::read(image(&dir)).unwrap()).unwrap();
    assert!(head.clean);
    let scanned = check(&dir, &want, n, "clean close");
    assert_eq!(
        scanned, 0,
        "the writable open scanned frames the image covers"
    );
    // The open cleared the flag before writing, the close set it again.
    let head = f::ImageHead::decode(&std::fs::read(image(&dir)).unwrap()).unwrap();
    assert!(head.clean);
}

/// Every flipped byte and every cut of the image is refused (its checksums), and the open
/// scans the whole segment instead and says why.
#[test]
fn a_damaged_or_cut_image_costs_a_scan_never_a_wrong_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let n = 400;
    build(&dir, n);
    let want = truth(&dir, tmp.path());
    let pristine = std::fs::read(image(&dir)).unwrap();
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    let step = (pristine.len() / 97).max(1);
    for at in (0..pristine.len()).step_by(step) {
        let mut b = pristine.clone();
        b[at] ^= 0x10;
        cases.push((format!("byte {at} flipped"), b));
    }
    for len in [0, 1, 8, 55, 56, 57, pristine.len() / 2, pristine.len() - 1] {
        cases.push((format!("cut to {len} bytes"), pristine[..len].to_vec()));
    }
    let mut longer = pristine.clone();
    longer.extend_from_slice(&[0; 10]);
    cases.push(("10 bytes longer".into(), longer));
    for (i, (what, bytes)) in cases.iter().enumerate() {
        let d = tmp.path().join(format!("c{i}"));
        copy_store(&dir, &d);
        std::fs::write(image(&d), bytes).unwrap();
        let ro = Store::open_read_only(&d).unwrap();
        assert_eq!(answers(&ro), want, "{what}: read-only open");
        drop(ro);
        let store = Store::open(&d, config()).unwrap();
        let r = store.open_report();
        assert!(r.index_image_rejected.is_some(), "{what}: not refused");
        assert!(r.tail_scanned_bytes > 0, "{what}");
        assert_eq!(answers(&store), want, "{what}: writable open");
        drop(store);
        std::fs::remove_dir_all(&d).unwrap();
    }
}

/// An older image of the same segment is sound (frames before it never change): the open
/// uses it and scans from where it ends. Images of another segment, of the same number in
/// another store, or beside another copy of the segment are refused.
#[test]
fn stale_and_foreign_images() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    build(&dir, 500);
    let old = std::fs::read(image(&dir)).unwrap();
    {
        let store = Store::open(&dir, config()).unwrap();
        for i in 501..=900 {
            store.append(event(i)).unwrap();
        }
        store.close().unwrap();
    }
    let segments_now = active(&dir);
    let want = truth(&dir, tmp.path());

    // Stale: an older image of the same segment (900 events fit in one segment).
    assert_eq!(segments_now.with_extension("idx"), image(&dir));
    let d = tmp.path().join("stale");
    copy_store(&dir, &d);
    let old_head = f::ImageHead::decode(&old).unwrap();
    let new_head = f::ImageHead::decode(&std::fs::read(image(&d)).unwrap()).unwrap();
    assert_eq!(old_head.segment_id, new_head.segment_id);
    assert!(old_head.covered_len < new_head.covered_len);
    std::fs::write(image(&d), &old).unwrap();
    let scanned = check(&d, &want, 900, "stale image");
    assert_eq!(scanned, new_head.covered_len - old_head.covered_len);

    // Of the same number in another store (same events, another creation time).
    let other = tmp.path().join("other");
    build(&other, 900);
    let d = tmp.path().join("foreign");
    copy_store(&dir, &d);
    std::fs::copy(image(&other), image(&d)).unwrap();
    let ro = Store::open_read_only(&d).unwrap();
    assert_eq!(answers(&ro), want, "foreign image: read-only");
    drop(ro);
    let store = Store::open(&d, config()).unwrap();
    let why = store.open_report().index_image_rejected.clone();
    assert!(
        why.as_deref()
            .is_some_and(|w| w.contains("another segment")),
        "{why:?}"
    );
    assert_eq!(answers(&store), want, "foreign image: writable");
}

/// An image whose checksums hold but whose head lies about the frames it covers (a writer
/// bug, or crafted): each lie is caught by the checks against the segment.
#[test]
fn an_image_that_lies_about_its_frames_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let n = 700;
    build(&dir, n);
    let want = truth(&dir, tmp.path());
    let (head, index) = f::decode_image(&std::fs::read(image(&dir)).unwrap()).unwrap();
    let committed = head.covered_len;
    let mut lies: Vec<(&str, f::ImageHead, f::Footer)> = vec![
        (
            "covers less than it says",
            f::ImageHead {
                covered_len: head.last_frame_offset,
                ..head
            },
            index.clone(),
        ),
        (
            "covers more than is committed",
            f::ImageHead {
                covered_len: committed + 100,
                ..head
            },
            index.clone(),
        ),
        (
            "names another last frame",
            f::ImageHead {
                last_frame_crc: head.last_frame_crc ^ 1,
                ..head
            },
            index.clone(),
        ),
        (
            "another segment",
            f::ImageHead {
                segment_id: head.segment_id + 1,
                ..head
            },
            index.clone(),
        ),
        (
            "segment header of another store",
            f::ImageHead {
                segment_header_crc: head.segment_header_crc ^ 1,
                ..head
            },
            index.clone(),
        ),
    ];
    let mut fewer = index.clone();
    fewer.summary.event_count -= 1;
    lies.push(("counts one event less", head, fewer));
    let mut other_last = index.clone();
    other_last.summary.last_id -= 1;
    lies.push(("another last id", head, other_last));
    let mut no_postings = index.clone();
    no_postings.postings = None;
    lies.push(("no postings", head, no_postings));
    for (what, h, idx) in lies {
        let d = tmp.path().join(what.replace(' ', "_"));
        copy_store(&dir, &d);
        std::fs::write(image(&d), f::encode_image(h, &idx)).unwrap();
        let ro = Store::open_read_only(&d).unwrap();
        assert_eq!(answers(&ro), want, "{what}: read-only open");
        drop(ro);
        let store = Store::open(&d, config()).unwrap();
        assert!(
            store.open_report().index_image_rejected.is_some(),
            "{what}: used"
        );
        assert_eq!(answers(&store), want, "{what}: writable open");
    }
}

/// Images of sealed segments (a crash between seal and removal) and leftover temporary
/// images are removed by the writer's open; readers never use them.
#[test]
fn images_of_sealed_segments_and_temporary_images_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    build(&dir, 6000);
    let segs: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .collect();
        v.sort();
        v
    };
    assert!(segs.len() >= 2, "{segs:?}");
    let want = truth(&dir, tmp.path());
    let img = std::fs::read(image(&dir)).unwrap();
    let first = segs[0].with_extension("idx");
    std::fs::write(&first, &img).unwrap();
    let tmp_img = segs[0].with_extension("idx.tmp");
    std::fs::write(&tmp_img, b"partial").unwrap();
    let ro = Store::open_read_only(&dir).unwrap();
    assert_eq!(answers(&ro), want);
    drop(ro);
    let store = Store::open(&dir, config()).unwrap();
    assert!(!first.exists() && !tmp_img.exists());
    assert!(image(&dir).exists());
    assert_eq!(answers(&store), want);
}

/// A reader leaves the image's postings encoded (a listing needs none of them) and decodes
/// them before it indexes frames a writer adds after the image: its filtered queries of
/// the grown segment still find every match, old and new.
#[test]
fn a_reader_of_an_image_follows_the_writer_with_every_posting() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    build(&dir, 3000);
    assert!(image(&dir).exists(), "a clean close writes the image");
    let reader = Store::open_read_only(&dir).unwrap();
    let ids = |ty: &str, store: &Store| -> Vec<u64> {
        let mut ids: Vec<u64> = store
            .query()
            .event_type(ty)
            .source("source-3")
            .run()
            .unwrap()
            .map(|e| e.unwrap().id.0)
            .collect();
        ids.sort_unstable();
        ids
    };
    let scanned = |ty: &str, store: &Store| -> Vec<u64> {
        store
            .scan()
            .unwrap()
            .map(Result::unwrap)
            .filter(|e| e.event_type == ty && e.source == "source-3")
            .map(|e| e.id.0)
            .collect()
    };
    assert_eq!(ids("clipboard", &reader), scanned("clipboard", &reader));
    let writer = Store::open(&dir, config()).unwrap();
    for i in 3001..=3040 {
        let mut e = event(i);
        if i % 10 == 0 {
            // A type the image's postings do not name: only postings built on find it.
            e.event_type = "usb_device".into();
        }
        writer.append(e).unwrap();
    }
    writer.flush().unwrap();
    for ty in ["clipboard", "app_launch", "usb_device"] {
        let want = scanned(ty, &reader);
        assert!(want.iter().any(|&id| id > 3000), "{ty}: new events seen");
        assert_eq!(ids(ty, &reader), want, "{ty}");
    }
    // Lookups by id go through the image's blocks and checkpoints, read in place, the
    // block it left open (closed by the reader since) and the blocks closed after it.
    let all: Vec<_> = reader.scan().unwrap().map(Result::unwrap).collect();
    assert_eq!(all.len(), 3040);
    for e in &all {
        assert_eq!(reader.get(e.id).unwrap().as_ref(), Some(e), "get {}", e.id);
    }
    let times: Vec<i64> = all.iter().map(|e| e.timestamp.0).collect();
    let newest: Vec<i64> = reader
        .query()
        .order(selflog::Order::NewestFirst)
        .limit(50)
        .run()
        .unwrap()
        .map(|e| e.unwrap().timestamp.0)
        .collect();
    let mut want = times.clone();
    want.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(newest, want[..50], "newest 50");
    writer.close().unwrap();
}

/// The writable open's reader view of the unsealed segment starts from the index the
/// open's recovery built rather than decoding the image again (issue 21): it answers as a
/// fresh read-only open, before and after the writer appends past it.
#[test]
fn the_writable_view_from_the_recovered_index_follows_the_appends() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let n = 3000;
    build(&dir, n);
    let store = Store::open(&dir, config()).unwrap();
    let ro = Store::open_read_only(&dir).unwrap();
    assert_eq!(answers(&store), answers(&ro), "at the open");
    drop(ro);
    for i in n + 1..=n + 700 {
        store.append(event(i)).unwrap();
    }
    store.flush().unwrap();
    let ro = Store::open_read_only(&dir).unwrap();
    let after = answers(&ro);
    assert!(after.starts_with(&format!("{} events", n + 700)), "{after}");
    assert_eq!(answers(&store), after, "after appending");
    drop(ro);
    store.close().unwrap();
}

/// The open clears the image's clean flag on a helper thread while it goes on (issue 21)
/// but has waited for it when it returns: from then on a writer may write past the image,
/// and a crash must not find a clean image over a torn tail.
#[test]
fn the_clean_flag_is_cleared_by_the_time_the_writable_open_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    build(&dir, 2000);
    for round in 0..5 {
        let head = f::ImageHead::decode(&std::fs::read(image(&dir)).unwrap()).unwrap();
        assert!(head.clean, "round {round}: the close left it clean");
        let store = Store::open(&dir, config()).unwrap();
        let head = f::ImageHead::decode(&std::fs::read(image(&dir)).unwrap()).unwrap();
        assert!(!head.clean, "round {round}: still clean after the open");
        store.append(event(2001 + round)).unwrap();
        store.close().unwrap();
    }
}
