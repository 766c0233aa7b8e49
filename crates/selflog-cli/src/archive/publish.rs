//! Putting complete files in place, durably and in few waits: a group of finished files
//! (several segments' worth) is synced, renamed to its final names, and the directories
//! holding the new names are synced; only then does the caller record the group in the
//! manifest. A name in the manifest therefore always points at synced, complete bytes.
//!
//! Each `fsync` on this VM's shared disk waits 8 ms or more, and a run writes a file per
//! segment and day: synced one after another, a million events' files and directories
//! took longer than encoding them. The syncs of a group run on up to [`SYNC_THREADS`]
//! threads at once, so the file system commits them together.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use super::parquet::{io_err, Finished};
use crate::Failure;

/// Most syncs in flight at once.
pub const SYNC_THREADS: usize = 16;

/// Syncs `files`, renames each to its final name (replacing a file of that name), then
/// syncs every directory between those names and `root` (`root` included), so that new
/// partition directories are durable too.
pub fn commit(files: &mut [Finished], root: &Path) -> Result<(), Failure> {
    let tmps: Vec<PathBuf> = files.iter().map(|f| f.tmp.clone()).collect();
    sync_all(&tmps)?;
    let mut dirs = BTreeSet::new();
    for f in files.iter_mut() {
        std::fs::rename(&f.tmp, &f.path).map_err(|e| io_err("rename to", &f.path, &e))?;
        // Renamed: nothing left for drop to remove.
        f.tmp = PathBuf::new();
        for dir in f.path.ancestors().skip(1) {
            dirs.insert(dir.to_path_buf());
            if dir == root {
                break;
            }
        }
    }
    dirs.insert(root.to_path_buf());
    sync_all(&dirs.into_iter().collect::<Vec<_>>())
}

/// Syncs each of `paths` (files or directories), on up to [`SYNC_THREADS`] threads.
pub fn sync_all(paths: &[PathBuf]) -> Result<(), Failure> {
    if paths.is_empty() {
        return Ok(());
    }
    let per_thread = paths.len().div_ceil(SYNC_THREADS);
    std::thread::scope(|scope| {
        let threads: Vec<_> = paths
            .chunks(per_thread)
            .map(|chunk| scope.spawn(move || chunk.iter().try_for_each(|p| sync(p))))
            .collect();
        for t in threads {
            t.join().map_err(|_| {
                Failure::hinted(
                    "a sync thread panicked",
                    "this is a bug in selflog archive; run it again",
                )
            })??;
        }
        Ok(())
    })
}

/// Syncs one file or directory.
pub fn sync(path: &Path) -> Result<(), Failure> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err("sync", path, &e))
}
