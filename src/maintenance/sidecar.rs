//! The pattern and stats streams of a store: where they live, how they are read, and the
//! writing side the maintenance thread drives.
//!
//! Each stream is a directory (`patterns/`, `stats/`) laid out as a store of its own
//! (`format-spec/FORMAT.md#sidecars`), so it has the event log's framing, checksums,
//! recovery, retention and reader views. A writable open opens each like the event log
//! (lock, recovery, dedup window) and gets its queue ([`Shared`]) and a [`Writer`] with no
//! thread of its own: the maintenance thread pumps it. Readers use the stream's views only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::event::{Appended, Event};
use crate::layout::check_store;
use crate::lock::WriterLock;
use crate::scan::get_in;
use crate::segment::StreamKind;
use crate::stream::Stream;
use crate::writer::{Shared, Writer};

use super::records::{PATTERNS_DIR, STATS_DIR};

/// One sidecar stream.
pub(crate) struct Sidecar {
    /// Its directory.
    pub dir: PathBuf,
    /// Its reader view.
    pub stream: Arc<Stream>,
    /// Its queue and writer status, in a writable open.
    pub log: Option<Arc<Shared>>,
    /// Its own writer lock (redundant under the store's, kept so the directory is locked
    /// like any store's while it is written).
    _lock: Option<WriterLock>,
    /// Whether its `selflog.meta` was sound when it was opened; if not, [`Sidecar::reader`]
    /// checks it again to report the damage.
    meta_sound: bool,
}

impl Sidecar {
    /// A writable sidecar, opened by the store like its event log.
    pub fn writable(dir: PathBuf, stream: Arc<Stream>, log: Arc<Shared>, lock: WriterLock) -> Self {
        Sidecar {
            dir,
            stream,
            log: Some(log),
            _lock: Some(lock),
            meta_sound: true,
        }
    }

    /// The sidecar in `dir`, read-only. Nothing is read yet: damage in a sidecar fails
    /// only the reads of that sidecar ([`Sidecar::reader`], then the query's refresh),
    /// never the open of the store or the reads of the event log.
    fn read_only(dir: PathBuf) -> Sidecar {
        let stream = Arc::new(Stream::new(&dir, StreamKind::Events, None));
        Sidecar {
            meta_sound: check_store(&dir).is_ok(),
            dir,
            stream,
            log: None,
            _lock: None,
        }
    }

    /// Its reader view, once its `selflog.meta` is known to be sound.
    ///
    /// # Errors
    /// As `layout::check_store` for a damaged `selflog.meta` of the sidecar.
    pub fn reader(&self) -> Result<&Arc<Stream>> {
        if !self.meta_sound {
            check_store(&self.dir)?;
        }
        Ok(&self.stream)
    }

    /// Queues `event` as `Store::append` queues one in the event log: validated, checked
    /// against the dedup window (an original already written is read back from the
    /// stream), given its id at once.
    pub fn append(&self, event: &Event) -> Result<Appended> {
        self.log()?.append(event, |id| get_in(&self.stream, id))
    }

    /// The queue of a writable sidecar.
    pub fn log(&self) -> Result<&Arc<Shared>> {
        self.log.as_ref().ok_or(Error::ReadOnly)
    }
}

/// The two sidecar streams of a store.
pub(crate) struct Sidecars {
    pub patterns: Sidecar,
    pub stats: Sidecar,
}

impl Sidecars {
    /// The directories of the two sidecars of the store in `dir`.
    pub fn dirs(dir: &Path) -> [PathBuf; 2] {
        [dir.join(PATTERNS_DIR), dir.join(STATS_DIR)]
    }

    /// Both sidecars of the store in `dir`, read-only; see `Sidecar::read_only`.
    pub fn read_only(dir: &Path) -> Sidecars {
        let [patterns, stats] = Sidecars::dirs(dir);
        Sidecars {
            patterns: Sidecar::read_only(patterns),
            stats: Sidecar::read_only(stats),
        }
    }

    /// Both, patterns first.
    pub fn both(&self) -> [&Sidecar; 2] {
        [&self.patterns, &self.stats]
    }
}

/// The writers of a writable open's two sidecars, which the maintenance thread owns and
/// pumps.
pub(crate) struct Pumps {
    pub patterns: Writer,
    pub stats: Writer,
}

impl Pumps {
    /// Pumps both writers ([`Writer::pump`]); returns when they next want to run. A failure
    /// names the stream.
    pub fn pump(&mut self) -> std::result::Result<Option<std::time::Instant>, String> {
        let p = self
            .patterns
            .pump()
            .map_err(|e| format!("writing the pattern stream failed: {e}"))?;
        let s = self
            .stats
            .pump()
            .map_err(|e| format!("writing the stats stream failed: {e}"))?;
        Ok(p.into_iter().chain(s).min())
    }
}
