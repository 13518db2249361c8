//! PostgreSQL plumbing: connection settings and connect (TLS, timeouts, keepalives),
//! SQLSTATE classification, identifier quoting, and the migrations that create datsync's
//! own tables and the profile's target table.

mod ident;
mod lock;
mod migrate;
mod redact;
mod settings;
mod sqlstate;
mod tls;

pub use ident::{quote_ident, quote_qualified, sql_type};
pub use lock::try_lock_sync;
pub use migrate::{
    BOOKKEEPING_COLUMNS, INIT_LOCK_KEY, InitReport, MIGRATIONS, Migration, SYNC_SEQUENCE,
    check_target, create_target_sql, init_db,
};
pub use redact::Redacted;
pub use settings::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEEPALIVES_IDLE, DEFAULT_PORT, DEFAULT_STATEMENT_TIMEOUT,
    PgSettings, TlsPolicy,
};
pub use sqlstate::*;

use tokio_postgres::Client;

/// `temp_buffers` of every session (set before any temporary table is touched): a chunk's
/// staging table stays in memory instead of spilling (the default is 8 MB).
pub const DEFAULT_TEMP_BUFFERS: &str = "64MB";

/// A PostgreSQL failure, with what datsync was doing. Messages never contain a password.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The connection settings are missing or malformed.
    #[error("database settings: {message}")]
    Config {
        /// What is wrong (passwords redacted).
        message: String,
    },
    /// TLS could not be set up.
    #[error("cannot set up tls: {message}")]
    Tls {
        /// What failed.
        message: String,
    },
    /// The connection could not be made in time.
    #[error("timed out connecting to {target}; check that the server is reachable")]
    ConnectTimeout {
        /// The server (redacted settings).
        target: String,
    },
    /// A statement failed.
    #[error("{context}: {}", server_message(source))]
    Query {
        /// What datsync was doing.
        context: String,
        /// The driver error (SQLSTATE inside when the server sent one).
        source: tokio_postgres::Error,
    },
    /// A table that exists lacks columns datsync needs, or has incompatible types.
    #[error(
        "table {table} is not usable by datsync: {}; fix the table (for example: {}) or choose another table",
        problems.join("; "), fixes.join(" ")
    )]
    IncompatibleTable {
        /// The qualified table name.
        table: String,
        /// One entry per missing or incompatible column or constraint.
        problems: Vec<String>,
        /// Suggested DDL.
        fixes: Vec<String>,
    },
    /// The profile cannot be mapped to a table.
    #[error("profile cannot be loaded into {table}: {message}")]
    Profile {
        /// The qualified table name.
        table: String,
        /// What is wrong.
        message: String,
    },
}

/// The driver error with what the server said: the driver's own `Display` of a server error
/// is only "db error", which would leave `sync_metadata.error_message` without the reason.
fn server_message(e: &tokio_postgres::Error) -> String {
    match (e.as_db_error(), std::error::Error::source(e)) {
        (Some(db), _) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        (None, Some(cause)) => format!("{e}: {cause}"),
        (None, None) => e.to_string(),
    }
}

impl PgError {
    /// Wraps a driver error with context.
    pub fn query(context: impl Into<String>, source: tokio_postgres::Error) -> Self {
        Self::Query {
            context: context.into(),
            source,
        }
    }

    /// Whether retrying later can succeed.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Query { source, .. } => classify(source),
            Self::ConnectTimeout { .. } => ErrorClass::Transient,
            _ => ErrorClass::Fatal,
        }
    }

    /// The SQLSTATE the server sent, if any.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Self::Query { source, .. } => source.code().map(tokio_postgres::error::SqlState::code),
            _ => None,
        }
    }
}

/// Connects, spawns the connection task on the current Tokio runtime, and sets
/// `statement_timeout` and `temp_buffers`.
pub async fn connect(settings: &PgSettings) -> Result<Client, PgError> {
    let target = settings.to_string();
    let deadline = settings
        .config
        .get_connect_timeout()
        .copied()
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
        .saturating_mul(2);
    let connecting = async {
        match settings.tls {
            TlsPolicy::Disabled => {
                let (client, conn) = settings
                    .config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| PgError::query(format!("cannot connect to {target}"), e))?;
                spawn_connection(conn);
                Ok(client)
            }
            TlsPolicy::Verified => {
                let (client, conn) = settings
                    .config
                    .connect(tls::connector()?)
                    .await
                    .map_err(|e| PgError::query(format!("cannot connect to {target}"), e))?;
                spawn_connection(conn);
                Ok(client)
            }
        }
    };
    let client = tokio::time::timeout(deadline, connecting)
        .await
        .map_err(|_| PgError::ConnectTimeout {
            target: target.clone(),
        })??;
    let ms = settings.statement_timeout.as_millis();
    client
        .batch_execute(&format!(
            "SET statement_timeout = {ms}; SET temp_buffers = '{DEFAULT_TEMP_BUFFERS}'"
        ))
        .await
        .map_err(|e| PgError::query("cannot set statement_timeout", e))?;
    Ok(client)
}

fn spawn_connection<S, T>(conn: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "postgresql connection closed with an error");
        }
    });
}
