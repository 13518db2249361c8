//! Alert settings read from the environment (`ALERT_EMAIL`, `ALERT_FROM`, `SMTP_URL`,
//! `ALERT_WEBHOOK_URL`, `ALERT_WEBHOOK_ALLOW_HTTP`, `ALERT_TIMEOUT_SECONDS`,
//! `DATSYNC_CA_FILE`), validated once.
//!
//! Transport rules (alerts carry file names, counts and errors):
//! - the webhook may be `https://` anywhere, and `http://` only to a loopback host unless
//!   `ALERT_WEBHOOK_ALLOW_HTTP=true` ([`crate::http`]);
//! - SMTP to a host that is not loopback uses TLS: `smtp://host` without a `tls` parameter
//!   means STARTTLS, required (`?tls=required`, on the URL's port, 25 when it names none);
//!   `smtps://` is TLS from the start; `?tls=opportunistic` (STARTTLS when offered) and
//!   `?tls=none` (plain text) are accepted when written out. A loopback relay keeps plain
//!   `smtp://` as it is.

use std::time::Duration;

use lettre::message::Mailbox;

use super::AlertError;
use crate::http::{HttpTls, check_url};

/// Sender address when `ALERT_FROM` is not set.
pub const DEFAULT_ALERT_FROM: &str = "datsync@localhost";
/// SMTP server when `SMTP_URL` is not set: a local mail relay, no TLS.
pub const DEFAULT_SMTP_URL: &str = "smtp://localhost:25";
/// The most time one alert may take on one channel (connect, SMTP conversation or HTTP
/// request and answer) when `ALERT_TIMEOUT_SECONDS` is not set.
pub const DEFAULT_ALERT_TIMEOUT: Duration = Duration::from_secs(10);

/// The variable that allows a plain `http://` webhook to a host that is not loopback.
pub const WEBHOOK_ALLOW_HTTP_ENV: &str = "ALERT_WEBHOOK_ALLOW_HTTP";

/// Validated alert settings. With neither `ALERT_EMAIL` nor `ALERT_WEBHOOK_URL` set, both
/// channels are off and alerts are disabled (not an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertSettings {
    /// Email alerts, when `ALERT_EMAIL` is set.
    pub email: Option<EmailSettings>,
    /// Webhook alerts, when `ALERT_WEBHOOK_URL` is set.
    pub webhook: Option<WebhookSettings>,
    /// The most time one alert may take on one channel.
    pub timeout: Duration,
    /// Extra root certificates for the webhook's HTTPS (`DATSYNC_CA_FILE`).
    pub tls: HttpTls,
}

/// Where and how alert emails are sent.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailSettings {
    /// Recipients (`ALERT_EMAIL`, comma-separated).
    pub to: Vec<Mailbox>,
    /// Sender (`ALERT_FROM`, default [`DEFAULT_ALERT_FROM`]).
    pub from: Mailbox,
    /// The SMTP server as a lettre connection URL (`SMTP_URL`, default
    /// [`DEFAULT_SMTP_URL`]), after the TLS rule of the module documentation:
    /// `smtp://host:port` (plain, loopback or `tls=none` only), `smtp://host?tls=required`
    /// (STARTTLS), `smtps://user:pass@host` (TLS). May hold a password: never print it.
    pub smtp_url: String,
}

/// Where alert webhooks are posted.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// The URL the report is POSTed to as JSON (`ALERT_WEBHOOK_URL`). Its query or user part
    /// may hold a token: shown only through [`crate::http::shown`].
    pub url: url::Url,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &crate::http::shown(&self.url))
            .finish()
    }
}

impl std::fmt::Debug for EmailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSettings")
            .field("to", &self.to)
            .field("from", &self.from)
            .field("smtp_url", &super::redact_secrets(&self.smtp_url))
            .finish()
    }
}

impl AlertSettings {
    /// Alerts switched off.
    pub fn disabled() -> Self {
        Self {
            email: None,
            webhook: None,
            timeout: DEFAULT_ALERT_TIMEOUT,
            tls: HttpTls::default(),
        }
    }

