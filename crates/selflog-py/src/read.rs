//! Reading: the lazy iterator `query` and `replay` return, and `stats`.
//!
//! An [`EventIter`] owns the library's streaming iterator (a query's [`Events`] or a
//! replay's [`Scan`]; neither borrows the store) and reads it in chunks of at most
//! [`CHUNK_EVENTS`] events or [`CHUNK_DATA_LEN`] bytes of data with the GIL released, then
//! hands the chunk's events out one by one: memory stays bounded whatever the number of
//! matches, and a scan that finds nothing for a long while lets other Python threads run.

use std::collections::VecDeque;

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use selflog::{Events, Order, Scan, Store, StoreStats, StoredEvent, Timestamp};

use crate::convert::Filters;
use crate::errors::{Fail, IntoPy as _};
use crate::event::PyEvent;

/// Most events read ahead per chunk.
pub const CHUNK_EVENTS: usize = 256;
/// Most bytes of event data read ahead per chunk (a chunk holds at least one event).
pub const CHUNK_DATA_LEN: usize = 1 << 20;

/// Runs a query with `filters`.
pub fn query(
    store: &Store,
    filters: &Filters,
    limit: Option<u64>,
    oldest_first: bool,
) -> Result<Events, Fail> {
    let mut q = filters.apply(store.query()).order(if oldest_first {
        Order::OldestFirst
    } else {
        Order::NewestFirst
    });
    if let Some(n) = limit {
        q = q.limit(n);
    }
    Ok(q.run()?)
}

enum Source {
    Query(Box<Events>),
    Scan(Scan, Option<Timestamp>),
}

impl Source {
    fn next(&mut self) -> Option<selflog::Result<StoredEvent>> {
        match self {
            Source::Query(events) => events.next(),
            Source::Scan(scan, since) => loop {
                match scan.next()? {
                    Ok(e) if since.is_some_and(|t| e.timestamp < t) => {}
                    other => return Some(other),
                }
            },
        }
    }
}

struct State {
    source: Option<Source>,
    ready: VecDeque<StoredEvent>,
    /// An error met while reading ahead, raised once the events before it are handed out.
    failed: Option<selflog::Error>,
}

impl State {
    /// Reads the next chunk into `ready`.
    fn fill(&mut self) {
        let Some(source) = &mut self.source else {
            return;
        };
        let mut data_len = 0;
        while self.ready.len() < CHUNK_EVENTS && data_len < CHUNK_DATA_LEN {
            match source.next() {
                Some(Ok(e)) => {
                    data_len += e.data.as_ref().map_or(0, String::len);
                    self.ready.push_back(e);
                }
                Some(Err(e)) => {
                    self.failed = Some(e);
                    self.source = None;
                    return;
                }
                None => {
                    self.source = None;
                    return;
                }
            }
        }
    }
}

/// The events of a `Store.query` or `Store.replay`, read lazily in small chunks.
#[pyclass(module = "selflog", name = "EventIterator", frozen)]
pub struct EventIter {
    state: Mutex<State>,
    pid: u32,
}

impl EventIter {
    fn new(source: Source, pid: u32) -> EventIter {
        EventIter {
            state: Mutex::new(State {
                source: Some(source),
                ready: VecDeque::new(),
                failed: None,
            }),
            pid,
        }
    }

    /// The results of a query.
    pub fn query(events: Events, pid: u32) -> EventIter {
        EventIter::new(Source::Query(Box::new(events)), pid)
    }

    /// The events of a replay from `since` on.
    pub fn scan(scan: Scan, since: Option<Timestamp>, pid: u32) -> EventIter {
        EventIter::new(Source::Scan(scan, since), pid)
    }
}

#[pymethods]
impl EventIter {
    fn __iter__(slf: Py<EventIter>) -> Py<EventIter> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<PyEvent>> {
        let forked = |check: fn(u32) -> Option<u32>| {
            check(self.pid).map(|current| {
                Fail::Forked {
                    owner: self.pid,
                    current,
                }
                .into_py_err(py)
            })
        };
        if let Some(e) = forked(crate::fork::forked_from) {
            return Err(e);
        }
        // The common case, an event already read, without releasing the GIL; the lock is
        // only tried, never waited for, while the GIL is held.
        if let Some(mut st) = self.state.try_lock() {
            if let Some(e) = st.ready.pop_front() {
                return Ok(Some(PyEvent::from(e)));
            }
        }
        // Before reading a chunk: the process id itself, once per chunk.
        if let Some(e) = forked(crate::fork::always_forked_from) {
            return Err(e);
        }
        let next = py.detach(|| {
            let mut st = self.state.lock();
            if st.ready.is_empty() {
                st.fill();
            }
            match st.ready.pop_front() {
                Some(e) => Ok(Some(e)),
                None => st.failed.take().map_or(Ok(None), |e| Err(Fail::Lib(e))),
            }
        });
        Ok(next.py(py)?.map(PyEvent::from))
    }
}

/// Everything `stats` reports: the library's totals and the events of the last hour.
pub struct Stats {
    store: StoreStats,
    last_hour: u64,
}

/// The totals `selflog inspect stats` prints, computed the same way.
pub fn stats(store: &Store) -> Result<Stats, Fail> {
    let s = store.stats()?;
    let hour = std::time::Duration::from_secs(3600);
    let last_hour = store
        .query()
        .since(Timestamp::now().saturating_sub(hour))
        .count()?;
    Ok(Stats {
        store: s,
        last_hour,
    })
}

/// `stats` as the dict of `selflog inspect stats --json`, key for key.
#[expect(clippy::cast_precision_loss, reason = "rates and ratios for display")]
pub fn stats_dict<'py>(py: Python<'py>, path: &str, st: &Stats) -> PyResult<Bound<'py, PyDict>> {
    let s = &st.store;
    let ratio = if s.data_stored_bytes == 0 {
        1.0
    } else {
        s.data_raw_bytes as f64 / s.data_stored_bytes as f64
    };
    let d = PyDict::new(py);
    d.set_item("store", path)?;
    d.set_item("total_events", s.total_events)?;
    d.set_item(
        "first_timestamp",
        s.first_timestamp.map(Timestamp::as_secs_f64),
    )?;
    d.set_item(
        "last_timestamp",
        s.last_timestamp.map(Timestamp::as_secs_f64),
    )?;
    d.set_item("first_id", s.first_id.map(|i| i.0))?;
    d.set_item("last_id", s.last_id.map(|i| i.0))?;
    d.set_item("segments", s.segments)?;
    d.set_item("disk_bytes", s.disk_bytes)?;
    d.set_item("log_bytes", s.log_bytes)?;
    d.set_item("bytes_per_event", s.bytes_per_event())?;
    d.set_item("compressed_events", s.compressed_events)?;
    d.set_item("data_raw_bytes", s.data_raw_bytes)?;
    d.set_item("data_stored_bytes", s.data_stored_bytes)?;
    d.set_item("compression_ratio", ratio)?;
    d.set_item(
        "duplicates_dropped",
        s.duplicates_unknown
            .is_none()
            .then_some(s.duplicates_dropped),
    )?;
    d.set_item("events_last_hour", st.last_hour)?;
    d.set_item("recent_events_per_second", st.last_hour as f64 / 3600.0)?;
    let by_type = PyDict::new(py);
    for (t, n) in &s.events_by_type {
        by_type.set_item(t, n)?;
    }
    d.set_item("events_by_type", by_type)?;
    Ok(d)
}
