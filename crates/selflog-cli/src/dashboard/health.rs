//! Is a writer at work, and when did it last commit? Found without touching the writer's
//! lock: a reader never takes it (ARCHITECTURE.md), so the dashboard looks the lock up in
//! the kernel's table of file locks (`/proc/locks`) instead of trying it.
//!
//! The writer's lock is an `flock` on the store's `LOCK` file (`format-spec/FORMAT.md#lock`),
//! which the kernel drops when the holder exits, however it exits: a held lock means a live
//! writer. The age of the last commit is the modification time of the newest event segment,
//! which every commit (a `pwrite` of frames and a commit slot) updates.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::SystemTime;

/// Name of the writer's lock file in a store directory (`format-spec/FORMAT.md#lock`).
const LOCK_FILE: &str = "LOCK";

/// Whether a process holds the store's writer lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writer {
    /// A process holds the lock: a writer is open (its process id, as the kernel reports it).
    Alive {
        /// The holder's process id.
        pid: u32,
    },
    /// Nobody holds the lock: no process has the store open for writing.
    Absent,
    /// The lock table could not be read (not Linux, or `/proc` not mounted): why.
    Unknown(String),
}

/// Looks up who holds the writer lock of the store in `dir`.
pub fn writer(dir: &Path) -> Writer {
    let meta = match std::fs::metadata(dir.join(LOCK_FILE)) {
        Ok(m) => m,
        // No lock file: no writer ever opened this store, so none holds it now.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Writer::Absent,
        Err(e) => return Writer::Unknown(format!("cannot read {LOCK_FILE}: {e}")),
    };
    match std::fs::read_to_string("/proc/locks") {
        Ok(table) => holder(&table, meta.dev(), meta.ino()),
        Err(e) => Writer::Unknown(format!("cannot read /proc/locks: {e}")),
    }
}

/// The holder of an `flock` on the file `(dev, ino)` in the text of `/proc/locks`. Lines
/// look like `1: FLOCK  ADVISORY  WRITE 2785 fd:01:1317926 0 EOF`; a waiter's line has
/// `->` after the number and is not a holder.
fn holder(table: &str, dev: u64, ino: u64) -> Writer {
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    for line in table.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, kind, _, _, pid, file, ..] = fields.as_slice() else {
            continue;
        };
        if *kind != "FLOCK" {
            continue;
        }
        let mut parts = file.split(':');
        let (Some(maj), Some(min), Some(inode), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let same_file = u32::from_str_radix(maj, 16) == Ok(major)
            && u32::from_str_radix(min, 16) == Ok(minor)
            && inode.parse::<u64>() == Ok(ino);
        if same_file {
            if let Ok(pid) = pid.parse() {
                return Writer::Alive { pid };
            }
        }
    }
    Writer::Absent
}

/// When the newest event segment file was last written: the writer's last commit.
pub fn last_commit(newest_segment: &Path) -> Option<SystemTime> {
    std::fs::metadata(newest_segment)
        .and_then(|m| m.modified())
        .ok()
}

/// What one run of `selflog::verify` found, in a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// When it finished.
    pub at: selflog::Timestamp,
    /// Problems found (0: sound).
    pub problems: usize,
    /// The first problem: file, byte offset and what.
    pub first: Option<String>,
    /// Segments and events checked.
    pub segments: usize,
    /// Events checked.
    pub events: u64,
}

/// Runs `selflog::verify` on the store in `dir` (reads every frame: seconds on a large
/// store), summing up its report; an error that stopped it is the `Err`.
pub fn verify(dir: &Path) -> Result<Verified, String> {
    let report = selflog::verify(dir).map_err(|e| e.to_string())?;
    Ok(Verified {
        at: selflog::Timestamp::now(),
        problems: report.problems.len(),
        first: report
            .problems
            .first()
            .map(|p| format!("{}: byte {}: {}", p.path.display(), p.offset, p.what)),
        segments: report.segments,
        events: report.events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "1: POSIX  ADVISORY  WRITE 900 00:2d:77 0 EOF\n\
                         2: FLOCK  ADVISORY  WRITE 4242 fd:01:1317926 0 EOF\n\
                         2: -> FLOCK  ADVISORY  WRITE 4343 fd:01:1317926 0 EOF\n\
                         3: FLOCK  ADVISORY  WRITE 17 fd:02:1317926 0 EOF\n";

    #[test]
    fn finds_the_flock_holder_of_the_file_by_device_and_inode() {
        let dev = rustix::fs::makedev(0xfd, 0x01);
        assert_eq!(holder(TABLE, dev, 1_317_926), Writer::Alive { pid: 4242 });
        let other = rustix::fs::makedev(0xfd, 0x02);
        assert_eq!(holder(TABLE, other, 1_317_926), Writer::Alive { pid: 17 });
    }

    #[test]
    fn a_posix_lock_a_waiter_or_another_inode_is_no_holder() {
        let dev = rustix::fs::makedev(0x00, 0x2d);
        assert_eq!(holder(TABLE, dev, 77), Writer::Absent);
        let dev = rustix::fs::makedev(0xfd, 0x01);
        assert_eq!(holder(TABLE, dev, 5), Writer::Absent);
        assert_eq!(holder("", dev, 5), Writer::Absent);
        assert_eq!(
            holder("garbage\n1: FLOCK x y z q\n", dev, 5),
            Writer::Absent
        );
    }

    #[test]
    fn sees_this_process_holding_an_flock() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(writer(dir.path()), Writer::Absent);
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).unwrap();
        assert_eq!(
            writer(dir.path()),
            Writer::Alive {
                pid: std::process::id()
            }
        );
        drop(file);
        assert_eq!(writer(dir.path()), Writer::Absent);
    }
}
