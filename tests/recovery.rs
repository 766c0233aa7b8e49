//! Reliability under crashes and damage: torn tails at every offset, torn commit slots,
//! flipped bytes in sealed segments, writer processes killed with SIGKILL, reader and
//! second-writer processes, garbage after the committed end.
//!
//! Child processes re-run this test binary on a single `child_*` test, selected by an
//! environment variable naming the store; without that variable those tests return at once.
//! `SELFLOG_CRASH_ITERS` (default 50) sets how many times the SIGKILL test kills a writer,
//! `SELFLOG_CRASH_SEED` replays its kill points.

use std::fs::OpenOptions;
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::FileExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use selflog::{verify, Config, Error, Event, EventId, Store, StoredEvent, Timestamp, META_FILE};

mod common;
use common::{child_command, crash_iters, crash_seed, mix, said, say, Reaper};

const T0: i64 = 1_732_460_000_000_000;
const HEADER_LEN: usize = 256;
/// Offset of commit slot A: right after the 64-byte fixed part of a segment header.
const SLOT_A: usize = 64;

const CRASH_CHILD_ENV: &str = "SELFLOG_CRASH_CHILD";
const READER_CHILD_ENV: &str = "SELFLOG_READER_CHILD";
const LOCK_CHILD_ENV: &str = "SELFLOG_LOCK_CHILD";
/// Set for a crash child that appends in `Durability::Sync`.
const CRASH_SYNC_ENV: &str = "SELFLOG_CRASH_SYNC";
/// Most events the crash child appends between two flushes.
const FLUSH_EVERY_MAX: u64 = 100;
/// The crash child stops by itself after this many events, should nobody kill it.
const CHILD_EVENTS_MAX: u64 = 100_000;
/// Kills in a row on one store; a longer `SELFLOG_CRASH_ITERS` run starts a new store after
/// this many, so that checking the store after each kill stays cheap.
const ITERS_PER_STORE: u32 = 25;

// ---------------------------------------------------------------------------------------
// Deterministic events, checks, file layout helpers
// ---------------------------------------------------------------------------------------

/// A small seeded generator for kill points and garbage.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `len` pseudo-random lowercase letters derived from `seed`.
fn letters(seed: u64, len: usize) -> String {
    let mut out = String::with_capacity(len + 8);
    let mut j = 0;
    while out.len() < len {
        for b in mix(seed ^ (j << 32)).to_le_bytes() {
            out.push(char::from(b'a' + b % 26));
        }
        j += 1;
    }
    out.truncate(len);
    out
}

/// Event `i` of the deterministic stream: derived from `i` only. One in ten has 1.3 to
/// 2.6 KiB of data that compresses well; the rest have short, incompressible data or none.
fn det_event(i: u64) -> Event {
    const TYPES: [&str; 5] = [
        "file_op",
        "app_launch",
        "clipboard",
        "window_focus",
        "ünïcødé ✓",
    ];
    const ACTIONS: [&str; 3] = ["modified", "opened", "closed"];
    let h = mix(i);
    let data = match i % 10 {
        0 => None,
        3 => Some(format!(
            r#"{{"i":{i},"blob":"{}"}}"#,
            format!("{i:08x}-lorem ipsum dolor sit amet ")
                .repeat(40 + usize::try_from(h % 40).unwrap())
        )),
        _ => Some(format!(
            r#"{{"i":{i},"text":"{}"}}"#,
            letters(h, 16 + usize::try_from(h % 480).unwrap())
        )),
    };
    Event::new(
        Timestamp(T0 + i64::try_from(i).unwrap() * 1000),
        TYPES[usize::try_from(i % 5).unwrap()],
        (!i.is_multiple_of(4)).then(|| ACTIONS[usize::try_from(h % 3).unwrap()]),
        format!("source-{}", i % 11),
        data.as_deref(),
    )
    .unwrap()
}

fn config(segment_len: u64) -> Config {
    let mut c = Config::default();
    c.segment_len = segment_len;
    c.data_len_max = 16 << 10;
    c
}

/// Checks that `got` is event `id` and holds exactly what `want` held when appended.
fn assert_is(got: &StoredEvent, id: u64, want: &Event, ctx: &str) {
    assert_eq!(got.id, EventId(id), "{ctx}: wrong id");
    let same = got.timestamp == want.timestamp
        && got.event_type == want.event_type
        && got.action == want.action
        && got.source == want.source
        && got.data.as_deref() == want.data_text();
    assert!(
        same,
        "{ctx}: event {id} differs from what was appended: {got:?} vs {want:?}"
    );
    assert_eq!(
        got.hash,
        want.content_hash(),
        "{ctx}: event {id} has a wrong hash"
    );
}

/// Scans the whole store, checking that ids are dense from 1 and that event `id` equals
/// `expected(id)`; returns how many events there are.
fn scan_expecting(store: &Store, expected: &dyn Fn(u64) -> Event, ctx: &str) -> u64 {
    scan_expecting_from(store, expected, 1, ctx)
}

/// As [`scan_expecting`], comparing the content of events from id `compare_from` on only
/// (every frame read is still checked against its CRC by the store).
fn scan_expecting_from(
    store: &Store,
    expected: &dyn Fn(u64) -> Event,
    compare_from: u64,
    ctx: &str,
) -> u64 {
    let mut n = 0;
    for r in store.scan().unwrap() {
        let ev = r.unwrap_or_else(|e| panic!("{ctx}: scan failed after {n} events: {e}"));
        n += 1;
        if n >= compare_from {
            assert_is(&ev, n, &expected(n), ctx);
        } else {
            assert_eq!(ev.id, EventId(n), "{ctx}: wrong id");
        }
    }
    n
}

/// The segment files of a store, in order.
fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("events-") && p.extension().is_some_and(|e| e == "seg")
        })
        .collect();
    out.sort();
    out
}

/// Copies the files of a closed store (not its lock files) into a new directory, with its
/// pattern and stats streams.
fn copy_store(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_store(&entry.path(), &to.join(entry.file_name()));
        } else if entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The commit slots of a segment header (`format-spec/FORMAT.md#commit-slot`): slot A at
/// offset 64, slot B right after it, each `len` bytes long, with `sequence` (u64) at +0,
/// `committed_len` (u64) at +8, `flags` (u32, bit 0: sealed) at `len - 8` and the CRC-32 of
/// the bytes before it at `len - 4`. The length is read off an intact segment, whose slot A
/// always holds a publication: it is the length at which A's CRC holds. (So these tests
/// keep working when a field is added to the slot.)
#[derive(Debug, Clone, Copy)]
struct SlotLayout {
    len: usize,
}

/// One decoded commit slot.
#[derive(Debug, Clone, Copy)]
struct Slot {
    offset: usize,
    sequence: u64,
    committed_len: usize,
    sealed: bool,
}

impl SlotLayout {
    fn of(intact: &[u8]) -> SlotLayout {
        (16..=(HEADER_LEN - SLOT_A) / 2)
            .step_by(8)
            .map(|len| SlotLayout { len })
            .find(|l| l.slot_at(intact, SLOT_A).is_some())
            .unwrap_or_else(|| panic!("no valid slot A in {:02x?}", &intact[..HEADER_LEN]))
    }

    fn offsets(self) -> [usize; 2] {
        [SLOT_A, SLOT_A + self.len]
    }

