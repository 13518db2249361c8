//! Connecting the way psql does: private servers (pgtemp) with TLS and certificates the
//! tests make, the same connection strings and environments given to `psql` and to
//! datsync, and both outcomes compared row by row — connected or refused, over TLS or not,
//! as which user, to which port.
//!
//! Each table row says what libpq does (the documented behaviour); the test checks psql
//! against it (so the table and the installed libpq agree) and datsync against psql. Rows
//! where datsync departs from libpq on purpose (the secure default for remote hosts,
//! PostgreSQL 16/17 features that psql 15 lacks) say so and are checked against the table
//! alone.

mod certs;
mod direct;
mod entra;
mod environment;
mod pooler;
mod refusal;
mod sslmodes;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use datsync::{PgBinaries, PgSettings, SearchPaths, TempPostgres, TempPostgresOptions, connect};

pub use certs::Certs;

/// The query both clients run: TLS in use, user, server port (`socket` on a unix socket).
pub const PROBE: &str = "select coalesce((select ssl::text from pg_stat_ssl where pid = pg_backend_pid()), 'false') \
     || ' ' || current_user || ' ' || coalesce(inet_server_port()::text, 'socket')";

/// What a row expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Connected; TLS in use or not.
    Connects { tls: bool },
    /// Refused.
    Refused,
}

/// One row: a connection string (or none: the environment alone) and environment.
#[derive(Debug, Clone)]
pub struct Row {
    /// What the row shows.
    pub name: String,
    /// The connection string (`None`: psql and datsync read only the environment).
    pub conn: Option<String>,
    /// Environment variables (`HOME` is an empty directory unless set).
    pub env: Vec<(String, String)>,
    /// What libpq does.
    pub libpq: Expect,
    /// `Some(reason)` where datsync does something else on purpose, and what it does.
    pub datsync_differs: Option<(&'static str, Expect)>,
    /// The port the connection must reach, when several are possible.
    pub port: Option<u16>,
}

impl Row {
    pub fn new(name: impl Into<String>, conn: impl Into<String>, libpq: Expect) -> Self {
        Self {
            name: name.into(),
            conn: Some(conn.into()),
            env: Vec::new(),
            libpq,
            datsync_differs: None,
            port: None,
        }
    }

    pub fn env_only(name: impl Into<String>, libpq: Expect) -> Self {
        Self {
            conn: None,
            ..Self::new(name, "", libpq)
        }
    }

    #[must_use]
    pub fn env(mut self, k: &str, v: impl Into<String>) -> Self {
        self.env.push((k.to_owned(), v.into()));
        self
    }

    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    #[must_use]
    pub fn differs(mut self, why: &'static str, datsync: Expect) -> Self {
        self.datsync_differs = Some((why, datsync));
        self
    }
}

/// A client's outcome: the probe's answer, or the error.
pub type Outcome = Result<String, String>;

fn matches(expect: Expect, outcome: &Outcome, port: Option<u16>) -> bool {
    match (expect, outcome) {
        (Expect::Refused, Err(_)) => true,
        (Expect::Connects { tls }, Ok(answer)) => {
            let mut words = answer.split_whitespace();
            let ssl = words.next() == Some(if tls { "true" } else { "false" });
            let port_ok = port.is_none_or(|p| words.nth(1) == Some(p.to_string().as_str()));
            ssl && port_ok
        }
        _ => false,
    }
}

/// The server binaries (psql comes from the same installation).
pub fn binaries() -> PgBinaries {
    datsync::find_binaries(&SearchPaths::default()).expect("PostgreSQL server binaries")
}

/// Runs `psql` with exactly `env` (plus `HOME`), never prompting.
pub async fn psql(conn: Option<&str>, env: &HashMap<String, String>, query: &str) -> Outcome {
    let psql = binaries().bindir.join("psql");
    let mut cmd = tokio::process::Command::new(psql);
    cmd.env_clear()
        .env("LC_ALL", "C")
        .envs(env)
        .args(["-X", "-w", "-A", "-t", "-q", "-c", query]);
    if let Some(conn) = conn {
        cmd.arg(conn);
    }
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("psql answers within a minute")
        .expect("psql runs");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Runs the same through datsync: settings resolved as the CLI resolves them.
pub async fn datsync(conn: Option<&str>, env: &HashMap<String, String>, query: &str) -> Outcome {
    let settings = PgSettings::resolve(conn, env).map_err(|e| e.to_string())?;
    let client = connect(&settings).await.map_err(|e| e.to_string())?;
    let rows = client
        .simple_query(query)
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap_or_default())
}

/// The environment of a row: its variables, with `HOME` an empty directory by default.
pub fn row_env(row: &Row, empty_home: &Path) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = row.env.iter().cloned().collect();
    env.entry("HOME".into())
        .or_insert_with(|| empty_home.display().to_string());
    env
}

