//! The reader's view of one stream: an ordered set of segment files in the store directory.
//!
//! Readers never take the writer lock and never modify a file. They see exactly the
//! published committed prefix: a segment's newest valid commit slot says how far its frames
//! may be read, and every frame read is checked against its CRC. A view maps at most the
//! committed length of an unsealed segment, or a sealed one up to the end of its footer, so
//! the writer's shrink at seal time never pulls pages from under it.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use memmap2::Mmap;
use parking_lot::{Mutex, RwLock};

use crate::cache::{DataCache, DATA_CACHE_BYTES};
use crate::checked::CheckedBlocks;
use crate::error::{Error, Result};
use crate::event::{EventId, Timestamp};
use crate::format::{
    self, CommitSlot, ManifestEntry, SegmentHeader, Summary, PACKED_VERSION, SEGMENT_HEADER_LEN,
};
use crate::index::SegmentIndex;
use crate::packed::{BlockCache, BlockMemo, Packed, BLOCK_CACHE_BYTES};
pub(crate) use crate::segment::footer::{read_footer, read_footer_deferred};
use crate::segment::{
    check_identity, image, map, read_header, read_header_and_len, scan_frames, sealed_len,
    OpenedSegment, StreamKind,
};
use footer::index_from_footer;

mod footer;
mod frames;

pub(crate) use frames::{
    borrowed_data, checksummed_frame, decompress_payload, event_ref, frame_bytes, frame_data_bytes,
    frame_data_bytes_raw, frames_check_out, materialize, materialize_cached, raw_frame, read_frame,
    utf8,
};

/// One segment file of the event log, as `Store::segments` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// The file.
    pub path: PathBuf,
    /// Its number in the stream.
    pub segment_id: u32,
    /// Events in it.
    pub events: u64,
    /// First and last event id, if it holds events.
    pub ids: Option<(EventId, EventId)>,
    /// Smallest and largest event timestamp, if it holds events.
    pub time_range: Option<(Timestamp, Timestamp)>,
    /// Bytes of the file (for the active segment: its full preallocated length).
    pub file_len: u64,
    /// Committed bytes of frames (header included).
    pub committed_len: u64,
    /// Sealed (immutable, footer written) or still appended to.
    pub sealed: bool,
}

/// One segment as a reader sees it.
pub(crate) struct SegmentView {
    /// The segment's number.
    pub id: u32,
    /// Its file.
    pub path: PathBuf,
    shared_path: Arc<Path>,
    file: File,
    /// Its header.
    pub header: SegmentHeader,
    state: RwLock<ViewState>,
    /// The summary of the segment once it is seen sealed (it never changes after that),
    /// readable without the state lock: a query rules out most sealed segments by their
    /// bounds alone, without a lock, a snapshot or a clone of the view per segment.
    ///
    /// For a deferred view, the bounds the segment manifest recorded (count, ids and time
    /// range; its other fields are 0), checked against the commit slot at open and against
    /// the footer's summary when the view is loaded.
    sealed_summary: OnceLock<Summary>,
    /// Set while the view is deferred: a sealed segment opened from its header alone, with
    /// its newest slot and the file's length when it was opened; its footer (and,
    /// compacted, its tables) not read yet, not even its length. [`SegmentView::load`]
    /// reads them.
    deferred: Mutex<Option<(CommitSlot, u64)>>,
    /// The stream's cache of expanded blocks of compacted segments.
    blocks: Arc<BlockCache>,
}

struct ViewState {
    map: Arc<Mmap>,
    slot: CommitSlot,
    index: SegmentIndex,
    /// The closed blocks of `index` checked whole, with room for all of them.
    checked: Arc<CheckedBlocks>,
    scanned_len: u64,
    file_len: u64,
    /// The blocks of a compacted segment; `None` for a segment read as written.
    packed: Option<Arc<Packed>>,
}

impl ViewState {
    /// Gives the marks room for every closed block of the index.
    fn make_room_for_marks(&mut self) {
        if self.index.blocks.len() > self.checked.capacity() {
            self.checked = Arc::new(self.checked.grown(self.index.blocks.len()));
        }
    }
}

