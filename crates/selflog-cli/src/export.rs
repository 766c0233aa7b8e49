//! `selflog inspect export FILE`: events to a JSON array (`.json`), JSON Lines (`.jsonl`),
//! or JSON Lines on stdout (`-`). A file appears only once complete: the events are written
//! to a temporary file `.NAME.PID.tmp` in the same directory, synced, then linked to FILE.
//!
//! Events are written oldest first by timestamp, like a backup (`-r`: newest first).
//! `-n N` selects the newest N matching events, written in that same order: a first pass
//! reads the newest N to find the oldest of them, the second writes from there.
//!
//! An export holds private data, so the file is created 0600 like the store's files,
//! whatever the umask. An existing FILE is never replaced without `--force`, not even one
//! created while the export ran (the final step fails if FILE exists). SIGINT or SIGTERM
//! stops the export and removes its temporary file (exit 130); a temporary file left by an
//! export that was killed outright (`kill -9`) is removed by the next export to the same
//! name, once no process has the pid its name holds.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use selflog::{EventId, Order, Store, Timestamp};

use crate::filter::FilterArgs;
use crate::interrupt::{Interrupt, EXIT_INTERRUPTED};
use crate::{output, Failure, Outcome};

/// Permissions of an export: the owner's alone, like the store's files.
const EXPORT_MODE: u32 = 0o600;

/// Formats of `export`; `inspect export --format` names one.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON array.
    Json,
    /// One JSON object per line.
    Jsonl,
}

/// Which matching events an export writes, and in what order.
#[derive(Debug, Clone, Copy)]
pub struct Selection {
    /// Only the newest N (`-n`).
    pub limit: Option<u64>,
    /// Newest first (`-r`); otherwise oldest first.
    pub reverse: bool,
}

/// The events an export writes: a query in the order to write, how many it yields at most,
/// and, for the newest N written oldest first, the first event to keep.
struct Plan<'s> {
    query: selflog::Query<'s>,
    total: u64,
    /// Skip events sorting before this (timestamp, id): ties at the oldest kept timestamp.
    start: Option<(Timestamp, EventId)>,
}

/// Plans the export of `sel` of `filter`'s matches.
fn plan<'s>(store: &'s Store, filter: &FilterArgs, sel: Selection) -> Result<Plan<'s>, Failure> {
    let q = filter.query(store)?;
    let Some(n) = sel.limit else {
        let total = q.clone().count()?;
        let order = if sel.reverse {
            Order::NewestFirst
        } else {
            Order::OldestFirst
        };
        return Ok(Plan {
            query: q.order(order),
            total,
            start: None,
        });
    };
    if sel.reverse {
        let total = q.clone().count()?.min(n);
        return Ok(Plan {
            query: q.order(Order::NewestFirst).limit(n),
            total,
            start: None,
        });
    }
    // The newest N, oldest first: find the oldest of them, then read forward from it. The
    // second pass stops at the newest id the first saw, so events appended meanwhile are
    // not taken for older ones.
    let mut newest = q.clone().order(Order::NewestFirst).limit(n).run()?;
    let mut total = 0;
    let mut oldest = None;
    let mut id_max = 0;
    while let Some(e) = newest.next_ref() {
        let e = e?;
        total += 1;
        oldest = Some((e.timestamp, e.id));
        id_max = id_max.max(e.id.0);
    }
    let Some((t0, id0)) = oldest else {
        return Ok(Plan {
            query: q.limit(0),
            total: 0,
            start: None,
        });
    };
    Ok(Plan {
        query: q
            .since(t0)
            .ids(EventId(1), EventId(id_max.saturating_add(1)))
            .order(Order::OldestFirst),
        total,
        start: Some((t0, id0)),
    })
}

pub fn run(
    store_dir: &Path,
    file: &Path,
    filter: &FilterArgs,
    selection: Selection,
    format: Option<ExportFormat>,
    force: bool,
) -> Outcome {
    let to_stdout = file == Path::new("-");
    let format = format_of(file, format, to_stdout)?;
    if !to_stdout && !force && file.symlink_metadata().is_ok() {
        return Err(exists(file));
    }
    let store = Store::open_read_only(store_dir)?;
    let plan = plan(&store, filter, selection)?;
    // A bar when the events go to a file (named, or stdout redirected to one).
    let bar = if to_stdout && !output::stdout_is_file() {
        ProgressBar::hidden()
    } else {
        crate::progress::bar(plan.total, "exporting", "events")
    };
    if to_stdout {
        let mut out = BufWriter::new(io::stdout().lock());
        write_events(&mut out, plan, format, &bar, None)?;
        bar.finish_and_clear();
        out.flush().map_err(|e| output::write_err(&e))?;
        return Ok(0);
    }
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
    remove_stale_temps(dir, &name);
    let interrupt = Interrupt::install()?;
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(EXPORT_MODE)
            .open(&tmp)
            .map_err(|e| {
                Failure::from(io::Error::new(
                    e.kind(),
                    format!("cannot create {}: {e}", tmp.display()),
                ))
            })?;
        // The mode above is filtered by the umask, which may take the owner's bits too.
        f.set_permissions(std::fs::Permissions::from_mode(EXPORT_MODE))?;
        let mut out = BufWriter::new(f);
        let Some(n) = write_events(&mut out, plan, format, &bar, Some(&interrupt))? else {
            return Ok(None);
        };
        let f = out
            .into_inner()
            .map_err(|e| Failure::from(e.into_error()))?;
        f.sync_all()?;
        publish(&tmp, file, force)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok::<Option<u64>, Failure>(Some(n))
    })();
    bar.finish_and_clear();
    match result {
        Ok(Some(n)) => {
            eprintln!("exported {n} events to {}", file.display());
            Ok(0)
        }
        Ok(None) => {
            let _ = std::fs::remove_file(&tmp);
            eprintln!(
                "selflog: export interrupted; {} was not written and the temporary file is removed",
                file.display()
            );
            Ok(EXIT_INTERRUPTED)
        }
        Err(f) => {
            let _ = std::fs::remove_file(&tmp);
            Err(f)
        }
    }
}

