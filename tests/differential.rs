//! Differential tests: selflog's queries against `SQLite` running the table selflog replaces.
//!
//! Every event appended to a store is also inserted, under the id selflog assigned, into an
//! in-memory `SQLite` table shaped like the old `events` table. Random queries then run on
//! both and must agree: the ids in order, every field of every returned event (and its
//! content hash), `count`, `counts_by` on each field, `time_bounds`, hourly histograms, and
//! paging with `after`.
//!
//! One deliberate difference from the old schema: `timestamp` is stored in `SQLite` as INTEGER
//! microseconds, not REAL seconds. Integers compare exactly, so ties and the `[since,
//! until)` bounds mean the same on both sides; REAL seconds would round some of them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use rusqlite::types::Value;
use rusqlite::Connection;
use selflog::{
    Appended, Config, Event, EventId, Field, Order, Position, Query, Store, StoredEvent, Timestamp,
};

/// 2024-11-24, well before any test's "now" (the store rejects far-future timestamps).
const T0: i64 = 1_732_460_000_000_000;
const HOUR: Duration = Duration::from_secs(3600);
const HOUR_US: i64 = 3_600_000_000;

/// Event types; the last one is generated rarely.
const TYPES: [&str; 7] = [
    "app_launch",
    "file_op",
    "clipboard",
    "window_focus",
    "ünï",
    "ünïcødé ✓",
    "rare_type",
];
const ACTIONS: [&str; 5] = ["opened", "modified", "closed", "Chrome", "ünï"];
const SOURCES: [&str; 7] = [
    "Google Chrome",
    "CHROME helper",
    "Finder",
    "Terminal",
    "Visual Studio Code",
    "Ünïcode app",
    "100%_done",
];
/// JSON string contents (already escaped) for small data.
const STRINGS: [&str; 10] = [
    "chrome://settings",
    "ChRoMe",
    "ünïcode ✓",
    "50% off",
    "snake_case",
    "plain text",
    "emoji 🦀",
    "zzz-nothin",
    r#"a \"quoted\" CHROME"#,
    r"C:\\Users\\me",
];
/// Words hidden deep inside large data.
const NEEDLES: [&str; 4] = ["needle-deep", "CHROME", "ünï", "100%_x"];
/// Search texts. `%`, `_` and `\` are literal for selflog and must be escaped for LIKE.
const TEXTS: [&str; 14] = [
    "chrome",
    "CHROME",
    "zzz-nothing",
    "ünï",
    "ÜNÏ",
    "",
    "%",
    "_",
    "\\",
    "rome hel",
    "lorem",
    "needle-deep",
    "\"s\"",
    "0%_",
];
const NO_SUCH_TYPE: &str = "no_such_type";
const NO_SUCH_SOURCE: &str = "No Such App";
const NO_SUCH_ACTION: &str = "never";

// ---------------------------------------------------------------------------------------
// Events

/// One event as the test appends it (and as `SQLite` stores it).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spec {
    ts: i64,
    event_type: String,
    action: Option<String>,
    source: String,
    data: Option<String>,
}

impl Spec {
    fn event(&self) -> Event {
        Event::new(
            Timestamp(self.ts),
            self.event_type.as_str(),
            self.action.as_deref(),
            self.source.as_str(),
            self.data.as_deref(),
        )
        .expect("generated data is JSON")
    }
}

/// How an event's timestamp relates to the ones before it.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Same timestamp as the previous event.
    Tie,
    /// This many microseconds after the latest timestamp so far.
    Forward(i64),
    /// This many microseconds before the latest timestamp so far (a late event).
    Late(i64),
}

#[derive(Debug, Clone, Copy)]
enum DataSeed {
    Null,
    /// Two pool strings and a number.
    Small(usize, usize, u32),
    /// Compressible filler of this length, maybe with a needle at a per-mille position.
    Large(usize, Option<usize>, u16),
}

#[derive(Debug, Clone, Copy)]
struct EventSeed {
    step: Step,
    event_type: usize,
    action: Option<usize>,
    source: usize,
    data: DataSeed,
}

/// `len` bytes of pseudo-random words: compressible (about 2:1 with LZ4), unlike a
/// repeated phrase, so large events still fill segments.
fn filler(len: usize, seed: u64) -> String {
    const WORDS: [&str; 16] = [
        "lorem",
        "ipsum",
        "dolor",
        "sit",
        "amet",
        "consectetur",
        "adipiscing",
        "elit",
        "sed",
        "do",
        "eiusmod",
        "tempor",
        "incididunt",
        "ut",
        "labore",
        "magna",
    ];
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut s = String::with_capacity(len + 16);
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(WORDS[usize::try_from(x % 16).expect("small")]);
        if x.is_multiple_of(3) {
            let _ = write!(s, " {}", x % 1000);
        }
        s.push(' ');
    }
    s.truncate(len);
    s
}

