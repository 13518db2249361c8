//! Connecting the way libpq's `PQconnectPoll` does: every host in order (shuffled with
//! `load_balance_hosts=random`), every address a name resolves to, each within
//! `connect_timeout`; on each address the `sslmode` dance; then `target_session_attrs`.
//!
//! | sslmode | first try | then |
//! |---|---|---|
//! | `disable` | plain text | — |
//! | `allow` | plain text | TLS, if the server rejected the plain connection |
//! | `prefer` | SSLRequest: TLS if the server says `S`, plain text on the same connection if `N` | plain text, if the TLS handshake failed or the server rejected the TLS connection |
//! | `require`, `verify-ca`, `verify-full` | SSLRequest: TLS if `S`; **`N` ends the attempt before anything else is sent** | — |
//!
//! Unix sockets never use TLS, whatever the mode (as in libpq). `sslnegotiation=direct`
//! starts the TLS handshake at once instead of the SSLRequest. The SSLRequest is written and
//! its answer read here, and only then is the socket handed to tokio-postgres (in plain
//! text, or with the TLS handshake as its first step), so what crossed the wire before a
//! refusal is known exactly: with a mode that requires TLS, a server that refuses it has
//! seen eight bytes and never a user name or a password.

use std::io;
use std::net::SocketAddr;

use tokio_postgres::Client;

use super::attempt::{Failed, Target, Transport, plain, tls};
use super::files::{PassKey, password_from_file};
use super::pooler::{PoolerMode, reported_pid};
use super::settings::{Address, Auth, HostEntry, PgSettings, TargetSessionAttrs, describe_mode};
use super::tls::SslMode;
use super::{ErrorClass, PgError};

/// One failed attempt: where, how, and why.
#[derive(Debug, Clone)]
pub struct AttemptFailure {
    /// `host:port`.
    pub server: String,
    /// The address tried, when it is not the host itself (`hostaddr 10.0.0.5`, `address
    /// 10.0.0.5`).
    pub address: Option<String>,
    /// `sslmode=…`, saying when it was the default.
    pub sslmode: String,
    /// How the attempt talked to the server (`tls, certificate not verified`, `plain
    /// text`, `tls …, then plain text`); empty when nothing was exchanged.
    pub how: String,
    /// What failed (never a password).
    pub cause: String,
    /// Whether a later attempt can succeed.
    pub class: ErrorClass,
    /// The SQLSTATE the server sent, if any.
    pub sqlstate: Option<String>,
}

impl std::fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (", self.server)?;
        if let Some(a) = &self.address {
            write!(f, "{a}, ")?;
        }
        write!(f, "{}", self.sslmode)?;
        if !self.how.is_empty() {
            write!(f, ", {}", self.how)?;
        }
        write!(f, "): {}", self.cause)
    }
}

/// Connects as the settings say, spawns the connection task on the current Tokio
/// runtime, and sets `statement_timeout` and `temp_buffers`.
pub async fn connect(settings: &PgSettings) -> Result<Client, PgError> {
    let mut failures = Vec::new();
    let mut order: Vec<usize> = (0..settings.hosts.len()).collect();
    if settings.load_balance {
        shuffle(&mut order);
    }
    let passes: &[TargetSessionAttrs] = match settings.target {
        TargetSessionAttrs::PreferStandby => {
            &[TargetSessionAttrs::Standby, TargetSessionAttrs::Any]
        }
        t => &[t][..],
    };
    let passes: Vec<TargetSessionAttrs> = passes.to_vec();
    for want in passes {
        for &i in &order {
            let host = &settings.hosts[i];
            let targets = match resolve(settings, host).await {
                Ok(t) => t,
                Err(f) => {
                    failures.push(place(host, None, f));
                    continue;
                }
            };
            for target in targets {
                match attempt(settings, host, &target, want).await {
                    Ok(client) => return finish(settings, host, client).await,
                    Err(f) => failures.push(place(host, Some(&target), f)),
                }
            }
        }
    }
    Err(PgError::Connect {
        database: settings.dbname.clone(),
        user: settings.user.clone(),
        nothing_configured: settings.source == super::settings::SettingsSource::Nothing,
        failures,
    })
}

fn place(host: &HostEntry, target: Option<&Target>, f: Failed) -> AttemptFailure {
    let (server, hostaddr) = host.shown_parts();
    let address = match (target, &host.address) {
        (Some(Target::Tcp(addr)), Address::Name(_)) => Some(format!("address {}", addr.ip())),
        _ => hostaddr.map(|a| format!("hostaddr {a}")),
    };
    let describe = |t: Transport| t.describe().to_owned();
    let (how, cause) = match f.earlier {
        None => (describe(f.transport), f.cause),
        Some((first, first_cause)) => {
            let how = format!("{}, then {}", describe(first), describe(f.transport));
            if first_cause == f.cause {
                (how, f.cause)
            } else {
                (how, format!("{first_cause}; then {}", f.cause))
            }
        }
    };
    AttemptFailure {
        server,
        address,
        sslmode: describe_mode(host),
        how,
        cause,
        class: f.class,
        sqlstate: f.sqlstate,
    }
}

