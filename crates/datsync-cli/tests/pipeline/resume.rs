//! Resume semantics (Diagram 2, promises 1, 3 and 6): committed chunks are skipped, `run`
//! continues the unfinished sync of its source unless `--fresh`, a changed source is refused,
//! a corrupt chunk file is regenerated from the source.

use std::path::Path;

use crate::common::{
    CHUNK_SIZE, MESSY, Snapshot, TestDb, Work, chunk_files, counts, datsync, fresh_sync_id, u,
    write_sample,
};

/// The one sync directory in a checkpoint directory other than `except`.
fn only_sync_dir(ck: &Path, except: &[&str]) -> String {
    let ids: Vec<String> = std::fs::read_dir(ck)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("sync_") && !except.contains(&n.as_str()))
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids.into_iter().next().unwrap()
}

#[test]
fn resume_skips_the_committed_chunks() {
    let work = Work::new(3_000, 41, MESSY);
    let sync = fresh_sync_id();
    let reference_db = TestDb::new();
    let expected = work
        .run(
            &reference_db,
            &work.checkpoints("ck_reference"),
            &["--sync-id", &sync],
            &[],
        )
        .summary();

    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let out = work.run(
        &db,
        &ck,
        &["--sync-id", &sync],
        &[("DATSYNC_KILL_AT", "chunk_completed:3")],
    );
    assert!(out.killed(), "{}", out.describe());
    assert_eq!(db.committed_chunks(&sync), 3);
    // A running (here: interrupted) sync shows its progress: the committed chunks' rows.
    let m = db.metadata(&sync).unwrap();
    assert_eq!(m["status"], "IN_PROGRESS");
    let read: i64 = db.query(
        "SELECT sum(rows_read)::bigint FROM public.sync_chunks WHERE sync_id = $1",
        &[&sync],
    )[0]
    .get(0);
    assert_eq!(m["records_total"].as_i64(), Some(read));
    assert!(read >= 3 * 500, "{read}");
    let out = work.resume(&db, &ck, &sync, &[]);
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    let s = out.summary();
    assert_eq!(s["resumed"], true);
    assert_eq!(u(&s, "chunks_skipped_on_resume"), 3, "{s}");
    assert!(s["time_saved_s"].as_f64().is_some_and(|t| t > 0.0), "{s}");
    assert_eq!(counts(&s), counts(&expected));
    assert_eq!(db.table(), reference_db.table());

    let out = work.resume(&db, &ck, "sync_20200101_000000_00000000", &[]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("is unknown"), "{}", out.stderr);
}

