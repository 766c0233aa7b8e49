//! Pattern and stats records, and how each is kept as an event of its sidecar stream.
//!
//! A record is kept as an event whose fields are laid out as follows
//! (`format-spec/FORMAT.md#sidecars`); the bytes on disk are those of any event:
//! a pattern's type is the event type, its subject event (`event:N`, or `event:-`) the
//! source, its embryo the action, and `{"event_id", "confidence", "pattern_data"}` the data;
//! a stats record is an event of type `system_stats` from source `maintenance` whose data
//! holds the record's fields. The subject event as source makes "patterns of event N" an
//! indexed query.

use serde_json::value::RawValue;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::event::{Event, EventId, StoredEvent, Timestamp};

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

/// A pattern to record ([`crate::Store::record_pattern`]): a [`Pattern`] before it has an
/// id. [`NewPattern::new`] fills in the rest (no subject event, no embryo, created now).
#[derive(Debug, Clone, PartialEq)]
pub struct NewPattern {
    /// The event it is about, if any.
    pub event_id: Option<EventId>,
    /// Its kind.
    pub pattern_type: String,
    /// How sure the finder is, 0 to 1; must be finite.
    pub confidence: f64,
    /// Any JSON; must be valid.
    pub pattern_data: String,
    /// The embryo (learner) that found it.
    pub embryo_id: Option<String>,
    /// When it was found (an import gives the original time).
    pub created: Timestamp,
}

impl NewPattern {
    /// A pattern of `pattern_type` with `confidence` and `pattern_data` (JSON), about no
    /// event, found by no embryo, created now.
    pub fn new(
        pattern_type: impl Into<String>,
        confidence: f64,
        pattern_data: impl Into<String>,
    ) -> NewPattern {
        NewPattern {
            event_id: None,
            pattern_type: pattern_type.into(),
            confidence,
            pattern_data: pattern_data.into(),
            embryo_id: None,
            created: Timestamp::now(),
        }
    }

    /// The same pattern, about event `id`.
    #[must_use]
    pub fn about(mut self, id: EventId) -> NewPattern {
        self.event_id = Some(id);
        self
    }

    /// The same pattern, found by `embryo_id`.
    #[must_use]
    pub fn found_by(mut self, embryo_id: impl Into<String>) -> NewPattern {
        self.embryo_id = Some(embryo_id.into());
        self
    }

    /// The same pattern, created at `created`.
    #[must_use]
    pub fn at(mut self, created: Timestamp) -> NewPattern {
        self.created = created;
        self
    }
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
    /// The host's gauge of active embryos. The maintenance thread's records carry the
    /// value of the last record the application recorded (0 before any).
    pub active_embryos: u64,
    /// The host's gauge of average embryo fitness, carried on like `active_embryos`.
    pub avg_fitness: f64,
    /// Size of the store on disk, in MiB.
    pub storage_mb: f64,
}

/// The configuration of a sidecar: the main store's limits and retention, no sidecars of
/// its own, a small dedup window (so an import run twice stores nothing twice; ~1.6 MB),
/// small segments.
pub(crate) fn sidecar_config(main: &Config) -> Config {
    let mut c = main.clone();
    c.sidecars = false;
    c.dedup_window = main.dedup_window.min(100_000);
    c.segment_len = (4 << 20)
        .max(crate::config::SEGMENT_LEN_MIN)
        .min(main.segment_len);
    c.data_len_max = c.data_len_max.min(256 << 10);
    c
}

fn subject(event_id: Option<EventId>) -> String {
    event_id.map_or_else(|| "event:-".to_owned(), |id| format!("event:{id}"))
}

/// The event that stores a pattern.
pub(crate) fn pattern_event(p: &NewPattern) -> Result<Event> {
    let confidence = p.confidence;
    if !confidence.is_finite() {
        return Err(Error::InvalidEvent {
            field: "confidence",
            reason: format!("{confidence} is not a finite number"),
        });
    }
    let data_json =
        RawValue::from_string(p.pattern_data.clone()).map_err(|e| Error::InvalidEvent {
            field: "pattern_data",
            reason: format!("is not valid JSON: {e}"),
        })?;
    let data = serde_json::json!({
        "event_id": p.event_id.map(|i| i.0),
        "confidence": confidence,
        "pattern_data": data_json,
    });
    Event::new(
        p.created,
        &p.pattern_type,
        p.embryo_id.as_deref(),
        subject(p.event_id),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(e: &Event) -> StoredEvent {
        StoredEvent {
            id: EventId(1),
            timestamp: e.timestamp,
            event_type: e.event_type.clone(),
            action: e.action.clone(),
            source: e.source.clone(),
            data: e.data_text().map(str::to_owned),
            hash: e.content_hash(),
        }
    }

    /// The stats record's data as `format-spec/FORMAT.md#sidecars` lays it out: keys in
    /// order, counts as JSON integers, the rest as numbers with a point; a non-finite
    /// gauge is written as `null` and the record then reads as no record (issue 26).
    #[test]
    fn stats_data_has_the_spec_types_and_order() {
        let s = SystemStats {
            timestamp: Timestamp(1_732_460_000_000_000),
            total_events: 990_050,
            events_per_second: 1250.5,
            active_embryos: 3,
            avg_fitness: 0.0,
            storage_mb: 1e-7,
        };
        let e = stats_event(&s).unwrap();
        assert_eq!(
            e.data_text(),
            Some(
                r#"{"total_events":990050,"events_per_second":1250.5,"active_embryos":3,"avg_fitness":0.0,"storage_mb":1e-7}"#
            )
        );
        assert_eq!(
            (e.event_type.as_str(), e.source.as_str()),
            ("system_stats", "maintenance")
        );
        assert_eq!(to_stats(&stored(&e)), Some(s));
        let nan = SystemStats {
            avg_fitness: f64::NAN,
            ..s
        };
        let e = stats_event(&nan).unwrap();
        assert!(e.data_text().unwrap().contains(r#""avg_fitness":null"#));
        assert_eq!(to_stats(&stored(&e)), None);
        // An integer where a number is expected reads; a number where an integer is, not.
        let mut lenient = stored(&e);
        lenient.data = Some(
            r#"{"total_events":1,"events_per_second":2,"active_embryos":3,"avg_fitness":4,"storage_mb":5,"extra":true}"#
                .into(),
        );
        assert!(to_stats(&lenient).is_some());
        lenient.data = Some(
            lenient
                .data
                .unwrap()
                .replace(r#""total_events":1"#, r#""total_events":1.0"#),
        );
        assert_eq!(to_stats(&lenient), None);
    }
}
