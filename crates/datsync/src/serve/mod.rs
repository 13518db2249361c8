//! `datsync serve`: an Azure Functions custom handler.
//!
//! The Functions host starts this web server (`host.json`'s `customHandler`) and talks to it
//! on 127.0.0.1:`FUNCTIONS_CUSTOMHANDLER_PORT` (`deploy/azure-functions/` holds the app):
//!
//! | function | route | what it does |
//! |---|---|---|
//! | `ztdwr_blob_created` (queue trigger; the default) | `POST /ztdwr_blob_created` | an Event Grid `BlobCreated` event for a source, through a Storage queue: the blob is loaded by the URL in the event ([`queue`]); no content passes through the host |
//! | `ztdwr_blob_created_poison` (queue trigger) | `POST /ztdwr_blob_created_poison` | a message the host gave up on: its receipt is parked, with its alert |
//! | `ztdwr_sweep` (timer trigger) | `POST /ztdwr_sweep` | lists the folder: loads what no event announced, resumes what the queue stopped retrying ([`sweep`]) |
//! | `sync_ztdwr` (HTTP) | `POST /api/sync-ztdwr` (forwarded) or `POST /sync_ztdwr` | manual re-run: 202 at once with the sync id and its status URL, the sync runs in the background ([`manual`]) |
//! | `sync_ztdwr_status` (HTTP) | `GET /api/sync-ztdwr/{sync_id}` or `POST /sync_ztdwr_status` | a sync's status and counts |
//! | `healthz` (HTTP) | `GET /api/healthz` or `POST /healthz` | `{status, database, timestamp}` |
//! | `ztdwr_sync` (blob trigger; the small-files alternative) | `POST /ztdwr_sync` | the blob trigger, its `Data` (the blob) streamed past ([`blob`]) |
//!
//! Only the sources of one container and folder of the configured storage account are ever
//! read ([`Sources`]); every body and its buffered parts are capped, body reads time out,
//! streamed bodies are parsed on a fixed pool of threads ([`body`]), and the server keeps a
//! connection limit and a header deadline ([`server`]). No answer carries an error text, a
//! path, a user or a host — a correlation id finds the details in the logs ([`reply`]).

mod blob;
pub mod body;
pub mod event;
mod health;
pub mod hostjson;
pub mod manual;
mod queue;
pub mod reply;
mod request;
pub mod server;
mod sweep;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};

use crate::intake::{Intake, IntakeError, Mode, Processed};
use crate::pg::PgSettings;

pub use body::{BodyError, BodyLimits, ParsePool};
pub use request::{BlobRequest, RequestError, Sources, blob_from_metadata, blob_url_parts};
pub use server::{BindRefused, ServerLimits, check_bind, serve};

/// The queue-trigger function of `BlobCreated` events (the default deployment).
pub const QUEUE_FUNCTION: &str = "ztdwr_blob_created";
/// The queue-trigger function of the poison queue.
pub const POISON_FUNCTION: &str = "ztdwr_blob_created_poison";
/// The timer function that sweeps the folder.
pub const SWEEP_FUNCTION: &str = "ztdwr_sweep";
/// The blob-trigger function (the small-files alternative).
pub const BLOB_FUNCTION: &str = "ztdwr_sync";
/// The manual re-run function.
pub const SYNC_FUNCTION: &str = "sync_ztdwr";
/// The sync status function.
pub const STATUS_FUNCTION: &str = "sync_ztdwr_status";
/// The health function.
pub const HEALTH_FUNCTION: &str = "healthz";
/// The queue trigger's binding name (its member of `Data`).
pub const QUEUE_BINDING: &str = "event";
/// The port variable the Functions host sets.
pub const PORT_ENV: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";
/// The source container (the legacy trigger path `data/hex-ztdwr/{name}`).
pub const DEFAULT_CONTAINER: &str = "data";
/// The source folder.
pub const DEFAULT_PREFIX: &str = "hex-ztdwr/";
/// The pause between attempts when neither `--retry-backoff` nor `host.json` says: the
/// `extensions.queues.visibilityTimeout` of `deploy/azure-functions/host.json`. Five
/// attempts five minutes apart ride out a database outage of twenty minutes.
pub const DEFAULT_RETRY_BACKOFF: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// What the handler serves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where the sources are, and the account that holds them.
    pub sources: Sources,
    /// Bounds on request bodies.
    pub body: BodyLimits,
    /// Threads that parse streamed bodies.
    pub parse_threads: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            sources: Sources::new(DEFAULT_CONTAINER, DEFAULT_PREFIX, None),
            body: BodyLimits::default(),
            parse_threads: body::DEFAULT_PARSE_THREADS,
        }
    }
}

