//! Queue-trigger invocations: a Storage queue message holding an Event Grid event about a
//! blob, as the Functions host hands it to a custom handler.
//!
//! The host sends `{"Data": {"<binding>": <message>}, "Metadata": {"DequeueCount": …, "Id":
//! …, …}}`. The message is the event Event Grid wrote to the queue — Base64-encoded (what
//! Event Grid writes today, decoded by the host's default `messageEncoding`) or not — and the
//! host serializes strings as JSON once more. So the message may arrive as an object, an
//! array of events, a JSON text, a JSON text of a JSON text, or Base64 of any of these: it is
//! unwrapped until events appear (at most [`MAX_UNWRAPS`] layers). Metadata values get the
//! same treatment (`"DequeueCount": "2"` or `"\"2\""` as well as `2`).
//!
//! Both schemas are read: Event Grid (`eventType`, `subject`, `data`) and CloudEvents 1.0
//! (`type`, `subject`, `data`, `specversion`). `Microsoft.Storage.BlobCreated` names the blob
//! in `data.url`, `Microsoft.Storage.BlobRenamed` (hierarchical namespace) in
//! `data.destinationUrl`; `CreateFile` and `SftpCreate` announce an empty file whose content
//! follows (`FlushWithClose`, `SftpCommit`), and are skipped.

use base64::Engine as _;
use serde_json::Value;

use super::request::{field, unquote};

/// How many layers of encoding (JSON text, Base64) are taken off a message.
pub const MAX_UNWRAPS: usize = 4;

/// The event types the handler acts on.
pub const BLOB_CREATED: &str = "Microsoft.Storage.BlobCreated";
/// A blob renamed (hierarchical namespace): the new name is a new blob.
pub const BLOB_RENAMED: &str = "Microsoft.Storage.BlobRenamed";
/// `data.api` values of a `BlobCreated` that announces a file whose content is not there
/// yet (another event follows when it is).
pub const PENDING_APIS: &[&str] = &["CreateFile", "SftpCreate"];

/// A queue invocation that cannot be read as events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The body is not JSON (line and column of the parser; never the input).
    #[error("the invocation is not valid JSON: {0}")]
    Json(String),
    /// No `Data` member with a message.
    #[error("the invocation carries no queue message (no Data member)")]
    NoMessage,
    /// The message is neither an event, an array of them, nor an encoding of either.
    #[error("the queue message is not an Event Grid or CloudEvents event: {0}")]
    NotAnEvent(&'static str),
}

/// One queue invocation: the host's delivery count and the events of its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInvocation {
    /// `Metadata.DequeueCount`: 1 on the first delivery (1 when absent).
    pub delivery: u32,
    /// `Metadata.Id`, the queue message's id, when given.
    pub message_id: Option<String>,
    /// The events.
    pub events: Vec<BlobEvent>,
}

/// What one event says about a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobEvent {
    /// `eventType` / `type`.
    pub event_type: String,
    /// The event's id.
    pub id: Option<String>,
    /// `data.api`: `PutBlob`, `PutBlockList`, `CopyBlob`, `FlushWithClose`, …
    pub api: Option<String>,
    /// The blob's URL (`data.url`; `data.destinationUrl` for a rename).
    pub url: Option<String>,
    /// `data.eTag` without quotes.
    pub etag: Option<String>,
    /// `data.contentLength`.
    pub content_length: Option<u64>,
}

impl BlobEvent {
    /// Why the handler does nothing with this event, if it does nothing.
    pub fn skipped_because(&self) -> Option<&'static str> {
        if self.event_type != BLOB_CREATED && self.event_type != BLOB_RENAMED {
            return Some("not a BlobCreated or BlobRenamed event");
        }
        if self
            .api
            .as_deref()
            .is_some_and(|api| PENDING_APIS.contains(&api))
        {
            return Some("the file's content is not committed yet (another event follows)");
        }
        if self.url.is_none() {
            return Some("the event names no blob URL");
        }
        None
    }
}

/// Reads a queue invocation (see the module docs). `binding` names the trigger's member of
/// `Data`; without it (or without such a member) the first member is taken.
pub fn queue_invocation(body: &[u8], binding: Option<&str>) -> Result<QueueInvocation, EventError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| EventError::Json(format!("line {}, column {}", e.line(), e.column())))?;
    let data = field(&v, "Data").ok_or(EventError::NoMessage)?;
    let message = binding
        .and_then(|b| field(data, b))
        .or_else(|| data.as_object().and_then(|m| m.values().next()))
        .ok_or(EventError::NoMessage)?;
    let metadata = field(&v, "Metadata").cloned().unwrap_or(Value::Null);
    let delivery = field(&metadata, "DequeueCount")
        .and_then(number)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1);
    let message_id = field(&metadata, "Id")
        .and_then(Value::as_str)
        .map(unquote)
        .filter(|s| !s.is_empty());
    Ok(QueueInvocation {
        delivery,
        message_id,
        events: events(message)?,
    })
}

/// The events of a message, once its encodings are taken off.
pub fn events(message: &Value) -> Result<Vec<BlobEvent>, EventError> {
    let mut current = message.clone();
    for _ in 0..=MAX_UNWRAPS {
        current = match current {
            Value::Object(_) => return Ok(vec![event(&current)?]),
            Value::Array(items) if !items.is_empty() => {
                return items.iter().map(event).collect();
            }
            Value::String(s) => unwrap_text(&s)?,
            _ => return Err(EventError::NotAnEvent("neither an object nor an array")),
        };
    }
    Err(EventError::NotAnEvent("too many layers of encoding"))
}

/// One layer off a text: JSON (an object, an array, a string) or Base64 of text.
fn unwrap_text(s: &str) -> Result<Value, EventError> {
    let t = s.trim();
    if t.starts_with(['{', '[', '"']) {
        return serde_json::from_str(t).map_err(|_| EventError::NotAnEvent("malformed JSON"));
    }
    let engine = base64::engine::general_purpose::STANDARD;
    let bytes = engine
        .decode(t)
        .map_err(|_| EventError::NotAnEvent("neither JSON nor Base64"))?;
    let text =
        String::from_utf8(bytes).map_err(|_| EventError::NotAnEvent("Base64 of non-UTF-8"))?;
    Ok(Value::String(text))
}

/// One event in either schema.
fn event(v: &Value) -> Result<BlobEvent, EventError> {
    let text = |v: &Value, name: &str| {
        field(v, name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let event_type = text(v, "eventType")
        .or_else(|| text(v, "type"))
        .ok_or(EventError::NotAnEvent("no eventType or type"))?;
    let data = field(v, "data").cloned().unwrap_or(Value::Null);
    let url = if event_type == BLOB_RENAMED {
        text(&data, "destinationUrl")
    } else {
        text(&data, "url")
    };
    Ok(BlobEvent {
        event_type,
        id: text(v, "id"),
        api: text(&data, "api"),
        url,
        etag: text(&data, "eTag").map(|e| e.trim_matches('"').to_owned()),
        content_length: field(&data, "contentLength").and_then(number),
    })
}

/// A whole number given as a number, a numeric string, or a JSON string of one.
fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => unquote(s).trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
#[path = "event_tests.rs"]
mod tests;
