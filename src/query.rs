//! Queries: filters, plans over the sparse index, ordered streaming results, counts and
//! aggregations.
//!
//! A query resolves its filter against each segment's dictionary (a type a segment never
//! saw rules the segment out), keeps the blocks whose time and id ranges overlap and whose
//! postings hold the wanted strings, and decodes only those. Results are ordered by
//! timestamp (ties by id) even though timestamps arrive out of order: candidate blocks are
//! visited in order of their newest (or oldest) timestamp and an event is released only
//! once no unvisited block can hold anything that sorts before it. Memory stays bounded by
//! the events of overlapping blocks; no result set is materialised.

use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashSet;

use crate::cache::DataCache;
use crate::error::{Error, Result};
use crate::event::{EventId, EventRef, StoredEvent, Timestamp};
use crate::format::{Block, EventFrame, FrameHead, Summary};
use crate::index::{Blocks, Bounds, SegmentIndex};
use crate::stream::{
    borrowed_data, checksummed_frame, decompress_payload, event_ref, frame_bytes, frames_check_out,
    materialize_cached, raw_frame, utf8, SegmentView, Snapshot, Stream,
};
use crate::text::TextMatcher;

/// The order of query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Timestamp descending, ties by id descending (recent-events listings).
    #[default]
    NewestFirst,
    /// Timestamp ascending, ties by id ascending.
    OldestFirst,
}

/// Where a page of results ended: pass it to [`Query::after`] to continue exactly there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// Timestamp of the last event returned.
    pub timestamp: Timestamp,
    /// Id of the last event returned.
    pub id: EventId,
}

/// A field of an event that aggregations group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `event_type`.
    EventType,
    /// `source`.
    Source,
    /// `action` (events without one are not counted).
    Action,
}

/// What events a query keeps. Empty sets mean "any".
#[derive(Debug, Clone, Default)]
struct Filter {
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    types: Vec<String>,
    sources: Vec<String>,
    action: Option<String>,
    text: Option<String>,
    id_from: Option<u64>,
    id_until: Option<u64>,
}

impl Filter {
    fn is_everything(&self) -> bool {
        self.since.is_none()
            && self.until.is_none()
            && self.types.is_empty()
            && self.sources.is_empty()
            && self.action.is_none()
            && self.text.is_none()
            && self.id_from.is_none()
            && self.id_until.is_none()
    }
}

/// A query over a store's events, built with chained calls and run with [`Query::run`],
/// [`Query::count`] or an aggregation.
///
/// ```
/// # fn main() -> selflog::Result<()> {
/// # let dir = tempfile::tempdir().expect("temp dir");
/// # let store = selflog::Store::open(dir.path(), selflog::Config::default())?;
/// use selflog::{Order, Timestamp};
/// let recent: Vec<_> = store
///     .query()
///     .since(Timestamp::now().saturating_sub(std::time::Duration::from_secs(2 * 3600)))
///     .event_type("file_op")
///     .text("chrome")
///     .order(Order::NewestFirst)
///     .limit(50)
///     .run()?
///     .collect::<selflog::Result<_>>()?;
/// # assert!(recent.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[must_use]
pub struct Query<'s> {
    stream: &'s Stream,
    filter: Filter,
    order: Order,
    limit: Option<u64>,
    after: Option<Position>,
}

impl<'s> Query<'s> {
    pub(crate) fn new(stream: &'s Stream) -> Query<'s> {
        Query {
            stream,
            filter: Filter::default(),
            order: Order::NewestFirst,
            limit: None,
            after: None,
        }
    }

    /// Keeps events with timestamp at or after `t`.
    pub fn since(mut self, t: Timestamp) -> Self {
        self.filter.since = Some(t);
        self
    }

    /// Keeps events with timestamp before `t`.
    pub fn until(mut self, t: Timestamp) -> Self {
        self.filter.until = Some(t);
        self
    }

    /// Keeps events of this type (call again to allow several).
    pub fn event_type(mut self, t: impl Into<String>) -> Self {
        self.filter.types.push(t.into());
        self
    }

    /// Keeps events from this source (call again to allow several).
    pub fn source(mut self, s: impl Into<String>) -> Self {
        self.filter.sources.push(s.into());
        self
    }

    /// Keeps events with exactly this action.
    pub fn action(mut self, a: impl Into<String>) -> Self {
        self.filter.action = Some(a.into());
        self
    }

    /// Keeps events whose type, action, source or data JSON text contains `text`, ASCII
    /// letters compared case-insensitively (like `SQLite`'s `LIKE '%text%'`, without
    /// wildcards: `%` and `_` match themselves).
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.filter.text = Some(text.into());
        self
    }

    /// Keeps events with id in `from..until` (`until` exclusive).
    pub fn ids(mut self, from: EventId, until: EventId) -> Self {
        self.filter.id_from = Some(from.0);
        self.filter.id_until = Some(until.0);
        self
    }

    /// Sets the order (default newest first).
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// Returns at most `n` events.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Continues after `p`, the position of the last event of a previous page in the same
    /// order.
    pub fn after(mut self, p: Position) -> Self {
        self.after = Some(p);
        self
    }

