//! [`StoreStats`]: the totals and ranges `Store::stats` reads from footers and the
//! in-memory index of the tail.

use std::collections::BTreeMap;

use crate::event::{EventId, Timestamp};

/// Totals and ranges of a store, read from footers and the in-memory index of the tail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Events stored.
    pub total_events: u64,
    /// Smallest event timestamp.
    pub first_timestamp: Option<Timestamp>,
    /// Largest event timestamp.
    pub last_timestamp: Option<Timestamp>,
    /// Smallest event id.
    pub first_id: Option<EventId>,
    /// Largest event id.
    pub last_id: Option<EventId>,
    /// Segment files of the event stream.
    pub segments: usize,
    /// Bytes the store's files occupy on disk (allocated blocks), including the unused,
    /// preallocated end of the active segment and the dedup window image.
    pub disk_bytes: u64,
    /// Bytes of log: segment headers, committed frames and footers.
    pub log_bytes: u64,
    /// Events in sealed segments, and the bytes of those segments' files.
    pub sealed_events: u64,
    /// Bytes of the sealed segments' files (compacted or as written).
    pub sealed_bytes: u64,
    /// Sealed segments.
    pub sealed_segments: usize,
    /// Sealed segments compacted (`format-spec/FORMAT.md#compacted-segments`).
    pub compacted_segments: usize,
    /// Events in the active (unsealed) segment.
    pub active_events: u64,
    /// Bytes of the active segment up to its committed end.
    pub active_bytes: u64,
    /// Events whose data is stored LZ4-compressed.
    pub compressed_events: u64,
    /// Bytes of event data as appended.
    pub data_raw_bytes: u64,
    /// Bytes of event data as stored.
    pub data_stored_bytes: u64,
    /// Events per event type.
    pub events_by_type: BTreeMap<String, u64>,
    /// Duplicates `append` dropped since the store was created (saved at each `flush` and
    /// at close). 0 when unknown: see `duplicates_unknown`.
    pub duplicates_dropped: u64,
    /// Set when `duplicates_dropped` is unknown, saying why: a read-only open found the
    /// `counters` file damaged (or unreadable). That count is kept nowhere else and cannot
    /// be rebuilt from the log; the next writable open restarts it at 0 and rewrites the
    /// file. Every other figure is still exact.
    pub duplicates_unknown: Option<String>,
}

impl StoreStats {
    /// Log bytes per stored event (0 for an empty store).
    pub fn bytes_per_event(&self) -> f64 {
        ratio(self.log_bytes, self.total_events)
    }

    /// Bytes per event of the sealed segments (0 when there are none).
    pub fn sealed_bytes_per_event(&self) -> f64 {
        ratio(self.sealed_bytes, self.sealed_events)
    }

    /// Bytes per event of the active segment's committed part (0 when it is empty).
    pub fn active_bytes_per_event(&self) -> f64 {
        ratio(self.active_bytes, self.active_events)
    }
}

#[expect(clippy::cast_precision_loss, reason = "a ratio for display")]
fn ratio(bytes: u64, events: u64) -> f64 {
    if events == 0 {
        0.0
    } else {
        bytes as f64 / events as f64
    }
}
