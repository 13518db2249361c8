//! Connection settings: where they come from, and what they mean — libpq's meaning.
//!
//! **Sources**, the first that is set wins: `--database-url` (a flag), `DATABASE_URL`,
//! `POSTGRES_CONNECTION_STRING`, the legacy `DB_HOST` (with `DB_PORT`, `DB_NAME`, `DB_USER`,
//! `DB_PASSWORD`, `DB_SSL_MODE`; `ztdwr.md` §6), else the libpq environment alone. Whatever
//! the source, the parameters it leaves unset are filled as libpq fills them: from the
//! service (`service=` or `PGSERVICE`, [`super::files`]), then from the `PG*` variables
//! ([`super::keywords`]), then from libpq's defaults (the local socket directory, port
//! 5432, the operating-system user, a database named after the user). With nothing set at
//! all, that is where psql would connect too.
//!
//! **TLS.** An explicit `sslmode` (in the string, the service, `PGSSLMODE` or `DB_SSL_MODE`)
//! means exactly what it means in libpq. An *unspecified* one is where datsync departs from
//! libpq's `prefer`: `verify-full` for every host that is not loopback or a unix socket
//! (the system's roots unless `sslrootcert` or `~/.postgresql/root.crt` names others), and
//! `prefer` for loopback and sockets. So a server that refuses TLS, or shows a certificate
//! for another name, never receives a password unless the settings say so.
//!
//! **Datsync's own defaults** (`ztdwr.md` §6): `connect_timeout` 30 s per address when
//! unset (`0` waits forever, as in libpq), TCP keepalives after 60 s idle,
//! `statement_timeout` 10 min, `application_name=datsync` unless `application_name`,
//! `PGAPPNAME` or `fallback_application_name` say otherwise.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::PgError;
#[cfg(test)]
use super::Redacted;
use super::conninfo::{self, Params};
use super::entra::{EntraError, EntraTokens};
use super::files;
use super::keywords::{DESTINATION_VARIABLES, KEYWORDS, Support, keyword};
use super::pooler::{POOLER_VARIABLE, PoolerMode};
use super::resolve::Resolver;
#[cfg(test)]
use super::tls::{Negotiation, RootCerts, TlsVersion};
use super::tls::{SslMode, TlsOptions};

/// Connect timeout per address when the settings give none.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle time before the first TCP keepalive probe when `keepalives_idle` is unset.
pub const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(60);
/// `statement_timeout` set on every session.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(600);
/// The port when none is given (libpq's `DEF_PGPORT`).
pub const DEFAULT_PORT: u16 = 5432;
/// `application_name` when none is given.
pub const DEFAULT_APPLICATION_NAME: &str = "datsync";
/// The socket directories tried as libpq's default host, the first that exists
/// (Debian's libpq uses the first, upstream's the second).
pub const DEFAULT_SOCKET_DIRS: &[&str] = &["/var/run/postgresql", "/tmp"];
/// The legacy variables; `DB_HOST` selects them.
pub const LEGACY_VARIABLES: &[&str] = &[
    "DB_HOST",
    "DB_PORT",
    "DB_NAME",
    "DB_USER",
    "DB_PASSWORD",
    "DB_SSL_MODE",
];
/// The variable that selects how the password is obtained (`password` or `entra`).
pub const AUTH_VARIABLE: &str = "DB_AUTH";

/// Where the settings came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingsSource {
    /// The `--database-url` flag.
    Flag,
    /// `DATABASE_URL`.
    DatabaseUrl,
    /// `POSTGRES_CONNECTION_STRING`.
    PostgresConnectionString,
    /// The legacy `DB_*` variables.
    Legacy,
    /// The libpq environment (`PGHOST`, `PGSERVICE` …) alone.
    LibpqEnvironment,
    /// Nothing: libpq's defaults.
    Nothing,
    /// A connection string given by the program (tests, the demo).
    String,
}

impl SettingsSource {
    fn name(self) -> &'static str {
        match self {
            Self::Flag => "--database-url",
            Self::DatabaseUrl => "DATABASE_URL",
            Self::PostgresConnectionString => "POSTGRES_CONNECTION_STRING",
            Self::Legacy => "the DB_* variables",
            Self::LibpqEnvironment => "the PG* variables",
            Self::Nothing => "libpq's defaults",
            Self::String => "the connection string",
        }
    }
}

/// What kind of server address a host entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Address {
    /// A name to resolve.
    Name(String),
    /// An IP address (`hostaddr`, or a host written as an address).
    Ip(IpAddr),
    /// A unix socket directory.
    Socket(PathBuf),
}

