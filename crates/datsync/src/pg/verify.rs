//! The server certificate check of libpq, on rustls: nothing for `require` without a root
//! certificate, the chain for `verify-ca` (and for any mode once a root certificate is
//! there), the chain and the host name for `verify-full`.
//!
//! The host name is matched as libpq does (`fe-secure-common.c`, `fe-secure-openssl.c`), not
//! as browsers do: the `host` of the connection (never `hostaddr`) against the certificate's
//! subject alternative names of its own kind (DNS names for a name, IP addresses for an
//! address), case-insensitively, `*.` matching one label; when the certificate has no
//! alternative name of that kind, its common name. A self-signed server certificate given
//! as `sslrootcert` is trusted, as OpenSSL trusts it (webpki would call it a CA used as an
//! end entity, or of unknown issuer); a CA-signed leaf given alone is not.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use x509_cert::Certificate;
use x509_cert::der::Decode as _;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

/// How much of the server certificate a TLS connection checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verification {
    /// Encrypted, the certificate not checked (`require` without a root certificate).
    None,
    /// The chain up to a trusted root (`verify-ca`).
    Ca,
    /// The chain and the host name (`verify-full`).
    Full,
}

impl Verification {
    /// How messages name a TLS connection with this check.
    pub fn describe(self) -> &'static str {
        match self {
            Self::None => "tls, certificate not verified",
            Self::Ca => "tls, certificate verified against the root (host name not checked)",
            Self::Full => "tls, certificate and host name verified",
        }
    }
}

/// A host name that the server certificate does not name (libpq's wording).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct NameMismatch(String);

/// The verifier of one connection attempt.
#[derive(Debug)]
pub(crate) struct LibpqVerifier {
    level: Verification,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    roots: Vec<CertificateDer<'static>>,
    host: String,
    provider: Arc<CryptoProvider>,
}

impl LibpqVerifier {
    /// `webpki` checks chains against the roots (`roots` again as DER, for the self-signed
    /// rule); `None` when `level` is [`Verification::None`]. `host` is libpq's `host`.
    pub fn new(
        level: Verification,
        webpki: Option<Arc<WebPkiServerVerifier>>,
        roots: Vec<CertificateDer<'static>>,
        host: String,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        Self {
            level,
            webpki,
            roots,
            host,
            provider,
        }
    }

    fn check_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ));
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, &[], now) {
            // The chain is checked before the name: a name error means the chain is good;
            // the name is checked below, libpq's way.
            Ok(_)
            | Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(()),
            Err(e) if self.roots.iter().any(|r| r.as_ref() == end_entity.as_ref()) => {
                trusted_itself(end_entity, now).map_err(|()| e)
            }
            Err(e) => Err(e),
        }
    }
}

/// Whether a certificate that is itself one of the trusted roots can stand alone, as
/// OpenSSL lets it: it must be self-issued (a leaf signed by a CA that is not trusted does
/// not become trusted by being listed) and within its validity period.
fn trusted_itself(cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), ()> {
    let cert = Certificate::from_der(cert.as_ref()).map_err(|_| ())?;
    if cert.tbs_certificate.issuer != cert.tbs_certificate.subject {
        return Err(());
    }
    let validity = &cert.tbs_certificate.validity;
    let now = now.as_secs();
    let from = validity.not_before.to_unix_duration().as_secs();
    let until = validity.not_after.to_unix_duration().as_secs();
    if (from..=until).contains(&now) {
        Ok(())
    } else {
        Err(())
    }
}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.level >= Verification::Ca {
            self.check_chain(end_entity, intermediates, server_name, now)?;
        }
        if self.level == Verification::Full {
            host_matches(end_entity.as_ref(), &self.host).map_err(|m| {
                rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                    Arc::new(m),
                )))
            })?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An alternative name of a certificate, of the two kinds libpq reads.
