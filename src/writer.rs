//! The append queue and the writer thread: batching, group commit, rolling, durability.
//!
//! `append` validates an event, assigns its id and pushes it onto a bounded queue under one
//! short lock; it never waits on disk. The single writer thread takes everything queued when
//! the batch is full, the batch timeout has passed, or a `flush` asks for it, encodes the
//! events into the active segment's staging buffer (compressing large payloads as it goes),
//! writes them, and publishes the new committed end in a commit slot. Under load batches
//! grow past the batch size: one publication (and in `Sync` mode one pair of syncs) covers
//! all of them. A helper thread syncs the active segment every few MiB in the background,
//! so that sealing it does not wait for all of it to reach the disk.
//!
//! Failures are loud and sticky. A full disk keeps the events already taken in memory,
//! makes `append` and `flush` fail with `DiskFull`, and is retried until space returns;
//! any other I/O failure poisons the store, and every later call reports it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::config::{Config, Durability};
use crate::error::{Error, Result};
use crate::event::{Event, Timestamp};
use crate::format::{self, EventFrame, SegmentHeader, FORMAT_VERSION};
use crate::index::{IndexedEvent, SegmentIndex};
use crate::segment::{ActiveSegment, StreamKind};

/// How often a writer stopped by a full disk tries again.
const DISK_FULL_RETRY: Duration = Duration::from_millis(200);

/// Health of the writer, readable without a lock on every append.
pub(crate) const HEALTH_OK: u8 = 0;
pub(crate) const HEALTH_DISK_FULL: u8 = 1;
pub(crate) const HEALTH_POISONED: u8 = 2;

/// Bytes of packed events a cleared batch keeps allocated for reuse; a batch that grew past
/// this (a burst of large events) gives the excess back.
const BATCH_BYTES_KEEP: usize = 8 << 20;

/// Bytes of compression buffer the writer keeps between events (the workload's large events
/// are 2 to 20 KiB).
const LZ4_BUFFER_KEEP: usize = 256 << 10;

/// Bytes the writer appends to the active segment between two background syncs.
const SYNC_AHEAD_BYTES: u64 = 8 << 20;

/// Writes an active segment's frames to the disk in the background while the writer goes
/// on, so that sealing it, which must wait until every frame is on the disk, finds little
/// left to write: each seal of a 64 MiB segment spent ~35 ms in `fdatasync` on this VM,
/// about a fifth of the writer's time under load. It only adds syncs, and it syncs
/// through a file description of its own: a write-back error it meets is still reported
/// to the writer's own `fdatasync` (Linux reports such an error to every open file
/// description), so ignoring its own result loses nothing.
///
/// It also drops what is on the disk from the page cache, but for the newest
/// `Config::page_cache_keep` bytes ([`Dropper`]).
struct Syncer {
    state: Arc<(Mutex<SyncRequests>, Condvar)>,
    keep: Option<u64>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Off for a writer pumped by the maintenance thread: a sidecar's small segments
    /// are synced by their seal alone, and the pump starts no thread.
    enabled: bool,
}

/// What the writer asked the sync thread for since it last looked.
#[derive(Default)]
struct SyncRequests {
    /// The newest segment to sync, and how far it is written: a newer request replaces
    /// one not yet taken.
    sync: Option<(PathBuf, u64)>,
    /// Segments sealed since, with where their frames end (the seal synced them).
    sealed: Vec<(PathBuf, u64)>,
    closing: bool,
}

impl Syncer {
    fn new(keep: Option<u64>) -> Syncer {
        Syncer {
            state: Arc::default(),
            keep,
            thread: None,
            enabled: true,
        }
    }

    /// Asks for the file at `path`, written up to `len`, to be synced soon; starts the
    /// thread on first use. A thread that cannot be started leaves the syncing to the seal.
    fn kick(&mut self, path: &Path, len: u64) {
        if self.started() {
            self.state.0.lock().sync = Some((path.to_path_buf(), len));
            self.state.1.notify_one();
        }
    }

    /// Tells the thread that the segment at `path` is sealed, its frames ending at `len`.
    fn sealed(&mut self, path: PathBuf, len: u64) {
        if self.keep.is_some() && self.started() {
            self.state.0.lock().sealed.push((path, len));
            self.state.1.notify_one();
        }
    }

