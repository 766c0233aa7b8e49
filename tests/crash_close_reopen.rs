//! SIGKILL at random moments of a writer that appends, rolls small segments, records
//! patterns, runs retention, and closes and reopens its store again and again: kills land
//! in ordinary appends, in segment rolls and lease renewals (the segment manifest rewritten:
//! `events.manifest.tmp` written, synced, renamed), in retention, in pattern and stats
//! writes, in a close (the duplicate count, the manifest's clean-close record and the dedup
//! image: `dedup.window.tmp` written, renamed) and in a writable open (recovery rewriting the
//! manifest), and in the compaction thread's rewrites of sealed segments. After every kill
//! the store must verify clean and hold every acknowledged event and pattern exactly once
//! with nothing else, the next writable open must succeed (a crash
//! never looks like a lost segment or tail), its first new id must be above every id
//! acknowledged before, and re-sending the newest acknowledged events must find each one
//! (the window the open rebuilt, from the image or the log, holds them).
//!
//! The child is this test binary re-run on `child_cycler`, selected by an environment
//! variable naming the store. It announces each step on its standard output; the parent
//! kills it right after the `kill_after`-th announcement of one kind (plus a random spin of
//! up to 300 µs, so that kills spread over the step), then reads what was acknowledged.
//!
//! `SELFLOG_CRASH_ITERS` (default 50) sets the number of kills, `SELFLOG_CRASH_SEED`
//! replays them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::BufRead as _;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use selflog::{verify, Appended, Config, Event, EventId, NewPattern, Store, Timestamp};

mod common;
use common::{check_sidecars, child_command, crash_iters, crash_seed, mix, said, say, Reaper};

const CHILD_ENV: &str = "SELFLOG_CYCLER_CHILD";
/// 2100-01-01: a timestamp retention never expires.
const FUTURE: i64 = 4_102_444_800_000_000;
const DAY_US: i64 = 86_400_000_000;
/// Events per run of the same age: old runs expire, future runs are kept.
const RUN: u64 = 300;
/// Most events the child appends between two flushes.
const FLUSH_EVERY_MAX: u64 = 40;
/// Most flushed rounds between a reopen and the next close.
const ROUNDS_MAX: u64 = 4;
/// The dedup window: small, so that a close writes an image (it needs a full window) and
/// retention is not pinned for long.
const WINDOW: usize = 200;
/// How many of the newest events the child re-sends after each open.
const RESEND: u64 = 40;
/// The child stops by itself after this many events, should nobody kill it.
const CHILD_EVENTS_MAX: u64 = 200_000;
/// The dedup image a clean close writes.
const IMAGE: &str = "dedup.window";
/// The segment manifest, replaced at rolls, lease renewals, retention and close.
const MANIFEST: &str = "events.manifest";
/// Files a kill can leave half-written; a writable open removes them.
const IMAGE_TMP: &str = "dedup.window.tmp";
const MANIFEST_TMP: &str = "events.manifest.tmp";

/// Whether event `i` is in a future run (every third run), which retention must keep.
fn is_kept(i: u64) -> bool {
    (i / RUN) % 3 == 2
}