/// Why a host has its `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ModeOrigin {
    /// Given in the settings.
    Given,
    /// Unspecified; the host is loopback or a socket.
    DefaultLocal,
    /// Unspecified; the host is neither.
    DefaultRemote,
}

/// One server to try.
#[derive(Debug, Clone)]
pub(crate) struct HostEntry {
    /// libpq's `host` (a name, an address or a socket directory; empty with `hostaddr` alone).
    pub host: String,
    /// Where to connect.
    pub address: Address,
    /// The port.
    pub port: u16,
    /// The effective `sslmode`.
    pub sslmode: SslMode,
    /// Why.
    pub mode_origin: ModeOrigin,
}

impl HostEntry {
    /// `host:port` as messages show it (`[::1]:5432`, `/var/run/postgresql:5432`), with
    /// `(hostaddr …)` when a `hostaddr` other than the host is used.
    pub fn shown(&self) -> String {
        match self.shown_parts() {
            (server, Some(addr)) => format!("{server} (hostaddr {addr})"),
            (server, None) => server,
        }
    }

    /// `host:port`, and the `hostaddr` when it is not the host itself.
    pub fn shown_parts(&self) -> (String, Option<String>) {
        let host = match (&self.address, self.host.is_empty()) {
            (Address::Ip(ip), true) => ip.to_string(),
            _ => self.host.clone(),
        };
        let shown_host = if host.contains(':') && !host.starts_with('/') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let server = format!("{shown_host}:{}", self.port);
        match &self.address {
            Address::Ip(ip) if host != ip.to_string() => (server, Some(ip.to_string())),
            _ => (server, None),
        }
    }
}

/// libpq's `target_session_attrs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSessionAttrs {
    /// Any server.
    Any,
    /// A server whose sessions are read-write.
    ReadWrite,
    /// A server whose sessions are read-only.
    ReadOnly,
    /// A server not in recovery.
    Primary,
    /// A hot standby.
    Standby,
    /// A hot standby, else any server.
    PreferStandby,
}

/// How the password is obtained.
#[derive(Clone)]
pub(crate) enum Auth {
    /// Given (or from the password file at each connection).
    Password,
    /// A Microsoft Entra access token from the managed identity (`DB_AUTH=entra`).
    Entra(std::sync::Arc<EntraTokens>),
}

/// TCP keepalive settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Keepalives {
    pub idle: Duration,
    pub interval: Option<Duration>,
    pub count: Option<u32>,
}

/// Checked connection settings. `Debug` and `Display` never show a password.
#[derive(Clone)]
pub struct PgSettings {
    pub(crate) source: SettingsSource,
    pub(crate) hosts: Vec<HostEntry>,
    pub(crate) user: String,
    pub(crate) dbname: String,
    pub(crate) password: Option<String>,
    pub(crate) passfile: Option<PathBuf>,
    pub(crate) auth: Auth,
    pub(crate) options: Option<String>,
    pub(crate) application_name: String,
    pub(crate) channel_binding: tokio_postgres::config::ChannelBinding,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) keepalives: Option<Keepalives>,
    pub(crate) tcp_user_timeout: Option<Duration>,
    pub(crate) target: TargetSessionAttrs,
    pub(crate) load_balance: bool,
    pub(crate) requirepeer: Option<String>,
    pub(crate) tls: TlsOptions,
    pub(crate) pooler: PoolerMode,
    /// `statement_timeout` for every session.
    pub statement_timeout: Duration,
}

/// Reads the environment as libpq does: unset and empty are the same.
struct Env<'a>(&'a HashMap<String, String>);

impl Env<'_> {
    fn var(&self, k: &str) -> Option<String> {
        self.0.get(k).filter(|v| !v.is_empty()).cloned()
    }

    fn trimmed(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// libpq's home directory: `HOME`, else the user's entry in the password database.
    fn home(&self) -> Option<PathBuf> {
        self.var("HOME").map(PathBuf::from).or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .map(|u| u.dir)
        })
    }
}

fn config_err(source: SettingsSource, message: impl fmt::Display) -> PgError {
    PgError::Config {
        message: format!("{} (from {})", message, source.name()),
    }
}

