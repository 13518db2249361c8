//! `datsync serve`: an Azure Functions custom handler.
//!
//! The Functions host starts this web server (`host.json`'s `customHandler`) and talks to it
//! on `FUNCTIONS_CUSTOMHANDLER_PORT`:
//!
//! - **Blob trigger** `ztdwr_sync`: the host POSTs `/ztdwr_sync` with an invocation
//!   (`{"Data": {...}, "Metadata": {"BlobTrigger": "data/hex-ztdwr/f.dat", "Uri": …}}`).
//!   The blob is located from the metadata and streamed from storage by ranges; the content
//!   the host puts in `Data` is never used (the host caps it, and it would be the whole file
//!   in memory). The answer is `{"Outputs": {}, "Logs": [...], "ReturnValue": {...}}`: HTTP
//!   200 when the blob is done, 500 when the host should retry it — each retry continues the
//!   same sync.
//! - **HTTP** `POST /api/sync-ztdwr` (forwarded as is, `enableForwardingHttpRequest`) or
//!   `POST /sync_ztdwr` (an invocation with `Data.req`, answered in `Outputs.res`): a manual
//!   re-run naming `blob_path`, `blob_name` or `file_name` and optionally `container`
//!   (`ztdwr.md` §7). It continues the blob's unfinished sync rather than starting over.
//! - `GET /api/healthz` (or the `healthz` invocation): `{status, database, timestamp}`.

mod request;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Value, json};

use crate::intake::{Action, Intake, IntakeError, Mode, Processed};
use crate::model::SyncStatus;
use crate::pg::PgSettings;

pub use request::{BlobRequest, RequestError, blob_from_metadata, invocation_metadata};

/// The blob-trigger function's name (its folder in `deploy/azure-functions`).
pub const BLOB_FUNCTION: &str = "ztdwr_sync";
/// The manual re-run function's name.
pub const SYNC_FUNCTION: &str = "sync_ztdwr";
/// The health function's name.
pub const HEALTH_FUNCTION: &str = "healthz";
/// The port variable the Functions host sets.
pub const PORT_ENV: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";
/// The container of a blob named without one (the legacy trigger path `data/hex-ztdwr/{name}`).
pub const DEFAULT_CONTAINER: &str = "data";
/// The folder of a blob named by its file name alone.
pub const DEFAULT_PREFIX: &str = "hex-ztdwr/";
/// How long the health check waits for the database.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where blobs named without a container or folder are.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The container of blobs named without one.
    pub default_container: String,
    /// The folder of blobs named by file name alone (`hex-ztdwr/`).
    pub default_prefix: String,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            default_container: DEFAULT_CONTAINER.to_owned(),
            default_prefix: DEFAULT_PREFIX.to_owned(),
        }
    }
}

/// What the handlers share.
struct App {
    intake: Arc<Intake>,
    pg: PgSettings,
    options: ServeOptions,
}

/// The handler's routes, ready for `axum::serve`.
pub fn router(intake: Arc<Intake>, pg: PgSettings, options: ServeOptions) -> Router {
    let app = Arc::new(App {
        intake,
        pg,
        options,
    });
    Router::new()
        // The host puts the whole blob in the invocation: no body limit on this route (the
        // body is streamed past, not buffered).
        .route(
            &format!("/{BLOB_FUNCTION}"),
            post(blob_trigger).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/api/sync-ztdwr", post(manual_forwarded))
        .route(&format!("/{SYNC_FUNCTION}"), post(manual_invocation))
        .route("/api/healthz", get(health_forwarded))
        .route(&format!("/{HEALTH_FUNCTION}"), post(health_invocation))
        .with_state(app)
}

/// Serves until `shutdown` completes; requests in flight finish first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// An invocation answer: `Outputs`, `Logs`, `ReturnValue`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct InvocationReply {
    outputs: Value,
    logs: Vec<String>,
    return_value: Value,
}

