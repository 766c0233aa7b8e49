//! The archive directory (`OUT_DIR`): taking it, locking it, its manifest, and its layout.
//!
//! `OUT_DIR` is ours when it holds our manifest, `_selflog_archive.json` (the leading `_`
//! hides it from Spark and Hive; `DuckDB`'s `*.parquet` globs do not match it). A directory
//! that does not exist is created 0700; an empty one is taken; one that holds anything else
//! and no manifest is refused, so a mistyped path never fills someone's directory with
//! Parquet files. The first thing written to a new `OUT_DIR` is an empty manifest, so an
//! interrupted first run still leaves a directory the next run recognises.
//!
//! The manifest is JSON, `{"format": "selflog-archive", "version": 1, "crc32": "8 hex
//! digits", "body": {...}}`, where the CRC-32 covers the body's bytes exactly as written.
//! It is replaced whole after every commit group (`publish.rs`): written to a temporary
//! file, synced, renamed over the old one, and the directory synced. A manifest whose
//! checksum, version or shape is off is refused with a hint, never guessed at.
//!
//! One run at a time: the run holds an exclusive `flock` on `OUT_DIR` itself, so temporary
//! files found while holding it belong to runs that died, and are removed.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::parquet::{io_err, tmp_name, FILE_MODE, TMP_SUFFIX};
use super::publish::sync;
use crate::Failure;

/// The manifest's file name.
pub const MANIFEST_FILE: &str = "_selflog_archive.json";
/// The manifest's `format` value.
const MANIFEST_FORMAT: &str = "selflog-archive";
/// The manifest version this code writes and reads.
pub const MANIFEST_VERSION: u32 = 1;
/// Permissions of every directory of the archive.
pub const DIR_MODE: u32 = 0o700;
/// Subdirectory of the patterns table.
pub const PATTERNS_DIR: &str = "patterns";
/// Subdirectory of the system stats table.
pub const STATS_DIR: &str = "system_stats";

/// One Parquet file the manifest records, by its path relative to `OUT_DIR`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path relative to `OUT_DIR`, `/`-separated.
    pub path: String,
    /// Rows in it.
    pub rows: u64,
    /// Its length.
    pub bytes: u64,
}

/// An event-log segment archived: which events, and the files (one per day) holding them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentEntry {
    /// The segment's number in the store.
    pub segment_id: u32,
    /// Whether the segment was sealed when archived; `false` for the committed prefix of
    /// the active segment (`--include-active`), which later runs replace.
    pub sealed: bool,
    /// First event id archived (0 for an empty segment).
    pub first_id: u64,
    /// Last event id archived (0 for an empty segment).
    pub last_id: u64,
    /// Events archived.
    pub events: u64,
    /// Its files.
    pub files: Vec<FileEntry>,
}

/// One day of patterns or stats records archived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DayEntry {
    /// The day, `YYYY-MM-DD` (UTC).
    pub date: String,
    /// Its file.
    pub file: FileEntry,
    /// The largest pattern id (patterns) or timestamp in microseconds (stats) archived.
    pub last: i64,
}

/// What the archive holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The store archived, as it was named on the command line (informational).
    pub store: String,
    /// Event-log segments, by segment id.
    pub events: Vec<SegmentEntry>,
    /// Pattern days, by date.
    pub patterns: Vec<DayEntry>,
    /// Stats days, by date.
    pub system_stats: Vec<DayEntry>,
}