    /// The slot at `offset`, if it is valid.
    fn slot_at(self, bytes: &[u8], offset: usize) -> Option<Slot> {
        let raw = &bytes[offset..offset + self.len];
        let (body, crc) = raw.split_at(self.len - 4);
        let crc = u32::from_le_bytes(crc.try_into().unwrap());
        if raw.iter().all(|&b| b == 0) || crc != crc32fast::hash(body) || le64(raw, 0) == 0 {
            return None;
        }
        let flags = u32::from_le_bytes(raw[self.len - 8..self.len - 4].try_into().unwrap());
        Some(Slot {
            offset,
            sequence: le64(raw, 0),
            committed_len: usize::try_from(le64(raw, 8)).unwrap(),
            sealed: flags & 1 == 1,
        })
    }

    /// The valid slot with the highest sequence: the segment's state.
    fn newest(self, bytes: &[u8]) -> Slot {
        self.offsets()
            .iter()
            .filter_map(|&o| self.slot_at(bytes, o))
            .max_by_key(|s| s.sequence)
            .unwrap_or_else(|| panic!("no valid commit slot in {:02x?}", &bytes[..HEADER_LEN]))
    }
}

/// Segment `i` (from 0) of the store at `dir`, which must be sealed: its path, its bytes
/// and its newest slot's layout and contents.
fn sealed_segment(dir: &Path, i: usize) -> (PathBuf, Vec<u8>, SlotLayout, Slot) {
    let segs = segment_paths(dir);
    let path = segs[i].clone();
    let bytes = std::fs::read(&path).unwrap();
    let (layout, slot) = newest_slot(&bytes);
    assert!(slot.sealed, "segment {} of {} is sealed", i + 1, segs.len());
    (path, bytes, layout, slot)
}

/// The layout and newest slot of an intact segment.
fn newest_slot(intact: &[u8]) -> (SlotLayout, Slot) {
    let layout = SlotLayout::of(intact);
    (layout, layout.newest(intact))
}

/// One frame of a segment: its byte range and, for an event frame, the event's id.
#[derive(Debug, Clone, Copy)]
struct FrameInfo {
    start: usize,
    end: usize,
    event_id: Option<u64>,
}

/// Walks the frames of an intact segment: `u32` body length, `u32` CRC, body whose first
/// byte's low two bits are the kind (1: event, 2: string definition). Event ids within a
/// segment are dense from its base id (header offset 24).
fn walk_frames(bytes: &[u8], committed_len: usize) -> Vec<FrameInfo> {
    let mut next_id = le64(bytes, 24);
    let mut at = HEADER_LEN;
    let mut out = Vec::new();
    while at < committed_len {
        let body_len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        assert!(body_len > 0, "frame at {at} has length 0");
        let end = at + 8 + body_len;
        let event_id = (bytes[at + 8] & 0b11 == 1).then(|| {
            next_id += 1;
            next_id - 1
        });
        out.push(FrameInfo {
            start: at,
            end,
            event_id,
        });
        at = end;
    }
    assert_eq!(
        at, committed_len,
        "frames end exactly at the committed length"
    );
    out
}

/// Appends the deterministic stream until the store has at least `segments` segments;
/// returns the number of events.
fn build_store(dir: &Path, segment_len: u64, segments: usize) -> u64 {
    let store = Store::open(dir, config(segment_len)).unwrap();
    let mut n = 0;
    while store.stats().unwrap().segments < segments {
        for _ in 0..50 {
            n += 1;
            store.append(det_event(n)).unwrap();
        }
        store.flush().unwrap();
    }
    store.close().unwrap();
    n
}

// ---------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------

/// The crash child's configuration: small segments so that it rolls often, and small
/// batches so that the writer also writes while the child is still queueing.
fn crash_config() -> Config {
    let mut c = config(128 << 10);
    c.batch_events = 64;
    c
}

/// Events the crash child appends before flushing, starting at event `i`.
fn flush_every(i: u64) -> u64 {
    1 + mix(i ^ 0x00F1_u64) % FLUSH_EVERY_MAX
}

/// Child of `sigkill_while_appending_loses_no_flushed_event`: continues the deterministic
/// stream after the store's last event, appending a few events at a time and printing
/// `appended <id>` once they are queued and `flushed <id>` once `flush` returned, until it
/// is killed.
#[test]
fn child_appender() {
    let Some(dir) = std::env::var_os(CRASH_CHILD_ENV) else {
        return;
    };
    let mut cfg = crash_config();
    if std::env::var_os(CRASH_SYNC_ENV).is_some() {
        // Every publication synced: the writer then also writes index images as it goes.
        cfg.durability = selflog::Durability::Sync;
    }
    let store = Store::open(&dir, cfg).expect("child opens the store");
    let start = store.stats().unwrap().last_id.map_or(1, |id| id.0 + 1);
    say(&format!("start {start}"));
    let mut i = start;
    while i < start + CHILD_EVENTS_MAX {
        let k = flush_every(i);
        if mix(i).is_multiple_of(3) {
            let got = store
                .append_batch((i..i + k).map(det_event).collect())
                .unwrap();
            for (j, a) in (i..).zip(&got) {
                assert_eq!(a.id(), EventId(j));
            }
        } else {
            for j in i..i + k {
                assert_eq!(store.append(det_event(j)).unwrap().id(), EventId(j));
            }
        }
        // Queued, not acknowledged: the parent may kill now, while the writer writes.
        say(&format!("appended {}", i + k - 1));
        store.flush().unwrap();
        i += k;
        say(&format!("flushed {}", i - 1));
    }
    store.close().unwrap();
}

/// Child of `reader_process_sees_committed_prefix_while_writer_runs`: reports what a
/// read-only open sees, then scans again and again (alternately with its long-lived store
/// and a fresh one), checking every event, until the parent writes `done` on stdin; the
/// scan after that is the last.
#[test]
fn child_reader() {
    let Some(dir) = std::env::var_os(READER_CHILD_ENV) else {
        return;
    };
    let done = Arc::new(AtomicBool::new(false));
    {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                if line.map_or(true, |l| l.trim() == "done") {
                    break;
                }
            }
            // "done", or the parent went away.
            done.store(true, Ordering::SeqCst);
        });
    }
    let ro = Store::open_read_only(&dir).unwrap();
    let n = scan_expecting(&ro, &det_event, "reader child, first scan");
    let last = ro.stats().unwrap().last_id.map_or(0, |id| id.0);
    say(&format!("initial {n} {last}"));
    let mut prev = n;
    let mut scans = 0u64;
    loop {
        let finishing = done.load(Ordering::SeqCst);
        let n = if scans.is_multiple_of(2) {
            scan_expecting(&ro, &det_event, "reader child")
        } else {
            let fresh = Store::open_read_only(&dir).unwrap();
            scan_expecting(&fresh, &det_event, "reader child, fresh open")
        };
        assert!(
            n >= prev,
            "reader child: {n} events after {prev}: the committed prefix shrank"
        );
        if n > 0 {
            let ev = ro.get(EventId(n)).unwrap().expect("the last scanned event");
            assert_is(&ev, n, &det_event(n), "reader child, get");
        }
        prev = n;
        scans += 1;
        say(&format!("scan {n}"));
        if finishing {
            say(&format!("final {n} {scans}"));
            break;
        }
    }
}

