//! The maintenance thread (`selflog-maintenance`, one per writable open): retention, stats
//! records, and the writing of the pattern and stats streams.
//!
//! Each sidecar keeps the event log's machinery (a bounded queue with its dedup window, a
//! `Writer` owning the active segment), but its writer has no thread: this one pumps it
//! (`Writer::pump`: due batches; a sync every batch timeout in `Buffered`, each batch in
//! `Sync`; never a sync thread). Recording queues on the caller's thread (the id is known at
//! once) and wakes this thread; `flush` waits until it has written what was queued before.
//! It sleeps until a wake-up, a sidecar batch or sync, a stats record (`stats_interval`) or
//! retention (`cleanup_interval`, log and sidecars) is due. A failure poisons the store.

mod records;
mod sidecar;
mod stats;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::event::{Event, Timestamp};
use crate::retention::{segment_infos, Deletion};
use crate::stream::Stream;
use crate::writer::Shared;

pub(crate) use records::{pattern_event, pattern_subject, sidecar_config, to_pattern, to_stats};
pub use records::{NewPattern, Pattern, SystemStats, PATTERNS_DIR, STATS_DIR};
pub(crate) use sidecar::{Pumps, Sidecar, Sidecars};

use stats::Rate;

/// The maintenance thread of a writable open, and what its callers share with it.
pub(crate) struct Maintenance {
    state: Arc<State>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct State {
    /// The store's directory.
    dir: PathBuf,
    /// The event log's queue: its configuration, and where a failure here is recorded.
    main: Arc<Shared>,
    /// The event log's reader view, for retention and stats.
    stream: Arc<Stream>,
    sidecars: Option<Arc<Sidecars>>,
    wake: Mutex<Wake>,
    wakeup: Condvar,
    /// Serialises retention runs (this thread's, `Store::retain`'s, the open's).
    retention: Mutex<()>,
    /// Active embryos and average fitness of the last stats record the application
    /// recorded, carried by this thread's records (0 before any).
    gauges: Mutex<(u64, f64)>,
}

#[derive(Default)]
struct Wake {
    stop: bool,
    /// Records were queued or a flush asked for them since the thread last looked.
    work: bool,
}

impl Maintenance {
    /// Starts the maintenance thread of the store in `dir`, whose event log is `main` and
    /// `stream`, handing it the writers of the sidecars, if the store has them.
    pub fn start(
        dir: &Path,
        main: Arc<Shared>,
        stream: Arc<Stream>,
        sidecars: Option<(Arc<Sidecars>, Pumps)>,
    ) -> Result<Maintenance> {
        let (sidecars, pumps) = sidecars.unzip();
        let state = Arc::new(State {
            dir: dir.to_path_buf(),
            main,
            stream,
            sidecars,
            wake: Mutex::new(Wake::default()),
            wakeup: Condvar::new(),
            retention: Mutex::new(()),
            gauges: Mutex::new((0, 0.0)),
        });
        let thread_state = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("selflog-maintenance".into())
            .spawn(move || run(&thread_state, pumps))
            .map_err(|e| Error::io("start maintenance thread for", dir, e))?;
        Ok(Maintenance {
            state,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues a pattern's event in the pattern stream; returns the pattern's id (the
    /// original's, when it is a duplicate).
    pub fn record_pattern(&self, event: &Event) -> Result<u64> {
        let sc = self.state.sidecars()?;
        let id = sc.patterns.append(event)?.id();
        self.wake();
        Ok(id.0)
    }

    /// Queues a stats record the application took; its gauges are carried by the records
    /// this thread takes from now on.
    pub fn record_stats(&self, s: &SystemStats) -> Result<()> {
        let sc = self.state.sidecars()?;
        let event = records::stats_event(s)?;
        sc.stats.append(&event)?;
        *self.state.gauges.lock() = (s.active_embryos, s.avg_fitness);
        self.wake();
        Ok(())
    }

    /// The sidecars' part of `Store::flush`: returns once every record queued before the
    /// call is written (`Buffered`) or synced (`Sync`) by this thread.
    pub fn flush(&self) -> Result<()> {
        let Some(sc) = &self.state.sidecars else {
            return Ok(());
        };
        let mut targets = [0; 2];
        for (target, s) in targets.iter_mut().zip(sc.both()) {
            let mut q = s.log()?.queue.lock();
            *target = q.next_id - 1;
            q.flush_target = q.flush_target.max(*target);
        }
        self.wake();
        for (target, s) in targets.into_iter().zip(sc.both()) {
            let log = s.log()?;
            log.wait_written(target)?;
            log.save_duplicates(&s.dir)?;
        }
        Ok(())
    }

    /// Runs retention over the event log now (`Store::retain`).
    pub fn retain(&self, dry_run: bool) -> Result<Vec<Deletion>> {
        let _serial = self.state.retention.lock();
        run_retention(
            &self.state.dir,
            &self.state.stream,
            &self.state.main.config,
            dry_run,
        )
    }

    /// Runs retention over both sidecars now (at open).
    pub fn retain_sidecars(&self) -> Result<()> {
        let _serial = self.state.retention.lock();
        self.state.retain_sidecars()
    }

    /// Stops the thread: it writes and syncs what the sidecars' queues hold, refusing new
    /// records from then on, and ends. A failure is recorded as poison, as always.
    pub fn stop(&self) {
        self.state.wake.lock().stop = true;
        self.state.wakeup.notify_all();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }

    fn wake(&self) {
        let mut w = self.state.wake.lock();
        if !w.work {
            w.work = true;
            self.state.wakeup.notify_one();
        }
    }
}

impl State {
    fn sidecars(&self) -> Result<&Sidecars> {
        self.sidecars.as_deref().ok_or_else(|| {
            Error::InvalidConfig("the store was opened without pattern and stats streams".into())
        })
    }

    /// Retention over both sidecars, each with its own configuration; the caller holds
    /// the retention mutex.
    fn retain_sidecars(&self) -> Result<()> {
        if let Some(sc) = &self.sidecars {
            for s in sc.both() {
                run_retention(&s.dir, &s.stream, &s.log()?.config, false)?;
            }
        }
        Ok(())
    }

    /// Queues a stats record taken now, and asks for it to be written at once. This
    /// thread alone drains the queue, so it must not wait for room in it: while the queue
    /// is half full (an import of stats records) the record is skipped, and should the
    /// queue fill up all the same, the wait ends with `QueueFull`, which skips it too.
    fn take_stats(&self, rate: &mut Rate) -> Result<()> {
        let sc = self.sidecars()?;
        let log = sc.stats.log()?;
        if log.queue.lock().events.len() >= log.config.queue_events_max / 2 {
            return Ok(());
        }
        let gauges = *self.gauges.lock();
        let record = stats::measure(&self.dir, &self.stream, rate, gauges)?;
        let id = match sc.stats.append(&records::stats_event(&record)?) {
            Ok(appended) => appended.id(),
            Err(Error::QueueFull { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut q = log.queue.lock();
        q.flush_target = q.flush_target.max(id.0);
        Ok(())
    }
}

/// The thread's body. Never panics out: a failure or a panic is turned into poison of
/// the store and both sidecars. Ends with both sidecars' writers stopped.
fn run(state: &State, mut pumps: Option<Pumps>) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_loop(state, pumps.as_mut())
    }));
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(why)) => Some(why),
        Err(_) => Some("panicked (a bug: please report it)".to_owned()),
    };
    let logs = state
        .sidecars
        .iter()
        .flat_map(|sc| sc.both())
        .filter_map(|s| s.log.as_deref());
    if let Some(why) = failure {
        let why = format!("maintenance thread: {why}");
        state.main.poison(why.clone());
        for log in logs.clone() {
            log.poison(why.clone());
        }
    }
    for log in logs {
        log.queue.lock().shutdown = true;
        log.status.lock().stopped = true;
        log.progress.notify_all();
        log.space.notify_all();
    }
}

fn run_loop(state: &State, mut pumps: Option<&mut Pumps>) -> std::result::Result<(), String> {
    let cfg = &state.main.config;
    let mut next_retention = Instant::now() + cfg.cleanup_interval;
    let mut next_stats = Instant::now() + cfg.stats_interval;
    let mut rate = Rate::start(&state.stream);
    let mut pump_at: Option<Instant> = None;
    loop {
        let stop = {
            let mut w = state.wake.lock();
            if !w.stop && !w.work {
                let mut wake_at = next_retention;
                if pumps.is_some() {
                    wake_at = wake_at.min(next_stats);
                }
                if let Some(t) = pump_at {
                    wake_at = wake_at.min(t);
                }
                state.wakeup.wait_until(&mut w, wake_at);
            }
            w.work = false;
            w.stop
        };
        if stop {
            if let Some(p) = pumps {
                for log in state.sidecars.iter().flat_map(|sc| sc.both()) {
                    if let Some(log) = &log.log {
                        log.queue.lock().shutdown = true;
                    }
                }
                p.pump()?;
            }
            return Ok(());
        }
        let now = Instant::now();
        if now >= next_retention {
            next_retention = now + cfg.cleanup_interval;
            let _serial = state.retention.lock();
            run_retention(&state.dir, &state.stream, cfg, false)
                .and_then(|_| state.retain_sidecars())
                .map_err(|e| format!("retention failed: {e}"))?;
        }
        if let Some(p) = pumps.as_deref_mut() {
            if now >= next_stats {
                next_stats = now + cfg.stats_interval;
                state
                    .take_stats(&mut rate)
                    .map_err(|e| format!("stats record failed: {e}"))?;
            }
            pump_at = p.pump()?;
        }
    }
}

/// Runs retention over the stream in `dir` with the policy of `config`.
fn run_retention(
    dir: &Path,
    stream: &Stream,
    config: &Config,
    dry_run: bool,
) -> Result<Vec<Deletion>> {
    let policy = crate::retention::Policy {
        age: config.retention_age,
        bytes_max: config.retention_bytes_max,
        dedup_window: config.dedup_window as u64,
    };
    let chosen = crate::retention::choose(&segment_infos(stream)?, &policy, Timestamp::now());
    if !dry_run {
        crate::retention::delete(dir, &chosen)?;
        let gone: Vec<u32> = chosen.iter().map(|(s, _)| s.segment_id).collect();
        stream.forget(&gone);
    }
    Ok(chosen
        .into_iter()
        .map(|(segment, reason)| Deletion { segment, reason })
        .collect())
}
