//! Aggregations over a query's matches: [`Query::count`], [`Query::counts_by`],
//! [`Query::time_bounds`] and [`Query::histogram`].
//!
//! Each ignores order and limit, so it reads matches in storage order without the merge.
//! Without a filter, counts and bounds come from the segments' summaries and per-segment
//! counts alone (footers and the tail's index), never from their frames.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::event::Timestamp;

use super::{Field, Query};

impl Query<'_> {
    /// Counts matching events (ignoring order and limit). Reads only footers and the tail's
    /// index when the query has no filter.
    ///
    /// # Errors
    /// As [`Query::run`].
    pub fn count(self) -> Result<u64> {
        if self.filter.is_everything() && self.after.is_none() {
            return Ok(self.summary_totals()?.0);
        }
        let mut n = 0;
        for e in self.unordered()? {
            e?;
            n += 1;
        }
        Ok(n)
    }

    /// Events matching, counted per value of `field`. Reads only footers and the tail's
    /// index when the query has no filter.
    ///
    /// # Errors
    /// As [`Query::run`].
    pub fn counts_by(self, field: Field) -> Result<BTreeMap<String, u64>> {
        if self.filter.is_everything() && self.after.is_none() {
            if let Some(counts) = self.index_counts(field)? {
                return Ok(counts);
            }
        }
        let mut out = BTreeMap::new();
        for e in self.unordered()? {
            let e = e?;
            let key = match field {
                Field::EventType => Some(e.event_type),
                Field::Source => Some(e.source),
                Field::Action => e.action,
            };
            if let Some(k) = key {
                *out.entry(k).or_insert(0) += 1;
            }
        }
        Ok(out)
    }

    /// The smallest and largest timestamp of matching events, `None` if there are none.
    ///
    /// # Errors
    /// As [`Query::run`].
    pub fn time_bounds(self) -> Result<Option<(Timestamp, Timestamp)>> {
        if self.filter.is_everything() && self.after.is_none() {
            return Ok(self.summary_totals()?.1);
        }
        let mut bounds: Option<(Timestamp, Timestamp)> = None;
        for e in self.unordered()? {
            let t = e?.timestamp;
            bounds = Some(bounds.map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t))));
        }
        Ok(bounds)
    }

    /// Matching events per time bucket of width `bucket` (an hour or a day for a dashboard),
    /// buckets aligned to multiples of `bucket` since the epoch, ascending, empty buckets
    /// omitted.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero bucket; otherwise as [`Query::run`].
    pub fn histogram(self, bucket: Duration) -> Result<Vec<(Timestamp, u64)>> {
        let width = i64::try_from(bucket.as_micros()).unwrap_or(i64::MAX);
        if width <= 0 {
            return Err(Error::InvalidConfig(
                "histogram bucket must be positive".into(),
            ));
        }
        let mut buckets: BTreeMap<i64, u64> = BTreeMap::new();
        for e in self.unordered()? {
            let t = e?.timestamp.0;
            *buckets.entry(t.div_euclid(width) * width).or_insert(0) += 1;
        }
        Ok(buckets
            .into_iter()
            .map(|(t, n)| (Timestamp(t), n))
            .collect())
    }

    fn index_counts(&self, field: Field) -> Result<Option<BTreeMap<String, u64>>> {
        self.stream.refresh()?;
        let mut out = BTreeMap::new();
        for view in self.stream.views() {
            let complete = view.with_index(|ix, _| {
                let counts = match field {
                    Field::EventType => Some(&ix.type_counts),
                    Field::Source => ix.source_counts.as_ref(),
                    Field::Action => ix.action_counts.as_ref(),
                };
                let Some(counts) = counts else {
                    return false;
                };
                for (&r, &n) in counts {
                    if let Some(name) = ix.strings.get(r as usize) {
                        *out.entry(name.to_string()).or_insert(0) += n;
                    }
                }
                true
            });
            if !complete {
                return Ok(None);
            }
        }
        Ok(Some(out))
    }

    /// The number of events and their smallest and largest timestamp, from the segments'
    /// summaries alone (the figures the store's statistics report).
    fn summary_totals(&self) -> Result<(u64, Option<(Timestamp, Timestamp)>)> {
        self.stream.refresh()?;
        let mut total = 0;
        let mut bounds: Option<(Timestamp, Timestamp)> = None;
        for view in self.stream.views() {
            view.with_index(|ix, _| {
                let s = &ix.summary;
                if s.event_count == 0 {
                    return;
                }
                total += s.event_count;
                let (lo, hi) = (Timestamp(s.min_ts_us), Timestamp(s.max_ts_us));
                bounds =
                    Some(bounds.map_or((lo, hi), |(first, last)| (first.min(lo), last.max(hi))));
            });
        }
        Ok((total, bounds))
    }
}
