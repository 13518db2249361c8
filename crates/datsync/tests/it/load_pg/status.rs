//! `sync_metadata` writes and materialized view refreshes.

use datsync::{
    SyncCounts, SyncOutcome, SyncStatus, ViewOutcome, committed_chunks, finish_sync, init_db,
    refresh_materialized_views,
};
use tokio_postgres::Client;

use super::db::with_db;
use super::docs::{docs_profile, register};

async fn meta(c: &Client, sync_id: &str) -> tokio_postgres::Row {
    c.query_one(
        "SELECT status, records_total, records_inserted, records_updated, records_failed,
                error_message, validation_errors, completed_at IS NOT NULL, duration_seconds
           FROM sync_metadata WHERE sync_id = $1",
        &[&sync_id],
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn sync_metadata_keeps_bad_input_and_never_erases_counts() {
    with_db(|db| async move {
        let mut c = db.client().await;
        init_db(&mut c, &docs_profile()).await.unwrap();
        let sync = register(&c, 1, "a.dat").await;
        let id = sync.sync_id.as_str();
        assert_eq!(meta(&c, id).await.get::<_, String>(0), "IN_PROGRESS");
        let counts = SyncCounts {
            rows_read: 100,
            records_inserted: 60,
            records_updated: 30,
            rows_rejected: 10,
            ..SyncCounts::default()
        };
        let bad = SyncOutcome {
            status: SyncStatus::BadInput,
            counts: Some(counts),
            validation_errors_count: Some(1),
            error_message: Some("error rate 10% above the threshold".into()),
            validation_errors: Some(serde_json::json!([{"line": 7, "reason": "bbm_actual > 500"}])),
        };
        assert_eq!(
            finish_sync(&c, "public", &sync.sync_id, &bad)
                .await
                .unwrap(),
            SyncStatus::BadInput
        );
        // A later FAILED neither replaces BAD_INPUT nor erases the counts.
        let failed = SyncOutcome {
            status: SyncStatus::Failed,
            counts: None,
            validation_errors_count: None,
            error_message: None,
            validation_errors: None,
        };
        assert_eq!(
            finish_sync(&c, "public", &sync.sync_id, &failed)
                .await
                .unwrap(),
            SyncStatus::BadInput
        );
        let r = meta(&c, id).await;
        assert_eq!(r.get::<_, String>(0), "BAD_INPUT");
        assert_eq!(
            (
                r.get::<_, i64>(1),
                r.get::<_, i64>(2),
                r.get::<_, i64>(3),
                r.get::<_, i64>(4)
            ),
            (100, 60, 30, 10)
        );
        assert_eq!(r.get::<_, String>(5), "error rate 10% above the threshold");
        assert_eq!(r.get::<_, serde_json::Value>(6)[0]["line"], 7);
        assert!(r.get::<_, bool>(7));
        assert!(r.get::<_, f64>(8) >= 0.0);
        // A resumed sync that succeeds may replace BAD_INPUT.
        register(&c, 1, "a.dat").await;
        let ok = SyncOutcome {
            status: SyncStatus::Success,
            ..failed
        };
        assert_eq!(
            finish_sync(&c, "public", &sync.sync_id, &ok).await.unwrap(),
            SyncStatus::Success
        );
        assert_eq!(
            meta(&c, id).await.get::<_, Option<String>>(5),
            None,
            "a sync that succeeds at last keeps no error message of an earlier run"
        );
        assert!(
            committed_chunks(&c, "public", &sync.sync_id)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn views_refresh_concurrently_then_plain_and_failures_are_reported() {
    with_db(|db| async move {
        let c = db.client().await;
        c.batch_execute(
            "CREATE TABLE base (k int PRIMARY KEY, d int);
             INSERT INTO base VALUES (1, 1);
             CREATE MATERIALIZED VIEW mv_unique AS SELECT k FROM base;
             CREATE UNIQUE INDEX ON mv_unique (k);
             CREATE MATERIALIZED VIEW mv_plain AS SELECT k FROM base;
             CREATE MATERIALIZED VIEW mv_bad AS SELECT k / d AS q FROM base;
             UPDATE base SET d = 0;",
        )
        .await
        .unwrap();
        let views: Vec<String> = ["mv_unique", "mv_plain", "mv_missing", "base", "mv_bad"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let got = refresh_materialized_views(&c, &views).await;
        let outcomes: Vec<&ViewOutcome> = got.iter().map(|v| &v.outcome).collect();
        assert_eq!(outcomes[0], &ViewOutcome::Refreshed { concurrently: true });
        assert_eq!(
            outcomes[1],
            &ViewOutcome::Refreshed {
                concurrently: false
            }
        );
        assert_eq!(outcomes[2], &ViewOutcome::Missing);
        assert_eq!(outcomes[3], &ViewOutcome::NotAView);
        assert!(
            matches!(outcomes[4], ViewOutcome::Failed { sqlstate: Some(s), .. } if s == "22012"),
            "{:?}",
            outcomes[4]
        );
    })
    .await;
}

#[tokio::test]
async fn a_legacy_sync_metadata_is_extended_not_replaced() {
    with_db(|db| async move {
        let mut c = db.client().await;
        c.batch_execute(
            "CREATE TABLE sync_metadata (
               sync_id varchar(64) PRIMARY KEY, file_name varchar(255), status varchar(20),
               records_total integer, records_inserted integer, error_message text,
               started_at timestamp, completed_at timestamp);
             INSERT INTO sync_metadata VALUES
               ('legacy_1', 'old.dat', 'SUCCESS', 10, 10, NULL, now(), now());",
        )
        .await
        .unwrap();
        init_db(&mut c, &docs_profile()).await.unwrap();
        let sync = register(&c, 1, "a.dat").await;
        let outcome = SyncOutcome {
            status: SyncStatus::PartialSuccess,
            counts: Some(SyncCounts {
                rows_read: 7,
                records_inserted: 5,
                ..SyncCounts::default()
            }),
            validation_errors_count: None,
            error_message: None,
            validation_errors: None,
        };
        let stored = finish_sync(&c, "public", &sync.sync_id, &outcome)
            .await
            .unwrap();
        assert_eq!(stored, SyncStatus::PartialSuccess);
        let legacy = c
            .query_one(
                "SELECT records_total, sync_seq FROM sync_metadata WHERE sync_id = 'legacy_1'",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(legacy.get::<_, i32>(0), 10);
        assert_eq!(legacy.get::<_, Option<i64>>(1), None);
        let r = meta(&c, sync.sync_id.as_str()).await;
        assert_eq!((r.get::<_, i32>(1), r.get::<_, i32>(2)), (7, 5));
    })
    .await;
}

#[tokio::test]
async fn a_legacy_sync_metadata_with_short_varchars_gets_names_and_errors_cut_to_fit() {
    with_db(|db| async move {
        let mut c = db.client().await;
        c.batch_execute(
            "CREATE TABLE sync_metadata (
               sync_id varchar(50) PRIMARY KEY, file_name varchar(8), file_path varchar(12),
               status varchar(20), records_total integer, error_message varchar(10),
               started_at timestamp, completed_at timestamp);",
        )
        .await
        .unwrap();
        init_db(&mut c, &docs_profile()).await.unwrap();
        let sync = register(&c, 1, "a_long_file_name.dat").await;
        let outcome = SyncOutcome {
            status: SyncStatus::Failed,
            counts: None,
            validation_errors_count: None,
            error_message: Some("a message longer than ten characters".into()),
            validation_errors: None,
        };
        finish_sync(&c, "public", &sync.sync_id, &outcome)
            .await
            .unwrap();
        let r = c
            .query_one(
                "SELECT file_name::text, file_path::text, error_message::text, status::text
                   FROM sync_metadata WHERE sync_id = $1",
                &[&sync.sync_id.as_str()],
            )
            .await
            .unwrap();
        let got: (String, String, String, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
        assert_eq!(
            got,
            (
                "a_long_f".into(),
                "data/hex-ztd".into(),
                "a message ".into(),
                "FAILED".into()
            )
        );
    })
    .await;
}