#[derive(Debug, PartialEq, Eq)]
enum AltName {
    Dns(Vec<u8>),
    Ip(Vec<u8>),
}

/// The names a certificate presents, as libpq reads them.
#[derive(Debug, Default, PartialEq, Eq)]
struct Names {
    alt: Vec<AltName>,
    common_name: Option<Vec<u8>>,
}

fn names_of(der: &[u8]) -> Result<Names, NameMismatch> {
    let cert = Certificate::from_der(der)
        .map_err(|e| NameMismatch(format!("cannot read the server certificate: {e}")))?;
    let tbs = &cert.tbs_certificate;
    let mut names = Names::default();
    for ext in tbs.extensions.iter().flatten() {
        if ext.extn_id != x509_cert::der::oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME {
            continue;
        }
        let san = SubjectAltName::from_der(ext.extn_value.as_bytes()).map_err(|e| {
            NameMismatch(format!(
                "cannot read the server certificate's alternative names: {e}"
            ))
        })?;
        for name in san.0 {
            match name {
                GeneralName::DnsName(n) => names.alt.push(AltName::Dns(n.as_bytes().to_vec())),
                GeneralName::IpAddress(ip) => names.alt.push(AltName::Ip(ip.as_bytes().to_vec())),
                _ => {}
            }
        }
    }
    names.common_name = tbs
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == x509_cert::der::oid::db::rfc4519::CN)
        .map(|atv| atv.value.value().to_vec());
    Ok(names)
}

/// libpq's `wildcard_certificate_match`: `*.` then the rest, one label only.
fn wildcard_matches(pattern: &str, host: &str) -> bool {
    let Some(suffix) = pattern.strip_prefix('*') else {
        return false;
    };
    if pattern.len() < 3 || !suffix.starts_with('.') || pattern.len() > host.len() {
        return false;
    }
    let split = host.len() - suffix.len();
    host.is_char_boundary(split)
        && host[split..].eq_ignore_ascii_case(suffix)
        && !host[..split].contains('.')
}

fn name_matches(name: &[u8], host: &str) -> Result<bool, NameMismatch> {
    if name.contains(&0) {
        return Err(NameMismatch(
            "SSL certificate's name contains embedded null".into(),
        ));
    }
    let name = String::from_utf8_lossy(name);
    Ok(name.eq_ignore_ascii_case(host) || wildcard_matches(&name, host))
}

fn ip_matches(ip: &[u8], host: Option<IpAddr>) -> Result<bool, NameMismatch> {
    let ours = match (ip.len(), host) {
        (4, Some(IpAddr::V4(a))) => a.octets().to_vec(),
        (16, Some(IpAddr::V6(a))) => a.octets().to_vec(),
        (4 | 16, _) => return Ok(false),
        (n, _) => {
            return Err(NameMismatch(format!(
                "certificate contains IP address with invalid length {n}"
            )));
        }
    };
    Ok(ours == ip)
}

fn shown_ip(ip: &[u8]) -> String {
    match ip.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(ip).unwrap_or_default()).to_string(),
        16 => IpAddr::from(<[u8; 16]>::try_from(ip).unwrap_or_default()).to_string(),
        _ => String::from("?"),
    }
}

