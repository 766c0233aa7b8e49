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
//!
//! This file holds what the appending threads and the writer share: [`Shared`] (the queue,
//! the status, their condvars and the health flag), [`Status`] and [`Recovered`]. The
//! queue and its admission are in `queue.rs`, the writer thread in `thread.rs`, the
//! background sync and page-cache drop in `sync.rs`.

mod queue;
mod sync;
mod thread;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::config::{Config, Durability};
use crate::error::{Error, Result};
use crate::index::SegmentIndex;
use crate::segment::ActiveSegment;

pub(crate) use queue::{Batch, QueueState};
pub(crate) use thread::Writer;

/// Health of the writer, readable without a lock on every append.
pub(crate) const HEALTH_OK: u8 = 0;
pub(crate) const HEALTH_DISK_FULL: u8 = 1;
pub(crate) const HEALTH_POISONED: u8 = 2;

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

    /// Waits until the writer has written (`Buffered`) or synced (`Sync`) every id up to
    /// `target`: the wait of a flush, of the event log's or a sidecar's.
    pub fn wait_written(&self, target: u64) -> Result<()> {
        let sync = self.config.durability == Durability::Sync;
        let mut st = self.status.lock();
        loop {
            if let Some(why) = &st.fatal {
                return Err(Error::Poisoned(why.clone()));
            }
            if let Some(path) = &st.disk_full {
                return Err(Error::DiskFull { path: path.clone() });
            }
            let done = if sync { st.durable_id } else { st.written_id };
            if done >= target {
                return Ok(());
            }
            if st.stopped {
                return Err(Error::Closed);
            }
            self.progress.wait(&mut st);
        }
    }

    /// Saves the duplicate count (the `counters` file in `dir`) if it changed since it was
    /// last saved.
    pub fn save_duplicates(&self, dir: &Path) -> Result<()> {
        let mut q = self.queue.lock();
        if q.duplicates == q.duplicates_saved {
            return Ok(());
        }
        let count = q.duplicates;
        q.duplicates_saved = count;
        drop(q);
        crate::cursor::write_duplicates(dir, count)
    }
}

/// What recovery hands the writer: the unsealed tail segment, if any, and where ids stand.
pub(crate) struct Recovered {
    pub active: Option<(ActiveSegment, SegmentIndex)>,
    pub last_id: u64,
    pub last_segment_id: u32,
    /// The manifest's `id_high_water`: the writer records a higher one before it publishes
    /// an id above it (`manifest.rs`).
    pub high_water: u64,
}
