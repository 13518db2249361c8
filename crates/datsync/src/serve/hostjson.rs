//! The Functions host's retry settings, read from the app's `host.json`, so that the
//! handler's receipts count and pace attempts exactly as the host delivers them.
//!
//! `extensions.queues.maxDequeueCount` (default 5) is how many times the host delivers a
//! queue message before it moves it to the poison queue: the handler's `--max-attempts`.
//! `extensions.queues.visibilityTimeout` (default 0: at once) is how long the host waits
//! before it delivers a failed message again: the receipts' pause. `functionTimeout` is how
//! long an invocation may run before the host gives up on it (and restarts the handler).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// The host's `maxDequeueCount` when `host.json` does not set it.
pub const HOST_DEFAULT_MAX_DEQUEUE_COUNT: u32 = 5;

/// What the handler needs to know of `host.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostSettings {
    /// `extensions.queues.maxDequeueCount`.
    pub max_dequeue_count: u32,
    /// `extensions.queues.visibilityTimeout`.
    pub visibility_timeout: Duration,
    /// `functionTimeout` (`None`: unbounded, `-1`, or not set).
    pub function_timeout: Option<Duration>,
}

/// A `host.json` that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum HostJsonError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not JSON, or a setting of the wrong form.
    #[error("{path}: {problem}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
}

impl HostSettings {
    /// Reads `path`; `Ok(None)` when there is no such file.
    pub fn read(path: &Path) -> Result<Option<Self>, HostJsonError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(HostJsonError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        Self::parse(&text)
            .map(Some)
            .map_err(|problem| HostJsonError::Invalid {
                path: path.display().to_string(),
                problem,
            })
    }

    /// Parses the text of a `host.json`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| format!("not JSON (line {}, column {})", e.line(), e.column()))?;
        let queues = v.pointer("/extensions/queues");
        let setting = |name: &str| queues.and_then(|q| q.get(name));
        let max_dequeue_count = match setting("maxDequeueCount") {
            None => HOST_DEFAULT_MAX_DEQUEUE_COUNT,
            Some(n) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n >= 1)
                .ok_or("extensions.queues.maxDequeueCount is not a whole number ≥ 1")?,
        };
        let visibility_timeout = match setting("visibilityTimeout") {
            None => Duration::ZERO,
            Some(t) => t
                .as_str()
                .and_then(timespan)
                .ok_or("extensions.queues.visibilityTimeout is not a time span (hh:mm:ss)")?,
        };
        let function_timeout = match v.get("functionTimeout") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim() == "-1" => None,
            Some(t) => Some(
                t.as_str()
                    .and_then(timespan)
                    .ok_or("functionTimeout is not a time span (hh:mm:ss)")?,
            ),
        };
        Ok(Self {
            max_dequeue_count,
            visibility_timeout,
            function_timeout,
        })
    }
}

/// A .NET `TimeSpan` as written in `host.json`: `hh:mm:ss`, `d.hh:mm:ss`, with optional
/// fractional seconds.
pub fn timespan(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (days, rest) = match s.split_once('.') {
        Some((d, rest)) if rest.contains(':') && !d.contains(':') => (d.parse::<u64>().ok()?, rest),
        _ => (0, s),
    };
    let mut parts = rest.split(':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let hours: u64 = h.parse().ok()?;
    let minutes: u64 = m.parse().ok()?;
    let seconds: f64 = sec.parse().ok()?;
    if hours > 23 && days > 0 || minutes > 59 || !(0.0..60.0).contains(&seconds) {
        return None;
    }
    let whole = ((days * 24 + hours) * 60 + minutes) * 60;
    Some(Duration::from_secs(whole) + Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_spans_as_dotnet_writes_them() {
        for (text, secs) in [
            ("00:00:00", 0.0),
            ("00:05:00", 300.0),
            ("00:10:00", 600.0),
            ("01:00:00", 3600.0),
            ("1.02:00:00", 93_600.0),
            ("00:00:30.5", 30.5),
        ] {
            assert_eq!(
                timespan(text),
                Some(Duration::from_secs_f64(secs)),
                "{text}"
            );
        }
        for bad in [
            "",
            "5",
            "00:60:00",
            "00:00:60",
            "a:b:c",
            "00:00:00:00",
            "-00:01:00",
        ] {
            assert_eq!(timespan(bad), None, "{bad}");
        }
    }

    #[test]
    fn settings_and_their_defaults() {
        let s = HostSettings::parse(
            r#"{"version": "2.0", "functionTimeout": "00:10:00",
                "extensions": {"queues": {"maxDequeueCount": 4, "visibilityTimeout": "00:05:00"}}}"#,
        )
        .unwrap();
        assert_eq!(s.max_dequeue_count, 4);
        assert_eq!(s.visibility_timeout, Duration::from_secs(300));
        assert_eq!(s.function_timeout, Some(Duration::from_secs(600)));
        let d = HostSettings::parse(r#"{"version": "2.0", "functionTimeout": "-1"}"#).unwrap();
        assert_eq!(
            d,
            HostSettings {
                max_dequeue_count: HOST_DEFAULT_MAX_DEQUEUE_COUNT,
                visibility_timeout: Duration::ZERO,
                function_timeout: None,
            }
        );
        for bad in [
            "{",
            r#"{"extensions": {"queues": {"maxDequeueCount": 0}}}"#,
            r#"{"extensions": {"queues": {"visibilityTimeout": 30}}}"#,
            r#"{"functionTimeout": "ten minutes"}"#,
        ] {
            assert!(HostSettings::parse(bad).is_err(), "{bad}");
        }
    }
}
