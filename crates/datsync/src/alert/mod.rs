//! Alerts when a sync ends FAILED, BAD_INPUT or PARTIAL_SUCCESS: an email over SMTP
//! (lettre) and/or a JSON POST to a webhook.
//!
//! The pipeline fills a [`AlertReport`]; [`Alerter::notify`] sends it on every configured
//! channel. Settings come from the environment through [`AlertSettings::from_env`]:
//!
//! | variable | meaning |
//! |---|---|
//! | `ALERT_EMAIL` | recipients, comma-separated; unset → no email |
//! | `ALERT_FROM` | sender, default [`DEFAULT_ALERT_FROM`] |
//! | `SMTP_URL` | `smtp://host:port`, `smtp://host?tls=required`, `smtps://user:pass@host`; default [`DEFAULT_SMTP_URL`] |
//! | `ALERT_WEBHOOK_URL` | `https://…` URL the report is POSTed to as JSON (through [`crate::http`]); unset → no webhook |
//! | `ALERT_WEBHOOK_ALLOW_HTTP` | `true` allows an `http://` webhook on a host that is not loopback |
//! | `ALERT_TIMEOUT_SECONDS` | most time one alert may take on one channel, default [`DEFAULT_ALERT_TIMEOUT`] |
//! | `DATSYNC_CA_FILE` | extra root certificates (PEM) for the webhook's HTTPS |
//!
//! SMTP to a host that is not loopback uses TLS unless `SMTP_URL` says `tls=none` (see
//! `settings.rs`).
//!
//! Sending an alert never fails the sync: [`Alerter::notify`] logs each failed delivery
//! with `tracing` and returns it in the [`AlertOutcome`]. Alert text never holds a
//! password or connection string ([`redact_secrets`] masks any that slip into an error
//! message).

mod email;
mod message;
mod redact;
mod report;
mod settings;

use serde::Serialize;

pub use message::{alert_level, body, subject};
pub use redact::redact_secrets;
pub use report::{AlertReport, MAX_LISTED_VALIDATION_ERRORS, status_needs_alert};
pub use settings::{
    AlertSettings, DEFAULT_ALERT_FROM, DEFAULT_ALERT_TIMEOUT, DEFAULT_SMTP_URL, EmailSettings,
    WEBHOOK_ALLOW_HTTP_ENV, WebhookSettings,
};

/// What can go wrong while configuring or sending an alert.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// A setting has a value that cannot be used.
    #[error("alert setting {name} is invalid: {reason}")]
    InvalidSetting {
        /// The environment variable.
        name: &'static str,
        /// What is wrong with it (never its secret parts).
        reason: String,
    },
    /// The webhook URL or the HTTPS set-up cannot be used.
    #[error("alert webhook: {0}")]
    Http(#[from] crate::http::HttpError),
    /// The email could not be put together.
    #[error("cannot build the alert email: {0}")]
    EmailMessage(String),
    /// The SMTP server could not be reached or refused the message.
    #[error(
        "cannot send the alert email through {server}: {reason}; check SMTP_URL and that the server is up"
    )]
    Smtp {
        /// `host:port` of the server.
        server: String,
        /// lettre's explanation, secrets masked.
        reason: String,
    },
    /// The webhook could not be reached or did not answer 2xx.
    #[error(
        "cannot post the alert to {url}: {reason}; check ALERT_WEBHOOK_URL and that the receiver is up"
    )]
    Webhook {
        /// The URL without credentials or query.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The report could not be turned into JSON.
    #[error("cannot encode the alert as json: {0}")]
    Json(#[from] serde_json::Error),
}

/// An alert channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Email over SMTP.
    Email,
    /// JSON POST to a webhook.
    Webhook,
}

/// The result of sending one alert on one channel.
#[derive(Debug)]
pub struct Delivery {
    /// The channel used.
    pub channel: Channel,
    /// `Ok` when the server accepted the alert.
    pub result: Result<(), AlertError>,
}

