//! `datsync run` and `datsync resume`.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use datsync::{
    AlertSettings, Alerter, HookSettings, Hooks, PgSettings, Pipeline, PipelineBuilder,
    RawSettings, RunSummary, SyncId, process_env,
};

use super::load_profile;
use super::progress::Bars;
use crate::cli::{GlobalArgs, ResumeArgs, RunArgs, SyncArgs};

pub fn run(args: &RunArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let outcome = (|| {
        let sync_id = args.sync_id.as_deref().map(SyncId::parse).transpose()?;
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let pipeline = with_bars(build(&args.sync, global)?, global)
            .stop(stop)
            .build();
        let summary = runtime()?.block_on(async {
            super::watch::listen_for_stop(stop_tx)?;
            anyhow::Ok(pipeline.run(&args.source, sync_id, args.fresh).await)
        })?;
        write_metrics(&pipeline, args.metrics_file.as_deref())?;
        report(&summary?, args.sync.json)
    })();
    json_on_error(outcome, args.sync.json, args.sync_id.as_deref())
}

pub fn resume(args: &ResumeArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let outcome = (|| {
        let sync_id = SyncId::parse(&args.sync_id)?;
        let runtime = runtime()?;
        let mut sync = args.sync.clone();
        if sync.checkpoint_dir.is_none() {
            // Where the sync's last run kept its checkpoint, wherever this runs from.
            let probe = build(&sync, global)?.build();
            sync.checkpoint_dir = runtime.block_on(recorded_location(&probe, &sync_id));
        }
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let pipeline = with_bars(build(&sync, global)?, global).stop(stop).build();
        let summary = runtime.block_on(async {
            super::watch::listen_for_stop(stop_tx)?;
            if args.rebuild_checkpoint {
                anyhow::Ok(pipeline.rebuild_checkpoint(sync_id).await)
            } else {
                anyhow::Ok(pipeline.resume(sync_id).await)
            }
        })?;
        write_metrics(&pipeline, args.metrics_file.as_deref())?;
        report(&summary?, args.sync.json)
    })();
    json_on_error(outcome, args.sync.json, Some(&args.sync_id))
}

