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

use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, SignatureScheme};

pub use super::verify::Verification;
use super::verify::{LibpqVerifier, NameMismatch};

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

fn setup_err(s: impl Into<String>) -> TlsSetupError {
    TlsSetupError(s.into())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The roots once loaded: the store for chain checks and the DER list for the
/// self-signed rule. `None`: no root certificate (no verification unless required).
struct Roots {
    store: Arc<RootCertStore>,
    der: Vec<CertificateDer<'static>>,
    /// Where they came from, for messages.
    origin: String,
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

fn load_roots(
    root: &RootCerts,
    mode: SslMode,
    implicit: bool,
) -> Result<Option<Roots>, TlsSetupError> {
    let verify = matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull);
    let root = match root {
        RootCerts::Home(path) if implicit && !path.exists() => &RootCerts::System,
        RootCerts::Nowhere if implicit => &RootCerts::System,
        other => other,
    };
    let hint = "either provide the file, use the system's trusted roots with \
                sslrootcert=system, or change sslmode to disable server certificate verification";
    let der: Vec<CertificateDer<'static>> = match root {
        RootCerts::System => {
            // Missing or unreadable system certificates only narrow the store; the Mozilla
            // roots are always there.
            let mut store = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            return Ok(Some(Roots {
                store: Arc::new(store),
                der: Vec::new(),
                origin: "the system's trusted roots".into(),
            }));
        }
        RootCerts::Nowhere if verify => {
            return Err(setup_err(format!(
                "could not get home directory to locate root certificate file; {hint}"
            )));
        }
        RootCerts::Nowhere => return Ok(None),
        RootCerts::File(path) | RootCerts::Home(path) if !path.exists() => {
            if verify {
                return Err(setup_err(format!(
                    "root certificate file \"{}\" does not exist; {hint}",
                    path.display()
                )));
            }
            return Ok(None);
        }
        RootCerts::File(path) | RootCerts::Home(path) => CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| {
                setup_err(format!(
                    "could not read root certificate file \"{}\": {e}",
                    path.display()
                ))
            })?,
    };
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(der.iter().cloned());
    if added == 0 {
        let path = match root {
            RootCerts::File(p) | RootCerts::Home(p) => p.display().to_string(),
            _ => String::new(),
        };
        return Err(setup_err(format!(
            "could not read root certificate file \"{path}\": no certificate in it"
        )));
    }
    let origin = match root {
        RootCerts::Home(p) => format!("the root certificate file \"{}\"", p.display()),
        RootCerts::File(p) => format!("sslrootcert \"{}\"", p.display()),
        _ => String::new(),
    };
    Ok(Some(Roots {
        store: Arc::new(store),
        der,
        origin,
    }))
}

fn load_crls(
    options: &TlsOptions,
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsSetupError> {
    let mut files: Vec<PathBuf> = options
        .crl
        .iter()
        .filter(|p| p.is_file())
        .cloned()
        .collect();
    if let Some(dir) = &options.crl_dir
        && let Ok(entries) = std::fs::read_dir(dir)
    {
        let mut in_dir: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        in_dir.sort();
        files.extend(in_dir);
    }
    let mut crls = Vec::new();
    for file in files {
        let read = CertificateRevocationListDer::pem_file_iter(&file)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| {
                setup_err(format!(
                    "could not read certificate revocation list \"{}\": {e}",
                    file.display()
                ))
            })?;
        crls.extend(read);
    }
    Ok(crls)
}

fn load_client_cert(
    options: &TlsOptions,
    provider: &CryptoProvider,
) -> Result<Option<Arc<CertifiedKey>>, TlsSetupError> {
    let Some(cert_path) = &options.cert else {
        return Ok(None);
    };
    match std::fs::metadata(cert_path) {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(setup_err(format!(
                "could not open certificate file \"{}\": {e}",
                cert_path.display()
            )));
        }
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| {
            setup_err(format!(
                "could not read certificate file \"{}\": {e}",
                cert_path.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(setup_err(format!(
            "could not read certificate file \"{}\": no certificate in it",
            cert_path.display()
        )));
    }
    let Some(key_path) = &options.key else {
        return Err(setup_err(
            "certificate present, but no private key file (sslkey)",
        ));
    };
    let key = load_key(key_path, options.key_password)?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        setup_err(format!(
            "certificate does not match private key file \"{}\": {e}",
            key_path.display()
        ))
    })?;
    Ok(Some(Arc::new(certified)))
}

