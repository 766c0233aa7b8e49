//! `verify` of the small files beside the event log: `counters`, the cursor files, the
//! dedup window image, and the two sidecar streams (`patterns/`, `stats/`), each checked
//! with the checks its own reader makes.
//!
//! Damage in any of them is a [`Problem`] naming the file and saying what it costs and
//! what repairs it; none of them stops the check of the others. None of them is needed to
//! read the event log: a damaged `counters` costs the count of duplicates dropped (the log
//! cannot rebuild it), a damaged cursor only that cursor, a damaged image only the time of
//! the next writable open (it is a cache), a damaged sidecar only its own reads.
//! `format-spec/FORMAT.md#counters`, `#cursors`, `#dedup-window-image`, `#sidecars`

use std::io::Read as _;
use std::path::Path;

use crate::config::DEDUP_WINDOW_MAX;
use crate::cursor::COUNTERS_FILE;
use crate::dedup::{DedupWindow, DEDUP_IMAGE_FILE, IMAGE_HEADER_LEN, IMAGE_MAGIC};
use crate::error::Error;
use crate::event::EventId;
use crate::format::crc32;
use crate::layout::META_FILE;
use crate::maintenance::{PATTERNS_DIR, STATS_DIR};
use crate::scan::get_in;
use crate::segment::StreamKind;
use crate::stream::Stream;

use super::{verify, Problem, VerifyReport};

/// Checks the small files of the store (or sidecar) in `dir`, whose event stream's largest
/// id is `last_id` as `verify` found it, adding what is wrong to `report`.
pub(super) fn verify_small_files(dir: &Path, last_id: u64, report: &mut VerifyReport) {
    let stream = Stream::new(dir, StreamKind::Events, None);
    // Damage the segment checks reported may keep the view from loading: the checks below
    // that need events are then skipped, and the rest still made.
    let stream = stream.refresh().is_ok().then_some(&stream);
    verify_counters(dir, report);
    verify_cursors(dir, report);
    verify_dedup_image(dir, last_id, stream, report);
    verify_sidecars(dir, report);
}

/// The problem of an error reading a small file: its own offset when it names one.
fn problem(path: &Path, err: Error, consequence: &str) -> Problem {
    match err {
        Error::Corrupt { path, offset, what } => Problem {
            path,
            offset,
            what: format!("{what}; {consequence}"),
        },
        e => Problem {
            path: path.to_path_buf(),
            offset: 0,
            what: format!("{e}; {consequence}"),
        },
    }
}

fn verify_counters(dir: &Path, report: &mut VerifyReport) {
    if let Err(e) = crate::cursor::read_duplicates(dir) {
        report.problems.push(problem(
            &dir.join(COUNTERS_FILE),
            e,
            "the count of duplicates dropped cannot be rebuilt from the log: `inspect stats` \
             shows it as unknown, and the next writable open restarts it at 0 and rewrites the file",
        ));
    }
}

/// The last committed id as a fresh look at the stream finds it: a writer may have
/// appended, and a consumer committed past what `verify` saw, since the segments were
/// checked.
fn last_id_now(stream: &Stream) -> Option<u64> {
    stream.refresh().ok()?;
    stream.views().iter().rev().find_map(|v| {
        v.with_index(|ix, _| (ix.summary.event_count > 0).then_some(ix.summary.last_id))
    })
}

fn verify_cursors(dir: &Path, report: &mut VerifyReport) {
    let list = match crate::cursor::list(dir) {
        Ok(list) => list,
        Err(e) => {
            let path = dir.join(crate::cursor::CURSOR_DIR);
            report.problems.push(problem(
                &path,
                e,
                "no cursor could be read; consumers cannot resume",
            ));
            return;
        }
    };
    for d in list.damaged {
        report.problems.push(problem(
            &d.path,
            d.error,
            &format!(
                "cursor {:?} cannot be read (`inspect cursors` lists the others); the consumer's \
                 next commit rewrites it, and removing the file makes it start over from the \
                 first event",
                d.name
            ),
        ));
    }
    // A cursor past the last event is reported by the continuity check
    // (`recovery::cursors_past_end`), with the events that are gone.
}

/// Bytes an image holds per bucket: 8 entries of 8 bytes and an overflow count
/// (`format-spec/FORMAT.md#dedup-window-image`).
const IMAGE_BUCKET_LEN: u64 = 65;

