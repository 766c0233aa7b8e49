//! Segment files that cannot be read at all, through the `selflog` binary (issue 20): a
//! zeroed header or a sealed segment cut short made every read command fail, patterns and
//! system stats too. Now read commands serve the other segments with one warning line on
//! stderr naming the file and the events lost, `inspect verify` names it and exits 1, and
//! `ingest` refuses with one line pointing to salvage.

use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

mod common;

use common::{selflog_stdin as selflog, text};

/// A store of at least 4 small segments, with a pattern and a system stats record, written
/// through the library (the CLI's ingest uses the default 64 MiB segments). Returns the
/// number of events.
fn build(dir: &Path) -> u64 {
    let (store, n) = common::small_segments(dir);
    store
        .record_pattern(&selflog::NewPattern::new("burst", 0.5, "{}").about(selflog::EventId(1)))
        .unwrap();
    store
        .record_system_stats(&selflog::SystemStats {
            timestamp: selflog::Timestamp(1_732_460_000_000_000),
            total_events: n,
            events_per_second: 1.5,
            active_embryos: 3,
            avg_fitness: 0.25,
            storage_mb: 1.0,
        })
        .unwrap();
    store.flush().unwrap();
    store.close().unwrap();
    n
}

/// Events of segment 2, read before it is damaged.
fn count_of_segment_2(dir: &Path) -> u64 {
    selflog::Store::open_read_only(dir)
        .unwrap()
        .segments()
        .unwrap()
        .into_iter()
        .find(|s| s.segment_id == 2)
        .unwrap()
        .events
}

fn segment_2(dir: &Path) -> PathBuf {
    dir.join("events-00000002.seg")
}

/// Everything the binary must do with segment 2 unreadable for `why`, in a store of
/// `total` events of which segment 2 held `lost`.
fn check_commands(dir: &Path, total: u64, lost: u64, why: &str) {
    if let Ok(to) = std::env::var("KEEP_STORE") {
        let _ = std::process::Command::new("cp")
            .arg("-r")
            .arg(dir)
            .arg(format!("{to}-{}", why.len()))
            .status();
    }
    let file = "events-00000002.seg";
    let named =
        |s: &str| s.contains(file) && s.contains(&format!("segment 2 is unreadable: {why}"));

    let out = selflog(dir, &["inspect", "stats", "--json"], b"");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one warning line: {stderr}");
    assert!(
        stderr.starts_with("selflog: warning: ") && named(&stderr) && stderr.contains("events "),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total_events"].as_u64(), Some(total - lost));

    let out = selflog(
        dir,
        &["inspect", "list", "--json", "--limit", "100000"],
        b"",
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(named(&stderr), "{stderr}");
    assert_eq!(text(&out.stdout).lines().count() as u64, total - lost);

    for args in [
        &["inspect", "search", "finder"][..],
        &["inspect", "get", "1"],
        &["inspect", "segments"],
        &["replay"],
    ] {
        let out = selflog(dir, args, b"");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(named(&text(&out.stderr)), "{args:?}: {}", text(&out.stderr));
    }

    let out = selflog(dir, &["inspect", "patterns", "--json"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 1, "the pattern is there");
    let out = selflog(dir, &["inspect", "system-stats", "--json"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).lines().count() >= 1,
        "the stats record is there"
    );

    let out = selflog(dir, &["inspect", "verify"], b"");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(named(&stdout) && stdout.contains("DAMAGED"), "{stdout}");
    assert!(stdout.contains(&format!("({lost} events")), "{stdout}");

    let line = br#"{"timestamp": 1732460000, "event_type": "t", "source": "x"}"#;
    let out = selflog(dir, &["ingest"], line);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("selflog: store ")
            && stderr.contains("is incomplete: ")
            && named(&stderr)
            && stderr.contains("run `selflog salvage --to NEW_DIR`"),
        "{stderr}"
    );
}

/// Issue 20: a segment's 256-byte header zeroed: every read command failed.
#[test]
fn zeroed_segment_header_read_commands_serve_the_rest_verify_and_ingest_refuse() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let total = build(&dir);
    let lost = count_of_segment_2(&dir);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(segment_2(&dir))
        .unwrap();
    f.write_all_at(&[0u8; 256], 0).unwrap();
    check_commands(&dir, total, lost, "its header is damaged");
}

/// Issue 20: a sealed segment truncated: every read command failed, patterns and
/// system-stats too.
#[test]
fn truncated_sealed_segment_read_commands_serve_the_rest_verify_and_ingest_refuse() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let total = build(&dir);
    let lost = count_of_segment_2(&dir);
    let path = segment_2(&dir);
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len / 2).unwrap();
    check_commands(&dir, total, lost, "the file is cut short");
}
