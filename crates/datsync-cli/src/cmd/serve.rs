//! `datsync serve`: the Azure Functions custom handler (see `datsync::serve`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use datsync::{
    AzureAccount, DEFAULT_MAX_ATTEMPTS, DEFAULT_SERVE_RETRY_BACKOFF, HostSettings, Intake,
    RetryPolicy, SERVE_PORT_ENV, ServeOptions, ServerLimits, Sources,
};
use tokio::sync::watch;

use crate::cli::{GlobalArgs, ServeArgs};

/// The port when neither --port nor FUNCTIONS_CUSTOMHANDLER_PORT says.
const DEFAULT_PORT: u16 = 8080;
/// The host.json looked for when --host-json is not given.
const HOST_JSON: &str = "host.json";

pub fn run(args: &ServeArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    datsync::check_bind(args.bind, args.allow_non_loopback)?;
    if !args.bind.is_loopback() {
        tracing::warn!(
            address = %args.bind,
            "listening on a non-loopback address (--allow-non-loopback): anyone who reaches it \
             can start syncs; the handler checks no function key"
        );
    }
    let port = port(args)?;
    let policy = retry_policy(args)?;
    let account = AzureAccount::from_env()
        .context("reading the storage account settings")?
        .map(|a| a.account().to_owned());
    if account.is_none() {
        tracing::warn!(
            "no storage account is configured (AzureWebJobsStorage): no source can be loaded"
        );
    }
    let (stop_tx, stop) = watch::channel(false);
    // A service: no progress bars.
    let metrics = Arc::new(datsync::Metrics::new(true));
    let pipeline = super::run::build(&args.sync, global)?
        .stop(stop.clone())
        .metrics(metrics.clone());
    let intake =
        Arc::new(Intake::new(pipeline, policy).submit_above(args.submit_above.map(|s| s.0)));
    let monitor = super::watch::monitor(&intake, metrics);
    let pg = intake.pipeline().pg().clone();
    let mut options = ServeOptions {
        sources: Sources::new(&args.container, &args.prefix, account.as_deref()),
        ..ServeOptions::default()
    };
    let mut limits = ServerLimits::default();
    if let Some(t) = args.read_timeout {
        options.body.idle_timeout = t;
        limits.header_read_timeout = t;
    }
    super::run::runtime()?.block_on(async {
        super::watch::listen_for_stop(stop_tx)?;
        if let Some(address) = args.metrics_addr {
            super::watch::serve_monitor(address, monitor.clone(), stop.clone()).await?;
        }
        let address = SocketAddr::new(args.bind, port);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        let bound = listener.local_addr().context("reading the bound address")?;
        // Tests and scripts read this line on stdout.
        println!("listening on http://{bound}");
        tracing::info!(
            address = %bound,
            max_attempts = policy.max_attempts,
            retry_backoff = ?policy.backoff,
            "serving the Azure Functions custom handler"
        );
        // The handler's port answers GET /metrics too.
        let router = datsync::serve_router(intake, pg, options)
            .merge(datsync::monitor_metrics_router(monitor));
        let mut stopping = stop;
        let shutdown = async move {
            let _ = stopping.wait_for(|s| *s).await;
        };
        datsync::serve(listener, router, shutdown, limits)
            .await
            .context("serving")?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

fn port(args: &ServeArgs) -> anyhow::Result<u16> {
    Ok(match args.port {
        Some(p) => p,
        None => match datsync::process_env().get(SERVE_PORT_ENV) {
            Some(p) if !p.trim().is_empty() => p
                .trim()
                .parse()
                .with_context(|| format!("{SERVE_PORT_ENV}={p:?} is not a port number"))?,
            _ => DEFAULT_PORT,
        },
    })
}

/// The attempts and the pause the receipts follow: the host's queue settings in host.json
/// (the host delivers a message that many times, that far apart), which a flag may repeat
/// but not contradict.
fn retry_policy(args: &ServeArgs) -> anyhow::Result<RetryPolicy> {
    let path = args
        .host_json
        .clone()
        .unwrap_or_else(|| PathBuf::from(HOST_JSON));
    let host = HostSettings::read(&path)?;
    if host.is_none() && args.host_json.is_some() {
        anyhow::bail!("{}: no such file", path.display());
    }
    let max_attempts = agreed(
        args.max_attempts,
        host.map(|h| h.max_dequeue_count),
        &path,
        "--max-attempts",
        "extensions.queues.maxDequeueCount",
    )?
    .unwrap_or(DEFAULT_MAX_ATTEMPTS);
    let backoff = agreed(
        args.retry_backoff,
        host.map(|h| h.visibility_timeout),
        &path,
        "--retry-backoff",
        "extensions.queues.visibilityTimeout",
    )?
    .unwrap_or(DEFAULT_SERVE_RETRY_BACKOFF);
    if backoff.is_zero() {
        tracing::warn!(
            "the retry pause is zero: the host delivers a failed message again at once, and a \
             short database outage can use up every attempt; set \
             extensions.queues.visibilityTimeout in host.json"
        );
    }
    Ok(RetryPolicy {
        max_attempts,
        backoff,
        // The host waits the same visibilityTimeout before every delivery.
        max_backoff: backoff,
    })
}

/// The flag's value, or host.json's; an error when both are given and differ.
fn agreed<T: PartialEq + std::fmt::Debug + Copy>(
    flag: Option<T>,
    host: Option<T>,
    path: &Path,
    flag_name: &str,
    setting: &str,
) -> anyhow::Result<Option<T>> {
    match (flag, host) {
        (Some(f), Some(h)) if f != h => anyhow::bail!(
            "{flag_name} is {f:?} but {setting} in {} is {h:?}: the receipts would count or pace \
             attempts unlike the Functions host; make them equal (or drop the flag)",
            path.display()
        ),
        (Some(v), _) | (None, Some(v)) => Ok(Some(v)),
        (None, None) => Ok(None),
    }
}
