//! The store's writer lock: at most one process appends to a store at a time.
//!
//! The lock is an `flock` on `LOCK` in the store directory, so the kernel releases it when
//! the holder dies, even by SIGKILL: a crashed writer never leaves a stale lock. The file
//! holds the holder's process id in decimal, for the error message of a refused writer.
//! Readers never take it. `format-spec/FORMAT.md#lock`

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use rustix::fs::{flock, FlockOperation};

use crate::error::{Error, Result};

/// How long a held lock is retried before `Locked` is returned.
const LOCK_RETRY_FOR: std::time::Duration = std::time::Duration::from_millis(200);

/// Name of the lock file in a store directory.
pub const LOCK_FILE: &str = "LOCK";

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
        let pid = std::process::id();
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{pid}"))
            .map_err(|e| Error::io("write", &path, e))?;
        Ok(WriterLock { _file: file })
    }
}