/// What the handlers share.
struct App {
    intake: Arc<Intake>,
    pg: PgSettings,
    sources: Sources,
    limits: BodyLimits,
    pool: ParsePool,
    runs: manual::Runs,
    queue_binding: String,
}

/// The handler's routes, ready for [`serve`].
pub fn router(intake: Arc<Intake>, pg: PgSettings, options: ServeOptions) -> Router {
    let app = Arc::new(App {
        intake,
        pg,
        sources: options.sources,
        limits: options.body,
        pool: ParsePool::new(options.parse_threads),
        runs: manual::Runs::default(),
        queue_binding: QUEUE_BINDING.to_owned(),
    });
    Router::new()
        .route(&format!("/{QUEUE_FUNCTION}"), post(queue::blob_created))
        .route(&format!("/{POISON_FUNCTION}"), post(queue::poisoned))
        .route(&format!("/{SWEEP_FUNCTION}"), post(sweep::sweep))
        .route(&format!("/{BLOB_FUNCTION}"), post(blob::blob_trigger))
        .route("/api/sync-ztdwr", post(manual::forwarded))
        .route(&format!("/{SYNC_FUNCTION}"), post(manual::invocation))
        .route("/api/sync-ztdwr/{sync_id}", get(manual::status_forwarded))
        .route(
            &format!("/{STATUS_FUNCTION}"),
            post(manual::status_invocation),
        )
        .route("/api/healthz", get(health::forwarded))
        .route(&format!("/{HEALTH_FUNCTION}"), post(health::invocation))
        .with_state(app)
}

/// The blob as it is now (its ETag is its version), handed to the intake — in a task of its
/// own: a client that gives up on the request (a host timeout) drops the request's future,
/// but the sync goes on to its end and records its outcome.
async fn process_in_task(
    intake: &Arc<Intake>,
    url: String,
    mode: Mode,
) -> Result<Processed, IntakeError> {
    let intake = Arc::clone(intake);
    tokio::spawn(async move {
        let found = crate::intake::found_blob(&url).await?;
        intake.process(&found, mode).await
    })
    .await
    .unwrap_or_else(|e| Err(IntakeError::Internal(format!("the sync task died: {e}"))))
}

/// The HTTP status of a body that could not be read.
fn body_status(e: &BodyError) -> StatusCode {
    match e {
        BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        BodyError::Stalled(_) => StatusCode::REQUEST_TIMEOUT,
        BodyError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        BodyError::Broken | BodyError::Invalid(_) => StatusCode::BAD_REQUEST,
    }
}

/// An invocation whose body could not be read: logged, and answered as an invocation.
fn body_refused(function: &'static str, cid: &str, e: &BodyError) -> Response {
    let mut o = reply::Outcome::plain(function, cid, "refused", reply::Loudness::Warn);
    o.reason = Some(match e {
        BodyError::TooLarge { .. } => "too_large",
        BodyError::Stalled(_) => "stalled",
        BodyError::Busy => "busy",
        BodyError::Broken | BodyError::Invalid(_) => "bad_body",
    });
    o.detail = Some(e.to_string());
    o.invocation_reply(body_status(e))
}

/// An HTTP request whose body could not be read: logged; the status and JSON answer.
fn body_answer(
    function: &'static str,
    cid: &str,
    e: &BodyError,
) -> (StatusCode, serde_json::Value) {
    let mut o = reply::Outcome::plain(function, cid, "refused", reply::Loudness::Warn);
    o.detail = Some(e.to_string());
    o.log();
    (
        body_status(e),
        serde_json::json!({ "error": e.to_string() }),
    )
}
