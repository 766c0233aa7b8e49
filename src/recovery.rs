//! Open-time recovery of the writer; `verify`, the full check of a store, is in
//! `recovery/verify.rs`.
//!
//! Recovery trusts sealed segments (header, sealed commit slot and checksummed footer) and
//! scans only the unsealed last segment up to its published committed end. A frame that
//! fails before the slot's durable length is corruption and stops the open with the file
//! and offset; one that fails after it was committed but never synced, and lost to a power
//! loss in `Buffered` mode: it and everything after it are discarded and reported. Bytes
//! past the committed end are a torn tail, which recovery zeroes (never truncates, since a
//! reader in another process may have the file mapped) and reports.
//! `format-spec/FORMAT.md#recovery`
//!
//! Recovery also brings back what is derived from the events: the dedup window of a
//! writable open ([`open_dedup`]), read from its image or rebuilt by `dedup`, with where it
//! came from recorded in [`OpenReport`].

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::dedup::{rebuild_dedup, DedupImageRead, DedupWindow, DEDUP_IMAGE_FILE};
use crate::error::{Error, Result};
use crate::format::ManifestEntry;
use crate::format::{SegmentHeader, SEGMENT_HEADER_LEN};
use crate::index::SegmentIndex;
use crate::manifest::{self, Continuity, Finding, MANIFEST_FILE};
use crate::segment::{
    check_identity, image, map, read_header, scan_frames, sealed_len, ActiveSegment, StreamKind,
};
use crate::stream::{read_footer, Stream};
use crate::writer::Recovered;

mod small_files;
mod verify;

pub use verify::{verify, Problem, VerifyReport};

/// What opening a store for writing found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenReport {
    /// Bytes past the committed end of the unsealed segment that a crash left behind and
    /// recovery zeroed. They were never acknowledged by a `flush`.
    pub torn_tail_bytes: u64,
    /// Leftover temporary files of an interrupted segment creation, removed.
    pub removed_temp_files: usize,
    /// Events found in the unsealed segment.
    pub tail_events: u64,
    /// Bytes of frames that were committed but never synced and did not survive (a power
    /// loss in `Buffered` mode). They were discarded; flushed-only events can be among them.
    pub lost_unsynced_bytes: u64,
    /// When the deduplication window was read from the image the last clean close left
    /// (`dedup.window`), the newest event that image covered; `None` when it was rebuilt
    /// from the segments alone.
    pub dedup_image_id: Option<u64>,
    /// Why an image that was there could not be used (damage, another window size, events
    /// it does not match); the window was rebuilt from the segments instead.
    pub dedup_image_rejected: Option<String>,
    /// Events read from the segments to bring the window up to date: those after the
    /// image, or the whole window without one.
    pub dedup_events_read: u64,
    /// Bytes of the unsealed segment's frames the open scanned: those after the segment's
    /// index image (`events-DDDDDDDD.idx`), or all of them without a usable one.
    pub tail_scanned_bytes: u64,
    /// Why the unsealed segment's index image could not be used (damaged, stale, written
    /// for another segment or other frames); it was removed and the frames scanned.
    pub index_image_rejected: Option<String>,
    /// Why the `counters` file could not be read (garbage, wrong length, checksum): the
    /// count of duplicates dropped is kept nowhere else and cannot be rebuilt from the log,
    /// so it restarted at 0 and a sound file replaced the damaged one.
    pub counters_reset: Option<String>,
    /// Damage that kept a pattern or stats sidecar from being opened for writing (which
    /// would have refused the open): the store was opened without writing either sidecar,
    /// so `record_pattern` and `record_system_stats` fail and no stats records are taken;
    /// the events are appended as ever, and what is intact of the sidecars is still read.
    pub sidecars_unwritable: Option<Problem>,
    /// What the open noticed that a caller should be told: for a read-only open, segments
    /// and events the store recorded that are gone (a writable open refuses those with
    /// [`Error::Incomplete`]); for both, a damaged segment manifest (rebuilt by a writable
    /// open) and cursors past the last event that exists.
    pub warnings: Vec<Problem>,
}

