//! Times as people read and write them: the one display every command prints, and the
//! syntax of `--since` and `--until`.
//!
//! Display: [`display`] prints local time with its UTC offset (`2026-12-06 22:00:00.000
//! +01:00`), or UTC (`2026-12-06 21:00:00.000 UTC`) once [`set_utc`] chose it (`--utc`).
//! Every table, `stats`, `get` and `maintain` use it; JSON keeps epoch seconds.
//!
//! Input: [`TimeArg::parse`] accepts, case-insensitively,
//! - what [`display`] prints, with or without milliseconds and zone: `2026-12-06 22:00:00`,
//!   `2026-12-06 22:00:00.123 +01:00`, `2026-12-06 21:00 UTC`; `T` may replace the space,
//!   so RFC 3339 (`2026-12-06T21:00:00Z`) is the same form;
//! - a date, `2026-12-06` (its midnight), and `today`, `yesterday`, `tomorrow`, `now`;
//! - an age, that long before now: `90s`, `30m`, `2h`, `7d`, `1w`, compound `1h30m`,
//!   with words (`2 hours`, `1h 30min`), a leading `-` (`-1h`) or a trailing `ago`
//!   (`5min ago`); a leading `+` (`+1h`) means that long after now;
//! - epoch seconds, `1732460000.5`.
//!
//! A time without a zone is in the display's zone (local, or UTC with `--utc`), so what a
//! table prints can be pasted back. Parsing checks the syntax only (clap reports a bad
//! value as a usage error); [`TimeArg::resolve`] turns it into a timestamp once the zone
//! is known, since `--utc` may come after `--since` on the command line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{
    DateTime, Local, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike as _, Utc,
};
use selflog::Timestamp;

use crate::Failure;

/// Whether times are displayed, and zone-less times read, in UTC (`--utc`).
static UTC: AtomicBool = AtomicBool::new(false);

/// Chooses UTC (`true`) or local time (`false`, the default) for every display and for
/// reading times without a zone. Called once, by `main`, before any command runs.
pub(crate) fn set_utc(utc: bool) {
    UTC.store(utc, Ordering::Relaxed);
}

/// Whether UTC was chosen with [`set_utc`].
pub(crate) fn is_utc() -> bool {
    UTC.load(Ordering::Relaxed)
}

/// A timestamp for people, to the millisecond, with its zone: `2026-12-06 22:00:00.123
/// +01:00` in local time, `2026-12-06 21:00:00.123 UTC` with `--utc`. Always 29 or 27
/// characters wide, so columns line up. A timestamp chrono cannot represent (beyond year
/// 262143) prints as epoch microseconds.
pub(crate) fn display(ts: Timestamp) -> String {
    let Some(d) = DateTime::from_timestamp_micros(ts.micros()) else {
        return format!("{}us", ts.micros());
    };
    if is_utc() {
        d.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()
    } else {
        d.with_timezone(&Local)
            .format("%Y-%m-%d %H:%M:%S%.3f %:z")
            .to_string()
    }
}

/// The width [`display`] prints, for a column header.
pub(crate) fn display_width() -> usize {
    if is_utc() {
        27
    } else {
        29
    }
}

/// The start of the hour or day holding `ts` in the display's zone, and its label
/// (`2026-12-06 22:00 +01:00` or `2026-12-06`), for `inspect count --by hour|day`.
///
/// An hour starts where the local minutes and seconds are zero, so the hour a clock change
/// repeats is two buckets, told apart by their offsets. A day starts at its local midnight
/// (where a clock change skips midnight, at the day's first instant).
pub(crate) fn bucket(ts: Timestamp, day: bool) -> (Timestamp, String) {
    let Some(d) = DateTime::from_timestamp_micros(ts.micros()) else {
        return (ts, display(ts));
    };
    let into_hour = |minute: u32, second: u32, nanos: u32| {
        i64::from(minute * 60 + second) * 1_000_000 + i64::from(nanos / 1000)
    };
    if is_utc() {
        let start = if day {
            d.date_naive()
                .and_time(NaiveTime::MIN)
                .and_utc()
                .timestamp_micros()
        } else {
            ts.micros() - into_hour(d.minute(), d.second(), d.nanosecond())
        };
        let label = DateTime::from_timestamp_micros(start).map_or_else(String::new, |s| {
            s.format(if day {
                "%Y-%m-%d"
            } else {
                "%Y-%m-%d %H:00 UTC"
            })
            .to_string()
        });
        return (Timestamp(start), label);
    }
    let local = d.with_timezone(&Local);
    let start = if day {
        let date = local.date_naive();
        wall(date.and_time(NaiveTime::MIN))
            .or_else(|| wall(date.and_time(NaiveTime::MIN) + chrono::TimeDelta::hours(1)))
            .map_or(ts.micros(), Timestamp::micros)
    } else {
        ts.micros() - into_hour(local.minute(), local.second(), local.nanosecond())
    };
    let label = DateTime::from_timestamp_micros(start).map_or_else(String::new, |s| {
        let s = s.with_timezone(&Local);
        if day {
            local.format("%Y-%m-%d").to_string()
        } else {
            s.format("%Y-%m-%d %H:00 %:z").to_string()
        }
    });
    (Timestamp(start), label)
}