    /// Runs the query, streaming matching events in order.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if a visited frame fails its checksum (also yielded by the
    /// iterator, which then stops).
    pub fn run(self) -> Result<Events> {
        self.stream.refresh()?;
        let matcher = self.filter.text.as_deref().map(TextMatcher::new);
        // Segments are expanded into candidate blocks only when the merge reaches them, so
        // "the newest 50" touches the newest segments alone.
        // A sealed segment's summary never changes: one its bounds rule out is passed over
        // without its lock (at 10M events, 60 segments: two fifths of "the newest 50").
        let may_match = |s: &Summary| {
            s.event_count != 0
                && range_may_match(
                    s.min_ts_us,
                    s.max_ts_us,
                    s.first_id,
                    s.last_id,
                    &self.filter,
                )
        };
        let plans = self
            .stream
            .views_where(|v| v.sealed_summary().is_none_or(may_match))
            .into_iter()
            .filter_map(|view| {
                // The snapshot and the bound come from the same moment: the plan must not
                // see events committed after the bound it was ordered by.
                let (snap, key) = view.snapshot_if(|ix, _| {
                    let s = &ix.summary;
                    if !may_match(s) {
                        return None;
                    }
                    Some(bound_key(
                        self.order,
                        s.min_ts_us,
                        s.max_ts_us,
                        s.first_id,
                        s.last_id,
                    ))
                })?;
                Some(Plan::Pending { view, key, snap })
            })
            .collect();
        // A listing (a query with a limit) is the kind asked again and again, and its large
        // events are most of its cost: they go through the decompressed-data cache. A
        // query without one (an export) would only push the listings' entries out.
        let cache = self.limit.map(|_| Arc::clone(&self.stream.data_cache));
        Ok(Events::new(
            plans,
            self.order,
            self.limit,
            self.after,
            self.filter,
            matcher,
            cache,
        ))
    }

    /// Counts matching events (ignoring order and limit). Reads only footers and the tail's
    /// index when the query has no filter.
    ///
    /// # Errors
    /// As [`Query::run`].
    pub fn count(self) -> Result<u64> {
        if self.filter.is_everything() && self.after.is_none() {
            return Ok(self.summary_totals()?.0);
        }
        let mut n = 0;
        for e in self.unordered()? {
            e?;
            n += 1;
        }
        Ok(n)
    }

    /// Events matching, counted per value of `field`. Reads only footers and the tail's
    /// index when the query has no filter.
    ///
    /// # Errors
    /// As [`Query::run`].
    pub fn counts_by(self, field: Field) -> Result<BTreeMap<String, u64>> {
        if self.filter.is_everything() && self.after.is_none() {
            if let Some(counts) = self.index_counts(field)? {
                return Ok(counts);
            }
        }
        let mut out = BTreeMap::new();
        for e in self.unordered()? {
            let e = e?;
            let key = match field {
                Field::EventType => Some(e.event_type),
                Field::Source => Some(e.source),
                Field::Action => e.action,
            };
            if let Some(k) = key {
                *out.entry(k).or_insert(0) += 1;
            }
        }
        Ok(out)
    }

    /// The smallest and largest timestamp of matching events, `None` if there are none.
    ///
    /// # Errors
    /// As [`Query::run`].
    pub fn time_bounds(self) -> Result<Option<(Timestamp, Timestamp)>> {
        if self.filter.is_everything() && self.after.is_none() {
            return Ok(self.summary_totals()?.1);
        }
        let mut bounds: Option<(Timestamp, Timestamp)> = None;
        for e in self.unordered()? {
            let t = e?.timestamp;
            bounds = Some(bounds.map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t))));
        }
        Ok(bounds)
    }

    /// Matching events per time bucket of width `bucket` (an hour or a day for a dashboard),
    /// buckets aligned to multiples of `bucket` since the epoch, ascending, empty buckets
    /// omitted.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero bucket; otherwise as [`Query::run`].
    pub fn histogram(self, bucket: Duration) -> Result<Vec<(Timestamp, u64)>> {
        let width = i64::try_from(bucket.as_micros()).unwrap_or(i64::MAX);
        if width <= 0 {
            return Err(Error::InvalidConfig(
                "histogram bucket must be positive".into(),
            ));
        }
        let mut buckets: BTreeMap<i64, u64> = BTreeMap::new();
        for e in self.unordered()? {
            let t = e?.timestamp.0;
            *buckets.entry(t.div_euclid(width) * width).or_insert(0) += 1;
        }
        Ok(buckets
            .into_iter()
            .map(|(t, n)| (Timestamp(t), n))
            .collect())
    }

    /// All matching events in storage order, for counting: no merge needed.
    fn unordered(self) -> Result<Events> {
        let mut events = Query {
            limit: None,
            ..self
        }
        .run()?;
        events.unordered = true;
        Ok(events)
    }

    fn index_counts(&self, field: Field) -> Result<Option<BTreeMap<String, u64>>> {
        self.stream.refresh()?;
        let mut out = BTreeMap::new();
        for view in self.stream.views() {
            let complete = view.with_index(|ix, _| {
                let counts = match field {
                    Field::EventType => Some(&ix.type_counts),
                    Field::Source => ix.source_counts.as_ref(),
                    Field::Action => ix.action_counts.as_ref(),
                };
                let Some(counts) = counts else {
                    return false;
                };
                for (&r, &n) in counts {
                    if let Some(name) = ix.strings.get(r as usize) {
                        *out.entry(name.to_string()).or_insert(0) += n;
                    }
                }
                true
            });
            if !complete {
                return Ok(None);
            }
        }
        Ok(Some(out))
    }

    /// The number of events and their smallest and largest timestamp, from the segments'
    /// summaries alone (the figures the store's statistics report).
    fn summary_totals(&self) -> Result<(u64, Option<(Timestamp, Timestamp)>)> {
        self.stream.refresh()?;
        let mut total = 0;
        let mut bounds: Option<(Timestamp, Timestamp)> = None;
        for view in self.stream.views() {
            view.with_index(|ix, _| {
                let s = &ix.summary;
                if s.event_count == 0 {
                    return;
                }
                total += s.event_count;
                let (lo, hi) = (Timestamp(s.min_ts_us), Timestamp(s.max_ts_us));
                bounds =
                    Some(bounds.map_or((lo, hi), |(first, last)| (first.min(lo), last.max(hi))));
            });
        }
        Ok((total, bounds))
    }
}

