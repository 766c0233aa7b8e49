//! `selflog demo`: generate realistic desktop-activity events, append them through the
//! library at full speed, then report throughput, bytes per event and the store's figures.

use std::io::{self, Write as _};
use std::path::Path;
use std::sync::mpsc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use selflog::{Config, Event, Timestamp};
use selflog_workload::{Record, Workload, WorkloadConfig};

use crate::{output, Outcome};

/// Events generated per chunk handed from the generator thread to the appender.
const CHUNK_EVENTS: usize = 10_000;

#[derive(clap::Args)]
pub struct Args {
    /// Events to generate and append.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Seed of the deterministic generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[expect(clippy::cast_precision_loss, reason = "figures for display")]
pub fn run(store_dir: &Path, args: &Args) -> Outcome {
    let store = crate::open_writable(store_dir, Config::default())?;
    let before = store.stats()?.total_events;
    let cfg = WorkloadConfig {
        count: args.events,
        seed: args.seed,
        ..WorkloadConfig::default()
    };
    // The generator runs on its own thread so the figure measures the store.
    let (tx, rx) = mpsc::sync_channel::<Vec<Event>>(4);
    let generator = std::thread::spawn(move || {
        let mut work = Workload::new(cfg);
        loop {
            let chunk: Vec<Event> = work.by_ref().take(CHUNK_EVENTS).map(event).collect();
            if chunk.is_empty() || tx.send(chunk).is_err() {
                break;
            }
        }
    });
    let bar = ProgressBar::new(args.events);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} appending [{bar:40}] {pos}/{len} events, {per_sec}, eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut appended = 0u64;
    let mut busy = std::time::Duration::ZERO;
    for chunk in rx {
        let n = chunk.len() as u64;
        let start = Instant::now();
        store.append_batch(chunk)?;
        busy += start.elapsed();
        appended += n;
        bar.inc(n);
    }
    let start = Instant::now();
    store.flush()?;
    busy += start.elapsed();
    bar.finish_and_clear();
    let _ = generator.join();
    let stats = store.stats()?;
    store.close()?;

    let secs = busy.as_secs_f64().max(1e-9);
    let mut text = format!(
        "appended {appended} events in {secs:.2} s of append time: {:.0} events/s\n\
         store {} now holds {} events ({} before, {} duplicates dropped), {} of log, {:.1} bytes per event, {} on disk\n\
         compressed events: {} (data {} -> {})\n",
        appended as f64 / secs,
        store_dir.display(),
        stats.total_events,
        before,
        stats.duplicates_dropped,
        output::human_bytes(stats.log_bytes),
        stats.bytes_per_event(),
        output::human_bytes(stats.disk_bytes),
        stats.compressed_events,
        output::human_bytes(stats.data_raw_bytes),
        output::human_bytes(stats.data_stored_bytes),
    );
    let mut types: Vec<_> = stats.events_by_type.iter().collect();
    types.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let top: Vec<String> = types
        .iter()
        .take(5)
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    text.push_str(&format!("most frequent types: {}\n", top.join(", ")));
    text.push_str(&format!(
        "\nnext: selflog --store {} inspect stats    (then: inspect verify)\n",
        store_dir.display()
    ));
    io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| output::write_err(&e))?;
    Ok(0)
}

/// The store's event for a generated record: its fields moved, nothing checked twice
/// (`append` validates it).
fn event(r: Record) -> Event {
    Event {
        timestamp: Timestamp(r.timestamp_us),
        event_type: r.event_type,
        action: r.action,
        source: r.source,
        data: r.data,
    }
}