/// Whether the certificate `der` names `host`, as libpq's `verify-full` decides.
pub(crate) fn host_matches(der: &[u8], host: &str) -> Result<(), NameMismatch> {
    if host.is_empty() {
        return Err(NameMismatch(
            "host name must be specified for a verified SSL connection".into(),
        ));
    }
    let names = names_of(der)?;
    let host_ip: Option<IpAddr> = host.parse().ok();
    let mut examined: Vec<String> = Vec::new();
    // An alternative name of the host's own kind rules out the common name.
    let check_cn = !names.alt.iter().any(|n| match n {
        AltName::Dns(_) => host_ip.is_none(),
        AltName::Ip(_) => host_ip.is_some(),
    });
    for alt in &names.alt {
        let matched = match alt {
            AltName::Dns(dns) => {
                examined.push(String::from_utf8_lossy(dns).into_owned());
                name_matches(dns, host)?
            }
            AltName::Ip(ip) => {
                examined.push(shown_ip(ip));
                ip_matches(ip, host_ip)?
            }
        };
        if matched {
            return Ok(());
        }
    }
    if let Some(cn) = names.common_name.as_ref().filter(|_| check_cn) {
        examined.push(String::from_utf8_lossy(cn).into_owned());
        if name_matches(cn, host)? {
            return Ok(());
        }
    }
    Err(NameMismatch(match examined.as_slice() {
        [] => "could not get server's host name from server certificate".into(),
        [one] => format!("server certificate for \"{one}\" does not match host name \"{host}\""),
        [first, rest @ ..] => format!(
            "server certificate for \"{first}\" (and {} other name{}) does not match host name \"{host}\"",
            rest.len(),
            if rest.len() == 1 { "" } else { "s" }
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_one_label_only() {
        for (pattern, host, ok) in [
            ("*.example.com", "db.example.com", true),
            ("*.example.com", "DB.Example.COM", true),
            ("*.example.com", "a.db.example.com", false),
            ("*.example.com", "example.com", false),
            ("*.example.com", ".example.com", false),
            ("*example.com", "dbexample.com", false),
            ("db.*.com", "db.example.com", false),
            ("*.", "a.", false),
            ("*", "a", false),
        ] {
            assert_eq!(wildcard_matches(pattern, host), ok, "{pattern} {host}");
        }
    }

    fn cert(sans: &[&str], cn: Option<&str>) -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    /// Alternative names, common name, host, libpq's verdict.
    type Case = (
        &'static [&'static str],
        Option<&'static str>,
        &'static str,
        Result<(), &'static str>,
    );

    #[test]
    fn host_names_match_as_libpq_matches_them() {
        let cases: &[Case] = &[
            (&["localhost"], None, "localhost", Ok(())),
            (&["localhost"], None, "LOCALHOST", Ok(())),
            (
                &["localhost"],
                None,
                "127.0.0.1",
                Err("server certificate for \"localhost\" does not match host name \"127.0.0.1\""),
            ),
            (&["localhost", "127.0.0.1"], None, "127.0.0.1", Ok(())),
            // An IP host with no IP alternative name falls back to the common name, even with
            // DNS names present (libpq's departure from RFC 6125).
            (&["localhost"], Some("127.0.0.1"), "127.0.0.1", Ok(())),
            // A DNS host with DNS alternative names ignores the common name.
            (
                &["a.example.com"],
                Some("db.example.com"),
                "db.example.com",
                Err(
                    "server certificate for \"a.example.com\" does not match host name \"db.example.com\"",
                ),
            ),
            // No alternative names at all: the common name.
            (&[], Some("db.example.com"), "db.example.com", Ok(())),
            (
                &[],
                Some("db.example.com"),
                "other.example.com",
                Err(
                    "server certificate for \"db.example.com\" does not match host name \"other.example.com\"",
                ),
            ),
            (&["*.example.com"], None, "db.example.com", Ok(())),
            (
                &["a", "b", "c"],
                None,
                "d",
                Err(
                    "server certificate for \"a\" (and 2 other names) does not match host name \"d\"",
                ),
            ),
            (&["::1"], None, "::1", Ok(())),
            (
                &[],
                None,
                "h",
                Err("could not get server's host name from server certificate"),
            ),
            (
                &["h"],
                None,
                "",
                Err("host name must be specified for a verified SSL connection"),
            ),
        ];
        for (sans, cn, host, expected) in cases {
            let got = host_matches(&cert(sans, *cn), host).map_err(|e| e.to_string());
            assert_eq!(
                got,
                expected.map_err(str::to_owned),
                "{sans:?} {cn:?} {host}"
            );
        }
    }
}
