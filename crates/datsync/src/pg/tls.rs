//! TLS as libpq sets it up (`initialize_SSL` in `fe-secure-openssl.c`), on rustls with the
//! ring provider: the root certificates (`sslrootcert`: a file, `system`, else
//! `~/.postgresql/root.crt` when it exists), revocation lists (`sslcrl`, `sslcrldir`, else
//! `~/.postgresql/root.crl`), the client certificate and key (`sslcert`/`sslkey`, else
//! `~/.postgresql/postgresql.crt`/`.key`; the key refused when the group or others may read
//! it), `sslcertmode`, `sslsni`, the protocol version range, and ALPN `postgresql` (which
//! `sslnegotiation=direct` needs).
//!
//! How much is verified ([`Verification`]) follows libpq: `verify-full` checks the chain and
//! the host name, `verify-ca` the chain; `allow`, `prefer` and `require` check the chain when
//! a root certificate is there, and nothing otherwise.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, SignatureScheme};

pub(crate) use super::handshake::{HandshakeRecord, RecordingConnect};
use super::tls_files::{load_client_cert, load_crls, load_roots};
use super::verify::LibpqVerifier;
pub use super::verify::Verification;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain text only.
    Disable,
    /// Plain text; TLS if the server refuses the plain connection.
    Allow,
    /// TLS if the server offers it, else plain text.
    Prefer,
    /// TLS; the certificate checked only against a root certificate when one is given.
    Require,
    /// TLS, the certificate chain checked.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// Whether the mode refuses a connection without TLS (over TCP).
    pub fn requires_tls(self) -> bool {
        matches!(self, Self::Require | Self::VerifyCa | Self::VerifyFull)
    }
}

impl FromStr for SslMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => return Err(format!("invalid sslmode value: \"{other}\"")),
        })
    }
}

/// Where the root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// `sslrootcert`, a PEM file (used only if it exists, except that the `verify-*` modes
    /// need it).
    File(PathBuf),
    /// `~/.postgresql/root.crt`, likewise.
    Home(PathBuf),
    /// The system's trust store (`sslrootcert=system`), with the Mozilla roots.
    System,
    /// None: no home directory to look in.
    Nowhere,
}

/// `sslcertmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertMode {
    /// Send the client certificate if there is one (the default).
    Allow,
    /// Never send one.
    Disable,
    /// Fail unless the server asked for one.
    Require,
}

/// `sslnegotiation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiation {
    /// Ask with an SSLRequest first (every server version).
    Postgres,
    /// Start the TLS handshake at once, with ALPN `postgresql` (PostgreSQL 17 and later).
    Direct,
}

/// A TLS protocol version datsync speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    V12,
    /// TLS 1.3.
    V13,
}

/// The TLS parameters of a connection, as given (files are read at each connection, as
/// libpq reads them).
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// Root certificates.
    pub root: RootCerts,
    /// Client certificate file (given or the home default; may not exist).
    pub cert: Option<PathBuf>,
    /// Client key file.
    pub key: Option<PathBuf>,
    /// Whether `sslpassword` was given (encrypted keys are not supported).
    pub key_password: bool,
    /// `sslcertmode`.
    pub cert_mode: CertMode,
    /// Revocation list file (given or the home default).
    pub crl: Option<PathBuf>,
    /// Revocation list directory.
    pub crl_dir: Option<PathBuf>,
    /// Send the host name (SNI).
    pub sni: bool,
    /// Lowest protocol version.
    pub min_version: TlsVersion,
    /// Highest protocol version.
    pub max_version: TlsVersion,
    /// `sslnegotiation`.
    pub negotiation: Negotiation,
}

/// A TLS set-up failure (files, keys), before any byte is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsSetupError(pub String);

