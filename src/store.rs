//! `Store`: open, append, flush, read, close; starts and stops the writer thread.
//!
//! A store is a directory holding `selflog.meta` (its identity and format version), `LOCK`
//! (the writer lock) and the segment files of the event stream. A writable store owns the
//! lock and one writer thread; a read-only store takes no lock, never modifies a file, and
//! sees what the writer (in this or another process) has published.

use std::collections::BTreeMap;
use std::fs::DirBuilder;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::config::{Config, Durability};
use crate::dedup::DedupWindow;
use crate::error::{Error, Result};
use crate::event::{Appended, Event, EventId, EventRef, StoredEvent, Timestamp};
use crate::format::{EventFrame, StoreMeta, FORMAT_VERSION, META_LEN, SEGMENT_HEADER_LEN};
use crate::lock::{WriterLock, LOCK_FILE};
use crate::maintenance::{
    sidecar_config, Maintenance, NewPattern, Pattern, Pumps, Sidecar, Sidecars, SystemStats,
};
use crate::query::{Order, Query};
use crate::recovery::{recover, OpenReport};
use crate::retention::{Deletion, SegmentInfo};
use crate::segment::{create_private, sync_dir, StreamKind};
use crate::stream::{
    borrowed_data, checksummed_frame, event_ref, materialize, raw_frame, read_frame, SegmentView,
    Snapshot, Stream,
};
use crate::writer::{Batch, QueueState, Recovered, Shared, Status, Writer, HEALTH_OK};

/// Name of the file that marks a directory as a store.
pub const META_FILE: &str = "selflog.meta";

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
    _lock: WriterLock,
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

/// Totals and ranges of a store, read from footers and the in-memory index of the tail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Events stored.
    pub total_events: u64,
    /// Smallest event timestamp.
    pub first_timestamp: Option<Timestamp>,
    /// Largest event timestamp.
    pub last_timestamp: Option<Timestamp>,
    /// Smallest event id.
    pub first_id: Option<EventId>,
    /// Largest event id.
    pub last_id: Option<EventId>,
    /// Segment files of the event stream.
    pub segments: usize,
    /// Bytes the store's files occupy on disk (allocated blocks), including the unused,
    /// preallocated end of the active segment and the dedup window image.
    pub disk_bytes: u64,
    /// Bytes of log: segment headers, committed frames and footers.
    pub log_bytes: u64,
    /// Events whose data is stored LZ4-compressed.
    pub compressed_events: u64,
    /// Bytes of event data as appended.
    pub data_raw_bytes: u64,
    /// Bytes of event data as stored.
    pub data_stored_bytes: u64,
    /// Events per event type.
    pub events_by_type: BTreeMap<String, u64>,
    /// Duplicates `append` dropped since the store was created (saved at each `flush` and
    /// at close).
    pub duplicates_dropped: u64,
}

impl StoreStats {
    /// Log bytes per stored event (0 for an empty store).
    #[expect(clippy::cast_precision_loss, reason = "a ratio for display")]
    pub fn bytes_per_event(&self) -> f64 {
        if self.total_events == 0 {
            0.0
        } else {
            self.log_bytes as f64 / self.total_events as f64
        }
    }
}

fn not_a_store(dir: &Path, reason: impl Into<String>) -> Error {
    Error::NotAStore {
        path: dir.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads and checks `selflog.meta`; `Ok(None)` when it does not exist.
fn read_meta(dir: &Path) -> Result<Option<StoreMeta>> {
    let path = dir.join(META_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    match StoreMeta::decode(&bytes) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.what.starts_with("unsupported format version") => {
            Err(Error::UnsupportedVersion {
                path,
                found: bytes
                    .get(8..12)
                    .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                supported: FORMAT_VERSION,
            })
        }
        Err(e) if e.offset == 0 => Err(not_a_store(
            dir,
            format!("{META_FILE} is not a selflog file"),
        )),
        Err(e) => Err(Error::corrupt(&path, e.offset as u64, e.what)),
    }
}

/// Checks that `dir` is an existing directory.
fn check_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(not_a_store(dir, "it is a file, not a directory")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(not_a_store(dir, "no such directory"))
        }
        Err(e) => Err(Error::io("stat", dir, e)),
    }
}

