//! Which closed blocks of a segment view have been checked whole: every frame in the block
//! passed the checked decode (its checksum and every format rule). A listing that releases
//! an event from such a block does not compute the frame's checksum again.
//!
//! Sound because the bytes a view maps below its committed end never change: the writer
//! only appends past the committed end, recovery only zeroes what lies past it, and a
//! segment is only ever deleted whole (the view's map keeps the old file). The marks
//! belong to one view, that is one open file, and die with it; `selflog inspect verify`
//! and every new open check everything again. A block is never marked from a frame it
//! did not check: a damaged frame leaves its block unmarked, and then each release checks
//! its own frame, which reports the damage.

use std::sync::atomic::{AtomicU64, Ordering};

/// One bit per closed block of a segment view: set once every frame of the block passed
/// the checked decode. Bits are only ever set, by any reader thread; a bit read without a
/// lock is enough, since it asserts a fact about bytes that every thread sees the same.
pub(crate) struct CheckedBlocks {
    words: Box<[AtomicU64]>,
    /// The active segment's open block: its number (high half) and how many of its bytes,
    /// from its start, hold frames that passed the checked decode (low half). One word, so
    /// that both change together; the largest value written wins, which keeps the newest
    /// open block and the longest checked part of it.
    open: AtomicU64,
}

