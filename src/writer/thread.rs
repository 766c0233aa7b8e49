//! The writer thread: batching, group commit, publication order, rolling and sealing.
//!
//! The one [`Writer`] takes everything queued when the batch is full, the batch timeout has
//! passed, or a `flush` asks for it, encodes the events into the active segment (interning
//! their names in its dictionary and compressing large payloads, [`compress`]), writes
//! them, and publishes: the commit slot first, then the generation in-process readers
//! check, then `written_id`, which flushes and duplicate checks wait on. It alone creates,
//! seals and rolls segment files. A full disk keeps the events not yet written and retries;
//! any other failure, or a panic, poisons the store.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Durability;
use crate::error::{Error, Result};
use crate::event::Timestamp;
use crate::format::{self, EventFrame, ManifestEntry, SegmentHeader, FORMAT_VERSION};
use crate::index::{IndexedEvent, SegmentIndex};
use crate::manifest::{self, ID_LEASE};
use crate::segment::{image, ActiveSegment, StreamKind};

use super::queue::{text, Batch, QueueState, Queued, RECENT_EVENTS_MAX};
use super::sync::Syncer;
use super::{Recovered, Shared, HEALTH_DISK_FULL, HEALTH_OK};

/// How often a writer stopped by a full disk tries again.
const DISK_FULL_RETRY: Duration = Duration::from_millis(200);

/// Bytes of compression buffer the writer keeps between events (the workload's large events
/// are 2 to 20 KiB).
const LZ4_BUFFER_KEEP: usize = 256 << 10;

/// Bytes the writer appends to the active segment between two background syncs.
const SYNC_AHEAD_BYTES: u64 = 8 << 20;

/// Bytes of new durable frames after which a sync also writes the active segment's index
/// image (or an eighth of the segment, if less): an open scans at most about this much of
/// a segment (plus what is not yet synced), and the writer encodes an image (up to ~1% of
/// the segment) at most once per this many bytes. `format-spec/FORMAT.md#segment-index-image`
const IMAGE_EVERY_BYTES: u64 = 1 << 20;

/// Writes the LZ4 block of `data` into `out` from byte `at` on and returns where it lies
/// there, if `data` is longer than `compress_len_min` and compression makes it smaller: what
/// a frame stores instead of the data. `out` only grows, to `at` plus LZ4's bound for
/// `data`, and its bytes are overwritten, not zeroed again: a buffer kept from event to
/// event costs no clearing of that bound (a few times the block's size) per event. The
/// writer compresses into a buffer it keeps, an appending thread (while the writer is
/// behind, [`Shared::pack`]) into one of its own; both give the same bytes.
/// `format-spec/FORMAT.md#frame`
pub(super) fn compress(
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
    let packed = LZ4_TABLE.with_borrow_mut(|table| {
        // A table widened for one block of 64 KiB or more is not kept for the small
        // blocks after it: clearing it costs twice as much per block.
        if data.len() < usize::from(u16::MAX)
            && matches!(table, lz4_flex::block::CompressTable::Large(_))
        {
            *table = lz4_flex::block::CompressTable::small();
        }
        lz4_flex::block::compress_into_with_table(data, &mut out[at..end], table)
    });
    match packed {
        Ok(n) if n < data.len() => Some(at..at + n),
        _ => None,
    }
}