impl OpenReport {
    /// One line per finding a user should be told about (a file of the store was damaged
    /// or lost and something was lost or left out: [`OpenReport::warnings`], a reset
    /// duplicate count, unwritable sidecars), each naming the file; empty for a normal open.
    /// What recovery repairs without loss (a torn tail, a refused dedup image) is not here.
    pub fn warning_lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .warnings
            .iter()
            .map(|p| format!("{}: {}", p.path.display(), p.what))
            .collect();
        if let Some(why) = &self.counters_reset {
            out.push(format!("duplicates dropped count reset: {why}"));
        }
        if let Some(p) = &self.sidecars_unwritable {
            out.push(format!(
                "patterns and system stats are not being recorded: {}: {} at byte offset {}",
                p.path.display(),
                p.what,
                p.offset
            ));
        }
        out
    }
}

/// Removes leftovers of segment creations and manifest updates a crash interrupted,
/// returning how many; and the index images of segments sealed since (only the newest
/// segment can still need one), and those of index image writes.
fn remove_temp_files(dir: &Path, kind: StreamKind) -> Result<usize> {
    let mut removed = 0;
    let manifest_tmp = dir.join(format!("{MANIFEST_FILE}.tmp"));
    if std::fs::remove_file(&manifest_tmp).is_ok() {
        removed += 1;
    }
    let mut images = Vec::new();
    let mut newest = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(id) = kind.parse_file_name(&name) {
            newest = newest.max(id);
        } else if let Some(stem) = name.strip_suffix(".tmp") {
            if kind.parse_file_name(stem).is_some() {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
                removed += 1;
            } else if let Some(stem) = stem.strip_suffix(".idx") {
                if kind.parse_file_name(&format!("{stem}.seg")).is_some() {
                    let path = entry.path();
                    std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
                }
            }
        } else if let Some(stem) = name.strip_suffix(".idx") {
            if let Some(id) = kind.parse_file_name(&format!("{stem}.seg")) {
                images.push((id, entry.path()));
            }
        }
    }
    for (id, path) in images {
        if id != newest {
            std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
        }
    }
    Ok(removed)
}

/// Checks that every segment before the last is sealed: the writer seals a segment before
/// it creates the next, so anything else means the store was damaged or tampered with.
/// `present` is what the continuity check read of each header, under the writer lock
/// this open holds (nothing has changed them since); a segment not in it is read again.
fn check_sealed(
    dir: &Path,
    kind: StreamKind,
    sealed_ids: &[u32],
    present: &BTreeMap<u32, crate::manifest::Present>,
) -> Result<()> {
    for &id in sealed_ids {
        if present.get(&id).is_some_and(|p| p.sealed) {
            continue;
        }
        let path = dir.join(kind.file_name(id));
        let file = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        let (header, slot) = read_header(&file, &path)?;
        check_identity(&header, kind, id, &path)?;
        if !slot.sealed {
            return Err(Error::corrupt(
                &path,
                0,
                "segment before the last is not sealed; run `selflog inspect verify`",
            ));
        }
    }
    Ok(())
}

/// Whether a writable open refuses a store that lost segments or events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnLoss {
    /// Refuse with [`Error::Incomplete`] (every open of the library).
    Refuse,
    /// Go on (tests of the second line of defence: ids are still never reused).
    #[cfg_attr(not(test), expect(dead_code, reason = "only tests bypass the refusal"))]
    Proceed,
}

/// The one line an [`Error::Incomplete`] carries: the first few losses, and how many more.
fn describe_losses(losses: &[Finding]) -> String {
    const SHOWN: usize = 3;
    let mut what: Vec<String> = losses
        .iter()
        .take(SHOWN)
        .map(|f| format!("{}: {}", f.path.display(), f.what))
        .collect();
    if losses.len() > SHOWN {
        what.push(format!(
            "and {} more (`selflog inspect verify` lists them)",
            losses.len() - SHOWN
        ));
    }
    what.join("; ")
}

fn to_problem(f: Finding) -> Problem {
    Problem {
        path: f.path,
        offset: f.offset,
        what: f.what,
    }
}

