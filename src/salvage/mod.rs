//! Salvage: copying everything of a damaged store whose checksum holds into a new one.
//!
//! Readers stop at damage; salvage is the explicit, last way past it, and it gives up on
//! nothing early. It reads the damaged store without modifying it and recognises it by its
//! segment files when `selflog.meta` is missing or damaged. In each segment file it uses
//! the header, the commit slots and the footer only where their checksums hold, and finds
//! frames by their own checksums (`scan.rs`). Ids and timestamps of a segment whose header
//! is lost are recovered from its footer, its slots and its neighbours, checked against the
//! stored content hashes, or, when nothing can tell them, reassigned and said so
//! (`copy.rs`). The pattern and stats streams are salvaged the same way, cursors and the
//! duplicate counter are copied, and the report counts per file what was copied, what is
//! known lost and the bytes skipped.
//!
//! The destination must be new or an empty directory, and not the source nor inside it,
//! checked before anything is written. It is written through [`Store`]s, so this module
//! sits above the store, apart from `recovery`, which the store's open uses.
//! `format-spec/FORMAT.md#salvage`

mod copy;
mod scan;

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
use crate::cursor::{COUNTERS_FILE, CURSOR_DIR};
use crate::error::{Error, Result};
use crate::event::EventId;
use crate::layout::{check_dir, not_a_store, read_meta, META_FILE};
use crate::maintenance::{sidecar_config, PATTERNS_DIR, STATS_DIR};
use crate::recovery::Problem;
use crate::segment::StreamKind;
use crate::store::Store;
use crate::stream::Stream;

/// What [`salvage`] copied and what it had to leave behind.
///
/// The event counts are the event log's; the pattern and stats streams have their own
/// totals, and every segment file of the three has its entry in [`SalvageReport::files`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SalvageReport {
    /// Events copied into the new store.
    pub events_copied: u64,
    /// Events whose frames passed their checksum but could not be copied (their strings
    /// were lost with damaged frames, their data does not decode, their id is out of order).
    pub events_unreadable: u64,
    /// Events known to be lost with damaged bytes: what the segment's footer or commit slot
    /// counted and no intact frame holds, or, when neither survived, the ids missing across
    /// a skipped region. Events the store had but nothing records are not counted.
    pub events_lost: u64,
    /// Damaged regions skipped in every file, each with the file and offset where it starts.
    pub skipped: Vec<Problem>,
    /// Bytes skipped in those regions.
    pub bytes_skipped: u64,
    /// Why `selflog.meta` could not be used, when it was missing or damaged (the store was
    /// then recognised by its segment files).
    pub meta_damaged: Option<String>,
    /// Records copied into the new store's pattern stream.
    pub patterns_copied: u64,
    /// Records copied into the new store's stats stream.
    pub stats_copied: u64,
    /// Cursors copied, with their positions.
    pub cursors_copied: Vec<(String, EventId)>,
    /// Other files that could not be copied (damaged cursors, counters, a sidecar's meta).
    pub problems: Vec<Problem>,
    /// Every segment file read, in stream order (events, patterns, stats).
    pub files: Vec<FileReport>,
}

/// What salvage made of one segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// Its stream: `events`, `patterns` or `stats`.
    pub stream: &'static str,
    /// Events (or records) copied.
    pub events_copied: u64,
    /// Intact frames that could not be copied.
    pub events_unreadable: u64,
    /// Events known lost (see [`SalvageReport::events_lost`]).
    pub events_lost: u64,
    /// Bytes skipped because no frame there holds its checksum.
    pub bytes_skipped: u64,
    /// Committed bytes the file no longer has (it was cut short).
    pub bytes_missing: u64,
    /// First and last id copied, as stored in the new store.
    pub ids_copied: Option<(EventId, EventId)>,
    /// Where the ids came from.
    pub ids: IdOrigin,
    /// Where the timestamps' base came from.
    pub timestamps: TimeOrigin,
    /// What was damaged and what was done about it, one sentence each.
    pub notes: Vec<String>,
}

/// Where a segment's event ids came from. Frames store ids relative to the segment's
/// `base_id`, which only the header holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdOrigin {
    /// The header's checksum holds: ids as stored.
    Header,
    /// The header is lost; the footer's summary gives the first id: ids as stored.
    Footer,
    /// The header is lost; a commit slot gives the last id, and every committed event
    /// was found: ids as stored.
    CommitSlot,
    /// The header is lost; the segment ids fit exactly between the previous and next files'.
    Neighbours,
    /// The header is lost; ids continue the previous file's (as the writer gives them, with
    /// no gap; an import with ids of its own may have left one).
    PreviousFile,
    /// The header is lost; ids end just before the next file's first id.
    NextFile,
    /// The header is lost in the stream's first file, with nothing after it to go by: ids
    /// start at 1.
    FirstFile,
    /// The ids could not be recovered: the frames were given new ids from `first`, keeping
    /// their stored differences.
    Reassigned {
        /// The new id of the first frame copied.
        first: EventId,
    },
    /// No event was found to give an id to.
    NoEvents,
}

