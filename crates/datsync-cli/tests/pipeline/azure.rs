//! Blob sources and blob checkpoints, against the Azure Storage emulator (Azurite) on
//! loopback: the real `datsync` binary reads `az://` sources by range and keeps its
//! checkpoints in a container; a kill and a resume end like an uninterrupted local run.

use datsync::{Azurite, Blob, list_blobs};

use crate::common::*;
use crate::errors::reference;

/// An emulator with the `data` (sources) and `checkpoints` containers, and a runtime to
/// talk to it from the test.
pub(crate) struct Emulator {
    pub azurite: Azurite,
    pub rt: tokio::runtime::Runtime,
}

impl Emulator {
    pub fn start() -> Self {
        let azurite = Azurite::start().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let account = azurite.account();
        rt.block_on(async {
            account.create_container("data").await.unwrap();
            account.create_container("checkpoints").await.unwrap();
        });
        Self { azurite, rt }
    }

    /// The environment the binary gets: the Functions connection string.
    pub fn env(&self) -> (&'static str, String) {
        ("AzureWebJobsStorage", self.azurite.connection_string())
    }

    /// Uploads a local file as `url`.
    pub fn upload(&self, file: &std::path::Path, url: &str) {
        let bytes = std::fs::read(file).unwrap();
        let blob = Blob::open_with(url, &self.azurite.account()).unwrap();
        self.rt.block_on(blob.put(bytes.into())).unwrap();
    }

    /// A whole blob's bytes.
    pub fn read(&self, url: &str) -> Vec<u8> {
        let blob = Blob::open_with(url, &self.azurite.account()).unwrap();
        self.rt.block_on(async {
            let size = blob.head().await.unwrap().unwrap().size;
            blob.get_range(0..size, None).await.unwrap().to_vec()
        })
    }

    /// The blobs under `prefix_url`, as URLs.
    pub fn list(&self, prefix_url: &str) -> Vec<String> {
        self.rt
            .block_on(list_blobs(prefix_url, &self.azurite.account()))
            .unwrap()
            .into_iter()
            .map(|(b, _)| b.url())
            .collect()
    }
}

const SOURCE: &str = "az://data/hex-ztdwr/ztdwr_extract.dat";
const CHECKPOINTS: &str = "az://checkpoints/datsync";

