//! Events as callers give them and as the store returns them.
//!
//! Input validation lives here and nowhere else: an [`Event`] that passes [`Event::validate`]
//! can always be encoded into a frame. The content hash is computed here too, so the writer,
//! the readers and (later) deduplication agree on which bytes it covers.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// Longest event type, action or source accepted, in bytes.
pub const NAME_LEN_MAX: usize = 1024;

/// A point in time: microseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Microseconds since the epoch.
    pub fn micros(self) -> i64 {
        self.0
    }

    /// Converts float seconds since the epoch (the old schema's `REAL`), rounded to the
    /// nearest microsecond. Returns `None` for NaN, infinities and values out of range.
    pub fn from_secs_f64(secs: f64) -> Option<Timestamp> {
        // 2^63 is exactly representable; i64 holds [-2^63, 2^63).
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        let micros = (secs * 1e6).round();
        if micros.is_finite() && (-LIMIT..LIMIT).contains(&micros) {
            #[expect(
                clippy::cast_possible_truncation,
                reason = "range checked on the line above"
            )]
            Some(Timestamp(micros as i64))
        } else {
            None
        }
    }

    /// Float seconds since the epoch, as the old schema stored them.
    #[expect(
        clippy::cast_precision_loss,
        reason = "microsecond timestamps of this era fit in the 52-bit mantissa"
    )]
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// The current wall-clock time.
    pub fn now() -> Timestamp {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Timestamp(i64::try_from(since.as_micros()).unwrap_or(i64::MAX))
    }

    /// The current wall-clock time from the kernel's coarse clock (a few milliseconds of
    /// resolution, a fraction of the cost of [`Timestamp::now`]): enough to bound timestamps
    /// at ingest, which happens once per event.
    pub fn now_coarse() -> Timestamp {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        Timestamp(
            t.tv_sec
                .saturating_mul(1_000_000)
                .saturating_add(t.tv_nsec / 1000),
        )
    }

    /// This timestamp moved earlier by `d`, saturating.
    #[must_use]
    pub fn saturating_sub(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_sub(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        )
    }

    /// This timestamp moved later by `d`, saturating.
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        write!(f, "{secs}.{micros:06}")
    }
}

/// The id of a stored event: assigned at append, starting at 1, increasing by one per
/// stored event in append order (imports may leave gaps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventId(pub u64);

impl EventId {
    /// The largest id [`crate::Store::append_with_id`] takes (2^63 − 1, `SQLite`'s largest
    /// rowid), so that ids stay far enough from `u64::MAX` for a store's arithmetic on
    /// them (a window's length added to one) never to overflow.
    pub const MAX: EventId = EventId(i64::MAX as u64);
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What `append` did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The event was queued under this new id.
    New(EventId),
    /// The event duplicates the stored event with this id and was not stored again.
    Duplicate(EventId),
}

impl Appended {
    /// The id of the event, new or original.
    pub fn id(self) -> EventId {
        match self {
            Appended::New(id) | Appended::Duplicate(id) => id,
        }
    }
}

/// One captured event, as the daemon appends it.
#[derive(Debug, Clone)]
pub struct Event {
    /// When the event happened, by the capturing source's clock.
    pub timestamp: Timestamp,
    /// What kind of event (`file_op`, `app_launch`, ...). Required, non-empty.
    pub event_type: String,
    /// What happened (`modified`, `opened`, ...). Optional.
    pub action: Option<String>,
    /// Which application or folder it came from. Required, non-empty.
    pub source: String,
    /// Any JSON value, stored as its exact text (key order and spacing are kept).
    pub data: Option<Box<RawValue>>,
}

impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        self.timestamp == other.timestamp
            && self.event_type == other.event_type
            && self.action == other.action
            && self.source == other.source
            && self.data_text() == other.data_text()
    }
}

impl Eq for Event {}

impl Event {
    /// Builds an event; `data` must be JSON text (checked here) or `None`.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] when `data` is not valid JSON.
    pub fn new(
        timestamp: Timestamp,
        event_type: impl Into<String>,
        action: Option<&str>,
        source: impl Into<String>,
        data: Option<&str>,
    ) -> Result<Event> {
        let data =
            match data {
                None => None,
                Some(text) => Some(RawValue::from_string(text.to_owned()).map_err(|e| {
                    Error::InvalidEvent {
                        field: "data",
                        reason: format!("is not valid JSON: {e}"),
                    }
                })?),
            };
        Ok(Event {
            timestamp,
            event_type: event_type.into(),
            action: action.map(str::to_owned),
            source: source.into(),
            data,
        })
    }