/// A `--since` or `--until` value, checked but not yet resolved against the clock and the
/// zone (see the module docs for the syntax).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TimeArg {
    /// An instant: epoch seconds, or a date and time with a zone.
    At(Timestamp),
    /// A date and time without a zone, in the display's zone.
    Wall(NaiveDateTime),
    /// `now` plus this many microseconds (negative: an age).
    FromNow(i64),
    /// Midnight of today plus this many days (`today` 0, `yesterday` -1, `tomorrow` 1).
    Day(i64),
}

/// The syntax `--since` and `--until` accept, for error messages.
const SYNTAX: &str =
    "use `2026-12-06 22:00:00` (what the tables print; a zone such as +01:00 or UTC \
may follow), a date 2026-12-06, today, yesterday, now, an age (90s, 2h, 1h30m, -1h, 5min ago, \
+1h for ahead), RFC 3339 (2026-12-06T21:00:00Z) or epoch seconds (1732460000.5)";

impl TimeArg {
    /// Parses a `--since`/`--until` value; clap's value parser.
    pub(crate) fn parse(s: &str) -> Result<TimeArg, String> {
        let text = s.trim().to_ascii_lowercase();
        let bad = || format!("invalid time {s:?}: {SYNTAX}");
        if text.is_empty() {
            return Err(bad());
        }
        match text.as_str() {
            "now" => return Ok(TimeArg::FromNow(0)),
            "today" => return Ok(TimeArg::Day(0)),
            "yesterday" => return Ok(TimeArg::Day(-1)),
            "tomorrow" => return Ok(TimeArg::Day(1)),
            _ => {}
        }
        if let Some(micros) = parse_offset(&text) {
            return micros.map(TimeArg::FromNow).map_err(|()| bad());
        }
        if let Ok(secs) = text.parse::<f64>() {
            // Only plain decimals: Rust's float syntax also takes `inf` and `nan`.
            if text
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
            {
                return Timestamp::from_secs_f64(secs)
                    .map(TimeArg::At)
                    .ok_or_else(bad);
            }
        }
        parse_calendar(&text).ok_or_else(bad)
    }

    /// The timestamp this value names now, in the display's zone.
    ///
    /// # Errors
    /// A wall-clock time that the local zone skips (a clock change) or a time out of range.
    pub(crate) fn resolve(&self) -> Result<Timestamp, Failure> {
        let out_of_range =
            || Failure::hinted("time out of range", "pass a time between 1970 and 2262");
        match *self {
            TimeArg::At(t) => Ok(t),
            TimeArg::FromNow(micros) => {
                let now = Timestamp::now();
                let delta = Duration::from_micros(micros.unsigned_abs());
                Ok(if micros < 0 {
                    now.saturating_sub(delta)
                } else {
                    now.saturating_add(delta)
                })
            }
            TimeArg::Wall(naive) => wall(naive).ok_or_else(|| {
                Failure::hinted(
                    format!(
                        "{naive} does not exist in the local time zone (a clock change skips it)"
                    ),
                    "give a zone (e.g. `+01:00` or `UTC`) or another time",
                )
            }),
            TimeArg::Day(days) => {
                let today = if is_utc() {
                    Utc::now().date_naive()
                } else {
                    Local::now().date_naive()
                };
                let date = today
                    .checked_add_signed(chrono::TimeDelta::days(days))
                    .ok_or_else(out_of_range)?;
                let midnight = date.and_time(NaiveTime::MIN);
                // A zone whose clock skips midnight starts the day at the first valid time.
                wall(midnight)
                    .or_else(|| wall(midnight + chrono::TimeDelta::hours(1)))
                    .ok_or_else(out_of_range)
            }
        }
    }
}