impl Manifest {
    /// Every file the manifest records.
    pub fn files(&self) -> impl Iterator<Item = &FileEntry> {
        self.events
            .iter()
            .flat_map(|s| s.files.iter())
            .chain(self.patterns.iter().map(|d| &d.file))
            .chain(self.system_stats.iter().map(|d| &d.file))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    format: String,
    version: u32,
    crc32: String,
    #[serde(borrow)]
    body: &'a serde_json::value::RawValue,
}

/// A failure to reach `OUT_DIR` itself.
fn out_dir_err(what: &str, dir: &Path, e: &io::Error) -> Failure {
    Failure::hinted(
        format!("cannot {what} {}: {e}", dir.display()),
        "name a directory you can write: new, empty, or one an earlier `selflog archive` wrote",
    )
}

/// `OUT_DIR`, taken and locked by this run.
pub struct Dataset {
    dir: PathBuf,
    /// Holds the run's `flock` until dropped.
    _lock: File,
    /// The manifest's text as last read or written: an unchanged manifest is not
    /// rewritten, so a run with nothing to do modifies nothing.
    saved: Mutex<String>,
}

impl Dataset {
    /// Takes `dir` for an archive (see the module doc), locks it, removes the temporary
    /// files of runs that died, and returns it with its manifest.
    pub fn open(dir: &Path) -> Result<(Dataset, Manifest), Failure> {
        match std::fs::metadata(dir) {
            Ok(m) if !m.is_dir() => {
                return Err(Failure::hinted(
                    format!("{} is not a directory", dir.display()),
                    "name a new or empty directory, or one an earlier `selflog archive` wrote",
                ))
            }
            Ok(m) if m.permissions().mode() & 0o200 == 0 => {
                return Err(Failure::hinted(
                    format!(
                        "{} is not writable (mode {:04o})",
                        dir.display(),
                        m.permissions().mode() & 0o7777
                    ),
                    "give its owner write permission (chmod u+w), or name another directory",
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(DIR_MODE)
                    .create(dir)
                    .map_err(|e| out_dir_err("create", dir, &e))?;
                if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                    sync(parent)?;
                }
            }
            Err(e) => return Err(out_dir_err("read", dir, &e)),
        }
        let lock = File::open(dir).map_err(|e| out_dir_err("open", dir, &e))?;
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(Failure::hinted(
                    format!("another `selflog archive` is writing {}", dir.display()),
                    "wait for it to finish; runs into one directory take turns",
                ))
            }
            Err(e) => return Err(io_err("lock", dir, &e.into())),
        }
        let dataset = Dataset {
            dir: dir.to_path_buf(),
            _lock: lock,
            saved: Mutex::new(String::new()),
        };
        let manifest = if let Some(m) = dataset.read_manifest()? {
            dataset.remove_temporaries()?;
            m
        } else {
            dataset.take_empty()?;
            let m = Manifest::default();
            dataset.write_manifest(&m)?;
            m
        };
        Ok((dataset, manifest))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes a directory without a manifest: refused when it holds anything but the
    /// temporary manifest of a first run that died (which is removed), since it is not ours.
    fn take_empty(&self) -> Result<(), Failure> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| io_err("list", &self.dir, &e))?;
        let ours = format!(".{MANIFEST_FILE}.");
        let mut leftovers = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_err("list", &self.dir, &e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&ours) && name.ends_with(TMP_SUFFIX) {
                leftovers.push(entry.path());
                continue;
            }
            return Err(Failure::hinted(
                format!(
                    "{} is not empty and holds no archive (no {MANIFEST_FILE}; it has {name})",
                    self.dir.display(),
                ),
                "name a new or empty directory, or one an earlier `selflog archive` wrote",
            ));
        }
        for path in leftovers {
            std::fs::remove_file(&path).map_err(|e| io_err("remove", &path, &e))?;
        }
        Ok(())
    }

    /// Removes temporary files (`.NAME.PID.tmp`) in `OUT_DIR` and the partition directories
    /// under it: with the lock held, they belong to runs that died.
    fn remove_temporaries(&self) -> Result<(), Failure> {
        let mut dirs = vec![self.dir.clone()];
        for sub in [PATTERNS_DIR, STATS_DIR] {
            dirs.push(self.dir.join(sub));
        }
        let mut i = 0;
        while let Some(dir) = dirs.get(i).cloned() {
            i += 1;
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                if is_dir && name.starts_with("date=") && i <= 3 {
                    dirs.push(entry.path());
                } else if !is_dir && name.starts_with('.') && name.ends_with(TMP_SUFFIX) {
                    let path = entry.path();
                    std::fs::remove_file(&path).map_err(|e| io_err("remove", &path, &e))?;
                    eprintln!(
                        "selflog: removed {}, left by an archive run that was stopped",
                        path.display()
                    );
                }
            }
        }
        Ok(())
    }

    fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST_FILE)
    }

    /// Reads and checks the manifest; `None` when there is none.
    fn read_manifest(&self) -> Result<Option<Manifest>, Failure> {
        let path = self.manifest_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &path, &e)),
        };
        let manifest = decode_manifest(&text).map_err(|why| {
            Failure::hinted(
                format!("{} is damaged: {why}", path.display()),
                "remove it and run again to write the whole archive afresh (files of the same \
                 names are replaced)",
            )
        })?;
        *self
            .saved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = text;
        Ok(Some(manifest))
    }

    /// Replaces the manifest with `m`: temporary file, sync, rename, directory sync; nothing
    /// when `m` is what the manifest holds already.
    pub fn write_manifest(&self, m: &Manifest) -> Result<(), Failure> {
        let path = self.manifest_path();
        let tmp = tmp_name(&path);
        let text = encode_manifest(m);
        let mut saved = self
            .saved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *saved == text {
            return Ok(());
        }
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(FILE_MODE)
                .open(&tmp)
                .map_err(|e| io_err("create", &tmp, &e))?;
            f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))
                .map_err(|e| io_err("set the mode of", &tmp, &e))?;
            f.write_all(text.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| io_err("write", &tmp, &e))?;
            std::fs::rename(&tmp, &path).map_err(|e| io_err("rename to", &path, &e))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result?;
        sync(&self.dir)?;
        *saved = text;
        Ok(())
    }

    /// Creates the partition directory `rel` (relative to `OUT_DIR`) if missing, 0700;
    /// returns its path. Its entry is synced with the files put in it (`publish::commit`).
    pub fn partition_dir(&self, rel: &str) -> Result<PathBuf, Failure> {
        let path = self.dir.join(rel);
        if path.is_dir() {
            return Ok(path);
        }
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&path)
            .map_err(|e| io_err("create", &path, &e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(DIR_MODE))
            .map_err(|e| io_err("set the mode of", &path, &e))?;
        Ok(path)
    }
}