/// Child of `second_writer_process_is_refused`: tries to open the store for writing and
/// reports `refused <pid> <message>` (then what a read-only open sees) or `opened <id>`
/// after appending one event.
#[test]
fn child_second_writer() {
    let Some(dir) = std::env::var_os(LOCK_CHILD_ENV) else {
        return;
    };
    match Store::open(&dir, config(64 << 10)) {
        Err(e) => {
            let pid = match &e {
                Error::Locked { pid, .. } => pid.to_string(),
                _ => "not-locked".to_owned(),
            };
            say(&format!("refused {pid} {e}"));
            let ro = Store::open_read_only(&dir).unwrap();
            let n = scan_expecting(&ro, &det_event, "second writer child");
            say(&format!("read-only {n}"));
        }
        Ok(store) => {
            let next = store.stats().unwrap().last_id.map_or(1, |id| id.0 + 1);
            let id = store.append(det_event(next)).unwrap().id();
            store.flush().unwrap();
            store.close().unwrap();
            say(&format!("opened {id}"));
        }
    }
}

// ---------------------------------------------------------------------------------------
// 1. Torn tails and torn commit slots
// ---------------------------------------------------------------------------------------

/// Checks a store that crashed after `n` acknowledged events with `torn` bytes of an
/// unpublished batch after them: it reads and verifies as `n` events, a writer opens it,
/// reports and clears the torn bytes, and continues at id `n + 1`.
fn check_recovers_to(dir: &Path, n: u64, torn: u64, cfg: &Config, ctx: &str) {
    let report = verify(dir).unwrap();
    assert!(
        report.problems.is_empty(),
        "{ctx}: verify found {:?}",
        report.problems
    );
    assert_eq!(report.torn_tail_bytes, torn, "{ctx}: verify's torn tail");
    assert_eq!(report.events, n, "{ctx}: verify's event count");
    {
        let ro = Store::open_read_only(dir).unwrap();
        assert_eq!(
            scan_expecting(&ro, &det_event, ctx),
            n,
            "{ctx}: read-only open"
        );
    }
    let after = Event::new(
        Timestamp(T0 + 5_000_000_000),
        "after",
        None,
        "recovery",
        Some("[1]"),
    )
    .unwrap();
    let expected = |id: u64| {
        if id <= n {
            det_event(id)
        } else {
            after.clone()
        }
    };
    {
        let store = Store::open(dir, cfg.clone()).unwrap_or_else(|e| panic!("{ctx}: open: {e}"));
        assert_eq!(
            store.open_report().torn_tail_bytes,
            torn,
            "{ctx}: open report"
        );
        assert_eq!(store.open_report().tail_events, n, "{ctx}: open report");
        assert_eq!(
            scan_expecting(&store, &expected, ctx),
            n,
            "{ctx}: after recovery"
        );
        assert_eq!(
            store.append(after.clone()).unwrap().id(),
            EventId(n + 1),
            "{ctx}: next id"
        );
        store.flush().unwrap();
        store.close().unwrap();
    }
    let report = verify(dir).unwrap();
    assert!(
        report.problems.is_empty(),
        "{ctx}: verify after recovery found {:?}",
        report.problems
    );
    assert_eq!(
        report.torn_tail_bytes, 0,
        "{ctx}: the torn tail was not cleared"
    );
    assert_eq!(report.events, n + 1, "{ctx}");
    let store = Store::open(dir, cfg.clone()).unwrap();
    assert_eq!(store.open_report().torn_tail_bytes, 0, "{ctx}: second open");
    let got = store
        .get(EventId(n + 1))
        .unwrap()
        .expect("the event appended after recovery");
    assert_is(&got, n + 1, &after, ctx);
    assert_eq!(
        scan_expecting(&store, &expected, ctx),
        n + 1,
        "{ctx}: after reopen"
    );
}

