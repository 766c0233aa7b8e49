//! What the dashboard shows, gathered from a store opened read-only while another process
//! may write it: a [`Collector`] keeps the store open and turns it into a [`Snapshot`] on
//! each [`Collector::sample`].
//!
//! A sample costs little when nothing changed: the totals come from footers and the active
//! segment's index (`Store::stats`), and only events committed since the previous sample
//! are read, once, to keep the per-second counts of the last hour and the live tail. So an
//! idle dashboard reads a few small files a second. The pattern and stats streams are
//! selflog stores of their own (`format-spec/FORMAT.md#sidecars`): patterns by type are
//! their stream's per-type counts, and the newest stats record is read only when that
//! stream grew.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use selflog::{EventId, Store, StoredEvent, SystemStats, Timestamp};

use super::health::{self, Verified, Writer};

/// Events the live tail keeps (newest first); the screen shows as many as fit.
pub const TAIL_LEN: usize = 200;
/// Window of the "now" rate.
const NOW_WINDOW: Duration = Duration::from_secs(10);
/// Window of the "last minute" rate.
const MINUTE: Duration = Duration::from_mins(1);
/// Window of the "last hour" rate and of the sparkline.
const HOUR: Duration = Duration::from_hours(1);
/// How far back the observed append rate looks.
const APPENDED_WINDOW: Duration = Duration::from_secs(10);

/// The live tail's filters: text (ASCII case-insensitive, as `inspect search`) and type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TailFilter {
    /// Events whose type, action, source or data contain this.
    pub text: Option<String>,
    /// Events of this type.
    pub event_type: Option<String>,
}

/// Events by their timestamps: rates over three windows ending now, and the hour's
/// sparkline.
#[derive(Debug, Clone, PartialEq)]
pub struct Rates {
    /// Events per second stamped in the last 10 s.
    pub now: f64,
    /// Events per second stamped in the last minute.
    pub minute: f64,
    /// Events per second stamped in the last hour.
    pub hour: f64,
    /// Events stamped in the last hour (`inspect stats`'s `events_last_hour`).
    pub events_last_hour: u64,
    /// Events stamped in each minute of the last hour, oldest first (60 values).
    pub per_minute: Vec<u64>,
}

/// A durable consumer cursor and how far it lags behind the newest event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorLag {
    /// Its name.
    pub name: String,
    /// The last event id it processed.
    pub position: u64,
    /// Stored events after it.
    pub lag: u64,
}

/// Figures about the store's files.
#[derive(Debug, Clone, PartialEq)]
pub struct Storage {
    /// Bytes the store occupies on disk (allocated blocks, preallocated space included).
    pub disk_bytes: u64,
    /// Bytes of log (headers, committed frames, footers).
    pub log_bytes: u64,
    /// Segment files of the event log.
    pub segments: usize,
    /// Of which sealed.
    pub sealed_segments: usize,
    /// Log bytes per event over all segments.
    pub bytes_per_event: f64,
    /// File bytes per event of the sealed segments, if any holds events.
    pub bytes_per_event_sealed: Option<f64>,
    /// Committed bytes per event of the active segment, if it holds events.
    pub bytes_per_event_active: Option<f64>,
    /// Events whose data is stored compressed.
    pub compressed_events: u64,
    /// Event data as appended, bytes.
    pub data_raw_bytes: u64,
    /// Event data as stored, bytes.
    pub data_stored_bytes: u64,
    /// Duplicates dropped since the store was created, or why that is unknown.
    pub duplicates_dropped: Result<u64, String>,
}

/// One look at the store: everything the dashboard draws. Equal snapshots draw the same
/// screen, so the dashboard redraws only when a new one differs.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The store's directory.
    pub dir: PathBuf,
    /// Events stored.
    pub total_events: u64,
    /// Smallest and largest event id.
    pub ids: Option<(EventId, EventId)>,
    /// Event rates by event time.
    pub rates: Rates,
    /// Events committed per second as this dashboard saw them arrive (`None` until two
    /// samples a second apart).
    pub appended_per_second: Option<f64>,
    /// Events per type, most first.
    pub by_type: Vec<(String, u64)>,
    /// The newest events that pass the tail's filter, newest first.
    pub tail: Vec<StoredEvent>,
    /// The filter the tail was read with.
    pub filter: TailFilter,
    /// Patterns per type, most first; `Err` says why they cannot be read.
    pub patterns: Result<Vec<(String, u64)>, String>,
    /// The newest stats record (its gauges), if any.
    pub gauges: Result<Option<SystemStats>, String>,
    /// Sound cursors and their lag, by name.
    pub cursors: Vec<CursorLag>,
    /// Damaged cursor files: name and what is wrong.
    pub cursors_damaged: Vec<(String, String)>,
    /// The store's files.
    pub storage: Storage,
    /// Whether a writer holds the lock.
    pub writer: Writer,
    /// Age of the writer's last commit, coarse (as written by `show::age`), and its time.
    pub last_commit: Option<(Timestamp, String)>,
    /// The last verify this dashboard ran, if any: its summary or the error that stopped it.
    pub verified: Option<Result<Verified, String>>,
    /// Whether a verify is running now.
    pub verifying: bool,
    /// What the read-only open warned about (segments or events missing, damaged manifest).
    pub warnings: Vec<String>,
    /// Why the last sample failed, if it did (the figures are then the previous ones).
    pub error: Option<String>,
}