/// Event `i` of the child's stream, derived from `i` only. Its data is hard to compress,
/// so that a 64 KiB segment holds some 150 events and the writer rolls often.
fn event(i: u64, now_us: i64) -> Event {
    let i_us = i64::try_from(i).unwrap() * 1000;
    let ts = if is_kept(i) {
        FUTURE + i_us
    } else {
        now_us - 60 * DAY_US + i_us
    };
    let pad = (0..mix(i) % 24).fold(String::new(), |mut pad, k| {
        write!(pad, "{:016x}", mix(i ^ (k << 40))).unwrap();
        pad
    });
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

/// The child's configuration: the smallest segments, a small dedup window, future
/// timestamps accepted, and a maintenance thread that runs retention and writes stats
/// records all the time.
fn config() -> Config {
    let mut c = Config::default();
    c.segment_len = selflog::SEGMENT_LEN_MIN;
    c.data_len_max = 8 << 10;
    c.batch_events = 16;
    c.dedup_window = WINDOW;
    c.future_skew_max = Duration::from_secs(200 * 365 * 86_400);
    c.cleanup_interval = Duration::from_millis(5);
    c.stats_interval = Duration::from_millis(2);
    // Sealed segments are compacted (in the background between the child's batches, and
    // on request), so kills land in compactions too (at level 1, so that many finish
    // between kills).
    c.compaction_level = Some(1);
    c
}

/// A file's inode and modification time, if it exists: a rename over it changes them.
fn file_id(path: &Path) -> Option<(u64, std::time::SystemTime)> {
    let m = path.metadata().ok()?;
    Some((m.ino(), m.modified().unwrap()))
}

/// Opens the store for writing, re-sends its newest events (each must be answered as a
/// duplicate with its id) and returns it with the id its next event gets.
fn open_and_resend(dir: &std::ffi::OsStr, now_us: i64) -> (Store, u64) {
    let store = Store::open(dir, config()).expect("a writable open after a kill succeeds");
    let next = store.stats().unwrap().last_id.map_or(1, |id| id.0 + 1);
    for j in next.saturating_sub(RESEND).max(1)..next {
        let got = store.append(event(j, now_us)).unwrap();
        assert_eq!(
            got,
            Appended::Duplicate(EventId(j)),
            "event {j} re-sent after the open (next id {next})"
        );
    }
    (store, next)
}

/// The child: opens the store, says which id comes next, then in cycles of a few rounds
/// (append, flush, record a pattern, flush, sometimes run retention) closes the store and
/// opens it again. Every step is announced before and after.
#[test]
fn child_cycler() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let now_us: i64 = std::env::var("SELFLOG_CYCLER_NOW")
        .unwrap()
        .parse()
        .unwrap();
    let (mut store, start) = open_and_resend(&dir, now_us);
    say(&format!("opened {start}"));
    let mut i = start;
    while i < start + CHILD_EVENTS_MAX {
        let rounds = 1 + mix(i ^ 0xC1) % ROUNDS_MAX;
        for _ in 0..rounds {
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
            if mix(i ^ 0x5E).is_multiple_of(3) {
                say("retaining");
                store.retain(false).unwrap();
                say("retained");
            }
            // The compaction thread yields to a writer that keeps appending, as this one
            // does, so the child also compacts on request (the same rewrite).
            if mix(i ^ 0xC0).is_multiple_of(3) {
                say("compacting");
                store.compact().unwrap();
                say("compacted");
            }
        }
        let image = Path::new(&dir).join(IMAGE);
        let before = file_id(&image);
        say(&format!(
            "closing {} {}",
            before.map_or(0, |f| f.0),
            file_id(&Path::new(&dir).join(MANIFEST)).map_or(0, |f| f.0)
        ));
        let t = Instant::now();
        store.close().unwrap();
        let took = t.elapsed().as_micros();
        let after = file_id(&image);
        let saved = after.is_some() && after != before;
        say(&format!("closed {} {took} {}", i - 1, u8::from(saved)));
        say("opening");
        let (reopened, next) = open_and_resend(&dir, now_us);
        assert_eq!(next, i, "the first id after a clean close");
        store = reopened;
        say(&format!("opened {next}"));
    }
    store.close().unwrap();
}

/// What the child acknowledged before it died.
#[derive(Debug, Default)]
struct Acked {
    /// Last event id whose flush (or the close after it) returned.
    events: u64,
    /// Patterns whose recording and flush returned: pattern id -> event id.
    patterns: BTreeMap<u64, u64>,
    /// The highest id any child's log ever held, or its next open said comes next minus 1.
    id_max: u64,
    /// The step the child announced and had not finished.
    in_flight: Option<&'static str>,
    /// The inodes of the dedup image and the manifest when the last close began (0: none).
    closing_inodes: (u64, u64),
    /// Clean closes, the time they took, and how many of them wrote a dedup image.
    closes: u64,
    close_us: u64,
    images_saved: u64,
}

