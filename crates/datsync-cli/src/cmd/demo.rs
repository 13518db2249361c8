//! `datsync demo`: a sample file loaded, the load killed part way with SIGKILL, resumed, and
//! the summary with what the resume saved.
//!
//! The loads run as child processes of this same executable (`datsync run`, `datsync
//! resume`), so the kill is a real `kill -9` of a real process: the child arms
//! `DATSYNC_KILL_AT=chunk_committed:<n>` and dies right after its n-th chunk commit.

mod db;
mod report;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use datsync::{
    RunSummary, SampleOptions, SampleSize, SampleSummary, SyncStatus, process_env, write_sample,
};

use super::child::{ChildRun, run_datsync};
use crate::cli::{DemoArgs, GlobalArgs};

/// Chunks the sample is cut into (the chunk size follows from the row count).
const DEMO_CHUNKS: u64 = 20;
/// The share of chunks committed before the kill.
const KILL_SHARE: f64 = 0.6;
/// Rows of the table shown at the end.
const SHOWN_ROWS: i64 = 5;

/// What the demo did, for the text and `--json` reports.
#[derive(Debug, serde::Serialize)]
struct DemoOutcome {
    database: String,
    sample: SampleSummary,
    chunk_size: u64,
    chunks: u64,
    killed_after_chunks: u64,
    killed_run_s: f64,
    resume_s: f64,
    full_run_s: f64,
    resume: RunSummary,
    table: String,
    table_rows: i64,
    first_rows: Vec<Vec<Option<String>>>,
    columns: Vec<String>,
    /// The kept directory with the sample and the rejects.
    files_dir: String,
}

pub fn run(args: &DemoArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let profile = &super::load_profile(global.profile.as_deref())?;
    let env = process_env();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let target = db::choose(args, &env, &rt)?;
    if !args.json {
        println!("database   {}", target.description);
    }
    let dir = tempfile::Builder::new()
        .prefix("datsync-demo-")
        .tempdir()
        .context("creating a temporary directory")?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::Permissions::from_mode(datsync::PRIVATE_DIR_MODE);
        std::fs::set_permissions(dir.path(), mode).context("making the demo directory private")?;
    }
    let (file, sample) = write_file(dir.path(), args.rows)?;
    let chunk_size = sample.rows.div_ceil(DEMO_CHUNKS).max(1);
    let chunks = sample.rows.div_ceil(chunk_size);
    // Rows ≥ 100 make at least two chunks; the kill comes before the last one.
    let kill_at = ((chunks as f64 * KILL_SHARE).round() as u64)
        .min(chunks.saturating_sub(1))
        .max(1);
    if !args.json {
        println!(
            "sample     {} ({} rows: {} invalid, {} duplicate keys, {} ragged; quirky header)",
            file.display(),
            sample.rows,
            sample.invalid_rows,
            sample.duplicate_rows,
            sample.ragged_rows
        );
    }
    let mut common = common_args(&target, dir.path(), chunk_size);
    if let Some(p) = &global.profile {
        common.extend(["--profile".to_owned(), p.display().to_string()]);
    }
    let plan = Plan {
        file: &file,
        common,
        chunks,
        kill_at,
        quiet: args.json,
    };
    let (killed, resumed, full, summary) = plan.loads()?;

    let preview = rt.block_on(report::table_rows(&target.settings, profile, SHOWN_ROWS))?;
    let kept = dir.keep();
    let outcome = DemoOutcome {
        database: target.description.clone(),
        sample,
        chunk_size,
        chunks,
        killed_after_chunks: kill_at,
        killed_run_s: secs(killed.elapsed),
        resume_s: secs(resumed.elapsed),
        full_run_s: secs(full.elapsed),
        resume: summary,
        table: format!("{}.{}", profile.schema, profile.table),
        table_rows: preview.rows,
        first_rows: preview.first_rows,
        columns: preview.columns,
        files_dir: kept.display().to_string(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        report::print(&outcome);
        println!(
            "files      the sample and the rejected rows stay in {} (delete it when done)",
            kept.display()
        );
    }
    if let Some(server) = target.server {
        server
            .shutdown()
            .context("stopping the throwaway PostgreSQL")?;
        if !args.json {
            println!("cleanup    the throwaway PostgreSQL is stopped and removed");
        }
    }
    Ok(
        if matches!(
            outcome.resume.status,
            SyncStatus::Success | SyncStatus::PartialSuccess
        ) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

/// The three loads of the demo.
struct Plan<'a> {
    file: &'a Path,
    /// Flags of every child.
    common: Vec<String>,
    chunks: u64,
    kill_at: u64,
    /// No progress lines (`--json`).
    quiet: bool,
}

impl Plan<'_> {
    /// A run killed after `kill_at` chunk commits, its resume (with the resume's summary),
    /// and an uninterrupted run of the same file for comparison.
    fn loads(self) -> anyhow::Result<(ChildRun, ChildRun, ChildRun, RunSummary)> {
        let (kill_at, chunks) = (self.kill_at, self.chunks);
        let now = chrono::Utc::now();
        let sync_id = datsync::SyncId::new(now, now.timestamp_subsec_nanos() ^ std::process::id());
        let file_arg = self.file.display().to_string();
        let mut run_args = vec!["run".to_owned(), file_arg.clone(), "--sync-id".to_owned()];
        run_args.push(sync_id.to_string());
        run_args.extend(self.common.iter().cloned());
        let kill_spec = format!("chunk_committed:{kill_at}");
        let killed = run_datsync(&run_args, &[(datsync::KILL_AT_ENV, kill_spec)])?;
        if !killed.killed() {
            bail!(
                "the first load was meant to be killed after chunk {kill_at} but ended: {}",
                killed.describe_failure()
            );
        }
        if !self.quiet {
            println!(
                "run        datsync run: interrupted after {kill_at} of {chunks} chunks (SIGKILL) \
                 after {:.1} s",
                killed.elapsed.as_secs_f64()
            );
        }
        let mut resume_args = vec!["resume".to_owned(), sync_id.to_string()];
        resume_args.extend(self.common.iter().cloned());
        let resumed = run_datsync(&resume_args, &[])?;
        let summary = summary_of(&resumed)?;
        let mut full_args = vec!["run".to_owned(), file_arg, "--fresh".to_owned()];
        full_args.extend(self.common);
        let full = run_datsync(&full_args, &[])?;
        summary_of(&full)?;
        Ok((killed, resumed, full, summary))
    }
}