/// The blocks of a compacted segment a snapshot expanded so far, by block number.
pub(crate) type Memo = Arc<BlockMemo>;

/// What a reader needs to decode frames of a segment without holding its lock.
#[derive(Clone)]
pub(crate) struct Snapshot {
    pub map: Arc<Mmap>,
    pub header: SegmentHeader,
    pub committed_len: u64,
    pub strings: Arc<Vec<Arc<str>>>,
    pub path: Arc<Path>,
    /// The view's closed blocks checked whole (room for every block closed at the
    /// snapshot's moment).
    pub checked: Arc<CheckedBlocks>,
    /// A compacted segment's blocks, and those this snapshot expanded so far: frames
    /// borrowed from the snapshot stay valid as long as it lives.
    pub(crate) packed: Option<(Arc<Packed>, Memo)>,
}

impl Snapshot {
    /// The frame bytes from offset `at` to the end of the run of frames that holds it (the
    /// committed end for a segment read as written, the end of its block for a compacted
    /// one: no frame crosses a block). `None` when `at` is past the committed end or its
    /// block does not check out ([`Snapshot::frames_checked`] says why).
    #[inline]
    pub fn frames_from(&self, at: u64) -> Option<&[u8]> {
        match &self.packed {
            None => {
                let a = usize::try_from(at).ok()?;
                let b = usize::try_from(self.committed_len).ok()?;
                self.map.get(a..b)
            }
            Some((packed, memo)) => {
                let k = packed.block_at(at)?;
                let bytes = memo
                    .slot(k)?
                    .get_or_init(|| packed.expand(k).ok())
                    .as_deref()?;
                let start = packed.table()[k].logical_start;
                bytes.get(usize::try_from(at - start).ok()?..)
            }
        }
    }

    /// The frame bytes `from..to`, when they lie in one run (see [`Snapshot::frames_from`]).
    #[inline]
    pub fn frames(&self, from: u64, to: u64) -> Option<&[u8]> {
        let len = usize::try_from(to.checked_sub(from)?).ok()?;
        self.frames_from(from)?.get(..len)
    }

    /// [`Snapshot::frames_from`], or why not: the run of frames holding `at` as a buffer,
    /// the offset its first byte has, and the offset where the run ends.
    pub fn frames_checked(&self, at: u64) -> Result<(&[u8], u64, u64)> {
        match &self.packed {
            None => Ok((&self.map[..], 0, self.committed_len)),
            Some((packed, memo)) => {
                packed.checked()?;
                let k = packed
                    .block_at(at)
                    .ok_or_else(|| Error::corrupt(&self.path, at, "offset outside every block"))?;
                let slot = memo
                    .slot(k)
                    .ok_or_else(|| Error::corrupt(&self.path, at, "offset outside every block"))?;
                if slot.get().and_then(Option::as_deref).is_none() {
                    // Expanding again gives the error the memo dropped.
                    let bytes = packed.expand(k)?;
                    let _ = slot.set(Some(bytes));
                }
                let bytes = slot
                    .get()
                    .and_then(Option::as_deref)
                    .ok_or_else(|| Error::corrupt(&self.path, at, "block does not expand"))?;
                let start = packed.table()[k].logical_start;
                Ok((bytes, start, start + bytes.len() as u64))
            }
        }
    }
}

