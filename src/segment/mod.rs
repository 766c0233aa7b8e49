//! One segment file on disk: naming, creation, the writer's appends, sealing, and the
//! frame scanner every reader and recovery use.
//!
//! A segment is allocated in full when created and filled front to back with frames. Bytes
//! before the published committed length are never rewritten, a sealed segment is never
//! modified again, and a segment only shrinks once, when sealed, and then only past its
//! committed end plus footer. Only `map.rs` maps files into memory, and only for reading.

pub(crate) mod footer;
pub(crate) mod image;
pub(crate) mod map;
pub(crate) mod tail;

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{self, CommitSlot, Frame, SegmentHeader, COMMIT_SLOT_LEN, SEGMENT_HEADER_LEN};
use crate::index::{IndexedEvent, SegmentIndex};

/// Which stream of the store a segment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamKind {
    /// The event log.
    Events,
}

impl StreamKind {
    pub(crate) fn code(self) -> u8 {
        match self {
            StreamKind::Events => 1,
        }
    }

    pub(crate) fn prefix(self) -> &'static str {
        match self {
            StreamKind::Events => "events",
        }
    }

    /// Largest segment id: file names carry eight decimal digits.
    pub(crate) const SEGMENT_ID_MAX: u32 = 99_999_999;

    /// `events-00000001.seg`: the prefix, the segment id in eight decimal digits.
    /// `format-spec/FORMAT.md#file-names`
    pub(crate) fn file_name(self, segment_id: u32) -> String {
        format!("{}-{segment_id:08}.seg", self.prefix())
    }

    /// The segment id named by `name`, if it is a segment file of this stream.
    pub(crate) fn parse_file_name(self, name: &str) -> Option<u32> {
        let digits = name
            .strip_prefix(self.prefix())?
            .strip_prefix('-')?
            .strip_suffix(".seg")?;
        if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }
}

/// Opens a file for writing, created with mode 0600.
pub(crate) fn create_private(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("create", path, e))
}

/// Makes a rename or creation in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync directory", dir, e))
}

/// Reserves `len` bytes of disk for `file`, so that writes into it cannot fail for
/// lack of space. Falls back to writing zeros where the file system lacks fallocate.
fn allocate(file: &File, len: u64, path: &Path) -> Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {
            let zeros = vec![0u8; 1 << 20];
            let mut at = 0u64;
            while at < len {
                let n = usize::try_from((len - at).min(zeros.len() as u64)).unwrap_or(zeros.len());
                file.write_all_at(&zeros[..n], at)
                    .map_err(|e| Error::io("allocate", path, e))?;
                at += n as u64;
            }
            Ok(())
        }
        Err(e) => Err(Error::io("allocate", path, e.into())),
    }
}

/// A segment file opened and its header and newest commit slot read (by
/// [`read_header_only`]), with the file's length then: the read-only open's continuity
/// check reads every segment's header, and hands the files on to the stream's views
/// instead of each being opened and read again.
#[derive(Debug)]
pub(crate) struct OpenedSegment {
    /// The open file.
    pub file: File,
    /// Its header.
    pub header: SegmentHeader,
    /// Its newest commit slot.
    pub slot: CommitSlot,
    /// Its length when the slot was read.
    pub file_len: u64,
}

/// Reads and checks a segment's header and newest commit slot, and that the committed
/// end lies within the file.
pub(crate) fn read_header(file: &File, path: &Path) -> Result<(SegmentHeader, CommitSlot)> {
    read_header_and_len(file, path).map(|(header, slot, _)| (header, slot))
}

