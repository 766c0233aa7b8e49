//! Durable named consumer cursors: they replace the old schema's `processed` flag.
//!
//! A cursor records the id of the last event its consumer has processed; "unprocessed"
//! means after it. Each cursor is one 32-byte checksummed file in `cursors/`, replaced
//! atomically (written under a temporary name, synced, renamed, directory synced), so after a
//! crash it holds either the old or the new position. Cursor files are independent of the
//! writer lock: a consumer in another process (`selflog replay --cursor NAME --commit`)
//! commits its own cursor while the daemon writes. `format-spec/FORMAT.md#cursors`
//!
//! [`Cursor`] is a consumer's handle on one cursor of an open store ([`Store::cursor`]): it
//! reads and commits its file here and scans the events after it. A commit past the last
//! committed event is refused, so a cursor never points at an event that may not exist.

use std::fs::DirBuilder;
use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::event::EventId;
use crate::format::{crc32, Reader};
use crate::scan::Scan;
use crate::segment::{create_private, sync_dir};
use crate::stream::Stream;
#[cfg(doc)]
use crate::Store;

/// Directory of cursor files inside a store.
pub const CURSOR_DIR: &str = "cursors";
/// Longest cursor name, in bytes.
pub const CURSOR_NAME_LEN_MAX: usize = 64;

const CURSOR_MAGIC: &[u8; 8] = b"SLOGCURS";
const CURSOR_LEN: usize = 32;
const CURSOR_VERSION: u32 = 1;

/// A durable named cursor; see [`Store::cursor`].
pub struct Cursor<'s> {
    dir: &'s Path,
    stream: &'s Stream,
    name: String,
}

impl<'s> Cursor<'s> {
    /// The cursor `name` of the store in `dir`, whose events `stream` reads
    /// ([`Store::cursor`]).
    pub(crate) fn new(dir: &'s Path, stream: &'s Stream, name: &str) -> Result<Cursor<'s>> {
        check_name(name)?;
        Ok(Cursor {
            dir,
            stream,
            name: name.to_owned(),
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The id of the last event processed, `None` if never committed.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the file (`cursors/NAME`) and what is wrong with it when
    /// it is damaged, [`Error::UnsupportedVersion`], or an I/O error. [`Cursor::commit`]
    /// replaces a damaged file.
    pub fn position(&self) -> Result<Option<EventId>> {
        read(self.dir, &self.name)
    }

    /// Records that every event up to `id` is processed: durable and atomic (after a crash
    /// the cursor holds the old or the new position). Commit only once the work is done.
    /// Moving a cursor back is allowed (to reprocess). A damaged cursor file is replaced by
    /// a sound one.
    ///
    /// # Errors
    /// [`Error::InvalidEvent`] when `id` is past the last committed event; an I/O error.
    pub fn commit(&self, id: EventId) -> Result<()> {
        self.stream.refresh()?;
        // The last committed id, from the newest segment that holds events.
        let last = self
            .stream
            .views()
            .iter()
            .rev()
            .find_map(|v| {
                v.with_index(|ix, _| {
                    (ix.summary.event_count > 0).then_some(EventId(ix.summary.last_id))
                })
            })
            .unwrap_or(EventId(0));
        if id > last {
            return Err(Error::InvalidEvent {
                field: "cursor",
                reason: format!("id {id} is past the last committed event {last}"),
            });
        }
        write(self.dir, &self.name, id)
    }

    /// The events after the cursor ("unprocessed"), in id order.
    ///
    /// # Errors
    /// As [`Store::scan`] and [`Cursor::position`].
    pub fn unprocessed(&self) -> Result<Scan> {
        let from = self.position()?.map_or(EventId(0), |p| EventId(p.0 + 1));
        Scan::new(self.stream, from)
    }
}

/// Checks a cursor name: 1 to 64 bytes of ASCII letters, digits, `-`, `_` and `.`, not
/// starting with `.` (it names a file).
///
/// # Errors
/// [`Error::InvalidEvent`] naming the field `cursor` and what is wrong.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= CURSOR_NAME_LEN_MAX
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidEvent {
            field: "cursor",
            reason: format!(
                "name {name:?} must be 1 to {CURSOR_NAME_LEN_MAX} ASCII letters, digits, '-', '_' or '.', not starting with '.'"
            ),
        })
    }
}

fn encode(position: u64) -> [u8; CURSOR_LEN] {
    let mut b = [0u8; CURSOR_LEN];
    b[0..8].copy_from_slice(CURSOR_MAGIC);
    b[8..12].copy_from_slice(&CURSOR_VERSION.to_le_bytes());
    b[16..24].copy_from_slice(&position.to_le_bytes());
    let crc = crc32(&[&b[0..28]]);
    b[28..32].copy_from_slice(&crc.to_le_bytes());
    b
}

fn decode(b: &[u8], path: &Path) -> Result<u64> {
    let bad = |offset: u64, what: &str| Error::corrupt(path, offset, what);
    if b.len() != CURSOR_LEN {
        return Err(bad(0, "cursor file is not 32 bytes"));
    }
    let mut r = Reader::new(b);
    let field = |e: crate::format::DecodeError| bad(e.offset as u64, &e.what);
    if r.take(8, "cursor magic").map_err(field)? != CURSOR_MAGIC {
        return Err(bad(0, "not a selflog cursor (bad magic)"));
    }
    let version = r.u32("version").map_err(field)?;
    let reserved = r.u32("reserved").map_err(field)?;
    let position = r.u64("position").map_err(field)?;
    let reserved_b = r.u32("reserved").map_err(field)?;
    let crc = r.u32("crc").map_err(field)?;
    if crc != crc32(&[&b[0..28]]) {
        return Err(bad(28, "cursor checksum mismatch"));
    }
    if version != CURSOR_VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: CURSOR_VERSION,
        });
    }
    if reserved != 0 || reserved_b != 0 {
        return Err(bad(12, "reserved cursor bytes set"));
    }
    Ok(position)
}

