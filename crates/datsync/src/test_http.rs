//! A real HTTP/1.1 server on loopback for tests of webhooks and hooks (feature
//! `test-support`): plain or HTTPS with a certificate for `localhost` and `127.0.0.1` signed
//! by a certificate authority made for this server alone (so a client trusts it only when
//! told to, through `DATSYNC_CA_FILE` or `SSL_CERT_FILE`). It answers each request with the
//! next status of a script (the last one repeats; [`TestHttpServer::NO_ANSWER`] holds the request unanswered
//! until the server stops, for a client's timeout) and records what it received. It runs on a
//! thread of its own, so synchronous tests and tests of a child process can use it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// One request the server received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// `POST`, `GET`, …
    pub method: String,
    /// The path.
    pub path: String,
    /// The query, if any (without `?`).
    pub query: Option<String>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Whether it came over TLS.
    pub tls: bool,
}

impl RecordedRequest {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The query's pairs, decoded, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_deref().unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A running server; stopped when dropped.
pub struct TestHttpServer {
    addr: SocketAddr,
    ca_pem: Option<String>,
    requests: mpsc::Receiver<RecordedRequest>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestHttpServer {
    /// A status of the script that never answers: the request is recorded, then held open
    /// until the server is dropped (a client's timeout fires first).
    pub const NO_ANSWER: u16 = 0;

    /// A plain HTTP server answering `statuses` in turn (the last repeats; `[]` is 204;
    /// [`TestHttpServer::NO_ANSWER`] never answers).
    pub fn http(statuses: &[u16]) -> std::io::Result<Self> {
        Self::start(statuses, None)
    }

    /// An HTTPS server with a fresh certificate authority.
    pub fn https(statuses: &[u16]) -> std::io::Result<Self> {
        let tls = TestCa::new().map_err(std::io::Error::other)?;
        Self::start(statuses, Some(tls))
    }

    fn start(statuses: &[u16], tls: Option<TestCa>) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tx, requests) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let script = Arc::new(Mutex::new(
            statuses.iter().copied().collect::<VecDeque<_>>(),
        ));
        let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
        let acceptor = tls.map(|t| t.acceptor()).transpose()?;
        let thread = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(serve(listener, acceptor, script, tx, stopped));
        });
        Ok(Self {
            addr,
            ca_pem,
            requests,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path}` or `https://localhost:PORT{path}` (the certificate
    /// names `localhost` and `127.0.0.1`).
    pub fn url(&self, path: &str) -> String {
        match self.ca_pem {
            Some(_) => format!("https://localhost:{}{path}", self.addr.port()),
            None => format!("http://127.0.0.1:{}{path}", self.addr.port()),
        }
    }

    /// The certificate authority of an HTTPS server, as PEM.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Writes the certificate authority to `dir/ca.pem` and returns the path.
    pub fn write_ca(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.ca_pem.as_deref().unwrap_or_default())?;
        Ok(path)
    }

    /// The next request received, waiting at most `wait`.
    pub fn next_request(&self, wait: Duration) -> Option<RecordedRequest> {
        self.requests.recv_timeout(wait).ok()
    }

    /// Every request received so far, without waiting.
    pub fn received(&self) -> Vec<RecordedRequest> {
        self.requests.try_iter().collect()
    }
}

impl Drop for TestHttpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    script: Arc<Mutex<VecDeque<u16>>>,
    tx: mpsc::Sender<RecordedRequest>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut stopped => return,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let (script, tx, acceptor) = (script.clone(), tx.clone(), acceptor.clone());
        tokio::spawn(async move {
            match acceptor {
                Some(acceptor) => {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        connection(TokioIo::new(tls), true, script, tx).await;
                    }
                }
                None => connection(TokioIo::new(tcp), false, script, tx).await,
            }
        });
    }
}

async fn connection<I>(
    io: I,
    tls: bool,
    script: Arc<Mutex<VecDeque<u16>>>,
    tx: mpsc::Sender<RecordedRequest>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (script, tx) = (script.clone(), tx.clone());
        async move {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .unwrap_or_default();
            let _ = tx.send(RecordedRequest {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().map(str::to_owned),
                headers: parts
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_ascii_lowercase(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body,
                tls,
            });
            let status = {
                let mut s = script
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if s.len() > 1 {
                    s.pop_front().unwrap_or(204)
                } else {
                    s.front().copied().unwrap_or(204)
                }
            };
            if status == TestHttpServer::NO_ANSWER {
                std::future::pending::<()>().await;
            }
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() =
                hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
            Ok::<_, Infallible>(response)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await;
}

/// A certificate authority and a server certificate for `localhost` / `127.0.0.1`.
struct TestCa {
    ca_pem: String,
    server_cert: String,
    server_key: String,
}

impl TestCa {
    fn new() -> Result<Self, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "datsync test HTTP CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let mut leaf =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        let key = KeyPair::generate()?;
        let cert = leaf.signed_by(&key, &ca)?;
        Ok(Self {
            ca_pem: ca.pem(),
            server_cert: cert.pem(),
            server_key: key.serialize_pem(),
        })
    }

    fn acceptor(&self) -> std::io::Result<tokio_rustls::TlsAcceptor> {
        let chain = vec![
            CertificateDer::from_pem_slice(self.server_cert.as_bytes())
                .map_err(std::io::Error::other)?,
        ];
        let key = PrivateKeyDer::from_pem_slice(self.server_key.as_bytes())
            .map_err(std::io::Error::other)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(std::io::Error::other)?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}
