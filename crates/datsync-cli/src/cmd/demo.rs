//! `datsync demo`: a quirky sample file loaded, the load killed part way with SIGKILL,
//! resumed; the same file loaded uninterrupted into a second, empty table; the two tables
//! compared row by row (a checksum over every column of every row, the audit timestamps and
//! sync ids aside), with the verdict, the timings of the resume and of the uninterrupted
//! load, and the value warnings and unknown columns the sample holds.
//!
//! The loads run as child processes of this same executable (`datsync run`, `datsync
//! resume`), so the kill is a real `kill -9` of a real process: the child arms
//! `DATSYNC_KILL_AT=chunk_committed:<n>` and dies right after its n-th chunk commit. The
//! interrupted sync loads into the schema `datsync_demo`, the uninterrupted one into
//! `datsync_demo_reference` (`DB_SCHEMA` of each child; both dropped and recreated first), so
//! each starts from an empty table.

mod db;
mod report;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use datsync::RejectRecord;
use datsync::RunSummary;
use datsync::SyncStatus;
use datsync::process_env;
use datsync::{SampleOptions, SampleSize, SampleSummary, write_sample};

use super::child::{ChildRun, run_datsync};
use crate::cli::{DemoArgs, GlobalArgs};
use datsync::TableChecksum;

/// Chunks the sample is cut into (the chunk size follows from the row count).
const DEMO_CHUNKS: u64 = 20;
/// The share of chunks committed before the kill.
const KILL_SHARE: f64 = 0.6;
/// Rows of the table shown at the end.
const SHOWN_ROWS: i64 = 5;
/// Value warnings shown.
const SHOWN_WARNINGS: usize = 5;
/// The schema of the interrupted and resumed load.
pub const DEMO_SCHEMA: &str = "datsync_demo";
/// The schema of the uninterrupted load it is compared with.
pub const REFERENCE_SCHEMA: &str = "datsync_demo_reference";
/// The column of the sample that the profile does not know.
const EXTRA_COLUMN: &str = "TONASE";

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
    /// The uninterrupted load of the same file into an empty table.
    full_run_s: f64,
    resume: RunSummary,
    /// The uninterrupted load's summary.
    reference: RunSummary,
    table: String,
    reference_table: String,
    table_rows: i64,
    /// The checksums of the two tables.
    resumed_checksum: TableChecksum,
    reference_checksum: TableChecksum,
    /// Whether the resumed table equals the uninterrupted one.
    identical: bool,
    first_rows: Vec<Vec<Option<String>>>,
    columns: Vec<String>,
    /// The first value warnings of the resumed sync.
    first_warnings: Vec<RejectRecord>,
    /// The kept directory with the sample and the rejects.
    files_dir: String,
}

