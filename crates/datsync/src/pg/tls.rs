//! The rustls connector: ring crypto, Mozilla roots plus the system store.

use std::sync::Arc;

use tokio_postgres_rustls::MakeRustlsConnect;

use super::PgError;

/// Builds a connector that verifies the server certificate and host name.
pub(super) fn connector() -> Result<MakeRustlsConnect, PgError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    // Missing or unreadable system certificates only narrow the trust store.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Tls {
            message: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_connector_builds() {
        assert!(super::connector().is_ok());
    }
}
