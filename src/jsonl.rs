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
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

/// Parses one line (without its newline) into an event. The error says what is wrong in
/// words fit for `line N: <error>`. The event is not yet validated against a store's limits
/// (future skew, lengths): `Store::append` does that.
///
/// # Errors
/// A description naming the offending field, or the JSON syntax error and its column.
pub fn parse_line(line: &[u8]) -> Result<Event, String> {
    let text = std::str::from_utf8(line).map_err(|e| {
        format!(
            "is not valid UTF-8 (bad byte at column {})",
            e.valid_up_to() + 1
        )
    })?;
    let trimmed = text.trim_start();
    if !trimmed.starts_with('{') {
        return Err("is not a JSON object".to_owned());
    }
    let parsed: Line<'_> =
        serde_json::from_str(text).map_err(|e| format!("is not valid JSON: {e}"))?;
    let timestamp = parse_timestamp(
        parsed
            .timestamp
            .ok_or("missing required field `timestamp`")?,
    )?;
    let event_type = required_string("event_type", parsed.event_type)?;
    let source = required_string("source", parsed.source)?;
    let action = match parsed.action.filter(|r| r.get() != "null") {
        None => None,
        Some(raw) => Some(
            serde_json::from_str::<String>(raw.get())
                .map_err(|_| "field `action` must be a string or null".to_owned())?,
        ),
    };
    let data = parsed
        .data
        .filter(|r| r.get() != "null")
        .map(|r| RawValue::from_string(r.get().to_owned()))
        .transpose()
        .map_err(|e| format!("field `data` is not valid JSON: {e}"))?;
    Ok(Event {
        timestamp,
        event_type,
        action,
        source,
        data,
    })
}

fn required_string(field: &str, raw: Option<&RawValue>) -> Result<String, String> {
    let raw = raw.ok_or_else(|| format!("missing required field `{field}`"))?;
    let value: String = serde_json::from_str(raw.get())
        .map_err(|_| format!("field `{field}` must be a string, found {}", raw.get()))?;
    if value.is_empty() {
        return Err(format!("field `{field}` must be a non-empty string"));
    }
    Ok(value)
}

fn parse_timestamp(raw: &RawValue) -> Result<Timestamp, String> {
    let text = raw.get();
    if text.starts_with('"') {
        let s: String =
            serde_json::from_str(text).map_err(|e| format!("field `timestamp`: {e}"))?;
        return parse_time_text(&s).ok_or_else(|| {
            format!("field `timestamp` {s:?} is not an RFC 3339 time such as 2024-11-24T15:00:00Z")
        });
    }
    let secs: f64 = serde_json::from_str(text).map_err(|_| {
        format!("field `timestamp` must be seconds since 1970 or an RFC 3339 string, found {text}")
    })?;
    Timestamp::from_secs_f64(secs)
        .ok_or_else(|| format!("field `timestamp` {text} is out of range"))
}

/// Parses an RFC 3339 time (`2024-11-24T15:00:00Z`, `2024-11-24T16:00:00.5+01:00`).
pub fn parse_time_text(s: &str) -> Option<Timestamp> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|d| Timestamp(d.timestamp_micros()))
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
            let err = parse_line(line).unwrap_err();
            assert!(
                err.contains(want),
                "{:?}: {err}",
                String::from_utf8_lossy(line)
            );
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