pub(crate) fn setup_err(s: impl Into<String>) -> TlsSetupError {
    TlsSetupError(s.into())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The roots once loaded: the store for chain checks and the DER list for the
/// self-signed rule. `None`: no root certificate (no verification unless required).
pub(crate) struct Roots {
    pub store: Arc<RootCertStore>,
    pub der: Vec<CertificateDer<'static>>,
    /// Where they came from, for messages.
    pub origin: String,
}

/// Everything read from files for one connection attempt.
pub(crate) struct TlsContext {
    options: TlsOptions,
    roots: Option<Roots>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    client: Option<Arc<CertifiedKey>>,
    provider: Arc<CryptoProvider>,
}

impl TlsContext {
    /// Reads the files for a TLS connection in `mode`: an error is libpq's (a `verify-*`
    /// mode without a root certificate, an unreadable file, a key others may read …).
    /// `implicit` marks datsync's default `verify-full` (no `sslmode` given, a remote host):
    /// without `sslrootcert` and `~/.postgresql/root.crt` it trusts the system's roots.
    pub fn load(
        options: &TlsOptions,
        mode: SslMode,
        implicit: bool,
    ) -> Result<Self, TlsSetupError> {
        let roots = load_roots(&options.root, mode, implicit)?;
        let crls = if roots.is_some() {
            load_crls(options)?
        } else {
            Vec::new()
        };
        let provider = provider();
        let client = if options.cert_mode == CertMode::Disable {
            None
        } else {
            load_client_cert(options, &provider)?
        };
        Ok(Self {
            options: options.clone(),
            roots,
            crls,
            client,
            provider,
        })
    }

    /// Where the root certificates come from, in words (`None` without any).
    pub fn roots_origin(&self) -> Option<&str> {
        self.roots.as_ref().map(|r| r.origin.as_str())
    }

    /// What a TLS connection in `mode` verifies with these files.
    pub fn verification(&self, mode: SslMode) -> Verification {
        match (mode, &self.roots) {
            (SslMode::VerifyFull, _) => Verification::Full,
            (SslMode::VerifyCa, _) | (_, Some(_)) => Verification::Ca,
            (_, None) => Verification::None,
        }
    }

    /// The rustls configuration of one attempt at `host` (libpq's `host`, checked by
    /// `verify-full`); `requested` records whether the server asked for a client
    /// certificate.
    pub fn client_config(
        &self,
        level: Verification,
        host: &str,
        requested: Arc<AtomicBool>,
    ) -> Result<rustls::ClientConfig, TlsSetupError> {
        let webpki = match (&self.roots, level) {
            (Some(roots), Verification::Ca | Verification::Full) => Some(
                WebPkiServerVerifier::builder_with_provider(
                    roots.store.clone(),
                    self.provider.clone(),
                )
                .with_crls(self.crls.clone())
                .build()
                .map_err(|e| setup_err(format!("cannot use the root certificates: {e}")))?,
            ),
            _ => None,
        };
        let verifier = LibpqVerifier::new(
            level,
            webpki,
            self.roots
                .as_ref()
                .map(|r| r.der.clone())
                .unwrap_or_default(),
            host.to_owned(),
            self.provider.clone(),
        );
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
            (TlsVersion::V12, &rustls::version::TLS12),
            (TlsVersion::V13, &rustls::version::TLS13),
        ]
        .into_iter()
        .filter(|(v, _)| (self.options.min_version..=self.options.max_version).contains(v))
        .map(|(_, v)| v)
        .collect();
        let mut config = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| setup_err(format!("cannot set the TLS versions: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_cert_resolver(Arc::new(ClientCert {
                key: self.client.clone(),
                requested,
            }));
        config.enable_sni = self.options.sni;
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(config)
    }
}

/// Sends the client certificate (if any) and notes that the server asked for one.
#[derive(Debug)]
struct ClientCert {
    key: Option<Arc<CertifiedKey>>,
    requested: Arc<AtomicBool>,
}

impl ResolvesClientCert for ClientCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.requested.store(true, Ordering::SeqCst);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        // Always consulted, so that a request is noticed (`sslcertmode=require`).
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_values_are_libpqs() {
        for m in [
            SslMode::Disable,
            SslMode::Allow,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            assert_eq!(m.as_str().parse::<SslMode>(), Ok(m));
        }
        assert!("Require".parse::<SslMode>().is_err());
        assert!("verify_full".parse::<SslMode>().is_err());
    }
}