pub fn run(args: &DemoArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut profile = super::load_profile(global.profile.as_deref())?;
    let env = process_env();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let target = db::choose(args, &env, &rt)?;
    if !args.json {
        println!("database   {}", target.description);
    }
    rt.block_on(db::fresh_schemas(
        &target.settings,
        &[DEMO_SCHEMA, REFERENCE_SCHEMA],
    ))?;
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
        report::print_sample(&file, &sample, EXTRA_COLUMN);
    }
    let mut common = common_args(&target, chunk_size);
    if let Some(p) = &global.profile {
        common.extend(["--profile".to_owned(), p.display().to_string()]);
    }
    let plan = Plan {
        file: &file,
        dir: dir.path(),
        common,
        chunks,
        kill_at,
        quiet: args.json,
    };
    let loads = plan.loads()?;
    DEMO_SCHEMA.clone_into(&mut profile.schema);
    let mut reference_profile = profile.clone();
    REFERENCE_SCHEMA.clone_into(&mut reference_profile.schema);
    let found = rt.block_on(findings(
        &target.settings,
        [&profile, &reference_profile],
        &dir.path().join("checkpoints"),
        &loads.resume.sync_id,
    ))?;
    let kept = dir.keep();
    let outcome = DemoOutcome {
        database: target.description.clone(),
        sample,
        chunk_size,
        chunks,
        killed_after_chunks: kill_at,
        killed_run_s: secs(loads.killed.elapsed),
        resume_s: secs(loads.resumed.elapsed),
        full_run_s: secs(loads.full.elapsed),
        resume: loads.resume,
        reference: loads.reference,
        table: format!("{}.{}", profile.schema, profile.table),
        reference_table: format!("{}.{}", reference_profile.schema, reference_profile.table),
        table_rows: found.table_rows,
        identical: found.resumed_checksum == found.reference_checksum,
        resumed_checksum: found.resumed_checksum,
        reference_checksum: found.reference_checksum,
        first_rows: found.first_rows,
        columns: found.columns,
        first_warnings: found.first_warnings,
        files_dir: kept.display().to_string(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        report::print(&outcome);
        println!(
            "files      the sample, the checkpoints and the rejects stay in {} (delete it when done)",
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
    Ok(outcome.exit_code())
}

impl DemoOutcome {
    /// Success when both loads loaded and the tables are identical.
    fn exit_code(&self) -> ExitCode {
        let loaded =
            |s: &RunSummary| matches!(s.status, SyncStatus::Success | SyncStatus::PartialSuccess);
        if self.identical && loaded(&self.resume) && loaded(&self.reference) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// What the demo reads back once the loads are done.
struct Findings {
    resumed_checksum: TableChecksum,
    reference_checksum: TableChecksum,
    table_rows: i64,
    columns: Vec<String>,
    first_rows: Vec<Vec<Option<String>>>,
    first_warnings: Vec<RejectRecord>,
}

/// The two tables' checksums (the resumed one's profile first), the first rows of the
/// resumed table, and the resumed sync's first value warnings.
async fn findings(
    settings: &datsync::PgSettings,
    [resumed, reference]: [&datsync::Profile; 2],
    checkpoints: &Path,
    sync_id: &datsync::SyncId,
) -> anyhow::Result<Findings> {
    let preview = report::table_rows(settings, resumed, SHOWN_ROWS).await?;
    let client = datsync::connect(settings).await?;
    Ok(Findings {
        resumed_checksum: datsync::table_checksum(&client, resumed).await?,
        reference_checksum: datsync::table_checksum(&client, reference).await?,
        table_rows: preview.rows,
        columns: preview.columns,
        first_rows: preview.first_rows,
        first_warnings: report::first_warnings(checkpoints, sync_id, SHOWN_WARNINGS).await?,
    })
}

/// The loads of the demo and what each said.
struct Loads {
    killed: ChildRun,
    resumed: ChildRun,
    full: ChildRun,
    resume: RunSummary,
    reference: RunSummary,
}

/// The three loads of the demo.
struct Plan<'a> {
    file: &'a Path,
    /// Where the checkpoints go (a directory for each of the two schemas).
    dir: &'a Path,
    /// Flags of every child.
    common: Vec<String>,
    chunks: u64,
    kill_at: u64,
    /// No progress lines (`--json`).
    quiet: bool,
}

impl Plan<'_> {
    /// A run killed after `kill_at` chunk commits and its resume, into [`DEMO_SCHEMA`]; then
    /// an uninterrupted run of the same file into the empty table of [`REFERENCE_SCHEMA`].
    fn loads(self) -> anyhow::Result<Loads> {
        let (kill_at, chunks) = (self.kill_at, self.chunks);
        let now = chrono::Utc::now();
        let sync_id = datsync::SyncId::new(now, now.timestamp_subsec_nanos() ^ std::process::id());
        let file_arg = self.file.display().to_string();
        let with = |mut args: Vec<String>, checkpoints: &str| {
            args.extend(self.common.iter().cloned());
            args.extend([
                "--checkpoint-dir".to_owned(),
                self.dir.join(checkpoints).display().to_string(),
            ]);
            args
        };
        let schema = |s: &str| ("DB_SCHEMA", s.to_owned());
        let run_args = with(
            vec![
                "run".into(),
                file_arg.clone(),
                "--sync-id".into(),
                sync_id.to_string(),
            ],
            "checkpoints",
        );
        let kill_spec = format!("chunk_committed:{kill_at}");
        let killed = run_datsync(
            &run_args,
            &[(datsync::KILL_AT_ENV, kill_spec), schema(DEMO_SCHEMA)],
        )?;
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
        let resume_args = with(vec!["resume".into(), sync_id.to_string()], "checkpoints");
        let resumed = run_datsync(&resume_args, &[schema(DEMO_SCHEMA)])?;
        let resume = summary_of(&resumed)?;
        let full_args = with(vec!["run".into(), file_arg, "--fresh".into()], "reference");
        let full = run_datsync(&full_args, &[schema(REFERENCE_SCHEMA)])?;
        let reference = summary_of(&full)?;
        Ok(Loads {
            killed,
            resumed,
            full,
            resume,
            reference,
        })
    }
}

/// The sample file: `rows` rows, quirky header with a column the profile does not know, 1%
/// invalid, 5% duplicate keys (a window of thousands of rows: across chunks), 0.5% ragged,
/// 2% with an unreadable value in an optional column.
fn write_file(dir: &Path, rows: u64) -> anyhow::Result<(std::path::PathBuf, SampleSummary)> {
    let path = dir.join("ZTDWR_DEMO.dat");
    let options = SampleOptions {
        size: SampleSize::Rows(rows),
        invalid_rate: 0.01,
        dup_rate: 0.05,
        ragged_rate: 0.005,
        bad_value_rate: 0.02,
        extra_column: Some(EXTRA_COLUMN.to_owned()),
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

/// Flags of every child: quiet, JSON summary, the demo's chunk size, and the database.
fn common_args(target: &db::Target, chunk_size: u64) -> Vec<String> {
    let mut args = vec![
        "--quiet".to_owned(),
        "--json".to_owned(),
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
