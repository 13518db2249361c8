//! Running the binary, and a database per test.

use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::process::Command;

use chrono::Utc;
use datsync::{PgSettings, connect};
use serde_json::Value;

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn admin() -> PgSettings {
    PgSettings::from_connection_string(
        "host=127.0.0.1 port=5432 user=root dbname=postgres sslmode=disable",
    )
    .unwrap()
}

/// A database for one test, dropped when the value goes (also when the test panics).
pub struct TestDb {
    /// The database name.
    pub name: String,
}

impl TestDb {
    pub fn new() -> Self {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            Utc::now()
                .timestamp_nanos_opt()
                .unwrap_or_default()
                .cast_unsigned()
                .into(),
        );
        let name = format!("datsync_cli_{:016x}", h.finish());
        rt().block_on(async {
            let c = connect(&admin()).await.unwrap();
            c.batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
        });
        Self { name }
    }

    pub fn url(&self) -> String {
        format!(
            "postgresql://root@127.0.0.1:5432/{}?sslmode=disable",
            self.name
        )
    }

    pub fn settings(&self) -> PgSettings {
        admin().with_dbname(&self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Its own thread: a drop during a panic may happen inside another runtime.
        let _ = std::thread::spawn(move || {
            rt().block_on(async {
                if let Ok(c) = connect(&admin()).await {
                    let _ = c
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// Runs the binary in `cwd` with no database or checkpoint settings from the environment
/// (besides `env`); returns the exit code, stdout and stderr.
pub fn datsync(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_datsync"));
    cmd.args(args).current_dir(cwd);
    for var in [
        "DATABASE_URL",
        "POSTGRES_CONNECTION_STRING",
        "DB_HOST",
        "DB_PORT",
        "DB_NAME",
        "DB_USER",
        "DB_PASSWORD",
        "DB_SSL_MODE",
        "DB_SCHEMA",
        "DB_TABLE",
        "CHECKPOINT_BASE_PATH",
        "CHECKPOINT_RETENTION_DAYS",
        "DATSYNC_PROFILE",
        "RUST_LOG",
        "DB_AUTH",
        "DB_POOLER",
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGDATABASE",
        "PGUSER",
        "PGPASSWORD",
        "PGPASSFILE",
        "PGSERVICE",
        "PGSERVICEFILE",
        "PGSSLMODE",
        "PGSSLROOTCERT",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn json(out: &(i32, String, String)) -> Value {
    assert_eq!(out.0, 0, "stdout: {}\nstderr: {}", out.1, out.2);
    serde_json::from_str(out.1.trim()).unwrap_or_else(|e| panic!("{e}: {}", out.1))
}