/// Where a segment's timestamps came from. Frames store timestamps relative to the
/// segment's `base_timestamp_us`, which only the header holds; a recovered base is checked
/// against the content hashes the frames store, which cover the timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeOrigin {
    /// The header's checksum holds.
    Header,
    /// From the footer's block ranges, checked against the content hashes.
    Footer,
    /// From the damaged header's field, checked against the content hashes.
    DamagedHeader,
    /// Found by trying bases near the neighbours' times, checked against content hashes.
    Searched,
    /// Nothing could confirm a base: timestamps are the stored differences from a guessed
    /// base (`base_us`, from the previous file's last event or the next file's first) and
    /// may all be off by the same amount.
    Guessed {
        /// The base used.
        base_us: i64,
    },
    /// No event was found.
    NoEvents,
}

/// Keeps the ids the source stream in `from` ever used out of the copy's future: its
/// segment manifest's high-water (`format-spec/FORMAT.md#segment-manifest`), when the
/// manifest can be read. Consumers of the damaged store may have seen any id up to it, so
/// the copy must never hand one of them out for another event.
fn reserve_source_ids(from: &Path, target: &Store) -> Result<()> {
    if let Ok(Some(m)) = crate::manifest::read(from) {
        if m.id_high_water > 0 {
            target.reserve_ids_through(EventId(m.id_high_water.min(EventId::MAX.0)))?;
        }
    }
    Ok(())
}

/// Copies everything whose checksum holds from the damaged store at `from` into a new
/// store at `to`, keeping ids where they can be recovered: events, patterns, stats,
/// cursors and the duplicate count. Reads `from` without modifying it.
///
/// It accepts a store whose `selflog.meta` is missing or damaged when it holds segment
/// files, a segment whose header or commit slots are lost (ids and timestamps recovered
/// from its footer and its neighbours, checked against the content hashes, or reassigned
/// and reported), a truncated segment (its prefix copied, the loss counted) and garbage
/// anywhere (skipped to the next frame whose checksum holds; a false match needs a CRC-32
/// collision on bytes shaped like a frame).
///
/// # Errors
/// [`Error::DestinationRefused`] when `to` exists and is not an empty directory, or is
/// `from` or inside it (nothing is written then); [`Error::NotAStore`] when `from` has
/// neither `selflog.meta` nor segment files; [`Error::UnsupportedVersion`] for a store of
/// a newer format; errors creating or writing `to`.
pub fn salvage(from: &Path, to: &Path) -> Result<SalvageReport> {
    let mut report = SalvageReport {
        meta_damaged: check_source(from)?,
        ..SalvageReport::default()
    };
    check_destination(from, to)?;
    let config = target_config();
    let target = Store::open(to, config.clone())?;
    let totals = copy_stream(from, &target, "events", &mut report)?;
    reserve_source_ids(from, &target)?;
    target.close()?;
    report.events_copied = totals.copied;
    report.events_unreadable = totals.unreadable;
    report.events_lost = totals.lost;
    for (name, stream) in [(PATTERNS_DIR, "patterns"), (STATS_DIR, "stats")] {
        let src = from.join(name);
        if !src.is_dir() {
            continue;
        }
        if let Some(problem) = sidecar_meta_problem(&src) {
            report.problems.push(problem);
        }
        let sidecar = Store::open(to.join(name), sidecar_config(&config))?;
        let totals = copy_stream(&src, &sidecar, stream, &mut report)?;
        reserve_source_ids(&src, &sidecar)?;
        sidecar.close()?;
        if stream == "patterns" {
            report.patterns_copied = totals.copied;
        } else {
            report.stats_copied = totals.copied;
        }
    }
    copy_cursors(from, to, &mut report)?;
    copy_counters(from, to, &mut report)?;
    Ok(report)
}

/// The new store's configuration: nothing dropped as a duplicate (each intact event is
/// copied, however alike), no retention (old events are what is being saved), and no
/// timestamp too far ahead (the damaged store accepted them).
fn target_config() -> Config {
    Config {
        dedup_window: 0,
        retention_age: None,
        retention_bytes_max: None,
        retention_on_open: false,
        future_skew_max: Duration::MAX,
        // The sidecars are salvaged into their directories as streams of their own.
        sidecars: false,
        ..Config::default()
    }
}

