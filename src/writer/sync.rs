//! The sync thread: background `fdatasync` of the active segment and the page-cache drop.
//!
//! Started by the writer on first use and ended with it. It only adds syncs, through a file
//! description of its own, so a write-back error it meets is still reported to the writer's
//! own sync; and it drops from the page cache only what is on the disk, oldest first, but
//! for the newest `Config::page_cache_keep` bytes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

/// Writes an active segment's frames to the disk in the background while the writer goes
/// on, so that sealing it, which must wait until every frame is on the disk, finds little
/// left to write: each seal of a 64 MiB segment spent ~35 ms in `fdatasync` on this VM,
/// about a fifth of the writer's time under load. It only adds syncs, and it syncs
/// through a file description of its own: a write-back error it meets is still reported
/// to the writer's own `fdatasync` (Linux reports such an error to every open file
/// description), so ignoring its own result loses nothing.
///
/// It also drops what is on the disk from the page cache, but for the newest
/// `Config::page_cache_keep` bytes ([`Dropper`]).
pub(super) struct Syncer {
    state: Arc<(Mutex<SyncRequests>, Condvar)>,
    keep: Option<u64>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Off for a writer pumped by the maintenance thread ([`Syncer::disable`]).
    enabled: bool,
}

/// What the writer asked the sync thread for since it last looked.
#[derive(Default)]
struct SyncRequests {
    /// The newest segment to sync, and how far it is written: a newer request replaces
    /// one not yet taken.
    sync: Option<(PathBuf, u64)>,
    /// Segments sealed since, with where their frames end (the seal synced them).
    sealed: Vec<(PathBuf, u64)>,
    closing: bool,
}

impl Syncer {
    pub(super) fn new(keep: Option<u64>) -> Syncer {
        Syncer {
            state: Arc::default(),
            keep,
            thread: None,
            enabled: true,
        }
    }

    /// Never starts the thread: for a writer the maintenance thread pumps, whose small
    /// segments (a sidecar's) are synced by their seal alone.
    pub(super) fn disable(&mut self) {
        self.enabled = false;
    }

    /// Asks for the file at `path`, written up to `len`, to be synced soon; starts the
    /// thread on first use. A thread that cannot be started leaves the syncing to the seal.
    pub(super) fn kick(&mut self, path: &Path, len: u64) {
        if self.started() {
            self.state.0.lock().sync = Some((path.to_path_buf(), len));
            self.state.1.notify_one();
        }
    }

    /// Tells the thread that the segment at `path` is sealed, its frames ending at `len`.
    pub(super) fn sealed(&mut self, path: PathBuf, len: u64) {
        if self.keep.is_some() && self.started() {
            self.state.0.lock().sealed.push((path, len));
            self.state.1.notify_one();
        }
    }

    fn started(&mut self) -> bool {
        if self.thread.is_none() && self.enabled {
            let state = Arc::clone(&self.state);
            let mut dropper = Dropper::new(self.keep);
            self.thread = std::thread::Builder::new()
                .name("selflog-sync".into())
                .spawn(move || loop {
                    let (sync, sealed) = {
                        let mut r = state.0.lock();
                        while r.sync.is_none() && r.sealed.is_empty() && !r.closing {
                            state.1.wait(&mut r);
                        }
                        if r.closing {
                            return;
                        }
                        (r.sync.take(), std::mem::take(&mut r.sealed))
                    };
                    // A sealed segment precedes any segment a sync request names now.
                    for (path, len) in sealed {
                        dropper.synced(&path, len);
                    }
                    if let Some((path, len)) = sync {
                        let synced = std::fs::File::open(&path).and_then(|f| f.sync_data());
                        if synced.is_ok() {
                            dropper.synced(&path, len);
                        }
                    }
                })
                .ok();
        }
        self.thread.is_some()
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.state.0.lock().closing = true;
        self.state.1.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Drops segment bytes that are on the disk from the page cache (`posix_fadvise`
/// `DONTNEED`), oldest first, once more than `keep` bytes of them are held. An activity
/// log is written once and read rarely, mostly its newest part; a writer that ran for
/// weeks would otherwise fill the page cache with it at the expense of the desktop's
/// programs. And on this VM the growing page cache halved sustained appends: guest memory
/// freed earlier has been given back to the host, so each fresh page the cache takes
/// costs the hypervisor a fault, while pages dropped here are taken again at once
/// (10,000,000 events, one `append` at a time: ~1.25M events/s falling to ~0.57M after
/// 4.8M events, against ~1.15-1.2M throughout; benches/RESULTS.md). Only clean pages no
/// process maps go: a reader's mapped pages stay.
struct Dropper {
    keep: Option<u64>,
    /// Ranges on the disk and still in the cache, oldest first: file, start, end.
    held: std::collections::VecDeque<(PathBuf, u64, u64)>,
    held_bytes: u64,
    /// The newest file noted, and how far it is noted.
    last: Option<(PathBuf, u64)>,
}

impl Dropper {
    fn new(keep: Option<u64>) -> Dropper {
        Dropper {
            keep,
            held: std::collections::VecDeque::new(),
            held_bytes: 0,
            last: None,
        }
    }

    /// Notes that `path` is on the disk up to `len`, then drops the oldest ranges while
    /// the others hold at least `keep` bytes.
    fn synced(&mut self, path: &Path, len: u64) {
        let Some(keep) = self.keep else {
            return;
        };
        let start = match &self.last {
            Some((p, end)) if p == path => *end,
            _ => 0,
        };
        if len <= start {
            return;
        }
        self.last = Some((path.to_path_buf(), len));
        self.held.push_back((path.to_path_buf(), start, len));
        self.held_bytes += len - start;
        while let Some((path, start, end)) = self.held.front() {
            let len = end - start;
            if self.held_bytes - len < keep {
                break;
            }
            // Advice only: a file retention has deleted, or a kernel that declines, loses
            // nothing but the cache space.
            if let Ok(file) = std::fs::File::open(path) {
                let _ = rustix::fs::fadvise(
                    &file,
                    *start,
                    std::num::NonZeroU64::new(len),
                    rustix::fs::Advice::DontNeed,
                );
            }
            self.held_bytes -= len;
            self.held.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    /// The page cache dropper holds each synced range once, drops the oldest while the
    /// rest holds `keep` bytes, and ignores a request that adds nothing.
    #[test]
    fn the_dropper_keeps_the_newest_bytes_and_notes_each_range_once() {
        let held = |d: &super::Dropper| -> Vec<(String, u64, u64)> {
            let name = |p: &std::path::Path| p.file_name().unwrap().to_string_lossy().into_owned();
            d.held.iter().map(|(p, a, b)| (name(p), *a, *b)).collect()
        };
        let r = |p: &str, a: u64, b: u64| (p.to_owned(), a, b);
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let mut d = super::Dropper::new(Some(16));
        d.synced(&a, 8);
        d.synced(&a, 16);
        d.synced(&a, 12);
        assert_eq!(
            held(&d),
            [r("a", 0, 8), r("a", 8, 16)],
            "a stale request adds nothing"
        );
        d.synced(&a, 24);
        assert_eq!(
            held(&d),
            [r("a", 8, 16), r("a", 16, 24)],
            "the oldest 8 dropped"
        );
        d.synced(&b, 10);
        assert_eq!(held(&d), [r("a", 16, 24), r("b", 0, 10)]);
        assert_eq!(d.held_bytes, 18);
        let mut none = super::Dropper::new(None);
        none.synced(&a, 8);
        assert!(none.held.is_empty(), "None keeps the cache as it is");
    }
}
