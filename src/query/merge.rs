//! The ordered merge: matches wait here until they may be released.
//!
//! Results are ordered by timestamp (ties by id) even though timestamps arrive out of
//! order: candidate blocks are visited in order of their newest (or oldest) timestamp and an
//! event is released only once no unvisited block's bound can sort before it. Memory stays
//! bounded by the events of overlapping blocks; no result set is materialised. Everything is
//! compared by an order key in which larger sorts first, for either [`Order`].

use std::collections::BinaryHeap;
use std::sync::Arc;

use crate::error::Result;

use super::events::{Events, Unchecked};
use super::plan::Plan;
use super::Order;

/// Something ordered in the merge by its order key: a candidate block (keyed by its
/// bound: no event in it sorts before it) or a matching event.
pub(super) struct Keyed<T> {
    pub(super) key: (i64, u64),
    pub(super) item: T,
}

impl<T> PartialEq for Keyed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl<T> Eq for Keyed<T> {}
impl<T> PartialOrd for Keyed<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Keyed<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

/// The order key of an event: larger sorts first.
pub(super) fn order_key(order: Order, ts: i64, id: u64) -> (i64, u64) {
    match order {
        Order::NewestFirst => (ts, id),
        // Earlier sorts first: negate, mapping i64::MIN (only from damaged bytes) to MAX.
        Order::OldestFirst => (ts.checked_neg().unwrap_or(i64::MAX), u64::MAX - id),
    }
}

/// The highest order key any event within these ranges can have.
pub(super) fn bound_key(
    order: Order,
    min_ts: i64,
    max_ts: i64,
    first_id: u64,
    last_id: u64,
) -> (i64, u64) {
    match order {
        Order::NewestFirst => order_key(order, max_ts, last_id),
        Order::OldestFirst => order_key(order, min_ts, first_id),
    }
}

/// A matching event waiting in the merge. It is materialised only when released, so
/// events decoded from a block but never returned cost no allocation.
pub(super) struct Match {
    pub(super) plan: usize,
    pub(super) offset: u64,
    /// The data text, when matching already decoded it (text search).
    pub(super) data: Option<String>,
    /// The frame, when matching decoded it whole (without its checksum).
    pub(super) frame: Option<Unchecked>,
    /// Whether the frame's block was checked whole ([`crate::checked::CheckedBlocks`]): its release then
    /// need not compute the checksum.
    pub(super) checked: bool,
}

/// A matching event keyed for ordering.
pub(super) type Pending = Keyed<Match>;

/// The matches waiting to be released, as sorted runs (one per block read) in a max-heap
/// on each run's next key. A block's matches arrive nearly in order (ascending in the log,
/// so reversed for oldest first, whose keys are negated), which the sort finds in one pass;
/// releasing a match then pops it off its run and compares runs, never the many matches
/// waiting in them.
#[derive(Default)]
pub(super) struct Merge {
    runs: BinaryHeap<Run>,
}

/// Matches sorted by ascending key: the next to release is last. Never empty in the heap.
struct Run(Vec<Pending>);

impl Run {
    fn key(&self) -> (i64, u64) {
        self.0.last().map_or((i64::MIN, 0), |p| p.key)
    }
}

impl PartialEq for Run {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Run {}
impl PartialOrd for Run {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Run {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl Merge {
    /// Adds the matches of one block, in any order.
    pub(super) fn push(&mut self, mut found: Vec<Pending>) {
        if !found.is_empty() {
            found.sort_unstable_by_key(|p| p.key);
            self.runs.push(Run(found));
        }
    }

    /// The key of the next match to release.
    fn peek_key(&self) -> Option<(i64, u64)> {
        self.runs.peek().map(Run::key)
    }

    /// Takes the next match to release: the highest key.
    fn pop(&mut self) -> Option<Pending> {
        let mut top = self.runs.peek_mut()?;
        let p = top.0.pop();
        if top.0.is_empty() {
            std::collections::binary_heap::PeekMut::pop(top);
        }
        p
    }
}

/// The compacted block of `snap` holding offset `at` (none for a segment read as written).
fn block_of(snap: &crate::stream::Snapshot, at: u64) -> Option<usize> {
    snap.packed.as_ref().and_then(|(p, _)| p.block_at(at))
}

/// Lets go of compacted block `k` as `snap` expanded it (no borrow of it can be alive: this
/// takes the snapshot mutably), so that a long scan holds only the blocks it still needs;
/// the stream's block cache may still have it. Does nothing while a clone of the snapshot
/// shares its blocks.
fn forget_block(snap: &mut crate::stream::Snapshot, k: usize) {
    if let Some((_, memo)) = &mut snap.packed {
        if let Some(slot) = Arc::get_mut(memo).and_then(|m| m.slot_mut(k)) {
            slot.take();
        }
    }
}

impl Events {
    /// The key of what plan `i` would visit next.
    fn plan_key(&self, i: usize) -> Option<(i64, u64)> {
        match &self.plans[i] {
            Plan::Pending { key, .. } => Some(*key),
            Plan::Expanded(p) => p.next_key(self.order, &self.filter),
            Plan::Done => None,
        }
    }

