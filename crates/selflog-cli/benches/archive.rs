//! `selflog archive` throughput and memory: events archived per second (wall clock and per
//! CPU second), bytes per event of the Parquet dataset, and the archiving process's peak
//! resident memory, all of it and anonymous only (issue 25's target:
//! at least 500,000 events/s, bounded memory).
//!
//! `cargo bench -p selflog-cli --bench archive` builds a store of `SELFLOG_ARCHIVE_EVENTS`
//! (default 1,000,000) generated activity events through the library, in the default 64 MiB
//! segments, then runs the real `selflog archive OUT --include-active --json` three times,
//! each into a fresh OUT, and prints one row per round and the median. The time is the
//! process's wall clock, start to exit: opening the store, reading every segment, encoding,
//! compressing, syncing and renaming every file. Under `cargo test` it runs a small smoke
//! pass (small segments) that checks the run archived every event, and prints no figure
//! worth quoting.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use selflog::{Config, Event, Store, Timestamp};
use selflog_workload::{Workload, WorkloadConfig};

/// Field `name` (in kB) of process `pid`'s `/proc/PID/status`, in bytes.
fn status_bytes(pid: u32, name: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// User + system CPU time of process `pid` so far (`/proc/PID/stat`, 100 ticks a second).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name is in parentheses and may hold spaces; the fields after it are plain.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Fills a store at `dir` with `count` generated events; returns how many it holds.
fn build_store(dir: &Path, count: u64, segment_len: u64) -> u64 {
    let mut config = Config::default();
    config.segment_len = segment_len;
    config.data_len_max = config
        .data_len_max
        .min(usize::try_from(segment_len / 4).unwrap_or(usize::MAX));
    let store = Store::open(dir, config).expect("open store");
    let workload = Workload::new(WorkloadConfig {
        count,
        ..WorkloadConfig::default()
    });
    let mut batch = Vec::with_capacity(1000);
    for r in workload {
        batch.push(Event {
            timestamp: Timestamp(r.timestamp_us),
            event_type: r.event_type,
            action: r.action,
            source: r.source,
            data: r.data,
        });
        if batch.len() == 1000 {
            store
                .append_batch(std::mem::take(&mut batch))
                .expect("append");
        }
    }
    store.append_batch(batch).expect("append");
    store.flush().expect("flush");
    let total = store.stats().expect("stats").total_events;
    store.close().expect("close");
    total
}

struct Round {
    elapsed: Duration,
    /// CPU time of the process, sampled every 5 ms until it exits (so up to 5 ms short).
    cpu: Duration,
    /// Largest anonymous resident memory seen (`RssAnon`, sampled every 5 ms): the
    /// process's own memory, without the store's segments it maps, which the kernel may
    /// drop at any time.
    peak_anon: u64,
    summary: serde_json::Value,
    peak_rss: u64,
}

/// Runs `selflog archive` of `store` into the fresh directory `out`.
fn archive(store: &Path, out: &Path) -> Round {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_selflog"))
        .arg("--store")
        .arg(store)
        .arg("archive")
        .arg(out)
        .args(["--include-active", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run selflog archive");
    let pid = child.id();
    let mut peak = 0;
    let mut peak_anon = 0;
    let mut cpu = Duration::ZERO;
    while child.try_wait().expect("wait").is_none() {
        peak = peak.max(status_bytes(pid, "VmHWM:").unwrap_or(0));
        peak_anon = peak_anon.max(status_bytes(pid, "RssAnon:").unwrap_or(0));
        cpu = cpu.max(cpu_time(pid).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().expect("wait");
    let elapsed = started.elapsed();
    assert!(out.status.success(), "selflog archive failed");
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("archive --json prints JSON");
    Round {
        elapsed,
        cpu,
        peak_anon,
        summary,
        peak_rss: peak,
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (count, segment_len) = if full {
        let n = std::env::var("SELFLOG_ARCHIVE_EVENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        (n, 64 << 20)
    } else {
        (20_000, 1 << 20)
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = tmp.path().join("store");
    let built = Instant::now();
    let total = build_store(&store, count, segment_len);
    println!(
        "archive bench: {total} events in the store ({} generated, duplicates dropped), built in {:.1} s",
        count,
        built.elapsed().as_secs_f64()
    );
    let rounds = if full { 3 } else { 1 };
    let mut rates = Vec::new();
    println!(
        "{:>6} {:>10} {:>9} {:>13} {:>9} {:>15} {:>7} {:>9} {:>12} {:>8}",
        "round",
        "events",
        "seconds",
        "events/s",
        "CPU s",
        "events/CPU s",
        "files",
        "B/event",
        "peak RSS MB",
        "anon MB"
    );
    for round in 1..=rounds {
        let out = tmp.path().join(format!("out{round}"));
        let r = archive(&store, &out);
        let events = r.summary["events"].as_u64().expect("events");
        assert_eq!(events, total, "every event archived");
        #[allow(clippy::cast_precision_loss, reason = "figures for display")]
        let rate = events as f64 / r.elapsed.as_secs_f64();
        rates.push(rate);
        #[allow(clippy::cast_precision_loss, reason = "figures for display")]
        let peak_mb = r.peak_rss as f64 / f64::from(1 << 20);
        #[allow(clippy::cast_precision_loss, reason = "figures for display")]
        let anon_mb = r.peak_anon as f64 / f64::from(1 << 20);
        #[allow(clippy::cast_precision_loss, reason = "figures for display")]
        let per_cpu = events as f64 / r.cpu.as_secs_f64().max(0.01);
        println!(
            "{round:>6} {events:>10} {:>9.2} {rate:>13.0} {:>9.2} {per_cpu:>15.0} {:>7} {:>9.1} {peak_mb:>12.1} {anon_mb:>8.1}",
            r.elapsed.as_secs_f64(),
            r.cpu.as_secs_f64(),
            r.summary["files"],
            r.summary["bytes_per_event"].as_f64().unwrap_or(0.0),
        );
        std::fs::remove_dir_all(&out).expect("remove out");
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "median: {:.0} events/s (target: at least 500000){}",
        rates[rates.len() / 2],
        if full {
            ""
        } else {
            " -- smoke pass under `cargo test`; run `cargo bench -p selflog-cli --bench archive`"
        }
    );
}
