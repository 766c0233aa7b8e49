//! The parallel scan of a long text search.
//!
//! A text search that has read many blocks one at a time is most likely a long scan: it
//! then takes a batch of one plan's next blocks and reads them on every core. The results
//! come back in the batch's order, so the merge sees what single loads would have given it.

use crate::error::Result;

use super::events::Events;
use super::merge::Pending;
use super::plan::Visit;

/// Blocks a text search reads one at a time before it counts as a long scan.
pub(super) const SCAN_SERIAL_BLOCKS: u64 = 64;
/// Blocks a long scan takes at once, shared by the cores (512 blocks of up to 8 KiB: a few
/// milliseconds of work per batch, against ~20 µs to start a thread).
pub(super) const SCAN_BATCH_BLOCKS: usize = 512;

impl Events {
    /// The matches of each of `blocks` of plan `plan_index`, in their order, read on every
    /// core. Threads take the next unread block as they finish one, so a few blocks of large
    /// compressed events do not leave a core idle.
    pub(super) fn scan_blocks_parallel(
        &self,
        plan_index: usize,
        blocks: &[Visit],
    ) -> Vec<Result<Vec<Pending>>> {
        use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(blocks.len());
        let next = AtomicUsize::new(0);
        let scan = || {
            let mut out = Vec::new();
            let mut scratch = Vec::new();
            loop {
                let i = next.fetch_add(1, AtomicOrdering::Relaxed);
                let Some(block) = blocks.get(i) else {
                    return out;
                };
                out.push((i, self.scan_block(plan_index, block, &mut scratch)));
            }
        };
        let mut parts: Vec<(usize, Result<Vec<Pending>>)> = std::thread::scope(|scope| {
            // A thread that cannot be started (no memory, a process limit) leaves its share
            // to the others: the blocks are taken from a shared counter.
            let helpers: Vec<_> = (1..threads)
                .filter_map(|_| {
                    std::thread::Builder::new()
                        .name("selflog-scan".into())
                        .spawn_scoped(scope, scan)
                        .ok()
                })
                .collect();
            let mut parts = scan();
            for h in helpers {
                parts.extend(h.join().expect("a query scan thread panicked"));
            }
            parts
        });
        parts.sort_unstable_by_key(|&(i, _)| i);
        parts.into_iter().map(|(_, r)| r).collect()
    }
}