fn large_data(len: usize, needle: Option<usize>, at_permille: u16) -> String {
    let mut text = filler(len, (len as u64) << 16 | u64::from(at_permille));
    if let Some(n) = needle {
        let at = len * usize::from(at_permille) / 1000;
        text.insert_str(at, NEEDLES[n]);
    }
    format!(r#"{{"blob":"{text}","len":{len}}}"#)
}

fn data_text(seed: DataSeed) -> Option<String> {
    match seed {
        DataSeed::Null => None,
        DataSeed::Small(a, b, n) => {
            // Padding (kept under the compression threshold) so that segments fill up.
            let pad = n
                .to_string()
                .repeat(usize::try_from(n % 151).expect("small"));
            Some(if n.is_multiple_of(2) {
                format!(
                    r#"{{"s":"{}","n":{n},"t":"{}","pad":"{pad}"}}"#,
                    STRINGS[a], STRINGS[b]
                )
            } else {
                format!(
                    r#"{{ "s": "{}", "list": [{n}, "{}", "{pad}"] }}"#,
                    STRINGS[a], STRINGS[b]
                )
            })
        }
        DataSeed::Large(len, needle, at) => Some(large_data(len, needle, at)),
    }
}

/// The events of `seeds`, timestamps resolved in order.
fn specs(seeds: &[EventSeed]) -> Vec<Spec> {
    let mut latest = T0;
    let mut prev = T0;
    seeds
        .iter()
        .map(|s| {
            let ts = match s.step {
                Step::Tie => prev,
                Step::Forward(d) => {
                    latest += d;
                    latest
                }
                Step::Late(d) => latest - d,
            };
            prev = ts;
            Spec {
                ts,
                event_type: TYPES[s.event_type].to_owned(),
                action: s.action.map(|a| ACTIONS[a].to_owned()),
                source: SOURCES[s.source].to_owned(),
                data: data_text(s.data),
            }
        })
        .collect()
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => Just(Step::Tie),
        6 => (1i64..3_000_000).prop_map(Step::Forward),
        1 => (60_000_000i64..1_800_000_000).prop_map(Step::Forward),
        1 => (0i64..=5_000_000).prop_map(Step::Late),
    ]
}

fn data_strategy() -> impl Strategy<Value = DataSeed> {
    prop_oneof![
        4 => Just(DataSeed::Null),
        15 => (0..STRINGS.len(), 0..STRINGS.len(), 0u32..1000)
            .prop_map(|(a, b, n)| DataSeed::Small(a, b, n)),
        1 => (2048usize..20_480, prop::option::weighted(0.7, 0..NEEDLES.len()), 0u16..=1000)
            .prop_map(|(len, needle, at)| DataSeed::Large(len, needle, at)),
    ]
}

fn event_strategy() -> impl Strategy<Value = EventSeed> {
    (
        step_strategy(),
        prop_oneof![15 => 0..TYPES.len() - 1, 1 => Just(TYPES.len() - 1)],
        prop::option::weighted(0.7, 0..ACTIONS.len()),
        0..SOURCES.len(),
        data_strategy(),
    )
        .prop_map(|(step, event_type, action, source, data)| EventSeed {
            step,
            event_type,
            action,
            source,
            data,
        })
}

// ---------------------------------------------------------------------------------------
// Queries

/// A concrete query, run on both sides.
#[derive(Debug, Clone, Default)]
struct Q {
    since: Option<i64>,
    until: Option<i64>,
    types: Vec<String>,
    sources: Vec<String>,
    action: Option<String>,
    text: Option<String>,
    ids: Option<(u64, u64)>,
    order: Order,
    limit: Option<u64>,
    after: Option<Position>,
}

impl Q {
    fn build<'s>(&self, store: &'s Store) -> Query<'s> {
        let mut q = store.query().order(self.order);
        if let Some(t) = self.since {
            q = q.since(Timestamp(t));
        }
        if let Some(t) = self.until {
            q = q.until(Timestamp(t));
        }
        for t in &self.types {
            q = q.event_type(t.as_str());
        }
        for s in &self.sources {
            q = q.source(s.as_str());
        }
        if let Some(a) = &self.action {
            q = q.action(a.as_str());
        }
        if let Some(t) = &self.text {
            q = q.text(t.as_str());
        }
        if let Some((from, until)) = self.ids {
            q = q.ids(EventId(from), EventId(until));
        }
        if let Some(n) = self.limit {
            q = q.limit(n);
        }
        if let Some(p) = self.after {
            q = q.after(p);
        }
        q
    }

    /// The SQL `WHERE` condition (without limit and order) and its arguments.
    fn sql_where(&self) -> (String, Vec<Value>) {
        let mut conds = vec!["1".to_owned()];
        let mut args = Vec::new();
        if let Some(t) = self.since {
            conds.push("timestamp >= ?".into());
            args.push(Value::Integer(t));
        }
        if let Some(t) = self.until {
            conds.push("timestamp < ?".into());
            args.push(Value::Integer(t));
        }
        for (column, values) in [("event_type", &self.types), ("source", &self.sources)] {
            if !values.is_empty() {
                conds.push(format!(
                    "{column} IN ({})",
                    vec!["?"; values.len()].join(", ")
                ));
                args.extend(values.iter().cloned().map(Value::Text));
            }
        }
        if let Some(a) = &self.action {
            conds.push("action = ?".into());
            args.push(Value::Text(a.clone()));
        }
        if let Some(t) = &self.text {
            conds.push(
                r"(event_type LIKE ? ESCAPE '\' OR action LIKE ? ESCAPE '\' OR source LIKE ? ESCAPE '\' OR data_json LIKE ? ESCAPE '\')"
                    .into(),
            );
            let pattern = format!("%{}%", like_escape(t));
            args.extend(std::iter::repeat_n(Value::Text(pattern), 4));
        }
        if let Some((from, until)) = self.ids {
            conds.push("id >= ? AND id < ?".into());
            args.push(Value::Integer(sql_int(from)));
            args.push(Value::Integer(sql_int(until)));
        }
        if let Some(p) = self.after {
            let op = match self.order {
                Order::NewestFirst => "<",
                Order::OldestFirst => ">",
            };
            conds.push(format!(
                "(timestamp {op} ? OR (timestamp = ? AND id {op} ?))"
            ));
            args.push(Value::Integer(p.timestamp.0));
            args.push(Value::Integer(p.timestamp.0));
            args.push(Value::Integer(sql_int(p.id.0)));
        }
        (conds.join(" AND "), args)
    }
}

/// `text` as a literal inside a `LIKE ... ESCAPE '\'` pattern.
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn sql_int(v: u64) -> i64 {
    i64::try_from(v).expect("test values fit in i64")
}

