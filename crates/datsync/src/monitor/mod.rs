//! What `watch` and `serve` show on `--metrics-addr`: `GET /metrics`, the process's
//! Prometheus metrics in the text format, and `GET /`, the status page (see `page.rs`).
//!
//! Served by [`crate::serve`]'s bounded accept loop (connection limit, header timeout,
//! graceful stop). The receipts' gauges (`datsync_receipts{state}`, `datsync_files_parked`)
//! are read from `datsync_receipts` at each scrape, so they are what the database says now,
//! whichever process changed it.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

mod page;

pub use page::PAGE_REFRESH_SECONDS;

use crate::pg::{PgSettings, quote_ident};
use crate::telemetry::Metrics;

/// The content type of the Prometheus text format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the monitor reads.
pub struct Monitor {
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// The database and the profile's schema, for the receipts and the recent syncs.
    pub pg: PgSettings,
    /// The profile's schema.
    pub schema: String,
}

/// The routes `GET /metrics` and `GET /`.
pub fn monitor_router(monitor: Arc<Monitor>) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(metrics))
        .with_state(monitor)
}

/// The status page: this process's running syncs and failed chunks, the database's parked
/// files and recent syncs.
async fn status_page(State(m): State<Arc<Monitor>>) -> Response {
    let db = page::read_db(&m).await;
    let live = m.metrics.live();
    let html = page::render(&live.running(), &live.failures(), &db);
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

async fn metrics(State(m): State<Arc<Monitor>>) -> Response {
    match receipt_counts(&m.pg, &m.schema).await {
        Ok((pending, finished, parked)) => m.metrics.set_receipts(pending, finished, parked),
        Err(e) => tracing::warn!(error = %e, "receipts not read for the metrics"),
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        m.metrics.encode(),
    )
        .into_response()
}

/// Receipts pending, finished and parked (zeros before the first sync made the table).
async fn receipt_counts(
    pg: &PgSettings,
    schema: &str,
) -> Result<(u64, u64, u64), crate::pg::PgError> {
    let client = crate::pg::connect(pg).await?;
    let table = format!("{}.datsync_receipts", quote_ident(schema));
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .map_err(|e| crate::pg::PgError::query("cannot look up datsync_receipts", e))?
        .get(0);
    if !exists {
        return Ok((0, 0, 0));
    }
    let row = client
        .query_one(
            &format!(
                "SELECT count(*) FILTER (WHERE poisoned_at IS NULL AND finished_at IS NULL),
                        count(*) FILTER (WHERE poisoned_at IS NULL AND finished_at IS NOT NULL),
                        count(*) FILTER (WHERE poisoned_at IS NOT NULL)
                   FROM {table}"
            ),
            &[],
        )
        .await
        .map_err(|e| crate::pg::PgError::query("cannot count datsync_receipts", e))?;
    let n = |i| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
    Ok((n(0), n(1), n(2)))
}

/// `GET /metrics` alone (the Functions handler's own port).
pub fn monitor_metrics_router(monitor: Arc<Monitor>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(monitor)
}