    /// The data's JSON text, if any.
    pub fn data_text(&self) -> Option<&str> {
        self.data.as_deref().map(RawValue::get)
    }

    /// Checks the event against the rules every stored event obeys, with the configured
    /// limits given as values (so that this module does not depend on `config`, which
    /// depends on it): data of at most `data_len_max` bytes and a timestamp at most
    /// `future_skew_max` ahead of `now`, the append clock. [`Event::validate`] calls it
    /// with a `Config`'s limits.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] naming the field, or [`Error::TooLarge`] naming the limit.
    pub(crate) fn check(
        &self,
        data_len_max: usize,
        future_skew_max: Duration,
        now: Timestamp,
    ) -> Result<()> {
        check_name("event_type", &self.event_type, true)?;
        check_name("source", &self.source, true)?;
        if let Some(action) = &self.action {
            check_name("action", action, false)?;
        }
        if self.timestamp.0 < 0 {
            return Err(Error::InvalidEvent {
                field: "timestamp",
                reason: format!("is before 1970 ({} s)", self.timestamp),
            });
        }
        let latest = now.saturating_add(future_skew_max);
        if self.timestamp > latest {
            return Err(Error::InvalidEvent {
                field: "timestamp",
                reason: format!(
                    "is {} s, more than {} s ahead of now ({} s); fix the capturing clock or raise future_skew_max",
                    self.timestamp,
                    future_skew_max.as_secs(),
                    now
                ),
            });
        }
        if let Some(data) = self.data_text() {
            if data.len() > data_len_max {
                return Err(Error::TooLarge {
                    what: "event data",
                    len: data.len() as u64,
                    len_max: data_len_max as u64,
                });
            }
        }
        Ok(())
    }

    /// The home bucket of this event in the dedup window ([`dedup_home`]).
    pub(crate) fn dedup_home(&self) -> u32 {
        let data = self.data_text().map(str::as_bytes);
        dedup_home(
            self.timestamp,
            self.event_type.len(),
            self.action.as_deref().map(str::len),
            self.source.len(),
            data.map(<[u8]>::len),
            data.filter(|d| d.len() <= HOME_EDGES_LEN_MAX),
        )
    }

    /// The xxh3-64 content hash: timestamp, type, action, source and data, each field
    /// length-prefixed so that moving bytes between fields changes the hash.
    /// `format-spec/FORMAT.md#content-hash`
    pub fn content_hash(&self) -> u64 {
        content_hash(
            self.timestamp,
            &self.event_type,
            self.action.as_deref(),
            &self.source,
            self.data_text(),
        )
    }
}

fn check_name(field: &'static str, value: &str, required: bool) -> Result<()> {
    if required && value.is_empty() {
        return Err(Error::InvalidEvent {
            field,
            reason: "must be a non-empty string".into(),
        });
    }
    if value.len() > NAME_LEN_MAX {
        return Err(Error::TooLarge {
            what: field,
            len: value.len() as u64,
            len_max: NAME_LEN_MAX as u64,
        });
    }
    Ok(())
}

/// Data longer than this picks its dedup bucket by its length alone ([`dedup_home`]): its
/// first and last bytes would have to be decompressed when the window is rebuilt.
pub(crate) const HOME_EDGES_LEN_MAX: usize = 1024;