/// A crash while a batch is half written, or while its commit slot is half written, loses
/// exactly that unacknowledged batch: the store opens with the flushed events and goes on.
#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, step by step")]
fn torn_tail_at_every_offset_of_the_last_frame() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(64 << 10);
    let n: u64 = 40;
    // Store A: n events, published.
    let a = tmp.path().join("a");
    {
        let store = Store::open(&a, cfg.clone()).unwrap();
        for i in 1..=n {
            assert_eq!(store.append(det_event(i)).unwrap().id(), EventId(i));
            if i % 8 == 0 {
                store.flush().unwrap();
            }
        }
        store.close().unwrap();
    }
    // Store B: A plus one more published batch, one event whose new strings put three
    // string definitions before its event frame.
    let b = tmp.path().join("b");
    copy_store(&a, &b);
    let last = Event::new(
        Timestamp(T0 + 999_000_000),
        "torn_type",
        Some("torn action"),
        "torn source",
        Some(&format!(r#"{{"last":true,"pad":"{}"}}"#, letters(7, 200))),
    )
    .unwrap();
    {
        let store = Store::open(&b, cfg.clone()).unwrap();
        assert_eq!(store.append(last.clone()).unwrap().id(), EventId(n + 1));
        store.flush().unwrap();
        store.close().unwrap();
    }
    let seg = "events-00000001.seg";
    assert_eq!(segment_paths(&a).len(), 1);
    assert_eq!(segment_paths(&b).len(), 1);
    let a_bytes = std::fs::read(a.join(seg)).unwrap();
    let b_bytes = std::fs::read(b.join(seg)).unwrap();
    assert_eq!(a_bytes.len(), b_bytes.len());
    let (layout, sa) = newest_slot(&a_bytes);
    let sb = layout.newest(&b_bytes);
    assert!(!sa.sealed && !sb.sealed);
    let (ca, cb) = (sa.committed_len, sb.committed_len);
    assert!(cb > ca);
    assert_eq!(
        a_bytes[..SLOT_A],
        b_bytes[..SLOT_A],
        "the fixed header is written once"
    );
    assert_eq!(
        a_bytes[HEADER_LEN..ca],
        b_bytes[HEADER_LEN..ca],
        "committed frames are never rewritten"
    );
    assert!(
        a_bytes[ca..].iter().all(|&x| x == 0),
        "A is zero after its committed end"
    );
    let tail_len = |bytes: &[u8]| {
        bytes
            .iter()
            .rposition(|&x| x != 0)
            .map_or(0, |p| p as u64 + 1)
    };
    let write_store = |name: &str, file: &[u8]| -> PathBuf {
        let dir = tmp.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::copy(a.join(META_FILE), dir.join(META_FILE)).unwrap();
        std::fs::write(dir.join(seg), file).unwrap();
        dir
    };

    // Crash after writing k bytes of the batch, before publishing it: A's header, and the
    // first k bytes of B's new frames after A's committed end.
    for k in 0..=cb - ca {
        let mut file = a_bytes.clone();
        file[ca..ca + k].copy_from_slice(&b_bytes[ca..ca + k]);
        let dir = write_store(&format!("torn-{k}"), &file);
        let torn = tail_len(&b_bytes[ca..ca + k]);
        assert!(k == 0 || torn > 0);
        let ctx = format!("{k} of {} bytes of the last batch written", cb - ca);
        check_recovers_to(&dir, n, torn, &cfg, &ctx);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // Crash while the batch's commit slot is written. The publication is B's slot for the
    // batch, renumbered to follow A's newest slot, so it goes to A's other slot.
    let other = layout
        .offsets()
        .into_iter()
        .find(|&o| o != sa.offset)
        .unwrap();
    let mut new_slot = b_bytes[sb.offset..sb.offset + layout.len].to_vec();
    new_slot[..8].copy_from_slice(&(sa.sequence + 1).to_le_bytes());
    let crc = crc32fast::hash(&new_slot[..layout.len - 4]);
    new_slot[layout.len - 4..].copy_from_slice(&crc.to_le_bytes());
    let mut published = a_bytes.clone();
    published[ca..cb].copy_from_slice(&b_bytes[ca..cb]);
    published[other..other + layout.len].copy_from_slice(&new_slot);
    assert_eq!(layout.newest(&published).committed_len, cb);
    {
        // Sanity: complete, that slot publishes the batch.
        let dir = write_store("published", &published);
        let ro = Store::open_read_only(&dir).unwrap();
        let expected = |id: u64| if id <= n { det_event(id) } else { last.clone() };
        assert_eq!(scan_expecting(&ro, &expected, "batch published"), n + 1);
        drop(ro);
        std::fs::remove_dir_all(&dir).unwrap();
    }
    // Every prefix of the slot written over the old slot, then single flipped bytes in it:
    // the open falls back to A's slot, and the whole batch is a torn tail.
    let torn = tail_len(&published[ca..]);
    let mut cases = Vec::new();
    for j in 1..layout.len {
        let mut file = published.clone();
        file[other + j..other + layout.len]
            .copy_from_slice(&a_bytes[other + j..other + layout.len]);
        cases.push((format!("first {j} bytes of the commit slot written"), file));
    }
    for j in 0..layout.len {
        let mut file = published.clone();
        file[other + j] ^= 0x10;
        cases.push((format!("byte {j} of the newest commit slot flipped"), file));
    }
    let mut slot_cases = 0;
    for (ctx, file) in cases {
        if file[other..other + layout.len] == new_slot[..] {
            continue; // the old slot's last bytes happened to equal the new ones: not torn
        }
        assert_eq!(layout.newest(&file).offset, sa.offset, "{ctx}");
        let dir = write_store("torn-slot", &file);
        check_recovers_to(&dir, n, torn, &cfg, &ctx);
        std::fs::remove_dir_all(&dir).unwrap();
        slot_cases += 1;
    }
    eprintln!(
        "torn writes recovered: {} batch prefixes, {slot_cases} torn or flipped commit slots",
        cb - ca + 1
    );
}

// ---------------------------------------------------------------------------------------
// 2. Damage in sealed segments
// ---------------------------------------------------------------------------------------

/// Flips byte `off` of `path` when `on`, restores it from `pristine` otherwise.
fn set_flip(path: &Path, pristine: &[u8], off: usize, on: bool) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    let b = if on {
        pristine[off] ^ 0x5A
    } else {
        pristine[off]
    };
    file.write_all_at(&[b], off as u64).unwrap();
}

/// Opens the store read-only and checks that whatever it returns is right: the open, or
/// the start of the scan, may fail, naming `victim`; a scan yields correct events in order, and an error names
/// `victim`. Or, when the damage leaves `victim` unreadable as a whole (a header that fails
/// its checks, a footer reaching past the file's end: issue 20), the open's warnings name
/// it and the scan yields exactly every event but its own (`victim_ids`, first and last),
/// without an error. Returns how many events the scan yielded before it ended.
fn read_without_wrong_data(
    dir: &Path,
    victim: &Path,
    victim_ids: (u64, u64),
    expected: &[Event],
    ctx: &str,
) -> u64 {
    let ro = match Store::open_read_only(dir) {
        Ok(ro) => ro,
        Err(Error::Corrupt { path, .. }) if path == victim => return 0,
        Err(e) => panic!("{ctx}: read-only open failed with {e}"),
    };
    let skipped = ro
        .warnings()
        .iter()
        .any(|w| w.path == victim && w.what.contains("is unreadable"));
    // A sealed segment is read when a read needs it (a read-only open defers its footer):
    // the scan's start may then report what the open used to.
    let scan = match ro.scan() {
        Ok(scan) => scan,
        Err(Error::Corrupt { path, .. }) if path == victim => return 0,
        Err(e) => panic!("{ctx}: scan failed with {e}"),
    };
    let mut n = 0;
    let mut id = 0;
    for r in scan {
        match r {
            Ok(ev) => {
                n += 1;
                id += 1;
                if skipped && id == victim_ids.0 {
                    id = victim_ids.1 + 1;
                }
                assert_is(&ev, id, &expected[usize::try_from(id - 1).unwrap()], ctx);
            }
            Err(Error::Corrupt { path, .. }) if path == victim && !skipped => break,
            Err(e) => panic!("{ctx}: scan failed with {e}"),
        }
    }
    if skipped {
        assert_eq!(
            n,
            expected.len() as u64 - (victim_ids.1 + 1 - victim_ids.0),
            "{ctx}: every event outside the skipped file is read"
        );
    }
    n
}

/// Damage in a sealed segment is reported by `verify` with the file and the damaged frame,
/// reads never return altered events, and the other segments stay readable.
#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, step by step")]
fn flipped_byte_in_sealed_segment_is_reported_by_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let total = build_store(&dir, 64 << 10, 4);
    let expected: Vec<Event> = (1..=total).map(det_event).collect();
    let want = |id: u64| &expected[usize::try_from(id - 1).unwrap()];
    let (victim, pristine, layout, slot) = sealed_segment(&dir, 1);
    let base_id = le64(&pristine, 24);
    let frames = walk_frames(&pristine, slot.committed_len);
    let last_id = frames.iter().rev().find_map(|f| f.event_id).unwrap();
    assert!(
        pristine.len() > slot.committed_len,
        "a footer follows the frames"
    );
    let elsewhere = [1, base_id - 1, last_id + 1, total];

    // Frames: every 97th byte.
    let mut flips = 0;
    for off in (HEADER_LEN..slot.committed_len).step_by(97) {
        let frame = *frames
            .iter()
            .find(|f| f.start <= off && off < f.end)
            .unwrap();
        let in_frame = |o: u64| (frame.start as u64..frame.end as u64).contains(&o);
        let ctx = format!(
            "byte {off} of {} flipped, in the frame at {}..{}",
            victim.display(),
            frame.start,
            frame.end
        );
        set_flip(&victim, &pristine, off, true);
        flips += 1;

        let report = verify(&dir).unwrap();
        assert_eq!(report.problems.len(), 1, "{ctx}: {:?}", report.problems);
        let p = &report.problems[0];
        assert_eq!(p.path, victim, "{ctx}: {p:?}");
        assert!(
            in_frame(p.offset),
            "{ctx}: the problem is not in the damaged frame: {p:?}"
        );

        let ro =
            Store::open_read_only(&dir).unwrap_or_else(|e| panic!("{ctx}: read-only open: {e}"));
        // A scan yields every event before the damaged frame, then the error, then stops.
        let before = base_id - 1
            + frames
                .iter()
                .filter(|f| f.end <= frame.start && f.event_id.is_some())
                .count() as u64;
        let mut scan = ro.scan().unwrap();
        for id in 1..=before {
            match scan.next() {
                Some(Ok(ev)) => assert_is(&ev, id, want(id), &ctx),
                other => panic!("{ctx}: event {id} before the damage: {other:?}"),
            }
        }
        match scan.next() {
            Some(Err(Error::Corrupt { path, offset, .. })) => {
                assert_eq!(path, victim, "{ctx}");
                assert!(
                    in_frame(offset),
                    "{ctx}: scan's error at {offset} is not in the damaged frame"
                );
            }
            other => panic!("{ctx}: expected a Corrupt error after event {before}, got {other:?}"),
        }
        assert!(
            scan.next().is_none(),
            "{ctx}: the scan goes on after an error"
        );
        // Lookups: other segments unaffected; in this one, the right event or an error.
        for id in elsewhere {
            let ev = ro
                .get(EventId(id))
                .unwrap_or_else(|e| panic!("{ctx}: get({id}): {e}"));
            assert_is(&ev.expect("present"), id, want(id), &ctx);
        }
        // The ids around the damage (a block holds at most 32 events) and a sample of the rest.
        let near = frames[frames.iter().position(|f| f.start == frame.start).unwrap()..]
            .iter()
            .find_map(|f| f.event_id)
            .unwrap_or(last_id);
        let sample = (base_id..=last_id).filter(|&id| id.abs_diff(near) <= 40 || id % 16 == 0);
        for id in sample {
            match ro.get(EventId(id)) {
                Ok(Some(ev)) => {
                    assert_ne!(
                        Some(id),
                        frame.event_id,
                        "{ctx}: the damaged event was returned"
                    );
                    assert_is(&ev, id, want(id), &ctx);
                }
                Err(Error::Corrupt { path, .. }) if path == victim => {}
                other => panic!("{ctx}: get({id}) gave {other:?}"),
            }
        }
        drop(ro);
        set_flip(&victim, &pristine, off, false);
    }
    assert!(flips > 100, "{flips} flips");

    // Footer: every third byte.
    let mut footer_flips = 0;
    for off in (slot.committed_len..pristine.len()).step_by(3) {
        let ctx = format!("footer byte {off} of {} flipped", victim.display());
        set_flip(&victim, &pristine, off, true);
        footer_flips += 1;
        let report = verify(&dir).unwrap();
        assert_eq!(report.problems.len(), 1, "{ctx}: {:?}", report.problems);
        let p = &report.problems[0];
        assert_eq!(p.path, victim, "{ctx}: {p:?}");
        assert!(
            (slot.committed_len as u64..pristine.len() as u64).contains(&p.offset),
            "{ctx}: the problem is not in the footer: {p:?}"
        );
        read_without_wrong_data(&dir, &victim, (base_id, last_id), &expected, &ctx);
        set_flip(&victim, &pristine, off, false);
    }

    // Fixed header (magic, version, ids, lengths and their checksum): every byte.
    for off in 0..64 {
        let ctx = format!("header byte {off} of {} flipped", victim.display());
        set_flip(&victim, &pristine, off, true);
        let report = verify(&dir).unwrap();
        assert_eq!(report.problems.len(), 1, "{ctx}: {:?}", report.problems);
        let p = &report.problems[0];
        assert_eq!(p.path, victim, "{ctx}: {p:?}");
        assert!(p.offset < HEADER_LEN as u64, "{ctx}: {p:?}");
        read_without_wrong_data(&dir, &victim, (base_id, last_id), &expected, &ctx);
        set_flip(&victim, &pristine, off, false);
    }

    // The superseded commit slot and the unused end of the header carry nothing a reader
    // needs: damage there must not change what is read.
    let [a, b] = layout.offsets();
    let older = if slot.offset == a { b } else { a };
    let mut harmless_flips = 0;
    for off in (older..older + layout.len).chain(b + layout.len..HEADER_LEN) {
        let ctx = format!("header byte {off} of {} flipped", victim.display());
        set_flip(&victim, &pristine, off, true);
        harmless_flips += 1;
        let ro = Store::open_read_only(&dir).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert_eq!(
            scan_expecting(&ro, &|id| want(id).clone(), &ctx),
            total,
            "{ctx}"
        );
        drop(ro);
        set_flip(&victim, &pristine, off, false);
    }

    let report = verify(&dir).unwrap();
    assert!(
        report.problems.is_empty(),
        "restored: {:?}",
        report.problems
    );
    assert_eq!(report.events, total);
    eprintln!(
        "flipped bytes of a sealed segment: {flips} in frames, {footer_flips} in the footer, \
         64 in the fixed header, {harmless_flips} in unused header bytes"
    );
}

