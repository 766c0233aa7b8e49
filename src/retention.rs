//! Retention: choosing and deleting whole sealed segments.
//!
//! A sealed segment is deleted when its newest event is older than the retention age, and,
//! oldest first, while the log exceeds the size cap. Never deleted: the last segment (the
//! active one, or the newest sealed one), and any segment holding ids inside the dedup window
//! (so deduplication answers the same before and after retention). Only retention deletes
//! files. Deletion unlinks whole files one at a time, oldest first, syncing the directory
//! after each: a crash leaves every segment either whole or gone, and a reader that has a
//! segment mapped keeps reading it until it lets go (unlinking keeps the pages alive).

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::event::{EventId, Timestamp};
use crate::segment::sync_dir;
use crate::stream::{SegmentInfo, Stream};

/// What retention keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// Delete sealed segments whose newest event is older than this.
    pub age: Option<Duration>,
    /// Delete the oldest sealed segments while the log is larger than this.
    pub bytes_max: Option<u64>,
    /// Ids above `last_id - dedup_window` are inside the dedup window.
    pub dedup_window: u64,
}

/// Why a segment is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// Its newest event is older than the retention age.
    Expired,
    /// The log was over its size cap.
    OverSizeCap,
}

/// A segment retention deletes (or, in a dry run, would delete).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Deletion {
    /// The segment.
    pub segment: SegmentInfo,
    /// Why.
    pub reason: Reason,
}

/// Why retention keeps a segment whose newest event is older than the retention age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kept {
    /// It is the last segment (the active one, or the newest sealed one): never deleted.
    Last,
    /// It is not sealed: the writer may still append to it.
    Unsealed,
    /// It holds ids inside the dedup window: deleting it would change what deduplication
    /// answers.
    DedupWindow,
}

/// A segment whose newest event is older than the retention age, which retention keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Keep {
    /// The segment.
    pub segment: SegmentInfo,
    /// Why it stays.
    pub why: Kept,
}

/// What retention under `config` would do now with `segments` (oldest first, as
/// [`Store::segments`](crate::Store::segments) lists them, which a read-only store can
/// do): the deletions [`Store::retain`](crate::Store::retain) would make, and each
/// segment past the retention age it keeps, with why. Pure: deletes nothing, so a dry run
/// needs no writer lock.
#[must_use]
pub fn plan(
    segments: &[SegmentInfo],
    config: &crate::config::Config,
    now: Timestamp,
) -> (Vec<Deletion>, Vec<Keep>) {
    let policy = Policy {
        age: config.retention_age,
        bytes_max: config.retention_bytes_max,
        dedup_window: config.dedup_window as u64,
    };
    let chosen = choose(segments, &policy, now);
    let cutoff = policy.age.map(|a| now.saturating_sub(a));
    let last_id = segments
        .iter()
        .filter_map(|s| s.ids.map(|(_, b)| b.0))
        .max()
        .unwrap_or(0);
    let window_start = last_id.saturating_sub(policy.dedup_window);
    let mut kept = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        let expired = cutoff.is_some_and(|c| s.time_range.is_none_or(|(_, newest)| newest < c));
        if !expired || chosen.iter().any(|(c, _)| c.segment_id == s.segment_id) {
            continue;
        }
        let why = if i + 1 == segments.len() {
            Kept::Last
        } else if !s.sealed {
            Kept::Unsealed
        } else {
            debug_assert!(s.ids.is_some_and(|(_, last)| last.0 > window_start));
            Kept::DedupWindow
        };
        kept.push(Keep {
            segment: s.clone(),
            why,
        });
    }
    let deletions = chosen
        .into_iter()
        .map(|(segment, reason)| Deletion { segment, reason })
        .collect();
    (deletions, kept)
}

/// The segments retention deletes (or would delete, in a dry run), oldest first.
pub(crate) fn choose(
    segments: &[SegmentInfo],
    policy: &Policy,
    now: Timestamp,
) -> Vec<(SegmentInfo, Reason)> {
    let Some((_, older)) = segments.split_last() else {
        return Vec::new();
    };
    let last_id = segments
        .iter()
        .filter_map(|s| s.ids.map(|(_, b)| b.0))
        .max()
        .unwrap_or(0);
    let window_start = last_id.saturating_sub(policy.dedup_window);
    let deletable = |s: &SegmentInfo| {
        s.sealed
            && s.ids
                .is_none_or(|(_, last)| policy.dedup_window == 0 || last.0 <= window_start)
    };
    let cutoff = policy.age.map(|a| now.saturating_sub(a));
    let mut chosen: Vec<(SegmentInfo, Reason)> = Vec::new();
    for s in older {
        let expired = cutoff.is_some_and(|c| s.time_range.is_none_or(|(_, newest)| newest < c));
        if expired && deletable(s) {
            chosen.push((s.clone(), Reason::Expired));
        }
    }
    if let Some(cap) = policy.bytes_max {
        let mut total: u64 = segments.iter().map(|s| s.file_len).sum();
        total -= chosen.iter().map(|(s, _)| s.file_len).sum::<u64>();
        for s in older {
            if total <= cap {
                break;
            }
            if chosen.iter().any(|(c, _)| c.segment_id == s.segment_id) || !deletable(s) {
                continue;
            }
            total -= s.file_len;
            chosen.push((s.clone(), Reason::OverSizeCap));
        }
        chosen.sort_by_key(|(s, _)| s.segment_id);
    }
    chosen
}