/// [`read_header`], with the file's length it checked the committed end against.
pub(crate) fn read_header_and_len(
    file: &File,
    path: &Path,
) -> Result<(SegmentHeader, CommitSlot, u64)> {
    let (header, slot) = read_header_only(file, path)?;
    let file_len = file
        .metadata()
        .map_err(|e| Error::io("stat", path, e))?
        .len();
    if slot.committed_len < SEGMENT_HEADER_LEN as u64 || slot.committed_len > file_len {
        return Err(Error::corrupt(
            path,
            SLOT_OFFSETS_FIRST,
            format!(
                "committed length {} outside the file of {file_len} bytes",
                slot.committed_len
            ),
        ));
    }
    Ok((header, slot, file_len))
}

/// Reads and checks a segment's header and newest commit slot, without comparing the
/// committed end with the file's length ([`read_header`] does; [`cut_short`] says how
/// much is missing).
pub(crate) fn read_header_only(file: &File, path: &Path) -> Result<(SegmentHeader, CommitSlot)> {
    let mut buf = [0u8; SEGMENT_HEADER_LEN];
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read", path, e)),
        }
    }
    if got < buf.len() {
        return Err(Error::corrupt(
            path,
            got as u64,
            format!("segment header truncated: file has {got} bytes"),
        ));
    }
    let header = SegmentHeader::decode(&buf).map_err(|e| header_error(path, e))?;
    let slot =
        CommitSlot::newest(&buf).map_err(|e| Error::corrupt(path, e.offset as u64, e.what))?;
    if slot.committed_len < SEGMENT_HEADER_LEN as u64 {
        return Err(Error::corrupt(
            path,
            SLOT_OFFSETS_FIRST,
            format!(
                "committed length {} is inside the header",
                slot.committed_len
            ),
        ));
    }
    Ok((header, slot))
}

/// Whether the file of a segment whose newest slot is `slot` ends before what the slot
/// says it holds: the committed frames, and for a sealed segment the footer after them.
/// Returns the offset where what is missing starts and a description; `None` when the
/// file is long enough (a footer whose head does not decode is left to the footer's
/// checks). The writer never shortens a file below this extent (it shrinks a sealed
/// segment only to `committed_len + footer_len`, after the footer is synced), so a file
/// cut short was damaged from outside. `format-spec/FORMAT.md#recovery`
pub(crate) fn cut_short(file: &File, slot: &CommitSlot, file_len: u64) -> Option<(u64, String)> {
    if slot.committed_len > file_len {
        return Some((
            slot.offset() as u64,
            format!(
                "the file is cut short: it has {file_len} bytes, its committed frames end at byte {}",
                slot.committed_len
            ),
        ));
    }
    if !slot.sealed {
        return None;
    }
    let mut head = [0u8; 12];
    if file.read_exact_at(&mut head, slot.committed_len).is_err() {
        return Some((
            slot.committed_len,
            format!(
                "the file is cut short: it has {file_len} bytes, its footer starts at byte {}",
                slot.committed_len
            ),
        ));
    }
    let footer_len = format::Footer::peek_len(&head).ok()?;
    let end = slot.committed_len + footer_len as u64;
    (end > file_len).then(|| {
        (
            slot.committed_len,
            format!(
                "the file is cut short: it has {file_len} bytes, its footer ends at byte {end}"
            ),
        )
    })
}

/// Checks that a segment's header names the stream and number its file name does, so a
/// file copied or renamed into the wrong place is refused rather than misread.
pub(crate) fn check_identity(
    header: &SegmentHeader,
    kind: StreamKind,
    segment_id: u32,
    path: &Path,
) -> Result<()> {
    if header.stream_kind != kind.code() {
        return Err(Error::corrupt(
            path,
            12,
            format!(
                "stream kind {} in a {} file",
                header.stream_kind,
                kind.prefix()
            ),
        ));
    }
    if header.segment_id != segment_id {
        return Err(Error::corrupt(
            path,
            16,
            format!(
                "header says segment {}, the file name says {segment_id}",
                header.segment_id
            ),
        ));
    }
    Ok(())
}

