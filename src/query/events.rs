//! Streaming query results: [`Events`], the iterator that releases matches in order.
//!
//! A match is materialised only when released, and every released event is checked against
//! its checksum: a frame decoded without it while scanning has its checksum checked over the
//! same bytes, unless its whole block was checked once already. [`Events::next_ref`] lends
//! the event instead of copying it; listings share a cache of decompressed data.

use std::sync::Arc;

use crate::cache::DataCache;
use crate::error::{Error, Result};
use crate::event::{EventId, EventRef, StoredEvent, Timestamp};
use crate::format::{EventFrame, FrameHead};
use crate::stream::{
    borrowed_data, checksummed_frame, event_ref, frame_bytes, materialize_cached, raw_frame, utf8,
    Snapshot,
};
use crate::text::TextMatcher;

use super::merge::{Match, Merge, Pending};
use super::plan::Plan;
use super::scan::peek_fields;
use super::{Filter, Order};

/// Where a page of results ended: pass it to [`Query::after`](super::Query::after) to
/// continue exactly there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// Timestamp of the last event returned.
    pub timestamp: Timestamp,
    /// Id of the last event returned.
    pub id: EventId,
}

/// Streaming query results; see [`Query::run`](super::Query::run). As an [`Iterator`] it
/// yields owned [`StoredEvent`]s; [`Events::next_ref`] yields the same events borrowed
/// ([`EventRef`]), without allocating per event. Both advance the same listing and may be
/// mixed.
pub struct Events {
    pub(super) plans: Vec<Plan>,
    pub(super) order: Order,
    remaining: Option<u64>,
    pub(super) after: Option<Position>,
    pub(super) filter: Filter,
    pub(super) matcher: Option<TextMatcher>,
    /// Released in order of the order key (newest first) or of its negation (oldest
    /// first), highest first.
    pub(super) merge: Merge,
    last: Option<Position>,
    /// Per plan, the key of what it would visit next (`None`: nothing), filled on the
    /// first ordered step. A load changes only the plan it loads, so only that entry is
    /// computed again (a plan's key costs a look at its frontier and queued blocks; a
    /// store of 10,000,000 events has ~150 plans).
    pub(super) keys: Vec<Option<(i64, u64)>>,
    /// `next_block()` as of the last load, while `next_valid`: releasing a row changes no
    /// plan, so it stays valid until the next load.
    pub(super) next_cached: Option<(usize, (i64, u64))>,
    pub(super) next_valid: bool,
    pub(super) unordered: bool,
    done: bool,
    /// Blocks read so far.
    pub(super) visited: u64,
    /// Where released events' decompressed data is kept and looked up.
    cache: Option<Arc<DataCache>>,
    /// The cached data of the event `next_ref` returned last.
    held: Option<Arc<str>>,
    /// The decompressed or decoded data of the event `next_ref` returned last; the buffer
    /// is reused from event to event.
    scratch: Vec<u8>,
    /// Per (plan, compacted block), the matches from it waiting in the merge: a block no
    /// match needs any more is let go ([`forget_block`](super::merge)), so a scan of a
    /// compacted segment holds a few expanded blocks, not all it read.
    pub(super) block_matches: rustc_hash::FxHashMap<(usize, usize), u32>,
    /// Blocks to let go of at the start of the next step (the last released match may
    /// still be borrowed from its block until then).
    pub(super) forget: Vec<(usize, usize)>,
}

impl Events {
    pub(super) fn new(
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
            block_matches: rustc_hash::FxHashMap::default(),
            forget: Vec::new(),
        }
    }

    /// The position of the last event returned, for [`Query::after`](super::Query::after).
    pub fn position(&self) -> Option<Position> {
        self.last
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

    fn next_event(&mut self) -> Result<Option<StoredEvent>> {
        match self.next_pending()? {
            Some(p) => self.materialize(p).map(Some),
            None => Ok(None),
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

/// An event frame decoded while scanning without its checksum. Its release checks the
/// checksum over the same bytes ([`crate::format::checksum_matches`]) instead of decoding
/// the frame again; the bytes of a committed frame never change under a snapshot.
#[derive(Clone, Copy)]
pub(super) struct Unchecked {
    /// The frame's whole length.
    len: u32,
    head: FrameHead,
    hash: u64,
    /// The payload's length: it ends the frame.
    payload_len: Option<u32>,
    raw_len: Option<u32>,
}

impl Unchecked {
    pub(super) fn of(f: &EventFrame<'_>, len: usize) -> Option<Unchecked> {
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
