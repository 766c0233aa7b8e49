//! The store against a plain in-memory model, under random sequences of append,
//! `append_batch`, flush, query, reopen, crash (the directory copied while the writer runs,
//! then opened as a restarted daemon would), retention and cursor commits. After every
//! step: what a reader sees is the model's events in id order (a prefix of the unflushed
//! ones), queries return exactly what the model says, duplicates within the dedup window
//! name their original, retention deletes only whole segments it may delete, and a crash
//! keeps every flushed event plus at most a prefix of the rest.

use std::path::Path;

use proptest::prelude::*;
use selflog::{Appended, Config, Event, EventId, Order, Store, Timestamp};

const T0: i64 = 1_732_460_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    Append(u16),
    Batch(Vec<u16>),
    Flush,
    Reopen,
    Crash,
    Cursor(u8),
    Query(u8),
    Retain,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<u16>().prop_map(Op::Append),
        2 => prop::collection::vec(any::<u16>(), 0..100).prop_map(Op::Batch),
        2 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
        1 => any::<u8>().prop_map(Op::Cursor),
        2 => any::<u8>().prop_map(Op::Query),
        1 => Just(Op::Retain),
    ]
}

/// Event `seed`: a small seed space makes duplicates common; some events are large
/// (compressed) and some timestamps late.
fn event(seed: u16) -> Event {
    let s = seed % 500;
    let data = if s.is_multiple_of(17) {
        format!(r#"{{"s":{s},"text":"{}"}}"#, "compressible ".repeat(200))
    } else {
        // A few hundred bytes, so that a run fills several 64 KiB segments.
        format!(
            r#"{{"s":{s},"pad":"{}"}}"#,
            "p".repeat(200 + usize::from(s % 700))
        )
    };
    Event::new(
        Timestamp(T0 + i64::from(s) * 1000 - if s.is_multiple_of(7) { 3_000_000 } else { 0 }),
        ["a", "b", "c"][usize::from(s % 3)],
        (s.is_multiple_of(2)).then_some("act"),
        format!("src{}", s % 5),
        (!s.is_multiple_of(11)).then_some(data.as_str()),
    )
    .unwrap()
}

/// The dedup window: small, so that retention (which never deletes inside it) has work.
const WINDOW: u64 = 40;

/// Small segments; every event is older than the retention age (the model's timestamps are
/// in 2024), so every sealed segment outside the dedup window may go, but only when the
/// test says so (not at open, not from the maintenance thread).
fn config() -> Config {
    let mut c = Config::default();
    c.segment_len = 64 << 10;
    c.data_len_max = 16 << 10;
    c.dedup_window = WINDOW as usize;
    c.retention_on_open = false;
    c
}

/// Copies a live store directory file by file, as a crash would leave it. A file can
/// vanish between the listing and its copy: the writer creates each segment under a
/// temporary name and renames it when it rolls (a crash at that moment leaves the same).
/// The segment manifest is copied before the listing is taken: the writer records a new
/// segment only once its file exists, so a manifest read first and files listed after are
/// a state a crash can leave; a manifest read after the listing could name a segment
/// created after it, which no crash leaves (issue 20).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let manifest = selflog::fuzzing::MANIFEST_FILE;
    match std::fs::copy(from.join(manifest), to.join(manifest)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        copied => {
            copied.unwrap();
        }
    }
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == manifest {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            match std::fs::copy(entry.path(), to.join(entry.file_name())) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                copied => {
                    copied.unwrap();
                }
            }
        }
    }
}

struct Model {
    /// Stored events in id order (retention removes some).
    events: Vec<(EventId, Event)>,
    /// The last id given out; ids continue after it even when retention emptied the model.
    last_id: u64,
    /// How many of the events a flush has acknowledged.
    flushed: usize,
    cursor: Option<EventId>,
}

