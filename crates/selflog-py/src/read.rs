//! Reading: the lazy iterator `query` and `replay` return, and `stats`.
//!
//! An [`EventIter`] owns the library's streaming iterator (a query's [`Events`] or a
//! replay's [`Scan`]; neither borrows the store) and reads it in chunks of at most
//! [`CHUNK_EVENTS`] events or [`CHUNK_DATA_LEN`] bytes of data with the GIL released, then
//! hands the chunk's events out one by one: memory stays bounded whatever the number of
//! matches, and a scan that finds nothing for a long while lets other Python threads run.
//!
//! A chunk borrows each event from the library and copies its data into one buffer; type,
//! source and action become indexes into a table of the iterator's distinct names (at
//! most [`NAMES_MAX`]), each turned into a Python string once. An event handed out then
//! costs its object and one copy of its data, not five allocations.

use std::collections::VecDeque;

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use rustc_hash::FxHashMap;
use selflog::{EventRef, Events, Order, Scan, Store, StoreStats, Timestamp};

use crate::convert::Filters;
use crate::errors::{Fail, IntoPy as _};
use crate::event::{Fields, PyEvent};

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
    Scan(Box<Scan>, Option<Timestamp>),
}

/// Most distinct names (types, sources, actions) an iterator keeps as Python strings. A
/// store has a handful of types and tens of sources; past this many, further names are
/// copied into each event instead, so that memory stays bounded for any store.
pub const NAMES_MAX: usize = 4096;

/// A name of an event read ahead: an index into the iterator's [`Names`], or (once the
/// table is full) a range of the chunk's text.
#[derive(Clone, Copy)]
enum Name {
    Known(u32),
    Text(u32, u32),
}

/// One event read ahead, its variable-length fields kept in the chunk's text.
struct Row {
    id: u64,
    timestamp: Timestamp,
    hash: u64,
    event_type: Name,
    action: Option<Name>,
    source: Name,
    /// A range of the chunk's text.
    data: Option<(u32, u32)>,
}

/// The distinct names met so far, each with its Python string once one was needed.
#[derive(Default)]
struct Names {
    index: FxHashMap<Box<str>, u32>,
    python: Vec<Option<Py<PyString>>>,
    /// The names by index, for building their Python strings.
    text: Vec<Box<str>>,
}

impl Names {
    /// `name` as a [`Name`]: its index, added if new and there is room, else its text
    /// appended to `chunk_text`.
    fn name(&mut self, name: &str, chunk_text: &mut String) -> Name {
        if let Some(&i) = self.index.get(name) {
            return Name::Known(i);
        }
        if self.text.len() < NAMES_MAX {
            let i = self.text.len() as u32;
            self.index.insert(name.into(), i);
            self.text.push(name.into());
            self.python.push(None);
            return Name::Known(i);
        }
        let (start, end) = push_text(chunk_text, name);
        Name::Text(start, end)
    }

    /// The Python string of `name`, made the first time it is needed.
    fn python(&mut self, py: Python<'_>, name: Name, chunk_text: &str) -> Py<PyString> {
        match name {
            Name::Known(i) => {
                let i = i as usize;
                self.python[i]
                    .get_or_insert_with(|| PyString::new(py, &self.text[i]).unbind())
                    .clone_ref(py)
            }
            Name::Text(start, end) => {
                PyString::new(py, &chunk_text[start as usize..end as usize]).unbind()
            }
        }
    }
}

/// Appends `s` to `text`, returning its range. A chunk's text stays far below 4 GiB: at
/// most [`CHUNK_DATA_LEN`] of data plus one event and its names.
fn push_text(text: &mut String, s: &str) -> (u32, u32) {
    let start = text.len() as u32;
    text.push_str(s);
    (start, text.len() as u32)
}

/// Copies the borrowed event `e` into `ready` and `text`.
fn push_row(ready: &mut VecDeque<Row>, text: &mut String, names: &mut Names, e: EventRef<'_>) {
    let row = Row {
        id: e.id.0,
        timestamp: e.timestamp,
        hash: e.hash,
        event_type: names.name(e.event_type, text),
        action: e.action.map(|a| names.name(a, text)),
        source: names.name(e.source, text),
        data: e.data.map(|d| push_text(text, d)),
    };
    ready.push_back(row);
}