/// A zone-less date and time in the display's zone; at a clock change that repeats it, the
/// earlier instant. `None` when the zone skips it.
fn wall(naive: NaiveDateTime) -> Option<Timestamp> {
    let micros = if is_utc() {
        naive.and_utc().timestamp_micros()
    } else {
        match Local.from_local_datetime(&naive) {
            LocalResult::Single(t) => t.timestamp_micros(),
            // chrono orders the pair by offset, not by instant.
            LocalResult::Ambiguous(a, b) => a.timestamp_micros().min(b.timestamp_micros()),
            LocalResult::None => return None,
        }
    };
    Some(Timestamp(micros))
}

/// An age or offset from now in microseconds (`2h`, `1h30m`, `-1h`, `5 min ago`, `+1h`):
/// `None` when `text` is not one, `Some(Err(()))` when it is one but out of range.
fn parse_offset(text: &str) -> Option<Result<i64, ()>> {
    let (ahead, rest) = match text.as_bytes().first()? {
        b'+' => (true, &text[1..]),
        b'-' => (false, &text[1..]),
        _ => (false, text),
    };
    let rest = rest.strip_suffix("ago").map_or(rest, str::trim_end);
    if ahead && rest.len() != text.len() - 1 {
        return None; // `+1h ago` says two things.
    }
    let mut total = 0f64;
    let mut chars = rest.trim().char_indices().peekable();
    let rest = rest.trim();
    let mut parts = 0;
    while let Some(&(start, c)) = chars.peek() {
        if c == ' ' {
            chars.next();
            continue;
        }
        if !(c.is_ascii_digit() || c == '.') {
            return None;
        }
        let mut end = start;
        while let Some(&(i, c)) = chars.peek() {
            if c.is_ascii_digit() || c == '.' {
                end = i + 1;
                chars.next();
            } else {
                break;
            }
        }
        let number: f64 = rest[start..end].parse().ok()?;
        while chars.peek().is_some_and(|&(_, c)| c == ' ') {
            chars.next();
        }
        let unit_start = chars.peek().map_or(rest.len(), |&(i, _)| i);
        let mut unit_end = unit_start;
        while let Some(&(i, c)) = chars.peek() {
            if c.is_ascii_alphabetic() {
                unit_end = i + 1;
                chars.next();
            } else {
                break;
            }
        }
        let secs = unit_secs(&rest[unit_start..unit_end])?;
        total += number * secs;
        parts += 1;
    }
    if parts == 0 {
        return None;
    }
    let micros = total * 1e6;
    if !(micros.is_finite() && micros < 9.0e18) {
        return Some(Err(()));
    }
    #[expect(clippy::cast_possible_truncation, reason = "range checked above")]
    let micros = micros as i64;
    Some(Ok(if ahead { micros } else { -micros }))
}

/// Seconds in one `unit` of an age, `None` for an unknown unit (or none: a bare number is
/// epoch seconds, not an age).
fn unit_secs(unit: &str) -> Option<f64> {
    Some(match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        "w" | "week" | "weeks" => 7.0 * 86_400.0,
        _ => return None,
    })
}

/// A date, or a date and time with an optional zone (`z`, `utc`, `+01:00`, `+0100`,
/// `+01`), `t` or a space between date and time. `text` is lower case.
fn parse_calendar(text: &str) -> Option<TimeArg> {
    let (body, offset_secs) = split_zone(text)?;
    let body = body.trim_end();
    let naive = if body.len() == 10 {
        NaiveDate::parse_from_str(body, "%Y-%m-%d")
            .ok()?
            .and_time(NaiveTime::MIN)
    } else {
        let b = body.get(..10)?.to_owned() + " " + body.get(11..)?;
        if !matches!(body.as_bytes().get(10), Some(b't' | b' ')) {
            return None;
        }
        ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(&b, f).ok())?
    };
    Some(match offset_secs {
        None => TimeArg::Wall(naive),
        Some(off) => {
            let micros = naive
                .and_utc()
                .timestamp_micros()
                .checked_sub(i64::from(off) * 1_000_000)?;
            TimeArg::At(Timestamp(micros))
        }
    })
}

