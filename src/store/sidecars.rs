//! Opening a store's sidecars (the pattern and stats streams) for writing, or for reading
//! when they are damaged: split from `store.rs`, whose writable open calls it while the
//! dedup window's image is checked.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::open_log;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::layout::META_FILE;
use crate::maintenance::{sidecar_config, Pumps, Sidecar, Sidecars};
use crate::recovery::{ImageMark, OpenReport, Problem};
use crate::writer::Writer;

/// Opens both sidecars of the store in `dir` for writing, each like an event log, with
/// writers for the maintenance thread to pump.
/// A sidecar's reset `counters` is added to `report`'s.
fn open_sidecars(dir: &Path, main: &Config, report: &mut OpenReport) -> Result<Writable> {
    let config = sidecar_config(main);
    let mut open = |dir: PathBuf| -> Result<(Sidecar, Writer, ImageMark)> {
        let (log, ()) = open_log(&dir, config.clone(), |_, _| Ok(()))?;
        if let Some(why) = log.report.counters_reset {
            report.counters_reset = Some(match report.counters_reset.take() {
                Some(main) => format!("{main}; {why}"),
                None => why,
            });
        }
        let writer = Writer::pumped(Arc::clone(&log.shared), log.recovered);
        Ok((
            Sidecar::writable(dir, log.stream, log.shared, log.lock),
            writer,
            log.mark,
        ))
    };
    let [patterns, stats] = Sidecars::dirs(dir);
    let (patterns, patterns_writer, patterns_mark) = open(patterns)?;
    let (stats, stats_writer, stats_mark) = open(stats)?;
    Ok((
        Arc::new(Sidecars { patterns, stats }),
        Pumps {
            patterns: patterns_writer,
            stats: stats_writer,
        },
        [patterns_mark, stats_mark],
    ))
}

/// Both sidecars open for writing: the readers, the writers for the maintenance thread to
/// pump, and the clearing of each one's index image flag, which the caller waits for
/// before that thread starts.
pub(super) type Writable = (Arc<Sidecars>, Pumps, [ImageMark; 2]);

/// The sidecars of a writable open of the store in `dir`, for the maintenance thread and
/// for reading, when `config` has them. Damage that keeps a sidecar from opening for
/// writing (a damaged meta, header or synced frame, which would refuse this open) never
/// stops the events: the store opens without writing either sidecar, reads what it can of
/// them, and `report.sidecars_unwritable` names the damage.
pub(super) fn open_sidecars_unless_damaged(
    dir: &Path,
    config: &Config,
    report: &mut OpenReport,
) -> Result<(Option<Writable>, Option<Arc<Sidecars>>)> {
    if !config.sidecars {
        return Ok((None, None));
    }
    let problem = match open_sidecars(dir, config, report) {
        Ok(sc) => {
            let readers = Arc::clone(&sc.0);
            return Ok((Some(sc), Some(readers)));
        }
        Err(Error::Corrupt { path, offset, what }) => Problem { path, offset, what },
        // A sidecar segment lost or unreadable (issue 20) costs that sidecar, not the events.
        Err(Error::Incomplete { path, what }) => Problem {
            path,
            offset: 0,
            what,
        },
        Err(e @ (Error::UnsupportedVersion { .. } | Error::NotAStore { .. })) => {
            let (Error::UnsupportedVersion { path, .. } | Error::NotAStore { path, .. }) = &e
            else {
                return Err(e);
            };
            Problem {
                path: path.clone(),
                offset: 0,
                what: e.to_string(),
            }
        }
        Err(e) => return Err(e),
    };
    report.sidecars_unwritable = Some(problem);
    Ok((None, open_sidecars_read_only(dir).map(Arc::new)))
}

/// The sidecars of the store in `dir` for reading, if both exist. Damage in a sidecar
/// fails only the reads of that sidecar, never this open.
pub(super) fn open_sidecars_read_only(dir: &Path) -> Option<Sidecars> {
    let dirs = Sidecars::dirs(dir);
    if dirs.iter().any(|d| !d.join(META_FILE).exists()) {
        return None;
    }
    Some(Sidecars::read_only(dir))
}