/// Length of a sealed segment: committed frames plus the footer whose length is read from
/// the footer's own head. Mapping exactly this much keeps a map within the file even while
/// the writer is still shrinking it from its allocated length.
pub(crate) fn sealed_len(
    file: &File,
    slot: &CommitSlot,
    file_len: u64,
    path: &Path,
) -> Result<u64> {
    let mut head = [0u8; 12];
    file.read_exact_at(&mut head, slot.committed_len)
        .map_err(|_| {
            Error::corrupt(
                path,
                slot.committed_len,
                "sealed segment ends before its footer",
            )
        })?;
    let footer_len = format::Footer::peek_len(&head)
        .map_err(|e| Error::corrupt(path, slot.committed_len + e.offset as u64, e.what))?;
    let end = slot.committed_len + footer_len as u64;
    if end > file_len {
        return Err(Error::corrupt(
            path,
            slot.committed_len,
            "footer runs past the end of the file",
        ));
    }
    Ok(end)
}

const SLOT_OFFSETS_FIRST: u64 = format::SLOT_OFFSETS[0] as u64;

fn header_error(path: &Path, e: format::DecodeError) -> Error {
    if let format::DecodeKind::UnsupportedVersion { found } = e.kind {
        return Error::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
            supported: format::FORMAT_VERSION,
        };
    }
    Error::corrupt(path, e.offset as u64, e.what)
}

/// Decodes every frame in `buf[start..end]` (offsets are file offsets, `buf` maps the file
/// from 0) into `index`. Every frame must decode and pass its checksum, event ids must
/// increase, and string references must be defined in order.
///
/// Returns the offset of the last frame scanned, if any.
///
/// # Errors
/// The start offset of the first bad frame and an [`Error::Corrupt`] naming the exact
/// offset of the damage; `index` then covers the frames before it.
pub(crate) fn scan_frames(
    buf: &[u8],
    start: u64,
    end: u64,
    header: &SegmentHeader,
    index: &mut SegmentIndex,
    commit_us: i64,
    path: &Path,
) -> std::result::Result<Option<u64>, (u64, Error)> {
    let mut at = start;
    let mut last = None;
    while at < end {
        let len = scan_one(buf, at, end, header, index, commit_us, path).map_err(|e| (at, e))?;
        last = Some(at);
        at += len;
    }
    Ok(last)
}

/// Decodes and checks the frame at file offset `at` of `buf` (a map of the file from 0),
/// which must end by `end`, the committed length. Zero bytes there are damage: before the
/// committed end every byte belongs to a frame.
#[inline]
pub(crate) fn checked_frame<'a>(
    buf: &'a [u8],
    at: u64,
    end: u64,
    path: &Path,
) -> Result<(Frame<'a>, usize)> {
    let window = usize::try_from(at)
        .ok()
        .zip(usize::try_from(end).ok())
        .and_then(|(a, b)| buf.get(a..b))
        .ok_or_else(|| Error::corrupt(path, at, "frame offset past the committed end"))?;
    match format::decode_frame(window) {
        Ok(Some(f)) => Ok(f),
        Ok(None) => Err(Error::corrupt(
            path,
            at,
            "zero bytes before the committed end",
        )),
        Err(e) => Err(Error::corrupt(path, at + e.offset as u64, e.what)),
    }
}

