//! The patterns and system stats tables of the archive: one Parquet file per UTC day,
//! `patterns/date=YYYY-MM-DD/patterns.parquet` (by the pattern's `created` time) and
//! `system_stats/date=YYYY-MM-DD/system_stats.parquet`, read through the library's
//! readers ([`Store::patterns`], [`Store::system_stats`]).
//!
//! Both streams are small (a stats record a minute is 1,440 a day), so each run reads them
//! whole and writes again the days that gained records since the manifest recorded them:
//! more rows, or a record past the last one archived (a larger pattern id, a later stats
//! timestamp). A day that lost records to retention keeps its archived file. A store
//! without the two streams (never opened for writing since they were added) has nothing
//! to archive here.

use std::collections::BTreeMap;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use selflog::{PatternFilter, Store};

use super::dataset::{
    date_of_day, day_of, Dataset, DayEntry, FileEntry, Manifest, PATTERNS_DIR, STATS_DIR,
};
use super::parquet::{
    pattern_batch, pattern_schema, stats_batch, stats_schema, Finished, PartFile,
};
use crate::Failure;

/// A day written under a temporary name, for `publish::commit`, then [`record`].
pub struct Pending {
    table: Table,
    /// The day's manifest entry.
    pub entry: DayEntry,
    /// Its file.
    pub file: Finished,
}

/// Which table a day belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// The patterns table.
    Patterns,
    /// The system stats table.
    Stats,
}

impl Pending {
    /// Its table.
    pub fn table(&self) -> Table {
        self.table
    }
}

/// Puts the committed day `entry` of `table` in the manifest, in place of its earlier entry.
pub fn record(manifest: &mut Manifest, table: Table, entry: DayEntry) {
    let entries = table.entries(manifest);
    if let Some(i) = entries.iter().position(|d| d.date == entry.date) {
        entries[i] = entry;
    } else {
        entries.push(entry);
        entries.sort_by(|a, b| a.date.cmp(&b.date));
    }
}

impl Table {
    fn dir(self) -> &'static str {
        match self {
            Table::Patterns => PATTERNS_DIR,
            Table::Stats => STATS_DIR,
        }
    }

    fn file_name(self) -> &'static str {
        match self {
            Table::Patterns => "patterns.parquet",
            Table::Stats => "system_stats.parquet",
        }
    }

    fn schema(self) -> SchemaRef {
        match self {
            Table::Patterns => pattern_schema(),
            Table::Stats => stats_schema(),
        }
    }

    fn entries(self, m: &mut Manifest) -> &mut Vec<DayEntry> {
        match self {
            Table::Patterns => &mut m.patterns,
            Table::Stats => &mut m.system_stats,
        }
    }
}

/// Writes the pattern stream's days that gained records since `manifest`.
pub fn archive_patterns(
    dataset: &Dataset,
    store: &Store,
    manifest: &Manifest,
) -> Result<Vec<Pending>, Failure> {
    let patterns = match store.patterns(&PatternFilter::default()) {
        Ok(p) => p,
        Err(selflog::Error::NotAStore { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut by_day: BTreeMap<i64, Vec<&selflog::Pattern>> = BTreeMap::new();
    for p in &patterns {
        by_day
            .entry(day_of(p.created.micros()))
            .or_default()
            .push(p);
    }
    let mut pending = Vec::new();
    for (day, rows) in by_day {
        let last = rows.iter().map(|p| p.id).max().unwrap_or(0);
        let last = i64::try_from(last).unwrap_or(i64::MAX);
        let batch = || pattern_batch(&rows);
        pending.extend(write_day(
            dataset,
            manifest,
            Table::Patterns,
            day,
            rows.len(),
            last,
            batch,
        )?);
    }
    Ok(pending)
}

/// Writes the stats stream's days that gained records since `manifest`.
pub fn archive_stats(
    dataset: &Dataset,
    store: &Store,
    manifest: &Manifest,
) -> Result<Vec<Pending>, Failure> {
    let stats = match store.system_stats(None, None) {
        Ok(s) => s,
        Err(selflog::Error::NotAStore { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut by_day: BTreeMap<i64, Vec<&selflog::SystemStats>> = BTreeMap::new();
    for s in &stats {
        by_day
            .entry(day_of(s.timestamp.micros()))
            .or_default()
            .push(s);
    }
    let mut pending = Vec::new();
    for (day, rows) in by_day {
        let last = rows.iter().map(|s| s.timestamp.micros()).max().unwrap_or(0);
        let batch = || stats_batch(&rows);
        pending.extend(write_day(
            dataset,
            manifest,
            Table::Stats,
            day,
            rows.len(),
            last,
            batch,
        )?);
    }
    Ok(pending)
}

/// Writes one day of `table` when it gained records since the manifest's entry.
fn write_day(
    dataset: &Dataset,
    manifest: &Manifest,
    table: Table,
    day: i64,
    rows: usize,
    last: i64,
    batch: impl FnOnce() -> Result<RecordBatch, Failure>,
) -> Result<Option<Pending>, Failure> {
    let date = date_of_day(day);
    let rows = rows as u64;
    let known = match table {
        Table::Patterns => &manifest.patterns,
        Table::Stats => &manifest.system_stats,
    };
    if let Some(d) = known.iter().find(|d| d.date == date) {
        if rows <= d.file.rows && last <= d.last {
            return Ok(None);
        }
    }
    let partition = format!("{}/date={date}", table.dir());
    let dir = dataset.partition_dir(&partition)?;
    let name = table.file_name();
    let mut part = PartFile::create(&dir.join(name), table.schema())?;
    part.write(&batch()?)?;
    let file = part.finish()?;
    let entry = DayEntry {
        date,
        file: FileEntry {
            path: format!("{partition}/{name}"),
            rows: file.rows,
            bytes: file.bytes,
        },
        last,
    };
    Ok(Some(Pending { table, entry, file }))
}
