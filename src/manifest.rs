//! The segment manifest of a stream directory, and the continuity check built on it.
//!
//! `events.manifest` records which segments the stream must have (every number from the
//! oldest retention kept to the newest the writer created, each sealed one with its ids,
//! count and time range) and the highest id the stream ever committed. The writer updates
//! it when it rolls to a new segment (recording the one it sealed), before it publishes an
//! id above the recorded high-water, and at a clean close; retention updates it before it
//! deletes a segment; a writable open creates it from what is present when it is missing.
//! Every update reads the file, changes it and replaces it atomically (temporary file,
//! sync, rename, directory sync) under one process-wide lock, so the writer thread and
//! retention never lose each other's changes. `format-spec/FORMAT.md#segment-manifest`
//!
//! [`check`] compares the manifest with the segment files: a missing number, a file that
//! cannot be read at all (a damaged header, cut short before its committed end or footer),
//! a file whose header names another segment, a file whose ids are not the recorded ones, a
//! log that ends before what a clean close recorded. Recovery refuses a writable open on such a loss,
//! `verify` reports it, a read-only open warns.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::event::Timestamp;
use crate::format::{DecodeKind, Manifest, ManifestEntry, MANIFEST_VERSION};
use crate::segment::{
    create_private, cut_short, read_header_only, sync_dir, OpenedSegment, StreamKind,
};

/// The manifest of the event stream in a stream directory.
pub(crate) const MANIFEST_FILE: &str = "events.manifest";

/// Ids the writer records ahead of what it publishes, so that it rewrites the manifest about
/// once per million ids rather than per batch. After a crash that also lost the newest
/// segment, new ids start above the recorded high-water: at most this many are skipped.
pub(crate) const ID_LEASE: u64 = 1 << 20;

/// Serializes read-change-write cycles of manifests in this process (the writer thread and
/// retention); only the process holding a store's writer lock writes its manifest.
static UPDATE: Mutex<()> = Mutex::new(());

fn path_of(dir: &Path) -> PathBuf {
    dir.join(MANIFEST_FILE)
}