fn sync_blob(work: &Work, db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Outcome {
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
fn a_blob_is_loaded_with_checkpoints_in_blob_storage_and_resumes_after_a_kill() {
    // Gzipped, so the reader's ranges cut through compressed data.
    blob_resumes_after_a_kill(true);
}

/// A plain blob's resume reads it on from the resume point: the ranges before it are not
/// fetched again (the SHA-256 up to there was recorded with the chunk).
#[test]
fn a_plain_blob_resumes_after_a_kill_from_the_resume_point() {
    blob_resumes_after_a_kill(false);
}

fn blob_resumes_after_a_kill(gzip: bool) {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let env = [(key, value.as_str())];
    let mut options = options(3_000, 61, MESSY);
    options.gzip = gzip;
    let work = Work::with_options(&options);
    emulator.upload(&work.file, SOURCE);
    let sync = sync_id(61);
    let (reference_db, expected, expected_code) = reference(&work, &sync);

    let db = TestDb::new();
    let mut kill_env = env.to_vec();
    kill_env.push(("DATSYNC_KILL_AT", "chunk_committed:3"));
    let killed = sync_blob(&work, &db, &["run", SOURCE, "--sync-id", &sync], &kill_env);
    assert!(killed.killed(), "{}", killed.describe());
    // The checkpoint is in the container: a manifest and chunk files.
    let kept = emulator.list(&format!("{CHECKPOINTS}/{sync}"));
    assert!(
        kept.iter().any(|u| u.ends_with("/manifest.json"))
            && kept.iter().any(|u| u.ends_with(".parquet")),
        "{kept:?}"
    );
    // In object storage a new checkpoint keeps the seed's Snappy (its bytes are uploaded and
    // billed); a local directory's is uncompressed (`resume.rs`).
    let manifest: serde_json::Value =
        serde_json::from_slice(&emulator.read(&format!("{CHECKPOINTS}/{sync}/manifest.json")))
            .unwrap();
    assert_eq!(manifest["compression"], "snappy", "{manifest}");
    db.wait_for_other_sessions();

    let mut resume_env = env.to_vec();
    resume_env.push(("RUST_LOG", "info"));
    let out = sync_blob(&work, &db, &["resume", &sync], &resume_env);
    assert_eq!(out.code(), expected_code, "{}", out.describe());
    let s = out.summary();
    assert_eq!(s["resumed"], true, "{s}");
    assert!(u(&s, "chunks_skipped_on_resume") >= 3, "{s}");
    let read_on = out
        .stderr
        .contains("the bytes before it are not read again");
    assert_eq!(read_on, !gzip, "{}", out.stderr);
    assert_eq!(counts(&s), counts(&expected));
    assert_eq!(db.table(), reference_db.table());
    let metadata = db.metadata(&sync).unwrap();
    assert_eq!(metadata["file_name"], "ztdwr_extract.dat");
    let path: String = db.query(
        "SELECT file_path FROM public.sync_metadata WHERE sync_id = $1",
        &[&sync],
    )[0]
    .get(0);
    assert_eq!(
        path, SOURCE,
        "the blob's URL is recorded, so a resume can read it again"
    );
    // Cleaned up after the sync finished; the rejects are kept.
    let left = emulator.list(&format!("{CHECKPOINTS}/{sync}"));
    assert!(left.is_empty(), "{left:?}");
    if u(&s, "rows_rejected") > 0 {
        assert!(
            !emulator
                .list(&format!("{CHECKPOINTS}/rejects/{sync}"))
                .is_empty()
        );
    }
}

#[test]
fn a_replaced_blob_is_not_resumed_as_the_old_one() {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let env = [(key, value.as_str())];
    let work = Work::new(2_000, 62, CLEAN);
    emulator.upload(&work.file, SOURCE);
    let db = TestDb::new();
    let mut kill_env = env.to_vec();
    kill_env.push(("DATSYNC_KILL_AT", "chunk_committed:1"));
    let killed = sync_blob(&work, &db, &["run", SOURCE], &kill_env);
    assert!(killed.killed(), "{}", killed.describe());
    db.wait_for_other_sessions();
    let first = db.query("SELECT sync_id FROM public.sync_metadata", &[])[0].get::<_, String>(0);

    // New content under the same name: a new ETag.
    write_sample(&work.file, 2_100, 63, CLEAN);
    emulator.upload(&work.file, SOURCE);
    let out = sync_blob(&work, &db, &["run", SOURCE], &env);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let s = out.summary();
    assert_ne!(
        s["sync_id"],
        first.as_str(),
        "a new version is a new sync: {s}"
    );
    assert_eq!(s["resumed"], false);
    assert_eq!(u(&s, "rows_read"), 2_100);

    // Resuming the first sync now refuses: its source has changed.
    let out = sync_blob(&work, &db, &["resume", &first], &env);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("changed") || out.stdout.contains("changed"),
        "{}",
        out.describe()
    );
}

#[test]
fn a_missing_blob_or_account_is_a_clear_error() {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let work = Work::new(10, 64, CLEAN);
    let db = TestDb::new();
    let out = sync_blob(
        &work,
        &db,
        &["run", "az://data/hex-ztdwr/nope.dat"],
        &[(key, value.as_str())],
    );
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("az://data/hex-ztdwr/nope.dat") && out.stderr.contains("no such blob"),
        "{}",
        out.stderr
    );
    let out = sync_blob(&work, &db, &["run", SOURCE], &[]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("AzureWebJobsStorage"), "{}", out.stderr);
}

/// `datsync watch az://data/hex-ztdwr/ --once --json` with checkpoints in the emulator.
pub(crate) fn watch_once(
    work: &Work,
    db: &TestDb,
    env: &[(&str, &str)],
) -> (Outcome, Vec<serde_json::Value>) {
    let url = db.url();
    let args = [
        "watch",
        "az://data/hex-ztdwr/",
        "--once",
        "--retry-backoff",
        "0s",
        "--database-url",
        &url,
        "--checkpoint-dir",
        CHECKPOINTS,
        "--chunk-size",
        CHUNK_SIZE,
        "--json",
    ];
    let out = datsync(work.path(), &args, env);
    let lines = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {}", out.describe())))
        .collect();
    (out, lines)
}

