//! The crash test (issue 5 item 11, promise 2 "exactly-once effect"): `datsync run` killed
//! with SIGKILL at 20 or more random points — during conversion, after a chunk's rejects are
//! written, after its value warnings are written, mid-COPY, between a commit and its manifest
//! update, after it, during cleanup, at the very end — and resumed each time
//! with the same command, ends with the same table, `sync_metadata` (counts, value warnings,
//! unknown columns), ledger, rejects, warnings and summary as one uninterrupted run of the
//! same file. Chunks that fail and are loaded again after later ones do the same (see
//! `errors.rs`): counts do not depend on the order chunks commit in.
//!
//! The ledger is compared whole, `checksum` included: a chunk's checksum is the SHA-256 of its
//! Parquet file, and the file is a deterministic encoding of the decoded rows, so a chunk
//! converted by a killed run, or converted again after a kill, has the checksum of the
//! reference run's chunk. Only `committed_at` is left out (a time). The table is compared on
//! every column but `created_at`/`updated_at`; `sync_id` and `sync_seq` are included because
//! both databases are fresh and both runs use the same sync id.
//!
//! Replay a failure with `DATSYNC_CRASH_SEED=<seed printed by the test>`.

use std::collections::BTreeSet;
use std::path::Path;

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

use crate::common::{
    MESSY, Snapshot, TestDb, Work, chunk_files, counts, is_temp_file, options, sync_id, u,
};

/// Kill points: every event of a sync that a crash can follow.
const EVENTS: [&str; 8] = [
    "chunk_converted",
    "rows_rejected",
    "values_warned",
    "chunk_staged",
    "chunk_committed",
    "chunk_completed",
    "cleanup_started",
    "sync_finished",
];
const MIN_KILLS: usize = 20;
const ROWS: u64 = 5_000;

/// Which `(event, n)` the next run of the sync surely reaches, from what the last run left:
/// chunks converted (files in the checkpoint) are not converted again, chunks in the ledger
/// are not validated, staged, committed or completed again (`rows_rejected` only for chunks
/// with rejects, per the reference ledger), and the final steps always run.
fn reachable(
    db: &TestDb,
    ck: &Path,
    sync: &str,
    reference: &[serde_json::Value],
) -> Vec<(&'static str, u64)> {
    let chunks = reference.len() as u64;
    let status = db
        .metadata(sync)
        .and_then(|m| m["status"].as_str().map(str::to_owned));
    let finished = matches!(status.as_deref(), Some("SUCCESS" | "PARTIAL_SUCCESS"));
    if finished && !ck.join(sync).exists() {
        // Cleaned up: a run only reports the sync again.
        return vec![("sync_finished", 1)];
    }
    let ledger = db.ledger(sync);
    let committed = ledger.len() as u64;
    // Converted: a chunk file in the checkpoint, or committed (a done chunk's file is
    // removed once its entry says so).
    let converted = chunk_files(ck, sync)
        .iter()
        .filter_map(|f| datsync::parse_chunk_file_name(f.file_name()?.to_str()?))
        .map(|c| u64::from(c.0))
        .chain(ledger.iter().filter_map(|c| c["chunk_id"].as_u64()))
        .collect::<BTreeSet<u64>>()
        .len() as u64;
    let rejecting = reference
        .iter()
        .filter(|c| c["rejected"].as_u64() > Some(0))
        .filter(|c| !ledger.iter().any(|l| l["chunk_id"] == c["chunk_id"]))
        .count() as u64;
    let warning = reference
        .iter()
        .filter(|c| c["value_warnings"].as_u64() > Some(0))
        .filter(|c| !ledger.iter().any(|l| l["chunk_id"] == c["chunk_id"]))
        .count() as u64;
    let mut points = Vec::new();
    for event in EVENTS {
        let max = match event {
            "chunk_converted" => chunks - converted,
            "rows_rejected" => rejecting,
            "values_warned" => warning,
            "chunk_staged" | "chunk_committed" | "chunk_completed" => chunks - committed,
            _ => 1,
        };
        points.extend((1..=max).map(|n| (event, n)));
    }
    points
}