impl Acked {
    /// Takes one line of the child's output; returns its kind if it is a protocol line.
    fn take(&mut self, line: &str, ctx: &str) -> Option<&'static str> {
        let mut words = said(line)?.split_whitespace();
        let kind = match words.next()? {
            "opened" => {
                let next: u64 = words.next()?.parse().ok()?;
                assert!(
                    next > self.id_max && next > self.events,
                    "{ctx}: the open gives id {next} next, but ids up to {} were acknowledged \
                     or stored",
                    self.id_max.max(self.events)
                );
                self.id_max = next - 1;
                self.in_flight = None;
                "opened"
            }
            "flushed" => {
                self.events = words.next()?.parse().ok()?;
                self.id_max = self.id_max.max(self.events);
                "flushed"
            }
            "recording" => {
                self.in_flight = Some("pattern");
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
            "compacting" => {
                self.in_flight = Some("compaction");
                "compacting"
            }
            "compacted" => {
                self.in_flight = None;
                "compacted"
            }
            "closing" => {
                self.in_flight = Some("close");
                self.closing_inodes = (words.next()?.parse().ok()?, words.next()?.parse().ok()?);
                "closing"
            }
            "closed" => {
                let last: u64 = words.next()?.parse().ok()?;
                let took: u64 = words.next()?.parse().ok()?;
                let saved: u64 = words.next()?.parse().ok()?;
                assert!(last >= self.events, "{ctx}: closed at {last}");
                self.events = last;
                self.closes += 1;
                self.close_us += took;
                self.images_saved += saved;
                self.in_flight = None;
                "closed"
            }
            "opening" => {
                self.in_flight = Some("open");
                "opening"
            }
            _ => return None,
        };
        Some(kind)
    }
}

/// Checks the store after a kill: the log and both sidecars verify clean; every surviving
/// event is exactly what was appended, in id order, nothing past what could have been
/// appended; every acknowledged event retention may not delete is there; every
/// acknowledged pattern is there once and unchanged; the stats stream is readable.
/// Returns the last event id and how many events survive.
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
    assert!(
        ro.warnings().is_empty(),
        "{ctx}: read-only open warns {:?}",
        ro.warnings()
    );
    let mut present = 0u64;
    let mut last = 0u64;
    for r in ro.scan().unwrap() {
        let e = r.unwrap_or_else(|e| panic!("{ctx}: scan after id {last}: {e}"));
        assert!(e.id.0 > last, "{ctx}: id {} after {last}", e.id);
        for gone in last + 1..e.id.0 {
            assert!(
                !is_kept(gone) && gone <= acked.events,
                "{ctx}: event {gone} is gone, events {last} and {} are there",
                e.id
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
        "{ctx}: acknowledged up to {}, the log ends at {last}",
        acked.events
    );
    assert!(
        last <= acked.events + FLUSH_EVERY_MAX,
        "{ctx}: the log ends at {last}, only up to {} could have been appended",
        acked.events + FLUSH_EVERY_MAX
    );
    assert_eq!(ro.stats().unwrap().total_events, present, "{ctx}");

    check_sidecars(&ro, &acked.patterns, pattern_of, ctx);
    (last, present)
}

/// Kills in a row on one store; a longer run starts a new store after this many, so that
/// checking the store after each kill stays cheap.
const ITERS_PER_STORE: u64 = 100;

/// What the parent makes the child announce before it kills it, in turn.
const KILL_ON: [&str; 7] = [
    "flushed",
    "closing",
    "recording",
    "opening",
    "retaining",
    "closed",
    "compacting",
];

/// What the kills hit.
#[derive(Default, Debug)]
struct Kills {
    killed: u64,
    /// Kills by the step the child had announced and not finished.
    in_step: BTreeMap<&'static str, u64>,
    /// Kills that left a half-written dedup image or manifest behind.
    image_tmp_left: u64,
    manifest_tmp_left: u64,
    /// Kills after which the newest segment's index image was clean (a close had written
    /// it and no open had yet cleared the flag), and kills that left a half-written one.
    clean_index_images: u64,
    index_image_tmp_left: u64,
    /// Kills that left a compaction's temporary segment file, and compacted (version 2)
    /// segments found after kills.
    compaction_tmp_left: u64,
    compacted_seen: u64,
    /// Clean closes the children completed, the time they took, and how many wrote an image.
    closes: u64,
    close_us: u64,
    images_saved: u64,
    /// Events compared with what was appended, over all checks.
    events_checked: u64,
    /// The highest event id acknowledged, over all stores.
    acked: u64,
}

#[test]
fn sigkill_during_appends_rolls_closes_and_reopens_loses_nothing_acknowledged() {
    let iters = crash_iters(50);
    let seed = crash_seed();
    eprintln!("close/reopen crash test: {iters} iterations, SELFLOG_CRASH_SEED={seed}");
    let started = Instant::now();
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
    eprintln!(
        "{} kills in {:.1?}; by step: {:?}; half-written image left {}, manifest left {}; \
         clean index images after a kill {}, half-written ones {}; \
         compacted segments seen {}, half-written compactions {}; \
         {} clean closes (mean {} µs, {} wrote an image); {} events checked; {} acknowledged \
         in the last store",
        kills.killed,
        started.elapsed(),
        kills.in_step,
        kills.image_tmp_left,
        kills.manifest_tmp_left,
        kills.clean_index_images,
        kills.index_image_tmp_left,
        kills.compacted_seen,
        kills.compaction_tmp_left,
        kills.closes,
        kills.close_us / kills.closes.max(1),
        kills.images_saved,
        kills.events_checked,
        kills.acked,
    );
    assert!(
        kills.killed > 0 || iters == 0,
        "seed {seed}: no child was killed"
    );
    if iters >= 20 {
        assert!(
            kills.in_step.keys().any(|k| k.starts_with("close")),
            "seed {seed}: no kill landed in a close"
        );
        assert!(
            kills.compacted_seen > 0,
            "seed {seed}: no compacted segment was ever seen"
        );
        assert!(
            kills.images_saved > 0,
            "seed {seed}: no close wrote a dedup image"
        );
    }
}

/// The step a kill landed in, from what the child announced and, in a close, from which
/// files it had replaced: the manifest's clean-close record comes first, the image last.
fn step_killed(dir: &Path, acked: &Acked) -> &'static str {
    let step = acked.in_flight.unwrap_or("append");
    if step != "close" {
        return step;
    }
    let ino = |name| file_id(&dir.join(name)).map_or(0, |f| f.0);
    let (image_was, manifest_was) = acked.closing_inodes;
    if ino(IMAGE) != image_was {
        "close, after the image rename"
    } else if dir.join(IMAGE_TMP).exists() {
        "close, during the image write"
    } else if ino(MANIFEST) != manifest_was {
        "close, after the clean-close record"
    } else {
        "close, before the clean-close record"
    }
}

