//! Sending an alert email over SMTP with lettre.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::AlertError;
use super::settings::EmailSettings;

/// A built SMTP transport plus the addresses alerts go from and to.
pub(crate) struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    settings: EmailSettings,
    /// Bound on one whole send (lettre's own timeout covers only the connect).
    timeout: Duration,
}

impl EmailSender {
    /// Builds the transport from `SMTP_URL` (no connection is opened yet).
    pub(crate) fn new(settings: &EmailSettings, timeout: Duration) -> Result<Self, AlertError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.smtp_url)
            .map_err(|e| AlertError::InvalidSetting {
                name: "SMTP_URL",
                reason: super::redact_secrets(&e.to_string()),
            })?
            .timeout(Some(timeout))
            .build();
        Ok(Self {
            transport,
            settings: settings.clone(),
            timeout,
        })
    }

    /// Sends one plain-text message to every recipient.
    pub(crate) async fn send(&self, subject: &str, body: String) -> Result<(), AlertError> {
        let mut builder = Message::builder()
            .from(self.settings.from.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for to in &self.settings.to {
            builder = builder.to(to.clone());
        }
        let message = builder
            .body(body)
            .map_err(|e| AlertError::EmailMessage(e.to_string()))?;
        let fail = |reason: String| AlertError::Smtp {
            server: server_of(&self.settings.smtp_url),
            reason,
        };
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(fail(super::redact_secrets(&e.to_string()))),
            Err(_) => Err(fail(format!(
                "no answer within {} s",
                self.timeout.as_secs_f64()
            ))),
        }
    }
}

/// `host:port` of an SMTP URL, for error messages (never the credentials).
fn server_of(smtp_url: &str) -> String {
    url::Url::parse(smtp_url)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_owned();
            Some(match u.port() {
                Some(p) => format!("{host}:{p}"),
                None => host,
            })
        })
        .unwrap_or_else(|| "the SMTP server".to_owned())
}
