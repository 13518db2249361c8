//! `DATSYNC_SUBMIT_ABOVE` (`--submit-above`): the queue trigger hands a blob larger than the
//! size to the work queue instead of loading it — the Functions host stays the trigger, and
//! `datsync worker` processes (a KEDA `ScaledJob`, a Container Apps job) load it — while a
//! blob of the size or less is loaded by the handler as before.

use std::process::{Command, Stdio};

use super::*;
use crate::errors::reference;

const QUEUE: &str = "ztdwr_blob_created";
const PATH: &str = "hex-ztdwr/ZTDWR_20250129.dat";

/// The query KEDA's `postgresql` trigger runs, read from deploy/kubernetes/workers/worker.yaml.
fn deployed_query() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/kubernetes/workers/worker.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let doc = <Value as serde::Deserialize>::deserialize(doc).unwrap();
        if doc["kind"] == "ScaledJob" {
            return doc["spec"]["triggers"][0]["metadata"]["query"]
                .as_str()
                .unwrap()
                .to_owned();
        }
    }
    panic!("no ScaledJob in {}", path.display());
}

/// The count the deployments scale on, as the scaler reads it.
fn scale_query(db: &TestDb) -> i64 {
    db.query(&deployed_query(), &[])[0].get(0)
}

/// `datsync queue --json` on `db`.
fn queue_json(db: &TestDb, dir: &std::path::Path) -> Value {
    let out = datsync(dir, &["queue", "--database-url", &db.url(), "--json"], &[]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    out.summary()
}

#[test]
fn a_blob_above_the_size_is_submitted_and_workers_load_it() {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let work = Work::new(3_000, 83, MESSY);
    emulator.upload(&work.file, BLOB);
    let (reference_db, expected, _) = reference(&work, &sync_id(83));
    let db = TestDb::new();
    let (etag, size) = etag_of(&emulator, BLOB);
    let limit = (size - 1).to_string();
    let handler = Handler::start(
        work.path(),
        &db.url(),
        &[(key, &value), ("DATSYNC_SUBMIT_ABOVE", &limit)],
        &[],
    );
    let event = blob_created(&emulator, PATH, &etag, size);

    let (status, reply) = handler.invoke(QUEUE, &queue_delivery(&event, 1, Encoding::HostDecoded));
    assert_eq!(status, 200, "{reply}");
    let r = &reply["ReturnValue"];
    assert_eq!(r["action"], "submitted", "{reply}");
    assert_eq!(r["finished"], true, "{reply}");
    assert_eq!(r["status"], "IN_PROGRESS", "{reply}");
    let sync = r["sync_id"].as_str().unwrap().to_owned();
    // The handler loaded nothing: every chunk and the sync's finish row wait for workers,
    // counted alike by the deployments' scale query and by `datsync queue --json`.
    assert!(db.table().is_empty(), "the handler loaded rows");
    assert_eq!(db.committed_chunks(&sync), 0);
    let chunks = expected["chunks_total"].as_i64().unwrap();
    assert_eq!(scale_query(&db), chunks + 1);
    let queue = queue_json(&db, work.path());
    assert_eq!(queue["pending"], scale_query(&db), "{queue}");
    assert_eq!(queue["query"], deployed_query(), "{queue}");
    assert_eq!(
        receipts(&db),
        [(
            "ZTDWR_20250129.dat".to_owned(),
            sync.clone(),
            1,
            true,
            false
        )]
    );

    // The host delivering the message again changes nothing: the receipt is finished.
    let (status, reply) = handler.invoke(QUEUE, &queue_delivery(&event, 2, Encoding::HostDecoded));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["ReturnValue"]["action"], "skipped_done", "{reply}");
    assert_eq!(scale_query(&db), chunks + 1);

    // Two workers, as a scaler starts them, load it and finish the sync.
    let workers: Vec<_> = (0..2)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_datsync"))
                .args(["worker", "--database-url", &db.url(), "--exit-when-idle"])
                .args(["--max-idle", "1s", "--json"])
                .current_dir(work.path())
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("RUST_LOG", "warn")
                .env(key, &value)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let pids: Vec<u32> = workers.iter().map(std::process::Child::id).collect();
    for w in workers {
        let out = w.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "worker: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(scale_query(&db), 0);
    assert!(
        rows(&db) == rows(&reference_db),
        "the workers' table differs from a run's"
    );
    let m = db.metadata(&sync).unwrap();
    assert_eq!(m["status"], expected["status"], "{m}");
    assert_eq!(m["records_total"], expected["rows_read"], "{m}");
    assert_eq!(m["records_failed"], expected["rows_rejected"], "{m}");
    assert_eq!(m["records_inserted"], expected["records_inserted"], "{m}");
    // Every chunk was committed by a worker, none by the handler.
    let committers: Vec<String> = db
        .query(
            "SELECT worker FROM public.sync_chunks WHERE sync_id = $1 ORDER BY chunk_id",
            &[&sync],
        )
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(i64::try_from(committers.len()).unwrap(), chunks);
    let handler_pid = format!(":{}", handler.pid());
    for by in &committers {
        assert!(
            pids.iter().any(|p| by.ends_with(&format!(":{p}"))) && !by.ends_with(&handler_pid),
            "a chunk committed by {by:?}, not a worker ({pids:?})"
        );
    }
}

#[test]
fn a_blob_of_the_size_or_less_is_loaded_by_the_handler() {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let work = Work::new(1_000, 84, CLEAN);
    emulator.upload(&work.file, BLOB);
    let db = TestDb::new();
    let (etag, size) = etag_of(&emulator, BLOB);
    // A size as the configuration file takes it: its exact byte count.
    let config = work.path().join("datsync.toml");
    std::fs::write(&config, format!("[queue]\nsubmit_above = \"{size}B\"\n")).unwrap();
    let handler = Handler::start(work.path(), &db.url(), &[(key, &value)], &[]);
    let event = blob_created(&emulator, PATH, &etag, size);
    let (status, reply) = handler.invoke(QUEUE, &queue_delivery(&event, 1, Encoding::HostDecoded));
    assert_eq!(status, 200, "{reply}");
    let r = &reply["ReturnValue"];
    assert_eq!(r["action"], "started", "{reply}");
    assert_eq!(r["status"], "SUCCESS", "{reply}");
    assert_eq!(r["counts"]["rows_loaded"], 1_000, "{reply}");
    assert_eq!(db.table().len(), 1_000);
    assert_eq!(scale_query(&db), 0, "nothing queued");
}
