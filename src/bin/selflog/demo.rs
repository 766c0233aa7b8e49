//! `selflog demo`: placeholder until the workload generator lands.
use crate::Outcome;
use std::path::Path;
#[derive(clap::Args)]
pub struct Args {
    /// Events to generate.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
}
pub fn run(_store_dir: &Path, _args: &Args) -> Outcome {
    Ok(0)
}
