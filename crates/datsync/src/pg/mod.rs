//! PostgreSQL plumbing: connection settings and connecting the way libpq does (sources and
//! precedence, the `PG*` environment, service and password files, `sslmode` and the other
//! TLS parameters, several hosts, Microsoft Entra tokens), SQLSTATE classification,
//! identifier quoting, and the migrations that create datsync's own tables and the
//! profile's target table.
//!
//! | file | what |
//! |---|---|
//! | `keywords.rs` | libpq's connection keywords, their `PG*` variables, what datsync does with each |
//! | `conninfo.rs` | parsing both forms of connection strings |
//! | `files.rs` | `pg_service.conf` and `~/.pgpass` |
//! | `settings.rs` | sources and precedence: the string, the service, the `PG*` variables |
//! | `resolve.rs` | defaults (the secure `sslmode` default), the host list, libpq's checks |
//! | `tls.rs`, `tls_files.rs`, `verify.rs`, `handshake.rs` | libpq's TLS set-up, its files, its certificate checks and its messages, on rustls |
//! | `connect.rs` | hosts, addresses, the `sslmode` fallbacks, the one-line failure |
//! | `attempt.rs` | one attempt: socket, SSLRequest, TLS or plain startup, `target_session_attrs` |
//! | `entra.rs` | managed-identity tokens as passwords |
//! | `pooler.rs` | refusing a pooler in transaction mode (PgBouncer) |

mod admin;
mod adopt;
mod attempt;
mod connect;
mod conninfo;
mod derived;
mod entra;
mod files;
mod handshake;
mod ident;
mod keywords;
mod lock;
mod migrate;
mod pooler;
mod redact;
mod resolve;
mod settings;
mod sqlstate;
mod tls;
mod tls_files;
mod verify;

pub use admin::{drop_database, empty_target, recreate_database, recreate_schema};
pub use adopt::{
    AdoptOptions, DEFAULT_ADOPT_ATTEMPTS, DEFAULT_ADOPT_LOCK_TIMEOUT, LockHolder, TargetPlan,
    TypeNote, grants_sql, init_sql, lock_holders, plan_target,
};
pub use connect::{AttemptFailure, connect};
pub use conninfo::ConnInfoError;
pub use derived::{DerivedPlan, create_derived_sql, plan_derived};
pub use entra::{
    DEFAULT_IMDS_ENDPOINT, ENTRA_RESOURCE, EntraError, EntraTokens, IMDS_ENDPOINT_VARIABLE,
    REFRESH_MARGIN,
};
pub use files::{DEFAULT_SYSCONFDIR, ServiceError};
pub use ident::{fit_text_sql, quote_ident, quote_list, quote_literal, quote_qualified, sql_type};
pub use lock::{
    backend_pid, lock_source_planning, source_key, sync_lock_holder, try_lock_source,
    try_lock_sync, unlock_source_planning, unlock_sync,
};
pub use migrate::{
    APPEND_KEY, BOOKKEEPING_COLUMNS, INIT_LOCK_KEY, InitReport, MIGRATIONS, Migration,
    SYNC_SEQUENCE, adopt_db, check_target, create_target_sql, init_db, unique_columns,
};
pub use pooler::{POOLER_VARIABLE, PoolerMode};
pub use redact::Redacted;
pub use settings::{
    AUTH_VARIABLE, DEFAULT_APPLICATION_NAME, DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEEPALIVES_IDLE,
    DEFAULT_PORT, DEFAULT_SOCKET_DIRS, DEFAULT_STATEMENT_TIMEOUT, LEGACY_VARIABLES, PgSettings,
    SettingsSource, TargetSessionAttrs, configured_in_env,
};
pub use sqlstate::*;
pub use tls::{SslMode, Verification};

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
    /// No connection could be made: every host, address and TLS mode tried, on one line.
    #[error("{}", connect_message(database, user, *nothing_configured, failures))]
    Connect {
        /// The database asked for.
        database: String,
        /// The user.
        user: String,
        /// Whether no settings were given at all (libpq's defaults were tried).
        nothing_configured: bool,
        /// Every attempt, in order.
        failures: Vec<AttemptFailure>,
    },
    /// A statement failed.
    #[error("{context}: {}", server_message(source))]
    Query {
        /// What datsync was doing.
        context: String,
        /// The driver error (SQLSTATE inside when the server sent one).
        source: tokio_postgres::Error,
    },
    /// A connection pooler stands between datsync and the server, and the settings do not
    /// say that it keeps sessions (see `pooler.rs`).
    #[error(
        "{server} is reached through a connection pooler (the process id it reports is not the \
         server's): datsync needs a session per connection, since the writer lock of a sync is \
         held for the whole run, and a pool in transaction mode (PgBouncer's \
         pool_mode=transaction, Azure's built-in PgBouncer on port 6432) would let two runs load \
         the same sync; connect to PostgreSQL itself (Azure: port 5432), or set DB_POOLER=session \
         if the pool is in session mode"
    )]
    Pooled {
        /// The server as the settings name it.
        server: String,
    },
    /// A table that exists lacks columns datsync needs, or has incompatible types.
    #[error("{}", incompatible_message(table, problems, fixes, *adoptable))]
    IncompatibleTable {
        /// The qualified table name.
        table: String,
        /// One entry per missing or incompatible column or constraint.
        problems: Vec<String>,
        /// The DDL `init-db --adopt` would run (what adds the missing columns and key).
        fixes: Vec<String>,
        /// Whether `init-db --adopt` can fix every problem (only missing columns or key).
        adoptable: bool,
    },
    /// `init-db --adopt` did not get its locks within `lock_timeout`, attempt after attempt.
    #[error(
        "init-db --adopt gave up after {attempts} attempt(s): a lock on {table} or datsync's \
         tables was not granted within lock_timeout ({lock_timeout:?}) each time; {}; nothing \
         was changed. Try again when the table is quieter, or with a longer --lock-timeout",
        holders_message(holders)
    )]
    LockBusy {
        /// The target table.
        table: String,
        /// Attempts made.
        attempts: u32,
        /// The `lock_timeout` of each.
        lock_timeout: std::time::Duration,
        /// Who held locks on the tables after the last attempt.
        holders: Vec<LockHolder>,
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

fn incompatible_message(
    table: &str,
    problems: &[String],
    fixes: &[String],
    adoptable: bool,
) -> String {
    let sql = fixes.join(" ");
    if adoptable {
        format!(
            "table {table} is not usable by datsync yet: {}; `datsync init-db --adopt` adds \
             this without rewriting the table, in one transaction: {sql}",
            problems.join("; ")
        )
    } else if fixes.is_empty() {
        format!(
            "table {table} is not usable by datsync: {}; fix the table (datsync does not \
             convert column types: that rewrites the table) or choose another table",
            problems.join("; ")
        )
    } else {
        format!(
            "table {table} is not usable by datsync: {}; fix the table (datsync does not \
             convert column types: that rewrites the table; the rest `init-db --adopt` would \
             add: {sql}) or choose another table",
            problems.join("; ")
        )
    }
}

fn holders_message(holders: &[LockHolder]) -> String {
    if holders.is_empty() {
        "no session holds a lock on them now (the holder has finished)".to_owned()
    } else {
        let held: Vec<String> = holders.iter().map(ToString::to_string).collect();
        format!("held by: {}", held.join("; "))
    }
}

/// The driver error with what the server said: the driver's own `Display` of a server error
/// is only "db error", which would leave `sync_metadata.error_message` without the reason.
pub(crate) fn server_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => error_chain(e),
    }
}

