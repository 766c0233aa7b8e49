//! `selflog`: inspect, search, export and replay a selflog event store, and feed it.
//!
//! This binary uses only the library's public API. Data goes to stdout, diagnostics to
//! stderr as one line `selflog: ...` plus a hint. Exit status: 0 success, 1 error (or
//! rejected input), 2 usage error, 130 stopped by SIGINT or SIGTERM (`ingest`, `export`,
//! `archive`); `capture` and the followers (`list -f`, `replay -f`) end with 0.

mod archive;
mod capture;
mod count;
mod dashboard;
mod demo;
mod export;
mod filter;
mod import;
mod ingest;
mod inspect;
mod interrupt;
mod list;
mod maintain;
mod output;
mod progress;
mod replay;
mod salvage;
mod time;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status for failures other than usage errors.
const EXIT_ERROR: u8 = 1;

#[derive(Parser)]
#[command(
    name = "selflog",
    version,
    about = "An append-only event store for desktop activity capture",
    after_help = "Times print as local time with the UTC offset (--utc: UTC); --since and --until \
take that form back, or a date, today, yesterday, now, an age (2h, 1h30m, -1h), RFC 3339 or \
epoch seconds.\n\
Exit status: 0 on success, 1 on an error or rejected input (and from `inspect search` when \
nothing matched), 2 on a usage error, 130 when SIGINT (Ctrl-C) or SIGTERM stopped `ingest`, \
`inspect export` or `archive` cleanly (`capture`, `list -f` and `replay -f` end with 0)."
)]
struct Cli {
    /// The store directory.
    #[arg(
        long,
        global = true,
        env = "SELFLOG_STORE",
        default_value = "data/selflog"
    )]
    store: PathBuf,
    /// Print times in UTC, and read times without a zone as UTC (default: local time).
    #[arg(long, global = true)]
    utc: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Record what happens on this machine (files, processes, the active window) until
    /// SIGINT or SIGTERM: the capture daemon.
    Capture(capture::Args),
    /// Append events read as JSON Lines from FILE or standard input.
    Ingest(ingest::Args),
    /// Read the store without modifying it.
    #[command(subcommand)]
    Inspect(inspect::Command),
    /// Stream events in id order as JSON Lines (restart recovery of consumers).
    Replay(replay::Args),
    /// Import an old `SelFlow` `SQLite` events.db.
    ImportSqlite(import::Args),
    /// Run retention now: delete sealed segments older than 30 days.
    Maintain(maintain::Args),
    /// Copy every intact event of a damaged store into a new store.
    Salvage(salvage::Args),
    /// Live view of the store while it is written: rates, types, newest events, learning,
    /// storage and health (read-only; `--once` prints one plain-text snapshot).
    Dashboard(dashboard::Args),
    /// Write the store as a Hive-partitioned Parquet dataset (`DuckDB`, Spark, Trino, pyarrow).
    Archive(archive::Args),
    /// Generate realistic activity events, append them at full speed and report figures.
    Demo(demo::Args),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// A failure to report: the message, and a hint of what to do.
pub struct Failure {
    message: String,
    hint: Option<String>,
}

impl Failure {
    /// A failure with a hint.
    pub fn hinted(message: impl Into<String>, hint: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

impl From<selflog::Error> for Failure {
    fn from(e: selflog::Error) -> Failure {
        let hint = match &e {
            selflog::Error::NotAStore { .. } => {
                Some("pass --store DIR (or set SELFLOG_STORE) to point at a selflog store")
            }
            selflog::Error::Corrupt { .. } => {
                Some("run `selflog inspect verify` to list all damage")
            }
            selflog::Error::Locked { .. } => Some(
                "inspect commands work while another process writes; only one writer at a time",
            ),
            selflog::Error::Incomplete { .. } => Some(
                "`selflog inspect verify` lists everything missing; read commands still serve what is there",
            ),
            _ => None,
        };
        Failure {
            message: e.to_string(),
            hint: hint.map(str::to_owned),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure {
            message: e.to_string(),
            hint: None,
        }
    }
}

/// Opens the store read-only for a read command, printing one warning line to stderr when
/// the open noticed segments or events gone, a damaged manifest or a cursor past the end:
/// the command still serves what is there.
///
/// The store is never dropped: a command opens one and exits when done, and letting the
/// process's exit release it spares closing every segment file and unmapping every map one
/// call at a time (a 10M-event store has ~64 of each; 3-4% of `inspect list`, issue 21). A
/// read-only store holds nothing that must be written back.
pub fn open_read_only(store_dir: &std::path::Path) -> Result<&'static selflog::Store, Failure> {
    let store: &'static selflog::Store =
        Box::leak(Box::new(selflog::Store::open_read_only(store_dir)?));
    if let Some(first) = store.warnings().first() {
        let more = match store.warnings().len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        eprintln!(
            "selflog: warning: {}: {}{more}; run `selflog inspect verify`",
            first.path.display(),
            first.what
        );
    }
    Ok(store)
}

/// Opens the store for writing for a command that appends, printing one warning line to
/// stderr per lossy finding of the open (a duplicate count reset, sidecars left unwritten,
/// a rebuilt manifest): the command goes on.
pub fn open_writable(
    store_dir: &std::path::Path,
    mut config: selflog::Config,
) -> Result<selflog::Store, Failure> {
    // `SELFLOG_COMPACTION=off` keeps sealed segments as written (tests that damage their
    // bytes at known offsets); a number sets the zstd level of the compaction thread.
    match std::env::var("SELFLOG_COMPACTION").as_deref() {
        Ok("off") => config.compaction_level = None,
        Ok(level) => {
            config.compaction_level = Some(level.parse().map_err(|_| {
                Failure::hinted(
                    format!("SELFLOG_COMPACTION is {level:?}"),
                    "set it to `off` or to a zstd level from 1 to 19",
                )
            })?);
        }
        Err(_) => {}
    }
    let store = selflog::Store::open(store_dir, config)?;
    for line in store.open_report().warning_lines() {
        eprintln!("selflog: warning: {line}");
    }
    Ok(store)
}

/// What a command returns: its exit status, or a failure to print.
pub type Outcome = Result<u8, Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    time::set_utc(cli.utc);
    if let Err(e) = interrupt::survive_file_size_limit() {
        eprintln!("selflog: cannot handle SIGXFSZ: {e}");
        return ExitCode::from(EXIT_ERROR);
    }
    let result = match cli.command {
        Command::Capture(args) => capture::run(&cli.store, &args),
        Command::Ingest(args) => ingest::run(&cli.store, &args),
        Command::Inspect(cmd) => inspect::run(&cli.store, &cmd),
        Command::Dashboard(args) => dashboard::run(&cli.store, &args),
        Command::Demo(args) => demo::run(&cli.store, &args),
        Command::Replay(args) => replay::run(&cli.store, &args),
        Command::ImportSqlite(args) => import::run(&cli.store, &args),
        Command::Maintain(args) => maintain::run(&cli.store, &args),
        Command::Salvage(args) => salvage::run(&cli.store, &args),
        Command::Archive(args) => archive::run(&cli.store, &args),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "selflog", &mut std::io::stdout());
            Ok(0)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) if output::is_broken_pipe(&f.message) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("selflog: {}", f.message);
            if let Some(hint) = f.hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(EXIT_ERROR)
        }
    }
}