/// The cursors of the store in `dir` whose position is past `log_end`, the last event that
/// exists: their consumer saw events that are gone. A cursor file that cannot be read is
/// left to the cursor checks.
fn cursors_past_end(dir: &Path, log_end: u64) -> Vec<Problem> {
    crate::cursor::list(dir)
        .map(|l| l.sound)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, p)| p.0 > log_end)
        .map(|(name, p)| Problem {
            path: dir.join(crate::cursor::CURSOR_DIR).join(&name),
            offset: 16,
            what: format!(
                "cursor {name:?} is at event {p}, past the last event that exists ({log_end}): events {}..{p} are gone",
                log_end + 1
            ),
        })
        .collect()
}

/// What a read-only open of the stream in `dir` finds before it reads: what to warn about,
/// and which segment files to skip.
pub(crate) struct ReadOnlyCheck {
    /// Lost segments and events (unreadable files among them), a damaged manifest,
    /// cursors past the end.
    pub warnings: Vec<Problem>,
    /// Segment files that cannot be read at all, each named in `warnings` with what it
    /// held: readers skip them ([`Stream::skipping`]).
    pub unreadable: Vec<u32>,
    /// The segment manifest as the check read it, if it could: readers open the sealed
    /// segments it describes deferred ([`Stream::deferring`]).
    pub manifest: Option<crate::format::Manifest>,
    /// The segment files the check opened and read the headers of, for the views.
    pub opened: BTreeMap<u32, crate::segment::OpenedSegment>,
}

/// What a read-only open of the stream in `dir` warns about: lost segments and events
/// (unreadable files among them), a damaged manifest, cursors past the end; and which
/// files it must skip. Reads headers only.
pub(crate) fn read_only_check(dir: &Path) -> Result<ReadOnlyCheck> {
    let c = manifest::check(dir, StreamKind::Events)?;
    let log_end = c
        .present
        .values()
        .map(|p| if p.event_count > 0 { p.last_id } else { 0 })
        .max()
        .unwrap_or(0);
    let mut warnings: Vec<Problem> = c.losses.into_iter().map(to_problem).collect();
    if let Some(e) = c.manifest_error {
        warnings.push(Problem {
            path: dir.join(MANIFEST_FILE),
            offset: 0,
            what: format!("segment manifest unreadable ({e}); losses cannot be told"),
        });
    }
    warnings.extend(cursors_past_end(dir, log_end));
    Ok(ReadOnlyCheck {
        warnings,
        unreadable: c.unreadable,
        manifest: c.manifest,
        opened: c.opened,
    })
}

/// The manifest entry of a sealed segment, from its footer's summary.
fn sealed_entry(dir: &Path, kind: StreamKind, id: u32) -> Result<ManifestEntry> {
    let path = dir.join(kind.file_name(id));
    let file = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
    let (header, slot) = read_header(&file, &path)?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat", &path, e))?
        .len();
    let len = sealed_len(&file, &slot, len, &path)?;
    let m = map::map_read(&file, len, &path)?;
    let (footer, _) = crate::stream::read_footer_deferred(&m, &slot, &path)?;
    let s = footer.summary;
    Ok(ManifestEntry {
        segment_id: id,
        sealed: true,
        first_id: if s.event_count > 0 {
            s.first_id
        } else {
            header.base_id
        },
        last_id: s.last_id,
        event_count: s.event_count,
        min_ts_us: if s.event_count > 0 {
            s.min_ts_us
        } else {
            header.base_timestamp_us
        },
        max_ts_us: if s.event_count > 0 {
            s.max_ts_us
        } else {
            header.base_timestamp_us
        },
    })
}

