//! `selflog archive OUT_DIR`: the store as a Hive-partitioned Parquet dataset that `DuckDB`,
//! Spark, Trino, `ClickHouse`, polars and pyarrow read as it is.
//!
//! Layout: `OUT_DIR/date=YYYY-MM-DD/segment-N.parquet`, one file per sealed segment of the
//! event log and UTC day of its events' timestamps (`events.rs`); the patterns and stats
//! streams under `OUT_DIR/patterns/` and `OUT_DIR/system_stats/`, one file per day
//! (`sidecars.rs`); the manifest `OUT_DIR/_selflog_archive.json` recording what is there
//! (`dataset.rs`). The Parquet encoding is in `parquet.rs`.
//!
//! Runs are incremental and idempotent: a run writes only what the manifest does not hold,
//! so a second run writes nothing. Each file appears only once complete: written under a
//! temporary name, then synced, renamed and recorded in the manifest with the other files
//! of its commit group (`publish.rs`), so a run stopped at any point, even by SIGKILL,
//! leaves complete files only, and the next run removes the stopped run's temporary files
//! and finishes the work. SIGINT or SIGTERM stops
//! a run between batches and between segments: the segments completed are committed, the
//! one being written is dropped, exit 130.
//!
//! The store is opened read-only: archiving works while a writer appends.

mod dataset;
mod events;
mod parquet;
mod publish;
mod sidecars;

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use crate::interrupt::{Interrupt, EXIT_INTERRUPTED};
use crate::{output, Failure, Outcome};
use dataset::{Dataset, Manifest};

/// `selflog archive`'s arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The archive directory: new, empty, or one an earlier `selflog archive` of this store
    /// wrote (it holds `_selflog_archive.json`).
    #[arg(value_name = "OUT_DIR")]
    out_dir: PathBuf,
    /// Also write the active segment's committed events (later runs replace them).
    #[arg(long)]
    include_active: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Most events in one commit group: the segments written since the last commit are synced,
/// renamed and recorded in the manifest together (`publish.rs`) once they hold this many
/// events, or [`GROUP_FILES_MAX`] files, or have taken [`GROUP_TIME_MAX`], and at the end.
/// A run killed mid-group redoes the group's segments next time: the limits bound the work
/// lost, and the syncs cost a few waits per group instead of two per file.
const GROUP_EVENTS_MAX: u64 = 1_000_000;
/// Most segments written at once, each on a thread of its own (one per core, up to this):
/// reading, encoding and compressing a segment is CPU work, and segments are independent.
const SEGMENT_THREADS_MAX: usize = 2;
/// Most files in one commit group.
const GROUP_FILES_MAX: usize = 512;
/// Longest a commit group stays open.
const GROUP_TIME_MAX: Duration = Duration::from_secs(1);

/// What one run wrote.
#[derive(Default)]
struct Summary {
    segments: u64,
    segments_skipped: u64,
    event_files: u64,
    events: u64,
    event_bytes: u64,
    sidecar_files: u64,
    sidecar_bytes: u64,
    patterns: u64,
    stats: u64,
}

/// Segments written under temporary names, not yet committed.
#[derive(Default)]
struct Group {
    entries: Vec<dataset::SegmentEntry>,
    files: Vec<parquet::Finished>,
    events: u64,
    /// When its first segment was started.
    started: Option<Instant>,
}

