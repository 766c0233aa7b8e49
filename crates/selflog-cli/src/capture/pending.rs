//! Coalescing of file writes: which `created` and `modified` events are held, and when
//! each is due.
//!
//! A new file's `created` is held while its creator writes it, and emitted at its first
//! close after writing, when the coalescing interval has passed, or before any other event
//! on the same path, so it carries the size the creator gave it. A write to an existing
//! file holds a `modified` counting the writes it stands for; it is emitted at a close once
//! the interval since the file's last `modified` has passed, else when that interval ends:
//! at most one `modified` per file per interval. Nothing held is dropped: what is still held
//! when another event on the path comes (a move, a delete) is emitted before it, or, when a
//! `modified` would come less than an interval after the last one, its write count is
//! carried by that event (`writes_before`). The map never holds a path with nothing due.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use selflog::Timestamp;

/// What a held event will say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// A file created and possibly still being written.
    Created,
    /// Writes to an existing file.
    Modified,
    /// A creation a scan reported already (the file appeared before its directory's watch
    /// and its own creation event came after): its writes until its first close are part
    /// of that creation, so nothing more is emitted for them.
    Reported,
}

/// One held event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pending {
    /// What it will say.
    pub held: Held,
    /// When the first write (or the creation) it stands for was seen.
    pub timestamp: Timestamp,
    /// When it was first held.
    pub since: Instant,
    /// Write notifications it stands for.
    pub writes: u64,
}

/// What to do with a held event when another event on its path comes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Before {
    /// Emit it first.
    Emit(Pending),
    /// Its writes are carried by the next event (`writes_before`): a `modified` now would
    /// come less than an interval after the last one.
    Fold(u64),
}

/// The held events, and when each file's last `modified` was emitted.
pub struct Coalescer {
    interval: Duration,
    held: HashMap<PathBuf, Pending>,
    last_modified: HashMap<PathBuf, Instant>,
    /// Write notifications folded into fewer events (the summary's figure).
    pub coalesced_writes: u64,
}

impl Coalescer {
    /// A coalescer allowing one `modified` per file per `interval`.
    pub fn new(interval: Duration) -> Coalescer {
        Coalescer {
            interval,
            held: HashMap::new(),
            last_modified: HashMap::new(),
            coalesced_writes: 0,
        }
    }

    /// Whether anything is held (a tick is then needed within the interval).
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Whether something is held for `path`.
    pub fn holds(&self, path: &Path) -> bool {
        self.held.contains_key(path)
    }

    /// Holds the `created` of a new file.
    pub fn created(&mut self, path: PathBuf, timestamp: Timestamp, now: Instant) {
        self.held.insert(
            path,
            Pending {
                held: Held::Created,
                timestamp,
                since: now,
                writes: 0,
            },
        );
    }

    /// Notes that `path`, reported created by a scan, is still being written by its
    /// creator.
    pub fn reported(&mut self, path: PathBuf, timestamp: Timestamp, now: Instant) {
        self.held.insert(
            path,
            Pending {
                held: Held::Reported,
                timestamp,
                since: now,
                writes: 0,
            },
        );
    }

    /// Counts a write to `path`, holding a `modified` if nothing is held for it.
    pub fn written(&mut self, path: &Path, timestamp: Timestamp, now: Instant) {
        if let Some(p) = self.held.get_mut(path) {
            p.writes += 1;
            return;
        }
        self.held.insert(
            path.to_path_buf(),
            Pending {
                held: Held::Modified,
                timestamp,
                since: now,
                writes: 1,
            },
        );
    }

    /// A writer closed `path`: returns the held event if it is due now.
    pub fn closed(&mut self, path: &Path, now: Instant) -> Option<Pending> {
        let p = *self.held.get(path)?;
        let due = match p.held {
            Held::Created => true,
            Held::Modified => self.modified_allowed(path, now),
            Held::Reported => {
                self.held.remove(path);
                return None;
            }
        };
        due.then(|| self.take(path, now))?
    }

    /// Another event on `path` comes: what to do with what is held for it.
    pub fn before_other(&mut self, path: &Path, now: Instant) -> Option<Before> {
        let p = *self.held.get(path)?;
        if p.held == Held::Reported {
            self.held.remove(path);
            return None;
        }
        if p.held == Held::Modified && !self.modified_allowed(path, now) {
            self.held.remove(path);
            self.coalesced_writes += p.writes;
            return Some(Before::Fold(p.writes));
        }
        self.take(path, now).map(Before::Emit)
    }

    /// The held events that are due at `now`, oldest first, and forgets emission times
    /// older than the interval.
    pub fn due(&mut self, now: Instant) -> Vec<(PathBuf, Pending)> {
        let interval = self.interval;
        let last = &self.last_modified;
        let mut due: Vec<(PathBuf, Pending)> = self
            .held
            .iter()
            .filter(|(path, p)| {
                let mut at = p.since + interval;
                if p.held == Held::Modified {
                    if let Some(t) = last.get(*path) {
                        at = at.max(*t + interval);
                    }
                }
                now >= at
            })
            .map(|(path, p)| (path.clone(), *p))
            .collect();
        due.sort_by_key(|(_, p)| p.since);
        for (path, _) in &due {
            self.take(path, now);
        }
        due.retain(|(_, p)| p.held != Held::Reported);
        self.last_modified
            .retain(|_, t| now.saturating_duration_since(*t) < interval);
        due
    }

