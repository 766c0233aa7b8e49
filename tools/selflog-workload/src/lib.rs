//! Realistic, deterministic streams of desktop-activity events.
//!
//! [`Workload`] yields the events a capture daemon appends over weeks of one person's use
//! of a Mac: a dozen event types with skewed frequencies (one about 30% of events, one
//! about 0.1%), about 300 sources (applications, system services and project folders), an
//! action per type (none for about 5% of events), and JSON data objects with realistic
//! fields whose text has a median of about 300 bytes, about 2% of them large (2 to 20 KiB
//! of clipboard text or file lists); screen-lock events (0.45%) carry no data. Timestamps
//! rise with the position in the stream across the configured span; a configured share of
//! events arrives late (out of order) and another share repeats a recent event exactly, as
//! a daemon re-sending after a crash does. Some events mention Chrome in varying case
//! (sources, titles, URLs, text), for case-insensitive search to find.
//!
//! The stream is a pure function of its [`WorkloadConfig`] (seed, start, span, shares and
//! count): the generator carries its own PRNG (splitmix64) instead of using a random number
//! crate, so a dependency upgrade cannot change the events. `selflog demo`, the benchmarks
//! and `tools/selflog-gen` all draw their events from here, so their figures describe the
//! same workload.

use std::fmt;
use std::time::Duration;

use serde_json::value::RawValue;

/// One generated event: the fields a capture daemon hands to `selflog::Store::append`.
///
/// The generator does not depend on the store (the store's benchmarks and tests depend on
/// the generator), so it yields this plain record; a consumer builds its `selflog::Event`
/// from the fields, which moves them and checks nothing twice: `data` is already parsed
/// JSON text.
#[derive(Debug, Clone)]
pub struct Record {
    /// When the event happened, in microseconds since 1970 (UTC).
    pub timestamp_us: i64,
    /// What kind of event (`file_op`, `window_change`, ...).
    pub event_type: String,
    /// What happened (`modified`, `focused`, ...), absent for about 5% of events.
    pub action: Option<String>,
    /// Which application, service or folder it came from.
    pub source: String,
    /// A JSON object as text, absent for screen-lock events.
    pub data: Option<Box<RawValue>>,
}

impl Record {
    /// The data's JSON text, if any.
    pub fn data_text(&self) -> Option<&str> {
        self.data.as_deref().map(RawValue::get)
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Record) -> bool {
        self.timestamp_us == other.timestamp_us
            && self.event_type == other.event_type
            && self.action == other.action
            && self.source == other.source
            && self.data_text() == other.data_text()
    }
}

impl Eq for Record {}

/// The current wall-clock time in microseconds since 1970.
pub fn now_us() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
}

/// Every event type the generator produces, with its weight: how many of every 10 000
/// generated (not duplicated) events have that type. `window_change` is the common type
/// (30%) and `usb_device` the rare one (0.1%).
pub const EVENT_TYPE_WEIGHTS: [(&str, u32); 12] = [
    ("window_change", 3000),
    ("app_focus", 1800),
    ("file_op", 1500),
    ("browser_tab", 1200),
    ("network", 700),
    ("process", 550),
    ("clipboard", 400),
    ("notification", 350),
    ("app_launch", 250),
    ("idle", 150),
    ("screen_lock", 90),
    ("usb_device", 10),
];

/// Sum of the weights in [`EVENT_TYPE_WEIGHTS`].
const WEIGHT_TOTAL: u32 = 10_000;

const _: () = {
    let mut sum = 0;
    let mut i = 0;
    while i < EVENT_TYPE_WEIGHTS.len() {
        sum += EVENT_TYPE_WEIGHTS[i].1;
        i += 1;
    }
    assert!(sum == WEIGHT_TOTAL);
};

/// The default span: 40 days, ten more than the default retention age, so a store filled
/// from the default workload has segments for retention to delete.
const SPAN_DEFAULT: Duration = Duration::from_secs(40 * 24 * 3600);

/// How many of the most recent generated events a duplicate may copy.
const RECENT_COUNT_MAX: usize = 1000;

/// Smallest and largest data text of a large event, in bytes.
const LARGE_LEN_MIN: usize = 2 * 1024;
const LARGE_LEN_MAX: usize = 20 * 1024;

/// Percent of clipboard events and of file operations that are large. Clipboard events are
/// 4% and file operations 15% of events, so each contributes 1% of all events.
const CLIPBOARD_LARGE_PERCENT: u64 = 25;
const FILE_OP_LARGE_PER_MILLE: u64 = 67;

/// The user whose home folder the generated paths live in.
const USER: &str = "alice";

/// What to generate. The stream is a pure function of these fields.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadConfig {
    /// Seed of the generator: the same seed (with the same other fields) gives the same
    /// events, and different seeds give different ones.
    pub seed: u64,
    /// Fraction (0 to 1) of events that are exact copies (timestamp, type, action, source
    /// and data) of one of the last 1000 generated events. Default 0.01. Values outside
    /// 0..=1 are clamped; NaN counts as 0.
    pub duplicate_share: f64,
    /// Fraction (0 to 1) of events that arrive late: their timestamp lies up to
    /// `late_max` before the newest timestamp generated so far, so it is earlier than the
    /// event before it. Default 0.02. Values outside 0..=1 are clamped; NaN counts as 0.
    pub late_share: f64,
    /// How late a late event arrives at most. Default 5 s.
    pub late_max: Duration,
    /// The earliest timestamp generated, in microseconds since 1970 (UTC). Default: 40
    /// days before now.
    pub start_us: i64,
    /// Timestamps lie in `start_us..start_us + span` (all at `start_us` if the span is zero), spread
    /// evenly over it. Default 40 days.
    pub span: Duration,
    /// How many events the stream yields, duplicates included. Default 100 000.
    pub count: u64,
}

impl Default for WorkloadConfig {
    fn default() -> WorkloadConfig {
        WorkloadConfig {
            seed: 0x5E1F_106E,
            duplicate_share: 0.01,
            late_share: 0.02,
            late_max: Duration::from_secs(5),
            start_us: now_us().saturating_sub(micros(SPAN_DEFAULT)),
            span: SPAN_DEFAULT,
            count: 100_000,
        }
    }
}

/// An iterator over exactly `config.count` generated events; see the module documentation.
#[derive(Clone)]
pub struct Workload {
    config: WorkloadConfig,
    rng: Rng,
    /// Index of the next event in the stream.
    position: u64,
    start_us: i64,
    span_us: i64,
    late_max_us: i64,
    duplicate_threshold: u64,
    late_threshold: u64,
    /// The newest timestamp generated so far; late events lie up to `late_max` before it.
    frontier_us: i64,
    /// The last generated events, oldest overwritten first, for duplicates to copy.
    recent: Vec<Record>,
    recent_next: usize,
    /// `/Users/alice/<root>/<project>`: the folder sources of file operations.
    folders: Vec<String>,
}