/// `verify` is what a user runs when `Store::open` refuses a store (the open's error says
/// so); damage that makes the open refuse must show up in its report.
#[test]
fn damaged_seal_record_of_a_sealed_segment_is_reported_by_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let total = build_store(&dir, 64 << 10, 3);
    let (victim, pristine, _, slot) = sealed_segment(&dir, 0);
    // One flipped bit in the sealed commit slot's committed length; its CRC catches it.
    set_flip(&victim, &pristine, slot.offset + 8, true);
    let open_error = Store::open(&dir, config(64 << 10))
        .err()
        .map(|e| e.to_string());
    // The frames and the footer are intact, so readers still read everything...
    let ro = Store::open_read_only(&dir).unwrap();
    assert_eq!(
        scan_expecting(&ro, &det_event, "seal record damaged"),
        total
    );
    drop(ro);
    let report = verify(&dir).unwrap();
    // ...but the segment is no longer sealed in the eyes of the writer's open.
    assert!(
        open_error.is_some(),
        "Store::open accepted a non-last segment without a valid seal record"
    );
    assert!(
        report.problems.iter().any(|p| p.path == victim),
        "Store::open refuses the store ({}), yet verify reports no problem in {}: {report:?}",
        open_error.unwrap_or_default(),
        victim.display()
    );
}

// ---------------------------------------------------------------------------------------
// 3. Writer processes killed with SIGKILL
// ---------------------------------------------------------------------------------------

/// What the crash child has reported so far.
#[derive(Debug, Default)]
struct CrashProgress {
    started: bool,
    /// Last id acknowledged by a `flush` (or stored before the child started).
    flushed: u64,
    /// Last id queued.
    appended: u64,
}

impl CrashProgress {
    /// Takes one line of the crash child's output; returns its kind (`start`, `appended`
    /// or `flushed`) if it is a protocol line.
    fn take(&mut self, line: &str, stored: u64, ctx: &str) -> Option<&'static str> {
        let line = said(line)?;
        let (kind, id) = line.split_once(' ')?;
        let id: u64 = id.parse().unwrap();
        match kind {
            "start" => {
                assert_eq!(
                    id,
                    stored + 1,
                    "{ctx}: the child resumes after the last stored event"
                );
                self.started = true;
                Some("start")
            }
            "appended" => {
                assert!(
                    self.started && id > self.appended.max(self.flushed),
                    "{ctx}: {line}"
                );
                self.appended = id;
                Some("appended")
            }
            "flushed" => {
                assert!(
                    self.started && id == self.appended,
                    "{ctx}: {line} after {self:?}"
                );
                self.flushed = id;
                Some("flushed")
            }
            _ => None,
        }
    }
}