    fn started(&mut self) -> bool {
        if self.thread.is_none() && self.enabled {
            let state = Arc::clone(&self.state);
            let mut dropper = Dropper::new(self.keep);
            self.thread = std::thread::Builder::new()
                .name("selflog-sync".into())
                .spawn(move || loop {
                    let (sync, sealed) = {
                        let mut r = state.0.lock();
                        while r.sync.is_none() && r.sealed.is_empty() && !r.closing {
                            state.1.wait(&mut r);
                        }
                        if r.closing {
                            return;
                        }
                        (r.sync.take(), std::mem::take(&mut r.sealed))
                    };
                    // A sealed segment precedes any segment a sync request names now.
                    for (path, len) in sealed {
                        dropper.synced(&path, len);
                    }
                    if let Some((path, len)) = sync {
                        let synced = std::fs::File::open(&path).and_then(|f| f.sync_data());
                        if synced.is_ok() {
                            dropper.synced(&path, len);
                        }
                    }
                })
                .ok();
        }
        self.thread.is_some()
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.state.0.lock().closing = true;
        self.state.1.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Drops segment bytes that are on the disk from the page cache (`posix_fadvise`
/// `DONTNEED`), oldest first, once more than `keep` bytes of them are held. An activity
/// log is written once and read rarely, mostly its newest part; a writer that ran for
/// weeks would otherwise fill the page cache with it at the expense of the desktop's
/// programs. And on this VM the growing page cache halved sustained appends: guest memory
/// freed earlier has been given back to the host, so each fresh page the cache takes
/// costs the hypervisor a fault, while pages dropped here are taken again at once
/// (10,000,000 events, one `append` at a time: ~1.25M events/s falling to ~0.57M after
/// 4.8M events, against ~1.15-1.2M throughout; benches/RESULTS.md). Only clean pages no
/// process maps go: a reader's mapped pages stay.
struct Dropper {
    keep: Option<u64>,
    /// Ranges on the disk and still in the cache, oldest first: file, start, end.
    held: std::collections::VecDeque<(PathBuf, u64, u64)>,
    held_bytes: u64,
    /// The newest file noted, and how far it is noted.
    last: Option<(PathBuf, u64)>,
}

impl Dropper {
    fn new(keep: Option<u64>) -> Dropper {
        Dropper {
            keep,
            held: std::collections::VecDeque::new(),
            held_bytes: 0,
            last: None,
        }
    }

    /// Notes that `path` is on the disk up to `len`, then drops the oldest ranges while
    /// the others hold at least `keep` bytes.
    fn synced(&mut self, path: &Path, len: u64) {
        let Some(keep) = self.keep else {
            return;
        };
        let start = match &self.last {
            Some((p, end)) if p == path => *end,
            _ => 0,
        };
        if len <= start {
            return;
        }
        self.last = Some((path.to_path_buf(), len));
        self.held.push_back((path.to_path_buf(), start, len));
        self.held_bytes += len - start;
        while let Some((path, start, end)) = self.held.front() {
            let len = end - start;
            if self.held_bytes - len < keep {
                break;
            }
            // Advice only: a file retention has deleted, or a kernel that declines, loses
            // nothing but the cache space.
            if let Ok(file) = std::fs::File::open(path) {
                let _ = rustix::fs::fadvise(
                    &file,
                    *start,
                    std::num::NonZeroU64::new(len),
                    rustix::fs::Advice::DontNeed,
                );
            }
            self.held_bytes -= len;
            self.held.pop_front();
        }
    }
}

/// Writes the LZ4 block of `data` into `out` from byte `at` on and returns where it lies
/// there, if `data` is longer than `compress_len_min` and compression makes it smaller: what
/// a frame stores instead of the data. `out` only grows, to `at` plus LZ4's bound for
/// `data`, and its bytes are overwritten, not zeroed again: a buffer kept from event to
/// event costs no clearing of that bound (a few times the block's size) per event. The
/// writer compresses into a buffer it keeps, an appending thread (while the writer is
/// behind, [`Shared::pack`]) into one of its own; both give the same bytes.
/// `format-spec/FORMAT.md#frame`
pub(crate) fn compress(
    data: &[u8],
    compress_len_min: usize,
    out: &mut Vec<u8>,
    at: usize,
) -> Option<std::ops::Range<usize>> {
    if data.len() <= compress_len_min {
        return None;
    }
    let end = at + lz4_flex::block::get_maximum_output_size(data.len());
    if out.len() < end {
        out.resize(end, 0);
    }
    match lz4_flex::block::compress_into(data, &mut out[at..end]) {
        Ok(n) if n < data.len() => Some(at..at + n),
        _ => None,
    }
}

/// Where one queued event's fields lie in its batch's bytes: type, action, source, then
/// its data's text.
#[derive(Clone, Copy)]
struct Entry {
    id: u64,
    hash: u64,
    timestamp: i64,
    start: usize,
    type_len: u16,
    /// `None`: no action.
    action_len: Option<u16>,
    source_len: u16,
    /// `None`: no data.
    data_len: Option<u32>,
    /// `Some(n)`: the data bytes are already the LZ4 block of `n` bytes of text.
    raw_len: Option<u32>,
}

/// Events waiting for the writer, with their ids and content hashes, packed into one byte
/// buffer. Appending copies an event's fields in; the writer reads them in place and hands
/// the cleared batch back for reuse, so neither thread allocates or frees per event (freeing
/// events allocated by another thread was a quarter of the writer's time).
#[derive(Default)]
pub(crate) struct Batch {
    entries: Vec<Entry>,
    bytes: Vec<u8>,
}

/// One queued event, read in place.
#[derive(Clone, Copy)]
pub(crate) struct Queued<'a> {
    pub id: u64,
    pub hash: u64,
    pub timestamp: Timestamp,
    /// The names as bytes (copied in from `str`s): the writer looks them up as they are
    /// and checks a name is UTF-8 only when it adds it to a segment's dictionary.
    pub event_type: &'a [u8],
    pub action: Option<&'a [u8]>,
    pub source: &'a [u8],
    /// The data's text, or its LZ4 block when `raw_len` is set.
    pub data: Option<&'a [u8]>,
    /// `Some(n)`: `data` is the LZ4 block of `n` bytes of text, compressed by the appending
    /// thread ([`Shared::writer_behind`]).
    pub raw_len: Option<u32>,
}

impl Queued<'_> {
    /// Whether this queued event has exactly the content of `event`.
    pub fn same_content(&self, event: &Event) -> bool {
        self.timestamp == event.timestamp
            && self.event_type == event.event_type.as_bytes()
            && self.action == event.action.as_deref().map(str::as_bytes)
            && self.source == event.source.as_bytes()
            && match (self.raw_len, self.data, event.data_text()) {
                (Some(n), Some(packed), Some(text)) => {
                    n as usize == text.len()
                        && lz4_flex::block::decompress(packed, n as usize)
                            .is_ok_and(|raw| raw == text.as_bytes())
                }
                (Some(_), _, _) => false,
                (None, data, text) => data == text.map(str::as_bytes),
            }
    }
}

/// Text copied into a batch from a `str`.
fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("batch text was copied from a str")
}