/// Runs every row through psql and datsync and checks them; returns datsync's outcomes
/// (for message checks). Every disagreement is listed before the test fails.
pub async fn check_rows(rows: &[Row], empty_home: &Path) -> Vec<(Row, Outcome)> {
    let mut problems = Vec::new();
    let mut results = Vec::new();
    for row in rows {
        let env = row_env(row, empty_home);
        let conn = row.conn.as_deref();
        let theirs = psql(conn, &env, PROBE).await;
        let ours = datsync(conn, &env, PROBE).await;
        if !matches(row.libpq, &theirs, row.port) {
            problems.push(format!(
                "{}: psql did not do what libpq documents ({:?}): {theirs:?}",
                row.name, row.libpq
            ));
        }
        match row.datsync_differs {
            None => {
                let same = match (&theirs, &ours) {
                    (Ok(a), Ok(b)) => a == b,
                    (Err(_), Err(_)) => true,
                    _ => false,
                };
                if !same {
                    problems.push(format!(
                        "{}: psql {theirs:?} but datsync {ours:?}",
                        row.name
                    ));
                }
            }
            Some((why, expect)) => {
                if !matches(expect, &ours, row.port) {
                    problems.push(format!(
                        "{}: datsync should {expect:?} ({why}) but {ours:?}",
                        row.name
                    ));
                }
            }
        }
        results.push((row.clone(), ours));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    results
}

/// Starts a private server with these options (blocking work off the runtime).
pub async fn start(options: TempPostgresOptions) -> TempPostgres {
    tokio::task::spawn_blocking(move || TempPostgres::start_with(&options))
        .await
        .unwrap()
        .expect("a private PostgreSQL server starts")
}

/// Stops a server off the runtime.
pub async fn stop(server: TempPostgres) {
    tokio::task::spawn_blocking(move || server.shutdown())
        .await
        .unwrap()
        .unwrap();
}

/// Runs SQL as the superuser over the server's socket.
pub async fn admin(server: &TempPostgres, sql: &str) {
    let (client, conn) = server
        .config()
        .options("-c default_transaction_read_only=off")
        .connect(tokio_postgres::NoTls)
        .await
        .expect("the superuser connects over the socket");
    let task = tokio::spawn(conn);
    client.batch_execute(sql).await.expect(sql);
    drop(client);
    task.await.unwrap().unwrap();
}

/// The roles the tables connect as, and what `pg_hba.conf` asks of each.
pub const HBA: &str = "\
local all all trust
hostssl all sslonly 127.0.0.1/32 trust
host all sslonly 127.0.0.1/32 reject
hostnossl all nossl 127.0.0.1/32 trust
host all nossl 127.0.0.1/32 reject
hostssl all certuser 127.0.0.1/32 cert
host all certuser 127.0.0.1/32 reject
host all pwuser 127.0.0.1/32 scram-sha-256
host all entrauser 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
";

/// The password of `pwuser`.
pub const PW: &str = "pw with spaces:and\\colons";

/// A server with TLS on (the certificate of `certs`, for `localhost`), the roles of
/// [`HBA`], on 127.0.0.1.
pub async fn tls_server(certs: &Certs) -> TempPostgres {
    tls_server_with(certs, &certs.server, &certs.server_key).await
}

/// The same with another certificate and key.
pub async fn tls_server_with(certs: &Certs, cert: &str, key: &str) -> TempPostgres {
    let options = TempPostgresOptions {
        tcp: true,
        hba: Some(HBA.to_owned()),
        settings: [
            ("ssl", "on"),
            ("ssl_cert_file", "server.crt"),
            ("ssl_key_file", "server.key"),
            ("ssl_ca_file", "ca.crt"),
            ("password_encryption", "scram-sha-256"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect(),
        data_files: vec![
            ("server.crt".into(), cert.as_bytes().to_vec()),
            ("server.key".into(), key.as_bytes().to_vec()),
            ("ca.crt".into(), certs.ca.clone().into_bytes()),
        ],
        ..TempPostgresOptions::default()
    };
    let server = start(options).await;
    create_roles(&server).await;
    server
}

/// A server without TLS whose sessions are read-only by default (a standby's look for
/// `target_session_attrs`), on 127.0.0.1.
pub async fn plain_read_only_server() -> TempPostgres {
    let options = TempPostgresOptions {
        tcp: true,
        hba: Some(HBA.to_owned()),
        settings: vec![("default_transaction_read_only".into(), "on".into())],
        ..TempPostgresOptions::default()
    };
    let server = start(options).await;
    create_roles(&server).await;
    server
}

async fn create_roles(server: &TempPostgres) {
    let pw = PW.replace('\'', "''");
    admin(
        server,
        &format!(
            "CREATE ROLE trusted LOGIN; CREATE ROLE sslonly LOGIN; CREATE ROLE nossl LOGIN; \
             CREATE ROLE certuser LOGIN; CREATE ROLE pwuser LOGIN PASSWORD '{pw}'; \
             CREATE ROLE entrauser LOGIN;"
        ),
    )
    .await;
}

/// A port on 127.0.0.1 where nothing listens.
pub fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Writes `contents` to `dir/name` with `mode`.
pub fn file(dir: &Path, name: &str, contents: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, contents).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}