std::thread_local! {
    /// The LZ4 match table of the thread compressing (the writer, or an appending thread
    /// while the writer is behind), cleared and reused from block to block: allocating it
    /// for every block (8 KiB, zeroed) sent glibc through `malloc_consolidate` each time,
    /// a sixth of the compression's cost on the workload's events (issue 21).
    static LZ4_TABLE: std::cell::RefCell<lz4_flex::block::CompressTable> =
        std::cell::RefCell::new(lz4_flex::block::CompressTable::small());
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
    /// The manifest's `id_high_water` as last recorded: no frame with a higher id is
    /// written before a higher one is recorded (`manifest.rs`).
    high_water: u64,
    /// The manifest entry of the segment sealed last, until the roll that follows records it.
    sealed_entry: Option<ManifestEntry>,
    /// How far the active segment's last index image reaches (0: none written).
    image_len: u64,
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
            high_water: recovered.high_water,
            sealed_entry: None,
            image_len: 0,
        }
    }

    /// A writer without a thread of its own, which the maintenance thread drives with
    /// [`Writer::pump`]: it never starts the background sync thread either.
    pub fn pumped(shared: Arc<Shared>, recovered: Recovered) -> Writer {
        let mut w = Writer::new(shared, recovered);
        w.syncer.disable();
        w
    }

    /// One step of a pumped writer, without waiting: writes the queued events if a batch
    /// is due ([`Writer::take_due`], the thread's rule) or the events a full disk held
    /// back, then syncs if a sync is due ([`Writer::step`]). Returns when it next wants to
    /// run (`None`: only when woken for new work). After the queue is shut down it writes
    /// everything and syncs; events a full disk still holds back are then an error.
    pub fn pump(&mut self) -> Result<Option<Instant>> {
        let shared = Arc::clone(&self.shared);
        let (batch, shutdown) = {
            let mut q = shared.queue.lock();
            let batch = if self.retained.is_empty() {
                self.take_due(&mut q, Instant::now())
            } else {
                None
            };
            let shutdown = q.shutdown;
            drop(q);
            if batch.is_some() {
                shared.space.notify_all();
            }
            (batch.unwrap_or_default(), shutdown)
        };
        if self.step(batch, shutdown)? {
            return Ok(None);
        }
        let cfg = &shared.config;
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
            let (batch, shutdown) = self.next_batch();
            if self.step(batch, shutdown)? {
                return Ok(());
            }
        }
    }

    /// Writes `batch` after the events a full disk held back, then syncs if a periodic
    /// sync is due or the store is closing. Returns whether the writer is done: closing,
    /// with everything written; closing with events a full disk still holds back is an
    /// error.
    fn step(&mut self, batch: Arc<Batch>, shutdown: bool) -> Result<bool> {
        let batch = if self.retained.is_empty() {
            batch
        } else {
            let mut retained = std::mem::take(&mut self.retained);
            retained.append(&mut Arc::unwrap_or_clone(batch));
            Arc::new(retained)
        };
        let published = batch.is_empty() || self.write_batch(&batch)?;
        self.done_with(batch, published);
        let sync_due = self.last_sync.elapsed() >= self.shared.config.batch_timeout;
        if self.unsynced && (sync_due || shutdown) {
            self.sync()?;
        }
        if shutdown && !self.retained.is_empty() {
            // Disk still full at close: the retained events cannot be written.
            return Err(self.shared.health_error().unwrap_or(Error::Closed));
        }
        if shutdown {
            // Frames a killed writer published and never synced are synced too (this
            // writer may have written nothing), so that the clean image covers them all.
            if self
                .active
                .as_ref()
                .is_some_and(|a| a.slot.durable_len < a.write_len)
            {
                self.sync()?;
            }
            // Everything is written, published and synced, and nothing more will be.
            self.write_image(true);
        }
        Ok(shutdown)
    }

    /// Waits until a batch is due and takes it, or until a periodic sync or a disk-full
    /// retry is due (then the batch is empty). Returns whether the store is shutting down.
    fn next_batch(&mut self) -> (Arc<Batch>, bool) {
        let shared = Arc::clone(&self.shared);
        let cfg = &shared.config;
        let mut q = shared.queue.lock();
        loop {
            let now = Instant::now();
            if !self.retained.is_empty() {
                if !q.shutdown {
                    self.shared.work.wait_for(&mut q, DISK_FULL_RETRY);
                }
                return (Arc::default(), q.shutdown);
            }
            if let Some(batch) = self.take_due(&mut q, now) {
                let shutdown = q.shutdown;
                drop(q);
                shared.space.notify_all();
                return (batch, shutdown);
            }
            if q.shutdown {
                return (Arc::default(), true);
            }
            let sync_at = self.unsynced.then(|| self.last_sync + cfg.batch_timeout);
            if sync_at.is_some_and(|t| now >= t) {
                return (Arc::default(), false);
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

    /// Hands a batch the writer is done with back to the queue: published, it joins the
    /// recent batches duplicate checks look in (the oldest leaving them once the newer ones
    /// hold [`RECENT_EVENTS_MAX`] events, its memory kept for the next batch); otherwise (a
    /// full disk held events back) its memory is kept.
    fn done_with(&mut self, batch: Arc<Batch>, published: bool) {
        let (events, bytes) = (batch.len(), batch.bytes_len());
        let mut q = self.shared.queue.lock();
        q.in_flight = None;
        let mut unused = Vec::new();
        if published && !batch.is_empty() {
            q.recent_events += batch.len();
            q.recent.push_back(batch);
            // The oldest goes only while the others still hold `RECENT_EVENTS_MAX` events:
            // after a large batch, the one before it is still there.
            while q
                .recent
                .front()
                .is_some_and(|f| q.recent_events - f.len() >= RECENT_EVENTS_MAX)
            {
                let old = q.recent.pop_front().expect("checked");
                q.recent_events -= old.len();
                unused.push(old);
            }
        } else {
            unused.push(batch);
        }
        drop(q);
        // Duplicate checks borrow the batches only under the queue lock: none is shared now.
        // The largest becomes the next batch the queue fills; the others are freed here,
        // outside the lock.
        let largest = unused
            .into_iter()
            .filter_map(|b| Arc::try_unwrap(b).ok())
            .max_by_key(Batch::capacity_bytes);
        if let Some(mut b) = largest {
            b.clear();
            if b.capacity_bytes() > self.spare.capacity_bytes() {
                self.spare = b;
            }
        }
        // Room for as many events as this batch held (the appending side's current pace),
        // also when no batch came back (the recent ones still hold fewer than
        // `RECENT_EVENTS_MAX` events), so that appends do not grow it under the lock.
        self.spare.reserve_for(events, bytes);
    }

    /// Takes the queued events if a batch is due: `batch_events` of them, `queue_bytes_max`
    /// bytes of them, a flush waiting
    /// for them, the oldest queued for the batch timeout, or the store closing. Notes
    /// whether the writer is behind ([`Shared::writer_behind`]).
    fn take_due(&mut self, q: &mut QueueState, now: Instant) -> Option<Arc<Batch>> {
        let cfg = &self.shared.config;
        let n = q.events.len();
        let timed_out = q.oldest.is_some_and(|t| now >= t + cfg.batch_timeout);
        let flush_wanted = q.flush_target > self.last_id;
        let bytes_full = q.events.bytes_len() >= cfg.queue_bytes_max;
        if n == 0
            || !(n >= cfg.batch_events || bytes_full || flush_wanted || q.shutdown || timed_out)
        {
            return None;
        }
        let mut batch = std::mem::take(&mut self.spare);
        std::mem::swap(&mut batch, &mut q.events);
        q.oldest = None;
        // Behind while it takes batches of half the queue or more; caught up again once
        // they are down to a quarter.
        let behind = if batch.len() >= cfg.queue_events_max / 2 {
            Some(true)
        } else {
            (batch.len() <= cfg.queue_events_max / 4).then_some(false)
        };
        if let Some(b) = behind {
            self.shared.writer_behind.store(b, Ordering::Relaxed);
        }
        let batch = Arc::new(batch);
        q.in_flight = Some(Arc::clone(&batch));
        Some(batch)
    }

    /// Writes and publishes `batch`; returns whether every event of it was written (not:
    /// a full disk holds the rest back, in `retained`).
    fn write_batch(&mut self, batch: &Batch) -> Result<bool> {
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
                Ok(true)
            }
            Some(Error::DiskFull { path }) => {
                self.retained = batch.copy_from(written);
                self.shared.status.lock().disk_full = Some(path);
                self.shared
                    .health
                    .store(HEALTH_DISK_FULL, Ordering::Release);
                self.shared.progress.notify_all();
                self.shared.space.notify_all();
                Ok(false)
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
        if sync {
            self.write_image_if_due();
        }
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
        self.write_image_if_due();
        Ok(())
    }

    /// Writes the active segment's index image once `IMAGE_EVERY_BYTES` of durable frames
    /// were added since the last one.
    fn write_image_if_due(&mut self) {
        let due = self.active.as_ref().is_some_and(|a| {
            let every = IMAGE_EVERY_BYTES.min(a.header.segment_len / 8);
            a.slot.durable_len >= self.image_len + every
        });
        if due {
            self.write_image(false);
        }
    }

    /// Writes the active segment's index image over every frame written, if they are all
    /// published and synced (an image covers only durable frames); `clean` when the writer
    /// is done. A failure is ignored: the image is a cache, and a missing one costs the next
    /// open a longer scan. `format-spec/FORMAT.md#segment-index-image`
    fn write_image(&mut self, clean: bool) {
        let Some(active) = &self.active else {
            return;
        };
        let covered = active.write_len;
        let at = active.last_frame_at;
        // The frame an image ends at must be known (recovery that discarded frames does not
        // know it until the next frame is written).
        let known = (at == 0) == (covered == format::SEGMENT_HEADER_LEN as u64);
        if covered != active.slot.durable_len || !known {
            return;
        }
        let crc = if at == 0 {
            Ok(0)
        } else {
            image::frame_crc_at(active.file(), at, &active.path)
        };
        let written = crc.and_then(|crc| {
            image::write(
                &active.path,
                &active.header,
                &self.index,
                covered,
                at,
                crc,
                clean,
            )
        });
        if written.is_ok() {
            self.image_len = covered;
        }
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
        if q.id > self.high_water {
            // Recorded before any frame holds the id, so that a later loss of this segment
            // cannot make the id be handed out again.
            let m = manifest::record_high_water(&self.shared.dir, q.id.saturating_add(ID_LEASE))?;
            self.high_water = m.id_high_water;
        }
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
            let header = active.header;
            active.seal(&self.index, commit_us)?;
            // The footer holds the index now. A crash before this leaves an image beside
            // a sealed segment, which readers ignore and the next writable open removes.
            let _ = image::remove(&path, false);
            self.image_len = 0;
            self.syncer.sealed(path, end);
            let s = &self.index.summary;
            let has = s.event_count > 0;
            self.sealed_entry = Some(ManifestEntry {
                segment_id: header.segment_id,
                sealed: true,
                first_id: if has { s.first_id } else { header.base_id },
                last_id: s.last_id,
                event_count: s.event_count,
                min_ts_us: if has {
                    s.min_ts_us
                } else {
                    header.base_timestamp_us
                },
                max_ts_us: if has {
                    s.max_ts_us
                } else {
                    header.base_timestamp_us
                },
            });
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
        // The new segment is recorded once its file exists: a crash in between leaves a
        // file the manifest does not name yet, which the next open adopts, never a
        // recorded segment without a file. `format-spec/FORMAT.md#segment-manifest`
        let newest = ManifestEntry {
            segment_id: header.segment_id,
            sealed: false,
            first_id: header.base_id,
            last_id: 0,
            event_count: 0,
            min_ts_us: header.base_timestamp_us,
            max_ts_us: header.base_timestamp_us,
        };
        let m = manifest::record_roll(
            &self.shared.dir,
            self.sealed_entry.take(),
            newest,
            first.id.saturating_add(ID_LEASE),
        )?;
        self.high_water = m.id_high_water;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, Event, Store, Timestamp};

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