impl Model {
    fn append(&mut self, e: Event, got: Appended) {
        let window_start = self.last_id.saturating_sub(WINDOW);
        let original = self
            .events
            .iter()
            .rev()
            .take_while(|(id, _)| id.0 > window_start)
            .find(|(_, m)| *m == e);
        if let Some((id, _)) = original {
            assert_eq!(got, Appended::Duplicate(*id), "duplicate of {id}");
        } else {
            self.last_id += 1;
            let id = EventId(self.last_id);
            assert_eq!(got, Appended::New(id));
            self.events.push((id, e));
        }
    }

    /// What query `k` must return: a type filter or none, either order, a limit or none.
    fn query(&self, k: u8) -> Vec<EventId> {
        let ty = (k & 4 != 0).then(|| ["a", "b", "c"][usize::from(k % 3)]);
        let mut rows: Vec<&(EventId, Event)> = self
            .events
            .iter()
            .filter(|(_, e)| ty.is_none_or(|t| e.event_type == t))
            .collect();
        rows.sort_by_key(|(id, e)| (e.timestamp, *id));
        if k & 8 == 0 {
            rows.reverse();
        }
        let limit = if k & 16 == 0 {
            usize::MAX
        } else {
            usize::from(k % 5)
        };
        rows.iter().take(limit).map(|(id, _)| *id).collect()
    }
}

/// Segments deleted by retention over all cases, to show the runs reach it.
static DELETED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Runs query `k` on the store.
fn query(store: &Store, k: u8) -> Vec<EventId> {
    let mut q = store.query().order(if k & 8 == 0 {
        Order::NewestFirst
    } else {
        Order::OldestFirst
    });
    if k & 4 != 0 {
        q = q.event_type(["a", "b", "c"][usize::from(k % 3)]);
    }
    if k & 16 != 0 {
        q = q.limit(u64::from(k % 5));
    }
    q.run().unwrap().map(|e| e.unwrap().id).collect()
}

/// What `store` shows, checked to be a prefix of the model (all of it if `exact`).
fn check(store: &Store, model: &Model, exact: bool) -> usize {
    let seen: Vec<_> = store.scan().unwrap().map(Result::unwrap).collect();
    assert!(
        seen.len() <= model.events.len(),
        "more events than appended"
    );
    if exact {
        assert_eq!(seen.len(), model.events.len(), "flushed: all visible");
    }
    for (s, (id, e)) in seen.iter().zip(&model.events) {
        assert_eq!(s.id, *id);
        assert_eq!(&s.to_event().unwrap(), e, "content of {id}");
    }
    // The same scan read borrowed, from the start and from the middle, sees the same
    // events (it may see more: the writer may have committed since).
    let from = seen.get(seen.len() / 2).map_or(EventId(1), |s| s.id);
    for start in [EventId(0), from] {
        let mut scan = store.scan_from(start).unwrap();
        let mut borrowed = Vec::new();
        while let Some(e) = scan.next_ref() {
            borrowed.push(e.unwrap().to_stored());
        }
        let want: Vec<_> = seen.iter().filter(|s| s.id >= start).collect();
        assert!(borrowed.len() >= want.len(), "borrowed scan from {start:?}");
        for (b, w) in borrowed.iter().zip(want) {
            assert_eq!(b, w, "borrowed scan from {start:?}");
        }
    }
    assert_eq!(
        store.cursor("model").unwrap().position().unwrap(),
        model.cursor
    );
    seen.len()
}

