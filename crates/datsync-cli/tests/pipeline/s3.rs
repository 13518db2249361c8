//! S3 sources and S3 checkpoints, against the S3 emulator (moto's server) on loopback: the
//! real `datsync` binary, configured only by the usual AWS variables, reads `s3://` sources
//! by range and keeps its checkpoints in a bucket; a run ends like a run of the same local
//! file, and a kill and a resume too.

use datsync::{Blob, Moto, list_objects};

use crate::common::*;
use crate::errors::reference;

/// An emulator with the `data` bucket, and a runtime to talk to it from the test.
struct Emulator {
    moto: Moto,
    rt: tokio::runtime::Runtime,
}

impl Emulator {
    fn start() -> Self {
        let moto = Moto::start().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(moto.create_bucket("data")).unwrap();
        Self { moto, rt }
    }

    /// The environment the binary gets: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_REGION`, `AWS_ENDPOINT_URL`.
    fn env(&self) -> Vec<(&'static str, String)> {
        self.moto.env()
    }

    /// Uploads a local file as `url`.
    fn upload(&self, file: &std::path::Path, url: &str) {
        let bytes = std::fs::read(file).unwrap();
        let blob = Blob::open_in(url, &self.moto.s3_settings()).unwrap();
        self.rt.block_on(blob.put(bytes.into())).unwrap();
    }

    /// The objects under `prefix_url`, as URLs.
    fn list(&self, prefix_url: &str) -> Vec<String> {
        self.rt
            .block_on(list_objects(prefix_url, &self.moto.s3_settings()))
            .unwrap()
            .into_iter()
            .map(|(b, _)| b.url())
            .collect()
    }
}

fn borrowed<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

const SOURCE: &str = "s3://data/hex-ztdwr/ztdwr_extract.dat";
const CHECKPOINTS: &str = "s3://data/ckpt";

fn sync_s3(work: &Work, db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let url = db.url();
    let mut all = args.to_vec();
    all.extend([
        "--database-url",
        &url,
        "--checkpoint-dir",
        CHECKPOINTS,
        "--chunk-size",
        CHUNK_SIZE,
        "--json",
    ]);
    datsync(work.path(), &all, env)
}

#[test]
fn an_s3_object_loads_as_the_local_file_and_resumes_from_s3_checkpoints_after_a_kill() {
    let emulator = Emulator::start();
    let env = emulator.env();
    let env = borrowed(&env);
    // Gzipped, so the reader's ranges cut through compressed data.
    let mut options = options(3_000, 71, MESSY);
    options.gzip = true;
    let work = Work::with_options(&options);
    emulator.upload(&work.file, SOURCE);
    let sync = sync_id(71);
    let (reference_db, expected, expected_code) = reference(&work, &sync);

    // Uninterrupted: the same table and counts as the local file.
    let db = TestDb::new();
    let out = sync_s3(&work, &db, &["run", SOURCE, "--sync-id", &sync], &env);
    assert_eq!(out.code(), expected_code, "{}", out.describe());
    let s = out.summary();
    assert_eq!(counts(&s), counts(&expected));
    assert_eq!(db.table(), reference_db.table());
    let path: String = db.query(
        "SELECT file_path FROM public.sync_metadata WHERE sync_id = $1",
        &[&sync],
    )[0]
    .get(0);
    assert_eq!(path, SOURCE, "the object's URL is recorded");
    assert!(emulator.list(&format!("{CHECKPOINTS}/{sync}")).is_empty());

    // Killed after three chunks, then resumed from the checkpoint in the bucket.
    let db = TestDb::new();
    let mut kill_env = env.clone();
    kill_env.push(("DATSYNC_KILL_AT", "chunk_committed:3"));
    let killed = sync_s3(&work, &db, &["run", SOURCE, "--sync-id", &sync], &kill_env);
    assert!(killed.killed(), "{}", killed.describe());
    let kept = emulator.list(&format!("{CHECKPOINTS}/{sync}"));
    assert!(
        kept.iter()
            .any(|u| *u == format!("{CHECKPOINTS}/{sync}/manifest.json"))
            && kept.iter().any(|u| u.ends_with(".parquet")),
        "{kept:?}"
    );
    db.wait_for_other_sessions();

    let out = sync_s3(&work, &db, &["resume", &sync], &env);
    assert_eq!(out.code(), expected_code, "{}", out.describe());
    let s = out.summary();
    assert_eq!(s["resumed"], true, "{s}");
    assert!(u(&s, "chunks_skipped_on_resume") >= 3, "{s}");
    assert_eq!(counts(&s), counts(&expected));
    assert_eq!(db.table(), reference_db.table());
    // Cleaned up after the sync finished; the rejects are kept.
    assert!(emulator.list(&format!("{CHECKPOINTS}/{sync}")).is_empty());
    if u(&s, "rows_rejected") > 0 {
        assert!(
            !emulator
                .list(&format!("{CHECKPOINTS}/rejects/{sync}"))
                .is_empty()
        );
    }
}

