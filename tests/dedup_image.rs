//! The dedup window image (`dedup.window`): a clean close writes it, the next writable open
//! reads it instead of the segments and reads only the events stored after it, and an
//! image that does not fit the store (damaged, truncated, foreign, of another window size,
//! of other events, newer than the log) is refused with its reason and the window rebuilt,
//! so that deduplication answers the same whichever way the window was made. One test
//! kills a real writer process after the image was written.

mod common;

use std::path::Path;

use common::{child_command, said, Reaper};
use selflog::{Appended, Config, Event, EventId, Store, Timestamp};

const CHILD_ENV: &str = "SELFLOG_IMAGE_CHILD";
const T0: i64 = 1_732_460_000_000_000;
const IMAGE: &str = "dedup.window";

fn event(i: u64) -> Event {
    Event::new(
        Timestamp(T0 + i64::try_from(i).unwrap() * 1000),
        "app_switch",
        Some("focus"),
        "Dock",
        Some(&format!(r#"{{"i":{i},"app":"Safari"}}"#)),
    )
    .unwrap()
}

fn config(window: usize) -> Config {
    let mut c = Config::default();
    c.segment_len = 256 << 10;
    c.data_len_max = 16 << 10;
    c.dedup_window = window;
    c.sidecars = false;
    c
}

/// A store at `path` holding events `1..=n`, closed cleanly.
fn store_with(path: &Path, n: u64, window: usize) {
    let store = Store::open(path, config(window)).unwrap();
    for i in 1..=n {
        assert_eq!(store.append(event(i)).unwrap(), Appended::New(EventId(i)));
    }
    store.close().unwrap();
}

/// Re-sends events `1..=n + 10`: those in the window (the newest `window` of `1..=n`) are
/// duplicates of their originals, older ones and the 10 new ones are stored anew.
fn resend_matches(store: &Store, n: u64, window: u64) {
    let mut next = n + 1;
    for i in (n.saturating_sub(window) + 1)..=n + 10 {
        let got = store.append(event(i)).unwrap();
        if i <= n {
            assert_eq!(got, Appended::Duplicate(EventId(i)), "event {i}");
        } else {
            assert_eq!(got, Appended::New(EventId(next)), "event {i}");
            next += 1;
        }
    }
    // Just outside the window: stored again.
    if n > window {
        let i = n - window;
        assert!(
            matches!(store.append(event(i)).unwrap(), Appended::New(_)),
            "event {i} is outside the window"
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_clean_close_leaves_an_image_the_next_open_reads_instead_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    store_with(&path, 3000, 1000);
    let image = path.join(IMAGE);
    let mode = std::os::unix::fs::PermissionsExt::mode(&image.metadata().unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the image is private");
    let store = Store::open(&path, config(1000)).unwrap();
    let report = store.open_report();
    assert_eq!(report.dedup_image_id, Some(3000));
    assert_eq!(report.dedup_image_rejected, None);
    assert_eq!(
        report.dedup_events_read, 0,
        "nothing stored after the image"
    );
    resend_matches(&store, 3000, 1000);
    drop(store);
    assert!(
        !path.join(format!("{IMAGE}.tmp")).exists(),
        "no temporary file left"
    );
}

#[test]
fn events_stored_after_the_image_are_read_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    store_with(&path, 2000, 1000);
    // A writer that appends 300 more and is then copied mid-run (as a crash leaves it:
    // the log past the image, the image of the earlier close).
    let store = Store::open(&path, config(1000)).unwrap();
    for i in 2001..=2300 {
        store.append(event(i)).unwrap();
    }
    store.flush().unwrap();
    let crashed = dir.path().join("crashed");
    copy_dir(&path, &crashed);
    drop(store);
    let store = Store::open(&crashed, config(1000)).unwrap();
    let report = store.open_report();
    assert_eq!(report.dedup_image_id, Some(2000));
    assert_eq!(report.dedup_events_read, 300);
    resend_matches(&store, 2300, 1000);
}

/// Opens `path` and checks that the image was refused for a reason containing `why`, that
/// the whole window was read from the log instead, and that deduplication is intact.
fn refused_and_rebuilt(path: &Path, n: u64, window: usize, why: &str) {
    let store = Store::open(path, config(window)).unwrap();
    let report = store.open_report().clone();
    assert_eq!(report.dedup_image_id, None, "{report:?}");
    let reason = report.dedup_image_rejected.unwrap_or_default();
    assert!(
        reason.contains(IMAGE) && reason.contains(why),
        "reason {reason:?} should name the file and say {why:?}"
    );
    assert_eq!(report.dedup_events_read, n.min(window as u64));
    resend_matches(&store, n, window as u64);
}

/// A change made to an image's bytes.
type Damage = fn(&mut Vec<u8>);

#[test]
fn a_damaged_image_is_refused_and_the_window_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, Damage, &str); 6] = [
        ("entry", |b| b[64 + 100] ^= 0x10, "checksum"),
        ("header", |b| b[41] ^= 1, "checksum"),
        ("count", |b| *b.last_mut().unwrap() ^= 0x80, "checksum"),
        ("truncated", |b| b.truncate(b.len() - 1), "bytes"),
        ("empty", Vec::clear, "bytes"),
        (
            "foreign",
            |b| b.iter_mut().for_each(|x| *x = b'x'),
            "not a dedup window image",
        ),
    ];
    for (name, damage, why) in cases {
        let path = dir.path().join(name);
        store_with(&path, 1500, 1000);
        let mut bytes = std::fs::read(path.join(IMAGE)).unwrap();
        damage(&mut bytes);
        std::fs::write(path.join(IMAGE), bytes).unwrap();
        refused_and_rebuilt(&path, 1500, 1000, why);
    }
}

#[test]
fn an_image_of_another_window_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    store_with(&path, 1500, 1000);
    refused_and_rebuilt(&path, 1500, 4000, "bytes");
}

