//! Candidates a segment plan's frontier jumped over, served in order key order.
//!
//! A plan's frontier moves over its candidate blocks from the newest (oldest) end, bounded
//! by the prefix maximum (suffix minimum) time of what it has not reached. When the block
//! holding that bound lies far behind the frontier (an event of a newer time early in a
//! segment, then a long run of older ones: an import of older history after capture
//! began), walking to it would queue every block in between, thousands for a 64 MiB
//! segment, most of which a limited query never reads. The frontier jumps to that block
//! instead, and the positions it passed become a range here, keyed exactly by its best
//! candidate's key, found with a max tree over the keys of the positions that jump passed
//! (built then: reading every candidate's key instead was 5% of `inspect list` on a 10M
//! store). Taking a range's best splits the range in two.

use std::collections::BinaryHeap;

use super::merge::Keyed;

/// No position (a leaf past the last candidate).
const NONE: u32 = u32::MAX;

/// The order keys of candidate positions `base..base + keys.len()`, and for every node of
/// a complete binary tree over them the position (relative to `base`) of the largest key
/// beneath it.
struct MaxTree {
    base: usize,
    keys: Vec<(i64, u64)>,
    /// Leaves: a power of two, at least `keys.len()`.
    leaves: usize,
    /// `best[n]` for node `n` (root 1, children `2n` and `2n + 1`, leaf of position `p`
    /// at `leaves + p`).
    best: Vec<u32>,
}

impl MaxTree {
    fn new(base: usize, keys: Vec<(i64, u64)>) -> MaxTree {
        let leaves = keys.len().next_power_of_two();
        let mut tree = MaxTree {
            base,
            keys,
            leaves,
            best: vec![NONE; 2 * leaves],
        };
        for p in 0..tree.keys.len() {
            tree.best[leaves + p] = u32::try_from(p).unwrap_or(NONE);
        }
        for n in (1..leaves).rev() {
            tree.best[n] = tree.pick(tree.best[2 * n], tree.best[2 * n + 1]);
        }
        tree
    }

    /// The position of the larger key of two (keys hold ids, so never equal).
    fn pick(&self, a: u32, b: u32) -> u32 {
        let key = |p: u32| self.keys.get(p as usize);
        match (key(a), key(b)) {
            (Some(ka), Some(kb)) => {
                if kb > ka {
                    b
                } else {
                    a
                }
            }
            (Some(_), None) => a,
            (None, _) => b,
        }
    }

    /// The position (relative to `base`) of the largest key among relative positions
    /// `lo..hi`.
    fn best_in(&self, lo: usize, hi: usize) -> u32 {
        let (mut l, mut r) = (lo + self.leaves, hi + self.leaves);
        let mut out = NONE;
        while l < r {
            if l & 1 == 1 {
                out = self.pick(out, self.best[l]);
                l += 1;
            }
            if r & 1 == 1 {
                r -= 1;
                out = self.pick(out, self.best[r]);
            }
            l >>= 1;
            r >>= 1;
        }
        out
    }
}

/// A range of candidate positions `lo..hi` of the jump `tree`, and the position of its
/// best candidate.
#[derive(Clone, Copy)]
pub(super) struct Range {
    tree: u32,
    lo: u32,
    hi: u32,
    pub(super) best: u32,
}

/// The ranges a frontier jumped over.
#[derive(Default)]
pub(super) struct Skipped {
    /// One per jump, over the positions it passed (jumps pass disjoint positions).
    trees: Vec<MaxTree>,
    ranges: BinaryHeap<Keyed<Range>>,
}

impl Skipped {
    /// The best range: its key bounds every candidate left here.
    pub(super) fn peek(&self) -> Option<&Keyed<Range>> {
        self.ranges.peek()
    }

    /// Takes the best range's best candidate position, leaving the rest of the range.
    pub(super) fn pop(&mut self) -> Option<usize> {
        let Range { tree, lo, hi, best } = self.ranges.pop()?.item;
        let tree = tree as usize;
        self.push(tree, lo as usize, best as usize);
        self.push(tree, best as usize + 1, hi as usize);
        Some(best as usize)
    }

    /// Leaves positions `lo..hi` for later; `key(p)` is position `p`'s order key (asked
    /// once per position).
    pub(super) fn skip(&mut self, lo: usize, hi: usize, key: impl Fn(usize) -> (i64, u64)) {
        if lo >= hi {
            return;
        }
        self.trees
            .push(MaxTree::new(lo, (lo..hi).map(key).collect()));
        self.push(self.trees.len() - 1, lo, hi);
    }

    /// Queues absolute positions `lo..hi` of tree `t` as a range.
    fn push(&mut self, t: usize, lo: usize, hi: usize) {
        let Some(tree) = self.trees.get(t) else {
            return;
        };
        if lo >= hi || lo < tree.base || hi > tree.base + tree.keys.len() {
            return;
        }
        let rel = tree.best_in(lo - tree.base, hi - tree.base);
        let Some(&key) = tree.keys.get(rel as usize) else {
            return;
        };
        let to_u32 = |v: usize| u32::try_from(v).unwrap_or(NONE);
        self.ranges.push(Keyed {
            key,
            item: Range {
                tree: to_u32(t),
                lo: to_u32(lo),
                hi: to_u32(hi),
                best: to_u32(tree.base + rel as usize),
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_of_any_range_is_the_largest_key_in_it() {
        let keys: Vec<(i64, u64)> = (0..37u64)
            .map(|i| (i64::try_from((i * 7919) % 101).unwrap(), i))
            .collect();
        let tree = MaxTree::new(0, keys.clone());
        for lo in 0..keys.len() {
            for hi in lo + 1..=keys.len() {
                let want = (lo..hi).max_by_key(|&p| keys[p]).unwrap();
                assert_eq!(tree.best_in(lo, hi) as usize, want, "{lo}..{hi}");
            }
        }
    }

    #[test]
    fn popping_yields_every_position_once_in_key_order() {
        let keys: Vec<(i64, u64)> = (0..50u64)
            .map(|i| (i64::try_from((i * 31) % 17).unwrap(), i))
            .collect();
        let mut s = Skipped::default();
        let asked = std::cell::RefCell::new(Vec::new());
        let key = |p: usize| {
            asked.borrow_mut().push(p);
            keys[p]
        };
        s.skip(3, 20, key);
        s.skip(25, 50, key);
        // Only the positions passed are read, each once.
        assert_eq!(*asked.borrow(), (3..20).chain(25..50).collect::<Vec<_>>());
        let mut got = Vec::new();
        while let Some(p) = s.pop() {
            got.push(p);
        }
        let mut want: Vec<usize> = (3..20).chain(25..50).collect();
        want.sort_by_key(|&p| std::cmp::Reverse(keys[p]));
        assert_eq!(got, want);
    }
}