#[test]
fn run_continues_the_unfinished_sync_of_its_source_and_fresh_starts_anew() {
    let work = Work::new(2_500, 42, MESSY);
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let killed = work.run(&db, &ck, &[], &[("DATSYNC_KILL_AT", "chunk_committed:2")]);
    assert!(killed.killed(), "{}", killed.describe());
    let first = only_sync_dir(&ck, &[]);

    let out = work.run(&db, &ck, &[], &[("RUST_LOG", "info")]);
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    let s = out.summary();
    assert_eq!(s["sync_id"], first.as_str(), "the same sync continues");
    assert_eq!(s["resumed"], true);
    assert_eq!(u(&s, "chunks_skipped_on_resume"), 2);
    assert!(
        out.stderr.contains("continuing the unfinished sync"),
        "it says so: {}",
        out.stderr
    );

    // The first sync is finished: the next run is a no-op (the file is already loaded).
    let out = work.run(&db, &ck, &[], &[]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(out.summary()["already_loaded"], true);
    assert_eq!(out.summary()["sync_id"], first.as_str());
    // --fresh starts a second one; killed, it stays unfinished, and --fresh leaves it alone
    // and starts a third.
    let killed = work.run(
        &db,
        &ck,
        &["--fresh"],
        &[("DATSYNC_KILL_AT", "chunk_completed:1")],
    );
    assert!(killed.killed(), "{}", killed.describe());
    let second = only_sync_dir(&ck, &[]);
    assert_ne!(second, first);
    let out = work.run(&db, &ck, &["--fresh"], &[]);
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    let s = out.summary();
    let third = s["sync_id"].as_str().unwrap().to_owned();
    assert!(third != first && third != second, "{s}");
    assert_eq!(s["resumed"], false);
    assert_eq!(u(&s, "chunks_skipped_on_resume"), 0);
    assert!(ck.join(&second).exists(), "the unfinished sync is kept");

    // The newest sync of the file, the third, ended final: `run` is a no-op, it does not
    // continue the older unfinished one.
    let out = work.run(&db, &ck, &[], &[]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(out.summary()["already_loaded"], true);
    assert_eq!(out.summary()["sync_id"], third.as_str());
    // The second sync, resumed after the third, is older: newest wins, it changes nothing.
    let out = work.resume(&db, &ck, &second, &[]);
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    let s = out.summary();
    assert_eq!(s["sync_id"], second.as_str());
    assert!(u(&s, "records_skipped_older") > 0, "{s}");
    let sources: Vec<String> = db
        .query(
            "SELECT DISTINCT sync_id FROM public.transport_documents",
            &[],
        )
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(sources, [third], "every row comes from the newest sync");
}

#[test]
fn a_changed_source_is_refused_on_resume() {
    let work = Work::new(2_500, 43, MESSY);
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let sync = fresh_sync_id();
    let out = work.run(
        &db,
        &ck,
        &["--sync-id", &sync],
        &[("DATSYNC_KILL_AT", "chunk_converted:2")],
    );
    assert!(out.killed(), "{}", out.describe());
    let committed = db.committed_chunks(&sync);
    write_sample(&work.file, 2_500, 44, MESSY);

    for out in [
        work.resume(&db, &ck, &sync, &[]),
        work.run(&db, &ck, &["--sync-id", &sync], &[]),
    ] {
        assert_eq!(out.code(), Some(1), "{}", out.describe());
        assert!(
            out.stderr
                .contains("has changed since its checkpoint was made"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("--fresh"), "{}", out.stderr);
    }
    assert_eq!(db.committed_chunks(&sync), committed, "nothing loaded");
    assert!(ck.join(&sync).join("manifest.json").exists());

    // `run` without an id does not pick the stale sync: it starts a new one.
    let out = work.run(&db, &ck, &[], &[]);
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    assert_ne!(out.summary()["sync_id"], sync.as_str());
}

#[test]
fn a_corrupt_chunk_file_is_regenerated_from_the_source() {
    let work = Work::new(3_000, 45, MESSY);
    let sync = fresh_sync_id();
    let reference_db = TestDb::new();
    let reference_ck = work.checkpoints("ck_reference");
    let expected = work.run(&reference_db, &reference_ck, &["--sync-id", &sync], &[]);
    let reference = Snapshot::take(&reference_db, &reference_ck, &sync);

    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let out = work.run(
        &db,
        &ck,
        &["--sync-id", &sync],
        &[("DATSYNC_KILL_AT", "chunk_converted:4")],
    );
    assert!(out.killed(), "{}", out.describe());
    // Chunk 3 was saved just before the kill; it cannot have been loaded yet.
    assert!(db.ledger(&sync).iter().all(|c| c["chunk_id"] != 3));
    let files = chunk_files(&ck, &sync);
    let chunk3 = files
        .iter()
        .find(|f| f.ends_with("chunk_0003.parquet"))
        .unwrap();
    let mut bytes = std::fs::read(chunk3).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(chunk3, bytes).unwrap();

    let out = work.resume(&db, &ck, &sync, &[]);
    assert_eq!(out.code(), expected.code(), "{}", out.describe());
    assert!(
        out.stderr
            .contains("regenerating the chunk from the source"),
        "{}",
        out.stderr
    );
    assert_eq!(counts(&out.summary()), counts(&expected.summary()));
    Snapshot::take(&db, &ck, &sync).assert_same(&reference, "after regeneration");
}

#[test]
fn a_converted_sync_finishes_without_its_source() {
    let work = Work::new(2_500, 46, MESSY);
    let sync = fresh_sync_id();
    let (reference_db, expected, expected_code) = crate::errors::reference(&work, &sync);
    let key = crate::errors::lone_key_of_chunk(&reference_db, &work.file, 2);
    let reference = Snapshot::take(&reference_db, &work.checkpoints("ck_reference"), &sync);

    // Every chunk converted, chunk 2 failed: PARTIAL_SUCCESS, checkpoint kept.
    let db = TestDb::new();
    crate::errors::failing_trigger(&db, &key, "40001", Some("datsync_test_flag"));
    let ck = work.checkpoints("ck");
    let fast = [crate::errors::FAST_RETRY];
    let out = work.run(&db, &ck, &["--sync-id", &sync], &fast);
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    assert_eq!(u(&out.summary(), "chunks_failed"), 1);

    db.batch("DELETE FROM datsync_test_flag");
    std::fs::remove_file(&work.file).unwrap();
    let out = work.resume(&db, &ck, &sync, &fast);
    assert_eq!(out.code(), expected_code, "{}", out.describe());
    let s = out.summary();
    assert_eq!(s["rows_read"], expected["rows_read"]);
    assert_eq!(s["rows_pending"], 0);
    assert!(!ck.join(&sync).exists());
    assert_eq!(
        db.table(),
        reference.table,
        "loaded from the Parquet chunks"
    );
}

#[test]
fn resume_cuts_chunks_where_the_checkpoint_cut_them() {
    let work = Work::new(3_000, 47, MESSY);
    let sync = fresh_sync_id();
    let reference_db = TestDb::new();
    let reference_ck = work.checkpoints("ck_reference");
    let expected = work.run(&reference_db, &reference_ck, &["--sync-id", &sync], &[]);
    let reference = Snapshot::take(&reference_db, &reference_ck, &sync);

    // Killed while converting with 500-row chunks, resumed with another --chunk-size (as a
    // user who does not repeat the flag gets the default): the remaining chunks must still
    // be cut every 500 rows, else rows are skipped or loaded twice.
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let out = work.run(
        &db,
        &ck,
        &["--sync-id", &sync],
        &[("DATSYNC_KILL_AT", "chunk_converted:3")],
    );
    assert!(out.killed(), "{}", out.describe());
    let out = work.resume_chunked(&db, &ck, &sync, "10000");
    assert_eq!(out.code(), expected.code(), "{}", out.describe());
    assert_eq!(counts(&out.summary()), counts(&expected.summary()));
    Snapshot::take(&db, &ck, &sync).assert_same(&reference, "resumed with another chunk size");
}

#[test]
fn a_sync_started_with_a_relative_path_resumes_from_another_directory() {
    let work = Work::new(2_000, 48, MESSY);
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let sync = fresh_sync_id();
    let url = db.url();
    let flags = [
        "--database-url",
        url.as_str(),
        "--checkpoint-dir",
        ck.to_str().unwrap(),
        "--chunk-size",
        CHUNK_SIZE,
        "--json",
    ];
    // `run ztdwr_extract.dat` in the file's directory, killed while converting…
    let name = work.file.file_name().unwrap().to_str().unwrap();
    let mut args = vec!["run", name, "--sync-id", sync.as_str()];
    args.extend(flags);
    let out = datsync(
        work.path(),
        &args,
        &[("DATSYNC_KILL_AT", "chunk_converted:2")],
    );
    assert!(out.killed(), "{}", out.describe());
    // …then `resume` from elsewhere (cron, a service) finds the source.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut args = vec!["resume", sync.as_str()];
    args.extend(flags);
    let out = datsync(elsewhere.path(), &args, &[]);
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    assert_eq!(u(&out.summary(), "rows_read"), 2_000);
    let path: String = db.query(
        "SELECT file_path FROM public.sync_metadata WHERE sync_id = $1",
        &[&sync],
    )[0]
    .get(0);
    assert_eq!(
        Path::new(&path),
        work.file,
        "sync_metadata.file_path is absolute"
    );
}

#[test]
fn a_conversion_cut_after_its_last_chunk_is_finished_without_decoding_again() {
    // 2,250 rows in chunks of CHUNK_SIZE: the last chunk is short, so once it is recorded
    // the resume knows every chunk is there and only hashes the source.
    let work = Work::new(2_250, 47, MESSY);
    let size: usize = CHUNK_SIZE.parse().unwrap();
    let chunks = 2_250_usize.div_ceil(size);
    assert_ne!(2_250 % size, 0, "the test needs a short last chunk");
    let sync = fresh_sync_id();
    let reference_db = TestDb::new();
    let expected = work
        .run(
            &reference_db,
            &work.checkpoints("ck_reference"),
            &["--sync-id", &sync],
            &[],
        )
        .summary();

    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let kill = format!("chunk_converted:{chunks}");
    let out = work.run(
        &db,
        &ck,
        &["--sync-id", &sync],
        &[("DATSYNC_KILL_AT", &kill)],
    );
    assert!(out.killed(), "{}", out.describe());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ck.join(&sync).join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(
        manifest["phase"], "converting",
        "killed before the conversion was finalized"
    );
    assert!(manifest["source_fingerprint"]["sha256"].is_null());

    let out = work.resume(&db, &ck, &sync, &[("RUST_LOG", "info")]);
    assert_eq!(
        out.code(),
        Some(expected_code(&expected)),
        "{}",
        out.describe()
    );
    assert!(
        out.stderr
            .contains("finishing the conversion by hashing the source"),
        "{}",
        out.stderr
    );
    let s = out.summary();
    assert_eq!(counts(&s), counts(&expected));
    assert_eq!(u(&s, "chunks_total"), chunks as u64);
    assert_eq!(db.table(), reference_db.table());
}

fn expected_code(summary: &serde_json::Value) -> i32 {
    match summary["status"].as_str() {
        Some("SUCCESS") => 0,
        Some("PARTIAL_SUCCESS") => 2,
        _ => 1,
    }
}

#[test]
fn a_resume_without_its_checkpoint_cuts_chunks_where_the_ledger_says() {
    let work = Work::new(3_000, 48, MESSY);
    let sync = fresh_sync_id();
    let reference_db = TestDb::new();
    let expected = work
        .run(
            &reference_db,
            &work.checkpoints("ck_reference"),
            &["--sync-id", &sync],
            &[],
        )
        .summary();
    let db = TestDb::new();
    let out = work.run(
        &db,
        &work.checkpoints("ck_a"),
        &["--sync-id", &sync],
        &[("DATSYNC_KILL_AT", "chunk_committed:3")],
    );
    assert!(out.killed(), "{}", out.describe());
    // Another checkpoint directory (so no manifest) and another chunk size: the chunks the
    // ledger has were cut at 500 rows, and the resume cuts there again.
    let out = work.resume_chunked(&db, &work.checkpoints("ck_b"), &sync, "10000");
    assert_eq!(
        out.code(),
        Some(expected_code(&expected)),
        "{}",
        out.describe()
    );
    let s = out.summary();
    assert_eq!(u(&s, "rows_pending"), 0, "{s}");
    assert_eq!(counts(&s), counts(&expected));
    assert_eq!(db.table(), reference_db.table());
}

/// A chunk file's compression codecs and whether its text columns (every column but
/// `_line`) are all `DELTA_LENGTH_BYTE_ARRAY`, from its Parquet footer.
fn chunk_file_format(path: &Path) -> (Vec<String>, bool) {
    use parquet::basic::Encoding;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut codecs = Vec::new();
    let mut delta = true;
    for group in reader.metadata().row_groups() {
        for column in group.columns() {
            let codec = column.compression().to_string();
            if !codecs.contains(&codec) {
                codecs.push(codec);
            }
            if column.column_path().string() != "_line" {
                delta &= column
                    .encodings()
                    .any(|e| e == Encoding::DELTA_LENGTH_BYTE_ARRAY);
            }
        }
    }
    (codecs, delta)
}

/// A new checkpoint in a local directory is written uncompressed (Snappy cost a run more
/// CPU than the disk bytes it saved), with its text columns delta-length encoded; a
/// compression set by `CHECKPOINT_COMPRESSION` wins; a resumed checkpoint keeps the
/// compression it was made with, whatever the settings say now, and loads as an
/// uninterrupted run does.
#[test]
fn a_local_checkpoint_is_uncompressed_unless_set_and_a_resume_keeps_its_own() {
    let work = Work::new(3_000, 47, MESSY);
    // One sync id for every database: the tables and counts compare whole.
    let sync = fresh_sync_id();
    let reference_db = TestDb::new();
    let expected = work.run(
        &reference_db,
        &work.checkpoints("ck_reference"),
        &["--sync-id", &sync],
        &[],
    );

    let manifest = |ck: &Path, sync: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(ck.join(sync).join("manifest.json")).unwrap())
            .unwrap()
    };
    for (setting, compression, codec) in [
        (None, "none", "UNCOMPRESSED"),
        (Some("auto"), "none", "UNCOMPRESSED"),
        (Some("snappy"), "snappy", "SNAPPY"),
        (Some("zstd"), "zstd", "ZSTD"),
    ] {
        let db = TestDb::new();
        let ck = work.checkpoints(&format!("ck_{}", setting.unwrap_or("default")));
        // Done chunks' files kept, so that the files of both committed chunks are there to
        // check (by default each is removed once its chunk is done).
        let mut env = vec![
            ("DATSYNC_KILL_AT", "chunk_committed:2"),
            ("CHECKPOINT_CLEANUP_ON_SUCCESS", "false"),
        ];
        env.extend(setting.map(|s| ("CHECKPOINT_COMPRESSION", s)));
        let killed = work.run(&db, &ck, &["--sync-id", &sync], &env);
        assert!(killed.killed(), "{setting:?}: {}", killed.describe());
        db.wait_for_other_sessions();
        assert_eq!(
            manifest(&ck, &sync)["compression"],
            compression,
            "{setting:?}"
        );
        let before = chunk_files(&ck, &sync);
        assert!(before.len() >= 2, "{setting:?}: {before:?}");
        for file in &before {
            let (codecs, delta) = chunk_file_format(file);
            assert!(
                codecs.iter().all(|c| c.starts_with(codec)),
                "{file:?}: {codecs:?}"
            );
            assert!(delta, "{file:?}: text columns not delta-length encoded");
        }

        // Resumed under another setting: the chunk files it writes keep the checkpoint's.
        let other = if compression == "none" {
            "snappy"
        } else {
            "none"
        };
        let resumed = work.resume(
            &db,
            &ck,
            &sync,
            &[
                ("CHECKPOINT_COMPRESSION", other),
                ("CHECKPOINT_CLEANUP_ON_SUCCESS", "false"),
            ],
        );
        assert_eq!(resumed.code(), expected.code(), "{}", resumed.describe());
        assert_eq!(counts(&resumed.summary()), counts(&expected.summary()));
        assert_eq!(db.table(), reference_db.table(), "{setting:?}");
        assert_eq!(
            manifest(&ck, &sync)["compression"],
            compression,
            "{setting:?}"
        );
        let after = chunk_files(&ck, &sync);
        assert!(after.len() > before.len(), "{setting:?}: {after:?}");
        for file in &after {
            let (codecs, _) = chunk_file_format(file);
            assert!(
                codecs.iter().all(|c| c.starts_with(codec)),
                "{file:?}: {codecs:?}"
            );
        }
    }
}
