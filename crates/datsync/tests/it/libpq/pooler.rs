//! A connection pooler is refused unless `DB_POOLER=session` says it keeps sessions. The
//! stand-in pooler forwards everything but answers the startup with a `BackendKeyData` of
//! its own, as PgBouncer does.

use std::collections::HashMap;

use datsync::{ErrorClass, PgSettings, connect};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::{plain_read_only_server, stop};

/// Relays the server's messages to the client, with its own process id in `BackendKeyData`.
async fn relay_rewriting_key(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
) {
    loop {
        let Ok(tag) = from.read_u8().await else {
            return;
        };
        let Ok(len) = from.read_u32().await else {
            return;
        };
        let mut body = vec![0; len as usize - 4];
        if from.read_exact(&mut body).await.is_err() {
            return;
        }
        if tag == b'K' {
            body[..4].copy_from_slice(&4_242_i32.to_be_bytes());
        }
        let mut msg = vec![tag];
        msg.extend_from_slice(&len.to_be_bytes());
        msg.extend_from_slice(&body);
        if to.write_all(&msg).await.is_err() {
            return;
        }
    }
}

async fn pooler(backend: u16) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(("127.0.0.1", backend)).await.unwrap();
            let (mut client_read, client_write) = client.into_split();
            let (server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
            });
            tokio::spawn(relay_rewriting_key(server_read, client_write));
        }
    });
    (port, task)
}

#[tokio::test]
async fn a_pooler_is_refused_unless_it_keeps_sessions() {
    let server = plain_read_only_server().await;
    let (port, task) = pooler(server.port()).await;
    let conn = format!("host=127.0.0.1 port={port} user=trusted dbname=postgres sslmode=disable");
    let mut env = HashMap::from([("HOME".to_owned(), "/nonexistent-datsync-home".to_owned())]);

    let e = connect(&PgSettings::resolve(Some(&conn), &env).unwrap())
        .await
        .unwrap_err();
    let m = e.to_string();
    assert!(
        m.starts_with(&format!(
            "127.0.0.1:{port} is reached through a connection pooler"
        )),
        "{m}"
    );
    assert!(
        m.contains("DB_POOLER=session") && m.contains("port 5432"),
        "{m}"
    );
    assert_eq!(e.class(), ErrorClass::Fatal);

    env.insert("DB_POOLER".into(), "session".into());
    let client = connect(&PgSettings::resolve(Some(&conn), &env).unwrap())
        .await
        .unwrap();
    client.simple_query("select 1").await.unwrap();

    env.insert("DB_POOLER".into(), "transaction".into());
    let e = PgSettings::resolve(Some(&conn), &env)
        .unwrap_err()
        .to_string();
    assert!(e.contains("DB_POOLER=transaction is not supported"), "{e}");

    // The same server without the pooler: accepted as it is.
    let direct = format!(
        "host=127.0.0.1 port={} user=trusted dbname=postgres sslmode=disable",
        server.port()
    );
    env.remove("DB_POOLER");
    connect(&PgSettings::resolve(Some(&direct), &env).unwrap())
        .await
        .unwrap();

    drop(client);
    task.abort();
    stop(server).await;
}
