//! The workload generator's records as the store's events, for every bench.
//!
//! `selflog-workload` does not depend on the store (it is a dev-dependency of the store),
//! so the benches turn its records into `selflog::Event`s here: the fields are moved, and
//! the data is already checked JSON text.

use selflog::{Event, Timestamp};
use selflog_workload::{Record, Workload, WorkloadConfig};

/// The store's event for a generated record.
pub fn event(r: Record) -> Event {
    Event {
        timestamp: Timestamp(r.timestamp_us),
        event_type: r.event_type,
        action: r.action,
        source: r.source,
        data: r.data,
    }
}

/// The events `config` describes, as the store's events.
pub type Events = std::iter::Map<Workload, fn(Record) -> Event>;

/// The events `config` describes.
pub fn generate(config: WorkloadConfig) -> Events {
    Workload::new(config).map(event as fn(Record) -> Event)
}