/// Checks that `from` can be read as a store: `Ok(Some(why))` when its `selflog.meta` is
/// missing or damaged but it holds segment files.
fn check_source(from: &Path) -> Result<Option<String>> {
    check_dir(from)?;
    let damage = match read_meta(from) {
        Ok(Some(_)) => return Ok(None),
        Err(e @ Error::UnsupportedVersion { .. }) => return Err(e),
        Ok(None) => format!("{META_FILE} is missing"),
        Err(e) => format!("{META_FILE} is damaged ({e})"),
    };
    let has_segments = [
        from.to_path_buf(),
        from.join(PATTERNS_DIR),
        from.join(STATS_DIR),
    ]
    .iter()
    .any(|d| Stream::list(d, StreamKind::Events).is_ok_and(|ids| !ids.is_empty()));
    if has_segments {
        Ok(Some(damage))
    } else {
        Err(not_a_store(
            from,
            format!("{damage} and it has no segment files"),
        ))
    }
}

/// Why the sidecar in `dir` has no usable `selflog.meta`, if it has none.
fn sidecar_meta_problem(dir: &Path) -> Option<Problem> {
    let what = match read_meta(dir) {
        Ok(Some(_)) => return None,
        Ok(None) => format!("{META_FILE} is missing"),
        Err(e) => format!("{META_FILE} is damaged ({e})"),
    };
    Some(Problem {
        path: dir.join(META_FILE),
        offset: 0,
        what: format!("{what}; its segments were read by their file names"),
    })
}

/// Refuses a destination that exists and is not an empty directory, or that is the
/// source, inside it, or reaches it through a symbolic link.
fn check_destination(from: &Path, to: &Path) -> Result<()> {
    let refuse = |reason: String| Error::DestinationRefused {
        path: to.to_path_buf(),
        reason,
    };
    let source = std::fs::canonicalize(from).map_err(|e| Error::io("resolve", from, e))?;
    let dest = resolve(to)?;
    if dest.starts_with(&source) {
        return Err(refuse(format!(
            "it is the source store {} or inside it; salvage into a directory outside it",
            from.display()
        )));
    }
    match std::fs::metadata(to) {
        Ok(m) if !m.is_dir() => Err(refuse(
            "it is a file; salvage into a new or empty directory".into(),
        )),
        Ok(_) => {
            let entries = std::fs::read_dir(to)
                .map_err(|e| Error::io("list", to, e))?
                .count();
            if entries > 0 {
                Err(refuse(format!(
                    "it is not empty ({entries} entries); salvage into a new or empty directory"
                )))
            } else {
                Ok(())
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("stat", to, e)),
    }
}

/// `path` made absolute with every symbolic link resolved, for a path that may not exist
/// yet: its longest existing ancestor resolved, the rest appended (`..` taken lexically).
fn resolve(path: &Path) -> Result<PathBuf> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io("resolve", path, e))?
            .join(path)
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            let mut out = real;
            for c in rest.iter().rev() {
                match c {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::Normal(n) => out.push(n),
                    _ => {}
                }
            }
            return Ok(out);
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            _ => return Ok(absolute),
        }
    }
}

/// Counts of one stream.
#[derive(Default)]
struct Totals {
    copied: u64,
    unreadable: u64,
    lost: u64,
}

/// Salvages every segment file of the stream in `dir` into `target`, in file order, adding
/// a [`FileReport`] per file to `report`.
fn copy_stream(
    dir: &Path,
    target: &Store,
    stream: &'static str,
    report: &mut SalvageReport,
) -> Result<Totals> {
    let kind = StreamKind::Events;
    let ids = Stream::list(dir, kind)?;
    let paths = in_id_order(ids.iter().map(|&id| dir.join(kind.file_name(id))).collect());
    let mut state = copy::StreamState::default();
    let mut totals = Totals::default();
    for (i, path) in paths.iter().enumerate() {
        let file = copy::copy_file(
            path,
            paths.get(i + 1).map(PathBuf::as_path),
            &mut state,
            target,
            stream,
        )?;
        for &(start, end) in &file.skipped {
            report.skipped.push(Problem {
                path: path.clone(),
                offset: start as u64,
                what: format!(
                    "{} damaged bytes skipped: no frame there holds its checksum",
                    end - start
                ),
            });
        }
        let f = file.report;
        report.bytes_skipped += f.bytes_skipped;
        totals.copied += f.events_copied;
        totals.unreadable += f.events_unreadable;
        totals.lost += f.events_lost;
        report.files.push(f);
    }
    Ok(totals)
}

/// `paths` (in file-name order) in the order of the ids they hold, so that files renamed
/// or swapped are copied with their ids: a file whose header holds sorts by its `base_id`,
/// one whose header is lost stays right after the file named before it.
fn in_id_order(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut key = 0u64;
    let mut keyed: Vec<(u64, usize, PathBuf)> = paths
        .into_iter()
        .enumerate()
        .map(|(i, path)| {
            if let Some(h) = read_header(&path) {
                key = h.base_id;
            }
            (key, i, path)
        })
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(_, _, p)| p).collect()
}

