//! The `datsync` command line: parses arguments, runs one command from the library, and maps
//! the outcome to an exit code in one place.

mod cli;
mod cmd;
mod logging;

use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};

/// Exit code of a command that failed.
const EXIT_FAILURE: u8 = 1;
/// Exit code of a usage error (BSD `EX_USAGE`), kept apart from the codes of sync outcomes.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let parsed = cli::Cli::command()
        .try_get_matches()
        .and_then(|m| cli::Cli::from_arg_matches(&m).map(|args| (args, m)));
    let (mut args, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // The Functions host reads `serve`'s stdout as Information and its stderr as Errors.
    let streams = if matches!(args.command, cli::Command::Serve(_)) {
        logging::Streams::ByLevel
    } else {
        logging::Streams::Stderr
    };
    logging::init(&args.global, streams);
    if let Err(e) = cmd::config::install(&mut args, &matches) {
        eprintln!("error: {}", one_line(&e));
        return ExitCode::from(EXIT_FAILURE);
    }
    match cmd::run(args) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The error and its causes on one line, each said once: the library's messages already
/// name their cause, which `{:#}` would print a second time.
pub(crate) fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string().replace(['\n', '\r'], " ");
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// A reader of our output went away (`datsync inspect f | head`): not an error of ours.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests {
    /// An error whose message names its cause, as the library's do.
    #[derive(Debug)]
    struct Outer {
        source: std::io::Error,
    }

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "loading chunk 3: {}", self.source)
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn causes_are_said_once() {
        let io = std::io::Error::other("server certificate does not match");
        let e = anyhow::Error::new(Outer { source: io }).context("running the sync");
        assert_eq!(
            super::one_line(&e),
            "running the sync: loading chunk 3: server certificate does not match"
        );
        let e = anyhow::anyhow!("first\nsecond").context("outer");
        assert_eq!(super::one_line(&e), "outer: first second");
    }
}
