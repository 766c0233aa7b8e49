//! `selflog capture`: the capture daemon, linked in-process with the store.
//!
//! One capture thread owns the store's appends. It receives file events (`files.rs`, from
//! `notify`'s thread) and active-window changes (`window.rs`, from the X11 thread) through
//! one bounded channel, polls the process table (`processes.rs`) at most once a second, and
//! wakes for nothing else: held writes (`pending.rs`), the status line, the end. SIGINT or
//! SIGTERM (or `--duration`) ends the loop; what is held is emitted, a `system` `stopped`
//! event appended, the store flushed and closed, and the summary printed on stdout. The
//! store's maintenance thread writes a stats record every `stats_interval`.
//!
//! Exit status: 0 after a clean stop (a signal is the normal way to stop a daemon), 1 when
//! the store cannot be opened (another writer holds it: one `locked` line) or the config is
//! wrong.

mod config;
mod files;
mod log;
mod pending;
mod processes;
mod sink;
mod window;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use selflog::{Config, Store, Timestamp};
use serde_json::json;

use crate::interrupt::Interrupt;
use crate::{output, Failure, Outcome};

use files::{Files, Out};
use log::Log;
use sink::{Sink, SYSTEM_SOURCE};

/// Events the channel into the capture thread holds. Past it, `notify`'s events are
/// counted as an overflow and repaired by a rescan; the X11 thread waits.
/// `SELFLOG_CAPTURE_QUEUE_EVENTS` sets another size (tests make it tiny to reach that path).
const CHANNEL_EVENTS: usize = 32 * 1024;

/// How often held writes and unpaired renames are looked at while any are held.
const TICK: Duration = Duration::from_millis(100);

/// How often the live status line is redrawn.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// What the capture thread receives.
pub enum Input {
    /// A file event from `notify`, with when it was seen and what its path held then.
    File(
        Timestamp,
        notify::Result<notify::Event>,
        Option<files::Seen>,
    ),
    /// An active-window change, with when it was seen.
    Window(Timestamp, window::Change),
    /// SIGINT or SIGTERM arrived.
    Stop,
}

#[derive(clap::Args)]
#[command(
    after_help = "Stop it with Ctrl-C or SIGTERM: it commits what it holds and prints \
a summary (exit 0). Then: `selflog inspect list --type file_op`, `selflog inspect stats`. \
Config file: $XDG_CONFIG_HOME/selflog/capture.toml (README, section Capture)."
)]
pub struct Args {
    /// A directory to watch, with everything below it (repeatable; default: the config
    /// file's `watch`, else the home directory).
    #[arg(long, value_name = "DIR")]
    watch: Vec<PathBuf>,
    /// Never watch nor record paths matching GLOB (repeatable; added to the config's and
    /// the defaults: `.ssh`, `.gnupg`, `.git`, `node_modules`, `target`, caches...).
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// The config file (default: `$XDG_CONFIG_HOME/selflog/capture.toml`, if it exists).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Do not record file operations.
    #[arg(long)]
    no_files: bool,
    /// Do not record processes.
    #[arg(long)]
    no_processes: bool,
    /// Stop after SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    duration: Option<u64>,
}