/// Sound cursors with their lag, and damaged cursor files with what is wrong.
type Cursors = (Vec<CursorLag>, Vec<(String, String)>);

/// Keeps the store open and what was learned from earlier samples.
pub struct Collector {
    dir: PathBuf,
    store: Option<Store>,
    patterns: Option<Store>,
    stats: Option<Store>,
    /// The newest event id whose events are counted in `seconds` and `tail`.
    seen: Option<EventId>,
    /// Events per second of event time (seconds since the epoch) in the last hour.
    seconds: BTreeMap<i64, u64>,
    tail: VecDeque<StoredEvent>,
    /// The newest event id the tail has looked at (`None`: read it whole next time).
    tail_seen: Option<EventId>,
    filter: TailFilter,
    /// (when, total events) of recent samples, for the observed append rate.
    arrivals: VecDeque<(Instant, u64)>,
    /// The stats stream's newest id and the record read for it.
    gauges: Option<(EventId, Option<SystemStats>)>,
    /// Lag of each cursor, kept while neither its position nor the newest id moved.
    lags: BTreeMap<String, (u64, Option<EventId>, u64)>,
    verified: Option<Result<Verified, String>>,
    verifying: Option<std::sync::mpsc::Receiver<Result<Verified, String>>>,
    last: Option<Snapshot>,
}

impl Collector {
    /// Opens the store in `dir` read-only.
    pub fn open(dir: &Path) -> selflog::Result<Collector> {
        let store = Store::open_read_only(dir)?;
        Ok(Collector {
            dir: dir.to_path_buf(),
            store: Some(store),
            patterns: None,
            stats: None,
            seen: None,
            seconds: BTreeMap::new(),
            tail: VecDeque::new(),
            tail_seen: None,
            filter: TailFilter::default(),
            arrivals: VecDeque::new(),
            gauges: None,
            lags: BTreeMap::new(),
            verified: None,
            verifying: None,
            last: None,
        })
    }

    /// Sets the tail's filter; the next sample reads the tail again.
    pub fn set_filter(&mut self, filter: TailFilter) {
        if filter != self.filter {
            self.filter = filter;
            self.tail.clear();
            self.tail_seen = None;
        }
    }

    /// The tail's filter.
    pub fn filter(&self) -> &TailFilter {
        &self.filter
    }

