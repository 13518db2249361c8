//! The `datsync` command line: parses arguments, runs one command from the library, and maps
//! the outcome to an exit code in one place.

mod cli;
mod cmd;
mod logging;

use std::process::ExitCode;

use clap::Parser as _;

/// Exit code of a command that failed.
const EXIT_FAILURE: u8 = 1;
/// Exit code of a usage error (BSD `EX_USAGE`), kept apart from the codes of sync outcomes.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    logging::init(&args.global);
    match cmd::run(args) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// A reader of our output went away (`datsync inspect f | head`): not an error of ours.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}