/// Whenever a writer process is killed, every event it saw flushed is still there, once and
/// unchanged, ids stay dense, nothing unappended appears, and the store verifies clean.
#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, step by step")]
fn sigkill_while_appending_loses_no_flushed_event() {
    let iters = u32::try_from(crash_iters(50)).expect("SELFLOG_CRASH_ITERS");
    let seed = crash_seed();
    eprintln!("sigkill test: {iters} iterations, SELFLOG_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let mut dir = PathBuf::new();
    let mut stored = 0u64;
    let mut killed = 0;
    // Index images seen after earlier kills, by file name: older copies to put back.
    let mut saved_images: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for iter in 0..iters {
        if iter % ITERS_PER_STORE == 0 {
            if iter > 0 {
                finish_crashed_store(&dir, stored, seed);
            }
            dir = tmp.path().join(format!("s{}", iter / ITERS_PER_STORE));
            Store::open(&dir, crash_config()).unwrap().close().unwrap();
            stored = 0;
        }
        // Sometimes kill at once (while the child starts or recovers); otherwise after a
        // number of acknowledged flushes (the writer is then idle), or of batches queued
        // (the writer is then writing them).
        let kill_on = if rng.below(2) == 0 {
            "flushed"
        } else {
            "appended"
        };
        let kill_after = if rng.below(8) == 0 {
            0
        } else {
            1 + rng.below(40)
        };
        let ctx = format!(
            "SELFLOG_CRASH_SEED={seed}, iteration {iter}, kill after {kill_after} `{kill_on}` lines"
        );
        let mut cmd = child_command("child_appender", CRASH_CHILD_ENV, &dir);
        if rng.below(2) == 0 {
            cmd.env(CRASH_SYNC_ENV, "1");
        }
        let (mut child, mut out) = Reaper::spawn_piped(cmd);
        let mut progress = CrashProgress {
            flushed: stored,
            appended: stored,
            ..CrashProgress::default()
        };
        let mut lines_seen = 0;
        let mut line = String::new();
        while lines_seen < kill_after {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                let _ = child.0.wait();
                panic!("{ctx}: the child ended by itself: {}", child.stderr_text());
            }
            lines_seen += u64::from(progress.take(&line, stored, &ctx) == Some(kill_on));
        }
        child.0.kill().unwrap();
        let exit = child.0.wait().unwrap();
        // What the child printed before it died is acknowledged too.
        loop {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            progress.take(&line, stored, &ctx);
        }
        if exit.signal() == Some(9) {
            killed += 1;
        } else {
            assert!(
                exit.success(),
                "{ctx}: child failed: {exit}: {}",
                child.stderr_text()
            );
        }

        // The index image beside the active segment, left as the kill left it, or damaged,
        // cut short, an older copy of it, or another segment's: every open must still
        // answer exactly what the frames hold (a bad image only costs a longer scan).
        let damage = damage_index_image(&dir, &mut rng, &mut saved_images);
        let ctx = format!("{ctx}, index image {damage}");
        let report = verify(&dir).unwrap();
        assert!(
            report.problems.is_empty(),
            "{ctx}: verify found {:?}",
            report.problems
        );
        let ro =
            Store::open_read_only(&dir).unwrap_or_else(|e| panic!("{ctx}: read-only open: {e}"));
        // Events stored before this iteration were compared in earlier ones; `verify` above
        // checked every frame's CRC, and this scan checks that all ids are there. After the
        // image was tampered with, every event is compared, through the index it built.
        let compare_from = if damage == "as left" {
            stored.saturating_sub(FLUSH_EVERY_MAX) + 1
        } else {
            1
        };
        if damage != "as left" {
            check_index_answers(&ro, &ctx);
        }
        let count = scan_expecting_from(&ro, &det_event, compare_from, &ctx);
        let acked = progress.flushed;
        assert!(
            count >= acked,
            "{ctx}: flushed up to {acked}, only {count} stored"
        );
        // The child queues no further than the batch it last reported queued, or the next
        // one (its size is deterministic) after its last flush.
        let most = if !progress.started {
            stored
        } else if progress.appended > progress.flushed {
            progress.appended
        } else {
            acked + flush_every(acked + 1)
        };
        assert!(
            count <= most,
            "{ctx}: {count} events stored, at most {most} were appended"
        );
        let stats = ro.stats().unwrap();
        assert_eq!(stats.total_events, count, "{ctx}");
        assert_eq!(stats.last_id.map_or(0, |id| id.0), count, "{ctx}");
        assert_eq!(report.events, count, "{ctx}");
        eprintln!(
            "iteration {iter}: {count} events in {} segments, {} torn bytes (killed after {kill_after} `{kill_on}` lines; {progress:?}); index image {damage}",
            stats.segments, report.torn_tail_bytes
        );
        stored = count;
    }
    if iters > 0 {
        finish_crashed_store(&dir, stored, seed);
    }
    assert!(killed > 0 || iters == 0, "seed {seed}: no child was killed");
}

/// What the crash loop does to the active segment's index image after a kill, returning
/// what it did: nothing, a flipped byte, a cut, an older copy of the same segment's image,
/// an image of another segment (an earlier one of this store, or one of an earlier store)
/// put in its place, or removal. Saves the image as it was for later iterations.
fn damage_index_image(
    dir: &Path,
    rng: &mut Rng,
    saved: &mut Vec<(PathBuf, Vec<u8>)>,
) -> &'static str {
    let Some(active) = segment_paths(dir).pop() else {
        return "as left";
    };
    let path = active.with_extension("idx");
    let current = std::fs::read(&path).ok();
    let older = saved
        .iter()
        .rev()
        .find(|(p, b)| *p == path && Some(b) != current.as_ref())
        .map(|(_, b)| b.clone());
    let other = saved
        .iter()
        .rev()
        .find(|(p, _)| *p != path)
        .map(|(_, b)| b.clone());
    if let Some(b) = &current {
        saved.push((path.clone(), b.clone()));
        if saved.len() > 8 {
            saved.remove(0);
        }
    }
    match (rng.below(8), &current) {
        (0, Some(b)) if !b.is_empty() => {
            let mut b = b.clone();
            let at = usize::try_from(rng.below(b.len() as u64)).unwrap();
            b[at] ^= 1 << rng.below(8);
            std::fs::write(&path, b).unwrap();
            "with a flipped byte"
        }
        (1, Some(b)) => {
            let len = usize::try_from(rng.below(b.len() as u64)).unwrap();
            std::fs::write(&path, &b[..len]).unwrap();
            "cut short"
        }
        (2, _) if older.is_some() => {
            std::fs::write(&path, older.unwrap()).unwrap();
            "replaced by an older copy"
        }
        (3, _) if other.is_some() => {
            std::fs::write(&path, other.unwrap()).unwrap();
            "replaced by another segment's"
        }
        (4, Some(_)) => {
            std::fs::remove_file(&path).unwrap();
            "removed"
        }
        _ => "as left",
    }
}

