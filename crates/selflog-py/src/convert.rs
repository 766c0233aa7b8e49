//! Python arguments to the library's values: times, names, event data, whole events, and
//! the filters `query`, `count_by` and `count` share.
//!
//! Every conversion that can fail says which field was wrong and why, as an
//! `InvalidEventError` (a `ValueError`), before anything reaches the store. Nothing here
//! releases the GIL: these functions read Python objects.

use std::cell::RefCell;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyInt, PyString};
use selflog::{Event, Query, Timestamp};
use serde_json::value::RawValue;

use crate::errors::invalid;
use crate::json;

/// A time argument: float or int epoch seconds, an RFC 3339 string
/// (`2024-11-24T15:00:00Z`), or an object with a `timestamp()` method (a `datetime`).
pub fn time(py: Python<'_>, v: &Bound<'_, PyAny>, field: &str) -> PyResult<Timestamp> {
    let secs = if v.cast::<PyFloat>().is_ok() || v.cast::<PyInt>().is_ok() {
        v.extract::<f64>()
            .map_err(|e| invalid(py, format!("invalid event: field `{field}` {e}")))?
    } else if let Ok(s) = v.cast::<PyString>() {
        let text = s.to_cow()?;
        return selflog::jsonl::parse_time_text(&text).ok_or_else(|| {
            invalid(
                py,
                format!(
                    "invalid event: field `{field}` {text:?} is not an RFC 3339 time such as 2024-11-24T15:00:00Z; \
                     pass epoch seconds as a float, or a datetime"
                ),
            )
        });
    } else if v.hasattr("timestamp")? {
        v.call_method0("timestamp")?.extract::<f64>()?
    } else {
        let type_name = v.get_type().name()?;
        return Err(invalid(
            py,
            format!(
                "invalid event: field `{field}` is a {type_name}: pass epoch seconds (float), an RFC 3339 string or a datetime"
            ),
        ));
    };
    Timestamp::from_secs_f64(secs).ok_or_else(|| {
        invalid(
            py,
            format!("invalid event: field `{field}` {secs} is not a time (NaN, infinite or out of range)"),
        )
    })
}

/// An optional time argument: `None` stays `None`.
pub fn opt_time(
    py: Python<'_>,
    v: Option<&Bound<'_, PyAny>>,
    field: &str,
) -> PyResult<Option<Timestamp>> {
    match v {
        Some(v) if !v.is_none() => time(py, v, field).map(Some),
        _ => Ok(None),
    }
}

/// A name argument (`event_type`, `source`, `action`, ...): a `str` that UTF-8 can hold.
pub fn name(py: Python<'_>, v: &Bound<'_, PyAny>, field: &str) -> PyResult<String> {
    let Ok(s) = v.cast::<PyString>() else {
        let type_name = v.get_type().name()?;
        return Err(invalid(
            py,
            format!("invalid event: field `{field}` must be a str, not {type_name}"),
        ));
    };
    s.to_cow().map(std::borrow::Cow::into_owned).map_err(|_| {
        invalid(
            py,
            format!(
                "invalid event: field `{field}` holds a lone surrogate, which UTF-8 cannot hold"
            ),
        )
    })
}

/// An optional name: `None` stays `None`.
pub fn opt_name(
    py: Python<'_>,
    v: Option<&Bound<'_, PyAny>>,
    field: &str,
) -> PyResult<Option<String>> {
    match v {
        Some(v) if !v.is_none() => name(py, v, field).map(Some),
        _ => Ok(None),
    }
}

/// Capacity the reused JSON buffer keeps between values; one grown past it by a large
/// value is given back.
const SCRATCH_KEPT_LEN: usize = 64 << 10;

thread_local! {
    /// Where JSON text is written before being copied out at its exact length: one
    /// allocation per value, never grown.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A value as JSON text for `field`; `None` is no data at all.
pub fn json_text(
    py: Python<'_>,
    v: Option<&Bound<'_, PyAny>>,
    field: &str,
) -> PyResult<Option<String>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    let write = |out: &mut Vec<u8>| -> PyResult<String> {
        out.clear();
        let text = json::write_value(v, out)
            .map_err(|e| invalid(py, e.message(field)))
            .and_then(|()| {
                // Python's UTF-8 and ASCII punctuation: always UTF-8.
                std::str::from_utf8(out).map(str::to_owned).map_err(|e| {
                    invalid(
                        py,
                        format!(
                            "invalid event: field `{field}` produced text that is not UTF-8: {e}"
                        ),
                    )
                })
            });
        if out.capacity() > SCRATCH_KEPT_LEN {
            *out = Vec::new();
        }
        text
    };
    // Python code that the writer calls (an int subclass's `__index__`) may append from
    // within: that inner call finds the buffer taken and uses its own.
    SCRATCH
        .with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut out) => write(&mut out),
            Err(_) => write(&mut Vec::new()),
        })
        .map(Some)
}

