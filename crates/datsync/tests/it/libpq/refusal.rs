//! A server that refuses TLS (a downgrade attempt) never receives a password — nor a user
//! name — when the settings require TLS, which an unspecified `sslmode` does for a remote
//! host; and every message names the TLS mode actually used.

use std::collections::HashMap;

use datsync::{ErrorClass, PgSettings, connect};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// SSLRequest and GSSENCRequest codes.
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

/// What a connection to the fake server sent.
#[derive(Debug, Default, Clone)]
struct Seen {
    ssl_requests: usize,
    startup: Option<Vec<u8>>,
    password: Option<String>,
}

/// A fake PostgreSQL server on loopback that answers `N` to TLS, asks for a clear-text
/// password, records it, then fails the login.
struct Fake {
    port: u16,
    seen: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Fake {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut this = Seen::default();
                    let _ = converse(&mut s, &mut this).await;
                    let _ = tx.send(this);
                });
            }
        });
        Self {
            port,
            seen: tokio::sync::Mutex::new(rx),
            task,
        }
    }

    /// What the next connection sent, once it is over.
    async fn next(&self) -> Seen {
        let wait = async { self.seen.lock().await.recv().await };
        tokio::time::timeout(std::time::Duration::from_secs(30), wait)
            .await
            .expect("a connection reached the fake server")
            .expect("the fake server runs")
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn converse(s: &mut tokio::net::TcpStream, seen: &mut Seen) -> std::io::Result<()> {
    loop {
        let len = s.read_u32().await? as usize;
        let mut body = vec![0; len.saturating_sub(4)];
        s.read_exact(&mut body).await?;
        let code = u32::from_be_bytes(body[..4].try_into().unwrap());
        match code {
            SSL_REQUEST => {
                seen.ssl_requests += 1;
                s.write_all(b"N").await?;
            }
            GSSENC_REQUEST => s.write_all(b"N").await?,
            _ => {
                seen.startup = Some(body);
                break;
            }
        }
    }
    // AuthenticationCleartextPassword.
    s.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).await?;
    let tag = s.read_u8().await?;
    let len = s.read_u32().await? as usize;
    let mut body = vec![0; len.saturating_sub(4)];
    s.read_exact(&mut body).await?;
    if tag == b'p' {
        seen.password = Some(
            String::from_utf8_lossy(&body)
                .trim_end_matches('\0')
                .to_owned(),
        );
    }
    let mut error = b"SFATAL\0C28P01\0Mfake server says no\0\0".to_vec();
    let mut msg = vec![b'E'];
    msg.extend_from_slice(&(u32::try_from(error.len()).unwrap() + 4).to_be_bytes());
    msg.append(&mut error);
    s.write_all(&msg).await
}

fn env(pairs: &[(&str, String)]) -> HashMap<String, String> {
    let mut e: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    e.insert("HOME".into(), "/nonexistent-datsync-home".into());
    e
}

/// A case: its name, the connection string, the environment, the `sslmode` the message names.
type Case = (
    &'static str,
    Option<String>,
    HashMap<String, String>,
    &'static str,
);

