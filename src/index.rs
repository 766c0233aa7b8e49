//! The in-memory index of one segment: its string dictionary, sparse block index, postings
//! (which blocks hold each type, source and action), summary and per-field counts.
//!
//! The writer builds it while encoding and writes it into the footer when sealing; readers
//! build the same thing by scanning committed frames of an unsealed segment, or load it from
//! a sealed segment's footer. One builder serves all three, so the block rule lives here
//! only. `format-spec/FORMAT.md#sparse-index`

use std::sync::{Arc, OnceLock};

use rustc_hash::FxHashMap;

use crate::format::{
    Block, Deferred, Footer, FooterSize, PostingListAt, Summary, CHECKPOINT_SLOTS,
    CHECKPOINT_STRIDE,
};

mod blocks;
mod counts;
mod postings;
mod search;

pub(crate) use blocks::Blocks;
use blocks::Checkpoints;
pub(crate) use counts::RefCounts;
use postings::PostingMap;
use search::first_ending_at_or_after;

/// A block is closed after this many events...
pub const BLOCK_EVENTS_MAX: u32 = 32;
/// ...or once its frames span this many bytes, whichever comes first.
pub const BLOCK_LEN_MAX: u32 = 8 << 10;

/// What the index records of one event frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexedEvent {
    /// Its id.
    pub id: u64,
    /// Its timestamp.
    pub ts_us: i64,
    /// Its type's string reference.
    pub type_ref: u32,
    /// Its source's string reference.
    pub source_ref: u32,
    /// Its action's string reference, if any.
    pub action_ref: Option<u32>,
    /// Whether its data is stored compressed.
    pub compressed: bool,
    /// Bytes of its data's JSON text.
    pub data_raw_len: u64,
    /// Bytes of its data as stored.
    pub data_stored_len: u64,
}

/// Timestamp bounds over the closed blocks of a segment, one per block: for a plan of the
/// newest first `bounds[i]` is the largest timestamp in blocks `0..=i` (prefix maxima), for
/// the oldest first the smallest in blocks `i..` (suffix minima).
pub(crate) type Bounds = Arc<[i64]>;

/// A segment's postings, in one of three states.
#[derive(Debug, Clone)]
enum Postings {
    /// Built while writing or scanning frames.
    Built(PostingMap),
    /// Loaded from a footer and left encoded in the segment's map: decoding every sealed
    /// segment's postings was most of the time of opening a large store, and keeping them
    /// decoded grew a long-running reader's memory by ~1 MB per segment. The first query
    /// that needs them finds where each string's list is (a few bytes per string, kept);
    /// each query then decodes only the lists it asks for. `None` as the directory means
    /// the lists' framing is wrong (checksummed, so a writer bug or a crafted file):
    /// queries then treat every block as a candidate, and `verify` reports the damage.
    Deferred(Arc<FooterSource>, Arc<OnceLock<Option<PostingDirectory>>>),
    /// The footer predates postings.
    Absent,
}

/// A sealed segment's footer, read in place: the bytes of its map and where the footer
/// starts, with the parts [`Footer::decode_deferred`] left there.
pub(crate) struct FooterSource {
    /// The segment's bytes (its map), holding the footer.
    pub bytes: Arc<dyn AsRef<[u8]> + Send + Sync>,
    /// Offset of the footer in `bytes`.
    pub footer_at: usize,
    /// Where its blocks and postings are.
    pub deferred: Deferred,
}

impl std::fmt::Debug for FooterSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FooterSource")
            .field("footer_at", &self.footer_at)
            .field("deferred", &self.deferred)
            .finish_non_exhaustive()
    }
}

impl FooterSource {
    fn footer(&self) -> &[u8] {
        (*self.bytes)
            .as_ref()
            .get(self.footer_at..)
            .unwrap_or_default()
    }

    fn directory(&self) -> Option<PostingDirectory> {
        let dir = self.deferred.postings?.directory(self.footer()).ok()?;
        Some(dir.into_iter().collect())
    }

    fn list(&self, at: PostingListAt) -> Option<Vec<u32>> {
        self.deferred.postings?.list(self.footer(), at).ok()
    }

