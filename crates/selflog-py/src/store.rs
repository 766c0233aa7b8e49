//! `selflog.Store`: an open store, shared by every Python thread that holds it.
//!
//! The library's `Store` sits behind a read-write lock: every call takes it shared with
//! the GIL released (so calls from many threads run at once, and another Python thread
//! keeps running while one waits or scans), and `close` takes it exclusively, waiting for
//! the calls in flight. A lock is only ever taken with the GIL released, so a thread
//! holding one never waits for the GIL while another holding the GIL waits for the lock.
//!
//! The process that opened a store is recorded: in a process forked from it, every call
//! fails with a clear error instead of touching locks and threads that exist only in the
//! parent, and the child's copy is never shut down (that would release the parent's writer
//! lock and join threads the child does not have).
//!
//! A writable `Store` reads its own writes: a query, replay, count, `stats` or `patterns`
//! first flushes what was appended through it, and `get` of an id it handed out waits for
//! that id to be written.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use selflog::{Config, Durability, EventId, Field, NewPattern, PatternFilter, Store};

use crate::convert::{self, Filters};
use crate::errors::{invalid_config, Fail, IntoPy as _};
use crate::event::{json_loads, PyEvent};
use crate::read::{self, EventIter};

/// An open selflog store: `Store(path, *, durability="buffered", batch_size=100,
/// batch_timeout=5.0, retention_days=30, cleanup_interval_hours=24, read_only=False)`.
///
/// Opening for writing creates the store (a directory, mode 0700) if it is missing and
/// recovers it after a crash; one process writes a store at a time (`LockedError`
/// otherwise). `read_only=True` takes no lock, changes nothing and sees what the writer,
/// in this or another process, has committed. Use it as a context manager, or call
/// `close()`; it is safe to share between threads. The GIL is released while a call
/// waits or reads.
#[pyclass(module = "selflog", name = "Store", frozen)]
pub struct PyStore {
    inner: RwLock<Option<Store>>,
    path: String,
    pid: u32,
    config: Config,
    read_only: bool,
    /// The highest id `append` or `append_many` returned.
    appended_max: AtomicU64,
    /// Counts appends and recorded patterns; `flushed` is the count a completed flush
    /// covered. A read flushes when it sees more written than flushed: a flag cleared by
    /// one thread's read would let another thread read before the flush that covers its
    /// own append has finished.
    written: AtomicU64,
    flushed: AtomicU64,
}

impl Drop for PyStore {
    fn drop(&mut self) {
        if crate::fork::always_forked_from(self.pid).is_some() {
            // A forked child's copy: its threads and lock belong to the parent.
            if let Some(store) = self.inner.get_mut().take() {
                std::mem::forget(store);
            }
        }
    }
}

impl PyStore {
    /// Fails when called from a process forked from the one that opened the store.
    fn check_process(&self) -> Result<(), Fail> {
        match crate::fork::forked_from(self.pid) {
            None => Ok(()),
            Some(current) => Err(Fail::Forked {
                owner: self.pid,
                current,
            }),
        }
    }

    /// Runs `f` on the open store with the GIL released.
    pub(crate) fn run<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&Store) -> Result<T, Fail> + Send,
    ) -> PyResult<T> {
        self.check_process().py(py)?;
        py.detach(|| {
            let guard = self.inner.read();
            let store = guard.as_ref().ok_or(Fail::Closed)?;
            f(store)
        })
        .py(py)
    }

    /// Runs the read `f` after flushing what was appended through this store, so that a
    /// writer sees its own events. A failed flush (a full disk) does not stop the read:
    /// reads work on what is committed.
    fn run_read<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&Store) -> Result<T, Fail> + Send,
    ) -> PyResult<T> {
        self.run(py, |store| {
            self.flush_own(store);
            f(store)
        })
    }

    fn flush_own(&self, store: &Store) {
        let want = self.written.load(Ordering::Acquire);
        if !self.read_only && want > self.flushed.load(Ordering::Acquire) && store.flush().is_ok() {
            self.flushed.fetch_max(want, Ordering::AcqRel);
        }
    }

    /// Notes an append or a recorded pattern, for [`PyStore::flush_own`].
    pub(crate) fn wrote(&self) {
        self.written.fetch_add(1, Ordering::AcqRel);
    }

    /// Runs `f` on the open store on a thread that does not hold the GIL (a helper
    /// thread of `append_many`; the caller checked the process).
    pub(crate) fn run_here<T>(&self, f: impl FnOnce(&Store) -> Result<T, Fail>) -> Result<T, Fail> {
        let guard = self.inner.read();
        f(guard.as_ref().ok_or(Fail::Closed)?)
    }

    /// The configuration the store was opened with.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// Records that ids up to `max_id` were handed out (for reads of one's own writes).
    pub(crate) fn appended(&self, max_id: u64) {
        self.appended_max.fetch_max(max_id, Ordering::AcqRel);
        self.wrote();
    }
}

