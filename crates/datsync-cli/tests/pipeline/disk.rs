//! Row 10 of `../shared/design/fault-tests.md`, disk full, on a filesystem of a few MiB that
//! the test mounts (a `tmpfs` with `size=`; mounting needs root, as CI and this sandbox
//! have — elsewhere the tests say loudly that they were skipped):
//!
//! - the server's: a private PostgreSQL whose database keeps its tables (datsync's and the
//!   target) in a tablespace on the small filesystem (`ALTER DATABASE … SET
//!   default_tablespace`); the WAL stays on the big disk, as on a server whose data volume
//!   fills up. A run is held at a pause point while a ballast file fills the filesystem, so
//!   the next chunk cannot extend the table: SQLSTATE 53100, waited out as an outage. With
//!   the ballast removed the run ends with the exact table; past `DATSYNC_DB_RETRY_FOR` it
//!   ends FAILED with its checkpoint, and the resume finishes it.
//! - datsync's own: the checkpoint directory on the small filesystem, filled while the
//!   conversion is held: the run fails naming the path, nothing but complete chunks is
//!   committed, and once space returns the resume ends as an uninterrupted run.

use std::io::{BufRead as _, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use crate::common::{MESSY, Snapshot, TestDb, Work, counts, fresh_sync_id, u};
use crate::errors::{FAST_RETRY, reference};
use crate::private::{Server, finish, reached, spawn};

/// A `tmpfs` of `size` mounted on a temp dir, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (and a loud line on stderr and stdout) when it cannot be mounted.
    fn mount(size: &str, test: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0777"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Self { dir }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
                    Err(e) => e.to_string(),
                };
                let line = format!(
                    "SKIPPED {test}: cannot mount a {size} tmpfs ({why}); this test needs root"
                );
                eprintln!("{line}");
                println!("{line}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a ballast file until the filesystem is full; returns its path.
    fn fill(&self) -> PathBuf {
        self.fill_leaving(0)
    }

    /// [`Self::fill`], then gives `leave` bytes back.
    fn fill_leaving(&self, leave: u64) -> PathBuf {
        let path = self.path().join("ballast");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        loop {
            match f.write_all(&block) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                Err(e) => panic!("{}: {e}", path.display()),
            }
        }
        // The last block may have been written in part: fill the bytes that are left too.
        let _ = f.write_all(&[0u8; 512]);
        let _ = f.sync_all();
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(leave)).unwrap();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let path = self.dir.path();
        let done = std::process::Command::new("umount")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !done {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(path)
                .status();
        }
    }
}

/// Its stderr, line by line, to a channel; the whole text when it ends.
fn stderr_lines(
    child: &mut Child,
) -> (
    std::sync::mpsc::Receiver<String>,
    std::thread::JoinHandle<String>,
) {
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap();
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });
    (rx, reader)
}

/// Waits for the line saying a load met a full disk.
fn wait_for_disk_full(lines: &std::sync::mpsc::Receiver<String>) -> String {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(120))
            .expect("the run never said the disk was full");
        if line.contains("SQLSTATE 53100") {
            return line;
        }
    }
}

/// The private server with database `fulldisk` whose tables go to a tablespace on `fs`.
fn server_on(fs: &Tmpfs) -> Server {
    let server = Server::start();
    let ts = fs.path().join("ts");
    std::fs::create_dir(&ts).unwrap();
    // The server's user (when the test runs as root) owns its directory.
    let owner = std::fs::metadata(server.pg.dir()).unwrap();
    std::os::unix::fs::chown(&ts, Some(owner.uid()), Some(owner.gid())).unwrap();
    server.create_db("fulldisk");
    server.batch(
        "fulldisk",
        &format!("CREATE TABLESPACE small LOCATION '{}'", ts.display()),
    );
    server.batch(
        datsync::TEMP_DATABASE,
        "ALTER DATABASE fulldisk SET default_tablespace = small",
    );
    server
}

