//! The only place selflog maps files into memory, and the only module with `unsafe` code.
//!
//! Residual risk: a program outside selflog that truncates a segment file while it is
//! mapped makes the next access to the lost pages raise SIGBUS. selflog itself never does
//! this: it only shrinks a segment when sealing, and then only past the committed end plus
//! footer, which no map created by selflog extends beyond (see the invariants below).
#![allow(unsafe_code)]

use std::fs::File;
use std::path::Path;

use memmap2::{Mmap, MmapOptions};

use crate::error::{Error, Result};

/// Maps the first `len` bytes of `file` read-only.
///
/// Callers pass either the whole length of a sealed segment (which is never written,
/// truncated or shrunk again: only retention unlinks it, and unlinking keeps maps valid) or
/// at most the published committed length of an unsealed one (bytes before the committed end
/// are never rewritten, and sealing only shrinks the file past the committed end plus the
/// footer written there).
pub(crate) fn map_read(file: &File, len: u64, path: &Path) -> Result<Mmap> {
    let len =
        usize::try_from(len).map_err(|_| Error::corrupt(path, 0, "segment too large to map"))?;
    // SAFETY: `len` is within the file (callers check it against the published committed
    // length or the file's length), and the mapped range is never modified or truncated by
    // selflog while any map exists: committed bytes are immutable (segment/mod.rs, writer.rs),
    // the active file only shrinks past committed end + footer at seal time (segment/mod.rs
    // `ActiveSegment::seal`), and recovery zeroes a torn tail instead of truncating it.
    let map = unsafe { MmapOptions::new().len(len).map(file) };
    map.map_err(|e| Error::io("map", path, e))
}