impl SegmentView {
    /// Opens segment `id` at `path`; `None` when the file holds another segment (moved,
    /// swapped or copied over): it is not read as segment `id`, and the continuity check
    /// (`manifest.rs`) names it. A sealed segment that `recorded` (its segment manifest
    /// entry) describes, in agreement with its commit slot, is opened deferred: its header
    /// read, its footer left for [`SegmentView::load`].
    ///
    /// `opened`, the file already open with its header read, spares opening and reading it
    /// again; it is used only if its committed end lies within it, as [`read_header`]
    /// checks.
    fn open(
        kind: StreamKind,
        id: u32,
        path: PathBuf,
        blocks: &Arc<BlockCache>,
        recorded: Option<&ManifestEntry>,
        opened: Option<OpenedSegment>,
        recovered: Option<(u64, SegmentIndex)>,
    ) -> Result<Option<SegmentView>> {
        let within = |o: &OpenedSegment| {
            o.slot.committed_len >= SEGMENT_HEADER_LEN as u64 && o.slot.committed_len <= o.file_len
        };
        let (file, header, slot, file_len) = if let Some(o) = opened.filter(within) {
            (o.file, o.header, o.slot, o.file_len)
        } else {
            let file = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
            let (header, slot, file_len) = read_header_and_len(&file, &path)?;
            (file, header, slot, file_len)
        };
        if check_identity(&header, kind, id, &path).is_err() {
            return Ok(None);
        }
        let recorded = recorded.and_then(|e| recorded_bounds(e, &header, &slot));
        // A deferred view maps nothing until it is loaded (its load maps the whole file):
        // a listing of the newest events opens every segment and loads one or two.
        let first_map = if recorded.is_some() {
            map::empty()?
        } else {
            Arc::new(map::map_read(&file, SEGMENT_HEADER_LEN as u64, &path)?)
        };
        let shared_path: Arc<Path> = Arc::from(path.as_path());
        let view = SegmentView {
            id,
            path,
            shared_path,
            file,
            header,
            state: RwLock::new(ViewState {
                map: first_map,
                slot: CommitSlot::default(),
                index: SegmentIndex::default(),
                checked: Arc::new(CheckedBlocks::with_capacity(0)),
                scanned_len: SEGMENT_HEADER_LEN as u64,
                file_len,
                packed: None,
            }),
            sealed_summary: OnceLock::new(),
            deferred: Mutex::new(None),
            blocks: Arc::clone(blocks),
        };
        if let Some(bounds) = recorded {
            // The footer's length (how much of the file its load maps) is read by the load.
            let _ = view.sealed_summary.set(bounds);
            *view.deferred.lock() = Some((slot, file_len));
            return Ok(Some(view));
        }
        if let Some((_, index)) = recovered.filter(|(covered, _)| {
            !slot.sealed && slot.committed_len == *covered && *covered >= SEGMENT_HEADER_LEN as u64
        }) {
            // The index the writable open's recovery built over every committed frame
            // (from the same image and frames this view would read), not decoded again.
            let mut st = view.state.write();
            st.index = index;
            st.scanned_len = slot.committed_len;
        }
        view.catch_up(slot, file_len)?;
        Ok(Some(view))
    }

    /// Reads what a deferred view left: the footer, checked, and its summary compared
    /// with the bounds the manifest recorded. Does nothing for a view already loaded.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the footer does not check out or disagrees with the
    /// manifest; the view stays deferred, and the next load reports the same.
    pub fn load(&self) -> Result<()> {
        let mut deferred = self.deferred.lock();
        let Some((slot, len)) = *deferred else {
            return Ok(());
        };
        self.catch_up(slot, len)?;
        let agrees = {
            let st = self.state.read();
            self.sealed_summary
                .get()
                .is_none_or(|r| same_bounds(r, &st.index.summary))
        };
        if !agrees {
            return Err(Error::corrupt(
                &self.path,
                slot.committed_len,
                "footer summary disagrees with the segment manifest (run `selflog inspect verify`)",
            ));
        }
        *deferred = None;
        Ok(())
    }

    /// Whether the view is deferred ([`SegmentView::load`] not done yet).
    pub fn is_deferred(&self) -> bool {
        self.deferred.lock().is_some()
    }

    /// Loads a deferred view for an accessor that cannot fail. Every path of the stream
    /// loads its views first ([`Stream::refresh`], or [`SegmentView::load`] after
    /// [`Stream::refresh_deferred`]), so this only guards against a path that did not.
    fn load_quietly(&self) {
        if self.deferred.lock().is_some() {
            let _ = self.load();
        }
    }

    /// `f` of the segment's summary and newest commit slot, without loading a deferred
    /// view: its summary then holds only the counts, ids and time range.
    pub fn with_summary<T>(&self, f: impl FnOnce(&Summary, &CommitSlot) -> T) -> T {
        let deferred = *self.deferred.lock();
        if let Some((slot, _)) = deferred {
            if let Some(bounds) = self.sealed_summary.get() {
                return f(bounds, &slot);
            }
        }
        self.with_index(|ix, slot| f(&ix.summary, slot))
    }