impl fmt::Debug for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workload")
            .field("config", &self.config)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl Workload {
    /// A stream generating the events `config` describes.
    #[must_use]
    pub fn new(config: WorkloadConfig) -> Workload {
        let span_us = micros(config.span);
        let mut folders =
            Vec::with_capacity(FOLDER_ROOTS.len() * PROJECTS.len() * PROJECT_SUFFIXES.len());
        for project in PROJECTS {
            for suffix in PROJECT_SUFFIXES {
                for root in FOLDER_ROOTS {
                    folders.push(format!("/Users/{USER}/{root}/{project}{suffix}"));
                }
            }
        }
        Workload {
            rng: Rng(config.seed),
            position: 0,
            start_us: config.start_us,
            span_us,
            late_max_us: micros(config.late_max),
            duplicate_threshold: probability_threshold(config.duplicate_share),
            late_threshold: probability_threshold(config.late_share),
            frontier_us: config.start_us,
            recent: Vec::with_capacity(
                RECENT_COUNT_MAX.min(usize::try_from(config.count).unwrap_or(RECENT_COUNT_MAX)),
            ),
            recent_next: 0,
            folders,
            config,
        }
    }

    /// The on-time timestamp of the event at `position`: within the position's even share
    /// of the span, so on-time timestamps never decrease and stay before `start + span`.
    fn on_time_us(&mut self, position: u64) -> i64 {
        let offset = |p: u64| -> i64 {
            let count = i128::from(self.config.count.max(1));
            let offset = i128::from(self.span_us) * i128::from(p) / count;
            i64::try_from(offset).expect("position <= count, so the offset is at most span_us")
        };
        let base = offset(position);
        let step = offset(position + 1) - base;
        let jitter = if step > 0 {
            i64::try_from(self.rng.below(step.unsigned_abs())).expect("below(step) < step, an i64")
        } else {
            0
        };
        self.start_us.saturating_add(base + jitter)
    }

    /// The timestamp of the next generated event: on time, or late behind the frontier.
    fn timestamp_us(&mut self, position: u64) -> i64 {
        let on_time = self.on_time_us(position);
        let room = self
            .late_max_us
            .min(self.frontier_us.saturating_sub(self.start_us));
        if room > 0 && position > 0 && self.rng.chance(self.late_threshold) {
            let back = 1 + self.rng.below(room.unsigned_abs());
            let back = i64::try_from(back).expect("at most room, an i64");
            return self.frontier_us - back;
        }
        self.frontier_us = self.frontier_us.max(on_time);
        on_time
    }

    /// Generates a new event (not a duplicate) with the given timestamp.
    fn generate(&mut self, timestamp_us: i64) -> Record {
        let pick = self.rng.below(u64::from(WEIGHT_TOTAL));
        let mut kind = 0;
        let mut acc = 0;
        for (i, (_, weight)) in EVENT_TYPE_WEIGHTS.iter().enumerate() {
            acc += u64::from(*weight);
            if pick < acc {
                kind = i;
                break;
            }
        }
        let mut out = String::with_capacity(512);
        let (action, source) = match kind {
            0 => self.window_change(&mut out),
            1 => self.app_focus(&mut out),
            2 => self.file_op(&mut out),
            3 => self.browser_tab(&mut out),
            4 => self.network(&mut out),
            5 => self.process(&mut out),
            6 => self.clipboard(&mut out),
            7 => self.notification(&mut out),
            8 => self.app_launch(&mut out),
            9 => self.idle(&mut out),
            10 => self.screen_lock(&mut out),
            _ => self.usb_device(&mut out),
        };
        let data = if out.is_empty() {
            None
        } else {
            Some(RawValue::from_string(out).expect("the generator writes valid JSON"))
        };
        Record {
            timestamp_us,
            event_type: EVENT_TYPE_WEIGHTS[kind].0.to_owned(),
            action: action.map(str::to_owned),
            source,
            data,
        }
    }

    fn remember(&mut self, event: &Record) {
        if self.recent.len() < RECENT_COUNT_MAX {
            self.recent.push(event.clone());
        } else {
            self.recent[self.recent_next] = event.clone();
            self.recent_next = (self.recent_next + 1) % RECENT_COUNT_MAX;
        }
    }

    // Event types. Each writes the data object into `out` (or leaves it empty for no
    // data) and returns the action and the source.

    fn window_change(&mut self, out: &mut String) -> (Option<&'static str>, String) {
        let app = self.app();
        let action = self.rng.pick(&[
            "title_changed",
            "title_changed",
            "title_changed",
            "opened",
            "closed",
            "moved",
            "resized",
        ]);
        let title = self.window_title(app);
        let previous = self.window_title(app);
        let mut o = Obj::new(out);
        o.str("app", app.name);
        o.str("bundle_id", app.bundle_id);
        o.uint("pid", app.pid());
        o.uint("window_id", self.rng.range(100, 30_000));
        o.str("title", &title);
        o.str("previous_title", &previous);
        let mut b = o.object("bounds");
        b.uint("x", self.rng.range(0, 800));
        b.uint("y", self.rng.range(25, 400));
        b.uint("width", self.rng.range(400, 2560));
        b.uint("height", self.rng.range(300, 1440));
        b.finish();
        let display = self.rng.index(DISPLAYS.len());
        o.uint("display", display as u64 + 1);
        o.str("display_uuid", DISPLAYS[display]);
        o.uint("space", self.rng.range(1, 4));
        o.uint("layer", 0);
        o.bool("on_screen", true);
        o.bool("fullscreen", self.rng.percent(8));
        o.finish();
        (Some(action), app.name.to_owned())
    }

    fn app_focus(&mut self, out: &mut String) -> (Option<&'static str>, String) {
        let app = self.app();
        let previous = self.app();
        let title = self.window_title(app);
        let mut o = Obj::new(out);
        o.str("app", app.name);
        o.str("bundle_id", app.bundle_id);
        o.uint("pid", app.pid());
        o.str("window_title", &title);
        o.str("previous_app", previous.name);
        o.str("previous_bundle_id", previous.bundle_id);
        o.uint("previous_focus_ms", self.rng.range(200, 900_000));
        o.uint("window_id", self.rng.range(100, 30_000));
        o.uint("space", self.rng.range(1, 4));
        o.str("activation_policy", "regular");
        o.str(
            "input",
            self.rng
                .pick(&["click", "cmd_tab", "cmd_tab", "dock", "spotlight"]),
        );
        o.finish();
        let action = self
            .rng
            .pick(&["focused", "focused", "focused", "unfocused"]);
        (Some(action), app.name.to_owned())
    }

    fn file_op(&mut self, out: &mut String) -> (Option<&'static str>, String) {
        let folder = self.folder();
        let source = self.folders[folder].clone();
        let editor = self.app();
        if self.rng.below(1000) < FILE_OP_LARGE_PER_MILLE {
            // A batch operation (a folder moved to the trash, an archive unpacked) lists
            // every path it touched.
            let action = self.rng.pick(&["deleted", "moved", "created"]);
            // Room for the closing `],"count":N}` after the last path.
            let target = self.rng.range_usize(LARGE_LEN_MIN + 150, LARGE_LEN_MAX) - 20;
            let mut o = Obj::new(out);
            o.str("path", &source);
            o.bool("is_directory", true);
            o.str("app", "Finder");
            o.uint("pid", APPS[4].pid());
            let mut paths = o.array("paths");
            let mut count = 0;
            loop {
                let file = self.file_path(&source);
                if paths.out.len() + escaped_len(&file) + 1 > target {
                    break;
                }
                paths.str(&file);
                count += 1;
            }
            paths.finish();
            o.uint("count", count);
            o.finish();
            return (Some(action), source);
        }
        let action = self.rng.pick(&[
            "modified", "modified", "modified", "modified", "created", "created", "deleted",
            "renamed", "moved",
        ]);
        let path = self.file_path(&source);
        let mut o = Obj::new(out);
        o.str("path", &path);
        if action == "renamed" || action == "moved" {
            let old = self.file_path(&source);
            o.str("old_path", &old);
        }
        let name = path.rsplit('/').next().unwrap_or(&path);
        o.str("name", name);
        o.str("extension", name.rsplit('.').next().unwrap_or(""));
        o.uint("size", self.size());
        o.uint("inode", self.rng.range(1_000_000, 99_999_999));
        o.str("mode", self.rng.pick(&["0644", "0644", "0600", "0755"]));
        o.uint("uid", 501);
        o.uint("gid", 20);
        o.bool("is_directory", false);
        o.uint("fs_event_id", self.rng.range(10_000_000, 90_000_000_000));
        let mut flags = o.array("flags");
        flags.str(match action {
            "modified" => "ItemModified",
            "created" => "ItemCreated",
            "deleted" => "ItemRemoved",
            _ => "ItemRenamed",
        });
        flags.str("ItemIsFile");
        flags.finish();
        o.str("app", editor.name);
        o.uint("pid", editor.pid());
        o.str("volume", "Macintosh HD");
        o.finish();
        (Some(action), source)
    }

    fn browser_tab(&mut self, out: &mut String) -> (Option<&'static str>, String) {
        let app = &APPS[self.rng.weighted(&BROWSERS)];
        let (url, title, domain) = self.page();
        let action = self.rng.pick(&[
            "navigated",
            "navigated",
            "switched",
            "switched",
            "opened",
            "closed",
            "reloaded",
        ]);
        let mut o = Obj::new(out);
        o.str("browser", app.name);
        o.str("bundle_id", app.bundle_id);
        o.uint("window_id", self.rng.range(1, 6));
        o.uint("tab_id", self.rng.range(1, 4000));
        o.uint("tab_index", self.rng.range(0, 30));
        o.str("url", &url);
        o.str("title", &title);
        o.str("domain", domain);
        o.bool("incognito", self.rng.percent(3));
        o.bool("audible", self.rng.percent(5));
        o.uint("tab_count", self.rng.range(1, 60));
        o.finish();
        (Some(action), app.name.to_owned())
    }

    fn network(&mut self, out: &mut String) -> (Option<&'static str>, String) {
        if self.rng.percent(25) {
            let action = self.rng.pick(&["connected", "disconnected", "changed"]);
            let mut o = Obj::new(out);
            o.str("interface", "en0");
            o.str("type", "wifi");
            o.str(
                "ssid",
                self.rng
                    .pick(&["HomeNet-5G", "Acme Corp", "Acme Guest", "Blue Bottle"]),
            );
            o.str("bssid", &self.hex_pairs(6, ':'));
            o.int(
                "rssi_dbm",
                -i64::try_from(self.rng.range(40, 85)).unwrap_or(60),
            );
            o.uint("channel", self.rng.pick(&[1, 6, 11, 36, 44, 149, 157]));
            o.str(
                "ip_address",
                &format!("192.168.1.{}", self.rng.range(2, 250)),
            );
            o.str("router", "192.168.1.1");
            o.finish();
            return (Some(action), "configd".to_owned());
        }
        let app = self.app();
        let (host, address) = self.rng.pick(&HOSTS);
        let mut o = Obj::new(out);
        o.str("app", app.name);
        o.uint("pid", app.pid());
        o.str("protocol", self.rng.pick(&["tcp", "tcp", "tcp", "udp"]));
        o.str("local_address", "192.168.1.23");
        o.uint("local_port", self.rng.range(49_152, 65_535));
        o.str("remote_host", host);
        o.str("remote_address", address);
        o.uint(
            "remote_port",
            self.rng.pick(&[443, 443, 443, 80, 5223, 993]),
        );
        o.str("interface", "en0");
        o.uint("bytes_sent", self.rng.range(300, 80_000));
        o.uint("bytes_received", self.rng.range(500, 4_000_000));
        o.uint("duration_ms", self.rng.range(5, 120_000));
        o.finish();
        let action = self.rng.pick(&["connected", "connected", "closed"]);
        (Some(action), app.name.to_owned())
    }

    fn process(&mut self, out: &mut String) -> (Option<&'static str>, String) {
        let app = self.app();
        let helper = app.kind == Kind::Browser && self.rng.percent(60);
        let name = if helper {
            format!(
                "{} Helper{}",
                app.name,
                self.rng.pick(&[" (Renderer)", " (GPU)", " (Plugin)", ""])
            )
        } else {
            app.name.to_owned()
        };
        let action = self.rng.pick(&["started", "exited"]);
        let mut o = Obj::new(out);
        o.uint(
            "pid",
            app.pid() + if helper { self.rng.range(1, 400) } else { 0 },
        );
        o.uint("ppid", if helper { app.pid() } else { 1 });
        o.str("name", &name);
        o.str(
            "executable",
            &format!("{}/{}.app/Contents/MacOS/{name}", app.dir, app.name),
        );
        o.str("user", USER);
        o.str(
            "arch",
            self.rng.pick(&["arm64", "arm64", "arm64", "x86_64"]),
        );
        o.float1("cpu_percent", self.rng.range(0, 1500));
        o.uint("rss_bytes", self.rng.range(8, 3000) * 1024 * 1024);
        o.uint("threads", self.rng.range(3, 90));
        o.str("bundle_id", app.bundle_id);
        if action == "exited" {
            o.int(
                "exit_code",
                self.rng.pick(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 9, 137]),
            );
            o.uint("runtime_s", self.rng.range(1, 200_000));
        }
        o.finish();
        (Some(action), app.name.to_owned())
    }

    fn clipboard(&mut self, out: &mut String) -> (Option<&'static str>, String) {
        let app = self.app();
        let large = self.rng.percent(CLIPBOARD_LARGE_PERCENT);
        let text = if large {
            // The other fields take 230 to 400 bytes.
            let target = self.rng.range_usize(LARGE_LEN_MIN + 170, LARGE_LEN_MAX) - 400;
            self.prose(target)
        } else {
            self.rng.pick(&SNIPPETS).to_owned()
        };
        let preview_end = text.char_indices().nth(80).map_or(text.len(), |(i, _)| i);
        let mut o = Obj::new(out);
        o.str("app", app.name);
        o.str("bundle_id", app.bundle_id);
        o.uint("pid", app.pid());
        o.str(
            "content_type",
            self.rng.pick(&[
                "public.utf8-plain-text",
                "public.utf8-plain-text",
                "public.html",
            ]),
        );
        o.uint(
            "length",
            u64::try_from(text.chars().count()).unwrap_or(u64::MAX),
        );
        o.str("preview", &text[..preview_end]);
        o.str("hash", &self.hex_pairs(16, '\0'));
        o.uint("change_count", self.rng.range(1, 90_000));
        if large {
            o.str("text", &text);
        }
        o.finish();
        let action = self.rng.pick(&["copied", "copied", "copied", "pasted"]);
        (Some(action), app.name.to_owned())
    }

    fn notification(&mut self, out: &mut String) -> (Option<&'static str>, String) {
        let app = self.app();
        let mut o = Obj::new(out);
        o.str("app", app.name);
        o.str("bundle_id", app.bundle_id);
        o.str(
            "title",
            self.rng.pick(&[
                "Priya Patel",
                "Bob Chen",
                "María García",
                "CI",
                "Calendar",
                "Software Update",
            ]),
        );
        o.str(
            "subtitle",
            self.rng
                .pick(&["#general", "#design-review", "Direct message", "", "main"]),
        );
        o.str("body", self.rng.pick(&NOTIFICATION_BODIES));
        o.str(
            "category",
            self.rng.pick(&["message", "reminder", "alert", "update"]),
        );
        o.str("identifier", &self.hex_pairs(8, '-'));
        o.bool("sound", self.rng.percent(30));
        o.bool("interrupted_focus", self.rng.percent(10));
        o.finish();
        (None, app.name.to_owned())
    }

    fn app_launch(&mut self, out: &mut String) -> (Option<&'static str>, String) {
        let app = self.app();
        let action = self.rng.pick(&["launched", "quit"]);
        let mut o = Obj::new(out);
        o.str("app", app.name);
        o.str("bundle_id", app.bundle_id);
        o.uint("pid", app.pid());
        o.str("path", &format!("{}/{}.app", app.dir, app.name));
        o.str(
            "version",
            &format!(
                "{}.{}.{}",
                self.rng.range(1, 130),
                self.rng.range(0, 20),
                self.rng.range(0, 99)
            ),
        );
        o.str(
            "arch",
            self.rng.pick(&["arm64", "arm64", "arm64", "x86_64"]),
        );
        if action == "launched" {
            o.str(
                "launched_by",
                self.rng
                    .pick(&["dock", "spotlight", "login_item", "finder", "open"]),
            );
            o.uint("launch_ms", self.rng.range(80, 6000));
        } else {
            o.uint("uptime_s", self.rng.range(5, 900_000));
            o.bool("crashed", self.rng.percent(2));
        }
        o.finish();
        (Some(action), app.name.to_owned())
    }

    fn idle(&mut self, out: &mut String) -> (Option<&'static str>, String) {
        let mut o = Obj::new(out);
        let starting = self.rng.percent(50);
        o.str("state", if starting { "idle_start" } else { "idle_end" });
        o.uint("idle_seconds", self.rng.range(120, 14_400));
        o.str(
            "last_input",
            self.rng.pick(&["keyboard", "mouse", "trackpad"]),
        );
        o.bool("displays_asleep", self.rng.percent(40));
        o.bool("on_battery", self.rng.percent(35));
        o.uint("battery_percent", self.rng.range(5, 100));
        o.str("frontmost_app", self.app().name);
        o.finish();
        (None, "WindowServer".to_owned())
    }

    fn screen_lock(&mut self, out: &mut String) -> (Option<&'static str>, String) {
        let locked = self.rng.percent(50);
        if locked {
            // Lock events carry no data, as the old daemon recorded them.
            return (Some("locked"), "loginwindow".to_owned());
        }
        let mut o = Obj::new(out);
        o.uint("session_id", self.rng.range(250, 260));
        o.str("user", USER);
        o.str(
            "method",
            self.rng.pick(&["touch_id", "password", "apple_watch"]),
        );
        o.uint("locked_seconds", self.rng.range(10, 50_000));
        o.uint("displays", self.rng.range(1, 3));
        o.finish();
        (Some("unlocked"), "loginwindow".to_owned())
    }

    fn usb_device(&mut self, out: &mut String) -> (Option<&'static str>, String) {
        let (vendor, vendor_id, product, product_id) = self.rng.pick(&USB_DEVICES);
        let mut o = Obj::new(out);
        o.str("vendor", vendor);
        o.str("vendor_id", vendor_id);
        o.str("product", product);
        o.str("product_id", product_id);
        o.str("serial", &self.hex_pairs(8, '\0').to_uppercase());
        o.str(
            "location_id",
            &format!("0x{:08x}", self.rng.range(0x0010_0000, 0x0140_0000)),
        );
        o.str(
            "speed",
            self.rng.pick(&["480 Mb/s", "5 Gb/s", "10 Gb/s", "12 Mb/s"]),
        );
        o.uint("power_ma", self.rng.pick(&[100, 500, 900, 1500]));
        o.finish();
        let action = self.rng.pick(&["connected", "disconnected"]);
        (Some(action), "IOUSBHost".to_owned())
    }

    // Building blocks.

    /// An application, the popular ones (at the front of `APPS`) more often.
    fn app(&mut self) -> &'static App {
        &APPS[self.rng.skewed(APPS.len())]
    }

    /// The index of a folder in `folders`, the popular ones more often.
    fn folder(&mut self) -> usize {
        self.rng.skewed(self.folders.len())
    }

    fn file_path(&mut self, folder: &str) -> String {
        format!(
            "{folder}/{}{}.{}",
            self.rng.pick(&SUBDIRS),
            self.rng.pick(&FILE_STEMS),
            self.rng.pick(&EXTENSIONS)
        )
    }

    /// A file size: mostly kilobytes, sometimes megabytes.
    fn size(&mut self) -> u64 {
        match self.rng.below(10) {
            0..=5 => self.rng.range(40, 64 * 1024),
            6..=8 => self.rng.range(64 * 1024, 8 * 1024 * 1024),
            _ => self.rng.range(8 * 1024 * 1024, 2 * 1024 * 1024 * 1024),
        }
    }

    fn project(&mut self) -> String {
        format!(
            "{}{}",
            self.rng.pick(&PROJECTS),
            self.rng.pick(&PROJECT_SUFFIXES)
        )
    }

    fn window_title(&mut self, app: &App) -> String {
        match app.kind {
            Kind::Browser => {
                let (_, title, _) = self.page();
                format!("{title} - {}", app.name)
            }
            Kind::Editor => format!(
                "{}.{} — {} — {}",
                self.rng.pick(&FILE_STEMS),
                self.rng
                    .pick(&["rs", "ts", "py", "md", "swift", "json", "toml"]),
                self.project(),
                app.name
            ),
            Kind::Terminal => format!(
                "{USER}@MacBook-Pro: ~/Projects/{} — {} — {}×{}",
                self.project(),
                self.rng
                    .pick(&["zsh", "cargo test", "vim", "git log", "htop", "ssh"]),
                self.rng.range(80, 240),
                self.rng.range(24, 70)
            ),
            Kind::Chat => format!(
                "{} - Acme - {}",
                self.rng.pick(&[
                    "#general",
                    "#design-review",
                    "#incidents",
                    "Priya Patel",
                    "Bob Chen",
                    "#chrome-extension",
                ]),
                app.name
            ),
            Kind::Office => format!(
                "{}.{}",
                self.rng.pick(&FILE_STEMS),
                self.rng
                    .pick(&["docx", "xlsx", "pages", "key", "pdf", "numbers"])
            ),
            Kind::Files => self.project(),
            Kind::Media => format!(
                "{} — {}",
                self.rng.pick(&[
                    "Bohemian Rhapsody",
                    "Clair de Lune",
                    "Lo-fi beats to code to",
                    "Weekly podcast #212"
                ]),
                self.rng
                    .pick(&["Queen", "Debussy", "ChilledCow", "The Changelog"])
            ),
            Kind::Other => format!(
                "{} — {}",
                app.name,
                self.rng
                    .pick(&["General", "Overview", "Settings", "Untitled"])
            ),
        }
    }

    /// A web page: its URL, title and domain.
    fn page(&mut self) -> (String, String, &'static str) {
        let n = self.rng.range(1, 140_000);
        match self.rng.below(12) {
            0 | 1 => {
                let project = self.rng.pick(&PROJECTS);
                (
                    format!("https://github.com/{USER}/{project}/pull/{}", n % 900),
                    format!(
                        "Fix flaky test on CI by {USER} · Pull Request #{} · {USER}/{project}",
                        n % 900
                    ),
                    "github.com",
                )
            }
            2 | 3 => {
                let q = self.query();
                (
                    format!(
                        "https://www.google.com/search?q={}&oq={}",
                        q.replace(' ', "+"),
                        q.replace(' ', "+")
                    ),
                    format!("{q} - Google Search"),
                    "www.google.com",
                )
            }
            4 => (
                format!(
                    "https://stackoverflow.com/questions/{}/how-to-read-a-memory-mapped-file",
                    7_000_000 + n
                ),
                "How to read a memory-mapped file safely in Rust? - Stack Overflow".to_owned(),
                "stackoverflow.com",
            ),
            5 => (
                format!(
                    "https://mail.google.com/mail/u/0/#inbox/FMfcgz{}",
                    self.hex_pairs(10, '\0')
                ),
                format!("Inbox ({}) - {USER}@example.com - Gmail", n % 300),
                "mail.google.com",
            ),
            6 => (
                format!(
                    "https://www.youtube.com/watch?v={}",
                    self.hex_pairs(5, '\0')
                ),
                self.rng
                    .pick(&[
                        "How Chrome's V8 engine works - YouTube",
                        "Lofi hip hop radio - YouTube",
                        "Rust in 100 seconds - YouTube",
                    ])
                    .to_owned(),
                "www.youtube.com",
            ),
            7 => (
                format!(
                    "https://developer.chrome.com/docs/extensions/reference/api/{}",
                    self.rng.pick(&["tabs", "storage", "runtime", "scripting"])
                ),
                "chrome.tabs | API | Chrome for Developers".to_owned(),
                "developer.chrome.com",
            ),
            8 => (
                "chrome://settings/privacy".to_owned(),
                "Settings - Privacy and security".to_owned(),
                "settings",
            ),
            9 => (
                format!(
                    "https://docs.rs/{}/latest/",
                    self.rng
                        .pick(&["serde_json", "memmap2", "clap", "lz4_flex", "tokio"])
                ),
                "Docs.rs - Rust crate documentation".to_owned(),
                "docs.rs",
            ),
            10 => (
                format!("https://news.ycombinator.com/item?id={}", 42_000_000 + n),
                "Show HN: An append-only event store for desktop activity | Hacker News".to_owned(),
                "news.ycombinator.com",
            ),
            _ => {
                let topic = self.rng.pick(&[
                    "Log-structured_merge-tree",
                    "Google_Chrome",
                    "Write-ahead_logging",
                    "CRC-32",
                    "Zipf's_law",
                ]);
                (
                    format!("https://en.wikipedia.org/wiki/{topic}"),
                    format!("{} - Wikipedia", topic.replace('_', " ")),
                    "en.wikipedia.org",
                )
            }
        }
    }

    fn query(&mut self) -> String {
        let mut q = String::new();
        for i in 0..self.rng.range(2, 5) {
            if i > 0 {
                q.push(' ');
            }
            q.push_str(self.rng.pick(&WORDS));
        }
        q
    }

    /// Text taking at most `len` bytes, and more than `len - 20`, as a JSON string's
    /// contents: sentences of words, some with quotes and tabs.
    fn prose(&mut self, len: usize) -> String {
        let mut text = String::with_capacity(len);
        let mut escaped = 0;
        loop {
            let word = self.rng.pick(&WORDS);
            let end = if self.rng.percent(88) {
                " "
            } else {
                self.rng
                    .pick(&[". ", ".\n", ", \"really\" ", ":\n\t", ".\n\n", "; "])
            };
            let piece_len = escaped_len(word) + escaped_len(end);
            if escaped + piece_len > len {
                return text;
            }
            text.push_str(word);
            text.push_str(end);
            escaped += piece_len;
        }
    }

    /// `count` random bytes as hex, with `separator` between them unless it is NUL.
    fn hex_pairs(&mut self, count: usize, separator: char) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(count * 3);
        for i in 0..count {
            if i > 0 && separator != '\0' {
                s.push(separator);
            }
            let byte = self.rng.index(256);
            s.push(char::from(HEX[byte >> 4]));
            s.push(char::from(HEX[byte & 15]));
        }
        s
    }
}

