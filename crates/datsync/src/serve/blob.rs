//! `ztdwr_sync`: the blob trigger — kept for the documented alternative (`blobTrigger` with
//! `"source": "EventGrid"`), for small files only: the host loads the whole blob and sends
//! it, Base64, in `Data` before the handler is called. The body is streamed past on the parse
//! pool (`Data` never held, `Metadata` and the whole body capped); the blob is located from
//! `Metadata` and read from storage by ranges, like any source.
//!
//! Answers: 200 when nothing is left to do or retrying cannot help (done, parked, deleted,
//! not a source of the folder); 500 when the host should retry (each retry continues the
//! same sync, [`Mode::Triggered`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::reply::{Loudness, Outcome, correlation_id};
use super::request::{RequestError, blob_from_metadata};
use super::{App, BLOB_FUNCTION, process_in_task};
use crate::intake::{Action, Mode};

/// `POST /ztdwr_sync`.
pub(super) async fn blob_trigger(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let cid = correlation_id(&headers);
    let metadata = match super::body::streamed_metadata(body, &app.pool, &app.limits).await {
        Ok(m) => m,
        Err(e) => return super::body_refused(BLOB_FUNCTION, &cid, &e),
    };
    let url = match blob_from_metadata(&metadata, &app.sources) {
        Ok(url) => url,
        Err(RequestError::NotASource) => {
            let mut o = Outcome::plain(BLOB_FUNCTION, &cid, "ignored", Loudness::Info);
            o.detail = Some("not a source of the watched folder".to_owned());
            o.finished = true;
            return o.invocation_reply(StatusCode::OK);
        }
        Err(e) => {
            let mut o = Outcome::plain(BLOB_FUNCTION, &cid, "bad_request", Loudness::Error);
            o.reason = Some("no_blob");
            o.detail = Some(e.to_string());
            return o.invocation_reply(StatusCode::BAD_REQUEST);
        }
    };
    match process_in_task(&app.intake, url.clone(), Mode::Triggered).await {
        Ok(p) => {
            // A parked blob was alerted already; retrying cannot help it.
            let parked = matches!(p.action, Action::Parked | Action::SkippedParked);
            let status = if p.finished || parked {
                StatusCode::OK
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            Outcome::of(BLOB_FUNCTION, &cid, &p).invocation_reply(status)
        }
        Err(e) if e.is_not_found() => {
            let mut o = Outcome::plain(BLOB_FUNCTION, &cid, "missing", Loudness::Info);
            o.blob = Some(url);
            o.finished = true;
            o.invocation_reply(StatusCode::OK)
        }
        Err(e) => {
            let mut o = Outcome::plain(BLOB_FUNCTION, &cid, "error", Loudness::Error);
            o.blob = Some(url);
            o.reason = Some("error");
            o.detail = Some(e.to_string());
            o.invocation_reply(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}
