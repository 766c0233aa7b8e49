//! Golden files: a store written by format version 1 must stay readable, byte for byte, by
//! every later version, and the spec's worked examples must match the encoder.
//!
//! `tests/golden/v1/store` was written once by `SELFLOG_WRITE_GOLDEN=1 cargo test --test
//! golden`; `tests/golden/v1/events.jsonl` is its expected content. Never regenerate them
//! for a format change: a new version gets a new directory. `tests/golden/v2/store` is the
//! v1 store with its sealed segment compacted (segment version 2), written once the same
//! way (`SELFLOG_WRITE_GOLDEN_V2=1`); it must read back as the same events.

use std::path::{Path, PathBuf};

use selflog::{Config, Event, Store, Timestamp};

const T0: i64 = 1_732_460_000_000_000;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v1")
}

fn config() -> Config {
    let mut c = Config::default();
    c.segment_len = 64 << 10;
    c.data_len_max = 16 << 10;
    // Segments stay as written: the frames are compared byte for byte.
    c.compaction_level = None;
    c
}

/// The golden events: unicode, no action, no data, compressed data, late timestamps, and
/// enough bytes to seal a 64 KiB segment.
fn golden_events() -> Vec<Event> {
    (0u32..320)
        .map(|i| {
            let ts = T0 + i64::from(i) * 1_000_000 - if i % 9 == 4 { 3_500_000 } else { 0 };
            let types = ["file_op", "app_launch", "clipboard", "ウィンドウ"];
            let action = match i % 4 {
                0 => None,
                1 => Some("modified"),
                2 => Some("launched"),
                _ => Some("copied ✂"),
            };
            let source = format!("source-{}", i % 5);
            let data = match i % 6 {
                0 => None,
                1 => Some(format!(
                    r#"{{"text":"{}","n":{i}}}"#,
                    "lorem ipsum ".repeat(300)
                )),
                _ => Some(format!(
                    r#"{{"path":"/Users/ada/{i}/{}","title":"Ünïcode — 🦀 {i}","size":{}}}"#,
                    (0..200)
                        .map(|k| char::from(b'a' + u8::try_from((k * 7 + i) % 26).unwrap()))
                        .collect::<String>(),
                    i * 1000
                )),
            };
            Event::new(
                Timestamp(ts),
                types[i as usize % 4],
                action,
                source,
                data.as_deref(),
            )
            .unwrap()
        })
        .collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

fn write_store(dir: &Path) {
    let store = Store::open(dir, config()).unwrap();
    for e in golden_events() {
        store.append(e).unwrap();
    }
    store.close().unwrap();
}

/// The newest commit slot's committed length: `format-spec/FORMAT.md#commit-slot`.
fn committed_len(seg: &[u8]) -> usize {
    let slot = |off: usize| {
        let seq = u64::from_le_bytes(seg[off..off + 8].try_into().unwrap());
        let len = u64::from_le_bytes(seg[off + 8..off + 16].try_into().unwrap());
        (seq, len)
    };
    let (a, b) = (slot(64), slot(120));
    usize::try_from(if a.0 > b.0 { a.1 } else { b.1 }).unwrap()
}

#[test]
fn golden_v1_store_reads_back_exactly() {
    let golden = golden_dir();
    if std::env::var_os("SELFLOG_WRITE_GOLDEN").is_some() {
        let store_dir = golden.join("store");
        let _ = std::fs::remove_dir_all(&store_dir);
        write_store(&store_dir);
        let _ = std::fs::remove_file(store_dir.join("LOCK"));
        let ro = Store::open_read_only(&store_dir).unwrap();
        let lines: Vec<String> = ro
            .scan()
            .unwrap()
            .map(|e| selflog::jsonl::to_line(&e.unwrap()))
            .collect();
        std::fs::write(golden.join("events.jsonl"), lines.join("\n") + "\n").unwrap();
    }
    let store_dir = golden.join("store");
    let ro = Store::open_read_only(&store_dir).expect("golden store opens");
    let got: Vec<String> = ro
        .scan()
        .unwrap()
        .map(|e| selflog::jsonl::to_line(&e.unwrap()))
        .collect();
    let want: Vec<String> = std::fs::read_to_string(golden.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(got, want, "golden store content changed");
    let events = golden_events();
    for (line, e) in got.iter().zip(&events) {
        assert_eq!(&selflog::jsonl::parse_line(line.as_bytes()).unwrap(), e);
    }
    assert_eq!(got.len(), events.len());
    let report = selflog::verify(&store_dir).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(
        segment_files(&store_dir).len() >= 2,
        "golden store has a sealed segment"
    );
}

#[test]
fn encoder_still_writes_the_golden_frames_byte_for_byte() {
    // Where a segment rolls depends on how much room the writer keeps for the footer, which
    // may change without a format change; the frames of the first segment, up to the shorter
    // of the two, must not.
    let tmp = tempfile::tempdir().unwrap();
    let fresh = tmp.path().join("s");
    write_store(&fresh);
    let g = std::fs::read(&segment_files(&golden_dir().join("store"))[0]).unwrap();
    let n = std::fs::read(&segment_files(&fresh)[0]).unwrap();
    let common = committed_len(&g).min(committed_len(&n));
    assert!(
        common > 32 << 10,
        "a substantial prefix is compared ({common} bytes)"
    );
    assert_eq!(g[256..common], n[256..common], "frames differ");
    // Headers differ only in creation time (offset 48).
    assert_eq!(g[..40], n[..40], "segment header fields");
}

/// The hex blocks after `<!-- golden: NAME -->` in the format spec.
fn spec_hex(name: &str) -> Vec<u8> {
    let spec = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("format-spec/FORMAT.md"),
    )
    .unwrap();
    let marker = format!("<!-- golden: {name} -->");
    let at = spec
        .find(&marker)
        .unwrap_or_else(|| panic!("{marker} missing from FORMAT.md"));
    let rest = &spec[at..];
    let start = rest.find("```hex").expect("hex block") + "```hex".len();
    let end = start + rest[start..].find("```").expect("end of hex block");
    rest[start..end]
        .split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect()
}

#[test]
fn spec_worked_examples_match_the_encoder() {
    assert_eq!(
        spec_hex("string-frame"),
        selflog::fuzzing::encode_string_frame(0, "file_op")
    );
    let event = selflog::fuzzing::encode_event_frame(
        0,
        0,
        (0, 1, Some(2)),
        0x0123_4567_89ab_cdef,
        Some(br#"{"path":"/tmp/a.txt"}"#),
    );
    assert_eq!(spec_hex("event-frame"), event);
}

/// The compacted golden store: the v1 store's sealed segment rewritten as a version-2
/// (compacted) segment. It must read back exactly the v1 store's events and verify clean.
#[test]
fn golden_v2_compacted_store_reads_back_exactly() {
    let v2 = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v2/store");
    if std::env::var_os("SELFLOG_WRITE_GOLDEN_V2").is_some() {
        let _ = std::fs::remove_dir_all(&v2);
        std::fs::create_dir_all(&v2).unwrap();
        for e in std::fs::read_dir(golden_dir().join("store")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), v2.join(e.file_name())).unwrap();
        }
        let store = Store::open(&v2, config()).unwrap();
        let done = store.compact().unwrap();
        assert!(!done.is_empty());
        store.close().unwrap();
        let _ = std::fs::remove_file(v2.join("LOCK"));
    }
    let compacted: Vec<PathBuf> = segment_files(&v2)
        .into_iter()
        .filter(|p| std::fs::read(p).unwrap()[8..12] == 2u32.to_le_bytes())
        .collect();
    assert!(
        !compacted.is_empty(),
        "the golden v2 store has a compacted segment"
    );
    let ro = Store::open_read_only(&v2).expect("golden v2 store opens");
    let got: Vec<String> = ro
        .scan()
        .unwrap()
        .map(|e| selflog::jsonl::to_line(&e.unwrap()))
        .collect();
    let want: Vec<String> = std::fs::read_to_string(golden_dir().join("events.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(got, want, "golden v2 store content");
    let report = selflog::verify(&v2).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // A search that only the compacted segment answers goes through its filters.
    let hits = ro.query().text("lorem ipsum").count().unwrap();
    assert_eq!(
        hits,
        want.iter().filter(|l| l.contains("lorem ipsum")).count() as u64
    );
}