    /// Brings the view up to publication `slot`.
    fn catch_up(&self, slot: CommitSlot, file_len: u64) -> Result<()> {
        let mut st = self.state.write();
        if slot.sequence == st.slot.sequence && st.slot.sequence != 0 {
            return Ok(());
        }
        // A sealed segment is mapped up to the end of its footer only: the writer may still
        // be shrinking the file to that length.
        let file_len = if slot.sealed {
            sealed_len(&self.file, &slot, file_len, &self.path)?
        } else {
            file_len
        };
        if slot.committed_len < st.scanned_len {
            return Err(Error::corrupt(
                &self.path,
                format::SLOT_OFFSETS[0] as u64,
                format!(
                    "committed length went back from {} to {}",
                    st.scanned_len, slot.committed_len
                ),
            ));
        }
        if slot.sealed && st.scanned_len == SEGMENT_HEADER_LEN as u64 {
            // A sealed segment seen for the first time: trust its checksummed footer.
            let map = Arc::new(map::map_read(&self.file, file_len, &self.path)?);
            st.index = index_from_footer(&map, &slot, &self.path)?;
            st.checked = Arc::new(CheckedBlocks::with_capacity(st.index.blocks.len()));
            if self.header.version == PACKED_VERSION {
                return self.open_compacted(&mut st, map, slot, file_len);
            }
            st.map = map;
        } else {
            if self.header.version == PACKED_VERSION {
                return Err(Error::corrupt(
                    &self.path,
                    format::SLOT_OFFSETS[0] as u64,
                    "compacted segment is not sealed",
                ));
            }
            let map_len = if slot.sealed {
                file_len
            } else {
                slot.committed_len
            };
            if map_len as usize != st.map.len() {
                st.map = Arc::new(map::map_read(&self.file, map_len, &self.path)?);
            }
            if !slot.sealed && st.scanned_len == SEGMENT_HEADER_LEN as u64 {
                // An unsealed segment seen for the first time: its index image, when it
                // passes the checks against this segment, spares scanning the frames it
                // covers. `format-spec/FORMAT.md#segment-index-image`
                if let Ok(Some(loaded)) =
                    image::load_reading(&self.path, &self.header, &slot, &st.map)
                {
                    st.index = loaded.index;
                    st.scanned_len = loaded.covered_len;
                }
            }
            let from = st.scanned_len;
            let st = &mut *st;
            let scanned = scan_frames(
                &st.map,
                from,
                slot.committed_len,
                &self.header,
                &mut st.index,
                slot.commit_time_us,
                &self.path,
            );
            if let Err((frame_at, err)) = scanned {
                if slot.sealed || frame_at < slot.durable_len {
                    return Err(err);
                }
                // Committed but never synced, and lost to a power loss: the readable
                // segment ends before it, as it will once a writer recovers the store.
                st.make_room_for_marks();
                st.scanned_len = frame_at;
                st.slot = CommitSlot {
                    committed_len: frame_at,
                    ..slot
                };
                st.file_len = file_len;
                return Ok(());
            }
            if slot.sealed {
                // Followed while it was written, now sealed: check the footer, and trade the
                // index built while scanning for the footer's (the same, with postings left
                // encoded in the map: a daemon that ran for days would otherwise keep every
                // sealed segment's decoded postings in memory).
                st.index = index_from_footer(&st.map, &slot, &self.path)?;
                // Marks name blocks by number: numbers from another build of the index
                // could name other bytes, so its blocks are checked again.
                st.checked = Arc::new(CheckedBlocks::with_capacity(st.index.blocks.len()));
            }
            st.make_room_for_marks();
        }
        st.scanned_len = slot.committed_len;
        st.slot = slot;
        st.file_len = file_len;
        if slot.sealed {
            let _ = self.sealed_summary.set(st.index.summary);
        }
        Ok(())
    }

