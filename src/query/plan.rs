//! Planning: which segments and blocks a query reads, and in what order.
//!
//! A query resolves its filter against each segment's dictionary (a type a segment never
//! saw rules the segment out), keeps the blocks whose time and id ranges overlap and whose
//! postings hold the wanted strings, and decodes only those. A segment is expanded into its
//! candidate blocks only when the merge reaches it; within it, a frontier moves over the
//! candidates from the newest (oldest) end, and the prefix (suffix) bounds of what it has not
//! reached say when it must move on. Every block a plan queues is keyed by the highest order
//! key any of its events can have.

use std::collections::BinaryHeap;
use std::sync::Arc;

use rustc_hash::FxHashSet;

use crate::format::Block;
use crate::index::{Blocks, Bounds, SegmentIndex};
use crate::stream::{SegmentView, Snapshot};
use crate::text::TextMatcher;

use super::events::Position;
use super::merge::{bound_key, order_key, Keyed};
use super::skipped::Skipped;
use super::{Filter, Order};

/// One segment's part of a query: what to decode and how to test it.
pub(super) struct SegmentPlan {
    pub(super) snap: Snapshot,
    /// The segment's closed blocks.
    all: Blocks,
    /// Their timestamp bounds in this plan's order: prefix maxima (newest first) or
    /// suffix minima (oldest first).
    bounds: Bounds,
    /// Candidate closed-block indices, ascending; `None`: every closed block.
    candidates: Option<Vec<u32>>,
    /// Candidates not yet considered: positions `..frontier` (newest first) or
    /// `frontier..` (oldest first) of the candidate list. Blocks are nearly in time order,
    /// so the frontier moves from the newest (oldest) end and the bounds of what it has not
    /// reached say when it must move on.
    frontier: usize,
    /// Candidate positions the frontier jumped over (`query/skipped.rs`).
    skipped: Skipped,
    /// Candidates considered and waiting to be decoded; the one to visit next on top.
    pub(super) blocks: BinaryHeap<Candidate>,
    pub(super) types: Option<FxHashSet<u32>>,
    pub(super) sources: Option<FxHashSet<u32>>,
    pub(super) action: Option<u32>,
    /// Dictionary strings containing the search text.
    pub(super) text_refs: FxHashSet<u32>,
}

/// A segment of a query: not yet looked at (with the bound of its summary), or expanded into
/// its candidate blocks.
pub(super) enum Plan {
    Pending {
        view: Arc<SegmentView>,
        key: (i64, u64),
        /// Taken with the key; `None` for a deferred view, whose snapshot (of a sealed
        /// segment: the same at any time) is taken when it is loaded.
        snap: Option<Snapshot>,
    },
    Expanded(Box<SegmentPlan>),
    /// Expanded and found to hold no candidate.
    Done,
}

/// A string filter posted in at least (n-1)/n of a segment's blocks skips its postings.
const DENSE_POSTING_DIVISOR: usize = 8;

/// The frontier jumps to the candidate holding its bound when that is at least this many
/// positions away; nearer, it walks (a jump builds a tree over every candidate's key).
const JUMP_MIN: usize = 32;

/// A candidate block.
type Candidate = Keyed<Visit>;

/// A block to visit, with its number in the segment (the open block's is the number of
/// closed blocks).
#[derive(Clone, Copy)]
pub(super) struct Visit {
    pub(super) block: Block,
    pub(super) number: u32,
    /// Whether the block is closed; else it is the active segment's open block.
    pub(super) closed: bool,
}

/// A block queued for visiting, keyed by the highest order key any of its events can have.
fn queued_block(order: Order, block: Block, number: u32, closed: bool) -> Candidate {
    Keyed {
        key: bound_key(
            order,
            block.min_ts_us,
            block.max_ts_us,
            block.first_id,
            block.last_id,
        ),
        item: Visit {
            block,
            number,
            closed,
        },
    }
}

/// Whether events within these ranges may pass the filter's time and id bounds.
pub(super) fn range_may_match(
    min_ts: i64,
    max_ts: i64,
    first_id: u64,
    last_id: u64,
    f: &Filter,
) -> bool {
    !(f.since.is_some_and(|t| max_ts < t.0)
        || f.until.is_some_and(|t| min_ts >= t.0)
        || f.id_from.is_some_and(|i| last_id < i)
        || f.id_until.is_some_and(|i| first_id >= i))
}

/// Refs of `names` in the dictionary; `None` when `names` is empty (any), an empty set
/// when none of them occurs.
fn resolve(ix: &SegmentIndex, names: &[String]) -> Option<FxHashSet<u32>> {
    if names.is_empty() {
        return None;
    }
    Some(
        names
            .iter()
            .filter_map(|n| ix.lookup.get(n.as_bytes()).copied())
            .collect(),
    )
}

/// The indices in both ascending lists.
fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

impl SegmentPlan {
    /// Whether the query filters this segment's events by type, source or action.
    pub(super) fn filters_names(&self) -> bool {
        self.types.is_some() || self.sources.is_some() || self.action.is_some()
    }