    /// The postings whole, for a dictionary of `strings` strings.
    fn decode_postings(&self, strings: usize) -> Option<PostingMap> {
        let postings = self.deferred.postings?.decode(self.footer()).ok()?;
        Some(PostingMap::from_lists(postings, strings))
    }
}

/// Where each string's posting list is in a footer.
pub(crate) type PostingDirectory = FxHashMap<u32, PostingListAt>;

/// The index of one segment.
#[derive(Debug, Clone)]
pub(crate) struct SegmentIndex {
    /// Dictionary strings by reference. Shared copy-on-write with readers.
    pub strings: Arc<Vec<Arc<str>>>,
    string_bytes: usize,
    /// String (as bytes: the writer looks up names it holds as bytes) to reference.
    pub lookup: FxHashMap<Box<[u8]>, u32>,
    /// Closed blocks, in file order. Shared copy-on-write with running queries.
    pub blocks: Blocks,
    /// Prefix maxima of the closed blocks' timestamps, computed when a query of the
    /// newest first needs them and dropped when a block closes.
    prefix_max: OnceLock<Bounds>,
    /// Suffix minima, likewise for a query of the oldest first: a query needs one of the
    /// two, and each is a pass over every block (in place in a footer: ~2% of `inspect list`
    /// on a 10M store computed both, issue 21).
    suffix_min: OnceLock<Bounds>,
    /// The block being filled, if any.
    pub open: Option<Block>,
    /// Checkpoints of the closed blocks.
    checkpoints: Checkpoints,
    /// Checkpoints of the block being filled.
    open_checkpoints: [u16; CHECKPOINT_SLOTS],
    /// Counts and ranges.
    pub summary: Summary,
    /// Events per type reference.
    pub type_counts: RefCounts,
    /// Events per source reference; `None` if loaded from a footer without them.
    pub source_counts: Option<RefCounts>,
    /// Events per action reference; `None` if loaded from a footer without them.
    pub action_counts: Option<RefCounts>,
    /// Ascending block indices per string reference (the open block's index is
    /// `blocks.len()`); see [`SegmentIndex::posted_blocks`].
    postings: Postings,
    posting_entries: usize,
}

impl Default for SegmentIndex {
    fn default() -> Self {
        SegmentIndex {
            strings: Arc::new(Vec::new()),
            string_bytes: 0,
            lookup: FxHashMap::default(),
            blocks: Blocks::owned(Vec::new()),
            prefix_max: OnceLock::new(),
            suffix_min: OnceLock::new(),
            open: None,
            checkpoints: Checkpoints::owned(Vec::new()),
            open_checkpoints: [0; CHECKPOINT_SLOTS],
            summary: Summary {
                min_ts_us: i64::MAX,
                max_ts_us: i64::MIN,
                ..Summary::default()
            },
            type_counts: RefCounts::default(),
            source_counts: Some(RefCounts::default()),
            action_counts: Some(RefCounts::default()),
            postings: Postings::Built(PostingMap::default()),
            posting_entries: 0,
        }
    }
}

