//! Append throughput and memory of the in-process API, `Buffered` mode.
//!
//! `cargo bench --bench append` runs the full measurement (`SELFLOG_BENCH_EVENTS`, default
//! 10,000,000 events); under `cargo test` it runs a small smoke pass so the code stays
//! working. Events come from the deterministic workload generator: a pool is generated
//! first, then cloned with fresh timestamps into chunks that each appending thread builds
//! for itself before each timed stretch. Each row also gives the CPU time per event of the
//! appending threads, the store's writer and its sync thread over the timed stretches, so a
//! run shows which side bounds it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use selflog_workload::WorkloadConfig;

#[path = "common/events.rs"]
mod events;
use selflog::{Config, Event, Store, Timestamp};

/// Anonymous resident memory of this process, in bytes (Linux `RssAnon`).
fn rss_anon() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

struct Run {
    name: &'static str,
    events: u64,
    elapsed: Duration,
    peak_anon: u64,
    log_bytes: u64,
    /// CPU time of the timed stretches: the appending threads', the store's writer
    /// threads' and its sync threads'.
    cpu: Cpu,
}

/// CPU time (user + system) spent by each kind of thread.
#[derive(Default, Clone, Copy)]
struct Cpu {
    appending: Duration,
    writer: Duration,
    sync: Duration,
}

/// Clock ticks per second of `/proc`'s `utime` and `stime` (`sysconf(_SC_CLK_TCK)`, 100 on
/// Linux).
const TICKS_PER_SEC: u64 = 100;

/// User + system CPU of the thread whose `stat` file is at `path`, and its name.
fn thread_cpu(path: &std::path::Path) -> Option<(String, Duration)> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The name is in parentheses and may hold spaces; the fields after it are plain.
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let name = stat[open + 1..close].to_owned();
    let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((name, Duration::from_millis(ticks * 1000 / TICKS_PER_SEC)))
}

/// CPU of this process's threads named `selflog-writer` and `selflog-sync`, by thread id.
fn store_threads_cpu() -> Vec<(String, String, Duration)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let (name, cpu) = thread_cpu(&e.path().join("stat"))?;
        let tid = e.file_name().to_string_lossy().into_owned();
        (name == "selflog-writer" || name == "selflog-sync").then_some((tid, name, cpu))
    })
    .collect()
}

/// What the store's threads spent between two [`store_threads_cpu`] readings (a thread
/// that started in between counts from zero).
fn store_cpu_between(
    before: &[(String, String, Duration)],
    after: &[(String, String, Duration)],
) -> (Duration, Duration) {
    let mut writer = Duration::ZERO;
    let mut sync = Duration::ZERO;
    for (tid, name, cpu) in after {
        let was = before
            .iter()
            .find(|(t, _, _)| t == tid)
            .map_or(Duration::ZERO, |b| b.2);
        let spent = cpu.saturating_sub(was);
        if name == "selflog-writer" {
            writer += spent;
        } else {
            sync += spent;
        }
    }
    (writer, sync)
}

fn pool(n: usize) -> Vec<Event> {
    events::generate(WorkloadConfig {
        count: n as u64,
        duplicate_share: 0.0,
        ..WorkloadConfig::default()
    })
    .collect()
}

/// Events built before each timed stretch of appends.
const CHUNK_EVENTS: usize = 500_000;

/// Appends `total` events from `threads` threads in batches of `batch` (1 = `append`,
/// more = `append_batch`). Events are built from the pool (clone + fresh timestamp) in
/// chunks before each timed stretch, so the figure is the store's cost, not the
/// generator's; `flush` is inside the timed region, so the writer's work is counted.
fn run(name: &'static str, pool: &Arc<Vec<Event>>, total: u64, threads: u64, batch: usize) -> Run {
    run_with(name, pool, total, threads, batch, Config::default())
}

/// Where a run's events come from.
enum Source<'a> {
    /// The pool, cloned with fresh timestamps: no duplicates.
    Pool(&'a Arc<Vec<Event>>),
    /// The workload generator's stream as it is (1% duplicates of recent events), with a
    /// `flush` after every `CHUNK_FLUSH_EVENTS`: the compare bench's library ingest.
    Realistic,
}