    /// Takes in a compacted segment, mapped whole in `map`, whose footer's index `st`
    /// holds: its frames are read from its blocks, at the offsets the index gives, up to
    /// its logical end, which the view's slot says.
    fn open_compacted(
        &self,
        st: &mut ViewState,
        map: Arc<Mmap>,
        slot: CommitSlot,
        file_len: u64,
    ) -> Result<()> {
        let packed = Packed::open_deferred(
            Arc::clone(&map) as crate::packed::Bytes,
            self.header,
            Arc::clone(&st.index.strings),
            Arc::clone(&self.shared_path),
            Arc::clone(&self.blocks),
        )?;
        let logical = packed.logical_len();
        st.packed = Some(Arc::new(packed));
        st.map = map;
        st.scanned_len = logical;
        st.slot = CommitSlot {
            committed_len: logical,
            durable_len: logical,
            ..slot
        };
        st.file_len = file_len;
        let _ = self.sealed_summary.set(st.index.summary);
        Ok(())
    }

    /// The segment's summary if it is known to be sealed; `None` while it may still grow.
    pub fn sealed_summary(&self) -> Option<&Summary> {
        self.sealed_summary.get()
    }

    /// Re-reads the header and catches up with the writer. Returns whether the view is
    /// sealed afterwards.
    fn refresh(&self) -> Result<bool> {
        if self.is_deferred() {
            return Ok(true);
        }
        let (seen, map) = {
            let st = self.state.read();
            if st.slot.sealed {
                return Ok(true);
            }
            (st.slot.sequence, Arc::clone(&st.map))
        };
        // Every map of the view starts at the file's start and covers the header, where a
        // commit slot the writer writes shows at once (one page cache), so a reader polling
        // a segment that has not moved makes no system call. A slot that does not decode
        // there (torn while being written) is left to the read below, which reports it.
        let unchanged = map
            .get(..SEGMENT_HEADER_LEN)
            .and_then(|h| CommitSlot::newest(h).ok())
            .is_some_and(|slot| slot.sequence == seen && seen != 0);
        if unchanged {
            return Ok(false);
        }
        let (_, slot) = read_header(&self.file, &self.path)?;
        let file_len = self
            .file
            .metadata()
            .map_err(|e| Error::io("stat", &self.path, e))?
            .len();
        self.catch_up(slot, file_len)?;
        Ok(slot.sealed)
    }

    /// A snapshot of what is readable now.
    pub fn snapshot(&self) -> Snapshot {
        self.load_quietly();
        self.snapshot_of(&self.state.read())
    }

    /// The snapshot `st`, this view's state under its lock, describes.
    fn snapshot_of(&self, st: &ViewState) -> Snapshot {
        Snapshot {
            map: Arc::clone(&st.map),
            header: self.header,
            committed_len: st.slot.committed_len,
            strings: Arc::clone(&st.index.strings),
            path: Arc::clone(&self.shared_path),
            checked: Arc::clone(&st.checked),
            packed: st
                .packed
                .as_ref()
                .map(|p| (Arc::clone(p), Arc::new(BlockMemo::new(p.block_count())))),
        }
    }

    /// A snapshot and `f` of the index, both from the same moment.
    pub fn snapshot_and<T>(
        &self,
        f: impl FnOnce(&SegmentIndex, &CommitSlot) -> T,
    ) -> (Snapshot, T) {
        self.load_quietly();
        let st = self.state.read();
        let snap = self.snapshot_of(&st);
        let t = f(&st.index, &st.slot);
        (snap, t)
    }

    /// `f` of the index and, only when it returns `Some`, a snapshot from the same moment:
    /// a query passes over a segment its bounds rule out without touching its maps.
    pub fn snapshot_if<T>(
        &self,
        f: impl FnOnce(&SegmentIndex, &CommitSlot) -> Option<T>,
    ) -> Option<(Snapshot, T)> {
        self.load_quietly();
        let st = self.state.read();
        let t = f(&st.index, &st.slot)?;
        Some((self.snapshot_of(&st), t))
    }