/// With `--json`, a run that ends in an error before it has a summary (the database
/// unreachable, the sync or source held by another process, the lock lost, bad settings)
/// still prints one JSON object: the sync it is about (`sync_id`, when known), no `status`,
/// the `error` and whether trying again later can help (`retryable`). The error is also
/// said on stderr and the exit code is 1, as without `--json`.
pub(super) fn json_on_error(
    outcome: anyhow::Result<ExitCode>,
    json: bool,
    given: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let Err(e) = &outcome else {
        return outcome;
    };
    if !json {
        return outcome;
    }
    let pipeline = e.downcast_ref::<datsync::PipelineError>();
    let sync_id = pipeline
        .and_then(datsync::PipelineError::sync_id)
        .map(ToString::to_string)
        .or_else(|| given.map(str::to_owned));
    let retryable = pipeline.is_some_and(|p| p.class() == datsync::ErrorClass::Transient);
    let summary = serde_json::json!({
        "sync_id": sync_id,
        "status": null,
        "error": crate::one_line(e),
        "retryable": retryable,
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    outcome
}

/// Writes the metrics of the process to `path` in the Prometheus text format: a temporary
/// file next to it, renamed over it, so a collector never reads half a file.
fn write_metrics(pipeline: &Pipeline, path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, pipeline.metrics().encode())
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write the metrics to {}", path.display()))
}

/// Where `sync_id`'s last run recorded its checkpoint, when the database says.
async fn recorded_location(pipeline: &Pipeline, sync_id: &SyncId) -> Option<String> {
    let client = datsync::connect(pipeline.pg()).await.ok()?;
    datsync::recorded_checkpoint_location(&client, &pipeline.profile().schema, sync_id)
        .await
        .ok()
        .flatten()
}

/// The first pause between two load attempts of a chunk after a transient database error, in
/// milliseconds (it doubles each attempt; default 500). Tests set it low.
pub const RETRY_BACKOFF_ENV: &str = "DATSYNC_RETRY_BACKOFF_MS";

/// Threads for blocking work (file writes, Parquet encoding).
const BLOCKING_THREADS: usize = 1;

/// A runtime with two workers: the converter and the loader overlap.
///
/// Few blocking threads: each thread that allocates gets a glibc malloc arena of its own,
/// and with tokio's default pool (up to 512 threads for file writes and Parquet encoding)
/// the arenas' free memory made the peak RSS grow with the file (1 GB file: 862 MB).
pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(BLOCKING_THREADS)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Settings: flags over environment over `datsync.toml` over defaults.
pub(super) fn build(args: &SyncArgs, global: &GlobalArgs) -> anyhow::Result<PipelineBuilder> {
    let env = process_env();
    let flags = RawSettings {
        checkpoint_base_path: args.checkpoint_dir.clone(),
        chunk_size: args.chunk_size,
        chunk_bytes: args.chunk_bytes,
        max_line_bytes: args.max_line_bytes,
        enable_checkpointing: args.no_checkpoint.then_some(false),
        jobs: args.jobs.map(usize::from),
        ..RawSettings::default()
    };
    // `env` holds the configuration file's settings below the environment's.
    let settings = flags.or(RawSettings::from_env(&env)?).validate()?;
    let pg = PgSettings::resolve(args.database_url.as_deref(), &env)?;
    let profile = load_profile(global.profile.as_deref())?;
    let alerts = AlertSettings::from_env(|k| env.get(k).cloned())?;
    let hooks = HookSettings::from_env(&datsync::file_hooks(), |k| env.get(k).cloned())?;
    let mut pipeline = Pipeline::builder(profile, settings, pg)
        .env(&env)
        .alerter(Alerter::new(&alerts)?)
        .hooks(Hooks::new(&hooks)?);
    if let Some(ms) = env.get(RETRY_BACKOFF_ENV) {
        let ms: u64 = ms.trim().parse().with_context(|| {
            format!("{RETRY_BACKOFF_ENV}={ms:?} is not a number of milliseconds")
        })?;
        pipeline = pipeline.retry_backoff(std::time::Duration::from_millis(ms));
    }
    if let Some(text) = env.get(datsync::DB_RETRY_FOR_ENV) {
        pipeline = pipeline.db_retry_for(parse_retry_for(text)?);
    }
    Ok(pipeline)
}

/// `DATSYNC_DB_RETRY_FOR`: a duration (`90s`, `5m`, `1h 30m`) or a number of seconds.
fn parse_retry_for(text: &str) -> anyhow::Result<std::time::Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    humantime::parse_duration(text).with_context(|| {
        format!(
            "{}={text:?} is not a duration (for example 90s, 5m or 300)",
            datsync::DB_RETRY_FOR_ENV
        )
    })
}

/// Progress bars on a terminal, unless `--quiet`.
fn with_bars(pipeline: PipelineBuilder, global: &GlobalArgs) -> PipelineBuilder {
    if !global.quiet && std::io::stderr().is_terminal() {
        pipeline.progress(Arc::new(Bars::new()))
    } else {
        pipeline
    }
}

fn report(summary: &RunSummary, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(summary)?);
    } else if summary.already_loaded {
        println!(
            "already loaded as sync {} ({}); nothing to do (--fresh loads it again)",
            summary.sync_id, summary.status
        );
    } else {
        print_text(summary);
    }
    Ok(ExitCode::from(summary.exit_code()))
}

fn print_text(summary: &RunSummary) {
    let s = summary;
    let c = &summary.counts;
    println!("{}: {}", s.sync_id, s.status);
    println!(
        "  rows     {} read: {} loaded ({} inserted, {} updated, {} older than the stored row), \
         {} rejected, {} superseded, {} pending",
        c.rows_read,
        c.rows_loaded,
        c.records_inserted,
        c.records_updated,
        c.records_skipped_older,
        c.rows_rejected,
        c.rows_superseded,
        c.rows_pending
    );
    let saved = s
        .time_saved_s
        .map(|t| format!(" (about {t:.1} s saved)"))
        .unwrap_or_default();
    println!(
        "  chunks   {}/{} completed, {} failed, {} skipped on resume{saved}",
        c.chunks_completed, c.chunks_total, c.chunks_failed, s.chunks_skipped_on_resume
    );
    if s.all_older {
        println!(
            "  older    every row of this file is older than the table's: the table is \
             unchanged (`datsync status {}` names the version that won)",
            s.sync_id
        );
    }
    if let Some(dir) = &s.checkpoint_dir {
        println!("  checkpoint kept in {dir}");
    }
    if let Some(dir) = &s.rejects_dir {
        println!("  rejected rows in {dir}");
    }
    if let Some(e) = &s.error {
        println!("  error    {e}");
    }
    println!("  took     {:.1} s", s.duration_s);
}
