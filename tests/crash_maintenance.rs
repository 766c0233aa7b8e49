//! SIGKILL while retention deletes segments and while the pattern and stats streams are
//! written: after every kill the event log and both sidecars open, verify clean, and hold
//! everything acknowledged that retention was allowed to keep.
//!
//! The child is this test binary re-run on `child_maintainer`, selected by an environment
//! variable naming the store. It appends a deterministic stream in which most events are
//! 60 days old (so every sealed segment of them expires at once) and runs of events are in
//! the future (so their segments must survive), records one pattern per flushed batch, runs
//! retention itself every few batches while the maintenance thread runs it too (every 5 ms)
//! and appends a stats record every 2 ms. The parent kills it right after it announces a
//! retention run or a pattern write, or after some flushes.
//!
//! `SELFLOG_CRASH_ITERS` (default 50 here too) sets the number of kills,
//! `SELFLOG_CRASH_SEED` replays them.

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::time::Duration;

use selflog::{verify, Config, Event, EventId, NewPattern, Store, Timestamp};

mod common;
use common::{check_sidecars, child_command, crash_iters, crash_seed, mix, said, say, Reaper};

const CHILD_ENV: &str = "SELFLOG_MAINTAINER_CHILD";
/// 2100-01-01: a timestamp retention never expires.
const FUTURE: i64 = 4_102_444_800_000_000;
const DAY_US: i64 = 86_400_000_000;
/// Events per run of the same age: old runs expire, future runs are kept.
const RUN: u64 = 400;
/// Most events the child appends between two flushes.
const FLUSH_EVERY_MAX: u64 = 60;
/// The child stops by itself after this many events, should nobody kill it.
const CHILD_EVENTS_MAX: u64 = 200_000;

/// Whether event `i` is in a future run (every third run), which retention must keep.
fn is_kept(i: u64) -> bool {
    (i / RUN) % 3 == 2
}