/// Lookups and filtered queries through the index a read-only open built (from an image
/// or a scan) agree with a plain scan of every event.
fn check_index_answers(store: &Store, ctx: &str) {
    let all: Vec<StoredEvent> = store.scan().unwrap().map(Result::unwrap).collect();
    for e in all.iter().step_by(7) {
        let got = store.get(e.id).unwrap();
        assert_eq!(got.as_ref(), Some(e), "{ctx}: get {}", e.id.0);
    }
    for ty in ["clipboard", "ünïcødé ✓"] {
        let want: Vec<EventId> = all
            .iter()
            .filter(|e| e.event_type == ty)
            .map(|e| e.id)
            .collect();
        let mut got: Vec<EventId> = store
            .query()
            .event_type(ty)
            .run()
            .unwrap()
            .map(|e| e.unwrap().id)
            .collect();
        got.sort_unstable();
        assert_eq!(got, want, "{ctx}: events of type {ty}");
    }
    let stats = store.stats().unwrap();
    assert_eq!(stats.total_events, all.len() as u64, "{ctx}: stats");
}

/// A writer in this process recovers a store the crash children left with `stored` events,
/// continues the stream, and leaves the store sound.
fn finish_crashed_store(dir: &Path, stored: u64, seed: u64) {
    let store = Store::open(dir, crash_config()).unwrap();
    assert_eq!(
        store.append(det_event(stored + 1)).unwrap().id(),
        EventId(stored + 1),
        "seed {seed}"
    );
    store.flush().unwrap();
    assert_eq!(scan_expecting(&store, &det_event, "final"), stored + 1);
    store.close().unwrap();
    let report = verify(dir).unwrap();
    assert!(
        report.problems.is_empty(),
        "seed {seed}: {:?}",
        report.problems
    );
    assert_eq!(report.torn_tail_bytes, 0, "seed {seed}");
}

// ---------------------------------------------------------------------------------------
// 4. A reader process beside the writer
// ---------------------------------------------------------------------------------------

/// A reader in another process sees exactly the flushed prefix, and while the writer keeps
/// appending (and rolling segments) it never sees a partial, missing or altered event.
#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, step by step")]
fn reader_process_sees_committed_prefix_while_writer_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let store = Store::open(&dir, config(64 << 10)).unwrap();
    let first: u64 = 300;
    for i in 1..=first {
        store.append(det_event(i)).unwrap();
    }
    store.flush().unwrap();

    let mut child = Reaper(
        child_command("child_reader", READER_CHILD_ENV, &dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(msg) = said(&line) {
                if tx.send(msg.to_owned()).is_err() {
                    break;
                }
            }
        }
    });
    let next_line = |child: &mut Reaper| -> String {
        rx.recv().unwrap_or_else(|_| {
            let _ = child.0.wait();
            panic!("the reader child ended early: {}", child.stderr_text())
        })
    };
    let initial = loop {
        let line = next_line(&mut child);
        if let Some(rest) = line.strip_prefix("initial ") {
            break rest.to_owned();
        }
    };
    assert_eq!(
        initial,
        format!("{first} {first}"),
        "count and last id seen by the reader"
    );

    // Keep appending; every few rounds, wait for the reader to report a scan that includes
    // the last flush (a flush in this process is visible to a new scan in the other).
    let mut flushed = first;
    let mut seen = first;
    let mut waits = 0;
    for round in 0..60u64 {
        let k = 1 + mix(round) % 80;
        for i in flushed + 1..=flushed + k {
            assert_eq!(store.append(det_event(i)).unwrap().id(), EventId(i));
        }
        store.flush().unwrap();
        flushed += k;
        if round % 10 == 9 {
            waits += 1;
            loop {
                let line = next_line(&mut child);
                let Some(n) = line.strip_prefix("scan ") else {
                    continue;
                };
                let n: u64 = n.parse().unwrap();
                assert!(
                    n >= seen && n <= flushed,
                    "reader saw {n} events; before {seen}, flushed {flushed}"
                );
                seen = n;
                if n == flushed {
                    break;
                }
            }
        }
    }
    assert_eq!(waits, 6);
    let segments = store.stats().unwrap().segments;
    assert!(
        segments >= 5,
        "the writer rolled while the reader read: {segments} segments"
    );
    let mut stdin = child.0.stdin.take().unwrap();
    writeln!(stdin, "done").unwrap();
    drop(stdin);
    let mut last = None;
    while let Ok(line) = rx.recv() {
        if let Some(n) = line.strip_prefix("scan ") {
            let n: u64 = n.parse().unwrap();
            assert!(
                n >= seen && n <= flushed,
                "reader saw {n} events; before {seen}, flushed {flushed}"
            );
            seen = n;
        }
        if let Some(rest) = line.strip_prefix("final ") {
            last = Some(rest.to_owned());
        }
    }
    let status = child.0.wait().unwrap();
    assert!(
        status.success(),
        "reader child failed: {status}: {}",
        child.stderr_text()
    );
    let last = last.expect("the reader's final line");
    let (count, scans) = last.split_once(' ').unwrap();
    assert_eq!(
        count.parse::<u64>().unwrap(),
        flushed,
        "the scan after the last flush sees it all"
    );
    eprintln!("reader child: {scans} scans while {flushed} events were appended");
    store.close().unwrap();
}

// ---------------------------------------------------------------------------------------
// 5. A second writer process
// ---------------------------------------------------------------------------------------

