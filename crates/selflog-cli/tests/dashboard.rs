//! `selflog dashboard` as a person sees it: the real binary in a tmux pane, on a store that
//! another process (`selflog ingest` reading a pipe) is writing. It starts, shows the
//! totals `inspect stats --json` reports, follows new commits, filters its tail, and quits
//! on `q` with the terminal put back. And `--once`, the plain-text snapshot, compared with
//! a checked-in snapshot. Regenerate that with
//! `SELFLOG_WRITE_SNAPSHOTS=1 cargo test -p selflog-cli --test dashboard`.
//!
//! Needs tmux (`.ci/run` installs it). Waits poll the pane with a deadline; nothing here
//! asserts a timing.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{json, selflog, text};

/// How long a wait for the screen or the store may take before the test fails.
const DEADLINE: Duration = Duration::from_mins(1);

/// A tmux server of this test's own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `command` in a detached session `dash` of `width` x `height`.
    fn start(name: &str, command: &str, width: u16, height: u16) -> Tmux {
        let tmux = Tmux {
            socket: format!("selflog-dash-{}-{name}", std::process::id()),
        };
        let out = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "dash",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            command,
        ]);
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            text(&out.stderr)
        );
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run tmux ({e}): install it (apt-get install tmux)"))
    }

    /// The pane's text now.
    fn screen(&self) -> String {
        text(&self.run(&["capture-pane", "-p", "-t", "dash"]).stdout)
    }

    /// Types `keys` (tmux key names) into the pane.
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "dash"];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success());
    }

    /// Waits until the screen satisfies `ok`, returning it; fails with the last screen.
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "waited {DEADLINE:?} for {what}; the screen:\n{}",
                screen.trim_end()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A tmux format variable of the pane (`#{alternate_on}`).
    fn var(&self, name: &str) -> String {
        let format = format!("#{{{name}}}");
        text(
            &self
                .run(&["display-message", "-p", "-t", "dash", &format])
                .stdout,
        )
        .trim()
        .to_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// `selflog ingest -` on `store`, reading lines the test writes to its stdin: a writer in
/// another process that commits whenever its input pauses.
struct Writer {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Writer {
    fn start(store: &Path) -> Writer {
        let mut child = common::command(store, &["ingest", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run selflog ingest");
        let stdin = child.stdin.take();
        Writer { child, stdin }
    }

    /// Writes events `from..to` (stamped now, one type in three `clipboard`).
    fn send(&mut self, from: u64, to: u64) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut lines = String::new();
        for i in from..to {
            let ty = ["file_op", "app_launch", "clipboard"][(i % 3) as usize];
            lines.push_str(&format!(
                "{{\"timestamp\": {now}, \"event_type\": \"{ty}\", \"source\": \"Source{i}\", \"data\": {{\"i\": {i}}}}}\n"
            ));
        }
        let stdin = self.stdin.as_mut().expect("open");
        stdin.write_all(lines.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn finish(mut self) -> Output {
        drop(self.stdin.take());
        let out = self.child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        out
    }
}

/// Waits until `inspect stats --json` reports `n` events, and returns its report.
fn stats_when(store: &Path, n: u64) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let out = selflog(store, &["inspect", "stats", "--json"]);
        if out.status.success() {
            let v = json(&out);
            if v["total_events"] == n {
                return v;
            }
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the writer did not commit {n} events: {}",
            text(&out.stdout)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `screen` has `label` followed by `number` as a whole number.
fn shows(screen: &str, label: &str, number: u64) -> bool {
    let needle = format!("{label}{number}");
    screen.match_indices(&needle).any(|(at, _)| {
        !screen[at + needle.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

/// What `inspect stats` reports must be on the screen: the total, each type's count, the
/// segments, the duplicates dropped.
fn assert_shows_stats(screen: &str, stats: &serde_json::Value) {
    let total = stats["total_events"].as_u64().unwrap();
    assert!(shows(screen, "events ", total), "total {total}:\n{screen}");
    for (ty, n) in stats["events_by_type"].as_object().unwrap() {
        let n = n.as_u64().unwrap();
        let row = screen
            .lines()
            .find(|l| l.contains(&format!("│{ty} ")))
            .unwrap_or_else(|| panic!("no row for type {ty}:\n{screen}"));
        assert!(shows(row, " ", n), "type {ty} count {n}: {row}");
    }
    let segments = stats["segments"].as_u64().unwrap();
    assert!(
        screen.contains(&format!("segments     {segments} (")),
        "segments {segments}:\n{screen}"
    );
    let dups = stats["duplicates_dropped"].as_u64().unwrap();
    assert!(
        screen.contains(&format!("duplicates   {dups} dropped")),
        "{screen}"
    );
}

#[test]
fn the_dashboard_follows_a_store_being_written_and_quits_on_q() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let mut writer = Writer::start(&store);
    writer.send(0, 30);
    let stats = stats_when(&store, 30);

    let command = format!(
        "env -u SELFLOG_STORE TZ=UTC NO_COLOR=1 {} --store {} dashboard; echo \"dashboard exited $?\"; stty -a; sleep 600",
        env!("CARGO_BIN_EXE_selflog"),
        store.display()
    );
    let tmux = Tmux::start("live", &command, 160, 50);
    let screen = tmux.wait_for("the first screen", |s| s.contains("storage and health"));
    assert_eq!(tmux.var("alternate_on"), "1", "full screen:\n{screen}");
    let screen = tmux.wait_for("the totals", |s| shows(s, "events ", 30));
    assert_shows_stats(&screen, &stats);
    let pid = writer.child.id();
    tmux.wait_for("the writer alive", |s| {
        s.contains(&format!("alive (pid {pid})"))
    });
    // Rates by event time: all 30 were stamped now.
    assert!(screen.contains("last hour: 30 events;"), "{screen}");

    // More events, committed by the other process, reach the screen.
    writer.send(30, 75);
    let stats = stats_when(&store, 75);
    let screen = tmux.wait_for("the new total", |s| shows(s, "events ", 75));
    assert_shows_stats(&screen, &stats);
    assert!(
        screen.contains("Source74"),
        "the newest event is on top:\n{screen}"
    );

    // `/` filters the tail by text; `t` by type; `?` shows help and any key closes it.
    tmux.keys(&["/"]);
    tmux.wait_for("the text prompt", |s| s.contains("filter tail by text"));
    tmux.keys(&["-l", "Source7"]);
    tmux.keys(&["Enter"]);
    // A capture can catch the pane half repainted (rows of the unfiltered tail below the
    // new ones): wait until every row shown passes the filter; a wrong filter times out.
    let only_rows_with = |s: &str, what: &str| {
        let mut rows = s.lines().filter(|l| l.contains("Source")).peekable();
        rows.peek().is_some() && rows.all(|r| r.contains(what))
    };
    let screen = tmux.wait_for("the filtered tail", |s| {
        s.contains("(filter: text \"Source7\")") && only_rows_with(s, "Source7")
    });
    let rows: Vec<&str> = screen.lines().filter(|l| l.contains("Source")).collect();
    assert!(!rows.is_empty(), "{screen}");
    assert!(rows.iter().all(|r| r.contains("Source7")), "{screen}");
    assert!(screen.contains("Source74") && screen.contains("Source70"));
    tmux.keys(&["c", "t"]);
    tmux.wait_for("the type picker", |s| s.contains("(all types)"));
    // Types are listed most first, ties by name: app_launch, clipboard, file_op (25 each).
    tmux.keys(&["Down", "Down", "Enter"]);
    let screen = tmux.wait_for("the tail by type", |s| {
        s.contains("(filter: type clipboard)") && only_rows_with(s, "clipboard")
    });
    let rows: Vec<&str> = screen.lines().filter(|l| l.contains("Source")).collect();
    assert!(!rows.is_empty(), "{screen}");
    assert!(rows.iter().all(|r| r.contains("clipboard")), "{screen}");
    tmux.keys(&["?"]);
    tmux.wait_for("help", |s| s.contains("help: keys"));
    tmux.keys(&["Tab"]);
    tmux.wait_for("help closed", |s| !s.contains("help: keys"));

    // A resize redraws to the new size.
    assert!(tmux
        .run(&["resize-window", "-t", "dash", "-x", "100", "-y", "30"])
        .status
        .success());
    tmux.wait_for("the smaller screen", |s| {
        s.lines()
            .any(|l| l.starts_with("└") && l.chars().count() == 100)
    });

    tmux.keys(&["q"]);
    let screen = tmux.wait_for("the exit", |s| s.contains("dashboard exited"));
    assert!(screen.contains("dashboard exited 0"), "{screen}");
    assert_eq!(tmux.var("alternate_on"), "0", "main screen back");
    // `stty -a` after the exit: the terminal is in cooked mode again, echo on.
    let after = tmux.wait_for("stty", |s| s.contains("icanon"));
    assert!(
        after.split_whitespace().any(|w| w == "icanon")
            && after.split_whitespace().any(|w| w == "echo"),
        "{after}"
    );
    writer.finish();
}

#[test]
fn sigterm_and_a_missing_terminal_leave_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    Writer::start(&store).finish();
    // Without a terminal the full-screen view refuses, pointing at --once.
    let out = common::command(&store, &["dashboard"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("selflog: the dashboard needs a terminal"),
        "{err}"
    );
    assert!(err.contains("--once"), "{err}");
    // A store that is not there: one line and a hint, as every command.
    let out = selflog(&dir.path().join("nothing"), &["dashboard", "--once"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("selflog: "),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("hint: "));

    let command = format!(
        "env -u SELFLOG_STORE {} --store {} dashboard; echo \"dashboard exited $?\"; sleep 600",
        env!("CARGO_BIN_EXE_selflog"),
        store.display()
    );
    let tmux = Tmux::start("term", &command, 120, 40);
    tmux.wait_for("the first screen", |s| s.contains("storage and health"));
    let pid = text(
        &tmux
            .run(&["display-message", "-p", "-t", "dash", "#{pane_pid}"])
            .stdout,
    );
    // The pane runs a shell; the dashboard is its child.
    let children =
        std::fs::read_to_string(format!("/proc/{}/task/{}/children", pid.trim(), pid.trim()))
            .unwrap();
    let dashboard = children.split_whitespace().next().expect("the dashboard");
    assert!(Command::new("kill")
        .args(["-TERM", dashboard])
        .status()
        .unwrap()
        .success());
    let screen = tmux.wait_for("the exit", |s| s.contains("dashboard exited"));
    assert!(screen.contains("dashboard exited 0"), "{screen}");
    assert_eq!(tmux.var("alternate_on"), "0");
}

/// Whether process `pid` has ended (gone, or a zombie nobody reaped yet).
fn ended(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
    })
}

/// A terminal that goes away (tmux killed, a window closed) ends the dashboard. It used to
/// be left reading end-of-input at full speed forever, deaf to SIGTERM.
#[test]
fn a_terminal_that_goes_away_ends_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    Writer::start(&store).finish();
    let command = format!(
        "exec env -u SELFLOG_STORE {} --store {} dashboard",
        env!("CARGO_BIN_EXE_selflog"),
        store.display()
    );
    let tmux = Tmux::start("hangup", &command, 120, 40);
    tmux.wait_for("the first screen", |s| s.contains("storage and health"));
    let pid = tmux.var("pane_pid");
    assert!(!ended(&pid));
    let _ = tmux.run(&["kill-server"]);
    let start = Instant::now();
    while !ended(&pid) {
        if start.elapsed() > DEADLINE {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("the dashboard (pid {pid}) outlived its terminal by {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A panic (a debug build's test key) still puts the terminal back before its message.
#[test]
fn a_panic_restores_the_terminal_before_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    Writer::start(&store).finish();
    let command = format!(
        "env -u SELFLOG_STORE SELFLOG_DASHBOARD_PANIC_KEY=P {} --store {} dashboard; echo \"dashboard exited $?\"; stty -a; sleep 600",
        env!("CARGO_BIN_EXE_selflog"),
        store.display()
    );
    let tmux = Tmux::start("panic", &command, 120, 40);
    tmux.wait_for("the first screen", |s| s.contains("storage and health"));
    tmux.keys(&["P"]);
    let screen = tmux.wait_for("the exit", |s| s.contains("dashboard exited"));
    assert!(screen.contains("dashboard exited 101"), "{screen}");
    assert!(
        screen.contains("dashboard test panic"),
        "the message is shown:\n{screen}"
    );
    assert_eq!(tmux.var("alternate_on"), "0");
    let after = tmux.wait_for("stty", |s| s.contains("icanon"));
    assert!(
        after.split_whitespace().any(|w| w == "icanon"),
        "cooked mode again:\n{after}"
    );
}

/// A store that lost a segment: `--once` serves the rest with one warning line on stderr,
/// as the read commands do, and `--verify` names the damage in the snapshot.
#[test]
fn once_warns_about_a_lost_segment_and_shows_the_damage_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    let (open, _) = common::small_segments(&store);
    open.close().unwrap();
    std::fs::remove_file(store.join("events-00000002.seg")).unwrap();
    let out = selflog(&store, &["dashboard", "--once", "--verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("selflog: warning: "), "{err}");
    assert!(err.contains("events-00000002.seg"), "{err}");
    let stats = json(&selflog(&store, &["inspect", "stats", "--json"]));
    let got = text(&out.stdout);
    let total = stats["total_events"].as_u64().unwrap();
    assert!(
        got.contains(&format!("events           {total} (")),
        "{got}"
    );
    assert!(got.contains("last verify      DAMAGED at "), "{got}");
}

/// Replaces the text between `start` and the next `end` (or the line's end) in each line
/// containing `start`, so that times and sizes that vary do not make the snapshot differ.
fn mask(text: &str, start: &str, end: &str, with: &str) -> String {
    text.lines()
        .map(|l| match l.find(start) {
            Some(at) => {
                let from = at + start.len();
                let to = l[from..].find(end).map_or(l.len(), |i| from + i);
                format!("{}{with}{}", &l[..from], &l[to..])
            }
            None => l.to_owned(),
        })
        .map(|l| l + "\n")
        .collect()
}

#[test]
fn once_prints_a_plain_text_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s");
    // Fixed events of 2024: no rate of the last hour, the same tail every run.
    let mut input = String::new();
    for i in 0..40u64 {
        let ty = ["file_op", "app_launch", "clipboard", "file_op"][(i % 4) as usize];
        input.push_str(&format!(
            "{{\"timestamp\": {}, \"event_type\": \"{ty}\", \"action\": \"a{}\", \"source\": \"Source{i}\", \"data\": {{\"i\": {i}, \"path\": \"/Users/ada/notes-{i}.md\"}}}}\n",
            1_732_460_000 + i * 60,
            i % 2
        ));
    }
    // One duplicate, dropped.
    let first = input.lines().next().unwrap().to_owned();
    input.push_str(&first);
    input.push('\n');
    let out = common::selflog_stdin(&store, &["ingest", "-"], input.as_bytes());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let out = common::command(&store, &["dashboard", "--once", "--verify"])
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let got = text(&out.stdout);
    assert!(!got.contains('\x1b'), "no escapes in plain text");
    let got = got.replace(&store.display().to_string(), "STORE");
    let got = mask(&got, "selflog dashboard: STORE at ", "\n", "NOW");
    let got = mask(&got, "last commit ", " ago)", "TIME (AGE");
    let got = mask(&got, "disk size        ", " (", "SIZE");
    let got = mask(&got, "sound at ", ": ", "TIME");
    let got = mask(&got, "stats record of ", ")", "TIME");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/dashboard_once.txt");
    if std::env::var_os("SELFLOG_WRITE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(got, want, "dashboard --once changed");

    // The figures are the store's own.
    let stats = json(&selflog(&store, &["inspect", "stats", "--json"]));
    assert_eq!(stats["total_events"], 40);
    assert!(got.contains("events           40 (ids 1..40)"));
    assert!(got.contains(&format!(
        "duplicates       {} dropped",
        stats["duplicates_dropped"]
    )));
}
