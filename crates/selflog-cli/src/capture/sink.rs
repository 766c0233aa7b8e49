//! Where captured events go: the store, with the counters the status line and the summary
//! show.
//!
//! Every event is appended from the capture thread. The store's append waits only while its
//! queue is full, and the daemon opens the store with a short `queue_wait_max`
//! ([`QUEUE_WAIT_MAX`]), so a stalled disk costs the capture thread at most that per event:
//! the event is counted as lost to a full queue, a warning says so (once per stall), and a
//! `system` event `queue_full` with the count is appended when the queue has room again.
//! Nothing is lost without being counted and said.

use std::collections::BTreeMap;
use std::time::Duration;

use selflog::{Appended, Event, Store, Timestamp};
use serde_json::{json, Value};

use super::log::Log;

/// How long one append may wait for room in a full queue before the event is given up and
/// counted (the store's `queue_wait_max` for the daemon).
pub const QUEUE_WAIT_MAX: Duration = Duration::from_millis(200);

/// The `source` of the daemon's own `system` events.
pub const SYSTEM_SOURCE: &str = "selflog-capture";

/// Longest source accepted by the store, in bytes; longer directory names are cut (the
/// full path is in `data`).
const SOURCE_LEN_MAX: usize = selflog::NAME_LEN_MAX;

/// The store and what went into it.
pub struct Sink<'a> {
    store: &'a Store,
    /// Events stored, by type.
    pub stored_by_type: BTreeMap<String, u64>,
    /// Events the store dropped as exact duplicates of stored ones.
    pub duplicates: u64,
    /// Events given up because the queue stayed full.
    pub queue_full_lost: u64,
    /// Of those, the ones not yet reported by a `queue_full` system event.
    queue_full_unreported: u64,
    /// Events the store refused (invalid, too large) or failed to take.
    pub errors: u64,
    /// The last event stored: type, action and what it was about.
    pub last: String,
    /// The newest timestamp handed out, so that timestamps never go backwards.
    last_us: i64,
}

impl<'a> Sink<'a> {
    /// A sink appending to `store`.
    pub fn new(store: &'a Store) -> Sink<'a> {
        Sink {
            store,
            stored_by_type: BTreeMap::new(),
            duplicates: 0,
            queue_full_lost: 0,
            queue_full_unreported: 0,
            errors: 0,
            last: String::new(),
            last_us: 0,
        }
    }

    /// A timestamp for an event seen now: the wall clock, moved on by a microsecond when it
    /// is not past the last one handed out, so the events of one run are in time order as
    /// they are in id order.
    pub fn now(&mut self) -> Timestamp {
        self.stamp(Timestamp::now())
    }

    /// `t`, or just after the last timestamp handed out if `t` is not past it.
    pub fn stamp(&mut self, t: Timestamp) -> Timestamp {
        let us = t.micros().max(self.last_us.saturating_add(1));
        self.last_us = us;
        Timestamp(us)
    }

    /// Total events stored.
    pub fn stored(&self) -> u64 {
        self.stored_by_type.values().sum()
    }

    /// Appends one event; `about` describes it for the status line.
    pub fn append(
        &mut self,
        log: &mut Log,
        timestamp: Timestamp,
        event_type: &str,
        action: &str,
        source: &str,
        data: &Value,
    ) {
        if self.queue_full_unreported > 0 && event_type != "system" {
            self.report_queue_full(log);
        }
        let source = cut(source, SOURCE_LEN_MAX);
        let source = if source.is_empty() { "/" } else { source };
        let text = data.to_string();
        let event = match Event::new(timestamp, event_type, Some(action), source, Some(&text)) {
            Ok(e) => e,
            Err(e) => {
                self.errors += 1;
                log.warn(&format!("{event_type} {action} not stored: {e}"));
                return;
            }
        };
        match self.store.append(event) {
            Ok(Appended::New(_)) => {
                *self
                    .stored_by_type
                    .entry(event_type.to_owned())
                    .or_insert(0) += 1;
                let what = data.get("path").and_then(Value::as_str).unwrap_or(source);
                self.last = format!("{event_type} {action} {what}");
            }
            Ok(Appended::Duplicate(_)) => self.duplicates += 1,
            Err(selflog::Error::QueueFull { waited_ms }) => {
                if self.queue_full_unreported == 0 {
                    log.warn(&format!(
                        "the store's queue stayed full for {waited_ms} ms: events are counted \
                         as lost until it drains (is the disk stalled?)"
                    ));
                }
                self.queue_full_lost += 1;
                self.queue_full_unreported += 1;
            }
            Err(e) => {
                self.errors += 1;
                log.warn(&format!("{event_type} {action} not stored: {e}"));
            }
        }
    }

    /// Appends a `system` event about the daemon itself and logs it.
    pub fn system(&mut self, log: &mut Log, action: &str, data: &Value) {
        let t = self.now();
        log.info(&format!("{action} {data}"));
        self.append(log, t, "system", action, SYSTEM_SOURCE, data);
    }

    fn report_queue_full(&mut self, log: &mut Log) {
        let lost = std::mem::take(&mut self.queue_full_unreported);
        self.system(
            log,
            "queue_full",
            &json!({"lost_events": lost, "queue_wait_max_ms": QUEUE_WAIT_MAX.as_millis() as u64}),
        );
    }

    /// Reports events still counted as lost to a full queue (at the end of a run).
    pub fn finish(&mut self, log: &mut Log) {
        if self.queue_full_unreported > 0 {
            self.report_queue_full(log);
        }
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn cut_keeps_whole_characters() {
        assert_eq!(cut("abc", 5), "abc");
        assert_eq!(cut("aé", 2), "a");
        assert_eq!(cut("aé", 3), "aé");
    }
}