/// A time bound, resolved against the generated events.
#[derive(Debug, Clone, Copy)]
enum TimeSeed {
    /// An event's timestamp, moved by -1, 0 or +1 microsecond.
    AtEvent(Index, i64),
    /// A per-mille position between the smallest and largest timestamp (widened by 1 s).
    Fraction(u16),
}

#[derive(Debug, Clone, Copy)]
enum UntilSeed {
    Time(TimeSeed),
    /// `until == since`: an empty range.
    SameAsSince,
}

#[derive(Debug, Clone)]
struct QuerySeed {
    since: Option<TimeSeed>,
    until: Option<UntilSeed>,
    types: Vec<usize>,
    sources: Vec<usize>,
    action: Option<usize>,
    text: Option<usize>,
    ids: Option<(Index, Index)>,
    newest_first: bool,
    limit: Option<u64>,
    page: u64,
}

fn time_strategy() -> impl Strategy<Value = TimeSeed> {
    prop_oneof![
        (any::<Index>(), -1i64..=1).prop_map(|(i, d)| TimeSeed::AtEvent(i, d)),
        (0u16..=1000).prop_map(TimeSeed::Fraction),
    ]
}

fn query_strategy() -> impl Strategy<Value = QuerySeed> {
    let names = |n: usize| {
        prop_oneof![
            2 => Just(Vec::new()),
            1 => prop::collection::vec(0..=n, 1..=2),
        ]
    };
    (
        prop::option::weighted(0.35, time_strategy()),
        prop::option::weighted(
            0.35,
            prop_oneof![
                6 => time_strategy().prop_map(UntilSeed::Time),
                1 => Just(UntilSeed::SameAsSince),
            ],
        ),
        names(TYPES.len()),
        names(SOURCES.len()),
        prop::option::weighted(0.2, 0..=ACTIONS.len()),
        prop::option::weighted(0.5, 0..TEXTS.len()),
        prop::option::weighted(0.2, (any::<Index>(), any::<Index>())),
        any::<bool>(),
        prop_oneof![
            3 => Just(None),
            1 => Just(Some(0)),
            1 => Just(Some(1)),
            2 => (2u64..20).prop_map(Some),
        ],
        1u64..=7,
    )
        .prop_map(
            |(since, until, types, sources, action, text, ids, newest_first, limit, page)| {
                QuerySeed {
                    since,
                    until,
                    types,
                    sources,
                    action,
                    text,
                    ids,
                    newest_first,
                    limit,
                    page,
                }
            },
        )
}

/// Index `i` into `pool`, one past its end meaning `missing`.
fn pick(pool: &[&str], i: usize, missing: &str) -> String {
    pool.get(i).copied().unwrap_or(missing).to_owned()
}

fn resolve_time(seed: TimeSeed, events: &[Spec]) -> i64 {
    let lo = events.iter().map(|e| e.ts).min().unwrap_or(T0) - 1_000_000;
    let hi = events.iter().map(|e| e.ts).max().unwrap_or(T0) + 1_000_000;
    match seed {
        TimeSeed::AtEvent(i, d) if !events.is_empty() => events[i.index(events.len())].ts + d,
        TimeSeed::AtEvent(_, d) => T0 + d,
        TimeSeed::Fraction(f) => lo + (hi - lo) * i64::from(f) / 1000,
    }
}

fn resolve_query(seed: &QuerySeed, events: &[Spec]) -> Q {
    let since = seed.since.map(|t| resolve_time(t, events));
    let until = seed.until.map(|u| match u {
        UntilSeed::Time(t) => resolve_time(t, events),
        UntilSeed::SameAsSince => since.unwrap_or(T0),
    });
    let id_span = events.len() + 3;
    Q {
        since,
        until,
        types: seed
            .types
            .iter()
            .map(|&i| pick(&TYPES, i, NO_SUCH_TYPE))
            .collect(),
        sources: seed
            .sources
            .iter()
            .map(|&i| pick(&SOURCES, i, NO_SUCH_SOURCE))
            .collect(),
        action: seed.action.map(|i| pick(&ACTIONS, i, NO_SUCH_ACTION)),
        text: seed.text.map(|i| TEXTS[i].to_owned()),
        ids: seed.ids.map(|(a, b)| {
            let id = |i: Index| u64::try_from(i.index(id_span)).expect("small");
            (id(a), id(b))
        }),
        order: if seed.newest_first {
            Order::NewestFirst
        } else {
            Order::OldestFirst
        },
        limit: seed.limit,
        after: None,
    }
}

// ---------------------------------------------------------------------------------------
// The SQLite side

fn mirror() -> Connection {
    let db = Connection::open_in_memory().expect("sqlite");
    // The old schema, except `timestamp` (INTEGER microseconds, see the module doc) and
    // `hash` (not UNIQUE: selflog stores identical events twice; the mirror holds exactly
    // what selflog stored, under selflog's ids).
    db.execute_batch(
        "CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            timestamp INTEGER NOT NULL,
            event_type TEXT NOT NULL,
            action TEXT,
            source TEXT NOT NULL,
            data_json TEXT,
            data_compressed BLOB,
            hash TEXT,
            processed BOOLEAN DEFAULT FALSE,
            created_at DATETIME DEFAULT CURRENT_TIMESTAMP
        );
        CREATE INDEX idx_events_timestamp ON events(timestamp);
        CREATE INDEX idx_events_type ON events(event_type);
        CREATE INDEX idx_events_source ON events(source);",
    )
    .expect("schema");
    db
}

fn mirror_insert(db: &Connection, id: EventId, spec: &Spec) {
    let hash = format!("{:016x}", spec.event().content_hash());
    db.execute(
        "INSERT INTO events (id, timestamp, event_type, action, source, data_json, hash)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        rusqlite::params![
            sql_int(id.0),
            spec.ts,
            spec.event_type,
            spec.action,
            spec.source,
            spec.data,
            hash
        ],
    )
    .expect("insert");
}

