//! A sealed segment's index from its checksummed footer, read in place from the segment's
//! map.

use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;

use crate::error::Result;
use crate::format::CommitSlot;
use crate::index::{FooterSource, SegmentIndex};
use crate::segment::footer::read_footer_deferred;
use crate::segment::map;

/// The index a sealed segment's footer holds, its blocks and postings read in place from
/// `map`. Once decoded, the footer's pages are released from this process (what stays
/// encoded is read again through `map` on use, from the page cache): a command that loads
/// every footer of a 10M-event store (`inspect stats`) peaked at 65 MB of resident pages,
/// 18 MB with the release (issue 21).
pub(super) fn index_from_footer(
    map: &Arc<Mmap>,
    slot: &CommitSlot,
    path: &Path,
) -> Result<SegmentIndex> {
    let (footer, deferred) = read_footer_deferred(map, slot, path)?;
    let footer_at = slot.committed_len as usize;
    let source = FooterSource {
        bytes: Arc::clone(map) as Arc<dyn AsRef<[u8]> + Send + Sync>,
        footer_at,
        deferred,
    };
    let index = SegmentIndex::from_footer(footer, Some(source));
    map::release(map, footer_at, map.len().saturating_sub(footer_at));
    Ok(index)
}
