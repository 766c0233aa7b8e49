//! `Store`: open, append, flush, read, close; starts and stops the writer thread.
//!
//! A store is a directory holding `selflog.meta` (its identity and format version), `LOCK`
//! (the writer lock) and the segment files of the event stream. A writable store owns the
//! lock and one writer thread; a read-only store takes no lock, never modifies a file, and
//! sees what the writer (in this or another process) has published.

mod sidecars;

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

pub use crate::compact::Outcome as CompactOutcome;
use crate::compact::{Compactor, Settings};
use crate::config::Config;
use crate::cursor::{Cursor, CursorList};
use crate::dedup::save_dedup_image;
use crate::error::{Error, Result};
use crate::event::{Appended, Event, EventId, StoredEvent, Timestamp};
use crate::layout::{check_store, prepare_dir, read_meta, write_meta};
use crate::lock::WriterLock;
use crate::maintenance::{Maintenance, NewPattern, Pattern, Sidecars, SystemStats};
use crate::query::{Order, Query};
use crate::recovery::{
    open_dedup, read_only_check, recover_marking, start_dedup_image, ImageMark, OnLoss, OpenReport,
    Problem, Recovery,
};
use crate::retention::Deletion;
use crate::scan::{get_in, Scan};
use crate::segment::StreamKind;
pub use crate::stats::StoreStats;
use crate::stream::{SegmentInfo, Stream};
use crate::writer::{Batch, QueueState, Recovered, Shared, Status, Writer, HEALTH_OK};
use sidecars::{open_sidecars_read_only, open_sidecars_unless_damaged};

/// An open store. `Send + Sync`: share it between threads with an `Arc`.
pub struct Store {
    dir: PathBuf,
    stream: Arc<Stream>,
    writer: Option<WriterSide>,
    report: OpenReport,
    sidecars: Option<Arc<Sidecars>>,
}

struct WriterSide {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    maintenance: Maintenance,
    compactor: Option<Compactor>,
    _lock: WriterLock,
}

/// What [`Store::compact`] did to one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Compaction {
    /// The segment's number.
    pub segment_id: u32,
    /// What became of it.
    pub outcome: CompactOutcome,
}

/// Which patterns [`Store::patterns`] returns; unset fields match everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatternFilter {
    /// Patterns about this event.
    pub event_id: Option<EventId>,
    /// Of this type.
    pub pattern_type: Option<String>,
    /// Found by this embryo.
    pub embryo_id: Option<String>,
    /// With at least this confidence.
    pub min_confidence: Option<f64>,
    /// Recorded at or after this time.
    pub since: Option<Timestamp>,
    /// Recorded before this time.
    pub until: Option<Timestamp>,
}

/// A stream opened for writing: its lock, its recovered tail, its reader view and its
/// queue with the dedup window. The event log and each sidecar are opened alike.
struct OpenLog {
    lock: WriterLock,
    stream: Arc<Stream>,
    shared: Arc<Shared>,
    recovered: Recovered,
    report: OpenReport,
    /// The clearing of the index image's clean flag, perhaps still running: waited for
    /// before any thread that writes the stream starts. A sidecar's is waited for with
    /// the event log's, so that its `fdatasync` overlaps the rest of the open instead of
    /// adding to it (0.2-0.7 ms, issue 21).
    mark: ImageMark,
}

