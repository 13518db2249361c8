//! `datsync bench` (hidden): the end-to-end benchmark.

use std::process::ExitCode;

use crate::cli::BenchArgs;

pub fn run(_args: &BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet")
}