/// Which bucket of the dedup window an event lives in, from what is known before its
/// content hash: the timestamp, the lengths of its names and data, and, for data of at
/// most [`HOME_EDGES_LEN_MAX`] bytes, its first and last 8 bytes. `small_data` is the data
/// when it is that short, else `None`. An identical event has the same home, so the window
/// stays exact (the tag it compares is the content hash's); an append can start loading
/// the bucket while it hashes, the one cache miss a single append could not overlap with
/// anything. Events alike in all of these but different share a bucket chain, which costs
/// lookups among them extra reads, never a wrong answer. The function is part of the dedup
/// window image's format (`format-spec/FORMAT.md#dedup-window-image`): changing it needs a
/// new image version.
pub(crate) fn dedup_home(
    timestamp: Timestamp,
    type_len: usize,
    action_len: Option<usize>,
    source_len: usize,
    data_len: Option<usize>,
    small_data: Option<&[u8]>,
) -> u32 {
    let mix = |h: u64, v: u64| {
        let x = (h ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^ (x >> 29)
    };
    let len = |n: Option<usize>| n.map_or(u64::MAX, |n| n as u64);
    let mut h = mix(0x5E1F_106D_ED09_0000, timestamp.0.cast_unsigned());
    h = mix(h, type_len as u64 | (source_len as u64) << 32);
    h = mix(h, len(action_len));
    h = mix(h, len(data_len));
    if let Some(d) = small_data {
        // Eight bytes, zero-padded when shorter; a whole word is one load, not a call to
        // `memcpy` for a length known only at run time.
        let edge = |b: &[u8]| {
            if let Ok(word) = <[u8; 8]>::try_from(b) {
                return u64::from_le_bytes(word);
            }
            let mut w = [0u8; 8];
            w[..b.len()].copy_from_slice(b);
            u64::from_le_bytes(w)
        };
        h = mix(h, edge(&d[..d.len().min(8)]));
        h = mix(h, edge(&d[d.len().saturating_sub(8)..]));
    }
    // The finalizer of splitmix64, so that every input bit moves the bucket.
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (h ^ (h >> 31)) as u32
}

/// The dedup window's key of an event: its home bucket (low 32 bits) and the high 32 bits
/// of its content hash (the tag a lookup compares).
pub(crate) fn dedup_key(home: u32, hash: u64) -> u64 {
    (hash & 0xFFFF_FFFF_0000_0000) | u64::from(home)
}

/// Events whose hashed bytes fit in this many are hashed in one call from a stack buffer,
/// which xxh3 does several times faster than streaming the nine pieces; the value is the
/// same either way (the hash of the concatenation).
const HASH_INLINE_MAX: usize = 1024;

/// The content hash of an event's fields. `format-spec/FORMAT.md#content-hash`
pub(crate) fn content_hash(
    timestamp: Timestamp,
    event_type: &str,
    action: Option<&str>,
    source: &str,
    data: Option<&str>,
) -> u64 {
    let fields: [(bool, &[u8]); 4] = [
        (true, event_type.as_bytes()),
        (action.is_some(), action.unwrap_or("").as_bytes()),
        (true, source.as_bytes()),
        (data.is_some(), data.unwrap_or("").as_bytes()),
    ];
    let tag = |(present, bytes): (bool, &[u8])| -> [u8; 8] {
        if present {
            bytes.len() as u64
        } else {
            u64::MAX
        }
        .to_le_bytes()
    };
    let len = 8 + fields.iter().map(|(_, b)| 8 + b.len()).sum::<usize>();
    if len <= HASH_INLINE_MAX {
        let mut buf = [0u8; HASH_INLINE_MAX];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            buf[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(&timestamp.0.to_le_bytes());
        for f in fields {
            put(&tag(f));
            put(f.1);
        }
        return xxhash_rust::xxh3::xxh3_64(&buf[..len]);
    }
    let mut h = xxhash_rust::xxh3::Xxh3Default::new();
    h.update(&timestamp.0.to_le_bytes());
    for f in fields {
        h.update(&tag(f));
        h.update(f.1);
    }
    h.digest()
}

/// An event read back from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its id.
    pub id: EventId,
    /// When it happened.
    pub timestamp: Timestamp,
    /// Its type.
    pub event_type: String,
    /// Its action, if any.
    pub action: Option<String>,
    /// Its source.
    pub source: String,
    /// Its data's JSON text, exactly as appended.
    pub data: Option<String>,
    /// The xxh3-64 content hash stored in its frame.
    pub hash: u64,
}

impl StoredEvent {
    /// The event borrowed, as [`crate::Events::next_ref`] returns events.
    pub fn as_event_ref(&self) -> EventRef<'_> {
        EventRef {
            id: self.id,
            timestamp: self.timestamp,
            event_type: &self.event_type,
            action: self.action.as_deref(),
            source: &self.source,
            data: self.data.as_deref(),
            hash: self.hash,
        }
    }

    /// The event as it was appended (without the id).
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] if the stored data is not JSON, which only a checksum
    /// collision on damaged bytes could produce.
    pub fn to_event(&self) -> Result<Event> {
        Event::new(
            self.timestamp,
            self.event_type.clone(),
            self.action.as_deref(),
            self.source.clone(),
            self.data.as_deref(),
        )
    }
}

