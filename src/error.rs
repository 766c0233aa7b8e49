//! The one public error type.
//!
//! A variant exists when a caller would act differently on it. Messages say what happened and
//! where (path, byte offset, field), in lowercase, without a final period. Errors of the
//! operating system or of dependencies stay behind `source()`.

use std::io;
use std::path::{Path, PathBuf};

/// Every error selflog returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file of the store holds bytes that fail their checksum or their structure.
    #[error("corrupt store file {path}: {what} at byte offset {offset}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Absolute byte offset of the damaged structure in that file.
        offset: u64,
        /// What failed to decode.
        what: String,
    },
    /// A file was written by a format version this build cannot read.
    #[error("{path} has format version {found}; this selflog reads version {supported}: upgrade selflog")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found on disk.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The directory is missing or is not a selflog store.
    #[error("{path} is not a selflog store: {reason}")]
    NotAStore {
        /// The path that was given.
        path: PathBuf,
        /// Why it was not accepted.
        reason: String,
    },
    /// A destination that must be new or empty is not, or is the source itself (salvage
    /// refuses it before writing anything).
    #[error("{path} cannot be the destination: {reason}")]
    DestinationRefused {
        /// The destination that was given.
        path: PathBuf,
        /// Why it was refused, and what to do instead.
        reason: String,
    },
    /// Segments or events the store recorded are gone (a file deleted, moved, swapped or
    /// copied over): a writable open refuses the store so that nothing is appended as if
    /// nothing happened. A read-only open still serves what is there.
    #[error("store {path} is incomplete: {what}; run `selflog salvage --to NEW_DIR` to copy what is left into a new store")]
    Incomplete {
        /// The store directory.
        path: PathBuf,
        /// What is missing: the files, ids, counts and time ranges known.
        what: String,
    },
    /// Another process holds the store's writer lock.
    #[error("store {path} is already open for writing by process {pid}; stop that process or open read-only")]
    Locked {
        /// The store directory.
        path: PathBuf,
        /// The process id written in the lock file, 0 if unknown.
        pid: u32,
    },
    /// An event was rejected before it was queued.
    #[error("invalid event: field `{field}` {reason}")]
    InvalidEvent {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A value exceeds a configured or format limit.
    #[error("{what} is {len} bytes, over the limit of {len_max} bytes")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its length.
        len: u64,
        /// The limit that applies.
        len_max: u64,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The file system ran out of space. Appends fail until space is freed; reads keep working.
    #[error("disk full while writing {path}: free space, then retry (events already acknowledged are kept in memory and written once space returns)")]
    DiskFull {
        /// The file being written or allocated.
        path: PathBuf,
    },
    /// The append queue stayed full for longer than the configured wait.
    #[error("append queue full for {waited_ms} ms: the writer cannot keep up or the disk stalls")]
    QueueFull {
        /// How long the caller waited.
        waited_ms: u64,
    },
    /// A background thread failed earlier; the store must be reopened.
    #[error("store is poisoned by an earlier writer failure ({0}); reopen the store")]
    Poisoned(String),
    /// The store was opened read-only and a write was attempted.
    #[error("store is open read-only")]
    ReadOnly,
    /// The store has been closed.
    #[error("store is closed")]
    Closed,
    /// An operating-system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What selflog was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Shorthand for results carrying [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error, classifying "no space" and "file too large" as [`Error::DiskFull`].
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Error {
        if is_disk_full(&source) {
            return Error::DiskFull {
                path: path.to_path_buf(),
            };
        }
        Error::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Builds a [`Error::Corrupt`].
    pub(crate) fn corrupt(path: &Path, offset: u64, what: impl Into<String>) -> Error {
        Error::Corrupt {
            path: path.to_path_buf(),
            offset,
            what: what.into(),
        }
    }

    /// A [`Error::Corrupt`] whose offset was relative to a buffer starting at `base`
    /// (a compacted segment's expanded block), made absolute; other errors unchanged.
    pub(crate) fn shifted_by(self, base: u64) -> Error {
        match self {
            Error::Corrupt { path, offset, what } => Error::Corrupt {
                path,
                offset: offset + base,
                what,
            },
            other => other,
        }
    }
}

/// ENOSPC, EDQUOT and EFBIG all mean "this write cannot fit"; the store treats them alike.
pub(crate) fn is_disk_full(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(code) if code == rustix::io::Errno::NOSPC.raw_os_error()
            || code == rustix::io::Errno::DQUOT.raw_os_error()
            || code == rustix::io::Errno::FBIG.raw_os_error()
    ) || err.kind() == io::ErrorKind::StorageFull
}
