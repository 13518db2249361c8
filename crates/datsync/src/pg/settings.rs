//! Connection settings from the environment (`ztdwr.md` §6) and their redacted display.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};

use super::{PgError, Redacted};

/// Connect timeout applied when the connection string sets none.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle time before the first TCP keepalive probe.
pub const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(60);
/// `statement_timeout` set on every session.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(600);
/// Port used by the legacy `DB_*` variables when `DB_PORT` is unset.
pub const DEFAULT_PORT: u16 = 5432;

/// How the server certificate is checked when TLS is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPolicy {
    /// No TLS (`sslmode=disable`).
    Disabled,
    /// TLS, the certificate verified against the Mozilla and system roots. Used for
    /// `allow`/`prefer` (plain text only if the server has no TLS), `require`, `verify-ca`
    /// and `verify-full`: datsync always verifies, which is stricter than libpq's `require`
    /// (Azure and other managed servers chain to public roots; a private CA can be added to
    /// the system store).
    Verified,
}

/// Checked connection settings. `Debug` and `Display` never show the password.
#[derive(Clone)]
pub struct PgSettings {
    /// The `tokio_postgres` configuration (timeouts and keepalives applied).
    pub config: tokio_postgres::Config,
    /// TLS policy.
    pub tls: TlsPolicy,
    /// `statement_timeout` for every session.
    pub statement_timeout: Duration,
}

impl PgSettings {
    /// Settings from environment variables given as a map (tests pass their own): first
    /// `DATABASE_URL`, else `POSTGRES_CONNECTION_STRING`, else the legacy `DB_HOST`,
    /// `DB_PORT`, `DB_NAME`, `DB_USER`, `DB_PASSWORD`, `DB_SSL_MODE`.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, PgError> {
        let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        if let Some(url) = get("DATABASE_URL") {
            return Self::from_connection_string(url);
        }
        if let Some(conn) = get("POSTGRES_CONNECTION_STRING") {
            return Self::from_connection_string(conn);
        }
        let Some(host) = get("DB_HOST") else {
            return Err(PgError::Config {
                message: "no database settings: set DATABASE_URL, POSTGRES_CONNECTION_STRING \
                          or DB_HOST (with DB_NAME, DB_USER, DB_PASSWORD)"
                    .into(),
            });
        };
        let port = match get("DB_PORT") {
            None => DEFAULT_PORT,
            Some(p) => p.parse().map_err(|_| PgError::Config {
                message: format!("DB_PORT `{p}` is not a port number"),
            })?,
        };
        let mut config = tokio_postgres::Config::new();
        config.host(host).port(port);
        config.dbname(get("DB_NAME").unwrap_or("postgres"));
        if let Some(user) = get("DB_USER") {
            config.user(user);
        }
        if let Some(password) = env.get("DB_PASSWORD").filter(|p| !p.is_empty()) {
            config.password(password.as_bytes());
        }
        let mode = get("DB_SSL_MODE").unwrap_or(if is_local_host(host) {
            "disable"
        } else {
            "require"
        });
        let (tls, ssl_mode) = tls_policy(mode)?;
        config.ssl_mode(ssl_mode);
        Ok(Self::finish(config, tls))
    }

    /// Settings from a URL (`postgresql://…`) or key-value (`host=… user=…`) string.
    /// `sslmode=verify-ca` / `verify-full` are accepted (see [`TlsPolicy::Verified`]).
    pub fn from_connection_string(conn: &str) -> Result<Self, PgError> {
        let (normalized, verify) = normalize_sslmode(conn);
        let mut config =
            tokio_postgres::Config::from_str(&normalized).map_err(|e| PgError::Config {
                message: format!("invalid connection string {}: {e}", Redacted(conn)),
            })?;
        // No sslmode given and only local hosts: plain text, as the legacy settings do for
        // local hosts (`ztdwr.md` §6); a local server's certificate is rarely one a client
        // can verify.
        let explicit = conn.contains("sslmode");
        let local = config.get_hosts().iter().all(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => is_local_host(name),
            tokio_postgres::config::Host::Unix(_) => true,
        });
        if !explicit && local {
            config.ssl_mode(SslMode::Disable);
        }
        let tls = if verify || config.get_ssl_mode() != SslMode::Disable {
            TlsPolicy::Verified
        } else {
            TlsPolicy::Disabled
        };
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        Ok(Self::finish(config, tls))
    }

    fn finish(mut config: tokio_postgres::Config, tls: TlsPolicy) -> Self {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        config.keepalives(true);
        config.keepalives_idle(DEFAULT_KEEPALIVES_IDLE);
        if config.get_application_name().is_none() {
            config.application_name("datsync");
        }
        Self {
            config,
            tls,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
        }
    }

    /// The same settings against another database (tests create one per case).
    #[must_use]
    pub fn with_dbname(&self, dbname: &str) -> Self {
        let mut s = self.clone();
        s.config.dbname(dbname);
        s
    }
}

