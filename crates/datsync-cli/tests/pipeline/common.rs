//! What every pipeline test needs: a throwaway database, the real `datsync` binary, sample
//! files, and snapshots of what a sync left in the database and on disk.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row};

/// The server the tests use (trust authentication).
pub const SERVER: &str = "postgresql://root@127.0.0.1:5432";
/// Rows per chunk in these tests: a few thousand rows make about ten chunks.
pub const CHUNK_SIZE: &str = "500";
/// The target table of the built-in profile, and its key.
pub const TABLE: &str = "public.transport_documents";
/// The key column of the built-in profile.
pub const KEY: &str = "surat_pengantar_barang";

/// A database of its own, `datsync_it_<random>`, dropped when the test ends.
pub struct TestDb {
    pub name: String,
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
}

impl TestDb {
    pub fn new() -> Self {
        Self::created_with("")
    }

    /// A database made with `options` after `CREATE DATABASE name` (a locale, a template).
    pub fn created_with(options: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "datsync_it_{}_{:x}_{}",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let admin = connect(&format!("{SERVER}/postgres")).await;
            admin
                .batch_execute(&format!("CREATE DATABASE {name} {options}"))
                .await
                .unwrap();
        });
        let client = rt.block_on(connect(&format!("{SERVER}/{name}")));
        Self {
            name,
            rt,
            client: Some(client),
        }
    }

    /// The URL the binary gets.
    pub fn url(&self) -> String {
        format!("{SERVER}/{}", self.name)
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    pub fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Vec<Row> {
        self.rt
            .block_on(self.client().query(sql, params))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub fn batch(&self, sql: &str) {
        self.rt
            .block_on(self.client().batch_execute(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Runs `setup` (`SET …` statements) then `COPY … FROM STDIN` (`copy`) with `data` on a
    /// session of its own: PostgreSQL's own reading of a file.
    pub fn copy_in(&self, setup: &str, copy: &str, data: &[u8]) -> u64 {
        use futures::SinkExt as _;
        self.rt.block_on(async {
            let client = connect(&self.url()).await;
            client
                .batch_execute(setup)
                .await
                .unwrap_or_else(|e| panic!("{setup}: {e}"));
            let sink = client
                .copy_in::<_, bytes::Bytes>(copy)
                .await
                .unwrap_or_else(|e| panic!("{copy}: {e}"));
            let mut sink = std::pin::pin!(sink);
            sink.send(bytes::Bytes::copy_from_slice(data))
                .await
                .unwrap_or_else(|e| panic!("{copy}: {e}"));
            sink.as_mut()
                .finish()
                .await
                .unwrap_or_else(|e| panic!("{copy}: {e}"))
        })
    }

    /// Creates datsync's tables (and the target table) as `datsync run` would, so a test can
    /// add triggers before the first run.
    pub fn init(&self) {
        self.rt.block_on(async {
            let mut client = connect(&self.url()).await;
            datsync::init_db(&mut client, &datsync::Profile::ztdwr())
                .await
                .unwrap();
        });
    }

    /// A second session of its own (for advisory locks), kept open until dropped.
    pub fn session(&self) -> Session<'_> {
        let (client, connection) = self
            .rt
            .block_on(tokio_postgres::connect(&self.url(), NoTls))
            .unwrap();
        let connection = self.rt.spawn(connection);
        Session {
            db: self,
            client: Some(client),
            connection: Some(connection),
        }
    }

    fn exists(&self, relation: &str) -> bool {
        let rows = self.query("SELECT to_regclass($1) IS NOT NULL", &[&relation]);
        rows[0].get(0)
    }

    /// Every target row as JSON text, without `created_at`/`updated_at`, ordered by key.
    pub fn table(&self) -> Vec<String> {
        self.table_without(&[])
    }

    /// [`Self::table`] without the columns `more` too (`sync_id`, … when a reference was
    /// loaded by another sync).
    pub fn table_without(&self, more: &[&str]) -> Vec<String> {
        if !self.exists(TABLE) {
            return Vec::new();
        }
        let dropped =
            ["created_at", "updated_at"]
                .iter()
                .chain(more)
                .fold(String::new(), |mut s, c| {
                    s.push_str(" - '");
                    s.push_str(c);
                    s.push('\'');
                    s
                });
        self.query(
            &format!("SELECT (to_jsonb(t){dropped})::text FROM {TABLE} t ORDER BY {KEY}"),
            &[],
        )
        .iter()
        .map(|r| r.get(0))
        .collect()
    }

    /// The sync's `sync_metadata` counts, status, error and validation error sample.
    pub fn metadata(&self, sync_id: &str) -> Option<Value> {
        if !self.exists("public.sync_metadata") {
            return None;
        }
        self.query(
            "SELECT jsonb_build_object(
                 'file_name', file_name, 'status', status, 'records_total', records_total,
                 'records_inserted', records_inserted, 'records_updated', records_updated,
                 'records_failed', records_failed, 'records_skipped_older', records_skipped_older,
                 'records_superseded', records_superseded,
                 'records_loaded', records_loaded, 'records_pending', records_pending,
                 'value_warnings', value_warnings, 'unknown_columns', unknown_columns,
                 'validation_errors_count', validation_errors_count,
                 'validation_errors', validation_errors, 'error_message', error_message)
               FROM public.sync_metadata WHERE sync_id = $1",
            &[&sync_id],
        )
        .first()
        .map(|r| r.get(0))
    }

    /// The sync's ledger rows (every column but `committed_at` and `worker`, which differ
    /// between two loads of the same file), by chunk.
    pub fn ledger(&self, sync_id: &str) -> Vec<Value> {
        if !self.exists("public.sync_chunks") {
            return Vec::new();
        }
        self.query(
            "SELECT to_jsonb(c) - 'committed_at' - 'worker' FROM public.sync_chunks c
              WHERE sync_id = $1 ORDER BY chunk_id",
            &[&sync_id],
        )
        .iter()
        .map(|r| r.get(0))
        .collect()
    }

    /// Waits until every other session on this database has ended: after a kill, the dead
    /// process's backend may still be finishing a statement (a COMMIT already sent commits),
    /// so the ledger is only final once the server has noticed the death.
    pub fn wait_for_other_sessions(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let rows = self.query(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            );
            if rows[0].get::<_, i64>(0) == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "sessions of a killed process never ended"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Chunks of the sync the ledger has.
    pub fn committed_chunks(&self, sync_id: &str) -> usize {
        self.ledger(sync_id).len()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        drop(self.client.take());
        let name = self.name.clone();
        self.rt.block_on(async {
            let admin = connect(&format!("{SERVER}/postgres")).await;
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        });
    }
}

/// A second connection to a test database; dropping it closes the session.
pub struct Session<'a> {
    db: &'a TestDb,
    client: Option<Client>,
    connection: Option<tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>>,
}

impl Session<'_> {
    pub fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Vec<Row> {
        self.db
            .rt
            .block_on(self.client.as_ref().unwrap().query(sql, params))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        // Without its client the connection ends: wait for it, so the server has closed the
        // session (and released its locks) when this returns.
        drop(self.client.take());
        if let Some(connection) = self.connection.take() {
            let _ = self.db.rt.block_on(connection);
        }
    }
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// One run of the binary.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn killed(&self) -> bool {
        self.status.signal() == Some(9)
    }

    /// The `--json` summary.
    pub fn summary(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "no JSON summary ({e}); exit {:?}\nstdout: {}\nstderr: {}",
                self.status, self.stdout, self.stderr
            )
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "exit {:?}\nstdout: {}\nstderr: {}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `datsync ARGS` in `dir` with a clean environment plus `env` and `RUST_LOG=warn`.
pub fn datsync(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_datsync"));
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("RUST_LOG", "warn")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Outcome {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// [`datsync`] run under `umask` (through `sh`, which sets it and execs the binary).
pub fn datsync_umask(dir: &Path, umask: u32, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("umask {umask:03o}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_datsync"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("RUST_LOG", "warn")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Outcome {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A temp dir with a sample file and a checkpoint directory per database.
pub struct Work {
    pub dir: tempfile::TempDir,
    pub file: PathBuf,
}

/// Sample rates of the test files: rejects, duplicates and ragged rows in most chunks.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    pub invalid: f64,
    pub dup: f64,
    pub ragged: f64,
}

pub const MESSY: Rates = Rates {
    invalid: 0.02,
    dup: 0.05,
    ragged: 0.01,
};

pub const CLEAN: Rates = Rates {
    invalid: 0.0,
    dup: 0.0,
    ragged: 0.0,
};

impl Work {
    pub fn new(rows: u64, seed: u64, rates: Rates) -> Self {
        Self::with_options(&options(rows, seed, rates))
    }

    /// A sample written with every generator option (gzip, CRLF, quirky header, …).
    pub fn with_options(options: &datsync::SampleOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ztdwr_extract.dat");
        datsync::write_sample(File::create(&file).unwrap(), options).unwrap();
        Self { dir, file }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self) -> &str {
        self.file.to_str().unwrap()
    }

    /// A checkpoint directory named `name` under the temp dir.
    pub fn checkpoints(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `datsync run FILE` with the shared flags, plus `extra` flags and `env`.
    pub fn run(&self, db: &TestDb, ck: &Path, extra: &[&str], env: &[(&str, &str)]) -> Outcome {
        let mut args = vec!["run", self.file()];
        args.extend(extra);
        self.sync(args, db, ck, env)
    }

    /// `datsync run FILE --sync-id SYNC_ID` killed (SIGKILL) at `kill_at`; returns once the
    /// database holds no session of it. `context` names the case in a failure.
    pub fn run_killed(&self, db: &TestDb, ck: &Path, sync_id: &str, kill_at: &str, context: &str) {
        self.run_killed_with(db, ck, sync_id, kill_at, &[], context);
    }

    /// [`Self::run_killed`], the killed run keeping its done chunks' files
    /// (`CHECKPOINT_CLEANUP_ON_SUCCESS=false`; by default each goes once its chunk is done),
    /// so that a test can damage any of them.
    pub fn run_killed_keeping_files(
        &self,
        db: &TestDb,
        ck: &Path,
        sync_id: &str,
        kill_at: &str,
        context: &str,
    ) {
        let keep = [("CHECKPOINT_CLEANUP_ON_SUCCESS", "false")];
        self.run_killed_with(db, ck, sync_id, kill_at, &keep, context);
    }

    fn run_killed_with(
        &self,
        db: &TestDb,
        ck: &Path,
        sync_id: &str,
        kill_at: &str,
        more_env: &[(&str, &str)],
        context: &str,
    ) {
        let mut env = vec![("DATSYNC_KILL_AT", kill_at)];
        env.extend_from_slice(more_env);
        let killed = self.run(db, ck, &["--sync-id", sync_id], &env);
        assert!(
            killed.killed(),
            "{context} (killed at {kill_at}): {}",
            killed.describe()
        );
        db.wait_for_other_sessions();
    }

    /// `datsync resume SYNC_ID` with the shared flags.
    pub fn resume(&self, db: &TestDb, ck: &Path, sync_id: &str, env: &[(&str, &str)]) -> Outcome {
        self.sync(vec!["resume", sync_id], db, ck, env)
    }

    fn sync(&self, args: Vec<&str>, db: &TestDb, ck: &Path, env: &[(&str, &str)]) -> Outcome {
        self.sync_chunked(args, CHUNK_SIZE, db, ck, env)
    }

    /// `datsync resume SYNC_ID` with another `--chunk-size` than the run's.
    pub fn resume_chunked(&self, db: &TestDb, ck: &Path, sync_id: &str, size: &str) -> Outcome {
        self.sync_chunked(vec!["resume", sync_id], size, db, ck, &[])
    }

    fn sync_chunked(
        &self,
        args: Vec<&str>,
        chunk_size: &str,
        db: &TestDb,
        ck: &Path,
        env: &[(&str, &str)],
    ) -> Outcome {
        let url = db.url();
        let mut args = args;
        args.extend([
            "--database-url",
            &url,
            "--checkpoint-dir",
            ck.to_str().unwrap(),
            "--chunk-size",
            chunk_size,
            "--json",
        ]);
        datsync(self.path(), &args, env)
    }
}

/// Generator options: `rows` rows at these rates, plain text.
pub fn options(rows: u64, seed: u64, rates: Rates) -> datsync::SampleOptions {
    datsync::SampleOptions {
        size: datsync::SampleSize::Rows(rows),
        seed,
        invalid_rate: rates.invalid,
        dup_rate: rates.dup,
        ragged_rate: rates.ragged,
        ..datsync::SampleOptions::default()
    }
}

/// Writes a generated ZTDWR file.
pub fn write_sample(path: &Path, rows: u64, seed: u64, rates: Rates) {
    let options = options(rows, seed, rates);
    datsync::write_sample(File::create(path).unwrap(), &options).unwrap();
}

/// A valid sync id with eight hex digits from `n`.
pub fn sync_id(n: u32) -> String {
    format!("sync_20260101_000000_{n:08x}")
}

/// The seed of a randomized test: `var` from the environment when set (to replay a run),
/// else drawn from the clock; printed with the way to replay it.
pub fn seed(var: &str) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("seed: {seed} (replay with {var}={seed})");
    seed
}

/// A sync id nobody else uses.
/// Changes one digit of the first data row of `file` (the size stays) and sets its
/// modification time to `modified`.
pub fn change_a_digit_of_the_first_row(file: &Path, modified: std::time::SystemTime) {
    let mut bytes = std::fs::read(file).unwrap();
    let second_line = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    let at = second_line
        + bytes[second_line..]
            .iter()
            .position(u8::is_ascii_digit)
            .unwrap();
    bytes[at] = if bytes[at] == b'7' { b'8' } else { b'7' };
    std::fs::write(file, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(file)
        .unwrap()
        .set_modified(modified)
        .unwrap();
}

pub fn fresh_sync_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    sync_id(nanos ^ std::process::id().rotate_left(16))
}

/// The summary fields that describe the sync's result (not this run's history).
pub fn counts(summary: &Value) -> BTreeMap<&'static str, Value> {
    [
        "sync_id",
        "status",
        "rows_read",
        "rows_loaded",
        "rows_rejected",
        "rows_superseded",
        "rows_pending",
        "records_inserted",
        "records_updated",
        "records_skipped_older",
        "chunks_total",
        "chunks_completed",
        "chunks_failed",
    ]
    .into_iter()
    .map(|k| (k, summary[k].clone()))
    .collect()
}

pub fn u(summary: &Value, key: &str) -> u64 {
    summary[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {summary}"))
}

/// The chunk files of a sync's checkpoint directory (none when it is gone).
pub fn chunk_files(ck: &Path, sync_id: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(ck.join(sync_id)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("chunk_") && n.ends_with(".parquet"))
        })
        .collect();
    files.sort();
    files
}

/// The rejected rows of a sync: per rejects file, the `_line` values, and whether every row
/// has reasons.
pub fn rejects(ck: &Path, sync_id: &str) -> BTreeMap<String, Vec<u64>> {
    use arrow_array::{Array, StringArray, UInt64Array};
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(ck.join("rejects").join(sync_id)) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if is_temp_file(&path) || !name.starts_with("rejects_") {
            continue;
        }
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            File::open(&path).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        let mut lines = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let line = batch
                .column_by_name("_line")
                .unwrap_or_else(|| panic!("{}: no _line column", path.display()));
            let line = line.as_any().downcast_ref::<UInt64Array>().unwrap();
            let reasons = batch
                .column_by_name("_reasons")
                .unwrap_or_else(|| panic!("{}: no _reasons column", path.display()));
            let reasons = reasons.as_any().downcast_ref::<StringArray>().unwrap();
            for i in 0..batch.num_rows() {
                assert!(
                    reasons.is_valid(i) && !reasons.value(i).is_empty(),
                    "{}: line {} has no reasons",
                    path.display(),
                    line.value(i)
                );
                lines.push(line.value(i));
            }
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        out.insert(name, lines);
    }
    out
}

/// The value warnings of a sync, from its warnings files: `(line, source column, target
/// column, value, reason)` in line order.
pub fn warnings(ck: &Path, sync_id: &str) -> Vec<(u64, String, String, Option<String>, String)> {
    use arrow_array::{Array, StringArray, UInt64Array};
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(ck.join("rejects").join(sync_id)) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| {
            !is_temp_file(p)
                && p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("warnings_")
        })
        .collect();
    paths.sort();
    for path in paths {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            File::open(&path).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let text = |name: &str| {
                batch
                    .column_by_name(name)
                    .unwrap_or_else(|| panic!("{}: no {name}", path.display()))
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap()
                    .clone()
            };
            let lines = batch
                .column_by_name("_line")
                .unwrap()
                .as_any()
                .downcast_ref::<UInt64Array>()
                .unwrap()
                .clone();
            let (column, target, value, reason) = (
                text("column"),
                text("target"),
                text("value"),
                text("reason"),
            );
            for i in 0..batch.num_rows() {
                out.push((
                    lines.value(i),
                    column.value(i).to_owned(),
                    target.value(i).to_owned(),
                    value.is_valid(i).then(|| value.value(i).to_owned()),
                    reason.value(i).to_owned(),
                ));
            }
        }
    }
    out
}

