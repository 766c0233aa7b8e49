//! The rolling window of content hashes that makes deduplication exact and bounded.
//!
//! The window holds the content hashes of the most recent `capacity` stored events, in
//! append order, in a ring; a hash table maps each hash to its ring slot. A hit is only a
//! candidate: the store confirms it by comparing the candidate event's content before
//! calling the new event a duplicate, so a hash collision never drops a distinct event. (A
//! full 64-bit collision can at worst hide an older duplicate behind a newer, different
//! event with the same hash, which then gets stored: never the reverse.)
//!
//! Memory: 12 bytes per ring slot (the 64-bit hash and the id as a 32-bit offset from the
//! window's base id) and 5 bytes per table bucket (a power of two, at most 8/7 of the
//! entries): the default 1,000,000 events take ~22.5 MB, within the 24 MB budget. Keeping
//! the whole hash means a candidate is almost always a real duplicate, so confirming it
//! (which reads the stored event) is rare.

use hashbrown::HashTable;

/// The window.
pub(crate) struct DedupWindow {
    capacity: usize,
    /// Content hash of each slot.
    hashes: Vec<u64>,
    /// Event id of each slot, as an offset from `base`.
    offsets: Vec<u32>,
    /// The id offsets count from.
    base: Option<u64>,
    /// Slots used; once `capacity`, the oldest is overwritten.
    len: usize,
    /// The slot the next event goes to.
    head: usize,
    table: HashTable<u32>,
}

impl DedupWindow {
    /// A window of the last `capacity` events; 0 disables deduplication.
    pub fn new(capacity: usize) -> DedupWindow {
        DedupWindow {
            capacity,
            hashes: Vec::new(),
            offsets: Vec::new(),
            base: None,
            len: 0,
            head: 0,
            table: HashTable::new(),
        }
    }

    /// Makes room for `n` more events at once, instead of growing the table step by step
    /// while a store's window is rebuilt.
    pub fn reserve(&mut self, n: usize) {
        let n = n.min(self.capacity - self.len);
        self.hashes.reserve(n);
        self.offsets.reserve(n);
        let hashes = &self.hashes;
        self.table.reserve(n, |&s| hashes[s as usize]);
    }

    /// Whether the window is disabled.
    pub fn is_disabled(&self) -> bool {
        self.capacity == 0
    }

    /// The id of the newest stored event in the window with content hash `hash`; it must
    /// be confirmed by content.
    pub fn candidate(&self, hash: u64) -> Option<u64> {
        if self.is_disabled() {
            return None;
        }
        let hashes = &self.hashes;
        let slot = *self.table.find(hash, |&s| hashes[s as usize] == hash)?;
        Some(self.base? + u64::from(self.offsets[slot as usize]))
    }

    /// Forgets everything (when ids jump by more than an offset can hold).
    fn clear(&mut self) {
        let capacity = self.capacity;
        *self = DedupWindow::new(capacity);
    }

    /// Records a stored event, evicting the oldest when the window is full.
    pub fn insert(&mut self, hash: u64, id: u64) {
        if self.is_disabled() {
            return;
        }
        let base = *self.base.get_or_insert(id);
        let Some(offset) = id.checked_sub(base).and_then(|d| u32::try_from(d).ok()) else {
            // Four billion ids past the base (or an import's huge gap): start afresh.
            self.clear();
            return self.insert(hash, id);
        };
        let slot = self.head;
        if self.len == self.capacity {
            // Evict the slot's previous event from the table, if the table still points
            // there (a newer event with the same hash may have replaced it).
            let old = self.hashes[slot];
            if let Ok(entry) = self.table.find_entry(old, |&s| s as usize == slot) {
                entry.remove();
            }
            self.hashes[slot] = hash;
            self.offsets[slot] = offset;
        } else {
            self.hashes.push(hash);
            self.offsets.push(offset);
            self.len += 1;
        }
        self.head = (slot + 1) % self.capacity;
        let slot_u32 = u32::try_from(slot).expect("window capacity fits u32");
        let hashes = &self.hashes;
        if let Ok(mut entry) = self.table.find_entry(hash, |&s| hashes[s as usize] == hash) {
            // The newest event with this hash wins.
            *entry.get_mut() = slot_u32;
        } else {
            let hashes = &self.hashes;
            self.table
                .insert_unique(hash, slot_u32, |&s| hashes[s as usize]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_recent_and_forgets_evicted() {
        let mut w = DedupWindow::new(3);
        for (h, id) in [(10u64, 1u64), (20, 2), (30, 3)] {
            w.insert(h, id);
        }
        assert_eq!(w.candidate(20), Some(2));
        w.insert(40, 4); // evicts hash 10
        assert_eq!(w.candidate(10), None);
        assert_eq!(w.candidate(40), Some(4));
        w.insert(20, 5); // the newest with hash 20
        assert_eq!(w.candidate(20), Some(5));
        w.insert(50, 6); // evicts 3
        w.insert(60, 7); // evicts 4
        assert_eq!(w.candidate(30), None);
        assert_eq!(w.candidate(20), Some(5));
    }

    #[test]
    fn disabled_window_finds_nothing() {
        let mut w = DedupWindow::new(0);
        w.insert(1, 1);
        assert_eq!(w.candidate(1), None);
    }

    #[test]
    fn large_window_stays_consistent() {
        let mut w = DedupWindow::new(1000);
        let h = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for i in 0..10_000u64 {
            w.insert(h(i), i + 1);
        }
        for i in 0..10_000u64 {
            let expected = (i >= 9000).then_some(i + 1);
            assert_eq!(w.candidate(h(i)), expected, "{i}");
        }
    }

    #[test]
    fn a_huge_id_gap_starts_afresh() {
        let mut w = DedupWindow::new(10);
        w.insert(1, 1);
        w.insert(2, 1 << 40);
        assert_eq!(w.candidate(1), None);
        assert_eq!(w.candidate(2), Some(1 << 40));
    }
}
