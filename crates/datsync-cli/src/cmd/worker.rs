//! `datsync submit` and `datsync worker`: the work queue (see the library's
//! `pipeline/queue.rs`).

use std::process::ExitCode;
use std::sync::Arc;

use datsync::{Metrics, Monitor, SyncId, WorkerOptions};

use crate::cli::{GlobalArgs, SubmitArgs, SyncArgs, WorkerArgs};

pub fn submit(args: &SubmitArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    // With --json, an error before the sync is queued still prints one JSON object (as
    // `run` does).
    super::run::json_on_error(
        submit_inner(args, global),
        args.sync.json,
        args.sync_id.as_deref(),
    )
}

fn submit_inner(args: &SubmitArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let sync_id = args.sync_id.as_deref().map(SyncId::parse).transpose()?;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let pipeline = super::run::build(&args.sync, global)?.stop(stop).build();
    let submitted = super::run::runtime()?.block_on(async {
        super::watch::listen_for_stop(stop_tx)?;
        anyhow::Ok(pipeline.submit(&args.source, sync_id, args.fresh).await?)
    })?;
    let code = submitted
        .ended
        .as_ref()
        .map_or(0, |s| u8::from(!s.already_loaded));
    if args.sync.json {
        let mut out = serde_json::to_value(&submitted)?;
        if let Some(ended) = &submitted.ended {
            out["status"] = serde_json::to_value(ended.status)?;
            out["already_loaded"] = ended.already_loaded.into();
            out["error"] = serde_json::to_value(&ended.error)?;
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        match &submitted.ended {
            None => println!("{}", submitted.sync_id),
            Some(s) if s.already_loaded => println!(
                "already loaded as sync {} ({}); nothing to do (--fresh loads it again)",
                s.sync_id, s.status
            ),
            Some(s) => println!(
                "{}: {}{}",
                s.sync_id,
                s.status,
                s.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ),
        }
    }
    Ok(ExitCode::from(code))
}

pub fn work(args: &WorkerArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let sync = SyncArgs {
        database_url: args.db.database_url.clone(),
        checkpoint_dir: None,
        chunk_size: None,
        chunk_bytes: None,
        max_line_bytes: None,
        no_checkpoint: false,
        jobs: None,
        json: args.json,
    };
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let metrics = Arc::new(Metrics::new(true));
    let pipeline = Arc::new(
        super::run::build(&sync, global)?
            .stop(stop.clone())
            .metrics(metrics.clone())
            .build(),
    );
    let options = WorkerOptions {
        concurrency: args.concurrency as usize,
        exit_when_idle: args.exit_when_idle,
        max_idle: args.max_idle,
        poll: args.max_idle.min(WorkerOptions::default().poll),
        max_attempts: args.max_attempts,
        backoff: args.backoff,
    };
    let report = super::run::runtime()?.block_on(async {
        super::watch::listen_for_stop(stop_tx)?;
        if let Some(address) = args.metrics_addr {
            let monitor = Arc::new(Monitor {
                metrics,
                pg: pipeline.pg().clone(),
                schema: pipeline.profile().schema.clone(),
            });
            super::watch::serve_monitor(address, monitor, stop.clone()).await?;
        }
        tracing::info!(worker = %datsync::worker_name(), concurrency = options.concurrency,
            "worker started");
        anyhow::Ok(pipeline.clone().work(options).await?)
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(ExitCode::SUCCESS)
}