/// A temporary file of an atomic write cut short by a kill (`rejects_0000.parquet#1`):
/// `object_store` never lists these, and the sync directory's cleanup removes them, but the
/// rejects directory is kept, so a kill during a rejects write leaves one there.
pub fn is_temp_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit_once('#'))
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Everything a finished sync left behind, to compare two databases.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub table: Vec<String>,
    pub metadata: Option<Value>,
    pub ledger: Vec<Value>,
    pub rejects: BTreeMap<String, Vec<u64>>,
    pub warnings: Vec<(u64, String, String, Option<String>, String)>,
}

impl Snapshot {
    pub fn take(db: &TestDb, ck: &Path, sync_id: &str) -> Self {
        Self {
            table: db.table(),
            metadata: db.metadata(sync_id),
            ledger: db.ledger(sync_id),
            rejects: rejects(ck, sync_id),
            warnings: warnings(ck, sync_id),
        }
    }

    /// Panics with the first difference (the tables are long).
    pub fn assert_same(&self, reference: &Self, context: &str) {
        assert_eq!(
            self.metadata, reference.metadata,
            "{context}: sync_metadata differs"
        );
        assert_eq!(
            self.ledger.len(),
            reference.ledger.len(),
            "{context}: ledger sizes differ"
        );
        for (a, b) in self.ledger.iter().zip(&reference.ledger) {
            assert_eq!(a, b, "{context}: ledger row differs");
        }
        assert_eq!(
            self.table.len(),
            reference.table.len(),
            "{context}: row counts differ"
        );
        for (a, b) in self.table.iter().zip(&reference.table) {
            assert_eq!(a, b, "{context}: target rows differ");
        }
        assert_eq!(self.rejects, reference.rejects, "{context}: rejects differ");
        assert_eq!(
            self.warnings, reference.warnings,
            "{context}: value warnings differ"
        );
    }
}