#[tokio::test]
async fn a_server_that_refuses_tls_never_sees_the_password_when_tls_is_required() {
    let fake = Fake::start().await;
    let port = fake.port;
    let remote = format!(
        "host=db.example.com hostaddr=127.0.0.1 port={port} user=alice password=s3cr3t dbname=d"
    );
    let url = format!("postgresql://alice:s3cr3t@127.0.0.1:{port}/d");
    let cases: Vec<Case> = vec![
        (
            "unspecified sslmode, remote host",
            Some(remote.clone()),
            env(&[]),
            "sslmode=verify-full (the default for a remote host)",
        ),
        (
            "DATABASE_URL without sslmode, remote host",
            None,
            env(&[
                (
                    "DATABASE_URL",
                    "postgresql://alice:s3cr3t@db.example.com/d".into(),
                ),
                ("PGHOSTADDR", "127.0.0.1".into()),
                ("PGPORT", port.to_string()),
            ]),
            "sslmode=verify-full (the default for a remote host)",
        ),
        (
            "legacy DB_* without DB_SSL_MODE, remote host",
            None,
            env(&[
                ("DB_HOST", "db.example.com".into()),
                ("DB_PORT", port.to_string()),
                ("DB_USER", "alice".into()),
                ("DB_PASSWORD", "s3cr3t".into()),
                ("PGHOSTADDR", "127.0.0.1".into()),
            ]),
            "sslmode=verify-full (the default for a remote host)",
        ),
        (
            "require on loopback",
            Some(format!("{url}?sslmode=require")),
            env(&[]),
            "sslmode=require",
        ),
        (
            "verify-ca",
            Some(format!("{url}?sslmode=verify-ca")),
            env(&[]),
            "sslmode=verify-ca",
        ),
        (
            "PGSSLMODE=verify-full",
            Some(url.clone()),
            env(&[("PGSSLMODE", "verify-full".into())]),
            "sslmode=verify-full",
        ),
    ];
    for (name, conn, env, mode) in cases {
        let settings = PgSettings::resolve(conn.as_deref(), &env).unwrap();
        let e = connect(&settings).await.unwrap_err();
        let m = e.to_string();
        let last = &fake.next().await;
        assert_eq!(last.ssl_requests, 1, "{name}");
        assert!(
            last.startup.is_none(),
            "{name}: the startup message was sent"
        );
        assert!(last.password.is_none(), "{name}: the password was sent");
        assert!(
            m.contains(&format!("{mode}, tls refused by the server)")),
            "{name}: {m}"
        );
        assert!(m.contains("nothing else was sent"), "{name}: {m}");
        assert!(!m.contains("s3cr3t") && !m.contains('\n'), "{name}: {m}");
        assert!(!m.contains("verified"), "{name}: claims verification: {m}");
        assert_eq!(e.class(), ErrorClass::Fatal, "{name}");
    }

    // psql does the same with sslmode=require.
    let refused = super::psql(
        Some(&format!("{url}?sslmode=require")),
        &env(&[]),
        "select 1",
    )
    .await;
    assert!(refused.is_err());
    let seen = fake.next().await;
    assert!(seen.password.is_none() && seen.startup.is_none());
}

#[tokio::test]
async fn prefer_and_disable_say_they_used_plain_text() {
    // Explicit prefer (and loopback's default) falls back to plain text as libpq does; the
    // password then goes in clear, and the message says so rather than claiming TLS.
    let fake = Fake::start().await;
    let port = fake.port;
    for (conn, mode) in [
        (
            format!("host=127.0.0.1 port={port} user=alice password=s3cr3t dbname=d"),
            "sslmode=prefer (the default for a local host)",
        ),
        (
            format!(
                "host=db.example.com hostaddr=127.0.0.1 port={port} user=alice password=s3cr3t dbname=d sslmode=prefer"
            ),
            "sslmode=prefer",
        ),
        (
            format!(
                "host=127.0.0.1 port={port} user=alice password=s3cr3t dbname=d sslmode=disable"
            ),
            "sslmode=disable",
        ),
    ] {
        let settings = PgSettings::resolve(Some(&conn), &env(&[])).unwrap();
        let m = connect(&settings).await.unwrap_err().to_string();
        assert!(
            m.contains(&format!(
                "{mode}, plain text): fake server says no (SQLSTATE 28P01)"
            )),
            "{m}"
        );
        assert!(!m.contains("s3cr3t") && !m.contains("tls"), "{m}");
        assert_eq!(fake.next().await.password.as_deref(), Some("s3cr3t"));
    }
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_per_address() {
    // Accepts the connection and never answers the SSLRequest.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let conn = format!("host=127.0.0.1 port={port} user=u dbname=d sslmode=require");
    for env in [
        env(&[("PGCONNECT_TIMEOUT", "2".into())]),
        env(&[("PGCONNECT_TIMEOUT", "1".into())]),
    ] {
        let e = connect(&PgSettings::resolve(Some(&conn), &env).unwrap())
            .await
            .unwrap_err();
        // libpq waits at least 2 s.
        assert!(
            e.to_string()
                .ends_with("(sslmode=require): timeout expired after 2 s"),
            "{e}"
        );
        assert_eq!(e.class(), ErrorClass::Transient);
    }
    assert!(
        super::psql(
            Some(&conn),
            &env(&[("PGCONNECT_TIMEOUT", "2".into())]),
            "select 1"
        )
        .await
        .unwrap_err()
        .contains("timeout expired")
    );
    task.abort();
}