async fn blob_trigger(State(app): State<Arc<App>>, body: axum::body::Body) -> Response {
    let metadata = match read_metadata(body).await {
        Ok(m) => m,
        Err(e) => {
            return invocation_reply(StatusCode::BAD_REQUEST, vec![e.to_string()], Value::Null);
        }
    };
    let url = match blob_from_metadata(&metadata, &app.options) {
        Ok(url) => url,
        Err(e) => {
            return invocation_reply(StatusCode::BAD_REQUEST, vec![e.to_string()], Value::Null);
        }
    };
    let name = url.rsplit('/').next().unwrap_or_default();
    if !crate::intake::is_source_name(name) {
        // Not a source (`watch` skips the same names): done, nothing to retry.
        let line = format!("{url}: ignored, not a .dat or .dat.gz file (or a temporary one)");
        tracing::info!(blob = %url, "ignored by name");
        return invocation_reply(
            StatusCode::OK,
            vec![line],
            json!({ "blob": url, "action": "ignored" }),
        );
    }
    tracing::info!(blob = %url, "blob trigger");
    match process_blob(&app.intake, &url, Mode::Triggered).await {
        Ok(processed) => {
            // The host retries a failed invocation, and every retry continues the same sync;
            // a parked blob was alerted already, and retrying cannot help it.
            let parked = matches!(processed.action, Action::Parked | Action::SkippedParked);
            let status = if processed.finished || parked {
                StatusCode::OK
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            let logs = vec![describe(&processed)];
            invocation_reply(status, logs, with_blob(&processed, url))
        }
        Err(e) if e.is_not_found() => {
            // Deleted since the trigger fired: another delivery would not find it either.
            tracing::warn!(blob = %url, "the blob is gone");
            invocation_reply(
                StatusCode::OK,
                vec![format!("{e}; nothing to load")],
                json!({ "blob": url, "action": "missing" }),
            )
        }
        Err(e) => {
            tracing::error!(blob = %url, error = %e, "blob trigger failed");
            invocation_reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                vec![format!("{url}: {e}")],
                json!({ "blob": url, "error": e.to_string() }),
            )
        }
    }
}

/// Chunks of a request body handed from the server to the parsing thread at once.
const BODY_CHUNKS_IN_FLIGHT: usize = 4;

/// The invocation's `Metadata`, parsed on a thread of its own while the body streams in: the
/// `Data` member (the whole blob, base64) is read past, never held.
async fn read_metadata(body: axum::body::Body) -> Result<Value, RequestError> {
    use futures::StreamExt as _;
    let (tx, rx) =
        tokio::sync::mpsc::channel::<Result<bytes::Bytes, String>>(BODY_CHUNKS_IN_FLIGHT);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let reader = ChannelReader {
            rx,
            current: bytes::Bytes::new(),
        };
        let _ = done_tx.send(request::invocation_metadata(reader));
    });
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string());
        let failed = chunk.is_err();
        // The parser stopped (it failed or found the end): the rest is not needed.
        if tx.send(chunk).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    done_rx
        .await
        .unwrap_or_else(|_| Err(RequestError::Json("the parsing thread died".into())))
}

/// A blocking reader over body chunks sent through a channel.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, String>>,
    current: bytes::Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

fn invocation_reply(status: StatusCode, logs: Vec<String>, return_value: Value) -> Response {
    let reply = InvocationReply {
        outputs: json!({}),
        logs,
        return_value,
    };
    (status, axum::Json(reply)).into_response()
}

fn to_value(v: &impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A manual re-run, whatever way it came: the HTTP status and JSON body to answer.
async fn manual(app: &App, body: &[u8]) -> (StatusCode, Value) {
    let request = match BlobRequest::from_json(body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, json!({ "error": e.to_string() })),
    };
    let url = request.url(&app.options);
    tracing::info!(blob = %url, "manual re-run");
    match process_blob(&app.intake, &url, Mode::Manual).await {
        Ok(processed) => {
            let status = http_status(&processed);
            let body = with_blob(&processed, url);
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                body,
            )
        }
        Err(e) => {
            let status = if e.is_not_found() {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            (status, json!({ "blob": url, "error": e.to_string() }))
        }
    }
}

