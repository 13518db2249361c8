//! A fresh PostgreSQL database per test, dropped at the end even when the test panics.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use datsync::{PgSettings, connect};
use futures::FutureExt;
use std::hash::{BuildHasher, Hasher};
use tokio_postgres::Client;

/// Settings of the server the tests use: `DATABASE_URL` when set, else the local trust
/// server.
pub fn server() -> PgSettings {
    let url = std::env::var("DATSYNC_TEST_DATABASE_URL").unwrap_or_else(|_| {
        "host=127.0.0.1 port=5432 user=root dbname=postgres sslmode=disable".into()
    });
    PgSettings::from_connection_string(&url).expect("valid test database settings")
}

/// A database created for one test.
pub struct TestDb {
    /// Settings pointing at the test database.
    pub settings: PgSettings,
}

impl TestDb {
    /// A new client on the test database.
    pub async fn client(&self) -> Client {
        connect(&self.settings)
            .await
            .expect("connect to the test database")
    }
}

/// Runs `test` against a new database `datsync_test_<random>`, then drops it (also when
/// the test panics, whose panic is then resumed).
pub async fn with_db<F, Fut>(test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let admin_settings = server();
    let admin = connect(&admin_settings)
        .await
        .expect("connect to the postgres database");
    let name = format!("datsync_test_{:016x}", random_u64());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the test database");
    let db = TestDb {
        settings: admin_settings.with_dbname(&name),
    };
    let outcome = AssertUnwindSafe(test(db)).catch_unwind().await;
    let dropped = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    dropped.expect("drop the test database");
}

/// A random number from the standard library's per-process random hash keys.
fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}
