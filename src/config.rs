//! Configuration: every limit and default, each with the reason for it.
//!
//! The old `SelFlow` layer's defaults are kept as defaults (batch size 100, batch timeout 5 s,
//! compression above 1 KiB, retention 30 days). [`Config::check`] rejects values the store
//! cannot honour before anything touches the disk.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::event::{Event, Timestamp, NAME_LEN_MAX};
use crate::format;

/// What a committed batch survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// A committed batch survives the process being killed: it sits in the page cache, which
    /// the kernel writes back. The file is synced every batch timeout and on close, so a power
    /// loss can lose at most the last batch timeout's events.
    #[default]
    Buffered,
    /// Every batch is synced to the device (frames first, then the commit record) before it
    /// is published, so `flush()` returns only once its events survive a power loss.
    Sync,
}

/// How a store is run. Build with `Config::default()` and adjust fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Events per batch before the writer is woken (old system: 100). Under load batches
    /// grow beyond this: the writer takes everything queued (group commit).
    pub batch_events: usize,
    /// The longest an event waits in the queue before its batch is written (old system: 5 s).
    /// In `Buffered` mode the segment is also synced to disk at this interval.
    pub batch_timeout: Duration,
    /// Events the queue holds before `append` waits (back-pressure). Batches of thousands
    /// already amortise a publication to nothing, and the memory is counted against the
    /// 50 MB budget of an ingest: besides the queue's batch, the writer holds the batch it
    /// writes, the last published one (for confirming duplicates) and one kept for reuse,
    /// so 4 Ki events of ~600 bytes cost ~10-15 MB (`selflog ingest` of the workload's
    /// JSON Lines peaked at 72-78 MB of anonymous memory with 8 Ki, 46-49 MB with 4 Ki).
    pub queue_events_max: usize,
    /// Bytes of queued event fields (names and data) at which `append` also waits, however
    /// few the events: the bound that holds when events are large (data up to
    /// `data_len_max` each). The writer takes a batch as soon as it reaches this size. The
    /// check is made before each event is queued, so an event larger than this is still
    /// queued (the next one waits).
    pub queue_bytes_max: usize,
    /// How long `append` waits for queue space before failing with `QueueFull`.
    pub queue_wait_max: Duration,
    /// Data longer than this many bytes is LZ4-compressed when that makes it smaller
    /// (old system: gzip above 1 KiB).
    pub compress_len_min: usize,
    /// Size of each segment file, allocated in full when the segment is created. 64 MiB
    /// keeps the unsealed tail that an open must scan to a fraction of a second.
    pub segment_len: u64,
    /// Longest event data accepted, in bytes.
    pub data_len_max: usize,
    /// How far ahead of the append clock an event's timestamp may be (default one day):
    /// a far-future timestamp would pin its segment against retention forever.
    pub future_skew_max: Duration,
    /// What a committed batch survives.
    pub durability: Durability,
    /// Deduplication window: an event identical (timestamp, type, action, source and data)
    /// to one of the last this-many stored events is not stored again; `append` returns
    /// `Duplicate(original id)`. 1,000,000 events take ~16.3 MB. 0 disables.
    pub dedup_window: usize,
    /// Sealed segments whose newest event is older than this are deleted (old system: 30
    /// days). `None` keeps everything.
    pub retention_age: Option<Duration>,
    /// The oldest sealed segments are deleted while the log is larger than this. `None`: no
    /// cap.
    pub retention_bytes_max: Option<u64>,
    /// Run retention when the store is opened for writing.
    pub retention_on_open: bool,
    /// How often the maintenance thread runs retention (old system: daily cleanup).
    pub cleanup_interval: Duration,
    /// Keep pattern and stats streams beside the event log (off for the sidecars
    /// themselves).
    #[doc(hidden)]
    pub sidecars: bool,
    /// How often the maintenance thread appends a system stats record (default 60 s).
    pub stats_interval: Duration,
    /// Bytes of the newest written log the writer leaves in the OS page cache (default
    /// 64 MiB). Older bytes, once on the disk, are dropped from it (`posix_fadvise`
    /// `DONTNEED`): the log is written once and mostly its newest part is read again, and
    /// a long-running writer would otherwise fill the page cache at the expense of other
    /// programs (and, on a VM that hands freed memory back to its host, pay for every new
    /// page it touches: `ARCHITECTURE.md`; dropping close behind the writer lets it reuse
    /// the pages it just freed). A writable open reads the dedup window from the image the
    /// last clean close wrote, not from the log, so a small keep does not slow it; after a
    /// crash it reads the window's events from the disk. A duplicate's check reads its
    /// original, and a query of older data reads it, from the disk. Pages a reader has
    /// mapped stay. `None` leaves the cache alone.
    pub page_cache_keep: Option<u64>,
    /// The zstd level a writable open's compaction thread rewrites sealed segments with
    /// (default 12: 1 to 19; higher is smaller and slower to write, reading costs the same).
    /// `None` leaves sealed segments as written; [`crate::Store::compact`] still compacts
    /// on request. `format-spec/FORMAT.md#compacted-segments`
    pub compaction_level: Option<i32>,
    /// Test hook: replaces the content hash as the deduplication key, to force collisions.
    /// The stored hash is always the real one.
    #[doc(hidden)]
    pub dedup_key_for_tests: Option<fn(&Event) -> u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            batch_events: 100,
            batch_timeout: Duration::from_secs(5),
            queue_events_max: 4096,
            queue_bytes_max: 4 << 20,
            queue_wait_max: Duration::from_secs(30),
            compress_len_min: 1024,
            segment_len: 64 << 20,
            data_len_max: 4 << 20,
            future_skew_max: Duration::from_secs(24 * 3600),
            durability: Durability::Buffered,
            dedup_window: 1_000_000,
            retention_age: Some(Duration::from_secs(30 * 86_400)),
            retention_bytes_max: None,
            retention_on_open: true,
            cleanup_interval: Duration::from_secs(24 * 3600),
            dedup_key_for_tests: None,
            sidecars: true,
            stats_interval: Duration::from_secs(60),
            page_cache_keep: Some(64 << 20),
            compaction_level: Some(COMPACTION_LEVEL_DEFAULT),
        }
    }
}

