//! Sealed segments a read-only open leaves deferred (issue 21: their footers are read only
//! when a command reads the segment; the segment manifest's record of them, checked
//! against each commit slot, orders them meanwhile) still report damage to every read that
//! needs them: a damaged footer costs the reads of that segment an error naming it, never a
//! silent omission, while a listing of the newest events, which never reaches it, answers.

use std::os::unix::fs::FileExt as _;

use selflog::{Error, EventId, Order, Store};

#[expect(
    dead_code,
    reason = "shared with the other damage tests, which use the rest"
)]
#[path = "common/segments.rs"]
mod segments;

/// Asserts that `got` is a `Corrupt` error naming `victim`.
fn names<T: std::fmt::Debug>(got: selflog::Result<T>, victim: &std::path::Path, what: &str) {
    match got {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, victim, "{what}"),
        other => panic!("{what}: {other:?}"),
    }
}

#[test]
fn a_damaged_footer_of_a_deferred_segment_fails_every_read_of_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let mut c = segments::config();
    c.compaction_level = None;
    let store = Store::open(&dir, c.clone()).unwrap();
    let mut n = 0;
    while store.stats().unwrap().segments < 5 {
        for _ in 0..50 {
            n += 1;
            store.append(segments::event(n)).unwrap();
        }
        store.flush().unwrap();
    }
    store.close().unwrap();
    let (first, last, _) = segments::ids_of(&dir, 2);
    let victim = segments::seg(&dir, 2);
    // A byte of the footer's content (it ends the file, before its 4-byte checksum).
    let len = std::fs::metadata(&victim).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .unwrap();
    let mut b = [0u8; 1];
    std::fs::File::open(&victim)
        .unwrap()
        .read_exact_at(&mut b, len - 10)
        .unwrap();
    file.write_all_at(&[b[0] ^ 0x40], len - 10).unwrap();

    let ro = Store::open_read_only(&dir).unwrap();
    let newest: Vec<u64> = ro
        .query()
        .order(Order::NewestFirst)
        .limit(50)
        .run()
        .unwrap()
        .map(|e| e.unwrap().id.0)
        .collect();
    assert_eq!(newest, (n - 49..=n).rev().collect::<Vec<_>>());
    names(ro.get(EventId(first)), &victim, "get of its first event");
    names(ro.get(EventId(last)), &victim, "get of its last event");
    names(ro.stats(), &victim, "stats");
    let all: selflog::Result<Vec<_>> = ro
        .query()
        .order(Order::OldestFirst)
        .run()
        .unwrap()
        .collect();
    names(all, &victim, "a query of every event");
    // A writable open rebuilds its dedup window from the segments it covers, this one
    // among them, and refuses as it did before segments were deferred.
    names(Store::open(&dir, c).map(|_| ()), &victim, "a writable open");
}
