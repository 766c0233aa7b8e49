//! The filter flags `list`, `search` and `export` share, and the time syntax of `--since`
//! and `--until`: epoch seconds (float), RFC 3339, or an age such as `90s`, `30m`, `2h`,
//! `7d` (that long before now).

use std::time::Duration;

use selflog::{Order, Query, Store, Timestamp};

use crate::Failure;

#[derive(clap::Args, Debug, Clone)]
pub struct FilterArgs {
    /// Events of the last H hours (same as --since Hh).
    #[arg(long, value_name = "H", conflicts_with = "since")]
    hours: Option<f64>,
    /// Events at or after T: epoch seconds, RFC 3339, or an age like 90s, 30m, 2h, 7d.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    since: Option<Timestamp>,
    /// Events before T (same syntax as --since).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    until: Option<Timestamp>,
    /// Only this event type (repeat for several).
    #[arg(long = "type", value_name = "TYPE")]
    types: Vec<String>,
    /// Only this source (repeat for several).
    #[arg(long = "source", value_name = "SOURCE")]
    sources: Vec<String>,
    /// Only this action.
    #[arg(long, value_name = "ACTION")]
    action: Option<String>,
    /// Oldest first (default: newest first).
    #[arg(long)]
    oldest_first: bool,
}

impl FilterArgs {
    /// The query these flags describe, without limit.
    pub fn query<'s>(&self, store: &'s Store) -> Result<Query<'s>, Failure> {
        // A type the store has never seen is almost always a typo: say so, with the types
        // it does have, rather than print nothing.
        if !self.types.is_empty() {
            let known = store.stats()?.events_by_type;
            if let Some(t) = self.types.iter().find(|t| !known.contains_key(t.as_str())) {
                let mut names: Vec<&str> = known.keys().map(String::as_str).collect();
                names.truncate(20);
                return Err(Failure::hinted(
                    format!("unknown event type `{t}`: no stored event has it"),
                    format!(
                        "known types: {}",
                        if names.is_empty() {
                            "(none, the store is empty)".to_owned()
                        } else {
                            names.join(", ")
                        }
                    ),
                ));
            }
        }
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
        if let Some(t) = self.since {
            q = q.since(t);
        }
        if let Some(t) = self.until {
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
        Ok(q.order(if self.oldest_first {
            Order::OldestFirst
        } else {
            Order::NewestFirst
        }))
    }
}

/// Parses `--since`/`--until` values.
pub fn parse_time(s: &str) -> Result<Timestamp, String> {
    let s = s.trim();
    let bad = || {
        format!("invalid time {s:?}: use epoch seconds (1732460000.5), RFC 3339 (2024-11-24T15:00:00Z) or an age (90s, 30m, 2h, 7d)")
    };
    let age = s.chars().last().and_then(|unit| {
        let secs = match unit {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            'd' => 86_400.0,
            'w' => 7.0 * 86_400.0,
            _ => return None,
        };
        let number: f64 = s[..s.len() - 1].trim().parse().ok()?;
        Some((number, secs))
    });
    if let Some((number, secs)) = age {
        if !(number.is_finite() && number >= 0.0) {
            return Err(bad());
        }
        let age = Duration::try_from_secs_f64(number * secs).map_err(|_| bad())?;
        return Ok(Timestamp::now().saturating_sub(age));
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Timestamp::from_secs_f64(secs).ok_or_else(bad);
    }
    selflog::jsonl::parse_time_text(s).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_time_form() {
        assert_eq!(
            parse_time("1732460000.5").unwrap(),
            Timestamp(1_732_460_000_500_000)
        );
        assert_eq!(
            parse_time("2024-11-24T15:00:00Z").unwrap(),
            Timestamp(1_732_460_400_000_000)
        );
        let now = Timestamp::now().0;
        let two_hours = parse_time("2h").unwrap().0;
        assert!((now - two_hours - 7_200_000_000).abs() < 5_000_000);
        let week = parse_time("7d").unwrap().0;
        assert!((now - week - 604_800_000_000).abs() < 5_000_000);
        assert_eq!(
            parse_time("2024-11-24T15:00:00+01:00").unwrap(),
            Timestamp(1_732_456_800_000_000)
        );
        for bad in ["yesterday", "2x", "-3h", "", "1e400", "h"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
