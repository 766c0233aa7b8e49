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
    pattern_batch, pattern_schema, stats_batch, stats_schema, sync_dir, PartFile,
};
use crate::Failure;

/// What a sidecar table's pass wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct Written {
    /// Files written.
    pub files: u64,
    /// Rows in them.
    pub rows: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Which table a day belongs to.
#[derive(Clone, Copy)]
enum Table {
    Patterns,
    Stats,
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

/// Archives the pattern stream's new days, saving the manifest after each day.
pub fn archive_patterns(
    dataset: &Dataset,
    store: &Store,
    manifest: &mut Manifest,
) -> Result<Written, Failure> {
    let patterns = match store.patterns(&PatternFilter::default()) {
        Ok(p) => p,
        Err(selflog::Error::NotAStore { .. }) => return Ok(Written::default()),
        Err(e) => return Err(e.into()),
    };
    let mut by_day: BTreeMap<i64, Vec<&selflog::Pattern>> = BTreeMap::new();
    for p in &patterns {
        by_day
            .entry(day_of(p.created.micros()))
            .or_default()
            .push(p);
    }
    let mut written = Written::default();
    for (day, rows) in by_day {
        let last = rows.iter().map(|p| p.id).max().unwrap_or(0);
        let last = i64::try_from(last).unwrap_or(i64::MAX);
        let batch = || pattern_batch(&rows);
        write_day(
            dataset,
            manifest,
            Table::Patterns,
            day,
            rows.len(),
            last,
            batch,
            &mut written,
        )?;
    }
    Ok(written)
}

/// Archives the stats stream's new days, saving the manifest after each day.
pub fn archive_stats(
    dataset: &Dataset,
    store: &Store,
    manifest: &mut Manifest,
) -> Result<Written, Failure> {
    let stats = match store.system_stats(None, None) {
        Ok(s) => s,
        Err(selflog::Error::NotAStore { .. }) => return Ok(Written::default()),
        Err(e) => return Err(e.into()),
    };
    let mut by_day: BTreeMap<i64, Vec<&selflog::SystemStats>> = BTreeMap::new();
    for s in &stats {
        by_day
            .entry(day_of(s.timestamp.micros()))
            .or_default()
            .push(s);
    }
    let mut written = Written::default();
    for (day, rows) in by_day {
        let last = rows.iter().map(|s| s.timestamp.micros()).max().unwrap_or(0);
        let batch = || stats_batch(&rows);
        write_day(
            dataset,
            manifest,
            Table::Stats,
            day,
            rows.len(),
            last,
            batch,
            &mut written,
        )?;
    }
    Ok(written)
}

/// Writes one day of `table` when it gained records since the manifest's entry, then
/// records it and saves the manifest.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site per table; a struct would only rename the arguments"
)]
fn write_day(
    dataset: &Dataset,
    manifest: &mut Manifest,
    table: Table,
    day: i64,
    rows: usize,
    last: i64,
    batch: impl FnOnce() -> Result<RecordBatch, Failure>,
    written: &mut Written,
) -> Result<(), Failure> {
    let date = date_of_day(day);
    let rows = rows as u64;
    let entries = table.entries(manifest);
    let known = entries.iter().position(|d| d.date == date);
    if let Some(i) = known {
        let d = &entries[i];
        if rows <= d.file.rows && last <= d.last {
            return Ok(());
        }
    }
    let partition = format!("{}/date={date}", table.dir());
    let dir = dataset.partition_dir(&partition)?;
    let name = table.file_name();
    let mut part = PartFile::create(&dir.join(name), table.schema())?;
    part.write(&batch()?)?;
    let published = part.publish()?;
    sync_dir(&dir)?;
    let entry = DayEntry {
        date,
        file: FileEntry {
            path: format!("{partition}/{name}"),
            rows: published.rows,
            bytes: published.bytes,
        },
        last,
    };
    if let Some(i) = known {
        entries[i] = entry;
    } else {
        entries.push(entry);
        entries.sort_by(|a, b| a.date.cmp(&b.date));
    }
    dataset.write_manifest(manifest)?;
    written.files += 1;
    written.rows += published.rows;
    written.bytes += published.bytes;
    Ok(())
}