/// The sample file: `rows` rows, quirky header, 1% invalid, 5% duplicate, 0.5% ragged.
fn write_file(dir: &Path, rows: u64) -> anyhow::Result<(std::path::PathBuf, SampleSummary)> {
    let path = dir.join("ZTDWR_DEMO.dat");
    let options = SampleOptions {
        size: SampleSize::Rows(rows),
        invalid_rate: 0.01,
        dup_rate: 0.05,
        ragged_rate: 0.005,
        quirky_header: true,
        ..SampleOptions::default()
    };
    // Private like the checkpoints: the sample holds (made-up) personal data.
    let out = {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(datsync::PRIVATE_FILE_MODE)
            .open(&path)
    }
    .with_context(|| format!("creating {}", path.display()))?;
    datsync::private_file(&path)?;
    let summary =
        write_sample(out, &options).with_context(|| format!("writing {}", path.display()))?;
    Ok((path, summary))
}

/// Flags of every child: quiet, JSON summary, the demo's checkpoints and chunk size, and the
/// database.
fn common_args(target: &db::Target, dir: &Path, chunk_size: u64) -> Vec<String> {
    let mut args = vec![
        "--quiet".to_owned(),
        "--json".to_owned(),
        "--checkpoint-dir".to_owned(),
        dir.join("checkpoints").display().to_string(),
        "--chunk-size".to_owned(),
        chunk_size.to_string(),
    ];
    if let Some(url) = &target.url {
        args.extend(["--database-url".to_owned(), url.clone()]);
    }
    args
}

/// The JSON summary a child printed; an error when it printed none.
fn summary_of(child: &ChildRun) -> anyhow::Result<RunSummary> {
    serde_json::from_str(&child.stdout).with_context(|| {
        format!(
            "a datsync child gave no summary: {}",
            child.describe_failure()
        )
    })
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}
