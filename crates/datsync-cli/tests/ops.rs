//! `datsync init-db`, `list`, `status` and `gc` as a user runs them: the real binary against
//! the real PostgreSQL (one database per test) and real checkpoint directories. The state
//! they inspect is built with the library.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_wrap)]

use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use arrow_array::RecordBatch;
use chrono::{TimeDelta, Utc};
use datsync::checkpoint::{CheckpointManager, ChunkOutcome, Clock, ManualClock, NewCheckpoint};
use datsync::load::{ChunkLoad, Loader};
use datsync::model::{ChunkId, SourceFingerprint, SyncId, SyncStatus};
use datsync::parse::{Decoder, ParseError, ParseOptions, decode_reader};
use datsync::pg::{PgSettings, connect, init_db};
use datsync::profile::Profile;
use datsync::sample::{SampleOptions, SampleSize, write_sample};
use datsync::status::{SyncCounts, SyncOutcome, SyncRegistration, finish_sync, register_sync};
use datsync::store::Store;
use datsync::validate::RowError;
use serde_json::Value;

const OLDER: &str = "sync_20250129_143022_a3f4b2c1";
const NEWER: &str = "sync_20250130_090000_0badf00d";
const PASSWORD: &str = "s3cr3t-pw-77";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn admin() -> PgSettings {
    PgSettings::from_connection_string(
        "host=127.0.0.1 port=5432 user=root dbname=postgres sslmode=disable",
    )
    .unwrap()
}

/// A database for one test, dropped when the value goes (also when the test panics).
struct TestDb {
    name: String,
}

