//! `ztdwr_sweep` (a timer function): lists the source folder and hands every source to the
//! intake as a watch cycle would ([`Mode::Automatic`]) — a blob whose event was lost (no
//! receipt) is loaded, one whose queue message stopped being delivered (due, unfinished) is
//! resumed, one whose last attempt died at the limit is parked; everything else is left to
//! the queue. Receipts make it exactly once whatever runs first. `datsync watch --once
//! az://container/prefix/` on a schedule does the same from outside Functions.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::reply::{Loudness, Outcome, correlation_id};
use super::{App, SWEEP_FUNCTION};
use crate::intake::{Action, Mode};

/// `POST /ztdwr_sweep`: one sweep of the source folder.
pub(super) async fn sweep(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let cid = correlation_id(&headers);
    // The timer's data (schedule status, past due) changes nothing.
    if let Err(e) = super::body::read_capped(body, &app.limits).await {
        return super::body_refused(SWEEP_FUNCTION, &cid, &e);
    }
    let place = app.sources.listing_url();
    let task = {
        let app = Arc::clone(&app);
        let cid = cid.clone();
        tokio::spawn(async move { sweep_once(&app, &cid, &place).await })
    };
    let (tally, error) = match task.await {
        Ok(Ok(tally)) => (tally, None),
        Ok(Err(e)) => (BTreeMap::new(), Some(e)),
        Err(e) => (BTreeMap::new(), Some(format!("the sweep task died: {e}"))),
    };
    let loudness = if error.is_some() || tally.contains_key("parked") {
        Loudness::Error
    } else if tally.contains_key("error") {
        Loudness::Warn
    } else {
        Loudness::Info
    };
    let summary = tally
        .iter()
        .map(|(action, n)| format!("{n} {action}"))
        .collect::<Vec<_>>()
        .join(", ");
    match &error {
        Some(e) => {
            tracing::error!(function = SWEEP_FUNCTION, correlation_id = %cid, error = %e, "sweep outcome: the folder could not be listed");
        }
        None => match loudness {
            Loudness::Info => {
                tracing::info!(function = SWEEP_FUNCTION, correlation_id = %cid, tally = %summary, "sweep outcome");
            }
            Loudness::Warn => {
                tracing::warn!(function = SWEEP_FUNCTION, correlation_id = %cid, tally = %summary, "sweep outcome");
            }
            Loudness::Error => {
                tracing::error!(function = SWEEP_FUNCTION, correlation_id = %cid, tally = %summary, "sweep outcome");
            }
        },
    }
    let status = if error.is_some() {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let line = format!(
        "{SWEEP_FUNCTION}: {} (correlation id {cid})",
        if error.is_some() {
            "the folder could not be listed"
        } else if summary.is_empty() {
            "no sources"
        } else {
            &summary
        }
    );
    let reply = json!({
        "Outputs": {},
        "Logs": [line],
        "ReturnValue": { "correlation_id": cid, "tally": tally, "listed": error.is_none() },
    });
    (status, axum::Json(reply)).into_response()
}

/// Lists `place` and processes each source; the count of each action (`error` for a source
/// the intake could not decide about).
async fn sweep_once(app: &App, cid: &str, place: &str) -> Result<BTreeMap<String, u32>, String> {
    let found = crate::intake::list_blobs(place)
        .await
        .map_err(|e| e.to_string())?;
    let mut tally = BTreeMap::new();
    for f in &found {
        let action = match app.intake.process(f, Mode::Automatic).await {
            Ok(p) => {
                let ran = matches!(
                    p.action,
                    Action::Started | Action::Resumed | Action::Parked | Action::Submitted
                );
                if ran {
                    Outcome::of(SWEEP_FUNCTION, cid, &p).log();
                }
                serde_json::to_value(p.action)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            }
            Err(e) => {
                tracing::warn!(function = SWEEP_FUNCTION, correlation_id = %cid, blob = %f.source, error = %e, "cannot decide about this source now; the next sweep tries again");
                "error".to_owned()
            }
        };
        *tally.entry(action).or_insert(0) += 1;
    }
    Ok(tally)
}
