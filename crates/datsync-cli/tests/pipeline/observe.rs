//! What a run tells whoever watches it: at INFO, one progress line per committed chunk and a
//! summary line with every count, as structured fields under `--log-format json`.

use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::{MESSY, TestDb, Work, datsync, options, u};

/// The JSON log lines of `stderr` whose message is `message`, as their `fields`.
fn lines_with(stderr: &str, message: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == message)
        .map(|v| v["fields"].clone())
        .collect()
}

fn sum(lines: &[Value], field: &str) -> u64 {
    lines
        .iter()
        .map(|l| {
            l[field]
                .as_u64()
                .unwrap_or_else(|| panic!("{field} in {l}"))
        })
        .sum()
}

/// Runs a file at INFO with JSON logs and checks its progress lines against its summary.
fn progress_lines_match_summary(work: &Work) {
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let out = work.run(&db, &ck, &["--log-format", "json"], &[("RUST_LOG", "info")]);
    let s = out.summary();
    let chunks = lines_with(&out.stderr, "chunk loaded");
    assert_eq!(
        chunks.len() as u64,
        u(&s, "chunks_total"),
        "{}",
        out.describe()
    );
    assert!(chunks.len() > 3, "{}", out.describe());
    for (i, line) in chunks.iter().enumerate() {
        assert_eq!(line["chunk"], i as u64, "{line}");
        assert_eq!(line["sync_id"], s["sync_id"], "{line}");
        for field in ["seconds", "rows_per_s", "source_read_pct", "eta_s"] {
            assert!(line[field].is_number(), "{field} in {line}");
        }
    }
    let last = chunks.last().unwrap();
    assert_eq!(last["source_read_pct"].as_f64(), Some(100.0), "{last}");
    assert_eq!(last["eta_s"].as_u64(), Some(0), "{last}");
    let shares: Vec<f64> = chunks
        .iter()
        .map(|l| l["source_read_pct"].as_f64().unwrap())
        .collect();
    assert!(shares.windows(2).all(|w| w[0] <= w[1]), "{shares:?}");
    assert!(shares[0] < 100.0, "{shares:?}");
    assert_eq!(sum(&chunks, "rows"), u(&s, "rows_read"));
    assert_eq!(sum(&chunks, "inserted"), u(&s, "records_inserted"));
    assert_eq!(sum(&chunks, "updated"), u(&s, "records_updated"));
    assert_eq!(
        sum(&chunks, "skipped_older"),
        u(&s, "records_skipped_older")
    );
    assert_eq!(sum(&chunks, "rejected"), u(&s, "rows_rejected"));
    assert_eq!(sum(&chunks, "superseded"), u(&s, "rows_superseded"));
    assert_eq!(sum(&chunks, "warnings"), u(&s, "value_warnings"));
    assert!(u(&s, "rows_rejected") > 0 && u(&s, "rows_superseded") > 0);

    let finished = lines_with(&out.stderr, "sync finished");
    assert_eq!(finished.len(), 1, "{}", out.describe());
    let f = &finished[0];
    assert_eq!(f["status"], s["status"]);
    for (field, key) in [
        ("rows_read", "rows_read"),
        ("rows_loaded", "rows_loaded"),
        ("inserted", "records_inserted"),
        ("updated", "records_updated"),
        ("skipped_older", "records_skipped_older"),
        ("rejected", "rows_rejected"),
        ("superseded", "rows_superseded"),
        ("pending", "rows_pending"),
        ("warnings", "value_warnings"),
        ("chunks_total", "chunks_total"),
        ("chunks_completed", "chunks_completed"),
        ("chunks_failed", "chunks_failed"),
        ("chunks_skipped_on_resume", "chunks_skipped_on_resume"),
    ] {
        assert_eq!(f[field].as_u64(), Some(u(&s, key)), "{field} in {f}");
    }
}

#[test]
fn info_log_has_one_progress_line_per_chunk_and_a_summary_line() {
    progress_lines_match_summary(&Work::new(3_000, 31, MESSY));
}

#[test]
fn progress_of_a_gzip_file_is_its_compressed_bytes() {
    let mut o = options(20_000, 32, MESSY);
    o.gzip = true;
    o.bad_value_rate = 0.01;
    progress_lines_match_summary(&Work::with_options(&o));
}

