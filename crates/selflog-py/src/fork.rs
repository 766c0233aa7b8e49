//! Noticing that the process forked, cheaply.
//!
//! A `Store` and its iterators are bound to the process that opened them: a forked child
//! has none of the parent's threads, and locks they held at the fork stay held forever.
//! Asking the kernel for the process id costs a system call (~0.25 µs here), too much for
//! every appended or iterated event, so the module registers an `os.register_at_fork` hook
//! that raises a flag in every child Python forks (`os.fork`, `multiprocessing`); the
//! process id is compared only once the flag is up. Code that forks outside Python's
//! `os.fork` skips the hook; the iterators still compare the process id at each chunk
//! they read, and `close` and dropping a store always do.

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::prelude::*;

/// Raised in a child process by the at-fork hook.
static FORKED: AtomicBool = AtomicBool::new(false);

/// The at-fork hook (`after_in_child`).
#[pyfunction]
pub fn _after_fork_in_child() {
    FORKED.store(true, Ordering::Relaxed);
}

/// Registers the hook with `os.register_at_fork`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let hook = wrap_pyfunction!(_after_fork_in_child, m)?;
    let kwargs = pyo3::types::PyDict::new(m.py());
    kwargs.set_item("after_in_child", hook)?;
    m.py()
        .import("os")?
        .getattr("register_at_fork")?
        .call((), Some(&kwargs))?;
    Ok(())
}

/// The current process id when it is not `owner` (a forked child), checked only after a
/// fork Python saw.
pub fn forked_from(owner: u32) -> Option<u32> {
    if FORKED.load(Ordering::Relaxed) {
        always_forked_from(owner)
    } else {
        None
    }
}

/// The current process id when it is not `owner`, asking the kernel.
pub fn always_forked_from(owner: u32) -> Option<u32> {
    let current = std::process::id();
    (current != owner).then_some(current)
}
