//! Posting lists built in memory: which blocks hold each string, by string reference.
//!
//! A segment's references are dense (the dictionary hands them out in order from 0), so the
//! lists sit in a vector indexed by reference: the writer posts up to three references per
//! event, and a hash-map probe plus a load of the list's last entry, cold for the many
//! sources seen once in a while, was most of its index upkeep (issue 21). Whether a
//! reference is already posted in the open block is answered by a second, compact vector.

/// Posting lists by string reference, each ascending, with no empty list visible.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PostingMap {
    /// Blocks per reference (empty: none).
    lists: Vec<Vec<u32>>,
    /// Per reference, 1 + the last block posted (0: none), for the check every event makes.
    last: Vec<u32>,
    /// References whose list is not empty.
    strings: usize,
}

impl PostingMap {
    /// Lists read back from a footer or an image, for a dictionary of `strings` strings:
    /// a list for a reference outside it (a damaged or crafted file) is left out, since no
    /// query can ask for one, and so is an empty list.
    pub fn from_lists(lists: impl IntoIterator<Item = (u32, Vec<u32>)>, strings: usize) -> Self {
        let mut out = PostingMap::default();
        for (r, list) in lists {
            let i = r as usize;
            if i >= strings || list.is_empty() {
                continue;
            }
            if out.lists.len() <= i {
                out.grow_to(i);
            }
            out.last[i] = list.last().map_or(0, |b| b.saturating_add(1));
            if out.lists[i].is_empty() {
                out.strings += 1;
            }
            out.lists[i] = list;
        }
        out
    }

    /// Makes room for reference `i`, past the last one.
    #[cold]
    fn grow_to(&mut self, i: usize) {
        self.lists.resize_with(i + 1, Vec::new);
        self.last.resize(i + 1, 0);
    }

    /// Records that `block` holds reference `r`; returns whether that added an entry
    /// (blocks are posted in ascending order, each once per reference).
    #[inline]
    pub fn post(&mut self, r: u32, block: u32) -> bool {
        let i = r as usize;
        let mark = block + 1;
        if self.last.get(i) == Some(&mark) {
            return false;
        }
        if self.lists.len() <= i {
            self.grow_to(i);
        }
        self.last[i] = mark;
        let list = &mut self.lists[i];
        if list.is_empty() {
            self.strings += 1;
        }
        list.push(block);
        true
    }

    /// The list of reference `r`, if it has one.
    pub fn get(&self, r: u32) -> Option<&Vec<u32>> {
        self.lists.get(r as usize).filter(|l| !l.is_empty())
    }

    /// How many references have a list.
    pub fn len(&self) -> usize {
        self.strings
    }

    /// Entries over all lists.
    pub fn entries(&self) -> usize {
        self.lists.iter().map(Vec::len).sum()
    }

    /// The lists, by ascending reference.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Vec<u32>)> + '_ {
        self.lists
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.is_empty())
            .map(|(r, l)| (u32::try_from(r).expect("refs are u32"), l))
    }
}

#[cfg(test)]
mod tests {
    use super::PostingMap;

    /// Posting the same reference twice in a block adds one entry; lists read back keep
    /// only references inside the dictionary, and go on from their last block.
    #[test]
    fn posts_once_per_block_and_reads_back_what_a_dictionary_can_name() {
        let mut m = PostingMap::default();
        assert!(m.post(3, 0));
        assert!(!m.post(3, 0));
        assert!(m.post(0, 0));
        assert!(m.post(3, 2));
        assert_eq!(m.len(), 2);
        assert_eq!(m.entries(), 3);
        assert_eq!(m.get(3), Some(&vec![0, 2]));
        assert_eq!(m.get(1), None);
        assert_eq!(m.get(99), None);
        let listed: Vec<(u32, Vec<u32>)> = m.iter().map(|(r, l)| (r, l.clone())).collect();
        assert_eq!(listed, [(0, vec![0]), (3, vec![0, 2])]);

        let mut back = PostingMap::from_lists(
            [(3, vec![0, 2]), (0, vec![0]), (7, vec![1]), (1, vec![])],
            4,
        );
        assert_eq!(back, m);
        assert!(!back.post(3, 2));
        assert!(back.post(3, 4));
        assert_eq!(back.get(3), Some(&vec![0, 2, 4]));
    }
}