/// An HTTP server on loopback that answers 200 to every request and sends the test each
/// request line and JSON body (the alert webhook's receiver).
pub fn webhook_server() -> (String, std::sync::mpsc::Receiver<(String, Value)>) {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/datsync", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(30)))
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut length = 0;
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if header.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            // Received before it is answered: the sender has it when its POST returns.
            if tx
                .send((request_line, serde_json::from_slice(&body).unwrap()))
                .is_err()
            {
                return;
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, rx)
}

/// The counts of a sync whose chunks were loaded out of order (a failed chunk loaded after
/// the chunks that follow it) against an uninterrupted run's: every count matches (a key the
/// late chunk shares with later ones is superseded either way).
pub fn assert_counts_match_out_of_order(s: &Value, expected: &Value) {
    assert_eq!(counts(s), counts(expected));
    assert_eq!(s["value_warnings"], expected["value_warnings"]);
    assert_counts_add_up(s);
}

/// `rows_read = rows_loaded + rows_rejected + rows_superseded + rows_pending` and
/// `rows_loaded = records_inserted + records_updated + records_skipped_older` in a `--json`
/// summary.
pub fn assert_counts_add_up(s: &Value) {
    assert_eq!(
        u(s, "rows_read"),
        u(s, "rows_loaded")
            + u(s, "rows_rejected")
            + u(s, "rows_superseded")
            + u(s, "rows_pending"),
        "{s}"
    );
    assert_eq!(
        u(s, "rows_loaded"),
        u(s, "records_inserted") + u(s, "records_updated") + u(s, "records_skipped_older"),
        "{s}"
    );
}

/// The same identities in a `sync_metadata` row ([`TestDb::metadata`]), and its counts equal
/// to the summary's.
pub fn assert_metadata_matches(m: &Value, s: &Value) {
    let pairs = [
        ("records_total", "rows_read"),
        ("records_loaded", "rows_loaded"),
        ("records_failed", "rows_rejected"),
        ("records_superseded", "rows_superseded"),
        ("records_pending", "rows_pending"),
        ("records_inserted", "records_inserted"),
        ("records_updated", "records_updated"),
        ("records_skipped_older", "records_skipped_older"),
        ("value_warnings", "value_warnings"),
    ];
    for (column, field) in pairs {
        assert_eq!(u(m, column), u(s, field), "{column} vs {field}: {m} vs {s}");
    }
    assert_eq!(m["status"], s["status"]);
}
