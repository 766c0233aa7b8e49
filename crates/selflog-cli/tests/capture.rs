//! `selflog capture`, the real binary on temporary directories: thousands of scripted file
//! operations read back through `inspect list --type file_op --json` after SIGTERM, in order
//! per file; processes started and ended; coalesced writes counted; excludes and redaction;
//! the stats sidecar; a second instance refused as locked; kill -9 then a restart on the
//! same store losing nothing committed. The daemon's progress is awaited through the store
//! (read-only opens while it writes), never by sleeping a fixed time.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{command, selflog, text};
use serde_json::Value;

/// How long the daemon may take to catch up with a phase of operations.
const CATCH_UP_MAX: Duration = Duration::from_secs(30);

/// A capture daemon under test, with its own store, watched tree and config.
struct Daemon {
    child: Child,
    store: PathBuf,
    err_path: PathBuf,
}

/// A temporary place: `w/` watched, `store/`, `capture.toml`, `stderr*.log`.
struct Place {
    dir: tempfile::TempDir,
}

impl Place {
    fn new(config: &str) -> Place {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join("w")).unwrap();
        fs::write(dir.path().join("capture.toml"), config).unwrap();
        Place { dir }
    }

    fn w(&self) -> PathBuf {
        self.dir.path().join("w")
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn start(&self, extra: &[&str], tag: &str) -> Daemon {
        self.start_on(extra, tag, None)
    }

    /// Starts the daemon with X11 display `display` (none: `DISPLAY` unset).
    fn start_on(&self, extra: &[&str], tag: &str, display: Option<&str>) -> Daemon {
        self.start_with(extra, tag, display, &[])
    }

    /// Starts the daemon with X11 display `display` and environment `envs`.
    fn start_with(
        &self,
        extra: &[&str],
        tag: &str,
        display: Option<&str>,
        envs: &[(&str, &str)],
    ) -> Daemon {
        let err_path = self.dir.path().join(format!("stderr-{tag}.log"));
        let config = self.dir.path().join("capture.toml");
        let w = self.w();
        let mut args = vec![
            "capture",
            "--watch",
            w.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let mut cmd = command(&self.store(), &args);
        cmd.env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg"));
        match display {
            Some(d) => cmd.env("DISPLAY", d),
            None => cmd.env_remove("DISPLAY"),
        };
        cmd.envs(envs.iter().copied());
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&err_path).unwrap())
            .spawn()
            .expect("start selflog capture");
        let d = Daemon {
            child,
            store: self.store(),
            err_path,
        };
        d.wait_for_log("capture: watching");
        d
    }
}