impl CheckedBlocks {
    /// Room for `blocks` blocks, none checked.
    pub fn with_capacity(blocks: usize) -> CheckedBlocks {
        CheckedBlocks {
            words: (0..blocks.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
            open: AtomicU64::new(0),
        }
    }

    /// How many blocks there is room for.
    pub fn capacity(&self) -> usize {
        self.words.len() * 64
    }

    /// A copy with room for at least `blocks` blocks (twice the room at the least, so a
    /// growing segment copies its marks a logarithmic number of times).
    pub fn grown(&self, blocks: usize) -> CheckedBlocks {
        let grown = CheckedBlocks::with_capacity(blocks.max(2 * self.capacity()).max(64));
        for (new, old) in grown.words.iter().zip(self.words.iter()) {
            new.store(old.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        grown
            .open
            .store(self.open.load(Ordering::Relaxed), Ordering::Relaxed);
        grown
    }

    /// Whether block `block` was checked whole; `false` beyond the capacity.
    #[inline]
    pub fn contains(&self, block: u32) -> bool {
        self.words
            .get(block as usize / 64)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (block % 64)) != 0)
    }

    /// How many bytes from the start of open block `block` hold frames that passed the
    /// checked decode (0 when another block was the open one).
    #[inline]
    pub fn open_checked(&self, block: u32) -> u32 {
        let v = self.open.load(Ordering::Relaxed);
        if v >> 32 == u64::from(block) {
            v as u32
        } else {
            0
        }
    }

    /// Records that the frames in the first `len` bytes of open block `block` passed the
    /// checked decode.
    pub fn insert_open(&self, block: u32, len: u32) {
        self.open
            .fetch_max(u64::from(block) << 32 | u64::from(len), Ordering::Relaxed);
    }

    /// Records that every frame of block `block` passed the checked decode. Beyond the
    /// capacity (a block closed after the snapshot this came from) nothing is recorded.
    pub fn insert(&self, block: u32) {
        if let Some(w) = self.words.get(block as usize / 64) {
            w.fetch_or(1 << (block % 64), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Event, Order, Store, Timestamp};

    /// A store of 4,000 events over several 64 KiB segments, closed: its temporary
    /// directory and the store's path in it.
    fn small_store() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let c = Config {
            segment_len: 64 << 10,
            data_len_max: 16 << 10,
            ..Config::default()
        };
        let store = Store::open(&path, c).unwrap();
        let events: Vec<Event> = (0..4000)
            .map(|i| {
                let data = format!(r#"{{"n":{i},"path":"/home/u/{i}"}}"#);
                Event::new(
                    Timestamp(1_732_460_000_000_000 + i * 1000),
                    if i % 3 == 0 { "a" } else { "b" },
                    None,
                    "src",
                    Some(&data),
                )
                .unwrap()
            })
            .collect();
        store.append_batch(events).unwrap();
        store.close().unwrap();
        (dir, path)
    }

    /// (segment, block number, marked) of every closed block of `store`.
    fn marks(store: &Store) -> Vec<(u32, u32, bool)> {
        let mut out = Vec::new();
        for v in store.views() {
            let blocks = v.with_index(|ix, _| ix.blocks.len());
            let snap = v.snapshot();
            for b in 0..u32::try_from(blocks).unwrap() {
                out.push((v.id, b, snap.checked.contains(b)));
            }
        }
        out
    }

    /// A listing marks each closed block it returned events from, and only those: a
    /// filtered listing that matched nothing in a block leaves it unmarked.
    #[test]
    fn a_listing_marks_the_blocks_it_returned_events_from() {
        let (_dir, path) = small_store();
        let store = Store::open_read_only(&path).unwrap();
        store.refresh().unwrap();
        assert!(marks(&store).len() > 20, "several blocks");
        assert!(
            marks(&store).iter().all(|m| !m.2),
            "nothing marked before a read"
        );
        let n = store.query().event_type("none").run().unwrap().count();
        assert_eq!(n, 0);
        assert!(marks(&store).iter().all(|m| !m.2), "no match, no mark");
        // The oldest 10 lie in the first block.
        let oldest: Vec<u64> = store
            .query()
            .order(Order::OldestFirst)
            .limit(10)
            .run()
            .unwrap()
            .map(|e| e.unwrap().id.0)
            .collect();
        assert_eq!(oldest, (1..=10).collect::<Vec<_>>());
        let marked: Vec<_> = marks(&store).into_iter().filter(|m| m.2).collect();
        assert_eq!(marked, [(1, 0, true)], "the oldest 10 mark their block");
        let all = store
            .query()
            .order(Order::OldestFirst)
            .run()
            .unwrap()
            .count();
        assert_eq!(all, 4000);
        assert!(
            marks(&store).iter().all(|m| m.2),
            "every block returned from is marked"
        );
    }

    /// A block with a damaged frame is never marked, however often it is read, so each
    /// listing that reaches the damage reports it; the blocks before it are marked.
    #[test]
    fn a_damaged_block_is_never_marked() {
        let (_dir, path) = small_store();
        let victim = Store::open_read_only(&path).unwrap().segments().unwrap()[1].clone();
        let mut bytes = std::fs::read(&victim.path).unwrap();
        let (first, last) = victim.ids.unwrap();
        let i = u64::midpoint(first.0, last.0) - 1;
        let text = format!(r#""path":"/home/u/{i}""#);
        let at = bytes
            .windows(text.len())
            .position(|w| w == text.as_bytes())
            .expect("the event's data is stored as text");
        bytes[at + 9] ^= 0x20;
        std::fs::write(&victim.path, &bytes).unwrap();
        let store = Store::open_read_only(&path).unwrap();
        for round in 0..3 {
            let mut events = store.query().order(Order::OldestFirst).run().unwrap();
            let mut ids = Vec::new();
            let error = loop {
                match events.next_ref() {
                    Some(Ok(e)) => ids.push(e.id.0),
                    Some(Err(e)) => break e.to_string(),
                    None => panic!("round {round}: the damage went unreported"),
                }
            };
            assert!(error.contains("checksum"), "round {round}: {error}");
            assert_eq!(ids, (1..=i).collect::<Vec<_>>(), "round {round}");
        }
        // The listing stops at the damage: blocks before it are marked, the damaged one is
        // not, and those after it were never read.
        let m = marks(&store);
        assert!(m.iter().filter(|m| m.0 < victim.segment_id).all(|m| m.2));
        let there: Vec<bool> = m
            .iter()
            .filter(|m| m.0 == victim.segment_id)
            .map(|m| m.2)
            .collect();
        let k = there.iter().position(|&b| !b).expect("an unmarked block");
        assert!(k > 0 && there[k..].iter().all(|&b| !b), "{there:?}");
        let view = store
            .views()
            .into_iter()
            .find(|v| v.id == victim.segment_id)
            .unwrap();
        let block = view.with_index(|ix, _| ix.blocks.get(k)).unwrap();
        assert!(
            (block.first_id..=block.last_id).contains(&(i + 1)),
            "{block:?}"
        );
    }

    /// Marks are kept per block, survive growing, and nothing beyond the room is marked.
    #[test]
    fn marks_are_per_block_and_survive_growing() {
        let c = CheckedBlocks::with_capacity(70);
        assert_eq!(c.capacity(), 128);
        for b in [0, 63, 64, 69] {
            assert!(!c.contains(b));
            c.insert(b);
            assert!(c.contains(b));
        }
        assert!(!c.contains(1) && !c.contains(65));
        c.insert(128);
        assert!(!c.contains(128), "beyond the capacity nothing is kept");
        let g = c.grown(300);
        assert!(g.capacity() >= 300);
        for b in 0..u32::try_from(g.capacity()).unwrap() {
            assert_eq!(g.contains(b), [0, 63, 64, 69].contains(&b), "block {b}");
        }
        assert_eq!(CheckedBlocks::with_capacity(0).grown(1).capacity(), 64);
    }

    /// The open block is checked as far as a listing read it, and a later listing that
    /// reads it grown checks the new frames: the mark follows the block's length.
    #[test]
    fn the_open_block_is_checked_as_far_as_it_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s"), Config::default()).unwrap();
        let event = |i: i64| {
            Event::new(
                Timestamp(1_732_460_000_000_000 + i),
                "t",
                None,
                "s",
                Some("{}"),
            )
            .unwrap()
        };
        let open_mark = |store: &Store| {
            let v = store.views().pop().unwrap();
            let n = u32::try_from(v.with_index(|ix, _| ix.blocks.len())).unwrap();
            v.snapshot().checked.open_checked(n)
        };
        let newest = |store: &Store, n: u64| -> Vec<u64> {
            let q = store.query().limit(n).run().unwrap();
            q.map(|e| e.unwrap().id.0).collect()
        };
        store.append_batch((0..5).map(event).collect()).unwrap();
        store.flush().unwrap();
        store.refresh().unwrap();
        assert_eq!(open_mark(&store), 0);
        assert_eq!(newest(&store, 3), [5, 4, 3]);
        let first = open_mark(&store);
        assert!(first > 0, "the open block's frames are marked");
        store.append_batch((5..10).map(event).collect()).unwrap();
        store.flush().unwrap();
        assert_eq!(newest(&store, 20), (1..=10).rev().collect::<Vec<_>>());
        assert!(open_mark(&store) > first, "and then its new frames");
    }
}
