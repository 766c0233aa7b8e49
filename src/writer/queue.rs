//! The bounded queue between the appending threads and the writer, and its admission.
//!
//! Appending threads copy each event's fields into one byte [`Batch`] under the queue lock,
//! under the id it gets if new, and take it out again when the dedup window finds it a
//! duplicate; the writer swaps the whole batch out and hands it back cleared, so neither
//! side allocates or frees per event. Ids are assigned here, in queue order, and the dedup
//! window is consulted and updated in that same order under the same lock. The queue holds
//! at most `Config::queue_events_max` events: an appender waits for space up to
//! `Config::queue_wait_max`, then fails with `QueueFull`. Admission (validate, hash,
//! prefetch the dedup bucket, and while the writer is behind compress large data into a
//! buffer of the appending thread's own) happens on the appending thread, outside the lock
//! but for the copy and the lookup; `Store`'s append methods only call it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::dedup::DEDUP_TOUCH_AHEAD;
use crate::error::{Error, Result};
use crate::event::{Appended, Event, EventId, StoredEvent, Timestamp};

use super::thread::compress;
use super::Shared;

/// Bytes of packed events a cleared batch keeps allocated for reuse; a batch that grew past
/// this (a burst of large events) gives the excess back.
const BATCH_BYTES_KEEP: usize = 8 << 20;

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
#[derive(Default, Clone)]
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
pub(super) fn text(bytes: &[u8]) -> &str {
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

    /// Makes room for at least `events` events whose fields take `bytes` bytes, so that
    /// filling this (empty) batch up to that size does not reallocate. Growing a batch
    /// under the queue lock, by doubling from whatever the batch the writer handed back
    /// held, was two fifths of `append`'s time on the workload's stream (issue 21): every
    /// copy of a growing multi-megabyte buffer, and glibc's consolidating its free lists for
    /// each. A vector that must grow is replaced, not grown: its bytes need no copying;
    /// and it is replaced by one half as large again, so that batches a little larger
    /// than the last do not replace it every time (a fresh buffer's pages are faulted in
    /// by the appending thread, under the lock).
    pub fn reserve_for(&mut self, events: usize, bytes: usize) {
        debug_assert!(self.is_empty(), "only a cleared batch is made room in");
        if self.entries.capacity() < events {
            self.entries = Vec::with_capacity(events + events / 2);
        }
        let bytes = bytes.min(BATCH_BYTES_KEEP);
        if self.bytes.capacity() < bytes {
            self.bytes = Vec::with_capacity((bytes + bytes / 2).min(BATCH_BYTES_KEEP));
        }
    }

    /// Bytes of the events' fields.
    pub fn bytes_len(&self) -> usize {
        self.bytes.len()
    }

    /// Bytes this batch holds allocated, events and their fields.
    pub fn capacity_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>() + self.bytes.capacity()
    }

    /// A copy of the events from the `at`th on, in a new batch.
    pub fn copy_from(&self, at: usize) -> Batch {
        let mut tail = Batch::default();
        tail.extend_from(&self.entries[at.min(self.entries.len())..], &self.bytes);
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
    /// The batch the writer took and is writing: a duplicate whose original is in it is
    /// confirmed here instead of waiting for the writer to publish it.
    pub in_flight: Option<Arc<Batch>>,
    /// The batches the writer published last, oldest first, holding the last
    /// [`RECENT_EVENTS_MAX`] events or more (at most that plus one batch). Duplicates mostly copy a
    /// recent event; confirming one here instead of reading the original back made the
    /// in-process reader scan every new frame once per duplicate (issue 21).
    pub recent: std::collections::VecDeque<Arc<Batch>>,
    /// Events in `recent`.
    pub recent_events: usize,
}

impl QueueState {
    /// Whether an append must wait for the writer: the queue holds `queue_events_max`
    /// events, or its events' fields take `queue_bytes_max` bytes.
    pub fn is_full(&self, cfg: &crate::Config) -> bool {
        self.events.len() >= cfg.queue_events_max
            || (!self.events.is_empty() && self.events.bytes_len() >= cfg.queue_bytes_max)
    }
}

