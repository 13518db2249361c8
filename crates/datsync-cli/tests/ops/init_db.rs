//! `datsync init-db`.

use datsync::{Profile, connect};

use crate::harness::{TestDb, datsync, json, rt};

#[test]
fn init_db_applies_the_migrations_once_and_honours_schema_overrides() {
    let db = TestDb::new();
    let cwd = tempfile::tempdir().unwrap();
    let first = json(&datsync(
        cwd.path(),
        &["init-db", "--database-url", &db.url(), "--json"],
        &[],
    ));
    assert_eq!(
        first["migrations_applied"].as_array().unwrap().len(),
        datsync::MIGRATIONS.len()
    );
    assert_eq!(first["migrations_applied"][0]["version"], 1);
    assert_eq!(first["target_table"], "created");
    assert_eq!(
        first["derived_tables"],
        serde_json::json!([{ "table": "drivers", "action": "created" }])
    );
    assert_eq!(first["changed"], true);
    assert_eq!(
        (first["schema"].as_str(), first["table"].as_str()),
        (Some("public"), Some(Profile::ztdwr().table.as_str()))
    );
    let again = json(&datsync(
        cwd.path(),
        &["init-db", "--database-url", &db.url(), "--json"],
        &[],
    ));
    assert_eq!(again["migrations_applied"], serde_json::json!([]));
    assert_eq!(
        (again["target_table"].as_str(), again["changed"].as_bool()),
        (Some("checked"), Some(false))
    );
    // DATABASE_URL from the environment, and DB_SCHEMA / DB_TABLE overriding the profile.
    let other = json(&datsync(
        cwd.path(),
        &["init-db", "--json"],
        &[
            ("DATABASE_URL", &db.url()),
            ("DB_SCHEMA", "ops"),
            ("DB_TABLE", "docs2"),
        ],
    ));
    assert_eq!(
        (other["schema"].as_str(), other["table"].as_str()),
        (Some("ops"), Some("docs2"))
    );
    assert_eq!(other["target_table"], "created");
    let exists: bool = rt().block_on(async {
        let c = connect(&db.settings()).await.unwrap();
        c.query_one("SELECT to_regclass('ops.docs2') IS NOT NULL AND to_regclass('ops.sync_chunks') IS NOT NULL", &[])
            .await
            .unwrap()
            .get(0)
    });
    assert!(exists);
    let text = datsync(cwd.path(), &["init-db", "--database-url", &db.url()], &[]);
    assert_eq!(text.0, 0, "{}", text.2);
    assert!(text.1.contains("none applied"), "{}", text.1);
}
