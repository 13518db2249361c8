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
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::tls::NoTls;
use tokio_postgres::{Client, Connection};

use super::files::{PassKey, password_from_file};
use super::pooler::{PoolerMode, reported_pid};
use super::settings::{Address, Auth, HostEntry, PgSettings, TargetSessionAttrs, describe_mode};
use super::tls::{CertMode, HandshakeRecord, Negotiation, RecordingConnect, SslMode, TlsContext};
use super::{ErrorClass, PgError, classify_sqlstate};

/// The SSLRequest message: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// A TCP or unix-socket stream.
pub(crate) enum RawStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsyncRead for RawStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for RawStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Where one attempt went.
#[derive(Debug, Clone)]
enum Target {
    Tcp(SocketAddr),
    Unix(std::path::PathBuf),
}

/// How an attempt talked to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Nothing was exchanged yet (the socket, the name or the settings failed).
    Nothing,
    /// Plain text.
    Plain,
    /// TLS with this much verification.
    Tls(super::tls::Verification),
    /// The server was asked for TLS and refused.
    TlsRefused,
}

impl Transport {
    fn describe(self) -> &'static str {
        match self {
            Self::Nothing => "",
            Self::Plain => "plain text",
            Self::Tls(v) => v.describe(),
            Self::TlsRefused => "tls refused by the server",
        }
    }
}

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

/// Why an attempt failed, before it is placed.
struct Failed {
    transport: Transport,
    cause: String,
    class: ErrorClass,
    sqlstate: Option<String>,
    /// The server answered with an error (libpq retries `allow` and `prefer` on this).
    server_rejected: bool,
    /// The TLS handshake failed (libpq retries `prefer` on this).
    bad_handshake: bool,
    /// The failure of the first try, when this is libpq's retry in the other transport.
    earlier: Option<(Transport, String)>,
}

impl Failed {
    fn new(transport: Transport, cause: impl Into<String>, class: ErrorClass) -> Self {
        Self {
            transport,
            cause: cause.into(),
            class,
            sqlstate: None,
            server_rejected: false,
            bad_handshake: false,
            earlier: None,
        }
    }

    /// This failure, of a retry after `first` failed.
    fn after(mut self, first: Failed) -> Self {
        self.earlier = Some((first.transport, first.cause));
        self
    }

