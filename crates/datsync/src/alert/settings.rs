//! Alert settings read from the environment (`ALERT_EMAIL`, `ALERT_FROM`, `SMTP_URL`,
//! `ALERT_WEBHOOK_URL`, `ALERT_TIMEOUT_SECONDS`), validated once.

use std::time::Duration;

use lettre::message::Mailbox;

use super::AlertError;

/// Sender address when `ALERT_FROM` is not set.
pub const DEFAULT_ALERT_FROM: &str = "datsync@localhost";
/// SMTP server when `SMTP_URL` is not set: a local mail relay, no TLS.
pub const DEFAULT_SMTP_URL: &str = "smtp://localhost:25";
/// The most time one alert may take on one channel (connect, SMTP conversation or HTTP
/// request and answer) when `ALERT_TIMEOUT_SECONDS` is not set.
pub const DEFAULT_ALERT_TIMEOUT: Duration = Duration::from_secs(10);

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
}

/// Where and how alert emails are sent.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailSettings {
    /// Recipients (`ALERT_EMAIL`, comma-separated).
    pub to: Vec<Mailbox>,
    /// Sender (`ALERT_FROM`, default [`DEFAULT_ALERT_FROM`]).
    pub from: Mailbox,
    /// The SMTP server as a lettre connection URL (`SMTP_URL`, default
    /// [`DEFAULT_SMTP_URL`]): `smtp://host:port` (no TLS), `smtp://host?tls=required`
    /// (STARTTLS), `smtps://user:pass@host` (TLS). May hold a password: never print it.
    /// Credentials on a plain `smtp://` URL are sent unencrypted (fine for a local relay
    /// only); use `smtps://` or `?tls=required` for a remote server.
    pub smtp_url: String,
}

/// Where alert webhooks are posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// The `http://` URL the report is POSTed to as JSON (`ALERT_WEBHOOK_URL`).
    pub url: url::Url,
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
        let webhook = get("ALERT_WEBHOOK_URL")
            .map(|u| parse_webhook_url(&u).map(|url| WebhookSettings { url }))
            .transpose()?;
        Ok(Self {
            email,
            webhook,
            timeout,
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

/// Checks the scheme only; lettre parses the rest when the transport is built. The URL
/// itself is never echoed (it may hold a password).
fn check_smtp_url(s: String) -> Result<String, AlertError> {
    match url::Url::parse(&s) {
        Ok(u) if matches!(u.scheme(), "smtp" | "smtps") && u.host_str().is_some() => Ok(s),
        Ok(_) => Err(invalid(
            "SMTP_URL",
            "expected smtp://host[:port][?tls=required|opportunistic] or smtps://[user:pass@]host[:port]",
        )),
        Err(e) => Err(invalid("SMTP_URL", format!("not a URL ({e})"))),
    }
}

fn parse_webhook_url(s: &str) -> Result<url::Url, AlertError> {
    let u =
        url::Url::parse(s).map_err(|e| invalid("ALERT_WEBHOOK_URL", format!("not a URL ({e})")))?;
    match u.scheme() {
        "http" if u.host_str().is_some() => Ok(u),
        "https" => Err(AlertError::WebhookHttpsUnsupported),
        _ => Err(invalid(
            "ALERT_WEBHOOK_URL",
            "expected http://host[:port]/path",
        )),
    }
}

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
        let err = settings(&[("ALERT_WEBHOOK_URL", "https://hooks.example.com/x")]).unwrap_err();
        assert!(matches!(err, AlertError::WebhookHttpsUnsupported), "{err}");
    }
}
