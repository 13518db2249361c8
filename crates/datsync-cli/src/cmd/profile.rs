//! `datsync profile init`.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;

use datsync::{DraftOptions, draft_profile};

use crate::cli::{ProfileArgs, ProfileCommand, ProfileInitArgs};

/// `profile …`.
pub fn run(args: &ProfileArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        ProfileCommand::Init(init) => self::init(init),
    }
}

/// `profile init FILE`: the drafted profile on stdout, or in a new file with a summary on
/// stderr.
fn init(args: &ProfileInitArgs) -> anyhow::Result<ExitCode> {
    let name = args.file.display().to_string();
    let file = std::fs::File::open(&args.file).with_context(|| format!("opening {name}"))?;
    let draft = draft_profile(
        std::io::BufReader::new(file),
        &DraftOptions {
            file: name.clone(),
            table: args.table.clone(),
            key: args.key.clone(),
            rows: args.rows,
        },
    )?;
    match &args.output {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(draft.toml.as_bytes())
                .and_then(|()| out.flush())
                .context("writing the profile")?;
        }
        Some(path) => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .with_context(|| {
                    format!(
                        "creating {} (an existing file is not replaced)",
                        path.display()
                    )
                })?;
            file.write_all(draft.toml.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            let mut kinds: Vec<(&str, usize)> = Vec::new();
            for (_, kind) in &draft.columns {
                match kinds.iter_mut().find(|(k, _)| k == kind) {
                    Some(entry) => entry.1 += 1,
                    None => kinds.push((kind.as_str(), 1)),
                }
            }
            let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
            eprintln!(
                "{}: drafted from {} records of {name}: delimiter {}, {}, {} columns ({}){}; \
                 review every guess, then: datsync --profile {} run {name}",
                path.display(),
                draft.records,
                draft.delimiter,
                if draft.header {
                    "a header"
                } else {
                    "no header"
                },
                draft.columns.len(),
                kinds.join(", "),
                if draft.ragged > 0 {
                    format!("; {} records with another field count", draft.ragged)
                } else {
                    String::new()
                },
                path.display(),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