impl PgSettings {
    /// Settings as the database commands read them: `database_url` (the `--database-url`
    /// flag) if given, else `DATABASE_URL`, `POSTGRES_CONNECTION_STRING`, the legacy `DB_*`
    /// variables, the libpq environment; unset parameters filled from the service, the
    /// `PG*` variables and libpq's defaults. `env` is the process environment (tests pass
    /// their own).
    pub fn resolve(
        database_url: Option<&str>,
        env: &HashMap<String, String>,
    ) -> Result<Self, PgError> {
        let e = Env(env);
        let (source, params) = if let Some(url) = database_url {
            (SettingsSource::Flag, parse(url, SettingsSource::Flag)?)
        } else if let Some(url) = e.trimmed("DATABASE_URL") {
            let s = SettingsSource::DatabaseUrl;
            (s, parse(url, s)?)
        } else if let Some(conn) = e.trimmed("POSTGRES_CONNECTION_STRING") {
            let s = SettingsSource::PostgresConnectionString;
            (s, parse(conn, s)?)
        } else if e.trimmed("DB_HOST").is_some() {
            (SettingsSource::Legacy, legacy_params(&e)?)
        } else if DESTINATION_VARIABLES.iter().any(|v| e.var(v).is_some()) {
            (SettingsSource::LibpqEnvironment, Params::default())
        } else {
            (SettingsSource::Nothing, Params::default())
        };
        let mut settings = build(params, source, &e)?;
        settings.auth = auth_from_env(&e, &settings)?;
        settings.pooler = pooler_from_env(&e)?;
        Ok(settings)
    }

    /// Settings from the environment alone (`resolve(None, env)`).
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, PgError> {
        Self::resolve(None, env)
    }

    /// Settings from exactly this connection string (URL or key-value): no environment
    /// variable and no file of the home directory fills what it leaves out (libpq's
    /// built-in defaults still do).
    pub fn from_connection_string(conn: &str) -> Result<Self, PgError> {
        let params = parse(conn, SettingsSource::String)?;
        let empty = HashMap::new();
        // No HOME: no ~/.pgpass, ~/.pg_service.conf or ~/.postgresql either.
        build_with_home(params, SettingsSource::String, &Env(&empty), None)
    }

    /// The same settings against another database (tests create one per case).
    #[must_use]
    pub fn with_dbname(&self, dbname: &str) -> Self {
        let mut s = self.clone();
        dbname.clone_into(&mut s.dbname);
        s
    }

    /// The database.
    pub fn dbname(&self) -> &str {
        &self.dbname
    }

    /// The user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Where the settings came from.
    pub fn source(&self) -> SettingsSource {
        self.source
    }
}

/// Whether the environment holds database settings of any source (so that the demo uses
/// them rather than a server of its own).
pub fn configured_in_env<S: std::hash::BuildHasher>(env: &HashMap<String, String, S>) -> bool {
    let set = |k: &str| env.get(k).is_some_and(|v| !v.is_empty());
    let set_trimmed = |k: &str| env.get(k).is_some_and(|v| !v.trim().is_empty());
    ["DATABASE_URL", "POSTGRES_CONNECTION_STRING", "DB_HOST"]
        .iter()
        .any(|k| set_trimmed(k))
        || DESTINATION_VARIABLES.iter().any(|v| set(v))
}

/// Parses a connection string; the error names the problem and its position, never the
/// string (a fragment could be a password).
fn parse(conn: &str, source: SettingsSource) -> Result<Params, PgError> {
    conninfo::parse(conn)
        .map_err(|e| config_err(source, format_args!("invalid connection string: {e}")))
}

fn set(params: &mut Params, name: &str, value: &str) {
    if let Some(k) = keyword(name) {
        params.set(k, value);
    }
}

/// The legacy variables as libpq parameters (`DB_PASSWORD` untrimmed: spaces may belong to
/// it).
fn legacy_params(e: &Env<'_>) -> Result<Params, PgError> {
    let source = SettingsSource::Legacy;
    let mut p = Params::default();
    for (var, name) in [
        ("DB_HOST", "host"),
        ("DB_NAME", "dbname"),
        ("DB_USER", "user"),
    ] {
        if let Some(v) = e.trimmed(var) {
            set(&mut p, name, v);
        }
    }
    if let Some(port) = e.trimmed("DB_PORT") {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(config_err(
                source,
                format_args!("DB_PORT `{port}` is not a port number"),
            ));
        }
        set(&mut p, "port", port);
    }
    if let Some(pw) = e.var("DB_PASSWORD") {
        set(&mut p, "password", &pw);
    }
    if let Some(mode) = e.trimmed("DB_SSL_MODE") {
        // The legacy deployment accepted any case.
        set(&mut p, "sslmode", &mode.to_ascii_lowercase());
    }
    Ok(p)
}

fn build(params: Params, source: SettingsSource, e: &Env<'_>) -> Result<PgSettings, PgError> {
    build_with_home(params, source, e, e.home().as_deref())
}

