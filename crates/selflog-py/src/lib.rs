//! The `selflog` Python package's native module, `selflog._selflog`: the store, its
//! events, cursors and iterators, on top of the `selflog` library's public API.
//!
//! `python/selflog/__init__.py` defines the exception classes and re-exports what is
//! here; `python/selflog/__init__.pyi` is the typed description of both. The modules:
//! `store` (`Store`, `Cursor`: every call releases the GIL and checks the process),
//! `read` (the lazy iterator, `stats`), `ingest` (`append_many`'s two-thread pipeline), `event` (`Event`), `convert` (Python arguments to
//! the library's values), `json` (Python values to JSON text), `errors` (library errors
//! to exceptions).

// The doc comments of `#[pymethods]` are the Python docstrings `help()` shows: they name
// Python identifiers in Python's way, without Markdown backticks. Python's keyword
// arguments are Rust parameters, as many as the API has, and pyo3 hands them over owned
// (the stable ABI of Python 3.9 cannot lend a `&str`).
#![allow(
    clippy::doc_markdown,
    clippy::too_many_arguments,
    clippy::needless_pass_by_value,
    reason = "pymethods: Python docstrings and Python's argument lists"
)]

mod convert;
mod errors;
mod event;
mod fork;
mod ingest;
mod json;
mod read;
mod store;

use pyo3::prelude::*;

/// The native half of the `selflog` package; import `selflog` instead.
#[pymodule]
fn _selflog(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<store::PyStore>()?;
    m.add_class::<store::PyCursor>()?;
    m.add_class::<event::PyEvent>()?;
    m.add_class::<read::EventIter>()?;
    m.add("FORMAT_VERSION", selflog::FORMAT_VERSION)?;
    fork::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