/// Records in the manifest what a writable open found present, reading the footer summary
/// of each sealed segment the manifest does not describe yet (all of them, the first time a
/// store written before the manifest existed is opened for writing).
fn record_present(dir: &Path, kind: StreamKind, c: &Continuity, id_floor: u64) -> Result<()> {
    let mut summaries = BTreeMap::new();
    for (&k, p) in &c.present {
        let known = c.manifest.as_ref().and_then(|m| {
            m.entries
                .iter()
                .find(|e| e.segment_id == k && e.sealed == p.sealed && e.first_id == p.base_id)
        });
        let entry = match known {
            Some(e) => *e,
            None if p.sealed => sealed_entry(dir, kind, k)?,
            None => ManifestEntry {
                segment_id: k,
                sealed: false,
                first_id: p.base_id,
                last_id: 0,
                event_count: 0,
                min_ts_us: p.base_ts_us,
                max_ts_us: p.base_ts_us,
            },
        };
        summaries.insert(k, entry);
    }
    let m = manifest::reconcile(c.manifest.as_ref(), &c.present, &summaries, id_floor);
    if c.manifest.as_ref() != Some(&m) {
        manifest::write(dir, &m)?;
    }
    Ok(())
}

/// The durable clearing of the unsealed segment's index image's clean flag
/// (`image::mark_not_clean`: a write and an `fdatasync`, ~0.5-0.8 ms of wall time), on a
/// helper thread while the open goes on with work that writes nothing to the segment: the
/// views, the dedup window, the sidecars. The open waits for it ([`ImageMark::wait`])
/// before the writer thread starts, so the flag is still cleared durably before a writer
/// writes anything past what the image covers; a mark dropped without waiting is waited
/// for all the same.
pub(crate) struct ImageMark(Option<std::thread::JoinHandle<Result<()>>>);

impl ImageMark {
    fn none() -> ImageMark {
        ImageMark(None)
    }

    /// Starts clearing the flag of the image of the segment at `path` (done here when no
    /// thread can be started).
    fn start(path: &Path) -> Result<ImageMark> {
        let owned = path.to_path_buf();
        match std::thread::Builder::new()
            .name("selflog-image-mark".into())
            .spawn(move || image::mark_not_clean(&owned))
        {
            Ok(t) => Ok(ImageMark(Some(t))),
            Err(_) => image::mark_not_clean(path).map(|()| ImageMark::none()),
        }
    }

    /// Waits until the flag is cleared durably (or the image removed).
    ///
    /// # Errors
    /// As `image::mark_not_clean`.
    pub(crate) fn wait(mut self) -> Result<()> {
        match self.0.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(Error::io(
                    "clear the clean flag of the index image of",
                    Path::new("the unsealed segment"),
                    std::io::Error::other("the thread panicked"),
                ))
            }),
            None => Ok(()),
        }
    }
}

impl Drop for ImageMark {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            let _ = t.join();
        }
    }
}

/// Recovers the event stream of the store in `dir` for a writer holding the lock, waiting
/// for everything it writes.
#[cfg(test)]
pub(crate) fn recover(dir: &Path, on_loss: OnLoss) -> Result<(Recovered, OpenReport)> {
    let r = recover_marking(dir, on_loss)?;
    r.mark.wait()?;
    Ok((r.recovered, r.report))
}

/// What a writable open's recovery leaves the open: the recovered tail, the report, the
/// pending clearing of the index image's clean flag, and the sealed segments' files.
pub(crate) struct Recovery {
    /// The unsealed segment and its index, the last id.
    pub recovered: Recovered,
    /// What recovery found and repaired.
    pub report: OpenReport,
    /// The clearing of the index image's clean flag, waited for before any writer writes.
    pub mark: ImageMark,
    /// The sealed segments' files (all but the newest), open with their headers and sealed
    /// slots read by the continuity check, under the writer lock this open holds: nothing
    /// changes them before the writer starts, so the stream's views take them
    /// ([`Stream::preopened`]) instead of opening and reading each again.
    pub sealed_files: BTreeMap<u32, crate::segment::OpenedSegment>,
}

