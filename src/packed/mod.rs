//! Reading compacted segments: their blocks decompressed and expanded into version-1
//! frames for the stream's views (`reader.rs`), and their block filters (`filter.rs`).
//! Compaction, which writes them, is the module above this one.
//! `format-spec/FORMAT.md#compacted-segments`

pub(crate) mod filter;
mod reader;

/// The blocks of one compacted segment a snapshot expanded, by block number: slots of 64
/// blocks made on first use, so a snapshot that reads one block (a lookup by id) costs a
/// slot, not a slot per block of the segment.
pub(crate) struct BlockMemo {
    chunks: Box<[std::sync::OnceLock<Box<[BlockSlot]>>]>,
}

/// One block's place in a [`BlockMemo`]: its expansion, or `None` when it failed.
pub(crate) type BlockSlot = std::sync::OnceLock<Option<Expanded>>;

const MEMO_CHUNK: usize = 64;

impl BlockMemo {
    /// A memo for `blocks` blocks.
    pub fn new(blocks: usize) -> BlockMemo {
        BlockMemo {
            chunks: (0..blocks.div_ceil(MEMO_CHUNK))
                .map(|_| std::sync::OnceLock::new())
                .collect(),
        }
    }

    /// The slot of block `k`.
    pub fn slot(&self, k: usize) -> Option<&BlockSlot> {
        let chunk = self.chunks.get(k / MEMO_CHUNK)?.get_or_init(|| {
            (0..MEMO_CHUNK)
                .map(|_| std::sync::OnceLock::new())
                .collect()
        });
        chunk.get(k % MEMO_CHUNK)
    }

    /// The slot of block `k`, to empty it.
    pub fn slot_mut(&mut self, k: usize) -> Option<&mut BlockSlot> {
        self.chunks
            .get_mut(k / MEMO_CHUNK)?
            .get_mut()?
            .get_mut(k % MEMO_CHUNK)
    }
}

/// A footer's dictionary as the reader takes it (`Packed::open`).
pub(crate) fn dictionary(strings: &[String]) -> std::sync::Arc<Vec<std::sync::Arc<str>>> {
    std::sync::Arc::new(
        strings
            .iter()
            .map(|s| std::sync::Arc::from(s.as_str()))
            .collect(),
    )
}

pub(crate) use reader::{
    decompress, hash_fields, BlockCache, Bytes, Expanded, Packed, BLOCK_CACHE_BYTES,
};

/// The sparse-index blocks (numbers into `blocks`) of compacted segment `packed` whose
/// block filter says they may hold a payload containing `needle` (ASCII letters compared
/// without case): every other block is passed over without being decompressed. `None`
/// when no filter can rule anything out (a needle under 3 bytes, no filters). A filter
/// that fails its checksum or does not decode rules nothing out: the search then reads
/// its blocks, and their own checks report any damage.
pub(crate) fn filter_candidates(
    packed: &Packed,
    needle: &[u8],
    blocks: &crate::index::Blocks,
) -> Option<Vec<u32>> {
    let probe = filter::FilterProbe::new(needle)?;
    if packed.filters().is_empty() {
        return None;
    }
    let mut may = vec![true; packed.table().len()];
    for f in packed.filters() {
        let keep = packed
            .filter_bytes(f)
            .is_none_or(|b| filter::may_contain(b, &probe).unwrap_or(true));
        let first = f.first_block as usize;
        for m in may.iter_mut().skip(first).take(f.block_count as usize) {
            *m = keep;
        }
    }
    Some(
        blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| packed.block_at(b.offset).is_none_or(|k| may[k]))
            .map(|(i, _)| u32::try_from(i).unwrap_or(u32::MAX))
            .collect(),
    )
}
