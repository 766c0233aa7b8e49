//! The rolling window of content hashes that makes deduplication exact and bounded.
//!
//! The window holds the hashes of the most recent `capacity` stored events, in append order,
//! in a ring; a hash table maps each hash to its ring slot. A hit is only a candidate: the
//! store confirms it by comparing the candidate event's content before calling the new
//! event a duplicate, so a hash collision never drops a distinct event. (A collision can at
//! worst hide an older duplicate behind a newer, different event with the same hash, which
//! then gets stored: never the reverse.)
//!
//! Memory: 12 bytes per ring slot and 5 bytes per table bucket (buckets are a power of two
//! at most 8/7 of the entries): the default 1,000,000 events take ~22.5 MB, within the
//! 24 MB budget.

use hashbrown::HashTable;

/// The window.
pub(crate) struct DedupWindow {
    capacity: usize,
    /// Low 32 bits of each slot's content hash; the table keys on them.
    hashes: Vec<u32>,
    /// Event id of each slot.
    ids: Vec<u64>,
    /// Slots used; once `capacity`, the oldest is overwritten.
    len: usize,
    /// The slot the next event goes to.
    head: usize,
    table: HashTable<u32>,
}

/// The table hash of a slot: the low 32 bits of a content hash, spread over 64 bits.
fn spread(lo: u32) -> u64 {
    u64::from(lo).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[expect(
    clippy::cast_possible_truncation,
    reason = "the low 32 bits are the key by design"
)]
fn low(hash: u64) -> u32 {
    hash as u32
}

impl DedupWindow {
    /// A window of the last `capacity` events; 0 disables deduplication.
    pub fn new(capacity: usize) -> DedupWindow {
        DedupWindow {
            capacity,
            hashes: Vec::new(),
            ids: Vec::new(),
            len: 0,
            head: 0,
            table: HashTable::new(),
        }
    }

    /// Whether the window is disabled.
    pub fn is_disabled(&self) -> bool {
        self.capacity == 0
    }

    /// The id of the newest stored event in the window whose hash may equal `hash`; it must
    /// be confirmed by content.
    pub fn candidate(&self, hash: u64) -> Option<u64> {
        if self.is_disabled() {
            return None;
        }
        let lo = low(hash);
        let hashes = &self.hashes;
        self.table
            .find(spread(lo), |&slot| hashes[slot as usize] == lo)
            .map(|&slot| self.ids[slot as usize])
    }

    /// Records a stored event, evicting the oldest when the window is full.
    pub fn insert(&mut self, hash: u64, id: u64) {
        if self.is_disabled() {
            return;
        }
        let lo = low(hash);
        let slot = self.head;
        if self.len == self.capacity {
            // Evict the slot's previous event from the table, if the table still points
            // there (a newer event with the same key may have replaced it).
            let old = self.hashes[slot];
            if let Ok(entry) = self.table.find_entry(spread(old), |&s| s as usize == slot) {
                entry.remove();
            }
            self.hashes[slot] = lo;
            self.ids[slot] = id;
        } else {
            self.hashes.push(lo);
            self.ids.push(id);
            self.len += 1;
        }
        self.head = (slot + 1) % self.capacity;
        let slot_u32 = u32::try_from(slot).expect("window capacity fits u32");
        let hashes = &self.hashes;
        if let Ok(mut entry) = self
            .table
            .find_entry(spread(lo), |&s| hashes[s as usize] == lo)
        {
            // The newest event with this key wins.
            *entry.get_mut() = slot_u32;
        } else {
            let hashes = &self.hashes;
            self.table
                .insert_unique(spread(lo), slot_u32, |&s| spread(hashes[s as usize]));
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
        w.insert(20, 5); // the newest with key 20
        assert_eq!(w.candidate(20), Some(5));
        w.insert(50, 6);
        w.insert(60, 7); // evicts slot of id 5? no: evicts 3, then 4
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
        for i in 0..10_000u64 {
            w.insert(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), i + 1);
        }
        for i in 0..10_000u64 {
            let got = w.candidate(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            if i >= 9000 {
                assert_eq!(got, Some(i + 1));
            } else {
                assert_eq!(got, None, "{i} evicted");
            }
        }
    }
}