    fn candidate_count(&self) -> usize {
        self.candidates.as_ref().map_or(self.all.len(), Vec::len)
    }

    fn candidate(&self, pos: usize) -> usize {
        self.candidates.as_ref().map_or(pos, |c| c[pos] as usize)
    }

    /// The highest order key any candidate not yet queued can hold (beyond the frontier
    /// or jumped over by it), `None` when no such candidate can match the time filter.
    pub(super) fn frontier_bound(&self, order: Order, f: &Filter) -> Option<(i64, u64)> {
        self.walk_bound(order, f).max(self.skipped_bound(order, f))
    }

    /// The bound of the candidates beyond the frontier.
    fn walk_bound(&self, order: Order, f: &Filter) -> Option<(i64, u64)> {
        match order {
            Order::NewestFirst => {
                let i = self.candidate(self.frontier.checked_sub(1)?);
                let ts = self.bounds[i];
                if f.since.is_some_and(|t| ts < t.0) {
                    return None;
                }
                Some(order_key(order, ts, self.all.get(i)?.last_id))
            }
            Order::OldestFirst => {
                if self.frontier >= self.candidate_count() {
                    return None;
                }
                let i = self.candidate(self.frontier);
                let ts = self.bounds[i];
                if f.until.is_some_and(|t| ts >= t.0) {
                    return None;
                }
                Some(order_key(order, ts, self.all.get(i)?.first_id))
            }
        }
    }

    /// The bound of the candidates jumped over: their best's own key.
    fn skipped_bound(&self, order: Order, f: &Filter) -> Option<(i64, u64)> {
        let top = self.skipped.peek()?;
        let block = self.all.get(self.candidate(top.item.best as usize))?;
        // The best of all that is left: when it is out of the time filter, all are.
        let out = match order {
            Order::NewestFirst => f.since.is_some_and(|t| block.max_ts_us < t.0),
            Order::OldestFirst => f.until.is_some_and(|t| block.min_ts_us >= t.0),
        };
        (!out).then_some(top.key)
    }

    /// The key of what this plan would visit next.
    pub(super) fn next_key(&self, order: Order, f: &Filter) -> Option<(i64, u64)> {
        let top = self.blocks.peek().map(|c| c.key);
        top.max(self.frontier_bound(order, f))
    }

    /// Moves past one candidate, queueing it if it may match: the best jumped-over one when
    /// its key comes first, else the next at the frontier, or the one holding the
    /// frontier's bound when that is far behind it (the positions between are jumped over).
    pub(super) fn advance(&mut self, order: Order, f: &Filter, after: Option<Position>) {
        let walk = self.walk_bound(order, f);
        if let Some(top) = self.skipped_bound(order, f) {
            if walk.is_none_or(|w| top >= w) {
                if let Some(pos) = self.skipped.pop() {
                    self.queue(order, f, after, pos);
                }
                return;
            }
        }
        let count = self.candidate_count();
        let pos = match order {
            Order::NewestFirst => {
                let Some(last) = self.frontier.checked_sub(1) else {
                    return;
                };
                let bound = self.bounds[self.candidate(last)];
                // The first position whose prefix reaches the bound holds it (prefix
                // maxima do not decrease along the candidates).
                let holder = partition(0, last, |p| self.bounds[self.candidate(p)] < bound);
                if last - holder >= JUMP_MIN {
                    self.jump(order, holder + 1, self.frontier);
                    self.frontier = holder;
                    holder
                } else {
                    self.frontier = last;
                    last
                }
            }
            Order::OldestFirst => {
                let first = self.frontier;
                if first >= count {
                    return;
                }
                let bound = self.bounds[self.candidate(first)];
                // The last position whose suffix still holds the bound holds it.
                let holder =
                    partition(first, count, |p| self.bounds[self.candidate(p)] <= bound) - 1;
                if holder - first >= JUMP_MIN {
                    self.jump(order, first, holder);
                    self.frontier = holder + 1;
                    holder
                } else {
                    self.frontier = first + 1;
                    first
                }
            }
        };
        self.queue(order, f, after, pos);
    }

    /// Leaves candidate positions `lo..hi` to the jumped-over ranges.
    fn jump(&mut self, order: Order, lo: usize, hi: usize) {
        let (all, candidates) = (&self.all, &self.candidates);
        let key = |p: usize| {
            let i = candidates.as_ref().map_or(p, |c| c[p] as usize);
            all.get(i).map_or((i64::MIN, 0), |b| {
                bound_key(order, b.min_ts_us, b.max_ts_us, b.first_id, b.last_id)
            })
        };
        self.skipped.skip(lo, hi, key);
    }

    /// Queues the candidate at position `pos` if it may match.
    fn queue(&mut self, order: Order, f: &Filter, after: Option<Position>, pos: usize) {
        let i = self.candidate(pos);
        let Some(block) = self.all.get(i) else {
            return;
        };
        if block_may_match(&block, f, after, order) {
            let number = u32::try_from(i).unwrap_or(u32::MAX);
            self.blocks.push(queued_block(order, block, number, true));
        }
    }
}

