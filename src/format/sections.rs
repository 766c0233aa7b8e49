//! The footer's sections a reader leaves in place in the mapped file: the sparse block
//! index, the postings and the checkpoints of a sealed segment, read entry by entry when a
//! query needs them instead of decoded whole at open. `format-spec/FORMAT.md#footer`
//!
//! Each view holds only offsets into the footer's bytes, checked against the section's
//! length when the footer was decoded, so every read through one stays inside its section.

use super::footer::{
    capped, decode_posting_list, decode_postings, Block, CHECKPOINT_SLOTS, CHECKPOINT_STRIDE,
};
use super::{DecodeError, Reader, BLOCK_LEN};

/// The parts of a footer [`Footer::decode_deferred`](super::Footer::decode_deferred) leaves in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deferred {
    /// The sparse index.
    pub blocks: EncodedBlocks,
    /// The postings, if the footer has them.
    pub postings: Option<EncodedPostings>,
    /// The checkpoints, if the footer has them (of [`CHECKPOINT_STRIDE`]).
    pub checkpoints: Option<EncodedCheckpoints>,
}

/// Where the checkpoints section's entries are in a footer: [`CHECKPOINT_SLOTS`] `u16`
/// values per block, read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedCheckpoints {
    /// Offset of the first entry in the footer.
    offset: usize,
    /// Blocks covered.
    blocks: usize,
}

impl EncodedCheckpoints {
    /// Checks a checkpoints section's body (at `base` in the footer) against the footer's
    /// `blocks` count; `None` for a stride this version does not use.
    pub(super) fn find(
        sr: &mut Reader<'_>,
        base: usize,
        blocks: usize,
    ) -> Result<Option<EncodedCheckpoints>, DecodeError> {
        if sr.u32("checkpoint stride")? != CHECKPOINT_STRIDE {
            return Ok(None);
        }
        let count = sr.u32("checkpoint block count")? as usize;
        if count != blocks {
            return Err(DecodeError::new(
                4,
                format!("checkpoints for {count} blocks, {blocks} blocks"),
            ));
        }
        sr.take(count * CHECKPOINT_SLOTS * 2, "checkpoints")?;
        Ok(Some(EncodedCheckpoints {
            offset: base + 8,
            blocks: count,
        }))
    }

    /// Entry `slot` of block `block` in `footer` (the bytes they were found in); `None` past
    /// the end.
    pub fn get(&self, footer: &[u8], block: usize, slot: usize) -> Option<u16> {
        if block >= self.blocks || slot >= CHECKPOINT_SLOTS {
            return None;
        }
        let at = self.offset + (block * CHECKPOINT_SLOTS + slot) * 2;
        let b = footer.get(at..at + 2)?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }

    /// Every entry, block by block.
    ///
    /// # Errors
    /// A [`DecodeError`] if the entries are not within `footer`.
    pub fn decode_all(&self, footer: &[u8]) -> Result<Vec<u16>, DecodeError> {
        let len = self.blocks * CHECKPOINT_SLOTS * 2;
        let bytes = footer
            .get(self.offset..self.offset + len)
            .ok_or_else(|| DecodeError::new(self.offset, "checkpoints past the footer"))?;
        Ok(bytes
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect())
    }
}

/// Where the blocks section's entries are in a footer: fixed 48-byte records, read in
/// place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncodedBlocks {
    /// Offset of the first entry in the footer.
    pub(super) offset: usize,
    /// Number of entries.
    pub count: usize,
}

impl EncodedBlocks {
    /// Entry `i` of the footer `footer` (the same bytes they were found in); `None` past
    /// the end.
    pub fn get(&self, footer: &[u8], i: usize) -> Option<Block> {
        if i >= self.count {
            return None;
        }
        let at = self.offset + i * BLOCK_LEN;
        let b = footer.get(at..at + BLOCK_LEN)?;
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        Some(Block {
            first_id: u64_at(0),
            last_id: u64_at(8),
            offset: u64_at(16),
            len: u32_at(24),
            event_count: u32_at(28),
            min_ts_us: u64_at(32).cast_signed(),
            max_ts_us: u64_at(40).cast_signed(),
        })
    }