fn config(
    py: Python<'_>,
    durability: &str,
    batch_size: usize,
    batch_timeout: f64,
    retention_days: Option<f64>,
    cleanup_interval_hours: f64,
) -> PyResult<Config> {
    let mut c = Config::default();
    c.durability = match durability {
        "buffered" => Durability::Buffered,
        "sync" => Durability::Sync,
        other => {
            return Err(invalid_config(
                py,
                format!(
                    "invalid configuration: durability {other:?} is not \"buffered\" or \"sync\""
                ),
            ))
        }
    };
    let secs = |what: &str, v: f64| {
        Duration::try_from_secs_f64(v).map_err(|_| {
            invalid_config(
                py,
                format!(
                    "invalid configuration: {what} {v} is not a non-negative number of seconds"
                ),
            )
        })
    };
    c.batch_events = batch_size;
    c.queue_events_max = c.queue_events_max.max(batch_size);
    c.batch_timeout = secs("batch_timeout", batch_timeout)?;
    c.retention_age = match retention_days {
        None => None,
        Some(d) => Some(secs("retention_days", d * 86_400.0)?),
    };
    c.cleanup_interval = secs("cleanup_interval_hours", cleanup_interval_hours * 3600.0)?;
    c.check().map_err(|e| Fail::Lib(e).into_py_err(py))?;
    Ok(c)
}

