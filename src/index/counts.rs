//! Events per string reference (per type, source or action) of one segment.
//!
//! References are dense (handed out in order from 0), so the counts sit in a vector
//! indexed by reference instead of a hash map: the writer counts three names per event,
//! and the map probes were a fifth of its index upkeep (issue 21).

/// Event counts by string reference; references never counted are not listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RefCounts {
    /// `(reference, count)` at index `reference`; a count of 0 means none.
    by_ref: Vec<(u32, u64)>,
    /// References with a count above 0.
    counted: usize,
}

impl RefCounts {
    /// Counts read back from a footer or an image, for a dictionary of `strings` strings:
    /// a count for a reference outside it (a damaged or crafted file) is left out, since it
    /// names nothing, and so is a count of 0. Repeated references add up.
    pub fn from_counts(counts: impl IntoIterator<Item = (u32, u64)>, strings: usize) -> Self {
        let mut out = RefCounts::default();
        for (r, n) in counts {
            if (r as usize) < strings {
                out.add(r, n);
            }
        }
        out
    }

    /// Adds `n` events to reference `r`.
    #[inline]
    pub fn add(&mut self, r: u32, n: u64) {
        let i = r as usize;
        if i >= self.by_ref.len() {
            self.grow_to(i);
        }
        let slot = &mut self.by_ref[i].1;
        if *slot == 0 && n > 0 {
            self.counted += 1;
        }
        *slot += n;
    }

    #[cold]
    fn grow_to(&mut self, i: usize) {
        let from = self.by_ref.len();
        self.by_ref
            .extend((from..=i).map(|r| (u32::try_from(r).expect("refs are u32"), 0)));
    }

    /// How many references have a count.
    pub fn len(&self) -> usize {
        self.counted
    }

    /// `(reference, count)` pairs by ascending reference, each count above 0.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.by_ref.iter())
    }
}

/// The pairs of [`RefCounts::iter`], borrowed as a map's iterator lends them.
pub(crate) struct Iter<'a>(std::slice::Iter<'a, (u32, u64)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a u32, &'a u64);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.by_ref().find(|e| e.1 > 0).map(|(r, n)| (r, n))
    }
}

impl<'a> IntoIterator for &'a RefCounts {
    type Item = (&'a u32, &'a u64);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::RefCounts;

    /// Counts list only counted references, ascending; counts read back keep only
    /// references inside the dictionary and add repeated ones up.
    #[test]
    fn lists_counted_references_and_reads_back_what_a_dictionary_can_name() {
        let mut c = RefCounts::default();
        c.add(5, 1);
        c.add(2, 1);
        c.add(5, 1);
        assert_eq!(c.len(), 2);
        let listed: Vec<(u32, u64)> = (&c).into_iter().map(|(&r, &n)| (r, n)).collect();
        assert_eq!(listed, [(2, 1), (5, 2)]);
        let back = RefCounts::from_counts([(5, 2), (2, 1), (9, 4), (1, 0)], 6);
        assert_eq!(back, c);
        let twice = RefCounts::from_counts([(1, 2), (1, 3)], 2);
        let listed: Vec<(u32, u64)> = twice.iter().map(|(&r, &n)| (r, n)).collect();
        assert_eq!(listed, [(1, 5)]);
        assert_eq!(RefCounts::default().len(), 0);
    }
}
