//! A private, throwaway PostgreSQL server for `datsync demo`, the way `pg_tmp` and
//! `pgtemp` make one: `initdb` into a temporary directory, `postgres` listening only on a
//! unix socket in that directory, everything stopped and removed on drop.
//!
//! The demo starts one when no database is configured and none answers on localhost
//! ([`local_server_answers`]). The server binaries are found by [`find_binaries`]
//! (`pg_config --bindir`, `/usr/lib/postgresql/*/bin` newest first, `/usr/pgsql-*/bin`,
//! `PATH`); with none installed the error says what to install.
//!
//! **Root.** `initdb` and `postgres` refuse to run as root. When the process runs as root
//! (CI, containers), both run as the unprivileged `postgres` system user (configurable,
//! [`TempPostgresOptions::run_as_when_root`]) through `setuid`/`setgid` on the child
//! process, and the temporary directory (under `/tmp`, so that user can reach it) is
//! handed to that user. No user is created: without one the error says how to make it.
//!
//! **Lifetime.** [`TempPostgres`] is a guard: dropping it (or [`TempPostgres::shutdown`])
//! asks the server for a fast shutdown (SIGINT), waits a bounded time, kills it if it is
//! still there, and removes the directory. A process killed with SIGKILL cannot run the
//! guard: its server and directory (`datsync-pg-*` under the temp dir) outlive it.
//!
//! **Tests.** Options make servers for connection tests: a TCP listener on 127.0.0.1 at a
//! free port, extra settings (`ssl=on` …), a `pg_hba.conf` of the test's own, and files
//! (certificates, keys) placed in the data directory for the server's user alone.
//!
//! Starting and stopping block (they run `initdb` and wait for the server); from async
//! code call them inside `tokio::task::spawn_blocking`.

mod locate;
mod server;

use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

pub use locate::{PgBinaries, SearchPaths, find_binaries};
pub use server::{
    DEFAULT_START_TIMEOUT, DEFAULT_STOP_TIMEOUT, StopMode, TEMP_DATABASE, TEMP_PORT, TEMP_USER,
    TempPostgres,
};

/// How long [`local_server_answers`] waits for a TCP connection.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// The user `initdb` and `postgres` run as when this process runs as root.
pub const DEFAULT_RUN_AS_WHEN_ROOT: &str = "postgres";

/// How to find and start the throwaway server.
#[derive(Debug, Clone)]
pub struct TempPostgresOptions {
    /// Where to look for `initdb` and `postgres`.
    pub search: SearchPaths,
    /// The system user that runs the server when this process runs as root.
    pub run_as_when_root: String,
    /// The most time to wait for the new server to accept connections.
    pub start_timeout: Duration,
    /// The most time to wait for a fast shutdown before the server is killed.
    pub stop_timeout: Duration,
    /// Also listen on 127.0.0.1, at a free port ([`TempPostgres::port`]); else only the
    /// unix socket, named after [`TEMP_PORT`].
    pub tcp: bool,
    /// Server settings passed as `-c name=value`, after datsync's own (`ssl=on`,
    /// `ssl_cert_file=server.crt` …).
    pub settings: Vec<(String, String)>,
    /// The contents of `pg_hba.conf`; `None` keeps what `initdb -A trust` writes.
    pub hba: Option<String>,
    /// Files written into the data directory before the server starts, owned by the server's
    /// user with mode 0600 (certificates and keys for the `ssl_*_file` settings).
    pub data_files: Vec<(String, Vec<u8>)>,
}

impl Default for TempPostgresOptions {
    fn default() -> Self {
        Self {
            search: SearchPaths::default(),
            run_as_when_root: DEFAULT_RUN_AS_WHEN_ROOT.to_owned(),
            start_timeout: DEFAULT_START_TIMEOUT,
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            tcp: false,
            settings: Vec::new(),
            hba: None,
            data_files: Vec::new(),
        }
    }
}

/// What can go wrong while starting or stopping a throwaway server.
#[derive(Debug, thiserror::Error)]
pub enum PgTempError {
    /// No directory holds both `initdb` and `postgres`.
    #[error(
        "no PostgreSQL server binaries found (looked for initdb and postgres via pg_config, /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin and PATH): install the PostgreSQL server: `apt-get install postgresql` (Debian/Ubuntu), `dnf install postgresql-server` (Fedora/RHEL), `apk add postgresql` (Alpine), `brew install postgresql` (macOS); or point datsync at an existing database with --database-url"
    )]
    NoServerBinaries,
    /// Running as root, and the user to run the server as does not exist.
    #[error(
        "running as root, and PostgreSQL refuses to run as root; there is no `{user}` user to run it as: create one (`useradd --system --user-group {user}`) or run datsync as an ordinary user"
    )]
    NoUnprivilegedUser {
        /// The user looked for.
        user: String,
    },
    /// A file system step failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A program could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `initdb` failed.
    #[error("initdb failed ({status}): {output}")]
    Initdb {
        /// Its exit status.
        status: String,
        /// The end of its output.
        output: String,
    },
    /// The server exited while starting.
    #[error(
        "the throwaway PostgreSQL server exited while starting ({status}); its log ends with: {log_tail}"
    )]
    Exited {
        /// Its exit status.
        status: String,
        /// The end of its log.
        log_tail: String,
    },
    /// The server did not accept connections in time.
    #[error(
        "the throwaway PostgreSQL server did not accept connections within {waited:?}; its log ends with: {log_tail}"
    )]
    StartTimeout {
        /// How long was waited.
        waited: Duration,
        /// The end of its log.
        log_tail: String,
    },
    /// The server could not be signalled or waited for.
    #[error("cannot stop the throwaway PostgreSQL server (pid {pid}): {reason}")]
    Stop {
        /// Its process id.
        pid: u32,
        /// What failed.
        reason: String,
    },
}

/// Whether something accepts TCP connections at `host:port` within
/// [`DEFAULT_PROBE_TIMEOUT`] (any address `host` resolves to). The demo asks this for
/// `127.0.0.1:5432` before starting a throwaway server.
pub fn local_server_answers(host: &str, port: u16) -> bool {
    let Ok(addrs) = (host, port).to_socket_addrs() else {
        return false;
    };
    addrs
        .into_iter()
        .any(|a| TcpStream::connect_timeout(&a, DEFAULT_PROBE_TIMEOUT).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_sees_a_listener_and_not_a_closed_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(local_server_answers("127.0.0.1", port));
        drop(listener);
        assert!(!local_server_answers("127.0.0.1", port));
    }
}