fn write_meta(dir: &Path) -> Result<()> {
    let meta = StoreMeta {
        version: FORMAT_VERSION,
        created_us: Timestamp::now().0,
    };
    let tmp = dir.join(format!("{META_FILE}.tmp"));
    let mut f = create_private(&tmp)?;
    f.write_all(&meta.encode())
        .map_err(|e| Error::io("write", &tmp, e))?;
    f.sync_all().map_err(|e| Error::io("sync", &tmp, e))?;
    std::fs::rename(&tmp, dir.join(META_FILE)).map_err(|e| Error::io("rename", &tmp, e))?;
    sync_dir(dir)
}

const _: () = assert!(META_LEN < SEGMENT_HEADER_LEN);

/// Events of a batch whose dedup buckets are loaded together before they are looked up.
const DEDUP_TOUCH_AHEAD: usize = 16;

/// The dedup window's image, written by a clean close and read by the next writable open
/// (`format-spec/FORMAT.md#dedup-window-image`).
pub(crate) const DEDUP_IMAGE_FILE: &str = "dedup.window";

/// The deduplication window of a store opened for writing: the image the last clean close
/// left, brought up to date with the events stored after it, or else rebuilt from the
/// segments. `last_id` is the store's last committed id. Records in `report` where the
/// window came from.
fn open_dedup(
    dir: &Path,
    stream: &Stream,
    capacity: usize,
    last_id: u64,
    report: &mut OpenReport,
) -> Result<DedupWindow> {
    let path = dir.join(DEDUP_IMAGE_FILE);
    // What a close killed while writing the image left (the next close would truncate it).
    let _ = std::fs::remove_file(dir.join(format!("{DEDUP_IMAGE_FILE}.tmp")));
    if capacity == 0 {
        // A stale image of an earlier window is only dead weight on the disk.
        let _ = std::fs::remove_file(&path);
        return Ok(DedupWindow::new(0));
    }
    let image = match load_dedup_image(&path, stream, capacity, last_id) {
        Ok(image) => image,
        Err(why) => {
            report.dedup_image_rejected = Some(format!("{}: {why}", path.display()));
            None
        }
    };
    report.dedup_image_id = image.as_ref().and_then(DedupWindow::newest);
    let (window, read) = rebuild_dedup(stream, capacity, image)?;
    report.dedup_events_read = read;
    Ok(window)
}

/// The window in the image at `path`, checked against the store: `Ok(None)` when there is
/// none, `Err` saying why one cannot be used.
fn load_dedup_image(
    path: &Path,
    stream: &Stream,
    capacity: usize,
    last_id: u64,
) -> std::result::Result<Option<DedupWindow>, String> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open it: {e}")),
    };
    let len = file
        .metadata()
        .map_err(|e| format!("cannot stat it: {e}"))?
        .len();
    let mut input = std::io::BufReader::with_capacity(1 << 20, &mut file);
    let (window, header) = DedupWindow::read_image(capacity, len, &mut input)?;
    if header.newest > last_id {
        return Err(format!(
            "it covers events up to {}, past the store's last ({last_id})",
            header.newest
        ));
    }
    match get_in(stream, EventId(header.newest)) {
        Ok(Some(e)) if e.hash == header.newest_hash => Ok(Some(window)),
        Ok(_) => Err(format!(
            "event {} is not the one it was written after",
            header.newest
        )),
        Err(e) => Err(format!("event {} cannot be read: {e}", header.newest)),
    }
}

/// Below this many ids in the window (unless it is full), reading the window's events is
/// no slower than reading a 16 MB image, and no image is written.
const DEDUP_IMAGE_IDS_MIN: u64 = 50_000;

