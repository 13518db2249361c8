//! Outgoing HTTP(S) requests — alert webhooks ([`crate::alert`]) and post-sync hooks
//! ([`crate::hooks`]) — through `reqwest` with rustls and the ring provider (as the
//! PostgreSQL, SMTP and object-store clients use), HTTP/1.1 only.
//!
//! **Trust.** A server certificate is checked against the Mozilla roots (`webpki-roots`), the
//! system's roots (`rustls-native-certs`, which reads `SSL_CERT_FILE` and `SSL_CERT_DIR`
//! when they are set, as OpenSSL does), and the certificates of `DATSYNC_CA_FILE`
//! (`[http] ca_file`, a PEM file: a private CA). Never turned off.
//!
//! **Plain text.** An `http://` URL is accepted for a loopback host (`localhost`,
//! `127.0.0.0/8`, `::1`: a relay on the same machine) and refused for any other host unless
//! the setting that names it allows it: a webhook or a hook may carry personal data and
//! secrets. Redirects are not followed (a `3xx` is a failure that names the status), so a
//! `https://` URL never ends on plain text and headers never go to another host.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// The variable naming extra root certificates (PEM) for outgoing HTTPS.
pub const CA_FILE_ENV: &str = "DATSYNC_CA_FILE";

/// An outgoing request that cannot be set up or did not succeed. Messages show a URL without
/// its credentials, query or fragment.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The CA file cannot be read or holds no certificate.
    #[error("{CA_FILE_ENV} {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The client cannot be built.
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    /// A URL that is not `http(s)://host…`.
    #[error("{setting}: `{url}` is not an http:// or https:// URL with a host")]
    BadUrl {
        /// The setting that holds it.
        setting: String,
        /// The URL as shown.
        url: String,
    },
    /// A plain `http://` URL to a host that is not loopback, not allowed by its setting.
    #[error(
        "{setting}: `{url}` would send the request in plain text to a host that is not \
         loopback; use https://, or allow it with {allow}"
    )]
    PlainText {
        /// The setting that holds the URL.
        setting: String,
        /// The URL as shown.
        url: String,
        /// The setting that allows it.
        allow: String,
    },
    /// The request failed or the answer was not 2xx.
    #[error("{method} {url}: {reason}")]
    Request {
        /// The method.
        method: String,
        /// The URL as shown.
        url: String,
        /// What failed (the status line, a timeout, a TLS or connection error).
        reason: String,
        /// Whether trying again may help (connection errors, timeouts, 5xx, 429).
        retryable: bool,
    },
}

impl HttpError {
    /// Whether a retry may succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Self::Request {
                retryable: true,
                ..
            }
        )
    }
}

/// Trust settings of outgoing HTTPS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpTls {
    /// Extra root certificates (PEM), `DATSYNC_CA_FILE`.
    pub ca_file: Option<PathBuf>,
}

impl HttpTls {
    /// Reads `DATSYNC_CA_FILE` through `get` (blank is unset).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            ca_file: get(CA_FILE_ENV)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }
}

/// A client for requests that each take at most `timeout` (connect, TLS, request, answer).
pub fn client(timeout: Duration, tls: &HttpTls) -> Result<reqwest::Client, HttpError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    // Unreadable system certificates only narrow the store; the Mozilla roots stay.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = &tls.ca_file {
        for cert in ca_certificates(path)? {
            roots.add(cert).map_err(|e| HttpError::CaFile {
                path: path.clone(),
                reason: format!("not a usable CA certificate: {e}"),
            })?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Client(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("datsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| HttpError::Client(e.to_string()))
}

fn ca_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, HttpError> {
    let fail = |reason: String| HttpError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(format!("cannot read it: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(fail("it holds no certificate".into()));
    }
    Ok(certs)
}

/// Whether the URL's host is loopback: `localhost`, an address in `127.0.0.0/8`, or `::1`.
/// The host as written decides, never what a name resolves to. (URLs of schemes the `url`
/// crate does not know, `smtp://`, keep an address as an opaque host: it is read here.)
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            let bare = d.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
                return ip.is_loopback();
            }
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Parses an outgoing URL and applies the plain-text rule of the module documentation:
/// `setting` names where the URL came from, `allow` the setting that permits plain text to
/// another host, `allowed` its value.
pub fn check_url(
    text: &str,
    setting: &str,
    allow: &str,
    allowed: bool,
) -> Result<url::Url, HttpError> {
    let bad = || HttpError::BadUrl {
        setting: setting.to_owned(),
        url: shown_text(text),
    };
    let url = url::Url::parse(text.trim()).map_err(|_| bad())?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad());
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if allowed || is_loopback(&url) => Ok(url),
        "http" => Err(HttpError::PlainText {
            setting: setting.to_owned(),
            url: shown(&url),
            allow: allow.to_owned(),
        }),
        _ => Err(bad()),
    }
}