impl Batch {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Takes the last event out again.
    pub fn pop(&mut self) {
        if let Some(e) = self.entries.pop() {
            self.bytes.truncate(e.start);
        }
    }

    /// The id of the first event, if any.
    pub fn first_id(&self) -> Option<u64> {
        self.entries.first().map(|e| e.id)
    }

    /// Copies `event` in under `id`, with `packed` in place of its data when the appending
    /// thread has compressed it ([`compress`]). `event` has passed [`Event::validate`], so
    /// its names fit in 16 bits and its data in 32.
    pub fn push(&mut self, id: u64, hash: u64, event: &Event, packed: Option<&[u8]>) {
        let start = self.bytes.len();
        let text = event.data_text().map(str::as_bytes);
        let data = packed.or(text);
        let len16 = |s: &str| u16::try_from(s.len()).expect("names are validated");
        let len32 = |b: &[u8]| u32::try_from(b.len()).expect("data_len_max < 4 GiB");
        self.entries.push(Entry {
            id,
            hash,
            timestamp: event.timestamp.0,
            start,
            type_len: len16(&event.event_type),
            action_len: event.action.as_deref().map(len16),
            source_len: len16(&event.source),
            data_len: data.map(len32),
            raw_len: packed.and(text).map(len32),
        });
        self.bytes.extend_from_slice(event.event_type.as_bytes());
        self.bytes
            .extend_from_slice(event.action.as_deref().unwrap_or("").as_bytes());
        self.bytes.extend_from_slice(event.source.as_bytes());
        self.bytes.extend_from_slice(data.unwrap_or(&[]));
    }

    fn view(&self, e: &Entry) -> Queued<'_> {
        let mut at = e.start;
        let mut take = |n: usize| {
            let b = &self.bytes[at..at + n];
            at += n;
            b
        };
        let event_type = take(e.type_len.into());
        let action = e.action_len.map(|n| take(n.into()));
        let source = take(e.source_len.into());
        let data = e.data_len.map(|n| take(n as usize));
        Queued {
            id: e.id,
            hash: e.hash,
            timestamp: Timestamp(e.timestamp),
            event_type,
            action,
            source,
            data,
            raw_len: e.raw_len,
        }
    }

    /// The `i`th queued event.
    pub fn get(&self, i: usize) -> Option<Queued<'_>> {
        self.entries.get(i).map(|e| self.view(e))
    }

    /// The queued event with id `id`: at its place when no id was skipped (the common
    /// case), else found by binary search (ids increase along the queue, but an import's
    /// forced ids leave gaps).
    pub fn find(&self, id: u64) -> Option<Queued<'_>> {
        let first = self.first_id()?;
        let at = usize::try_from(id.checked_sub(first)?)
            .ok()
            .filter(|&i| self.entries.get(i).is_some_and(|e| e.id == id))
            .or_else(|| self.entries.binary_search_by_key(&id, |e| e.id).ok())?;
        self.get(at)
    }

    /// The queued events in order.
    pub fn iter(&self) -> impl Iterator<Item = Queued<'_>> {
        self.entries.iter().map(|e| self.view(e))
    }

    /// Empties the batch, keeping its memory for the next one (up to [`BATCH_BYTES_KEEP`]).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes.clear();
        self.bytes.shrink_to(BATCH_BYTES_KEEP);
    }

    /// Moves the events from the `at`th on into a new batch.
    pub fn split_off(&mut self, at: usize) -> Batch {
        let mut tail = Batch::default();
        tail.extend_from(&self.entries[at.min(self.entries.len())..], &self.bytes);
        let keep = self.entries.get(at).map_or(self.bytes.len(), |e| e.start);
        self.entries.truncate(at);
        self.bytes.truncate(keep);
        tail
    }

    /// Moves every event of `other` to the end of this batch.
    pub fn append(&mut self, other: &mut Batch) {
        self.extend_from(&other.entries, &other.bytes);
        other.clear();
    }

    /// Copies `entries`, whose fields lie in `bytes`, to the end of this batch.
    fn extend_from(&mut self, entries: &[Entry], bytes: &[u8]) {
        let Some(first) = entries.first() else {
            return;
        };
        let (from, to) = (first.start, self.bytes.len());
        self.bytes.extend_from_slice(&bytes[from..]);
        self.entries.extend(entries.iter().map(|e| Entry {
            start: e.start - from + to,
            ..*e
        }));
    }
}