#[test]
fn text_log_has_one_progress_line_per_chunk() {
    let db = TestDb::new();
    let work = Work::new(2_000, 33, MESSY);
    let ck = work.checkpoints("ck");
    let out = work.run(&db, &ck, &[], &[("RUST_LOG", "info")]);
    let s = out.summary();
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("chunk loaded"))
        .collect();
    assert_eq!(
        lines.len() as u64,
        u(&s, "chunks_total"),
        "{}",
        out.describe()
    );
    for (i, line) in lines.iter().enumerate() {
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains(&format!(" chunk={i} ")), "{line}");
        for field in [
            " rows=",
            " inserted=",
            " rejected=",
            " warnings=",
            " rows_per_s=",
            " eta_s=",
        ] {
            assert!(line.contains(field), "{field} in {line}");
        }
    }
    let summary = out
        .stderr
        .lines()
        .find(|l| l.contains("sync finished"))
        .unwrap();
    assert!(
        summary.contains(&format!("rows_read={}", u(&s, "rows_read"))),
        "{summary}"
    );
}

/// `status`, `resume` and `rejects` run from another directory without `--checkpoint-dir`
/// find the checkpoint and rejects where the run recorded them in `sync_metadata`, and
/// `status --watch` reports until the sync ends.
#[test]
fn status_resume_and_rejects_find_the_recorded_checkpoint() {
    let db = TestDb::new();
    let work = Work::new(3_000, 34, MESSY);
    let ck = work.checkpoints("kept_elsewhere");
    let out = work.run(&db, &ck, &[], &[("DATSYNC_TERM_AT", "chunk_completed:2")]);
    let s = out.summary();
    assert_eq!(s["interrupted"], true, "{}", out.describe());
    let id = s["sync_id"].as_str().unwrap().to_owned();
    let ck_abs = std::fs::canonicalize(&ck).unwrap();
    let recorded: Option<String> = db.query(
        "SELECT checkpoint_location FROM public.sync_metadata WHERE sync_id = $1",
        &[&id],
    )[0]
    .get(0);
    assert_eq!(recorded.as_deref(), ck_abs.to_str());

    let elsewhere = tempfile::tempdir().unwrap();
    let url = db.url();
    let status = datsync(
        elsewhere.path(),
        &["status", &id, "--database-url", &url, "--json"],
        &[],
    );
    let report: Value = serde_json::from_str(&status.stdout).expect(&status.describe());
    assert_eq!(report["checkpoint_dir"].as_str(), ck_abs.to_str(), "{report}");
    assert!(report["checkpoint"].is_object(), "{report}");

    let rejected_so_far: u64 = db
        .ledger(&id)
        .iter()
        .map(|c| c["rejected"].as_u64().unwrap())
        .sum();
    assert!(rejected_so_far > 0);
    let rejects = datsync(
        elsewhere.path(),
        &["rejects", &id, "--database-url", &url, "--kind", "rejected"],
        &[],
    );
    assert_eq!(rejects.code(), Some(0), "{}", rejects.describe());
    assert_eq!(rejects.stdout.lines().count() as u64, rejected_so_far);

    let mut watch = Command::new(env!("CARGO_BIN_EXE_datsync"))
        .args(["status", &id, "--database-url", &url, "--json", "--watch"])
        .args(["--interval", "50ms"])
        .current_dir(elsewhere.path())
        .env_clear()
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let resumed = datsync(
        elsewhere.path(),
        &["resume", &id, "--database-url", &url, "--json"],
        &[],
    );
    let r = resumed.summary();
    assert_eq!(u(&r, "chunks_skipped_on_resume"), 2, "{}", resumed.describe());
    assert_eq!(r["status"], "PARTIAL_SUCCESS", "{}", resumed.describe());
    assert!(
        r["rejects_dir"]
            .as_str()
            .unwrap()
            .starts_with(ck_abs.to_str().unwrap()),
        "{r}"
    );
    assert!(!elsewhere.path().join("checkpoints").exists());
    assert!(!ck_abs.join(&id).exists(), "the resume cleaned up the recorded checkpoint");

    // `--watch` ends by itself once the sync is no longer IN_PROGRESS.
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(watch.wait_with_output()));
    let out = ended
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("status --watch did not end with the sync")
        .unwrap();
    assert!(out.status.success());
    let reports: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports[0]["metadata"]["status"], "IN_PROGRESS");
    assert_eq!(reports.last().unwrap()["metadata"]["status"], r["status"]);
}