/// The URL without credentials, query or fragment, for messages and logs (a webhook's query
/// or user part often holds its token).
pub fn shown(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// [`shown`] of a text that may not parse: its scheme and host at most.
fn shown_text(text: &str) -> String {
    url::Url::parse(text.trim()).map_or_else(|_| "(not a URL)".to_owned(), |u| shown(&u))
}

/// One request: `method` to `url` with `headers` and an optional JSON `body`; `Ok` with
/// the status on any 2xx answer.
pub async fn send(
    client: &reqwest::Client,
    method: &reqwest::Method,
    url: &url::Url,
    headers: &[(String, String)],
    json_body: Option<Vec<u8>>,
) -> Result<u16, HttpError> {
    let body = json_body.map(|b| (Some("application/json"), b));
    request(client, method, url, headers, body).await
}

/// One request without content: `POST`, `PUT` and `PATCH` send an empty body
/// (`Content-Length: 0`, as Python's `requests` does), other methods none. `Ok` with the
/// status on any 2xx answer.
pub async fn send_empty(
    client: &reqwest::Client,
    method: &reqwest::Method,
    url: &url::Url,
    headers: &[(String, String)],
) -> Result<u16, HttpError> {
    let body = matches!(
        *method,
        reqwest::Method::POST | reqwest::Method::PUT | reqwest::Method::PATCH
    )
    .then(|| (None, Vec::new()));
    request(client, method, url, headers, body).await
}

async fn request(
    client: &reqwest::Client,
    method: &reqwest::Method,
    url: &url::Url,
    headers: &[(String, String)],
    body: Option<(Option<&'static str>, Vec<u8>)>,
) -> Result<u16, HttpError> {
    let fail = |reason: String, retryable: bool| HttpError::Request {
        method: method.to_string(),
        url: shown(url),
        reason,
        retryable,
    };
    let mut request = client.request(method.clone(), url.clone());
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if let Some((content_type, body)) = body {
        if let Some(content_type) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        if body.is_empty() {
            // hyper sends no length for an empty body; say it, as `requests` does.
            request = request.header(reqwest::header::CONTENT_LENGTH, "0");
        }
        request = request.body(body);
    }
    let response = request.send().await.map_err(|e| fail(describe(&e), true))?;
    let status = response.status();
    if status.is_success() {
        return Ok(status.as_u16());
    }
    let retryable = status.is_server_error() || status.as_u16() == 429;
    let line = match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    };
    let hint = if status.is_redirection() {
        "; redirects are not followed: give the final URL"
    } else {
        ""
    };
    Err(fail(
        format!("the server answered `{line}`{hint}"),
        retryable,
    ))
}

/// reqwest's error and its causes on one line (the TLS or connection cause is the useful
/// part), never the URL's query.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "no answer in time"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !causes.contains(&text) {
            causes.push(text);
        }
        source = s.source();
    }
    if causes.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {}", causes.join(": "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_decided_by_the_host_as_written() {
        for (u, want) in [
            ("http://localhost:8080/x", true),
            ("http://LOCALHOST/x", true),
            ("http://relay.localhost/x", true),
            ("http://127.0.0.1/x", true),
            ("http://127.9.9.9/x", true),
            ("http://[::1]:9/x", true),
            ("http://10.0.0.1/x", false),
            ("http://hooks.example.com/x", false),
            ("http://localhost.example.com/x", false),
            ("http://[::2]/x", false),
            ("smtp://127.0.0.1:25", true),
            ("smtp://[::1]:25", true),
            ("smtp://10.1.1.1:25", false),
        ] {
            assert_eq!(is_loopback(&url::Url::parse(u).unwrap()), want, "{u}");
        }
    }

    #[test]
    fn plain_text_to_another_host_needs_the_setting() {
        let ok = |u: &str, allowed| check_url(u, "ALERT_WEBHOOK_URL", "X_ALLOW", allowed);
        assert!(ok("https://hooks.example.com/a?token=s3cret", false).is_ok());
        assert!(ok("http://127.0.0.1:9/a", false).is_ok());
        assert!(ok("http://hooks.example.com/a", true).is_ok());
        let e = ok("http://user:pw@hooks.example.com/a?token=s3cret", false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ALERT_WEBHOOK_URL")
                && e.contains("X_ALLOW")
                && e.contains("http://hooks.example.com/a")
                && !e.contains("s3cret")
                && !e.contains("pw"),
            "{e}"
        );
        for bad in ["ftp://h/x", "not a url", "https://", "file:///etc/passwd"] {
            let e = ok(bad, true).unwrap_err();
            assert!(matches!(e, HttpError::BadUrl { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn a_ca_file_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let missing = dir.path().join("missing.pem");
        for path in [empty, missing] {
            let tls = HttpTls {
                ca_file: Some(path.clone()),
            };
            let e = client(Duration::from_secs(1), &tls)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(CA_FILE_ENV) && e.contains(&path.display().to_string()),
                "{e}"
            );
        }
        assert!(client(Duration::from_secs(1), &HttpTls::default()).is_ok());
    }
}
