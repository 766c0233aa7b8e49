//! `verify` of a compacted segment: every block's stored bytes against their CRC, its
//! decompression and expansion against the table, every expanded frame through the same
//! scan as a segment read as written, the index rebuilt from them against the footer, and
//! every filter's structure. A damaged block is reported with its number and where its
//! bytes are, and the others are still checked.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{CommitSlot, Footer, SegmentHeader, SEGMENT_HEADER_LEN};
use crate::index::SegmentIndex;
use crate::segment::map;

use crate::packed::{BlockCache, Packed};

/// What checking one compacted segment found.
pub(crate) struct Checked {
    /// Events in the blocks that check out.
    pub events: u64,
    /// Its last event id.
    pub last_id: u64,
    /// Each damaged part, as (file offset, what).
    pub problems: Vec<(u64, String)>,
}

/// Whether `footer` is the one the frames that gave `index` call for (the append clock,
/// which frames do not hold, and sections an older footer lacks are not compared).
pub(crate) fn footer_matches(footer: &Footer, index: &SegmentIndex) -> bool {
    let mut expected = index.to_footer();
    expected.summary.first_commit_us = footer.summary.first_commit_us;
    expected.summary.last_commit_us = footer.summary.last_commit_us;
    if footer.postings.is_none() {
        expected.postings = None;
    }
    if footer.source_counts.is_none() {
        expected.source_counts = None;
    }
    if footer.action_counts.is_none() {
        expected.action_counts = None;
    }
    if footer.checkpoints.is_none() {
        expected.checkpoints = None;
    }
    *footer == expected
}

/// Checks the compacted segment `file` (sealed at `slot`, `len` bytes with its footer).
///
/// # Errors
/// [`Error::Corrupt`] when its layout, tables or dictionary do not decode (nothing of it
/// can be read then); damage inside blocks is returned in [`Checked::problems`].
pub(crate) fn check(
    file: &File,
    len: u64,
    header: SegmentHeader,
    slot: &CommitSlot,
    path: &Path,
) -> Result<Checked> {
    let m = Arc::new(map::map_read(file, len, path)?);
    let footer = crate::stream::read_footer(&m, slot, path)?;
    let strings = crate::packed::dictionary(&footer.strings);
    let packed = Packed::open(
        Arc::clone(&m) as crate::packed::Bytes,
        header,
        strings,
        Arc::from(path),
        Arc::new(BlockCache::new(0)),
    )?;
    let mut problems = Vec::new();
    let mut logical = vec![0u8; SEGMENT_HEADER_LEN];
    for (k, e) in packed.table().iter().enumerate() {
        match packed.expand_uncached(k) {
            Ok(bytes) => logical.extend_from_slice(&bytes),
            Err(Error::Corrupt { what, .. }) => {
                problems.push((e.stored_offset, what));
                // Keeps later blocks at their offsets; the hole is not scanned.
                logical.resize(logical.len() + e.logical_len as usize, 0);
            }
            Err(other) => return Err(other),
        }
    }
    for f in packed.filters() {
        match packed.filter_bytes(f) {
            Some(bytes) => {
                if let Err(what) = crate::packed::filter::check(bytes) {
                    problems.push((f.offset, format!("block filter: {what}")));
                }
            }
            None => problems.push((f.offset, "block filter checksum mismatch".into())),
        }
    }
    if !problems.is_empty() {
        let events = good_events(&packed, &logical);
        return Ok(Checked {
            events,
            last_id: slot.last_id,
            problems,
        });
    }
    let index = super::index_of(&logical, &header, path)?;
    if index.summary.event_count != slot.event_count || index.summary.last_id != slot.last_id {
        problems.push((
            crate::format::SLOT_OFFSETS[0] as u64,
            "commit slot counts disagree with the frames".into(),
        ));
    }
    if !footer_matches(&footer, &index) {
        problems.push((
            slot.committed_len,
            "footer does not match the frames it indexes".into(),
        ));
    }
    for b in index.all_blocks() {
        let last = b.offset + u64::from(b.len) - 1;
        if packed.block_at(b.offset) != packed.block_at(last) {
            problems.push((
                slot.committed_len,
                format!("index block at {} spans two compressed blocks", b.offset),
            ));
            break;
        }
    }
    Ok(Checked {
        events: index.summary.event_count,
        last_id: index.summary.last_id,
        problems,
    })
}

/// Events in the blocks that expanded, when some did not.
fn good_events(packed: &Packed, logical: &[u8]) -> u64 {
    let mut n = 0;
    for (k, e) in packed.table().iter().enumerate() {
        if packed.expand_uncached(k).is_err() {
            continue;
        }
        let a = e.logical_start as usize;
        let bytes = &logical[a..a + e.logical_len as usize];
        let mut at = 0;
        while let Ok(Some((frame, len))) = crate::format::decode_frame(&bytes[at..]) {
            n += u64::from(matches!(frame, crate::format::Frame::Event(_)));
            at += len;
        }
    }
    n
}