/// Events of published batches the queue keeps for confirming duplicates: the workload's
/// duplicates copy one of the last 1,000 events, and a capture daemon's repeat what it
/// just saw. About 600 bytes each, ~1.2 MB (8192 kept a second whole batch alive: ~17 MB
/// more anonymous memory in `selflog ingest`, issue 21).
pub(crate) const RECENT_EVENTS_MAX: usize = 2048;

/// An event on its way into the queue: the event, its content hash, its dedup window key,
/// and its data as the appending thread compressed it, if it did.
type Item<'a> = (&'a Event, u64, u64, Option<&'a [u8]>);

/// Bytes of compressed data an appending thread keeps allocated between appends.
const PACKED_KEEP: usize = 1 << 20;

std::thread_local! {
    /// Where an appending thread compresses data while the writer is behind
    /// ([`Shared::pack`]), reused from append to append: a fresh allocation of LZ4's bound
    /// each time cost more than the compression (glibc consolidates its free lists for
    /// every allocation that large).
    static PACKED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's compression buffer. Its bytes are what earlier appends
/// left there: [`Shared::pack`] overwrites them, and only the ranges it returns are read.
fn with_packed<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    PACKED.with_borrow_mut(|buf| {
        let out = f(buf);
        if buf.capacity() > PACKED_KEEP {
            *buf = Vec::new();
        }
        out
    })
}

/// Admission: what `Store::append`, `Store::append_with_id` and `Store::append_batch` do on
/// the appending thread. `stored` reads a committed event by id, for a dedup candidate that
/// has already left the queue.
impl Shared {
    /// [`Store::append`](crate::Store::append): validates `event` and queues it for the
    /// writer, returning its new id at once.
    pub fn append(
        &self,
        event: &Event,
        stored: impl Fn(EventId) -> Result<Option<StoredEvent>>,
    ) -> Result<Appended> {
        event.validate(&self.config, Timestamp::now_coarse())?;
        // The bucket is known before the content hash, so its cache miss overlaps hashing.
        let home = event.dedup_home();
        self.dedup_hint.prefetch(u64::from(home));
        let hash = event.content_hash();
        let key = self.dedup_key(event, home, hash);
        let mut result = Appended::New(EventId(0));
        with_packed(|buf| {
            let packed = self.pack(event, buf, 0).map(|r| &buf[r]);
            self.enqueue(&[(event, hash, key, packed)], None, &stored, |a| {
                result = a;
            })
        })?;
        Ok(result)
    }

    /// [`Store::append_with_id`](crate::Store::append_with_id): queues `event` under `id`.
    pub fn append_with_id(
        &self,
        id: EventId,
        event: &Event,
        stored: impl Fn(EventId) -> Result<Option<StoredEvent>>,
    ) -> Result<Appended> {
        event.validate(&self.config, Timestamp::now_coarse())?;
        let hash = event.content_hash();
        let key = self.dedup_key(event, event.dedup_home(), hash);
        let mut result = Appended::New(EventId(0));
        with_packed(|buf| {
            let packed = self.pack(event, buf, 0).map(|r| &buf[r]);
            self.enqueue(&[(event, hash, key, packed)], Some(id.0), &stored, |a| {
                result = a;
            })
        })?;
        Ok(result)
    }

    /// [`Store::append_batch`](crate::Store::append_batch): validates every event, then
    /// queues them all in order under consecutive ids, or none when one is invalid.
    /// What became of each event queued is pushed onto `out` as it is queued, so that after
    /// a failure part way (a full disk, a full queue) `out` tells which were.
    pub fn append_batch(
        &self,
        events: &[Event],
        stored: impl Fn(EventId) -> Result<Option<StoredEvent>>,
        out: &mut Vec<Appended>,
    ) -> Result<()> {
        let now = Timestamp::now_coarse();
        for e in events {
            e.validate(&self.config, now)?;
        }
        out.reserve(events.len());
        with_packed(|buf| {
            // Each block goes after the one before it.
            let mut at = 0;
            let packed: Vec<_> = events
                .iter()
                .map(|e| {
                    let r = self.pack(e, buf, at);
                    at = r.as_ref().map_or(at, |r| r.end);
                    r
                })
                .collect();
            let items: Vec<Item> = events
                .iter()
                .zip(packed)
                .map(|(e, p)| {
                    let hash = e.content_hash();
                    let key = self.dedup_key(e, e.dedup_home(), hash);
                    (e, hash, key, p.map(|r| &buf[r]))
                })
                .collect();
            self.enqueue(&items, None, &stored, |a| out.push(a))
        })
    }

