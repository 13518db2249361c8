//! One module per command; each returns the process exit code.

mod bench;
mod child;
pub(crate) mod config;
mod db;
mod demo;
mod docs;
mod gc;
mod init_db;
mod inspect;
mod list;
mod profile;
pub(crate) mod progress;
mod queue;
mod rejects;
mod run;
mod sample;
mod serve;
mod status;
mod watch;
mod worker;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use datsync::Profile;

use crate::cli::{Cli, Command};

/// Runs the command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Sample(args) => sample::run(&args),
        Command::Inspect(args) => inspect::run(&args, cli.global.profile.as_deref()),
        Command::Profile(args) => profile::run(&args),
        Command::Run(args) => run::run(&args, &cli.global),
        Command::Resume(args) => run::resume(&args, &cli.global),
        Command::Submit(args) => worker::submit(&args, &cli.global),
        Command::Worker(args) => worker::work(&args, &cli.global),
        Command::Queue(args) => queue::run(&args, cli.global.profile.as_deref()),
        Command::Watch(args) => watch::run(&args, &cli.global),
        Command::Serve(args) => serve::run(&args, &cli.global),
        Command::InitDb(args) => init_db::run(&args, cli.global.profile.as_deref()),
        Command::List(args) => list::run(&args, cli.global.profile.as_deref()),
        Command::Status(args) => status::run(&args, cli.global.profile.as_deref()),
        Command::Rejects(args) => rejects::run(&args, cli.global.profile.as_deref()),
        Command::Gc(args) => gc::run(&args),
        Command::Demo(args) => demo::run(&args, &cli.global),
        Command::Config(args) => config::run(&args, &cli.global),
        Command::Completions(args) => docs::completions(&args),
        Command::Man(args) => docs::man(&args),
        Command::Bench(args) => bench::run(&args),
    }
}

/// The profile named by `--profile`, or the built-in one.
pub(crate) fn load_profile(path: Option<&Path>) -> anyhow::Result<Profile> {
    match path {
        Some(p) => Profile::from_file(p).context("loading the profile"),
        None => Ok(Profile::ztdwr()),
    }
}