    /// Every entry.
    ///
    /// # Errors
    /// A [`DecodeError`] if the entries are not within `footer`.
    pub fn decode_all(&self, footer: &[u8]) -> Result<Vec<Block>, DecodeError> {
        (0..self.count)
            .map(|i| {
                self.get(footer, i)
                    .ok_or_else(|| DecodeError::new(self.offset, "blocks past the footer"))
            })
            .collect()
    }
}

/// Where the postings section of a footer is, checksummed but not yet decoded. It refers
/// to the footer's bytes instead of copying them: a reader keeps the segment mapped anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedPostings {
    /// Offset of the section's body in the footer.
    pub(super) offset: usize,
    /// Length of the body.
    pub(super) len: usize,
    /// Blocks in the footer: every posted index must be below.
    pub(super) blocks: usize,
}

/// Where one string's posting list is in a footer: see [`EncodedPostings::directory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostingListAt {
    /// Offset of its first varint in the footer.
    offset: usize,
    /// Its number of block indices.
    count: u32,
}

impl PostingListAt {
    /// How many block indices the list holds.
    pub fn count(self) -> u32 {
        self.count
    }
}

impl EncodedPostings {
    /// Where each string's list is, by string reference, without decoding the lists: a few
    /// bytes per string instead of four per posted block, so that a long-running reader can
    /// keep it for every segment.
    ///
    /// # Errors
    /// A [`DecodeError`] with its offset in the footer when the lists' framing is wrong.
    pub fn directory(&self, footer: &[u8]) -> Result<Vec<(u32, PostingListAt)>, DecodeError> {
        let body = self.body(footer)?;
        let rebase = |e: DecodeError| DecodeError::new(self.offset + e.offset, e.what);
        let mut r = Reader::new(body);
        let count = r.u32("posting count").map_err(rebase)?;
        let count = capped(count, r.remaining(), 8).map_err(rebase)?;
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let string_ref = r.u32("posting string ref").map_err(rebase)?;
            let n = r.u32("posting length").map_err(rebase)?;
            let offset = self.offset + r.pos();
            // Step over the list's varints: one terminating byte (below 0x80) each.
            let rest = &body[r.pos()..];
            let mut seen = 0u32;
            let mut len = 0;
            while seen < n {
                let b = *rest
                    .get(len)
                    .ok_or_else(|| DecodeError::new(offset + len, "posting list truncated"))?;
                seen += u32::from(b < 0x80);
                len += 1;
            }
            r.take(len, "posting list").map_err(rebase)?;
            out.push((string_ref, PostingListAt { offset, count: n }));
        }
        if r.remaining() != 0 {
            return Err(DecodeError::new(
                self.offset + r.pos(),
                "trailing bytes in footer section",
            ));
        }
        Ok(out)
    }

    /// Decodes the list at `at` (from [`EncodedPostings::directory`] of the same footer).
    ///
    /// # Errors
    /// A [`DecodeError`] with its offset in the footer.
    pub fn list(&self, footer: &[u8], at: PostingListAt) -> Result<Vec<u32>, DecodeError> {
        let bytes = footer
            .get(at.offset..self.offset + self.len)
            .ok_or_else(|| DecodeError::new(at.offset, "posting list past the footer"))?;
        let mut r = Reader::new(bytes);
        decode_posting_list(&mut r, at.count, self.blocks)
            .map_err(|e| DecodeError::new(at.offset + e.offset, e.what))
    }

    fn body<'f>(&self, footer: &'f [u8]) -> Result<&'f [u8], DecodeError> {
        footer
            .get(self.offset..self.offset + self.len)
            .ok_or_else(|| DecodeError::new(self.offset, "postings past the footer"))
    }

    /// Decodes the postings from `footer`, the same footer bytes they were found in:
    /// (string reference, ascending block indices) by reference.
    ///
    /// # Errors
    /// A [`DecodeError`] with its offset in the footer.
    pub fn decode(&self, footer: &[u8]) -> Result<Vec<(u32, Vec<u32>)>, DecodeError> {
        let mut r = Reader::new(self.body(footer)?);
        let postings = decode_postings(&mut r, self.blocks)
            .map_err(|e| DecodeError::new(self.offset + e.offset, e.what))?;
        if r.remaining() != 0 {
            return Err(DecodeError::new(
                self.offset + r.pos(),
                "trailing bytes in footer section",
            ));
        }
        Ok(postings)
    }
}