pub(crate) struct QueueState {
    pub events: Batch,
    /// The id the next appended event gets.
    pub next_id: u64,
    /// When the oldest queued event was queued.
    pub oldest: Option<Instant>,
    /// The highest id some `flush` is waiting for.
    pub flush_target: u64,
    pub shutdown: bool,
    /// Hashes of recent stored events; consulted and updated in id order under this lock.
    pub dedup: crate::dedup::DedupWindow,
    /// Duplicates dropped since the store was opened.
    pub duplicates: u64,
    /// The count last written to the counters file.
    pub duplicates_saved: u64,
}

pub(crate) struct Status {
    /// Last id published as committed.
    pub written_id: u64,
    /// Last id known synced to the device.
    pub durable_id: u64,
    /// Why the store is poisoned.
    pub fatal: Option<String>,
    /// The file that could not be written for lack of space, while that lasts.
    pub disk_full: Option<PathBuf>,
    pub stopped: bool,
}

/// State shared by the appending threads and the writer thread.
pub(crate) struct Shared {
    pub config: Config,
    pub dir: PathBuf,
    pub queue: Mutex<QueueState>,
    /// Wakes the writer.
    pub work: Condvar,
    /// Wakes appenders waiting for queue space.
    pub space: Condvar,
    pub status: Mutex<Status>,
    /// Wakes flushers.
    pub progress: Condvar,
    pub health: AtomicU8,
    /// Whether the writer is behind: set when it takes a batch of half the queue or more,
    /// cleared when it takes one of a quarter or less. While it is set, the appending
    /// threads compress large data themselves (the frames are the same either way). On two
    /// cores the writer is the bottleneck of batched appends while an appending thread has
    /// time to spare; a thread appending one event at a time, whose caller waits, does not
    /// pay for compression while the writer keeps up.
    pub writer_behind: AtomicBool,
    /// Where the dedup window's buckets lie, so that `append` can start loading the one it
    /// will read before it takes the queue lock.
    pub dedup_hint: crate::dedup::BucketHint,
    /// Counts publications; in-process readers refresh only when it moves.
    pub generation: Arc<AtomicU64>,
}

impl Shared {
    /// Compresses `event`'s data as the writer would store it, writing the LZ4 block into
    /// `out` from byte `at` on ([`compress`]) and returning where it lies there, when the
    /// writer is behind ([`Shared::writer_behind`]) and the data is worth compressing;
    /// else `None`, and the writer compresses it.
    pub fn pack(
        &self,
        event: &Event,
        out: &mut Vec<u8>,
        at: usize,
    ) -> Option<std::ops::Range<usize>> {
        let data = event.data_text()?.as_bytes();
        // Small data first: most events need not even read the flag.
        if data.len() <= self.config.compress_len_min || !self.writer_behind.load(Ordering::Relaxed)
        {
            return None;
        }
        compress(data, self.config.compress_len_min, out, at)
    }

    /// The dedup window's key for `event`, whose home bucket is `home` and content hash
    /// `hash` ([`crate::event::dedup_key`]), or the test hook's key.
    pub fn dedup_key(&self, event: &Event, home: u32, hash: u64) -> u64 {
        self.config
            .dedup_key_for_tests
            .map_or_else(|| crate::event::dedup_key(home, hash), |f| f(event))
    }

    /// Records a background failure: every later call returns it.
    pub fn poison(&self, why: String) {
        let mut st = self.status.lock();
        st.fatal.get_or_insert(why);
        self.health.store(HEALTH_POISONED, Ordering::Release);
        drop(st);
        self.progress.notify_all();
        self.space.notify_all();
    }

    /// The error appends and flushes return while the writer is unhealthy.
    pub fn health_error(&self) -> Option<Error> {
        if self.health.load(Ordering::Acquire) == HEALTH_OK {
            return None;
        }
        let st = self.status.lock();
        if let Some(why) = &st.fatal {
            Some(Error::Poisoned(why.clone()))
        } else {
            st.disk_full
                .as_ref()
                .map(|p| Error::DiskFull { path: p.clone() })
        }
    }
}

/// What recovery hands the writer: the unsealed tail segment, if any, and where ids stand.
pub(crate) struct Recovered {
    pub active: Option<(ActiveSegment, SegmentIndex)>,
    pub last_id: u64,
    pub last_segment_id: u32,
}

/// The writer thread's own state.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    active: Option<ActiveSegment>,
    index: SegmentIndex,
    last_segment_id: u32,
    /// Last id encoded into a segment.
    last_id: u64,
    retained: Batch,
    spare: Batch,
    last_sync: Instant,
    unsynced: bool,
    /// Where a large event's data is compressed, reused from event to event.
    lz4: Vec<u8>,
    syncer: Syncer,
    /// `write_len` of the active segment at the last background sync request.
    sync_kicked_at: u64,
}

impl Writer {
    pub fn new(shared: Arc<Shared>, recovered: Recovered) -> Writer {
        let (active, index) = match recovered.active {
            Some((a, i)) => (Some(a), i),
            None => (None, SegmentIndex::default()),
        };
        let syncer = Syncer::new(shared.config.page_cache_keep);
        Writer {
            shared,
            active,
            index,
            last_segment_id: recovered.last_segment_id,
            last_id: recovered.last_id,
            retained: Batch::default(),
            spare: Batch::default(),
            last_sync: Instant::now(),
            unsynced: false,
            lz4: Vec::new(),
            syncer,
            sync_kicked_at: 0,
        }
    }

