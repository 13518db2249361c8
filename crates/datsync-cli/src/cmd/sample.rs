//! `datsync sample`.

use std::fs::File;
use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use datsync::{SampleOptions, SampleSize, write_sample};

use crate::cli::SampleArgs;

pub fn run(args: &SampleArgs) -> anyhow::Result<ExitCode> {
    let size = match (args.rows, args.mb) {
        (_, Some(mb)) if !(mb.is_finite() && mb > 0.0) => bail!("--mb must be a positive number"),
        (_, Some(mb)) => SampleSize::Bytes((mb * 1024.0 * 1024.0) as u64),
        (Some(rows), None) => SampleSize::Rows(rows),
        (None, None) => SampleSize::Rows(datsync::DEFAULT_SAMPLE_ROWS),
    };
    let options = SampleOptions {
        size,
        seed: args.seed,
        invalid_rate: args.invalid_rate,
        dup_rate: args.dup_rate,
        ragged_rate: args.ragged_rate,
        gzip: args.gzip,
        crlf: args.crlf,
        delimiter: args.delimiter,
        quirky_header: args.quirky_header,
        bad_value_rate: args.bad_value_rate,
        extra_column: args.extra_column.clone(),
    };
    let summary = if let Some(path) = &args.output {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        write_sample(file, &options).with_context(|| format!("writing {}", path.display()))?
    } else {
        let stdout = std::io::stdout();
        if args.gzip && stdout.is_terminal() {
            bail!("refusing to write gzip to a terminal; add -o FILE");
        }
        write_sample(stdout.lock(), &options).context("writing to standard output")?
    };
    let target = args
        .output
        .as_ref()
        .map_or_else(|| "standard output".to_owned(), |p| p.display().to_string());
    tracing::info!(
        rows = summary.rows,
        text_bytes = summary.text_bytes,
        invalid_rows = summary.invalid_rows,
        duplicate_rows = summary.duplicate_rows,
        ragged_rows = summary.ragged_rows,
        latin1_rows = summary.latin1_rows,
        bad_value_rows = summary.bad_value_rows,
        "wrote sample to {target}"
    );
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    }
    Ok(ExitCode::SUCCESS)
}