/// Reads a private key as libpq does: a regular file others cannot read, PEM or DER.
fn load_key(path: &Path, password_given: bool) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            setup_err(format!(
                "certificate present, but not private key file \"{shown}\""
            ))
        } else {
            setup_err(format!("could not stat private key file \"{shown}\": {e}"))
        }
    })?;
    if !meta.is_file() {
        return Err(setup_err(format!(
            "private key file \"{shown}\" is not a regular file"
        )));
    }
    key_permissions(&meta, path)?;
    let bytes = std::fs::read(path)
        .map_err(|e| setup_err(format!("could not load private key file \"{shown}\": {e}")))?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(setup_err(format!(
            "private key file \"{shown}\" is encrypted{}: datsync cannot decrypt keys; \
             store it decrypted (`openssl pkey -in KEY -out KEY.plain`) with mode 0600",
            if password_given {
                " (sslpassword given)"
            } else {
                ""
            }
        )));
    }
    if let Ok(key) = PrivateKeyDer::from_pem_slice(&bytes) {
        return Ok(key);
    }
    PrivateKeyDer::try_from(bytes).map_err(|e| {
        setup_err(format!(
            "could not load private key file \"{shown}\": neither a PEM nor a DER key ({e})"
        ))
    })
}

/// libpq refuses a key the group or others may read: mode 0600 or less, or 0640 or less
/// when root owns it.
#[cfg(unix)]
fn key_permissions(meta: &std::fs::Metadata, path: &Path) -> Result<(), TlsSetupError> {
    use std::os::unix::fs::MetadataExt as _;
    let mode = meta.mode();
    let loose = if meta.uid() == 0 {
        mode & 0o037 != 0
    } else {
        mode & 0o077 != 0
    };
    if loose {
        return Err(setup_err(format!(
            "private key file \"{}\" has group or world access; file must have permissions \
             u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) \
             or less if owned by root",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn key_permissions(_: &std::fs::Metadata, _: &Path) -> Result<(), TlsSetupError> {
    Ok(())
}

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

    #[test]
    fn loose_key_permissions_are_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        let pair = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&key, pair.serialize_pem()).unwrap();
        for (mode, ok) in [(0o600, true), (0o400, true), (0o644, false), (0o660, false)] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
            // Files created by a test belong to whoever runs it: root may keep 0640.
            let root = nix::unistd::geteuid().is_root();
            let expected = ok || (root && mode == 0o640);
            assert_eq!(load_key(&key, false).is_ok(), expected, "{mode:o}");
        }
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(
            &key,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = load_key(&key, true).unwrap_err().to_string();
        assert!(e.contains("encrypted (sslpassword given)"), "{e}");
        std::fs::write(&key, pair.serialize_der()).unwrap();
        assert!(load_key(&key, false).is_ok(), "DER keys load too");
    }

    #[test]
    fn verify_modes_need_a_root_certificate() {
        let missing = RootCerts::File("/nonexistent/root.crt".into());
        let e = load_roots(&missing, SslMode::VerifyCa, false)
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .starts_with("root certificate file \"/nonexistent/root.crt\" does not exist"),
            "{e}"
        );
        assert!(
            load_roots(&missing, SslMode::Require, false)
                .unwrap()
                .is_none()
        );
        assert!(load_roots(&RootCerts::Nowhere, SslMode::VerifyFull, false).is_err());
        assert!(
            load_roots(&RootCerts::System, SslMode::VerifyFull, false)
                .unwrap()
                .is_some()
        );
        // datsync's default verify-full: the system's roots when no file is there, but a
        // file the settings name must exist.
        let home = RootCerts::Home("/nonexistent/.postgresql/root.crt".into());
        assert!(load_roots(&home, SslMode::VerifyFull, false).is_err());
        assert!(
            load_roots(&home, SslMode::VerifyFull, true)
                .unwrap()
                .is_some()
        );
        assert!(
            load_roots(&RootCerts::Nowhere, SslMode::VerifyFull, true)
                .unwrap()
                .is_some()
        );
        assert!(load_roots(&missing, SslMode::VerifyFull, true).is_err());
    }
}