/// An error and its causes on one line, each said once: the driver's `Display` already
/// includes its cause, which printing the source again would repeat.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    parts.join(": ")
}

/// The one line of a failed connection.
fn connect_message(
    database: &str,
    user: &str,
    nothing_configured: bool,
    failures: &[AttemptFailure],
) -> String {
    let tried: Vec<String> = failures.iter().map(ToString::to_string).collect();
    let tried = if tried.is_empty() {
        "no server to try".to_owned()
    } else {
        tried.join("; then ")
    };
    let head = format!("cannot connect to database \"{database}\" as user \"{user}\": {tried}");
    if nothing_configured {
        format!(
            "no database settings were given (--database-url, DATABASE_URL, \
             POSTGRES_CONNECTION_STRING, DB_HOST or the PG* variables such as PGHOST), so \
             libpq's defaults were tried; {head}"
        )
    } else {
        head
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
            Self::Connect { failures, .. } => {
                if failures.iter().any(|f| f.class == ErrorClass::Transient) {
                    ErrorClass::Transient
                } else {
                    ErrorClass::Fatal
                }
            }
            _ => ErrorClass::Fatal,
        }
    }

    /// Whether the server is away, restarting or short of resources ([`is_outage`]): a
    /// connection that could not be made for a transient reason, or a statement that failed
    /// with an outage SQLSTATE or on a broken connection.
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Query { source, .. } => is_outage(source),
            Self::Connect { .. } => self.class() == ErrorClass::Transient,
            _ => false,
        }
    }

    /// The SQLSTATE the server sent, if any.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Self::Query { source, .. } => source.code().map(tokio_postgres::error::SqlState::code),
            Self::Connect { failures, .. } => failures.iter().find_map(|f| f.sqlstate.as_deref()),
            _ => None,
        }
    }
}