    /// Runs `f` on the view's index under its read lock.
    pub fn with_index<T>(&self, f: impl FnOnce(&SegmentIndex, &CommitSlot) -> T) -> T {
        self.load_quietly();
        let st = self.state.read();
        f(&st.index, &st.slot)
    }

    /// Whether the segment is read from a compacted file.
    pub fn compacted(&self) -> bool {
        self.header.version == PACKED_VERSION
    }

    /// Bytes of the file on disk.
    pub fn file_len(&self) -> u64 {
        let deferred = *self.deferred.lock();
        if let Some((slot, len)) = deferred {
            // Up to the footer's end, as a loaded view says (the writer may still be
            // shrinking the file to it); the file's length if the footer's head is damaged
            // (the load reports that).
            return sealed_len(&self.file, &slot, len, &self.path).unwrap_or(len);
        }
        self.state.read().file_len
    }
}

/// The bounds manifest entry `e` records for the sealed segment whose header and newest
/// slot are `header` and `slot`, as a summary (its other fields 0), if they agree: the
/// entry is of this segment, sealed, with the slot's event count and last id, a first id
/// at or after the header's base id and ordered bounds. `None` sends the view to its footer.
fn recorded_bounds(
    e: &ManifestEntry,
    header: &SegmentHeader,
    slot: &CommitSlot,
) -> Option<Summary> {
    let agrees = slot.sealed
        && e.sealed
        && e.segment_id == header.segment_id
        && e.event_count == slot.event_count
        && e.event_count > 0
        && e.last_id == slot.last_id
        && e.first_id >= header.base_id
        && e.first_id <= e.last_id
        && e.last_id - e.first_id >= e.event_count - 1
        && e.min_ts_us <= e.max_ts_us;
    agrees.then(|| Summary {
        event_count: e.event_count,
        first_id: e.first_id,
        last_id: e.last_id,
        min_ts_us: e.min_ts_us,
        max_ts_us: e.max_ts_us,
        ..Summary::default()
    })
}

/// Whether two summaries have the same count, ids and time range.
fn same_bounds(a: &Summary, b: &Summary) -> bool {
    (
        a.event_count,
        a.first_id,
        a.last_id,
        a.min_ts_us,
        a.max_ts_us,
    ) == (
        b.event_count,
        b.first_id,
        b.last_id,
        b.min_ts_us,
        b.max_ts_us,
    )
}

/// An ordered set of segment views of one stream, loaded lazily and refreshed on demand.
pub(crate) struct Stream {
    dir: PathBuf,
    kind: StreamKind,
    views: RwLock<Vec<Arc<SegmentView>>>,
    refresh_lock: Mutex<RefreshState>,
    /// The writer's publication counter when in the same process: refresh is skipped while
    /// it is unchanged, which saves a system call per query.
    published: Option<Arc<AtomicU64>>,
    /// Decompressed data that queries with a limit returned recently.
    pub data_cache: Arc<DataCache>,
    /// Expanded blocks of compacted segments read recently.
    blocks: Arc<BlockCache>,
    /// Segment files not to read: those a read-only open found unreadable (a damaged header,
    /// a file cut short) and named in its warnings.
    skip: Vec<u32>,
    /// The segment manifest's entries, by segment, as the open read them: the sealed
    /// segments they describe are opened deferred ([`SegmentView::load`]).
    recorded: BTreeMap<u32, ManifestEntry>,
    /// Segment files the open already opened and read the headers of: the first listing's
    /// views take them ([`Stream::preopened`]).
    opened: Mutex<BTreeMap<u32, OpenedSegment>>,
    /// The unsealed segment's index as a writable open's recovery built it: its number,
    /// the committed length it covers, the index; taken by the view of that segment.
    recovered: Mutex<Option<(u32, u64, SegmentIndex)>>,
}

struct RefreshState {
    loaded: bool,
    seen_generation: u64,
    /// Some view may still be deferred.
    deferred: bool,
}