/// An event as both sides return it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    id: u64,
    ts: i64,
    event_type: String,
    action: Option<String>,
    source: String,
    data: Option<String>,
    hash: u64,
}

impl From<StoredEvent> for Row {
    fn from(e: StoredEvent) -> Row {
        Row {
            id: e.id.0,
            ts: e.timestamp.0,
            event_type: e.event_type,
            action: e.action,
            source: e.source,
            data: e.data,
            hash: e.hash,
        }
    }
}

fn sql_rows(db: &Connection, q: &Q) -> Vec<Row> {
    let (cond, mut args) = q.sql_where();
    let dir = match q.order {
        Order::NewestFirst => "DESC",
        Order::OldestFirst => "ASC",
    };
    args.push(Value::Integer(q.limit.map_or(-1, sql_int)));
    let sql = format!(
        "SELECT id, timestamp, event_type, action, source, data_json, hash FROM events
         WHERE {cond} ORDER BY timestamp {dir}, id {dir} LIMIT ?"
    );
    let mut stmt = db.prepare(&sql).expect("prepare");
    stmt.query_map(rusqlite::params_from_iter(args), |r| {
        let hash: String = r.get(6)?;
        Ok(Row {
            id: u64::try_from(r.get::<_, i64>(0)?).expect("ids are positive"),
            ts: r.get(1)?,
            event_type: r.get(2)?,
            action: r.get(3)?,
            source: r.get(4)?,
            data: r.get(5)?,
            hash: u64::from_str_radix(&hash, 16).expect("hex hash"),
        })
    })
    .expect("query")
    .collect::<rusqlite::Result<_>>()
    .expect("rows")
}

fn sql_count(db: &Connection, q: &Q) -> u64 {
    let (cond, args) = q.sql_where();
    let n: i64 = db
        .query_row(
            &format!("SELECT COUNT(*) FROM events WHERE {cond}"),
            rusqlite::params_from_iter(args),
            |r| r.get(0),
        )
        .expect("count");
    u64::try_from(n).expect("count is positive")
}

fn sql_counts_by(db: &Connection, q: &Q, field: Field) -> BTreeMap<String, u64> {
    let column = match field {
        Field::EventType => "event_type",
        Field::Source => "source",
        Field::Action => "action",
    };
    let (cond, args) = q.sql_where();
    let sql = format!(
        "SELECT {column}, COUNT(*) FROM events WHERE {cond} AND {column} IS NOT NULL GROUP BY {column}"
    );
    let mut stmt = db.prepare(&sql).expect("prepare");
    stmt.query_map(rusqlite::params_from_iter(args), |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })
    .expect("query")
    .map(|r| {
        let (k, n) = r.expect("row");
        (k, u64::try_from(n).expect("positive"))
    })
    .collect()
}

fn sql_time_bounds(db: &Connection, q: &Q) -> Option<(Timestamp, Timestamp)> {
    let (cond, args) = q.sql_where();
    let (lo, hi): (Option<i64>, Option<i64>) = db
        .query_row(
            &format!("SELECT MIN(timestamp), MAX(timestamp) FROM events WHERE {cond}"),
            rusqlite::params_from_iter(args),
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("bounds");
    lo.zip(hi).map(|(lo, hi)| (Timestamp(lo), Timestamp(hi)))
}

/// Hourly buckets. Timestamps are never negative (selflog rejects events before 1970), so
/// `SQLite`'s truncating `%` aligns buckets to multiples of an hour since the epoch, as
/// selflog does.
fn sql_histogram(db: &Connection, q: &Q) -> Vec<(Timestamp, u64)> {
    let (cond, args) = q.sql_where();
    let sql = format!(
        "SELECT timestamp - (timestamp % {HOUR_US}) AS bucket, COUNT(*) FROM events
         WHERE {cond} GROUP BY bucket ORDER BY bucket"
    );
    let mut stmt = db.prepare(&sql).expect("prepare");
    stmt.query_map(rusqlite::params_from_iter(args), |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    })
    .expect("query")
    .map(|r| {
        let (t, n) = r.expect("row");
        (Timestamp(t), u64::try_from(n).expect("positive"))
    })
    .collect()
}

// ---------------------------------------------------------------------------------------
// Comparison

fn ids_of(rows: &[Row]) -> Vec<u64> {
    rows.iter().map(|r| r.id).collect()
}

/// Runs `q` on selflog, checking that `position()` names the last event returned.
fn selflog_rows(store: &Store, q: &Q) -> (Vec<Row>, Option<Position>) {
    selflog_rows_by(store, q, false)
}

/// Runs `q` on selflog, reading its events as `StoredEvent`s or, `borrowed`, through
/// `Events::next_ref`, checking that `position()` names the last event returned.
fn selflog_rows_by(store: &Store, q: &Q, borrowed: bool) -> (Vec<Row>, Option<Position>) {
    let mut events = q.build(store).run().expect("run");
    let rows: Vec<Row> = if borrowed {
        let mut rows = Vec::new();
        while let Some(e) = events.next_ref() {
            rows.push(Row::from(e.expect("event").to_stored()));
        }
        assert!(events.next_ref().is_none(), "next_ref after the end");
        rows
    } else {
        events
            .by_ref()
            .map(|e| Row::from(e.expect("event")))
            .collect()
    };
    let position = events.position();
    let expected = rows.last().map(|r| Position {
        timestamp: Timestamp(r.ts),
        id: EventId(r.id),
    });
    assert_eq!(position, expected, "position() after {q:?}");
    (rows, position)
}