    /// Queues events under consecutive ids, telling `sink` what became of each. Each comes
    /// with its content hash and, if the appending thread compressed it, its packed data;
    /// the queue copies them, and the caller frees the events after the lock is released.
    fn enqueue(
        &self,
        items: &[Item],
        forced_id: Option<u64>,
        stored: &impl Fn(EventId) -> Result<Option<StoredEvent>>,
        mut sink: impl FnMut(Appended),
    ) -> Result<()> {
        if let Some(e) = self.health_error() {
            return Err(e);
        }
        let cfg = &self.config;
        let mut q = self.queue.lock();
        let mut waited_since: Option<Instant> = None;
        for (i, &(event, hash, key, packed)) in items.iter().enumerate() {
            if items.len() > 1 && i % DEDUP_TOUCH_AHEAD == 0 {
                // A batch's dedup lookups are cache misses in a large table: load the next
                // few buckets together, so that their misses overlap instead of adding up.
                for &(_, _, key, _) in items.iter().skip(i).take(DEDUP_TOUCH_AHEAD) {
                    q.dedup.touch(key);
                }
            }
            while q.is_full(cfg) {
                if q.shutdown {
                    return Err(Error::Closed);
                }
                if let Some(e) = self.health_error() {
                    return Err(e);
                }
                self.work.notify_one();
                let since = *waited_since.get_or_insert_with(Instant::now);
                if self
                    .space
                    .wait_until(&mut q, since + cfg.queue_wait_max)
                    .timed_out()
                    && q.is_full(cfg)
                {
                    return Err(Error::QueueFull {
                        waited_ms: u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX),
                    });
                }
            }
            if q.shutdown {
                return Err(Error::Closed);
            }
            // Without a forced id the event is copied in before the lookup, under the id it
            // gets if it is new, so that the copy overlaps the lookup's cache miss; a
            // duplicate takes it out again.
            let copied = forced_id.is_none();
            if copied {
                let id = q.next_id;
                q.events.push(id, hash, event, packed);
            }
            let duplicate = match q.dedup.candidate(key) {
                None => None,
                Some(original) => match self.is_same(&q, original, event, hash, stored) {
                    Ok(same) => same.then_some(original),
                    Err(e) => {
                        if copied {
                            q.events.pop();
                        }
                        return Err(e);
                    }
                },
            };
            if let Some(original) = duplicate {
                if copied {
                    q.events.pop();
                }
                q.duplicates += 1;
                sink(Appended::Duplicate(EventId(original)));
                continue;
            }
            if let Some(forced) = forced_id {
                if forced > EventId::MAX.0 {
                    return Err(Error::InvalidEvent {
                        field: "id",
                        reason: format!("{forced} is above the largest id ({})", EventId::MAX),
                    });
                }
                if forced < q.next_id {
                    return Err(Error::InvalidEvent {
                        field: "id",
                        reason: format!(
                            "{forced} is not above the last id used ({})",
                            q.next_id - 1
                        ),
                    });
                }
                q.next_id = forced;
            }
            let id = q.next_id;
            q.next_id += 1;
            q.dedup.insert(key, id);
            if !copied {
                q.events.push(id, hash, event, packed);
            }
            if q.events.len() == 1 {
                q.oldest = Some(Instant::now());
                // The writer may be waiting with no deadline (nothing was queued): it must
                // learn when this batch times out, or a trickle of events below
                // `batch_events` would wait for a flush or the close (issue 23).
                self.work.notify_one();
            }
            if q.events.len() == cfg.batch_events {
                self.work.notify_one();
            }
            sink(Appended::New(EventId(id)));
        }
        Ok(())
    }

    /// Whether the event with id `original` (a dedup candidate) has exactly this content.
    /// It may be queued, being written (then this waits for its commit), or stored.
    fn is_same(
        &self,
        q: &QueueState,
        original: u64,
        event: &Event,
        hash: u64,
        stored: &impl Fn(EventId) -> Result<Option<StoredEvent>>,
    ) -> Result<bool> {
        if let Some(first) = q.events.first_id() {
            if original >= first {
                // Still queued (every assigned id from the queue's first on is).
                let queued = q.events.find(original);
                return Ok(queued.is_some_and(|e| e.hash == hash && e.same_content(event)));
            }
        }
        // Being written, or published lately: its bytes are still here.
        for batch in q.in_flight.iter().chain(q.recent.iter().rev()) {
            if let Some(e) = batch.find(original) {
                return Ok(e.hash == hash && e.same_content(event));
            }
        }
        {
            // Taken by the writer and not yet published: wait for it. The writer publishes
            // without the queue lock, so holding it here cannot deadlock.
            let mut st = self.status.lock();
            while st.written_id < original {
                if let Some(why) = &st.fatal {
                    return Err(Error::Poisoned(why.clone()));
                }
                if let Some(path) = &st.disk_full {
                    return Err(Error::DiskFull { path: path.clone() });
                }
                self.progress.wait(&mut st);
            }
        }
        Ok(match stored(EventId(original))? {
            Some(stored) => stored.hash == hash && stored.to_event().is_ok_and(|e| e == *event),
            None => false,
        })
    }

    /// Compresses `event`'s data as the writer would store it, writing the LZ4 block into
    /// `out` from byte `at` on ([`compress`]) and returning where it lies there, when the
    /// writer is behind ([`Shared::writer_behind`]) and the data is worth compressing;
    /// else `None`, and the writer compresses it.
    fn pack(&self, event: &Event, out: &mut Vec<u8>, at: usize) -> Option<std::ops::Range<usize>> {
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
    fn dedup_key(&self, event: &Event, home: u32, hash: u64) -> u64 {
        self.config
            .dedup_key_for_tests
            .map_or_else(|| crate::event::dedup_key(home, hash), |f| f(event))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use crate::{Appended, Config, Event, EventId, Store, Timestamp};

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

    /// Large events are bounded by bytes, not only by count: with a byte bound far below
    /// the count bound and a batch timeout of an hour, appends of 64 KiB events neither
    /// stall until the timeout nor fail with `QueueFull`; the writer takes a batch each time
    /// the bytes are reached, and every event reads back.
    #[test]
    fn large_events_are_queued_up_to_the_byte_bound_and_written_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            batch_events: 1000,
            queue_events_max: 1000,
            queue_bytes_max: 256 << 10,
            batch_timeout: std::time::Duration::from_secs(3600),
            queue_wait_max: std::time::Duration::from_secs(5),
            compress_len_min: usize::MAX,
            ..Config::default()
        };
        let store = Store::open(dir.path().join("s"), config).unwrap();
        let filler = "x".repeat(64 << 10);
        let started = std::time::Instant::now();
        for i in 0..40 {
            let data = format!(r#"{{"i":{i},"f":"{filler}"}}"#);
            let ts = Timestamp(1_732_460_000_000_000 + i);
            let e = Event::new(ts, "blob", None, "test", Some(&data)).unwrap();
            assert!(matches!(store.append(e), Ok(Appended::New(_))), "event {i}");
            let queued = store.shared().unwrap().queue.lock().events.bytes_len();
            assert!(queued < (256 << 10) + (65 << 10), "{queued} bytes queued");
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(4),
            "appends waited: {:?}",
            started.elapsed()
        );
        store.flush().unwrap();
        assert_eq!(store.scan().unwrap().count(), 40);
        store.close().unwrap();
    }
}
