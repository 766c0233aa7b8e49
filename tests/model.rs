//! The store against a plain in-memory model, under random sequences of append,
//! `append_batch`, flush, reopen, crash (the directory copied while the writer runs, then
//! opened as a restarted daemon would) and cursor commits. After every step: what a reader
//! sees is a prefix of the model in id order, exactly the model once flushed, duplicates
//! name their original, and a crash keeps every flushed event plus at most a prefix of the
//! rest.

use std::path::Path;

use proptest::prelude::*;
use selflog::{Appended, Config, Event, EventId, Store, Timestamp};

const T0: i64 = 1_732_460_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    Append(u16),
    Batch(Vec<u16>),
    Flush,
    Reopen,
    Crash,
    Cursor(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<u16>().prop_map(Op::Append),
        2 => prop::collection::vec(any::<u16>(), 0..20).prop_map(Op::Batch),
        2 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
        1 => any::<u8>().prop_map(Op::Cursor),
    ]
}

/// Event `seed`: a small seed space makes duplicates common; some events are large
/// (compressed) and some timestamps late.
fn event(seed: u16) -> Event {
    let s = seed % 500;
    let data = if s.is_multiple_of(17) {
        format!(r#"{{"s":{s},"text":"{}"}}"#, "compressible ".repeat(200))
    } else {
        format!(r#"{{"s":{s}}}"#)
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

fn config() -> Config {
    let mut c = Config::default();
    c.segment_len = 64 << 10;
    c.data_len_max = 16 << 10;
    c
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

struct Model {
    /// Stored events in id order.
    events: Vec<(EventId, Event)>,
    /// How many of them a flush has acknowledged.
    flushed: usize,
    cursor: Option<EventId>,
}

impl Model {
    fn append(&mut self, e: Event, got: Appended) {
        if let Some((id, _)) = self.events.iter().find(|(_, m)| *m == e) {
            assert_eq!(got, Appended::Duplicate(*id), "duplicate of {id}");
        } else {
            let id = EventId(self.events.last().map_or(1, |(id, _)| id.0 + 1));
            assert_eq!(got, Appended::New(id));
            self.events.push((id, e));
        }
    }
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
    assert_eq!(
        store.cursor("model").unwrap().position().unwrap(),
        model.cursor
    );
    seen.len()
}

fn run(ops: &[Op]) {
    let dir = tempfile::tempdir().unwrap();
    let mut path = dir.path().join("s0");
    let mut store = Store::open(&path, config()).unwrap();
    let mut model = Model {
        events: Vec::new(),
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
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn store_matches_the_model(ops in prop::collection::vec(op(), 1..60)) {
        run(&ops);
    }
}