fn describe_difference(got: &[u64], want: &[u64]) -> String {
    let only_got: Vec<u64> = got.iter().copied().filter(|i| !want.contains(i)).collect();
    let only_want: Vec<u64> = want.iter().copied().filter(|i| !got.contains(i)).collect();
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    let mut s = String::new();
    let _ = write!(
        s,
        "selflog returned {} ids, sqlite {}; only in selflog: {only_got:?}; only in sqlite: \
         {only_want:?}; first differing position: {first:?}\n selflog: {got:?}\n sqlite:  {want:?}",
        got.len(),
        want.len()
    );
    s
}

fn assert_same_rows(got: &[Row], want: &[Row], what: &str, q: &Q) {
    let (got_ids, want_ids) = (ids_of(got), ids_of(want));
    assert!(
        got_ids == want_ids,
        "{what}: ids differ for {q:?}\n{}",
        describe_difference(&got_ids, &want_ids)
    );
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g, w, "{what}: contents of event {} differ for {q:?}", g.id);
    }
}

/// Runs `q` on both sides and compares results, aggregations and paging by `page`.
fn check_query(store: &Store, db: &Connection, q: &Q, page: u64, what: &str) {
    let want = sql_rows(db, q);
    let (got, _) = selflog_rows(store, q);
    assert_same_rows(&got, &want, what, q);
    let (borrowed, _) = selflog_rows_by(store, q, true);
    assert_same_rows(&borrowed, &want, &format!("{what}, borrowed rows"), q);
    check_aggregates(store, db, q, what);
    check_paging(store, db, q, page, what);
}

fn check_aggregates(store: &Store, db: &Connection, q: &Q, what: &str) {
    assert_eq!(
        q.build(store).count().expect("count"),
        sql_count(db, q),
        "{what}: count() for {q:?}"
    );
    for field in [Field::EventType, Field::Source, Field::Action] {
        assert_eq!(
            q.build(store).counts_by(field).expect("counts_by"),
            sql_counts_by(db, q, field),
            "{what}: counts_by({field:?}) for {q:?}"
        );
    }
    assert_eq!(
        q.build(store).time_bounds().expect("time_bounds"),
        sql_time_bounds(db, q),
        "{what}: time_bounds() for {q:?}"
    );
    assert_eq!(
        q.build(store).histogram(HOUR).expect("histogram"),
        sql_histogram(db, q),
        "{what}: histogram(1 h) for {q:?}"
    );
}

/// Pages through `q` (its limit dropped) `page` events at a time, resuming with `after`,
/// and compares the concatenation with the unlimited result.
fn check_paging(store: &Store, db: &Connection, q: &Q, page: u64, what: &str) {
    let all = Q {
        limit: None,
        after: None,
        ..q.clone()
    };
    let want = ids_of(&sql_rows(db, &all));
    let mut got = Vec::new();
    let mut after = None;
    for round in 0..=want.len() {
        let paged = Q {
            limit: Some(page),
            after,
            ..all.clone()
        };
        // Pages are read alternately as owned and as borrowed events: a position from
        // either resumes the other.
        let (rows, position) = selflog_rows_by(store, &paged, round % 2 == 1);
        assert!(
            rows.len() <= usize::try_from(page).expect("small"),
            "{what}: a page of {page} returned {} events for {paged:?}",
            rows.len()
        );
        if rows.is_empty() {
            break;
        }
        got.extend(ids_of(&rows));
        after = position;
    }
    assert!(
        got == want,
        "{what}: paging by {page} differs from the whole result for {all:?}\n{}",
        describe_difference(&got, &want)
    );
}

/// Aggregations of the rest of a listing: `q` (its limit dropped) resumed after its first
/// page of `page` events. They must count what `run()` would still return.
fn check_rest_aggregates(store: &Store, db: &Connection, q: &Q, page: u64, what: &str) {
    let first = Q {
        limit: Some(page),
        after: None,
        ..q.clone()
    };
    let (_, position) = selflog_rows(store, &first);
    if position.is_some() {
        let rest = Q {
            limit: None,
            after: position,
            ..q.clone()
        };
        assert_same_rows(
            &selflog_rows(store, &rest).0,
            &sql_rows(db, &rest),
            what,
            &rest,
        );
        check_aggregates(store, db, &rest, what);
    }
}

/// What a property compares for each query.
type Check = fn(&Store, &Connection, &Q, u64, &str);

// ---------------------------------------------------------------------------------------
// Stores

fn small_config() -> Config {
    let mut c = Config::default();
    c.segment_len = 64 << 10;
    c.data_len_max = 24 << 10;
    c
}

/// Appends `specs` to both sides, as one `append_batch` or one `append` each.
fn append_all(store: &Store, db: &Connection, specs: &[Spec], batch_api: bool) {
    let appended: Vec<Appended> = if batch_api {
        store
            .append_batch(specs.iter().map(Spec::event).collect())
            .expect("append_batch")
    } else {
        specs
            .iter()
            .map(|s| store.append(s.event()).expect("append"))
            .collect()
    };
    for (spec, a) in specs.iter().zip(appended) {
        match a {
            Appended::New(id) => mirror_insert(db, id, spec),
            Appended::Duplicate(id) => {
                // Not stored again: the original must be the same event.
                let q = Q {
                    ids: Some((id.0, id.0 + 1)),
                    ..Q::default()
                };
                let original = sql_rows(db, &q);
                assert_eq!(original.len(), 1, "duplicate of unknown id {id}");
                assert_eq!(original[0].ts, spec.ts, "duplicate of a different event");
            }
        }
    }
}

/// A generated test case: events, how they are appended, and the queries to compare.
#[derive(Debug, Clone)]
struct Case {
    events: Vec<EventSeed>,
    /// (events, flush afterwards, use `append_batch`), used in turn and cycled.
    chunks: Vec<(usize, bool, bool)>,
    /// Close and reopen the store after this many events (and compare there too).
    reopen_at: Option<Index>,
    queries: Vec<QuerySeed>,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(event_strategy(), 0..400),
        prop::collection::vec((1usize..60, any::<bool>(), any::<bool>()), 1..8),
        prop::option::weighted(0.6, any::<Index>()),
        prop::collection::vec(query_strategy(), 1..6),
    )
        .prop_map(|(events, chunks, reopen_at, queries)| Case {
            events,
            chunks,
            reopen_at,
            queries,
        })
}