/// Deletes the chosen segment files, oldest first, syncing the directory after each.
pub(crate) fn delete(
    dir: &std::path::Path,
    chosen: &[(SegmentInfo, Reason)],
) -> Result<Vec<PathBuf>> {
    let mut deleted = Vec::new();
    for (s, _) in chosen {
        // Never while compaction renames a file over this one.
        let _files = crate::compact::FILES.lock();
        // Recorded first: a crash in between leaves a file the manifest no longer requires,
        // never a required one deleted. `format-spec/FORMAT.md#segment-manifest`
        crate::manifest::record_retired(dir, s.segment_id)?;
        match std::fs::remove_file(&s.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("delete", &s.path, e)),
        }
        sync_dir(dir)?;
        deleted.push(s.path.clone());
    }
    Ok(deleted)
}

/// Describes every segment of `stream` after catching up.
pub(crate) fn segment_infos(stream: &Stream) -> Result<Vec<SegmentInfo>> {
    // Bounds and slots only: deferred views stay deferred.
    stream.refresh_deferred()?;
    Ok(stream
        .views()
        .iter()
        .map(|v| {
            // Outside the closure: it runs under the view's read lock, and taking that lock
            // again on the same thread deadlocks once a writer waits for it (parking_lot is
            // fair).
            let file_len = v.file_len();
            v.with_summary(|s, slot| {
                let has = s.event_count > 0;
                SegmentInfo {
                    path: v.path.clone(),
                    segment_id: v.id,
                    events: s.event_count,
                    ids: has.then_some((EventId(s.first_id), EventId(s.last_id))),
                    time_range: has.then_some((Timestamp(s.min_ts_us), Timestamp(s.max_ts_us))),
                    file_len,
                    committed_len: slot.committed_len,
                    sealed: slot.sealed,
                }
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const DAY_US: i64 = 86_400_000_000;

    fn segment(id: u32, ids: (u64, u64), newest_us: i64, sealed: bool) -> SegmentInfo {
        SegmentInfo {
            path: PathBuf::from(format!("events-{id:08}.seg")),
            segment_id: id,
            events: ids.1 - ids.0 + 1,
            ids: Some((EventId(ids.0), EventId(ids.1))),
            time_range: Some((Timestamp(newest_us - 1), Timestamp(newest_us))),
            file_len: 1 << 20,
            committed_len: 1 << 19,
            sealed,
        }
    }

    /// `plan` deletes what `choose` deletes and names why each other expired segment stays:
    /// the dedup window, an unsealed segment, the last one; recent segments are not listed.
    #[test]
    fn plan_names_why_each_expired_segment_stays() {
        let now = Timestamp(1_000 * DAY_US);
        let old = now.0 - 40 * DAY_US;
        let mut config = Config {
            dedup_window: 100,
            ..Config::default()
        };
        let segments = [
            segment(1, (1, 100), old, true), // expired, outside the window: deleted
            segment(2, (101, 150), old, false), // expired but unsealed
            segment(3, (151, 200), now.0 - DAY_US, true), // recent
            segment(4, (201, 300), old, true), // expired, inside the window (ids > 200)
            segment(5, (301, 301), old, false), // the last one
        ];
        let (deleted, kept) = plan(&segments, &config, now);
        let deleted: Vec<_> = deleted
            .iter()
            .map(|d| (d.segment.segment_id, d.reason))
            .collect();
        assert_eq!(deleted, [(1, Reason::Expired)]);
        let kept: Vec<_> = kept.iter().map(|k| (k.segment.segment_id, k.why)).collect();
        assert_eq!(
            kept,
            [(2, Kept::Unsealed), (4, Kept::DedupWindow), (5, Kept::Last)]
        );
        config.retention_age = None;
        let (deleted, kept) = plan(&segments, &config, now);
        assert!(deleted.is_empty() && kept.is_empty(), "nothing expires");
    }
}
