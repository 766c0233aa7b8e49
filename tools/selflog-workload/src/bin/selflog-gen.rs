//! `selflog-gen`: writes a realistic stream of desktop-activity events to standard output
//! as JSON Lines, one event per line in the form `selflog ingest` reads.
//!
//! The events come from [`selflog_workload`], the generator `selflog demo` and the
//! benchmarks use, so `selflog-gen --count 1000000 | selflog ingest` stores the same kind of
//! workload they measure. The same seed gives the same events, apart from the timestamps,
//! which always end now. Exit status: 0 on success, also when the reader closes the pipe
//! early (`selflog-gen --count 1000000 | head -1`); 1 on any other error, reported as one
//! line `selflog-gen: ...` on standard error; 2 on a usage error.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use selflog_workload::{now_us, to_json_line, Workload, WorkloadConfig};

/// Longest span accepted by `--days`: about 55 years, so timestamps stay after 1970.
const DAYS_MAX: f64 = 20_000.0;

const SECS_PER_DAY: f64 = 86_400.0;

#[derive(Parser)]
#[command(
    name = "selflog-gen",
    version,
    about = "Write realistic desktop-activity events to standard output as JSON Lines",
    after_help = "Exit status: 0 on success (also when the reader closes the pipe), 1 on an error, 2 on a usage error."
)]
struct Args {
    /// How many events to write, duplicates included.
    #[arg(long, value_name = "N")]
    count: u64,
    /// Seed of the generator: the same seed gives the same events.
    #[arg(long, value_name = "S", default_value_t = WorkloadConfig::default().seed)]
    seed: u64,
    /// Fraction of events that exactly repeat one of the last 1000 events.
    #[arg(
        long,
        value_name = "FRACTION",
        default_value_t = WorkloadConfig::default().duplicate_share,
        value_parser = fraction
    )]
    duplicates: f64,
    /// Fraction of events that arrive late, timestamped before the event written before them.
    #[arg(
        long,
        value_name = "FRACTION",
        default_value_t = WorkloadConfig::default().late_share,
        value_parser = fraction
    )]
    late: f64,
    /// Days the timestamps span, ending now.
    #[arg(
        long,
        value_name = "D",
        default_value_t = WorkloadConfig::default().span.as_secs_f64() / SECS_PER_DAY,
        value_parser = days
    )]
    days: f64,
}

fn fraction(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{text} is not a fraction between 0 and 1"))
    }
}

fn days(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if value > 0.0 && value <= DAYS_MAX {
        Ok(value)
    } else {
        Err(format!(
            "{text} is not a number of days above 0 and at most {DAYS_MAX}"
        ))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader has all it wants (`| head`): not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("selflog-gen: cannot write to standard output: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> io::Result<()> {
    let span = Duration::from_secs_f64(args.days * SECS_PER_DAY);
    let span_us = i64::try_from(span.as_micros()).expect("DAYS_MAX days fit in i64 microseconds");
    let config = WorkloadConfig {
        seed: args.seed,
        duplicate_share: args.duplicates,
        late_share: args.late,
        start_us: now_us().saturating_sub(span_us),
        span,
        count: args.count,
        ..WorkloadConfig::default()
    };
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    for event in Workload::new(config) {
        out.write_all(to_json_line(&event).as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()
}