#[pymethods]
impl PyStore {
    #[new]
    #[pyo3(signature = (path, *, durability = "buffered".to_owned(), batch_size = 100, batch_timeout = 5.0,
                        retention_days = Some(30.0), cleanup_interval_hours = 24.0, read_only = false))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        durability: String,
        batch_size: usize,
        batch_timeout: f64,
        retention_days: Option<f64>,
        cleanup_interval_hours: f64,
        read_only: bool,
    ) -> PyResult<PyStore> {
        let config = config(
            py,
            &durability,
            batch_size,
            batch_timeout,
            retention_days,
            cleanup_interval_hours,
        )?;
        let open_config = config.clone();
        let dir = path.clone();
        let store = py
            .detach(move || {
                if read_only {
                    Store::open_read_only(&dir)
                } else {
                    Store::open(&dir, open_config)
                }
            })
            .map_err(|e| Fail::Lib(e).into_py_err(py))?;
        Ok(PyStore {
            inner: RwLock::new(Some(store)),
            path: path.display().to_string(),
            pid: std::process::id(),
            config,
            read_only,
            appended_max: AtomicU64::new(0),
            written: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
        })
    }

    /// The store's directory, as given.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// Whether the store was opened with `read_only=True`.
    #[getter]
    fn read_only(&self) -> bool {
        self.read_only
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        py.detach(|| self.inner.read().is_none())
    }

    fn __enter__(slf: Py<PyStore>) -> Py<PyStore> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "selflog.Store({:?}{})",
            self.path,
            if self.read_only {
                ", read_only=True"
            } else {
                ""
            }
        )
    }

    /// Appends one event and returns its id at once (the original's id when the event is
    /// an exact duplicate of a recent one: same timestamp, type, action, source and data).
    /// `timestamp` is float epoch seconds (or a datetime, or an RFC 3339 string), default
    /// now; `data` is any JSON value (dict, list, str, number, bool) or None. Waits only
    /// when the write queue is full, never on disk: `flush()` makes it durable.
    /// Raises InvalidEventError for a bad field, a timestamp more than a day ahead or data
    /// over 4 MiB; DiskFullError while the disk is full.
    #[pyo3(signature = (event_type, source, action = None, data = None, timestamp = None))]
    fn append(
        &self,
        py: Python<'_>,
        event_type: &Bound<'_, PyAny>,
        source: &Bound<'_, PyAny>,
        action: Option<&Bound<'_, PyAny>>,
        data: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let event = convert::event(py, event_type, source, action, data, timestamp)?;
        let id = self.run(py, move |s| Ok(s.append(event)?.id().0))?;
        self.appended(id);
        Ok(id)
    }

    /// Appends every event of an iterable of dicts with the JSON Lines fields
    /// (`timestamp`, `event_type`, `source`, `action`, `data`; other keys such as `id` and
    /// `hash` are ignored, so `Event.to_dict()` output is accepted) and returns their ids
    /// in order. The iterable is read in chunks, so its length is not bounded by memory.
    /// A bad event raises InvalidEventError naming its index; the events before it are
    /// stored (their ids are the exception's `ids` attribute), none after it.
    fn append_many(&self, py: Python<'_>, events: &Bound<'_, PyAny>) -> PyResult<Vec<u64>> {
        crate::ingest::append_many(py, self, events)
    }

    /// The durability barrier: returns once every event appended before it is committed
    /// (durability "buffered": survives the process being killed) or synced ("sync":
    /// survives a power loss). Raises DiskFullError while the disk is full.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.run(py, |s| {
            let want = self.written.load(Ordering::Acquire);
            s.flush()?;
            self.flushed.fetch_max(want, Ordering::AcqRel);
            Ok(())
        })
    }

    /// The event with this id, or None. An id this store's `append` returned is waited
    /// for (flushed) when it is not yet written.
    fn get(&self, py: Python<'_>, id: i64) -> PyResult<Option<PyEvent>> {
        let Ok(id) = u64::try_from(id) else {
            return Ok(None);
        };
        let found = self.run(py, |s| {
            let mut e = s.get(EventId(id))?;
            if e.is_none() && !self.read_only && id <= self.appended_max.load(Ordering::Acquire) {
                self.flush_own(s);
                s.flush()?;
                e = s.get(EventId(id))?;
            }
            Ok(e)
        })?;
        Ok(found.map(|e| PyEvent::from_stored(py, e)))
    }

    /// Events matching every filter given, newest first (`oldest_first=True`: oldest
    /// first), ties by id: the order and matches of `selflog inspect list` (and of
    /// `selflog inspect search TEXT` with `text`). `since`/`until` are epoch seconds
    /// (`until` exclusive); `types` and `sources` a str or a list of them; `action` exact;
    /// `text` an ASCII case-insensitive substring of type, action, source or data.
    /// Returns a lazy iterator that reads in small chunks with the GIL released.
    #[pyo3(signature = (since = None, until = None, types = None, sources = None, action = None,
                        text = None, limit = None, oldest_first = false))]
    fn query(
        &self,
        py: Python<'_>,
        since: Option<&Bound<'_, PyAny>>,
        until: Option<&Bound<'_, PyAny>>,
        types: Option<&Bound<'_, PyAny>>,
        sources: Option<&Bound<'_, PyAny>>,
        action: Option<&Bound<'_, PyAny>>,
        text: Option<&Bound<'_, PyAny>>,
        limit: Option<u64>,
        oldest_first: bool,
    ) -> PyResult<EventIter> {
        let filters = Filters::new(py, since, until, types, sources, action, text)?;
        let events = self.run_read(py, |s| read::query(s, &filters, limit, oldest_first))?;
        Ok(EventIter::query(events, self.pid))
    }

    /// How many events match each value of `field` ("event_type", "source" or "action";
    /// events without an action are not counted for "action"), as a dict, among the
    /// events matching the same filters as `query`.
    #[pyo3(signature = (field, *, since = None, until = None, types = None, sources = None,
                        action = None, text = None))]
    fn count_by<'py>(
        &self,
        py: Python<'py>,
        field: String,
        since: Option<&Bound<'_, PyAny>>,
        until: Option<&Bound<'_, PyAny>>,
        types: Option<&Bound<'_, PyAny>>,
        sources: Option<&Bound<'_, PyAny>>,
        action: Option<&Bound<'_, PyAny>>,
        text: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let field = match field.as_str() {
            "event_type" => Field::EventType,
            "source" => Field::Source,
            "action" => Field::Action,
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "count_by: field {other:?} is not \"event_type\", \"source\" or \"action\""
                )))
            }
        };
        let filters = Filters::new(py, since, until, types, sources, action, text)?;
        let counts = self.run_read(py, |s| Ok(filters.apply(s.query()).counts_by(field)?))?;
        let d = PyDict::new(py);
        for (k, n) in counts {
            d.set_item(k, n)?;
        }
        Ok(d)
    }

    /// How many events match the same filters as `query`.
    #[pyo3(signature = (*, since = None, until = None, types = None, sources = None,
                        action = None, text = None))]
    fn count(
        &self,
        py: Python<'_>,
        since: Option<&Bound<'_, PyAny>>,
        until: Option<&Bound<'_, PyAny>>,
        types: Option<&Bound<'_, PyAny>>,
        sources: Option<&Bound<'_, PyAny>>,
        action: Option<&Bound<'_, PyAny>>,
        text: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let filters = Filters::new(py, since, until, types, sources, action, text)?;
        self.run_read(py, |s| Ok(filters.apply(s.query()).count()?))
    }

    /// Events in id order, like `selflog replay`: from `from_id` (default 1), or after
    /// the position of the durable cursor named `cursor` (every event when it was never
    /// committed); with `since`, only events timestamped at or after it. A lazy iterator.
    #[pyo3(signature = (from_id = None, *, cursor = None, since = None))]
    fn replay(
        &self,
        py: Python<'_>,
        from_id: Option<u64>,
        cursor: Option<String>,
        since: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<EventIter> {
        if from_id.is_some() && cursor.is_some() {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "replay: give from_id or cursor, not both",
            ));
        }
        let since = convert::opt_time(py, since, "since")?;
        let scan = self.run_read(py, |s| {
            let from = match &cursor {
                Some(name) => s.cursor(name)?.position()?.map_or(1, |p| p.0 + 1),
                None => from_id.unwrap_or(1),
            };
            Ok(s.scan_from(EventId(from))?)
        })?;
        Ok(EventIter::scan(scan, since, self.pid))
    }

    /// The durable named cursor `name` (1 to 64 ASCII letters, digits, '-', '_' or '.'):
    /// `cursor.position` is the id of the last event its consumer processed (0 before the
    /// first commit), `cursor.commit(id)` records it durably. Works on read-only stores.
    fn cursor(slf: &Bound<'_, PyStore>, name: String) -> PyResult<PyCursor> {
        let py = slf.py();
        let store = slf.get();
        store.run(py, |s| s.cursor(&name).map(|_| ()).map_err(Fail::Lib))?;
        Ok(PyCursor {
            store: slf.clone().unbind(),
            name,
        })
    }

    /// Totals and ranges, as a dict with the keys of `selflog inspect stats --json`:
    /// store, total_events, first_timestamp, last_timestamp, first_id, last_id, segments,
    /// disk_bytes, log_bytes, bytes_per_event, sealed_events, sealed_bytes,
    /// sealed_bytes_per_event, sealed_segments, compacted_segments, active_events,
    /// active_bytes, active_bytes_per_event, compressed_events, data_raw_bytes,
    /// data_stored_bytes, compression_ratio, duplicates_dropped, events_last_hour,
    /// recent_events_per_second, events_by_type.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.run_read(py, read::stats)?;
        read::stats_dict(py, &self.path, &stats)
    }

    /// Records a learner's finding (the old `patterns` table) and returns its id.
    /// `pattern_data` is any JSON value; `event_id` the event it is about; `embryo_id`
    /// the learner that found it; `created` its time (default now).
    #[pyo3(signature = (pattern_type, confidence, pattern_data, event_id = None, embryo_id = None, created = None))]
    fn record_pattern(
        &self,
        py: Python<'_>,
        pattern_type: &Bound<'_, PyAny>,
        confidence: f64,
        pattern_data: &Bound<'_, PyAny>,
        event_id: Option<u64>,
        embryo_id: Option<&Bound<'_, PyAny>>,
        created: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let pattern_type = convert::name(py, pattern_type, "pattern_type")?;
        let data = convert::json_text(py, Some(pattern_data), "pattern_data")?
            .unwrap_or_else(|| "null".to_owned());
        let mut p = NewPattern::new(pattern_type, confidence, data);
        if let Some(id) = event_id {
            p = p.about(EventId(id));
        }
        if let Some(e) = convert::opt_name(py, embryo_id, "embryo_id")? {
            p = p.found_by(e);
        }
        if let Some(t) = convert::opt_time(py, created, "created")? {
            p = p.at(t);
        }
        let id = self.run(py, |s| Ok(s.record_pattern(&p)?))?;
        self.wrote();
        Ok(id)
    }

    /// Recorded patterns matching every filter given, oldest first, as dicts with the
    /// keys of `selflog inspect patterns --json`: id, event_id, pattern_type, confidence,
    /// pattern_data (parsed), embryo_id, created (epoch seconds).
    #[pyo3(signature = (event_id = None, pattern_type = None, embryo_id = None, min_confidence = None))]
    fn patterns<'py>(
        &self,
        py: Python<'py>,
        event_id: Option<u64>,
        pattern_type: Option<String>,
        embryo_id: Option<String>,
        min_confidence: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let filter = PatternFilter {
            event_id: event_id.map(EventId),
            pattern_type,
            embryo_id,
            min_confidence,
            ..PatternFilter::default()
        };
        let found = self.run_read(py, |s| Ok(s.patterns(&filter)?))?;
        let out = PyList::empty(py);
        for p in found {
            let d = PyDict::new(py);
            d.set_item("id", p.id)?;
            d.set_item("event_id", p.event_id.map(|i| i.0))?;
            d.set_item("pattern_type", p.pattern_type)?;
            d.set_item("confidence", p.confidence)?;
            d.set_item("pattern_data", json_loads(py, &p.pattern_data)?)?;
            d.set_item("embryo_id", p.embryo_id)?;
            d.set_item("created", p.created.as_secs_f64())?;
            out.append(d)?;
        }
        Ok(out)
    }

    /// Writes everything appended, syncs it, stops the background threads and releases
    /// the writer lock; waits for calls in flight in other threads. Closing twice does
    /// nothing; any other call after it raises selflog.Error.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(current) = crate::fork::always_forked_from(self.pid) {
            return Err(Fail::Forked {
                owner: self.pid,
                current,
            }
            .into_py_err(py));
        }
        py.detach(|| match self.inner.write().take() {
            Some(store) => store.close().map_err(Fail::Lib),
            None => Ok(()),
        })
        .py(py)
    }
}