impl Iterator for Workload {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        if self.position >= self.config.count {
            return None;
        }
        let position = self.position;
        self.position += 1;
        if !self.recent.is_empty() && self.rng.chance(self.duplicate_threshold) {
            let index = self.rng.index(self.recent.len());
            return Some(self.recent[index].clone());
        }
        let timestamp_us = self.timestamp_us(position);
        let event = self.generate(timestamp_us);
        self.remember(&event);
        Some(event)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.config.count - self.position;
        let left = usize::try_from(left).ok();
        (left.unwrap_or(usize::MAX), left)
    }
}

impl ExactSizeIterator for Workload {}

impl std::iter::FusedIterator for Workload {}

/// The JSON Lines form of an event, as `selflog ingest` reads it: one line without its
/// newline, `{"timestamp":<seconds since 1970 with six decimals>,"event_type":"..",
/// "action":"..","source":"..","data":<the data's JSON text>}`. `action` and `data` are
/// left out when absent.
#[must_use]
pub fn to_json_line(event: &Record) -> String {
    let data = event.data.as_deref().map(RawValue::get);
    let mut out = String::with_capacity(
        96 + event.event_type.len() + event.source.len() + data.map_or(0, str::len),
    );
    out.push_str("{\"timestamp\":");
    push_timestamp(&mut out, event.timestamp_us);
    out.push_str(",\"event_type\":");
    push_serde_string(&mut out, &event.event_type);
    if let Some(action) = &event.action {
        out.push_str(",\"action\":");
        push_serde_string(&mut out, action);
    }
    out.push_str(",\"source\":");
    push_serde_string(&mut out, &event.source);
    if let Some(data) = data {
        out.push_str(",\"data\":");
        out.push_str(data);
    }
    out.push('}');
    out
}

