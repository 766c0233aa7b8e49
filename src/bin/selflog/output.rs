//! Output helpers: JSON values of store types, and quiet handling of a closed stdout.

use std::io;

/// Message of the I/O error a write to a closed pipe returns.
const BROKEN_PIPE: &str = "stdout closed";

/// Converts a write error to a failure; a closed pipe ends the program quietly.
pub fn write_err(e: &io::Error) -> crate::Failure {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return crate::Failure {
            message: BROKEN_PIPE.to_owned(),
            hint: None,
        };
    }
    crate::Failure {
        message: format!("writing output: {e}"),
        hint: None,
    }
}

/// Whether a failure is the quiet end of a closed stdout.
pub fn is_broken_pipe(message: &str) -> bool {
    message == BROKEN_PIPE
}

/// A timestamp as float seconds with microsecond precision, for JSON.
pub fn secs(ts: selflog::Timestamp) -> serde_json::Value {
    serde_json::Number::from_f64(ts.as_secs_f64())
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// A timestamp as RFC 3339 in UTC with microseconds, for people.
pub fn rfc3339(ts: selflog::Timestamp) -> String {
    chrono::DateTime::from_timestamp_micros(ts.micros()).map_or_else(
        || ts.to_string(),
        |d| d.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
    )
}

/// A byte count for people: `12.3 MiB`.
#[expect(clippy::cast_precision_loss, reason = "display only")]
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