/// Splits a trailing zone off `text`: the rest, and the zone's offset east of UTC in
/// seconds (`None`: no zone). `None` for a malformed zone.
fn split_zone(text: &str) -> Option<(&str, Option<i32>)> {
    if let Some(rest) = text.strip_suffix("utc") {
        return Some((rest, Some(0)));
    }
    if let Some(rest) = text.strip_suffix('z') {
        return Some((rest, Some(0)));
    }
    // A sign past the date's own dashes (position 10) starts an offset.
    let Some(at) = text
        .char_indices()
        .skip(10)
        .find(|&(_, c)| c == '+' || c == '-')
        .map(|(i, _)| i)
    else {
        return Some((text, None));
    };
    let sign = if text.as_bytes()[at] == b'-' { -1 } else { 1 };
    let digits: String = text[at + 1..].chars().filter(|&c| c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match digits.len() {
        2 => (digits.parse::<i32>().ok()?, 0),
        4 => (
            digits[..2].parse::<i32>().ok()?,
            digits[2..].parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    if h > 23 || m > 59 {
        return None;
    }
    Some((&text[..at], Some(sign * (h * 3600 + m * 60))))
}

/// Clap's value parser for `--since` and `--until`.
pub(crate) fn parse(s: &str) -> Result<TimeArg, String> {
    TimeArg::parse(s)
}

/// Resolves an optional argument.
pub(crate) fn resolve(arg: Option<&TimeArg>) -> Result<Option<Timestamp>, Failure> {
    arg.map(TimeArg::resolve).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        TimeArg::parse(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .resolve()
            .unwrap_or_else(|e| panic!("{s}: {}", e.message))
    }

    #[test]
    fn reads_instants_with_a_zone_or_epoch_seconds() {
        let t = Timestamp(1_732_460_400_000_000);
        for s in [
            "1732460400",
            "1732460400.0",
            "2024-11-24T15:00:00Z",
            "2024-11-24T15:00:00.000000Z",
            "2024-11-24 15:00:00 UTC",
            "2024-11-24 15:00 utc",
            "2024-11-24 16:00:00+01:00",
            "2024-11-24 16:00:00.000 +01:00",
            "2024-11-24T16:00:00+0100",
            "2024-11-24 10:00:00 -05",
        ] {
            assert_eq!(at(s), t, "{s}");
        }
        assert_eq!(at("1732460000.5"), Timestamp(1_732_460_000_500_000));
    }

    #[test]
    fn reads_ages_and_offsets_from_now() {
        for (s, micros) in [
            ("2h", -7_200_000_000),
            ("-1h", -3_600_000_000),
            ("1h30m", -5_400_000_000),
            ("1h 30min", -5_400_000_000),
            ("90s", -90_000_000),
            ("5 min ago", -300_000_000),
            ("2 hours", -7_200_000_000),
            ("1.5d", -129_600_000_000),
            ("1w", -604_800_000_000),
            ("+1h", 3_600_000_000),
            ("now", 0),
        ] {
            assert_eq!(TimeArg::parse(s), Ok(TimeArg::FromNow(micros)), "{s}");
        }
    }

    #[test]
    fn reads_days_and_dates() {
        assert_eq!(TimeArg::parse("today"), Ok(TimeArg::Day(0)));
        assert_eq!(TimeArg::parse("Yesterday"), Ok(TimeArg::Day(-1)));
        let midnight = NaiveDate::from_ymd_opt(2026, 12, 6)
            .unwrap()
            .and_time(NaiveTime::MIN);
        assert_eq!(TimeArg::parse("2026-12-06"), Ok(TimeArg::Wall(midnight)));
        assert_eq!(
            TimeArg::parse("2026-12-06 22:00:00"),
            Ok(TimeArg::Wall(midnight + chrono::TimeDelta::hours(22)))
        );
        assert_eq!(
            TimeArg::parse("2026-12-06T22:00"),
            Ok(TimeArg::Wall(midnight + chrono::TimeDelta::hours(22)))
        );
    }

    #[test]
    fn rejects_what_is_no_time() {
        for bad in [
            "",
            "2x",
            "h",
            "1e400",
            "inf",
            "nan",
            "1h ago ago",
            "+1h ago",
            "2026-13-01",
            "2026-12-06 25:00",
            "2026-12-06 22:00 +25:00",
            "2026-12-06 22:00 +1",
            "someday",
            "99999999999999999999d",
        ] {
            assert!(TimeArg::parse(bad).is_err(), "{bad}");
        }
    }
}
