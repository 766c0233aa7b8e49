//! What a periodic stats record measures: events stored, the append rate since the last
//! record, and the store's size on disk. The application's gauges (active embryos, average
//! fitness) are not measured: they come from the last record the application recorded.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::Instant;

use crate::error::Result;
use crate::event::Timestamp;
use crate::stream::Stream;

use super::records::SystemStats;

/// Events stored, from the segments' summaries.
pub(crate) fn total_events(stream: &Stream) -> Result<u64> {
    stream.refresh_deferred()?;
    Ok(stream
        .views()
        .iter()
        .map(|v| v.with_summary(|s, _| s.event_count))
        .sum())
}

/// Bytes the files under `dir` occupy on disk.
pub(crate) fn disk_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(std::result::Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// Where the append rate is measured from: a time and the events stored then.
pub(crate) struct Rate {
    at: Instant,
    total: u64,
}

impl Rate {
    /// Starts measuring from the events `stream` holds now.
    pub fn start(stream: &Stream) -> Rate {
        Rate {
            at: Instant::now(),
            total: total_events(stream).unwrap_or(0),
        }
    }
}

/// A stats record of the store in `dir` (its event log `stream`) now, with the append rate
/// since `rate` (which moves on to now) and the application's `gauges`.
#[expect(
    clippy::cast_precision_loss,
    reason = "rates and sizes as the old schema's REAL"
)]
pub(crate) fn measure(
    dir: &Path,
    stream: &Stream,
    rate: &mut Rate,
    gauges: (u64, f64),
) -> Result<SystemStats> {
    let total = total_events(stream)?;
    let secs = rate.at.elapsed().as_secs_f64().max(1e-9);
    let (active_embryos, avg_fitness) = gauges;
    let record = SystemStats {
        timestamp: Timestamp::now(),
        total_events: total,
        events_per_second: total.saturating_sub(rate.total) as f64 / secs,
        active_embryos,
        avg_fitness,
        storage_mb: disk_bytes(dir) as f64 / f64::from(1u32 << 20),
    };
    *rate = Rate {
        at: Instant::now(),
        total,
    };
    Ok(record)
}