    /// Reads and checks the settings through `env` (a lookup of environment variables,
    /// injected so that tests never touch the process environment). Empty values count
    /// as unset.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Self, AlertError> {
        let get = |name: &str| {
            env(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let timeout = match get("ALERT_TIMEOUT_SECONDS") {
            Some(v) => parse_timeout(&v)?,
            None => DEFAULT_ALERT_TIMEOUT,
        };
        let email = get("ALERT_EMAIL")
            .map(|to| {
                Ok::<_, AlertError>(EmailSettings {
                    to: parse_recipients(&to)?,
                    from: parse_mailbox(
                        "ALERT_FROM",
                        &get("ALERT_FROM").unwrap_or_else(|| DEFAULT_ALERT_FROM.to_owned()),
                    )?,
                    smtp_url: check_smtp_url(
                        get("SMTP_URL").unwrap_or_else(|| DEFAULT_SMTP_URL.to_owned()),
                    )?,
                })
            })
            .transpose()?;
        let allow_http = match get(WEBHOOK_ALLOW_HTTP_ENV) {
            None => false,
            Some(v) => crate::config::parse_bool(&v).ok_or_else(|| {
                invalid(
                    WEBHOOK_ALLOW_HTTP_ENV,
                    format!("`{v}` is not true or false"),
                )
            })?,
        };
        let webhook = get("ALERT_WEBHOOK_URL")
            .map(|u| {
                check_url(&u, "ALERT_WEBHOOK_URL", WEBHOOK_ALLOW_HTTP_ENV, allow_http)
                    .map(|url| WebhookSettings { url })
                    .map_err(AlertError::Http)
            })
            .transpose()?;
        Ok(Self {
            email,
            webhook,
            timeout,
            tls: HttpTls::from_env(get),
        })
    }

    /// Whether any alert channel is configured.
    pub fn enabled(&self) -> bool {
        self.email.is_some() || self.webhook.is_some()
    }
}

fn invalid(name: &'static str, reason: impl Into<String>) -> AlertError {
    AlertError::InvalidSetting {
        name,
        reason: reason.into(),
    }
}

fn parse_timeout(v: &str) -> Result<Duration, AlertError> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            invalid(
                "ALERT_TIMEOUT_SECONDS",
                format!("`{v}` is not a number of seconds between 0 and 3600"),
            )
        })
}

fn parse_recipients(list: &str) -> Result<Vec<Mailbox>, AlertError> {
    let to = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| parse_mailbox("ALERT_EMAIL", s))
        .collect::<Result<Vec<_>, _>>()?;
    if to.is_empty() {
        return Err(invalid("ALERT_EMAIL", "no recipient address given"));
    }
    Ok(to)
}

fn parse_mailbox(name: &'static str, s: &str) -> Result<Mailbox, AlertError> {
    s.parse::<Mailbox>()
        .map_err(|e| invalid(name, format!("`{s}` is not an email address ({e})")))
}

/// Checks the scheme and applies the TLS rule of the module documentation; lettre parses the
/// rest when the transport is built. The URL itself is never echoed (it may hold a password).
fn check_smtp_url(s: String) -> Result<String, AlertError> {
    let expected = "expected smtp://host[:port][?tls=required|opportunistic|none] or \
                    smtps://[user:pass@]host[:port]";
    let mut url = match url::Url::parse(&s) {
        Ok(u) if matches!(u.scheme(), "smtp" | "smtps") && u.host_str().is_some() => u,
        Ok(_) => return Err(invalid("SMTP_URL", expected)),
        Err(e) => return Err(invalid("SMTP_URL", format!("not a URL ({e})"))),
    };
    if url.scheme() == "smtps" {
        return Ok(s);
    }
    let tls = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let others: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "tls")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mode = match tls.as_deref() {
        Some("required" | "opportunistic") => return Ok(s),
        Some("none") => None,
        Some(_) => return Err(invalid("SMTP_URL", expected)),
        None if crate::http::is_loopback(&url) => return Ok(s),
        // A remote server: STARTTLS, required, on the port the URL means.
        None => {
            if url.port().is_none() {
                let _ = url.set_port(Some(SMTP_PORT));
            }
            Some("required")
        }
    };
    url.set_query(None);
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in &others {
            q.append_pair(k, v);
        }
        if let Some(mode) = mode {
            q.append_pair("tls", mode);
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    Ok(url.to_string())
}

