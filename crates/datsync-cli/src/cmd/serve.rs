//! `datsync serve`: the Azure Functions custom handler (see `datsync::serve`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use datsync::intake::{Intake, RetryPolicy};
use datsync::serve::{PORT_ENV, ServeOptions};
use tokio::sync::watch;

use crate::cli::{GlobalArgs, ServeArgs};

/// The port when neither --port nor FUNCTIONS_CUSTOMHANDLER_PORT says.
const DEFAULT_PORT: u16 = 8080;

pub fn run(args: &ServeArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let port = match args.port {
        Some(p) => p,
        None => match std::env::var(PORT_ENV) {
            Ok(p) if !p.trim().is_empty() => p
                .trim()
                .parse()
                .with_context(|| format!("{PORT_ENV}={p:?} is not a port number"))?,
            _ => DEFAULT_PORT,
        },
    };
    let (stop_tx, stop) = watch::channel(false);
    // A service: no progress bars.
    let pipeline = super::run::build(&args.sync, global)?.stop(stop.clone());
    let policy = RetryPolicy {
        max_attempts: args.max_attempts,
        ..RetryPolicy::default()
    };
    let intake = Arc::new(Intake::new(pipeline, policy));
    let pg = intake.pipeline().pg().clone();
    let options = ServeOptions {
        default_container: args.container.clone(),
        default_prefix: args.prefix.clone(),
    };
    super::run::runtime()?.block_on(async {
        super::watch::listen_for_stop(stop_tx)?;
        let address = SocketAddr::new(args.bind, port);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        let bound = listener.local_addr().context("reading the bound address")?;
        // The first line on stdout says where: tests and scripts read it.
        println!("listening on http://{bound}");
        tracing::info!(address = %bound, "serving the Azure Functions custom handler");
        let router = datsync::serve::router(intake, pg, options);
        let mut stopping = stop;
        let shutdown = async move {
            let _ = stopping.wait_for(|s| *s).await;
        };
        datsync::serve::serve(listener, router, shutdown)
            .await
            .context("serving")?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}
