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

/// Appends (flushing every 50) until an append or a flush fails; returns the error, how
/// many events were appended, and how many a flush acknowledged.
fn fill(store: &Store) -> (Error, u64, u64) {
    let (mut appended, mut acknowledged) = (0u64, 0u64);
    loop {
        match store.append(event(appended)) {
            Ok(_) => appended += 1,
            Err(e) => return (e, appended, acknowledged),
        }
        if appended.is_multiple_of(50) {
            match store.flush() {
                Ok(()) => acknowledged = appended,
                Err(e) => return (e, appended, acknowledged),
            }
        }
        assert!(appended < 100_000, "space never ran out");
    }
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
    let (full, mut appended, acknowledged) = fill(&store);
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

const FSIZE_CHILD_ENV: &str = "SELFLOG_FSIZE_CHILD";

/// Runs inside a child process whose file-size limit is small and which ignores SIGXFSZ
/// (as a daemon should): appends until the limit, and prints what happened.
#[test]
fn child_under_file_size_limit() {
    let Some(dir) = std::env::var_os(FSIZE_CHILD_ENV) else {
        return;
    };
    let mut c = Config::default();
    c.segment_len = 256 << 10;
    c.data_len_max = 16 << 10;
    let store = Store::open(Path::new(&dir).join("s"), c).unwrap();
    let (err, _, acknowledged) = fill(&store);
    let readable = store.scan().unwrap().count();
    println!(
        "@@ error={} acknowledged={acknowledged} readable={readable}",
        matches!(err, Error::DiskFull { .. })
    );
}

/// A file-size limit (`RLIMIT_FSIZE`) below the segment size makes segment allocation fail:
/// the store reports `DiskFull` (EFBIG), the process lives (no SIGXFSZ, no SIGBUS), reads
/// still work and the directory verifies clean.
#[test]
fn file_size_limit_is_a_clean_disk_full() {
    if std::env::var_os(FSIZE_CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    // The limit is per file and below the 256 KiB a segment is allocated with (in 512- or
    // 1024-byte blocks, depending on the shell), so the first segment cannot be allocated.
    let script = format!(
        "trap '' XFSZ; ulimit -f 100; exec '{}' --exact child_under_file_size_limit --nocapture --test-threads=1",
        exe.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .env(FSIZE_CHILD_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("@@ ").map(|(_, report)| report))
        .unwrap_or_else(|| panic!("no report in {stdout}"));
    let field = |k: &str| {
        line.split(' ')
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .unwrap()
            .to_owned()
    };
    assert_eq!(field("error"), "true", "{line}");
    let acknowledged: usize = field("acknowledged").parse().unwrap();
    let readable: usize = field("readable").parse().unwrap();
    assert!(readable >= acknowledged, "{line}");
    let report = selflog::verify(&dir.path().join("s")).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