fn push_serde_string(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("serialising a str cannot fail"));
}

/// Seconds since 1970 with exactly six decimals, so the microseconds survive parsing as
/// `f64` for any timestamp of this era.
fn push_timestamp(out: &mut String, timestamp_us: i64) {
    if timestamp_us < 0 {
        out.push('-');
    }
    let magnitude = timestamp_us.unsigned_abs();
    push_u64(out, magnitude / 1_000_000);
    out.push('.');
    let fraction = magnitude % 1_000_000;
    let mut divisor = 100_000;
    while divisor > 0 {
        push_digit(out, fraction / divisor % 10);
        divisor /= 10;
    }
}

/// `d` as microseconds, saturating at `i64::MAX`.
fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The `u64` below which a uniform random `u64` falls with probability `p`.
fn probability_threshold(p: f64) -> u64 {
    let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
    // 2^64 as f64 is exact; the product saturates to u64::MAX for p == 1.
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "p is in 0..=1, so the product is in 0..=2^64, and `as` saturates"
    )]
    let threshold = (p * 18_446_744_073_709_551_616.0) as u64;
    threshold
}

/// The splitmix64 generator (Steele, Lea and Flood 2014): tiny, fast, and good enough for
/// workloads. Its output is fixed by this code alone.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias, below n / 2^64, is negligible).
    /// Returns 0 when `n` is 0.
    fn below(&mut self, n: u64) -> u64 {
        let wide = u128::from(self.next_u64()) * u128::from(n);
        // A u64 times a u64, shifted right by 64, fits in a u64.
        (wide >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn range_usize(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.index(hi - lo + 1)
    }

    /// Uniform in `0..len`.
    fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.below(len as u64)).expect("below(len) < len, a usize")
    }

    /// In `0..len`, low indices more often: index `i` with probability about
    /// `ln(len / (i + 1)) / len`, so the first of 50 comes up 9% of the time.
    fn skewed(&mut self, len: usize) -> usize {
        let bound = self.index(len) + 1;
        self.index(bound)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.index(items.len())]
    }

    fn weighted(&mut self, table: &[(usize, u32)]) -> usize {
        let total: u64 = table.iter().map(|&(_, w)| u64::from(w)).sum();
        let mut pick = self.below(total);
        for &(item, weight) in table {
            if pick < u64::from(weight) {
                return item;
            }
            pick -= u64::from(weight);
        }
        table[0].0
    }

    fn chance(&mut self, threshold: u64) -> bool {
        self.next_u64() < threshold
    }

    fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Writes one JSON object into a string, key by key. Keys are plain ASCII identifiers and
