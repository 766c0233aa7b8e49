//! Helpers shared by the CLI's integration tests: running the real `selflog` binary and
//! reading what it printed.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The `selflog` command on `store`, with `SELFLOG_STORE` cleared.
pub fn command(store: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_selflog"));
    c.arg("--store")
        .arg(store)
        .args(args)
        .env_remove("SELFLOG_STORE");
    c
}

/// Runs `selflog` to completion.
pub fn selflog(store: &Path, args: &[&str]) -> Output {
    command(store, args).output().expect("run selflog")
}

/// Runs `selflog` with `input` on its stdin.
pub fn selflog_stdin(store: &Path, args: &[&str], input: &[u8]) -> Output {
    let child = command(store, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run selflog");
    feed_and_wait(child, input)
}

/// Writes `input` to the child's stdin from a thread (the child may exit before reading it
/// all), closes it, and waits.
pub fn feed_and_wait(mut child: Child, input: &[u8]) -> Output {
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        if let Err(e) = stdin.write_all(&input) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
        }
    });
    let out = child.wait_with_output().expect("wait");
    feeder.join().expect("feeder");
    out
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", text(&out.stdout)))
}

/// `inspect stats --json`'s `total_events`.
pub fn total_events(store: &Path) -> u64 {
    let out = selflog(store, &["inspect", "stats", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    json(&out)["total_events"].as_u64().expect("total_events")
}

/// Line `i` of a deterministic input: a distinct event with ~200 bytes of data that LZ4
/// cannot shrink much.
pub fn event_line(i: u64) -> String {
    let text: String = (0..200u64)
        .map(|k| char::from(b'a' + u8::try_from((i * 31 + k * k * 7 + k) % 26).unwrap()))
        .collect();
    format!(
        "{{\"timestamp\": {}, \"event_type\": \"t{}\", \"source\": \"test\", \"data\": {{\"i\": {i}, \"text\": \"{text}\"}}}}\n",
        1_732_460_000 + i / 1000,
        i % 3
    )
}

/// Lines `0..n` of [`event_line`].
pub fn event_lines(n: u64) -> Vec<u8> {
    (0..n).flat_map(|i| event_line(i).into_bytes()).collect()
}

/// A tmpfs mounted on a temporary directory, unmounted on drop.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=`), or `None` where that is not allowed
    /// (not root).
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A store of at least 4 small segments of distinct events, written and flushed through the
/// library (the CLI's ingest uses the default 64 MiB segments), still open; and its number
/// of events.
pub fn small_segments(dir: &Path) -> (selflog::Store, u64) {
    let mut c = selflog::Config::default();
    c.segment_len = 64 << 10;
    c.data_len_max = 16 << 10;
    let store = selflog::Store::open(dir, c).unwrap();
    let mut n = 0u64;
    while store.stats().unwrap().segments < 4 {
        for _ in 0..50 {
            n += 1;
            let ts = selflog::Timestamp(1_732_460_000_000_000 + i64::try_from(n).unwrap());
            let data = format!(r#"{{"n":{n},"pad":"{}"}}"#, "x".repeat(200));
            let e = selflog::Event::new(ts, "file_op", None, "Finder", Some(&data)).unwrap();
            store.append(e).unwrap();
        }
        store.flush().unwrap();
    }
    (store, n)
}
