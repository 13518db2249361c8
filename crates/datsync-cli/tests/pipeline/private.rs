//! A private PostgreSQL server (`datsync::TempPostgres`) that a test stops, starts again and
//! fills up, with a database of its own per case and a client of the test's own for
//! assertions; and the real binary started against it. Commits are synchronous: an immediate
//! stop is a crash, and what was committed must stay.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::Outcome;

pub struct Server {
    pub pg: datsync::TempPostgres,
    rt: tokio::runtime::Runtime,
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(Vec::new())
    }

    /// A server with extra settings (`-c name=value`).
    pub fn start_with(settings: Vec<(String, String)>) -> Self {
        let mut all = vec![("synchronous_commit".to_owned(), "on".to_owned())];
        all.extend(settings);
        let options = datsync::TempPostgresOptions {
            settings: all,
            ..datsync::TempPostgresOptions::default()
        };
        let pg = datsync::TempPostgres::start_with(&options).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Self { pg, rt }
    }

    /// The connection string of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        let url = self.pg.connection_string();
        let default = format!("dbname={}", datsync::TEMP_DATABASE);
        assert!(url.contains(&default), "{url}");
        url.replace(&default, &format!("dbname={db}"))
    }

    /// Runs `sql` in database `db` on a connection of its own.
    pub fn query(&self, db: &str, sql: &str) -> Vec<tokio_postgres::Row> {
        self.rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&self.url(db), tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("connecting to {db}: {e}"));
            let conn = tokio::spawn(conn);
            let rows = client.query(sql, &[]).await;
            drop(client);
            let _ = conn.await;
            rows.unwrap_or_else(|e| panic!("{sql}: {}", db_error(&e)))
        })
    }

    /// Runs statements (no rows) in database `db`.
    pub fn batch(&self, db: &str, sql: &str) {
        self.rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&self.url(db), tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("connecting to {db}: {e}"));
            let conn = tokio::spawn(conn);
            let done = client.batch_execute(sql).await;
            drop(client);
            let _ = conn.await;
            done.unwrap_or_else(|e| panic!("{sql}: {}", db_error(&e)));
        });
    }

    /// A new database `name`.
    pub fn create_db(&self, name: &str) {
        self.batch(datsync::TEMP_DATABASE, &format!("CREATE DATABASE {name}"));
    }

    /// Waits until no session but the test's is on database `db`: after a kill, the dead
    /// process's backend may still be finishing a statement (a COMMIT already sent commits).
    pub fn wait_for_other_sessions(&self, db: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let rows = self.query(
                db,
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid()",
            );
            if rows[0].get::<_, i64>(0) == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sessions of a killed process never ended"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server in `mode` and starts it again on its data.
    pub fn restart(&mut self, mode: datsync::StopMode) {
        self.pg.stop_now(mode).unwrap();
        self.pg.start_again().unwrap();
    }

    /// SIGKILL to the postmaster; once every process of the old server has gone (its
    /// backends and helpers notice the postmaster's death and exit; a new postmaster must
    /// not share the data directory with them), the server is started again and recovers.
    pub fn kill_and_start_again(&mut self) {
        self.pg.stop_now(datsync::StopMode::Kill).unwrap();
        let data = self.pg.dir().join("data").canonicalize().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        // Every server process works in the data directory.
        while processes_in(&data) > 0 {
            assert!(
                Instant::now() < deadline,
                "processes of the killed server never exited"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.pg.start_again().unwrap();
    }
}

/// The server's message of a failed statement, else the driver's.
fn db_error(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), ToString::to_string)
}

/// How many processes have `dir` as their working directory.
fn processes_in(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd == dir))
        .count()
}

/// `datsync ARGS` started in `dir` with a clean environment plus `env` and `RUST_LOG=warn`.
pub fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_datsync"));
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("RUST_LOG", "warn")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// What a started process printed and how it ended.
pub fn finish(child: Child) -> Outcome {
    let out = child.wait_with_output().unwrap();
    Outcome {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Waits until the run reaches pause point `marker` (its file appears): `true`, or ends
/// without reaching it: `false`.
pub fn reached(marker: &Path, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if marker.exists() {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return marker.exists();
        }
        assert!(
            Instant::now() < deadline,
            "never reached {}",
            marker.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