fn scan_one(
    buf: &[u8],
    at: u64,
    end: u64,
    header: &SegmentHeader,
    index: &mut SegmentIndex,
    commit_us: i64,
    path: &Path,
) -> Result<u64> {
    let (frame, len) = checked_frame(buf, at, end, path)?;
    match frame {
        Frame::StringDef { string_ref, text } => {
            if string_ref as usize != index.strings.len() {
                return Err(Error::corrupt(
                    path,
                    at,
                    format!("string ref {string_ref} out of order"),
                ));
            }
            index.add_string(text);
        }
        Frame::Event(e) => {
            let id = header
                .base_id
                .checked_add(e.id_delta)
                .ok_or_else(|| Error::corrupt(path, at, "event id overflows"))?;
            if index.summary.event_count > 0 && id <= index.summary.last_id {
                return Err(Error::corrupt(
                    path,
                    at,
                    format!("event id {id} does not increase"),
                ));
            }
            let ts = header
                .base_timestamp_us
                .checked_add(e.ts_delta)
                .ok_or_else(|| Error::corrupt(path, at, "timestamp overflows"))?;
            let n = index.strings.len();
            let refs_ok = (e.type_ref as usize) < n
                && (e.source_ref as usize) < n
                && e.action_ref.is_none_or(|a| (a as usize) < n);
            if !refs_ok {
                return Err(Error::corrupt(
                    path,
                    at,
                    "event refers to an undefined string",
                ));
            }
            let frame_len =
                u32::try_from(len).map_err(|_| Error::corrupt(path, at, "frame too long"))?;
            let stored = e.payload.map_or(0, <[u8]>::len) as u64;
            let indexed = IndexedEvent {
                id,
                ts_us: ts,
                type_ref: e.type_ref,
                source_ref: e.source_ref,
                action_ref: e.action_ref,
                compressed: e.raw_len.is_some(),
                data_raw_len: e.raw_len.map_or(stored, u64::from),
                data_stored_len: stored,
            };
            index.add_event(&indexed, at, frame_len, commit_us);
        }
    }
    Ok(len as u64)
}

/// Staged frames are written to the file once they exceed this, even mid-batch, so the
/// staging buffer stays small however large a batch grows.
const STAGED_LEN_MAX: usize = 1 << 20;

/// The segment the writer appends to.
///
/// Frames are encoded into a staging buffer and written with `pwrite`, not through a
/// writable map: writing whole pages lets the kernel skip zeroing the page-cache pages that a
/// store into a fresh mapping would fault in (measured: 18% of append CPU), and a failed
/// write is an error code instead of a SIGBUS. Readers still map the committed prefix.
/// `format-spec/FORMAT.md#publishing`
pub(crate) struct ActiveSegment {
    /// Its path.
    pub path: PathBuf,
    file: File,
    /// Its header.
    pub header: SegmentHeader,
    /// The last publication.
    pub slot: CommitSlot,
    /// Bytes written so far, staged ones included (frames past `slot.committed_len` are not
    /// yet published).
    pub write_len: u64,
    /// The staging buffer: its first `staged_len` bytes are frames not yet handed to the
    /// file; the rest is old bytes kept so that the next frames need not zero it again
    /// (an encoder writes every byte of the length it asks for).
    staged: Vec<u8>,
    staged_len: usize,
    /// Bytes handed to the file; `write_len - staged_len`.
    flushed_len: u64,
    /// File offset of the last frame written (0: none yet, or not known), which an index
    /// image records to be checked against.
    pub last_frame_at: u64,
}