/// are written as they are; values are escaped.
struct Obj<'a> {
    out: &'a mut String,
    empty: bool,
}

impl<'a> Obj<'a> {
    fn new(out: &'a mut String) -> Obj<'a> {
        out.push('{');
        Obj { out, empty: true }
    }

    fn key(&mut self, key: &str) {
        debug_assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        push_json_string(self.out, value);
    }

    fn uint(&mut self, key: &str, value: u64) {
        self.key(key);
        push_u64(self.out, value);
    }

    fn int(&mut self, key: &str, value: i64) {
        self.key(key);
        if value < 0 {
            self.out.push('-');
        }
        push_u64(self.out, value.unsigned_abs());
    }

    /// `tenths / 10` with one decimal.
    fn float1(&mut self, key: &str, tenths: u64) {
        self.key(key);
        push_u64(self.out, tenths / 10);
        self.out.push('.');
        push_digit(self.out, tenths % 10);
    }

    fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
    }

    fn object(&mut self, key: &str) -> Obj<'_> {
        self.key(key);
        Obj::new(self.out)
    }

    fn array(&mut self, key: &str) -> Arr<'_> {
        self.key(key);
        self.out.push('[');
        Arr {
            out: self.out,
            empty: true,
        }
    }

    fn finish(self) {
        self.out.push('}');
    }
}

/// Writes one JSON array of strings.
struct Arr<'a> {
    out: &'a mut String,
    empty: bool,
}

impl Arr<'_> {
    fn str(&mut self, value: &str) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        push_json_string(self.out, value);
    }

    fn finish(self) {
        self.out.push(']');
    }
}

