//! The filter flags `list`, `search`, `count` and `export` share: time range (`--since`,
//! `--until`, `--hours`; syntax in `time.rs`), `-t/--type`, `-s/--source`, `--action`.
//!
//! A type or source no stored event has is almost always a typo, so both are refused the
//! same way: exit status 1, naming the values the store does have.

use std::time::Duration;

use selflog::{Field, Query, Store, Timestamp};

use crate::time::{self, TimeArg};
use crate::Failure;

/// Known values listed in the hint of an unknown type or source, at most.
const KNOWN_LISTED_MAX: usize = 20;

#[derive(clap::Args, Debug, Clone)]
pub struct FilterArgs {
    /// Events of the last H hours (same as --since Hh).
    #[arg(long, value_name = "H", conflicts_with = "since")]
    hours: Option<f64>,
    /// Events at or after T: `2026-12-06 22:00:00` (as tables print it), 2026-12-06, today,
    /// yesterday, now, an age (90s, 2h, 1h30m, -1h), RFC 3339 or epoch seconds.
    #[arg(long, value_name = "T", value_parser = time::parse, allow_hyphen_values = true)]
    since: Option<TimeArg>,
    /// Events before T (same syntax as --since).
    #[arg(long, value_name = "T", value_parser = time::parse, allow_hyphen_values = true)]
    until: Option<TimeArg>,
    /// Only this event type (repeat for several).
    #[arg(short = 't', long = "type", value_name = "TYPE")]
    types: Vec<String>,
    /// Only this source (repeat for several).
    #[arg(short = 's', long = "source", value_name = "SOURCE")]
    sources: Vec<String>,
    /// Only this action.
    #[arg(long, value_name = "ACTION")]
    action: Option<String>,
}

impl FilterArgs {
    /// The query these flags describe, newest first, without limit. Fails on a type or
    /// source no stored event has.
    pub fn query<'s>(&self, store: &'s Store) -> Result<Query<'s>, Failure> {
        check_known(store, Field::EventType, &self.types)?;
        check_known(store, Field::Source, &self.sources)?;
        let mut q = store.query();
        if let Some(h) = self.hours {
            if !(h.is_finite() && h >= 0.0) {
                return Err(Failure::hinted(
                    format!("--hours {h} is not a number of hours"),
                    "pass a non-negative number, e.g. --hours 2",
                ));
            }
            let age = Duration::try_from_secs_f64(h * 3600.0).unwrap_or(Duration::MAX);
            q = q.since(Timestamp::now().saturating_sub(age));
        }
        if let Some(t) = time::resolve(self.since.as_ref())? {
            q = q.since(t);
        }
        if let Some(t) = time::resolve(self.until.as_ref())? {
            q = q.until(t);
        }
        for t in &self.types {
            q = q.event_type(t.clone());
        }
        for s in &self.sources {
            q = q.source(s.clone());
        }
        if let Some(a) = &self.action {
            q = q.action(a.clone());
        }
        Ok(q)
    }
}

/// Refuses the first of `wanted` that no stored event has in `field`, naming the known ones.
pub fn check_known(store: &Store, field: Field, wanted: &[String]) -> Result<(), Failure> {
    if wanted.is_empty() {
        return Ok(());
    }
    let known = store.query().counts_by(field)?;
    let Some(unknown) = wanted.iter().find(|w| !known.contains_key(w.as_str())) else {
        return Ok(());
    };
    let (what, plural) = match field {
        Field::EventType => ("event type", "types"),
        Field::Source => ("source", "sources"),
        Field::Action => ("action", "actions"),
    };
    let mut names: Vec<&str> = known.keys().map(String::as_str).collect();
    let more = names.len().saturating_sub(KNOWN_LISTED_MAX);
    names.truncate(KNOWN_LISTED_MAX);
    let listed = if names.is_empty() {
        "(none, the store is empty)".to_owned()
    } else if more > 0 {
        format!("{} (and {more} more)", names.join(", "))
    } else {
        names.join(", ")
    };
    Err(Failure::hinted(
        format!("unknown {what} `{unknown}`: no stored event has it"),
        format!("known {plural}: {listed}"),
    ))
}