/// After a writable open and a clean close: no temporary file left in the store or its
/// sidecars, and a clean index image of the newest segment only.
fn check_left_files(dir: &Path, ctx: &str) {
    for d in [dir.to_path_buf(), dir.join("patterns"), dir.join("stats")] {
        assert_eq!(
            compaction_files(&d).1,
            0,
            "{ctx}: a compaction's temporary file left"
        );
        for tmp in [IMAGE_TMP, MANIFEST_TMP] {
            assert!(
                !d.join(tmp).exists(),
                "{ctx}: {tmp} left in {}",
                d.display()
            );
        }
        // After the writable open and a clean close: no temporary index image, and a
        // clean image of the newest segment only.
        let (images, tmps, newest) = index_images(&d);
        assert_eq!(
            tmps,
            0,
            "{ctx}: a temporary index image left in {}",
            d.display()
        );
        for (path, clean) in &images {
            assert!(
                *clean && Some(path.with_extension("seg")) == newest,
                "{ctx}: index image {} (clean {clean}), newest segment {newest:?}",
                path.display()
            );
        }
    }
}

/// Compacted (version 2) segments in `dir`, and compactions' temporary files.
fn compaction_files(dir: &Path) -> (u64, u64) {
    let (mut compacted, mut tmps) = (0, 0);
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".seg.tmp") {
            tmps += 1;
        } else if e.path().extension().is_some_and(|x| x == "seg") {
            let mut head = [0u8; 12];
            let version_2 = std::fs::File::open(e.path())
                .and_then(|f| std::os::unix::fs::FileExt::read_exact_at(&f, &mut head, 0))
                .is_ok()
                && head[8..12] == 2u32.to_le_bytes();
            compacted += u64::from(version_2);
        }
    }
    (compacted, tmps)
}

/// The index images in `dir` (with whether each is clean, by its flags), how many
/// temporary ones, and the newest segment file.
fn index_images(
    dir: &Path,
) -> (
    Vec<(std::path::PathBuf, bool)>,
    u64,
    Option<std::path::PathBuf>,
) {
    let (mut images, mut tmps, mut newest) = (Vec::new(), 0, None);
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".idx.tmp") {
            tmps += 1;
        } else if path.extension().is_some_and(|x| x == "idx") {
            let clean = std::fs::read(&path)
                .ok()
                .and_then(|b| selflog::fuzzing::ImageHead::decode(&b).ok())
                .is_some_and(|h| h.clean);
            images.push((path, clean));
        } else if path.extension().is_some_and(|x| x == "seg")
            && newest.as_ref().is_none_or(|n| path > *n)
        {
            newest = Some(path);
        }
    }
    (images, tmps, newest)
}