#[test]
fn an_image_newer_than_the_log_or_of_other_events_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // An older copy of a store given the image of its later close.
    let path = dir.path().join("s");
    store_with(&path, 1200, 1000);
    let older = dir.path().join("older");
    copy_dir(&path, &older);
    let store = Store::open(&path, config(1000)).unwrap();
    for i in 1201..=1300 {
        store.append(event(i)).unwrap();
    }
    store.close().unwrap();
    std::fs::copy(path.join(IMAGE), older.join(IMAGE)).unwrap();
    refused_and_rebuilt(&older, 1200, 1000, "past the store's last");

    // A store of as many events, but other ones, given that image.
    let other = dir.path().join("other");
    let store = Store::open(&other, config(1000)).unwrap();
    for i in 1..=1300 {
        store.append(event(i + 100_000)).unwrap();
    }
    store.close().unwrap();
    std::fs::copy(path.join(IMAGE), other.join(IMAGE)).unwrap();
    let store = Store::open(&other, config(1000)).unwrap();
    let reason = store.open_report().dedup_image_rejected.clone();
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.contains("is not the one")),
        "{reason:?}"
    );
    assert_eq!(
        store.append(event(100_000 + 1300)).unwrap(),
        Appended::Duplicate(EventId(1300))
    );
}

#[test]
fn a_window_short_of_full_leaves_no_image() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    store_with(&path, 999, 1000);
    assert!(!path.join(IMAGE).exists());
    let store = Store::open(&path, config(1000)).unwrap();
    assert_eq!(store.open_report().dedup_events_read, 999);
    store.append(event(1000)).unwrap();
    store.close().unwrap();
    assert!(path.join(IMAGE).exists(), "full now");
}

#[test]
fn turning_deduplication_off_removes_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    store_with(&path, 1000, 1000);
    assert!(path.join(IMAGE).exists());
    let store = Store::open(&path, config(0)).unwrap();
    assert!(!path.join(IMAGE).exists());
    store.close().unwrap();
    assert!(
        !path.join(IMAGE).exists(),
        "nothing to write without a window"
    );
}

/// The child: opens a store that has an image, appends and flushes, says how far it got,
/// and goes on until it is killed.
#[test]
fn child_appends_past_the_image() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = Store::open(&dir, config(1000)).unwrap();
    assert_eq!(store.open_report().dedup_image_id, Some(1200));
    let mut i = 1201;
    loop {
        store.append(event(i)).unwrap();
        if i.is_multiple_of(50) {
            store.flush().unwrap();
            common::say(&format!("flushed {i}"));
        }
        i += 1;
    }
}

#[test]
fn after_a_writer_is_killed_the_image_and_the_log_after_it_make_the_window() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    store_with(&path, 1200, 1000);
    let (mut child, out) = Reaper::spawn_piped(child_command(
        "child_appends_past_the_image",
        CHILD_ENV,
        &path,
    ));
    let mut flushed = 0;
    for line in std::io::BufRead::lines(out) {
        let line = line.unwrap();
        if let Some(n) = said(&line).and_then(|m| m.strip_prefix("flushed ")) {
            flushed = n.parse::<u64>().unwrap();
            if flushed >= 1900 {
                break;
            }
        }
    }
    assert!(flushed >= 1900, "child: {}", child.stderr_text());
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let store = Store::open(&path, config(1000)).unwrap();
    let stored = store.stats().unwrap().total_events;
    assert!(stored >= flushed);
    let report = store.open_report();
    assert_eq!(report.dedup_image_id, Some(1200));
    assert_eq!(report.dedup_events_read, (stored - 1200).min(1000));
    resend_matches(&store, stored, 1000);
}

#[test]
fn a_leftover_temporary_image_is_removed_by_the_writable_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    store_with(&path, 1000, 1000);
    let tmp = path.join(format!("{IMAGE}.tmp"));
    std::fs::write(&tmp, vec![7u8; 4096]).unwrap();
    let store = Store::open_read_only(&path).unwrap();
    drop(store);
    assert!(tmp.exists(), "a reader changes nothing");
    let store = Store::open(&path, config(1000)).unwrap();
    assert!(!tmp.exists());
    assert_eq!(store.open_report().dedup_image_id, Some(1000));
}