/// What [`Alerter::notify`] did: one [`Delivery`] per configured channel, none when the
/// status does not call for an alert or no channel is configured.
#[derive(Debug, Default)]
pub struct AlertOutcome {
    /// The deliveries attempted, in channel order (email first).
    pub deliveries: Vec<Delivery>,
}

impl AlertOutcome {
    /// The deliveries that failed.
    pub fn failures(&self) -> impl Iterator<Item = (Channel, &AlertError)> {
        self.deliveries
            .iter()
            .filter_map(|d| d.result.as_ref().err().map(|e| (d.channel, e)))
    }

    /// Whether every attempted delivery succeeded (true when none was attempted).
    pub fn all_delivered(&self) -> bool {
        self.failures().next().is_none()
    }
}

/// The JSON a webhook receives: the report plus the alert's level and subject.
#[derive(Serialize)]
struct WebhookPayload<'a> {
    /// `error` (FAILED, BAD_INPUT) or `warning` (PARTIAL_SUCCESS).
    level: &'static str,
    subject: String,
    #[serde(flatten)]
    report: &'a AlertReport,
}

/// Sends alerts on the configured channels; built once from [`AlertSettings`].
pub struct Alerter {
    email: Option<email::EmailSender>,
    webhook: Option<(WebhookSettings, reqwest::Client)>,
}

impl Alerter {
    /// Builds the channels (parses `SMTP_URL`, reads the CA file; opens no connection).
    pub fn new(settings: &AlertSettings) -> Result<Self, AlertError> {
        let email = settings
            .email
            .as_ref()
            .map(|e| email::EmailSender::new(e, settings.timeout))
            .transpose()?;
        let webhook = settings
            .webhook
            .as_ref()
            .map(|hook| {
                crate::http::client(settings.timeout, &settings.tls).map(|c| (hook.clone(), c))
            })
            .transpose()?;
        Ok(Self { email, webhook })
    }

    /// Whether any channel is configured.
    pub fn enabled(&self) -> bool {
        self.email.is_some() || self.webhook.is_some()
    }

    /// Sends `report` on every channel when its status calls for an alert (see
    /// [`AlertReport::needs_alert`]). Never fails: each failed delivery is logged as a
    /// warning and returned in the outcome.
    pub async fn notify(&self, report: &AlertReport) -> AlertOutcome {
        let mut outcome = AlertOutcome::default();
        if !report.needs_alert() {
            return outcome;
        }
        if let Some(sender) = &self.email {
            let result = sender.send(&subject(report), body(report)).await;
            outcome
                .deliveries
                .push(logged(report, Channel::Email, result));
        }
        if let Some((hook, client)) = &self.webhook {
            let result = post(client, report, &hook.url).await;
            outcome
                .deliveries
                .push(logged(report, Channel::Webhook, result));
        }
        outcome
    }
}

/// POSTs the report as JSON; any 2xx answer is a delivery.
async fn post(
    client: &reqwest::Client,
    report: &AlertReport,
    url: &url::Url,
) -> Result<(), AlertError> {
    let redacted = report.redacted();
    let payload = WebhookPayload {
        level: alert_level(report.status),
        subject: subject(report),
        report: &redacted,
    };
    let json = serde_json::to_vec(&payload)?;
    crate::http::send(client, &reqwest::Method::POST, url, &[], Some(json))
        .await
        .map(|_| ())
        .map_err(|e| AlertError::Webhook {
            url: crate::http::shown(url),
            reason: match e {
                crate::http::HttpError::Request { reason, .. } => reason,
                other => other.to_string(),
            },
        })
}

fn logged(report: &AlertReport, channel: Channel, result: Result<(), AlertError>) -> Delivery {
    match &result {
        Ok(()) => tracing::info!(sync_id = %report.sync_id, ?channel, "alert sent"),
        Err(e) => tracing::warn!(sync_id = %report.sync_id, ?channel, error = %e, "alert not sent"),
    }
    Delivery { channel, result }
}
