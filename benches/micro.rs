//! Micro-benchmarks of selflog's hot paths, for finding regressions (criterion):
//! frame encode and decode, the append path, index lookups and search scanning.
//!
//! `cargo bench --bench micro` measures; under `cargo test` criterion runs each benchmark
//! once as a test, on a small store, so the code stays working. Frame encode and decode go
//! through the doc-hidden `selflog::fuzzing` entry points, the only way to reach the frame
//! codec from outside the crate: encode builds an uncompressed event frame, and decode runs
//! `decode_everything`, which decodes the frame (CRC included) and then lets the segment
//! header, commit slot, footer and store-meta decoders reject it.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use selflog_workload::{Workload, WorkloadConfig};

#[path = "common/events.rs"]
mod generated;
use selflog::{Config, Event, EventId, Order, Store, Timestamp};

/// Whether criterion measures (`cargo bench`) or runs each benchmark once (`cargo test`).
fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Generated events without duplicates.
fn events(count: u64) -> Vec<Event> {
    generated::generate(WorkloadConfig {
        count,
        duplicate_share: 0.0,
        ..WorkloadConfig::default()
    })
    .collect()
}

/// Encoding and decoding one event frame with ~300 bytes of data, the median event.
fn frame_codec(c: &mut Criterion) {
    let data = br#"{"path":"/Users/alice/Projects/selflog/src/query.rs","size":48213,"pid":4242,"bundle":"com.apple.finder","title":"query.rs - selflog","url":"https://example.com/a/b/c?q=chrome","extra":"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt"}"#;
    let frame =
        selflog::fuzzing::encode_event_frame(1, 1_250, (3, 7, Some(9)), 0xDEAD_BEEF, Some(data));
    let mut group = c.benchmark_group("frame");
    group.bench_function("encode event frame (300 B data)", |b| {
        b.iter(|| {
            selflog::fuzzing::encode_event_frame(
                black_box(1),
                black_box(1_250),
                (3, 7, Some(9)),
                0xDEAD_BEEF,
                Some(black_box(&data[..])),
            )
        });
    });
    group.bench_function("decode event frame + other decoders' rejections", |b| {
        b.iter(|| selflog::fuzzing::decode_everything(black_box(&frame)));
    });
    group.bench_function("parse one JSON Lines input line", |b| {
        let record = Workload::new(WorkloadConfig {
            count: 1,
            ..WorkloadConfig::default()
        })
        .next()
        .expect("one event");
        let line = selflog_workload::to_json_line(&record);
        b.iter(|| selflog::fuzzing::parse_ingest_line(black_box(line.as_bytes())));
    });
    group.finish();
}

/// `append` of one event to an open store (`Buffered`), building the event outside the
/// timed part; and `append_batch` of 100.
fn append_path(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path().join("s"), Config::default()).expect("open");
    let pool = events(1_000);
    let mut next = 0i64;
    let base = Timestamp::now().0 - 86_400_000_000;
    let mut fresh = move |k: usize| {
        next += 1;
        let mut e = pool[k % pool.len()].clone();
        e.timestamp = Timestamp(base + next);
        e
    };
    let mut group = c.benchmark_group("append");
    let mut k = 0usize;
    group.bench_function("append one event", |b| {
        b.iter_batched(
            || {
                k += 1;
                fresh(k)
            },
            |e| store.append(e).expect("append"),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("append_batch of 100 events", |b| {
        b.iter_batched(
            || {
                (0..100)
                    .map(|_| {
                        k += 1;
                        fresh(k)
                    })
                    .collect::<Vec<_>>()
            },
            |batch| store.append_batch(batch).expect("append_batch"),
            BatchSize::SmallInput,
        );
    });
    group.finish();
    store.close().expect("close");
}

/// A store filled with generated events, flushed: 50,000 when measuring, 2,000 in a test.
fn filled_store() -> (tempfile::TempDir, Store, u64) {
    let count = if measuring() { 50_000 } else { 2_000 };
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path().join("s"), Config::default()).expect("open");
    for chunk in events(count).chunks(100) {
        store.append_batch(chunk.to_vec()).expect("append_batch");
    }
    store.flush().expect("flush");
    (dir, store, count)
}

/// Lookups through the index: an event by id, the newest of a rare type, and counts by type.
fn index_lookup(c: &mut Criterion) {
    let (_dir, store, count) = filled_store();
    let mut group = c.benchmark_group("index");
    let mut id = 0u64;
    group.bench_function("get by id", |b| {
        b.iter(|| {
            id = (id + 7919) % count + 1;
            store.get(EventId(id)).expect("get")
        });
    });
    group.bench_function("newest 10 of the rare type usb_device", |b| {
        b.iter(|| {
            store
                .query()
                .event_type("usb_device")
                .limit(10)
                .run()
                .expect("run")
                .count()
        });
    });
    group.bench_function("count by type", |b| {
        b.iter(|| {
            store
                .query()
                .counts_by(selflog::Field::EventType)
                .expect("counts")
        });
    });
    group.finish();
}

/// Case-insensitive text search: the newest 10 matches of a common word, and a search that
/// matches nothing and so scans every event.
fn search_scan(c: &mut Criterion) {
    let (_dir, store, count) = filled_store();
    let mut group = c.benchmark_group("search");
    group.bench_function("search \"chrome\", newest 10", |b| {
        b.iter(|| {
            store
                .query()
                .text("chrome")
                .order(Order::NewestFirst)
                .limit(10)
                .run()
                .expect("run")
                .count()
        });
    });
    group.bench_function(format!("search matching nothing ({count} events)"), |b| {
        b.iter(|| {
            store
                .query()
                .text("zq-no-such-text")
                .run()
                .expect("run")
                .count()
        });
    });
    group.finish();
}

/// Short measurements: these are for spotting regressions, not for publication.
fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = frame_codec, append_path, index_lookup, search_scan
}
criterion_main!(benches);