/// The SMTP port of a `smtp://` URL without one (lettre's `SMTP_PORT`).
const SMTP_PORT: u16 = 25;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<AlertSettings, AlertError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        AlertSettings::from_env(|k| map.get(k).cloned())
    }

    #[test]
    fn no_alert_email_means_disabled() {
        let s = settings(&[("SMTP_URL", "smtp://127.0.0.1:2525"), ("ALERT_EMAIL", " ")]).unwrap();
        assert!(!s.enabled());
    }

    #[test]
    fn reads_recipients_sender_and_url() {
        let s = settings(&[
            (
                "ALERT_EMAIL",
                "ops@example.com, Data Team <data@example.com>",
            ),
            ("SMTP_URL", "smtps://u:secret@mail.example.com"),
            ("ALERT_TIMEOUT_SECONDS", "2.5"),
        ])
        .unwrap();
        let e = s.email.as_ref().unwrap();
        assert_eq!(e.to.len(), 2);
        assert_eq!(e.to[1].email.to_string(), "data@example.com");
        assert_eq!(e.from.to_string(), DEFAULT_ALERT_FROM);
        assert_eq!(s.timeout, Duration::from_millis(2500));
        assert!(!format!("{s:?}").contains("secret"));
    }

    #[test]
    fn rejects_bad_values_without_echoing_secrets() {
        let bad: [&[(&str, &str)]; 2] = [
            &[("ALERT_EMAIL", "not an address")],
            &[
                ("ALERT_EMAIL", "ops@example.com"),
                ("ALERT_TIMEOUT_SECONDS", "soon"),
            ],
        ];
        for pairs in bad {
            let err = settings(pairs).unwrap_err().to_string();
            assert!(err.contains(pairs[pairs.len() - 1].0), "{err}");
        }
        let err = settings(&[("ALERT_EMAIL", "a@b.c"), ("SMTP_URL", "imap://u:secret@h")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SMTP_URL") && !err.contains("secret"), "{err}");
        let err = settings(&[("ALERT_WEBHOOK_URL", "http://hooks.example.com/x?t=s3cret")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ALERT_WEBHOOK_URL")
                && err.contains(WEBHOOK_ALLOW_HTTP_ENV)
                && !err.contains("s3cret"),
            "{err}"
        );
    }

    #[test]
    fn webhooks_are_https_or_loopback_unless_allowed() {
        let hook = |pairs: &[(&str, &str)]| settings(pairs).map(|s| s.webhook.unwrap().url);
        assert!(hook(&[("ALERT_WEBHOOK_URL", "https://hooks.example.com/x")]).is_ok());
        assert!(hook(&[("ALERT_WEBHOOK_URL", "http://127.0.0.1:9/x")]).is_ok());
        assert!(
            hook(&[
                ("ALERT_WEBHOOK_URL", "http://hooks.example.com/x"),
                (WEBHOOK_ALLOW_HTTP_ENV, "true"),
            ])
            .is_ok()
        );
        let e = settings(&[
            ("ALERT_WEBHOOK_URL", "http://127.0.0.1/x"),
            (WEBHOOK_ALLOW_HTTP_ENV, "perhaps"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains(WEBHOOK_ALLOW_HTTP_ENV), "{e}");
        let s = settings(&[("ALERT_WEBHOOK_URL", "https://h.example.com/x?token=s3cret")]).unwrap();
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn smtp_to_a_remote_server_uses_tls_unless_told_otherwise() {
        let url = |smtp: &str| {
            settings(&[("ALERT_EMAIL", "ops@example.com"), ("SMTP_URL", smtp)])
                .unwrap()
                .email
                .unwrap()
                .smtp_url
        };
        for (given, effective) in [
            // Loopback relays stay as they are.
            ("smtp://localhost:25", "smtp://localhost:25"),
            ("smtp://127.0.0.1:2525", "smtp://127.0.0.1:2525"),
            // A remote server: STARTTLS required, on the URL's port (25 when none).
            (
                "smtp://mail.example.com",
                "smtp://mail.example.com:25?tls=required",
            ),
            (
                "smtp://u:pw@mail.example.com:587",
                "smtp://u:pw@mail.example.com:587?tls=required",
            ),
            // Written out: kept.
            (
                "smtp://mail.example.com?tls=opportunistic",
                "smtp://mail.example.com?tls=opportunistic",
            ),
            (
                "smtp://mail.example.com?tls=required",
                "smtp://mail.example.com?tls=required",
            ),
            (
                "smtps://u:pw@mail.example.com",
                "smtps://u:pw@mail.example.com",
            ),
            // Plain text on purpose.
            (
                "smtp://mail.example.com:25?tls=none",
                "smtp://mail.example.com:25",
            ),
        ] {
            assert_eq!(url(given), effective, "{given}");
        }
        let e = settings(&[
            ("ALERT_EMAIL", "ops@example.com"),
            ("SMTP_URL", "smtp://u:s3cret@mail.example.com?tls=maybe"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("SMTP_URL") && !e.contains("s3cret"), "{e}");
    }
}
