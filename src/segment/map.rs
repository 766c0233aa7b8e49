//! The only place selflog maps files into memory, and the only module with `unsafe` code
//! (with the one cache hint that reads ahead in the dedup window's table, and the private
//! map of the dedup window image that a writable open adopts as that table).
//!
//! Residual risk: a program outside selflog that truncates a segment file while it is
//! mapped makes the next access to the lost pages raise SIGBUS. selflog itself never does
//! this: it only shrinks a segment when sealing, and then only past the committed end plus
//! footer, which no map created by selflog extends beyond (see the invariants below).
#![allow(unsafe_code)]

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use memmap2::{Mmap, MmapMut, MmapOptions};

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
    // selflog while any map exists: committed bytes are immutable (segment/mod.rs, writer/),
    // the active file only shrinks past committed end + footer at seal time (segment/mod.rs
    // `ActiveSegment::seal`), and recovery zeroes a torn tail instead of truncating it.
    let map = unsafe { MmapOptions::new().len(len).map(file) };
    map.map_err(|e| Error::io("map", path, e))
}

/// Maps the whole of an active segment's index image (`segment/image.rs`) read-only, for a
/// reader that checks it and keeps it, reading its blocks, checkpoints and postings in
/// place later (`index/blocks.rs`).
pub(crate) fn map_image(file: &File, len: u64, path: &Path) -> Result<Mmap> {
    let len =
        usize::try_from(len).map_err(|_| Error::corrupt(path, 0, "image too large to map"))?;
    // SAFETY: `len` is the file's length, read just before. selflog never truncates or
    // shortens an image file: a new image is written to a temporary file and renamed over
    // it (the map keeps the old inode), removal unlinks it (the map stays valid), and the
    // one write in place (`mark_not_clean`) rewrites the clean flag in the head, whose
    // bytes a reader decodes once, checks, and never reads again; the blocks, checkpoints
    // and postings it reads later are never written in place.
    let map = unsafe { MmapOptions::new().len(len).map(file) };
    map.map_err(|e| Error::io("map", path, e))
}

/// Drops this process's page-table entries for `len` bytes of `map` from `offset` (rounded
/// out to whole pages): its resident set no longer counts them, and the next read of them
/// maps the same bytes again from the page cache (a minor fault). For a sealed segment's
/// footer once it is decoded: `inspect stats` of a 10M-event store loaded 66 footers and
/// peaked at 65 MB of resident pages, nearly all of them those footers (issue 21).
pub(crate) fn release(map: &Mmap, offset: usize, len: usize) {
    let len = len.min(map.len().saturating_sub(offset));
    if len == 0 {
        return;
    }
    // SAFETY: `map` is a shared read-only map of immutable bytes (see `map_read`): dropping
    // its pages (MADV_DONTNEED) changes no byte any reference into it sees, because the next
    // access faults the same file bytes back in. The range is within the map (checked above).
    let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len) };
}

/// A shared empty read-only map, for a view that has mapped nothing of its file yet: one
/// anonymous mapping for the whole process instead of one per view.
pub(crate) fn empty() -> Result<Arc<Mmap>> {
    static EMPTY: OnceLock<Arc<Mmap>> = OnceLock::new();
    if let Some(m) = EMPTY.get() {
        return Ok(Arc::clone(m));
    }
    let m = MmapOptions::new()
        .len(0)
        .map_anon()
        .and_then(memmap2::MmapMut::make_read_only)
        .map_err(|e| Error::io("map", Path::new("(anonymous)"), e))?;
    Ok(Arc::clone(EMPTY.get_or_init(|| Arc::new(m))))
}

/// Maps `len` bytes of `file` from `offset` privately: reads see the file's bytes, writes
/// go to private copies of the pages written (copy-on-write), never to the file. For the
/// dedup window image, whose table a writable open adopts as the window's table without
/// copying it (`dedup/image.rs`); `len` is the table's, within the file (its length was
/// checked against the image's).
///
/// The image is written only under a new name and renamed over the old one, never
/// written in place or truncated: the inode mapped here keeps its bytes while the map
/// lives, and the next clean close's image replaces the name, not these bytes. A program
/// outside selflog that truncated the file would make a page not yet copied raise SIGBUS,
/// as for a segment (module doc).
pub(crate) fn map_private(file: &File, offset: u64, len: usize) -> std::io::Result<MmapMut> {
    // SAFETY: the range is within the file (the caller checked the file's length against
    // the image's), and selflog never writes the mapped file in place or shrinks it (an
    // image is replaced whole, by rename, see above); the map is private, so writes
    // through it cannot reach the file or any other map of it.
    unsafe { MmapOptions::new().offset(offset).len(len).map_copy(file) }
}

/// Asks the CPU to start loading the cache line holding `addr` and returns at once: a hint
/// that lets a cache miss overlap the work before the load that needs it (the dedup
/// window's lookup, which a single `append` cannot otherwise overlap with anything). It
/// reads nothing the program can observe and never faults, whatever `addr` is.
#[inline]
pub(crate) fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` is `unsafe` only because it is declared with
    // `#[target_feature(enable = "sse")]`, and SSE is part of the x86_64 baseline: every
    // CPU this code runs on has it. The instruction does not access memory in the
    // program's sense, cannot fault, and is dropped for an unmapped address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            std::ptr::without_provenance(addr),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}
