//! `healthz`: `{status, database, timestamp}`; the reason of an unhealthy answer goes to the
//! log only (the function is anonymous).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::App;
use super::reply::{correlation_id, http_output, json_reply};
use crate::pg::PgSettings;

/// How long the health check waits for the database.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

async fn health(app: &App, cid: &str) -> (StatusCode, Value) {
    let database = match tokio::time::timeout(HEALTH_TIMEOUT, check_database(&app.pg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("no answer within {} s", HEALTH_TIMEOUT.as_secs())),
    };
    let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match database {
        Ok(()) => (
            StatusCode::OK,
            json!({ "status": "healthy", "database": "connected", "timestamp": timestamp }),
        ),
        Err(e) => {
            tracing::warn!(correlation_id = %cid, error = %e, "health check: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({
                    "status": "unhealthy",
                    "database": "unreachable",
                    "timestamp": timestamp,
                }),
            )
        }
    }
}

async fn check_database(pg: &PgSettings) -> Result<(), String> {
    let client = crate::pg::connect(pg).await.map_err(|e| e.to_string())?;
    client
        .simple_query("SELECT 1")
        .await
        .map(|_| ())
        .map_err(|e| crate::pg::PgError::query("checking the database", e).to_string())
}

/// `GET /api/healthz`, forwarded as it is.
pub(super) async fn forwarded(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let cid = correlation_id(&headers);
    let (status, body) = health(&app, &cid).await;
    json_reply(status, body, &cid)
}

/// `POST /healthz`: the same as an HTTP-trigger invocation.
pub(super) async fn invocation(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let cid = correlation_id(&headers);
    let (status, body) = health(&app, &cid).await;
    http_output(status, body, &cid)
}
