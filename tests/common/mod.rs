//! Helpers shared by the tests that kill child processes: a mixing function for
//! deterministic streams, the child's protocol lines, a child that is always reaped, and
//! the crash tests' knobs.
#![allow(dead_code, reason = "each test binary uses the helpers it needs")]

use std::io::BufReader;
use std::io::Write as _;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

/// `SplitMix64`'s finalizer: a well-mixed function of `x`.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// This test binary, run on the single test `test`, with `env_name` naming the store.
pub fn child_command(test: &str, env_name: &str, store: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(env_name, store);
    cmd
}

/// Prints one protocol line for the parent and pushes it out at once. The marker finds it
/// in the child's output, where libtest may have written `test name ... ` before it.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "@@ {line}").unwrap();
    out.flush().unwrap();
}

/// The protocol line in one line of a child's output, if it holds one.
pub fn said(line: &str) -> Option<&str> {
    line.split_once("@@ ").map(|(_, msg)| msg.trim())
}

/// A child process that is killed and reaped if the test ends before it does.
pub struct Reaper(pub Child);

impl Reaper {
    /// Starts `cmd` with its output piped; returns the child and its standard output.
    pub fn spawn_piped(mut cmd: Command) -> (Reaper, BufReader<ChildStdout>) {
        let mut child = Reaper(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let out = BufReader::new(child.0.stdout.take().unwrap());
        (child, out)
    }

    /// What the child wrote on its standard error (when it was piped).
    pub fn stderr_text(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How many kills a crash test makes: `SELFLOG_CRASH_ITERS`, or `default`.
pub fn crash_iters(default: u64) -> u64 {
    std::env::var("SELFLOG_CRASH_ITERS")
        .map_or(default, |v| v.parse().expect("SELFLOG_CRASH_ITERS"))
}

/// The seed of a crash test's kill points: `SELFLOG_CRASH_SEED` (to replay a run), or one
/// from the clock. Tests print it.
pub fn crash_seed() -> u64 {
    std::env::var("SELFLOG_CRASH_SEED").map_or_else(
        |_| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            t.as_secs() ^ u64::from(t.subsec_nanos())
        },
        |v| v.parse().expect("SELFLOG_CRASH_SEED"),
    )
}

/// The pattern and stats streams after a kill, read through `ro`: pattern ids increase and
/// each pattern is the one `pattern_of` derives from the event it is about; every
/// acknowledged pattern (`acked`: pattern id -> event id) is there, about its event; the
/// stats records are in time order.
pub fn check_sidecars(
    ro: &selflog::Store,
    acked: &std::collections::BTreeMap<u64, u64>,
    pattern_of: fn(u64) -> (String, String),
    ctx: &str,
) {
    let patterns = ro.patterns(&selflog::PatternFilter::default()).unwrap();
    let mut prev = 0;
    for p in &patterns {
        assert!(p.id > prev, "{ctx}: pattern ids {prev} then {}", p.id);
        prev = p.id;
        let after = p.event_id.unwrap().0;
        let (kind, data) = pattern_of(after);
        assert_eq!(
            (p.pattern_type.as_str(), p.pattern_data.as_str()),
            (kind.as_str(), data.as_str()),
            "{ctx}: pattern {}",
            p.id
        );
    }
    for (&pid, &after) in acked {
        let p = patterns.iter().find(|p| p.id == pid);
        assert_eq!(
            p.and_then(|p| p.event_id),
            Some(selflog::EventId(after)),
            "{ctx}: acknowledged pattern {pid} about event {after}"
        );
    }
    let records = ro.system_stats(None, None).unwrap();
    assert!(
        records.windows(2).all(|w| w[0].timestamp <= w[1].timestamp),
        "{ctx}: stats records out of order"
    );
}