/// One segment's part of a query: what to decode and how to test it.
struct SegmentPlan {
    snap: Snapshot,
    /// The segment's closed blocks and their timestamp bounds.
    all: Blocks,
    bounds: Arc<Bounds>,
    /// Candidate closed-block indices, ascending; `None`: every closed block.
    candidates: Option<Vec<u32>>,
    /// Candidates not yet considered: positions `..frontier` (newest first) or
    /// `frontier..` (oldest first) of the candidate list. Blocks are nearly in time order,
    /// so the frontier moves from the newest (oldest) end and the bounds of what it has not
    /// reached say when it must move on.
    frontier: usize,
    /// Candidates considered and waiting to be decoded; the one to visit next on top.
    blocks: BinaryHeap<Candidate>,
    types: Option<FxHashSet<u32>>,
    sources: Option<FxHashSet<u32>>,
    action: Option<u32>,
    /// Dictionary strings containing the search text.
    text_refs: FxHashSet<u32>,
}

/// A segment of a query: not yet looked at (with the bound of its summary), or expanded into
/// its candidate blocks.
enum Plan {
    Pending {
        view: Arc<SegmentView>,
        key: (i64, u64),
        snap: Snapshot,
    },
    Expanded(Box<SegmentPlan>),
    /// Expanded and found to hold no candidate.
    Done,
}

/// Something ordered in the merge by its order key: a candidate block (keyed by its
/// bound: no event in it sorts before it) or a matching event.
struct Keyed<T> {
    key: (i64, u64),
    item: T,
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

/// A candidate block.
type Candidate = Keyed<Visit>;

/// A block to visit, with its number in the segment (the open block's is the number of
/// closed blocks).
#[derive(Clone, Copy)]
struct Visit {
    block: Block,
    number: u32,
    /// Whether the block is closed; else it is the active segment's open block.
    closed: bool,
}

/// A block queued for visiting, keyed by the highest order key any of its events can have.
fn queued_block(order: Order, block: Block, number: u32, closed: bool) -> Candidate {
    Keyed {
        key: bound_key(
            order,
            block.min_ts_us,
            block.max_ts_us,
            block.first_id,
            block.last_id,
        ),
        item: Visit {
            block,
            number,
            closed,
        },
    }
}

/// The order key of an event: larger sorts first.
fn order_key(order: Order, ts: i64, id: u64) -> (i64, u64) {
    match order {
        Order::NewestFirst => (ts, id),
        // Earlier sorts first: negate, mapping i64::MIN (only from damaged bytes) to MAX.
        Order::OldestFirst => (ts.checked_neg().unwrap_or(i64::MAX), u64::MAX - id),
    }
}

/// The highest order key any event within these ranges can have.
fn bound_key(order: Order, min_ts: i64, max_ts: i64, first_id: u64, last_id: u64) -> (i64, u64) {
    match order {
        Order::NewestFirst => order_key(order, max_ts, last_id),
        Order::OldestFirst => order_key(order, min_ts, first_id),
    }
}

/// Whether events within these ranges may pass the filter's time and id bounds.
fn range_may_match(min_ts: i64, max_ts: i64, first_id: u64, last_id: u64, f: &Filter) -> bool {
    !(f.since.is_some_and(|t| max_ts < t.0)
        || f.until.is_some_and(|t| min_ts >= t.0)
        || f.id_from.is_some_and(|i| last_id < i)
        || f.id_until.is_some_and(|i| first_id >= i))
}

/// Refs of `names` in the dictionary; `None` when `names` is empty (any), an empty set
/// when none of them occurs.
fn resolve(ix: &SegmentIndex, names: &[String]) -> Option<FxHashSet<u32>> {
    if names.is_empty() {
        return None;
    }
    Some(
        names
            .iter()
            .filter_map(|n| ix.lookup.get(n.as_bytes()).copied())
            .collect(),
    )
}

/// The indices in both ascending lists.
fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

impl SegmentPlan {
    /// Whether the query filters this segment's events by type, source or action.
    fn filters_names(&self) -> bool {
        self.types.is_some() || self.sources.is_some() || self.action.is_some()
    }

    fn candidate_count(&self) -> usize {
        self.candidates.as_ref().map_or(self.all.len(), Vec::len)
    }

    fn candidate(&self, pos: usize) -> usize {
        self.candidates.as_ref().map_or(pos, |c| c[pos] as usize)
    }

    /// The highest order key any candidate beyond the frontier can hold, `None` when no
    /// such candidate can match the time filter.
    fn frontier_bound(&self, order: Order, f: &Filter) -> Option<(i64, u64)> {
        match order {
            Order::NewestFirst => {
                let i = self.candidate(self.frontier.checked_sub(1)?);
                let ts = self.bounds.prefix_max_ts[i];
                if f.since.is_some_and(|t| ts < t.0) {
                    return None;
                }
                Some(order_key(order, ts, self.all.get(i)?.last_id))
            }
            Order::OldestFirst => {
                if self.frontier >= self.candidate_count() {
                    return None;
                }
                let i = self.candidate(self.frontier);
                let ts = self.bounds.suffix_min_ts[i];
                if f.until.is_some_and(|t| ts >= t.0) {
                    return None;
                }
                Some(order_key(order, ts, self.all.get(i)?.first_id))
            }
        }
    }

    /// The key of what this plan would visit next.
    fn next_key(&self, order: Order, f: &Filter) -> Option<(i64, u64)> {
        let top = self.blocks.peek().map(|c| c.key);
        top.max(self.frontier_bound(order, f))
    }