/// The first position in `lo..hi` for which `below` is false (`hi` if none); `below` must
/// be true up to some position and false from there on.
fn partition(lo: usize, hi: usize, below: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (lo, hi);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if below(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

pub(super) fn plan_segment(
    view: &SegmentView,
    snap: Snapshot,
    f: &Filter,
    matcher: Option<&TextMatcher>,
    after: Option<Position>,
    order: Order,
) -> Option<SegmentPlan> {
    view.with_index(|ix, _| {
        let s = &ix.summary;
        if s.event_count == 0
            || !range_may_match(s.min_ts_us, s.max_ts_us, s.first_id, s.last_id, f)
        {
            return None;
        }
        let types = resolve(ix, &f.types);
        let sources = resolve(ix, &f.sources);
        let action = match &f.action {
            None => None,
            Some(a) => Some(*ix.lookup.get(a.as_bytes())?),
        };
        if types.as_ref().is_some_and(FxHashSet::is_empty)
            || sources.as_ref().is_some_and(FxHashSet::is_empty)
        {
            return None;
        }
        // Candidate block indices: the intersection of each string filter's postings. A
        // filter one of whose strings is posted in at least 7/8 of the segment's blocks
        // would prune little and cost a decode of a list as long as the segment: every
        // block stays a candidate for it (each frame is still checked), so a common type's
        // newest rows cost a few blocks, not a decode of thousands of block numbers.
        let mut allowed: Option<Vec<u32>> = None;
        let action_set: Option<FxHashSet<u32>> = action.map(|a| std::iter::once(a).collect());
        let dense = |refs: &FxHashSet<u32>| {
            ix.longest_posting(refs).is_some_and(|n| {
                n * DENSE_POSTING_DIVISOR >= ix.blocks.len() * (DENSE_POSTING_DIVISOR - 1)
            })
        };
        for refs in [&types, &sources, &action_set].into_iter().flatten() {
            if dense(refs) {
                continue;
            }
            if let Some(list) = ix.posted_blocks(refs) {
                allowed = Some(match allowed {
                    None => list,
                    Some(prev) => intersect(&prev, &list),
                });
            }
        }
        let text_refs: FxHashSet<u32> = match matcher {
            None => FxHashSet::default(),
            Some(m) => ix
                .strings
                .iter()
                .enumerate()
                .filter(|(_, s)| m.is_match(s.as_bytes()))
                .map(|(i, _)| u32::try_from(i).unwrap_or(u32::MAX))
                .collect(),
        };
        // A text no name holds can only be in data: a compacted segment's block filters
        // pass over the blocks whose payloads cannot hold it, without decompressing them.
        if let (Some(m), Some((packed, _))) = (matcher, &snap.packed) {
            if text_refs.is_empty() {
                if let Some(keep) = crate::packed::filter_candidates(packed, m.needle(), &ix.blocks)
                {
                    allowed = Some(match allowed {
                        None => keep,
                        Some(prev) => intersect(&prev, &keep),
                    });
                }
            }
        }
        let closed = ix.blocks.len();
        let open_allowed = allowed
            .as_ref()
            .is_none_or(|a| a.last().is_some_and(|&l| l as usize == closed));
        let candidates = allowed.map(|mut a| {
            a.retain(|&i| (i as usize) < closed);
            a
        });
        let mut blocks = BinaryHeap::new();
        // The open block (the active segment's newest) is always considered up front.
        if let Some(block) = ix
            .open
            .filter(|b| open_allowed && block_may_match(b, f, after, order))
        {
            let number = u32::try_from(closed).unwrap_or(u32::MAX);
            blocks.push(queued_block(order, block, number, false));
        }
        let count = candidates.as_ref().map_or(closed, Vec::len);
        Some(SegmentPlan {
            snap,
            all: ix.blocks.clone(),
            bounds: match order {
                Order::NewestFirst => ix.prefix_max_ts(),
                Order::OldestFirst => ix.suffix_min_ts(),
            },
            candidates,
            frontier: match order {
                Order::NewestFirst => count,
                Order::OldestFirst => 0,
            },
            skipped: Skipped::default(),
            blocks,
            types,
            sources,
            action,
            text_refs,
        })
    })
}

fn block_may_match(b: &Block, f: &Filter, after: Option<Position>, order: Order) -> bool {
    if !range_may_match(b.min_ts_us, b.max_ts_us, b.first_id, b.last_id, f) {
        return false;
    }
    match (after, order) {
        (Some(p), Order::NewestFirst) => (b.min_ts_us, b.first_id) < (p.timestamp.0, p.id.0),
        (Some(p), Order::OldestFirst) => (b.max_ts_us, b.last_id) > (p.timestamp.0, p.id.0),
        (None, _) => true,
    }
}