    /// Everything held, oldest first (at the end of a run).
    pub fn drain(&mut self) -> Vec<(PathBuf, Pending)> {
        let mut all: Vec<(PathBuf, Pending)> = self
            .held
            .drain()
            .filter(|(_, p)| p.held != Held::Reported)
            .collect();
        all.sort_by_key(|(_, p)| p.since);
        for (_, p) in &all {
            if p.held == Held::Modified {
                self.coalesced_writes += p.writes.saturating_sub(1);
            }
        }
        all
    }

    /// Forgets what is held under `dir` and returns it, oldest first (a directory moved or
    /// deleted).
    pub fn take_under(&mut self, dir: &Path, now: Instant) -> Vec<(PathBuf, Pending)> {
        let mut under: Vec<PathBuf> = self
            .held
            .keys()
            .filter(|p| p.starts_with(dir) && p.as_path() != dir)
            .cloned()
            .collect();
        under.sort();
        let mut out: Vec<(PathBuf, Pending)> = under
            .into_iter()
            .filter_map(|path| self.take(&path, now).map(|p| (path, p)))
            .filter(|(_, p)| p.held != Held::Reported)
            .collect();
        out.sort_by_key(|(_, p)| p.since);
        out
    }

    /// Drops what is held for `path` without emitting it (an event that turned out to be
    /// another: a scan's creation that was a rename).
    pub fn cancel(&mut self, path: &Path) {
        self.held.remove(path);
    }

    /// Forgets when `path` was last modified (it was deleted or moved away).
    pub fn forget(&mut self, path: &Path) {
        self.last_modified.remove(path);
    }

    fn modified_allowed(&self, path: &Path, now: Instant) -> bool {
        self.last_modified
            .get(path)
            .is_none_or(|t| now.saturating_duration_since(*t) >= self.interval)
    }

    fn take(&mut self, path: &Path, now: Instant) -> Option<Pending> {
        let p = self.held.remove(path)?;
        if p.held == Held::Modified {
            self.last_modified.insert(path.to_path_buf(), now);
            self.coalesced_writes += p.writes.saturating_sub(1);
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn t0() -> (Coalescer, Instant, PathBuf) {
        (Coalescer::new(SEC), Instant::now(), PathBuf::from("/w/f"))
    }

    #[test]
    fn a_created_file_is_emitted_at_its_first_close_with_its_writes() {
        let (mut c, now, f) = t0();
        c.created(f.clone(), Timestamp(1), now);
        c.written(&f, Timestamp(2), now);
        c.written(&f, Timestamp(3), now);
        let p = c.closed(&f, now).unwrap();
        assert_eq!(
            (p.held, p.writes, p.timestamp),
            (Held::Created, 2, Timestamp(1))
        );
        assert!(c.is_empty());
    }

    #[test]
    fn a_burst_of_writes_gives_one_modified_per_interval_and_none_is_lost() {
        let (mut c, now, f) = t0();
        c.written(&f, Timestamp(1), now);
        assert_eq!(c.closed(&f, now).unwrap().writes, 1);
        for i in 0..100u64 {
            let at = now + Duration::from_millis(i * 5);
            c.written(&f, Timestamp(2), at);
            assert!(
                c.closed(&f, at).is_none(),
                "a second modified within the interval"
            );
        }
        assert!(c.due(now + Duration::from_millis(999)).is_empty());
        let due = c.due(now + SEC);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1.writes, 100);
        assert!(c.is_empty());
    }

    #[test]
    fn a_write_still_held_when_the_file_is_deleted_is_folded_or_emitted() {
        let (mut c, now, f) = t0();
        c.written(&f, Timestamp(1), now);
        c.closed(&f, now).unwrap();
        c.written(&f, Timestamp(2), now);
        assert_eq!(c.before_other(&f, now), Some(Before::Fold(1)));
        let later = now + 2 * SEC;
        c.written(&f, Timestamp(3), later);
        assert!(matches!(c.before_other(&f, later), Some(Before::Emit(p)) if p.writes == 1));
        assert_eq!(c.before_other(&f, later), None);
    }

    #[test]
    fn writes_of_a_creation_a_scan_reported_emit_nothing_until_the_first_close() {
        let (mut c, now, f) = t0();
        c.reported(f.clone(), Timestamp(1), now);
        c.written(&f, Timestamp(2), now);
        assert_eq!(c.closed(&f, now), None);
        assert!(c.is_empty());
        c.written(&f, Timestamp(3), now);
        assert_eq!(c.closed(&f, now).map(|p| p.held), Some(Held::Modified));
    }

    #[test]
    fn a_file_kept_open_is_reported_when_the_interval_ends() {
        let (mut c, now, f) = t0();
        c.created(f.clone(), Timestamp(1), now);
        assert!(c.due(now).is_empty());
        assert_eq!(c.due(now + SEC).len(), 1);
    }

    #[test]
    fn held_events_under_a_directory_are_taken_oldest_first() {
        let (mut c, now, _) = t0();
        c.created(PathBuf::from("/w/d/b"), Timestamp(1), now + SEC);
        c.created(PathBuf::from("/w/d/a"), Timestamp(1), now);
        c.created(PathBuf::from("/w/e"), Timestamp(1), now);
        let taken = c.take_under(Path::new("/w/d"), now);
        let names: Vec<_> = taken.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(names, [PathBuf::from("/w/d/a"), PathBuf::from("/w/d/b")]);
        assert!(!c.is_empty());
    }
}