    /// Starts `selflog::verify` on a thread of its own, unless one is running; its result
    /// appears in a later sample.
    pub fn start_verify(&mut self) {
        if self.verifying.is_some() {
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = self.dir.clone();
        let spawned = std::thread::Builder::new()
            .name("selflog-verify".into())
            .spawn(move || {
                let _ = tx.send(health::verify(&dir));
            });
        match spawned {
            Ok(_) => self.verifying = Some(rx),
            Err(e) => self.verified = Some(Err(format!("cannot start verify: {e}"))),
        }
    }

    /// Runs verify here and now (for `--once --verify`).
    pub fn verify_now(&mut self) {
        self.verified = Some(health::verify(&self.dir));
    }

    /// Looks at the store now. A failure (the store's directory gone, a damaged frame)
    /// does not end the dashboard: the previous figures stay, with the error, and the
    /// next sample opens the store again.
    pub fn sample(&mut self) -> Snapshot {
        if let Some(rx) = &self.verifying {
            match rx.try_recv() {
                Ok(result) => {
                    self.verified = Some(result);
                    self.verifying = None;
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    self.verified = Some(Err("verify stopped without a result".into()));
                    self.verifying = None;
                }
            }
        }
        let snap = match self.read() {
            Ok(s) => s,
            Err(e) => {
                // Open again next time: a store replaced or restored under us is seen anew.
                self.store = None;
                self.patterns = None;
                self.stats = None;
                let mut s = self.last.clone().unwrap_or_else(|| self.empty());
                s.error = Some(e.to_string());
                s.verified.clone_from(&self.verified);
                s.verifying = self.verifying.is_some();
                s
            }
        };
        self.last = Some(snap.clone());
        snap
    }

    fn empty(&self) -> Snapshot {
        Snapshot {
            dir: self.dir.clone(),
            total_events: 0,
            ids: None,
            rates: Rates {
                now: 0.0,
                minute: 0.0,
                hour: 0.0,
                events_last_hour: 0,
                per_minute: vec![0; 60],
            },
            appended_per_second: None,
            by_type: Vec::new(),
            tail: Vec::new(),
            filter: self.filter.clone(),
            patterns: Err("not read yet".into()),
            gauges: Ok(None),
            cursors: Vec::new(),
            cursors_damaged: Vec::new(),
            storage: storage(&selflog::StoreStats::default(), &[]),
            writer: Writer::Absent,
            last_commit: None,
            verified: None,
            verifying: false,
            warnings: Vec::new(),
            error: None,
        }
    }

    fn read(&mut self) -> selflog::Result<Snapshot> {
        if self.store.is_none() {
            self.store = Some(Store::open_read_only(&self.dir)?);
            self.seen = None;
        }
        let stats = self.store.as_ref().expect("opened just above").stats()?;
        let now = Timestamp::now();
        let last_id = stats.last_id;

        let fresh = self.seconds_update(now, last_id)?;
        if fresh {
            self.tail.clear();
            self.tail_seen = None;
        }
        self.tail_update(last_id)?;
        self.seen = last_id;
        let appended_per_second = self.arrivals_update(Instant::now(), stats.total_events);
        let rates = self.rates(now);

        let mut by_type: Vec<(String, u64)> = stats.events_by_type.clone().into_iter().collect();
        by_type.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));

        let segments = self.store.as_ref().expect("opened above").segments()?;
        let storage = storage(&stats, &segments);
        let last_commit = segments
            .last()
            .and_then(|s| health::last_commit(&s.path))
            .map(|t| {
                let age = SystemTime::now().duration_since(t).unwrap_or_default();
                let ts = Timestamp::from_secs_f64(
                    t.duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs_f64(),
                )
                .unwrap_or(Timestamp(0));
                (ts, super::show::age(age))
            });

        let (cursors, cursors_damaged) = self.cursors(last_id, &segments)?;
        let patterns = self.patterns();
        let gauges = self.gauges();
        let warnings = self
            .store
            .as_ref()
            .map(|s| {
                s.warnings()
                    .iter()
                    .map(|p| format!("{}: {}", p.path.display(), p.what))
                    .collect()
            })
            .unwrap_or_default();