/// Fills `params` from the service, the environment and the defaults, and checks them.
fn build_with_home(
    mut params: Params,
    source: SettingsSource,
    e: &Env<'_>,
    home: Option<&Path>,
) -> Result<PgSettings, PgError> {
    let err = |m: String| config_err(source, m);
    // A service fills what the string left unset; PGSERVICE counts as the string's.
    let service = params
        .get("service")
        .map(str::to_owned)
        .or_else(|| e.var("PGSERVICE"));
    if let Some(service) = service {
        let var = |k: &str| e.var(k);
        files::apply_service(&mut params, &service, home, &var).map_err(|s| err(s.to_string()))?;
    }
    for k in KEYWORDS {
        if let (Some(var), None) = (k.env, params.get(k.name))
            && let Some(v) = e.var(var)
        {
            params.set(k, v);
        }
    }
    if params.get("sslmode").is_none() && e.var("PGREQUIRESSL").is_some_and(|v| v.starts_with('1'))
    {
        set(&mut params, "sslmode", "require");
    }
    if source == SettingsSource::Legacy && params.get("dbname").is_none() {
        set(&mut params, "dbname", "postgres");
    }
    for (name, value) in params.iter() {
        match keyword(name).map(|k| k.support) {
            Some(Support::Refused(why)) => {
                return Err(err(format!(
                    "connection option \"{name}\" is not supported: {why}"
                )));
            }
            Some(Support::Ignored(why)) => {
                tracing::debug!(option = name, value, why, "connection option ignored");
            }
            _ => {}
        }
    }
    Resolver {
        p: &params,
        home,
        err: &err,
    }
    .settings(source)
}

/// `DB_POOLER`: unset or `none` (a pooler is refused), `session` (a pool that keeps a
/// server connection per client is fine).
fn pooler_from_env(e: &Env<'_>) -> Result<PoolerMode, PgError> {
    match e
        .trimmed(POOLER_VARIABLE)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("none") => Ok(PoolerMode::None),
        Some("session") => Ok(PoolerMode::Session),
        Some("transaction" | "statement") => Err(PgError::Config {
            message: format!(
                "{POOLER_VARIABLE}=transaction is not supported: datsync holds its writer lock \
                 for a whole sync on one session; use a pool in session mode or connect to \
                 PostgreSQL itself"
            ),
        }),
        Some(other) => Err(PgError::Config {
            message: format!(
                "{POOLER_VARIABLE}=`{other}` is not known: use `session` (or leave it unset)"
            ),
        }),
    }
}

/// `DB_AUTH`: `password` (the default) or `entra`.
fn auth_from_env(e: &Env<'_>, settings: &PgSettings) -> Result<Auth, PgError> {
    let err = |m: String| PgError::Config { message: m };
    match e
        .trimmed(AUTH_VARIABLE)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("password") => Ok(Auth::Password),
        Some("entra" | "entra-id" | "azure-ad") => {
            if settings.password.is_some() {
                return Err(err(format!(
                    "{AUTH_VARIABLE}=entra takes the password from the managed identity, and a \
                     password is given too ({}, PGPASSWORD or DB_PASSWORD): remove one",
                    settings.source.name()
                )));
            }
            let tokens = EntraTokens::from_env(e.0).map_err(|x: EntraError| err(x.to_string()))?;
            Ok(Auth::Entra(std::sync::Arc::new(tokens)))
        }
        Some(other) => Err(err(format!(
            "{AUTH_VARIABLE}=`{other}` is not known: use `password` (the default) or `entra`"
        ))),
    }
}

impl fmt::Display for PgSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<String> = self.hosts.iter().map(HostEntry::shown).collect();
        write!(
            f,
            "postgresql://{}{}@{}/{} ({})",
            self.user,
            if self.password.is_some() { ":***" } else { "" },
            hosts.join(","),
            self.dbname,
            self.describe_tls()
        )
    }
}

impl PgSettings {
    /// The `sslmode` of every host in words: `sslmode=verify-full`, or per host when they
    /// differ, with "(the default …)" when it was not given.
    pub fn describe_tls(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for h in &self.hosts {
            let text = describe_mode(h);
            if !parts.contains(&text) {
                parts.push(text);
            }
        }
        if parts.len() == 1 {
            return parts.remove(0);
        }
        self.hosts
            .iter()
            .map(|h| format!("{}: {}", h.shown(), describe_mode(h)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `sslmode=…` of one host, saying when it is the default.
pub(crate) fn describe_mode(h: &HostEntry) -> String {
    match h.mode_origin {
        ModeOrigin::Given => format!("sslmode={}", h.sslmode.as_str()),
        ModeOrigin::DefaultLocal => {
            format!(
                "sslmode={} (the default for a local host)",
                h.sslmode.as_str()
            )
        }
        ModeOrigin::DefaultRemote => {
            format!(
                "sslmode={} (the default for a remote host)",
                h.sslmode.as_str()
            )
        }
    }
}

impl fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgSettings({self})")
    }
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