/// Reads and checks the manifest in `dir`; `Ok(None)` when there is none.
///
/// # Errors
/// [`Error::Corrupt`] or [`Error::UnsupportedVersion`] for a damaged or newer manifest, an
/// I/O error reading it.
pub(crate) fn read(dir: &Path) -> Result<Option<Manifest>> {
    let path = path_of(dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    Manifest::decode(&bytes)
        .map(Some)
        .map_err(|e| match e.kind {
            DecodeKind::UnsupportedVersion { found } => Error::UnsupportedVersion {
                path: path.clone(),
                found,
                supported: MANIFEST_VERSION,
            },
            _ => Error::corrupt(&path, e.offset as u64, e.what),
        })
}

/// Replaces the manifest in `dir` with `m`: temporary file, sync, rename, directory sync.
pub(crate) fn write(dir: &Path, m: &Manifest) -> Result<()> {
    let path = path_of(dir);
    let tmp = dir.join(format!("{MANIFEST_FILE}.tmp"));
    let mut f = create_private(&tmp)?;
    f.write_all(&m.encode())
        .map_err(|e| Error::io("write", &tmp, e))?;
    f.sync_all().map_err(|e| Error::io("sync", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &tmp, e))?;
    sync_dir(dir)
}

/// Reads the manifest in `dir` (an empty one if missing), lets `change` modify it and
/// writes it back, all under the process-wide lock. Returns the manifest written.
pub(crate) fn update(dir: &Path, change: impl FnOnce(&mut Manifest)) -> Result<Manifest> {
    let _serial = UPDATE.lock();
    // A manifest damaged while the writer runs (nothing of selflog writes it but this
    // process, under the lock) is started afresh rather than stopping the writer: the next
    // writable open fills it in from the segments present.
    let mut m = read(dir).ok().flatten().unwrap_or_default();
    change(&mut m);
    write(dir, &m)?;
    Ok(m)
}

/// Records a roll: `sealed` (the segment just sealed, if any) gets its final entry, and
/// `new` becomes the newest. Entries stay consecutive: anything at or past `new`'s number
/// is dropped, and should the entry before it be missing (never, unless the file was
/// replaced while the writer ran) the entries restart at `new`.
pub(crate) fn record_roll(
    dir: &Path,
    sealed: Option<ManifestEntry>,
    new: ManifestEntry,
    high_water: u64,
) -> Result<Manifest> {
    update(dir, |m| {
        m.entries.retain(|e| e.segment_id < new.segment_id);
        if let Some(s) = sealed {
            if let Some(e) = m.entries.iter_mut().find(|e| e.segment_id == s.segment_id) {
                *e = s;
            }
            m.id_high_water = m.id_high_water.max(s.last_id);
        }
        if m.entries
            .last()
            .is_some_and(|e| e.segment_id + 1 != new.segment_id || !e.sealed)
        {
            m.entries.clear();
        }
        m.entries.push(new);
        if high_water > m.id_high_water {
            m.id_high_water = high_water;
            m.exact = false;
        }
    })
}

/// Raises the recorded high-water to `high_water` (the writer, before publishing ids
/// above the old one).
pub(crate) fn record_high_water(dir: &Path, high_water: u64) -> Result<Manifest> {
    update(dir, |m| {
        if high_water > m.id_high_water {
            m.id_high_water = high_water;
            m.exact = false;
        }
    })
}

/// Records that every id up to `id` counts as handed out ([`crate::Store::reserve_ids_through`]):
/// exactly, so that the next open starts above it.
pub(crate) fn record_reserved(dir: &Path, id: u64) -> Result<()> {
    update(dir, |m| {
        if id >= m.id_high_water {
            m.id_high_water = id;
            m.exact = true;
        }
    })
    .map(drop)
}

/// Records a clean close: the log ends at `last_id`, everything synced; no id above
/// `handed_out` was committed.
pub(crate) fn record_close(dir: &Path, last_id: u64, handed_out: u64) -> Result<()> {
    update(dir, |m| {
        let floor = m
            .entries
            .iter()
            .map(|e| e.last_id)
            .max()
            .unwrap_or(0)
            .max(last_id)
            .max(handed_out);
        m.durable_last_id = m.durable_last_id.max(last_id);
        m.id_high_water = floor.max(m.durable_last_id);
        m.exact = true;
    })
    .map(drop)
}

/// Records that retention is about to delete every segment up to `segment_id`.
pub(crate) fn record_retired(dir: &Path, segment_id: u32) -> Result<()> {
    if !path_of(dir).exists() {
        return Ok(());
    }
    update(dir, |m| {
        // Never the newest: retention keeps the last segment.
        let keep_from = m.entries.len().saturating_sub(1);
        let n = m
            .entries
            .iter()
            .take(keep_from)
            .take_while(|e| e.segment_id <= segment_id)
            .count();
        m.entries.drain(..n);
    })
    .map(drop)
}

/// What one segment file says about itself, from its header and newest commit slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Present {
    pub base_id: u64,
    pub base_ts_us: i64,
    pub sealed: bool,
    pub event_count: u64,
    pub last_id: u64,
}

impl Present {
    /// The id of its last event, or the one before its base when it holds none.
    fn end_id(&self) -> u64 {
        if self.event_count > 0 {
            self.last_id
        } else {
            self.base_id - 1
        }
    }
}

/// One thing the stream should have and does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// The file concerned (missing or misplaced).
    pub path: PathBuf,
    /// Offset in it of the field that shows it (0 for a missing file).
    pub offset: u64,
    /// What is missing or wrong, with the ids, count and time range known.
    pub what: String,
}

/// The result of [`check`].
#[derive(Debug, Default)]
pub(crate) struct Continuity {
    /// The manifest as read; `None` when missing or unreadable.
    pub manifest: Option<Manifest>,
    /// Why the manifest could not be read, if it is there but damaged.
    pub manifest_error: Option<Error>,
    /// Every loss found, oldest segment first.
    pub losses: Vec<Finding>,
    /// Segment files with a readable header naming their own number, by number.
    pub present: BTreeMap<u32, Present>,
    /// Segment files that cannot be read at all (a damaged header, a file cut short before
    /// its committed end or footer): each is one of `losses`, and a read-only open skips it.
    pub unreadable: Vec<u32>,
    /// Ids at or below this must never be handed out again.
    pub id_floor: u64,
    /// The files of `present`, open, as their headers were read (a read-only open's
    /// views take them: [`crate::stream::Stream::preopened`]).
    pub opened: BTreeMap<u32, OpenedSegment>,
}

fn time_range(min_us: i64, max_us: i64) -> String {
    if min_us == max_us {
        format!("time {}", Timestamp(min_us))
    } else {
        format!("time {} .. {}", Timestamp(min_us), Timestamp(max_us))
    }
}