/// Runs iterations `iters` on the store at `dir`, then recovers it in this process, checks
/// the first new id and the re-sent events, and checks the store once more.
fn kill_repeatedly(
    dir: &Path,
    iters: std::ops::Range<u64>,
    seed: u64,
    rng: &mut u64,
    kills: &mut Kills,
) {
    let now_us = Timestamp::now().0;
    let mut acked = Acked::default();
    for iter in iters {
        *rng = mix(*rng);
        let kill_on = KILL_ON[usize::try_from(iter % 7).unwrap()];
        let kill_after = 1 + (*rng >> 8) % 6;
        // A kill in a close lands anywhere in it: up to twice the mean close so far.
        let spin_max = if kill_on == "closing" && acked.closes > 0 {
            2 * acked.close_us / acked.closes
        } else {
            300
        };
        let spin = Duration::from_micros((*rng >> 20) % spin_max.max(1));
        let ctx = format!(
            "SELFLOG_CRASH_SEED={seed}, iteration {iter}, kill {spin:?} after {kill_after} \
             `{kill_on}` lines"
        );
        let mut cmd = child_command("child_cycler", CHILD_ENV, dir);
        cmd.env("SELFLOG_CYCLER_NOW", now_us.to_string());
        let (mut child, mut out) = Reaper::spawn_piped(cmd);
        let mut announced = 0;
        let mut line = String::new();
        while announced < kill_after {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                let _ = child.0.wait();
                panic!("{ctx}: the child ended by itself: {}", child.stderr_text());
            }
            announced += u64::from(acked.take(&line, &ctx) == Some(kill_on));
        }
        let t = Instant::now();
        while t.elapsed() < spin {
            std::hint::spin_loop();
        }
        child.0.kill().unwrap();
        let exit = child.0.wait().unwrap();
        loop {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            acked.take(&line, &ctx);
        }
        if exit.signal() == Some(9) {
            kills.killed += 1;
            *kills.in_step.entry(step_killed(dir, &acked)).or_default() += 1;
        } else {
            panic!(
                "{ctx}: the child ended with {exit} before the kill: {}",
                child.stderr_text()
            );
        }
        for d in [dir.to_path_buf(), dir.join("patterns"), dir.join("stats")] {
            kills.image_tmp_left += u64::from(d.join(IMAGE_TMP).exists());
            kills.manifest_tmp_left += u64::from(d.join(MANIFEST_TMP).exists());
            let (images, tmps, _) = index_images(&d);
            kills.index_image_tmp_left += tmps;
            let (compacted, seg_tmps) = compaction_files(&d);
            kills.compacted_seen += compacted;
            kills.compaction_tmp_left += seg_tmps;
            kills.clean_index_images += images.iter().filter(|(_, clean)| *clean).count() as u64;
        }
        acked.in_flight = None;
        let (last, present) = check(dir, &acked, now_us, &ctx);
        kills.events_checked += present;
        acked.id_max = acked.id_max.max(last);
        // Events after the last acknowledged flush that did make it are acknowledged by the
        // next child's open.
        acked.events = last;
    }
    // A writer in this process recovers; its first new id is above everything acknowledged
    // and the newest events are still known to deduplication.
    let ctx = format!(
        "SELFLOG_CRASH_SEED={seed}, after the last kill on {}",
        dir.display()
    );
    let (store, next) = open_and_resend(dir.as_os_str(), now_us);
    assert!(next > acked.id_max, "{ctx}: next id {next}");
    assert_eq!(
        store.append(event(next, now_us)).unwrap(),
        Appended::New(EventId(next)),
        "{ctx}"
    );
    store.close().unwrap();
    acked.events = next;
    check_left_files(dir, &ctx);
    let (last, present) = check(dir, &acked, now_us, &ctx);
    assert_eq!(last, next, "{ctx}");
    kills.acked = last;
    kills.closes += acked.closes;
    kills.close_us += acked.close_us;
    kills.images_saved += acked.images_saved;
    eprintln!("{}: {last} events appended, {present} kept", dir.display());
}
