//! The JSON Lines form of an event, as `selflog ingest` reads it and exports write it.
//!
//! One event per line: `{"timestamp": 1732460000.123456 | "2024-11-24T15:00:00Z",
//! "event_type": "file_op", "action": "modified", "source": "Finder", "data": {...}}`.
//! `timestamp`, `event_type` and `source` are required; `action` and `data` are optional
//! (`null` counts as absent). Other keys, such as the `id` and `hash` an export writes, are
//! ignored, so an export can be ingested again.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::{Event, EventRef, StoredEvent, Timestamp};

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow)]
    event_type: Option<&'a RawValue>,
    #[serde(borrow)]
    action: Option<&'a RawValue>,
    #[serde(borrow)]
    source: Option<&'a RawValue>,
    /// Owned as it is parsed: the parse has checked its syntax, so it is not checked again.
    data: Option<Box<RawValue>>,
}

/// Why a line is not an event: the field at fault (when one is), and what is wrong with it
/// in words fit for `line N: <error>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    field: Option<&'static str>,
    reason: String,
}

impl LineError {
    fn line(reason: impl Into<String>) -> LineError {
        LineError {
            field: None,
            reason: reason.into(),
        }
    }

    fn field(field: &'static str, reason: impl Into<String>) -> LineError {
        LineError {
            field: Some(field),
            reason: reason.into(),
        }
    }

    /// The field at fault, `None` when the line as a whole is (not UTF-8, not JSON, not an
    /// object).
    pub fn field_name(&self) -> Option<&'static str> {
        self.field
    }
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for LineError {}

/// Parses one line (without its newline) into an event. The event is not yet validated
/// against a store's limits (future skew, lengths): `Store::append` does that.
///
/// # Errors
/// A [`LineError`] naming the offending field, or the JSON syntax error and its column.
pub fn parse_line(line: &[u8]) -> Result<Event, LineError> {
    let text = std::str::from_utf8(line).map_err(|e| {
        LineError::line(format!(
            "is not valid UTF-8 (bad byte at column {})",
            e.valid_up_to() + 1
        ))
    })?;
    let trimmed = text.trim_start();
    if !trimmed.starts_with('{') {
        return Err(LineError::line("is not a JSON object"));
    }
    let parsed: Line<'_> = serde_json::from_str(text)
        .map_err(|e| LineError::line(format!("is not valid JSON: {e}")))?;
    let timestamp = parse_timestamp(
        parsed
            .timestamp
            .ok_or_else(|| LineError::field("timestamp", "missing required field `timestamp`"))?,
    )?;
    let event_type = required_string("event_type", parsed.event_type)?;
    let source = required_string("source", parsed.source)?;
    let action =
        match parsed.action.filter(|r| r.get() != "null") {
            None => None,
            Some(raw) => Some(serde_json::from_str::<String>(raw.get()).map_err(|_| {
                LineError::field("action", "field `action` must be a string or null")
            })?),
        };
    let data = parsed.data.filter(|r| r.get() != "null");
    Ok(Event {
        timestamp,
        event_type,
        action,
        source,
        data,
    })
}

fn required_string(field: &'static str, raw: Option<&RawValue>) -> Result<String, LineError> {
    let raw =
        raw.ok_or_else(|| LineError::field(field, format!("missing required field `{field}`")))?;
    let value: String = serde_json::from_str(raw.get()).map_err(|_| {
        LineError::field(
            field,
            format!("field `{field}` must be a string, found {}", raw.get()),
        )
    })?;
    if value.is_empty() {
        return Err(LineError::field(
            field,
            format!("field `{field}` must be a non-empty string"),
        ));
    }
    Ok(value)
}

fn parse_timestamp(raw: &RawValue) -> Result<Timestamp, LineError> {
    let bad = |reason: String| LineError::field("timestamp", reason);
    let text = raw.get();
    if text.starts_with('"') {
        let s: String =
            serde_json::from_str(text).map_err(|e| bad(format!("field `timestamp`: {e}")))?;
        return parse_time_text(&s).ok_or_else(|| {
            bad(format!(
                "field `timestamp` {s:?} is not an RFC 3339 time such as 2024-11-24T15:00:00Z"
            ))
        });
    }
    let secs: f64 = serde_json::from_str(text).map_err(|_| {
        bad(format!(
            "field `timestamp` must be seconds since 1970 or an RFC 3339 string, found {text}"
        ))
    })?;
    Timestamp::from_secs_f64(secs)
        .ok_or_else(|| bad(format!("field `timestamp` {text} is out of range")))
}

