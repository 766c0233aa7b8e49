//! The events table of the archive: which segments of the event log a run writes, and
//! writing one segment as one Parquet file per UTC day, `date=YYYY-MM-DD/segment-N.parquet`.
//!
//! A sealed segment never changes, so once the manifest records it sealed it is never read
//! again. The committed prefix of the active segment (`--include-active`) is recorded as not
//! sealed; a later run that finds more events in it, or finds it sealed, writes it again
//! under the same names, so the dataset never holds an event twice. Segments that retention
//! deleted from the store stay in the archive: it is the long-term history.
//!
//! A segment in both the store and the manifest must agree on its first id (and, once
//! sealed in both, its last id and count); otherwise `OUT_DIR` holds another store's archive,
//! and the run is refused before it writes anything.

use selflog::{SegmentInfo, Store};

use super::dataset::{date_of_day, day_of, Dataset, FileEntry, Manifest, SegmentEntry};
use super::parquet::{event_schema, EventColumns, Finished, PartFile, BATCH_ROWS};
use crate::interrupt::Interrupt;
use crate::Failure;

/// The file name of segment `segment_id`'s events of one day.
pub fn file_name(segment_id: u32) -> String {
    format!("segment-{segment_id:08}.parquet")
}

/// The segments this run writes, oldest first: sealed segments the manifest does not record
/// as sealed, and with `include_active`, the active segment when it has events the manifest
/// does not hold.
pub fn plan(
    segments: &[SegmentInfo],
    manifest: &Manifest,
    include_active: bool,
) -> Result<Vec<SegmentInfo>, Failure> {
    let mut out = Vec::new();
    for info in segments {
        let entry = manifest
            .events
            .iter()
            .find(|s| s.segment_id == info.segment_id);
        if let Some(entry) = entry {
            check_same_segment(info, entry)?;
        }
        let archived = match entry {
            None => false,
            Some(e) if info.sealed => e.sealed,
            Some(e) => info.ids.is_none_or(|(_, last)| last.0 <= e.last_id),
        };
        if !archived && (info.sealed || (include_active && info.events > 0)) {
            out.push(info.clone());
        }
    }
    Ok(out)
}

/// Refuses an `OUT_DIR` whose record of segment `info.segment_id` cannot be of this store.
fn check_same_segment(info: &SegmentInfo, entry: &SegmentEntry) -> Result<(), Failure> {
    let (first, last) = info.ids.map_or((0, 0), |(a, b)| (a.0, b.0));
    let same = if entry.events == 0 {
        // An empty segment recorded sealed stays empty.
        !entry.sealed || info.events == 0
    } else if entry.sealed {
        info.sealed && first == entry.first_id && last == entry.last_id
    } else {
        first == entry.first_id && last >= entry.last_id
    };
    if same {
        return Ok(());
    }
    Err(Failure::hinted(
        format!(
            "the archive holds another store's events: its segment {} has ids {}..={} ({} events), \
             this store's has {first}..={last} ({} events)",
            info.segment_id, entry.first_id, entry.last_id, entry.events, info.events
        ),
        "archive each store into a directory of its own",
    ))
}

/// A segment written: its manifest entry and its finished files.
pub type Written = (SegmentEntry, Vec<Finished>);

/// One day's file of the segment being written.
struct Day {
    /// Days since 1970-01-01 (UTC).
    days_since_epoch: i64,
    columns: EventColumns,
    part: PartFile,
    rel_path: String,
}

impl Day {
    /// Hands the gathered rows to the encoder.
    fn write_rows(&mut self) -> Result<u64, Failure> {
        let n = self.columns.len();
        if n > 0 {
            let batch = self.columns.take()?;
            self.part.write(&batch)?;
        }
        Ok(n as u64)
    }
}

/// Writes segment `info` as one file per day, under temporary names, and returns its
/// manifest entry with the finished files for `publish::commit`, or `None` when `interrupt`
/// was set (the segment's temporary files are then removed). `progress` is told the events
/// written, batch by batch.
pub fn archive_segment(
    dataset: &Dataset,
    store: &Store,
    info: &SegmentInfo,
    interrupt: &Interrupt,
    progress: &mut dyn FnMut(u64),
) -> Result<Option<Written>, Failure> {
    let Some((first, last)) = info.ids else {
        return Ok(Some((entry(info, 0, 0, 0, Vec::new()), Vec::new())));
    };
    let mut days: Vec<Day> = Vec::new();
    let mut current = 0usize;
    let mut gathered = 0usize;
    let mut read = 0u64;
    let mut scan = store.scan_from(first)?;
    while let Some(e) = scan.next_ref() {
        let e = e?;
        if e.id > last {
            break;
        }
        let day = day_of(e.timestamp.micros());
        if days.get(current).is_none_or(|d| d.days_since_epoch != day) {
            current = if let Some(i) = days.iter().position(|d| d.days_since_epoch == day) {
                i
            } else {
                days.push(open_day(dataset, info.segment_id, day)?);
                days.len() - 1
            };
        }
        days[current].columns.push(&e)?;
        gathered += 1;
        read += 1;
        if gathered >= BATCH_ROWS {
            for d in &mut days {
                d.write_rows()?;
            }
            progress(gathered as u64);
            gathered = 0;
            if interrupt.is_set() {
                return Ok(None);
            }
        }
    }
    // The active segment's count may have grown since `info` was taken; only the ids up to
    // `last` were read.
    if info.sealed && read != info.events {
        return Err(Failure::hinted(
            format!(
                "segment {} ({}): read {read} events, its footer counts {}",
                info.segment_id,
                info.path.display(),
                info.events
            ),
            "run `selflog inspect verify`; nothing of this segment was archived",
        ));
    }
    let mut files = Vec::with_capacity(days.len());
    let mut finished = Vec::with_capacity(days.len());
    days.sort_by_key(|d| d.days_since_epoch);
    for mut d in days {
        d.write_rows()?;
        let f = d.part.finish()?;
        files.push(FileEntry {
            path: d.rel_path,
            rows: f.rows,
            bytes: f.bytes,
        });
        finished.push(f);
    }
    progress(gathered as u64);
    Ok(Some((entry(info, first.0, last.0, read, files), finished)))
}

fn entry(
    info: &SegmentInfo,
    first_id: u64,
    last_id: u64,
    events: u64,
    files: Vec<FileEntry>,
) -> SegmentEntry {
    SegmentEntry {
        segment_id: info.segment_id,
        sealed: info.sealed,
        first_id,
        last_id,
        events,
        files,
    }
}

/// Starts the file of segment `segment_id`'s events of `day`.
fn open_day(dataset: &Dataset, segment_id: u32, day: i64) -> Result<Day, Failure> {
    let partition = format!("date={}", date_of_day(day));
    let dir = dataset.partition_dir(&partition)?;
    let name = file_name(segment_id);
    let part = PartFile::create(&dir.join(&name), event_schema())?;
    Ok(Day {
        days_since_epoch: day,
        columns: EventColumns::new(),
        part,
        rel_path: format!("{partition}/{name}"),
    })
}