pub fn run(store_dir: &Path, args: &Args) -> Outcome {
    let started = Instant::now();
    let store = crate::open_read_only(store_dir)?;
    let segments = store.segments()?;
    let (dataset, mut manifest) = Dataset::open(&args.out_dir)?;
    manifest.store = store_dir.display().to_string();
    let jobs = events::plan(&segments, &manifest, args.include_active)?;
    let mut summary = Summary {
        segments_skipped: segments
            .iter()
            .filter(|s| s.sealed || args.include_active)
            .count()
            .saturating_sub(jobs.len()) as u64,
        ..Summary::default()
    };
    let interrupt = Interrupt::install()?;
    let bar = crate::progress::bar(jobs.iter().map(|s| s.events).sum(), "archiving", "events");
    let mut group = Group::default();
    let work = Work {
        dataset: &dataset,
        store,
        jobs: &jobs,
        interrupt: &interrupt,
        bar: &bar,
    };
    if let Err(f) = work.run(&mut manifest, &mut group, &mut summary) {
        // What is complete is kept; the failing segment's files are removed.
        bar.finish_and_clear();
        commit_group(&dataset, &mut manifest, &mut group, &mut summary)?;
        return Err(f);
    }
    bar.finish_and_clear();
    commit_group(&dataset, &mut manifest, &mut group, &mut summary)?;
    if interrupt.is_set() {
        return Ok(interrupted(&args.out_dir, &summary));
    }
    let mut days = sidecars::archive_patterns(&dataset, store, &manifest)?;
    days.extend(sidecars::archive_stats(&dataset, store, &manifest)?);
    let mut files: Vec<parquet::Finished> = Vec::with_capacity(days.len());
    let mut entries = Vec::with_capacity(days.len());
    for day in days {
        let table = day.table();
        entries.push((table, day.entry));
        files.push(day.file);
    }
    publish::commit(&mut files, dataset.dir())?;
    for (table, entry) in entries {
        summary.sidecar_files += 1;
        summary.sidecar_bytes += entry.file.bytes;
        match table {
            sidecars::Table::Patterns => summary.patterns += entry.file.rows,
            sidecars::Table::Stats => summary.stats += entry.file.rows,
        }
        sidecars::record(&mut manifest, table, entry);
    }
    dataset.write_manifest(&manifest)?;
    print_summary(args, &manifest, &summary, started.elapsed().as_secs_f64())?;
    Ok(0)
}

/// The segments a run writes, and what the writing threads share.
struct Work<'a> {
    dataset: &'a Dataset,
    store: &'a selflog::Store,
    jobs: &'a [selflog::SegmentInfo],
    interrupt: &'a Interrupt,
    bar: &'a ProgressBar,
}

impl Work<'_> {
    /// Writes the segments on up to [`SEGMENT_THREADS_MAX`] threads, each taking the next
    /// segment when it is done with one, and commits them in groups as they complete.
    /// Stops taking segments on SIGINT or SIGTERM, or after a failure, which it returns
    /// once the threads have finished (the completed segments are then left in `group`).
    fn run(
        &self,
        manifest: &mut Manifest,
        group: &mut Group,
        summary: &mut Summary,
    ) -> Result<(), Failure> {
        let workers = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(SEGMENT_THREADS_MAX)
            .min(self.jobs.len());
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let (tx, rx) = std::sync::mpsc::channel::<Result<Option<events::Written>, Failure>>();
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let tx = tx.clone();
                let (next, failed) = (&next, &failed);
                scope.spawn(move || loop {
                    if self.interrupt.is_set() || failed.load(Ordering::SeqCst) {
                        break;
                    }
                    let Some(info) = self.jobs.get(next.fetch_add(1, Ordering::SeqCst)) else {
                        break;
                    };
                    let mut tick = |n: u64| self.bar.inc(n);
                    let result = events::archive_segment(
                        self.dataset,
                        self.store,
                        info,
                        self.interrupt,
                        &mut tick,
                    );
                    if result.is_err() {
                        failed.store(true, Ordering::SeqCst);
                    }
                    if tx.send(result).is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            let mut first_failure = None;
            // Ends when every thread has finished.
            for result in rx {
                match result {
                    Ok(Some((entry, files))) => {
                        group.started.get_or_insert_with(Instant::now);
                        group.events += entry.events;
                        group.entries.push(entry);
                        group.files.extend(files);
                        let full = group.events >= GROUP_EVENTS_MAX
                            || group.files.len() >= GROUP_FILES_MAX
                            || group.started.is_some_and(|t| t.elapsed() >= GROUP_TIME_MAX);
                        if full && first_failure.is_none() {
                            if let Err(f) = commit_group(self.dataset, manifest, group, summary) {
                                failed.store(true, Ordering::SeqCst);
                                first_failure = Some(f);
                            }
                        }
                    }
                    // Stopped by SIGINT or SIGTERM: the caller sees the flag.
                    Ok(None) => {}
                    Err(f) => {
                        first_failure.get_or_insert(f);
                    }
                }
            }
            first_failure.map_or(Ok(()), Err)
        })
    }
}

