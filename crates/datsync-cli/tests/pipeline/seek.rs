//! A resume does not decode the chunks recorded before it again (issue 14): the decoder
//! reads the header, skips the text up to where the last leading recorded chunk ended (its
//! manifest entry's `resume_point`), and cuts the next chunk there. Killed at several points
//! and resumed, a sync ends with the table, counts, ledger, rejects (their line numbers) and
//! value warnings of an uninterrupted run — plain and gzip, CRLF, a quirky header, blank
//! lines, NUL bytes, lines over the maximum, ragged and Latin-1 rows, with rejects and
//! warnings in the chunks after the point. The resume says how many rows it decoded, which
//! proves the skip. A plain file is not even read again up to the point: the SHA-256 of the
//! source up to there is recorded with it (as the hasher's state), and the resume takes it up
//! and reads on from there — recording the whole file's SHA-256 all the same. A manifest
//! written before resume points existed still resumes (decoding from the start), a hash
//! state of another format is not used, and a source changed since the checkpoint is still
//! refused.

use std::io::Write as _;
use std::path::Path;

use crate::common::{
    MESSY, Snapshot, TestDb, Work, change_a_digit_of_the_first_row, counts, fresh_sync_id, options,
    u,
};

const ROWS: u64 = 5_000;
/// `--max-line-bytes` of every run: the long lines added to the files are over it.
const MAX_LINE: &str = "4096";
/// The files' last chunk is short and holds an added reject: not enough to stop the sync.
const THRESHOLD: (&str, &str) = ("VALIDATION_ERROR_THRESHOLD", "0.5");

/// A sample file with the parser's quirks added between its lines: blank lines, a copy of a
/// line with a NUL byte in it, a line over [`MAX_LINE`]; written gzipped when `gzip`.
fn quirky_work(seed: u64, crlf: bool, gzip: bool) -> Work {
    let file = datsync::SampleOptions {
        crlf,
        quirky_header: true,
        bad_value_rate: 0.03,
        extra_column: Some("TONASE".into()),
        ..options(ROWS, seed, MESSY)
    };
    let work = Work::with_options(&file);
    let text = std::fs::read(&work.file).unwrap();
    let end: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    let mut out = Vec::with_capacity(text.len() + 100_000);
    for (i, line) in text.split_inclusive(|&b| b == b'\n').enumerate() {
        out.extend(line);
        if i == 0 {
            continue;
        }
        if i % 173 == 0 {
            out.extend(end);
        }
        if i % 389 == 0 {
            let mut nul = line.to_vec();
            nul.insert(nul.len() / 2, 0);
            out.extend(nul);
        }
        if i % 911 == 0 {
            out.extend(vec![b'x'; 5_000]);
            out.extend(end);
        }
    }
    let bytes = if gzip {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&out).unwrap();
        gz.finish().unwrap()
    } else {
        out
    };
    std::fs::write(&work.file, bytes).unwrap();
    work
}