/// The policy and `tokio_postgres` mode of a libpq `sslmode` value (`allow` and `prefer`
/// fall back to plain text when the server has no TLS, as in libpq).
fn tls_policy(mode: &str) -> Result<(TlsPolicy, SslMode), PgError> {
    match mode.to_ascii_lowercase().as_str() {
        "disable" => Ok((TlsPolicy::Disabled, SslMode::Disable)),
        "allow" | "prefer" => Ok((TlsPolicy::Verified, SslMode::Prefer)),
        "require" | "verify-ca" | "verify-full" => Ok((TlsPolicy::Verified, SslMode::Require)),
        other => Err(PgError::Config {
            message: format!(
                "unknown ssl mode `{other}`: use disable, prefer, require, verify-ca or verify-full"
            ),
        }),
    }
}

/// Rewrites the libpq-only `sslmode` values that `tokio_postgres` does not parse to
/// `require`, reporting whether one was found.
fn normalize_sslmode(conn: &str) -> (String, bool) {
    let mut out = conn.to_owned();
    let mut verify = false;
    for (from, to) in [
        ("sslmode=verify-full", "sslmode=require"),
        ("sslmode=verify-ca", "sslmode=require"),
        ("sslmode=allow", "sslmode=prefer"),
    ] {
        if out.contains(from) {
            verify |= from.contains("verify");
            out = out.replace(from, to);
        }
    }
    (out, verify)
}

fn is_local_host(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]") || host.starts_with('/')
}

impl fmt::Display for PgSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let port = c.get_ports().first().copied().unwrap_or(DEFAULT_PORT);
        write!(
            f,
            "postgresql://{}{}@{}:{port}/{} (tls {})",
            c.get_user().unwrap_or(""),
            if c.get_password().is_some() {
                ":***"
            } else {
                ""
            },
            hosts.join(","),
            c.get_dbname().unwrap_or(""),
            match self.tls {
                TlsPolicy::Disabled => "off",
                TlsPolicy::Verified => "verified",
            }
        )
    }
}

