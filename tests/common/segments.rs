//! What the tests that damage segment files share (`continuity.rs`, `damaged_segments.rs`):
//! a store of several small segments built from distinct events, and where each segment's
//! file and ids are.

use std::path::{Path, PathBuf};

use selflog::{Config, Error, Event, Store, Timestamp};

/// Small segments, so that a few hundred events make several of them.
pub fn config() -> Config {
    let mut c = Config::default();
    c.segment_len = 64 << 10;
    c.data_len_max = 16 << 10;
    c.sidecars = false;
    c
}

pub fn event(i: u64) -> Event {
    let ts = Timestamp(1_732_460_000_000_000 + i64::try_from(i).unwrap() * 1_000_000);
    let data = format!(r#"{{"n":{i},"pad":"{}"}}"#, "x".repeat(200));
    Event::new(ts, "file_op", Some("modified"), "Finder", Some(&data)).unwrap()
}

/// A closed store of at least `segments` segments; returns its last id.
pub fn build(dir: &Path, segments: usize) -> u64 {
    let store = Store::open(dir, config()).unwrap();
    let mut n = 0;
    while store.stats().unwrap().segments < segments {
        for _ in 0..50 {
            n += 1;
            store.append(event(n)).unwrap();
        }
        store.flush().unwrap();
    }
    store.close().unwrap();
    n
}

pub fn seg(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("events-{id:08}.seg"))
}

/// First id, last id and count of segment `id`, read before it is damaged.
pub fn ids_of(dir: &Path, id: u32) -> (u64, u64, u64) {
    let store = Store::open_read_only(dir).unwrap();
    let s = store
        .segments()
        .unwrap()
        .into_iter()
        .find(|s| s.segment_id == id)
        .unwrap();
    let (a, b) = s.ids.unwrap();
    (a.0, b.0, s.events)
}

/// Every problem `verify` reports, as `path: what`.
pub fn problems(dir: &Path) -> Vec<String> {
    selflog::verify(dir)
        .unwrap()
        .problems
        .into_iter()
        .map(|p| format!("{}: {}", p.path.display(), p.what))
        .collect()
}

/// The message of the `Incomplete` error a writable open refuses the store in `dir` with.
pub fn refused(dir: &Path) -> String {
    match Store::open(dir, config()) {
        Err(e @ Error::Incomplete { .. }) => e.to_string(),
        Err(e) => panic!("refused with another error: {e}"),
        Ok(_) => panic!("a writable open accepted an incomplete or unreadable store"),
    }
}

/// The ids a scan of `store` returns, in order.
pub fn ids_read(store: &Store) -> Vec<u64> {
    store.scan().unwrap().map(|e| e.unwrap().id.0).collect()
}
