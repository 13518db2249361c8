//! The queue functions: `ztdwr_blob_created` (a `BlobCreated` event for a source, through a
//! Storage queue) and `ztdwr_blob_created_poison` (the same message, moved to the poison
//! queue by the host).
//!
//! Answers, by what the intake did with a delivery `d` of at most `M` (the host's
//! `maxDequeueCount`, which is `--max-attempts`):
//!
//! | outcome | answer | the host then |
//! |---|---|---|
//! | done (now or before), superseded, parked, ignored, gone, unreadable | 200 | deletes the message |
//! | unfinished, `d < M` | 500 | delivers it again after `visibilityTimeout` (same sync) |
//! | unfinished, `d ≥ M` | parked here, with its alert → 200 | deletes the message |
//! | busy elsewhere, `d < M` | 500 | delivers it again later |
//! | busy elsewhere, `d ≥ M` | 200 (whoever holds it records the outcome) | deletes the message |
//! | receipts unreachable (database down) | 500 | delivers it again; at `M` moves it to the poison queue, where `ztdwr_blob_created_poison` parks the receipt once the database is back |

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::event::{BlobEvent, queue_invocation};
use super::reply::{Loudness, Outcome, correlation_id};
use super::request::blob_url_parts;
use super::{App, POISON_FUNCTION, QUEUE_FUNCTION, process_in_task};
use crate::intake::{Action, Found, Mode, Processed};

/// `POST /ztdwr_blob_created`: the host delivers a queue message.
pub(super) async fn blob_created(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let cid = correlation_id(&headers);
    let bytes = match super::body::read_capped(body, &app.limits).await {
        Ok(b) => b,
        Err(e) => return super::body_refused(QUEUE_FUNCTION, &cid, &e),
    };
    let invocation = match queue_invocation(&bytes, Some(&app.queue_binding)) {
        Ok(inv) => inv,
        Err(e) => {
            // It will never read better: retrying cannot help; the sweep finds the blob.
            let mut o = Outcome::plain(QUEUE_FUNCTION, &cid, "unreadable", Loudness::Error);
            o.reason = Some("not_an_event");
            o.detail = Some(e.to_string());
            return o.invocation_reply(StatusCode::OK);
        }
    };
    let max = app.intake.policy().max_attempts;
    let mut answers = Vec::new();
    for event in &invocation.events {
        answers.push(one_event(&app, &cid, invocation.delivery, max, event).await);
    }
    reply(&answers)
}

/// What to do with one event of a delivery.
async fn one_event(
    app: &App,
    cid: &str,
    delivery: u32,
    max: u32,
    event: &BlobEvent,
) -> (StatusCode, Outcome) {
    let plain = |action: &str, loudness| Outcome {
        delivery: Some(delivery),
        blob: event.url.clone(),
        ..Outcome::plain(QUEUE_FUNCTION, cid, action, loudness)
    };
    let url = match admitted(app, event) {
        Ok(url) => url,
        Err((why, loudness)) => {
            let mut o = plain("ignored", loudness);
            o.detail = Some(why.to_owned());
            o.finished = true;
            return (StatusCode::OK, o);
        }
    };
    match process_in_task(&app.intake, url, Mode::Queued { delivery }).await {
        Ok(p) => {
            let mut o = Outcome::of(QUEUE_FUNCTION, cid, &p);
            o.delivery = Some(delivery);
            (answer(&p, delivery, max), o)
        }
        Err(e) if e.is_not_found() => {
            // Deleted since the event: another delivery would not find it either.
            let mut o = plain("missing", Loudness::Info);
            o.finished = true;
            (StatusCode::OK, o)
        }
        Err(e) => {
            let mut o = plain("error", Loudness::Error);
            o.reason = Some("error");
            o.detail = Some(if delivery >= max {
                format!(
                    "{e}; this was the host's last delivery: it moves the message to its poison \
                     queue, where {POISON_FUNCTION} parks the receipt once it can"
                )
            } else {
                e.to_string()
            });
            (StatusCode::INTERNAL_SERVER_ERROR, o)
        }
    }
}

/// The source the event names, when it is one of the configured account's, container and
/// folder; else why it is ignored, and how loudly (another account is a misrouted
/// subscription: a warning).
fn admitted(app: &App, event: &BlobEvent) -> Result<String, (&'static str, Loudness)> {
    if let Some(why) = event.skipped_because() {
        return Err((why, Loudness::Info));
    }
    let url = event.url.as_deref().unwrap_or_default();
    let (account, container, path) =
        blob_url_parts(url).ok_or(("the event's URL is not a blob URL", Loudness::Warn))?;
    if app.sources.account() != Some(account.as_str()) {
        return Err((
            "the event's storage account is not the configured one",
            Loudness::Warn,
        ));
    }
    app.sources
        .admit(&container, &path)
        .ok_or(("not a source of the watched folder", Loudness::Info))
}