/// Appends `specs` in the case's chunks, flushing where it says and at the end.
fn append_in_chunks(
    store: &Store,
    db: &Connection,
    specs: &[Spec],
    chunks: &[(usize, bool, bool)],
) {
    let mut rest = specs;
    for &(n, flush, batch_api) in chunks.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (now, later) = rest.split_at(n.min(rest.len()));
        append_all(store, db, now, batch_api);
        if flush {
            store.flush().expect("flush");
        }
        rest = later;
    }
    store.flush().expect("flush");
}

fn check_all(
    check: Check,
    store: &Store,
    db: &Connection,
    case: &Case,
    specs: &[Spec],
    what: &str,
) {
    // Every case also checks the unfiltered query (the aggregations' fast paths).
    let everything = QuerySeed {
        since: None,
        until: None,
        types: Vec::new(),
        sources: Vec::new(),
        action: None,
        text: None,
        ids: None,
        newest_first: true,
        limit: None,
        page: 50,
    };
    for seed in std::iter::once(&everything).chain(&case.queries) {
        check(store, db, &resolve_query(seed, specs), seed.page, what);
    }
}

fn run_case(case: &Case, check: Check) {
    let specs = specs(&case.events);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let db = mirror();
    let split = case
        .reopen_at
        .map_or(specs.len(), |i| i.index(specs.len() + 1));
    let (first, second) = specs.split_at(split);
    let store = Store::open(&path, small_config()).expect("open");
    append_in_chunks(&store, &db, first, &case.chunks);
    if case.reopen_at.is_some() {
        check_all(check, &store, &db, case, &specs, "before reopen");
        store.close().expect("close");
        let store = Store::open(&path, small_config()).expect("reopen");
        append_in_chunks(&store, &db, second, &case.chunks);
        check_stores(check, &store, &path, &db, case, &specs);
    } else {
        check_stores(check, &store, &path, &db, case, &specs);
    }
}

