//! The manual re-run (`POST /api/sync-ztdwr`, function `sync_ztdwr`) and the status of a sync
//! (`GET /api/sync-ztdwr/{sync_id}`, function `sync_ztdwr_status`).
//!
//! A re-run is decided at once — the source is checked, its receipt read and the attempt
//! counted — and answered **202** with the sync id and its status URL; the sync runs in the
//! background (an HTTP function must answer within 230 s, whatever `functionTimeout` says).
//! The decision follows [`Mode::Manual`]: an unfinished sync (parked or not) is resumed, a
//! finished one is loaded again by a new sync. Another process on it is 409. A name that is
//! not a source of the folder, and a source that does not exist, get the same 404.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::reply::{Loudness, Outcome, correlation_id, http_output, json_reply};
use super::request::{BlobRequest, RequestError, http_request};
use super::{App, STATUS_FUNCTION, SYNC_FUNCTION};
use crate::intake::{Begun, IntakeError, Mode};
use crate::model::SyncId;

/// The status route of a sync, as the caller sees it through the Functions host.
pub fn status_url(sync_id: &str) -> String {
    format!("/api/sync-ztdwr/{sync_id}")
}

/// The syncs this handler runs in the background now.
#[derive(Default)]
pub(super) struct Runs {
    running: Mutex<HashSet<String>>,
}

impl Runs {
    fn start(&self, sync_id: &str) {
        if let Ok(mut r) = self.running.lock() {
            r.insert(sync_id.to_owned());
        }
    }

    fn end(&self, sync_id: &str) {
        if let Ok(mut r) = self.running.lock() {
            r.remove(sync_id);
        }
    }

    fn is_running(&self, sync_id: &str) -> bool {
        self.running.lock().is_ok_and(|r| r.contains(sync_id))
    }
}

/// `POST /api/sync-ztdwr`, forwarded as it is.
pub(super) async fn forwarded(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let cid = correlation_id(&headers);
    let (status, body) = match super::body::read_capped(body, &app.limits).await {
        Ok(bytes) => rerun(&app, &cid, &bytes).await,
        Err(e) => super::body_answer(SYNC_FUNCTION, &cid, &e),
    };
    let location = body
        .get("status_url")
        .and_then(Value::as_str)
        .and_then(|u| HeaderValue::from_str(u).ok());
    let mut response = json_reply(status, body, &cid);
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// `POST /sync_ztdwr`: the same as an HTTP-trigger invocation (`Data.req`), answered in
/// `Outputs.res`.
pub(super) async fn invocation(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let cid = correlation_id(&headers);
    let (status, reply) = match super::body::read_capped(body, &app.limits).await {
        Ok(bytes) => match http_request(&bytes) {
            Ok((body, _)) => rerun(&app, &cid, body.as_bytes()).await,
            Err(e) => bad_request(&cid, &e),
        },
        Err(e) => super::body_answer(SYNC_FUNCTION, &cid, &e),
    };
    http_output(status, reply, &cid)
}

fn bad_request(cid: &str, e: &RequestError) -> (StatusCode, Value) {
    let mut o = Outcome::plain(SYNC_FUNCTION, cid, "bad_request", Loudness::Info);
    o.detail = Some(e.to_string());
    o.log();
    (StatusCode::BAD_REQUEST, json!({ "error": e.to_string() }))
}

/// The one answer for a name that is not a source of the folder, or no such source.
fn not_a_source(cid: &str, named: &str) -> (StatusCode, Value) {
    let mut o = Outcome::plain(SYNC_FUNCTION, cid, "refused", Loudness::Info);
    o.blob = Some(named.to_owned());
    o.detail = Some("not a source of the folder, or no such blob".to_owned());
    o.log();
    (
        StatusCode::NOT_FOUND,
        json!({ "error": RequestError::NotASource.to_string() }),
    )
}

/// A failure of ours (storage, database): details in the log only.
fn unavailable(cid: &str, function: &'static str, e: &IntakeError) -> (StatusCode, Value) {
    let mut o = Outcome::plain(function, cid, "error", Loudness::Error);
    o.reason = Some("error");
    o.detail = Some(e.to_string());
    o.log();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        json!({ "error": "the handler cannot reach its storage or database now; try again later, and give the correlation id to the operator if it persists" }),
    )
}