/// Recovers the event stream of the store in `dir` for a writer holding the lock. The
/// clearing of the index image's clean flag may still be running: the caller waits for the
/// [`ImageMark`] before any writer writes.
pub(crate) fn recover_marking(dir: &Path, on_loss: OnLoss) -> Result<Recovery> {
    let kind = StreamKind::Events;
    let mut report = OpenReport {
        removed_temp_files: remove_temp_files(dir, kind)?,
        ..OpenReport::default()
    };
    let mut continuity = manifest::check(dir, kind)?;
    if let Some(e) = &continuity.manifest_error {
        if matches!(e, Error::UnsupportedVersion { .. }) {
            return Err(manifest::read(dir).expect_err("read failed just before"));
        }
        report.warnings.push(Problem {
            path: dir.join(MANIFEST_FILE),
            offset: 0,
            what: format!(
                "segment manifest unreadable ({e}); rebuilt from the segments present, so losses before now cannot be told"
            ),
        });
    }
    if !continuity.losses.is_empty() {
        if on_loss == OnLoss::Refuse {
            return Err(Error::Incomplete {
                path: dir.to_path_buf(),
                what: describe_losses(&continuity.losses),
            });
        }
        report
            .warnings
            .extend(continuity.losses.iter().cloned().map(to_problem));
    }
    let log_end = continuity
        .present
        .values()
        .map(|p| if p.event_count > 0 { p.last_id } else { 0 })
        .max()
        .unwrap_or(0);
    // Ids are never handed out twice: not below what the manifest recorded (whatever file
    // was lost), nor below a cursor (its consumer saw those ids).
    let cursor_max = crate::cursor::list(dir)
        .map(|l| l.sound)
        .unwrap_or_default()
        .iter()
        .map(|(_, id)| id.0)
        .max()
        .unwrap_or(0);
    let id_floor = continuity.id_floor.max(cursor_max);
    report.warnings.extend(cursors_past_end(dir, log_end));
    let (mut recovered, report, mark) =
        recover_segments(dir, kind, report, on_loss, &continuity.present)?;
    record_present(dir, kind, &continuity, id_floor.max(recovered.last_id))?;
    recovered.last_id = recovered.last_id.max(id_floor);
    recovered.high_water = manifest::read(dir)?.map_or(0, |m| m.id_high_water);
    // The newest file is left out: recovery may have rewritten its slot (lost frames
    // discarded) or found it sealed since; its view reads it afresh.
    let mut sealed_files = std::mem::take(&mut continuity.opened);
    sealed_files.retain(|id, o| *id < recovered.last_segment_id && o.slot.sealed);
    Ok(Recovery {
        recovered,
        report,
        mark,
        sealed_files,
    })
}

/// [`recover`] past the continuity check: the sealed segments' headers, and the unsealed
/// tail scanned and repaired.
fn recover_segments(
    dir: &Path,
    kind: StreamKind,
    mut report: OpenReport,
    on_loss: OnLoss,
    present: &BTreeMap<u32, crate::manifest::Present>,
) -> Result<(Recovered, OpenReport, ImageMark)> {
    let ids = Stream::list(dir, kind)?;
    let Some((&last, sealed_ids)) = ids.split_last() else {
        return Ok((
            Recovered {
                active: None,
                last_id: 0,
                last_segment_id: 0,
                high_water: 0,
            },
            report,
            ImageMark::none(),
        ));
    };
    if on_loss == OnLoss::Refuse {
        check_sealed(dir, kind, sealed_ids, present)?;
    }
    let path = dir.join(kind.file_name(last));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    let (header, slot) = read_header(&file, &path)?;
    check_identity(&header, kind, last, &path)?;
    if slot.sealed {
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", &path, e))?
            .len();
        let len = sealed_len(&file, &slot, len, &path)?;
        let m = map::map_read(&file, len, &path)?;
        let footer = read_footer(&m, &slot, &path)?;
        // Sealed after its last image was written: the footer holds its index now.
        image::remove(&path, false)?;
        return Ok((
            Recovered {
                active: None,
                last_id: footer.summary.last_id,
                last_segment_id: last,
                high_water: 0,
            },
            report,
            ImageMark::none(),
        ));
    }
    let mut active = ActiveSegment::reopen(path.clone(), file, header, slot)?;
    let (index, from, image_clean) = scan_active(&mut active, &mut report)?;
    let clean_image = image_clean && from == active.slot.committed_len;
    clear_tail(&mut active, clean_image, &mut report)?;
    // Cleared, durably, before this writer writes anything past it (the open waits for
    // the mark before it starts the writer).
    let mark = if image_clean {
        ImageMark::start(&path)?
    } else {
        ImageMark::none()
    };
    report.tail_events = index.summary.event_count;
    let last_id = if report.lost_unsynced_bytes > 0 {
        // Ids handed out for the discarded events are not reused: a consumer may have seen
        // them.
        slot.last_id
            .max(index.summary.last_id)
            .max(header.base_id - 1)
    } else if index.summary.event_count > 0 {
        index.summary.last_id
    } else {
        // An empty segment: ids continue from just before its base.
        header.base_id - 1
    };
    Ok((
        Recovered {
            active: Some((active, index)),
            last_id,
            last_segment_id: last,
            high_water: 0,
        },
        report,
        mark,
    ))
}

