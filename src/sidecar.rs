//! The pattern and stats streams: learning output and periodic system statistics in logs
//! of their own, beside the event log.
//!
//! Each is a selflog store in a subdirectory of the main store (`patterns/`, `stats/`), so
//! it has the same framing, checksums, recovery, retention and reader views as the event
//! log, and its own writer thread: patterns and stats never queue behind events. A record
//! is kept as an event whose fields are laid out as follows (`format-spec/FORMAT.md#sidecars`):
//! a pattern's type is the event type, its subject event (`event:N`, or `event:-`) the
//! source, its embryo the action, and `{"event_id", "confidence", "pattern_data"}` the data;
//! a stats record is an event of type `system_stats` from source `maintenance` whose data
//! holds the record's fields. The subject event as source makes "patterns of event N" an
//! indexed query.

use std::path::Path;

use serde_json::value::RawValue;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::event::{Event, EventId, StoredEvent, Timestamp};
use crate::store::Store;

/// Subdirectory of the pattern stream.
pub const PATTERNS_DIR: &str = "patterns";
/// Subdirectory of the stats stream.
pub const STATS_DIR: &str = "stats";

/// A learning component's finding about the event log (the old `patterns` table).
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    /// Its id in the pattern stream.
    pub id: u64,
    /// The event it is about, if any (it may since have been deleted by retention).
    pub event_id: Option<EventId>,
    /// Its kind.
    pub pattern_type: String,
    /// How sure the finder is, 0 to 1.
    pub confidence: f64,
    /// Any JSON, as recorded.
    pub pattern_data: String,
    /// The embryo (learner) that found it.
    pub embryo_id: Option<String>,
    /// When it was recorded.
    pub created: Timestamp,
}

/// One periodic statistics record (the old `system_stats` table).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SystemStats {
    /// When it was taken.
    pub timestamp: Timestamp,
    /// Events stored.
    pub total_events: u64,
    /// Events appended per second over the interval before it.
    pub events_per_second: f64,
    /// The host's gauge of active embryos.
    pub active_embryos: u64,
    /// The host's gauge of average embryo fitness.
    pub avg_fitness: f64,
    /// Size of the store on disk, in MiB.
    pub storage_mb: f64,
}

/// The two sidecar stores of a main store.
pub(crate) struct Sidecars {
    pub patterns: Store,
    pub stats: Store,
}

/// The configuration of a sidecar: the main store's limits and retention, no sidecars of
/// its own, a small dedup window (so an import run twice stores nothing twice; ~1.6 MB),
/// small segments.
fn sidecar_config(main: &Config) -> Config {
    let mut c = main.clone();
    c.sidecars = false;
    c.dedup_window = main.dedup_window.min(100_000);
    c.segment_len = (4 << 20)
        .max(crate::config::SEGMENT_LEN_MIN)
        .min(main.segment_len);
    c.data_len_max = c.data_len_max.min(256 << 10);
    c
}

impl Sidecars {
    /// Opens (creating) both sidecars of the store at `dir` for writing.
    pub fn open(dir: &Path, main: &Config) -> Result<Sidecars> {
        let c = sidecar_config(main);
        Ok(Sidecars {
            patterns: Store::open(dir.join(PATTERNS_DIR), c.clone())?,
            stats: Store::open(dir.join(STATS_DIR), c)?,
        })
    }

    /// Opens the sidecars that exist, read-only.
    pub fn open_read_only(dir: &Path) -> Result<Option<Sidecars>> {
        let p = dir.join(PATTERNS_DIR);
        let s = dir.join(STATS_DIR);
        if !p.join(crate::layout::META_FILE).exists() || !s.join(crate::layout::META_FILE).exists()
        {
            return Ok(None);
        }
        Ok(Some(Sidecars {
            patterns: Store::open_read_only_plain(&p)?,
            stats: Store::open_read_only_plain(&s)?,
        }))
    }
}

fn subject(event_id: Option<EventId>) -> String {
    event_id.map_or_else(|| "event:-".to_owned(), |id| format!("event:{id}"))
}

/// The event that stores a pattern.
pub(crate) fn pattern_event(
    event_id: Option<EventId>,
    pattern_type: &str,
    confidence: f64,
    pattern_data: &str,
    embryo_id: Option<&str>,
    created: Timestamp,
) -> Result<Event> {
    if !confidence.is_finite() {
        return Err(Error::InvalidEvent {
            field: "confidence",
            reason: format!("{confidence} is not a finite number"),
        });
    }
    let data_json =
        RawValue::from_string(pattern_data.to_owned()).map_err(|e| Error::InvalidEvent {
            field: "pattern_data",
            reason: format!("is not valid JSON: {e}"),
        })?;
    let data = serde_json::json!({
        "event_id": event_id.map(|i| i.0),
        "confidence": confidence,
        "pattern_data": data_json,
    });
    Event::new(
        created,
        pattern_type,
        embryo_id,
        subject(event_id),
        Some(&data.to_string()),
    )
}

/// The pattern a stored event holds, `None` if it is not one.
pub(crate) fn to_pattern(e: StoredEvent) -> Option<Pattern> {
    #[derive(serde::Deserialize)]
    struct Stored<'a> {
        event_id: Option<u64>,
        confidence: f64,
        #[serde(borrow)]
        pattern_data: &'a RawValue,
    }
    let text = e.data.as_deref()?;
    let d: Stored<'_> = serde_json::from_str(text).ok()?;
    Some(Pattern {
        id: e.id.0,
        event_id: d.event_id.map(EventId),
        pattern_type: e.event_type,
        confidence: d.confidence,
        pattern_data: d.pattern_data.get().to_owned(),
        embryo_id: e.action,
        created: e.timestamp,
    })
}

/// The event that stores a stats record.
pub(crate) fn stats_event(s: &SystemStats) -> Result<Event> {
    let data = serde_json::json!({
        "total_events": s.total_events,
        "events_per_second": s.events_per_second,
        "active_embryos": s.active_embryos,
        "avg_fitness": s.avg_fitness,
        "storage_mb": s.storage_mb,
    });
    Event::new(
        s.timestamp,
        "system_stats",
        None,
        "maintenance",
        Some(&data.to_string()),
    )
}

/// The stats record a stored event holds, `None` if it is not one.
pub(crate) fn to_stats(e: &StoredEvent) -> Option<SystemStats> {
    #[derive(serde::Deserialize)]
    struct Data {
        total_events: u64,
        events_per_second: f64,
        active_embryos: u64,
        avg_fitness: f64,
        storage_mb: f64,
    }
    let d: Data = serde_json::from_str(e.data.as_deref()?).ok()?;
    Some(SystemStats {
        timestamp: e.timestamp,
        total_events: d.total_events,
        events_per_second: d.events_per_second,
        active_embryos: d.active_embryos,
        avg_fitness: d.avg_fitness,
        storage_mb: d.storage_mb,
    })
}

/// The pattern stream's source string for patterns about `event_id`: an indexed filter.
pub(crate) fn pattern_subject(event_id: EventId) -> String {
    subject(Some(event_id))
}