    fn io(transport: Transport, what: &str, e: &io::Error) -> Self {
        Self::new(transport, format!("{what}: {e}"), ErrorClass::Transient)
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

/// Opens the socket, with keepalives and `tcp_user_timeout` on TCP.
async fn open(settings: &PgSettings, target: &Target) -> Result<RawStream, Failed> {
    match target {
        Target::Unix(path) => {
            let s = UnixStream::connect(path).await.map_err(|e| {
                Failed::io(
                    Transport::Nothing,
                    &format!(
                        "connection to server on socket \"{}\" failed",
                        path.display()
                    ),
                    &e,
                )
            })?;
            Ok(RawStream::Unix(s))
        }
        Target::Tcp(addr) => {
            let s = TcpStream::connect(addr)
                .await
                .map_err(|e| Failed::io(Transport::Nothing, "connection failed", &e))?;
            let _ = s.set_nodelay(true);
            let sock = socket2::SockRef::from(&s);
            if let Some(k) = settings.keepalives {
                let mut ka = socket2::TcpKeepalive::new().with_time(k.idle);
                if let Some(i) = k.interval {
                    ka = ka.with_interval(i);
                }
                if let Some(c) = k.count {
                    ka = ka.with_retries(c);
                }
                sock.set_tcp_keepalive(&ka)
                    .map_err(|e| Failed::io(Transport::Nothing, "cannot set keepalives", &e))?;
            }
            #[cfg(target_os = "linux")]
            if let Some(t) = settings.tcp_user_timeout {
                sock.set_tcp_user_timeout(Some(t)).map_err(|e| {
                    Failed::io(Transport::Nothing, "cannot set tcp_user_timeout", &e)
                })?;
            }
            Ok(RawStream::Tcp(s))
        }
    }
}

/// The startup parameters: user, database, password, options, application name.
fn startup_config(settings: &PgSettings, password: Option<&str>) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.user(&settings.user)
        .dbname(&settings.dbname)
        .application_name(&settings.application_name)
        .channel_binding(settings.channel_binding);
    if let Some(o) = &settings.options {
        c.options(o);
    }
    if let Some(p) = password {
        c.password(p);
    }
    c
}

/// A plain-text attempt on a new socket.
async fn plain(
    settings: &PgSettings,
    host: &HostEntry,
    target: &Target,
    password: Option<&str>,
    want: TargetSessionAttrs,
) -> Result<Client, Failed> {
    let stream = open(settings, target).await?;
    if let (RawStream::Unix(s), Some(peer)) = (&stream, &settings.requirepeer) {
        check_peer(s, peer)?;
    }
    startup_plain(settings, host, stream, password, want).await
}

async fn startup_plain(
    settings: &PgSettings,
    host: &HostEntry,
    stream: RawStream,
    password: Option<&str>,
    want: TargetSessionAttrs,
) -> Result<Client, Failed> {
    let mut c = startup_config(settings, password);
    c.ssl_mode(tokio_postgres::config::SslMode::Disable);
    let (client, conn) = c
        .connect_raw(stream, NoTls)
        .await
        .map_err(|e| startup_failure(Transport::Plain, &e, password.is_some()))?;
    if matches!(host.address, Address::Name(_) | Address::Ip(_)) && !is_loopback_host(host) {
        tracing::warn!(server = %host.shown(), sslmode = host.sslmode.as_str(), "connected to postgresql in plain text");
    }
    session(client, conn, want, Transport::Plain).await
}

fn is_loopback_host(host: &HostEntry) -> bool {
    host.mode_origin == super::settings::ModeOrigin::DefaultLocal
        || match &host.address {
            Address::Ip(ip) => ip.is_loopback(),
            Address::Name(n) => n.eq_ignore_ascii_case("localhost"),
            Address::Socket(_) => true,
        }
}

/// A TLS attempt on a new socket; with `plain_if_refused` (`prefer`) a server that answers
/// `N` gets a plain-text startup on the same socket.
async fn tls(
    settings: &PgSettings,
    host: &HostEntry,
    target: &Target,
    password: Option<&str>,
    want: TargetSessionAttrs,
    plain_if_refused: bool,
) -> Result<Client, Failed> {
    let mut stream = open(settings, target).await?;
    if settings.tls.negotiation == Negotiation::Postgres {
        stream.write_all(&SSL_REQUEST).await.map_err(|e| {
            Failed::io(
                Transport::Nothing,
                "could not send SSL negotiation packet",
                &e,
            )
        })?;
        let mut answer = [0u8; 1];
        stream.read_exact(&mut answer).await.map_err(|e| {
            Failed::io(
                Transport::Nothing,
                "could not receive the answer to the SSL negotiation",
                &e,
            )
        })?;
        match answer[0] {
            b'S' => {}
            b'N' if plain_if_refused => {
                return startup_plain(settings, host, stream, password, want).await;
            }
            b'N' => {
                return Err(Failed::new(
                    Transport::TlsRefused,
                    format!(
                        "the server does not support TLS, but sslmode={} requires it; \
                         nothing else was sent (no user name, no password)",
                        host.sslmode.as_str()
                    ),
                    ErrorClass::Fatal,
                ));
            }
            other => {
                return Err(Failed::new(
                    Transport::Nothing,
                    format!(
                        "received invalid response to SSL negotiation: {}",
                        char::from(other).escape_default()
                    ),
                    ErrorClass::Fatal,
                ));
            }
        }
    }
    let implicit = host.mode_origin == super::settings::ModeOrigin::DefaultRemote;
    let ctx = TlsContext::load(&settings.tls, host.sslmode, implicit)
        .map_err(|e| Failed::new(Transport::Nothing, e.0, ErrorClass::Fatal))?;
    let level = ctx.verification(host.sslmode);
    let requested = Arc::new(AtomicBool::new(false));
    let config = ctx
        .client_config(level, &host.host, requested.clone())
        .map_err(|e| Failed::new(Transport::Nothing, e.0, ErrorClass::Fatal))?;
    let server_name = match &host.address {
        Address::Ip(ip) if rustls::pki_types::ServerName::try_from(host.host.as_str()).is_err() => {
            ip.to_string()
        }
        Address::Name(_) | Address::Ip(_) => host.host.clone(),
        Address::Socket(_) => String::from("localhost"),
    };
    let mut make = tokio_postgres_rustls::MakeRustlsConnect::new(config);
    let Ok(inner) =
        tokio_postgres::tls::MakeTlsConnect::<RawStream>::make_tls_connect(&mut make, &server_name);
    let record = Arc::new(Mutex::new(HandshakeRecord::default()));
    let connector = RecordingConnect {
        inner,
        record: record.clone(),
        roots: ctx.roots_origin().map(str::to_owned),
        direct: settings.tls.negotiation == Negotiation::Direct,
    };
    let mut c = startup_config(settings, password);
    // The SSLRequest is answered already (or skipped for direct negotiation): tokio-postgres
    // starts with the handshake.
    c.ssl_mode(tokio_postgres::config::SslMode::Require)
        .ssl_negotiation(tokio_postgres::config::SslNegotiation::Direct);
    let transport = Transport::Tls(level);
    let connected = c.connect_raw(stream, connector).await;
    let handshake = record.lock().ok().and_then(|mut r| r.outcome.take());
    let (client, conn) = match (connected, handshake) {
        (Ok(pair), _) => pair,
        (Err(_), Some(Err(reason))) => {
            let mut f = Failed::new(transport, reason, ErrorClass::Fatal);
            f.bad_handshake = true;
            return Err(f);
        }
        (Err(e), _) => return Err(startup_failure(transport, &e, password.is_some())),
    };
    if settings.tls.cert_mode == CertMode::Require && !requested.load(Ordering::SeqCst) {
        return Err(Failed::new(
            transport,
            "server did not request an SSL certificate (sslcertmode=require)",
            ErrorClass::Fatal,
        ));
    }
    session(client, conn, want, transport).await
}

/// `requirepeer`: the server process on the socket must run as this user.
fn check_peer(stream: &UnixStream, wanted: &str) -> Result<(), Failed> {
    let cred = stream
        .peer_cred()
        .map_err(|e| Failed::io(Transport::Nothing, "could not get peer credentials", &e))?;
    let uid = nix::unistd::Uid::from_raw(cred.uid());
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| cred.uid().to_string(), |u| u.name);
    if name == wanted {
        Ok(())
    } else {
        Err(Failed::new(
            Transport::Nothing,
            format!("requirepeer specifies \"{wanted}\", but actual peer user name is \"{name}\""),
            ErrorClass::Fatal,
        ))
    }
}