/// The format `--format` names, or the one `file`'s extension implies.
fn format_of(
    file: &Path,
    format: Option<ExportFormat>,
    to_stdout: bool,
) -> Result<ExportFormat, Failure> {
    Ok(match (format, to_stdout) {
        (Some(f), _) => f,
        (None, true) => ExportFormat::Jsonl,
        (None, false) => match file.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => ExportFormat::Json,
            Some(e) if e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson") => {
                ExportFormat::Jsonl
            }
            _ => {
                return Err(Failure::hinted(
                    format!("cannot tell the format of {} from its name", file.display()),
                    "name it .json or .jsonl, or pass --format json|jsonl",
                ))
            }
        },
    })
}

/// The refusal to replace `file`.
fn exists(file: &Path) -> Failure {
    Failure::hinted(
        format!("{} exists; not overwritten", file.display()),
        "pass --force to replace it, or choose another name",
    )
}

/// Gives the complete temporary file its final name. Without `force` a hard link, which
/// fails when `file` exists, even if it appeared while the export ran; then the temporary
/// name is removed. Where the file system has no hard links, a rename after a check.
fn publish(tmp: &Path, file: &Path, force: bool) -> Result<(), Failure> {
    let rename_err = |e: io::Error| {
        Failure::from(io::Error::new(
            e.kind(),
            format!("cannot rename to {}: {e}", file.display()),
        ))
    };
    if force {
        return std::fs::rename(tmp, file).map_err(rename_err);
    }
    match std::fs::hard_link(tmp, file) {
        Ok(()) => {
            std::fs::remove_file(tmp)?;
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(exists(file)),
        Err(_) if file.symlink_metadata().is_ok() => Err(exists(file)),
        Err(_) => std::fs::rename(tmp, file).map_err(rename_err),
    }
}

/// Removes the temporary files `.NAME.PID.tmp` in `dir` of earlier exports to `name` whose
/// process is gone (killed outright), saying so on stderr. A file whose pid is alive may
/// belong to a running export and is left.
fn remove_stale_temps(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|n| n.strip_suffix(".tmp"))
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let gone = rustix::process::Pid::from_raw(pid)
            .is_some_and(|p| rustix::process::test_kill_process(p) == Err(rustix::io::Errno::SRCH));
        if !gone {
            continue;
        }
        let path: PathBuf = entry.path();
        if std::fs::remove_file(&path).is_ok() {
            eprintln!(
                "selflog: removed {}, left by an export that was killed (process {pid} is gone)",
                path.display()
            );
        }
    }
}

fn write_events(
    out: &mut impl Write,
    plan: Plan<'_>,
    format: ExportFormat,
    bar: &ProgressBar,
    interrupt: Option<&Interrupt>,
) -> Result<Option<u64>, Failure> {
    let w = |e: io::Error| output::write_err(&e);
    let mut n = 0u64;
    if format == ExportFormat::Json {
        out.write_all(b"[").map_err(w)?;
    }
    // Events are borrowed and each line is built in one reused buffer: nothing is
    // allocated per event.
    let mut events = plan.query.run()?;
    let mut line = Vec::new();
    while let Some(e) = events.next_ref() {
        if interrupt.is_some_and(Interrupt::is_set) {
            return Ok(None);
        }
        let e = e?;
        if plan.start.is_some_and(|start| (e.timestamp, e.id) < start) {
            continue;
        }
        if n == plan.total && plan.start.is_some() {
            break;
        }
        line.clear();
        if format == ExportFormat::Json {
            line.extend_from_slice(if n == 0 { b"\n" } else { b",\n" });
        }
        selflog::jsonl::push_line(&mut line, &e);
        if format == ExportFormat::Jsonl {
            line.push(b'\n');
        }
        out.write_all(&line).map_err(w)?;
        n += 1;
        bar.inc(1);
    }
    if format == ExportFormat::Json {
        out.write_all(if n == 0 { b"]\n" } else { b"\n]\n" })
            .map_err(w)?;
    }
    Ok(Some(n))
}
