//! Finding the block that holds an id among a segment's closed blocks.

use super::Blocks;

/// The index of the first block whose `last_id` is at least `id` (`blocks.len()` if none):
/// `blocks.partition_point(|b| b.last_id < id)`, found faster. Ids in a segment are nearly
/// dense and blocks hold nearly 32 events each, so the block `id` would be in if they were
/// exactly is a close guess; a search galloping out from it reads a handful of blocks
/// instead of the ~15 scattered ones of a binary search over a large segment's ~30,000
/// (each a cache miss when lookups are random).
pub(super) fn first_ending_at_or_after(blocks: &Blocks, id: u64) -> usize {
    let n = blocks.len();
    // A block that cannot be read (a footer shorter than its count says) ends nowhere.
    let last_id = |i: usize| blocks.get(i).map_or(u64::MAX, |b| b.last_id);
    let (Some(first), Some(last)) = (blocks.get(0), blocks.get(n.saturating_sub(1))) else {
        return 0;
    };
    if id <= first.last_id {
        return 0;
    }
    if id > last.last_id {
        return n;
    }
    // Here last_id(0) < id <= last_id(n - 1).
    let span = u128::from(last.last_id.saturating_sub(first.first_id)) + 1;
    let along = u128::from(id.saturating_sub(first.first_id));
    let guess = usize::try_from(along * n as u128 / span)
        .unwrap_or(n)
        .clamp(1, n - 1);
    // Find a bracket (lo, hi] with last_id(lo) < id <= last_id(hi).
    let (mut lo, mut hi);
    if last_id(guess) < id {
        lo = guess;
        let mut step = 1;
        loop {
            hi = (lo + step).min(n - 1);
            if last_id(hi) >= id {
                break;
            }
            lo = hi;
            step *= 2;
        }
    } else {
        hi = guess;
        let mut step = 1;
        loop {
            lo = hi.saturating_sub(step);
            if last_id(lo) < id {
                break;
            }
            hi = lo;
            step *= 2;
        }
    }
    // Binary search in (lo, hi].
    let (mut a, mut b) = (lo + 1, hi);
    while a < b {
        let mid = a + (b - a) / 2;
        if last_id(mid) < id {
            a = mid + 1;
        } else {
            b = mid;
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Block;

    proptest::proptest! {
        /// The galloping search agrees with a binary search on any layout: gaps in ids,
        /// blocks of 1 to 40 events, ids before, inside, between and after the blocks.
        #[test]
        fn block_search_agrees_with_partition_point(
            layout in proptest::collection::vec((0u64..50, 1u64..40), 0..200),
            probes in proptest::collection::vec(0u64..20_000, 1..50),
        ) {
            let mut blocks = Vec::new();
            let mut next = 1;
            for (gap, events) in layout {
                let first_id = next + gap;
                blocks.push(Block {
                    first_id,
                    last_id: first_id + events - 1,
                    offset: 0,
                    len: 0,
                    event_count: 0,
                    min_ts_us: 0,
                    max_ts_us: 0,
                });
                next = first_id + events;
            }
            let wrapped = Blocks::owned(blocks.clone());
            for id in probes {
                let want = blocks.partition_point(|b| b.last_id < id);
                proptest::prop_assert_eq!(first_ending_at_or_after(&wrapped, id), want, "id {}", id);
            }
        }
    }
}