/// The position of cursor `name` in the store at `dir`: `None` if it was never committed.
pub(crate) fn read(dir: &Path, name: &str) -> Result<Option<EventId>> {
    check_name(name)?;
    let path = dir.join(CURSOR_DIR).join(name);
    match std::fs::read(&path) {
        Ok(b) => Ok(Some(EventId(decode(&b, &path)?))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", &path, e)),
    }
}

/// Atomically replaces cursor `name`'s position with `id`.
pub(crate) fn write(dir: &Path, name: &str, id: EventId) -> Result<()> {
    check_name(name)?;
    let cursors = dir.join(CURSOR_DIR);
    if !cursors.is_dir() {
        DirBuilder::new()
            .mode(0o700)
            .create(&cursors)
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| Error::io("create directory", &cursors, e))?;
        sync_dir(dir)?;
    }
    let path = cursors.join(name);
    let tmp = cursors.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = create_private(&tmp)?;
        f.write_all(&encode(id.0))
            .map_err(|e| Error::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| Error::io("sync", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &tmp, e))?;
        sync_dir(&cursors)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A cursor whose file could not be read; see [`Store::cursors`].
#[derive(Debug)]
#[non_exhaustive]
pub struct DamagedCursor {
    /// The cursor's name.
    pub name: String,
    /// Its file, `cursors/NAME` in the store.
    pub path: PathBuf,
    /// Why it could not be read: [`Error::Corrupt`] (garbage, wrong length, checksum),
    /// [`Error::UnsupportedVersion`], or an I/O error; each names the file.
    pub error: Error,
}

/// Every committed cursor of a store, sound or not; see [`Store::cursors`].
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct CursorList {
    /// The cursors whose file holds a position, by name.
    pub sound: Vec<(String, EventId)>,
    /// The cursors whose file is damaged, by name. Committing one rewrites it soundly.
    pub damaged: Vec<DamagedCursor>,
}

/// Every committed cursor of the store at `dir`, by name: one damaged file is reported
/// among the others, never hiding them.
pub(crate) fn list(dir: &Path) -> Result<CursorList> {
    let cursors: PathBuf = dir.join(CURSOR_DIR);
    let entries = match std::fs::read_dir(&cursors) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CursorList::default()),
        Err(e) => return Err(Error::io("list", &cursors, e)),
    };
    let mut out = CursorList::default();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", &cursors, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if check_name(&name).is_err() {
            continue; // temporary files of an interrupted commit, or foreign files
        }
        match read(dir, &name) {
            Ok(Some(id)) => out.sound.push((name, id)),
            Ok(None) => {} // removed since it was listed
            Err(error) => out.damaged.push(DamagedCursor {
                path: cursors.join(&name),
                name,
                error,
            }),
        }
    }
    out.sound.sort();
    out.damaged.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// File holding the store's persistent counters (duplicates dropped since creation).
pub const COUNTERS_FILE: &str = "counters";

/// Reads the persistent duplicate count; 0 if never written.
///
/// # Errors
/// [`Error::Corrupt`] or [`Error::UnsupportedVersion`] naming the file when it is damaged,
/// or an I/O error reading it.
pub(crate) fn read_duplicates(dir: &Path) -> Result<u64> {
    let path = dir.join(COUNTERS_FILE);
    match std::fs::read(&path) {
        Ok(b) => decode(&b, &path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(Error::io("read", &path, e)),
    }
}

/// The duplicate count a writable open of the stream in `dir` starts from, and, when the
/// `counters` file could not be read, why. The count of duplicates dropped is recorded
/// nowhere else, so the log cannot rebuild it: a damaged file restarts it at 0, and a sound
/// file saying 0 replaces it at once (`format-spec/FORMAT.md#counters`).
///
/// # Errors
/// An I/O error writing the replacement.
pub(crate) fn open_duplicates(dir: &Path) -> Result<(u64, Option<String>)> {
    match read_duplicates(dir) {
        Ok(count) => Ok((count, None)),
        Err(e) => {
            write_duplicates(dir, 0)?;
            Ok((
                0,
                Some(format!(
                    "{e}; the count of duplicates dropped cannot be rebuilt from the log: it restarted at 0 and the file was rewritten"
                )),
            ))
        }
    }
}

/// Replaces the persistent duplicate count atomically (temporary file, rename). It is a
/// statistic: the file is not synced, a crash may lose the last increments.
pub(crate) fn write_duplicates(dir: &Path, count: u64) -> Result<()> {
    let path = dir.join(COUNTERS_FILE);
    let tmp = dir.join(format!(".{COUNTERS_FILE}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = create_private(&tmp)?;
        f.write_all(&encode(count))
            .map_err(|e| Error::io("write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &tmp, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_files_round_trip_and_reject_damage() {
        let b = encode(42);
        let p = Path::new("c");
        assert_eq!(decode(&b, p).unwrap(), 42);
        for i in 0..CURSOR_LEN {
            let mut bad = b;
            bad[i] ^= 1;
            assert!(decode(&bad, p).is_err(), "flip at {i}");
        }
        assert!(decode(&b[..31], p).is_err());
    }

    #[test]
    fn names_are_checked() {
        for ok in ["processed", "embryo-7", "a.b_c"] {
            check_name(ok).unwrap();
        }
        for bad in ["", ".hidden", "a/b", "x y", &"n".repeat(65), "é"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
