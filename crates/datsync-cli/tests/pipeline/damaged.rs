//! Damaged checkpoints (issue 12 item 5; fault-tests rows 3 and 5): a run is killed, its
//! checkpoint directory is damaged from outside — a journal entry removed (a gap), added for
//! a chunk that does not exist (stray), copied or renumbered (duplicate), edited so that a
//! chunk's entry disagrees with its file; a chunk file replaced, truncated or deleted; the
//! manifest made unreadable — and `datsync resume` is run once. Each form is repaired in that
//! one resume, from the source, with the exact table and counts of an uninterrupted run, or
//! refused with a message naming the damage and the command that recovers; never BAD_INPUT,
//! never "the source has changed".

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{
    CHUNK_SIZE, MESSY, Outcome, TestDb, Work, change_a_digit_of_the_first_row, counts, datsync,
    fresh_sync_id, write_sample,
};

/// The journal objects of a sync's checkpoint, by sequence number, parsed.
fn journal(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut out: Vec<(PathBuf, Value)> = std::fs::read_dir(dir.join("journal"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .map(|p| {
                    let v = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                    (p, v)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by_key(|(_, v)| v["seq"].as_u64());
    out
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

fn write_json(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

/// The newest entry of `chunk`, from the journal or else the manifest.
fn newest_entry(dir: &Path, chunk: u64) -> Value {
    journal(dir)
        .into_iter()
        .rev()
        .map(|(_, v)| v["chunk"].clone())
        .chain(manifest(dir)["chunks"].as_array().unwrap().iter().cloned())
        .find(|c| c["chunk_id"] == chunk)
        .unwrap_or_else(|| panic!("no entry for chunk {chunk} in {}", dir.display()))
}

/// The next free journal sequence number.
fn next_seq(dir: &Path) -> u64 {
    let last = journal(dir)
        .iter()
        .filter_map(|(_, v)| v["seq"].as_u64())
        .max()
        .unwrap_or(0);
    last.max(manifest(dir)["journal_seq"].as_u64().unwrap()) + 1
}

/// Writes a journal object holding `chunk` as the newest transition (status as the last
/// entry's).
fn add_entry(dir: &Path, chunk: &Value) {
    let seq = next_seq(dir);
    let m = manifest(dir);
    let entry = serde_json::json!({
        "seq": seq,
        "updated_at": m["updated_at"],
        "status": m["status"],
        "phase": m["phase"],
        "error": null,
        "chunk": chunk,
    });
    std::fs::create_dir_all(dir.join("journal")).unwrap();
    write_json(&dir.join(format!("journal/{seq:012}.json")), &entry);
}

/// Removes every record of `chunk`: its journal objects and its manifest entry (a gap).
fn remove_chunk(dir: &Path, chunk: u64) {
    for (path, v) in journal(dir) {
        if v["chunk"]["chunk_id"] == chunk {
            std::fs::remove_file(path).unwrap();
        }
    }
    let mut m = manifest(dir);
    let chunks = m["chunks"].as_array_mut().unwrap();
    chunks.retain(|c| c["chunk_id"] != chunk);
    let n = chunks.len();
    m["total_chunks"] = n.into();
    write_json(&dir.join("manifest.json"), &m);
}

fn chunk_file(dir: &Path, chunk: u64) -> PathBuf {
    dir.join(format!("chunk_{chunk:04}.parquet"))
}

/// Where the cases that damage a pending chunk kill the run: as chunk 4's file and entry are
/// recorded, so a recorded chunk the ledger lacks exists whatever pace the loader keeps (a
/// kill after chunk 3's commit can come after the loader caught up with the converter).
const PENDING_RECORDED: &str = "chunk_converted:4";

/// The damage form that copies chunk 0's file (committed by then) over a pending chunk's.
const REPLACED_BY_ANOTHER: &str = "a chunk file replaced by another chunk's";

/// The highest chunk recorded (journal or manifest) that the ledger does not have.
fn pending_chunk(dir: &Path, db: &TestDb, sync: &str) -> u64 {
    let committed: Vec<u64> = db
        .ledger(sync)
        .iter()
        .map(|c| c["chunk_id"].as_u64().unwrap())
        .collect();
    let mut ids: Vec<u64> = journal(dir)
        .iter()
        .map(|(_, v)| v["chunk"]["chunk_id"].as_u64().unwrap())
        .chain(
            manifest(dir)["chunks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["chunk_id"].as_u64().unwrap()),
        )
        .filter(|id| !committed.contains(id))
        .collect();
    ids.sort_unstable();
    *ids.last()
        .unwrap_or_else(|| panic!("no uncommitted chunk recorded in {}", dir.display()))
}

/// One damage form: where the run is killed, what is done to its checkpoint directory, and
/// what the resume says about it.
struct Case {
    name: &'static str,
    kill_at: &'static str,
    damage: fn(&Path, &TestDb, &str),
    says: &'static [&'static str],
    /// Continued by `datsync run FILE` (the source's unfinished sync) instead of `resume`.
    by_run: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "a gap: every journal object of a committed chunk removed",
        kill_at: "chunk_committed:3",
        damage: |dir, _, _| remove_chunk(dir, 1),
        by_run: false,
        says: &["no entry for chunk 1 (a gap in the journal)"],
    },
    Case {
        name: "a gap in a finished manifest (killed at its cleanup)",
        kill_at: "cleanup_started:1",
        damage: |dir, _, _| remove_chunk(dir, 2),
        by_run: false,
        says: &["no entry for chunk 2 (a gap in the journal)"],
    },
    Case {
        name: "a stray entry for a chunk that does not exist",
        kill_at: "chunk_committed:3",
        damage: |dir, _, _| {
            let mut c = newest_entry(dir, 0);
            c["chunk_id"] = 40.into();
            c["status"] = "ready".into();
            c["parquet_path"] = "chunk_0040.parquet".into();
            c["first_line"] = 900_000.into();
            c["last_line"] = 900_499.into();
            add_entry(dir, &c);
        },
        by_run: false,
        says: &["a stray entry"],
    },
    Case {
        name: "a stray entry that says its chunk is completed",
        kill_at: "chunk_committed:3",
        damage: |dir, _, _| {
            let mut c = newest_entry(dir, 0);
            c["chunk_id"] = 7.into();
            c["status"] = "completed".into();
            c["parquet_path"] = "chunk_0007.parquet".into();
            c["first_line"] = 900_000.into();
            c["last_line"] = 900_499.into();
            add_entry(dir, &c);
        },
        by_run: false,
        says: &["the database has no commit of it"],
    },
    Case {
        name: "a journal object copied under another name",
        kill_at: "chunk_committed:3",
        damage: |dir, _, _| {
            let (path, _) = journal(dir).into_iter().nth(1).unwrap();
            let seq = next_seq(dir);
            std::fs::copy(path, dir.join(format!("journal/{seq:012}.json"))).unwrap();
        },
        by_run: false,
        says: &["(a copy of another entry)"],
    },
    Case {
        name: "a duplicate entry that sets a committed chunk back to ready",
        kill_at: "chunk_committed:3",
        damage: |dir, _, _| {
            let (_, first) = journal(dir).into_iter().next().unwrap();
            add_entry(dir, &first["chunk"]);
        },
        // The ledger marks it completed again: nothing to say, nothing loaded twice.
        by_run: false,
        says: &[],
    },
    Case {
        name: "a duplicate entry under the id of a pending chunk",
        kill_at: PENDING_RECORDED,
        damage: |dir, db, sync| {
            let pending = pending_chunk(dir, db, sync);
            let mut c = newest_entry(dir, 0);
            c["chunk_id"] = pending.into();
            c["status"] = "ready".into();
            c["parquet_path"] = format!("chunk_{pending:04}.parquet").into();
            add_entry(dir, &c);
        },
        by_run: false,
        says: &["names lines that cannot follow the previous chunk's"],
    },
    Case {
        name: "an entry whose row count disagrees with its chunk file",
        kill_at: PENDING_RECORDED,
        damage: |dir, db, sync| {
            let mut c = newest_entry(dir, pending_chunk(dir, db, sync));
            c["rows"] = (c["rows"].as_u64().unwrap() - 1).into();
            add_entry(dir, &c);
        },
        by_run: false,
        says: &["rows differ from the manifest", "disagrees with the source"],
    },
    Case {
        name: "an entry whose checksum disagrees with its chunk file",
        kill_at: PENDING_RECORDED,
        damage: |dir, db, sync| {
            let mut c = newest_entry(dir, pending_chunk(dir, db, sync));
            c["parquet_sha256"] = "0".repeat(64).into();
            add_entry(dir, &c);
        },
        by_run: false,
        says: &[
            "checksum mismatch",
            "regenerating the chunk from the source",
        ],
    },
    Case {
        name: REPLACED_BY_ANOTHER,
        kill_at: PENDING_RECORDED,
        damage: |dir, db, sync| {
            let pending = pending_chunk(dir, db, sync);
            std::fs::copy(chunk_file(dir, 0), chunk_file(dir, pending)).unwrap();
        },
        by_run: false,
        says: &["regenerating the chunk from the source"],
    },
    Case {
        name: "a chunk file truncated",
        kill_at: PENDING_RECORDED,
        damage: |dir, db, sync| {
            let path = chunk_file(dir, pending_chunk(dir, db, sync));
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
        },
        by_run: false,
        says: &["regenerating the chunk from the source"],
    },
    Case {
        name: "a chunk file deleted",
        kill_at: PENDING_RECORDED,
        damage: |dir, db, sync| {
            std::fs::remove_file(chunk_file(dir, pending_chunk(dir, db, sync))).unwrap();
        },
        by_run: false,
        says: &["is missing; it must be regenerated from the source"],
    },
    Case {
        name: "a journal object truncated",
        kill_at: "chunk_committed:3",
        damage: |dir, _, _| {
            let (path, _) = journal(dir).into_iter().nth(2).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        },
        by_run: false,
        says: &["is unreadable (truncated"],
    },
    Case {
        name: "a gap and a stray entry, continued by `run FILE`",
        kill_at: "chunk_committed:3",
        damage: |dir, _, _| {
            remove_chunk(dir, 1);
            let mut c = newest_entry(dir, 0);
            c["chunk_id"] = 17.into();
            c["status"] = "ready".into();
            c["parquet_path"] = "chunk_0017.parquet".into();
            c["first_line"] = 900_000.into();
            c["last_line"] = 900_499.into();
            add_entry(dir, &c);
        },
        by_run: true,
        says: &[
            "no entry for chunk 1, chunks",
            "(a stray entry); dropping it",
        ],
    },
];

/// Checks that a resume ended as the uninterrupted run did: exit code, counts, table, the
/// ledger's chunks, no checkpoint left.
fn assert_as_reference(
    case: &str,
    out: &Outcome,
    db: &TestDb,
    reference: &(Outcome, TestDb),
    sync: &str,
) {
    let (expected, reference_db) = reference;
    assert_eq!(out.code(), expected.code(), "{case}: {}", out.describe());
    let (s, e) = (out.summary(), expected.summary());
    assert_eq!(counts(&s), counts(&e), "{case}: {}", out.describe());
    assert_eq!(s["value_warnings"], e["value_warnings"], "{case}");
    assert!(
        db.table() == reference_db.table(),
        "{case}: the tables differ"
    );
    let chunks = |db: &TestDb| -> Vec<(Value, Value)> {
        db.ledger(sync)
            .iter()
            .map(|c| (c["chunk_id"].clone(), c["rows_read"].clone()))
            .collect()
    };
    assert_eq!(
        chunks(db),
        chunks(reference_db),
        "{case}: the ledgers differ"
    );
    for wrong in ["has changed", "BAD_INPUT"] {
        assert!(!out.stderr.contains(wrong), "{case}: {}", out.describe());
        assert!(!out.stdout.contains(wrong), "{case}: {}", out.describe());
    }
}

#[test]
fn rows03_05_every_damage_form_is_repaired_by_the_first_resume() {
    let work = Work::new(3_000, 51, MESSY);
    let sync = fresh_sync_id();
    let reference_db = TestDb::new();
    let expected = work.run(
        &reference_db,
        &work.checkpoints("ck_reference"),
        &["--sync-id", &sync],
        &[],
    );
    let reference = (expected, reference_db);
    for (i, case) in CASES.iter().enumerate() {
        let db = TestDb::new();
        let ck = work.checkpoints(&format!("ck_{i}"));
        // Killed with the default setting (a done chunk's file goes at once), but for the
        // case that copies a committed chunk's file.
        if case.name == REPLACED_BY_ANOTHER {
            work.run_killed_keeping_files(&db, &ck, &sync, case.kill_at, case.name);
        } else {
            work.run_killed(&db, &ck, &sync, case.kill_at, case.name);
        }
        let dir = ck.join(&sync);
        (case.damage)(&dir, &db, &sync);

        let out = if case.by_run {
            work.run(&db, &ck, &[], &[])
        } else {
            work.resume(&db, &ck, &sync, &[])
        };
        assert_as_reference(case.name, &out, &db, &reference, &sync);
        for says in case.says {
            assert!(
                out.stderr.contains(says),
                "{}: the resume does not say {says:?}: {}",
                case.name,
                out.describe()
            );
        }
        assert!(!dir.exists(), "{}: the checkpoint is cleaned up", case.name);
    }
}

#[test]
fn rows03_05_damage_that_needs_an_unreadable_source_is_refused_naming_the_way_back() {
    let work = Work::new(3_000, 52, MESSY);
    let sync = fresh_sync_id();
    let reference_db = TestDb::new();
    let expected = work.run(
        &reference_db,
        &work.checkpoints("ck_reference"),
        &["--sync-id", &sync],
        &[],
    );
    let reference = (expected, reference_db);
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    work.run_killed(&db, &ck, &sync, "chunk_committed:3", "the first run");
    let dir = ck.join(&sync);
    remove_chunk(&dir, 1);
    let ledger = db.ledger(&sync);
    let aside = work.path().join("aside.dat");
    std::fs::rename(&work.file, &aside).unwrap();

    let out = work.resume(&db, &ck, &sync, &[]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let summary = out.summary();
    let error = summary["error"].as_str().unwrap();
    for says in [
        "is damaged: no entry for chunk 1 (a gap in the journal)",
        &format!("make {} readable again", work.file()),
        &format!("`datsync resume {sync}`"),
        &format!("`datsync run {} --fresh`", work.file()),
    ] {
        assert!(error.contains(says), "{says:?} not in {error}");
        assert!(out.stderr.contains(says), "{says:?}: {}", out.describe());
    }
    assert!(summary["status"].is_null(), "no status: {summary}");
    assert_eq!(db.ledger(&sync), ledger, "nothing loaded");
    assert_eq!(db.metadata(&sync).unwrap()["status"], "IN_PROGRESS");

    // The way back: the source again, the same command.
    std::fs::rename(&aside, &work.file).unwrap();
    let out = work.resume(&db, &ck, &sync, &[]);
    assert_as_reference("the source back", &out, &db, &reference, &sync);
    assert!(!dir.exists());
}

/// `datsync resume SYNC_ID --rebuild-checkpoint` with the shared flags.
fn rebuild(work: &Work, db: &TestDb, ck: &Path, sync: &str) -> Outcome {
    let url = db.url();
    let args = [
        "resume",
        sync,
        "--rebuild-checkpoint",
        "--database-url",
        &url,
        "--checkpoint-dir",
        ck.to_str().unwrap(),
        "--chunk-size",
        CHUNK_SIZE,
        "--json",
    ];
    datsync(work.path(), &args, &[])
}

/// A damage form's name, what it does to the sync's checkpoint directory, and what the
/// refusal says of it.
type ManifestDamage = (&'static str, fn(&Path), &'static str);

/// Damage to `manifest.json` itself.
const MANIFEST_DAMAGE: &[ManifestDamage] = &[
    (
        "an empty manifest",
        |dir| std::fs::write(dir.join("manifest.json"), b"").unwrap(),
        "manifest.json is unreadable (empty file)",
    ),
    (
        "a truncated manifest",
        |dir| {
            let path = dir.join("manifest.json");
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        },
        "manifest.json is unreadable (truncated",
    ),
    (
        "a deleted manifest",
        |dir| std::fs::remove_file(dir.join("manifest.json")).unwrap(),
        "has chunk files or journal entries but no manifest.json",
    ),
];

#[test]
fn row03_an_unreadable_manifest_is_refused_and_rebuilt_by_the_command_it_names() {
    let work = Work::new(3_000, 53, MESSY);
    let sync = fresh_sync_id();
    let reference_db = TestDb::new();
    let expected = work.run(
        &reference_db,
        &work.checkpoints("ck_reference"),
        &["--sync-id", &sync],
        &[],
    );
    let reference = (expected, reference_db);
    for (i, (name, damage, says)) in MANIFEST_DAMAGE.iter().enumerate() {
        let db = TestDb::new();
        let ck = work.checkpoints(&format!("ck_{i}"));
        work.run_killed(&db, &ck, &sync, "chunk_committed:3", name);
        let dir = ck.join(&sync);
        damage(&dir);
        let ledger = db.ledger(&sync);

        let out = work.resume(&db, &ck, &sync, &[]);
        assert_eq!(out.code(), Some(1), "{name}: {}", out.describe());
        let way_back = format!("`datsync resume {sync} --rebuild-checkpoint`");
        for says in [says, way_back.as_str()] {
            assert!(
                out.stderr.contains(says),
                "{name}: {says:?}: {}",
                out.describe()
            );
        }
        assert!(out.summary()["status"].is_null(), "{name}: no status");
        assert_eq!(db.ledger(&sync), ledger, "{name}: nothing loaded");
        assert!(dir.exists(), "{name}: the checkpoint is kept");

        let out = rebuild(&work, &db, &ck, &sync);
        assert_as_reference(name, &out, &db, &reference, &sync);
        assert!(
            out.stderr
                .contains("rebuilding it from the source and the database"),
            "{name}: {}",
            out.describe()
        );
        assert!(!dir.exists(), "{name}: the checkpoint is cleaned up");
    }
}

#[test]
fn row03_a_checkpoint_is_never_rebuilt_from_another_source() {
    let work = Work::new(3_000, 54, MESSY);
    let sync = fresh_sync_id();
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    work.run_killed(&db, &ck, &sync, "chunk_committed:3", "the first run");
    std::fs::write(ck.join(&sync).join("manifest.json"), b"").unwrap();
    let ledger = db.ledger(&sync);
    write_sample(&work.file, 3_000, 55, MESSY);

    let out = rebuild(&work, &db, &ck, &sync);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr
            .contains("has changed since its checkpoint was made")
            && out.stderr.contains("--fresh"),
        "{}",
        out.describe()
    );
    assert_eq!(db.ledger(&sync), ledger, "nothing loaded");
    assert_eq!(db.metadata(&sync).unwrap()["status"], "IN_PROGRESS");
    // A sync that does not exist is not rebuilt from anything.
    let out = rebuild(&work, &db, &ck, "sync_20200101_000000_00000000");
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("is unknown"), "{}", out.describe());
}

/// A finished conversion reopened by a repair checks the whole source against the SHA-256
/// it recorded, so it reads the source from its start rather than on from a resume point: a
/// change before the point — same size, the modification time put back — is refused.
#[test]
fn row03_a_reopened_conversion_reads_the_whole_source_again_and_refuses_a_change() {
    let work = Work::new(3_000, 56, MESSY);
    let sync = fresh_sync_id();
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    work.run_killed(&db, &ck, &sync, "cleanup_started:1", "the first run");
    let dir = ck.join(&sync);
    assert!(manifest(&dir)["source_fingerprint"]["sha256"].is_string());
    // Chunks 0 and 1 stay recorded, with their resume points and hash states.
    remove_chunk(&dir, 2);
    // One byte of chunk 0 changes; the size and the modification time do not.
    let modified = std::fs::metadata(&work.file).unwrap().modified().unwrap();
    change_a_digit_of_the_first_row(&work.file, modified);
    let ledger = db.ledger(&sync);

    let out = work.resume(&db, &ck, &sync, &[("RUST_LOG", "info")]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr
            .contains("has changed since its checkpoint was made"),
        "{}",
        out.describe()
    );
    assert!(
        !out.stderr
            .contains("the bytes before it are not read again"),
        "{}",
        out.describe()
    );
    assert_eq!(db.ledger(&sync), ledger, "nothing loaded");
}
