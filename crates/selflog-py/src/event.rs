//! `selflog.Event`: one stored event as Python sees it.
//!
//! An `Event` holds its names as Python strings (an iterator shares one `str` per distinct
//! name among all its events) and its data as the stored JSON text, which is parsed (with
//! `json.loads`) the first time `data` is read and kept: iterating over events whose data
//! is never looked at costs no parsing.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString};
use selflog::{StoredEvent, Timestamp};

/// `json.loads`, looked up once.
pub fn json_loads<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let loads = LOADS.get_or_try_init(py, || {
        py.import("json")?.getattr("loads").map(Bound::unbind)
    })?;
    loads.bind(py).call1((text,))
}

/// A stored event: `id`, `timestamp` (float epoch seconds), `event_type`, `action`
/// (or None), `source`, `data` (the stored JSON parsed: dict, list, str, number, bool or
/// None), `data_json` (the JSON text exactly as stored, or None) and `hash` (the content
/// hash, 16 hex digits). Events are immutable; two are equal when every field is.
// The names are Python strings already: an iterator hands out the same `str` object for
// every event of one type or source instead of copying the name into each event. The
// freelist keeps the memory of recently dropped events for the next ones, which saves an
// allocation per event of a query iterated without keeping its events.
#[pyclass(module = "selflog", name = "Event", frozen, freelist = 64)]
pub struct PyEvent {
    id: u64,
    timestamp: Timestamp,
    hash: u64,
    event_type: Py<PyString>,
    action: Option<Py<PyString>>,
    source: Py<PyString>,
    /// The JSON text as stored.
    data: Option<Box<str>>,
    parsed: PyOnceLock<Py<PyAny>>,
}

/// An event's fields besides its names, as the iterator copies them out.
pub struct Fields {
    /// Its id.
    pub id: u64,
    /// When it happened.
    pub timestamp: Timestamp,
    /// The content hash stored in its frame.
    pub hash: u64,
    /// Its data's JSON text.
    pub data: Option<Box<str>>,
}

impl PyEvent {
    /// An event from its fields and its names as Python strings.
    pub fn new(
        fields: Fields,
        event_type: Py<PyString>,
        action: Option<Py<PyString>>,
        source: Py<PyString>,
    ) -> PyEvent {
        PyEvent {
            id: fields.id,
            timestamp: fields.timestamp,
            hash: fields.hash,
            event_type,
            action,
            source,
            data: fields.data,
            parsed: PyOnceLock::new(),
        }
    }

    /// An event the library returned.
    pub fn from_stored(py: Python<'_>, e: StoredEvent) -> PyEvent {
        let fields = Fields {
            id: e.id.0,
            timestamp: e.timestamp,
            hash: e.hash,
            data: e.data.map(String::into_boxed_str),
        };
        PyEvent::new(
            fields,
            PyString::new(py, &e.event_type).unbind(),
            e.action.map(|a| PyString::new(py, &a).unbind()),
            PyString::new(py, &e.source).unbind(),
        )
    }

    fn data_value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let Some(text) = &self.data else {
            return Ok(py.None().into_bound(py));
        };
        let v = self
            .parsed
            .get_or_try_init(py, || json_loads(py, text).map(Bound::unbind))?;
        Ok(v.bind(py).clone())
    }

    /// Whether every field of `self` and `other` is equal.
    fn same(&self, py: Python<'_>, other: &PyEvent) -> PyResult<bool> {
        let text_eq = |a: &Py<PyString>, b: &Py<PyString>| -> PyResult<bool> {
            Ok(a.is(b) || a.bind(py).to_cow()? == b.bind(py).to_cow()?)
        };
        let action_eq = match (&self.action, &other.action) {
            (None, None) => true,
            (Some(a), Some(b)) => text_eq(a, b)?,
            _ => false,
        };
        Ok(self.id == other.id
            && self.timestamp == other.timestamp
            && self.hash == other.hash
            && self.data == other.data
            && action_eq
            && text_eq(&self.event_type, &other.event_type)?
            && text_eq(&self.source, &other.source)?)
    }
}

#[pymethods]
impl PyEvent {
    /// The event's id: ids start at 1 and increase by one per stored event.
    #[getter]
    fn id(&self) -> u64 {
        self.id
    }

    /// When the event happened, in seconds since the epoch (microsecond precision).
    #[getter]
    fn timestamp(&self) -> f64 {
        self.timestamp.as_secs_f64()
    }

    /// What kind of event (`file_op`, `app_launch`, ...).
    #[getter]
    fn event_type(&self, py: Python<'_>) -> Py<PyString> {
        self.event_type.clone_ref(py)
    }

    /// What happened (`modified`, ...), or None.
    #[getter]
    fn action(&self, py: Python<'_>) -> Option<Py<PyString>> {
        self.action.as_ref().map(|a| a.clone_ref(py))
    }

    /// Which application or folder it came from.
    #[getter]
    fn source(&self, py: Python<'_>) -> Py<PyString> {
        self.source.clone_ref(py)
    }

    /// The event's data: its stored JSON parsed on first access (dict, list, str, int,
    /// float, bool), or None when it has none.
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.data_value(py)
    }

    /// The event's data as the JSON text stored (compact, keys in the order given), or
    /// None.
    #[getter]
    fn data_json(&self) -> Option<&str> {
        self.data.as_deref()
    }

    /// The content hash (xxh3-64 of timestamp, type, action, source and data) as 16
    /// lowercase hex digits: the value `selflog inspect get --json` prints.
    #[getter]
    fn hash(&self) -> String {
        format!("{:016x}", self.hash)
    }

    /// The event as a dict with the keys of `selflog inspect list --json`: id, timestamp,
    /// event_type, action, source, data (parsed), hash. `Store.append_many` takes it back.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("id", self.id)?;
        d.set_item("timestamp", self.timestamp.as_secs_f64())?;
        d.set_item("event_type", self.event_type.bind(py))?;
        d.set_item("action", self.action.as_ref().map(|a| a.bind(py)))?;
        d.set_item("source", self.source.bind(py))?;
        d.set_item("data", self.data_value(py)?)?;
        d.set_item("hash", self.hash())?;
        Ok(d)
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        match other.cast::<PyEvent>() {
            Ok(o) => self.same(py, o.get()),
            Err(_) => Ok(false),
        }
    }

    fn __hash__(&self) -> u64 {
        // Python reserves -1; the content hash mixed with the id never needs to be it.
        (self.hash ^ self.id.rotate_left(32)) >> 1
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let mut data = self.data.as_deref().unwrap_or("None").to_owned();
        if data.len() > 60 {
            let mut cut = 57;
            while !data.is_char_boundary(cut) {
                cut -= 1;
            }
            data.truncate(cut);
            data.push_str("...");
        }
        let action = match &self.action {
            Some(a) => format!("{:?}", a.bind(py).to_cow()?),
            None => "None".into(),
        };
        Ok(format!(
            "selflog.Event(id={}, timestamp={}, event_type={:?}, action={action}, source={:?}, data={data})",
            self.id,
            self.timestamp,
            self.event_type.bind(py).to_cow()?,
            self.source.bind(py).to_cow()?,
        ))
    }
}
