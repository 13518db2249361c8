//! `datsync watch`: cycles of list → intake, until a signal (or after one cycle with
//! `--once`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use datsync::{
    Action, Intake, Metrics, Mode, Monitor, Processed, RetryPolicy, ServerLimits, list_sources,
};
use tokio::sync::watch;

use crate::cli::{GlobalArgs, WatchArgs};

pub fn run(args: &WatchArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let place = watched_place(&args.source_prefix)?;
    let (stop_tx, stop) = watch::channel(false);
    // A service: no progress bars, one line per file instead.
    let metrics = Arc::new(Metrics::new(true));
    let pipeline = super::run::build(&args.sync, global)?
        .stop(stop.clone())
        .metrics(metrics.clone());
    let policy = RetryPolicy {
        max_attempts: args.max_attempts,
        backoff: args.retry_backoff,
        ..RetryPolicy::default()
    };
    let intake = Intake::new(pipeline, policy).submit_above(args.submit_above.map(|s| s.0));
    super::run::runtime()?.block_on(async {
        listen_for_stop(stop_tx)?;
        if let Some(address) = args.metrics_addr {
            serve_monitor(address, monitor(&intake, metrics), stop.clone()).await?;
        }
        tracing::info!(place = %place, interval = ?args.interval, once = args.once, "watching");
        watch_loop(&intake, &place, args, stop).await
    })
}

/// What the monitor of an intake reads: its metrics, database and schema.
pub(super) fn monitor(intake: &Intake, metrics: Arc<Metrics>) -> Arc<Monitor> {
    let pipeline = intake.pipeline();
    Arc::new(Monitor {
        metrics,
        pg: pipeline.pg().clone(),
        schema: pipeline.profile().schema.clone(),
    })
}

/// Serves `GET /metrics` and `GET /` on `address` until `stop`, in a task of its own.
pub(super) async fn serve_monitor(
    address: SocketAddr,
    monitor: Arc<Monitor>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} (--metrics-addr)"))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    if !bound.ip().is_loopback() {
        tracing::warn!(address = %bound, "the metrics and status page are served on a non-loopback address: anyone who reaches it sees file names and errors");
    }
    tracing::info!(address = %bound, "serving metrics on /metrics and the status page on /");
    let router = datsync::monitor_router(monitor);
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = datsync::serve(listener, router, shutdown, ServerLimits::default()).await {
            tracing::error!(error = %e, "the metrics server stopped");
        }
    });
    Ok(())
}

/// The watched place: an `az://container/prefix`, `s3://bucket/prefix`,
/// `gs://bucket/prefix`, or an existing local directory.
fn watched_place(prefix: &str) -> anyhow::Result<String> {
    if datsync::is_blob_url(prefix) {
        datsync::check_blob_prefix(prefix)?;
        return Ok(prefix.trim().to_owned());
    }
    if prefix.contains("://") {
        anyhow::bail!(
            "{prefix}: watch a local directory or a blob prefix (az://container/path, \
             s3://bucket/path, gs://bucket/path)"
        );
    }
    let dir = PathBuf::from(prefix);
    let meta = std::fs::metadata(&dir)
        .with_context(|| format!("{prefix}: cannot watch it; give an existing directory"))?;
    anyhow::ensure!(
        meta.is_dir(),
        "{prefix} is not a directory; give the directory that receives the files"
    );
    Ok(prefix.to_owned())
}

/// SIGTERM or SIGINT sets `stop` (the sync in flight ends after its chunk); a second one
/// exits at once with 128 + the signal's number.
pub(super) fn listen_for_stop(stop: watch::Sender<bool>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    tokio::spawn(async move {
        let mut stopping = false;
        loop {
            let (name, code) = tokio::select! {
                _ = term.recv() => ("SIGTERM", 143),
                _ = int.recv() => ("SIGINT", 130),
            };
            if stopping {
                tracing::warn!(signal = name, "second signal: exiting at once");
                std::process::exit(code);
            }
            stopping = true;
            tracing::warn!(
                signal = name,
                "stopping: the sync in flight finishes its current chunk (a second signal exits at once)"
            );
            let _ = stop.send(true);
        }
    });
    Ok(())
}

