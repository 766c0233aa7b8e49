//! Reading a sealed segment's footer from its map, checked against its commit slot.
//! `format-spec/FORMAT.md#footer`

use std::path::Path;

use crate::error::{Error, Result};
use crate::format::{CommitSlot, Deferred, Footer};

/// Decodes and checks the footer of a sealed segment against its commit slot.
pub(crate) fn read_footer(map: &[u8], slot: &CommitSlot, path: &Path) -> Result<Footer> {
    let (mut footer, deferred) = read_footer_deferred(map, slot, path)?;
    let bytes = &map[slot.committed_len as usize..];
    let corrupt = |e: crate::format::DecodeError| {
        Error::corrupt(path, slot.committed_len + e.offset as u64, e.what)
    };
    footer.blocks = deferred.blocks.decode_all(bytes).map_err(corrupt)?;
    if let Some(p) = deferred.postings {
        footer.postings = Some(p.decode(bytes).map_err(corrupt)?);
    }
    if let Some(c) = deferred.checkpoints {
        footer.checkpoints = Some(c.decode_all(bytes).map_err(corrupt)?);
    }
    Ok(footer)
}

/// [`read_footer`], leaving the blocks and postings where they are (see
/// [`Footer::decode_deferred`]).
pub(crate) fn read_footer_deferred(
    map: &[u8],
    slot: &CommitSlot,
    path: &Path,
) -> Result<(Footer, Deferred)> {
    let start = usize::try_from(slot.committed_len)
        .map_err(|_| Error::corrupt(path, 0, "committed length too large"))?;
    let rest = map.get(start..).ok_or_else(|| {
        Error::corrupt(
            path,
            slot.committed_len,
            "sealed segment ends before its footer",
        )
    })?;
    let len = Footer::peek_len(rest)
        .map_err(|e| Error::corrupt(path, slot.committed_len + e.offset as u64, e.what))?;
    let bytes = rest.get(..len).ok_or_else(|| {
        Error::corrupt(
            path,
            slot.committed_len,
            "footer runs past the end of the file",
        )
    })?;
    let (footer, deferred) = Footer::decode_deferred(bytes)
        .map_err(|e| Error::corrupt(path, slot.committed_len + e.offset as u64, e.what))?;
    if footer.summary.event_count != slot.event_count || footer.summary.last_id != slot.last_id {
        return Err(Error::corrupt(
            path,
            slot.committed_len,
            "footer summary disagrees with the commit slot",
        ));
    }
    Ok((footer, deferred))
}
