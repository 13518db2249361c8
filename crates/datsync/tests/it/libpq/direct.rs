//! `sslnegotiation=direct` (PostgreSQL 17): the TLS handshake comes first, with ALPN
//! `postgresql`, and the certificate is checked as the `sslmode` says. psql 15 does not
//! know the option, so a fake server that speaks TLS at once stands in for PostgreSQL 17;
//! PostgreSQL 15 itself refuses it.

use std::sync::Arc;

use datsync::{PgSettings, connect};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{Certs, file, stop, tls_server};

/// Accepts one connection: TLS at once, then answers the startup message with an error
/// that names the negotiated ALPN protocol.
async fn direct_server(certs: &Certs) -> (u16, tokio::task::JoinHandle<Option<Vec<u8>>>) {
    let chain = vec![CertificateDer::from_pem_slice(certs.server.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(certs.server_key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.ok()?;
        let mut tls = acceptor.accept(tcp).await.ok()?;
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let len = tls.read_u32().await.ok()? as usize;
        let mut startup = vec![0; len - 4];
        tls.read_exact(&mut startup).await.ok()?;
        let text = format!(
            "direct TLS with ALPN {}",
            String::from_utf8_lossy(alpn.as_deref().unwrap_or(b"none"))
        );
        let mut body = format!("SFATAL\0C28000\0M{text}\0\0").into_bytes();
        let mut msg = vec![b'E'];
        msg.extend_from_slice(&(u32::try_from(body.len()).unwrap() + 4).to_be_bytes());
        msg.append(&mut body);
        tls.write_all(&msg).await.ok()?;
        tls.shutdown().await.ok()?;
        Some(startup)
    });
    (port, task)
}

#[tokio::test]
async fn direct_negotiation_starts_with_a_verified_handshake() {
    let certs = Certs::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = file(dir.path(), "ca.crt", &certs.ca, 0o644);
    let env =
        std::collections::HashMap::from([("HOME".to_owned(), dir.path().display().to_string())]);

    let (port, server) = direct_server(&certs).await;
    let conn = format!(
        "host=localhost hostaddr=127.0.0.1 port={port} user=u dbname=d sslmode=verify-full \
         sslnegotiation=direct sslrootcert={}",
        ca.display()
    );
    let e = connect(&PgSettings::resolve(Some(&conn), &env).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tls, certificate and host name verified): direct TLS with ALPN postgresql"),
        "{e}"
    );
    let startup = server.await.unwrap().expect("a startup message over TLS");
    assert!(String::from_utf8_lossy(&startup).contains("user\0u\0"));

    // The certificate is checked before anything is sent.
    let (port, server) = direct_server(&certs).await;
    let conn = format!(
        "host=127.0.0.1 port={port} user=u dbname=d sslmode=verify-full sslnegotiation=direct \
         sslrootcert={}",
        ca.display()
    );
    let e = connect(&PgSettings::resolve(Some(&conn), &env).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("does not match host name \"127.0.0.1\""), "{e}");
    assert!(server.await.unwrap().is_none(), "no startup message");

    // PostgreSQL 15 does not speak it: refused, and the message says where.
    let pg = tls_server(&certs).await;
    let conn = format!(
        "host=127.0.0.1 port={} user=trusted dbname=postgres sslmode=require sslnegotiation=direct",
        pg.port()
    );
    let e = connect(&PgSettings::resolve(Some(&conn), &env).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sslmode=require, tls, certificate not verified)"),
        "{e}"
    );
    assert!(
        e.ends_with("(sslnegotiation=direct needs PostgreSQL 17 or later)"),
        "{e}"
    );
    stop(pg).await;
}
