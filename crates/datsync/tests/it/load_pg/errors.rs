//! SQLSTATE classification of real server errors, and connection failures.

use datsync::{ChunkId, ErrorClass, LoadError, Loader, PgError, PgSettings, connect, init_db};

use super::db::with_db;
use super::docs::{batch, doc, docs_profile, register};

async fn sqlstate_of(c: &tokio_postgres::Client, sql: &str) -> (String, ErrorClass) {
    let e = PgError::query("test", c.batch_execute(sql).await.unwrap_err());
    (e.sqlstate().unwrap().to_owned(), e.class())
}

#[tokio::test]
async fn real_server_errors_are_classified() {
    with_db(|db| async move {
        let c = db.client().await;
        assert_eq!(
            sqlstate_of(&c, "SELECT 1/0").await,
            ("22012".into(), ErrorClass::Fatal)
        );
        assert_eq!(
            sqlstate_of(&c, "SELECT * FROM no_such_table").await,
            ("42P01".into(), ErrorClass::Fatal)
        );
        assert_eq!(
            sqlstate_of(
                &c,
                "CREATE TABLE u (k int primary key); INSERT INTO u VALUES (1), (1)"
            )
            .await,
            ("23505".into(), ErrorClass::Fatal)
        );
        assert_eq!(
            sqlstate_of(&c, "SET LOCAL lock_timeout = 1; SELECT 'x'::int").await,
            ("22P02".into(), ErrorClass::Fatal)
        );
        // statement_timeout cancels → 57014, transient.
        assert_eq!(
            sqlstate_of(&c, "SET statement_timeout = 1; SELECT pg_sleep(5)").await,
            ("57014".into(), ErrorClass::Transient)
        );
    })
    .await;
}

#[tokio::test]
async fn a_terminated_session_is_transient() {
    with_db(|db| async move {
        let victim = db.client().await;
        let pid: i32 = victim
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        let admin = db.client().await;
        admin
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap();
        let e = PgError::query("test", victim.batch_execute("SELECT 1").await.unwrap_err());
        assert_eq!(e.class(), ErrorClass::Transient, "{e}");
    })
    .await;
}

#[tokio::test]
async fn a_refused_connection_is_transient_and_keeps_the_password_secret() {
    let settings = PgSettings::from_connection_string(
        "postgresql://root:s3cr3t@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5",
    )
    .unwrap();
    let e = connect(&settings).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient, "{e}");
    assert!(!e.to_string().contains("s3cr3t"), "{e}");
    assert!(!format!("{e:?}").contains("s3cr3t"));
}

#[tokio::test]
async fn a_missing_target_column_is_a_fatal_load_error() {
    with_db(|db| async move {
        let mut c = db.client().await;
        let p = docs_profile();
        init_db(&mut c, &p).await.unwrap();
        c.batch_execute("ALTER TABLE docs DROP COLUMN note")
            .await
            .unwrap();
        let sync = register(&c, 1, "a.dat").await;
        let err = Loader::new(&p)
            .load_chunk(
                &mut c,
                &sync,
                ChunkId(0),
                "c",
                &batch(&p, &[doc(2, "k", "a")]),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, LoadError::Database { .. }));
        assert_eq!(err.class(), ErrorClass::Fatal, "{err}");
    })
    .await;
}
