//! The store directory: what makes a directory a store, and creating one.
//!
//! A store is a directory holding `selflog.meta` (its identity and format version, written
//! once), `LOCK` (the writer lock, `lock.rs`), the segment files of the event stream
//! (`stream.rs` names them), and what the store derives or records beside them: `cursors/`
//! and `counters` (`cursor.rs`), `dedup.window` (`dedup/image.rs`), and the pattern and
//! stats streams (`maintenance/`). Each file name is a constant of the module that owns the
//! file; this module owns `selflog.meta` and the directory itself.
//! `format-spec/FORMAT.md#store-meta`, `#file-names`
//!
//! A directory is created 0700 and its entry synced in its parent. A directory that is not
//! empty and has no `selflog.meta` is never taken over: it is refused as not a store, so a
//! mistyped path cannot fill someone's home directory with segments. `selflog.meta` is
//! written to a temporary file, synced and renamed into place, so it is either whole or
//! absent.

use std::fs::DirBuilder;
use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::Path;

use crate::error::{Error, Result};
use crate::event::Timestamp;
use crate::format::{DecodeKind, StoreMeta, FORMAT_VERSION, META_LEN, SEGMENT_HEADER_LEN};
use crate::lock::LOCK_FILE;
use crate::segment::{create_private, sync_dir};

/// Name of the file that marks a directory as a store.
pub const META_FILE: &str = "selflog.meta";

const _: () = assert!(META_LEN < SEGMENT_HEADER_LEN);

/// [`Error::NotAStore`] for `dir`, saying why.
pub(crate) fn not_a_store(dir: &Path, reason: impl Into<String>) -> Error {
    Error::NotAStore {
        path: dir.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads and checks `selflog.meta`; `Ok(None)` when it does not exist.
pub(crate) fn read_meta(dir: &Path) -> Result<Option<StoreMeta>> {
    let path = dir.join(META_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    match StoreMeta::decode(&bytes) {
        Ok(m) => Ok(Some(m)),
        Err(e) => match e.kind {
            DecodeKind::UnsupportedVersion { found } => Err(Error::UnsupportedVersion {
                path,
                found,
                supported: FORMAT_VERSION,
            }),
            _ if e.offset == 0 => Err(not_a_store(
                dir,
                format!("{META_FILE} is not a selflog file"),
            )),
            _ => Err(Error::corrupt(&path, e.offset as u64, e.what)),
        },
    }
}

/// Checks that `dir` is an existing directory.
pub(crate) fn check_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(not_a_store(dir, "it is a file, not a directory")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(not_a_store(dir, "no such directory"))
        }
        Err(e) => Err(Error::io("stat", dir, e)),
    }
}

/// Writes `selflog.meta` for a new store: to a temporary file, synced, renamed into place,
/// and the directory synced.
pub(crate) fn write_meta(dir: &Path) -> Result<()> {
    let meta = StoreMeta {
        version: FORMAT_VERSION,
        created_us: Timestamp::now().0,
    };
    let tmp = dir.join(format!("{META_FILE}.tmp"));
    let mut f = create_private(&tmp)?;
    f.write_all(&meta.encode())
        .map_err(|e| Error::io("write", &tmp, e))?;
    f.sync_all().map_err(|e| Error::io("sync", &tmp, e))?;
    std::fs::rename(&tmp, dir.join(META_FILE)).map_err(|e| Error::io("rename", &tmp, e))?;
    sync_dir(dir)
}

/// Creates a missing store directory (0700, synced in its parent) and refuses a file or a
/// non-empty directory that is not a store.
pub(crate) fn prepare_dir(dir: &Path) -> Result<()> {
    let dir = dir.to_path_buf();
    match std::fs::metadata(&dir) {
        Ok(m) if !m.is_dir() => return Err(not_a_store(&dir, "it is a file, not a directory")),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| Error::io("create directory", &dir, e))?;
            // Make the new directory's entry durable in its parent.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        Err(e) => return Err(Error::io("stat", &dir, e)),
    }
    if read_meta(&dir)?.is_none() {
        let foreign = std::fs::read_dir(&dir)
            .map_err(|e| Error::io("list", &dir, e))?
            .filter_map(std::result::Result::ok)
            .any(|e| e.file_name() != LOCK_FILE && e.file_name() != *format!("{META_FILE}.tmp"));
        if foreign {
            return Err(not_a_store(
                    &dir,
                    format!("the directory is not empty and has no {META_FILE}; choose an empty or new directory"),
                ));
        }
    }
    Ok(())
}

/// Checks that `dir` is a store this build can read, without opening its segments.
pub(crate) fn check_store(dir: &Path) -> Result<()> {
    check_dir(dir)?;
    if read_meta(dir)?.is_none() {
        return Err(not_a_store(dir, format!("it has no {META_FILE}")));
    }
    Ok(())
}