/// A durable named consumer cursor (the old `processed` flag); see `Store.cursor`.
#[pyclass(module = "selflog", name = "Cursor", frozen)]
pub struct PyCursor {
    store: Py<PyStore>,
    name: String,
}

#[pymethods]
impl PyCursor {
    /// The cursor's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The id of the last event processed: 0 before the first commit. Raises
    /// CorruptError when the cursor's file is damaged (`commit` replaces it).
    #[getter]
    fn position(&self, py: Python<'_>) -> PyResult<u64> {
        let name = &self.name;
        self.store
            .get()
            .run(py, |s| Ok(s.cursor(name)?.position()?.map_or(0, |p| p.0)))
    }

    /// Records durably and atomically that every event up to `id` is processed (moving
    /// back is allowed, to reprocess). An id this store appended is first written; an id
    /// past the last event raises InvalidEventError.
    fn commit(&self, py: Python<'_>, id: u64) -> PyResult<()> {
        let name = &self.name;
        let owner = self.store.get();
        owner.run(py, |s| {
            let c = s.cursor(name)?;
            match c.commit(EventId(id)) {
                Err(selflog::Error::InvalidEvent {
                    field: "cursor", ..
                }) if !s.is_read_only() && id <= owner.appended_max.load(Ordering::Acquire) => {
                    s.flush()?;
                    Ok(c.commit(EventId(id))?)
                }
                r => Ok(r?),
            }
        })
    }

    fn __repr__(&self) -> String {
        format!("selflog.Cursor({:?})", self.name)
    }
}