/// Runs the daemon until a signal or the duration.
#[expect(
    clippy::too_many_lines,
    reason = "the daemon's life, start to summary, in order"
)]
pub fn run(store_dir: &Path, args: &Args) -> Outcome {
    let mut settings = config::load(&config::Overrides {
        config: args.config.as_deref(),
        watch: &args.watch,
        exclude: &args.exclude,
        no_files: args.no_files,
        no_processes: args.no_processes,
    })?;
    let store = open(store_dir, &settings)?;
    // The store's own files change with every commit: never capture them.
    if let Ok(dir) = std::fs::canonicalize(store_dir) {
        settings.exclude.add_dir(dir);
    }
    if let Ok(dir) = std::path::absolute(store_dir) {
        settings.exclude.add_dir(dir);
    }
    let previous_run = previous_run(&store);
    let interrupt = Interrupt::install()?;
    let channel_events = std::env::var("SELFLOG_CAPTURE_QUEUE_EVENTS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(CHANNEL_EVENTS);
    let (tx, rx) = mpsc::sync_channel::<Input>(channel_events);
    let stop_tx = tx.clone();
    interrupt.on_signal(move || {
        let _ = stop_tx.try_send(Input::Stop);
    })?;
    let started = Instant::now();
    let mut log = Log::new();
    let mut sink = Sink::new(&store);
    let mut out = Out {
        sink: &mut sink,
        log: &mut log,
    };

    let config::Settings {
        watch,
        exclude,
        redact_paths,
        redact_command_lines,
        ..
    } = settings;
    let mut files = if settings.files {
        match Files::start(
            watch.clone(),
            exclude,
            redact_paths,
            settings.coalesce,
            tx.clone(),
            &mut out,
        ) {
            Ok(f) => Some(f),
            Err(e) => return Err(Failure::hinted(format!("capture: {e}"), "try --no-files")),
        }
    } else {
        None
    };
    let mut procs = if settings.processes {
        match processes::Processes::start(settings.all_users, redact_command_lines.clone()) {
            Ok(p) => Some(p),
            Err(why) => {
                out.log.info(&why);
                None
            }
        }
    } else {
        None
    };
    let windows = if settings.windows {
        match window::start(tx.clone()) {
            Ok(display) => format!("x11 {display}"),
            Err(why) => {
                out.log
                    .info(&format!("window_change and app_focus not recorded: {why}"));
                format!("unavailable: {why}")
            }
        }
    } else {
        "off".to_owned()
    };
    drop(tx);
    let watched = files.as_ref().map_or(0, Files::watched_count);
    out.sink.system(
        out.log,
        "started",
        &json!({
            "pid": std::process::id(),
            "version": env!("CARGO_PKG_VERSION"),
            "watch": watch.iter().map(|w| w.to_string_lossy().into_owned()).collect::<Vec<_>>(),
            "directories_watched": watched,
            "max_user_watches": files.as_ref().and_then(|f| f.watch_max),
            "files": files.is_some(),
            "processes": procs.is_some(),
            "windows": windows,
            "coalesce_ms": settings.coalesce.as_millis() as u64,
            "config": settings.source.as_ref().map(|p| p.to_string_lossy().into_owned()),
            "previous_run": previous_run,
        }),
    );
    if !out.log.is_live() {
        out.log.info(&format!(
            "watching {watched} directories; stop with SIGTERM or Ctrl-C"
        ));
    }

    let deadline = args.duration.map(|s| started + Duration::from_secs(s));
    let mut next_poll = Instant::now() + settings.process_poll;
    let mut next_status = Instant::now();
    let mut next_progress = Instant::now() + settings.stats_interval;
    let mut rate_from = (Instant::now(), 0u64);
    let mut rate = 0.0f64;
    loop {
        let now = Instant::now();
        let mut wake = next_poll.min(next_status).min(next_progress);
        if files.as_ref().is_some_and(Files::needs_tick) {
            wake = wake.min(now + TICK);
        }
        if let Some(d) = deadline {
            wake = wake.min(d);
        }
        let first = match rx.recv_timeout(wake.saturating_duration_since(now)) {
            Ok(input) => Some(input),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // Everything queued is handled before the periodic work.
        let mut stop = false;
        for input in first
            .into_iter()
            .chain(std::iter::from_fn(|| rx.try_recv().ok()))
        {
            match input {
                Input::File(at, event, seen) => {
                    if let Some(f) = files.as_mut() {
                        f.handle(&mut out, at, event, seen);
                    }
                }
                Input::Window(seen, change) => {
                    window_event(&mut out, seen, &change, &redact_command_lines);
                }
                Input::Stop => stop = true,
            }
            if stop {
                break;
            }
        }
        if let Some(f) = files.as_mut() {
            f.check_overflow(&mut out);
            f.tick(&mut out);
        }
        if stop || interrupt.is_set() || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let now = Instant::now();
        if now >= next_poll {
            next_poll = now + settings.process_poll;
            if let Some(p) = procs.as_mut() {
                p.poll(&mut out);
            }
        }
        if now >= next_status {
            next_status = now + STATUS_EVERY;
            let stored = out.sink.stored();
            let secs = now.duration_since(rate_from.0).as_secs_f64();
            // Events per second over the last window of 5 s or more (until the first one
            // ends, since the start).
            if secs > 0.0 {
                #[expect(clippy::cast_precision_loss, reason = "a rate for display")]
                {
                    rate = (stored - rate_from.1) as f64 / secs;
                }
            }
            if secs >= 5.0 {
                rate_from = (now, stored);
            }
            let watched = files.as_ref().map_or(0, Files::watched_count);
            out.log.status(&format!(
                "capturing: {stored} events ({rate:.1}/s), {watched} directories watched, \
                 last: {} (Ctrl-C stops)",
                if out.sink.last.is_empty() {
                    "-"
                } else {
                    &out.sink.last
                }
            ));
        }
        if now >= next_progress {
            next_progress = now + settings.stats_interval;
            if !out.log.is_live() {
                let watched = files.as_ref().map_or(0, Files::watched_count);
                out.log.info(&format!(
                    "{} events stored, {watched} directories watched, {} errors",
                    out.sink.stored(),
                    out.sink.errors + files.as_ref().map_or(0, |f| f.errors)
                ));
            }
        }
    }

    // The end: what is held, the stopped event, then the store.
    if let Some(f) = files.as_mut() {
        f.finish(&mut out);
    }
    if let Some(p) = procs.as_mut() {
        p.poll(&mut out);
    }
    let file_errors = files.as_ref().map_or(0, |f| f.errors);
    out.sink.system(
        out.log,
        "stopped",
        &json!({
            "seconds": started.elapsed().as_secs(),
            "events": out.sink.stored() + 1,
            "errors": out.sink.errors + file_errors,
        }),
    );
    out.sink.finish(out.log);
    out.log.clear();
    let summary = Summary {
        seconds: started.elapsed().as_secs_f64(),
        by_type: out.sink.stored_by_type.clone(),
        duplicates: out.sink.duplicates,
        queue_full_lost: out.sink.queue_full_lost,
        errors: out.sink.errors + file_errors,
        coalesced: files.as_ref().map_or(0, Files::coalesced_writes),
        watched: files.as_ref().map_or(0, Files::watched_count),
        unwatched: files.as_ref().map_or(0, |f| f.unwatched),
        watch_max: files.as_ref().and_then(|f| f.watch_max),
        overflows: files.as_ref().map_or(0, |f| f.overflows),
        processes: procs.as_ref().map_or(0, processes::Processes::count),
    };
    drop(files);
    drop(sink);
    store.flush()?;
    let stats = store.stats()?;
    store.close()?;
    summary.print(store_dir, stats.total_events, stats.duplicates_dropped)?;
    Ok(0)
}

/// Opens the store for the daemon: commits every `commit` interval, waits at most
/// [`sink::QUEUE_WAIT_MAX`] for queue room, a stats record every `stats_interval`.
fn open(store_dir: &Path, settings: &config::Settings) -> Result<Store, Failure> {
    let mut cfg = Config::default();
    cfg.batch_timeout = settings.commit;
    cfg.queue_wait_max = sink::QUEUE_WAIT_MAX;
    cfg.stats_interval = settings.stats_interval;
    match crate::open_writable(store_dir, cfg) {
        Ok(s) => Ok(s),
        Err(f) => Err(locked(store_dir).unwrap_or(f)),
    }
}

/// The one line for a store another process writes, if that is why the open failed.
fn locked(store_dir: &Path) -> Option<Failure> {
    match Store::open(store_dir, Config::default()) {
        Err(selflog::Error::Locked { pid, .. }) => Some(Failure::hinted(
            format!(
                "store {} is locked: process {pid} is writing it (another capture?)",
                store_dir.display()
            ),
            format!(
                "one writer at a time: stop it first (`kill -TERM {pid}`); inspect commands work \
                 while it runs"
            ),
        )),
        _ => None,
    }
}

/// How the previous capture on this store ended, from its last `system` event.
fn previous_run(store: &Store) -> &'static str {
    let newest = store
        .query()
        .event_type("system")
        .source(SYSTEM_SOURCE)
        .limit(1)
        .run()
        .ok()
        .and_then(|mut events| events.next())
        .and_then(Result::ok);
    match newest {
        None => "none",
        Some(e) if e.action.as_deref() == Some("stopped") => "stopped",
        Some(_) => "ended without stopping (killed or crashed)",
    }
}

fn window_event(
    out: &mut Out<'_, '_>,
    seen: Timestamp,
    change: &window::Change,
    redact: &config::Redactor,
) {
    let t = out.sink.stamp(seen);
    match change {
        window::Change::Focus { now, previous } => {
            let data = json!({
                "app": now.app,
                "pid": now.pid,
                "window_id": now.window_id,
                "window_title": redact.apply(&now.title),
                "previous_app": previous.as_ref().map(|p| p.app.clone()),
            });
            out.sink
                .append(out.log, t, "app_focus", "focused", &now.app, &data);
        }
        window::Change::Title {
            now,
            previous_title,
        } => {
            let data = json!({
                "app": now.app,
                "pid": now.pid,
                "window_id": now.window_id,
                "title": redact.apply(&now.title),
                "previous_title": redact.apply(previous_title),
            });
            out.sink.append(
                out.log,
                t,
                "window_change",
                "title_changed",
                &now.app,
                &data,
            );
        }
    }
}

/// What the summary says.
struct Summary {
    seconds: f64,
    by_type: std::collections::BTreeMap<String, u64>,
    duplicates: u64,
    queue_full_lost: u64,
    errors: u64,
    coalesced: u64,
    watched: usize,
    unwatched: u64,
    watch_max: Option<u64>,
    overflows: u64,
    processes: usize,
}

impl Summary {
    fn print(&self, store_dir: &Path, total: u64, dropped_total: u64) -> Result<(), Failure> {
        let stored: u64 = self.by_type.values().sum();
        let types: Vec<String> = self
            .by_type
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        let text = format!(
            "captured {stored} events in {:.1} s: {}\n\
             dropped duplicates: {} (store total {dropped_total}); writes coalesced: {}\n\
             watches: {} directories{}{}; kernel or queue overflows: {}; processes known: {}\n\
             errors: {}; events lost to a full queue: {}\n\
             store {} now holds {total} events\n\
             \nnext: selflog --store {} inspect list --type file_op    (also: inspect stats, \
             inspect system-stats)\n",
            self.seconds,
            if types.is_empty() {
                "none".to_owned()
            } else {
                types.join(", ")
            },
            self.duplicates,
            self.coalesced,
            self.watched,
            self.watch_max
                .map_or_else(String::new, |m| format!(" (limit {m} per user)")),
            if self.unwatched > 0 {
                format!(", {} not watched (limit reached)", self.unwatched)
            } else {
                String::new()
            },
            self.overflows,
            self.processes,
            self.errors,
            self.queue_full_lost,
            store_dir.display(),
            store_dir.display(),
        );
        std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| output::write_err(&e))?;
        Ok(())
    }
}