async fn rerun(app: &Arc<App>, cid: &str, body: &[u8]) -> (StatusCode, Value) {
    let request = match BlobRequest::from_json(body) {
        Ok(r) => r,
        Err(e) => return bad_request(cid, &e),
    };
    let url = match request.target(&app.sources) {
        Ok(url) => url,
        Err(RequestError::NotASource) => {
            let named = format!("{request:?}");
            return not_a_source(cid, &named);
        }
        Err(e) => return bad_request(cid, &e),
    };
    let found = match crate::intake::found_blob(&url).await {
        Ok(f) => f,
        Err(e) if e.is_not_found() => return not_a_source(cid, &url),
        Err(e) => return unavailable(cid, SYNC_FUNCTION, &e),
    };
    // Decided and run in a task of its own: the answer leaves with the decision, the sync
    // runs on.
    let (decided, decision) = tokio::sync::oneshot::channel();
    let task_app = Arc::clone(app);
    let task_cid = cid.to_owned();
    tokio::spawn(async move {
        let app = task_app;
        let ready = match app.intake.begin(&found, Mode::Manual).await {
            Ok(Begun::Ready(ready)) => ready,
            Ok(Begun::Done(p)) => {
                let _ = decided.send(Decision::Nothing(Box::new(p)));
                return;
            }
            Err(e) => {
                let _ = decided.send(Decision::Failed(e));
                return;
            }
        };
        let sync_id = ready.sync_id().to_string();
        app.runs.start(&sync_id);
        let _ = decided.send(Decision::Running(sync_id.clone(), ready.action()));
        let outcome = ready.run().await;
        app.runs.end(&sync_id);
        match outcome {
            Ok(p) => Outcome::of(SYNC_FUNCTION, &task_cid, &p).log(),
            Err(e) => {
                let mut o = Outcome::plain(SYNC_FUNCTION, &task_cid, "error", Loudness::Error);
                o.sync_id = Some(sync_id);
                o.reason = Some("error");
                o.detail = Some(e.to_string());
                o.log();
            }
        }
    });
    match decision.await {
        Ok(Decision::Running(sync_id, action)) => {
            let action = serde_json::to_value(action).unwrap_or(Value::Null);
            tracing::info!(function = SYNC_FUNCTION, correlation_id = %cid, blob = %url, %sync_id, "manual re-run accepted; it runs in the background");
            (
                StatusCode::ACCEPTED,
                json!({
                    "sync_id": sync_id,
                    "action": action,
                    "status_url": status_url(&sync_id),
                }),
            )
        }
        Ok(Decision::Nothing(p)) => {
            // A manual re-run always runs, unless another process holds the source.
            let o = Outcome::of(SYNC_FUNCTION, cid, &p);
            o.log();
            let sync_id = o.sync_id.clone();
            (
                StatusCode::CONFLICT,
                json!({
                    "error": "another process is deciding about or loading this source now; its status shows when it ends",
                    "sync_id": sync_id,
                    "status_url": sync_id.as_deref().map(status_url),
                }),
            )
        }
        Ok(Decision::Failed(e)) => unavailable(cid, SYNC_FUNCTION, &e),
        Err(_) => unavailable(
            cid,
            SYNC_FUNCTION,
            &IntakeError::Internal("the re-run task died".into()),
        ),
    }
}

/// What the re-run task decided.
enum Decision {
    /// Running in the background: its sync id and whether it started or resumed.
    Running(String, crate::intake::Action),
    /// Nothing runs (another process holds the source).
    Nothing(Box<crate::intake::Processed>),
    /// The receipts could not be read or written.
    Failed(IntakeError),
}

/// `GET /api/sync-ztdwr/{sync_id}`, forwarded as it is.
pub(super) async fn status_forwarded(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(sync_id): Path<String>,
) -> Response {
    let cid = correlation_id(&headers);
    let (status, body) = sync_status(&app, &cid, &sync_id).await;
    json_reply(status, body, &cid)
}

/// `POST /sync_ztdwr_status`: the same as an HTTP-trigger invocation (`Data.req.Params`).
pub(super) async fn status_invocation(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let cid = correlation_id(&headers);
    let (status, reply) = match super::body::read_capped(body, &app.limits).await {
        Ok(bytes) => match http_request(&bytes) {
            Ok((_, params)) => {
                let id = super::request::field(&params, "sync_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                sync_status(&app, &cid, &id).await
            }
            Err(e) => bad_request(&cid, &e),
        },
        Err(e) => super::body_answer(STATUS_FUNCTION, &cid, &e),
    };
    http_output(status, reply, &cid)
}

async fn sync_status(app: &App, cid: &str, sync_id: &str) -> (StatusCode, Value) {
    let unknown = || (StatusCode::NOT_FOUND, json!({ "error": "no such sync" }));
    let Ok(id) = SyncId::parse(sync_id) else {
        return unknown();
    };
    match app.intake.sync_state(&id).await {
        Ok(Some(state)) => {
            let mut body = serde_json::to_value(&state).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut body {
                map.insert(
                    "running".into(),
                    Value::Bool(app.runs.is_running(id.as_str())),
                );
            }
            (StatusCode::OK, body)
        }
        Ok(None) => unknown(),
        Err(e) => unavailable(cid, STATUS_FUNCTION, &e),
    }
}
