//! Spotting a connection pooler (PgBouncer, Azure's built-in PgBouncer on port 6432,
//! Odyssey, pgcat …) between datsync and PostgreSQL.
//!
//! datsync needs a session of its own for each connection: the writer lock of a sync is a
//! session advisory lock held on one connection for the whole run, and every session gets
//! `SET statement_timeout` and `SET temp_buffers`. A pooler in *transaction* mode hands each
//! transaction to whichever server connection is free: the lock stays behind on a server
//! connection other clients then use (and that can "take" it again, advisory locks being
//! re-entrant), so two writers could load the same sync. In *session* mode a client keeps
//! its server connection and datsync works as on a direct connection.
//!
//! A pooler answers the startup with a `BackendKeyData` of its own (it must route cancel
//! requests), so the process id it reports is not the server process's
//! `pg_backend_pid()`; PostgreSQL itself always reports its own. On a mismatch datsync
//! refuses, unless `DB_POOLER=session` says the pool keeps sessions.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, DuplexStream, ReadBuf};
use tokio_postgres::Client;
use tokio_postgres::tls::{ChannelBinding, TlsConnect, TlsStream};

/// The variable that says a detected pooler keeps sessions.
pub const POOLER_VARIABLE: &str = "DB_POOLER";

/// What the settings say about a pooler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolerMode {
    /// None expected: a pooler that shows itself is refused.
    None,
    /// A pool in session mode: accepted.
    Session,
}

/// The process id the startup reported (`BackendKeyData`), read back from the client's
/// cancel token: the token writes its cancel request (length, code, process id, key) into
/// an in-memory stream.
pub(crate) async fn reported_pid(client: &Client) -> Option<i32> {
    let (ours, theirs) = tokio::io::duplex(64);
    let token = client.cancel_token();
    let write = token.cancel_query_raw(theirs, PassThrough);
    let read = async {
        let mut ours = ours;
        let mut buf = [0u8; 16];
        ours.read_exact(&mut buf).await.ok().map(|_| buf)
    };
    let (written, read) = tokio::join!(write, read);
    written.ok()?;
    let buf = read?;
    Some(i32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]))
}

/// A "TLS" connector that wraps nothing: the cancel request of a TLS connection (which
/// datsync sets up as direct TLS for tokio-postgres) goes into the in-memory stream as is.
struct PassThrough;

struct Plain(DuplexStream);

impl TlsConnect<DuplexStream> for PassThrough {
    type Stream = Plain;
    type Error = std::io::Error;
    type Future = std::future::Ready<std::io::Result<Plain>>;

    fn connect(self, stream: DuplexStream) -> Self::Future {
        std::future::ready(Ok(Plain(stream)))
    }
}

impl TlsStream for Plain {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for Plain {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Plain {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use crate::pg::{PgSettings, connect};

    /// PostgreSQL itself reports its own process id, over TLS (when the test server has it)
    /// and in plain text.
    #[tokio::test]
    async fn a_direct_connection_reports_its_own_process_id() {
        for mode in ["prefer", "disable"] {
            let settings = PgSettings::from_connection_string(&format!(
                "host=127.0.0.1 port=5432 user=root dbname=postgres sslmode={mode}"
            ))
            .unwrap();
            let client = connect(&settings).await.unwrap();
            let pid: i32 = client
                .query_one("select pg_backend_pid()", &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(super::reported_pid(&client).await, Some(pid), "{mode}");
        }
    }
}