        Ok(Snapshot {
            dir: self.dir.clone(),
            total_events: stats.total_events,
            ids: stats.first_id.zip(stats.last_id),
            rates,
            appended_per_second,
            by_type,
            tail: self.tail.iter().cloned().collect(),
            filter: self.filter.clone(),
            patterns,
            gauges,
            cursors,
            cursors_damaged,
            storage,
            writer: health::writer(&self.dir),
            last_commit,
            verified: self.verified.clone(),
            verifying: self.verifying.is_some(),
            warnings,
            error: None,
        })
    }

    /// Brings the per-second counts of the last hour up to `last_id`: all of the hour on
    /// the first sample (or after the ids went backwards: a store replaced), then only the
    /// events committed since. Returns whether it started afresh.
    fn seconds_update(
        &mut self,
        now: Timestamp,
        last_id: Option<EventId>,
    ) -> selflog::Result<bool> {
        let store = self.store.as_ref().expect("opened by read");
        let hour_ago = now.saturating_sub(HOUR);
        let fresh = match (self.seen, last_id) {
            (Some(seen), Some(last)) => seen > last,
            (Some(_), None) | (None, _) => true,
        };
        // Bounded by the newest id of the sample's statistics, so events committed
        // meanwhile are counted once, by the next sample.
        let upto = EventId(last_id.map_or(0, |l| l.0) + 1);
        let from = match self.seen {
            Some(seen) if !fresh => EventId(seen.0 + 1),
            _ => EventId(0),
        };
        if fresh {
            self.seconds.clear();
        }
        if from < upto {
            let counts = store
                .query()
                .ids(from, upto)
                .since(hour_ago)
                .histogram(Duration::from_secs(1))?;
            for (t, n) in counts {
                *self
                    .seconds
                    .entry(t.micros().div_euclid(1_000_000))
                    .or_insert(0) += n;
            }
        }
        let hour_ago_s = hour_ago.micros().div_euclid(1_000_000);
        self.seconds = self.seconds.split_off(&hour_ago_s);
        Ok(fresh)
    }

    /// Brings the tail up to `last_id`: read whole after a new filter (or a fresh start),
    /// else only the events committed since it last looked.
    fn tail_update(&mut self, last_id: Option<EventId>) -> selflog::Result<()> {
        let store = self.store.as_ref().expect("opened by read");
        if let Some(last) = last_id {
            let from = self.tail_seen.map_or(0, |s| s.0 + 1);
            if from <= last.0 {
                let newer = newest_by_id(store, &self.filter, from, last)?;
                for e in newer.into_iter().rev() {
                    self.tail.push_front(e);
                }
                self.tail.truncate(TAIL_LEN);
                self.tail_seen = Some(last);
            }
        }
        Ok(())
    }

    /// Records that `total` events were stored at `at`; returns the rate at which they
    /// arrived over the last [`APPENDED_WINDOW`], once samples span a second.
    fn arrivals_update(&mut self, at: Instant, total: u64) -> Option<f64> {
        self.arrivals.push_back((at, total));
        while self
            .arrivals
            .front()
            .is_some_and(|(t, _)| at.duration_since(*t) > APPENDED_WINDOW)
        {
            self.arrivals.pop_front();
        }
        match (self.arrivals.front(), self.arrivals.back()) {
            (Some((t0, n0)), Some((t1, n1)))
                if t1.duration_since(*t0) >= Duration::from_secs(1) =>
            {
                #[expect(clippy::cast_precision_loss, reason = "a rate for display")]
                let r = n1.saturating_sub(*n0) as f64 / t1.duration_since(*t0).as_secs_f64();
                Some(r)
            }
            _ => None,
        }
    }

    /// The rates and the sparkline from the per-second counts, as of `now`.
    fn rates(&self, now: Timestamp) -> Rates {
        let now_s = now.micros().div_euclid(1_000_000);
        let since = |d: Duration| -> u64 {
            let from = now.saturating_sub(d).micros().div_euclid(1_000_000);
            self.seconds.range(from..).map(|(_, n)| n).sum()
        };
        let events_last_hour = since(HOUR);
        let mut per_minute = vec![0u64; 60];
        for (&s, &n) in &self.seconds {
            // Minute 59 is the one ending now; events stamped ahead of now count there.
            let minutes_ago = (now_s - s).max(0) / 60;
            if let Ok(back) = usize::try_from(minutes_ago) {
                if back < 60 {
                    per_minute[59 - back] += n;
                }
            }
        }
        #[expect(clippy::cast_precision_loss, reason = "rates for display")]
        Rates {
            now: since(NOW_WINDOW) as f64 / NOW_WINDOW.as_secs_f64(),
            minute: since(MINUTE) as f64 / MINUTE.as_secs_f64(),
            hour: events_last_hour as f64 / HOUR.as_secs_f64(),
            events_last_hour,
            per_minute,
        }
    }

    /// Every cursor and its lag: stored events after its position, counted as
    /// `inspect cursors` counts them (whole segments by their counts, the one the cursor
    /// falls in by counting), and kept until the position or the newest id moves.
    fn cursors(
        &mut self,
        last_id: Option<EventId>,
        segments: &[selflog::SegmentInfo],
    ) -> selflog::Result<Cursors> {
        let store = self.store.as_ref().expect("opened by read");
        let list = store.cursors()?;
        let mut sound = Vec::new();
        for (name, id) in &list.sound {
            let pos = id.0;
            let lag = match self.lags.get(name) {
                Some(&(p, l, lag)) if p == pos && l == last_id => lag,
                _ => {
                    let mut n = 0;
                    for s in segments {
                        match s.ids {
                            Some((first, _)) if first.0 > pos => n += s.events,
                            Some((_, newest)) if newest.0 > pos => {
                                n += store
                                    .query()
                                    .ids(EventId(pos + 1), EventId(newest.0 + 1))
                                    .count()?;
                            }
                            _ => {}
                        }
                    }
                    self.lags.insert(name.clone(), (pos, last_id, n));
                    n
                }
            };
            sound.push(CursorLag {
                name: name.clone(),
                position: pos,
                lag,
            });
        }
        self.lags
            .retain(|name, _| list.sound.iter().any(|(n, _)| n == name));
        let damaged = list
            .damaged
            .iter()
            .map(|d| (d.name.clone(), d.error.to_string()))
            .collect();
        Ok((sound, damaged))
    }

    /// Patterns per type: the pattern stream's per-type counts.
    fn patterns(&mut self) -> Result<Vec<(String, u64)>, String> {
        let dir = self.dir.join(selflog::PATTERNS_DIR);
        let stats = sidecar(&mut self.patterns, &dir)?.stats();
        match stats {
            Ok(s) => {
                let mut v: Vec<(String, u64)> = s.events_by_type.into_iter().collect();
                v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                Ok(v)
            }
            Err(e) => {
                self.patterns = None;
                Err(e.to_string())
            }
        }
    }

    /// The newest stats record, read again only when the stats stream has a new newest id.
    fn gauges(&mut self) -> Result<Option<SystemStats>, String> {
        let dir = self.dir.join(selflog::STATS_DIR);
        let stats = sidecar(&mut self.stats, &dir)?.stats();
        let s = match stats {
            Ok(s) => s,
            Err(e) => {
                self.stats = None;
                return Err(e.to_string());
            }
        };
        let Some(newest) = s.last_id else {
            return Ok(None);
        };
        if let Some((id, record)) = &self.gauges {
            if *id == newest {
                return Ok(*record);
            }
        }
        let store = self.store.as_ref().expect("opened by read");
        let records = store
            .system_stats(s.last_timestamp, None)
            .map_err(|e| e.to_string())?;
        let record = records.into_iter().last();
        self.gauges = Some((newest, record));
        Ok(record)
    }
}

