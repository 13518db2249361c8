//! `datsync completions` and `datsync man`: shell completions and manual pages generated
//! from the clap definitions, so they never drift from the flags.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::cli::{Cli, CompletionsArgs, ManArgs};

/// Prints the completion script of `args.shell` on stdout.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "datsync", &mut out);
    out.flush().context("writing the completion script")?;
    Ok(ExitCode::SUCCESS)
}

/// Prints datsync(1), or writes every page into `--out`.
pub fn man(args: &ManArgs) -> anyhow::Result<ExitCode> {
    // As clap_mangen::generate_to builds it, so both give the same datsync(1).
    let cmd = Cli::command()
        .long_about(
            "Resumable, exactly-once loading of large SAP ZTDWR extract files into \
             PostgreSQL. Each command has a page of its own: datsync-run(1), datsync-watch(1), …",
        )
        .disable_help_subcommand(true);
    match &args.out {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .context("rendering the manual page")?;
            let mut out = std::io::stdout().lock();
            out.write_all(&page)
                .and_then(|()| out.flush())
                .context("writing the manual page")?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("writing the manual pages into {}", dir.display()))?;
            eprintln!("manual pages written to {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
