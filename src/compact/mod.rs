//! Compaction: each sealed segment rewritten as blocks of ~16 KiB of frames, each block
//! compressed with zstd and a dictionary trained on the segment's own events, with an
//! n-gram filter per run of blocks so a text search skips the blocks that cannot match.
//! `format-spec/FORMAT.md#compacted-segments`
//!
//! `write.rs` rewrites one file crash-safely (reading it back through `crate::packed`,
//! which the stream's views read compacted segments with); `verify.rs` is `verify`'s check
//! of a compacted segment. The `selflog-compact` thread
//! of a writable open compacts every sealed version-1 segment it finds, oldest first, at a
//! low scheduling priority, one at a time (memory: about the segment's expanded frames while
//! one is rewritten), and stops between blocks when the store closes.

mod image;
pub(crate) mod verify;
mod write;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::segment::StreamKind;
use crate::stream::Stream;

pub(crate) use image::logical_image;
pub use write::Outcome;
pub(crate) use write::{compact_file, Backlog, Pace};

/// Held while a sealed segment file is replaced or deleted: compaction's rename and
/// retention's deletion never interleave (a compacted file renamed over a path retention
/// just deleted would bring a retired segment back).
pub(crate) static FILES: Mutex<()> = Mutex::new(());

/// How segments are compacted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// zstd level.
    pub level: i32,
}

/// The index of the logical frames `logical` (a buffer from file offset 0) of the segment
/// with `header`, by the same scan a reader runs, every frame checked.
///
/// # Errors
/// [`Error::Corrupt`] at the first frame that does not check out.
pub(crate) fn index_of(
    logical: &[u8],
    header: &crate::format::SegmentHeader,
    path: &Path,
) -> Result<crate::index::SegmentIndex> {
    let mut index = crate::index::SegmentIndex::default();
    let start = crate::format::SEGMENT_HEADER_LEN as u64;
    crate::segment::scan_frames(
        logical,
        start,
        logical.len() as u64,
        header,
        &mut index,
        0,
        path,
    )
    .map_err(|(_, e)| e)?;
    Ok(index)
}

/// How often the thread looks for newly sealed segments when nothing woke it.
const POLL: Duration = Duration::from_secs(2);

/// The compaction thread of a writable open.
pub(crate) struct Compactor {
    state: Arc<State>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct State {
    stop: AtomicBool,
    wake: Mutex<bool>,
    cond: Condvar,
}

impl Compactor {
    /// Starts the thread over the event segments of `dir`; `stream` gets each compacted
    /// segment's new view; `backlog` says when the writer has events waiting (the thread
    /// then waits too).
    ///
    /// # Errors
    /// An I/O error starting the thread.
    pub fn start(
        dir: &Path,
        stream: Arc<Stream>,
        settings: Settings,
        backlog: Arc<Backlog>,
    ) -> Result<Compactor> {
        let state = Arc::new(State {
            stop: AtomicBool::new(false),
            wake: Mutex::new(false),
            cond: Condvar::new(),
        });
        let st = Arc::clone(&state);
        let dir_owned = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("selflog-compact".into())
            .spawn(move || run(&dir_owned, &stream, settings, &st, &*backlog))
            .map_err(|e| Error::io("start compaction thread for", dir, e))?;
        Ok(Compactor {
            state,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Asks the thread to look for sealed segments now.
    pub fn wake(&self) {
        *self.state.wake.lock() = true;
        self.state.cond.notify_one();
    }

    /// Stops the thread (between two blocks of a rewrite, which is then abandoned) and
    /// waits for it.
    pub fn stop(&self) {
        self.state.stop.store(true, Ordering::Relaxed);
        self.wake();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(dir: &Path, stream: &Stream, settings: Settings, st: &State, backlog: &Backlog) {
    // Compaction is background work: the writer and the readers go first (nice 19: at
    // nice 10, one thread's append on this 2-core machine lost 11% to it).
    let _ = rustix::process::setpriority_process(None, 19);
    let mut done: Vec<u32> = Vec::new();
    while !st.stop.load(Ordering::Relaxed) {
        if let Some(path) = next_candidate(dir, &mut done) {
            let id = StreamKind::Events
                .parse_file_name(&path.file_name().unwrap_or_default().to_string_lossy())
                .unwrap_or(0);
            done.push(id);
            let pace = Pace {
                stop: &st.stop,
                publications: stream.publications().map(|c| &**c),
                backlog: Some(backlog),
            };
            // Reading and expanding a segment takes a good part of a second: it starts
            // only once the writer has published nothing for a moment.
            if !pace.until_quiet() {
                break;
            }
            if let Ok(Outcome::Compacted { .. }) = compact_file(&path, settings, &pace) {
                stream.reopen(id);
            }
            // A failure leaves the segment as it was; verify reports damage.
            continue;
        }
        let mut woken = st.wake.lock();
        if !*woken {
            st.cond.wait_for(&mut woken, POLL);
        }
        *woken = false;
    }
}

/// The oldest sealed segment of `dir` still in version 1, but for those in `done`. Every
/// segment looked at and found compacted joins `done`, so a daemon's poll reads the header
/// of each segment once, not every two seconds.
fn next_candidate(dir: &Path, done: &mut Vec<u32>) -> Option<PathBuf> {
    let ids = Stream::list(dir, StreamKind::Events).ok()?;
    let newest = *ids.last()?;
    for id in ids {
        if id == newest || done.contains(&id) {
            continue;
        }
        let path = dir.join(StreamKind::Events.file_name(id));
        if needs_compaction(&path) {
            return Some(path);
        }
        done.push(id);
    }
    None
}

/// Whether the segment at `path` is sealed and not compacted.
fn needs_compaction(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    matches!(
        crate::segment::read_header(&file, path),
        Ok((h, slot)) if h.version == crate::format::FORMAT_VERSION && slot.sealed
    )
}

/// Compacts every sealed version-1 segment of the event log in `dir` now, oldest first
/// (`Store::compact`). Returns each segment's outcome.
///
/// # Errors
/// The first failure; segments compacted before it stay compacted.
pub(crate) fn compact_all(
    dir: &Path,
    stream: &Stream,
    settings: Settings,
) -> Result<Vec<(u32, Outcome)>> {
    let stop = AtomicBool::new(false);
    let mut out = Vec::new();
    let ids = Stream::list(dir, StreamKind::Events)?;
    for id in ids {
        let path = dir.join(StreamKind::Events.file_name(id));
        if !needs_compaction(&path) {
            continue;
        }
        let pace = Pace {
            stop: &stop,
            publications: None,
            backlog: None,
        };
        let outcome = compact_file(&path, settings, &pace)?;
        if matches!(outcome, Outcome::Compacted { .. }) {
            stream.reopen(id);
        }
        out.push((id, outcome));
    }
    Ok(out)
}