impl SegmentIndex {
    /// Loads the index a sealed segment's footer holds. With `source` (what
    /// [`Footer::decode_deferred`] left in place), blocks and postings are read from the
    /// mapped footer; without it, from `f`.
    pub fn from_footer(f: Footer, source: Option<FooterSource>) -> SegmentIndex {
        let string_bytes = f.strings.iter().map(String::len).sum();
        let strings: Vec<Arc<str>> = f.strings.into_iter().map(Arc::from).collect();
        let string_count = strings.len();
        let lookup = strings
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    Box::from(s.as_bytes()),
                    u32::try_from(i).expect("string refs are u32"),
                )
            })
            .collect();
        let posting_entries = f
            .postings
            .as_ref()
            .map_or(0, |p| p.iter().map(|(_, b)| b.len()).sum());
        let source = source.map(Arc::new);
        let postings = match (f.postings, &source) {
            (Some(p), _) => Postings::Built(PostingMap::from_lists(p, string_count)),
            (None, Some(src)) if src.deferred.postings.is_some() => {
                Postings::Deferred(Arc::clone(src), Arc::new(OnceLock::new()))
            }
            (None, _) => Postings::Absent,
        };
        let checkpoints = match (&source, f.checkpoints) {
            (Some(src), _) => Checkpoints::in_footer(src),
            (None, Some(points)) => Checkpoints::owned(points),
            (None, None) => Checkpoints::ABSENT,
        };
        let blocks = match source {
            Some(src) => Blocks::in_footer(src),
            None => Blocks::owned(f.blocks),
        };
        SegmentIndex {
            strings: Arc::new(strings),
            string_bytes,
            lookup,
            blocks,
            prefix_max: OnceLock::new(),
            suffix_min: OnceLock::new(),
            open: None,
            checkpoints,
            open_checkpoints: [0; CHECKPOINT_SLOTS],
            summary: f.summary,
            type_counts: RefCounts::from_counts(f.type_counts, string_count),
            source_counts: f
                .source_counts
                .map(|c| RefCounts::from_counts(c, string_count)),
            action_counts: f
                .action_counts
                .map(|c| RefCounts::from_counts(c, string_count)),
            postings,
            posting_entries,
        }
    }

    /// The index an [index image](crate::format::ImageHead) holds, ready to go on building,
    /// its last block open again unless the block rule had closed it. `None` when `f` lacks
    /// what a built index has (postings, source and action counts, checkpoints) or they
    /// disagree with its blocks: an image is only ever written from a built index, so such
    /// an image is not used. A reader's image comes with its bytes (`encoded`: where its
    /// blocks, checkpoints and postings are, which `f` then lacks): blocks and checkpoints
    /// are read in place, postings stay encoded until a query asks for a list or a frame is
    /// added (then decoded whole; lists that do not decode leave every block a candidate,
    /// as a footer's do). Without it, everything comes decoded in `f`.
    /// `format-spec/FORMAT.md#segment-index-image`
    pub fn resumed(f: Footer, encoded: Option<FooterSource>) -> Option<SegmentIndex> {
        let counts = f.source_counts.is_some() && f.action_counts.is_some();
        // With `encoded`, the decode checked the checkpoints' block count; the lists are
        // checked against the block count when decoded.
        let complete = if let Some(src) = &encoded {
            f.postings.is_none()
                && src.deferred.postings.is_some()
                && src.deferred.checkpoints.is_some()
        } else {
            let blocks = f.blocks.len();
            f.checkpoints
                .as_ref()
                .is_some_and(|c| c.len() == blocks * CHECKPOINT_SLOTS)
                && f.postings.as_ref().is_some_and(|p| {
                    p.iter()
                        .all(|(_, list)| list.iter().all(|&b| (b as usize) < blocks))
                })
        };
        if !complete || !counts {
            return None;
        }
        let mut ix = SegmentIndex::from_footer(f, encoded);
        let last = ix
            .blocks
            .len()
            .checked_sub(1)
            .and_then(|i| ix.blocks.get(i));
        if let Some(last) = last {
            if last.event_count < BLOCK_EVENTS_MAX && last.len < BLOCK_LEN_MAX {
                ix.blocks.pop();
                ix.open = Some(last);
                ix.open_checkpoints = ix.checkpoints.pop()?;
            }
        }
        Some(ix)
    }

    /// The postings built while writing or scanning (not those of a footer).
    fn built_postings(&self) -> Option<&PostingMap> {
        match &self.postings {
            Postings::Built(p) => Some(p),
            Postings::Deferred(..) | Postings::Absent => None,
        }
    }

    /// Blocks (by index) posted for any of `refs`, ascending; `None` when postings are
    /// unknown (a footer without them, or whose lists fail to decode): every block is then
    /// a candidate.
    pub fn posted_blocks(&self, refs: &rustc_hash::FxHashSet<u32>) -> Option<Vec<u32>> {
        let mut out: Vec<u32> = match &self.postings {
            Postings::Built(p) => refs
                .iter()
                .filter_map(|&r| p.get(r))
                .flat_map(|list| list.iter().copied())
                .collect(),
            Postings::Deferred(src, directory) => {
                let directory = directory.get_or_init(|| src.directory()).as_ref()?;
                let mut out = Vec::new();
                for r in refs {
                    if let Some(&at) = directory.get(r) {
                        out.extend(src.list(at)?);
                    }
                }
                out
            }
            Postings::Absent => return None,
        };
        if refs.len() > 1 {
            out.sort_unstable();
            out.dedup();
        }
        Some(out)
    }

    /// The length of the longest posting list among `refs` (a lower bound on how many
    /// blocks any of them is in), without decoding any list; `None` when postings are
    /// unknown.
    pub fn longest_posting(&self, refs: &rustc_hash::FxHashSet<u32>) -> Option<usize> {
        match &self.postings {
            Postings::Built(p) => Some(
                refs.iter()
                    .filter_map(|&r| p.get(r))
                    .map(Vec::len)
                    .max()
                    .unwrap_or(0),
            ),
            Postings::Deferred(src, directory) => {
                let directory = directory.get_or_init(|| src.directory()).as_ref()?;
                Some(
                    refs.iter()
                        .filter_map(|r| directory.get(r))
                        .map(|at| at.count() as usize)
                        .max()
                        .unwrap_or(0),
                )
            }
            Postings::Absent => None,
        }
    }

    /// Records a string definition; its reference is the current string count.
    pub fn add_string(&mut self, text: &str) -> u32 {
        let r = u32::try_from(self.strings.len()).expect("fewer than 2^32 strings per segment");
        self.string_bytes += text.len();
        self.lookup.insert(Box::from(text.as_bytes()), r);
        let text: Arc<str> = Arc::from(text);
        Arc::make_mut(&mut self.strings).push(text);
        r
    }

    /// Records one event frame at file `offset` spanning `frame_len` bytes.
    pub fn add_event(&mut self, e: &IndexedEvent, offset: u64, frame_len: u32, commit_us: i64) {
        let IndexedEvent {
            id,
            ts_us,
            type_ref,
            ..
        } = *e;
        let s = &mut self.summary;
        if e.compressed {
            s.compressed_count += 1;
        }
        s.data_raw_bytes += e.data_raw_len;
        s.data_stored_bytes += e.data_stored_len;
        if s.event_count == 0 {
            s.first_id = id;
            s.first_commit_us = commit_us;
        }
        s.event_count += 1;
        s.last_id = id;
        s.last_commit_us = commit_us;
        s.min_ts_us = s.min_ts_us.min(ts_us);
        s.max_ts_us = s.max_ts_us.max(ts_us);
        self.type_counts.add(type_ref, 1);
        if let Some(c) = &mut self.source_counts {
            c.add(e.source_ref, 1);
        }
        if let (Some(c), Some(a)) = (&mut self.action_counts, e.action_ref) {
            c.add(a, 1);
        }
        if let Postings::Deferred(src, _) = &self.postings {
            self.postings = src
                .decode_postings(self.strings.len())
                .map_or(Postings::Absent, Postings::Built);
            self.posting_entries = self.built_postings().map_or(0, PostingMap::entries);
        }
        if let Postings::Built(postings) = &mut self.postings {
            let block = u32::try_from(self.blocks.len()).expect("fewer than 2^32 blocks");
            let mut added = usize::from(postings.post(type_ref, block));
            added += usize::from(postings.post(e.source_ref, block));
            if let Some(a) = e.action_ref {
                added += usize::from(postings.post(a, block));
            }
            self.posting_entries += added;
        }

        let block = self.open.get_or_insert(Block {
            first_id: id,
            last_id: id,
            offset,
            len: 0,
            event_count: 0,
            min_ts_us: ts_us,
            max_ts_us: ts_us,
        });
        let ordinal = block.event_count;
        if ordinal > 0 && ordinal.is_multiple_of(CHECKPOINT_STRIDE) {
            if let Some(slot) = self
                .open_checkpoints
                .get_mut((ordinal / CHECKPOINT_STRIDE - 1) as usize)
            {
                // A frame too far into its block for 16 bits (only after long string
                // definitions) gets no checkpoint: a lookup walks to it.
                *slot = u16::try_from(offset - block.offset).unwrap_or(0);
            }
        }
        block.last_id = id;
        block.event_count += 1;
        block.min_ts_us = block.min_ts_us.min(ts_us);
        block.max_ts_us = block.max_ts_us.max(ts_us);
        let end = offset + u64::from(frame_len);
        block.len = u32::try_from(end - block.offset).expect("blocks span less than a segment");
        if block.event_count >= BLOCK_EVENTS_MAX || block.len >= BLOCK_LEN_MAX {
            if let Some(closed) = self.open.take() {
                self.blocks.push(closed);
            }
            let points = std::mem::take(&mut self.open_checkpoints);
            self.checkpoints.push(&points);
            self.prefix_max = OnceLock::new();
            self.suffix_min = OnceLock::new();
        }
    }

    /// The largest timestamp of closed blocks `0..=i`, for every `i`: for visiting blocks
    /// newest first without sorting them all. `format-spec/FORMAT.md#sparse-index`
    pub fn prefix_max_ts(&self) -> Bounds {
        Arc::clone(self.prefix_max.get_or_init(|| {
            let mut hi = i64::MIN;
            let mut out: Vec<i64> = self
                .blocks
                .iter()
                .map(|b| {
                    hi = hi.max(b.max_ts_us);
                    hi
                })
                .collect();
            // A block that cannot be read bounds nothing.
            out.resize(self.blocks.len(), hi);
            out.into()
        }))
    }

    /// The smallest timestamp of closed blocks `i..`, for every `i`: for visiting blocks
    /// oldest first. `format-spec/FORMAT.md#sparse-index`
    pub fn suffix_min_ts(&self) -> Bounds {
        Arc::clone(self.suffix_min.get_or_init(|| {
            // One pass reads each block once (a footer's in place), the second runs over
            // the minima it kept.
            let mut out: Vec<i64> = self.blocks.iter().map(|b| b.min_ts_us).collect();
            out.resize(self.blocks.len(), i64::MAX);
            let mut lo = i64::MAX;
            for m in out.iter_mut().rev() {
                lo = lo.min(*m);
                *m = lo;
            }
            out.into()
        }))
    }

    /// All blocks, the open one included.
    pub fn all_blocks(&self) -> impl Iterator<Item = Block> + '_ {
        self.blocks.iter().chain(self.open)
    }

    /// The block holding event `id`, if any.
    pub fn block_of(&self, id: u64) -> Option<Block> {
        self.locate(id).map(|(b, _)| b)
    }

    /// The block holding event `id`, if any, and the checkpoint to start reading it from
    /// when there is one: the offset of an event frame at or before it in the block, and
    /// the id that frame must have (the caller falls back to the block's start otherwise).
    pub fn locate(&self, id: u64) -> Option<(Block, Option<(u64, u64)>)> {
        let i = first_ending_at_or_after(&self.blocks, id);
        let (block, closed) = match self.blocks.get(i) {
            Some(b) if b.first_id <= id => (b, Some(i)),
            Some(_) => return None,
            None => (
                self.open.filter(|b| b.first_id <= id && id <= b.last_id)?,
                None,
            ),
        };
        // Ordinals follow from ids only in a block without gaps (a writer leaves none).
        if block.last_id - block.first_id + 1 != u64::from(block.event_count) {
            return Some((block, None));
        }
        let stride = u64::from(CHECKPOINT_STRIDE);
        let step = (id - block.first_id) / stride;
        let Some(slot) = step.checked_sub(1).map(|s| s as usize) else {
            return Some((block, None));
        };
        let rel = match closed {
            None => self.open_checkpoints.get(slot).copied(),
            Some(i) => self.checkpoints.get(i, slot),
        };
        let start = rel
            .filter(|&r| r != 0)
            .map(|r| (block.offset + u64::from(r), block.first_id + step * stride));
        Some((block, start))
    }

    /// An upper bound of the footer's encoded length if sealed now.
    pub fn footer_len_bound(&self) -> usize {
        Footer::len_bound(&FooterSize {
            string_bytes: self.string_bytes,
            strings: self.strings.len(),
            blocks: self.blocks.len() + 1,
            counts: self.type_counts.len()
                + self.source_counts.as_ref().map_or(0, RefCounts::len)
                + self.action_counts.as_ref().map_or(0, RefCounts::len),
            posting_strings: self.built_postings().map_or(0, PostingMap::len),
            posting_entries: self.posting_entries,
        })
    }

    /// The footer that seals this index.
    pub fn to_footer(&self) -> Footer {
        // By ascending reference, as the footer stores them.
        fn sorted(m: &RefCounts) -> Vec<(u32, u64)> {
            m.iter().map(|(&r, &n)| (r, n)).collect()
        }
        // Only a writer's or a scanner's index is turned into a footer; one loaded from a
        // footer would decode its postings again.
        let decoded;
        let map = match &self.postings {
            Postings::Built(p) => Some(p),
            Postings::Deferred(src, _) => {
                decoded = src.decode_postings(self.strings.len());
                decoded.as_ref()
            }
            Postings::Absent => None,
        };
        // By ascending reference, as the footer stores them.
        let postings = map.map(|p| p.iter().map(|(r, b)| (r, b.clone())).collect());
        let checkpoints = self.checkpoints.to_vec().map(|mut all| {
            if self.open.is_some() {
                all.extend_from_slice(&self.open_checkpoints);
            }
            all
        });
        Footer {
            summary: self.summary,
            strings: self.strings.iter().map(ToString::to_string).collect(),
            blocks: self.all_blocks().collect(),
            type_counts: sorted(&self.type_counts),
            postings,
            source_counts: self.source_counts.as_ref().map(sorted),
            action_counts: self.action_counts.as_ref().map(sorted),
            checkpoints,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index of `n` events in blocks of 32, alternating two types.
    fn built(n: u64) -> SegmentIndex {
        let mut ix = SegmentIndex::default();
        let a = ix.add_string("file_op");
        let b = ix.add_string("Finder");
        for id in 1..=n {
            let e = IndexedEvent {
                id,
                ts_us: i64::try_from(id).unwrap(),
                type_ref: if id % 2 == 0 { a } else { b },
                source_ref: b,
                action_ref: None,
                compressed: false,
                data_raw_len: 0,
                data_stored_len: 0,
            };
            ix.add_event(&e, 256 + id * 100, 100, 0);
        }
        ix
    }

    /// The index a reader loads from `footer`'s bytes, found after 100 bytes of frames.
    fn loaded_from(footer: &Footer) -> SegmentIndex {
        let mut bytes = vec![0u8; 100];
        bytes.extend(footer.encode());
        let (footer, deferred) = Footer::decode_deferred(&bytes[100..]).unwrap();
        let source = FooterSource {
            bytes: Arc::new(bytes),
            footer_at: 100,
            deferred,
        };
        SegmentIndex::from_footer(footer, Some(source))
    }

    #[test]
    fn deferred_postings_from_a_footer_equal_the_built_ones() {
        let ix = built(200);
        let loaded = loaded_from(&ix.to_footer());
        for refs in [vec![0], vec![1], vec![0, 1], vec![7]] {
            let refs: rustc_hash::FxHashSet<u32> = refs.into_iter().collect();
            assert_eq!(
                loaded.posted_blocks(&refs),
                ix.posted_blocks(&refs),
                "{refs:?}"
            );
        }
        let one: rustc_hash::FxHashSet<u32> = [0].into_iter().collect();
        assert!(loaded.posted_blocks(&one).is_some_and(|b| b.len() == 7));
        assert_eq!(loaded.to_footer(), ix.to_footer());
    }

    /// Every id is found from a checkpoint at most 3 event frames before it, which is
    /// where that event's frame was recorded, in the writer's index and in one loaded from
    /// its footer, for closed and open blocks, with string definitions between frames.
    #[test]
    fn checkpoints_point_at_the_frames_they_name() {
        let mut ix = SegmentIndex::default();
        let mut at = std::collections::HashMap::new();
        let mut offset = 256u64;
        let r = ix.add_string("t");
        for id in 1..=1000u64 {
            if id % 37 == 0 {
                offset += 40; // a string definition inside or between blocks
            }
            let len = 50 + (id * 7919 % 1500) as u32;
            let e = IndexedEvent {
                id,
                ts_us: 0,
                type_ref: r,
                source_ref: r,
                action_ref: None,
                compressed: false,
                data_raw_len: 0,
                data_stored_len: 0,
            };
            ix.add_event(&e, offset, len, 0);
            at.insert(id, offset);
            offset += u64::from(len);
        }
        assert!(ix.open.is_some(), "the test covers an open block");
        let check = |ix: &SegmentIndex, last: u64| {
            let mut from_checkpoints = 0;
            for id in 1..=last {
                let (block, start) = ix.locate(id).unwrap();
                assert!(block.first_id <= id && id <= block.last_id);
                match start {
                    Some((off, want)) => {
                        assert!(want <= id && id - want < 4, "id {id} from {want}");
                        assert_eq!(off, at[&want], "id {id}");
                        from_checkpoints += 1;
                    }
                    None => assert!(id - block.first_id < 4, "id {id} has no checkpoint"),
                }
            }
            assert!(from_checkpoints > last / 2);
        };
        check(&ix, 1000);
        assert!(ix.locate(1001).is_none());
        let footer = ix.to_footer();
        check(&loaded_from(&footer), 1000);
        // A footer without checkpoints still finds every block.
        let bare = loaded_from(&Footer {
            checkpoints: None,
            ..footer
        });
        for id in [1, 5, 500, 1000] {
            assert_eq!(
                bare.locate(id).map(|(b, s)| (b.first_id <= id, s)),
                Some((true, None))
            );
        }
    }

    /// An index resumed from its footer at any point and built on equals the index built in
    /// one go: the open block is reopened with its checkpoints, closed ones stay closed.
    #[test]
    fn an_index_resumed_from_its_image_builds_on_to_the_same_index() {
        let event = |id: u64| IndexedEvent {
            id,
            ts_us: i64::try_from(id * 7 % 13).unwrap(),
            type_ref: u32::from(id.is_multiple_of(3)),
            source_ref: 1,
            action_ref: id.is_multiple_of(5).then_some(0),
            compressed: id.is_multiple_of(11),
            data_raw_len: id,
            data_stored_len: id / 2,
        };
        // Frames of 100 to 3,000 bytes, so blocks close by both rules.
        let len = |id: u64| 100 + u32::try_from(id * 7919 % 2900).unwrap();
        let build = |from: u64, to: u64, ix: &mut SegmentIndex, offset: &mut u64| {
            for id in from..=to {
                ix.add_event(&event(id), *offset, len(id), 5);
                *offset += u64::from(len(id));
            }
        };
        let mut whole = SegmentIndex::default();
        whole.add_string("a");
        whole.add_string("b");
        let mut end = 256;
        build(1, 300, &mut whole, &mut end);
        for split in [0, 1, 4, 5, 31, 32, 33, 64, 100, 299, 300] {
            let mut part = SegmentIndex::default();
            part.add_string("a");
            part.add_string("b");
            let mut offset = 256;
            build(1, split, &mut part, &mut offset);
            // Decoded whole (the writer's recovery), and read in place (a reader's open).
            let bytes = part.to_footer().encode();
            let (footer, deferred) = Footer::decode_deferred(&bytes).unwrap();
            let source = FooterSource {
                bytes: Arc::new(bytes),
                footer_at: 0,
                deferred,
            };
            let resumed = [
                SegmentIndex::resumed(part.to_footer(), None).unwrap(),
                SegmentIndex::resumed(footer, Some(source)).unwrap(),
            ];
            for (way, mut resumed) in resumed.into_iter().enumerate() {
                let ctx = format!("split {split}, way {way}");
                assert_eq!(resumed.open.is_some(), part.open.is_some(), "{ctx}");
                for id in (1..=split).step_by(3) {
                    assert_eq!(resumed.locate(id), part.locate(id), "{ctx} id {id}");
                }
                let mut offset = offset;
                build(split + 1, 300, &mut resumed, &mut offset);
                assert_eq!(resumed.to_footer(), whole.to_footer(), "{ctx}");
                for id in 1..=300 {
                    assert_eq!(resumed.locate(id), whole.locate(id), "{ctx} id {id}");
                }
            }
        }
        // A footer without what a built index has is not resumed.
        let bare = Footer {
            postings: None,
            ..whole.to_footer()
        };
        assert!(SegmentIndex::resumed(bare, None).is_none());
    }

    #[test]
    fn malformed_deferred_postings_mean_every_block_is_a_candidate() {
        let mut footer = built(200).to_footer();
        footer.postings = Some(vec![(0, vec![0, 999])]);
        let loaded = loaded_from(&footer);
        let one: rustc_hash::FxHashSet<u32> = [0].into_iter().collect();
        assert_eq!(loaded.posted_blocks(&one), None);
    }
}