/// Event `i` of the child's stream, derived from `i` only.
fn event(i: u64, now_us: i64) -> Event {
    let i_us = i64::try_from(i).unwrap() * 1000;
    let ts = if is_kept(i) {
        FUTURE + i_us
    } else {
        now_us - 60 * DAY_US + i_us
    };
    let pad = "x".repeat(usize::try_from(mix(i) % 300).unwrap());
    Event::new(
        Timestamp(ts),
        ["file_op", "app_focus", "clipboard"][usize::try_from(i % 3).unwrap()],
        Some("modified"),
        format!("app-{}", i % 7),
        Some(&format!(r#"{{"i":{i},"pad":"{pad}"}}"#)),
    )
    .unwrap()
}

/// The pattern recorded after event `i` is flushed: its type and data.
fn pattern_of(i: u64) -> (String, String) {
    (format!("p{}", i % 4), format!(r#"{{"after":{i}}}"#))
}

/// The child's configuration: tiny segments, retention with a small dedup window (which
/// would otherwise pin the newest million events), future timestamps accepted, and a
/// maintenance thread that runs retention and writes stats records all the time.
fn config() -> Config {
    let mut c = Config::default();
    c.segment_len = 64 << 10;
    c.data_len_max = 8 << 10;
    c.batch_events = 32;
    c.dedup_window = 200;
    c.future_skew_max = Duration::from_secs(200 * 365 * 86_400);
    c.cleanup_interval = Duration::from_millis(5);
    c.stats_interval = Duration::from_millis(2);
    c
}

/// The child: its first line gives the clock it derives the old timestamps from (the
/// parent regenerates the same events from it). Then, in rounds: append a few events,
/// flush, record a pattern about the last one, flush, and every third round run retention.
#[test]
fn child_maintainer() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let now_us: i64 = std::env::var("SELFLOG_MAINTAINER_NOW")
        .unwrap()
        .parse()
        .unwrap();
    let store = Store::open(&dir, config()).expect("child opens the store");
    let start = store.stats().unwrap().last_id.map_or(1, |id| id.0 + 1);
    say(&format!("start {start}"));
    let mut i = start;
    let mut round = 0u64;
    while i < start + CHILD_EVENTS_MAX {
        let k = 1 + mix(i ^ 0xF1) % FLUSH_EVERY_MAX;
        for j in i..i + k {
            assert_eq!(store.append(event(j, now_us)).unwrap().id(), EventId(j));
        }
        store.flush().unwrap();
        i += k;
        say(&format!("flushed {}", i - 1));
        let (kind, data) = pattern_of(i - 1);
        say(&format!("recording {}", i - 1));
        let pid = store
            .record_pattern(
                &NewPattern::new(kind, 0.5, data)
                    .about(EventId(i - 1))
                    .found_by("embryo-1"),
            )
            .unwrap();
        store.flush().unwrap();
        say(&format!("recorded {pid} {}", i - 1));
        round += 1;
        if round.is_multiple_of(3) {
            say("retaining");
            store.retain(false).unwrap();
            say("retained");
        }
    }
    store.close().unwrap();
}

/// What the child acknowledged before it died.
#[derive(Debug, Default)]
struct Acked {
    /// Last event id whose flush returned.
    events: u64,
    /// Patterns whose recording and flush returned: pattern id -> event id.
    patterns: BTreeMap<u64, u64>,
    /// The child announced a retention run or a pattern write that had not returned.
    in_flight: Option<&'static str>,
}

impl Acked {
    /// Takes one line of the child's output; returns its kind if it is a protocol line.
    fn take(&mut self, line: &str) -> Option<&'static str> {
        let mut words = said(line)?.split_whitespace();
        let kind = match words.next()? {
            "start" => "start",
            "flushed" => {
                self.events = words.next()?.parse().ok()?;
                "flushed"
            }
            "recording" => {
                self.in_flight = Some("pattern write");
                "recording"
            }
            "recorded" => {
                let pid = words.next()?.parse().ok()?;
                let after = words.next()?.parse().ok()?;
                self.patterns.insert(pid, after);
                self.in_flight = None;
                "recorded"
            }
            "retaining" => {
                self.in_flight = Some("retention");
                "retaining"
            }
            "retained" => {
                self.in_flight = None;
                "retained"
            }
            _ => return None,
        };
        Some(kind)
    }
}

/// Checks the store after a kill: both sidecars and the log verify clean; every surviving
/// event is exactly what was appended, in id order; every acknowledged event retention may
/// not delete (future runs, the newest segment) is there; every acknowledged pattern is
/// there once and unchanged; the stats stream is readable. Returns the last event id and
/// how many events survive.
fn check(dir: &Path, acked: &Acked, now_us: i64, ctx: &str) -> (u64, u64) {
    for (name, d) in [
        ("event log", dir.to_path_buf()),
        ("patterns", dir.join("patterns")),
        ("stats", dir.join("stats")),
    ] {
        let report = verify(&d).unwrap_or_else(|e| panic!("{ctx}: verify {name}: {e}"));
        assert!(
            report.problems.is_empty(),
            "{ctx}: verify {name} found {:?}",
            report.problems
        );
    }
    let ro = Store::open_read_only(dir).unwrap_or_else(|e| panic!("{ctx}: read-only open: {e}"));
    let mut present = 0u64;
    let mut last = 0u64;
    for r in ro.scan().unwrap() {
        let e = r.unwrap_or_else(|e| panic!("{ctx}: scan after id {last}: {e}"));
        assert!(e.id.0 > last, "{ctx}: id {} after {last}", e.id);
        // Everything between the previous survivor and this one was deleted: it must all
        // have been old.
        for gone in last + 1..e.id.0 {
            assert!(
                !is_kept(gone),
                "{ctx}: event {gone} of a future run is gone"
            );
        }
        let want = event(e.id.0, now_us);
        assert!(
            e.timestamp == want.timestamp
                && e.event_type == want.event_type
                && e.source == want.source
                && e.data.as_deref() == want.data_text(),
            "{ctx}: event {} differs from what was appended",
            e.id
        );
        last = e.id.0;
        present += 1;
    }
    assert!(
        last >= acked.events,
        "{ctx}: flushed up to {}, the log ends at {last}",
        acked.events
    );
    assert!(
        last <= acked.events + FLUSH_EVERY_MAX,
        "{ctx}: the log ends at {last}, only up to {} could have been appended",
        acked.events + FLUSH_EVERY_MAX
    );
    let stats = ro.stats().unwrap();
    assert_eq!(stats.total_events, present, "{ctx}");

    check_sidecars(&ro, &acked.patterns, pattern_of, ctx);
    (last, present)
}

/// Kills in a row on one store; a longer `SELFLOG_CRASH_ITERS` run starts a new store after
/// this many, so that checking the store after each kill stays cheap.
const ITERS_PER_STORE: u64 = 100;

/// Kills the child while it deletes expired segments and writes the sidecars, again and
/// again, checking everything after each kill; every `ITERS_PER_STORE` kills a writer in
/// this process recovers the store, retention leaves only what it must keep, and the next
/// kills go to a new store.
#[test]
fn sigkill_during_retention_and_sidecar_writes_loses_nothing_acknowledged() {
    let iters = crash_iters(50);
    let seed = crash_seed();
    eprintln!("maintenance crash test: {iters} iterations, SELFLOG_CRASH_SEED={seed}");
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = seed;
    let mut kills = Kills::default();
    let mut first = 0;
    while first < iters {
        let n = ITERS_PER_STORE.min(iters - first);
        let dir = tmp.path().join(format!("store{}", first / ITERS_PER_STORE));
        kill_repeatedly(&dir, first..first + n, seed, &mut rng, &mut kills);
        first += n;
    }
    assert!(
        kills.killed > 0 || iters == 0,
        "seed {seed}: no child was killed"
    );
    eprintln!(
        "{} kills: {} during a retention run, {} during a pattern write; {} events checked",
        kills.killed, kills.mid_retention, kills.mid_pattern, kills.events_checked
    );
}

/// What the kills hit.
#[derive(Default)]
struct Kills {
    killed: u64,
    mid_retention: u64,
    mid_pattern: u64,
    /// Events compared with what was appended, over all checks.
    events_checked: u64,
}

/// Runs iterations `iters` on the store at `dir`, then recovers it in this process and
/// checks the final retention.
fn kill_repeatedly(
    dir: &Path,
    iters: std::ops::Range<u64>,
    seed: u64,
    rng: &mut u64,
    kills: &mut Kills,
) {
    let now_us = Timestamp::now().0;
    let mut acked = Acked::default();
    for iter in iters.clone() {
        *rng = mix(*rng);
        let kill_on = ["flushed", "retaining", "recording"][usize::try_from(*rng % 3).unwrap()];
        let kill_after = 1 + (*rng >> 8) % 12;
        let ctx = format!(
            "SELFLOG_CRASH_SEED={seed}, iteration {iter}, kill after {kill_after} `{kill_on}` lines"
        );
        let mut cmd = child_command("child_maintainer", CHILD_ENV, dir);
        cmd.env("SELFLOG_MAINTAINER_NOW", now_us.to_string());
        let (mut child, mut out) = Reaper::spawn_piped(cmd);
        let mut announced = 0;
        let mut line = String::new();
        while announced < kill_after {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                let _ = child.0.wait();
                panic!("{ctx}: the child ended by itself: {}", child.stderr_text());
            }
            announced += u64::from(acked.take(&line) == Some(kill_on));
        }
        child.0.kill().unwrap();
        let exit = child.0.wait().unwrap();
        loop {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            acked.take(&line);
        }
        if exit.signal() == Some(9) {
            kills.killed += 1;
            match acked.in_flight {
                Some("retention") => kills.mid_retention += 1,
                Some(_) => kills.mid_pattern += 1,
                None => {}
            }
        }
        acked.in_flight = None;
        let (last, present) = check(dir, &acked, now_us, &ctx);
        kills.events_checked += present;
        // Events after the last acknowledged flush that did make it are acknowledged by the
        // next child's `start`.
        acked.events = last;
    }
    // A writer in this process recovers, runs retention, and keeps exactly what it must.
    let store = Store::open(dir, config()).unwrap();
    store.retain(false).unwrap();
    store.flush().unwrap();
    let segments = store.segments().unwrap();
    let (_, older) = segments.split_last().unwrap();
    for s in older {
        let (first, last) = s.ids.unwrap();
        assert!(
            (first.0..=last.0).any(is_kept) || last.0 + 200 > acked.events,
            "seed {seed}: segment {first}..={last} holds only expired events and was kept"
        );
    }
    store.close().unwrap();
    let (last, present) = check(dir, &acked, now_us, "after the final retention");
    eprintln!("{last} events appended, {present} kept by retention");
    assert!(
        present < last,
        "seed {seed}: retention deleted nothing, so the test proved nothing"
    );
}