/// Commits `group` (see [`GROUP_EVENTS_MAX`]): its files in place, then its segments in the
/// manifest, each in place of the segment's earlier entry (a prefix of the active segment),
/// then removes the earlier entries' files that the new ones did not replace.
fn commit_group(
    dataset: &Dataset,
    manifest: &mut Manifest,
    group: &mut Group,
    summary: &mut Summary,
) -> Result<(), Failure> {
    let Group {
        entries, mut files, ..
    } = std::mem::take(group);
    if entries.is_empty() {
        return Ok(());
    }
    publish::commit(&mut files, dataset.dir())?;
    let mut stale = Vec::new();
    for entry in entries {
        summary.segments += 1;
        summary.event_files += entry.files.len() as u64;
        summary.events += entry.events;
        summary.event_bytes += entry.files.iter().map(|f| f.bytes).sum::<u64>();
        let old = manifest
            .events
            .iter()
            .position(|s| s.segment_id == entry.segment_id)
            .map(|i| manifest.events.remove(i));
        stale.extend(
            old.into_iter()
                .flat_map(|o| o.files)
                .filter(|f| !entry.files.iter().any(|n| n.path == f.path))
                .map(|f| f.path),
        );
        let at = manifest
            .events
            .partition_point(|s| s.segment_id < entry.segment_id);
        manifest.events.insert(at, entry);
    }
    // The manifest first: a file it no longer names is only garbage if the removal fails.
    dataset.write_manifest(manifest)?;
    for rel in stale {
        let path = dataset.dir().join(&rel);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(parquet::io_err("remove", &path, &e)),
        }
    }
    Ok(())
}

/// Says what an interrupted run kept, exit 130.
fn interrupted(out_dir: &Path, summary: &Summary) -> u8 {
    eprintln!(
        "selflog: archive interrupted; {} segments were archived into {} and are in its \
         manifest, the segment being written was discarded; run it again to finish",
        summary.segments,
        out_dir.display()
    );
    EXIT_INTERRUPTED
}

fn print_summary(
    args: &Args,
    manifest: &Manifest,
    s: &Summary,
    seconds: f64,
) -> Result<(), Failure> {
    let files = s.event_files + s.sidecar_files;
    let rows = s.events + s.patterns + s.stats;
    let bytes = s.event_bytes + s.sidecar_bytes;
    #[allow(clippy::cast_precision_loss, reason = "a ratio for display")]
    let bytes_per_event = (s.events > 0).then(|| s.event_bytes as f64 / s.events as f64);
    #[allow(clippy::cast_precision_loss, reason = "a rate for display")]
    let events_per_second = (s.events > 0 && seconds > 0.0).then(|| s.events as f64 / seconds);
    let total_files = manifest.files().count();
    let total_rows: u64 = manifest.files().map(|f| f.rows).sum();
    let total_bytes: u64 = manifest.files().map(|f| f.bytes).sum();
    let mut out = io::stdout().lock();
    let res = if args.json {
        let v = serde_json::json!({
            "out_dir": args.out_dir.display().to_string(),
            "files": files,
            "rows": rows,
            "bytes": bytes,
            "events": s.events,
            "patterns": s.patterns,
            "system_stats": s.stats,
            "bytes_per_event": bytes_per_event,
            "segments": s.segments,
            "segments_skipped": s.segments_skipped,
            "seconds": seconds,
            "events_per_second": events_per_second,
            "total_files": total_files,
            "total_rows": total_rows,
            "total_bytes": total_bytes,
        });
        writeln!(out, "{v}")
    } else {
        let per_event =
            bytes_per_event.map_or_else(String::new, |b| format!(", {b:.1} bytes per event"));
        let rate = events_per_second.map_or_else(String::new, |r| format!(", {r:.0} events/s"));
        writeln!(
            out,
            "archived {files} files into {}: {rows} rows ({} events from {} segments, {} patterns, \
             {} stats records), {bytes} bytes{per_event}, in {seconds:.2} s{rate}\n\
             already archived: {} segments; the archive holds {total_files} files, \
             {total_rows} rows, {total_bytes} bytes",
            args.out_dir.display(),
            s.events,
            s.segments,
            s.patterns,
            s.stats,
            s.segments_skipped,
        )
    };
    res.map_err(|e| output::write_err(&e))
}
