//! The store's writer lock: at most one process appends to a store at a time.
//!
//! The lock is an `flock` on `LOCK` in the store directory, so the kernel releases it when
//! the holder dies, even by SIGKILL: a crashed writer never leaves a stale lock. The file
//! holds the holder's process id in decimal, for the error message of a refused writer.
//! Readers never take it. `format-spec/FORMAT.md#lock`

use std::fs::{File, OpenOptions};
use std::io::Read as _;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::Path;

use rustix::fs::{flock, FlockOperation};

use crate::error::{Error, Result};

/// How long a held lock is retried before `Locked` is returned.
const LOCK_RETRY_FOR: std::time::Duration = std::time::Duration::from_millis(200);

/// Name of the lock file in a store directory.
pub const LOCK_FILE: &str = "LOCK";

/// Bytes of the lock file's record: a process id in decimal fits in 20.
const PID_RECORD_LEN: usize = 21;

/// The lock file's contents for holder `pid`: its decimal digits, spaces up to 20
/// characters, `\n`. `format-spec/FORMAT.md#lock`
fn pid_record(pid: u32) -> [u8; PID_RECORD_LEN] {
    let mut record = [b' '; PID_RECORD_LEN];
    let digits = pid.to_string();
    record[..digits.len()].copy_from_slice(digits.as_bytes());
    record[PID_RECORD_LEN - 1] = b'\n';
    record
}

/// A held writer lock; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct WriterLock {
    _file: File,
}

impl WriterLock {
    /// Takes the lock of the store in `dir`, failing at once if another holder has it.
    pub fn acquire(dir: &Path) -> Result<WriterLock> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        // A child another thread of this process is forking holds a copy of our lock's
        // file description until it execs (close-on-exec), so a lock just released can look
        // held for a few milliseconds: retry briefly before calling it held.
        let mut attempt = flock(&file, FlockOperation::NonBlockingLockExclusive);
        let deadline = std::time::Instant::now() + LOCK_RETRY_FOR;
        while attempt == Err(rustix::io::Errno::WOULDBLOCK) && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
            attempt = flock(&file, FlockOperation::NonBlockingLockExclusive);
        }
        if let Err(e) = attempt {
            if e == rustix::io::Errno::WOULDBLOCK {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(Error::Locked {
                    path: dir.to_path_buf(),
                    pid: text.trim().parse().unwrap_or(0),
                });
            }
            return Err(Error::io("lock", &path, e.into()));
        }
        // The pid is written over what the last holder left, padded to a fixed width, not
        // after truncating the file: on ext4 truncating a file with a block in it commits
        // a journal transaction, 0.25-0.37 ms of each of the three locks a writable open
        // takes (events, patterns, stats; issue 21). Only a file longer than the record
        // (never written by selflog) is shortened.
        let record = pid_record(std::process::id());
        file.write_all_at(&record, 0)
            .and_then(|()| file.metadata())
            .and_then(|m| {
                if m.len() > record.len() as u64 {
                    file.set_len(record.len() as u64)
                } else {
                    Ok(())
                }
            })
            .map_err(|e| Error::io("write", &path, e))?;
        Ok(WriterLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file names the holder whatever an earlier holder or a stranger left in it: a
    /// shorter pid (the old format: digits and `\n`) is written over, longer junk is cut.
    #[test]
    fn lock_file_names_the_holder_over_any_earlier_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        let me = std::process::id().to_string();
        for earlier in [&b""[..], b"7\n", b"4194304\n", &[b'x'; 300]] {
            std::fs::write(&path, earlier).unwrap();
            let lock = WriterLock::acquire(dir.path()).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(text.len(), PID_RECORD_LEN, "{text:?}");
            assert_eq!(text.trim(), me, "{text:?}");
            assert!(text.ends_with('\n'));
            drop(lock);
        }
    }
}