/// Appends `s` as a JSON string: quotes, backslashes and control characters escaped.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut plain_from = 0;
    while let Some(offset) = escape_offset(&bytes[plain_from..]) {
        let i = plain_from + offset;
        // `i` is at an ASCII byte, so both slices end on character boundaries.
        out.push_str(&s[plain_from..i]);
        let b = bytes[i];
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            _ => {
                out.push_str("\\u00");
                push_digit(out, u64::from(b >> 4));
                out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
            }
        }
        plain_from = i + 1;
    }
    out.push_str(&s[plain_from..]);
    out.push('"');
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The offset of the first byte of `bytes` that a JSON string must escape. Eight bytes at
/// a time, since large events are mostly plain text.
fn escape_offset(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Exact tests whether any byte of `v` is zero, or below 0x20 (Hacker's Delight 6-1).
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    let has_below_space = |v: u64| v.wrapping_sub(ONES * 0x20) & !v & HIGHS != 0;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in chunks.by_ref() {
        let v = u64::from_le_bytes(chunk.try_into().expect("chunks_exact(8) gives 8 bytes"));
        if has_below_space(v)
            || has_zero(v ^ (ONES * u64::from(b'"')))
            || has_zero(v ^ (ONES * u64::from(b'\\')))
        {
            return chunk
                .iter()
                .position(|&b| needs_escape(b))
                .map(|i| offset + i);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| needs_escape(b))
        .map(|i| offset + i)
}

/// How many bytes `s` takes inside a JSON string written by `push_json_string`.
fn escaped_len(s: &str) -> usize {
    s.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\t' | b'\r' => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum()
}

fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = digit(n % 10);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[start..] {
        out.push(char::from(d));
    }
}

fn push_digit(out: &mut String, d: u64) {
    out.push(char::from(digit(d)));
}

/// The ASCII digit for `d`, which must be below 10.
fn digit(d: u64) -> u8 {
    debug_assert!(d < 10);
    #[expect(clippy::cast_possible_truncation, reason = "d < 10")]
    let d = d as u8;
    b'0' + d
}

// The vocabulary. Order matters where `skewed` picks: the first entries are the popular ones.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Browser,
    Editor,
    Terminal,
    Chat,
    Office,
    Files,
    Media,
    Other,
}

#[derive(Debug)]
struct App {
    name: &'static str,
    bundle_id: &'static str,
    dir: &'static str,
    kind: Kind,
}

impl App {
    /// A stable process id per application, as one long-running instance would have.
    fn pid(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.name.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        400 + h % 90_000
    }
}

const APPLICATIONS: &str = "/Applications";
const SYSTEM_APPLICATIONS: &str = "/System/Applications";
const UTILITIES: &str = "/System/Applications/Utilities";

const fn app(name: &'static str, bundle_id: &'static str, dir: &'static str, kind: Kind) -> App {
    App {
        name,
        bundle_id,
        dir,
        kind,
    }
}

static APPS: [App; 50] = [
    app(
        "Google Chrome",
        "com.google.Chrome",
        APPLICATIONS,
        Kind::Browser,
    ),
    app(
        "Visual Studio Code",
        "com.microsoft.VSCode",
        APPLICATIONS,
        Kind::Editor,
    ),
    app(
        "Slack",
        "com.tinyspeck.slackmacgap",
        APPLICATIONS,
        Kind::Chat,
    ),
    app("Terminal", "com.apple.Terminal", UTILITIES, Kind::Terminal),
    app(
        "Finder",
        "com.apple.finder",
        "/System/Library/CoreServices",
        Kind::Files,
    ),
    app("Safari", "com.apple.Safari", APPLICATIONS, Kind::Browser),
    app("Mail", "com.apple.mail", SYSTEM_APPLICATIONS, Kind::Other),
    app("zoom.us", "us.zoom.xos", APPLICATIONS, Kind::Other),
    app("Notion", "notion.id", APPLICATIONS, Kind::Office),
    app(
        "iTerm2",
        "com.googlecode.iterm2",
        APPLICATIONS,
        Kind::Terminal,
    ),
    app("Spotify", "com.spotify.client", APPLICATIONS, Kind::Media),
    app(
        "Messages",
        "com.apple.MobileSMS",
        SYSTEM_APPLICATIONS,
        Kind::Chat,
    ),
    app(
        "Firefox",
        "org.mozilla.firefox",
        APPLICATIONS,
        Kind::Browser,
    ),
    app("Figma", "com.figma.Desktop", APPLICATIONS, Kind::Office),
    app(
        "Microsoft Teams",
        "com.microsoft.teams2",
        APPLICATIONS,
        Kind::Chat,
    ),
    app("Obsidian", "md.obsidian", APPLICATIONS, Kind::Editor),
    app("Xcode", "com.apple.dt.Xcode", APPLICATIONS, Kind::Editor),
    app(
        "Arc",
        "company.thebrowser.Browser",
        APPLICATIONS,
        Kind::Browser,
    ),
    app(
        "Microsoft Word",
        "com.microsoft.Word",
        APPLICATIONS,
        Kind::Office,
    ),
    app(
        "Microsoft Excel",
        "com.microsoft.Excel",
        APPLICATIONS,
        Kind::Office,
    ),
    app(
        "Preview",
        "com.apple.Preview",
        SYSTEM_APPLICATIONS,
        Kind::Office,
    ),
    app(
        "Notes",
        "com.apple.Notes",
        SYSTEM_APPLICATIONS,
        Kind::Office,
    ),
    app(
        "Calendar",
        "com.apple.iCal",
        SYSTEM_APPLICATIONS,
        Kind::Other,
    ),
    app("Discord", "com.hnc.Discord", APPLICATIONS, Kind::Chat),
    app(
        "1Password",
        "com.1password.1password",
        APPLICATIONS,
        Kind::Other,
    ),
    app("Docker", "com.docker.docker", APPLICATIONS, Kind::Other),
    app("Postman", "com.postmanlabs.mac", APPLICATIONS, Kind::Other),
    app(
        "IntelliJ IDEA",
        "com.jetbrains.intellij",
        APPLICATIONS,
        Kind::Editor,
    ),
    app(
        "PyCharm",
        "com.jetbrains.pycharm",
        APPLICATIONS,
        Kind::Editor,
    ),
    app(
        "Microsoft Edge",
        "com.microsoft.edgemac",
        APPLICATIONS,
        Kind::Browser,
    ),
    app(
        "Telegram",
        "ru.keepcoder.Telegram",
        APPLICATIONS,
        Kind::Chat,
    ),
    app(
        "WhatsApp",
        "net.whatsapp.WhatsApp",
        APPLICATIONS,
        Kind::Chat,
    ),
    app("Music", "com.apple.Music", SYSTEM_APPLICATIONS, Kind::Media),
    app(
        "Photos",
        "com.apple.Photos",
        SYSTEM_APPLICATIONS,
        Kind::Media,
    ),
    app(
        "System Settings",
        "com.apple.systempreferences",
        SYSTEM_APPLICATIONS,
        Kind::Other,
    ),
    app(
        "Activity Monitor",
        "com.apple.ActivityMonitor",
        UTILITIES,
        Kind::Other,
    ),
    app(
        "Keynote",
        "com.apple.iWork.Keynote",
        APPLICATIONS,
        Kind::Office,
    ),
    app("Pages", "com.apple.iWork.Pages", APPLICATIONS, Kind::Office),
    app(
        "Numbers",
        "com.apple.iWork.Numbers",
        APPLICATIONS,
        Kind::Office,
    ),
    app(
        "Sublime Text",
        "com.sublimetext.4",
        APPLICATIONS,
        Kind::Editor,
    ),
    app("Zed", "dev.zed.Zed", APPLICATIONS, Kind::Editor),
    app(
        "Cursor",
        "com.todesktop.230313mzl4w4u92",
        APPLICATIONS,
        Kind::Editor,
    ),
    app(
        "TablePlus",
        "com.tinyapp.TablePlus",
        APPLICATIONS,
        Kind::Other,
    ),
    app("Raycast", "com.raycast.macos", APPLICATIONS, Kind::Other),
    app(
        "App Store",
        "com.apple.AppStore",
        SYSTEM_APPLICATIONS,
        Kind::Other,
    ),
    app(
        "Google Chrome Canary",
        "com.google.Chrome.canary",
        APPLICATIONS,
        Kind::Browser,
    ),
    app(
        "Chromium",
        "org.chromium.Chromium",
        APPLICATIONS,
        Kind::Browser,
    ),
    app("VLC", "org.videolan.vlc", APPLICATIONS, Kind::Media),
    app(
        "Signal",
        "org.whispersystems.signal-desktop",
        APPLICATIONS,
        Kind::Chat,
    ),
    app(
        "Microsoft PowerPoint",
        "com.microsoft.Powerpoint",
        APPLICATIONS,
        Kind::Office,
    ),
];