/// The answer that makes the host do the right thing next (see the module docs).
fn answer(p: &Processed, delivery: u32, max: u32) -> StatusCode {
    let last = delivery >= max;
    match p.action {
        Action::SkippedDone
        | Action::SkippedParked
        | Action::Superseded
        | Action::Parked
        | Action::Submitted => StatusCode::OK,
        Action::SkippedBusy | Action::WaitingBackoff if last => StatusCode::OK,
        Action::Started | Action::Resumed if p.finished => StatusCode::OK,
        Action::SkippedBusy | Action::WaitingBackoff | Action::Started | Action::Resumed => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// One answer for the events of a message: the worst status; the outcome, or the outcomes
/// when the message held several events.
fn reply(answers: &[(StatusCode, Outcome)]) -> Response {
    let status = answers
        .iter()
        .map(|(s, _)| *s)
        .max_by_key(StatusCode::as_u16)
        .unwrap_or(StatusCode::OK);
    if let [(_, o)] = answers {
        return o.invocation_reply(status);
    }
    for (_, o) in answers {
        o.log();
    }
    let body = json!({
        "Outputs": {},
        "Logs": answers.iter().map(|(_, o)| o.summary_line()).collect::<Vec<_>>(),
        "ReturnValue": answers.iter().map(|(_, o)| serde_json::to_value(o).unwrap_or(Value::Null)).collect::<Vec<_>>(),
    });
    (status, axum::Json(body)).into_response()
}

/// Why a receipt is parked when its message reaches the poison queue.
const POISONED: &str = "the Functions host moved the blob's queue message to its poison queue \
                        (its last delivery ended without an answer: the process was killed or \
                        timed out)";

/// `POST /ztdwr_blob_created_poison`: the host gave up on a message (its last delivery died
/// before it answered, so the receipt could not be parked first). An unfinished receipt of
/// the event's version (or of the blob as it is now) is parked with its alert.
pub(super) async fn poisoned(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let cid = correlation_id(&headers);
    let bytes = match super::body::read_capped(body, &app.limits).await {
        Ok(b) => b,
        Err(e) => return super::body_refused(POISON_FUNCTION, &cid, &e),
    };
    let invocation = match queue_invocation(&bytes, Some(&app.queue_binding)) {
        Ok(inv) => inv,
        Err(e) => {
            let mut o = Outcome::plain(POISON_FUNCTION, &cid, "unreadable", Loudness::Error);
            o.reason = Some("not_an_event");
            o.detail = Some(e.to_string());
            return o.invocation_reply(StatusCode::OK);
        }
    };
    let mut answers = Vec::new();
    for event in &invocation.events {
        answers.push(give_up(&app, &cid, event).await);
    }
    reply(&answers)
}

async fn give_up(app: &App, cid: &str, event: &BlobEvent) -> (StatusCode, Outcome) {
    let plain = |action: &str, loudness| Outcome {
        blob: event.url.clone(),
        ..Outcome::plain(POISON_FUNCTION, cid, action, loudness)
    };
    let url = match admitted(app, event) {
        Ok(url) => url,
        Err((why, loudness)) => {
            let mut o = plain("ignored", loudness);
            o.detail = Some(why.to_owned());
            return (StatusCode::OK, o);
        }
    };
    let intake = Arc::clone(&app.intake);
    let etag = event.etag.clone();
    let size = event.content_length.unwrap_or_default();
    let outcome = tokio::spawn(async move {
        let name = url.rsplit('/').next().unwrap_or_default().to_owned();
        let mut versions: Vec<String> = etag.into_iter().collect();
        if let Ok(now) = crate::intake::found_blob(&url).await
            && !versions.contains(&now.version)
        {
            versions.push(now.version);
        }
        for version in versions {
            let found = Found {
                source: url.clone(),
                name: name.clone(),
                version,
                size,
            };
            if let Some(p) = intake.give_up(&found, POISONED).await? {
                return Ok(Some(p));
            }
        }
        Ok(None)
    })
    .await
    .unwrap_or_else(|e| {
        Err(crate::intake::IntakeError::Internal(format!(
            "the poison task died: {e}"
        )))
    });
    match outcome {
        Ok(Some(p)) => {
            let mut o = Outcome::of(POISON_FUNCTION, cid, &p);
            if p.action == Action::SkippedBusy {
                o.loudness = Loudness::Warn;
            }
            (StatusCode::OK, o)
        }
        Ok(None) => {
            let mut o = plain("no_receipt", Loudness::Warn);
            o.detail =
                Some("nothing ran for this blob (no receipt): the next sweep loads it".to_owned());
            (StatusCode::OK, o)
        }
        Err(e) => {
            let mut o = plain("error", Loudness::Error);
            o.reason = Some("error");
            o.detail = Some(e.to_string());
            (StatusCode::INTERNAL_SERVER_ERROR, o)
        }
    }
}
