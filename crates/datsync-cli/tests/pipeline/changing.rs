//! Sources that change under a run (issue 12 item 4; fault-tests row 16 for a local file): a
//! run is stopped whole (`DATSYNC_SIGSTOP_AT`, every thread at once) after its second
//! commit, the file is overwritten in place (same inode, same size, new bytes) or replaced
//! by a rename, and the run is continued. It must stop before its next save or commit,
//! naming the file; no row of the new bytes is in the table. Then, as documented:
//! `resume` of that sync is refused (its checkpoint was cut from the old file), and `run
//! FILE` loads the new file as a new sync — the table is then exactly a clean load of the new
//! file (the new file has the same keys, every row changed).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{CHUNK_SIZE, CLEAN, TestDb, Work, u};

/// Columns a clean load by another sync (in another database) writes differently.
const SYNC_COLUMNS: &[&str] = &["sync_id", "sync_seq"];

/// The new bytes: in every data line, the first `C` after the key becomes `X` — the same
/// size, the same keys, (nearly) every row changed.
fn rewritten(old: &[u8]) -> Vec<u8> {
    let mut out = old.to_vec();
    let mut start = out.iter().position(|&b| b == b'\n').unwrap() + 1;
    while start < out.len() {
        let end = out[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(out.len(), |i| start + i);
        // After the key (the first field): the first `C` of a code or a name.
        if let Some(delim) = out[start..end].iter().position(|&b| b == b'|')
            && let Some(at) = out[start + delim..end].iter().position(|&b| b == b'C')
        {
            out[start + delim + at] = b'X';
        }
        start = end + 1;
    }
    assert_eq!(out.len(), old.len());
    out
}

/// Waits until process `pid` is stopped (state `T` in `/proc/<pid>/stat`).
pub(crate) fn wait_stopped(pid: u32, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The state follows the command name in parentheses.
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        if state == Some('T') {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it stopped"
        );
        assert!(Instant::now() < deadline, "the run never stopped itself");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[derive(Debug, Clone, Copy)]
enum Change {
    /// Overwritten in place: same inode, same size, new bytes, a new modification time.
    InPlace,
    /// A new file renamed over it.
    Rename,
}

fn change(file: &Path, bytes: &[u8], how: Change) {
    match how {
        Change::InPlace => {
            use std::io::{Seek, SeekFrom, Write};
            let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
            f.seek(SeekFrom::Start(0)).unwrap();
            f.write_all(bytes).unwrap();
            f.sync_all().unwrap();
        }
        Change::Rename => {
            let tmp = file.with_extension("dat.new");
            std::fs::write(&tmp, bytes).unwrap();
            std::fs::rename(&tmp, file).unwrap();
        }
    }
}

/// A clean load of `bytes` in a database of its own: the table and the summary.
fn clean_load(bytes: &[u8]) -> (Vec<String>, serde_json::Value) {
    let work = Work::new(1, 1, CLEAN);
    std::fs::write(&work.file, bytes).unwrap();
    let db = TestDb::new();
    let out = work.run(&db, &work.checkpoints("ck"), &[], &[]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    (db.table_without(SYNC_COLUMNS), out.summary())
}

fn source_changes_under_the_run(how: Change) {
    let work = Work::new(20_000, 81, CLEAN);
    let old = std::fs::read(&work.file).unwrap();
    let new = rewritten(&old);
    let (old_table, _) = clean_load(&old);
    let (new_table, new_summary) = clean_load(&new);
    let old_rows: BTreeSet<&String> = old_table.iter().collect();
    let same = new_table.iter().filter(|r| old_rows.contains(r)).count();
    assert!(
        same * 100 < new_table.len(),
        "{same} rows of the new file are the old file's"
    );

    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let url = db.url();
    let mut child = Command::new(env!("CARGO_BIN_EXE_datsync"))
        .args(["run", work.file(), "--database-url", &url])
        .args(["--checkpoint-dir", ck.to_str().unwrap()])
        .args(["--chunk-size", CHUNK_SIZE, "--json"])
        .current_dir(work.path())
        .env_clear()
        .env("RUST_LOG", "warn")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATSYNC_SIGSTOP_AT", "chunk_committed:2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_stopped(pid, &mut child);
    change(&work.file, &new, how);
    let cont = Command::new("kill")
        .args(["-CONT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(cont.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let describe = format!("{how:?}: exit {:?}\n{stdout}\n{stderr}", out.status);
    assert_eq!(out.status.code(), Some(1), "{describe}");
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(s["status"], "FAILED", "{describe}");
    let error = s["error"].as_str().unwrap();
    assert!(error.contains(work.file()), "names the file: {error}");
    assert!(error.contains("changed while"), "{error}");
    match how {
        Change::InPlace => assert!(error.contains("modification time"), "{error}"),
        Change::Rename => assert!(error.contains("another inode"), "{error}"),
    }
    let sync = s["sync_id"].as_str().unwrap().to_owned();

    // Nothing of the new bytes: every row is a row of the old file.
    let table = db.table_without(SYNC_COLUMNS);
    let committed = db.committed_chunks(&sync);
    assert!(committed >= 2, "{committed} chunks committed");
    assert!(
        committed < 40,
        "the run stopped early: {committed} chunks committed"
    );
    assert_eq!(table.len(), committed * 500);
    for row in &table {
        assert!(
            old_rows.contains(row),
            "{how:?}: a row not of the old file: {row}"
        );
    }

    // The sync's checkpoint was cut from the old file: resume refuses it.
    let resumed = work.resume(&db, &ck, &sync, &[]);
    assert_eq!(resumed.code(), Some(1), "{}", resumed.describe());
    assert!(
        resumed.stdout.contains("changed") || resumed.stderr.contains("changed"),
        "{}",
        resumed.describe()
    );
    assert_eq!(
        db.committed_chunks(&sync),
        committed,
        "resume committed nothing"
    );

    // `run FILE` loads the new file as a new sync: the exact table of the new file.
    let again = work.run(&db, &ck, &[], &[]);
    assert_eq!(again.code(), Some(0), "{}", again.describe());
    let a = again.summary();
    assert_ne!(a["sync_id"], sync.as_str());
    assert_eq!(a["already_loaded"], false);
    assert_eq!(db.table_without(SYNC_COLUMNS), new_table);
    assert_eq!(u(&a, "rows_read"), u(&new_summary, "rows_read"));
    assert_eq!(u(&a, "rows_loaded"), u(&new_summary, "rows_loaded"));
    assert_eq!(
        u(&a, "records_updated"),
        committed as u64 * 500,
        "the keys the stopped sync committed are updated"
    );
    assert_eq!(
        u(&a, "records_inserted") + u(&a, "records_updated"),
        u(&new_summary, "records_inserted")
    );
}

#[test]
fn row16_a_file_overwritten_in_place_during_a_run_commits_nothing_of_the_new_bytes() {
    source_changes_under_the_run(Change::InPlace);
}

#[test]
fn row16_a_file_replaced_by_a_rename_during_a_run_commits_nothing_of_the_new_bytes() {
    source_changes_under_the_run(Change::Rename);
}
