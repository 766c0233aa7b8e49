//! Segment continuity through the `selflog` binary (issue 20): a deleted segment makes
//! `inspect verify` name it and exit 1, `ingest` refuse with one line pointing to salvage,
//! and read commands serve the rest with one warning line on stderr.

use std::path::Path;

mod common;

use common::{selflog_stdin as selflog, text};

/// A store of several small segments, written through the library (the CLI's ingest uses
/// the default 64 MiB segments).
fn build(dir: &Path) -> u64 {
    let (store, n) = common::small_segments(dir);
    store.close().unwrap();
    n
}

/// Issue 20: `rm events-00000002.seg` (a sealed middle segment), then `inspect verify` said
/// "sound" and exited 0, and `ingest` appended as if nothing happened.
#[test]
fn removing_a_sealed_middle_segment_fails_verify_and_ingest_and_warns_readers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let total = build(&dir);
    let seg = dir.join("events-00000002.seg");
    std::fs::remove_file(&seg).unwrap();

    let out = selflog(&dir, &["inspect", "verify"], b"");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("events-00000002.seg") && stdout.contains("segment 2 is missing: events "),
        "{stdout}"
    );
    assert!(stdout.contains("DAMAGED"), "{stdout}");

    let out = selflog(&dir, &["inspect", "verify", "--json"], b"");
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sound"], false);

    let line = br#"{"timestamp": 1732460000, "event_type": "t", "source": "x"}"#;
    let out = selflog(&dir, &["ingest"], line);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("selflog: store ")
            && stderr.contains("is incomplete: ")
            && stderr.contains("segment 2 is missing")
            && stderr.contains("run `selflog salvage --to NEW_DIR`"),
        "{stderr}"
    );

    let out = selflog(&dir, &["inspect", "stats", "--json"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one warning line: {stderr}");
    assert!(
        stderr.starts_with("selflog: warning: ") && stderr.contains("segment 2 is missing"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let served = v["total_events"].as_u64().unwrap();
    assert!(served > 0 && served < total, "{served} of {total}");
}

/// Issue 20: `rm` the newest segment, then `ingest` one event: it was stored under an id an
/// earlier event had. Now ingest refuses, and the store is unchanged.
#[test]
fn removing_the_newest_segment_makes_ingest_refuse() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    build(&dir);
    let segments = selflog::Store::open_read_only(&dir)
        .unwrap()
        .segments()
        .unwrap();
    let newest = segments.last().unwrap().path.file_name().unwrap();
    let newest = newest.to_string_lossy().into_owned();
    std::fs::remove_file(dir.join(&newest)).unwrap();
    let line = br#"{"timestamp": 1732460000, "event_type": "t", "source": "x"}"#;
    let out = selflog(&dir, &["ingest"], line);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&newest) && stderr.contains("it was the newest segment"),
        "{stderr}"
    );
    assert!(!dir.join(&newest).exists(), "nothing was written");
    let out = selflog(&dir, &["inspect", "verify"], b"");
    assert_eq!(out.status.code(), Some(1));
}