impl fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgSettings({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn database_url_wins_over_the_others() {
        let s = PgSettings::from_env(&env(&[
            ("DATABASE_URL", "postgresql://a@h1/db1"),
            ("POSTGRES_CONNECTION_STRING", "host=h2 dbname=db2"),
            ("DB_HOST", "h3"),
        ]))
        .unwrap();
        assert_eq!(s.config.get_dbname(), Some("db1"));
        let s = PgSettings::from_env(&env(&[
            (
                "POSTGRES_CONNECTION_STRING",
                "host=h2 dbname=db2 sslmode=disable",
            ),
            ("DB_HOST", "h3"),
        ]))
        .unwrap();
        assert_eq!(s.config.get_dbname(), Some("db2"));
        assert_eq!(s.tls, TlsPolicy::Disabled);
    }

    #[test]
    fn legacy_variables_choose_ssl_by_host() {
        let local = PgSettings::from_env(&env(&[
            ("DB_HOST", "localhost"),
            ("DB_NAME", "d"),
            ("DB_USER", "u"),
            ("DB_PASSWORD", "pw"),
        ]))
        .unwrap();
        assert_eq!(local.tls, TlsPolicy::Disabled);
        assert_eq!(local.config.get_ports(), &[DEFAULT_PORT]);
        let remote = PgSettings::from_env(&env(&[
            ("DB_HOST", "x.postgres.database.azure.com"),
            ("DB_PORT", "6432"),
        ]))
        .unwrap();
        assert_eq!(remote.tls, TlsPolicy::Verified);
        assert_eq!(remote.config.get_ports(), &[6432]);
        let forced =
            PgSettings::from_env(&env(&[("DB_HOST", "db"), ("DB_SSL_MODE", "disable")])).unwrap();
        assert_eq!(forced.tls, TlsPolicy::Disabled);
        assert!(PgSettings::from_env(&env(&[("DB_HOST", "db"), ("DB_PORT", "x")])).is_err());
        assert!(PgSettings::from_env(&env(&[])).is_err());
    }

    #[test]
    fn timeouts_and_keepalives_are_set() {
        let s = PgSettings::from_connection_string("host=h user=u").unwrap();
        assert_eq!(
            s.config.get_connect_timeout(),
            Some(&DEFAULT_CONNECT_TIMEOUT)
        );
        assert!(s.config.get_keepalives());
        assert_eq!(s.statement_timeout, DEFAULT_STATEMENT_TIMEOUT);
        let s = PgSettings::from_connection_string("host=h connect_timeout=5").unwrap();
        assert_eq!(
            s.config.get_connect_timeout(),
            Some(&Duration::from_secs(5))
        );
    }

    #[test]
    fn verify_modes_are_accepted() {
        let s =
            PgSettings::from_connection_string("postgresql://u@h/d?sslmode=verify-full").unwrap();
        assert_eq!(s.tls, TlsPolicy::Verified);
        assert_eq!(s.config.get_ssl_mode(), SslMode::Require);
        let s = PgSettings::from_connection_string("host=h sslmode=prefer").unwrap();
        assert_eq!(
            (s.tls, s.config.get_ssl_mode()),
            (TlsPolicy::Verified, SslMode::Prefer)
        );
        let s = PgSettings::from_env(&HashMap::from([
            ("DB_HOST".to_owned(), "h".to_owned()),
            ("DB_SSL_MODE".to_owned(), "allow".to_owned()),
        ]))
        .unwrap();
        assert_eq!(s.config.get_ssl_mode(), SslMode::Prefer);
        assert!(PgSettings::from_connection_string("host=h sslmode=bogus").is_err());
    }

    #[test]
    fn passwords_never_show() {
        for conn in [
            "postgresql://user:s3cr3t@host:5432/db?sslmode=require",
            "postgres://user:s3cr3t@host/db",
            "host=h user=u password=s3cr3t dbname=d",
            "host=h password = 's3cr3t with space' dbname=d",
            "postgresql://u@h/db?password=s3cr3t&sslmode=require",
            "host=h PASSWORD=s3cr3t",
        ] {
            let shown = Redacted(conn).to_string();
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(shown.contains("***"), "{shown}");
        }
        assert_eq!(
            Redacted("postgresql://user:s3cr3t@host/db").to_string(),
            "postgresql://user:***@host/db"
        );
        let s = PgSettings::from_connection_string("postgresql://user:s3cr3t@host/db").unwrap();
        assert!(!format!("{s} {s:?}").contains("s3cr3t"));
        let legacy =
            PgSettings::from_env(&env(&[("DB_HOST", "h"), ("DB_PASSWORD", "s3cr3t")])).unwrap();
        assert!(!format!("{legacy} {legacy:?}").contains("s3cr3t"));
        let err =
            PgSettings::from_connection_string("postgresql://user:s3cr3t@host/db?sslmode=bogus")
                .unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
    }
}