/// Compares the segment files of the stream in `dir` with its manifest (or, without one,
/// with each other): see the module docs. Reads only headers and commit slots.
///
/// # Errors
/// An I/O error listing the directory; damage is reported in the result.
pub(crate) fn check(dir: &Path, kind: StreamKind) -> Result<Continuity> {
    // The manifest is read before the listing, so a segment the writer creates meanwhile is
    // listed if the manifest names it. Retention records a deletion before unlinking, so a
    // listing taken after the manifest could miss a file the manifest still names: if the
    // manifest changed while the check ran, it is run again.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let c = check_once(dir, kind)?;
        if c.losses.is_empty() || attempts == 3 || read(dir).ok() == Some(c.manifest.clone()) {
            return Ok(c);
        }
    }
}

/// A segment file that cannot be read at all.
#[derive(Debug)]
struct Unreadable {
    /// Offset of the damage in the file.
    offset: u64,
    /// What is wrong.
    why: String,
    /// What its header says, when the header holds and the file is cut short.
    header: Option<Present>,
}

/// The segment files of a stream directory, by number, as their headers describe them.
#[derive(Default)]
struct Files {
    /// Files whose header names their own number.
    present: BTreeMap<u32, Present>,
    /// File number -> the segment its header names instead.
    misplaced: BTreeMap<u32, u32>,
    /// Files that cannot be read at all: a header that fails its checks, a file that ends
    /// before its committed end or its footer. Each is a loss (its events cannot be
    /// served); a reader skips it. Never the result of a writer at work: a segment gets its
    /// final name only once its header is written and synced (`segment/mod.rs`), and a
    /// sealed one is shrunk only down to its footer's end.
    unreadable: BTreeMap<u32, Unreadable>,
    /// Files of a newer format version: not called missing, not read; the segment's own
    /// checks report them.
    newer: Vec<u32>,
    /// The files of `present`, open.
    opened: BTreeMap<u32, OpenedSegment>,
}

impl Files {
    fn read(dir: &Path, kind: StreamKind) -> Result<Files> {
        let mut f = Files::default();
        for id in crate::stream::Stream::list(dir, kind)? {
            let path = dir.join(kind.file_name(id));
            let file = match File::open(&path) {
                Ok(file) => file,
                // Deleted since the listing: retention (which recorded it first) or a
                // loss, which the checks below report as missing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    f.unreadable.insert(
                        id,
                        Unreadable {
                            offset: 0,
                            why: format!("cannot open it ({e})"),
                            header: None,
                        },
                    );
                    continue;
                }
            };
            let (h, slot) = match read_header_only(&file, &path) {
                Ok(hs) => hs,
                Err(Error::UnsupportedVersion { .. }) => {
                    f.newer.push(id);
                    continue;
                }
                Err(e) => {
                    let (offset, why) = match e {
                        Error::Corrupt { offset, what, .. } => (
                            offset,
                            format!("its header is damaged ({what} at byte {offset})"),
                        ),
                        e => (0, format!("its header cannot be read ({e})")),
                    };
                    f.unreadable.insert(
                        id,
                        Unreadable {
                            offset,
                            why,
                            header: None,
                        },
                    );
                    continue;
                }
            };
            if h.stream_kind != kind.code() || h.segment_id != id {
                f.misplaced.insert(id, h.segment_id);
                continue;
            }
            let present = Present {
                base_id: h.base_id,
                base_ts_us: h.base_timestamp_us,
                sealed: slot.sealed,
                event_count: slot.event_count,
                last_id: slot.last_id,
            };
            let file_len = file
                .metadata()
                .map_err(|e| Error::io("stat", &path, e))?
                .len();
            if let Some((offset, why)) = cut_short(&file, &slot, file_len) {
                f.unreadable.insert(
                    id,
                    Unreadable {
                        offset,
                        why,
                        header: Some(present),
                    },
                );
            } else {
                f.present.insert(id, present);
                let opened = OpenedSegment {
                    file,
                    header: h,
                    slot,
                    file_len,
                };
                f.opened.insert(id, opened);
            }
        }
        Ok(f)
    }

    /// The numbers the stream must have: the manifest's, or else every number between the
    /// oldest and newest file (retention deletes oldest first, so a gap is a loss).
    fn required(&self, entries: &BTreeMap<u32, ManifestEntry>) -> Vec<u32> {
        if let (Some(&a), Some(&b)) = (entries.keys().next(), entries.keys().next_back()) {
            return (a..=b).collect();
        }
        let all = || {
            self.present
                .keys()
                .chain(self.misplaced.keys())
                .chain(self.unreadable.keys())
                .chain(&self.newer)
                .copied()
        };
        match (all().min(), all().max()) {
            (Some(a), Some(b)) => (a..=b).collect(),
            _ => Vec::new(),
        }
    }

    /// The last event id present, 0 if none.
    fn log_end(&self) -> u64 {
        self.present
            .values()
            .map(Present::end_id)
            .max()
            .unwrap_or(0)
    }
}