/// The capacity of the window an image of `len` bytes holds, from its header when that is
/// sound and agrees with the length, else the largest the length allows (so the image's own
/// checks say what is wrong); `None` when no window image has this length.
fn image_capacity(path: &Path, len: u64) -> Option<usize> {
    let body = len.checked_sub(IMAGE_HEADER_LEN as u64 + 4)?;
    if body == 0 || body % IMAGE_BUCKET_LEN != 0 {
        return None;
    }
    let buckets = body / IMAGE_BUCKET_LEN;
    let guess = usize::try_from(buckets.checked_mul(4)?).ok()?;
    // No writer has a larger window; reading one would allocate as much as the file holds.
    if guess > DEDUP_WINDOW_MAX.next_multiple_of(4) {
        return None;
    }
    let mut h = [0u8; IMAGE_HEADER_LEN];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut h));
    if read.is_err() {
        return Some(guess);
    }
    let word = |at: usize| u64::from_le_bytes(h[at..at + 8].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(h[60..64].try_into().expect("4 bytes"));
    let capacity = word(16);
    let sound = &h[0..8] == IMAGE_MAGIC && crc == crc32(&[&h[0..60]]);
    if sound && capacity.div_ceil(4) == buckets {
        usize::try_from(capacity).ok()
    } else {
        Some(guess)
    }
}

fn verify_dedup_image(
    dir: &Path,
    last_id: u64,
    stream: Option<&Stream>,
    report: &mut VerifyReport,
) {
    let path = dir.join(DEDUP_IMAGE_FILE);
    let len = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            report
                .problems
                .push(image_problem(&path, &format!("cannot stat it: {e}")));
            return;
        }
    };
    let Some(capacity) = image_capacity(&path, len) else {
        report.problems.push(image_problem(
            &path,
            &format!("it is {len} bytes, not the length of any window image this build writes"),
        ));
        return;
    };
    if let Err(why) = check_image(&path, capacity, len, last_id, stream) {
        report.problems.push(image_problem(&path, &why));
    }
}

/// The checks of a writable open's `load_dedup_image`, but for one: an image whose newest
/// event is no longer in the log is outdated, not damaged. A running writer's retention
/// deletes old segments while the image of the last close stays on disk until the next
/// close replaces it; the next writable open rebuilds the window all the same.
fn check_image(
    path: &Path,
    capacity: usize,
    len: u64,
    last_id: u64,
    stream: Option<&Stream>,
) -> std::result::Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let mut input = std::io::BufReader::with_capacity(1 << 20, file);
    let (_, header) = DedupWindow::read_image(capacity, len, &mut input)?;
    // The segments cannot be read: the image's own checks are all that can be made.
    let Some(stream) = stream else {
        return Ok(());
    };
    // The log may have grown since the segments were checked, never shrunk.
    let last_id = last_id_now(stream).unwrap_or(0).max(last_id);
    if header.newest > last_id {
        return Err(format!(
            "it covers events up to {}, past the store's last ({last_id})",
            header.newest
        ));
    }
    match get_in(stream, EventId(header.newest)) {
        Ok(Some(e)) if e.hash != header.newest_hash => Err(format!(
            "event {} is not the one it was written after (an image of another store, or of \
             events since replaced)",
            header.newest
        )),
        // Deleted by retention since (outdated), or unreadable (a damaged segment, which
        // the segment checks report).
        _ => Ok(()),
    }
}

fn image_problem(path: &Path, why: &str) -> Problem {
    Problem {
        path: path.to_path_buf(),
        offset: 0,
        what: format!(
            "dedup window image refused: {why}; it is a cache: the next writable open rebuilds \
             the window from the segments and replaces it"
        ),
    }
}

/// Whether `dir` holds at most what a writable open leaves before it writes `selflog.meta`
/// (`format-spec/FORMAT.md#store-meta`): `LOCK` and `selflog.meta.tmp`.
fn creation_interrupted(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().all(|e| {
            let name = e.file_name();
            name == "LOCK" || name == "selflog.meta.tmp"
        })
    })
}

/// Checks each sidecar as `verify` checks a store (segments, frames, checksums, footers,
/// and its own small files). A store without sidecars (never opened for writing with them)
/// has neither directory, which is not damage; one of the two missing is.
fn verify_sidecars(dir: &Path, report: &mut VerifyReport) {
    let dirs = [dir.join(PATTERNS_DIR), dir.join(STATS_DIR)];
    let present = dirs.iter().filter(|d| d.exists()).count();
    if present == 0 {
        return;
    }
    for d in &dirs {
        if !d.join(META_FILE).exists() && creation_interrupted(d) {
            // A writable open killed while creating the sidecar: the next one completes
            // it, and until then neither sidecar is read. Not damage.
            continue;
        }
        if !d.exists() {
            report.problems.push(Problem {
                path: d.clone(),
                offset: 0,
                what: "sidecar directory missing while the other exists: patterns and system \
                       stats cannot be read until a writable open creates it again, empty"
                    .into(),
            });
            continue;
        }
        let consequence = "this sidecar can be neither read nor written (a writable open appends \
                           events without writing patterns or stats); the event log is not affected";
        match verify(d) {
            Ok(r) => report.problems.extend(r.problems),
            Err(Error::NotAStore { reason, .. }) => report.problems.push(Problem {
                path: d.join(META_FILE),
                offset: 0,
                what: format!("{reason}; {consequence}"),
            }),
            Err(e) => report.problems.push(problem(d, e, consequence)),
        }
    }
}
