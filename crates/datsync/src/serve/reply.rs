//! Answers and the one outcome line per invocation.
//!
//! The Functions host reads an invocation's `Logs` only from a 2xx answer (it checks the
//! status first), and logs the handler's stdout as Information and its stderr as Warning
//! when the line holds "warn", else as Error. So every invocation logs **one outcome line**
//! at the level it deserves (INFO: done or nothing to do; WARN: unfinished, retried; ERROR:
//! parked, or nothing could be decided), which the logging setup sends to stdout or stderr
//! by level: a 500 is explained in Application Insights even though its `Logs` are dropped.
//!
//! No answer carries an error text, a path, a user or a host: the error goes to the log line,
//! and the answer carries a `correlation_id` (the host's invocation id when it sent one) that
//! finds it.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::intake::{Action, Processed};
use crate::model::SyncStatus;

/// The header in which the Functions host sends the invocation id.
pub const INVOCATION_ID_HEADER: &str = "x-azure-functions-invocationid";

/// The invocation id the host sent (when it looks like one), else a fresh random id.
pub fn correlation_id(headers: &HeaderMap) -> String {
    headers
        .get(INVOCATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        .map_or_else(fresh_id, str::to_owned)
}

/// Sixteen hex digits, different for every call (a per-call OS-seeded hasher over the time
/// and a counter).
fn fresh_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", h.finish())
}

/// How loud an outcome is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loudness {
    /// Done, or nothing to do.
    Info,
    /// Unfinished: retried.
    Warn,
    /// Parked, or nothing could be decided.
    Error,
}

/// One invocation's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The function.
    pub function: &'static str,
    /// Finds the log lines of this invocation.
    pub correlation_id: String,
    /// What was done (`started`, `resumed`, `skipped_done`, `parked`, `ignored`, …).
    pub action: String,
    /// The source's file name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_id: Option<String>,
    /// The sync's status after this invocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<SyncStatus>,
    /// Attempts counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// The queue message's delivery (its dequeue count).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<u32>,
    /// Nothing is left to do for this source version.
    pub finished: bool,
    /// Rows read, loaded, rejected and still pending, and chunks failed, of this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
    /// Why it is unfinished (or refused), in a fixed vocabulary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The error, for the log line only.
    #[serde(skip)]
    pub detail: Option<String>,
    /// The blob, for the log line only.
    #[serde(skip)]
    pub blob: Option<String>,
    /// How loud.
    #[serde(skip)]
    pub loudness: Loudness,
}

/// A run's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Rows read.
    pub rows_read: u64,
    /// Rows loaded.
    pub rows_loaded: u64,
    /// Rows rejected.
    pub rows_rejected: u64,
    /// Rows not loaded yet (failed chunks).
    pub rows_pending: u64,
    /// Chunks that failed.
    pub chunks_failed: u64,
}

impl Outcome {
    /// An outcome without a sync (ignored, refused, gone, …).
    pub fn plain(
        function: &'static str,
        correlation_id: &str,
        action: &str,
        loudness: Loudness,
    ) -> Self {
        Self {
            function,
            correlation_id: correlation_id.to_owned(),
            action: action.to_owned(),
            name: None,
            sync_id: None,
            status: None,
            attempts: None,
            delivery: None,
            finished: false,
            counts: None,
            reason: None,
            detail: None,
            blob: None,
            loudness,
        }
    }

    /// The outcome of the intake's decision (and run) for one source.
    pub fn of(function: &'static str, correlation_id: &str, p: &Processed) -> Self {
        let action = serde_json::to_value(p.action)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let reason = reason(p);
        let loudness = match (p.action, reason) {
            (Action::Parked, _) => Loudness::Error,
            (_, None) => Loudness::Info,
            (_, Some(_)) => Loudness::Warn,
        };
        Self {
            name: Some(p.name.clone()),
            sync_id: p.sync_id.as_ref().map(ToString::to_string),
            status: p.status,
            attempts: Some(p.attempts),
            finished: p.finished,
            counts: p.summary.as_ref().map(|s| Counts {
                rows_read: s.counts.rows_read,
                rows_loaded: s.counts.rows_loaded,
                rows_rejected: s.counts.rows_rejected,
                rows_pending: s.counts.rows_pending,
                chunks_failed: s.counts.chunks_failed,
            }),
            reason,
            detail: p.error.clone(),
            blob: Some(p.source.clone()),
            ..Self::plain(function, correlation_id, &action, loudness)
        }
    }