async fn manual_forwarded(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let (status, body) = manual(&app, &body).await;
    (status, axum::Json(body)).into_response()
}

/// An HTTP trigger invocation (`Data.req`), answered through the `res` output binding.
async fn manual_invocation(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let body = match request::http_request_body(&body) {
        Ok(b) => b,
        Err(e) => return http_output(StatusCode::BAD_REQUEST, &json!({ "error": e.to_string() })),
    };
    let (status, reply) = manual(&app, body.as_bytes()).await;
    http_output(status, &reply)
}

/// The invocation answer of an HTTP function: the response travels in `Outputs.res`; the
/// invocation itself succeeded.
fn http_output(status: StatusCode, body: &Value) -> Response {
    let reply = InvocationReply {
        outputs: json!({
            "res": {
                "statusCode": status.as_u16(),
                "headers": { "Content-Type": "application/json" },
                "body": body.to_string(),
            }
        }),
        logs: Vec::new(),
        return_value: Value::Null,
    };
    (StatusCode::OK, axum::Json(reply)).into_response()
}

async fn health(app: &App) -> (StatusCode, Value) {
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
            // The details go to the log, not to an anonymous caller.
            tracing::warn!(error = %e, "health check: the database does not answer");
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

async fn health_forwarded(State(app): State<Arc<App>>) -> Response {
    let (status, body) = health(&app).await;
    (status, axum::Json(body)).into_response()
}

async fn health_invocation(State(app): State<Arc<App>>) -> Response {
    let (status, body) = health(&app).await;
    http_output(status, &body)
}

/// The blob as it is now (its ETag is its version), handed to the intake — in a task of its
/// own: a client that gives up on the request (a host timeout, a restart) drops the
/// request's future, but the sync goes on to its end and records its outcome.
async fn process_blob(
    intake: &Arc<Intake>,
    url: &str,
    mode: Mode,
) -> Result<Processed, IntakeError> {
    let intake = Arc::clone(intake);
    let url = url.to_owned();
    tokio::spawn(async move {
        let found = crate::intake::found_blob(&url).await?;
        intake.process(&found, mode).await
    })
    .await
    .unwrap_or_else(|e| Err(IntakeError::Internal(format!("the sync task died: {e}"))))
}

/// The outcome as JSON, with the blob it is about.
fn with_blob(processed: &Processed, url: String) -> Value {
    let mut value = to_value(processed);
    if let Value::Object(map) = &mut value {
        map.insert("blob".into(), Value::String(url));
    }
    value
}

/// The HTTP status of a manual re-run: 200 when the blob is done (SUCCESS, or only rows
/// rejected), 422 BAD_INPUT, 409 when another process is on it, 503 when it was stopped
/// (shutdown), 500 when it failed and is kept for a retry.
fn http_status(p: &Processed) -> u16 {
    if p.action == Action::SkippedBusy {
        return 409;
    }
    if p.interrupted {
        return 503;
    }
    match (p.finished, p.status) {
        (true, Some(SyncStatus::BadInput)) => 422,
        (true, _) => 200,
        (false, _) => 500,
    }
}

/// One line for the invocation log.
fn describe(p: &Processed) -> String {
    use std::fmt::Write as _;
    let action = serde_json::to_value(p.action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut line = format!("{}: {action}", p.source);
    if let Some(id) = &p.sync_id {
        let _ = write!(line, ", sync {id}");
    }
    if let Some(status) = p.status {
        let _ = write!(line, ", {status}");
    }
    let _ = write!(line, ", attempt {}", p.attempts);
    if let Some(e) = &p.error {
        let _ = write!(line, ": {e}");
    }
    line
}