/// Runs `ops` against a new store and the model; returns how many segments retention
/// deleted.
fn run(ops: &[Op]) -> usize {
    let mut deleted_here = 0;
    let dir = tempfile::tempdir().unwrap();
    let mut path = dir.path().join("s0");
    let mut store = Store::open(&path, config()).unwrap();
    let mut model = Model {
        events: Vec::new(),
        last_id: 0,
        flushed: 0,
        cursor: None,
    };
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Append(seed) => {
                let got = store.append(event(*seed)).unwrap();
                model.append(event(*seed), got);
                check(&store, &model, false);
            }
            Op::Batch(seeds) => {
                let got = store
                    .append_batch(seeds.iter().map(|s| event(*s)).collect())
                    .unwrap();
                for (s, g) in seeds.iter().zip(got) {
                    model.append(event(*s), g);
                }
            }
            Op::Flush => {
                store.flush().unwrap();
                model.flushed = model.events.len();
                check(&store, &model, true);
            }
            Op::Reopen => {
                store.close().unwrap();
                store = Store::open(&path, config()).unwrap();
                model.flushed = model.events.len();
                check(&store, &model, true);
            }
            Op::Crash => {
                // A copy taken while the writer may be mid-batch is what a crash leaves.
                let copy = dir.path().join(format!("s{}", step + 1));
                copy_dir(&path, &copy);
                drop(store);
                let _ = std::fs::remove_file(copy.join("LOCK"));
                path = copy;
                store = Store::open(&path, config()).unwrap();
                let kept = check(&store, &model, false);
                assert!(
                    kept >= model.flushed,
                    "a flushed event was lost ({kept} < {})",
                    model.flushed
                );
                model.events.truncate(kept);
                model.flushed = kept;
                // Retention never deletes the last segment, so the store continues after
                // the last event kept (or from 1 if the crash kept none).
                model.last_id = model.events.last().map_or(0, |(id, _)| id.0);
            }
            Op::Query(k) => {
                store.flush().unwrap();
                model.flushed = model.events.len();
                assert_eq!(query(&store, *k), model.query(*k), "query {k}");
            }
            Op::Retain => {
                store.flush().unwrap();
                model.flushed = model.events.len();
                let segments = store.segments().unwrap();
                let deleted = store.retain(false).unwrap();
                DELETED.fetch_add(deleted.len(), std::sync::atomic::Ordering::Relaxed);
                deleted_here += deleted.len();
                for d in &deleted {
                    let s = &d.segment;
                    assert!(s.sealed, "retention deleted an unsealed segment: {s:?}");
                    assert_ne!(s.segment_id, segments.last().unwrap().segment_id);
                    let (first, last) = s.ids.unwrap();
                    assert!(
                        last.0 <= model.last_id.saturating_sub(WINDOW),
                        "retention deleted ids inside the dedup window: {s:?}"
                    );
                    model.events.retain(|(id, _)| *id < first || *id > last);
                }
                model.flushed = model.events.len();
                check(&store, &model, true);
            }
            Op::Cursor(k) => {
                let visible = store.scan().unwrap().count();
                if visible > 0 {
                    let (id, _) = model.events[usize::from(*k) % visible];
                    store.cursor("model").unwrap().commit(id).unwrap();
                    model.cursor = Some(id);
                }
            }
        }
    }
    store.flush().unwrap();
    model.flushed = model.events.len();
    check(&store, &model, true);
    assert!(selflog::verify(&path).unwrap().problems.is_empty());
    deleted_here
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn store_matches_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let _ = run(&ops);
        eprintln!(
            "segments deleted by retention so far: {}",
            DELETED.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
}

/// A fixed sequence that surely fills several segments, so retention deletes some (the
/// random ones reach it only sometimes), then crashes, appends duplicates of deleted and of
/// kept events, and queries.
#[test]
fn retention_between_appends_crashes_and_queries() {
    let batch = |from: u16| Op::Batch((from..from + 99).collect());
    let mut ops: Vec<Op> = (0..6).map(|i| batch(i * 99)).collect();
    ops.extend([
        Op::Retain,
        Op::Query(0),
        Op::Append(5),
        Op::Append(590),
        Op::Crash,
        Op::Query(4 | 8 | 16 | 2),
        batch(100),
        Op::Retain,
        Op::Cursor(3),
        Op::Reopen,
        Op::Query(4 | 1),
    ]);
    assert!(run(&ops) > 0, "retention deleted nothing");
}
