//! `verify`, the full check of a store: continuity, every segment's header, commit slots,
//! frames, footers and payloads, then the small files beside them (`small_files.rs`).
//! It takes no lock and modifies nothing.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{self, SegmentHeader, SEGMENT_HEADER_LEN};
use crate::index::SegmentIndex;
use crate::segment::{check_identity, map, read_header, scan_frames, sealed_len, StreamKind};
use crate::stream::{read_footer, read_frame, Snapshot, Stream};

use super::{check_slot_counts, read_only_check, small_files};

/// One problem `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The damaged file.
    pub path: PathBuf,
    /// Byte offset of the damage in it.
    pub offset: u64,
    /// What is wrong.
    pub what: String,
}

/// The result of [`verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Segment files checked.
    pub segments: usize,
    /// Event frames whose checksum and structure held.
    pub events: u64,
    /// Frames of any kind checked.
    pub bytes_checked: u64,
    /// Bytes past the committed end of unsealed segments: left by a killed writer, never
    /// acknowledged, not damage.
    pub torn_tail_bytes: u64,
    /// Every problem, in file order. Empty means the store is sound.
    pub problems: Vec<Problem>,
}

/// Checks every segment of the store in `dir`: that every segment and event the store
/// recorded is there (the segment manifest, `format-spec/FORMAT.md#segment-manifest`) and
/// no cursor is past the last event, then headers, commit slots, every frame's checksum
/// and structure, and that each sealed footer matches the frames it summarises; then the
/// small files beside them: `counters`, each cursor file, the dedup window image, and both
/// sidecar streams as a store's segments are checked. Takes no lock and modifies nothing,
/// so it may run while a writer appends.
///
/// # Errors
/// [`Error::NotAStore`] or [`Error::UnsupportedVersion`] when `dir` is not a store this
/// build reads, or an I/O error listing it; damage is reported in the result.
pub fn verify(dir: &Path) -> Result<VerifyReport> {
    crate::layout::check_store(dir)?;
    let kind = StreamKind::Events;
    let mut report = VerifyReport::default();
    let unreadable = verify_continuity(dir, &mut report)?;
    let ids = Stream::list(dir, kind)?;
    let mut last_id = 0u64;
    for (i, &id) in ids.iter().enumerate() {
        let path = dir.join(kind.file_name(id));
        report.segments += 1;
        if unreadable.contains(&id) {
            // Reported once, with what it held, by the continuity check.
            continue;
        }
        let is_last = i + 1 == ids.len();
        match verify_segment(&path, kind, id, is_last, &mut report) {
            Ok(last) => last_id = last_id.max(last),
            Err(Error::Corrupt { path, offset, what }) => {
                report.problems.push(Problem { path, offset, what });
            }
            Err(e) => report.problems.push(Problem {
                path: path.clone(),
                offset: 0,
                what: e.to_string(),
            }),
        }
    }
    small_files::verify_small_files(dir, last_id, &mut report);
    Ok(report)
}

/// The continuity part of [`verify`]: segments and events the store recorded that are gone,
/// files that cannot be read at all (a damaged header, cut short), files holding another
/// segment than their name says, ids out of order between segments, a damaged manifest,
/// and cursors past the last event that exists (`manifest.rs`). Returns the unreadable
/// files' numbers.
fn verify_continuity(dir: &Path, report: &mut VerifyReport) -> Result<Vec<u32>> {
    let c = read_only_check(dir)?;
    report.problems.extend(c.warnings);
    Ok(c.unreadable)
}