/// Events between two flushes of the realistic workload (the compare bench's chunk).
const CHUNK_FLUSH_EVENTS: usize = 50_000;

fn run_with(
    name: &'static str,
    pool: &Arc<Vec<Event>>,
    total: u64,
    threads: u64,
    batch: usize,
    config: Config,
) -> Run {
    run_from(name, &Source::Pool(pool), total, threads, batch, config)
}

/// The compare bench's library ingest: the generated stream with its duplicates, one
/// thread, `append`, a `flush` per 50,000 events, all flushes timed.
fn run_realistic(total: u64) -> Run {
    run_from(
        "append, 1 thread, workload with 1% duplicates, flush per 50,000",
        &Source::Realistic,
        total,
        1,
        1,
        Config::default(),
    )
}

#[expect(clippy::too_many_lines, reason = "one measurement, step by step")]
fn run_from(
    name: &'static str,
    source: &Source<'_>,
    total: u64,
    threads: u64,
    batch: usize,
    config: Config,
) -> Run {
    let mut workload = match source {
        Source::Realistic => Some(events::generate(WorkloadConfig {
            count: total,
            // `SELFLOG_BENCH_DUPLICATES` (a share, default the generator's 0.01) for
            // profiling what the duplicates cost.
            duplicate_share: std::env::var("SELFLOG_BENCH_DUPLICATES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(WorkloadConfig::default().duplicate_share),
            ..WorkloadConfig::default()
        })),
        Source::Pool(_) => None,
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Store::open(dir.path().join("s"), config).expect("open"));
    let stop = Arc::new(AtomicBool::new(false));
    let baseline = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_anon(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let base_ts = Timestamp::now().0 - 86_400_000_000;
    let mut elapsed = Duration::ZERO;
    let mut cpu = Cpu::default();
    let mut done = 0u64;
    let mut extra = 0u64;
    while done < total {
        let n = (total - done).min(CHUNK_EVENTS as u64);
        let per_thread = n / threads;
        // Each thread builds its own chunk, then all start together once the clock runs:
        // a capturing thread creates the events it appends, so the store frees them on the
        // thread that allocated them, as in the daemon.
        let ready = Arc::new(std::sync::Barrier::new(
            usize::try_from(threads).unwrap_or(1) + 1,
        ));
        let generated: Option<Vec<Event>> = workload
            .as_mut()
            .map(|w| w.by_ref().take(usize::try_from(n).unwrap_or(0)).collect());
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (store, ready) = (Arc::clone(&store), Arc::clone(&ready));
                let pool = match source {
                    Source::Pool(p) => Some(Arc::clone(p)),
                    Source::Realistic => None,
                };
                let generated = generated.clone();
                std::thread::spawn(move || {
                    let events: Vec<Event> = match (&pool, generated) {
                        (Some(pool), _) => (0..per_thread)
                            .map(|i| {
                                let k = done + t * per_thread + i;
                                let mut e =
                                    pool[usize::try_from(k).unwrap_or(0) % pool.len()].clone();
                                e.timestamp = Timestamp(base_ts + i64::try_from(k).unwrap_or(0));
                                e
                            })
                            .collect(),
                        (None, generated) => generated.unwrap_or_default(),
                    };
                    ready.wait();
                    let own = std::path::Path::new("/proc/thread-self/stat");
                    let start = thread_cpu(own).map_or(Duration::ZERO, |c| c.1);
                    if pool.is_none() {
                        let mut it = events.into_iter().peekable();
                        while it.peek().is_some() {
                            for e in it.by_ref().take(CHUNK_FLUSH_EVENTS) {
                                store.append(e).expect("append");
                            }
                            store.flush().expect("flush");
                        }
                    } else if batch == 1 {
                        for e in events {
                            store.append(e).expect("append");
                        }
                    } else {
                        let mut it = events.into_iter().peekable();
                        while it.peek().is_some() {
                            store
                                .append_batch(it.by_ref().take(batch).collect())
                                .expect("append_batch");
                        }
                    }
                    thread_cpu(own).map_or(Duration::ZERO, |c| c.1.saturating_sub(start))
                })
            })
            .collect();
        ready.wait();
        let store_before = store_threads_cpu();
        let before = rss_anon();
        baseline.fetch_max(before, Ordering::Relaxed);
        peak.store(before, Ordering::Relaxed);
        let start = Instant::now();
        for w in workers {
            cpu.appending += w.join().expect("appender");
        }
        store.flush().expect("flush");
        elapsed += start.elapsed();
        let (writer, sync) = store_cpu_between(&store_before, &store_threads_cpu());
        cpu.writer += writer;
        cpu.sync += sync;
        extra = extra.max(peak.swap(0, Ordering::Relaxed).saturating_sub(before));
        done += per_thread * threads;
    }
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let stats = store.stats().expect("stats");
    if workload.is_none() {
        assert_eq!(stats.total_events, done, "every event stored");
    }
    Run {
        name,
        events: done,
        elapsed,
        peak_anon: extra,
        log_bytes: stats.log_bytes,
        cpu,
    }
}