/// Opens the stream in `dir` for writing, creating it if the directory is missing or empty
/// and recovering it if its last writer died; returns with no thread of its own running
/// but the clearing of its index image's flag (`OpenLog::mark`), which the caller waits
/// for before a writer of the stream starts.
/// `meanwhile` runs once the stream is recovered, while the dedup window's image is still
/// being checked on its thread (a store's sidecars are opened there: ~2 ms the open no
/// longer adds to the image's check, issue 21); its result is returned with the log.
fn open_log<T>(
    dir: &Path,
    config: Config,
    meanwhile: impl FnOnce(&Config, &mut OpenReport) -> Result<T>,
) -> Result<(OpenLog, T)> {
    prepare_dir(dir)?;
    let lock = WriterLock::acquire(dir)?;
    if read_meta(dir)?.is_none() {
        write_meta(dir)?;
    }
    // The dedup image is read while the segments are recovered, and checked after.
    let dedup_image = start_dedup_image(dir, config.dedup_window);
    let Recovery {
        recovered,
        mut report,
        mark: image_mark,
        sealed_files,
    } = recover_marking(dir, OnLoss::Refuse)?;
    // The reader view, loaded once here for the dedup window and kept.
    let generation = Arc::new(AtomicU64::new(0));
    // The manifest as recovery left it: the sealed segments it describes are opened
    // deferred, their footers read only when something reads them.
    let manifest = crate::manifest::read(dir).ok().flatten();
    let mut stream = Stream::new(dir, StreamKind::Events, Some(Arc::clone(&generation)))
        .deferring(manifest.as_ref())
        .preopened(sealed_files);
    if let Some((active, index)) = &recovered.active {
        // The view starts from recovery's index (decoding the image again: ~2 ms).
        let len = active.slot.committed_len;
        stream = stream.with_recovered_index(recovered.last_segment_id, len, index.clone());
    }
    let stream = Arc::new(stream);
    // The views opened now, while the dedup image is checked on its thread, rather than
    // by the image's check against the store after it (~1 ms at 61 segments). A failure
    // is left to the reads below, which report it as they did.
    let _ = stream.refresh_deferred();
    let (duplicates, counters_reset) = crate::cursor::open_duplicates(dir)?;
    report.counters_reset = counters_reset;
    let during = meanwhile(&config, &mut report)?;
    let dedup = open_dedup(
        dir,
        &stream,
        config.dedup_window,
        recovered.last_id,
        dedup_image,
        &mut report,
    )?;
    let dedup_hint = dedup.hint();
    let shared = Arc::new(Shared {
        config,
        dir: dir.to_path_buf(),
        queue: Mutex::new(QueueState {
            events: Batch::default(),
            next_id: recovered.last_id + 1,
            oldest: None,
            flush_target: 0,
            shutdown: false,
            dedup,
            duplicates,
            duplicates_saved: duplicates,
            in_flight: None,
            recent: std::collections::VecDeque::new(),
            recent_events: 0,
        }),
        work: Condvar::new(),
        space: Condvar::new(),
        status: Mutex::new(Status {
            written_id: recovered.last_id,
            durable_id: recovered.last_id,
            fatal: None,
            disk_full: None,
            stopped: false,
        }),
        progress: Condvar::new(),
        health: AtomicU8::new(HEALTH_OK),
        writer_behind: AtomicBool::new(false),
        dedup_hint,
        generation,
    });
    let log = OpenLog {
        lock,
        stream,
        shared,
        recovered,
        report,
        mark: image_mark,
    };
    Ok((log, during))
}

/// After its writer stopped: saves a stream's duplicate count, reports its writer's
/// failure, and writes its dedup window's image if every event the window holds was
/// written.
fn close_log(dir: &Path, stream: &Stream, shared: &Shared) -> Result<()> {
    let saved = {
        let mut q = shared.queue.lock();
        let count = q.duplicates;
        let changed = count != q.duplicates_saved;
        q.duplicates_saved = count;
        drop(q);
        if changed {
            crate::cursor::write_duplicates(dir, count)
        } else {
            Ok(())
        }
    };
    let (fatal, written_id) = {
        let st = shared.status.lock();
        (st.fatal.clone(), st.written_id)
    };
    if let Some(why) = fatal {
        return Err(Error::Poisoned(why));
    }
    // Every event is written and synced: the manifest records where the log ends, so a
    // later loss of its tail is noticed. `format-spec/FORMAT.md#segment-manifest`
    // A reader error here is reported by the next open; the views loaded so far give a
    // lower bound of the log's end, which is all the record needs.
    let _ = stream.refresh_deferred();
    let log_end = stream
        .views()
        .iter()
        .rev()
        .find_map(|v| v.with_summary(|s, _| (s.event_count > 0).then_some(s.last_id)))
        .unwrap_or(0);
    // Ids handed out include those `reserve_ids_through` set aside.
    let handed_out = (shared.queue.lock().next_id - 1).max(written_id);
    crate::manifest::record_close(dir, log_end, handed_out)?;
    {
        // Only when every event the window holds is written (the writer stopped
        // cleanly, nothing left queued).
        let q = shared.queue.lock();
        if q.dedup.newest().is_some_and(|n| n <= written_id) {
            save_dedup_image(dir, stream, &q.dedup);
        }
    }
    saved
}

