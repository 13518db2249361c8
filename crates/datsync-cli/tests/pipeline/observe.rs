//! What a run tells whoever watches it: at INFO, one progress line per committed chunk and a
//! summary line with every count, as structured fields under `--log-format json`.

use serde_json::Value;

use crate::common::{MESSY, TestDb, Work, options, u};

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