/// Scans the unsealed segment's committed frames (after its index image, when usable) into
/// its index, discarding frames a power loss destroyed past `durable_len`. Returns the
/// index, where the scan started and whether the image was clean.
fn scan_active(
    active: &mut ActiveSegment,
    report: &mut OpenReport,
) -> Result<(SegmentIndex, u64, bool)> {
    let (path, header, slot) = (&active.path.clone(), active.header, active.slot);
    let committed = map::map_read(active.file(), slot.committed_len, path)?;
    let (mut index, from, image_last_frame, image_clean) =
        usable_image(path, &header, &slot, &committed, report)?;
    let scanned = scan_frames(
        &committed,
        from,
        slot.committed_len,
        &header,
        &mut index,
        slot.commit_time_us,
        path,
    );
    drop(committed);
    match scanned {
        Err((frame_at, err)) => {
            if frame_at < slot.durable_len {
                return Err(err);
            }
            report.tail_scanned_bytes = frame_at - from;
            // Committed but never synced: a power loss in Buffered mode lost these frames.
            // `format-spec/FORMAT.md#recovery`
            report.lost_unsynced_bytes = slot.committed_len - frame_at;
            let s = &index.summary;
            active.truncate_published(
                frame_at,
                s.event_count,
                if s.event_count > 0 { s.last_id } else { 0 },
            )?;
        }
        Ok(last_frame) => {
            report.tail_scanned_bytes = slot.committed_len - from;
            active.last_frame_at = last_frame.unwrap_or(image_last_frame);
            check_slot_counts(&index, &slot, path)?;
        }
    }
    Ok((index, from, image_clean))
}

/// Zeroes the unsealed segment's torn tail and reports it, unless `clean_image`: a clean
/// close wrote an image over every committed frame and wrote nothing after them, so there
/// is no torn tail to look for in the rest of the file (up to 64 MiB read).
fn clear_tail(
    active: &mut ActiveSegment,
    clean_image: bool,
    report: &mut OpenReport,
) -> Result<()> {
    if !clean_image {
        // The zeroed span includes the discarded frames, which are reported separately.
        report.torn_tail_bytes = active
            .zero_tail(active.slot.committed_len)?
            .saturating_sub(report.lost_unsynced_bytes);
    }
    Ok(())
}

/// The index the unsealed segment's image holds, where scanning goes on, the frame the
/// image ends at and whether a clean close wrote it; or an empty index from the first
/// frame on when there is no usable image (a refused one is removed and reported: were it
/// to pass its checks later, after a slot lost to a power loss is written again, its clean
/// flag would vouch for a tail it never saw). `format-spec/FORMAT.md#segment-index-image`
fn usable_image(
    path: &Path,
    header: &SegmentHeader,
    slot: &crate::format::CommitSlot,
    committed: &[u8],
    report: &mut OpenReport,
) -> Result<(SegmentIndex, u64, u64, bool)> {
    match image::load(path, header, slot, committed) {
        Ok(Some(l)) => Ok((l.index, l.covered_len, l.last_frame_offset, l.clean)),
        Ok(None) => Ok((SegmentIndex::default(), SEGMENT_HEADER_LEN as u64, 0, false)),
        Err(why) => {
            image::remove(path, true)?;
            report.index_image_rejected = Some(why);
            Ok((SegmentIndex::default(), SEGMENT_HEADER_LEN as u64, 0, false))
        }
    }
}

