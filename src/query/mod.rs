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
//!
//! The work is split by job: this file holds the builder ([`Query`]) and the filter it
//! fills; `plan.rs` chooses the segments and blocks a query must read; `scan.rs` reads a
//! block and tests its frames against the filter, and `parallel.rs` spreads a long text
//! search's blocks over the cores; `merge.rs` orders the matches and decides when one may
//! be released; `events.rs` is the streaming iterator that releases them, checked against
//! their checksums; `aggregate.rs` counts, groups and buckets matches.
//!
//! A query borrows the event [`Stream`] alone: it reads segments, never the writer.

mod aggregate;
mod events;
mod merge;
mod parallel;
mod plan;
mod scan;
mod skipped;

use std::sync::Arc;

use crate::error::Result;
use crate::event::{EventId, Timestamp};
use crate::format::Summary;
use crate::stream::Stream;
use crate::text::TextMatcher;

pub use events::{Events, Position};

use merge::bound_key;
use plan::{range_may_match, Plan};

/// The order of query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Timestamp descending, ties by id descending (recent-events listings).
    #[default]
    NewestFirst,
    /// Timestamp ascending, ties by id ascending.
    OldestFirst,
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
    /// [`Error::Corrupt`](crate::Error::Corrupt) if a visited frame fails its checksum
    /// (also yielded by the iterator, which then stops).
    pub fn run(self) -> Result<Events> {
        // Deferred views (sealed segments whose footers are not read yet) stay so until
        // the merge reaches them: their bounds order them.
        self.stream.refresh_deferred()?;
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
                if view.is_deferred() {
                    // Sealed: its bounds are final, and its snapshot is taken when the
                    // merge reaches it (`Events::load`, which loads the view).
                    let s = view.sealed_summary().filter(|s| may_match(s))?;
                    let key =
                        bound_key(self.order, s.min_ts_us, s.max_ts_us, s.first_id, s.last_id);
                    return Some(Plan::Pending {
                        view,
                        key,
                        snap: None,
                    });
                }
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
                Some(Plan::Pending {
                    view,
                    key,
                    snap: Some(snap),
                })
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
}
