//! The decompressed data of compressed events that queries returned recently.
//!
//! A listing that is asked again and again (the newest events of a dashboard, a page of
//! one type's events) returns the same few large events each time, and decompressing
//! them is most of its cost: two LZ4 payloads of ~16 KB are ~9 of the ~25 µs the newest
//! 50 events of a 1,000,000-event store take. The cache keeps their text, least recently
//! used first out, within a byte budget ([`DATA_CACHE_BYTES`] per stream).
//!
//! An entry is keyed by where its frame lies (segment number, offset) and holds the
//! frame's content hash: a hit is used only when the frame being read, whose checksum has
//! just been checked, carries the same hash. The log is append-only, so a frame never
//! changes in place; the hash check guards the ways a place can hold another frame under
//! a reader that stays open: a store directory removed and created again, or frames a
//! power cut took before their sync, written again by the next writer.

use std::hash::BuildHasherDefault;
use std::sync::Arc;

use hashlink::LinkedHashMap;
use parking_lot::Mutex;
use rustc_hash::FxHasher;

/// Bytes of decompressed text the cache of one stream holds at most.
pub(crate) const DATA_CACHE_BYTES: usize = 4 << 20;

/// What an entry costs beyond its text: the map's node and the `Arc`'s header.
const ENTRY_OVERHEAD: usize = 96;

/// Where a frame lies: segment number, byte offset.
type Key = (u32, u64);

struct Entry {
    hash: u64,
    text: Arc<str>,
}

impl Entry {
    fn cost(&self) -> usize {
        self.text.len() + ENTRY_OVERHEAD
    }
}

struct Inner {
    /// Least recently used at the front.
    map: LinkedHashMap<Key, Entry, BuildHasherDefault<FxHasher>>,
    bytes: usize,
}

/// The cache; shared by every reader of a stream.
pub(crate) struct DataCache {
    budget: usize,
    inner: Mutex<Inner>,
}

impl DataCache {
    /// A cache holding at most `budget` bytes; 0 caches nothing.
    pub fn new(budget: usize) -> DataCache {
        DataCache {
            budget,
            inner: Mutex::new(Inner {
                map: LinkedHashMap::default(),
                bytes: 0,
            }),
        }
    }

    /// The text of the frame at `offset` of segment `segment`, if cached for a frame with
    /// content hash `hash`.
    pub fn get(&self, segment: u32, offset: u64, hash: u64) -> Option<Arc<str>> {
        if self.budget == 0 {
            return None;
        }
        let mut inner = self.inner.lock();
        let entry = inner.map.to_back(&(segment, offset))?;
        (entry.hash == hash).then(|| Arc::clone(&entry.text))
    }

    /// Keeps `text`, the data of the frame at `offset` of segment `segment` whose content
    /// hash is `hash`, dropping the least recently used entries beyond the budget. A text
    /// of more than a quarter of the budget is not kept: it would push out everything.
    pub fn insert(&self, segment: u32, offset: u64, hash: u64, text: Arc<str>) {
        let entry = Entry { hash, text };
        let cost = entry.cost();
        if cost > self.budget / 4 {
            return;
        }
        let mut inner = self.inner.lock();
        inner.bytes += cost;
        if let Some(old) = inner.map.insert((segment, offset), entry) {
            inner.bytes -= old.cost();
        }
        while inner.bytes > self.budget {
            let Some((_, old)) = inner.map.pop_front() else {
                break;
            };
            inner.bytes -= old.cost();
        }
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(len: usize, c: char) -> Arc<str> {
        Arc::from(std::iter::repeat_n(c, len).collect::<String>())
    }

    #[test]
    fn an_entry_is_found_only_for_its_place_and_hash() {
        let cache = DataCache::new(1 << 20);
        cache.insert(3, 100, 0xABCD, text(2000, 'a'));
        assert_eq!(
            cache.get(3, 100, 0xABCD).as_deref(),
            Some(&*text(2000, 'a'))
        );
        assert!(
            cache.get(3, 100, 0xABCE).is_none(),
            "another frame at the same place"
        );
        assert!(cache.get(3, 101, 0xABCD).is_none());
        assert!(cache.get(4, 100, 0xABCD).is_none());
    }

    #[test]
    fn the_least_recently_used_entry_leaves_first_and_the_budget_holds() {
        let each = 1000 + ENTRY_OVERHEAD;
        let cache = DataCache::new(4 * each);
        for i in 0..4 {
            cache.insert(1, i, i, text(1000, 'x'));
        }
        assert_eq!(cache.bytes(), 4 * each);
        // Entry 0 is used again, so entry 1 is now the least recently used.
        assert!(cache.get(1, 0, 0).is_some());
        cache.insert(1, 4, 4, text(1000, 'y'));
        assert!(cache.get(1, 1, 1).is_none(), "the least recently used left");
        for i in [0, 2, 3, 4] {
            assert!(cache.get(1, i, i).is_some(), "entry {i} stays");
        }
        assert_eq!(cache.bytes(), 4 * each);
    }

    #[test]
    fn a_replaced_entry_is_counted_once() {
        let cache = DataCache::new(1 << 20);
        cache.insert(1, 8, 1, text(1000, 'a'));
        cache.insert(1, 8, 2, text(3000, 'b'));
        assert_eq!(cache.bytes(), 3000 + ENTRY_OVERHEAD);
        assert!(cache.get(1, 8, 1).is_none());
        assert_eq!(cache.get(1, 8, 2).as_deref(), Some(&*text(3000, 'b')));
    }

    #[test]
    fn a_text_over_a_quarter_of_the_budget_or_a_zero_budget_caches_nothing() {
        let cache = DataCache::new(4000);
        cache.insert(1, 0, 0, text(1000, 'a'));
        assert!(cache.get(1, 0, 0).is_none());
        assert_eq!(cache.bytes(), 0);
        let off = DataCache::new(0);
        off.insert(1, 0, 0, text(10, 'a'));
        assert!(off.get(1, 0, 0).is_none());
    }
}
