//! A compacted segment turned back into the version-1 segment it stands for, for salvage:
//! its blocks expanded where they check out and left as zeros where they do not, under a
//! version-1 header and sealed slot, followed by its footer. Salvage then reads it as any
//! other segment: it finds the frames by their checksums, skips the zeroed blocks as damage
//! and counts the events they held from the footer.

use std::path::Path;
use std::sync::Arc;

use crate::format::{
    CommitSlot, Footer, SegmentHeader, COMMIT_SLOT_LEN, FIXED_HEADER_LEN, FORMAT_VERSION,
    PACKED_VERSION, SEGMENT_HEADER_LEN, SLOT_OFFSETS,
};
use crate::packed::{BlockCache, Bytes, Packed};

/// A compacted segment as version-1 bytes.
pub(crate) struct LogicalImage {
    /// Header, frames (zeros where a block was damaged) and footer.
    pub bytes: Vec<u8>,
    /// Each damaged block: its file offset and what is wrong.
    pub damaged: Vec<(u64, String)>,
    /// Blocks in the segment.
    pub blocks: usize,
}

/// The version-1 image of the compacted segment `bytes` (the file at `path`); `None` when
/// it is not a compacted segment, or when its header, slot, footer, layout or tables do
/// not check out (nothing of its blocks can then be found).
pub(crate) fn logical_image(bytes: &[u8], path: &Path) -> Option<LogicalImage> {
    let header = SegmentHeader::decode(bytes).ok()?;
    if header.version != PACKED_VERSION {
        return None;
    }
    let slot = CommitSlot::newest(bytes.get(..SEGMENT_HEADER_LEN)?)
        .ok()
        .filter(|s| s.sealed)?;
    let footer_at = usize::try_from(slot.committed_len).ok()?;
    let rest = bytes.get(footer_at..)?;
    let footer_bytes = rest.get(..Footer::peek_len(rest).ok()?)?;
    let footer = Footer::decode(footer_bytes).ok()?;
    let strings = crate::packed::dictionary(&footer.strings);
    let whole: Bytes = Arc::new(bytes.to_vec());
    let packed = Packed::open(
        whole,
        header,
        strings,
        Arc::from(path),
        Arc::new(BlockCache::new(0)),
    )
    .ok()?;
    let mut out = Vec::with_capacity(usize::try_from(packed.logical_len()).ok()?);
    out.resize(SEGMENT_HEADER_LEN, 0);
    out[..FIXED_HEADER_LEN].copy_from_slice(
        &SegmentHeader {
            version: FORMAT_VERSION,
            ..header
        }
        .encode(),
    );
    let logical = CommitSlot {
        sequence: 1,
        committed_len: packed.logical_len(),
        durable_len: packed.logical_len(),
        ..slot
    };
    out[SLOT_OFFSETS[0]..SLOT_OFFSETS[0] + COMMIT_SLOT_LEN].copy_from_slice(&logical.encode());
    let mut damaged = Vec::new();
    for (k, e) in packed.table().iter().enumerate() {
        match packed.expand_uncached(k) {
            Ok(frames) => out.extend_from_slice(&frames),
            Err(err) => {
                damaged.push((e.stored_offset, err.to_string()));
                out.resize(out.len() + e.logical_len as usize, 0);
            }
        }
    }
    out.extend_from_slice(footer_bytes);
    Some(LogicalImage {
        bytes: out,
        damaged,
        blocks: packed.table().len(),
    })
}