/// Compares the writable store, and a read-only one opened beside it, with `SQLite`.
fn check_stores(
    check: Check,
    store: &Store,
    path: &Path,
    db: &Connection,
    case: &Case,
    specs: &[Spec],
) {
    check_all(check, store, db, case, specs, "writable store");
    let reader = Store::open_read_only(path).expect("open read-only");
    check_all(check, &reader, db, case, specs, "read-only store");
    // The same answers once every sealed segment is compacted, from the writable store
    // (whose views move to the new files) and from a new reader.
    store.compact().expect("compact");
    check_all(check, store, db, case, specs, "compacted, writable store");
    check_all(
        check,
        &reader,
        db,
        case,
        specs,
        "reader opened before compaction",
    );
    let reader = Store::open_read_only(path).expect("open read-only");
    check_all(
        check,
        &reader,
        db,
        case,
        specs,
        "compacted, read-only store",
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        // Failures are kept as plain #[test]s below, not in a regressions file.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Results (ids, order, contents), aggregations and paging of random queries.
    #[test]
    fn queries_agree_with_sqlite(case in case_strategy()) {
        run_case(&case, check_query);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 16,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Aggregations of a query resumed with `after` (kept apart from the property above so
    /// that one failure does not hide the other; see
    /// `count_after_a_position_counts_the_rest_of_a_newest_first_listing`).
    #[test]
    fn aggregations_after_a_position_agree_with_sqlite(case in case_strategy()) {
        run_case(&case, check_rest_aggregates);
    }
}

// ---------------------------------------------------------------------------------------
// Fixed cases

/// Event `i` of the fixed data set: every 7th is 3 s late, pairs share a timestamp, every
/// 61st has large compressible data with "CHROME" deep inside.
fn fixed_event(i: u64) -> Spec {
    let ix = |m: u64| usize::try_from(i % m).expect("small");
    let late = if i.is_multiple_of(7) { 3_000_000 } else { 0 };
    let data = if i.is_multiple_of(4) {
        None
    } else if i % 61 == 1 {
        Some(large_data(4000 + ix(5) * 1000, Some(1), 900))
    } else {
        Some(format!(r#"{{"i":{i},"s":"{}"}}"#, STRINGS[ix(10)]))
    };
    Spec {
        ts: T0 + i64::try_from(i / 2).expect("small") * 700_000 - late,
        event_type: TYPES[ix(7)].to_owned(),
        action: if i.is_multiple_of(3) {
            None
        } else {
            Some(ACTIONS[ix(5)].to_owned())
        },
        source: SOURCES[ix(6)].to_owned(),
        data,
    }
}

fn fixed_specs(n: u64) -> Vec<Spec> {
    (0..n).map(fixed_event).collect()
}

/// A store and its mirror holding `specs`.
fn fixture(specs: &[Spec]) -> (tempfile::TempDir, Store, Connection) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path().join("store"), small_config()).expect("open");
    let db = mirror();
    append_in_chunks(&store, &db, specs, &[(37, true, true), (11, false, false)]);
    (dir, store, db)
}

fn both_orders(q: &Q) -> [Q; 2] {
    [Order::NewestFirst, Order::OldestFirst].map(|order| Q { order, ..q.clone() })
}

#[test]
fn empty_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let store = Store::open(&path, small_config()).expect("open");
    let db = mirror();
    let reader = Store::open_read_only(&path).expect("open read-only");
    let queries = [
        Q::default(),
        Q {
            types: vec!["file_op".into()],
            text: Some("chrome".into()),
            limit: Some(1),
            ..Q::default()
        },
        Q {
            since: Some(T0),
            until: Some(T0 + 1),
            ids: Some((1, 100)),
            ..Q::default()
        },
    ];
    for q in queries.iter().flat_map(both_orders) {
        for s in [&store, &reader] {
            check_query(s, &db, &q, 3, "empty store");
            let mut events = q.build(s).run().expect("run");
            assert!(events.next().is_none());
            assert_eq!(events.position(), None);
            assert_eq!(q.build(s).count().expect("count"), 0);
            assert_eq!(q.build(s).time_bounds().expect("bounds"), None);
            assert!(q.build(s).histogram(HOUR).expect("histogram").is_empty());
        }
    }
}

#[test]
fn limits_zero_and_one() {
    let specs = fixed_specs(700);
    let (_dir, store, db) = fixture(&specs);
    for limit in [0, 1, 2] {
        let plain = Q {
            limit: Some(limit),
            ..Q::default()
        };
        let filtered = Q {
            types: vec!["file_op".into(), "ünï".into()],
            text: Some("chrome".into()),
            limit: Some(limit),
            ..Q::default()
        };
        for q in both_orders(&plain).iter().chain(&both_orders(&filtered)) {
            check_query(&store, &db, q, 1, "limit");
            let (rows, position) = selflog_rows(&store, q);
            assert_eq!(rows.len() as u64, limit.min(700), "limit {limit}");
            assert_eq!(position.is_none(), limit == 0);
        }
    }
}

#[test]
fn a_type_that_does_not_exist() {
    let specs = fixed_specs(500);
    let (_dir, store, db) = fixture(&specs);
    for q in [
        Q {
            types: vec![NO_SUCH_TYPE.into()],
            ..Q::default()
        },
        Q {
            types: vec![NO_SUCH_TYPE.into(), "clipboard".into()],
            ..Q::default()
        },
        Q {
            sources: vec![NO_SUCH_SOURCE.into()],
            ..Q::default()
        },
        Q {
            action: Some(NO_SUCH_ACTION.into()),
            ..Q::default()
        },
        // A name that exists, but as a source, not as a type.
        Q {
            types: vec!["Finder".into()],
            ..Q::default()
        },
    ]
    .iter()
    .flat_map(both_orders)
    {
        check_query(&store, &db, &q, 4, "missing name");
    }
    let none = Q {
        types: vec![NO_SUCH_TYPE.into()],
        ..Q::default()
    };
    assert_eq!(none.build(&store).count().expect("count"), 0);
    assert!(none
        .build(&store)
        .counts_by(Field::EventType)
        .expect("counts")
        .is_empty());
}

#[test]
fn an_empty_time_range() {
    let specs = fixed_specs(400);
    let (_dir, store, db) = fixture(&specs);
    // On an event's timestamp (shared by a tie), between events, and before everything.
    for t in [
        specs[100].ts,
        specs[100].ts + 1,
        specs[7].ts,
        T0 - 10_000_000,
    ] {
        let q = Q {
            since: Some(t),
            until: Some(t),
            ..Q::default()
        };
        for q in both_orders(&q) {
            check_query(&store, &db, &q, 2, "since == until");
            assert_eq!(q.build(&store).count().expect("count"), 0);
        }
    }
    // until before since.
    let q = Q {
        since: Some(specs[200].ts),
        until: Some(specs[100].ts),
        ..Q::default()
    };
    check_query(&store, &db, &q, 2, "until < since");
}

/// Regression: `count()` with `after` on a newest-first query counted the events that sort
/// *before* the position (it forces oldest-first order, src/query/aggregate.rs `Query::count`), not the
/// rest of the listing that `run()` and the other aggregations see.
#[test]
fn count_after_a_position_counts_the_rest_of_a_newest_first_listing() {
    let specs: Vec<Spec> = (0..4)
        .map(|i| Spec {
            ts: T0 + i,
            event_type: "file_op".into(),
            action: None,
            source: "Finder".into(),
            data: None,
        })
        .collect();
    let (_dir, store, db) = fixture(&specs);
    // Newest first, resuming after event 2: only event 1 is left.
    let q = Q {
        after: Some(Position {
            timestamp: Timestamp(T0 + 1),
            id: EventId(2),
        }),
        ..Q::default()
    };
    let (rows, _) = selflog_rows(&store, &q);
    assert_eq!(ids_of(&rows), [1]);
    assert_eq!(sql_count(&db, &q), 1);
    assert_eq!(
        q.build(&store).counts_by(Field::EventType).expect("counts"),
        BTreeMap::from([("file_op".to_owned(), 1)])
    );
    assert_eq!(
        q.build(&store).count().expect("count"),
        1,
        "count() disagrees with run(), counts_by() and SQLite for {q:?}"
    );
}

/// Whether `e` matches the racing readers' filtered queries.
fn race_filter_matches(e: &Spec) -> bool {
    let hay = [
        Some(e.event_type.as_str()),
        e.action.as_deref(),
        Some(e.source.as_str()),
        e.data.as_deref(),
    ];
    e.event_type == "file_op"
        && hay
            .iter()
            .flatten()
            .any(|s| s.to_ascii_lowercase().contains("chrome"))
}

fn race_matches(q: &Q, id: u64) -> bool {
    q.types.is_empty() || race_filter_matches(&fixed_event(id - 1))
}

/// Checks that `rows` are strictly in `q`'s order and each equals what was appended.
fn check_race_rows(rows: &[Row], q: &Q, appended: u64) {
    let key = |r: &Row| (r.ts, r.id);
    for w in rows.windows(2) {
        let ordered = match q.order {
            Order::NewestFirst => key(&w[0]) > key(&w[1]),
            Order::OldestFirst => key(&w[0]) < key(&w[1]),
        };
        assert!(ordered, "misordered {:?} then {:?} for {q:?}", w[0], w[1]);
    }
    for r in rows {
        assert!(r.id >= 1 && r.id <= appended, "id {} never appended", r.id);
        let spec = fixed_event(r.id - 1);
        let want = Row {
            id: r.id,
            ts: spec.ts,
            event_type: spec.event_type.clone(),
            action: spec.action.clone(),
            source: spec.source.clone(),
            data: spec.data.clone(),
            hash: spec.event().content_hash(),
        };
        assert_eq!(r, &want, "event {} read while racing the writer", r.id);
    }
}

/// Checks one racing query's result: ordered, equal to what was appended, and a committed
/// prefix holding at least the `flushed` events committed before the query started.
fn check_race_result(rows: &[Row], q: &Q, flushed: u64, appended: u64) {
    check_race_rows(rows, q, appended);
    let mut got: Vec<u64> = ids_of(rows);
    got.sort_unstable();
    let seen = got.last().copied().unwrap_or(0).max(flushed);
    let want: Vec<u64> = (1..=seen).filter(|&id| race_matches(q, id)).collect();
    assert!(
        got == want,
        "not a committed prefix (flushed {flushed}) for {q:?}\n{}",
        describe_difference(&got, &want)
    );
}

/// Progress of the racing writer, shared with the readers.
#[derive(Default)]
struct Race {
    /// Events committed by a returned `flush`.
    flushed: AtomicU64,
    /// Events appended.
    appended: AtomicU64,
    done: AtomicBool,
    /// Rounds the first reader has completed.
    rounds: AtomicU64,
}

const RACE_EVENTS: u64 = 2500;

fn race_writer(store: &Store, race: &Race) {
    for i in 0..RACE_EVENTS {
        let id = store.append(fixed_event(i).event()).expect("append").id();
        assert_eq!(id, EventId(i + 1));
        race.appended.store(i + 1, AtomicOrdering::SeqCst);
        if i % 97 == 96 {
            store.flush().expect("flush");
            race.flushed.store(i + 1, AtomicOrdering::SeqCst);
            // Let the first reader run a round against this state (briefly, then go on).
            let seen = race.rounds.load(AtomicOrdering::SeqCst);
            let waited = Instant::now();
            while race.rounds.load(AtomicOrdering::SeqCst) == seen
                && waited.elapsed() < Duration::from_millis(50)
            {
                std::thread::yield_now();
            }
        }
    }
    store.flush().expect("flush");
    race.flushed.store(RACE_EVENTS, AtomicOrdering::SeqCst);
    race.done.store(true, AtomicOrdering::SeqCst);
}

/// One round of racing queries: whole results, counts, and a paged listing.
fn race_round(store: &Store, race: &Race, queries: &[Q]) {
    for q in queries {
        let before = race.flushed.load(AtomicOrdering::SeqCst);
        let (rows, _) = selflog_rows(store, q);
        check_race_result(&rows, q, before, race.appended.load(AtomicOrdering::SeqCst));
        let count = q.build(store).count().expect("count");
        let floor = (1..=before).filter(|&id| race_matches(q, id)).count() as u64;
        let bound = race.appended.load(AtomicOrdering::SeqCst);
        assert!(
            count >= floor && count <= bound,
            "count() {count} while {before} were flushed and {bound} appended, for {q:?}"
        );
    }
    // Paging while the writer appends: pages stay ordered across their boundaries.
    let mut paged = Q {
        order: Order::OldestFirst,
        limit: Some(300),
        ..Q::default()
    };
    let mut all = Vec::new();
    loop {
        let (rows, position) = selflog_rows(store, &paged);
        if rows.is_empty() {
            break;
        }
        all.extend(rows);
        paged.after = position;
    }
    check_race_rows(&all, &paged, race.appended.load(AtomicOrdering::SeqCst));
}

/// Runs rounds until the writer is done (and one more); returns the number of rounds.
fn race_reader(store: &Store, race: &Race, first: bool) -> u64 {
    let queries = [
        Q::default(),
        Q {
            order: Order::OldestFirst,
            ..Q::default()
        },
        Q {
            types: vec!["file_op".into()],
            text: Some("chrome".into()),
            ..Q::default()
        },
        Q {
            types: vec!["file_op".into()],
            text: Some("chrome".into()),
            order: Order::OldestFirst,
            ..Q::default()
        },
    ];
    let mut rounds = 0u64;
    loop {
        let last = race.done.load(AtomicOrdering::SeqCst);
        race_round(store, race, &queries);
        rounds += 1;
        if first {
            race.rounds.store(rounds, AtomicOrdering::SeqCst);
        }
        if last {
            return rounds;
        }
    }
}

/// One thread appends with periodic flushes while two others query: one through the
/// writing store, one through a read-only store (the other-process path).
#[test]
fn queries_racing_the_writer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let store = Store::open(&path, small_config()).expect("open");
    let reader = Store::open_read_only(&path).expect("open read-only");
    let race = Race::default();
    let started = Instant::now();
    let (rounds, read_only_rounds) = std::thread::scope(|s| {
        s.spawn(|| race_writer(&store, &race));
        let same = s.spawn(|| race_reader(&store, &race, true));
        let other = s.spawn(|| race_reader(&reader, &race, false));
        (
            same.join().expect("reader"),
            other.join().expect("read-only reader"),
        )
    });
    eprintln!(
        "racing: {rounds} + {read_only_rounds} reader rounds in {:?}",
        started.elapsed()
    );
    assert!(rounds >= 2 && read_only_rounds >= 2);
    // Once the writer is done, everything is there, on both.
    for s in [&store, &reader] {
        let (rows, _) = selflog_rows(s, &Q::default());
        check_race_result(&rows, &Q::default(), RACE_EVENTS, RACE_EVENTS);
        assert_eq!(rows.len() as u64, RACE_EVENTS);
    }
}