/// Starts reading the dedup window image of the store in `dir` for a window of `capacity`
/// ids, on a helper thread while the open recovers the segments; [`open_dedup`] finishes
/// it.
pub(crate) fn start_dedup_image(dir: &Path, capacity: usize) -> DedupImageRead {
    DedupImageRead::start(&dir.join(DEDUP_IMAGE_FILE), capacity)
}

/// The deduplication window of a store opened for writing: the image the last clean close
/// left (`image`, started by [`start_dedup_image`]), brought up to date with the events
/// stored after it, or else rebuilt from the segments. `last_id` is the store's last
/// committed id. Records in `report` where the window came from.
pub(crate) fn open_dedup(
    dir: &Path,
    stream: &Stream,
    capacity: usize,
    last_id: u64,
    image: DedupImageRead,
    report: &mut OpenReport,
) -> Result<DedupWindow> {
    let path = dir.join(DEDUP_IMAGE_FILE);
    // What a close killed while writing the image left (the next close would truncate it).
    let _ = std::fs::remove_file(dir.join(format!("{DEDUP_IMAGE_FILE}.tmp")));
    if capacity == 0 {
        // A stale image of an earlier window is only dead weight on the disk.
        let _ = std::fs::remove_file(&path);
        return Ok(DedupWindow::new(0));
    }
    let image = match image.finish(stream, last_id) {
        Ok(image) => image,
        Err(why) => {
            report.dedup_image_rejected = Some(format!("{}: {why}", path.display()));
            None
        }
    };
    report.dedup_image_id = image.as_ref().and_then(DedupWindow::newest);
    let (window, read) = rebuild_dedup(stream, capacity, image)?;
    report.dedup_events_read = read;
    Ok(window)
}

/// The frames read from a segment (`index`) must be what its commit slot says it holds:
/// the same number of events and the same last id.
fn check_slot_counts(
    index: &SegmentIndex,
    slot: &crate::format::CommitSlot,
    path: &Path,
) -> Result<()> {
    if index.summary.event_count != slot.event_count
        || (slot.event_count > 0 && index.summary.last_id != slot.last_id)
    {
        return Err(Error::corrupt(
            path,
            crate::format::SLOT_OFFSETS[0] as u64,
            "commit slot counts disagree with the frames",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{recover, OnLoss};
    use crate::{Config, Event, Store, Timestamp};

    /// Issue 20: after the newest segment was lost, a new event got an id an earlier event
    /// had. A writable open refuses such a store; were it to go on, ids would still start
    /// above the recorded high-water.
    #[test]
    fn ids_are_not_reused_after_the_newest_segment_is_lost_even_past_the_refusal() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s");
        let c = Config {
            segment_len: 64 << 10,
            data_len_max: 16 << 10,
            sidecars: false,
            ..Config::default()
        };
        let store = Store::open(&dir, c).unwrap();
        let mut last = 0;
        while store.stats().unwrap().segments < 3 {
            let data = format!(r#"{{"n":{last},"pad":"{}"}}"#, "x".repeat(300));
            let e = Event::new(Timestamp(1), "t", None, "s", Some(&data)).unwrap();
            last = store.append(e).unwrap().id().0;
            store.flush().unwrap();
        }
        let newest = store.segments().unwrap().last().unwrap().path.clone();
        store.close().unwrap();
        std::fs::remove_file(&newest).unwrap();

        assert!(matches!(
            recover(&dir, OnLoss::Refuse),
            Err(crate::Error::Incomplete { .. })
        ));
        let (recovered, report) = recover(&dir, OnLoss::Proceed).unwrap();
        assert!(
            recovered.last_id >= last,
            "next id {} would reuse ids up to {last}",
            recovered.last_id + 1
        );
        assert!(report
            .warnings
            .iter()
            .any(|w| w.what.contains("it was the newest segment")));
    }
}
