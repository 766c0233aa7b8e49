//! The capture daemon's cost on a laptop: `selflog capture` watching a tree of 10,000
//! directories (processes recorded too), then left idle. Prints the time to watch the
//! tree, the daemon's CPU time over the idle window (utime + stime from
//! `/proc/PID/stat`, which other load on the machine hardly inflates) as a share of one
//! core, its resident memory (`VmRSS`, and the peak `VmHWM`), and then the same for a
//! burst of file writes. Linux only (it reads `/proc`).
//!
//! `cargo bench -p selflog-cli --bench capture_idle`; `SELFLOG_CAPTURE_DIRS` (default
//! 10000) and `SELFLOG_CAPTURE_IDLE_SECS` (default 30) change the tree and the window.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time (user + system) the process has used, from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = clock_ticks_per_second();
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// The unit of `utime` and `stime` (`getconf CLK_TCK`, 100 on every Linux seen).
fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// `VmRSS` and `VmHWM` in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn wait_for_log(path: &Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_mins(10);
    while !fs::read_to_string(path)
        .unwrap_or_default()
        .contains(needle)
    {
        assert!(
            Instant::now() < deadline,
            "the daemon never logged {needle:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[expect(clippy::cast_precision_loss, reason = "figures for display")]
#[expect(clippy::too_many_lines, reason = "one measurement, step by step")]
fn main() {
    let dirs = env_u64("SELFLOG_CAPTURE_DIRS", 10_000);
    let idle = Duration::from_secs(env_u64("SELFLOG_CAPTURE_IDLE_SECS", 30));
    let tmp = tempfile::tempdir().expect("tempdir");
    let tree = tmp.path().join("tree");
    // A tree like a home directory's: 100 top directories, each with nested ones.
    let per_top = dirs.div_ceil(100);
    let mut made = 0;
    'outer: for t in 0..100 {
        for d in 0..per_top {
            if made == dirs {
                break 'outer;
            }
            let dir = tree
                .join(format!("top {t}"))
                .join(format!("d{}", d % 10))
                .join(format!("sub {d}"));
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("file.txt"), "x").unwrap();
            made += 1;
        }
    }
    let watched_expected = fs::read_dir(&tree).unwrap().count();
    let config = tmp.path().join("capture.toml");
    fs::write(&config, "").unwrap();
    let err = tmp.path().join("stderr.log");
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_selflog"))
        .arg("--store")
        .arg(tmp.path().join("store"))
        .args(["capture", "--watch"])
        .arg(&tree)
        .arg("--config")
        .arg(&config)
        .env("HOME", tmp.path())
        .env_remove("SELFLOG_STORE")
        .env_remove("DISPLAY")
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .expect("start selflog capture");
    let pid = child.id();
    wait_for_log(&err, "capture: watching");
    let startup = started.elapsed();
    let log = fs::read_to_string(&err).unwrap();
    let watching = log
        .lines()
        .find(|l| l.contains("capture: watching"))
        .unwrap_or("")
        .to_owned();
    let (rss_start, _) = memory_kib(pid);
    let cpu_startup = cpu_time(pid);

    // Idle: nothing happens in the tree; processes come and go on the machine.
    let t0 = Instant::now();
    let c0 = cpu_time(pid);
    std::thread::sleep(idle);
    let idle_cpu = cpu_time(pid).saturating_sub(c0);
    let idle_wall = t0.elapsed();
    let (rss_idle, _) = memory_kib(pid);

    // A burst: every directory's file rewritten once.
    let t1 = Instant::now();
    let c1 = cpu_time(pid);
    let mut writes = 0u64;
    for top in fs::read_dir(&tree).unwrap() {
        for d in fs::read_dir(top.unwrap().path()).unwrap() {
            for sub in fs::read_dir(d.unwrap().path()).unwrap() {
                fs::write(sub.unwrap().path().join("file.txt"), "rewritten").unwrap();
                writes += 1;
            }
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    let burst_cpu = cpu_time(pid).saturating_sub(c1);
    let burst_wall = t1.elapsed();
    let (_, rss_peak) = memory_kib(pid);

    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let out = child.wait_with_output().expect("wait for capture");
    let summary = String::from_utf8_lossy(&out.stdout);

    let share = |cpu: Duration, wall: Duration| cpu.as_secs_f64() / wall.as_secs_f64() * 100.0;
    println!(
        "selflog capture, {made} directories watched ({watched_expected} top), machine: {} cores",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    println!("  {watching}");
    println!(
        "  watching the tree: {:.2} s wall, {:.2} s CPU",
        startup.as_secs_f64(),
        cpu_startup.as_secs_f64()
    );
    println!(
        "  idle {:.0} s: {:.3} s CPU = {:.3}% of one core",
        idle_wall.as_secs_f64(),
        idle_cpu.as_secs_f64(),
        share(idle_cpu, idle_wall)
    );
    println!(
        "  resident memory: {:.1} MiB after watching, {:.1} MiB after the idle window",
        rss_start as f64 / 1024.0,
        rss_idle as f64 / 1024.0
    );
    println!(
        "  burst of {writes} file writes (+3 s): {:.2} s CPU over {:.1} s wall, {:.0} us CPU per write; peak RSS {:.1} MiB",
        burst_cpu.as_secs_f64(),
        burst_wall.as_secs_f64(),
        burst_cpu.as_secs_f64() * 1e6 / writes.max(1) as f64,
        rss_peak as f64 / 1024.0
    );
    println!("  summary: {}", summary.lines().next().unwrap_or(""));
    for line in summary.lines().skip(1).take(3) {
        println!("           {line}");
    }
}