/// Browsers by index in `APPS`, with how often each is the one whose tabs change.
const BROWSERS: [(usize, u32); 7] = [
    (0, 55),
    (5, 20),
    (12, 8),
    (17, 8),
    (29, 5),
    (45, 2),
    (46, 2),
];

/// Display UUIDs: the built-in screen and an external monitor.
const DISPLAYS: [&str; 2] = [
    "37D8832A-2D66-02CA-B9F7-8F30A301B230",
    "9C1A7F2E-4B3D-4E8A-A6F1-2D5C8B9E0F13",
];

const FOLDER_ROOTS: [&str; 5] = ["Projects", "Documents", "Desktop", "Downloads", "Dropbox"];

const PROJECTS: [&str; 10] = [
    "selflog",
    "acme-website",
    "thesis",
    "tax-return",
    "chrome-extension",
    "budget",
    "photos",
    "recipes",
    "vacation",
    "invoices",
];

const PROJECT_SUFFIXES: [&str; 5] = ["", "-2024", "-old", "-draft", " (copy)"];

const SUBDIRS: [&str; 10] = [
    "",
    "src/",
    "docs/",
    "assets/",
    "notes/",
    "build/",
    "src/components/",
    "tests/",
    "drafts/",
    "2024/11/",
];

const FILE_STEMS: [&str; 20] = [
    "main",
    "index",
    "README",
    "report",
    "notes",
    "budget",
    "draft-v2",
    "Screenshot 2024-11-03 at 14.22.10",
    "invoice-0042",
    "IMG_4821",
    "meeting-notes",
    "lib",
    "header",
    "config",
    "Quarterly Plan",
    "resume",
    "Café menu",
    "styles",
    "data",
    "chrome-bookmarks",
];

const EXTENSIONS: [&str; 20] = [
    "rs", "ts", "tsx", "md", "txt", "pdf", "png", "jpg", "docx", "xlsx", "json", "py", "csv",
    "pages", "key", "html", "css", "zip", "mov", "log",
];

const HOSTS: [(&str, &str); 10] = [
    ("www.google.com", "142.250.185.196"),
    ("slack.com", "34.117.59.81"),
    ("github.com", "140.82.121.4"),
    ("clients2.google.com", "142.250.186.78"),
    ("update.googleapis.com", "142.250.185.99"),
    ("api.spotify.com", "35.186.224.25"),
    ("zoom.us", "170.114.52.2"),
    ("icloud.com", "17.253.144.10"),
    ("registry.npmjs.org", "104.16.24.35"),
    ("static.crates.io", "18.164.96.42"),
];

const USB_DEVICES: [(&str, &str, &str, &str); 5] = [
    ("Apple Inc.", "0x05ac", "iPhone", "0x12a8"),
    ("SanDisk", "0x0781", "Ultra USB 3.0", "0x5581"),
    ("Logitech", "0x046d", "USB Receiver", "0xc52b"),
    ("Yubico", "0x1050", "YubiKey OTP+FIDO+CCID", "0x0407"),
    ("Samsung", "0x04e8", "Portable SSD T7", "0x4001"),
];

const SNIPPETS: [&str; 12] = [
    "let store = Store::open(dir, Config::default())?;",
    "https://github.com/alice/selflog/pull/42",
    "Meeting moved to Thursday 3pm — see the updated invite",
    "alice@example.com",
    "SELECT * FROM events WHERE source LIKE '%chrome%' ORDER BY timestamp DESC;",
    "ssh deploy@10.0.4.17 -p 2222",
    "\"quoted\" text with\ttabs and a backslash \\ in it",
    "npm install --save-dev typescript@5.6",
    "Tracking number: 1Z999AA10123456784",
    "export CHROME_BIN=\"/Applications/Google Chrome.app/Contents/MacOS/Google Chrome\"",
    "Thanks! I'll review it after lunch 🙂",
    "4111 1111 1111 1111",
];

const NOTIFICATION_BODIES: [&str; 8] = [
    "Can you take a look at the PR when you get a chance?",
    "Build #4812 failed on main: 2 tests failed in store::recovery",
    "Lunch at 12:30? The usual place",
    "Your meeting \"Design review\" starts in 5 minutes",
    "Google Chrome is out of date. Relaunch Chrome to update",
    "Your Mac will restart tonight to install macOS 15.1.1",
    "Priya mentioned you in #design-review",
    "Battery is low: 10% remaining",
];