/// The value of `name=` in the log line holding `message`.
fn logged(stderr: &str, message: &str, name: &str) -> Option<u64> {
    let line = stderr.lines().find(|l| l.contains(message))?;
    let key = format!("{name}=");
    let at = line.find(&key)? + key.len();
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// What an uninterrupted run of a file produced.
struct Reference {
    sync: String,
    code: Option<i32>,
    summary: serde_json::Value,
    snapshot: Snapshot,
}

fn reference(work: &Work) -> Reference {
    let sync = fresh_sync_id();
    let db = TestDb::new();
    let ck = work.checkpoints("ck_reference");
    let flags = ["--sync-id", sync.as_str(), "--max-line-bytes", MAX_LINE];
    let out = work.run(&db, &ck, &flags, &[THRESHOLD]);
    assert!(matches!(out.code(), Some(0 | 2)), "{}", out.describe());
    let summary = out.summary();
    assert!(u(&summary, "chunks_total") >= 10, "{summary}");
    assert!(u(&summary, "rows_rejected") > 0, "{summary}");
    let snapshot = Snapshot::take(&db, &ck, &sync);
    Reference {
        sync,
        code: out.code(),
        summary,
        snapshot,
    }
}

/// Rows of the reference's chunks from `first` on.
fn rows_from(reference: &Reference, first: u64) -> u64 {
    reference
        .snapshot
        .ledger
        .iter()
        .filter(|c| c["chunk_id"].as_u64().unwrap() >= first)
        .map(|c| c["rows_read"].as_u64().unwrap())
        .sum()
}

/// Kills a run of the reference's sync at `kill_at` in a fresh database, lets `between`
/// change the checkpoint, resumes, and checks the end state is the reference's; returns the
/// resume's stderr.
fn kill_and_resume(
    work: &Work,
    reference: &Reference,
    kill_at: &str,
    between: impl FnOnce(&Path),
) -> String {
    let sync = &reference.sync;
    let db = TestDb::new();
    let ck = work.checkpoints(&format!("ck_{}", kill_at.replace(':', "_")));
    let flags = ["--sync-id", sync.as_str(), "--max-line-bytes", MAX_LINE];
    let out = work.run(&db, &ck, &flags, &[("DATSYNC_KILL_AT", kill_at), THRESHOLD]);
    assert!(out.killed(), "{kill_at}: {}", out.describe());
    db.wait_for_other_sessions();
    between(&ck.join(sync));
    let out = work.run(&db, &ck, &flags, &[("RUST_LOG", "info"), THRESHOLD]);
    let context = format!("killed at {kill_at}");
    assert_eq!(out.code(), reference.code, "{context}: {}", out.describe());
    let s = out.summary();
    assert_eq!(s["resumed"], true, "{context}");
    assert_eq!(counts(&s), counts(&reference.summary), "{context}");
    assert_eq!(
        s["value_warnings"], reference.summary["value_warnings"],
        "{context}"
    );
    Snapshot::take(&db, &ck, sync).assert_same(&reference.snapshot, &context);
    out.stderr
}

/// The resume skipped the leading chunks: it says how many, and decoded only the rows of
/// the chunks after them, which hold rejects and value warnings.
fn assert_skipped(stderr: &str, reference: &Reference, at_least: u64, context: &str) {
    let skipped = logged(stderr, "decoding resumes after them", "chunks_skipped")
        .unwrap_or_else(|| panic!("{context}: no skip logged: {stderr}"));
    assert!(skipped >= at_least, "{context}: {skipped} chunks skipped");
    let decoded = logged(
        stderr,
        "source decoded from the resume point",
        "rows_decoded",
    )
    .unwrap_or_else(|| panic!("{context}: rows decoded not logged: {stderr}"));
    assert_eq!(
        decoded,
        rows_from(reference, skipped),
        "{context}: rows decoded"
    );
    assert!(decoded < u(&reference.summary, "rows_read"), "{context}");
    let after: Vec<_> = reference
        .snapshot
        .ledger
        .iter()
        .filter(|c| c["chunk_id"].as_u64().unwrap() >= skipped)
        .collect();
    assert!(
        after.iter().any(|c| c["rejected"].as_u64() > Some(0)),
        "{context}"
    );
    assert!(
        after.iter().any(|c| c["value_warnings"].as_u64() > Some(0)),
        "{context}"
    );
}

/// The log line of a resume that read the source on from the recorded hash state.
const READ_ON: &str = "the bytes before it are not read again";

fn resumes_past_the_recorded_chunks(crlf: bool, gzip: bool) {
    let work = quirky_work(61 + u64::from(gzip), crlf, gzip);
    let reference = reference(&work);
    for (kill_at, at_least) in [
        ("chunk_converted:3", 3),
        ("chunk_committed:5", 5),
        ("chunk_completed:8", 8),
    ] {
        let stderr = kill_and_resume(&work, &reference, kill_at, |_| {});
        let context = format!("crlf {crlf}, gzip {gzip}, killed at {kill_at}");
        assert_skipped(&stderr, &reference, at_least, &context);
        // A plain file is read on from the point, the bytes before it not read again (past
        // the first read buffer); gzip is inflated from its start.
        let not_read = logged(&stderr, READ_ON, "source_bytes_not_read");
        if gzip {
            assert_eq!(not_read, None, "{context}: {stderr}");
        } else {
            assert!(not_read.is_some_and(|n| n > 0), "{context}: {stderr}");
        }
    }
}

/// The SHA-256 recorded for the source once a resume converted it to the end (the
/// manifest's, in a resume killed as its cleanup starts).
fn recorded_sha256(ck: &Path, sync: &str) -> String {
    let path = ck.join(sync).join("manifest.json");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    manifest["source_fingerprint"]["sha256"]
        .as_str()
        .unwrap_or_else(|| panic!("no SHA-256 in {}: {manifest}", path.display()))
        .to_owned()
}

/// A resume that read the source on from a recorded hash state records the SHA-256 of the
/// whole file (as `sha256sum` computes it), not of the bytes it read: a later resume of the
/// same sync, or one from a copied or touched file, compares the file with it. Chained: the
/// first resume is killed too, and the second reads on from a state the first one recorded.
#[test]
fn a_resume_that_reads_on_from_the_point_records_the_whole_files_sha256() {
    let work = quirky_work(65, false, false);
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let sync = fresh_sync_id();
    let flags = ["--sync-id", sync.as_str(), "--max-line-bytes", MAX_LINE];
    let mut read_on_at = Vec::new();
    for kill_at in [
        "chunk_committed:3",
        "chunk_committed:3",
        "cleanup_started:1",
    ] {
        let env = [
            ("DATSYNC_KILL_AT", kill_at),
            ("RUST_LOG", "info"),
            THRESHOLD,
        ];
        let out = work.run(&db, &ck, &flags, &env);
        assert!(out.killed(), "{kill_at}: {}", out.describe());
        db.wait_for_other_sessions();
        read_on_at.extend(logged(&out.stderr, READ_ON, "resume_byte"));
    }
    // Both resumes read on, the second from further in: a state the first one recorded.
    assert!(
        matches!(read_on_at[..], [a, b] if 0 < a && a < b),
        "{read_on_at:?}"
    );
    let sum = std::process::Command::new("sha256sum")
        .arg(work.file())
        .output()
        .unwrap();
    let sum = String::from_utf8(sum.stdout).unwrap();
    let want = sum.split_whitespace().next().unwrap();
    assert_eq!(recorded_sha256(&ck, &sync), want);
    db.wait_for_other_sessions();
    let out = work.run(&db, &ck, &flags, &[THRESHOLD]);
    assert!(matches!(out.code(), Some(0 | 2)), "{}", out.describe());
}

/// Sets the `format` of every recorded hash state, in the manifest and the journal, to one
/// this build does not write.
fn change_hash_format(dir: &Path) {
    let mut changed = 0;
    edit_chunk_entries(dir, |entry| {
        if let Some(hash) = entry.get_mut("source_hash").filter(|h| !h.is_null()) {
            hash["format"] = "sha2-0.99-sha256".into();
            changed += 1;
        }
    });
    assert!(changed > 0, "no hash state recorded in {}", dir.display());
}

/// A hash state of a format this build does not write is not taken up: the resume reads the
/// source from its start (and still skips decoding the recorded chunks), to the end state
/// of an uninterrupted run.
#[test]
fn a_hash_state_of_another_format_is_not_used() {
    let work = quirky_work(66, false, false);
    let reference = reference(&work);
    let stderr = kill_and_resume(&work, &reference, "chunk_committed:5", change_hash_format);
    assert!(!stderr.contains(READ_ON), "{stderr}");
    assert_skipped(&stderr, &reference, 5, "another hash format");
}

#[test]
fn a_plain_crlf_file_resumes_past_the_recorded_chunks() {
    resumes_past_the_recorded_chunks(true, false);
}

#[test]
fn a_gzipped_file_resumes_past_the_recorded_chunks() {
    resumes_past_the_recorded_chunks(false, true);
}

/// Calls `edit` on every chunk entry of the manifest and the journal in `dir`, and writes
/// them back.
fn edit_chunk_entries(dir: &Path, mut edit: impl FnMut(&mut serde_json::Value)) {
    let mut files = vec![dir.join("manifest.json")];
    if let Ok(entries) = std::fs::read_dir(dir.join("journal")) {
        files.extend(entries.map(|e| e.unwrap().path()));
    }
    for path in files {
        let Ok(text) = std::fs::read(&path) else {
            continue;
        };
        let mut doc: serde_json::Value = serde_json::from_slice(&text).unwrap();
        let entries = match doc.get_mut("chunks") {
            Some(serde_json::Value::Array(chunks)) => chunks.iter_mut().collect::<Vec<_>>(),
            _ => doc.get_mut("chunk").into_iter().collect(),
        };
        for entry in entries {
            edit(entry);
        }
        std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    }
}

/// Removes `resume_point` (and the hash state recorded with it) from every chunk entry of
/// the manifest and the journal, as a build before them wrote them.
fn strip_resume_points(dir: &Path) {
    let mut stripped = 0;
    edit_chunk_entries(dir, |entry| {
        let entry = entry.as_object_mut().unwrap();
        entry.remove("source_hash");
        let had = entry.remove("resume_point");
        stripped += usize::from(had.is_some_and(|p| !p.is_null()));
    });
    assert!(
        stripped > 0,
        "no resume point recorded in {}",
        dir.display()
    );
}

#[test]
fn a_manifest_without_resume_points_resumes_by_decoding_from_the_start() {
    let work = quirky_work(63, true, false);
    let reference = reference(&work);
    let stderr = kill_and_resume(&work, &reference, "chunk_committed:4", strip_resume_points);
    assert!(
        !stderr.contains("decoding resumes after them"),
        "no point, no skip: {stderr}"
    );
}

#[test]
fn a_source_changed_in_the_skipped_text_is_refused() {
    let work = quirky_work(64, false, false);
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let sync = fresh_sync_id();
    let flags = ["--sync-id", sync.as_str(), "--max-line-bytes", MAX_LINE];
    let kill = [("DATSYNC_KILL_AT", "chunk_committed:3"), THRESHOLD];
    let out = work.run(&db, &ck, &flags, &kill);
    assert!(out.killed(), "{}", out.describe());
    db.wait_for_other_sessions();
    let committed = db.committed_chunks(&sync);
    // One byte of the first chunk changes; the size does not.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    change_a_digit_of_the_first_row(&work.file, later);
    let out = work.run(&db, &ck, &flags, &[THRESHOLD]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr
            .contains("has changed since its checkpoint was made"),
        "{}",
        out.stderr
    );
    assert_eq!(db.committed_chunks(&sync), committed, "nothing loaded");
}