/// Only one process writes a store: another writer process is refused with an error naming
/// the holder's pid (and can still read); once the holder closes, it may write.
#[test]
fn second_writer_process_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let store = Store::open(&dir, config(64 << 10)).unwrap();
    for i in 1..=3 {
        store.append(det_event(i)).unwrap();
    }
    store.flush().unwrap();
    let out = child_command("child_second_writer", LOCK_CHILD_ENV, &dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {text}\n{stderr}");
    let pid = std::process::id();
    let refused = text
        .lines()
        .filter_map(said)
        .find_map(|l| l.strip_prefix("refused "))
        .unwrap_or_else(|| panic!("the second writer was not refused: {text}\n{stderr}"));
    let (got_pid, message) = refused.split_once(' ').unwrap();
    assert_eq!(
        got_pid,
        pid.to_string(),
        "Error::Locked carries the holder's pid: {refused}"
    );
    assert!(
        message.contains(&format!("process {pid}")),
        "the message names the holder: {message}"
    );
    assert!(
        message.contains(&dir.display().to_string()),
        "the message names the store: {message}"
    );
    assert!(
        text.lines().filter_map(said).any(|l| l == "read-only 3"),
        "the refused process can read: {text}"
    );

    // The holder is unaffected, and once it is gone another process may write.
    assert_eq!(store.append(det_event(4)).unwrap().id(), EventId(4));
    store.close().unwrap();
    let out = child_command("child_second_writer", LOCK_CHILD_ENV, &dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.lines().filter_map(said).any(|l| l == "opened 5"),
        "after close: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ro = Store::open_read_only(&dir).unwrap();
    assert_eq!(
        scan_expecting(&ro, &det_event, "after the second writer"),
        5
    );
}

// ---------------------------------------------------------------------------------------
// 6. Garbage after the committed end
// ---------------------------------------------------------------------------------------

/// Bytes a killed writer left past the committed end are neither damage nor events, and
/// the next writer clears them without shrinking the file.
#[test]
fn garbage_after_committed_end_is_not_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let cfg = config(64 << 10);
    let n = build_store(&dir, 64 << 10, 2);
    let active = segment_paths(&dir).pop().unwrap();
    let bytes = std::fs::read(&active).unwrap();
    let (_, slot) = newest_slot(&bytes);
    assert!(!slot.sealed);
    let (c, len) = (slot.committed_len, bytes.len());
    assert_eq!(
        len as u64, cfg.segment_len,
        "the active segment is preallocated"
    );
    assert!(c + 1000 < len - 100);
    // Non-zero garbage right after the committed end and at the very end of the file.
    let mut rng = Rng(0x05e1_f109);
    let mut garbage = |n: usize| {
        (0..n)
            .map(|_| u8::try_from(rng.below(255)).unwrap() + 1)
            .collect::<Vec<u8>>()
    };
    let file = OpenOptions::new().write(true).open(&active).unwrap();
    file.write_all_at(&garbage(1000), c as u64).unwrap();
    file.write_all_at(&garbage(100), (len - 100) as u64)
        .unwrap();
    drop(file);
    let damaged = std::fs::read(&active).unwrap();
    let torn = (len - c) as u64;

    let report = verify(&dir).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.torn_tail_bytes, torn);
    assert_eq!(report.events, n);
    {
        let ro = Store::open_read_only(&dir).unwrap();
        assert_eq!(scan_expecting(&ro, &det_event, "garbage, read-only"), n);
        assert_eq!(ro.stats().unwrap().total_events, n);
        assert_eq!(ro.get(EventId(n + 1)).unwrap(), None);
    }
    assert!(
        std::fs::read(&active).unwrap() == damaged,
        "verify and readers modify nothing"
    );
    // A killed writer leaves no clean index image. A clean close does, and the next open
    // then reads nothing past the committed end, where that writer wrote nothing: the
    // garbage of this test has to be what a kill left.
    std::fs::remove_file(active.with_extension("idx")).unwrap();

    {
        let store = Store::open(&dir, cfg.clone()).unwrap();
        assert_eq!(store.open_report().torn_tail_bytes, torn);
        assert_eq!(
            std::fs::metadata(&active).unwrap().len(),
            len as u64,
            "recovery does not shrink"
        );
        let now = std::fs::read(&active).unwrap();
        assert_eq!(now[..c], bytes[..c], "recovery keeps the committed bytes");
        assert!(
            now[c..].iter().all(|&x| x == 0),
            "recovery zeroes the torn tail"
        );
        assert_eq!(scan_expecting(&store, &det_event, "garbage, writer"), n);
        assert_eq!(store.append(det_event(n + 1)).unwrap().id(), EventId(n + 1));
        store.flush().unwrap();
        store.close().unwrap();
    }
    assert_eq!(std::fs::metadata(&active).unwrap().len(), len as u64);
    let report = verify(&dir).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.torn_tail_bytes, 0);
    let store = Store::open(&dir, cfg).unwrap();
    assert_eq!(store.open_report().torn_tail_bytes, 0);
    assert_eq!(
        scan_expecting(&store, &det_event, "garbage, reopened"),
        n + 1
    );
}

/// A damaged frame that claims another id (its checksum then fails) never makes a lookup
/// answer "no such event" for an id the segment holds: whether the frame claims an id
/// before or after its own, and whether the lookup starts at a checkpoint or walks its
/// block, `get` of that id reports the damage, and `get` of the others in the block is
/// right or reports it.
#[test]
fn a_frame_lying_about_its_id_is_reported_by_get() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let total = build_store(&dir, 64 << 10, 3);
    let (victim, pristine, _, slot) = sealed_segment(&dir, 1);
    let base_id = le64(&pristine, 24);
    let frames = walk_frames(&pristine, slot.committed_len);
    let mut tried = 0;
    for f in frames.iter().filter(|f| f.event_id.is_some()).take(70) {
        let id = f.event_id.unwrap();
        let delta = pristine[f.start + 9];
        if delta == 0 || delta >= 0x7f {
            continue; // a one-byte id delta with room on both sides
        }
        for claimed in [delta - 1, delta + 1] {
            let file = OpenOptions::new().write(true).open(&victim).unwrap();
            file.write_all_at(&[claimed], (f.start + 9) as u64).unwrap();
            let ro = Store::open_read_only(&dir).unwrap();
            let ctx = format!("event {id} claiming id {}", base_id + u64::from(claimed));
            match ro.get(EventId(id)) {
                Err(Error::Corrupt { path, offset, .. }) => {
                    assert_eq!(path, victim, "{ctx}");
                    assert!(
                        (f.start..f.end).contains(&(offset as usize)),
                        "{ctx}: at {offset}"
                    );
                }
                other => panic!("{ctx}: get gave {other:?}"),
            }
            for other in (id.saturating_sub(4)..=id + 4).filter(|&o| o != id && o <= total) {
                match ro.get(EventId(other)) {
                    Ok(Some(ev)) => assert_is(&ev, other, &det_event(other), &ctx),
                    Err(Error::Corrupt { path, .. }) if path == victim => {}
                    got => panic!("{ctx}: get({other}) gave {got:?}"),
                }
            }
            file.write_all_at(&[delta], (f.start + 9) as u64).unwrap();
            tried += 1;
        }
    }
    assert!(tried > 100, "{tried} frames tried");
}

/// `verify` says which check an event frame whose checksum holds fails (what only a
/// checksum collision on damaged bytes could leave): data that is not JSON, or not UTF-8,
/// is named as such, with the file and the frame's offset, not as a content hash that does
/// not match its fields.
#[test]
fn verify_names_the_check_a_checksummed_frame_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let mut c = config(64 << 10);
    c.compaction_level = None;
    let store = Store::open(&dir, c).unwrap();
    for i in 1..=1000 {
        store.append(det_event(i)).unwrap();
    }
    store.close().unwrap();
    let (victim, pristine, _, slot) = sealed_segment(&dir, 0);
    let frames = walk_frames(&pristine, slot.committed_len);
    // Event 11's data is stored as is: `{"i":11,"text":"<letters>"}`.
    let f = frames.iter().find(|f| f.event_id == Some(11)).unwrap();
    let body = f.start + 8..f.end;
    let brace = pristine[body.clone()]
        .windows(7)
        .position(|w| w == br#"{"i":11"#)
        .unwrap()
        + body.start;
    for (at, byte, want) in [
        (brace, b'[', "is not valid JSON"),
        (f.end - 5, 0xff, "event data is not UTF-8"),
    ] {
        let mut frame = pristine[f.start..f.end].to_vec();
        frame[at - f.start] = byte;
        let crc = crc32fast::hash(&[&frame[..4], &frame[8..]].concat());
        frame[4..8].copy_from_slice(&crc.to_le_bytes());
        let file = OpenOptions::new().write(true).open(&victim).unwrap();
        file.write_all_at(&frame, f.start as u64).unwrap();
        let report = verify(&dir).unwrap();
        file.write_all_at(&pristine[f.start..f.end], f.start as u64)
            .unwrap();
        let problem = report
            .problems
            .iter()
            .find(|p| p.path == victim)
            .unwrap_or_else(|| panic!("{want}: not reported: {report:?}"));
        assert_eq!(problem.offset, f.start as u64, "{want}: {problem:?}");
        assert!(
            problem.what.contains(want) && !problem.what.contains("content hash"),
            "{want}: {problem:?}"
        );
    }
    assert!(verify(&dir).unwrap().problems.is_empty(), "restored");
}