/// Picks a kill point: while some event has not been killed at yet and is reachable, one of
/// those events (so that every kind is covered early) at a random occurrence; after that,
/// three times in four a chunk event when one is reachable (most instants of a sync are among
/// its chunks), else any reachable point, uniformly.
fn pick(
    rng: &mut ChaCha8Rng,
    points: &[(&'static str, u64)],
    covered: &BTreeSet<&str>,
) -> (&'static str, u64) {
    let fresh: Vec<&str> = points
        .iter()
        .map(|p| p.0)
        .filter(|k| !covered.contains(k))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if fresh.is_empty() {
        let chunk_points: Vec<_> = points
            .iter()
            .filter(|p| !matches!(p.0, "cleanup_started" | "sync_finished"))
            .collect();
        if !chunk_points.is_empty() && rng.random_bool(0.75) {
            return *chunk_points[rng.random_range(0..chunk_points.len())];
        }
        return points[rng.random_range(0..points.len())];
    }
    let kind = fresh[rng.random_range(0..fresh.len())];
    let of_kind: Vec<_> = points.iter().filter(|p| p.0 == kind).collect();
    *of_kind[rng.random_range(0..of_kind.len())]
}

/// The file, the sync id and what the uninterrupted run produced.
struct Reference {
    seed: u64,
    work: Work,
    sync: String,
    code: Option<i32>,
    summary: serde_json::Value,
    snapshot: Snapshot,
}

impl Reference {
    fn new(seed: u64, rng: &mut ChaCha8Rng) -> Self {
        // The file's shape is drawn too: gzip (the reader decodes past converted chunks
        // through the decompressor), CRLF line ends, a quirky header. It always has values
        // its columns cannot read and a column the profile does not know.
        let file = datsync::SampleOptions {
            gzip: rng.random_bool(0.5),
            crlf: rng.random_bool(0.5),
            quirky_header: rng.random_bool(0.5),
            bad_value_rate: 0.03,
            extra_column: Some("TONASE".into()),
            ..options(ROWS, rng.random(), MESSY)
        };
        println!(
            "file: gzip {}, crlf {}, quirky header {}",
            file.gzip, file.crlf, file.quirky_header
        );
        let work = Work::with_options(&file);
        let sync = sync_id(rng.random());
        let db = TestDb::new();
        let ck = work.checkpoints("ck_reference");
        let out = work.run(&db, &ck, &["--sync-id", &sync], &[]);
        let summary = out.summary();
        assert!(matches!(out.code(), Some(0 | 2)), "{}", out.describe());
        assert_eq!(u(&summary, "rows_pending"), 0, "{summary}");
        assert!(u(&summary, "rows_rejected") > 0 && u(&summary, "rows_superseded") > 0);
        assert!(u(&summary, "chunks_total") >= 8, "{summary}");
        assert!(u(&summary, "value_warnings") > 0, "{summary}");
        assert_eq!(summary["unknown_columns"], serde_json::json!(["tonase"]));
        assert_eq!(
            u(&summary, "records_updated"),
            0,
            "an empty table: {summary}"
        );
        assert!(!ck.join(&sync).exists());
        let snapshot = Snapshot::take(&db, &ck, &sync);
        assert!(!snapshot.table.is_empty());
        Self {
            seed,
            work,
            sync,
            code: out.code(),
            summary,
            snapshot,
        }
    }

    /// One sync in a fresh database: killed `cycles` times (fewer once it is cleaned up),
    /// then run to the end and compared with the reference. Returns the kill points.
    fn crash_and_resume(
        &self,
        attempt: usize,
        rng: &mut ChaCha8Rng,
        covered: &mut BTreeSet<&'static str>,
    ) -> Vec<String> {
        let (work, sync, seed) = (&self.work, &self.sync, self.seed);
        let db = TestDb::new();
        let ck = work.checkpoints(&format!("ck_{attempt}"));
        let cycles = rng.random_range(3..=8);
        let mut history = Vec::new();
        for _ in 0..cycles {
            let points = reachable(&db, &ck, sync, &self.snapshot.ledger);
            let (event, n) = pick(rng, &points, covered);
            let kill_at = format!("{event}:{n}");
            history.push(kill_at.clone());
            let env = [("DATSYNC_KILL_AT", kill_at.as_str())];
            let out = work.run(&db, &ck, &["--sync-id", sync], &env);
            assert!(
                out.killed(),
                "seed {seed}, sync {attempt}, kills {history:?}: the run was not killed at \
                 {kill_at}: {}",
                out.describe()
            );
            covered.insert(event);
            db.wait_for_other_sessions();
            if points == [("sync_finished", 1)] {
                break;
            }
        }
        let last = work.run(&db, &ck, &["--sync-id", sync], &[]);
        let context = format!("seed {seed}, sync {attempt}, killed at {history:?}");
        assert_eq!(last.code(), self.code, "{context}: {}", last.describe());
        let s = last.summary();
        assert_eq!(
            counts(&s),
            counts(&self.summary),
            "{context}: summaries differ"
        );
        assert_eq!(
            s["value_warnings"], self.summary["value_warnings"],
            "{context}"
        );
        assert_eq!(
            s["unknown_columns"], self.summary["unknown_columns"],
            "{context}"
        );
        assert_eq!(s["resumed"], true, "{context}");
        assert!(
            !ck.join(sync).exists(),
            "{context}: the checkpoint directory is still there"
        );
        Snapshot::take(&db, &ck, sync).assert_same(&self.snapshot, &context);
        let leftovers: Vec<_> = std::fs::read_dir(ck.join("rejects").join(sync))
            .map(|d| {
                d.map(|e| e.unwrap().path())
                    .filter(|p| is_temp_file(p))
                    .collect()
            })
            .unwrap_or_default();
        if !leftovers.is_empty() {
            println!("{context}: temporary files left in the rejects directory: {leftovers:?}");
        }
        println!("{context}: same as the uninterrupted run");
        history
    }
}

#[test]
fn killed_at_random_points_and_resumed_equals_an_uninterrupted_run() {
    let seed = crate::common::seed("DATSYNC_CRASH_SEED");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let reference = Reference::new(seed, &mut rng);
    let mut kills = 0;
    let mut covered = BTreeSet::new();
    let mut attempt = 0;
    while kills < MIN_KILLS || covered.len() < EVENTS.len() {
        attempt += 1;
        assert!(attempt <= 12, "too many syncs; seed {seed}");
        kills += reference
            .crash_and_resume(attempt, &mut rng, &mut covered)
            .len();
    }
    println!("{kills} kills over {attempt} syncs, events {covered:?}");
}
