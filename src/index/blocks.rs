//! A segment's closed blocks and their checkpoints: those a footer holds (a sealed
//! segment's, or an index image's), read in place, 48 bytes a block, followed by those
//! closed since, in memory.
//!
//! A reader resuming from an index image used to decode every block and checkpoint of it
//! at open: most of the image, and 11% of `inspect list` on a 10M-event store whose active
//! segment held ~270,000 events (issue 21), though a query reads a handful of its blocks.
//! Now only the blocks the index closes after the image's are kept in memory.
//! `format-spec/FORMAT.md#sparse-index`

use std::sync::Arc;

use super::FooterSource;
use crate::format::{Block, CHECKPOINT_SLOTS};

/// The closed blocks of a segment, in file order: the first `in_footer` read from
/// `footer`, the rest in `added`. Kept decoded, the blocks of the sealed segments would
/// cost a long-running reader ~1.5 MB per million events.
#[derive(Debug, Clone)]
pub(crate) struct Blocks {
    /// The footer holding the first blocks, if any.
    footer: Option<Arc<FooterSource>>,
    /// How many of the footer's blocks are closed blocks of this index (a resumed image's
    /// last block may be open again, so not counted here).
    in_footer: usize,
    /// Blocks closed in memory after them. Shared copy-on-write with running queries.
    added: Arc<Vec<Block>>,
}

impl Blocks {
    /// Blocks held in memory only.
    pub fn owned(blocks: Vec<Block>) -> Blocks {
        Blocks {
            footer: None,
            in_footer: 0,
            added: Arc::new(blocks),
        }
    }

    /// Every block of `footer`, read in place.
    pub fn in_footer(footer: Arc<FooterSource>) -> Blocks {
        Blocks {
            in_footer: footer.deferred.blocks.count,
            footer: Some(footer),
            added: Arc::new(Vec::new()),
        }
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.in_footer + self.added.len()
    }

    /// Block `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<Block> {
        match (i.checked_sub(self.in_footer), &self.footer) {
            (None, Some(f)) => f.deferred.blocks.get(f.footer(), i),
            (None, None) => None,
            (Some(j), _) => self.added.get(j).copied(),
        }
    }

    /// All of them, in file order.
    pub fn iter(&self) -> impl Iterator<Item = Block> + '_ {
        (0..self.len()).map_while(|i| self.get(i))
    }

    /// Appends a block just closed.
    pub fn push(&mut self, block: Block) {
        Arc::make_mut(&mut self.added).push(block);
    }

    /// Takes the last block out (to open it again).
    pub fn pop(&mut self) -> Option<Block> {
        if self.added.is_empty() {
            let last = self.get(self.in_footer.checked_sub(1)?)?;
            self.in_footer -= 1;
            Some(last)
        } else {
            Arc::make_mut(&mut self.added).pop()
        }
    }
}

/// Where event frames inside each closed block start: [`CHECKPOINT_SLOTS`] relative offsets
/// per block (0 for none), so a point lookup reads at most `CHECKPOINT_STRIDE` frames;
/// like [`Blocks`], those of a footer's first blocks read in place, the rest in memory.
/// `None` when the footer has none. `format-spec/FORMAT.md#checkpoints`
#[derive(Debug, Clone)]
pub(crate) struct Checkpoints(Option<Known>);

/// The checkpoints of every closed block.
#[derive(Debug, Clone)]
struct Known {
    /// The footer holding the first blocks' checkpoints, if any.
    footer: Option<Arc<FooterSource>>,
    /// Blocks whose checkpoints are in the footer.
    in_footer: usize,
    /// [`CHECKPOINT_SLOTS`] entries per block closed in memory after them.
    added: Arc<Vec<u16>>,
}

impl Checkpoints {
    /// None known (a footer without them).
    pub const ABSENT: Checkpoints = Checkpoints(None);

    /// Checkpoints held in memory only, [`CHECKPOINT_SLOTS`] per block.
    pub fn owned(points: Vec<u16>) -> Checkpoints {
        Checkpoints(Some(Known {
            footer: None,
            in_footer: 0,
            added: Arc::new(points),
        }))
    }

    /// Those of every block of `footer`, read in place; none if it has none (of this
    /// version's stride).
    pub fn in_footer(footer: &Arc<FooterSource>) -> Checkpoints {
        Checkpoints(footer.deferred.checkpoints.map(|_| Known {
            in_footer: footer.deferred.blocks.count,
            footer: Some(Arc::clone(footer)),
            added: Arc::new(Vec::new()),
        }))
    }

    /// Entry `slot` of closed block `block`.
    pub fn get(&self, block: usize, slot: usize) -> Option<u16> {
        self.0.as_ref()?.get(block, slot)
    }

    /// Appends the checkpoints of a block just closed.
    pub fn push(&mut self, points: &[u16; CHECKPOINT_SLOTS]) {
        if let Some(k) = &mut self.0 {
            Arc::make_mut(&mut k.added).extend_from_slice(points);
        }
    }

    /// Takes the last block's checkpoints out (to open it again).
    pub fn pop(&mut self) -> Option<[u16; CHECKPOINT_SLOTS]> {
        self.0.as_mut()?.pop()
    }

    /// Every entry, block by block; `None` when absent or a footer's cannot be read.
    pub fn to_vec(&self) -> Option<Vec<u16>> {
        self.0.as_ref()?.to_vec()
    }
}

impl Known {
    fn get(&self, block: usize, slot: usize) -> Option<u16> {
        if slot >= CHECKPOINT_SLOTS {
            return None;
        }
        match (block.checked_sub(self.in_footer), &self.footer) {
            (None, Some(f)) => f
                .deferred
                .checkpoints
                .and_then(|c| c.get(f.footer(), block, slot)),
            (None, None) => None,
            (Some(j), _) => self.added.get(j * CHECKPOINT_SLOTS + slot).copied(),
        }
    }

    fn pop(&mut self) -> Option<[u16; CHECKPOINT_SLOTS]> {
        let mut points = [0; CHECKPOINT_SLOTS];
        if self.added.is_empty() {
            let last = self.in_footer.checked_sub(1)?;
            for (slot, p) in points.iter_mut().enumerate() {
                *p = self.get(last, slot)?;
            }
            self.in_footer = last;
        } else {
            let added = Arc::make_mut(&mut self.added);
            let at = added.len().checked_sub(CHECKPOINT_SLOTS)?;
            points.copy_from_slice(&added[at..]);
            added.truncate(at);
        }
        Some(points)
    }

    fn to_vec(&self) -> Option<Vec<u16>> {
        let mut all = match &self.footer {
            Some(f) => {
                let mut v = f.deferred.checkpoints?.decode_all(f.footer()).ok()?;
                v.truncate(self.in_footer * CHECKPOINT_SLOTS);
                v
            }
            None => Vec::new(),
        };
        all.extend_from_slice(&self.added);
        Some(all)
    }
}