impl ActiveSegment {
    /// Creates a segment file: written under a temporary name, allocated in full, given its
    /// header and first commit slot, synced, then renamed into place and the directory
    /// synced, so a crash leaves either no segment or a complete empty one.
    pub fn create(
        dir: &Path,
        kind: StreamKind,
        header: SegmentHeader,
        now_us: i64,
    ) -> Result<ActiveSegment> {
        let path = dir.join(kind.file_name(header.segment_id));
        let tmp = dir.join(format!("{}.tmp", kind.file_name(header.segment_id)));
        let result = (|| {
            let mut file = create_private(&tmp)?;
            allocate(&file, header.segment_len, &tmp)?;
            let slot = CommitSlot {
                sequence: 1,
                committed_len: SEGMENT_HEADER_LEN as u64,
                durable_len: SEGMENT_HEADER_LEN as u64,
                event_count: 0,
                last_id: 0,
                commit_time_us: now_us,
                sealed: false,
            };
            let mut head = [0u8; SEGMENT_HEADER_LEN];
            head[..64].copy_from_slice(&header.encode());
            head[slot.offset()..slot.offset() + COMMIT_SLOT_LEN].copy_from_slice(&slot.encode());
            file.write_all(&head)
                .map_err(|e| Error::io("write", &tmp, e))?;
            file.sync_all().map_err(|e| Error::io("sync", &tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &tmp, e))?;
            sync_dir(dir)?;
            Ok(ActiveSegment {
                path: path.clone(),
                file,
                header,
                slot,
                write_len: SEGMENT_HEADER_LEN as u64,
                staged: Vec::new(),
                staged_len: 0,
                flushed_len: SEGMENT_HEADER_LEN as u64,
                last_frame_at: 0,
            })
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Reopens an unsealed segment for appending after recovery checked it.
    pub fn reopen(
        path: PathBuf,
        file: File,
        header: SegmentHeader,
        slot: CommitSlot,
    ) -> Result<ActiveSegment> {
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", &path, e))?
            .len();
        if len != header.segment_len {
            return Err(Error::corrupt(
                &path,
                40,
                format!(
                    "unsealed segment is {len} bytes, its header says {}",
                    header.segment_len
                ),
            ));
        }
        Ok(ActiveSegment {
            path,
            file,
            header,
            slot,
            write_len: slot.committed_len,
            staged: Vec::new(),
            staged_len: 0,
            flushed_len: slot.committed_len,
            last_frame_at: 0,
        })
    }

    /// The open file, for recovery's read-only map of the committed prefix.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Free bytes after what is written.
    pub fn room(&self) -> u64 {
        self.header.segment_len - self.write_len
    }

    /// `len` new bytes at the end of what is written, to encode a frame into. They hold
    /// whatever an earlier frame left there: the caller writes every one of them.
    pub fn append_mut(&mut self, len: usize) -> &mut [u8] {
        let start = self.staged_len;
        let end = start + len;
        if self.staged.len() < end {
            // Zeroed once, when the buffer grows; reused from spill to spill after that.
            self.staged.resize(end, 0);
        }
        self.staged_len = end;
        self.last_frame_at = self.write_len;
        self.write_len += len as u64;
        debug_assert!(self.write_len <= self.header.segment_len);
        &mut self.staged[start..end]
    }

    /// Writes staged frames to the file once there are many of them.
    pub fn spill_if_large(&mut self) -> Result<()> {
        if self.staged_len >= STAGED_LEN_MAX {
            self.write_staged()?;
        }
        Ok(())
    }

    fn write_staged(&mut self) -> Result<()> {
        if self.staged_len > 0 {
            self.file
                .write_all_at(&self.staged[..self.staged_len], self.flushed_len)
                .map_err(|e| Error::io("write", &self.path, e))?;
            self.flushed_len += self.staged_len as u64;
            self.staged_len = 0;
        }
        Ok(())
    }

    fn sync_data(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("sync", &self.path, e))
    }

    /// Zeroes every non-zero byte from `from` to the end of the file, returning how many
    /// bytes that region spanned up to its last non-zero byte. The file is not shrunk: a
    /// reader in another process may map it. Only what the file system reports as data is
    /// read (`tail.rs`): the never-written rest of the preallocated file is not.
    pub fn zero_tail(&mut self, from: u64) -> Result<u64> {
        let end = self.header.segment_len;
        let last_nonzero = tail::last_nonzero(&self.file, from, end)
            .map_err(|e| Error::io("read", &self.path, e))?;
        let Some(last) = last_nonzero else {
            return Ok(0);
        };
        let zeros = vec![0u8; 1 << 20];
        let mut at = from;
        while at <= last {
            let n = usize::try_from((last + 1 - at).min(zeros.len() as u64)).unwrap_or(zeros.len());
            self.file
                .write_all_at(&zeros[..n], at)
                .map_err(|e| Error::io("zero torn tail of", &self.path, e))?;
            at += n as u64;
        }
        self.sync_data()?;
        Ok(last + 1 - from)
    }

    /// Publishes everything written as committed: the frames are written to the file, then
    /// the commit slot that covers them. With `sync`, the frames reach the device before the
    /// slot is written, and the slot before this returns.
    pub fn publish(
        &mut self,
        event_count: u64,
        last_id: u64,
        commit_us: i64,
        sync: bool,
    ) -> Result<()> {
        self.write_staged()?;
        if sync {
            self.sync_data()?;
        }
        let slot = CommitSlot {
            sequence: self.slot.sequence + 1,
            committed_len: self.write_len,
            durable_len: if sync {
                self.write_len
            } else {
                self.slot.durable_len
            },
            event_count,
            last_id,
            commit_time_us: commit_us,
            sealed: false,
        };
        self.write_slot(slot, sync)
    }

    fn write_slot(&mut self, slot: CommitSlot, sync: bool) -> Result<()> {
        self.file
            .write_all_at(&slot.encode(), slot.offset() as u64)
            .map_err(|e| Error::io("write commit slot of", &self.path, e))?;
        if sync {
            self.sync_data()?;
        }
        self.slot = slot;
        Ok(())
    }

    /// Makes everything published durable, and records that in a new commit slot (itself
    /// synced), so recovery after a power loss knows how far frames must be intact.
    pub fn sync_all(&mut self) -> Result<()> {
        self.write_staged()?;
        self.sync_data()?;
        if self.slot.durable_len < self.slot.committed_len {
            let slot = CommitSlot {
                sequence: self.slot.sequence + 1,
                durable_len: self.slot.committed_len,
                ..self.slot
            };
            self.write_slot(slot, true)?;
        }
        Ok(())
    }

    /// Republishes the segment as ending at `committed_len` after recovery found that frames
    /// past it, never synced, were lost (a power loss in `Buffered` mode).
    pub fn truncate_published(
        &mut self,
        committed_len: u64,
        event_count: u64,
        last_id: u64,
    ) -> Result<()> {
        let slot = CommitSlot {
            sequence: self.slot.sequence + 1,
            committed_len,
            durable_len: committed_len,
            event_count,
            last_id,
            ..self.slot
        };
        self.write_len = committed_len;
        self.flushed_len = committed_len;
        self.last_frame_at = 0;
        self.write_slot(slot, true)
    }

    /// Seals the segment: writes the footer after the committed frames, syncs it, publishes
    /// a sealed slot, syncs that, then shrinks the file to committed end + footer.
    /// `format-spec/FORMAT.md#sealing`
    pub fn seal(mut self, index: &SegmentIndex, commit_us: i64) -> Result<()> {
        debug_assert_eq!(
            self.write_len, self.slot.committed_len,
            "seal only after publish"
        );
        self.write_staged()?;
        let footer = index.to_footer().encode();
        let end = self.write_len + footer.len() as u64;
        if end > self.header.segment_len {
            return Err(Error::corrupt(
                &self.path,
                self.write_len,
                "no room for the footer (writer bug)",
            ));
        }
        self.file
            .write_all_at(&footer, self.write_len)
            .map_err(|e| Error::io("write footer of", &self.path, e))?;
        self.sync_data()?;
        let slot = CommitSlot {
            sequence: self.slot.sequence + 1,
            sealed: true,
            durable_len: self.write_len,
            commit_time_us: commit_us,
            ..self.slot
        };
        self.write_slot(slot, true)?;
        self.file
            .set_len(end)
            .map_err(|e| Error::io("shrink", &self.path, e))?;
        self.file
            .sync_all()
            .map_err(|e| Error::io("sync", &self.path, e))
    }
}
#[cfg(test)]
mod tests {
    use super::scan_frames;
    use crate::format::{encode_event, encode_string_def, EventFrame, SegmentHeader};
    use crate::index::SegmentIndex;

    fn header(base_timestamp_us: i64) -> SegmentHeader {
        SegmentHeader {
            version: 1,
            stream_kind: 1,
            segment_id: 1,
            base_id: 10,
            base_timestamp_us,
            segment_len: 1 << 16,
            created_us: 0,
        }
    }

    /// A segment's first 256 bytes (zero: the scan does not read them) and then `frames`;
    /// also the offset each frame starts at.
    fn segment(frames: &[Vec<u8>]) -> (Vec<u8>, Vec<u64>) {
        let mut buf = vec![0u8; 256];
        let mut starts = Vec::new();
        for f in frames {
            starts.push(buf.len() as u64);
            buf.extend_from_slice(f);
        }
        (buf, starts)
    }

    fn event(id_delta: u64, ts_delta: i64, refs: (u32, u32), payload: Option<&[u8]>) -> Vec<u8> {
        let f = EventFrame {
            id_delta,
            ts_delta,
            type_ref: refs.0,
            source_ref: refs.1,
            action_ref: None,
            hash: 7,
            payload,
            raw_len: None,
        };
        let mut out = vec![0u8; f.encoded_len()];
        encode_event(&mut out, &f);
        out
    }

    /// A committed end that cuts a frame, or leaves fewer than 8 bytes of one, fails the
    /// scan at that frame's start (`format-spec/FORMAT.md#frame-checks`); a committed end
    /// on a frame boundary scans clean. Issue 26: the spec left this to guessing.
    #[test]
    fn a_frame_crossing_the_committed_end_fails_at_its_start() {
        let (buf, starts) = segment(&[
            encode_string_def(0, "file_op"),
            event(0, 0, (0, 0), Some(br#"{"a":1}"#)),
            event(1, 5, (0, 0), None),
        ]);
        let total = buf.len() as u64;
        for end in 257..=total {
            let mut index = SegmentIndex::default();
            let got = scan_frames(&buf, 256, end, &header(0), &mut index, 0, "s".as_ref());
            let cut = starts.iter().copied().filter(|&s| s < end).max();
            if starts.contains(&end) || end == total {
                assert!(got.is_ok(), "end {end} is a frame boundary");
            } else {
                assert_eq!(got.err().map(|(at, _)| at), cut, "end {end}");
            }
        }
    }

    /// What only writers are bound by does not fail a scan: an over-long or empty string,
    /// empty type and source, an empty payload, a negative timestamp, a first id delta
    /// other than 0, a string defined twice, a payload that is not LZ4. And the summary's
    /// stored bytes count the payload without its `raw_len` varint.
    #[test]
    fn scans_accept_what_binds_only_writers() {
        let long = "x".repeat(2000);
        let lz4 = EventFrame {
            raw_len: Some(5000),
            payload: Some(b"not lz4 at all"),
            ..EventFrame {
                id_delta: 9,
                ts_delta: -10,
                type_ref: 0,
                source_ref: 2,
                action_ref: None,
                hash: 1,
                payload: None,
                raw_len: None,
            }
        };
        let mut lz4_frame = vec![0u8; lz4.encoded_len()];
        encode_event(&mut lz4_frame, &lz4);
        let (buf, _) = segment(&[
            encode_string_def(0, &long),
            encode_string_def(1, ""),
            encode_string_def(2, &long),
            event(3, -20, (1, 1), Some(b"")),
            lz4_frame,
        ]);
        let mut index = SegmentIndex::default();
        let end = buf.len() as u64;
        let got = scan_frames(&buf, 256, end, &header(5), &mut index, 0, "s".as_ref());
        assert!(got.is_ok(), "{:?}", got.err());
        let s = index.summary;
        assert_eq!((s.event_count, s.first_id, s.last_id), (2, 13, 19));
        assert_eq!((s.min_ts_us, s.compressed_count), (-15, 1));
        assert_eq!((s.data_raw_bytes, s.data_stored_bytes), (5000, 14));
    }
}