#[test]
fn a_replaced_object_is_a_new_sync_and_the_old_one_is_not_resumed_on_it() {
    let emulator = Emulator::start();
    let env = emulator.env();
    let env = borrowed(&env);
    let work = Work::new(2_000, 72, CLEAN);
    emulator.upload(&work.file, SOURCE);
    let db = TestDb::new();
    let mut kill_env = env.clone();
    kill_env.push(("DATSYNC_KILL_AT", "chunk_committed:1"));
    let killed = sync_s3(&work, &db, &["run", SOURCE], &kill_env);
    assert!(killed.killed(), "{}", killed.describe());
    db.wait_for_other_sessions();
    let first = db.query("SELECT sync_id FROM public.sync_metadata", &[])[0].get::<_, String>(0);

    // New content under the same name: a new ETag.
    write_sample(&work.file, 2_100, 73, CLEAN);
    emulator.upload(&work.file, SOURCE);
    let out = sync_s3(&work, &db, &["run", SOURCE], &env);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let s = out.summary();
    assert_ne!(s["sync_id"], first.as_str(), "a new version is a new sync");
    assert_eq!(s["resumed"], false);
    assert_eq!(u(&s, "rows_read"), 2_100);

    // Resuming the first sync refuses: its source has changed.
    let out = sync_s3(&work, &db, &["resume", &first], &env);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("changed") || out.stdout.contains("changed"),
        "{}",
        out.describe()
    );
}

#[test]
fn a_missing_object_or_credential_is_a_clear_error() {
    let emulator = Emulator::start();
    let env = emulator.env();
    let work = Work::new(10, 74, CLEAN);
    let db = TestDb::new();
    let out = sync_s3(
        &work,
        &db,
        &["run", "s3://data/hex-ztdwr/nope.dat"],
        &borrowed(&env),
    );
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("s3://data/hex-ztdwr/nope.dat")
            && out.stderr.contains("no such object"),
        "{}",
        out.stderr
    );
    // Half a key: the missing variable is named, the secret never shown.
    let half: Vec<_> = env
        .iter()
        .filter(|(k, _)| *k != "AWS_ACCESS_KEY_ID")
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    let out = sync_s3(&work, &db, &["run", SOURCE], &half);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains(SOURCE) && out.stderr.contains("AWS_ACCESS_KEY_ID is not"),
        "{}",
        out.stderr
    );
    // No credentials at all: the machine's role is asked (here a closed port stands for the
    // instance metadata service), and the error says which variables were looked for.
    let endpoint = env.iter().find(|(k, _)| *k == "AWS_ENDPOINT_URL").unwrap();
    let out = sync_s3(
        &work,
        &db,
        &["run", SOURCE],
        &[
            ("AWS_ENDPOINT_URL", endpoint.1.as_str()),
            ("AWS_METADATA_ENDPOINT", "http://127.0.0.1:1"),
        ],
    );
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains(SOURCE)
            && out.stderr.contains("no S3 credentials are set")
            && out.stderr.contains("AWS_ACCESS_KEY_ID"),
        "{}",
        out.stderr
    );
    // The same for Google Cloud Storage checkpoints (its metadata service, by name and by
    // address, a closed port).
    let url = db.url();
    let out = datsync(
        work.path(),
        &[
            "run",
            work.file(),
            "--database-url",
            &url,
            "--checkpoint-dir",
            "gs://bucket/ckpt",
        ],
        &[
            ("GCE_METADATA_HOST", "127.0.0.1:1"),
            ("GCE_METADATA_IP", "127.0.0.1:1"),
        ],
    );
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("gs://bucket/ckpt/")
            && out
                .stderr
                .contains("no Google Cloud Storage credentials are set")
            && out.stderr.contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{}",
        out.stderr
    );
    // Google Cloud Storage checkpoints with a credentials file that is not there.
    let out = datsync(
        work.path(),
        &[
            "run",
            work.file(),
            "--database-url",
            &url,
            "--checkpoint-dir",
            "gs://bucket/ckpt",
        ],
        &[("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/adc.json")],
    );
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("gs://bucket/ckpt/")
            && out.stderr.contains("GOOGLE_APPLICATION_CREDENTIALS")
            && out.stderr.contains("/nonexistent/adc.json"),
        "{}",
        out.stderr
    );
}

#[test]
fn watch_loads_the_objects_of_an_s3_prefix_once() {
    let emulator = Emulator::start();
    let env = emulator.env();
    let env = borrowed(&env);
    let work = Work::new(1_200, 75, CLEAN);
    emulator.upload(&work.file, SOURCE);
    // Not a source: ignored.
    emulator.upload(&work.file, "s3://data/hex-ztdwr/notes.txt");
    let (reference_db, _, _) = reference(&work, &sync_id(75));
    let db = TestDb::new();
    let url = db.url();
    let args = [
        "watch",
        "s3://data/hex-ztdwr/",
        "--once",
        "--database-url",
        &url,
        "--checkpoint-dir",
        CHECKPOINTS,
        "--chunk-size",
        CHUNK_SIZE,
        "--json",
    ];
    let lines = |out: &Outcome| -> Vec<serde_json::Value> {
        out.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {}", out.describe())))
            .collect()
    };
    let out = datsync(work.path(), &args, &env);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let first = lines(&out);
    assert_eq!(first.len(), 1, "{}", out.describe());
    assert_eq!(first[0]["source"], SOURCE);
    assert_eq!(first[0]["status"], "SUCCESS", "{}", first[0]);
    assert!(
        first[0]["version"].as_str().is_some_and(|v| !v.is_empty()),
        "the ETag: {}",
        first[0]
    );
    assert_eq!(
        db.table_without(&["sync_id"]),
        reference_db.table_without(&["sync_id"])
    );
    let out = datsync(work.path(), &args, &env);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let again = lines(&out);
    assert_eq!(again[0]["action"], "skipped_done", "{}", out.describe());
}