impl Stream {
    pub fn new(dir: &Path, kind: StreamKind, published: Option<Arc<AtomicU64>>) -> Stream {
        Stream {
            dir: dir.to_path_buf(),
            kind,
            views: RwLock::new(Vec::new()),
            refresh_lock: Mutex::new(RefreshState {
                loaded: false,
                seen_generation: u64::MAX,
                deferred: false,
            }),
            published,
            data_cache: Arc::new(DataCache::new(DATA_CACHE_BYTES)),
            blocks: Arc::new(BlockCache::new(BLOCK_CACHE_BYTES)),
            skip: Vec::new(),
            recorded: BTreeMap::new(),
            opened: Mutex::new(BTreeMap::new()),
            recovered: Mutex::new(None),
        }
    }

    /// The stream, its view of unsealed segment `segment` starting from `index`, which a
    /// writable open's recovery built over its committed frames up to `committed_len`,
    /// instead of decoding its index image again; used only while the segment's commit
    /// slot still says `committed_len`, unsealed.
    #[must_use]
    pub fn with_recovered_index(
        self,
        segment: u32,
        committed_len: u64,
        index: SegmentIndex,
    ) -> Stream {
        *self.recovered.lock() = Some((segment, committed_len, index));
        self
    }

    /// The stream, opening the sealed segments `manifest` (read by the open, checked
    /// against each segment's commit slot) describes deferred: a command reads the footers
    /// of only the segments it touches. `format-spec/FORMAT.md#readers`
    #[must_use]
    pub fn deferring(mut self, manifest: Option<&crate::format::Manifest>) -> Stream {
        self.recorded = manifest
            .map(|m| m.entries.iter().map(|e| (e.segment_id, *e)).collect())
            .unwrap_or_default();
        self
    }

    /// The stream, opening its first views from `files` (segment files open, their
    /// headers read, by number) where the listing still has them, instead of opening and
    /// reading each again: the read-only open's continuity check has just done that.
    #[must_use]
    pub fn preopened(self, files: BTreeMap<u32, OpenedSegment>) -> Stream {
        *self.opened.lock() = files;
        self
    }

    /// The stream, never reading the segment files numbered in `unreadable`: those a
    /// read-only open found it cannot read and named in its warnings, so that it serves
    /// the others. Any other damage still fails the read that meets it.
    #[must_use]
    pub fn skipping(mut self, unreadable: Vec<u32>) -> Stream {
        self.skip = unreadable;
        self
    }

