//! Walking the watched tree again, where events may have been missed: after a directory
//! moved (its watches were dropped and made anew) and after an overflow (the kernel's queue,
//! or the daemon's queue from `notify`, lost events). What the walk finds is reported with
//! `found_by: "rescan"`, or held like a live event so that late events join it.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use selflog::Timestamp;
use serde_json::json;

use super::{Files, Out, MOVE_SLACK, WATCH_EACH_DIRECTORY};

/// How long before the first lost event, as the daemon saw it, a change may have happened
/// that the lost events would have reported.
const OVERFLOW_SLACK: Duration = Duration::from_secs(2);

impl Files {
    /// After a directory moved: `notify` dropped the watches under its old name at once,
    /// and those under the new name exist only now, so what changed below it in between
    /// is found by walking it: files born since the move are held as `created`, files
    /// written since as `modified` (held like live events, so the late events that reach
    /// the old watches join them), new directories reported `found_by: "rescan"`.
    pub(super) fn changed_since_move(
        &mut self,
        out: &mut Out<'_, '_>,
        moved_at: Timestamp,
        dir: &Path,
    ) {
        let micros = u64::try_from(moved_at.micros()).unwrap_or(0);
        // The move's time as `notify`'s thread saw it, less what that thread may lag.
        let since = (SystemTime::UNIX_EPOCH + Duration::from_micros(micros))
            .checked_sub(MOVE_SLACK)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            let mut found: Vec<(PathBuf, std::fs::Metadata)> = entries
                .filter_map(Result::ok)
                .filter_map(|e| Some((e.path(), e.metadata().ok()?)))
                .filter(|(p, _)| !self.exclude.is_excluded(p))
                .collect();
            found.sort_by(|a, b| a.0.cmp(&b.0));
            for (path, meta) in found {
                let born = meta.created().is_ok_and(|t| t >= since);
                let written = meta.modified().is_ok_and(|t| t >= since);
                let known = self.recent_created.contains_key(&path) || self.coalescer.holds(&path);
                if (born || written) && !known {
                    // Held like live events: the events that reach the old watches late
                    // (their paths moved on, see `handle`) join these instead of doubling
                    // them.
                    let now = Instant::now();
                    let t = out.sink.now();
                    if meta.is_dir() {
                        self.recent_created.insert(path.clone(), now);
                        self.emit(
                            out,
                            t,
                            "created",
                            &path,
                            true,
                            None,
                            &[("found_by", json!("rescan"))],
                        );
                    } else if born {
                        self.recent_created.insert(path.clone(), now);
                        self.coalescer.created(path.clone(), t, now);
                    } else {
                        self.coalescer.written(&path, t, now);
                    }
                }
                if meta.is_dir() {
                    stack.push(path);
                }
            }
        }
    }

    /// Checks whether events were lost on the way from `notify`, and repairs if so.
    pub fn check_overflow(&mut self, out: &mut Out<'_, '_>) {
        let lost_at = self.overflowed.swap(0, Ordering::SeqCst);
        if lost_at != 0 {
            self.overflow(out, "daemon", Timestamp(lost_at));
        }
    }

    /// Events were lost (`by` the kernel's queue or the daemon's): say so, then walk the
    /// tree again for what may have been missed.
    pub(super) fn overflow(&mut self, out: &mut Out<'_, '_>, by: &str, lost_at: Timestamp) {
        self.overflows += 1;
        // From when the loss began, less what the daemon's clock reading may lag.
        let micros = u64::try_from(lost_at.micros()).unwrap_or(0);
        let since = (SystemTime::UNIX_EPOCH + Duration::from_micros(micros))
            .checked_sub(OVERFLOW_SLACK)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        out.log.warn(&format!(
            "file events were lost ({by} queue overflow); rescanning the watched tree"
        ));
        out.sink.system(
            out.log,
            "overflow",
            &json!({"queue": by, "rescan": true, "overflows": self.overflows}),
        );
        let mut reported = 0u64;
        // Watched directories that are gone.
        let mut gone: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|d| d.symlink_metadata().is_err())
            .cloned()
            .collect();
        gone.sort();
        for d in gone {
            if self.watched.contains(&d) {
                let t = out.sink.now();
                self.removed(out, t, &d, true, &[("found_by", json!("rescan"))]);
                reported += 1;
            }
        }
        let roots = self.roots.clone();
        let mut stack: Vec<PathBuf> = roots
            .into_iter()
            .filter(|r| !self.exclude.is_excluded(r))
            .collect();
        while let Some(d) = stack.pop() {
            if WATCH_EACH_DIRECTORY && !self.watched.contains(&d) {
                // New since the overflow began: watched, reported with its contents.
                let t = out.sink.now();
                self.emit(
                    out,
                    t,
                    "created",
                    &d,
                    true,
                    None,
                    &[("found_by", json!("rescan"))],
                );
                self.watch_tree(&d, out, Some("rescan"));
                reported += 1;
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.filter_map(Result::ok) {
                let path = e.path();
                if self.exclude.is_excluded(&path) {
                    continue;
                }
                let Ok(meta) = e.metadata() else { continue };
                if meta.is_dir() {
                    stack.push(path);
                } else if !self.recent_created.contains_key(&path) {
                    // Held like live events: the events that follow the loss join them. A
                    // file born in the gap whose creation was lost but a later write was
                    // not is held as the creation (its held `modified` is part of it).
                    let now = Instant::now();
                    if meta.created().is_ok_and(|t| t >= since) {
                        let t = out.sink.now();
                        self.coalescer.cancel(&path);
                        self.recent_created.insert(path.clone(), now);
                        self.coalescer.created(path, t, now);
                        reported += 1;
                    } else if meta.modified().is_ok_and(|t| t >= since)
                        && !self.coalescer.holds(&path)
                    {
                        let t = out.sink.now();
                        self.coalescer.written(&path, t, now);
                        reported += 1;
                    }
                }
            }
        }
        out.sink.system(
            out.log,
            "rescan_done",
            &json!({"queue": by, "reported": reported, "watched": self.watched_count()}),
        );
    }
}