impl Store {
    /// Opens the store in `dir` for appending, creating it (mode 0700) if the directory is
    /// missing or empty, and recovering from a crash if the last writer died.
    ///
    /// # Errors
    /// [`Error::Locked`] if another process writes the store, [`Error::NotAStore`] if `dir`
    /// is a file or a non-empty directory without `selflog.meta`,
    /// [`Error::UnsupportedVersion`], [`Error::Corrupt`] if a committed frame of the tail
    /// segment is damaged, [`Error::Incomplete`] if segments or events the store recorded
    /// are gone (a file deleted, moved, swapped, copied over, or unreadable: a damaged
    /// header, cut short; [`Store::open_read_only`]
    /// still reads the rest), [`Error::InvalidConfig`], or an I/O error.
    pub fn open(dir: impl AsRef<Path>, config: Config) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        config.check()?;
        // The pattern and stats streams are opened before any thread of this store starts
        // (if they cannot be, none has), while the dedup image is checked.
        let (log, (sidecars, readers)) = open_log(&dir, config, |config, report| {
            open_sidecars_unless_damaged(&dir, config, report)
        })?;
        let OpenLog {
            lock,
            stream,
            shared,
            recovered,
            report,
            mark,
        } = log;
        // Before any writer writes: the event log's thread, the maintenance thread that
        // pumps the sidecars' writers.
        mark.wait()?;
        let sidecars = match sidecars {
            Some((sidecars, pumps, marks)) => {
                for m in marks {
                    m.wait()?;
                }
                Some((sidecars, pumps))
            }
            None => None,
        };
        let writer = Writer::new(Arc::clone(&shared), recovered);
        let thread = std::thread::Builder::new()
            .name("selflog-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| Error::io("start writer thread for", &dir, e))?;
        let maintenance =
            Maintenance::start(&dir, Arc::clone(&shared), Arc::clone(&stream), sidecars)?;
        let compactor = shared
            .config
            .compaction_level
            .map(|level| {
                let writer = Arc::clone(&shared);
                let backlog = Arc::new(move || {
                    writer.queue.lock().events.len() >= writer.config.batch_events
                });
                Compactor::start(&dir, Arc::clone(&stream), Settings { level }, backlog)
            })
            .transpose()?;
        let retention_on_open = shared.config.retention_on_open;
        // Without an age or size limit retention chooses nothing: the segments' bounds and
        // lengths are not gathered for nothing (~0.3 ms at 61 segments, issue 21).
        let retention_limited =
            shared.config.retention_age.is_some() || shared.config.retention_bytes_max.is_some();
        let store = Store {
            stream,
            dir,
            writer: Some(WriterSide {
                shared,
                thread: Mutex::new(Some(thread)),
                maintenance,
                compactor,
                _lock: lock,
            }),
            report,
            sidecars: readers,
        };
        if retention_on_open {
            if retention_limited {
                store.retain(false)?;
            }
            store.maintenance()?.retain_sidecars()?;
        }
        Ok(store)
    }