struct State {
    source: Option<Source>,
    /// The events read ahead, oldest read first.
    ready: VecDeque<Row>,
    /// The data and overflowing names of the events in `ready`: one buffer per chunk,
    /// emptied when the next chunk is read.
    text: String,
    names: Names,
    /// An error met while reading ahead, raised once the events before it are handed out.
    failed: Option<selflog::Error>,
}

impl State {
    /// Reads the next chunk into `ready`, borrowing each event from the library and
    /// copying it into the chunk's text.
    fn fill(&mut self) {
        let State {
            source: Some(source),
            ready,
            text,
            names,
            failed,
        } = self
        else {
            return;
        };
        // Rows point into the text: it is reused only once every row was handed out.
        debug_assert!(
            ready.is_empty(),
            "a chunk is read only when the last is used up"
        );
        text.clear();
        let mut end = None;
        while ready.len() < CHUNK_EVENTS && text.len() < CHUNK_DATA_LEN {
            let next = match source {
                Source::Query(events) => events
                    .next_ref()
                    .map(|r| r.map(|e| push_row(ready, text, names, e))),
                Source::Scan(scan, since) => loop {
                    match scan.next_ref() {
                        Some(Ok(e)) if since.is_some_and(|t| e.timestamp < t) => {}
                        other => break other.map(|r| r.map(|e| push_row(ready, text, names, e))),
                    }
                },
            };
            match next {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    end = Some(Some(e));
                    break;
                }
                None => {
                    end = Some(None);
                    break;
                }
            }
        }
        if let Some(error) = end {
            *failed = error;
            self.source = None;
        }
    }

    /// The Python event of `row`, which was just taken from `ready`. Builds no Python
    /// object but strings (which cannot start the garbage collector, and so cannot run
    /// other Python code while the iterator's lock is held).
    fn event(&mut self, py: Python<'_>, row: &Row) -> PyEvent {
        let text = self.text.as_str();
        let data = row
            .data
            .map(|(start, end)| Box::from(&text[start as usize..end as usize]));
        let fields = Fields {
            id: row.id,
            timestamp: row.timestamp,
            hash: row.hash,
            data,
        };
        PyEvent::new(
            fields,
            self.names.python(py, row.event_type, text),
            row.action.map(|a| self.names.python(py, a, text)),
            self.names.python(py, row.source, text),
        )
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
                text: String::new(),
                names: Names::default(),
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
        EventIter::new(Source::Scan(Box::new(scan), since), pid)
    }

    /// The next event already read, if the lock is free; the lock is only tried, never
    /// waited for, while the GIL is held.
    fn ready(&self, py: Python<'_>) -> Option<PyEvent> {
        let mut st = self.state.try_lock()?;
        let row = st.ready.pop_front()?;
        Some(st.event(py, &row))
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
        loop {
            // The common case, an event already read, without releasing the GIL.
            if let Some(e) = self.ready(py) {
                return Ok(Some(e));
            }
            // Before reading a chunk: the process id itself, once per chunk.
            if let Some(e) = forked(crate::fork::always_forked_from) {
                return Err(e);
            }
            // Reads a chunk with the GIL released. Another thread iterating the same
            // iterator may take its events first; then the loop reads the next one.
            let more = py.detach(|| {
                let mut st = self.state.lock();
                if st.ready.is_empty() {
                    st.fill();
                }
                if st.ready.is_empty() {
                    st.failed.take().map_or(Ok(false), |e| Err(Fail::Lib(e)))
                } else {
                    Ok(true)
                }
            });
            if !more.py(py)? {
                return Ok(None);
            }
        }
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
    d.set_item("sealed_events", s.sealed_events)?;
    d.set_item("sealed_bytes", s.sealed_bytes)?;
    d.set_item("sealed_bytes_per_event", s.sealed_bytes_per_event())?;
    d.set_item("sealed_segments", s.sealed_segments)?;
    d.set_item("compacted_segments", s.compacted_segments)?;
    d.set_item("active_events", s.active_events)?;
    d.set_item("active_bytes", s.active_bytes)?;
    d.set_item("active_bytes_per_event", s.active_bytes_per_event())?;
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