/// Ids the tail's first look back covers; each further look covers four times more.
const TAIL_SPAN_FIRST: u64 = 1_024;

/// The newest (highest-id: last committed) [`TAIL_LEN`] events with id in `from..=last`
/// that pass `filter`, newest first. Queries return events in time order, so this reads
/// id ranges backwards from `last`, each four times longer than the one before, until it
/// has enough: without a filter one range, with a rare one at most one pass over the
/// store (and later samples read only the ids committed since).
fn newest_by_id(
    store: &Store,
    filter: &TailFilter,
    from: u64,
    last: EventId,
) -> selflog::Result<Vec<StoredEvent>> {
    let mut out: Vec<StoredEvent> = Vec::new();
    let mut until = last.0.saturating_add(1);
    let mut span = TAIL_SPAN_FIRST;
    while out.len() < TAIL_LEN && until > from {
        let start = until.saturating_sub(span).max(from);
        let mut q = store.query().ids(EventId(start), EventId(until));
        if let Some(t) = &filter.text {
            q = q.text(t.clone());
        }
        if let Some(t) = &filter.event_type {
            q = q.event_type(t.clone());
        }
        let mut found: Vec<StoredEvent> = q.run()?.collect::<selflog::Result<_>>()?;
        found.sort_unstable_by_key(|e| std::cmp::Reverse(e.id));
        out.extend(found);
        until = start;
        span = span.saturating_mul(4);
    }
    out.truncate(TAIL_LEN);
    Ok(out)
}

/// The sidecar store in `dir`, opened read-only on first use.
fn sidecar<'a>(slot: &'a mut Option<Store>, dir: &Path) -> Result<&'a Store, String> {
    if slot.is_none() {
        if !dir.join(selflog::META_FILE).exists() {
            return Err("none yet (created when a writer first opens the store)".into());
        }
        *slot = Some(Store::open_read_only(dir).map_err(|e| e.to_string())?);
    }
    Ok(slot.as_ref().expect("set just above"))
}

/// The storage figures of the store's statistics and segment list.
fn storage(stats: &selflog::StoreStats, segments: &[selflog::SegmentInfo]) -> Storage {
    let (mut sealed_bytes, mut sealed_events, mut sealed_count) = (0u64, 0u64, 0usize);
    let (mut active_bytes, mut active_events) = (0u64, 0u64);
    for s in segments {
        if s.sealed {
            sealed_count += 1;
            sealed_bytes += s.file_len;
            sealed_events += s.events;
        } else {
            active_bytes += s.committed_len;
            active_events += s.events;
        }
    }
    #[expect(clippy::cast_precision_loss, reason = "ratios for display")]
    let per = |bytes: u64, events: u64| (events > 0).then(|| bytes as f64 / events as f64);
    Storage {
        disk_bytes: stats.disk_bytes,
        log_bytes: stats.log_bytes,
        segments: stats.segments,
        sealed_segments: sealed_count,
        bytes_per_event: stats.bytes_per_event(),
        bytes_per_event_sealed: per(sealed_bytes, sealed_events),
        bytes_per_event_active: per(active_bytes, active_events),
        compressed_events: stats.compressed_events,
        data_raw_bytes: stats.data_raw_bytes,
        data_stored_bytes: stats.data_stored_bytes,
        duplicates_dropped: match &stats.duplicates_unknown {
            Some(why) => Err(why.clone()),
            None => Ok(stats.duplicates_dropped),
        },
    }
}