/// The target table of `db` as [`TestDb::table`] gives it.
fn table(server: &Server, db: &str) -> Vec<String> {
    use crate::common::{KEY, TABLE};
    server
        .query(
            db,
            &format!(
                "SELECT (to_jsonb(t) - 'created_at' - 'updated_at')::text FROM {TABLE} t ORDER BY {KEY}"
            ),
        )
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// `datsync ARGS` against database `fulldisk` of `server`, with the shared flags.
fn start(work: &Work, server: &Server, ck: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
    let url = server.url("fulldisk");
    let mut all = args.to_vec();
    all.extend([
        "--database-url",
        &url,
        "--checkpoint-dir",
        ck.to_str().unwrap(),
        "--chunk-size",
        crate::common::CHUNK_SIZE,
        "--json",
    ]);
    spawn(work.path(), &all, env)
}

/// Row 10: the server's disk fills while a run of a 3,000-row file (6 chunks) is held
/// before chunk 3's upsert; the load fails with 53100, the run says so and waits; the
/// ballast is removed and the run ends with the table and counts of an uninterrupted run.
#[test]
fn row10_a_full_server_disk_is_waited_out_and_the_run_ends_with_the_exact_table() {
    let Some(fs) = Tmpfs::mount("16m", "row 10 (server disk full)") else {
        return;
    };
    let work = Work::new(3_000, 1001, MESSY);
    let sync = fresh_sync_id();
    let (reference_db, expected, expected_code) = reference(&work, &sync);
    let server = server_on(&fs);
    let pauses = tempfile::tempdir().unwrap();
    let ck = work.checkpoints("ck");
    let mut run = start(
        &work,
        &server,
        &ck,
        &["run", work.file(), "--sync-id", &sync],
        &[
            FAST_RETRY,
            ("DATSYNC_PAUSE_AT", "chunk_staged:3"),
            ("DATSYNC_PAUSE_DIR", pauses.path().to_str().unwrap()),
        ],
    );
    let (lines, reader) = stderr_lines(&mut run);
    let marker = pauses.path().join("chunk_staged-3");
    assert!(reached(&marker, &mut run), "the run ended before chunk 3");
    let ballast = fs.fill();
    std::fs::remove_file(&marker).unwrap();
    let line = wait_for_disk_full(&lines);
    assert!(line.contains("retrying"), "{line}");
    std::fs::remove_file(&ballast).unwrap();
    let out = finish(run);
    let stderr = reader.join().unwrap();
    assert_eq!(out.code(), expected_code, "{}\n{stderr}", out.describe());
    assert_eq!(counts(&out.summary()), counts(&expected));
    assert_eq!(
        table(&server, "fulldisk"),
        reference_db.table(),
        "target rows differ"
    );
    let place: String = server.query(
        "fulldisk",
        "SELECT tablespace::text FROM pg_tables WHERE tablename = 'transport_documents'",
    )[0]
    .get(0);
    assert_eq!(place, "small", "the table lives on the small filesystem");
    drop(server);
}

/// Row 10 past the outage budget: the disk stays full for longer than
/// `DATSYNC_DB_RETRY_FOR=1s`; the run ends with exit 1, its summary naming 53100 and the
/// resume, and its checkpoint kept; once space returns the resume ends with the table and
/// counts of an uninterrupted run, in one sync.
#[test]
fn row10_a_disk_full_past_the_budget_fails_the_sync_and_the_resume_finishes_it() {
    let Some(fs) = Tmpfs::mount("16m", "row 10 (server disk full past the budget)") else {
        return;
    };
    let work = Work::new(3_000, 1002, MESSY);
    let sync = fresh_sync_id();
    let (reference_db, expected, expected_code) = reference(&work, &sync);
    let server = server_on(&fs);
    let pauses = tempfile::tempdir().unwrap();
    let ck = work.checkpoints("ck");
    let mut run = start(
        &work,
        &server,
        &ck,
        &["run", work.file(), "--sync-id", &sync],
        &[
            FAST_RETRY,
            ("DATSYNC_DB_RETRY_FOR", "1s"),
            ("DATSYNC_PAUSE_AT", "chunk_staged:3"),
            ("DATSYNC_PAUSE_DIR", pauses.path().to_str().unwrap()),
        ],
    );
    let marker = pauses.path().join("chunk_staged-3");
    assert!(reached(&marker, &mut run), "the run ended before chunk 3");
    let ballast = fs.fill();
    std::fs::remove_file(&marker).unwrap();
    let out = finish(run);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let s = out.summary();
    let error = s["error"].as_str().unwrap();
    assert!(
        error.contains("53100") && error.contains(&format!("datsync resume {sync}")),
        "{error}"
    );
    assert!(
        ck.join(&sync).join("manifest.json").exists(),
        "checkpoint kept"
    );
    let ledger: Vec<i32> = server
        .query(
            "fulldisk",
            &format!("SELECT chunk_id FROM sync_chunks WHERE sync_id = '{sync}' ORDER BY 1"),
        )
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ledger, [0, 1], "the chunks before the full disk");

    std::fs::remove_file(&ballast).unwrap();
    let out = finish(start(&work, &server, &ck, &["resume", &sync], &[]));
    assert_eq!(out.code(), expected_code, "{}", out.describe());
    assert_eq!(counts(&out.summary()), counts(&expected));
    assert_eq!(u(&out.summary(), "chunks_skipped_on_resume"), 2);
    assert_eq!(
        table(&server, "fulldisk"),
        reference_db.table(),
        "target rows differ"
    );
    let syncs: i64 = server.query("fulldisk", "SELECT count(*) FROM sync_metadata")[0].get(0);
    assert_eq!(syncs, 1, "one sync");
    drop(server);
}