/// The manifest's text (see the module doc).
pub fn encode_manifest(m: &Manifest) -> String {
    // A struct of strings and integers always serialises.
    let body = serde_json::to_string(m).unwrap_or_default();
    let crc = crc32fast::hash(body.as_bytes());
    format!(
        "{{\"format\":\"{MANIFEST_FORMAT}\",\"version\":{MANIFEST_VERSION},\"crc32\":\"{crc:08x}\",\"body\":{body}}}\n"
    )
}

/// Checks and decodes a manifest's text; the error says what is wrong.
pub fn decode_manifest(text: &str) -> Result<Manifest, String> {
    let env: Envelope<'_> =
        serde_json::from_str(text).map_err(|e| format!("not a manifest ({e})"))?;
    if env.format != MANIFEST_FORMAT {
        return Err(format!(
            "format is {:?}, not {MANIFEST_FORMAT:?}",
            env.format
        ));
    }
    if env.version != MANIFEST_VERSION {
        return Err(format!(
            "version {} (this selflog reads version {MANIFEST_VERSION})",
            env.version
        ));
    }
    let crc = crc32fast::hash(env.body.get().as_bytes());
    if env.crc32 != format!("{crc:08x}") {
        return Err(format!(
            "checksum {} does not match its contents ({crc:08x})",
            env.crc32
        ));
    }
    serde_json::from_str(env.body.get()).map_err(|e| format!("unexpected contents ({e})"))
}

/// The date (`YYYY-MM-DD`, proleptic Gregorian, UTC) of day `days` since 1970-01-01.
pub fn date_of_day(days: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The UTC day of a timestamp in microseconds, as days since 1970-01-01.
pub fn day_of(timestamp_us: i64) -> i64 {
    timestamp_us.div_euclid(86_400_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_of_days() {
        assert_eq!(date_of_day(0), "1970-01-01");
        assert_eq!(date_of_day(-1), "1969-12-31");
        assert_eq!(date_of_day(day_of(1_732_460_000_000_000)), "2024-11-24");
        assert_eq!(date_of_day(day_of(951_782_400_000_000)), "2000-02-29");
        assert_eq!(date_of_day(day_of(-1)), "1969-12-31");
    }

    #[test]
    fn manifest_round_trips_and_damage_is_named() {
        let m = Manifest {
            store: "s".into(),
            events: vec![SegmentEntry {
                segment_id: 3,
                sealed: true,
                first_id: 10,
                last_id: 20,
                events: 11,
                files: vec![FileEntry {
                    path: "date=2024-11-24/segment-00000003.parquet".into(),
                    rows: 11,
                    bytes: 999,
                }],
            }],
            ..Manifest::default()
        };
        let text = encode_manifest(&m);
        assert_eq!(decode_manifest(&text).unwrap(), m);
        let flipped = text.replace("\"rows\":11", "\"rows\":12");
        assert!(decode_manifest(&flipped).unwrap_err().contains("checksum"));
        let newer = text.replace("\"version\":1", "\"version\":2");
        assert!(decode_manifest(&newer).unwrap_err().contains("version 2"));
        assert!(decode_manifest("{").unwrap_err().contains("not a manifest"));
    }
}