    /// A writer without a thread of its own, which the maintenance thread drives with
    /// [`Writer::pump`]: it never starts the background sync thread either.
    pub fn pumped(shared: Arc<Shared>, recovered: Recovered) -> Writer {
        let mut w = Writer::new(shared, recovered);
        w.syncer.enabled = false;
        w
    }

    /// One step of a pumped writer, without waiting: writes the queued events if a batch
    /// is due (by the rule of [`Writer::run`]: full, timed out, flushed or closing) or the
    /// events a full disk held back, then syncs if a sync is due (`Buffered`: every batch
    /// timeout and when closing; `Sync` syncs each batch as it publishes it). Returns when
    /// it next wants to run (`None`: only when woken for new work). After the queue is
    /// shut down it writes everything and syncs; events a full disk still holds back are
    /// then an error.
    pub fn pump(&mut self) -> Result<Option<Instant>> {
        let shared = Arc::clone(&self.shared);
        let cfg = &shared.config;
        let now = Instant::now();
        let (mut batch, shutdown) = {
            let mut q = shared.queue.lock();
            let n = q.events.len();
            let timed_out = q.oldest.is_some_and(|t| now >= t + cfg.batch_timeout);
            let flush_wanted = q.flush_target > self.last_id;
            let due = n >= cfg.batch_events || flush_wanted || q.shutdown || timed_out;
            if self.retained.is_empty() && n > 0 && due {
                let mut batch = std::mem::take(&mut self.spare);
                std::mem::swap(&mut batch, &mut q.events);
                q.oldest = None;
                let shutdown = q.shutdown;
                drop(q);
                shared.space.notify_all();
                (batch, shutdown)
            } else {
                (Batch::default(), q.shutdown)
            }
        };
        if !self.retained.is_empty() {
            batch = std::mem::take(&mut self.retained);
        }
        if !batch.is_empty() {
            self.write_batch(&mut batch)?;
        }
        batch.clear();
        self.spare = batch;
        let sync_due = self.last_sync.elapsed() >= cfg.batch_timeout;
        if self.unsynced && (sync_due || shutdown) {
            self.sync()?;
        }
        if shutdown {
            if !self.retained.is_empty() {
                // Disk still full at close: the retained events cannot be written.
                return Err(shared.health_error().unwrap_or(Error::Closed));
            }
            return Ok(None);
        }
        let retry = (!self.retained.is_empty()).then(|| Instant::now() + DISK_FULL_RETRY);
        let sync_at = self.unsynced.then(|| self.last_sync + cfg.batch_timeout);
        let batch_at = shared.queue.lock().oldest.map(|t| t + cfg.batch_timeout);
        Ok([retry, sync_at, batch_at].into_iter().flatten().min())
    }