impl Daemon {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.err_path).unwrap_or_default()
    }

    fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + CATCH_UP_MAX;
        while !self.stderr().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "the daemon never logged {needle:?}: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `ready` holds for the store's `file_op` events (oldest first).
    fn wait_for(&self, what: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + CATCH_UP_MAX;
        loop {
            let events = events(&self.store, &["--type", "file_op"]);
            if ready(&events) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon never recorded {what}; stderr: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then the exit status and stdout (the summary).
    fn stop(mut self) -> (Option<i32>, String, String) {
        signal(self.pid(), "TERM");
        let status = self.child.wait().expect("wait for capture");
        let mut out = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            o.read_to_string(&mut out).unwrap();
        }
        (status.code(), out, self.stderr())
    }

    fn kill9(mut self) {
        signal(self.pid(), "KILL");
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Every event matching `filters`, oldest first (id order).
fn events(store: &Path, filters: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "inspect",
        "list",
        "--json",
        "--oldest-first",
        "--limit",
        "1000000",
    ];
    args.extend_from_slice(filters);
    let out = selflog(store, &args);
    if !out.status.success() {
        return Vec::new();
    }
    let mut v: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    v.sort_by_key(|e| e["id"].as_u64());
    v
}

/// Whether `events` hold `action` on `path`.
fn has(events: &[Value], path: &Path, action: &str) -> bool {
    let path = s(path);
    events
        .iter()
        .any(|e| path_of(e) == path && action_of(e) == action)
}

fn path_of(e: &Value) -> &str {
    e["data"]["path"].as_str().unwrap_or("")
}

fn action_of(e: &Value) -> &str {
    e["action"].as_str().unwrap_or("")
}

const CONFIG: &str = "commit_ms = 100\nstats_interval_secs = 1\n";

/// One expected event: the path, the action and, for a move, the old path.
type Expected = (String, &'static str, Option<String>);

/// How many of `expected` the recorded events hold, matched in order per path; and the
/// recorded events no expectation matched.
fn score(expected: &[Expected], recorded: &[Value]) -> (usize, Vec<String>) {
    let mut by_path: HashMap<&str, Vec<&Value>> = HashMap::new();
    for e in recorded {
        by_path.entry(path_of(e)).or_default().push(e);
    }
    let mut next: HashMap<&str, usize> = HashMap::new();
    let mut used: HashSet<(&str, usize)> = HashSet::new();
    let mut held = 0;
    for (path, action, old) in expected {
        let list = by_path.get(path.as_str()).map_or(&[][..], Vec::as_slice);
        let from = next.get(path.as_str()).copied().unwrap_or(0);
        let found = list[from.min(list.len())..].iter().position(|e| {
            action_of(e) == *action
                && old
                    .as_deref()
                    .is_none_or(|o| e["data"]["old_path"].as_str() == Some(o))
        });
        if let Some(i) = found {
            held += 1;
            next.insert(path.as_str(), from + i + 1);
            used.insert((path.as_str(), from + i));
        }
    }
    let mut extra = Vec::new();
    for (path, list) in &by_path {
        for (i, e) in list.iter().enumerate() {
            if !used.contains(&(*path, i)) {
                extra.push(format!("{} {}", action_of(e), path));
            }
        }
    }
    (held, extra)
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The proof: thousands of operations in fresh nested directories (names with
/// spaces and unicode): creates, writes, renames within and across directories, deletes of
/// files and of whole trees; after SIGTERM at least 99.9% are recorded with the right
/// paths and actions, in order per file.
#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one script of operations, phase by phase"
)]
fn thousands_of_file_operations_are_recorded_in_order_per_file() {
    let place = Place::new(CONFIG);
    let d = place.start(&["--no-processes"], "ops");
    let w = place.w();
    let mut expected: Vec<Expected> = Vec::new();
    let dirs_n = 40;
    let files_n = 25;
    // Phase 1: nested directories made and filled at once (their watches come after).
    let mut files: Vec<(usize, PathBuf)> = Vec::new();
    let mut leaves = Vec::new();
    for i in 0..dirs_n {
        let top = w.join(format!("proj {i}"));
        let mid = top.join("Ünïcode dir");
        let leaf = mid.join(format!("leaf-{i} ✓"));
        fs::create_dir_all(&leaf).unwrap();
        for dir in [&top, &mid, &leaf] {
            expected.push((s(dir), "created", None));
        }
        for j in 0..files_n {
            let f = leaf.join(format!("note {j} – é.txt"));
            fs::write(&f, format!("file {i} {j}\n")).unwrap();
            expected.push((s(&f), "created", None));
            files.push((i, f));
        }
        leaves.push(leaf);
    }
    // Each phase runs back to back; between phases the test waits for the daemon to catch
    // up, so that a machine loaded by other work does not turn a phase into an overflow
    // (which the daemon repairs by a rescan, but a rescan cannot tell renames).
    let last = files.last().unwrap().1.clone();
    d.wait_for("the created files", |ev| has(ev, &last, "created"));
    // Phase 2: one write to every file.
    for (_, f) in &files {
        let mut h = fs::OpenOptions::new().append(true).open(f).unwrap();
        std::io::Write::write_all(&mut h, b"more\n").unwrap();
        expected.push((s(f), "modified", None));
    }
    d.wait_for("the writes", |ev| has(ev, &last, "modified"));
    // Phase 3: renames, within a directory (even files) and across (every third).
    let mut renamed: Vec<PathBuf> = Vec::new();
    for (k, (i, f)) in files.iter().enumerate() {
        let to = if k % 3 == 0 {
            leaves[(i + 1) % dirs_n].join(format!("moved {k} from {i}.txt"))
        } else if k % 2 == 0 {
            f.with_file_name(format!("renamed {k}.md"))
        } else {
            renamed.push(f.clone());
            continue;
        };
        fs::rename(f, &to).unwrap();
        expected.push((s(&to), "moved", Some(s(f))));
        renamed.push(to);
    }
    // Phase 3b: files renamed into directories made a moment before, once the daemon
    // recorded them (a rename that beats a new directory's watch is reported as a move
    // out, `deleted`, and a `created` found by the scan: README, section Capture), and
    // directories renamed, then written in under the new name.
    let mut fresh_dirs = Vec::new();
    for k in (0..renamed.len()).step_by(7) {
        let fresh = renamed[k].parent().unwrap().join(format!("fresh {k}"));
        fs::create_dir(&fresh).unwrap();
        expected.push((s(&fresh), "created", None));
        fresh_dirs.push((k, fresh));
    }
    let last = fresh_dirs.last().unwrap().1.clone();
    d.wait_for("the fresh directories", |ev| has(ev, &last, "created"));
    for (k, fresh) in fresh_dirs {
        let f = renamed[k].clone();
        let to = fresh.join(format!("arrived {k}.txt"));
        fs::rename(&f, &to).unwrap();
        expected.push((s(&to), "moved", Some(s(&f))));
        renamed[k] = to;
    }
    for i in 0..dirs_n {
        let top = w.join(format!("moving {i}"));
        fs::create_dir(&top).unwrap();
        fs::write(top.join("inside.txt"), "x").unwrap();
        expected.push((s(&top), "created", None));
        expected.push((s(&top.join("inside.txt")), "created", None));
    }
    let last = w.join(format!("moving {}", dirs_n - 1)).join("inside.txt");
    d.wait_for("the directories to move", |ev| has(ev, &last, "created"));
    for i in 0..dirs_n {
        let from = w.join(format!("moving {i}"));
        let to = w.join(format!("moved dir {i}"));
        fs::rename(&from, &to).unwrap();
        expected.push((s(&to), "moved", Some(s(&from))));
    }
    for i in 0..dirs_n {
        let f = w.join(format!("moved dir {i}")).join("inside.txt");
        fs::write(&f, "rewritten").unwrap();
        expected.push((s(&f), "modified", None));
        let late = w.join(format!("moved dir {i}")).join("late.txt");
        fs::write(&late, "late").unwrap();
        expected.push((s(&late), "created", None));
    }
    // Phase 4: deletes of single files (every fifth), then of whole trees (every fourth
    // top directory, with all below it).
    let mut gone = Vec::new();
    for (k, f) in renamed.iter().enumerate() {
        if k % 5 == 0 {
            fs::remove_file(f).unwrap();
            expected.push((s(f), "deleted", None));
            gone.push(f.clone());
        }
    }
    for i in (0..dirs_n).step_by(4) {
        let top = w.join(format!("proj {i}"));
        let mut below: Vec<PathBuf> = walk(&top);
        // Children go before their parents, as the kernel reports them.
        below.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        fs::remove_dir_all(&top).unwrap();
        for p in below {
            expected.push((s(&p), "deleted", None));
        }
        expected.push((s(&top), "deleted", None));
    }
    let last = w.join(format!("proj {}", (dirs_n - 1) / 4 * 4));
    d.wait_for("the deletes", |ev| has(ev, &last, "deleted"));

    let (code, summary, err) = d.stop();
    assert_eq!(code, Some(0), "{err}");
    assert!(summary.contains("captured "), "{summary}");
    let recorded = events(&place.store(), &["--type", "file_op"]);
    let (held, extra) = score(&expected, &recorded);
    let total = expected.len();
    assert!(total > 3000, "only {total} operations scripted");
    eprintln!(
        "SCORE held {held} of {total}, extra {}: {:?}",
        extra.len(),
        &extra[..extra.len().min(30)]
    );
    assert!(
        held * 1000 >= total * 999,
        "{held} of {total} operations recorded; {} unexpected events, e.g. {:?}",
        extra.len(),
        &extra[..extra.len().min(10)]
    );
    assert!(
        extra.len() * 100 <= total,
        "{} events recorded that no operation explains, e.g. {:?}",
        extra.len(),
        &extra[..extra.len().min(10)]
    );
    // Each recorded file_op names the directory that holds the file as its source.
    for e in &recorded {
        let path = Path::new(path_of(e));
        assert_eq!(
            e["source"].as_str(),
            path.parent().map(|p| p.to_str().unwrap()),
            "{e}"
        );
    }
    // Sizes: every created file still there was recorded with its size.
    for e in &recorded {
        let path = Path::new(path_of(e));
        if action_of(e) == "created" && e["data"]["is_dir"] == false && path.exists() {
            assert!(e["data"]["size"].as_u64().is_some(), "{e}");
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

/// A burst of writes to one file gives at most one `modified` per interval, and every
/// write is counted in the events (`writes`, `writes_before`): none dropped silently.
#[test]
fn a_burst_of_writes_is_coalesced_and_counted() {
    let place = Place::new("commit_ms = 100\ncoalesce_ms = 2000\n");
    let d = place.start(&["--no-processes"], "burst");
    let f = place.w().join("log.txt");
    fs::write(&f, "start\n").unwrap();
    d.wait_for("the created file", |ev| !ev.is_empty());
    let started = Instant::now();
    let writes = 200u64;
    for i in 0..writes {
        let mut h = fs::OpenOptions::new().append(true).open(&f).unwrap();
        std::io::Write::write_all(&mut h, format!("line {i}\n").as_bytes()).unwrap();
    }
    let burst = started.elapsed();
    let ev = d.wait_for("the coalesced writes", |ev| {
        ev.iter()
            .filter(|e| action_of(e) == "modified")
            .filter_map(|e| e["data"]["writes"].as_u64())
            .sum::<u64>()
            >= writes
    });
    let modified: Vec<&Value> = ev.iter().filter(|e| action_of(e) == "modified").collect();
    // One at the first close, then at most one per 2 s interval of the burst.
    let intervals = burst.as_millis() / 2000 + 2;
    assert!(
        modified.len() as u128 <= intervals,
        "{} modified events for a {burst:?} burst",
        modified.len()
    );
    let (code, summary, err) = d.stop();
    assert_eq!(code, Some(0), "{err}");
    assert!(summary.contains("writes coalesced: "), "{summary}");
}

/// Processes started and ended while the daemon runs are recorded with their pid, parent,
/// executable, owner and command line, the line passed through the redaction rules.
#[test]
fn processes_started_and_ended_are_recorded_with_redacted_command_lines() {
    let place = Place::new(CONFIG);
    let d = place.start(&["--no-files"], "proc");
    let mut pids = Vec::new();
    for i in 0..3 {
        // `; true` keeps the shell running beside its `sleep`; `x` and the password are
        // its $0 and $1, in its command line.
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("sleep 2.{i}5; true"))
            .arg("x")
            .arg(format!("--password=hunter{i}"))
            .spawn()
            .unwrap();
        pids.push(child);
    }
    let ids: Vec<u32> = pids.iter().map(Child::id).collect();
    for mut c in pids {
        c.wait().unwrap();
    }
    let deadline = Instant::now() + CATCH_UP_MAX;
    let found = loop {
        let procs = events(&place.store(), &["--type", "process"]);
        let of = |pid: u32, action: &str| {
            procs
                .iter()
                .find(|e| e["data"]["pid"] == pid && action_of(e) == action)
                .cloned()
        };
        let all: Vec<(Value, Value)> = ids
            .iter()
            .filter_map(|pid| Some((of(*pid, "started")?, of(*pid, "exited")?)))
            .collect();
        if all.len() == ids.len() {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "processes not all recorded: {procs:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    for (started, exited) in found {
        assert!(started["id"].as_u64() < exited["id"].as_u64());
        let data = &started["data"];
        let exe = data["exe"].as_str().unwrap();
        assert_eq!(
            Some(exe.rsplit('/').next().unwrap()),
            started["source"].as_str()
        );
        assert_eq!(exited["data"], started["data"]);
        assert_eq!(data["ppid"], std::process::id());
        assert_eq!(data["uid"], rustix_uid());
        let cmdline = data["cmdline"].as_str().unwrap();
        assert!(cmdline.starts_with("sh -c sleep 2."), "{cmdline}");
        assert!(cmdline.ends_with(" x --password=[redacted]"), "{cmdline}");
        assert!(!cmdline.contains("hunter"), "{cmdline}");
    }
    let (code, _, err) = d.stop();
    assert_eq!(code, Some(0), "{err}");
}

fn rustix_uid() -> u64 {
    let out = Command::new("id").arg("-u").output().unwrap();
    text(&out.stdout).trim().parse().unwrap()
}

/// Excluded paths (the defaults, the config's, `--exclude`) are never recorded, nor is
/// anything in an excluded directory; the store's own files are never captured.
#[test]
fn excluded_paths_are_never_recorded() {
    let place = Place::new("commit_ms = 100\nexclude = [\"private\"]\n");
    let d = place.start(&["--no-processes", "--exclude", "*.secret"], "excl");
    let w = place.w();
    fs::create_dir_all(w.join("node_modules/pkg")).unwrap();
    fs::write(w.join("node_modules/pkg/index.js"), "x").unwrap();
    fs::create_dir_all(w.join(".ssh")).unwrap();
    fs::write(w.join(".ssh/id_ed25519"), "key").unwrap();
    fs::create_dir_all(w.join("private/deeper")).unwrap();
    fs::write(w.join("private/deeper/a.txt"), "x").unwrap();
    fs::write(w.join("token.secret"), "x").unwrap();
    fs::write(w.join("kept.txt"), "x").unwrap();
    let kept = s(&w.join("kept.txt"));
    d.wait_for("the kept file", |ev| ev.iter().any(|e| path_of(e) == kept));
    let (code, _, err) = d.stop();
    assert_eq!(code, Some(0), "{err}");
    let recorded = events(&place.store(), &["--type", "file_op"]);
    let paths: Vec<&str> = recorded.iter().map(path_of).collect();
    assert_eq!(paths, [kept.as_str()], "{recorded:?}");
}

/// Past the inotify watch limit the daemon warns once, appends `watch_limit_reached` with
/// the limit, counts the directories it could not watch, and keeps recording in those it
/// watches. The limit is lowered to 4 inside a user namespace of the test's own
/// (`/proc/sys/user/max_inotify_watches` is per namespace), so the machine's is untouched.
#[test]
fn past_the_watch_limit_it_warns_once_and_keeps_going() {
    let place = Place::new(CONFIG);
    let w = place.w();
    for d in ["a", "b", "c", "d", "e", "f", "g"] {
        fs::create_dir(w.join(d)).unwrap();
    }
    let err_path = place.dir.path().join("stderr-limit.log");
    let store = place.store();
    let child = Command::new("unshare")
        .args(["--user", "--map-root-user", "sh", "-c"])
        .arg("echo 4 > /proc/sys/user/max_inotify_watches && exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_selflog"))
        .arg("--store")
        .arg(&store)
        .args(["capture", "--no-processes", "--watch"])
        .arg(&w)
        .arg("--config")
        .arg(place.dir.path().join("capture.toml"))
        .env_remove("SELFLOG_STORE")
        .env_remove("DISPLAY")
        .env("HOME", place.dir.path())
        .env("XDG_CONFIG_HOME", place.dir.path().join("xdg"))
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("run unshare (util-linux)");
    let d = Daemon {
        child,
        store: store.clone(),
        err_path,
    };
    d.wait_for_log("capture: watching");
    let seen = w.join("seen.txt");
    fs::write(&seen, "x").unwrap();
    d.wait_for("a file in a watched directory", |ev| {
        has(ev, &seen, "created")
    });
    let (code, out, err) = d.stop();
    assert_eq!(code, Some(0), "{err}");
    let warning = "the inotify watch limit is reached (4 watches per user)";
    assert_eq!(err.matches(warning).count(), 1, "{err}");
    assert!(out.contains("4 not watched (limit reached)"), "{out}");
    let system = events(&store, &["--type", "system"]);
    let limit: Vec<&Value> = system
        .iter()
        .filter(|e| action_of(e) == "watch_limit_reached")
        .collect();
    assert_eq!(limit.len(), 1, "{system:?}");
    assert_eq!(limit[0]["data"]["max_user_watches"], 4);
    assert_eq!(limit[0]["data"]["watched"], 4);
}

/// A second capture on the same store prints one `locked` line (and its hint) and exits 1;
/// the first one goes on.
#[test]
fn a_second_capture_on_the_same_store_is_refused_as_locked() {
    let place = Place::new(CONFIG);
    let d = place.start(&["--no-processes"], "first");
    let w = place.w();
    let out = command(
        &place.store(),
        &["capture", "--watch", w.to_str().unwrap(), "--no-processes"],
    )
    .env("HOME", place.dir.path())
    .env("XDG_CONFIG_HOME", place.dir.path().join("xdg"))
    .output()
    .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("selflog: store ") && lines[0].contains("is locked"),
        "{err}"
    );
    assert!(lines[0].contains(&d.pid().to_string()), "{err}");
    assert!(lines[1].starts_with("hint: "), "{err}");
    assert!(text(&out.stdout).is_empty());
    fs::write(w.join("after.txt"), "x").unwrap();
    d.wait_for("a file after the refusal", |ev| !ev.is_empty());
    let (code, _, err) = d.stop();
    assert_eq!(code, Some(0), "{err}");
}

/// kill -9 of the daemon, then a restart on the same store: every event committed before
/// the kill is still there, unchanged, the restart says the last run did not stop, and
/// capture resumes.
#[test]
fn kill_9_then_restart_loses_nothing_committed_and_resumes() {
    let place = Place::new(CONFIG);
    let d = place.start(&["--no-processes"], "before");
    let w = place.w();
    for i in 0..300 {
        fs::write(w.join(format!("before {i}.txt")), "x").unwrap();
    }
    d.wait_for("the first files", |ev| ev.len() >= 300);
    let committed = events(&place.store(), &[]);
    d.kill9();
    let d = place.start(&["--no-processes"], "after");
    for i in 0..300 {
        fs::write(w.join(format!("after {i}.txt")), "x").unwrap();
    }
    d.wait_for("the files after the restart", |ev| ev.len() >= 600);
    let (code, _, err) = d.stop();
    assert_eq!(code, Some(0), "{err}");
    let all = events(&place.store(), &[]);
    let by_id: BTreeMap<u64, &Value> = all.iter().map(|e| (e["id"].as_u64().unwrap(), e)).collect();
    for e in &committed {
        assert_eq!(
            by_id.get(&e["id"].as_u64().unwrap()),
            Some(&e),
            "lost or changed: {e}"
        );
    }
    let starts: Vec<&Value> = all
        .iter()
        .filter(|e| e["event_type"] == "system" && action_of(e) == "started")
        .collect();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[0]["data"]["previous_run"], "none");
    assert_eq!(
        starts[1]["data"]["previous_run"],
        "ended without stopping (killed or crashed)"
    );
    let files = all.iter().filter(|e| e["event_type"] == "file_op").count();
    assert_eq!(files, 600);
    let verify = selflog(&place.store(), &["inspect", "verify"]);
    assert!(verify.status.success(), "{}", text(&verify.stdout));
}

/// The daemon's own life is in `system` events (started, stopped), the stats sidecar gets
/// a record every `stats_interval`, and the summary names the events by type.
#[test]
fn system_events_stats_records_and_summary() {
    let place = Place::new(CONFIG);
    let d = place.start(&["--no-processes"], "sys");
    fs::write(place.w().join("a.txt"), "x").unwrap();
    d.wait_for("a file", |ev| !ev.is_empty());
    let deadline = Instant::now() + CATCH_UP_MAX;
    // A stats record that counts the events stored (JSON Lines, oldest first).
    loop {
        let out = selflog(&place.store(), &["inspect", "system-stats", "--json"]);
        let counted = text(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|r| r["total_events"].as_u64() >= Some(2) && r["storage_mb"].as_f64() > Some(0.0));
        if counted {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no stats record counting the events"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, summary, err) = d.stop();
    assert_eq!(code, Some(0), "{err}");
    assert!(summary.contains("file_op 1"), "{summary}");
    assert!(summary.contains("system 2"), "{summary}");
    assert!(
        err.contains("window_change and app_focus not recorded: no X11 display"),
        "{err}"
    );
    let sys = events(&place.store(), &["--type", "system"]);
    let actions: Vec<&str> = sys.iter().map(action_of).collect();
    assert_eq!(actions, ["started", "stopped"]);
    assert_eq!(sys[0]["source"], "selflog-capture");
}

/// A config file with an unknown key, or a `--config` that does not exist, is refused
/// with one line naming the problem and a hint; nothing is created.
#[test]
fn a_bad_config_is_refused_before_anything_is_written() {
    let place = Place::new("wach = [\"/tmp\"]\n");
    let config = place.dir.path().join("capture.toml");
    let out = command(
        &place.store(),
        &["capture", "--config", config.to_str().unwrap()],
    )
    .output()
    .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("selflog: capture: config file") && err.contains("wach"),
        "{err}"
    );
    assert!(
        err.lines().nth(1).is_some_and(|l| l.starts_with("hint: ")),
        "{err}"
    );
    assert!(!place.store().exists());
    let out = command(
        &place.store(),
        &["capture", "--config", "/nonexistent/c.toml"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read config file /nonexistent/c.toml"));
}

/// On an X11 display (Xvfb, when installed) the active window is followed: a window made
/// active is an `app_focus` (with the previous application), a new title of the active
/// window a `window_change`, its title redacted. The windows and the window manager's
/// `_NET_ACTIVE_WINDOW` are played by this test through `x11rb`. It needs Xvfb, which
/// `.ci/run` installs; without it the test fails and says what to install.
#[test]
#[expect(
    clippy::too_many_lines,
    reason = "an X server, two windows and a window manager, played"
)]
fn the_active_window_is_followed_on_x11() {
    use x11rb::connection::Connection as _;
    use x11rb::protocol::xproto::{
        AtomEnum, ConnectionExt as _, CreateWindowAux, PropMode, WindowClass,
    };
    use x11rb::wrapper::ConnectionExt as _;

    let Some(xvfb) = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("Xvfb"))
        .find(|p| p.is_file())
    else {
        panic!("Xvfb is not installed: apt-get install xvfb (.ci/run does)");
    };
    let number = 200 + std::process::id() % 500;
    let display = format!(":{number}");
    let mut server = Command::new(xvfb)
        .args([display.as_str(), "-nolisten", "tcp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start Xvfb");
    // Its socket file appears when Xvfb binds it, before it listens (and a stale one of an
    // earlier server of the same number may be there): connect until it answers.
    let deadline = Instant::now() + CATCH_UP_MAX;
    let (conn, screen) = loop {
        match x11rb::connect(Some(&display)) {
            Ok(connected) => break connected,
            Err(e) => assert!(
                Instant::now() < deadline,
                "Xvfb never accepted a connection on {display}: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let root = conn.setup().roots[screen].root;
    let atom = |name: &str| {
        conn.intern_atom(false, name.as_bytes())
            .unwrap()
            .reply()
            .unwrap()
            .atom
    };
    let (active, net_name, utf8, net_pid) = (
        atom("_NET_ACTIVE_WINDOW"),
        atom("_NET_WM_NAME"),
        atom("UTF8_STRING"),
        atom("_NET_WM_PID"),
    );
    let window = |class: &[u8], title: &str, pid: u32| {
        let id = conn.generate_id().unwrap();
        conn.create_window(
            0,
            id,
            root,
            0,
            0,
            100,
            100,
            0,
            WindowClass::INPUT_OUTPUT,
            0,
            &CreateWindowAux::new(),
        )
        .unwrap();
        conn.change_property8(
            PropMode::REPLACE,
            id,
            AtomEnum::WM_CLASS,
            AtomEnum::STRING,
            class,
        )
        .unwrap();
        conn.change_property8(PropMode::REPLACE, id, net_name, utf8, title.as_bytes())
            .unwrap();
        conn.change_property32(PropMode::REPLACE, id, net_pid, AtomEnum::CARDINAL, &[pid])
            .unwrap();
        id
    };
    let editor = window(b"editor\0Editor\0", "notes.md – Editor", 4242);
    let browser = window(b"browser\0Browser\0", "Inbox", 4343);
    conn.flush().unwrap();
    let activate = |id: u32| {
        conn.change_property32(PropMode::REPLACE, root, active, AtomEnum::WINDOW, &[id])
            .unwrap();
        conn.flush().unwrap();
    };

    let place = Place::new(CONFIG);
    let d = place.start_on(&["--no-processes", "--no-files"], "x11", Some(&display));
    let windows = |store: &Path| {
        let mut v = events(store, &["--type", "app_focus"]);
        v.extend(events(store, &["--type", "window_change"]));
        v.sort_by_key(|e| e["id"].as_u64());
        v
    };
    let wait = |what: &str, n: usize| {
        let deadline = Instant::now() + CATCH_UP_MAX;
        loop {
            let v = windows(&place.store());
            if v.len() >= n {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "never recorded {what}: {v:?}; {}",
                d.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    activate(editor);
    wait("the editor's focus", 1);
    conn.change_property8(
        PropMode::REPLACE,
        editor,
        net_name,
        utf8,
        "deploy --token=s3cret".as_bytes(),
    )
    .unwrap();
    conn.flush().unwrap();
    wait("the editor's new title", 2);
    activate(browser);
    let v = wait("the browser's focus", 3);
    let (code, _, err) = d.stop();
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!("\"windows\":\"x11 {display}\"")),
        "{err}"
    );
    let summary: Vec<(&str, &str, &str)> = v
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap(),
                action_of(e),
                e["source"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("app_focus", "focused", "Editor"),
            ("window_change", "title_changed", "Editor"),
            ("app_focus", "focused", "Browser"),
        ]
    );
    assert_eq!(v[0]["data"]["window_title"], "notes.md – Editor");
    assert_eq!(v[0]["data"]["pid"], 4242);
    assert_eq!(v[1]["data"]["title"], "deploy --token=[redacted]");
    assert_eq!(v[1]["data"]["previous_title"], "notes.md – Editor");
    assert_eq!(v[2]["data"]["previous_app"], "Editor");
    assert_eq!(v[2]["data"]["window_id"], browser);
}

/// When file events are lost on the way into the daemon (its queue from `notify` is made
/// tiny here, `SELFLOG_CAPTURE_QUEUE_EVENTS=2`, so a burst overflows it), it appends a
/// `system` `overflow` event, walks the tree again, and every file made in the burst is
/// recorded all the same (created, by its own event or by the rescan).
#[test]
fn lost_events_are_reported_and_repaired_by_a_rescan() {
    let place = Place::new(CONFIG);
    let d = place.start_with(
        &["--no-processes"],
        "overflow",
        None,
        &[("SELFLOG_CAPTURE_QUEUE_EVENTS", "2")],
    );
    let w = place.w();
    let files: Vec<PathBuf> = (0..400).map(|i| w.join(format!("burst {i}.txt"))).collect();
    for f in &files {
        fs::write(f, "x").unwrap();
    }
    d.wait_for("the burst", |ev| {
        files.iter().all(|f| has(ev, f, "created"))
    });
    let (code, summary, err) = d.stop();
    assert_eq!(code, Some(0), "{err}");
    let sys = events(&place.store(), &["--type", "system"]);
    let actions: Vec<&str> = sys.iter().map(action_of).collect();
    assert!(actions.contains(&"overflow"), "{actions:?}; {err}");
    assert!(actions.contains(&"rescan_done"), "{actions:?}");
    assert!(
        err.contains("file events were lost (daemon queue overflow)"),
        "{err}"
    );
    assert!(!summary.contains("overflows: 0"), "{summary}");
    let recorded = events(&place.store(), &["--type", "file_op"]);
    for f in &files {
        let n = recorded
            .iter()
            .filter(|e| path_of(e) == s(f) && action_of(e) == "created")
            .count();
        assert_eq!(n, 1, "{} created {n} times", f.display());
    }
}