impl TestDb {
    fn new() -> Self {
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

    fn url(&self) -> String {
        format!(
            "postgresql://root@127.0.0.1:5432/{}?sslmode=disable",
            self.name
        )
    }

    fn settings(&self) -> PgSettings {
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
fn datsync(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
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

fn json(out: &(i32, String, String)) -> Value {
    assert_eq!(out.0, 0, "stdout: {}\nstderr: {}", out.1, out.2);
    serde_json::from_str(out.1.trim()).unwrap_or_else(|e| panic!("{e}: {}", out.1))
}

/// Three chunks of ten rows: (text batch, typed batch, rows rejected, validation errors).
type Chunks = Vec<(RecordBatch, RecordBatch, u64, Vec<RowError>)>;

fn chunks(profile: &Profile) -> (Vec<u8>, Chunks) {
    let mut file = Vec::new();
    let options = SampleOptions {
        size: SampleSize::Rows(30),
        seed: 7,
        invalid_rate: 0.1,
        ..SampleOptions::default()
    };
    write_sample(&mut file, &options).unwrap();
    let mut decoder = Decoder::new(
        profile,
        ParseOptions {
            batch_rows: 10,
            ..ParseOptions::default()
        },
    );
    let mut out = Vec::new();
    decode_reader(file.as_slice(), &mut decoder, |text| {
        let v = datsync::validate::validate(profile, &text).unwrap();
        let typed = datsync::transform::transform(profile, &v.accepted)
            .unwrap()
            .batch;
        out.push((text, typed, v.rejected() as u64, v.errors));
        Ok::<(), ParseError>(())
    })
    .unwrap();
    (file, out)
}

fn fingerprint(file: &[u8]) -> SourceFingerprint {
    SourceFingerprint {
        size_bytes: file.len() as u64,
        etag: None,
        modified: None,
        sha256: None,
    }
}

fn new_checkpoint(file: &[u8]) -> NewCheckpoint {
    NewCheckpoint {
        source_file: "ztdwr.dat".into(),
        source_path: "/in/ztdwr.dat".into(),
        fingerprint: fingerprint(file),
        chunk_size: 10,
    }
}

/// What [`seed`] built, to compare with what the commands print.
struct Seeded {
    /// Loads of chunks 0 and 1 of the newer sync.
    loads: [ChunkLoad; 2],
    /// Rows read, rows rejected, validation errors of the newer sync.
    total: i64,
    rejected: i64,
    errors: Vec<RowError>,
}

/// Two syncs in the database: the older one SUCCESS; the newer one PARTIAL_SUCCESS with
/// chunks 0 and 1 in the ledger, and a checkpoint whose manifest has chunk 0 completed,
/// chunk 1 failed (the crash came between its commit and the manifest update: the ledger
/// wins) and chunk 2 failed.
fn seed(db: &TestDb, ck_dir: &Path) -> Seeded {
    let profile = Profile::ztdwr();
    let (file, chunks) = chunks(&profile);
    assert_eq!(chunks.len(), 3);
    rt().block_on(async {
        let mut client = connect(&db.settings()).await.unwrap();
        init_db(&mut client, &profile).await.unwrap();
        let loader = Loader::new(&profile);
        let reg = |id: &str| SyncRegistration {
            sync_id: SyncId::parse(id).unwrap(),
            file_name: "ztdwr.dat".into(),
            file_path: "/in/ztdwr.dat".into(),
            file_size_bytes: Some(file.len() as i64),
        };
        let older = register_sync(&client, "public", &reg(OLDER)).await.unwrap();
        loader
            .load_chunk(&mut client, &older, ChunkId(0), "c0", &chunks[0].1)
            .await
            .unwrap();
        let done = SyncOutcome {
            status: SyncStatus::Success,
            counts: SyncCounts {
                total: Some(10),
                ..SyncCounts::default()
            },
            error_message: None,
            validation_errors: None,
        };
        finish_sync(&client, "public", &older.sync_id, &done)
            .await
            .unwrap();

        let newer = register_sync(&client, "public", &reg(NEWER)).await.unwrap();
        let mut loads = [ChunkLoad::default(); 2];
        for (i, load) in loads.iter_mut().enumerate() {
            *load = loader
                .load_chunk(&mut client, &newer, ChunkId(i as u32), "c", &chunks[i].1)
                .await
                .unwrap();
        }
        let errors: Vec<RowError> = chunks.iter().flat_map(|c| c.3.clone()).collect();
        let rejected: u64 = chunks.iter().map(|c| c.2).sum();
        let outcome = SyncOutcome {
            status: SyncStatus::PartialSuccess,
            counts: SyncCounts {
                total: Some(30),
                inserted: Some(loads.iter().map(|l| l.inserted as i64).sum()),
                updated: Some(loads.iter().map(|l| l.updated as i64).sum()),
                failed: Some(rejected as i64),
                validation_errors_count: Some(errors.len() as i64),
                ..SyncCounts::default()
            },
            error_message: Some("1 chunk failed: connection reset".into()),
            validation_errors: Some(serde_json::to_value(&errors).unwrap()),
        };
        finish_sync(&client, "public", &newer.sync_id, &outcome)
            .await
            .unwrap();

        let store = Store::open(ck_dir.to_str().unwrap()).unwrap();
        let mut m = CheckpointManager::new(store, newer.sync_id.clone());
        m.create_checkpoint(new_checkpoint(&file)).await.unwrap();
        for (i, c) in chunks.iter().enumerate() {
            m.save_chunk_parquet(ChunkId(i as u32), &c.0).await.unwrap();
        }
        m.finalize_conversion(fingerprint(&file)).await.unwrap();
        let outcome = |l: &ChunkLoad, rejected| ChunkOutcome {
            records_inserted: l.inserted,
            records_updated: l.updated,
            validation_errors: rejected,
            rows_rejected: rejected,
        };
        m.mark_chunk_processing(ChunkId(0)).await.unwrap();
        m.mark_chunk_complete(ChunkId(0), outcome(&loads[0], chunks[0].2))
            .await
            .unwrap();
        m.mark_chunk_processing(ChunkId(1)).await.unwrap();
        m.mark_chunk_failed(ChunkId(1), "killed after commit")
            .await
            .unwrap();
        m.mark_chunk_processing(ChunkId(2)).await.unwrap();
        m.mark_chunk_failed(ChunkId(2), "connection reset")
            .await
            .unwrap();
        Seeded {
            loads,
            total: 30,
            rejected: rejected as i64,
            errors,
        }
    })
}

#[test]
fn init_db_applies_the_migrations_once_and_honours_schema_overrides() {
    let db = TestDb::new();
    let cwd = tempfile::tempdir().unwrap();
    let first = json(&datsync(
        cwd.path(),
        &["init-db", "--database-url", &db.url(), "--json"],
        &[],
    ));
    assert_eq!(first["migrations_applied"].as_array().unwrap().len(), 2);
    assert_eq!(first["migrations_applied"][0]["version"], 1);
    assert_eq!(first["target_table"], "created");
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

#[test]
fn list_shows_recent_syncs_newest_first() {
    let db = TestDb::new();
    let cwd = tempfile::tempdir().unwrap();
    let ck = cwd.path().join("ck");
    let s = seed(&db, &ck);
    let url = db.url();

    let list = json(&datsync(
        cwd.path(),
        &["list", "--database-url", &url, "--json"],
        &[],
    ));
    let syncs = list["syncs"].as_array().unwrap();
    let ids: Vec<&str> = syncs
        .iter()
        .map(|v| v["sync_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![NEWER, OLDER], "newest first");
    let n = &syncs[0];
    assert_eq!(n["status"], "PARTIAL_SUCCESS");
    assert_eq!(n["file_name"], "ztdwr.dat");
    assert_eq!(n["records_total"], s.total);
    let inserted: u64 = s.loads.iter().map(|l| l.inserted).sum();
    let updated: u64 = s.loads.iter().map(|l| l.updated).sum();
    assert_eq!(n["records_inserted"], inserted);
    assert_eq!(n["records_updated"], updated);
    assert_eq!(n["records_failed"], s.rejected);
    assert!(n["duration_seconds"].as_f64().unwrap() >= 0.0);
    let limited = json(&datsync(
        cwd.path(),
        &["list", "--database-url", &url, "--json", "--limit", "1"],
        &[],
    ));
    assert_eq!(limited["syncs"].as_array().unwrap().len(), 1);
    let listed = datsync(cwd.path(), &["list", "--database-url", &url], &[]);
    assert!(
        listed.1.contains(NEWER) && listed.1.contains("PARTIAL_SUCCESS"),
        "{}",
        listed.1
    );
}

#[test]
fn status_merges_metadata_ledger_and_checkpoint() {
    let db = TestDb::new();
    let cwd = tempfile::tempdir().unwrap();
    let ck = cwd.path().join("ck");
    let s = seed(&db, &ck);
    let url = db.url();
    let ck_arg = ck.to_str().unwrap();
    let inserted: u64 = s.loads.iter().map(|l| l.inserted).sum();
    let updated: u64 = s.loads.iter().map(|l| l.updated).sum();

    // No id: the most recent sync.
    let st = json(&datsync(
        cwd.path(),
        &[
            "status",
            "--database-url",
            &url,
            "--checkpoint-dir",
            ck_arg,
            "--json",
        ],
        &[],
    ));
    assert_eq!(st["sync_id"], NEWER);
    assert_eq!(st["metadata"]["status"], "PARTIAL_SUCCESS");
    assert_eq!(
        st["metadata"]["error_message"],
        "1 chunk failed: connection reset"
    );
    assert_eq!(st["metadata"]["validation_errors_count"], s.errors.len());
    assert!(!s.errors.is_empty(), "the sample has invalid rows");
    let sample = st["metadata"]["validation_errors_sample"]
        .as_array()
        .unwrap();
    assert_eq!(sample.len(), s.errors.len().min(5));
    assert_eq!(sample[0]["line"], s.errors[0].line);
    assert_eq!(
        sample[0]["reason"].as_str(),
        Some(s.errors[0].reason.as_str())
    );
    assert_eq!(st["ledger"]["chunks_committed"], 2);
    assert_eq!(st["ledger"]["inserted"], inserted);
    assert_eq!(st["ledger"]["updated"], updated);
    assert_eq!(st["progress"]["text"], "2/3 chunks completed");
    assert_eq!(st["progress"]["chunks_completed"], 2);
    assert_eq!(st["progress"]["chunks_failed"], 1);
    assert_eq!(st["checkpoint"]["status"], "processing");
    let chunks = st["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 3);
    // The ledger wins: chunk 1 is committed although the manifest says failed.
    assert_eq!(chunks[1]["status"], "completed");
    assert_eq!(chunks[1]["manifest_status"], "failed");
    assert_eq!(chunks[1]["committed"], true);
    assert_eq!(chunks[1]["inserted"], s.loads[1].inserted);
    assert_eq!(chunks[1]["error"], Value::Null);
    assert_eq!(
        (
            chunks[0]["first_line"].as_u64(),
            chunks[0]["last_line"].as_u64()
        ),
        (Some(2), Some(11))
    );
    assert_eq!(chunks[2]["status"], "failed");
    assert_eq!(chunks[2]["attempts"], 1);
    let failed = st["failed_chunks"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (failed[0]["chunk_id"].as_u64(), failed[0]["error"].as_str()),
        (Some(2), Some("connection reset"))
    );
    assert!(st["time_saved"].is_null() && st["time_saved_note"].is_string());

    // The older sync by id: no checkpoint, the ledger alone.
    let old = json(&datsync(
        cwd.path(),
        &[
            "status",
            OLDER,
            "--database-url",
            &url,
            "--checkpoint-dir",
            ck_arg,
            "--json",
        ],
        &[],
    ));
    assert_eq!(old["metadata"]["status"], "SUCCESS");
    assert_eq!(old["ledger"]["chunks_committed"], 1);
    assert!(old["checkpoint"].is_null());
    assert_eq!(
        old["progress"]["text"],
        "1 chunks committed (total unknown without a checkpoint)"
    );

    // Text forms, and the checkpoint directory from CHECKPOINT_BASE_PATH.
    let text = datsync(
        cwd.path(),
        &["status", NEWER, "--database-url", &url],
        &[("CHECKPOINT_BASE_PATH", ck_arg)],
    );
    assert_eq!(text.0, 0, "{}", text.2);
    assert!(text.1.contains("2/3 chunks completed"), "{}", text.1);
    assert!(text.1.contains("failed chunk  2"), "{}", text.1);
    assert!(text.1.contains("completed*"), "{}", text.1);
}

#[test]
fn an_unknown_sync_is_a_clear_error() {
    let db = TestDb::new();
    let cwd = tempfile::tempdir().unwrap();
    let url = db.url();
    let (code, _, err) = datsync(cwd.path(), &["status", "--database-url", &url], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("init-db"), "{err}");
    json(&datsync(
        cwd.path(),
        &["init-db", "--database-url", &url, "--json"],
        &[],
    ));
    let (code, out, err) = datsync(
        cwd.path(),
        &[
            "status",
            "sync_20000101_000000_deadbeef",
            "--database-url",
            &url,
        ],
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("sync_20000101_000000_deadbeef not found"),
        "{err}"
    );
    let (code, _, err) = datsync(cwd.path(), &["status", "--database-url", &url], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("no syncs recorded"), "{err}");
    let (code, _, err) = datsync(
        cwd.path(),
        &["status", "not-a-sync", "--database-url", &url],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("invalid sync id"), "{err}");
}

#[test]
fn a_password_never_appears_in_any_output() {
    let db = TestDb::new();
    let cwd = tempfile::tempdir().unwrap();
    let ck = cwd.path().join("ck");
    seed(&db, &ck);
    // Trust authentication ignores the password, so every command succeeds with it.
    let url = format!(
        "postgresql://root:{PASSWORD}@127.0.0.1:5432/{}?sslmode=disable",
        db.name
    );
    let ck_arg = ck.to_str().unwrap();
    let bad = format!(
        "postgresql://root:{PASSWORD}@127.0.0.1:1/{}?sslmode=disable",
        db.name
    );
    let runs: Vec<(Vec<&str>, i32)> = vec![
        (vec!["init-db", "--database-url", &url], 0),
        (vec!["init-db", "--database-url", &url, "--json"], 0),
        (vec!["list", "--database-url", &url], 0),
        (vec!["list", "--database-url", &url, "--json"], 0),
        (
            vec!["status", "--database-url", &url, "--checkpoint-dir", ck_arg],
            0,
        ),
        (
            vec![
                "status",
                "--database-url",
                &url,
                "--checkpoint-dir",
                ck_arg,
                "--json",
            ],
            0,
        ),
        (vec!["list", "--database-url", &bad], 1),
        (vec!["init-db", "--database-url", &bad, "--json"], 1),
        (
            vec![
                "status",
                "--database-url",
                "postgresql://root:s3cr3t-pw-77@h/d?sslmode=bogus",
            ],
            1,
        ),
    ];
    for (args, want) in runs {
        let (code, out, err) = datsync(cwd.path(), &args, &[]);
        assert_eq!(code, want, "{args:?}: {out}{err}");
        assert!(
            !out.contains(PASSWORD) && !err.contains(PASSWORD),
            "{args:?}: {out}{err}"
        );
    }
    let (code, out, err) = datsync(
        cwd.path(),
        &["list"],
        &[
            ("DB_HOST", "127.0.0.1"),
            ("DB_PORT", "1"),
            ("DB_PASSWORD", PASSWORD),
        ],
    );
    assert_eq!(code, 1);
    assert!(
        !out.contains(PASSWORD) && !err.contains(PASSWORD),
        "{out}{err}"
    );
}

#[test]
fn gc_removes_expired_checkpoints_and_keeps_running_ones() {
    let cwd = tempfile::tempdir().unwrap();
    let ck = cwd.path().join("ck");
    let profile = Profile::ztdwr();
    let (file, chunks) = chunks(&profile);
    let old = SyncId::parse(OLDER).unwrap();
    let active = SyncId::parse(NEWER).unwrap();
    rt().block_on(async {
        let store = Store::open(ck.to_str().unwrap()).unwrap();
        // A finished sync last updated 30 days ago.
        let clock = Arc::new(ManualClock::new(Utc::now() - TimeDelta::days(30)));
        let mut m = CheckpointManager::new(store.clone(), old.clone())
            .with_clock(clock.clone() as Arc<dyn Clock>);
        m.create_checkpoint(new_checkpoint(&file)).await.unwrap();
        m.save_chunk_parquet(ChunkId(0), &chunks[0].0)
            .await
            .unwrap();
        m.finalize_conversion(fingerprint(&file)).await.unwrap();
        m.mark_chunk_complete(ChunkId(0), ChunkOutcome::default())
            .await
            .unwrap();
        // A converting sync last updated two hours ago: it may still be running.
        let clock = Arc::new(ManualClock::new(Utc::now() - TimeDelta::hours(2)));
        let mut m =
            CheckpointManager::new(store, active.clone()).with_clock(clock as Arc<dyn Clock>);
        m.create_checkpoint(new_checkpoint(&file)).await.unwrap();
        m.save_chunk_parquet(ChunkId(0), &chunks[0].0)
            .await
            .unwrap();
    });
    let ck_arg = ck.to_str().unwrap();
    // Default retention (7 days): the 30-day-old one goes, the 2-hour-old one is recent.
    let r = json(&datsync(
        cwd.path(),
        &["gc", "--json"],
        &[("CHECKPOINT_BASE_PATH", ck_arg)],
    ));
    assert_eq!(r["retention_days"], 7);
    assert_eq!(r["removed"], serde_json::json!([OLDER]));
    assert_eq!(
        r["kept"],
        serde_json::json!([{ "sync_id": NEWER, "reason": "recent" }])
    );
    assert!(!ck.join(OLDER).exists() && ck.join(NEWER).exists());
    // Retention 0 days from the environment: the running sync is still kept.
    let r = json(&datsync(
        cwd.path(),
        &["gc", "--checkpoint-dir", ck_arg, "--json"],
        &[("CHECKPOINT_RETENTION_DAYS", "0")],
    ));
    assert_eq!(r["retention_days"], 0);
    assert_eq!(r["removed"], serde_json::json!([]));
    assert_eq!(
        r["kept"],
        serde_json::json!([{ "sync_id": NEWER, "reason": "active" }])
    );
    let text = datsync(
        cwd.path(),
        &["gc", "--days", "0", "--checkpoint-dir", ck_arg],
        &[],
    );
    assert!(
        text.1
            .contains("kept         sync_20250130_090000_0badf00d: its sync may still be running"),
        "{}",
        text.1
    );
    // A directory that does not exist: nothing to do, and nothing created.
    let missing = cwd.path().join("nope");
    let r = json(&datsync(
        cwd.path(),
        &[
            "gc",
            "--checkpoint-dir",
            missing.to_str().unwrap(),
            "--json",
        ],
        &[],
    ));
    assert_eq!(
        (
            r["removed"].as_array().unwrap().len(),
            r["kept"].as_array().unwrap().len()
        ),
        (0, 0)
    );
    assert!(!missing.exists());
}
