//! The handler's HTTP server: HTTP/1.1 on a listener, at most [`ServerLimits::max_connections`]
//! connections at once (more wait in the listen backlog), a deadline for a request's head,
//! and a graceful stop (requests in flight are answered first).
//!
//! It is meant to sit behind the Functions host, which connects to 127.0.0.1:
//! [`check_bind`] refuses any other address unless asked to allow it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};

/// Connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// How long a client may take to send a request's head (method, path, headers).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The most a request's head may hold (hyper's read buffer).
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// What bounds the connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`DEFAULT_HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
        }
    }
}

/// An address the handler will not listen on without being told to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing to listen on {address}: the handler belongs behind the Azure Functions host, \
     which connects to 127.0.0.1; anyone who reaches {address} could start syncs without a \
     function key. Listen on 127.0.0.1 (the default), or pass --allow-non-loopback if a \
     gateway that authenticates callers stands in front"
)]
pub struct BindRefused {
    /// The address asked for.
    pub address: IpAddr,
}

/// `Ok` for a loopback address, or any address when `allow_non_loopback`; the caller warns
/// loudly in the second case.
pub fn check_bind(address: IpAddr, allow_non_loopback: bool) -> Result<(), BindRefused> {
    if address.is_loopback() || allow_non_loopback {
        Ok(())
    } else {
        Err(BindRefused { address })
    }
}

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, lets the
/// requests in flight be answered, and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    limits: ServerLimits,
) -> std::io::Result<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let service = hyper_util::service::TowerToHyperService::new(router);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: give the system a moment.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let connection = http.serve_connection(TokioIo::new(stream), service.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_without_permission() {
        for ok in ["127.0.0.1", "::1", "127.0.0.2"] {
            assert!(check_bind(ok.parse().unwrap(), false).is_ok(), "{ok}");
        }
        for refused in ["0.0.0.0", "::", "10.1.2.3", "192.168.0.1"] {
            let e = check_bind(refused.parse().unwrap(), false).unwrap_err();
            assert!(e.to_string().contains("--allow-non-loopback"), "{e}");
            assert!(check_bind(refused.parse().unwrap(), true).is_ok());
        }
    }
}