/// Row 10 for datsync's own disk: the checkpoint directory on a small filesystem that fills
/// (but for 16 KiB) while the conversion is held after chunk 1, so chunk 2's Parquet file
/// cannot be written. The sync ends FAILED,
/// exit 1, with a message naming the path it could not write and the disk being full; every
/// chunk it committed is the reference run's chunk (its ledger row, checksum included);
/// once space returns, the resume ends with exactly what an uninterrupted run leaves.
#[test]
fn row10_a_full_checkpoint_disk_names_the_path_and_the_resume_finishes() {
    let Some(fs) = Tmpfs::mount("4m", "row 10 (checkpoint disk full)") else {
        return;
    };
    let work = Work::new(3_000, 1003, crate::common::CLEAN);
    let sync = fresh_sync_id();
    let (reference_db, expected, expected_code) = reference(&work, &sync);
    let reference = Snapshot::take(&reference_db, &work.checkpoints("ck_reference"), &sync);
    let db = TestDb::new();
    let ck = fs.path().join("ck");
    let pauses = tempfile::tempdir().unwrap();
    let url = db.url();
    let mut run = spawn(
        work.path(),
        &[
            "run",
            work.file(),
            "--sync-id",
            &sync,
            "--database-url",
            &url,
            "--checkpoint-dir",
            ck.to_str().unwrap(),
            "--chunk-size",
            crate::common::CHUNK_SIZE,
            "--json",
        ],
        &[
            FAST_RETRY,
            // Done chunks' files stay: removed as their chunks commit (the default), they
            // would give back the space the ballast leaves out, while it is being filled.
            ("CHECKPOINT_CLEANUP_ON_SUCCESS", "false"),
            ("DATSYNC_PAUSE_AT", "chunk_converted:2"),
            ("DATSYNC_PAUSE_DIR", pauses.path().to_str().unwrap()),
        ],
    );
    let marker = pauses.path().join("chunk_converted-2");
    assert!(reached(&marker, &mut run), "the run ended before chunk 2");
    let ballast = fs.fill_leaving(16 * 1024);
    std::fs::remove_file(&marker).unwrap();
    let out = finish(run);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let s = out.summary();
    let error = s["error"].as_str().unwrap_or_default();
    assert_eq!(s["status"], "FAILED", "{s}");
    // The next write after the pause is chunk 2's Parquet file (tens of KiB, more than the
    // 16 KiB left; the journal's small writes fit).
    assert!(
        error.contains(fs.path().to_str().unwrap())
            && error.contains(".parquet")
            && error.contains("No space left on device"),
        "the error names the chunk file and the cause: {}",
        out.describe()
    );
    db.wait_for_other_sessions();
    let ledger = db.ledger(&sync);
    for row in &ledger {
        let chunk = usize::try_from(row["chunk_id"].as_u64().unwrap()).unwrap();
        assert_eq!(row, &reference.ledger[chunk], "a committed chunk differs");
    }
    println!("disk full after {} committed chunks: {error}", ledger.len());

    std::fs::remove_file(&ballast).unwrap();
    let out = work.resume(&db, &ck, &sync, &[]);
    assert_eq!(out.code(), expected_code, "{}", out.describe());
    assert_eq!(counts(&out.summary()), counts(&expected));
    Snapshot::take(&db, &ck, &sync).assert_same(&reference, "after the full disk");
}