/// The zstd level of compaction unless configured. On the bench workload's 1,000,000 events
/// (six sealed segments), level 9 stores 91.7 bytes per event at 54,000 events/s of one
/// core, level 12 stores 85.3 at 31,000 (benches/RESULTS.md, "Compacted segments"):
/// compaction runs once per sealed segment, in the background, so the smaller file wins.
pub const COMPACTION_LEVEL_DEFAULT: i32 = 12;

/// Largest deduplication window accepted (2^26 events, ~1 GiB of memory).
pub const DEDUP_WINDOW_MAX: usize = 1 << 26;

/// Smallest segment accepted; small segments are useful in tests of rolling.
pub const SEGMENT_LEN_MIN: u64 = 64 << 10;
/// Largest segment accepted: frame offsets are u32-safe within it and maps stay modest.
pub const SEGMENT_LEN_MAX: u64 = 1 << 31;

const _: () = assert!(SEGMENT_LEN_MIN > format::SEGMENT_HEADER_LEN as u64 * 4);

impl Config {
    /// Checks every value, naming the first that is out of range.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the field and its allowed range.
    pub fn check(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidConfig(msg));
        if self.batch_events == 0 {
            return bad("batch_events must be at least 1".into());
        }
        if self.queue_events_max < self.batch_events {
            return bad(format!(
                "queue_events_max ({}) must be at least batch_events ({})",
                self.queue_events_max, self.batch_events
            ));
        }
        if !(SEGMENT_LEN_MIN..=SEGMENT_LEN_MAX).contains(&self.segment_len) {
            return bad(format!(
                "segment_len {} is outside {SEGMENT_LEN_MIN}..={SEGMENT_LEN_MAX}",
                self.segment_len
            ));
        }
        // A largest event must fit in an empty segment with room for its footer.
        // ... after the definitions of its three strings, each up to NAME_LEN_MAX bytes.
        let string_defs = 3 * (format::FRAME_HEADER_LEN + 6 + NAME_LEN_MAX);
        let need = format::SEGMENT_HEADER_LEN as u64
            + format::frame_len_max(self.data_len_max) as u64
            + string_defs as u64
            + format::FOOTER_RESERVE_MIN as u64;
        if need > self.segment_len {
            return bad(format!(
                "data_len_max {} does not fit in segment_len {}: lower it or raise segment_len",
                self.data_len_max, self.segment_len
            ));
        }
        if self.dedup_window > DEDUP_WINDOW_MAX {
            return bad(format!(
                "dedup_window {} is over {DEDUP_WINDOW_MAX} events",
                self.dedup_window
            ));
        }
        if self.stats_interval.is_zero() {
            return bad("stats_interval must be positive".into());
        }
        if self.cleanup_interval.is_zero() {
            return bad("cleanup_interval must be positive".into());
        }
        if let Some(level) = self.compaction_level {
            if !(1..=19).contains(&level) {
                return bad(format!("compaction_level {level} is outside 1..=19"));
            }
        }
        if self.batch_timeout.is_zero() {
            return bad("batch_timeout must be positive".into());
        }
        Ok(())
    }
}

// `Event::validate` is defined here, beside the limits it applies, so that `event` does not
// depend on `config` (`config` names `Event` and `NAME_LEN_MAX`): the rules themselves
// live in `Event::check`, which takes the limits as values.
impl Event {
    /// Checks the event against the rules every stored event obeys. `now` is the append
    /// clock, used to reject timestamps further ahead than `config.future_skew_max`.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] naming the field, or [`Error::TooLarge`] naming the limit.
    pub fn validate(&self, config: &Config, now: Timestamp) -> Result<()> {
        self.check(config.data_len_max, config.future_skew_max, now)
    }
}