    /// Moves the frontier past one candidate, queueing it if it may match.
    fn advance(&mut self, order: Order, f: &Filter, after: Option<Position>) {
        let i = match order {
            Order::NewestFirst => {
                self.frontier -= 1;
                self.candidate(self.frontier)
            }
            Order::OldestFirst => {
                self.frontier += 1;
                self.candidate(self.frontier - 1)
            }
        };
        let Some(block) = self.all.get(i) else {
            return;
        };
        if block_may_match(&block, f, after, order) {
            let number = u32::try_from(i).unwrap_or(u32::MAX);
            self.blocks.push(queued_block(order, block, number, true));
        }
    }
}

fn plan_segment(
    view: &SegmentView,
    snap: Snapshot,
    f: &Filter,
    matcher: Option<&TextMatcher>,
    after: Option<Position>,
    order: Order,
) -> Option<SegmentPlan> {
    view.with_index(|ix, _| {
        let s = &ix.summary;
        if s.event_count == 0
            || !range_may_match(s.min_ts_us, s.max_ts_us, s.first_id, s.last_id, f)
        {
            return None;
        }
        let types = resolve(ix, &f.types);
        let sources = resolve(ix, &f.sources);
        let action = match &f.action {
            None => None,
            Some(a) => Some(*ix.lookup.get(a.as_bytes())?),
        };
        if types.as_ref().is_some_and(FxHashSet::is_empty)
            || sources.as_ref().is_some_and(FxHashSet::is_empty)
        {
            return None;
        }
        // Candidate block indices: the intersection of each string filter's postings. A
        // filter one of whose strings is posted in at least 7/8 of the segment's blocks
        // would prune little and cost a decode of a list as long as the segment: every
        // block stays a candidate for it (each frame is still checked), so a common type's
        // newest rows cost a few blocks, not a decode of thousands of block numbers.
        let mut allowed: Option<Vec<u32>> = None;
        let action_set: Option<FxHashSet<u32>> = action.map(|a| std::iter::once(a).collect());
        let dense = |refs: &FxHashSet<u32>| {
            ix.longest_posting(refs).is_some_and(|n| {
                n * DENSE_POSTING_DIVISOR >= ix.blocks.len() * (DENSE_POSTING_DIVISOR - 1)
            })
        };
        for refs in [&types, &sources, &action_set].into_iter().flatten() {
            if dense(refs) {
                continue;
            }
            if let Some(list) = ix.posted_blocks(refs) {
                allowed = Some(match allowed {
                    None => list,
                    Some(prev) => intersect(&prev, &list),
                });
            }
        }
        let text_refs: FxHashSet<u32> = match matcher {
            None => FxHashSet::default(),
            Some(m) => ix
                .strings
                .iter()
                .enumerate()
                .filter(|(_, s)| m.is_match(s.as_bytes()))
                .map(|(i, _)| u32::try_from(i).unwrap_or(u32::MAX))
                .collect(),
        };
        let closed = ix.blocks.len();
        let open_allowed = allowed
            .as_ref()
            .is_none_or(|a| a.last().is_some_and(|&l| l as usize == closed));
        let candidates = allowed.map(|mut a| {
            a.retain(|&i| (i as usize) < closed);
            a
        });
        let mut blocks = BinaryHeap::new();
        // The open block (the active segment's newest) is always considered up front.
        if let Some(block) = ix
            .open
            .filter(|b| open_allowed && block_may_match(b, f, after, order))
        {
            let number = u32::try_from(closed).unwrap_or(u32::MAX);
            blocks.push(queued_block(order, block, number, false));
        }
        let count = candidates.as_ref().map_or(closed, Vec::len);
        Some(SegmentPlan {
            snap,
            all: ix.blocks.clone(),
            bounds: ix.bounds(),
            candidates,
            frontier: match order {
                Order::NewestFirst => count,
                Order::OldestFirst => 0,
            },
            blocks,
            types,
            sources,
            action,
            text_refs,
        })
    })
}

fn block_may_match(b: &Block, f: &Filter, after: Option<Position>, order: Order) -> bool {
    if !range_may_match(b.min_ts_us, b.max_ts_us, b.first_id, b.last_id, f) {
        return false;
    }
    match (after, order) {
        (Some(p), Order::NewestFirst) => (b.min_ts_us, b.first_id) < (p.timestamp.0, p.id.0),
        (Some(p), Order::OldestFirst) => (b.max_ts_us, b.last_id) > (p.timestamp.0, p.id.0),
        (None, _) => true,
    }
}

/// A frame that passed the filter, with its data text if matching decoded it.
enum Matched {
    Plain,
    WithData(String),
}

/// The filter fields of the frame at `offset` (none for a string definition) and its
/// length, without its checksum; `None` when they do not decode (the checked decode then
/// reports why).
fn peek_head(snap: &Snapshot, offset: u64) -> Option<(Option<FrameHead>, usize)> {
    let start = usize::try_from(offset).ok()?;
    let end = usize::try_from(snap.committed_len).ok()?;
    crate::format::peek_head(snap.map.get(start..end)?)
}

/// The fields of the frame at `offset` without checking its checksum, for ruling it out;
/// `None` when they do not decode (the checked decode then reports why).
#[inline]
fn peek_fields(snap: &Snapshot, offset: u64) -> Option<(EventFrame<'_>, usize)> {
    let start = usize::try_from(offset).ok()?;
    let end = usize::try_from(snap.committed_len).ok()?;
    let bytes = snap.map.get(start..end)?;
    crate::format::peek_event(bytes).or_else(|| {
        match crate::format::decode_frame_unchecked(bytes) {
            Ok(Some((crate::format::Frame::Event(f), len))) => Some((f, len)),
            _ => None,
        }
    })
}

/// Where the event frames with compressed payloads start among the frames of `bytes`
/// (offsets in `bytes`), from each frame's length and flags alone; `None` when a frame's
/// shape is off or the frames do not end exactly with `bytes`.
fn compressed_frames(bytes: &[u8]) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let (compressed, len) = crate::format::peek_compressed(&bytes[at..])?;
        if compressed {
            out.push(at);
        }
        at += len;
    }
    Some(out)
}

