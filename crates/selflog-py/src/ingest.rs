//! `Store.append_many`: a pipeline of two threads over an iterable of any length.
//!
//! Reading Python objects needs the GIL, appending does not. The calling thread converts
//! dicts to names and JSON text in chunks of [`CHUNK`] events with the GIL held, each
//! chunk's text in one buffer (a [`Batch`]); a helper thread turns each chunk into events
//! (the strings of each, the JSON parser's check of its data text, the store's limits) and
//! appends them with `append_batch`, [`APPEND_EVENTS`] at a time, while the caller converts
//! the next chunk. The channel between them holds at most [`CHUNKS_QUEUED`] chunks, so
//! memory stays bounded; the caller waits for room with the GIL released. An iterable that
//! fits in one chunk is appended on the calling thread, without starting the helper.
//!
//! Order and failure: chunks are appended in order. A bad event (found by either thread)
//! stops the pipeline: every event before it is stored, none after it; the exception
//! names its index and carries the ids stored (`ids`).

use std::sync::mpsc::{sync_channel, Receiver};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyIterator, PyList};
use selflog::{Config, Event, Store, Timestamp};

use crate::convert::Batch;
use crate::errors::{invalid, Fail};
use crate::store::PyStore;

/// Events per chunk.
pub const CHUNK: usize = 1024;
/// Events per `append_batch` call of the appending thread: the strings of this many
/// events are made, appended and freed together, so that the same memory (still in the
/// processor's cache) serves the next ones instead of the heap growing by a whole chunk.
pub const APPEND_EVENTS: usize = 128;
/// Chunks converted ahead of the appending thread.
pub const CHUNKS_QUEUED: usize = 2;

/// Why the pipeline stopped early: the index of the event at fault (`None` when no event
/// is: the store failed, or the iterable raised), and the failure.
type Stopped = (Option<usize>, Fail);

/// Appends the events of `chunk` (the first at index `base`) to `store`, adding their ids
/// to `ids`; at the first rejected event, appends the ones before it and stops there.
fn append_chunk(
    store: &Store,
    config: &Config,
    base: usize,
    chunk: &Batch,
    ids: &mut Vec<u64>,
) -> Result<(), Stopped> {
    let now = Timestamp::now();
    let mut events = Vec::with_capacity(APPEND_EVENTS);
    let mut bad = None;
    for (k, event) in chunk.events().enumerate() {
        match event.and_then(|e| e.validate(config, now).map(|()| e)) {
            Ok(e) => events.push(e),
            Err(e) => {
                bad = Some((Some(base + k), Fail::Lib(e)));
                break;
            }
        }
        if events.len() == APPEND_EVENTS {
            let full = std::mem::replace(&mut events, Vec::with_capacity(APPEND_EVENTS));
            append(store, full, ids)?;
        }
    }
    append(store, events, ids)?;
    bad.map_or(Ok(()), Err)
}

/// Appends `events` (if any) with one `append_batch`, adding their ids to `ids`.
fn append(store: &Store, events: Vec<Event>, ids: &mut Vec<u64>) -> Result<(), Stopped> {
    if !events.is_empty() {
        let appended = store
            .append_batch(events)
            .map_err(|e| (None, Fail::Lib(e)))?;
        ids.extend(appended.into_iter().map(|a| a.id().0));
    }
    Ok(())
}

/// The helper's side: chunks from `rx`, in order, until the channel closes or one fails.
fn append_all(
    store: &Store,
    config: &Config,
    rx: &Receiver<(usize, Batch)>,
    ids: &mut Vec<u64>,
) -> Result<(), Stopped> {
    for (base, chunk) in rx {
        append_chunk(store, config, base, &chunk, ids)?;
    }
    Ok(())
}

/// Converts items into `chunk` until it is full (`Ok(false)`) or the iterable ends
/// (`Ok(true)`); `index` counts the items taken.
fn convert_chunk(
    py: Python<'_>,
    items: &mut Bound<'_, PyIterator>,
    chunk: &mut Batch,
    index: &mut usize,
) -> Result<bool, Stopped> {
    while chunk.len() < CHUNK {
        let Some(item) = items.next() else {
            return Ok(true);
        };
        let item = item.map_err(|e| (None, Fail::Python(e)))?;
        chunk
            .push_dict(py, &item)
            .map_err(|e| (Some(*index), Fail::Python(e)))?;
        *index += 1;
    }
    Ok(false)
}