/// An event from its fields as Python values; `timestamp` `None` means now.
pub fn event(
    py: Python<'_>,
    event_type: &Bound<'_, PyAny>,
    source: &Bound<'_, PyAny>,
    action: Option<&Bound<'_, PyAny>>,
    data: Option<&Bound<'_, PyAny>>,
    timestamp: Option<&Bound<'_, PyAny>>,
) -> PyResult<Event> {
    let timestamp = opt_time(py, timestamp, "timestamp")?.unwrap_or_else(Timestamp::now);
    let event_type = name(py, event_type, "event_type")?;
    let source = name(py, source, "source")?;
    let action = opt_name(py, action, "action")?;
    // The data text checked (a `RawValue` demands it) and kept without a copy.
    let data = json_text(py, data, "data")?
        .map(|text| {
            RawValue::from_string(text).map_err(|e| {
                invalid(
                    py,
                    format!("invalid event: field `data` is not valid JSON: {e}"),
                )
            })
        })
        .transpose()?;
    Ok(Event {
        timestamp,
        event_type,
        action,
        source,
        data,
    })
}

/// The fields of a run of events converted from Python for `append_many`: their texts
/// side by side in one buffer, each event's fields as ranges of it. Converting allocates
/// nothing per event; the thread that appends makes (and frees) each event's strings,
/// which glibc's allocator does much faster than freeing memory another thread allocated.
#[derive(Default)]
pub struct Batch {
    text: Vec<u8>,
    rows: Vec<Row>,
}

/// One event of a [`Batch`]: ranges of its text.
struct Row {
    timestamp: Timestamp,
    event_type: (usize, usize),
    source: (usize, usize),
    action: Option<(usize, usize)>,
    data: Option<(usize, usize)>,
}

impl Batch {
    /// An empty batch with room for `events` events and `text_len` bytes of text.
    pub fn with_capacity(events: usize, text_len: usize) -> Batch {
        Batch {
            text: Vec::with_capacity(text_len),
            rows: Vec::with_capacity(events),
        }
    }

    /// How many events it holds.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Bytes of text it holds.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// Adds the event of a mapping with the JSON Lines fields (`timestamp`,
    /// `event_type`, `source`, `action`, `data`); other keys (an export's `id` and
    /// `hash`) are ignored, so `Event.to_dict()` output can be appended again. An event
    /// refused leaves the batch as it was.
    pub fn push_dict<'py>(&mut self, py: Python<'py>, v: &Bound<'py, PyAny>) -> PyResult<()> {
        let start = self.text.len();
        let pushed = self.push_dict_fields(py, v);
        if pushed.is_err() {
            self.text.truncate(start);
        }
        pushed
    }

    fn push_dict_fields<'py>(&mut self, py: Python<'py>, v: &Bound<'py, PyAny>) -> PyResult<()> {
        let Ok(d) = v.cast::<PyDict>() else {
            let type_name = v.get_type().name()?;
            return Err(invalid(
                py,
                format!(
                    "invalid event: a {type_name}, not a dict with the fields timestamp, event_type, source, action, data"
                ),
            ));
        };
        // Interned keys: their hashes are computed once, not per event.
        let required = |key: &Bound<'py, PyString>| -> PyResult<Bound<'py, PyAny>> {
            d.get_item(key)?.ok_or_else(|| {
                invalid(py, format!("invalid event: missing required field `{key}`"))
            })
        };
        let event_type = required(pyo3::intern!(py, "event_type"))?;
        let source = required(pyo3::intern!(py, "source"))?;
        let action = d.get_item(pyo3::intern!(py, "action"))?;
        let data = d.get_item(pyo3::intern!(py, "data"))?;
        let timestamp = d.get_item(pyo3::intern!(py, "timestamp"))?;
        // The fields in the order `event` converts them, so that the same field is
        // reported when several are wrong.
        let timestamp =
            opt_time(py, timestamp.as_ref(), "timestamp")?.unwrap_or_else(Timestamp::now);
        let event_type = self.push_name(py, &event_type, "event_type")?;
        let source = self.push_name(py, &source, "source")?;
        let action = match action.filter(|a| !a.is_none()) {
            Some(a) => Some(self.push_name(py, &a, "action")?),
            None => None,
        };
        let data = match data.filter(|v| !v.is_none()) {
            Some(v) => {
                let start = self.text.len();
                json::write_value(&v, &mut self.text)
                    .map_err(|e| invalid(py, e.message("data")))?;
                Some((start, self.text.len()))
            }
            None => None,
        };
        self.rows.push(Row {
            timestamp,
            event_type,
            source,
            action,
            data,
        });
        Ok(())
    }

    /// Appends the name `v` (see [`name`]) to the text.
    fn push_name(
        &mut self,
        py: Python<'_>,
        v: &Bound<'_, PyAny>,
        field: &str,
    ) -> PyResult<(usize, usize)> {
        let Ok(s) = v.cast::<PyString>() else {
            let type_name = v.get_type().name()?;
            return Err(invalid(
                py,
                format!("invalid event: field `{field}` must be a str, not {type_name}"),
            ));
        };
        let bytes = s.encode_utf8().map_err(|_| {
            invalid(
                py,
                format!(
                    "invalid event: field `{field}` holds a lone surrogate, which UTF-8 cannot hold"
                ),
            )
        })?;
        let start = self.text.len();
        self.text.extend_from_slice(bytes.as_bytes());
        Ok((start, self.text.len()))
    }

    /// The events, in order, each built when it is reached: the strings of its fields
    /// copied out of the text, its data text checked by the JSON parser.
    pub fn events(&self) -> impl Iterator<Item = selflog::Result<Event>> + '_ {
        self.rows.iter().map(|row| self.event(row))
    }

    fn event(&self, row: &Row) -> selflog::Result<Event> {
        let text = |field: &'static str, (start, end): (usize, usize)| {
            // Python's UTF-8 and ASCII punctuation: always UTF-8.
            std::str::from_utf8(&self.text[start..end])
                .map(str::to_owned)
                .map_err(|e| selflog::Error::InvalidEvent {
                    field,
                    reason: format!("is not UTF-8: {e}"),
                })
        };
        let data = match row.data {
            Some(range) => Some(RawValue::from_string(text("data", range)?).map_err(|e| {
                selflog::Error::InvalidEvent {
                    field: "data",
                    reason: format!("is not valid JSON: {e}"),
                }
            })?),
            None => None,
        };
        Ok(Event {
            timestamp: row.timestamp,
            event_type: text("event_type", row.event_type)?,
            action: row.action.map(|a| text("action", a)).transpose()?,
            source: text("source", row.source)?,
            data,
        })
    }
}