/// The fixed header of the segment at `path`, if its checksum holds.
fn read_header(path: &Path) -> Option<crate::format::SegmentHeader> {
    use std::io::Read as _;
    let mut head = [0u8; crate::format::SEGMENT_HEADER_LEN];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    crate::format::SegmentHeader::decode(&head).ok()
}

/// Copies every cursor of `from` whose file holds into `to`, reporting the others.
fn copy_cursors(from: &Path, to: &Path, report: &mut SalvageReport) -> Result<()> {
    let dir = from.join(CURSOR_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            report.problems.push(Problem {
                path: dir,
                offset: 0,
                what: format!("cursors not copied: {e}"),
            });
            return Ok(());
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(std::result::Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| crate::cursor::check_name(n).is_ok())
        .collect();
    names.sort();
    for name in names {
        match crate::cursor::read(from, &name) {
            Ok(Some(id)) => {
                crate::cursor::write(to, &name, id)?;
                report.cursors_copied.push((name, id));
            }
            Ok(None) => {}
            Err(e) => report.problems.push(Problem {
                path: dir.join(&name),
                offset: 0,
                what: format!("cursor not copied: {e}"),
            }),
        }
    }
    Ok(())
}

/// Copies the duplicate count when its file holds.
fn copy_counters(from: &Path, to: &Path, report: &mut SalvageReport) -> Result<()> {
    if !from.join(COUNTERS_FILE).exists() {
        return Ok(());
    }
    match crate::cursor::read_duplicates(from) {
        Ok(count) => crate::cursor::write_duplicates(to, count),
        Err(e) => {
            report.problems.push(Problem {
                path: from.join(COUNTERS_FILE),
                offset: 0,
                what: format!("duplicate counter not copied: {e}"),
            });
            Ok(())
        }
    }
}

impl IdOrigin {
    /// A short name for machine-readable output: `header`, `footer`, `commit_slot`,
    /// `neighbours`, `previous_file`, `next_file`, `first_file`, `reassigned`, `no_events`.
    pub fn name(&self) -> &'static str {
        match self {
            IdOrigin::Header => "header",
            IdOrigin::Footer => "footer",
            IdOrigin::CommitSlot => "commit_slot",
            IdOrigin::Neighbours => "neighbours",
            IdOrigin::PreviousFile => "previous_file",
            IdOrigin::NextFile => "next_file",
            IdOrigin::FirstFile => "first_file",
            IdOrigin::Reassigned { .. } => "reassigned",
            IdOrigin::NoEvents => "no_events",
        }
    }
}

impl std::fmt::Display for IdOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdOrigin::Header => f.write_str("ids as stored"),
            IdOrigin::Footer => f.write_str("ids as stored (base from the footer)"),
            IdOrigin::CommitSlot => f.write_str("ids as stored (base from a commit slot)"),
            IdOrigin::Neighbours => f.write_str("ids recovered between the neighbouring files"),
            IdOrigin::PreviousFile => {
                f.write_str("ids inferred: they continue the previous file's without a gap")
            }
            IdOrigin::NextFile => {
                f.write_str("ids inferred: they end just before the next file's")
            }
            IdOrigin::FirstFile => f.write_str("ids inferred: the stream's first file starts at 1"),
            IdOrigin::Reassigned { first } => write!(
                f,
                "ids REASSIGNED: not recoverable, the frames were numbered from {first} keeping their stored differences"
            ),
            IdOrigin::NoEvents => f.write_str("no events"),
        }
    }
}

impl TimeOrigin {
    /// A short name for machine-readable output: `header`, `footer`, `damaged_header`,
    /// `searched`, `guessed`, `no_events`.
    pub fn name(&self) -> &'static str {
        match self {
            TimeOrigin::Header => "header",
            TimeOrigin::Footer => "footer",
            TimeOrigin::DamagedHeader => "damaged_header",
            TimeOrigin::Searched => "searched",
            TimeOrigin::Guessed { .. } => "guessed",
            TimeOrigin::NoEvents => "no_events",
        }
    }
}

impl std::fmt::Display for TimeOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TimeOrigin::Header => f.write_str("timestamps as stored"),
            TimeOrigin::Footer => {
                f.write_str("timestamps recovered from the footer, checked by content hash")
            }
            TimeOrigin::DamagedHeader => f.write_str(
                "timestamps recovered from the damaged header, checked by content hash",
            ),
            TimeOrigin::Searched => {
                f.write_str("timestamps recovered by search, checked by content hash")
            }
            TimeOrigin::Guessed { base_us } => write!(
                f,
                "timestamps GUESSED: no base could be confirmed, {base_us} us was used, all may be off by the same amount"
            ),
            TimeOrigin::NoEvents => f.write_str("no events"),
        }
    }
}