fn verify_segment(
    path: &Path,
    kind: StreamKind,
    id: u32,
    is_last: bool,
    report: &mut VerifyReport,
) -> Result<u64> {
    let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let (header, slot) = read_header(&file, path)?;
    check_identity(&header, kind, id, path)?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat", path, e))?
        .len();
    if !slot.sealed && !is_last {
        report.problems.push(Problem {
            path: path.to_path_buf(),
            offset: format::SLOT_OFFSETS[0] as u64,
            what: "segment before the last is not sealed (a writer refuses to open the store)"
                .into(),
        });
    }
    let len = if slot.sealed {
        sealed_len(&file, &slot, len, path)?
    } else {
        len
    };
    if header.version == format::PACKED_VERSION {
        let checked = crate::compact::verify::check(&file, len, header, &slot, path)?;
        report.events += checked.events;
        report.bytes_checked += len;
        for (offset, what) in checked.problems {
            report.problems.push(Problem {
                path: path.to_path_buf(),
                offset,
                what,
            });
        }
        return Ok(checked.last_id);
    }
    // An unsealed segment may be sealed and shrunk by a running writer at any moment: map
    // only its committed prefix, and read the tail with plain reads.
    let map_len = if slot.sealed { len } else { slot.committed_len };
    let m = map::map_read(&file, map_len, path)?;
    let mut index = SegmentIndex::default();
    let scanned = scan_frames(
        &m,
        SEGMENT_HEADER_LEN as u64,
        slot.committed_len,
        &header,
        &mut index,
        0,
        path,
    );
    if let Err((frame_at, err)) = scanned {
        if !slot.sealed && frame_at >= slot.durable_len {
            let Error::Corrupt { path, offset, what } = err else {
                return Err(err);
            };
            report.problems.push(Problem {
                path,
                offset,
                what: format!(
                    "{what}; this frame was committed but never synced (a power loss in Buffered mode?): \
                     opening the store for writing discards it and everything after it"
                ),
            });
            report.events += index.summary.event_count;
            return Ok(index.summary.last_id);
        }
        return Err(err);
    }
    report.events += index.summary.event_count;
    report.bytes_checked += slot.committed_len;
    check_slot_counts(&index, &slot, path)?;
    if slot.sealed {
        let footer = read_footer(&m, &slot, path)?;
        // The append clock is per batch and not recoverable from frames; sections a
        // footer may lack (written before they existed) are not compared.
        if !crate::compact::verify::footer_matches(&footer, &index) {
            return Err(Error::corrupt(
                path,
                slot.committed_len,
                "footer does not match the frames it indexes",
            ));
        }
    } else {
        report.torn_tail_bytes += nonzero_tail_len(&file, slot.committed_len, len);
    }
    check_payloads(m, header, slot.committed_len, &index, path)?;
    Ok(index.summary.last_id)
}

/// Decodes every event fully (UTF-8, LZ4 to exactly its stated length), checks that its
/// fields pass the checks `append` made (its data JSON) and its content hash, which the
/// frame scan alone does not. Each failure says which check failed, with the frame's file
/// and offset.
fn check_payloads(
    m: memmap2::Mmap,
    header: SegmentHeader,
    committed_len: u64,
    index: &SegmentIndex,
    path: &Path,
) -> Result<()> {
    let snap = Snapshot {
        map: Arc::new(m),
        header,
        committed_len,
        strings: Arc::clone(&index.strings),
        path: Arc::from(path),
        checked: Arc::new(crate::checked::CheckedBlocks::with_capacity(0)),
        packed: None,
    };
    let mut at = SEGMENT_HEADER_LEN as u64;
    while at < committed_len {
        let (event, next) = read_frame(&snap, at)?;
        if let Some(e) = event {
            let fields = e.to_event().map_err(|why| {
                Error::corrupt(
                    path,
                    at,
                    format!("event {} fails the checks append made: {why}", e.id),
                )
            })?;
            if fields.content_hash() != e.hash {
                return Err(Error::corrupt(
                    path,
                    at,
                    format!("content hash of event {} does not match its fields", e.id),
                ));
            }
        }
        at = next;
    }
    Ok(())
}

/// Bytes from `from` up to the last non-zero byte before `end`; 0 when that cannot be read.
fn nonzero_tail_len(file: &File, from: u64, end: u64) -> u64 {
    crate::segment::tail::last_nonzero(file, from, end)
        .ok()
        .flatten()
        .map_or(0, |p| p + 1 - from)
}