    /// Opens the store in `dir` for reading only. Takes no lock and modifies nothing, so it
    /// works while another process writes the store, and on a store whose writer crashed.
    ///
    /// # Errors
    /// [`Error::NotAStore`] when `dir` is missing, a file, or has no `selflog.meta`;
    /// [`Error::UnsupportedVersion`]; [`Error::Corrupt`]; or an I/O error.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        check_store(&dir)?;
        // Files that cannot be read at all are found first, and skipped by the views only
        // because they are named in the warnings: a query never leaves out a segment
        // silently. Damage found later (or of another kind) fails the read that meets it.
        let check = read_only_check(&dir)?;
        let stream = Arc::new(
            Stream::new(&dir, StreamKind::Events, None)
                .skipping(check.unreadable)
                .deferring(check.manifest.as_ref())
                .preopened(check.opened),
        );
        // Sealed segments the manifest describes are opened deferred: a command reads
        // the footers of those it reads, a listing of the newest events one or two.
        stream.refresh_deferred()?;
        let sidecars = open_sidecars_read_only(&dir).map(Arc::new);
        let report = OpenReport {
            warnings: check.warnings,
            ..OpenReport::default()
        };
        Ok(Store {
            dir,
            stream,
            writer: None,
            report,
            sidecars,
        })
    }

    fn sidecars(&self) -> Result<&Sidecars> {
        self.sidecars.as_deref().ok_or_else(|| Error::NotAStore {
            path: self.dir.join(crate::maintenance::PATTERNS_DIR),
            reason: "this store has no pattern and stats streams (open it for writing once to create them)".into(),
        })
    }

    /// Checks that the sidecars are there and were opened for writing.
    fn sidecars_writable(&self) -> Result<()> {
        if let Some(p) = &self.report.sidecars_unwritable {
            return Err(Error::Corrupt {
                path: p.path.clone(),
                offset: p.offset,
                what: format!(
                    "the pattern and stats streams were not opened for writing: {}",
                    p.what
                ),
            });
        }
        self.sidecars().map(|_| ())
    }

    fn maintenance(&self) -> Result<&Maintenance> {
        self.writer
            .as_ref()
            .map(|w| &w.maintenance)
            .ok_or(Error::ReadOnly)
    }

    /// Records a learning component's finding about the event log (the old `patterns`
    /// table) in the pattern stream, returning the pattern's id at once; the maintenance
    /// thread writes it, and [`Store::flush`] waits for that. The same pattern recorded
    /// twice with the same creation time (an import run again) is stored once: the second
    /// call returns the first's id.
    ///
    /// ```
    /// # fn main() -> selflog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = selflog::Store::open(dir.path(), selflog::Config::default())?;
    /// use selflog::{EventId, NewPattern};
    /// let id = store.record_pattern(
    ///     &NewPattern::new("burst", 0.9, r#"{"n":3}"#)
    ///         .about(EventId(3))
    ///         .found_by("embryo-1"),
    /// )?;
    /// store.flush()?;
    /// # assert_eq!(id, 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] for a non-finite confidence or invalid JSON;
    /// [`Error::NotAStore`] if the store has no pattern stream; as [`Store::append`].
    pub fn record_pattern(&self, pattern: &NewPattern) -> Result<u64> {
        let event = crate::maintenance::pattern_event(pattern)?;
        self.sidecars_writable()?;
        self.maintenance()?.record_pattern(&event)
    }

    /// Patterns matching `filter`, oldest first.
    ///
    /// # Errors
    /// As [`Query::run`]; [`Error::NotAStore`] if the store has no pattern stream.
    pub fn patterns(&self, filter: &PatternFilter) -> Result<Vec<Pattern>> {
        let mut q = Query::new(self.sidecars()?.patterns.reader()?).order(Order::OldestFirst);
        if let Some(id) = filter.event_id {
            q = q.source(crate::maintenance::pattern_subject(id));
        }
        if let Some(t) = &filter.pattern_type {
            q = q.event_type(t.clone());
        }
        if let Some(e) = &filter.embryo_id {
            q = q.action(e.clone());
        }
        if let Some(t) = filter.since {
            q = q.since(t);
        }
        if let Some(t) = filter.until {
            q = q.until(t);
        }
        let mut out = Vec::new();
        for e in q.run()? {
            if let Some(p) = crate::maintenance::to_pattern(e?) {
                if filter.min_confidence.is_none_or(|c| p.confidence >= c) {
                    out.push(p);
                }
            }
        }
        Ok(out)
    }

    /// Appends a system stats record (imports use it for old records, the application for
    /// its own). The maintenance thread takes one every `stats_interval`, carrying the
    /// gauges (`active_embryos`, `avg_fitness`) of the last record recorded here (0
    /// before any). [`Store::flush`] waits until it is written.
    ///
    /// # Errors
    /// [`Error::NotAStore`] if the store has no stats stream; as [`Store::append`].
    pub fn record_system_stats(&self, s: &SystemStats) -> Result<()> {
        self.sidecars_writable()?;
        self.maintenance()?.record_stats(s)
    }

    /// Stats records with timestamp in `[since, until)`, oldest first.
    ///
    /// # Errors
    /// As [`Query::run`].
    pub fn system_stats(
        &self,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> Result<Vec<SystemStats>> {
        let mut q = Query::new(self.sidecars()?.stats.reader()?).order(Order::OldestFirst);
        if let Some(t) = since {
            q = q.since(t);
        }
        if let Some(t) = until {
            q = q.until(t);
        }
        let mut out = Vec::new();
        for e in q.run()? {
            if let Some(s) = crate::maintenance::to_stats(&e?) {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the store was opened with [`Store::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.writer.is_none()
    }

    /// What recovery found when the store was opened for writing (for a read-only open,
    /// only its warnings).
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// What the open noticed that the user should be told: for a read-only open, segments
    /// and events the store recorded that are gone, or in a file it cannot read at all (a
    /// damaged header, a file cut short), which it skips (it serves the rest); for both, a
    /// damaged segment manifest and cursors past the last event that exists. Empty when
    /// all is well.
    pub fn warnings(&self) -> &[Problem] {
        &self.report.warnings
    }

    pub(crate) fn shared(&self) -> Result<&Arc<Shared>> {
        self.writer
            .as_ref()
            .map(|w| &w.shared)
            .ok_or(Error::ReadOnly)
    }

    /// Validates `event` and queues it for the writer, returning its new id at once. Waits
    /// only when the queue is full (up to `Config::queue_wait_max`), never on disk.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] or [`Error::TooLarge`] for a bad event; [`Error::DiskFull`]
    /// while the disk is full; [`Error::Poisoned`] after a writer failure;
    /// [`Error::QueueFull`]; [`Error::ReadOnly`]; [`Error::Closed`].
    #[expect(
        clippy::needless_pass_by_value,
        reason = "the store takes the event over: the queue copies it, and it is freed here, on the appending thread, after the queue lock is released"
    )]
    pub fn append(&self, event: Event) -> Result<Appended> {
        self.shared()?.append(&event, |id| self.get(id))
    }

    /// Appends an event under a given id, for imports that keep their source's ids. `id`
    /// must be above every id used so far (gaps are allowed) and at most
    /// [`EventId::MAX`]; later events continue after it. A duplicate within the dedup
    /// window is not stored again.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] naming `id` when it does not increase or is above
    /// [`EventId::MAX`]; otherwise as [`Store::append`].
    #[expect(
        clippy::needless_pass_by_value,
        reason = "the store takes the event over: the queue copies it, and it is freed here, on the appending thread, after the queue lock is released"
    )]
    pub fn append_with_id(&self, id: EventId, event: Event) -> Result<Appended> {
        self.shared()?.append_with_id(id, &event, |id| self.get(id))
    }

    /// Makes every id up to `id` count as used: later appends get higher ids, also after
    /// the store is closed and reopened (the segment manifest records it; durable once
    /// [`Store::close`] returns). For copying a store whose newest events were lost
    /// (salvage): consumers of the old store may have seen ids up to its recorded
    /// high-water, and must never see one of them again for another event.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] when `id` is above [`EventId::MAX`]; [`Error::ReadOnly`];
    /// an I/O error recording it.
    pub fn reserve_ids_through(&self, id: EventId) -> Result<()> {
        let shared = self.shared()?;
        if id > EventId::MAX {
            return Err(Error::InvalidEvent {
                field: "id",
                reason: format!("{id} is above the largest id {}", EventId::MAX),
            });
        }
        let mut q = shared.queue.lock();
        if id.0 < q.next_id {
            return Ok(());
        }
        // Under the queue lock, so no append takes an id in between.
        crate::manifest::record_reserved(&self.dir, id.0)?;
        q.next_id = id.0 + 1;
        Ok(())
    }

    /// Validates every event, then queues them all in order under consecutive ids. Either
    /// every event is queued or, when one is invalid, none is.
    ///
    /// # Errors
    /// As [`Store::append`]; an invalid event's error names its field.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "the store takes the event over: the queue copies it, and it is freed here, on the appending thread, after the queue lock is released"
    )]
    pub fn append_batch(&self, events: Vec<Event>) -> Result<Vec<Appended>> {
        let mut out = Vec::new();
        self.shared()?
            .append_batch(&events, |id| self.get(id), &mut out)?;
        Ok(out)
    }

    /// [`Store::append_batch`] for a caller that must account for every event even when
    /// the store fails part way through the batch: what became of each event queued is
    /// pushed onto `out` (cleared first) in order, so after an error `out` holds the
    /// outcomes of the first `out.len()` events, and the rest were not queued. An invalid
    /// event still queues none of them (`out` stays empty).
    ///
    /// # Errors
    /// As [`Store::append_batch`].
    #[expect(
        clippy::needless_pass_by_value,
        reason = "as append_batch: the events are freed here, after the queue lock is released"
    )]
    pub fn append_batch_into(&self, events: Vec<Event>, out: &mut Vec<Appended>) -> Result<()> {
        out.clear();
        self.shared()?.append_batch(&events, |id| self.get(id), out)
    }

    /// The durability barrier: returns once every event appended before the call is
    /// committed (`Durability::Buffered`: survives the process being killed) or synced
    /// (`Durability::Sync`: survives power loss).
    ///
    /// # Errors
    /// [`Error::DiskFull`] while events cannot be written; [`Error::Poisoned`];
    /// [`Error::ReadOnly`].
    pub fn flush(&self) -> Result<()> {
        let shared = self.shared()?;
        let target = {
            let mut q = shared.queue.lock();
            let target = q.next_id - 1;
            q.flush_target = q.flush_target.max(target);
            shared.work.notify_one();
            target
        };
        shared.wait_written(target)?;
        if let Some(w) = &self.writer {
            w.maintenance.flush()?;
        }
        shared.save_duplicates(&self.dir)
    }

    /// Catches up with what the writer has published (in this or another process).
    /// Reads do this themselves; call it to poll.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or an I/O error from reading new frames.
    pub fn refresh(&self) -> Result<()> {
        self.stream.refresh()
    }

    /// A query over committed events; see [`Query`].
    pub fn query(&self) -> Query<'_> {
        Query::new(&self.stream)
    }

    /// The segment views, oldest first, for tests that look at segments directly.
    #[cfg(test)]
    pub(crate) fn views(&self) -> Vec<Arc<crate::stream::SegmentView>> {
        self.stream.views()
    }

    /// The event with `id`, if it is committed.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the frames on the way fail their checksum.
    pub fn get(&self, id: EventId) -> Result<Option<StoredEvent>> {
        get_in(&self.stream, id)
    }

    /// Every committed event in id order, streaming. Events committed while the scan runs
    /// are included up to the segment the scan is in when they are published.
    ///
    /// # Errors
    /// The iterator yields [`Error::Corrupt`] for a damaged frame, then stops.
    pub fn scan(&self) -> Result<Scan> {
        self.scan_from(EventId(0))
    }

    /// Committed events with id at least `from`, in id order.
    ///
    /// # Errors
    /// As [`Store::scan`].
    pub fn scan_from(&self, from: EventId) -> Result<Scan> {
        Scan::new(&self.stream, from)
    }

    /// The named consumer cursor `name` (the `processed` flag of the old schema). Names are
    /// 1 to 64 ASCII letters, digits, `-`, `_` or `.`. Works on read-only stores too: a
    /// consumer in another process commits its own cursor.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] for a bad name. A damaged cursor file is reported by
    /// [`Cursor::position`] and replaced by [`Cursor::commit`].
    pub fn cursor(&self, name: &str) -> Result<Cursor<'_>> {
        Cursor::new(&self.dir, &self.stream, name)
    }

    /// Every committed cursor, by name: the sound ones with their positions, and the
    /// damaged ones with the file and why, so that one damaged file hides no other cursor.
    ///
    /// # Errors
    /// An I/O error listing the `cursors` directory.
    pub fn cursors(&self) -> Result<CursorList> {
        crate::cursor::list(&self.dir)
    }

    /// Runs retention now (see [`Config::retention_age`] and
    /// [`Config::retention_bytes_max`]): deletes whole sealed segments, never the last one
    /// and never one holding ids inside the dedup window. With `dry_run`, only says what it
    /// would delete. Readers iterating over a deleted segment finish undisturbed.
    ///
    /// # Errors
    /// [`Error::ReadOnly`] on a read-only store; an I/O error deleting a file.
    pub fn retain(&self, dry_run: bool) -> Result<Vec<Deletion>> {
        self.maintenance()?.retain(dry_run)
    }

    /// Compacts every sealed segment not compacted yet, now, oldest first, and returns
    /// what became of each (the compaction thread does the same in the background when
    /// [`Config::compaction_level`] is set). A compacted segment holds the same events in
    /// about a fifth of the bytes. `format-spec/FORMAT.md#compacted-segments`
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; [`Error::Corrupt`] when a segment does not read back whole
    /// (it is then left as it was); an I/O error.
    pub fn compact(&self) -> Result<Vec<Compaction>> {
        let level = self
            .shared()?
            .config
            .compaction_level
            .unwrap_or(crate::config::COMPACTION_LEVEL_DEFAULT);
        Ok(
            crate::compact::compact_all(&self.dir, &self.stream, Settings { level })?
                .into_iter()
                .map(|(segment_id, outcome)| Compaction {
                    segment_id,
                    outcome,
                })
                .collect(),
        )
    }

    /// The segment files of the event log, oldest first.
    ///
    /// # Errors
    /// As [`Store::refresh`].
    pub fn segments(&self) -> Result<Vec<SegmentInfo>> {
        crate::retention::segment_infos(&self.stream)
    }

    /// Totals and ranges, from footers and the tail's index; scans no sealed data. A
    /// damaged `counters` file does not fail it: `duplicates_dropped` is then 0 and
    /// [`StoreStats::duplicates_unknown`] says why.
    ///
    /// # Errors
    /// As [`Store::refresh`]; an I/O error reading the directory.
    pub fn stats(&self) -> Result<StoreStats> {
        self.stream.refresh()?;
        let mut s = StoreStats::default();
        let views = self.stream.views();
        s.segments = views.len();
        for v in &views {
            let compacted = v.compacted();
            v.with_index(|ix, slot| {
                let sum = &ix.summary;
                // A sealed segment's file is its log (header, frames or blocks, footer);
                // a compacted one's slot gives the logical end, not the file's.
                if slot.sealed {
                    s.log_bytes += v.file_len();
                    s.sealed_bytes += v.file_len();
                    s.sealed_events += sum.event_count;
                    s.sealed_segments += 1;
                    s.compacted_segments += usize::from(compacted);
                } else {
                    s.log_bytes += slot.committed_len;
                    s.active_bytes += slot.committed_len;
                    s.active_events += sum.event_count;
                }
                if sum.event_count == 0 {
                    return;
                }
                s.total_events += sum.event_count;
                s.compressed_events += sum.compressed_count;
                s.data_raw_bytes += sum.data_raw_bytes;
                s.data_stored_bytes += sum.data_stored_bytes;
                let (lo, hi) = (Timestamp(sum.min_ts_us), Timestamp(sum.max_ts_us));
                s.first_timestamp = Some(s.first_timestamp.map_or(lo, |t| t.min(lo)));
                s.last_timestamp = Some(s.last_timestamp.map_or(hi, |t| t.max(hi)));
                s.first_id.get_or_insert(EventId(sum.first_id));
                s.last_id = Some(EventId(sum.last_id));
                for (&r, &n) in &ix.type_counts {
                    if let Some(name) = ix.strings.get(r as usize) {
                        *s.events_by_type.entry(name.to_string()).or_insert(0) += n;
                    }
                }
            });
        }
        for entry in std::fs::read_dir(&self.dir).map_err(|e| Error::io("list", &self.dir, e))? {
            let entry = entry.map_err(|e| Error::io("list", &self.dir, e))?;
            if let Ok(m) = entry.metadata() {
                s.disk_bytes += m.blocks() * 512;
            }
        }
        // A damaged `counters` file costs this one figure, never the others.
        match &self.writer {
            Some(w) => s.duplicates_dropped = w.shared.queue.lock().duplicates,
            None => match crate::cursor::read_duplicates(&self.dir) {
                Ok(n) => s.duplicates_dropped = n,
                Err(e) => s.duplicates_unknown = Some(e.to_string()),
            },
        }
        Ok(s)
    }

    /// Writes everything queued, syncs it, stops the writer and releases the lock.
    /// Dropping a store does the same, ignoring errors.
    ///
    /// # Errors
    /// The writer's failure, if it had one.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        // Taken, so that the drop after a `close` finds nothing left to do; the locks are
        // released at the end, after the last file is written.
        let Some(w) = self.writer.take() else {
            return Ok(());
        };
        w.shared.queue.lock().shutdown = true;
        w.shared.work.notify_all();
        w.shared.space.notify_all();
        // A compaction in progress is abandoned (its temporary file removed): the segment
        // stays as written until the next writable open compacts it.
        if let Some(c) = &w.compactor {
            c.stop();
        }
        // The maintenance thread writes and syncs what the sidecars' queues hold.
        w.maintenance.stop();
        if let Some(t) = w.thread.lock().take() {
            let _ = t.join();
        }
        let mut closed = close_log(&self.dir, &self.stream, &w.shared);
        for s in self.sidecars.iter().flat_map(|sc| sc.both()) {
            if let Some(log) = &s.log {
                let sidecar = close_log(&s.dir, &s.stream, log);
                closed = closed.and(sidecar);
            }
        }
        closed
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