/// A failed startup (authentication, database, server state) in words, classified.
fn startup_failure(transport: Transport, e: &tokio_postgres::Error, had_password: bool) -> Failed {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code().to_owned();
        let mut f = Failed::new(
            transport,
            format!("{} (SQLSTATE {code})", db.message()),
            classify_sqlstate(&code),
        );
        f.sqlstate = Some(code);
        f.server_rejected = true;
        return f;
    }
    let io = super::sqlstate::has_io_source(e) || e.is_closed();
    let mut cause = super::error_chain(e);
    if !io && !had_password {
        cause.push_str(
            " (the server asks for a password and none was given: password, PGPASSWORD, \
             the password file, or DB_AUTH=entra)",
        );
    }
    Failed::new(
        transport,
        cause,
        if io {
            ErrorClass::Transient
        } else {
            ErrorClass::Fatal
        },
    )
}

/// Checks `target_session_attrs` and spawns the connection task.
async fn session<S, T>(
    client: Client,
    conn: Connection<S, T>,
    want: TargetSessionAttrs,
    transport: Transport,
) -> Result<Client, Failed>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (read_only, hot_standby) = {
        let reported = |name: &str| match conn.parameter(name) {
            Some("on") => Some(true),
            Some("off") => Some(false),
            _ => None,
        };
        (
            reported("default_transaction_read_only"),
            reported("in_hot_standby"),
        )
    };
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "postgresql connection closed with an error");
        }
    });
    let query = |sql: &'static str| {
        let client = &client;
        async move {
            let row = client
                .simple_query(sql)
                .await
                .map_err(|e| startup_failure(transport, &e, true))?;
            let value = row.iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            });
            Ok::<_, Failed>(matches!(value.as_deref(), Some("on" | "t" | "true")))
        }
    };
    let wrong = |cause: &str| Err(Failed::new(transport, cause, ErrorClass::Transient));
    match want {
        TargetSessionAttrs::Any | TargetSessionAttrs::PreferStandby => {}
        TargetSessionAttrs::ReadWrite | TargetSessionAttrs::ReadOnly => {
            let ro = match (read_only, hot_standby) {
                (Some(a), Some(b)) => a || b,
                _ => query("SHOW transaction_read_only").await?,
            };
            if want == TargetSessionAttrs::ReadWrite && ro {
                return wrong("session is read-only (target_session_attrs=read-write)");
            }
            if want == TargetSessionAttrs::ReadOnly && !ro {
                return wrong("session is not read-only (target_session_attrs=read-only)");
            }
        }
        TargetSessionAttrs::Primary | TargetSessionAttrs::Standby => {
            let standby = match hot_standby {
                Some(s) => s,
                None => query("SELECT pg_catalog.pg_is_in_recovery()").await?,
            };
            if want == TargetSessionAttrs::Primary && standby {
                return wrong("server is in hot standby mode (target_session_attrs=primary)");
            }
            if want == TargetSessionAttrs::Standby && !standby {
                return wrong("server is not in hot standby mode (target_session_attrs=standby)");
            }
        }
    }
    Ok(client)
}

/// The session settings every datsync connection has.
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