const WORDS: [&str; 40] = [
    "the",
    "store",
    "event",
    "append",
    "segment",
    "index",
    "chrome",
    "Chrome",
    "window",
    "focus",
    "meeting",
    "budget",
    "report",
    "draft",
    "review",
    "deadline",
    "coffee",
    "project",
    "data",
    "memory",
    "tab",
    "browser",
    "search",
    "quarterly",
    "plan",
    "design",
    "invoice",
    "photo",
    "upload",
    "sync",
    "backup",
    "terminal",
    "rust",
    "query",
    "latency",
    "throughput",
    "and",
    "with",
    "for",
    "CHROME",
];

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    fn config(seed: u64, count: u64) -> WorkloadConfig {
        WorkloadConfig {
            seed,
            start_us: 1_730_000_000_000_000,
            count,
            ..WorkloadConfig::default()
        }
    }

    #[expect(clippy::cast_precision_loss, reason = "test counts are small")]
    fn share(part: usize, whole: usize) -> f64 {
        part as f64 / whole as f64
    }

    fn events(seed: u64, count: u64) -> Vec<Record> {
        Workload::new(config(seed, count)).collect()
    }

    #[test]
    fn same_seed_same_stream_and_different_seed_different_stream() {
        let a = events(7, 5000);
        assert_eq!(a, events(7, 5000));
        let b = events(8, 5000);
        assert_ne!(a, b);
        let differing = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        assert!(differing > 4900, "{differing} of 5000 differ");
    }

    #[test]
    fn yields_exactly_count_events() {
        for count in [0, 1, 2, 999, 1000, 1001, 12_345] {
            let w = Workload::new(config(1, count));
            assert_eq!(w.len(), usize::try_from(count).unwrap());
            assert_eq!(w.count() as u64, count);
        }
        let mut w = Workload::new(config(1, 3));
        assert_eq!(w.by_ref().count(), 3);
        assert!(w.next().is_none(), "fused");
    }

    #[test]
    fn data_sizes_are_realistic() {
        let all = events(3, 20_000);
        let mut lens: Vec<usize> = all
            .iter()
            .filter_map(|e| e.data_text())
            .map(str::len)
            .collect();
        assert!(lens.len() > 19_800, "almost every event has data");
        lens.sort_unstable();
        let median = lens[lens.len() / 2];
        assert!((200..450).contains(&median), "median {median}");
        let large = lens.iter().filter(|&&l| l >= LARGE_LEN_MIN).count();
        let share = share(large, all.len());
        assert!((0.01..0.04).contains(&share), "large share {share}");
        assert!(
            *lens.last().unwrap() <= LARGE_LEN_MAX,
            "{}",
            lens.last().unwrap()
        );
    }

    #[test]
    fn every_data_is_a_json_object() {
        for e in events(4, 20_000) {
            if let Some(text) = e.data_text() {
                let v: serde_json::Value = serde_json::from_str(text).unwrap();
                assert!(v.is_object(), "{text}");
            }
        }
    }

    #[test]
    fn duplicates_copy_recent_events() {
        let all = events(5, 20_000);
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut duplicates = 0;
        for (i, e) in all.iter().enumerate() {
            let key = to_json_line(e);
            if let Some(first) = seen.insert(key, i) {
                duplicates += 1;
                assert!(
                    i - first <= RECENT_COUNT_MAX + 300,
                    "event {i} copies {first}"
                );
            }
        }
        assert!(
            (120..300).contains(&duplicates),
            "{duplicates} duplicates of 20 000"
        );
        let none = Workload::new(WorkloadConfig {
            duplicate_share: 0.0,
            ..config(5, 20_000)
        });
        let unique: HashSet<String> = none.map(|e| to_json_line(&e)).collect();
        assert_eq!(unique.len(), 20_000);
    }

    #[test]
    fn timestamps_rise_across_the_span_with_some_late() {
        let cfg = WorkloadConfig {
            duplicate_share: 0.0,
            ..config(6, 20_000)
        };
        let start = cfg.start_us;
        let end = start + micros(cfg.span);
        let late_max = micros(cfg.late_max);
        let all: Vec<Record> = Workload::new(cfg).collect();
        let mut newest = i64::MIN;
        let mut late = 0;
        for e in &all {
            let t = e.timestamp_us;
            assert!((start..end).contains(&t), "{t} outside {start}..{end}");
            if t < newest {
                late += 1;
                assert!(newest - t <= late_max, "{} µs late", newest - t);
            }
            newest = newest.max(t);
        }
        assert!((250..550).contains(&late), "{late} late of 20 000");
        // Evenly spread: the first and last events sit near the ends of the span.
        let step = (end - start) / 20_000;
        assert!(all[0].timestamp_us - start < step);
        assert!(end - all[19_999].timestamp_us < 2 * step);
    }

    #[test]
    fn timestamps_stay_ordered_without_late_events_even_when_dense() {
        // More events than microseconds in the span: timestamps repeat but never go back.
        let cfg = WorkloadConfig {
            late_share: 0.0,
            duplicate_share: 0.0,
            span: Duration::from_micros(100),
            ..config(9, 1000)
        };
        let all: Vec<Record> = Workload::new(cfg).collect();
        assert!(all
            .windows(2)
            .all(|w| w[0].timestamp_us <= w[1].timestamp_us));
        assert!(all
            .iter()
            .all(|e| (1_730_000_000_000_000..1_730_000_000_000_100).contains(&e.timestamp_us)));
    }

    #[test]
    fn type_frequencies_are_skewed() {
        let all = events(10, 50_000);
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for e in &all {
            *counts.entry(e.event_type.as_str()).or_default() += 1;
        }
        assert_eq!(counts.len(), 12, "{counts:?}");
        let type_share = |t: &str| share(counts[t], all.len());
        assert!(
            (0.27..0.33).contains(&type_share("window_change")),
            "{counts:?}"
        );
        assert!(
            (0.0003..0.002).contains(&type_share("usb_device")),
            "{counts:?}"
        );
        let no_action = share(all.iter().filter(|e| e.action.is_none()).count(), all.len());
        assert!((0.04..0.06).contains(&no_action), "no action: {no_action}");
    }

    #[test]
    fn sources_are_a_few_hundred_and_some_mention_chrome() {
        let all = events(11, 50_000);
        let sources: HashSet<&str> = all.iter().map(|e| e.source.as_str()).collect();
        assert!(
            (250..400).contains(&sources.len()),
            "{} sources",
            sources.len()
        );
        assert!(sources.contains("Google Chrome"));
        assert!(sources
            .iter()
            .any(|s| s.starts_with("/Users/alice/Documents/")));
        let lines: Vec<String> = all.iter().map(to_json_line).collect();
        let mentions = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
        for spelling in ["Chrome", "chrome", "CHROME"] {
            assert!(
                mentions(spelling) > 50,
                "{spelling}: {}",
                mentions(spelling)
            );
        }
        let any_case = lines
            .iter()
            .filter(|l| l.to_lowercase().contains("chrome"))
            .count();
        assert!(
            any_case > all.len() / 20 && any_case < all.len() / 2,
            "{any_case}"
        );
    }

    #[test]
    fn json_lines_parse_back_to_the_same_fields() {
        let mut absent_action = false;
        let mut absent_data = false;
        for e in events(12, 5000) {
            let line = to_json_line(&e);
            assert!(!line.contains('\n'));
            let fields: HashMap<String, Box<RawValue>> = serde_json::from_str(&line).unwrap();
            let text = |k: &str| fields.get(k).map(|v| v.get());
            let string = |k: &str| text(k).map(|t| serde_json::from_str::<String>(t).unwrap());
            let secs: f64 = serde_json::from_str(text("timestamp").unwrap()).unwrap();
            assert_eq!((secs * 1e6).round() as i64, e.timestamp_us, "{line}");
            assert_eq!(string("event_type").as_deref(), Some(e.event_type.as_str()));
            assert_eq!(string("action"), e.action);
            assert_eq!(string("source").as_deref(), Some(e.source.as_str()));
            assert_eq!(text("data"), e.data_text());
            absent_action |= !fields.contains_key("action");
            absent_data |= !fields.contains_key("data");
        }
        assert!(absent_action && absent_data);
    }

    #[test]
    fn json_line_escapes_strings_and_writes_microseconds() {
        let e = Record {
            timestamp_us: 1_732_460_000_000_001,
            event_type: "clip\"board".into(),
            action: None,
            source: "Term\u{1}inal\\".into(),
            data: Some(RawValue::from_string(r#"{"z": 1, "a":"é"}"#.into()).unwrap()),
        };
        assert_eq!(
            to_json_line(&e),
            r#"{"timestamp":1732460000.000001,"event_type":"clip\"board","source":"Term\u0001inal\\","data":{"z": 1, "a":"é"}}"#
        );
        let mut s = String::new();
        push_timestamp(&mut s, -1_500_000);
        assert_eq!(s, "-1.500000");
    }

    #[test]
    fn escapes_every_control_character() {
        let text: String = (0u8..0x80).map(char::from).chain("é🙂".chars()).collect();
        let mut out = String::new();
        push_json_string(&mut out, &text);
        assert_eq!(out.len(), escaped_len(&text) + 2);
        assert_eq!(serde_json::from_str::<String>(&out).unwrap(), text);
    }

    #[test]
    fn finds_escapes_at_every_offset() {
        for len in 0..20 {
            for at in 0..len {
                for special in (0u8..0x20).chain([b'"', b'\\']) {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = special;
                    // High bytes next to it must not hide or fake an escape.
                    let text = String::from_utf8(bytes).unwrap().replace('a', "é");
                    let want = text.bytes().position(needs_escape);
                    assert_eq!(escape_offset(text.as_bytes()), want, "{text:?}");
                    assert!(want.is_some());
                }
            }
            let plain = "é~ ".repeat(len);
            assert_eq!(escape_offset(plain.as_bytes()), None);
        }
    }

    #[test]
    fn shares_out_of_range_are_clamped() {
        assert_eq!(probability_threshold(f64::NAN), 0);
        assert_eq!(probability_threshold(-1.0), 0);
        assert_eq!(probability_threshold(2.0), u64::MAX);
        assert_eq!(probability_threshold(0.5), 1 << 63);
        let all: Vec<Record> = Workload::new(WorkloadConfig {
            duplicate_share: 1.0,
            ..config(13, 100)
        })
        .collect();
        assert!(all.iter().all(|e| *e == all[0]), "all copies of the first");
    }
}
