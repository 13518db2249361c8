//! Filled-in connection parameters → checked settings, with libpq's checks and messages
//! (`connectOptions2` in `fe-connect.c`): the host list, the TLS options, the per-host
//! `sslmode` (explicit, or datsync's secure default), timeouts and keepalives.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use super::PgError;
use super::conninfo::Params;
use super::pooler::PoolerMode;
use super::settings::{
    Address, Auth, DEFAULT_APPLICATION_NAME, DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEEPALIVES_IDLE,
    DEFAULT_PORT, DEFAULT_SOCKET_DIRS, DEFAULT_STATEMENT_TIMEOUT, HostEntry, Keepalives,
    ModeOrigin, PgSettings, SettingsSource, TargetSessionAttrs,
};
use super::tls::{CertMode, Negotiation, RootCerts, SslMode, TlsOptions, TlsVersion};

/// Turns filled-in parameters into settings, with libpq's checks and messages.
pub(crate) struct Resolver<'a> {
    pub p: &'a Params,
    pub home: Option<&'a Path>,
    pub err: &'a dyn Fn(String) -> PgError,
}

impl Resolver<'_> {
    fn get(&self, k: &str) -> Option<&str> {
        self.p.get(k).filter(|v| !v.is_empty())
    }

    fn invalid(&self, k: &str, v: &str) -> PgError {
        (self.err)(format!("invalid {k} value: \"{v}\""))
    }

    fn int(&self, k: &str) -> Result<Option<i64>, PgError> {
        let Some(v) = self.get(k) else {
            return Ok(None);
        };
        v.trim_end().parse::<i64>().map(Some).map_err(|_| {
            (self.err)(format!(
                "invalid integer value \"{v}\" for connection option \"{k}\""
            ))
        })
    }

    fn secs(&self, k: &str) -> Result<Option<Duration>, PgError> {
        Ok(self
            .int(k)?
            .map(|n| Duration::from_secs(u64::try_from(n.max(0)).unwrap_or(0))))
    }

    fn home_file(&self, name: &str) -> Option<PathBuf> {
        self.home.map(|h| h.join(".postgresql").join(name))
    }

    fn path(&self, k: &str) -> Option<PathBuf> {
        self.get(k).map(PathBuf::from)
    }

    pub fn settings(&self, source: SettingsSource) -> Result<PgSettings, PgError> {
        let user = match self.get("user") {
            Some(u) => u.to_owned(),
            None => os_user().ok_or_else(|| {
                (self.err)("could not look up the local user name; set user or PGUSER".into())
            })?,
        };
        let dbname = self.get("dbname").unwrap_or(&user).to_owned();
        let explicit_mode = match self.get("sslmode") {
            Some(m) => Some(SslMode::from_str(m).map_err(|e| (self.err)(e))?),
            // PostgreSQL 16: sslrootcert=system makes verify-full the default.
            None if self.get("sslrootcert") == Some("system") => Some(SslMode::VerifyFull),
            None => None,
        };
        let tls = self.tls(explicit_mode)?;
        let hosts = self.hosts(explicit_mode)?;
        if tls.negotiation == Negotiation::Direct
            && let Some(h) = hosts
                .iter()
                .find(|h| !h.sslmode.requires_tls() && !matches!(h.address, Address::Socket(_)))
        {
            return Err((self.err)(format!(
                "weak sslmode \"{}\" may not be used with sslnegotiation=direct (use \"require\", \"verify-ca\", or \"verify-full\")",
                h.sslmode.as_str()
            )));
        }
        self.check_choices()?;
        let connect_timeout = match self.int("connect_timeout")? {
            None => Some(DEFAULT_CONNECT_TIMEOUT),
            Some(n) if n <= 0 => None,
            // libpq waits at least 2 s.
            Some(n) => Some(Duration::from_secs(n.max(2).unsigned_abs())),
        };
        let keepalives = match self.int("keepalives")? {
            Some(0) => None,
            _ => Some(Keepalives {
                idle: self
                    .secs("keepalives_idle")?
                    .unwrap_or(DEFAULT_KEEPALIVES_IDLE),
                interval: self.secs("keepalives_interval")?,
                count: self
                    .int("keepalives_count")?
                    .map(|n| u32::try_from(n.max(0)).unwrap_or(u32::MAX)),
            }),
        };
        let tcp_user_timeout = self
            .int("tcp_user_timeout")?
            .filter(|ms| *ms > 0)
            .map(|ms| Duration::from_millis(ms.unsigned_abs()));
        let application_name = self
            .get("application_name")
            .or_else(|| self.get("fallback_application_name"))
            .unwrap_or(DEFAULT_APPLICATION_NAME)
            .to_owned();
        let passfile = self
            .path("passfile")
            .or_else(|| self.home.map(|h| h.join(".pgpass")));
        Ok(PgSettings {
            source,
            hosts,
            user,
            dbname,
            password: self
                .p
                .get("password")
                .filter(|p| !p.is_empty())
                .map(str::to_owned),
            passfile,
            auth: Auth::Password,
            options: self.get("options").map(str::to_owned),
            application_name,
            channel_binding: self.channel_binding()?,
            connect_timeout,
            keepalives,
            tcp_user_timeout,
            target: self.target()?,
            load_balance: self.load_balance()?,
            requirepeer: self.get("requirepeer").map(str::to_owned),
            tls,
            pooler: PoolerMode::None,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
        })
    }

    fn check_choices(&self) -> Result<(), PgError> {
        match self.get("gssencmode") {
            None | Some("disable" | "prefer") => {}
            Some("require") => {
                return Err((self.err)(
                    "gssencmode value \"require\" invalid when GSSAPI support is not compiled in"
                        .into(),
                ));
            }
            Some(v) => return Err(self.invalid("gssencmode", v)),
        }
        match self.get("client_encoding") {
            None => {}
            Some(v)
                if ["utf8", "utf-8", "unicode", "auto"]
                    .contains(&v.to_ascii_lowercase().as_str()) => {}
            Some(v) => {
                return Err((self.err)(format!(
                    "client_encoding \"{v}\" is not supported: datsync always talks UTF8 to the server (the server converts)"
                )));
            }
        }
        if let Some(v) = self.get("sslsni")
            && !["0", "1"].contains(&v)
        {
            return Err(self.invalid("sslsni", v));
        }
        Ok(())
    }

    fn channel_binding(&self) -> Result<tokio_postgres::config::ChannelBinding, PgError> {
        use tokio_postgres::config::ChannelBinding as C;
        Ok(match self.get("channel_binding") {
            None | Some("prefer") => C::Prefer,
            Some("disable") => C::Disable,
            Some("require") => C::Require,
            Some(v) => return Err(self.invalid("channel_binding", v)),
        })
    }

    fn target(&self) -> Result<TargetSessionAttrs, PgError> {
        use TargetSessionAttrs as T;
        Ok(match self.get("target_session_attrs") {
            None | Some("any") => T::Any,
            Some("read-write") => T::ReadWrite,
            Some("read-only") => T::ReadOnly,
            Some("primary") => T::Primary,
            Some("standby") => T::Standby,
            Some("prefer-standby") => T::PreferStandby,
            Some(v) => return Err(self.invalid("target_session_attrs", v)),
        })
    }

    fn load_balance(&self) -> Result<bool, PgError> {
        match self.get("load_balance_hosts") {
            None | Some("disable") => Ok(false),
            Some("random") => Ok(true),
            Some(v) => Err(self.invalid("load_balance_hosts", v)),
        }
    }

    fn tls_version(&self, k: &str) -> Result<Option<TlsVersion>, PgError> {
        let Some(v) = self.get(k) else {
            return Ok(None);
        };
        Ok(Some(match v.to_ascii_lowercase().as_str() {
            // rustls speaks 1.2 and 1.3 only; a lower minimum is 1.2.
            "tlsv1" | "tlsv1.1" if k == "ssl_min_protocol_version" => TlsVersion::V12,
            "tlsv1.2" => TlsVersion::V12,
            "tlsv1.3" => TlsVersion::V13,
            "tlsv1" | "tlsv1.1" => {
                return Err((self.err)(format!(
                    "{k}={v} is not supported: datsync speaks TLS 1.2 and 1.3 only"
                )));
            }
            _ => return Err(self.invalid(k, v)),
        }))
    }

    fn tls(&self, mode: Option<SslMode>) -> Result<TlsOptions, PgError> {
        let root = match self.get("sslrootcert") {
            Some("system") => RootCerts::System,
            Some(path) => RootCerts::File(path.into()),
            None => self
                .home_file("root.crt")
                .map_or(RootCerts::Nowhere, RootCerts::Home),
        };
        if root == RootCerts::System
            && let Some(m) = mode.filter(|m| *m != SslMode::VerifyFull)
        {
            return Err((self.err)(format!(
                "weak sslmode \"{}\" may not be used with sslrootcert=system (use \"verify-full\")",
                m.as_str()
            )));
        }
        let cert_mode = match self.get("sslcertmode") {
            None | Some("allow") => CertMode::Allow,
            Some("disable") => CertMode::Disable,
            Some("require") => CertMode::Require,
            Some(v) => return Err(self.invalid("sslcertmode", v)),
        };
        let negotiation = match self.get("sslnegotiation") {
            None | Some("postgres") => Negotiation::Postgres,
            Some("direct") => Negotiation::Direct,
            Some(v) => return Err(self.invalid("sslnegotiation", v)),
        };
        let min_version = self
            .tls_version("ssl_min_protocol_version")?
            .unwrap_or(TlsVersion::V12);
        let max_version = self
            .tls_version("ssl_max_protocol_version")?
            .unwrap_or(TlsVersion::V13);
        if min_version > max_version {
            return Err((self.err)("invalid SSL protocol version range".into()));
        }
        let crl_dir = self.path("sslcrldir");
        let crl = self.path("sslcrl").or_else(|| {
            crl_dir
                .is_none()
                .then(|| self.home_file("root.crl"))
                .flatten()
        });
        Ok(TlsOptions {
            root,
            cert: self
                .path("sslcert")
                .or_else(|| self.home_file("postgresql.crt")),
            key: self
                .path("sslkey")
                .or_else(|| self.home_file("postgresql.key")),
            key_password: self.get("sslpassword").is_some(),
            cert_mode,
            crl,
            crl_dir,
            sni: self.get("sslsni") != Some("0"),
            min_version,
            max_version,
            negotiation,
        })
    }

    /// libpq's `connectOptions2` host list: `host` and `hostaddr` matched one to one, one
    /// port for all or one each.
    fn hosts(&self, mode: Option<SslMode>) -> Result<Vec<HostEntry>, PgError> {
        let split = |k: &str| -> Option<Vec<String>> {
            self.p
                .get(k)
                .filter(|v| !v.is_empty())
                .map(|v| v.split(',').map(str::to_owned).collect())
        };
        let hosts = split("host");
        let addrs = split("hostaddr");
        let n = match (&hosts, &addrs) {
            (Some(h), Some(a)) if h.len() != a.len() => {
                return Err((self.err)(format!(
                    "could not match {} host names to {} hostaddr values",
                    h.len(),
                    a.len()
                )));
            }
            (_, Some(a)) => a.len(),
            (Some(h), None) => h.len(),
            (None, None) => 1,
        };
        let ports = split("port").unwrap_or_default();
        if ports.len() > 1 && ports.len() != n {
            return Err((self.err)(format!(
                "could not match {} port numbers to {n} hosts",
                ports.len()
            )));
        }
        (0..n)
            .map(|i| {
                let host = hosts
                    .as_ref()
                    .and_then(|h| h.get(i))
                    .cloned()
                    .unwrap_or_default();
                let addr = addrs
                    .as_ref()
                    .and_then(|a| a.get(i))
                    .filter(|a| !a.is_empty());
                let port_text = ports
                    .get(if ports.len() == 1 { 0 } else { i })
                    .map_or("", String::as_str);
                let port = if port_text.is_empty() {
                    DEFAULT_PORT
                } else {
                    match port_text.trim_end().parse::<u16>() {
                        Ok(p) if p > 0 => p,
                        _ => {
                            return Err((self.err)(format!(
                                "invalid port number: \"{port_text}\""
                            )));
                        }
                    }
                };
                self.entry(host, addr, port, mode)
            })
            .collect()
    }

    fn entry(
        &self,
        host: String,
        addr: Option<&String>,
        port: u16,
        mode: Option<SslMode>,
    ) -> Result<HostEntry, PgError> {
        let address = if let Some(a) = addr {
            Address::Ip(
                a.parse()
                    .map_err(|_| (self.err)(format!("could not parse network address \"{a}\"")))?,
            )
        } else if host.is_empty() {
            Address::Socket(default_socket_dir())
        } else if host.starts_with('/') {
            Address::Socket(PathBuf::from(&host))
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            Address::Ip(ip)
        } else {
            Address::Name(host.clone())
        };
        let host = if host.is_empty() && addr.is_none() {
            default_socket_dir().display().to_string()
        } else {
            host
        };
        let local = is_local(&address, &host);
        let (sslmode, mode_origin) = match (mode, local) {
            (Some(m), _) => (m, ModeOrigin::Given),
            (None, true) => (SslMode::Prefer, ModeOrigin::DefaultLocal),
            (None, false) => (SslMode::VerifyFull, ModeOrigin::DefaultRemote),
        };
        Ok(HostEntry {
            host,
            address,
            port,
            sslmode,
            mode_origin,
        })
    }
}

/// Whether a host is this machine: a unix socket, or a host that is `localhost` or a
/// loopback address *and* (with `hostaddr`) an address that is loopback too. A name that
/// merely resolves to a loopback address is not: resolution is what an attacker who
/// controls DNS would change.
fn is_local(address: &Address, host: &str) -> bool {
    let loopback = |ip: &IpAddr| ip.is_loopback() || ip.to_canonical().is_loopback();
    let host_local = host.is_empty()
        || host.eq_ignore_ascii_case("localhost")
        || host.eq_ignore_ascii_case("localhost.")
        || host.parse::<IpAddr>().is_ok_and(|ip| loopback(&ip));
    match address {
        Address::Socket(_) => true,
        Address::Ip(ip) => loopback(ip) && host_local,
        Address::Name(_) => host_local,
    }
}

/// libpq's default host: the first of [`DEFAULT_SOCKET_DIRS`] that exists.
fn default_socket_dir() -> PathBuf {
    DEFAULT_SOCKET_DIRS
        .iter()
        .map(PathBuf::from)
        .find(|d| d.is_dir())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET_DIRS[0]))
}

/// The name of the user this process runs as (libpq's default user).
fn os_user() -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
}