/// An event a query returned, borrowed instead of copied: its names from the segment's
/// dictionary, its data from the segment's map (or, when stored compressed, from the
/// query's buffer or its cache). It is valid until the next call on the
/// [`crate::Events`] that returned it ([`crate::Events::next_ref`]); [`EventRef::to_stored`]
/// copies it out. Every field was checked as a [`StoredEvent`]'s is: the frame's checksum,
/// the data's UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// Its id.
    pub id: EventId,
    /// When it happened.
    pub timestamp: Timestamp,
    /// Its type.
    pub event_type: &'a str,
    /// Its action, if any.
    pub action: Option<&'a str>,
    /// Its source.
    pub source: &'a str,
    /// Its data's JSON text, exactly as appended.
    pub data: Option<&'a str>,
    /// The xxh3-64 content hash stored in its frame.
    pub hash: u64,
}

impl EventRef<'_> {
    /// The event as an owned [`StoredEvent`].
    pub fn to_stored(&self) -> StoredEvent {
        StoredEvent {
            id: self.id,
            timestamp: self.timestamp,
            event_type: self.event_type.to_owned(),
            action: self.action.map(str::to_owned),
            source: self.source.to_owned(),
            data: self.data.map(str::to_owned),
            hash: self.hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The bucket depends on each input it names and on nothing else: long data by its
    /// length alone, short data also by its first and last 8 bytes.
    #[test]
    fn dedup_home_follows_the_fields_it_names() {
        let t = Timestamp(1_732_460_000_000_000);
        let home = |t: Timestamp, d: &[u8]| {
            let small = (d.len() <= HOME_EDGES_LEN_MAX).then_some(d);
            dedup_home(t, 7, Some(8), 6, Some(d.len()), small)
        };
        let short = b"{\"a\":\"0123456789\"}".to_vec();
        assert_eq!(home(t, &short), home(t, &short.clone()));
        assert_ne!(home(t, &short), home(Timestamp(t.0 + 1), &short));
        let mut first = short.clone();
        first[1] = b'b';
        assert_ne!(home(t, &short), home(t, &first));
        let mut last = short.clone();
        let at = last.len() - 3;
        last[at] = b'8';
        assert_ne!(home(t, &short), home(t, &last));
        let mut middle = short.clone();
        middle[9] = b'x';
        assert_eq!(
            home(t, &short),
            home(t, &middle),
            "the middle is the hash's job"
        );
        assert_ne!(
            dedup_home(t, 7, Some(8), 6, Some(3), None),
            dedup_home(t, 7, None, 6, Some(3), None)
        );
        let long = vec![b'x'; HOME_EDGES_LEN_MAX + 1];
        let mut other = long.clone();
        other[0] = b'y';
        assert_eq!(
            home(t, &long),
            home(t, &other),
            "long data: its length only"
        );
        assert_eq!(dedup_key(7, 0xAAAA_BBBB_CCCC_DDDD), 0xAAAA_BBBB_0000_0007);
    }

    /// The hash as the spec defines it: xxh3-64 streamed over the pieces.
    fn streamed(ts: i64, parts: [Option<&str>; 4]) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3Default::new();
        h.update(&ts.to_le_bytes());
        for p in parts {
            let tag = p.map_or(u64::MAX, |s| s.len() as u64);
            h.update(&tag.to_le_bytes());
            h.update(p.unwrap_or("").as_bytes());
        }
        h.digest()
    }

    proptest! {
        /// Inline (stack buffer) and streamed hashing agree on both sides of the threshold.
        #[test]
        fn inline_hash_is_the_streamed_hash(
            ts in any::<i64>(),
            t in ".{1,20}",
            a in proptest::option::of(".{0,20}"),
            s in ".{1,20}",
            data_len in 0usize..1200,
            has_data in any::<bool>(),
        ) {
            let data = "x".repeat(data_len);
            let d = has_data.then_some(data.as_str());
            prop_assert_eq!(
                content_hash(Timestamp(ts), &t, a.as_deref(), &s, d),
                streamed(ts, [Some(&t), a.as_deref(), Some(&s), d])
            );
        }
    }
}
