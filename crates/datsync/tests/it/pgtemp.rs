//! The throwaway PostgreSQL server: a real `initdb` + `postgres` from the machine's
//! server binaries, used over its unix socket, then stopped and removed.

use datsync::{TEMP_USER, TempPostgres};
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// Whether process `pid` still exists (signal 0 probes without signalling).
fn alive(pid: u32) -> bool {
    kill(Pid::from_raw(i32::try_from(pid).unwrap()), None).is_ok()
}

async fn use_server(pg: &TempPostgres) {
    let (client, connection) =
        tokio_postgres::connect(&pg.connection_string(), tokio_postgres::NoTls)
            .await
            .unwrap();
    let conn = tokio::spawn(connection);
    let one: i32 = client.query_one("select 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    let user: String = client
        .query_one("select current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, TEMP_USER);
    client
        .batch_execute("create table demo (id int primary key, note text); insert into demo values (1, 'ü'), (2, 'b')")
        .await
        .unwrap();
    let n: i64 = client
        .query_one("select count(*) from demo", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    drop(client);
    conn.await.unwrap().unwrap();
}

#[tokio::test]
async fn throwaway_server_runs_on_a_unix_socket_and_vanishes_on_drop() {
    let pg = tokio::task::spawn_blocking(TempPostgres::start)
        .await
        .unwrap()
        .unwrap();
    let dir = pg.dir().to_path_buf();
    let pid = pg.pid().unwrap();
    assert!(dir.join(".s.PGSQL.5432").exists());
    assert!(
        pg.connection_string()
            .contains(&format!("host='{}'", dir.display()))
    );
    use_server(&pg).await;

    // The typed config reaches the same server.
    let (client, connection) = pg.config().connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let n: i64 = client
        .query_one("select count(*) from demo", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    drop(client);

    tokio::task::spawn_blocking(move || drop(pg)).await.unwrap();
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(!alive(pid), "server {pid} still running");
}

#[tokio::test]
async fn explicit_shutdown_reports_success() {
    let pg = tokio::task::spawn_blocking(TempPostgres::start)
        .await
        .unwrap()
        .unwrap();
    let dir = pg.dir().to_path_buf();
    let pid = pg.pid().unwrap();
    use_server(&pg).await;
    tokio::task::spawn_blocking(move || pg.shutdown())
        .await
        .unwrap()
        .unwrap();
    assert!(!dir.exists());
    assert!(!alive(pid));
}