    /// The plan holding the highest bound, and that bound.
    fn next_block(&mut self) -> Option<(usize, (i64, u64))> {
        if !self.next_valid {
            if self.keys.len() != self.plans.len() {
                self.keys = (0..self.plans.len()).map(|i| self.plan_key(i)).collect();
            }
            self.next_cached = self
                .keys
                .iter()
                .enumerate()
                .filter_map(|(i, k)| k.map(|k| (i, k)))
                .max_by_key(|(_, k)| *k);
            self.next_valid = true;
        }
        self.next_cached
    }

    /// Loads plan `i` ([`Events::load`]) and updates its key.
    fn load_ordered(&mut self, i: usize) -> Result<()> {
        let loaded = self.load(i);
        self.next_valid = false;
        let key = self.plan_key(i);
        if let Some(k) = self.keys.get_mut(i) {
            *k = key;
        }
        loaded
    }

    /// Counts the matches `found` in the compacted blocks of plan `plan` they come from,
    /// and lets go of the blocks of `visited` that hold none.
    pub(super) fn hold_blocks(
        &mut self,
        plan: usize,
        visited: &[super::plan::Visit],
        found: &[Pending],
    ) {
        let Plan::Expanded(p) = &mut self.plans[plan] else {
            return;
        };
        if p.snap.packed.is_none() {
            return;
        }
        for m in found {
            if let Some(k) = block_of(&p.snap, m.item.offset) {
                *self.block_matches.entry((plan, k)).or_default() += 1;
            }
        }
        for v in visited {
            if let Some(k) = block_of(&p.snap, v.block.offset) {
                if !self.block_matches.contains_key(&(plan, k)) {
                    forget_block(&mut p.snap, k);
                }
            }
        }
    }

    /// Notes that match `m` leaves the merge; its block is let go of at the next step once
    /// no other match needs it.
    fn release_block(&mut self, m: &Pending) {
        let Plan::Expanded(p) = &self.plans[m.item.plan] else {
            return;
        };
        let Some(k) = block_of(&p.snap, m.item.offset) else {
            return;
        };
        let key = (m.item.plan, k);
        if let Some(n) = self.block_matches.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.block_matches.remove(&key);
                self.forget.push(key);
            }
        }
    }

    /// The next match to release, in order.
    pub(super) fn next_pending(&mut self) -> Result<Option<Pending>> {
        for (plan, k) in std::mem::take(&mut self.forget) {
            if let Plan::Expanded(p) = &mut self.plans[plan] {
                if !self.block_matches.contains_key(&(plan, k)) {
                    forget_block(&mut p.snap, k);
                }
            }
        }
        let next = self.next_pending_inner()?;
        if let Some(m) = &next {
            self.release_block(m);
        }
        Ok(next)
    }

    /// [`Events::next_pending`] before the block bookkeeping.
    fn next_pending_inner(&mut self) -> Result<Option<Pending>> {
        loop {
            if self.unordered {
                if let Some(p) = self.merge.pop() {
                    return Ok(Some(p));
                }
                let open = |p: &Plan| match p {
                    Plan::Pending { .. } => true,
                    Plan::Expanded(p) => p.next_key(self.order, &self.filter).is_some(),
                    Plan::Done => false,
                };
                let Some(i) = self.plans.iter().position(open) else {
                    return Ok(None);
                };
                self.load(i)?;
                continue;
            }
            let next = self.next_block();
            match (self.merge.peek_key(), next) {
                // Release the top only when no unvisited block can hold anything before it.
                (Some(top), Some((_, bound))) if bound < top => {}
                (Some(_), None) => {}
                (_, Some((i, _))) => {
                    self.load_ordered(i)?;
                    continue;
                }
                (None, None) => return Ok(None),
            }
            return Ok(self.merge.pop());
        }
    }
}
