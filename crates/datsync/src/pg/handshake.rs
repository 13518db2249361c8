//! Recording a TLS handshake's outcome (tokio-postgres reports a failed handshake and a
//! server error alike), and putting a failure in libpq's words.

use std::io;
use std::sync::{Arc, Mutex};

use super::verify::NameMismatch;

/// What happened in the TLS handshake of one attempt.
#[derive(Debug, Default)]
pub(crate) struct HandshakeRecord {
    /// `None`: not attempted; `Some(Err)`: failed, with the reason.
    pub outcome: Option<Result<(), String>>,
}

/// Wraps tokio-postgres-rustls's connector to record the handshake's outcome, so that a
/// failure can be told from a server error without reading message text.
pub(crate) struct RecordingConnect<C> {
    pub inner: C,
    pub record: Arc<Mutex<HandshakeRecord>>,
    /// Where the trusted roots come from, for messages.
    pub roots: Option<String>,
    /// Whether the handshake is the first thing sent (`sslnegotiation=direct`).
    pub direct: bool,
}

impl<S, C> tokio_postgres::tls::TlsConnect<S> for RecordingConnect<C>
where
    C: tokio_postgres::tls::TlsConnect<S, Error = io::Error> + Send + 'static,
    C::Future: Send + 'static,
    S: Send + 'static,
{
    type Stream = C::Stream;
    type Error = io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = io::Result<C::Stream>> + Send + 'static>,
    >;

    fn connect(self, stream: S) -> Self::Future {
        let record = self.record;
        let roots = self.roots;
        let direct = self.direct;
        let handshake = self.inner.connect(stream);
        Box::pin(async move {
            let result = handshake.await;
            let outcome = match &result {
                Ok(_) => Ok(()),
                Err(e) => {
                    let mut reason = describe_handshake_error(e, roots.as_deref());
                    let refused = e
                        .get_ref()
                        .and_then(|i| i.downcast_ref::<rustls::Error>())
                        .is_none_or(|t| !matches!(t, rustls::Error::InvalidCertificate(_)));
                    if direct && refused {
                        reason.push_str(" (sslnegotiation=direct needs PostgreSQL 17 or later)");
                    }
                    Err(reason)
                }
            };
            if let Ok(mut r) = record.lock() {
                r.outcome = Some(outcome);
            }
            result
        })
    }
}

/// A handshake failure in words (libpq's where it has them); `roots` says where the
/// trusted roots came from.
pub(crate) fn describe_handshake_error(e: &io::Error, roots: Option<&str>) -> String {
    use rustls::{AlertDescription as A, CertificateError as C, Error as R};
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<R>()) else {
        return match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                "the server closed the connection during the TLS handshake".into()
            }
            _ => format!("TLS handshake failed: {e}"),
        };
    };
    match tls {
        R::InvalidCertificate(C::Other(other)) => match other.0.downcast_ref::<NameMismatch>() {
            Some(m) => m.to_string(),
            None => format!("certificate verify failed: {other}"),
        },
        R::InvalidCertificate(C::UnknownIssuer) => format!(
            "certificate verify failed: the server certificate does not chain to {}",
            roots.unwrap_or("a trusted root certificate")
        ),
        R::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "certificate verify failed: the server certificate has expired".into()
        }
        R::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "certificate verify failed: the server certificate is not valid yet".into()
        }
        R::InvalidCertificate(C::Revoked) => {
            "certificate verify failed: the server certificate is revoked (sslcrl)".into()
        }
        R::InvalidCertificate(C::UnknownRevocationStatus) => {
            "certificate verify failed: no revocation list (sslcrl, sslcrldir) covers the \
             server certificate's issuer"
                .into()
        }
        R::InvalidCertificate(other) => format!("certificate verify failed: {other:?}"),
        R::AlertReceived(alert) => {
            let why = match alert {
                A::UnknownCA | A::BadCertificate | A::CertificateRequired | A::AccessDenied => {
                    " (the server did not accept the client certificate: check sslcert and sslkey)"
                }
                A::ProtocolVersion => " (no TLS version both sides accept)",
                _ => "",
            };
            format!("the server refused the TLS handshake with the alert {alert:?}{why}")
        }
        other => format!("TLS handshake failed: {other}"),
    }
}
