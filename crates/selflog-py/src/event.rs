//! `selflog.Event`: one stored event as Python sees it.
//!
//! An `Event` owns the fields the library returned and builds Python objects only for the
//! attributes that are read: `data` is parsed from its JSON text (with `json.loads`) the
//! first time it is read and kept, so iterating over events whose data is never looked at
//! costs no parsing.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use selflog::StoredEvent;

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
#[pyclass(module = "selflog", name = "Event", frozen)]
pub struct PyEvent {
    event: StoredEvent,
    parsed: PyOnceLock<Py<PyAny>>,
}

impl From<StoredEvent> for PyEvent {
    fn from(event: StoredEvent) -> PyEvent {
        PyEvent {
            event,
            parsed: PyOnceLock::new(),
        }
    }
}

impl PyEvent {
    fn data_value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let Some(text) = &self.event.data else {
            return Ok(py.None().into_bound(py));
        };
        let v = self
            .parsed
            .get_or_try_init(py, || json_loads(py, text).map(Bound::unbind))?;
        Ok(v.bind(py).clone())
    }
}

#[pymethods]
impl PyEvent {
    /// The event's id: ids start at 1 and increase by one per stored event.
    #[getter]
    fn id(&self) -> u64 {
        self.event.id.0
    }

    /// When the event happened, in seconds since the epoch (microsecond precision).
    #[getter]
    fn timestamp(&self) -> f64 {
        self.event.timestamp.as_secs_f64()
    }

    /// What kind of event (`file_op`, `app_launch`, ...).
    #[getter]
    fn event_type(&self) -> &str {
        &self.event.event_type
    }

    /// What happened (`modified`, ...), or None.
    #[getter]
    fn action(&self) -> Option<&str> {
        self.event.action.as_deref()
    }

    /// Which application or folder it came from.
    #[getter]
    fn source(&self) -> &str {
        &self.event.source
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
        self.event.data.as_deref()
    }

    /// The content hash (xxh3-64 of timestamp, type, action, source and data) as 16
    /// lowercase hex digits: the value `selflog inspect get --json` prints.
    #[getter]
    fn hash(&self) -> String {
        format!("{:016x}", self.event.hash)
    }

    /// The event as a dict with the keys of `selflog inspect list --json`: id, timestamp,
    /// event_type, action, source, data (parsed), hash. `Store.append_many` takes it back.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("id", self.event.id.0)?;
        d.set_item("timestamp", self.event.timestamp.as_secs_f64())?;
        d.set_item("event_type", &self.event.event_type)?;
        d.set_item("action", self.event.action.as_deref())?;
        d.set_item("source", &self.event.source)?;
        d.set_item("data", self.data_value(py)?)?;
        d.set_item("hash", self.hash())?;
        Ok(d)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyEvent>()
            .is_ok_and(|o| o.get().event == self.event)
    }

    fn __hash__(&self) -> u64 {
        // Python reserves -1; the content hash mixed with the id never needs to be it.
        (self.event.hash ^ self.event.id.0.rotate_left(32)) >> 1
    }

    fn __repr__(&self) -> String {
        let e = &self.event;
        let mut data = e.data.clone().unwrap_or_else(|| "None".into());
        if data.len() > 60 {
            let mut cut = 57;
            while !data.is_char_boundary(cut) {
                cut -= 1;
            }
            data.truncate(cut);
            data.push_str("...");
        }
        format!(
            "selflog.Event(id={}, timestamp={}, event_type={:?}, action={}, source={:?}, data={data})",
            e.id.0,
            e.timestamp,
            e.event_type,
            e.action.as_ref().map_or_else(|| "None".into(), |a| format!("{a:?}")),
            e.source,
        )
    }
}