/// A matching event waiting in the merge. It is materialised only when released, so
/// events decoded from a block but never returned cost no allocation.
struct Match {
    plan: usize,
    offset: u64,
    /// The data text, when matching already decoded it (text search).
    data: Option<String>,
    /// The frame, when matching decoded it whole (without its checksum).
    frame: Option<Unchecked>,
    /// Whether the frame's block was checked whole ([`crate::checked::CheckedBlocks`]): its release then
    /// need not compute the checksum.
    checked: bool,
}

/// An event frame decoded while scanning without its checksum. Its release checks the
/// checksum over the same bytes ([`crate::format::checksum_matches`]) instead of decoding
/// the frame again; the bytes of a committed frame never change under a snapshot.
#[derive(Clone, Copy)]
struct Unchecked {
    /// The frame's whole length.
    len: u32,
    head: FrameHead,
    hash: u64,
    /// The payload's length: it ends the frame.
    payload_len: Option<u32>,
    raw_len: Option<u32>,
}

impl Unchecked {
    fn of(f: &EventFrame<'_>, len: usize) -> Option<Unchecked> {
        Some(Unchecked {
            len: u32::try_from(len).ok()?,
            head: FrameHead::from(f),
            hash: f.hash,
            payload_len: match f.payload {
                Some(p) => Some(u32::try_from(p.len()).ok()?),
                None => None,
            },
            raw_len: f.raw_len,
        })
    }

    /// The frame again, from its `bytes` (the `len` bytes it was decoded from).
    fn frame<'a>(&self, bytes: &'a [u8]) -> EventFrame<'a> {
        let h = &self.head;
        EventFrame {
            id_delta: h.id_delta,
            ts_delta: h.ts_delta,
            type_ref: h.type_ref,
            source_ref: h.source_ref,
            action_ref: h.action_ref,
            hash: self.hash,
            payload: self.payload_len.map(|n| &bytes[bytes.len() - n as usize..]),
            raw_len: self.raw_len,
        }
    }
}

/// The frame of a released match at `offset`: its unchecked decode once the checksum over
/// its bytes matches (or its block was `checked` whole), or else the checked decode (which
/// reports any damage).
fn released_frame<'a>(
    snap: &'a Snapshot,
    offset: u64,
    unchecked: Option<&Unchecked>,
    checked: bool,
) -> Result<EventFrame<'a>> {
    let bytes = |u: &Unchecked| {
        if checked {
            frame_bytes(snap, offset, u.len as usize)
        } else {
            checksummed_frame(snap, offset, u.len as usize)
        }
    };
    if let Some((u, bytes)) = unchecked.and_then(|u| Some((u, bytes(u)?))) {
        return Ok(u.frame(bytes));
    }
    if checked {
        if let Some(f) = peek_fields(snap, offset) {
            return Ok(f.0);
        }
    }
    match raw_frame(snap, offset)? {
        (Some(f), _) => Ok(f),
        (None, _) => unreachable!("a match is an event frame"),
    }
}

/// A matching event keyed for ordering.
type Pending = Keyed<Match>;