/// The realistic row alone, for profiling (`perf record`): `SELFLOG_BENCH_REALISTIC_ONLY=1`.
#[expect(clippy::cast_precision_loss, reason = "figures for display")]
fn realistic_only(total: u64) {
    let r = run_realistic(total);
    let per_event = |d: Duration| d.as_nanos() as f64 / r.events as f64;
    println!(
        "{}: {} events, {:.0} events/s; CPU ns/event appending / writer / sync: {:.0} / {:.0} / {:.0}",
        r.name,
        r.events,
        r.events as f64 / r.elapsed.as_secs_f64(),
        per_event(r.cpu.appending),
        per_event(r.cpu.writer),
        per_event(r.cpu.sync)
    );
}

/// `SELFLOG_BENCH_COMPACTION_ONLY`: one thread's `append` with the compaction thread on
/// (the default) and off, in alternating rounds, 64 MiB segments sealing as it goes: what
/// background compaction costs the appending side on this machine (issue 26).
#[expect(clippy::cast_precision_loss, reason = "figures for display")]
fn compaction_only(pool: &Arc<Vec<Event>>, total: u64, rounds: u64) {
    let off = || {
        let mut c = Config::default();
        c.compaction_level = None;
        c
    };
    let (mut on_runs, mut off_runs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        on_runs.push(run_with(
            "compaction on",
            pool,
            total,
            1,
            1,
            Config::default(),
        ));
        off_runs.push(run_with("compaction off", pool, total, 1, 1, off()));
    }
    let rate = |r: &Run| r.events as f64 / r.elapsed.as_secs_f64();
    for (name, mut runs) in [("on", on_runs), ("off", off_runs)] {
        let all: Vec<String> = runs.iter().map(|r| format!("{:.0}", rate(r))).collect();
        runs.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
        let m = &runs[runs.len() / 2];
        println!(
            "append, 1 thread, compaction {name}: median {:.0} events/s (runs {}); CPU ns/event appending / writer / sync: {:.0} / {:.0} / {:.0}",
            rate(m),
            all.join(", "),
            m.cpu.appending.as_nanos() as f64 / m.events as f64,
            m.cpu.writer.as_nanos() as f64 / m.events as f64,
            m.cpu.sync.as_nanos() as f64 / m.events as f64,
        );
    }
}