/// The filters of `query`, `count_by` and `count`, converted while the GIL is held and
/// applied to a library [`Query`] after it is released.
#[derive(Default, Clone)]
pub struct Filters {
    /// Timestamp at or after.
    pub since: Option<Timestamp>,
    /// Timestamp before.
    pub until: Option<Timestamp>,
    /// Any of these types.
    pub types: Vec<String>,
    /// Any of these sources.
    pub sources: Vec<String>,
    /// Exactly this action.
    pub action: Option<String>,
    /// ASCII case-insensitive substring of type, action, source or data.
    pub text: Option<String>,
}

impl Filters {
    /// Converts the keyword arguments.
    pub fn new(
        py: Python<'_>,
        since: Option<&Bound<'_, PyAny>>,
        until: Option<&Bound<'_, PyAny>>,
        types: Option<&Bound<'_, PyAny>>,
        sources: Option<&Bound<'_, PyAny>>,
        action: Option<&Bound<'_, PyAny>>,
        text: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Filters> {
        Ok(Filters {
            since: opt_time(py, since, "since")?,
            until: opt_time(py, until, "until")?,
            types: names(py, types, "types")?,
            sources: names(py, sources, "sources")?,
            action: opt_name(py, action, "action")?,
            text: opt_name(py, text, "text")?,
        })
    }

    /// `q` with these filters.
    pub fn apply<'s>(&self, mut q: Query<'s>) -> Query<'s> {
        if let Some(t) = self.since {
            q = q.since(t);
        }
        if let Some(t) = self.until {
            q = q.until(t);
        }
        for t in &self.types {
            q = q.event_type(t.clone());
        }
        for s in &self.sources {
            q = q.source(s.clone());
        }
        if let Some(a) = &self.action {
            q = q.action(a.clone());
        }
        if let Some(t) = &self.text {
            q = q.text(t.clone());
        }
        q
    }
}

/// One name or an iterable of names (`types="file_op"` or `types=["file_op", "app"]`).
fn names(py: Python<'_>, v: Option<&Bound<'_, PyAny>>, field: &str) -> PyResult<Vec<String>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    if v.cast::<PyString>().is_ok() {
        return Ok(vec![name(py, v, field)?]);
    }
    let Ok(iter) = v.try_iter() else {
        let type_name = v.get_type().name()?;
        return Err(invalid(
            py,
            format!(
                "invalid argument: `{field}` must be a str or an iterable of str, not {type_name}"
            ),
        ));
    };
    iter.map(|item| name(py, &item?, field)).collect()
}