/// Writes the image of `window` for the next writable open to read instead of the
/// segments: to a temporary file, renamed over the old image. Not synced: an image a crash
/// damaged fails its checksum and the window is rebuilt. Best effort: a failure costs the
/// next open time, nothing else, so the temporary file is removed and nothing reported.
fn save_dedup_image(dir: &Path, stream: &Stream, window: &DedupWindow) {
    let path = dir.join(DEDUP_IMAGE_FILE);
    let Some(newest) = window
        .newest()
        .filter(|_| window.ids_covered() >= DEDUP_IMAGE_IDS_MIN.min(window.capacity()))
    else {
        // Too few events for the image to beat reading them: an older image would still
        // be right (the open reads the events after it), but it would be dead weight.
        let _ = std::fs::remove_file(&path);
        return;
    };
    let Ok(Some(event)) = get_in(stream, EventId(newest)) else {
        return;
    };
    let tmp = dir.join(format!("{DEDUP_IMAGE_FILE}.tmp"));
    let written = crate::segment::create_private(&tmp).ok().and_then(|f| {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, f);
        let ok = window.write_image(event.hash, &mut out).ok()? && out.flush().is_ok();
        ok.then_some(())
    });
    if written.is_none() || std::fs::rename(&tmp, &path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Brings the deduplication window (`capacity` > 0: [`open_dedup`] handles a disabled one)
/// up to the newest `capacity` stored events, reading the segments that hold the events
/// after `from`'s newest (every one of the window when `from` is `None`), on every core:
/// this is most of the time of opening a large store for writing without an image. Returns the window and how many events it read. A daemon
/// that re-sends its in-flight events after a crash thus stores each once.
fn rebuild_dedup(
    stream: &Stream,
    capacity: usize,
    from: Option<DedupWindow>,
) -> Result<(DedupWindow, u64)> {
    let after = from.as_ref().and_then(DedupWindow::newest).unwrap_or(0);
    let mut window = from.unwrap_or_else(|| DedupWindow::new(capacity));
    stream.refresh()?;
    // The newest segments, back to the one holding the window's oldest event or the
    // image's newest.
    let mut snaps = Vec::new();
    let mut covered = 0u64;
    for view in stream.views().iter().rev() {
        if covered >= capacity as u64 {
            break;
        }
        let (snap, (events, last)) =
            view.snapshot_and(|ix, _| (ix.summary.event_count, ix.summary.last_id));
        if events == 0 {
            continue;
        }
        if last <= after {
            break;
        }
        covered += events;
        snaps.push(snap);
    }
    snaps.reverse();
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(snaps.len())
        .max(1);
    let per_thread = snaps.len().div_ceil(threads);
    let walked: Vec<Result<Vec<(u64, u64)>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = snaps
            .chunks(per_thread.max(1))
            .map(|chunk| {
                scope.spawn(move || {
                    let mut entries = Vec::new();
                    for snap in chunk {
                        segment_hashes(snap, &mut entries)?;
                    }
                    Ok(entries)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a dedup rebuild thread panicked"))
            .collect()
    });
    let mut all = Vec::with_capacity(usize::try_from(covered).unwrap_or(capacity));
    for entries in walked {
        all.extend(entries?.into_iter().filter(|&(_, id)| id > after));
    }
    let all = &all[all.len().saturating_sub(capacity)..];
    // Each insert is a cache miss in a large table: the buckets of the next few are loaded
    // together first, so that their misses overlap.
    for chunk in all.chunks(DEDUP_TOUCH_AHEAD) {
        for &(hash, _) in chunk {
            window.touch(hash);
        }
        for &(hash, id) in chunk {
            window.insert(hash, id);
        }
    }
    Ok((window, all.len() as u64))
}

/// The committed event with `id` in `stream` ([`Store::get`]).
fn get_in(stream: &Stream, id: EventId) -> Result<Option<StoredEvent>> {
    stream.refresh()?;
    let Some(view) = stream.view_for(id.0) else {
        return Ok(None);
    };
    let Some((block, checkpoint)) = view.with_index(|ix, _| ix.locate(id.0)) else {
        return Ok(None);
    };
    let snap = view.snapshot();
    let end = (block.offset + u64::from(block.len)).min(snap.committed_len);
    let base = snap.header.base_id;
    // Start at the checkpoint when the frame there is the event it names; a checkpoint
    // that is off (a writer bug under the footer's CRC) costs a walk from the block's
    // start, never a wrong answer, and `verify` reports it.
    let start = checkpoint
        .filter(|&(at, want)| {
            at < end
                && matches!(peek_frame_at(&snap, at, end),
                    Some((Some(delta), _)) if base.wrapping_add(delta) == want)
        })
        .map_or(block.offset, |(at, _)| at);
    let found = find_in_block(&snap, start, end, id, false)?;
    if found.is_some() {
        return Ok(found);
    }
    // The block's ids say it holds `id`, but the walk that skips frames unchecked did
    // not find it: a damaged frame on the way lies about its id or length (or a foreign
    // writer left a gap). Walking again with every frame checked reports the damage.
    find_in_block(&snap, block.offset, end, id, true)
}

/// The dedup window key of a stored event frame: what `append` computed for the event
/// (`Event::dedup_home`, from the frame's names and data, and its stored content hash).
/// `None` for a frame too damaged to tell (a name undefined, a short payload that does not
/// decompress): such an event could not be confirmed as an original anyway.
fn frame_dedup_key(
    snap: &crate::stream::Snapshot,
    offset: u64,
    f: &crate::format::EventFrame<'_>,
) -> Option<u64> {
    let name_len = |r: u32| snap.strings.get(r as usize).map(|s| s.len());
    let data_len = f.raw_len.map(|n| n as usize).or(f.payload.map(<[u8]>::len));
    // Short data stored compressed (only when `compress_len_min` was set below the edge
    // limit) is decompressed for its edges.
    let small = match data_len {
        Some(n) if n <= crate::event::HOME_EDGES_LEN_MAX => {
            Some(crate::stream::frame_data_bytes_raw(snap, offset, f).ok()??)
        }
        _ => None,
    };
    let action_len = match f.action_ref {
        Some(r) => Some(name_len(r)?),
        None => None,
    };
    let home = crate::event::dedup_home(
        crate::event::Timestamp(snap.header.base_timestamp_us.wrapping_add(f.ts_delta)),
        name_len(f.type_ref)?,
        action_len,
        name_len(f.source_ref)?,
        data_len,
        small.as_deref(),
    );
    Some(crate::event::dedup_key(home, f.hash))
}

/// Appends (dedup window key, id) of every event frame of a segment snapshot to `out`.
fn segment_hashes(snap: &crate::stream::Snapshot, out: &mut Vec<(u64, u64)>) -> Result<()> {
    let mut offset = SEGMENT_HEADER_LEN as u64;
    while offset < snap.committed_len {
        // The window is only a hint (a hit is confirmed by content), so the hashes are
        // read without checking each frame's checksum; a frame whose shape is off gets the
        // checked decode, which reports the damage.
        let unchecked = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(snap.committed_len).ok())
            .and_then(|(a, b)| snap.map.get(a..b))
            .and_then(|w| crate::format::decode_frame_unchecked(w).ok().flatten());
        let (frame, next) = match unchecked {
            Some((crate::format::Frame::Event(f), len)) => (Some(f), offset + len as u64),
            Some((_, len)) => (None, offset + len as u64),
            None => raw_frame(snap, offset)?,
        };
        if let Some(f) = frame {
            if let Some(key) = frame_dedup_key(snap, offset, &f) {
                out.push((key, snap.header.base_id.wrapping_add(f.id_delta)));
            }
        }
        offset = next;
    }
    Ok(())
}

/// Creates a missing store directory (0700, synced in its parent) and refuses a file or a
/// non-empty directory that is not a store.
fn prepare_dir(dir: &Path) -> Result<()> {
    let dir = dir.to_path_buf();
    match std::fs::metadata(&dir) {
        Ok(m) if !m.is_dir() => return Err(not_a_store(&dir, "it is a file, not a directory")),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| Error::io("create directory", &dir, e))?;
            // Make the new directory's entry durable in its parent.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        Err(e) => return Err(Error::io("stat", &dir, e)),
    }
    if read_meta(&dir)?.is_none() {
        let foreign = std::fs::read_dir(&dir)
            .map_err(|e| Error::io("list", &dir, e))?
            .filter_map(std::result::Result::ok)
            .any(|e| e.file_name() != LOCK_FILE && e.file_name() != *format!("{META_FILE}.tmp"));
        if foreign {
            return Err(not_a_store(
                    &dir,
                    format!("the directory is not empty and has no {META_FILE}; choose an empty or new directory"),
                ));
        }
    }
    Ok(())
}

/// Checks that `dir` is a store this build can read, without opening its segments.
pub(crate) fn check_store(dir: &Path) -> Result<()> {
    check_dir(dir)?;
    if read_meta(dir)?.is_none() {
        return Err(not_a_store(dir, format!("it has no {META_FILE}")));
    }
    Ok(())
}

/// A stream opened for writing: its lock, its recovered tail, its reader view and its
/// queue with the dedup window. The event log and each sidecar are opened alike.
struct OpenLog {
    lock: WriterLock,
    stream: Arc<Stream>,
    shared: Arc<Shared>,
    recovered: Recovered,
    report: OpenReport,
}

/// Opens the stream in `dir` for writing, creating it if the directory is missing or empty
/// and recovering it if its last writer died; starts no thread.
fn open_log(dir: &Path, config: Config) -> Result<OpenLog> {
    prepare_dir(dir)?;
    let lock = WriterLock::acquire(dir)?;
    if read_meta(dir)?.is_none() {
        write_meta(dir)?;
    }
    let (recovered, mut report) = recover(dir)?;
    // The reader view, loaded once here for the dedup window and kept.
    let generation = Arc::new(AtomicU64::new(0));
    let stream = Arc::new(Stream::new(
        dir,
        StreamKind::Events,
        Some(Arc::clone(&generation)),
    ));
    let dedup = open_dedup(
        dir,
        &stream,
        config.dedup_window,
        recovered.last_id,
        &mut report,
    )?;
    let dedup_hint = dedup.hint();
    let duplicates = crate::cursor::read_duplicates(dir)?;
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
    Ok(OpenLog {
        lock,
        stream,
        shared,
        recovered,
        report,
    })
}

/// Opens both sidecars of the store in `dir` for writing, each like an event log, with
/// writers for the maintenance thread to pump.
fn open_sidecars(dir: &Path, main: &Config) -> Result<(Arc<Sidecars>, Pumps)> {
    let config = sidecar_config(main);
    let open = |dir: PathBuf| -> Result<(Sidecar, Writer)> {
        let log = open_log(&dir, config.clone())?;
        let writer = Writer::pumped(Arc::clone(&log.shared), log.recovered);
        Ok((
            Sidecar::writable(dir, log.stream, log.shared, log.lock),
            writer,
        ))
    };
    let [patterns, stats] = Sidecars::dirs(dir);
    let (patterns, patterns_writer) = open(patterns)?;
    let (stats, stats_writer) = open(stats)?;
    Ok((
        Arc::new(Sidecars { patterns, stats }),
        Pumps {
            patterns: patterns_writer,
            stats: stats_writer,
        },
    ))
}

/// The sidecars of the store in `dir` for reading, if both exist.
fn open_sidecars_read_only(dir: &Path) -> Result<Option<Sidecars>> {
    let dirs = Sidecars::dirs(dir);
    if dirs.iter().any(|d| !d.join(META_FILE).exists()) {
        return Ok(None);
    }
    for d in &dirs {
        check_store(d)?;
    }
    Sidecars::read_only(dir).map(Some)
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
    /// segment is damaged, [`Error::InvalidConfig`], or an I/O error.
    pub fn open(dir: impl AsRef<Path>, config: Config) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        config.check()?;
        let OpenLog {
            lock,
            stream,
            shared,
            recovered,
            report,
        } = open_log(&dir, config)?;
        // The pattern and stats streams before any thread starts: if they cannot be
        // opened, no thread of this store has started yet.
        let sidecars = if shared.config.sidecars {
            Some(open_sidecars(&dir, &shared.config)?)
        } else {
            None
        };
        let readers = sidecars.as_ref().map(|(sc, _)| Arc::clone(sc));
        let writer = Writer::new(Arc::clone(&shared), recovered);
        let thread = std::thread::Builder::new()
            .name("selflog-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| Error::io("start writer thread for", &dir, e))?;
        let maintenance = Maintenance::start(
            &dir,
            Arc::clone(&shared),
            Arc::clone(&stream),
            sidecars,
            get_in,
        )?;
        let retention_on_open = shared.config.retention_on_open;
        let store = Store {
            stream,
            dir,
            writer: Some(WriterSide {
                shared,
                thread: Mutex::new(Some(thread)),
                maintenance,
                _lock: lock,
            }),
            report,
            sidecars: readers,
        };
        if retention_on_open {
            store.retain(false)?;
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
        let stream = Arc::new(Stream::new(&dir, StreamKind::Events, None));
        stream.refresh()?;
        let sidecars = open_sidecars_read_only(&dir)?.map(Arc::new);
        Ok(Store {
            dir,
            stream,
            writer: None,
            report: OpenReport::default(),
            sidecars,
        })
    }

    fn sidecars(&self) -> Result<&Sidecars> {
        self.sidecars.as_deref().ok_or_else(|| Error::NotAStore {
            path: self.dir.join(crate::maintenance::PATTERNS_DIR),
            reason: "this store has no pattern and stats streams (open it for writing once to create them)".into(),
        })
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
        self.sidecars()?;
        self.maintenance()?.record_pattern(&event)
    }

    /// Patterns matching `filter`, oldest first.
    ///
    /// # Errors
    /// As [`Query::run`]; [`Error::NotAStore`] if the store has no pattern stream.
    pub fn patterns(&self, filter: &PatternFilter) -> Result<Vec<Pattern>> {
        let mut q = Query::new(&self.sidecars()?.patterns.stream).order(Order::OldestFirst);
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
        self.sidecars()?;
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
        let mut q = Query::new(&self.sidecars()?.stats.stream).order(Order::OldestFirst);
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

    /// What recovery found when the store was opened for writing.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
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
        self.shared()?.append_batch(&events, |id| self.get(id))
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
        let sync = shared.config.durability == Durability::Sync;
        let mut st = shared.status.lock();
        loop {
            if let Some(why) = &st.fatal {
                return Err(Error::Poisoned(why.clone()));
            }
            if let Some(path) = &st.disk_full {
                return Err(Error::DiskFull { path: path.clone() });
            }
            let done = if sync { st.durable_id } else { st.written_id };
            if done >= target {
                drop(st);
                if let Some(w) = &self.writer {
                    w.maintenance.flush()?;
                }
                return self.save_duplicates(shared);
            }
            if st.stopped {
                return Err(Error::Closed);
            }
            shared.progress.wait(&mut st);
        }
    }

    /// Saves the duplicate count if it changed since it was last saved.
    fn save_duplicates(&self, shared: &Shared) -> Result<()> {
        let mut q = shared.queue.lock();
        if q.duplicates == q.duplicates_saved {
            return Ok(());
        }
        let count = q.duplicates;
        q.duplicates_saved = count;
        drop(q);
        crate::cursor::write_duplicates(&self.dir, count)
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
    pub(crate) fn views(&self) -> Vec<Arc<SegmentView>> {
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
        self.stream.refresh()?;
        let views = self.stream.views();
        let first = views
            .partition_point(|v| v.header.base_id <= from.0)
            .saturating_sub(1);
        Ok(Scan {
            views,
            next_view: first,
            current: None,
            from,
            done: false,
            scratch: Vec::new(),
        })
    }

    /// The named consumer cursor `name` (the `processed` flag of the old schema). Names are
    /// 1 to 64 ASCII letters, digits, `-`, `_` or `.`. Works on read-only stores too: a
    /// consumer in another process commits its own cursor.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] for a bad name.
    pub fn cursor(&self, name: &str) -> Result<Cursor<'_>> {
        crate::cursor::check_name(name)?;
        Ok(Cursor {
            store: self,
            name: name.to_owned(),
        })
    }

    /// Every committed cursor, by name.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a damaged cursor file, or an I/O error.
    pub fn cursors(&self) -> Result<Vec<(String, EventId)>> {
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

    /// The segment files of the event log, oldest first.
    ///
    /// # Errors
    /// As [`Store::refresh`].
    pub fn segments(&self) -> Result<Vec<SegmentInfo>> {
        crate::retention::segment_infos(&self.stream)
    }

    /// Totals and ranges, from footers and the tail's index; scans no sealed data.
    ///
    /// # Errors
    /// An I/O error reading the directory.
    pub fn stats(&self) -> Result<StoreStats> {
        self.stream.refresh()?;
        let mut s = StoreStats::default();
        let views = self.stream.views();
        s.segments = views.len();
        for v in &views {
            v.with_index(|ix, slot| {
                let sum = &ix.summary;
                s.log_bytes += slot.committed_len
                    + if slot.sealed {
                        v.file_len() - slot.committed_len
                    } else {
                        0
                    };
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
        s.duplicates_dropped = match &self.writer {
            Some(w) => w.shared.queue.lock().duplicates,
            None => crate::cursor::read_duplicates(&self.dir)?,
        };
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

/// A durable named cursor; see [`Store::cursor`].
pub struct Cursor<'s> {
    store: &'s Store,
    name: String,
}

impl Cursor<'_> {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The id of the last event processed, `None` if never committed.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a damaged cursor file, or an I/O error.
    pub fn position(&self) -> Result<Option<EventId>> {
        crate::cursor::read(&self.store.dir, &self.name)
    }

    /// Records that every event up to `id` is processed: durable and atomic (after a crash
    /// the cursor holds the old or the new position). Commit only once the work is done.
    /// Moving a cursor back is allowed (to reprocess).
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] when `id` is past the last committed event; an I/O error.
    pub fn commit(&self, id: EventId) -> Result<()> {
        self.store.refresh()?;
        let last = self.store.stats()?.last_id.unwrap_or(EventId(0));
        if id > last {
            return Err(Error::InvalidEvent {
                field: "cursor",
                reason: format!("id {id} is past the last committed event {last}"),
            });
        }
        crate::cursor::write(&self.store.dir, &self.name, id)
    }

    /// The events after the cursor ("unprocessed"), in id order.
    ///
    /// # Errors
    /// As [`Store::scan`] and [`Cursor::position`].
    pub fn unprocessed(&self) -> Result<Scan> {
        let from = self.position()?.map_or(EventId(0), |p| EventId(p.0 + 1));
        self.store.scan_from(from)
    }
}

/// A streaming iterator over committed events in id order; see [`Store::scan`]. As an
/// [`Iterator`] it yields owned [`StoredEvent`]s; [`Scan::next_ref`] yields them borrowed.
pub struct Scan {
    views: Vec<Arc<SegmentView>>,
    next_view: usize,
    current: Option<(Snapshot, u64)>,
    from: EventId,
    done: bool,
    /// `next_ref`'s decompression buffer, reused from event to event.
    scratch: Vec<u8>,
}

impl Scan {
    /// The next event, borrowed instead of copied: names from the segment's dictionary,
    /// data from the map or, when stored compressed, from one reused buffer. The borrow
    /// lasts until the next call; [`Iterator::next`] and this advance the same scan.
    ///
    /// # Errors
    /// As [`Iterator::next`]: a damaged frame ends the scan with its error.
    pub fn next_ref(&mut self) -> Option<Result<EventRef<'_>>> {
        if self.done {
            return None;
        }
        // Finds the next event's frame; only then are the snapshot and buffer borrowed.
        let offset = match self.advance() {
            Ok(Some(at)) => at,
            Ok(None) => return None,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        let event = event_frame(self.current.as_ref(), offset).and_then(|(snap, f)| {
            let data = borrowed_data(snap, offset, &f, &mut self.scratch)?;
            event_ref(snap, offset, &f, data)
        });
        if event.is_err() {
            self.done = true;
        }
        Some(event)
    }

    /// Moves past the next event frame at or after `from`, returning its offset in the
    /// current segment (`None` at the end). Frames are stepped over by their length; each
    /// one passed over (a string definition, an event before `from`) has its checksum
    /// checked, and one whose shape or checksum is off goes to the checked decode, whose
    /// error this returns.
    fn advance(&mut self) -> Result<Option<u64>> {
        loop {
            if let Some((snap, offset)) = &mut self.current {
                let end = snap.committed_len;
                if *offset < end {
                    let at = *offset;
                    let base = snap.header.base_id;
                    match peek_frame_at(snap, at, end) {
                        Some((Some(delta), len)) if base.wrapping_add(delta) >= self.from.0 => {
                            *offset = at + len as u64;
                            return Ok(Some(at));
                        }
                        Some((_, len)) if checksummed_frame(snap, at, len).is_some() => {
                            *offset = at + len as u64;
                        }
                        _ => {
                            // Damage (or a shape the peek does not take): the checked decode
                            // reports it, or steps over the frame it finds.
                            let (f, next) = raw_frame(snap, at)?;
                            *offset = next;
                            if f.is_some_and(|f| base.wrapping_add(f.id_delta) >= self.from.0) {
                                return Ok(Some(at));
                            }
                        }
                    }
                    continue;
                }
                self.current = None;
            }
            let Some(view) = self.views.get(self.next_view) else {
                return Ok(None);
            };
            self.next_view += 1;
            let start = view
                .with_index(|ix, _| ix.block_of(self.from.0).map(|b| b.offset))
                .unwrap_or(SEGMENT_HEADER_LEN as u64);
            self.current = Some((view.snapshot(), start));
        }
    }
}

impl Iterator for Scan {
    type Item = Result<StoredEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let event = match self.advance() {
            Ok(Some(offset)) => event_frame(self.current.as_ref(), offset)
                .and_then(|(snap, f)| materialize(snap, offset, &f, None)),
            Ok(None) => return None,
            Err(e) => Err(e),
        };
        if event.is_err() {
            self.done = true;
        }
        Some(event)
    }
}

/// The event frame at `offset` of the `current` segment of a scan, where
/// [`Scan::advance`] stopped, decoded with its checksum checked, and the snapshot it lies in.
fn event_frame(
    current: Option<&(Snapshot, u64)>,
    offset: u64,
) -> Result<(&Snapshot, EventFrame<'_>)> {
    let Some((snap, _)) = current else {
        unreachable!("advance leaves the frame's segment current");
    };
    match raw_frame(snap, offset)? {
        (Some(f), _) => Ok((snap, f)),
        (None, _) => Err(Error::corrupt(
            &snap.path,
            offset,
            "frame read as an event, decoded as a string",
        )),
    }
}

/// The id and length of the frame at `offset` (id `None` for a string definition), from its
/// first bytes alone, without its checksum; `None` when its shape is off.
fn peek_frame_at(snap: &Snapshot, offset: u64, end: u64) -> Option<(Option<u64>, usize)> {
    let from = usize::try_from(offset).ok()?;
    let to = usize::try_from(end).ok()?;
    crate::format::peek_frame(snap.map.get(from..to)?)
}

/// Event `id` among the frames from `offset` to `end` of one block. Unless `checked`, frames
/// before it are skipped by their length and id alone; the frame returned, and any frame
/// whose shape is off, is decoded and checked against its CRC either way.
fn find_in_block(
    snap: &Snapshot,
    mut offset: u64,
    end: u64,
    id: EventId,
    checked: bool,
) -> Result<Option<StoredEvent>> {
    let base = snap.header.base_id;
    while offset < end {
        let peeked = if checked {
            None
        } else {
            peek_frame_at(snap, offset, end)
        };
        match peeked {
            Some((Some(delta), len)) if base.wrapping_add(delta) < id.0 => offset += len as u64,
            Some((None, len)) => offset += len as u64,
            _ => {
                let (ev, next) = read_frame(snap, offset)?;
                match ev {
                    Some(ev) if ev.id == id => return Ok(Some(ev)),
                    Some(ev) if ev.id > id => return Ok(None),
                    _ => offset = next,
                }
            }
        }
    }
    Ok(None)
}