    /// Segment ids present in the directory, ascending.
    pub fn list(dir: &Path, kind: StreamKind) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
            let entry = entry.map_err(|e| Error::io("list", dir, e))?;
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| kind.parse_file_name(n))
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// Opens the views of the segments numbered above `after`, in order.
    ///
    /// A directory listing is not atomic against the renames that bring new segments in:
    /// one renamed in while the listing ran can be missing from it while a newer one is
    /// there (entries come in hash order), and a view skipped that way would never be
    /// added, leaving a hole in every later scan. So the listing only bounds the search:
    /// every number from `after + 1` (from the oldest listed when nothing was seen yet)
    /// through the newest listed is opened by name. Each one below the newest listed was
    /// sealed before the newest was created, so its view is complete; the newest becomes
    /// the last view, which refreshes follow. A number not there was deleted by retention
    /// (oldest first) while this reader was behind, or lost, and a file holding another
    /// segment than its name says is not read: readers serve what is there, and the
    /// continuity check (`manifest.rs`) reports what is not. A number in `skip` is not opened
    /// (the read-only open's warnings name it as unreadable). Nothing past the newest listed is
    /// opened: a segment rolled after the listing could leave the one before it, opened
    /// while active, behind as a view no refresh follows.
    fn open_after(&self, after: u32) -> Result<Vec<Arc<SegmentView>>> {
        let listed: Vec<u32> = Stream::list(&self.dir, self.kind)?
            .into_iter()
            .filter(|&id| id > after)
            .collect();
        let (Some(&first), Some(&newest)) = (listed.first(), listed.last()) else {
            return Ok(Vec::new());
        };
        let start = if after == 0 { first } else { after + 1 };
        let mut added = Vec::new();
        // Files opened before this listing serve only numbers it still lists (one deleted
        // since is not read).
        let mut opened = std::mem::take(&mut *self.opened.lock());
        for id in start..=newest {
            if self.skip.contains(&id) {
                continue;
            }
            let path = self.dir.join(self.kind.file_name(id));
            let pre = opened
                .remove(&id)
                .filter(|_| listed.binary_search(&id).is_ok());
            let recovered = {
                let mut r = self.recovered.lock();
                r.take_if(|(segment, _, _)| *segment == id)
                    .map(|(_, len, index)| (len, index))
            };
            let recorded = self.recorded.get(&id);
            let view =
                SegmentView::open(self.kind, id, path, &self.blocks, recorded, pre, recovered);
            match view {
                Ok(Some(view)) => added.push(Arc::new(view)),
                Ok(None) => {}
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(added)
    }

    /// The writer's publication counter, when the writer is in this process.
    pub fn publications(&self) -> Option<&Arc<AtomicU64>> {
        self.published.as_ref()
    }

    /// Catches up with everything the writer has published, every view loaded.
    pub fn refresh(&self) -> Result<()> {
        self.refresh_deferred()?;
        let mut rs = self.refresh_lock.lock();
        if rs.deferred {
            for view in self.views() {
                view.load()?;
            }
            rs.deferred = false;
        }
        Ok(())
    }

    /// [`Stream::refresh`], leaving deferred views deferred: the caller loads
    /// ([`SegmentView::load`]) those it reads beyond their bounds
    /// ([`SegmentView::with_summary`]).
    pub fn refresh_deferred(&self) -> Result<()> {
        let mut rs = self.refresh_lock.lock();
        let generation = self.published.as_ref().map(|g| g.load(Ordering::Acquire));
        if rs.loaded && generation.is_some() && generation == Some(rs.seen_generation) {
            return Ok(());
        }
        let last = self.views.read().last().cloned();
        let need_listing = match &last {
            None => true,
            Some(v) => v.refresh()?,
        };
        if need_listing {
            let after = last.as_ref().map_or(0, |v| v.id);
            let added = self.open_after(after)?;
            rs.deferred |= added.iter().any(|v| v.is_deferred());
            if !added.is_empty() {
                self.views.write().extend(added);
            }
        }
        rs.loaded = true;
        if let Some(g) = generation {
            rs.seen_generation = g;
        }
        Ok(())
    }

    /// Drops the views of segments retention deleted. Scans holding them finish on their
    /// own maps.
    pub fn forget(&self, segment_ids: &[u32]) {
        if !segment_ids.is_empty() {
            self.views.write().retain(|v| !segment_ids.contains(&v.id));
        }
    }

    /// Replaces the view of sealed segment `segment_id` by one of the file now at its path
    /// (compaction rewrote it), so the old file's space is freed once scans holding the old
    /// view finish. The old view stays when the new file cannot be opened.
    pub fn reopen(&self, segment_id: u32) {
        let path = self.dir.join(self.kind.file_name(segment_id));
        self.blocks.forget(segment_id);
        if let Ok(Some(view)) =
            SegmentView::open(self.kind, segment_id, path, &self.blocks, None, None, None)
        {
            let view = Arc::new(view);
            if view.sealed_summary().is_none() {
                return;
            }
            for v in self.views.write().iter_mut() {
                if v.id == segment_id {
                    *v = Arc::clone(&view);
                }
            }
        }
    }

    /// The current views, oldest first.
    pub fn views(&self) -> Vec<Arc<SegmentView>> {
        self.views.read().clone()
    }

    /// The current views `keep` accepts, oldest first; `keep` runs under the list's lock,
    /// so it must not take a view's own lock.
    pub fn views_where(&self, mut keep: impl FnMut(&SegmentView) -> bool) -> Vec<Arc<SegmentView>> {
        self.views
            .read()
            .iter()
            .filter(|v| keep(v))
            .map(Arc::clone)
            .collect()
    }

    /// The view that may hold event `id`.
    pub fn view_for(&self, id: u64) -> Option<Arc<SegmentView>> {
        let views = self.views.read();
        let i = views.partition_point(|v| v.header.base_id <= id);
        i.checked_sub(1).map(|i| Arc::clone(&views[i]))
    }
}