    /// Logs the outcome line, once, at its level (the log format escapes what the values
    /// hold).
    pub fn log(&self) {
        let counts = self.counts.unwrap_or(Counts {
            rows_read: 0,
            rows_loaded: 0,
            rows_rejected: 0,
            rows_pending: 0,
            chunks_failed: 0,
        });
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    function = self.function,
                    correlation_id = %self.correlation_id,
                    action = %self.action,
                    blob = %self.blob.as_deref().unwrap_or_default(),
                    sync_id = self.sync_id.as_deref().unwrap_or_default(),
                    status = self.status.map(|s| s.as_str()).unwrap_or_default(),
                    attempts = self.attempts.unwrap_or_default(),
                    delivery = self.delivery.unwrap_or_default(),
                    finished = self.finished,
                    rows_read = counts.rows_read,
                    rows_loaded = counts.rows_loaded,
                    rows_rejected = counts.rows_rejected,
                    rows_pending = counts.rows_pending,
                    chunks_failed = counts.chunks_failed,
                    reason = self.reason.unwrap_or_default(),
                    error = %self.detail.as_deref().unwrap_or_default(),
                    "invocation outcome"
                )
            };
        }
        match self.loudness {
            Loudness::Info => line!(info),
            Loudness::Warn => line!(warn),
            Loudness::Error => line!(error),
        }
    }

    /// The outcome for an invocation's `Logs`: what happened, never the error text.
    pub fn summary_line(&self) -> String {
        use std::fmt::Write as _;
        let mut line = format!("{}: {}", self.function, self.action);
        if let Some(name) = &self.name {
            let _ = write!(line, " {}", name.escape_debug());
        }
        if let Some(id) = &self.sync_id {
            let _ = write!(line, ", sync {id}");
        }
        if let Some(status) = self.status {
            let _ = write!(line, ", {status}");
        }
        if let Some(c) = self.counts {
            let _ = write!(
                line,
                ", {} rows read, {} loaded, {} rejected, {} pending",
                c.rows_read, c.rows_loaded, c.rows_rejected, c.rows_pending
            );
        }
        if let Some(n) = self.attempts {
            let _ = write!(line, ", attempt {n}");
        }
        if let Some(reason) = self.reason {
            let _ = write!(line, "; not finished: {reason}");
        }
        let _ = write!(line, " (correlation id {})", self.correlation_id);
        line
    }

    /// The invocation answer: logs the outcome line, and answers `status` with the summary
    /// line in `Logs` and the outcome as `ReturnValue`.
    pub fn invocation_reply(&self, status: StatusCode) -> Response {
        self.log();
        let reply = json!({
            "Outputs": {},
            "Logs": [self.summary_line()],
            "ReturnValue": serde_json::to_value(self).unwrap_or(Value::Null),
        });
        (status, axum::Json(reply)).into_response()
    }
}

/// Why an outcome leaves its source unfinished, in a fixed vocabulary (`None`: finished, or
/// nothing to do).
fn reason(p: &Processed) -> Option<&'static str> {
    match p.action {
        Action::Parked => return Some("parked"),
        Action::SkippedBusy => return Some("busy"),
        Action::WaitingBackoff => return Some("waiting"),
        Action::SkippedDone | Action::SkippedParked | Action::Superseded | Action::Submitted => {
            return None;
        }
        Action::Started | Action::Resumed => {}
    }
    if p.finished {
        return None;
    }
    if p.interrupted {
        return Some("stopped");
    }
    Some(match &p.summary {
        Some(s) if s.status == SyncStatus::Failed => "failed",
        Some(s) if s.counts.chunks_failed > 0 || s.counts.rows_pending > 0 => "chunks_failed",
        Some(_) => "unfinished",
        None => "error",
    })
}

/// A JSON answer to a caller (forwarded HTTP), with its correlation id.
pub fn json_reply(status: StatusCode, mut body: Value, correlation_id: &str) -> Response {
    if let Value::Object(map) = &mut body {
        map.insert(
            "correlation_id".into(),
            Value::String(correlation_id.to_owned()),
        );
    }
    (status, axum::Json(body)).into_response()
}

/// The invocation answer of an HTTP-trigger function: the response travels in
/// `Outputs.res`; the invocation itself succeeded.
pub fn http_output(status: StatusCode, mut body: Value, correlation_id: &str) -> Response {
    if let Value::Object(map) = &mut body {
        map.insert(
            "correlation_id".into(),
            Value::String(correlation_id.to_owned()),
        );
    }
    let reply = json!({
        "Outputs": {
            "res": {
                "statusCode": status.as_u16(),
                "headers": { "Content-Type": "application/json" },
                "body": body.to_string(),
            }
        },
        "Logs": [],
        "ReturnValue": null,
    });
    (StatusCode::OK, axum::Json(reply)).into_response()
}