/// The required segments without their file (or whose file holds another segment), and
/// every file that cannot be read, each with what the manifest says it held; and whether
/// the newest recorded segment is among them.
fn missing(
    dir: &Path,
    kind: StreamKind,
    files: &Files,
    entries: &BTreeMap<u32, ManifestEntry>,
    high_water: u64,
) -> (Vec<Finding>, bool) {
    let required = files.required(entries);
    let newest_required = required.last().copied();
    let mut newest_lost = false;
    let mut out = Vec::new();
    // Unreadable files outside the required range (one a roll created and the manifest does
    // not list yet) are lost all the same.
    let numbers: std::collections::BTreeSet<u32> = required
        .iter()
        .chain(files.unreadable.keys())
        .copied()
        .collect();
    for k in numbers {
        if files.present.contains_key(&k) || files.newer.contains(&k) {
            continue;
        }
        let unreadable = files.unreadable.get(&k);
        let why = match (unreadable, files.misplaced.get(&k)) {
            (Some(u), _) => format!("segment {k} is unreadable: {}", u.why),
            (None, Some(other)) => format!(
                "its file holds segment {other} (moved, swapped or copied over), so segment {k} is missing"
            ),
            (None, None) => format!("segment {k} is missing"),
        };
        let header = unreadable.and_then(|u| u.header);
        let what = match entries.get(&k) {
            Some(e) if e.sealed => format!(
                "{why}: events {}..{} ({} events, {})",
                e.first_id,
                e.last_id,
                e.event_count,
                time_range(e.min_ts_us, e.max_ts_us)
            ),
            Some(e) => format!(
                "{why}: it was the newest segment, holding the events from {} on (up to {} at most), written since {}",
                e.first_id,
                high_water.max(e.first_id),
                Timestamp(e.min_ts_us)
            ),
            // A file cut short whose header holds: the header and slot say what it held.
            None => match header {
                Some(p) if p.sealed && p.event_count > 0 => format!(
                    "{why}: events {}..{} ({} events)",
                    p.base_id, p.last_id, p.event_count
                ),
                Some(p) if p.event_count > 0 => format!(
                    "{why}: events {}..{} ({} events) and any committed after them",
                    p.base_id, p.last_id, p.event_count
                ),
                _ => {
                    let before = files
                        .present
                        .range(..k)
                        .next_back()
                        .map_or(0, |(_, p)| p.end_id());
                    match files.present.range(k + 1..).next().map(|(_, p)| p.base_id) {
                        Some(a) if a > before + 1 => format!(
                            "{why}: events {}..{} (at most {} events)",
                            before + 1,
                            a - 1,
                            a - 1 - before
                        ),
                        _ => format!("{why}: events after {before}"),
                    }
                }
            },
        };
        newest_lost |= Some(k) == newest_required;
        let offset = match unreadable {
            Some(u) => u.offset,
            None if files.misplaced.contains_key(&k) => 16,
            None => 0,
        };
        out.push(Finding {
            path: dir.join(kind.file_name(k)),
            offset,
            what,
        });
    }
    (out, newest_lost)
}

/// Present files whose ids are not the ones their entry records: replaced by another copy.
fn replaced(
    dir: &Path,
    kind: StreamKind,
    files: &Files,
    entries: &BTreeMap<u32, ManifestEntry>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (&k, p) in &files.present {
        let Some(e) = entries.get(&k) else {
            continue;
        };
        let path = dir.join(kind.file_name(k));
        if p.base_id != e.first_id {
            out.push(Finding {
                path,
                offset: 24,
                what: format!(
                    "segment {k} starts at event {}, the manifest records {}: the file was replaced by another",
                    p.base_id, e.first_id
                ),
            });
        } else if e.sealed
            && (!p.sealed || p.event_count != e.event_count || p.last_id != e.last_id)
        {
            out.push(Finding {
                path,
                offset: 64,
                what: format!(
                    "segment {k} holds {} events up to {}, the manifest records {} events {}..{} ({}): an older or other copy",
                    p.event_count,
                    p.end_id(),
                    e.event_count,
                    e.first_id,
                    e.last_id,
                    time_range(e.min_ts_us, e.max_ts_us)
                ),
            });
        }
    }
    out
}

