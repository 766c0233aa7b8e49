//! `selflog inspect export FILE`: events to a JSON array (`.json`), JSON Lines (`.jsonl`),
//! or JSON Lines on stdout (`-`). A file appears only once complete: the events are written
//! to a temporary file in the same directory, synced, then renamed over FILE.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal as _, Write};
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use selflog::Store;

use crate::filter::FilterArgs;
use crate::{output, Failure, Outcome};

/// Formats of `export`; `inspect export --format` names one.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON array.
    Json,
    /// One JSON object per line.
    Jsonl,
}

pub fn run(
    store_dir: &Path,
    file: &Path,
    filter: &FilterArgs,
    limit: Option<u64>,
    format: Option<ExportFormat>,
) -> Outcome {
    let to_stdout = file == Path::new("-");
    let format = match (format, to_stdout) {
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
    };
    let store = Store::open_read_only(store_dir)?;
    // An export reads like a backup: oldest first.
    let mut q = filter.query(&store)?.order(selflog::Order::OldestFirst);
    if let Some(n) = limit {
        q = q.limit(n);
    }
    let total = q.clone().count().unwrap_or(0);
    let bar = if io::stderr().is_terminal() && !to_stdout {
        ProgressBar::with_draw_target(
            Some(limit.map_or(total, |n| n.min(total))),
            ProgressDrawTarget::stderr(),
        )
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("exporting [{bar:40}] {pos}/{len} events, eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    if to_stdout {
        let mut out = BufWriter::new(io::stdout().lock());
        write_events(&mut out, q, format, &bar)?;
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
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let f = File::create(&tmp).map_err(|e| {
            Failure::from(io::Error::new(
                e.kind(),
                format!("cannot create {}: {e}", tmp.display()),
            ))
        })?;
        let mut out = BufWriter::new(f);
        let n = write_events(&mut out, q, format, &bar)?;
        let f = out
            .into_inner()
            .map_err(|e| Failure::from(e.into_error()))?;
        f.sync_all()?;
        std::fs::rename(&tmp, file).map_err(|e| {
            Failure::from(io::Error::new(
                e.kind(),
                format!("cannot rename to {}: {e}", file.display()),
            ))
        })?;
        Ok::<u64, Failure>(n)
    })();
    bar.finish_and_clear();
    match result {
        Ok(n) => {
            eprintln!("exported {n} events to {}", file.display());
            Ok(0)
        }
        Err(f) => {
            let _ = std::fs::remove_file(&tmp);
            Err(f)
        }
    }
}

fn write_events(
    out: &mut impl Write,
    q: selflog::Query<'_>,
    format: ExportFormat,
    bar: &ProgressBar,
) -> Result<u64, Failure> {
    let w = |e: io::Error| output::write_err(&e);
    let mut n = 0u64;
    if format == ExportFormat::Json {
        out.write_all(b"[").map_err(w)?;
    }
    // Events are borrowed and each line is built in one reused buffer: nothing is
    // allocated per event.
    let mut events = q.run()?;
    let mut line = Vec::new();
    while let Some(e) = events.next_ref() {
        line.clear();
        if format == ExportFormat::Json {
            line.extend_from_slice(if n == 0 { b"\n" } else { b",\n" });
        }
        selflog::jsonl::push_line(&mut line, &e?);
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
    Ok(n)
}
