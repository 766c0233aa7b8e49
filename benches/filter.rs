//! The trigram block filter's hot paths (criterion): building (every payload byte of a
//! compacted segment goes through `add`), and probing a filter with a search text.
//!
//! `cargo bench --bench filter` measures; under `cargo test` criterion runs each benchmark
//! once as a test. The payloads are the data texts of the bench workload's events, grouped
//! as compaction groups them (one filter per 1 MiB of frame bytes, ~2,700 events).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use selflog::fuzzing::{BlockFilterBuilder, BlockFilterProbe};
use selflog_workload::WorkloadConfig;

#[path = "common/events.rs"]
mod generated;

/// Events per filter: 1 MiB of frame bytes at the workload's ~390 bytes per frame.
const GROUP_EVENTS: usize = 2_700;

/// The data texts of `count` generated events (events without data have none).
fn payloads(count: u64) -> Vec<String> {
    generated::generate(WorkloadConfig {
        count,
        duplicate_share: 0.0,
        ..WorkloadConfig::default()
    })
    .filter_map(|e| e.data.map(|d| d.get().to_owned()))
    .collect()
}

/// Trigrams of every payload collected and a filter encoded per group of
/// [`GROUP_EVENTS`], the builder reused as compaction reuses it.
fn build(c: &mut Criterion) {
    let payloads = payloads(4 * GROUP_EVENTS as u64);
    let bytes: usize = payloads.iter().map(String::len).sum();
    let mut builder = BlockFilterBuilder::new();
    let mut out = Vec::new();
    let mut group = c.benchmark_group("block filter");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function(
        format!("add {} payloads, finish per {GROUP_EVENTS}", payloads.len()),
        |b| {
            b.iter(|| {
                out.clear();
                for chunk in payloads.chunks(GROUP_EVENTS) {
                    for p in chunk {
                        builder.add(black_box(p.as_bytes()));
                    }
                    builder.finish_into(&mut out);
                }
                out.len()
            });
        },
    );
    group.finish();
}

/// One probe of a filter of [`GROUP_EVENTS`] payloads: a text that is absent (the case the
/// filter exists for) and one that is present.
fn probe(c: &mut Criterion) {
    let payloads = payloads(GROUP_EVENTS as u64);
    let mut builder = BlockFilterBuilder::new();
    for p in &payloads {
        builder.add(p.as_bytes());
    }
    let mut filter = Vec::new();
    builder.finish_into(&mut filter);
    let mut group = c.benchmark_group("block filter");
    for needle in ["zqxjv", "chrome"] {
        let probe = BlockFilterProbe::new(needle.as_bytes()).expect("3 bytes or more");
        let answer = probe.may_contain(&filter).expect("well formed");
        group.bench_function(
            format!(
                "may_contain {needle:?} ({answer}), {} B filter",
                filter.len()
            ),
            |b| b.iter(|| probe.may_contain(black_box(&filter))),
        );
    }
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
    targets = build, probe
}
criterion_main!(benches);