/// Present files whose first id is not above the last id of the file numbered before.
fn out_of_order(dir: &Path, kind: StreamKind, files: &Files) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut prev: Option<(u32, u64)> = None;
    for (&k, p) in &files.present {
        if let Some((pk, end)) = prev {
            if p.base_id <= end {
                out.push(Finding {
                    path: dir.join(kind.file_name(k)),
                    offset: 24,
                    what: format!(
                        "segment {k} starts at event {}, not after the last event {end} of segment {pk}: files swapped or copied in",
                        p.base_id
                    ),
                });
            }
        }
        prev = Some((k, p.end_id()));
    }
    out
}

fn check_once(dir: &Path, kind: StreamKind) -> Result<Continuity> {
    let mut c = Continuity::default();
    match read(dir) {
        Ok(m) => c.manifest = m,
        Err(e) => c.manifest_error = Some(e),
    }
    let files = Files::read(dir, kind)?;
    let entries: BTreeMap<u32, ManifestEntry> = c
        .manifest
        .iter()
        .flat_map(|m| m.entries.iter().map(|e| (e.segment_id, *e)))
        .collect();
    let high_water = c.manifest.as_ref().map_or(0, |m| m.id_high_water);
    let (lost, newest_lost) = missing(dir, kind, &files, &entries, high_water);
    c.losses = lost;
    c.losses.extend(replaced(dir, kind, &files, &entries));
    c.losses.extend(out_of_order(dir, kind, &files));
    let log_end = files.log_end();
    if let Some(m) = &c.manifest {
        if !newest_lost && m.durable_last_id > log_end {
            let newest = files.present.keys().next_back().copied().unwrap_or(1);
            c.losses.push(Finding {
                path: dir.join(kind.file_name(newest)),
                offset: 64,
                what: format!(
                    "the log ends at event {log_end}, but it held events up to {} when last closed: events {}..{} are missing",
                    m.durable_last_id,
                    log_end + 1,
                    m.durable_last_id
                ),
            });
        }
    }
    let recorded = entries.values().map(|e| e.last_id).max().unwrap_or(0);
    c.id_floor = log_end.max(recorded);
    let exact = c.manifest.as_ref().is_some_and(|m| m.exact);
    if exact || !c.losses.is_empty() {
        c.id_floor = c.id_floor.max(high_water);
    }
    if let Some(m) = &c.manifest {
        c.id_floor = c.id_floor.max(m.durable_last_id);
    }
    c.present = files.present;
    c.opened = files.opened;
    c.unreadable = files.unreadable.into_keys().collect();
    Ok(c)
}

/// The manifest a writable open records for what is present now, keeping what `old`
/// recorded about segments it still describes and the higher of both high-waters.
pub(crate) fn reconcile(
    old: Option<&Manifest>,
    present: &BTreeMap<u32, Present>,
    summaries: &BTreeMap<u32, ManifestEntry>,
    id_floor: u64,
) -> Manifest {
    let mut m = old.cloned().unwrap_or_default();
    let first = m
        .entries
        .first()
        .map(|e| e.segment_id)
        .into_iter()
        .chain(present.keys().next().copied())
        .min();
    let last = present.keys().next_back().copied();
    m.entries = match (first, last) {
        (Some(a), Some(b)) => (a..=b)
            .filter_map(|k| {
                summaries.get(&k).copied().or_else(|| {
                    old.and_then(|o| o.entries.iter().find(|e| e.segment_id == k).copied())
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    // Keep the run consecutive up to the newest (a file whose summary could not be read
    // ends the record there; checks of that file report it).
    let mut keep = m.entries.len();
    for i in (1..m.entries.len()).rev() {
        if m.entries[i - 1].segment_id + 1 != m.entries[i].segment_id || !m.entries[i - 1].sealed {
            keep = m.entries.len() - i;
            break;
        }
    }
    let drop = m.entries.len() - keep;
    m.entries.drain(..drop);
    m.id_high_water = m.id_high_water.max(id_floor);
    m
}