#[test]
fn watch_loads_new_blobs_once_resumes_a_failed_one_and_takes_a_replaced_blob_as_new() {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let work = Work::new(3_000, 65, MESSY);
    emulator.upload(&work.file, SOURCE);
    // A second file whose keys (0009…) are not the first one's (0007…).
    let other = work.path().join("second.dat");
    write_sample(&other, 700, 66, CLEAN);
    // (Bytes, not text: the sample has Latin-1 names.)
    let mut bytes = std::fs::read(&other).unwrap();
    let mut line_start = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    while line_start < bytes.len() {
        let end = bytes[line_start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |p| line_start + p);
        if let Some(at) = bytes[line_start..end].windows(4).position(|w| w == b"0007") {
            bytes[line_start + at + 3] = b'9';
        }
        line_start = end + 1;
    }
    std::fs::write(&other, bytes).unwrap();
    emulator.upload(&other, "az://data/hex-ztdwr/second.dat");
    // Not a source: ignored.
    emulator.upload(&work.file, "az://data/hex-ztdwr/notes.txt");
    let sync = sync_id(65);
    let (reference_db, expected, _) = reference(&work, &sync);

    let db = TestDb::new();
    let failing = crate::errors::lone_key_of_chunk(&reference_db, &work.file, 1);
    crate::errors::failing_trigger(&db, &failing, "40001", Some("datsync_test_flag"));
    let env = [(key, value.as_str()), crate::errors::FAST_RETRY];

    let (out, lines) = watch_once(&work, &db, &env);
    assert_eq!(lines.len(), 2, "{}", out.describe());
    let second_line = &lines[0];
    assert_eq!(second_line["source"], "az://data/hex-ztdwr/second.dat");
    assert_eq!(second_line["status"], "SUCCESS", "{second_line}");
    let first = &lines[1];
    assert_eq!(first["source"], SOURCE);
    assert_eq!(first["action"], "started");
    assert_eq!(first["status"], "PARTIAL_SUCCESS", "{first}");
    assert_eq!(first["finished"], false, "{first}");
    assert!(
        first["version"].as_str().is_some_and(|v| !v.is_empty()),
        "the ETag: {first}"
    );
    let failed_sync = first["sync_id"].as_str().unwrap().to_owned();
    // Its checkpoint waits in the container.
    assert!(
        !emulator
            .list(&format!("{CHECKPOINTS}/{failed_sync}"))
            .is_empty()
    );

    // The database is well again: the next cycle resumes the same sync; the other blob is
    // not loaded again.
    db.batch("DELETE FROM datsync_test_flag");
    let (out, lines) = watch_once(&work, &db, &env);
    assert_eq!(
        out.code(),
        Some(2),
        "PARTIAL_SUCCESS (rejected rows): {}",
        out.describe()
    );
    assert_eq!(lines[0]["action"], "skipped_done", "{}", out.describe());
    assert_eq!(lines[1]["action"], "resumed");
    assert_eq!(
        lines[1]["sync_id"],
        failed_sync.as_str(),
        "the same sync id"
    );
    assert_eq!(lines[1]["finished"], true);
    let s = &lines[1]["summary"];
    for k in [
        "status",
        "rows_read",
        "rows_loaded",
        "rows_rejected",
        "rows_superseded",
    ] {
        assert_eq!(s[k], expected[k], "{k}");
    }
    // The first blob's rows are the reference's; the second's are its 700 rows.
    let of_first = |db: &TestDb| -> Vec<String> {
        crate::serve::rows(db)
            .into_iter()
            .filter(|r| r.contains("\"surat_pengantar_barang\": \"0007"))
            .collect()
    };
    let (got, want) = (of_first(&db), of_first(&reference_db));
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "the first blob's rows differ from an uninterrupted run's"
    );
    assert_eq!(crate::serve::rows(&db).len() - got.len(), 700);
    assert!(
        emulator
            .list(&format!("{CHECKPOINTS}/{failed_sync}"))
            .is_empty()
    );

    // The blob is replaced: a new ETag, a new sync; the old receipt stays.
    write_sample(&work.file, 800, 67, CLEAN);
    emulator.upload(&work.file, SOURCE);
    let (out, lines) = watch_once(&work, &db, &env);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(lines[1]["action"], "started", "{}", out.describe());
    assert_ne!(lines[1]["sync_id"], failed_sync.as_str());
    let receipts: i64 = db.query("SELECT count(*) FROM datsync_receipts", &[])[0].get(0);
    assert_eq!(receipts, 3);
}

#[test]
fn inspect_reads_a_blob() {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let mut options = options(1_500, 68, MESSY);
    options.gzip = true;
    let work = Work::with_options(&options);
    emulator.upload(&work.file, SOURCE);
    let out = datsync(
        work.path(),
        &["inspect", SOURCE, "--json"],
        &[(key, value.as_str())],
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let blob = out.summary();
    let out = datsync(work.path(), &["inspect", work.file(), "--json"], &[]);
    let local = out.summary();
    assert_eq!(blob["gzip"], true);
    for k in ["rows", "ragged_rows", "delimiter", "columns"] {
        assert_eq!(blob[k], local[k], "{k}");
    }
}
