//! One attempt at one address: the socket (TCP with keepalives, or a unix socket with
//! `requirepeer`), the SSLRequest written and answered here, then the startup handed to
//! tokio-postgres — in plain text, or with the TLS handshake as its first step — and
//! `target_session_attrs` checked on the new session. [`super::connect`] decides which
//! attempts to make.

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

use super::settings::{Address, HostEntry, ModeOrigin, PgSettings, TargetSessionAttrs};
use super::tls::{CertMode, HandshakeRecord, Negotiation, RecordingConnect, TlsContext};
use super::{ErrorClass, classify_sqlstate};

/// The SSLRequest message: length 8, code 80877103.
pub(crate) const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

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
pub(crate) enum Target {
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
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Nothing => "",
            Self::Plain => "plain text",
            Self::Tls(v) => v.describe(),
            Self::TlsRefused => "tls refused by the server",
        }
    }
}

/// Why an attempt failed, before it is placed.
pub(crate) struct Failed {
    pub transport: Transport,
    pub cause: String,
    pub class: ErrorClass,
    pub sqlstate: Option<String>,
    /// The server answered with an error (libpq retries `allow` and `prefer` on this).
    pub server_rejected: bool,
    /// The TLS handshake failed (libpq retries `prefer` on this).
    pub bad_handshake: bool,
    /// The failure of the first try, when this is libpq's retry in the other transport.
    pub earlier: Option<(Transport, String)>,
}

impl Failed {
    pub(crate) fn new(transport: Transport, cause: impl Into<String>, class: ErrorClass) -> Self {
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
    pub(crate) fn after(mut self, first: Failed) -> Self {
        self.earlier = Some((first.transport, first.cause));
        self
    }

    pub(crate) fn io(transport: Transport, what: &str, e: &io::Error) -> Self {
        Self::new(transport, format!("{what}: {e}"), ErrorClass::Transient)
    }
}

/// Opens the socket, with keepalives and `tcp_user_timeout` on TCP.
pub(crate) async fn open(settings: &PgSettings, target: &Target) -> Result<RawStream, Failed> {
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
pub(crate) fn startup_config(
    settings: &PgSettings,
    password: Option<&str>,
) -> tokio_postgres::Config {
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
pub(crate) async fn plain(
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

pub(crate) async fn startup_plain(
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

pub(crate) fn is_loopback_host(host: &HostEntry) -> bool {
    host.mode_origin == ModeOrigin::DefaultLocal
        || match &host.address {
            Address::Ip(ip) => ip.is_loopback(),
            Address::Name(n) => n.eq_ignore_ascii_case("localhost"),
            Address::Socket(_) => true,
        }
}

/// A TLS attempt on a new socket; with `plain_if_refused` (`prefer`) a server that answers
/// `N` gets a plain-text startup on the same socket.
pub(crate) async fn tls(
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
    let implicit = host.mode_origin == ModeOrigin::DefaultRemote;
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
pub(crate) fn check_peer(stream: &UnixStream, wanted: &str) -> Result<(), Failed> {
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
pub(crate) fn startup_failure(
    transport: Transport,
    e: &tokio_postgres::Error,
    had_password: bool,
) -> Failed {
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
pub(crate) async fn session<S, T>(
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