/// Appends every event of `events` to `store` (see the module doc), returning their ids.
pub fn append_many(
    py: Python<'_>,
    store: &PyStore,
    events: &Bound<'_, PyAny>,
) -> PyResult<Vec<u64>> {
    let config = store.config();
    let mut items = events.try_iter()?;
    let mut index = 0usize;
    let mut first = Batch::with_capacity(CHUNK, 0);
    let mut ids: Vec<u64> = Vec::new();
    let converted = convert_chunk(py, &mut items, &mut first, &mut index);
    let stopped = if matches!(converted, Ok(false)) {
        pipeline(py, store, config, &mut items, first, &mut index, &mut ids).err()
    } else {
        // One chunk, or a bad item in the first: appended here.
        let appended = store.run(py, |s| Ok(append_chunk(s, config, 0, &first, &mut ids)))?;
        appended.err().or(converted.err())
    };
    if let Some(&max) = ids.iter().max() {
        store.appended(max);
    }
    match stopped {
        None => Ok(ids),
        Some(stop) => Err(failure(py, stop, &ids)),
    }
}

/// Runs the two-thread pipeline; `first` is the first chunk, full.
fn pipeline(
    py: Python<'_>,
    store: &PyStore,
    config: &Config,
    items: &mut Bound<'_, PyIterator>,
    first: Batch,
    index: &mut usize,
    ids: &mut Vec<u64>,
) -> Result<(), Stopped> {
    let (tx, rx) = sync_channel::<(usize, Batch)>(CHUNKS_QUEUED);
    let (appended, converted) = std::thread::scope(|scope| {
        let helper = scope.spawn(move || store.run_here(|s| Ok(append_all(s, config, &rx, ids))));
        let mut chunk = (0, first);
        let converted = loop {
            let base = *index;
            // Room for as much text as the chunk before needed, so that it rarely grows.
            let mut next = Batch::with_capacity(CHUNK, chunk.1.text_len() + chunk.1.text_len() / 8);
            let result = convert_chunk(py, items, &mut next, index);
            // Room in the channel is waited for with the GIL released; a closed channel
            // means the helper stopped, and its error is reported below.
            let full = std::mem::replace(&mut chunk, (base, next));
            if py.detach(|| tx.send(full)).is_err() {
                break Ok(());
            }
            match result {
                Ok(false) => {}
                done => {
                    // The last chunk: full of what was converted before the end or the
                    // bad item.
                    let _ = py.detach(|| tx.send(std::mem::take(&mut chunk)));
                    break done.map(|_| ());
                }
            }
        };
        drop(tx);
        (py.detach(|| helper.join()), converted)
    });
    let appended = appended.unwrap_or_else(|_| {
        Err(Fail::Lib(selflog::Error::Poisoned(
            "the append_many helper thread panicked".into(),
        )))
    });
    // The helper's failure comes first: it is about an earlier event, or the store.
    appended.map_err(|f| (None, f))??;
    converted
}

/// The exception for a pipeline stopped by `stop`, its `ids` the ids stored before it.
fn failure(py: Python<'_>, stop: Stopped, ids: &[u64]) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let err = match stop {
            (None, fail) => fail.into_py_err(py),
            (Some(index), fail) => {
                let cause = fail.into_py_err(py);
                let msg = format!(
                    "event {index} of the iterable: {}; the {} events before it were stored (their ids are this exception's `ids`)",
                    cause.value(py).str()?,
                    ids.len()
                );
                let err = invalid(py, msg);
                err.set_cause(py, Some(cause));
                err
            }
        };
        err.value(py).setattr("ids", PyList::new(py, ids)?)?;
        Ok(err)
    };
    build().unwrap_or_else(|e| PyRuntimeError::new_err(e.to_string()))
}
