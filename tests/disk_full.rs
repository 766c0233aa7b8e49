//! A full disk is a clean, sticky, recoverable error: on a small tmpfs, appends and flushes
//! fail with `DiskFull` (the process never dies of SIGBUS), every event committed before
//! stays readable, and once space is freed the events held in memory are written and
//! appends resume, without reopening the store.
//!
//! Needs root to mount a tmpfs (as on the project's machines and in CI); elsewhere it says
//! so and returns.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use selflog::{Config, Error, Event, EventId, Store, Timestamp};

const T0: i64 = 1_732_460_000_000_000;

/// A tmpfs mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn event(i: u64) -> Event {
    // Incompressible-ish data so the disk fills at a predictable pace.
    let text: String = (0..300)
        .map(|k| char::from(b'a' + u8::try_from((i * 31 + k * 7) % 26).unwrap()))
        .collect();
    Event::new(
        Timestamp(T0 + i64::try_from(i).unwrap()),
        "file_op",
        Some("modified"),
        "Finder",
        Some(&format!(r#"{{"i":{i},"text":"{text}"}}"#)),
    )
    .unwrap()
}

#[test]
fn full_disk_is_clean_sticky_and_recoverable() {
    let Some(fs) = Tmpfs::mount("1200k") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    // Room to free later.
    let filler = fs.path().join("filler");
    std::fs::write(&filler, vec![1u8; 400 << 10]).unwrap();
    let mut c = Config::default();
    c.segment_len = 256 << 10;
    c.data_len_max = 16 << 10;
    let store = Store::open(fs.path().join("s"), c).unwrap();
    let mut acknowledged = 0u64;
    let mut appended = 0u64;
    let full = loop {
        match store.append(event(appended)) {
            Ok(_) => appended += 1,
            Err(e) => break e,
        }
        if appended.is_multiple_of(50) {
            match store.flush() {
                Ok(()) => acknowledged = appended,
                Err(e) => break e,
            }
        }
        assert!(appended < 100_000, "the disk never filled");
    };
    assert!(matches!(full, Error::DiskFull { .. }), "{full}");
    assert!(full.to_string().contains("disk full"), "{full}");
    assert!(
        acknowledged > 500,
        "several segments were written first ({acknowledged})"
    );
    // Sticky: appends and flushes keep failing while the disk is full.
    assert!(matches!(
        store.append(event(appended)),
        Err(Error::DiskFull { .. })
    ));
    assert!(matches!(store.flush(), Err(Error::DiskFull { .. })));
    // Reads keep working, and every acknowledged event is there.
    let ids: Vec<u64> = store.scan().unwrap().map(|e| e.unwrap().id.0).collect();
    assert!(ids.len() as u64 >= acknowledged);
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        store.get(EventId(1)).unwrap().unwrap().to_event().unwrap(),
        event(0)
    );
    // Free space: the writer retries by itself and appends resume.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.flush() {
            Ok(()) => break,
            Err(Error::DiskFull { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("flush after freeing space: {e}"),
        }
    }
    store.append(event(appended)).unwrap();
    appended += 1;
    store.flush().unwrap();
    let all: Vec<_> = store.scan().unwrap().map(Result::unwrap).collect();
    assert_eq!(
        all.len() as u64,
        appended,
        "the events held in memory were written too"
    );
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.to_event().unwrap(), event(i as u64));
    }
    store.close().unwrap();
    let report = selflog::verify(&fs.path().join("s")).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