    /// The thread's body. Never panics out: a panic is turned into poison.
    pub fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_loop()));
        let failure = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("the writer thread panicked (a bug: please report it)".to_owned()),
        };
        if let Some(why) = failure {
            shared.poison(why);
        }
        shared.status.lock().stopped = true;
        shared.progress.notify_all();
        shared.space.notify_all();
    }

    fn run_loop(&mut self) -> Result<()> {
        loop {
            let (mut batch, shutdown) = self.next_batch();
            if !self.retained.is_empty() {
                let mut retained = std::mem::take(&mut self.retained);
                retained.append(&mut batch);
                batch = retained;
            }
            if !batch.is_empty() {
                self.write_batch(&mut batch)?;
            }
            batch.clear();
            self.spare = batch;
            let sync_due = self.last_sync.elapsed() >= self.shared.config.batch_timeout;
            if self.unsynced && (sync_due || shutdown) {
                self.sync()?;
            }
            if shutdown && self.retained.is_empty() {
                return Ok(());
            }
            if shutdown {
                // Disk still full at close: the retained events cannot be written.
                return Err(self.shared.health_error().unwrap_or(Error::Closed));
            }
        }
    }

    /// Waits until a batch is due and takes it, or until a periodic sync or a disk-full
    /// retry is due (then the batch is empty). Returns whether the store is shutting down.
    fn next_batch(&mut self) -> (Batch, bool) {
        let cfg = &self.shared.config;
        let mut q = self.shared.queue.lock();
        loop {
            let now = Instant::now();
            if !self.retained.is_empty() {
                if !q.shutdown {
                    self.shared.work.wait_for(&mut q, DISK_FULL_RETRY);
                }
                return (Batch::default(), q.shutdown);
            }
            let n = q.events.len();
            let timed_out = q.oldest.is_some_and(|t| now >= t + cfg.batch_timeout);
            let flush_wanted = q.flush_target > self.last_id;
            if n > 0 && (n >= cfg.batch_events || flush_wanted || q.shutdown || timed_out) {
                let mut batch = std::mem::take(&mut self.spare);
                std::mem::swap(&mut batch, &mut q.events);
                q.oldest = None;
                // Behind while it takes batches of half the queue or more; caught up again
                // once they are down to a quarter.
                let behind = if batch.len() >= cfg.queue_events_max / 2 {
                    Some(true)
                } else {
                    (batch.len() <= cfg.queue_events_max / 4).then_some(false)
                };
                if let Some(b) = behind {
                    self.shared.writer_behind.store(b, Ordering::Relaxed);
                }
                let shutdown = q.shutdown;
                drop(q);
                self.shared.space.notify_all();
                return (batch, shutdown);
            }
            if q.shutdown {
                return (Batch::default(), true);
            }
            let sync_at = self.unsynced.then(|| self.last_sync + cfg.batch_timeout);
            if sync_at.is_some_and(|t| now >= t) {
                return (Batch::default(), false);
            }
            let batch_at = q.oldest.map(|t| t + cfg.batch_timeout);
            match batch_at.into_iter().chain(sync_at).min() {
                Some(deadline) => {
                    self.shared.work.wait_until(&mut q, deadline);
                }
                None => self.shared.work.wait(&mut q),
            }
        }
    }

    fn write_batch(&mut self, batch: &mut Batch) -> Result<()> {
        let commit_us = Timestamp::now().0;
        let mut written = 0;
        let mut failure = None;
        for q in batch.iter() {
            if let Err(e) = self.write_event(&q, commit_us) {
                failure = Some(e);
                break;
            }
            written += 1;
        }
        if written > 0 || failure.is_none() {
            self.publish(commit_us)?;
        }
        if let Some(active) = &self.active {
            if active.write_len >= self.sync_kicked_at + SYNC_AHEAD_BYTES {
                self.sync_kicked_at = active.write_len;
                self.syncer.kick(&active.path, active.write_len);
            }
        }
        match failure {
            None => {
                if self.shared.health.load(Ordering::Acquire) == HEALTH_DISK_FULL {
                    self.shared.status.lock().disk_full = None;
                    self.shared.health.store(HEALTH_OK, Ordering::Release);
                }
                Ok(())
            }
            Some(Error::DiskFull { path }) => {
                self.retained = batch.split_off(written);
                self.shared.status.lock().disk_full = Some(path);
                self.shared
                    .health
                    .store(HEALTH_DISK_FULL, Ordering::Release);
                self.shared.progress.notify_all();
                self.shared.space.notify_all();
                Ok(())
            }
            Some(e) => Err(e),
        }
    }

    /// Publishes what is written in the active segment and tells waiters.
    fn publish(&mut self, commit_us: i64) -> Result<()> {
        let sync = self.shared.config.durability == Durability::Sync;
        if let Some(active) = &mut self.active {
            if active.write_len > active.slot.committed_len || sync {
                let s = &self.index.summary;
                active.publish(s.event_count, s.last_id, commit_us, sync)?;
                self.unsynced = !sync;
            }
        }
        // The generation moves first: whoever then sees the new `written_id` (a flush
        // returning, a duplicate check waiting for its original) and reads in this process
        // must find the in-process reader out of date, or it would skip catching up and not
        // find what it was told is written.
        self.shared.generation.fetch_add(1, Ordering::Release);
        let mut st = self.shared.status.lock();
        st.written_id = self.last_id;
        if sync {
            st.durable_id = self.last_id;
        }
        drop(st);
        self.shared.progress.notify_all();
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        if let Some(active) = &mut self.active {
            active.sync_all()?;
        }
        self.unsynced = false;
        self.last_sync = Instant::now();
        self.shared.status.lock().durable_id = self.last_id;
        self.shared.progress.notify_all();
        Ok(())
    }

    /// Encodes one event into the active segment, rolling first when it does not fit.
    fn write_event(&mut self, q: &Queued, commit_us: i64) -> Result<()> {
        let mut lz4 = std::mem::take(&mut self.lz4);
        let result = self.write_event_with(q, commit_us, &mut lz4);
        // One huge event (up to `data_len_max`) does not pin its buffer for the store's life.
        if lz4.capacity() > LZ4_BUFFER_KEEP {
            lz4 = Vec::new();
        }
        self.lz4 = lz4;
        result
    }

    /// [`Writer::write_event`], compressing a large payload into `lz4`.
    fn write_event_with(&mut self, q: &Queued, commit_us: i64, lz4: &mut Vec<u8>) -> Result<()> {
        let (payload, raw_len) = if q.raw_len.is_some() {
            (q.data, q.raw_len)
        } else {
            let packed = q
                .data
                .and_then(|d| compress(d, self.shared.config.compress_len_min, lz4, 0))
                .map(|r| &lz4[r]);
            let raw_len = packed.and(q.data).map(|d| d.len() as u32);
            (packed.or(q.data), raw_len)
        };
        let data_len = raw_len.map_or(payload.map_or(0, <[u8]>::len), |n| n as usize);
        let stored_len = payload.map_or(0, <[u8]>::len);
        let [known_type, known_source, known_action] = self.make_room(q, stored_len, commit_us)?;
        let active = self.active.as_mut().expect("checked above");
        // A name not yet in the dictionary is looked up once more before it is defined:
        // the type and the source may be the same new string.
        let mut string_ref = |name: &[u8], known: Option<u32>, index: &mut SegmentIndex| {
            if let Some(r) = known.or_else(|| index.lookup.get(name).copied()) {
                return r;
            }
            let text = text(name);
            let r = index.add_string(text);
            let frame = format::encode_string_def(r, text);
            active.append_mut(frame.len()).copy_from_slice(&frame);
            r
        };
        let type_ref = string_ref(q.event_type, known_type, &mut self.index);
        let source_ref = string_ref(q.source, known_source, &mut self.index);
        let action_ref = q
            .action
            .map(|a| string_ref(a, known_action, &mut self.index));
        let header = active.header;
        let frame = EventFrame {
            id_delta: q.id - header.base_id,
            ts_delta: q.timestamp.0 - header.base_timestamp_us,
            type_ref,
            source_ref,
            action_ref,
            hash: q.hash,
            payload,
            raw_len,
        };
        let len = frame.encoded_len();
        let offset = active.write_len;
        let buf = active.append_mut(len);
        let n = format::encode_event(buf, &frame);
        debug_assert_eq!(n, len);
        debug_assert_eq!(
            format::decode_frame(buf).ok().flatten(),
            Some((format::Frame::Event(frame), len)),
            "frame decodes to what was encoded"
        );
        active.spill_if_large()?;
        let indexed = IndexedEvent {
            id: q.id,
            ts_us: q.timestamp.0,
            type_ref,
            source_ref,
            action_ref,
            compressed: raw_len.is_some(),
            data_raw_len: data_len as u64,
            data_stored_len: stored_len as u64,
        };
        self.index.add_event(
            &indexed,
            offset,
            u32::try_from(len).expect("frame < segment"),
            commit_us,
        );
        self.last_id = q.id;
        Ok(())
    }

    /// Ensures the active segment has room for `q`'s frames (and any new strings) plus the
    /// footer it would need afterwards, sealing the segment and rolling when it has not.
    /// Returns the dictionary references of its type, source and action in the segment it
    /// will be written to (`None` for a name not yet defined there).
    fn make_room(
        &mut self,
        q: &Queued,
        stored_len: usize,
        commit_us: i64,
    ) -> Result<[Option<u32>; 3]> {
        let names: [Option<&[u8]>; 3] = [Some(q.event_type), Some(q.source), q.action];
        let mut attempts = 0;
        loop {
            attempts += 1;
            if self.active.is_none() {
                self.roll(q, commit_us)?;
            }
            // Bytes of the string definitions this event adds, and of their footer entries.
            let (mut defs_len, mut footer_strings_len) = (0, 0);
            let mut known = [None; 3];
            for (s, k) in names.iter().zip(&mut known) {
                let Some(s) = s else {
                    continue;
                };
                *k = self.index.lookup.get(*s).copied();
                if k.is_none() {
                    defs_len += format::FRAME_HEADER_LEN + 6 + s.len();
                    footer_strings_len += s.len() + 5;
                }
            }
            let frame_upper = format::frame_len_max(stored_len);
            let footer_after =
                self.index.footer_len_bound() + footer_strings_len + format::BLOCK_LEN + 12;
            let active = self.active.as_mut().expect("rolled above");
            let need = (defs_len + frame_upper + footer_after) as u64;
            if need <= active.room() {
                return Ok(known);
            }
            if self.index.summary.event_count == 0 || attempts > 1 {
                return Err(Error::TooLarge {
                    what: "event frame",
                    len: need,
                    len_max: active.room(),
                });
            }
            self.seal(commit_us)?;
        }
    }

    /// Seals the active segment after publishing what it holds.
    fn seal(&mut self, commit_us: i64) -> Result<()> {
        self.publish(commit_us)?;
        if let Some(active) = self.active.take() {
            let (path, end) = (active.path.clone(), active.write_len);
            active.seal(&self.index, commit_us)?;
            self.syncer.sealed(path, end);
        }
        self.index = SegmentIndex::default();
        self.unsynced = false;
        Ok(())
    }

    /// Creates the next segment, its bases taken from the event about to be written.
    fn roll(&mut self, first: &Queued, now_us: i64) -> Result<()> {
        if self.last_segment_id >= StreamKind::SEGMENT_ID_MAX {
            return Err(Error::InvalidConfig(format!(
                "the store has used all {} segment numbers; raise segment_len for a new store",
                StreamKind::SEGMENT_ID_MAX
            )));
        }
        let header = SegmentHeader {
            version: FORMAT_VERSION,
            stream_kind: StreamKind::Events.code(),
            segment_id: self.last_segment_id + 1,
            base_id: first.id,
            base_timestamp_us: first.timestamp.0,
            segment_len: self.shared.config.segment_len,
            created_us: now_us,
        };
        let active = ActiveSegment::create(&self.shared.dir, StreamKind::Events, header, now_us)?;
        self.sync_kicked_at = 0;
        self.last_segment_id += 1;
        self.active = Some(active);
        self.index = SegmentIndex::default();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use crate::{Appended, Config, Event, EventId, Store, Timestamp};

    /// The page cache dropper holds each synced range once, drops the oldest while the
    /// rest holds `keep` bytes, and ignores a request that adds nothing.
    #[test]
    fn the_dropper_keeps_the_newest_bytes_and_notes_each_range_once() {
        let held = |d: &super::Dropper| -> Vec<(String, u64, u64)> {
            let name = |p: &std::path::Path| p.file_name().unwrap().to_string_lossy().into_owned();
            d.held.iter().map(|(p, a, b)| (name(p), *a, *b)).collect()
        };
        let r = |p: &str, a: u64, b: u64| (p.to_owned(), a, b);
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let mut d = super::Dropper::new(Some(16));
        d.synced(&a, 8);
        d.synced(&a, 16);
        d.synced(&a, 12);
        assert_eq!(
            held(&d),
            [r("a", 0, 8), r("a", 8, 16)],
            "a stale request adds nothing"
        );
        d.synced(&a, 24);
        assert_eq!(
            held(&d),
            [r("a", 8, 16), r("a", 16, 24)],
            "the oldest 8 dropped"
        );
        d.synced(&b, 10);
        assert_eq!(held(&d), [r("a", 16, 24), r("b", 0, 10)]);
        assert_eq!(d.held_bytes, 18);
        let mut none = super::Dropper::new(None);
        none.synced(&a, 8);
        assert!(none.held.is_empty(), "None keeps the cache as it is");
    }

    /// Data an appending thread compressed (the writer being behind) is stored byte for
    /// byte as the writer would have stored it, reads back, and a queued packed event is
    /// still found to be the original of its duplicate.
    #[test]
    fn data_packed_by_the_appending_thread_is_stored_as_the_writer_would() {
        let events: Vec<Event> = (0..60usize)
            .map(|i| {
                let words = "lorem ipsum ".repeat(20 + 7 * i);
                let d = format!(r#"{{"i":{i},"t":"{words}"}}"#);
                let ts = Timestamp(1_732_460_000_000_000 + i64::try_from(i).unwrap());
                Event::new(ts, "clip", None, "Pasteboard", Some(&d)).unwrap()
            })
            .collect();
        let large = events
            .iter()
            .filter(|e| e.data_text().unwrap().len() > 1024)
            .count() as u64;
        assert!(large > 30, "most events are compressed: {large}");
        let write = |behind: bool| -> Vec<u8> {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s");
            // Nothing reaches the writer before the flush, so the flag set here holds.
            let config = Config {
                batch_events: 1000,
                queue_events_max: 1000,
                batch_timeout: std::time::Duration::from_secs(3600),
                ..Config::default()
            };
            let store = Store::open(&path, config).unwrap();
            let shared = store.shared().unwrap();
            // One at a time, then the rest in a batch.
            for e in &events[..30] {
                shared.writer_behind.store(behind, Ordering::Relaxed);
                let large = e.data_text().unwrap().len() > 1024;
                assert_eq!(
                    shared.pack(e, &mut Vec::new(), 0).is_some(),
                    behind && large
                );
                assert!(matches!(store.append(e.clone()), Ok(Appended::New(_))));
            }
            shared.writer_behind.store(behind, Ordering::Relaxed);
            let batch = store.append_batch(events[30..].to_vec()).unwrap();
            assert!(batch.iter().all(|a| matches!(a, Appended::New(_))));
            let again = store.append(events[40].clone()).unwrap();
            assert_eq!(again, Appended::Duplicate(EventId(41)), "behind: {behind}");
            store.flush().unwrap();
            let back: Vec<Event> = store
                .scan()
                .unwrap()
                .map(|e| e.unwrap().to_event().unwrap())
                .collect();
            assert_eq!(back, events, "behind: {behind}");
            assert_eq!(store.stats().unwrap().compressed_events, large);
            store.close().unwrap();
            let segment = std::fs::read(path.join("events-00000001.seg")).unwrap();
            // After the header, which holds creation and commit times.
            segment[crate::format::SEGMENT_HEADER_LEN..].to_vec()
        };
        assert!(write(true) == write(false), "the frames differ");
    }

    /// Events compressed by the writer read back exactly, before and after one large
    /// enough that the writer drops its compression buffer afterwards.
    #[test]
    fn compressed_events_around_a_huge_one_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s"), Config::default()).unwrap();
        let ts = Timestamp(1_732_460_000_000_000);
        let text = |n: usize| format!(r#"{{"t":"{}"}}"#, "lorem ipsum dolor ".repeat(n));
        let datas = [text(200), text(60_000), text(300), text(10)];
        for d in &datas {
            store
                .append(Event::new(ts, "clip", None, "Pasteboard", Some(d)).unwrap())
                .unwrap();
        }
        store.flush().unwrap();
        let back: Vec<String> = store
            .scan()
            .unwrap()
            .map(|e| e.unwrap().data.unwrap())
            .collect();
        assert_eq!(back, datas);
        assert_eq!(store.stats().unwrap().compressed_events, 3);
    }

    /// A name used as type, source and action of one event, new to the segment, is defined
    /// once; so is a name first seen as an event's source and then as another's type.
    #[test]
    fn a_new_name_used_twice_in_an_event_is_defined_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s"), Config::default()).unwrap();
        let ts = Timestamp(1_732_460_000_000_000);
        store
            .append(Event::new(ts, "same", Some("same"), "same", None).unwrap())
            .unwrap();
        store
            .append(Event::new(ts, "other", None, "next", None).unwrap())
            .unwrap();
        store
            .append(Event::new(ts, "next", Some("other"), "same", None).unwrap())
            .unwrap();
        store.flush().unwrap();
        store.refresh().unwrap();
        let strings: Vec<String> = store.views()[0]
            .with_index(|ix, _| ix.strings.iter().map(ToString::to_string).collect());
        assert_eq!(strings, ["same", "other", "next"]);
        let reopened = {
            drop(store);
            Store::open_read_only(dir.path().join("s")).unwrap()
        };
        let back: Vec<(String, Option<String>, String)> = reopened
            .scan()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.event_type, e.action, e.source)
            })
            .collect();
        assert_eq!(back[0], ("same".into(), Some("same".into()), "same".into()));
        assert_eq!(
            back[2],
            ("next".into(), Some("other".into()), "same".into())
        );
    }
}