#[expect(clippy::cast_precision_loss, reason = "figures for display")]
fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    // A knob's value in a full run (`default` when unset), `smoke` under `cargo test`.
    let knob = |name: &str, default: u64, smoke: u64| {
        if full {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        } else {
            smoke
        }
    };
    let total = knob("SELFLOG_BENCH_EVENTS", 10_000_000, 20_000);
    let pool = Arc::new(pool(if full { 100_000 } else { 2_000 }));
    // This machine is a VM whose noise between runs is ±15%, more than the effect of the
    // dedup window: the workloads take turns, round after round, and the medians are
    // reported. `SELFLOG_BENCH_ROUNDS` (default 3) sets how many rounds.
    let rounds = knob("SELFLOG_BENCH_ROUNDS", 3, 1);
    let dedup_off = || {
        let mut c = Config::default();
        c.dedup_window = 0;
        c
    };
    if full {
        // A fresh VM pays the hypervisor for every page it touches first; one untimed run
        // leaves the guest's page cache and heap warm, as a long-running daemon's are.
        run("warm-up", &pool, total.min(2_000_000), 1, 1);
    }
    // Every workload runs once per round, in turn, and each row is the median of its runs.
    if std::env::var_os("SELFLOG_BENCH_REALISTIC_ONLY").is_some() {
        realistic_only(total);
        return;
    }
    if std::env::var_os("SELFLOG_BENCH_COMPACTION_ONLY").is_some() {
        compaction_only(&pool, total, rounds);
        return;
    }
    let workloads: [(&'static str, u64, usize, bool); 5] = [
        ("append, 1 thread", 1, 1, true),
        ("append, 1 thread, dedup off", 1, 1, false),
        ("append, 2 threads", 2, 1, true),
        ("append_batch(100), 1 thread", 1, 100, true),
        ("append_batch(100), 1 thread, dedup off", 1, 100, false),
    ];
    let mut results: Vec<Vec<Run>> = workloads.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (w, out) in workloads.iter().zip(&mut results) {
            let (name, threads, batch, dedup) = *w;
            let config = if dedup {
                Config::default()
            } else {
                dedup_off()
            };
            out.push(run_with(name, &pool, total, threads, batch, config));
        }
    }
    let rate = |r: &Run| r.events as f64 / r.elapsed.as_secs_f64();
    let pairs = |on: &[Run], off: &[Run]| -> String {
        on.iter()
            .zip(off)
            .map(|(a, b)| format!("{:.0}/{:.0}", rate(a), rate(b)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (single_pairs, batch_pairs) = (
        pairs(&results[0], &results[1]),
        pairs(&results[3], &results[4]),
    );
    let median = |mut v: Vec<Run>| {
        v.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
        v.swap_remove(v.len() / 2)
    };
    let runs: Vec<Run> = results.into_iter().map(median).collect();
    let cost = |on: &Run, off: &Run| 100.0 * (1.0 - rate(on) / rate(off));
    let (dedup_cost, batch_dedup_cost) = (cost(&runs[0], &runs[1]), cost(&runs[3], &runs[4]));
    println!(
        "| workload | events | seconds | events/s | bytes/event | RssAnon growth while appending | CPU ns/event: appending / writer / sync |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &runs {
        let secs = r.elapsed.as_secs_f64();
        let per_event = |d: Duration| d.as_nanos() as f64 / r.events as f64;
        println!(
            "| {} | {} | {:.2} | {:.0} | {:.1} | {:.1} MB | {:.0} / {:.0} / {:.0} |",
            r.name,
            r.events,
            secs,
            r.events as f64 / secs,
            r.log_bytes as f64 / r.events as f64,
            r.peak_anon as f64 / 1e6,
            per_event(r.cpu.appending),
            per_event(r.cpu.writer),
            per_event(r.cpu.sync),
        );
    }
    println!(
        "events are prebuilt in chunks of {CHUNK_EVENTS} by the appending threads (untimed); RssAnon growth is the peak during a timed stretch minus the level before it"
    );
    println!(
        "CPU: user + system time of the timed stretches (/proc, 10 ms ticks), summed over the appending threads, the store's writer threads and its sync threads; on 2 cores, appending + writer + sync near 2 x the elapsed ns/event means the machine is full"
    );
    println!(
        "dedup cost, single appends (medians of {rounds} rounds, each workload once a round): {dedup_cost:.1}%; pairs (events/s with/without): {single_pairs}"
    );
    println!("dedup cost, append_batch(100): {batch_dedup_cost:.1}%; pairs: {batch_pairs}");
}