/// The addresses of a host, in the resolver's order.
async fn resolve(settings: &PgSettings, host: &HostEntry) -> Result<Vec<Target>, Failed> {
    match &host.address {
        Address::Socket(dir) => Ok(vec![Target::Unix(
            dir.join(format!(".s.PGSQL.{}", host.port)),
        )]),
        Address::Ip(ip) => Ok(vec![Target::Tcp(SocketAddr::new(*ip, host.port))]),
        Address::Name(name) => {
            let lookup = tokio::net::lookup_host((name.as_str(), host.port));
            let found = match settings.connect_timeout {
                Some(t) => tokio::time::timeout(t, lookup).await.unwrap_or_else(|_| {
                    Err(io::Error::new(io::ErrorKind::TimedOut, "timeout expired"))
                }),
                None => lookup.await,
            };
            let mut addrs: Vec<Target> = found
                .map_err(|e| {
                    Failed::new(
                        Transport::Nothing,
                        format!("could not translate host name \"{name}\" to address: {e}"),
                        ErrorClass::Transient,
                    )
                })?
                .map(Target::Tcp)
                .collect();
            if settings.load_balance {
                shuffle(&mut addrs);
            }
            Ok(addrs)
        }
    }
}

/// One address, with the `sslmode` fallbacks, within `connect_timeout`.
async fn attempt(
    settings: &PgSettings,
    host: &HostEntry,
    target: &Target,
    want: TargetSessionAttrs,
) -> Result<Client, Failed> {
    let work = async {
        let password = password(settings, host).await?;
        let pw = password.as_deref();
        let mode = host.sslmode;
        if matches!(target, Target::Unix(_)) {
            return plain(settings, host, target, pw, want).await;
        }
        match mode {
            SslMode::Disable => plain(settings, host, target, pw, want).await,
            SslMode::Allow => match plain(settings, host, target, pw, want).await {
                Err(f) if f.server_rejected => tls(settings, host, target, pw, want, false)
                    .await
                    .map_err(|again| again.after(f)),
                other => other,
            },
            SslMode::Prefer => match tls(settings, host, target, pw, want, true).await {
                Err(f)
                    if f.bad_handshake
                        || (f.server_rejected && matches!(f.transport, Transport::Tls(_))) =>
                {
                    plain(settings, host, target, pw, want)
                        .await
                        .map_err(|again| again.after(f))
                }
                other => other,
            },
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tls(settings, host, target, pw, want, false).await
            }
        }
    };
    match settings.connect_timeout {
        Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Err(Failed::new(
                Transport::Nothing,
                format!("timeout expired after {} s", limit.as_secs()),
                ErrorClass::Transient,
            ))
        }),
        None => work.await,
    }
}

/// The password for this host: given, from the managed identity, or from the password
/// file.
async fn password(settings: &PgSettings, host: &HostEntry) -> Result<Option<String>, Failed> {
    if let Auth::Entra(tokens) = &settings.auth {
        return tokens.token().await.map(Some).map_err(|e| {
            let class = e.class();
            Failed::new(Transport::Nothing, e.to_string(), class)
        });
    }
    if settings.password.is_some() {
        return Ok(settings.password.clone());
    }
    let Some(file) = &settings.passfile else {
        return Ok(None);
    };
    let pwhost = match &host.address {
        Address::Socket(dir)
            if super::settings::DEFAULT_SOCKET_DIRS
                .iter()
                .any(|d| dir == std::path::Path::new(d)) =>
        {
            "localhost".to_owned()
        }
        Address::Ip(ip) if host.host.is_empty() => ip.to_string(),
        _ => host.host.clone(),
    };
    let port = host.port.to_string();
    let key = PassKey {
        host: &pwhost,
        port: &port,
        dbname: &settings.dbname,
        user: &settings.user,
    };
    match password_from_file(file, &key) {
        Ok(p) => Ok(p),
        Err(warning) => {
            tracing::warn!("{warning}");
            Ok(None)
        }
    }
}

/// The session settings every datsync connection has, and the pooler check
/// ([`super::pooler`]).
async fn finish(
    settings: &PgSettings,
    host: &HostEntry,
    client: Client,
) -> Result<Client, PgError> {
    let ms = settings.statement_timeout.as_millis();
    let answer = client
        .simple_query(&format!(
            "SET statement_timeout = {ms}; SET temp_buffers = '{}'; SELECT pg_backend_pid()",
            super::DEFAULT_TEMP_BUFFERS
        ))
        .await
        .map_err(|e| PgError::query("cannot set statement_timeout", e))?;
    let server_pid = answer.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|p| p.parse::<i32>().ok()),
        _ => None,
    });
    if settings.pooler == PoolerMode::None
        && let (Some(server), Some(reported)) = (server_pid, reported_pid(&client).await)
        && server != reported
    {
        return Err(PgError::Pooled {
            server: host.shown(),
        });
    }
    Ok(client)
}

/// `load_balance_hosts=random`: a new order for each connection (no need for a
/// cryptographic generator; the standard library's random hash keys seed it).
fn shuffle<T>(items: &mut [T]) {
    use rand::SeedableRng as _;
    use rand::seq::SliceRandom as _;
    use std::hash::BuildHasher as _;
    let seed =
        std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now());
    items.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
}