async fn watch_loop(
    intake: &Intake,
    place: &str,
    args: &WatchArgs,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<ExitCode> {
    loop {
        let code = cycle(intake, place, args.sync.json, &stop).await?;
        if args.once {
            return Ok(ExitCode::from(code));
        }
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(args.interval) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// One cycle; returns its exit code (the worst of its files': 1 over 2 over 0).
async fn cycle(
    intake: &Intake,
    place: &str,
    json: bool,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<u8> {
    let found = match list_sources(place).await {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "listing failed; trying again next cycle");
            return Ok(1);
        }
    };
    tracing::debug!(files = found.len(), "cycle");
    let mut code = 0;
    for f in &found {
        if *stop.borrow() {
            break;
        }
        match intake.process(f, Mode::Automatic).await {
            Ok(p) => {
                code = worst(code, p.exit_code());
                report(&p, json)?;
            }
            Err(e) => {
                code = 1;
                tracing::error!(source = %f.source, error = %e, "cannot handle this file now; trying again next cycle");
                if json {
                    let line = serde_json::json!({
                        "source": f.source, "name": f.name, "version": f.version,
                        "action": "error", "error": e.to_string(),
                    });
                    println!("{line}");
                }
            }
        }
    }
    Ok(code)
}

fn worst(a: u8, b: u8) -> u8 {
    match (a, b) {
        (1, _) | (_, 1) => 1,
        (2, _) | (_, 2) => 2,
        _ => a.max(b),
    }
}

fn report(p: &Processed, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(p)?);
        return Ok(());
    }
    let id = p
        .sync_id
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let attempts = format!("attempt {}", p.attempts);
    let error = p
        .error
        .as_deref()
        .map(|e| format!(": {e}"))
        .unwrap_or_default();
    match (p.action, &p.summary) {
        (Action::Started | Action::Resumed, _) if p.interrupted => {
            println!(
                "{}: {id} stopped after its chunk in flight; it continues next time",
                p.name
            );
        }
        (Action::Started | Action::Resumed, Some(s)) => println!(
            "{}: {} {id} → {} ({} rows read, {} loaded, {} rejected, {} pending; {attempts}){}",
            p.name,
            action_word(p.action),
            s.status,
            s.counts.rows_read,
            s.counts.rows_loaded,
            s.counts.rows_rejected,
            s.counts.rows_pending,
            if p.finished { String::new() } else { next(p) },
        ),
        (Action::Started | Action::Resumed, None) => println!(
            "{}: {} {id} stopped with an error ({attempts}){error}{}",
            p.name,
            action_word(p.action),
            next(p)
        ),
        (Action::Parked, _) => println!(
            "{}: {id} parked as poison after {} attempt(s){error}",
            p.name, p.attempts
        ),
        (Action::SkippedBusy, _) => {
            tracing::info!(file = %p.name, "busy in another process; skipped this cycle");
        }
        (Action::Superseded, _) => println!("{}: {id} not loaded{error}", p.name),
        (Action::Submitted, _) => println!(
            "{}: submitted {id} to the work queue ({} chunks); datsync worker processes load it",
            p.name,
            p.submitted.as_ref().map_or(0, |s| s.chunks_total)
        ),
        (Action::SkippedDone | Action::WaitingBackoff | Action::SkippedParked, _) => {
            tracing::debug!(file = %p.name, action = ?p.action, sync_id = %id, "nothing to do");
        }
    }
    Ok(())
}

fn action_word(a: Action) -> &'static str {
    match a {
        Action::Resumed => "resumed",
        _ => "started",
    }
}

fn next(p: &Processed) -> String {
    p.next_attempt_at
        .as_deref()
        .map(|at| format!("; next attempt after {at}"))
        .unwrap_or_default()
}