/// Parses an RFC 3339 time (`2024-11-24T15:00:00Z`, `2024-11-24T16:00:00.5+01:00`; `t` or a
/// space may stand for `T`, `z` for `Z`). Digits of the fraction past the microsecond are
/// dropped. Returns `None` for anything else, including impossible dates (`2023-02-29`).
pub fn parse_time_text(s: &str) -> Option<Timestamp> {
    let b = s.trim().as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0i64, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    let punct = |at: usize, want: &[u8]| b.get(at).is_some_and(|c| want.contains(c));
    if !(punct(4, b"-")
        && punct(7, b"-")
        && punct(10, b"Tt ")
        && punct(13, b":")
        && punct(16, b":"))
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut at = 19;
    let mut micros = 0i64;
    if punct(at, b".") {
        at += 1;
        let digits = b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for (i, &d) in b[at..at + digits].iter().take(6).enumerate() {
            micros += i64::from(d - b'0') * 10i64.pow(5 - i as u32);
        }
        at += digits;
    }
    let offset_secs = match b.get(at..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(at + 1..at + 3)?, num(at + 4..at + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_secs;
    Some(Timestamp(secs * 1_000_000 + micros))
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date: whole 400-year eras (146,097
/// days each) counted from 0000-03-01, so that the leap day falls at the end of a year.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The export line of a stored event: `{"id", "timestamp" (float seconds), "event_type",
/// "action", "source", "data" (the original JSON text), "hash" (16 hex digits)}`.
pub fn to_line(e: &StoredEvent) -> String {
    let mut out = Vec::with_capacity(128 + e.data.as_ref().map_or(0, String::len));
    push_line(&mut out, &e.as_event_ref());
    // Made of str and ASCII: always UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Appends the export line of `e` ([`to_line`]'s text, without a newline) to `out`,
/// allocating nothing but `out`'s growth: for writing a listing read through
/// [`crate::Events::next_ref`] with one reused buffer.
pub fn push_line(out: &mut Vec<u8>, e: &EventRef<'_>) {
    use std::io::Write as _;
    // Writes to a Vec cannot fail.
    let _ = write!(out, "{{\"id\":{},\"timestamp\":{}", e.id.0, e.timestamp);
    out.extend_from_slice(b",\"event_type\":");
    push_json_string(out, e.event_type);
    out.extend_from_slice(b",\"action\":");
    match e.action {
        Some(a) => push_json_string(out, a),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"source\":");
    push_json_string(out, e.source);
    out.extend_from_slice(b",\"data\":");
    out.extend_from_slice(e.data.unwrap_or("null").as_bytes());
    let _ = write!(out, ",\"hash\":\"{:016x}\"}}", e.hash);
}

fn push_json_string(out: &mut Vec<u8>, s: &str) {
    // A str always serialises, and a Vec takes every write.
    let _ = serde_json::to_writer(out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_required_and_optional_fields() {
        let e = parse_line(br#"{"timestamp": 1732460000.123456, "event_type": "file_op", "action": "modified", "source": "Finder", "data": {"b": 1, "a": [2]}}"#).unwrap();
        assert_eq!(e.timestamp, Timestamp(1_732_460_000_123_456));
        assert_eq!(e.event_type, "file_op");
        assert_eq!(e.action.as_deref(), Some("modified"));
        assert_eq!(
            e.data_text(),
            Some(r#"{"b": 1, "a": [2]}"#),
            "original text and key order"
        );
        let e = parse_line(
            br#"{"timestamp": "2024-11-24T15:00:00Z", "event_type": "x", "source": "y"}"#,
        )
        .unwrap();
        assert_eq!(e.timestamp, Timestamp(1_732_460_400_000_000));
        assert_eq!(e.action, None);
        assert!(e.data.is_none());
    }

    #[test]
    fn names_what_is_wrong() {
        let cases: [(&[u8], &str); 9] = [
            (b"[1,2]", "not a JSON object"),
            (b"{\"timestamp\": 1", "not valid JSON"),
            (b"\xff{}", "UTF-8"),
            (br#"{"event_type": "x", "source": "y"}"#, "`timestamp`"),
            (br#"{"timestamp": 1, "source": "y"}"#, "`event_type`"),
            (
                br#"{"timestamp": 1, "event_type": "", "source": "y"}"#,
                "non-empty",
            ),
            (
                br#"{"timestamp": 1, "event_type": "x", "source": 5}"#,
                "`source` must be a string",
            ),
            (
                br#"{"timestamp": "yesterday", "event_type": "x", "source": "y"}"#,
                "RFC 3339",
            ),
            (
                br#"{"timestamp": 1, "event_type": "x", "source": "y", "action": 3}"#,
                "`action`",
            ),
        ];
        for (line, want) in cases {
            let err = parse_line(line).unwrap_err().to_string();
            assert!(
                err.contains(want),
                "{:?}: {err}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn rfc3339_times_parse_to_their_instant() {
        let cases: [(&str, i64); 9] = [
            ("1970-01-01T00:00:00Z", 0),
            ("2024-11-24T15:00:00Z", 1_732_460_400_000_000),
            ("2024-11-24t16:00:00.5+01:00", 1_732_460_400_500_000),
            ("2024-11-24 10:00:00.1234569-05:00", 1_732_460_400_123_456),
            ("2000-02-29T00:00:00z", 951_782_400_000_000),
            ("1969-12-31T23:59:59.5Z", -500_000),
            ("1900-01-01T00:00:00Z", -2_208_988_800_000_000),
            ("2100-03-01T00:00:00Z", 4_107_542_400_000_000),
            ("  2024-01-01T00:00:00+00:00 ", 1_704_067_200_000_000),
        ];
        for (text, micros) in cases {
            assert_eq!(parse_time_text(text), Some(Timestamp(micros)), "{text}");
        }
        for bad in [
            "2024-11-24",
            "2024-11-24T15:00:00",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-11-24T24:00:00Z",
            "2024-11-24T15:00:00.Z",
            "2024-11-24T15:00:00+1:00",
            "2024-11-24T15:00:00+01:00x",
            "yesterday",
            "",
        ] {
            assert_eq!(parse_time_text(bad), None, "{bad}");
        }
    }

    #[test]
    fn export_lines_ingest_back_to_the_same_event() {
        let stored = StoredEvent {
            id: crate::EventId(7),
            timestamp: Timestamp(1_732_460_000_000_001),
            event_type: "clip\"board".into(),
            action: None,
            source: "Term\u{1}inal".into(),
            data: Some(r#"{"z":1,"a":"é"}"#.into()),
            hash: 0xab,
        };
        let line = to_line(&stored);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["hash"], "00000000000000ab");
        assert_eq!(v["timestamp"].to_string(), "1732460000.000001");
        let back = parse_line(line.as_bytes()).unwrap();
        assert_eq!(back, stored.to_event().unwrap());
    }
}
