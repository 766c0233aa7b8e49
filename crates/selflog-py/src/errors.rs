//! How selflog's errors reach Python: one exception class per thing a caller would do
//! differently, all under `selflog.Error`.
//!
//! The classes are defined in Python (`python/selflog/__init__.py`), because two of them
//! have two bases (`InvalidEventError` is also a `ValueError`, `DiskFullError` also an
//! `OSError`); this module looks them up in the `selflog` package when it raises one. The
//! message is the library's own (what happened and where, what to do), unchanged.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// Why a call failed before it became a Python exception: the library's error, or one of
/// the binding's own conditions. Built without the GIL, turned into a `PyErr` with it.
#[derive(Debug)]
pub enum Fail {
    /// An error the library returned.
    Lib(selflog::Error),
    /// The `Store` was closed by `close()` or a `with` block.
    Closed,
    /// A Python exception, raised as it is.
    Python(PyErr),
    /// The `Store` (or an iterator of it) is used in a process forked from the one that
    /// opened it.
    Forked {
        /// The process that opened the store.
        owner: u32,
        /// The process trying to use it.
        current: u32,
    },
}

impl From<selflog::Error> for Fail {
    fn from(e: selflog::Error) -> Fail {
        Fail::Lib(e)
    }
}

/// The exception class `name` of the `selflog` package.
fn class<'py>(py: Python<'py>, name: &'static str) -> PyResult<Bound<'py, PyType>> {
    static CLASSES: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let module =
        CLASSES.get_or_try_init(py, || py.import("selflog").map(|m| m.into_any().unbind()))?;
    Ok(module.bind(py).getattr(name)?.cast_into::<PyType>()?)
}

/// An exception of class `name` carrying `msg`.
fn raise(py: Python<'_>, name: &'static str, msg: String) -> PyErr {
    match class(py, name) {
        Ok(ty) => PyErr::from_type(ty, msg),
        // Only a broken installation (the package without its `__init__.py`) gets here.
        Err(e) => PyRuntimeError::new_err(format!("{msg} (and selflog.{name} is missing: {e})")),
    }
}

/// `DiskFullError`, an `OSError` with `errno` ENOSPC. Its `strerror` and `filename` stay
/// unset: `OSError.__str__` would then print them instead of the message, which names
/// the file already and says what to do.
fn disk_full(py: Python<'_>, msg: &str) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let exc = class(py, "DiskFullError")?.call1((msg,))?;
        exc.setattr("errno", 28)?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

impl Fail {
    /// The Python exception for this failure.
    pub fn into_py_err(self, py: Python<'_>) -> PyErr {
        use selflog::Error as E;
        match self {
            Fail::Python(e) => e,
            Fail::Closed => raise(
                py,
                "Error",
                "store is closed: open a new selflog.Store to use it again".into(),
            ),
            Fail::Forked { owner, current } => raise(
                py,
                "Error",
                format!(
                    "this Store was opened by process {owner} and cannot be used in process {current}, \
                     forked from it: its writer and background threads exist only in the parent. \
                     Open a new selflog.Store in the child (after the parent closed it, or read_only=True)"
                ),
            ),
            Fail::Lib(e) => {
                let msg = e.to_string();
                match &e {
                    E::Locked { .. } => raise(py, "LockedError", msg),
                    E::InvalidEvent { .. } | E::TooLarge { .. } => {
                        raise(py, "InvalidEventError", msg)
                    }
                    E::InvalidConfig(_) => raise(py, "InvalidConfigError", msg),
                    E::Corrupt { .. } | E::Incomplete { .. } => raise(py, "CorruptError", msg),
                    E::DiskFull { .. } => disk_full(py, &msg),
                    _ => raise(py, "Error", msg),
                }
            }
        }
    }
}

/// Converts a `Result` of the binding into a `PyResult`.
pub trait IntoPy<T> {
    /// The value, or the failure as a Python exception.
    fn py(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPy<T> for Result<T, Fail> {
    fn py(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|f| f.into_py_err(py))
    }
}

/// `InvalidEventError` with `msg`, for argument checks done with the GIL held.
pub fn invalid(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    raise(py, "InvalidEventError", msg.into())
}

/// `InvalidConfigError` with `msg`.
pub fn invalid_config(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    raise(py, "InvalidConfigError", msg.into())
}