/// The matches waiting to be released, as sorted runs (one per block read) in a max-heap
/// on each run's next key. A block's matches arrive nearly in order (ascending in the log,
/// so reversed for oldest first, whose keys are negated), which the sort finds in one pass;
/// releasing a match then pops it off its run and compares runs, never the many matches
/// waiting in them.
#[derive(Default)]
struct Merge {
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
    fn push(&mut self, mut found: Vec<Pending>) {
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

/// Streaming query results; see [`Query::run`]. As an [`Iterator`] it yields owned
/// [`StoredEvent`]s; [`Events::next_ref`] yields the same events borrowed ([`EventRef`]),
/// without allocating per event. Both advance the same listing and may be mixed.
pub struct Events {
    plans: Vec<Plan>,
    order: Order,
    remaining: Option<u64>,
    after: Option<Position>,
    filter: Filter,
    matcher: Option<TextMatcher>,
    /// Released in order of the order key (newest first) or of its negation (oldest
    /// first), highest first.
    merge: Merge,
    last: Option<Position>,
    /// Per plan, the key of what it would visit next (`None`: nothing), filled on the
    /// first ordered step. A load changes only the plan it loads, so only that entry is
    /// computed again (a plan's key costs a look at its frontier and queued blocks; a
    /// store of 10,000,000 events has ~150 plans).
    keys: Vec<Option<(i64, u64)>>,
    /// `next_block()` as of the last load, while `next_valid`: releasing a row changes no
    /// plan, so it stays valid until the next load.
    next_cached: Option<(usize, (i64, u64))>,
    next_valid: bool,
    unordered: bool,
    done: bool,
    /// Blocks read so far.
    visited: u64,
    /// Where released events' decompressed data is kept and looked up.
    cache: Option<Arc<DataCache>>,
    /// The cached data of the event `next_ref` returned last.
    held: Option<Arc<str>>,
    /// The decompressed or decoded data of the event `next_ref` returned last; the buffer
    /// is reused from event to event.
    scratch: Vec<u8>,
}

/// A string filter posted in at least (n-1)/n of a segment's blocks skips its postings.
const DENSE_POSTING_DIVISOR: usize = 8;

/// Blocks a text search reads one at a time before it counts as a long scan.
const SCAN_SERIAL_BLOCKS: u64 = 64;
/// Blocks a long scan takes at once, shared by the cores (512 blocks of up to 8 KiB: a few
/// milliseconds of work per batch, against ~20 µs to start a thread).
const SCAN_BATCH_BLOCKS: usize = 512;

impl Events {
    fn new(
        plans: Vec<Plan>,
        order: Order,
        limit: Option<u64>,
        after: Option<Position>,
        filter: Filter,
        matcher: Option<TextMatcher>,
        cache: Option<Arc<DataCache>>,
    ) -> Events {
        Events {
            plans,
            order,
            remaining: limit,
            after,
            filter,
            matcher,
            merge: Merge::default(),
            last: None,
            keys: Vec::new(),
            next_cached: None,
            next_valid: false,
            unordered: false,
            done: false,
            visited: 0,
            cache,
            held: None,
            scratch: Vec::new(),
        }
    }

    /// The position of the last event returned, for [`Query::after`].
    pub fn position(&self) -> Option<Position> {
        self.last
    }

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

    /// Expands a pending segment into its candidate blocks, or decodes the next candidate
    /// block of an expanded one, pushing its matching events onto the heap.
    fn load(&mut self, plan_index: usize) -> Result<()> {
        if let Plan::Pending { view, snap, .. } = &self.plans[plan_index] {
            let plan = plan_segment(
                view,
                snap.clone(),
                &self.filter,
                self.matcher.as_ref(),
                self.after,
                self.order,
            );
            self.plans[plan_index] = plan.map_or(Plan::Done, |p| Plan::Expanded(Box::new(p)));
            return Ok(());
        }
        let (order, after) = (self.order, self.after);
        // A text search that has already read many blocks is most likely a long scan: it
        // takes a batch of this plan's next blocks and reads them on every core.
        let batch_max = if self.matcher.is_some() && self.visited >= SCAN_SERIAL_BLOCKS {
            SCAN_BATCH_BLOCKS
        } else {
            1
        };
        let Plan::Expanded(plan) = &mut self.plans[plan_index] else {
            return Ok(());
        };
        // The blocks this plan visits next, in the order single loads would take them: the
        // frontier moves on while what lies beyond it may sort before the queued blocks.
        let mut batch = Vec::new();
        while batch.len() < batch_max {
            let top = plan.blocks.peek().map(|c| c.key);
            if let Some(bound) = plan.frontier_bound(order, &self.filter) {
                if top.is_none_or(|t| bound >= t) {
                    plan.advance(order, &self.filter, after);
                    if batch.is_empty() && batch_max == 1 {
                        return Ok(());
                    }
                    continue;
                }
            }
            let Some(candidate) = plan.blocks.pop() else {
                break;
            };
            batch.push(candidate);
        }
        self.visited += batch.len() as u64;
        if batch.len() <= 1 {
            if let Some(c) = batch.first() {
                let found = self.scan_block(plan_index, &c.item, &mut Vec::new())?;
                self.merge.push(found);
            }
            return Ok(());
        }
        let blocks: Vec<Visit> = batch.iter().map(|c| c.item).collect();
        let results = self.scan_blocks_parallel(plan_index, &blocks);
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(found) => self.merge.push(found),
                Err(e) if i == 0 => return Err(e),
                Err(_) => {
                    // A damaged block fails the query where a visit in order would: the
                    // blocks from it on go back unvisited, so what sorts before them is
                    // released first, and the next load reports the damage.
                    if let Plan::Expanded(plan) = &mut self.plans[plan_index] {
                        plan.blocks.extend(batch.drain(i..));
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The matches of each of `blocks` of plan `plan_index`, in their order, read on every
    /// core. Threads take the next unread block as they finish one, so a few blocks of large
    /// compressed events do not leave a core idle.
    fn scan_blocks_parallel(
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

    /// The matches of one block of plan `plan_index`.
    ///
    /// A block with a match is checked whole once ([`crate::checked::CheckedBlocks`]; the
    /// open block as far as the snapshot holds it): its bytes are in the cache now, and the
    /// releases of its events, by this query and every later one, then skip their
    /// checksums.
    fn scan_block(
        &self,
        plan_index: usize,
        visit: &Visit,
        scratch: &mut Vec<u8>,
    ) -> Result<Vec<Pending>> {
        let Plan::Expanded(plan) = &self.plans[plan_index] else {
            return Ok(Vec::new());
        };
        let block = &visit.block;
        let end = (block.offset + u64::from(block.len)).min(plan.snap.committed_len);
        let mut found = self.block_matches(plan_index, plan, block, end, scratch)?;
        if found.is_empty() {
            return Ok(found);
        }
        let marks = &plan.snap.checked;
        let n = visit.number;
        let checked = if visit.closed {
            // A block closed after the snapshot was taken may reach past its committed
            // end: what the snapshot holds of it is not the whole block.
            let whole = end == block.offset + u64::from(block.len);
            marks.contains(n)
                || (whole && frames_check_out(&plan.snap, block.offset, end) && {
                    marks.insert(n);
                    true
                })
        } else {
            // The open block grows: what an earlier listing checked of it is kept, and only
            // the frames after that are checked now.
            let len = u32::try_from(end.saturating_sub(block.offset)).unwrap_or(u32::MAX);
            let done = marks.open_checked(n).min(len);
            done == len
                || (frames_check_out(&plan.snap, block.offset + u64::from(done), end) && {
                    marks.insert_open(n, len);
                    true
                })
        };
        if checked {
            for p in &mut found {
                p.item.checked = true;
            }
        }
        Ok(found)
    }

    /// The matches among the frames of `block`, which end at `end`.
    fn block_matches(
        &self,
        plan_index: usize,
        plan: &SegmentPlan,
        block: &Block,
        end: u64,
        scratch: &mut Vec<u8>,
    ) -> Result<Vec<Pending>> {
        // Without a filter on names or text every frame in range matches: room for a
        // whole block at once instead of growing (and copying) the matches as they come.
        let unfiltered = self.matcher.is_none() && !plan.filters_names();
        let mut found = Vec::with_capacity(if unfiltered {
            crate::index::BLOCK_EVENTS_MAX as usize
        } else {
            0
        });
        // A text search first looks for the text in the block's bytes at once. Where it is
        // not there, no uncompressed payload of the block holds it (each is a slice of those
        // bytes), and when no name in the segment holds it either, only the block's
        // compressed payloads can: the frames are stepped over by their length and flags
        // alone, which the search has just brought into the cache. A frame whose shape is
        // off sends the block to the full walk, which reports it.
        if let Some(m) = self.matcher.as_ref().filter(|_| plan.text_refs.is_empty()) {
            let bytes = usize::try_from(block.offset)
                .ok()
                .zip(usize::try_from(end).ok())
                .and_then(|(a, b)| plan.snap.map.get(a..b));
            let compressed = bytes.filter(|b| !m.is_match(b)).and_then(compressed_frames);
            if let Some(compressed) = compressed {
                for at in compressed {
                    let offset = block.offset + at as u64;
                    found.extend(self.scan_frame(plan_index, plan, offset, scratch)?.0);
                }
                return Ok(found);
            }
        }
        let mut offset = block.offset;
        while offset < end {
            let (matched, next) = self.scan_frame(plan_index, plan, offset, scratch)?;
            found.extend(matched);
            offset = next;
        }
        Ok(found)
    }

    /// The frame at `offset` of plan `plan_index` as a match, if it is one, and the offset
    /// of the next frame.
    fn scan_frame(
        &self,
        plan_index: usize,
        plan: &SegmentPlan,
        offset: u64,
        scratch: &mut Vec<u8>,
    ) -> Result<(Option<Pending>, u64)> {
        // Match on the frame's fields without paying for its checksum: what is released
        // is decoded again with the checksum checked (Events::materialize), so nothing
        // unchecked is ever returned. A frame whose shape is off goes to the checked
        // decode, which reports the damage. Without a text search only the fields
        // before the hash are read; with one, `matches` also checks the fields.
        //
        // Where every frame in range matches (no name filter, no text), most of what is
        // scanned is released: the frame is decoded whole here and kept, so that its
        // release only checks the checksum. Elsewhere the scan reads only the head.
        let whole = self.matcher.is_some() || !plan.filters_names();
        let (head, data, unchecked, next) = if whole {
            let (frame, unchecked, next) = if let Some((f, len)) = peek_fields(&plan.snap, offset) {
                (Some(f), Unchecked::of(&f, len), offset + len as u64)
            } else {
                let (f, next) = raw_frame(&plan.snap, offset)?;
                (f, None, next)
            };
            match frame {
                Some(f) => match self.matches(plan, offset, &f, scratch)? {
                    Some(Matched::Plain) => (Some(FrameHead::from(&f)), None, unchecked, next),
                    Some(Matched::WithData(d)) => {
                        (Some(FrameHead::from(&f)), Some(d), unchecked, next)
                    }
                    None => (None, None, None, next),
                },
                None => (None, None, None, next),
            }
        } else if let Some((h, len)) = peek_head(&plan.snap, offset) {
            (h, None, None, offset + len as u64)
        } else {
            let (f, next) = raw_frame(&plan.snap, offset)?;
            (f.as_ref().map(FrameHead::from), None, None, next)
        };
        let passes = |h: &FrameHead| whole || self.fields_match(plan, h);
        let matched = head.filter(passes).map(|f| {
            let id = plan.snap.header.base_id.wrapping_add(f.id_delta);
            let ts = plan.snap.header.base_timestamp_us.wrapping_add(f.ts_delta);
            Pending {
                key: order_key(self.order, ts, id),
                item: Match {
                    plan: plan_index,
                    offset,
                    data,
                    frame: unchecked,
                    checked: false,
                },
            }
        });
        Ok((matched, next))
    }

    /// The stored event of a released match.
    fn materialize(&self, p: Pending) -> Result<StoredEvent> {
        let p = p.item;
        let Plan::Expanded(plan) = &self.plans[p.plan] else {
            unreachable!("matches come only from expanded plans, which stay expanded");
        };
        let f = released_frame(&plan.snap, p.offset, p.frame.as_ref(), p.checked)?;
        materialize_cached(&plan.snap, p.offset, &f, p.data, self.cache.as_deref())
    }

    /// Whether frame `f` passes the filter: `Some` with its data text if matching decoded it.
    fn matches(
        &self,
        plan: &SegmentPlan,
        offset: u64,
        f: &EventFrame<'_>,
        scratch: &mut Vec<u8>,
    ) -> Result<Option<Matched>> {
        if !self.fields_match(plan, &FrameHead::from(f)) {
            return Ok(None);
        }
        self.text_matches(plan, offset, f, scratch)
    }

    /// Whether `f`'s id, timestamp and strings pass the filter (not the text).
    fn fields_match(&self, plan: &SegmentPlan, f: &FrameHead) -> bool {
        let fl = &self.filter;
        let id = plan.snap.header.base_id.wrapping_add(f.id_delta);
        let ts = plan.snap.header.base_timestamp_us.wrapping_add(f.ts_delta);
        if fl.since.is_some_and(|t| ts < t.0) || fl.until.is_some_and(|t| ts >= t.0) {
            return false;
        }
        if fl.id_from.is_some_and(|i| id < i) || fl.id_until.is_some_and(|i| id >= i) {
            return false;
        }
        if let Some(p) = self.after {
            let past = match self.order {
                Order::NewestFirst => (ts, id) < (p.timestamp.0, p.id.0),
                Order::OldestFirst => (ts, id) > (p.timestamp.0, p.id.0),
            };
            if !past {
                return false;
            }
        }
        if plan
            .types
            .as_ref()
            .is_some_and(|t| !t.contains(&f.type_ref))
            || plan
                .sources
                .as_ref()
                .is_some_and(|s| !s.contains(&f.source_ref))
            || plan.action.is_some_and(|a| f.action_ref != Some(a))
        {
            return false;
        }
        true
    }

    /// Whether `f` passes the text filter: `Some` with its data text if that was decoded.
    fn text_matches(
        &self,
        plan: &SegmentPlan,
        offset: u64,
        f: &EventFrame<'_>,
        scratch: &mut Vec<u8>,
    ) -> Result<Option<Matched>> {
        let Some(m) = &self.matcher else {
            return Ok(Some(Matched::Plain));
        };
        let in_names = plan.text_refs.contains(&f.type_ref)
            || plan.text_refs.contains(&f.source_ref)
            || f.action_ref.is_some_and(|a| plan.text_refs.contains(&a));
        if in_names {
            return Ok(Some(Matched::Plain));
        }
        // Bytes are matched as they are; only a match is checked to be UTF-8 (and every
        // released event is decoded again with its checksum checked). A compressed payload
        // is decompressed into the scanning thread's buffer, reused from frame to frame.
        let bytes: &[u8] = match (f.payload, f.raw_len) {
            (None, _) => return Ok(None),
            (Some(p), None) => p,
            (Some(p), Some(raw)) => {
                decompress_payload(&plan.snap, offset, p, raw, scratch)?;
                scratch
            }
        };
        if !m.is_match(bytes) {
            return Ok(None);
        }
        let text = utf8(bytes).map(str::to_owned).ok_or_else(|| {
            crate::Error::corrupt(&plan.snap.path, offset, "event data is not UTF-8")
        })?;
        Ok(Some(Matched::WithData(text)))
    }

    fn next_event(&mut self) -> Result<Option<StoredEvent>> {
        match self.next_pending()? {
            Some(p) => self.materialize(p).map(Some),
            None => Ok(None),
        }
    }

    /// The next match to release, in order.
    fn next_pending(&mut self) -> Result<Option<Pending>> {
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

    /// The next event, borrowed instead of copied ([`EventRef`]): what [`Iterator::next`]
    /// returns, without allocating for its names or for data stored uncompressed. The
    /// borrow lasts until the next call; a listing that only shows or serialises its rows
    /// needs no copy of them.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = selflog::Store::open(dir.path().join("s"), selflog::Config::default())?;
    /// # store.append(selflog::Event::new(selflog::Timestamp::now(), "app_launch", None, "Dock", None)?)?;
    /// let mut events = store.query().limit(50).run()?;
    /// while let Some(e) = events.next_ref() {
    ///     let e = e?;
    ///     println!("{} {} {}", e.id.0, e.event_type, e.data.unwrap_or("null"));
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Iterator::next`]: a damaged frame ends the listing with its error.
    pub fn next_ref(&mut self) -> Option<Result<EventRef<'_>>> {
        if self.done || self.remaining == Some(0) {
            return None;
        }
        let pending = match self.next_pending() {
            Ok(Some(p)) => p,
            Ok(None) => {
                self.done = true;
                return None;
            }
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        let Events {
            plans,
            cache,
            held,
            scratch,
            remaining,
            last,
            done,
            ..
        } = self;
        match borrow_match(plans, pending.item, cache.as_deref(), held, scratch) {
            Ok(e) => {
                if let Some(r) = remaining {
                    *r -= 1;
                }
                *last = Some(Position {
                    timestamp: e.timestamp,
                    id: e.id,
                });
                Some(Ok(e))
            }
            Err(e) => {
                *done = true;
                Some(Err(e))
            }
        }
    }
}

/// The released match `m` of `plans`, borrowed: its data from the map, from `held` (a
/// cached text) or from `scratch` (the query's buffer, reused from event to event).
fn borrow_match<'a>(
    plans: &'a [Plan],
    m: Match,
    cache: Option<&DataCache>,
    held: &'a mut Option<Arc<str>>,
    scratch: &'a mut Vec<u8>,
) -> Result<EventRef<'a>> {
    let Plan::Expanded(plan) = &plans[m.plan] else {
        unreachable!("matches come only from expanded plans, which stay expanded");
    };
    let snap = &plan.snap;
    let offset = m.offset;
    let f = released_frame(snap, offset, m.frame.as_ref(), m.checked)?;
    let segment = snap.header.segment_id;
    let cached = match (&m.data, cache) {
        (None, Some(c)) if f.raw_len.is_some() => c.get(segment, offset, f.hash),
        _ => None,
    };
    let data = if let Some(text) = m.data {
        // The buffer changes hands without a copy.
        *scratch = text.into_bytes();
        let scratch: &'a Vec<u8> = scratch;
        let not_utf8 = || Error::corrupt(&snap.path, offset, "event data is not UTF-8");
        Some(utf8(scratch).ok_or_else(not_utf8)?)
    } else if cached.is_some() {
        *held = cached;
        let held: &'a Option<Arc<str>> = held;
        held.as_deref()
    } else {
        let text = borrowed_data(snap, offset, &f, scratch)?;
        if let (Some(c), Some(t), Some(_)) = (cache, text, f.raw_len) {
            c.insert(segment, offset, f.hash, Arc::from(t));
        }
        text
    };
    event_ref(snap, offset, &f, data)
}

impl Iterator for Events {
    type Item = Result<StoredEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.remaining == Some(0) {
            return None;
        }
        match self.next_event() {
            Ok(Some(e)) => {
                if let Some(r) = &mut self.remaining {
                    *r -= 1;
                }
                self.last = Some(Position {
                    timestamp: e.timestamp,
                    id: e.id,
                });
                Some(Ok(e))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
