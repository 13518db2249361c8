//! What a run tells whoever watches it: at INFO, one progress line per committed chunk and a
//! summary line with every count, as structured fields under `--log-format json`; `status`,
//! `resume` and `rejects` without `--checkpoint-dir`; the Prometheus metrics of `watch`
//! (`--metrics-addr`) and `run` (`--metrics-file`) against the `--json` summaries; the status
//! page in headless Chromium.
#![allow(
    clippy::float_cmp,
    clippy::too_many_lines,
    reason = "the scraped samples are whole numbers, compared exactly; a test reads as one story"
)]

use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::{MESSY, TABLE, TestDb, Work, datsync, fresh_sync_id, options, u};

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
    let id = fresh_sync_id();
    let out = work.run(
        &db,
        &ck,
        &["--sync-id", &id],
        &[("DATSYNC_KILL_AT", "chunk_completed:2")],
    );
    assert!(out.killed(), "{}", out.describe());
    db.wait_for_other_sessions();
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
    let report: Value =
        serde_json::from_str(&status.stdout).unwrap_or_else(|_| panic!("{}", status.describe()));
    assert_eq!(
        report["checkpoint_dir"].as_str(),
        ck_abs.to_str(),
        "{report}"
    );
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
    // Its first report is read before the resume starts: it sees the sync unfinished.
    let (sent, got) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut watched = std::io::BufReader::new(stdout);
        let mut first = String::new();
        let read = std::io::BufRead::read_line(&mut watched, &mut first);
        sent.send((read.map(|_| first), watched))
    });
    let (first, mut watched) = got
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("status --watch printed no first report");
    let first = first.unwrap();
    assert!(!first.is_empty(), "status --watch ended without a report");
    let resumed = datsync(
        elsewhere.path(),
        &["resume", &id, "--database-url", &url, "--json"],
        &[],
    );
    let r = resumed.summary();
    assert_eq!(
        u(&r, "chunks_skipped_on_resume"),
        2,
        "{}",
        resumed.describe()
    );
    assert_eq!(r["status"], "PARTIAL_SUCCESS", "{}", resumed.describe());
    assert!(
        r["rejects_dir"]
            .as_str()
            .unwrap()
            .starts_with(ck_abs.to_str().unwrap()),
        "{r}"
    );
    assert!(!elsewhere.path().join("checkpoints").exists());
    assert!(
        !ck_abs.join(&id).exists(),
        "the resume cleaned up the recorded checkpoint"
    );

    // `--watch` ends by itself once the sync is no longer IN_PROGRESS.
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = String::new();
        let read = std::io::Read::read_to_string(&mut watched, &mut rest);
        done.send((read, watch.wait(), rest))
    });
    let (read, status, rest) = ended
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("status --watch did not end with the sync");
    read.unwrap();
    assert!(status.unwrap().success());
    let reports: Vec<Value> = first
        .lines()
        .chain(rest.lines())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports[0]["metadata"]["status"], "IN_PROGRESS");
    assert_eq!(reports.last().unwrap()["metadata"]["status"], r["status"]);
}

/// A free port on loopback (bound, then released for the binary to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on `127.0.0.1:port`: the status code and the body, `None` while nothing
/// listens yet.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

/// The value of the sample `name` (labels as written) in a scrape.
pub fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// `datsync watch DIR --metrics-addr`: every family at zero before the first file, then
/// after two files the counters equal the sums of their `--json` summaries and the table.
#[test]
fn watch_serves_metrics_equal_to_the_summaries() {
    use std::io::BufRead as _;
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("in");
    std::fs::create_dir(&inbox).unwrap();
    let port = free_port();
    let url = db.url();
    let ck = dir.path().join("ck");
    let mut watch = Command::new(env!("CARGO_BIN_EXE_datsync"))
        .args(["watch", inbox.to_str().unwrap(), "--interval", "100ms"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .args([
            "--database-url",
            &url,
            "--checkpoint-dir",
            ck.to_str().unwrap(),
        ])
        .args(["--chunk-size", "500", "--json"])
        .current_dir(dir.path())
        .env_clear()
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, processed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let before = loop {
        if let Some(r) = http_get(port, "/metrics") {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(before.0, 200, "{}", before.1);
    for name in [
        "datsync_rows_total{outcome=\"inserted\"}",
        "datsync_rows_total{outcome=\"rejected\"}",
        "datsync_chunks_total{outcome=\"committed\"}",
        "datsync_syncs_total{status=\"SUCCESS\"}",
        "datsync_syncs_in_progress",
        "datsync_source_bytes_total",
        "datsync_files_parked",
        "datsync_receipts{state=\"finished\"}",
        "datsync_last_success_timestamp_seconds",
    ] {
        assert_eq!(sample(&before.1, name), 0.0, "{name}");
    }

    let mut sizes = 0;
    for (i, seed) in [41u64, 42].into_iter().enumerate() {
        let path = dir.path().join(format!("f{i}.dat"));
        let mut o = options(2_000, seed, MESSY);
        o.bad_value_rate = 0.01;
        o.gzip = i == 1;
        datsync::write_sample(std::fs::File::create(&path).unwrap(), &o).unwrap();
        sizes += std::fs::metadata(&path).unwrap().len();
        std::fs::rename(&path, inbox.join(format!("f{i}.dat"))).unwrap();
    }
    let mut summaries = Vec::new();
    while summaries.len() < 2 {
        let p = processed
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("watch reported no sync");
        if p["summary"].is_object() {
            summaries.push(p["summary"].clone());
        }
    }
    let (code, after) = http_get(port, "/metrics").unwrap();
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(code, 200);
    let total = |key: &str| summaries.iter().map(|s| u(s, key)).sum::<u64>() as f64;
    for (name, key) in [
        (
            "datsync_rows_total{outcome=\"inserted\"}",
            "records_inserted",
        ),
        ("datsync_rows_total{outcome=\"updated\"}", "records_updated"),
        (
            "datsync_rows_total{outcome=\"skipped_older\"}",
            "records_skipped_older",
        ),
        (
            "datsync_rows_total{outcome=\"superseded\"}",
            "rows_superseded",
        ),
        ("datsync_rows_total{outcome=\"rejected\"}", "rows_rejected"),
        ("datsync_value_warnings_total", "value_warnings"),
        (
            "datsync_chunks_total{outcome=\"committed\"}",
            "chunks_completed",
        ),
        ("datsync_chunks_total{outcome=\"failed\"}", "chunks_failed"),
    ] {
        assert_eq!(sample(&after, name), total(key), "{name}\n{after}");
    }
    assert!(total("rows_rejected") > 0.0 && total("value_warnings") > 0.0);
    assert_eq!(
        sample(&after, "datsync_chunk_load_seconds_count"),
        total("chunks_completed")
    );
    assert_eq!(sample(&after, "datsync_source_bytes_total"), sizes as f64);
    assert_eq!(
        sample(&after, "datsync_syncs_total{status=\"PARTIAL_SUCCESS\"}"),
        summaries
            .iter()
            .filter(|s| s["status"] == "PARTIAL_SUCCESS")
            .count() as f64
    );
    assert_eq!(sample(&after, "datsync_syncs_in_progress"), 0.0);
    assert_eq!(sample(&after, "datsync_receipts{state=\"finished\"}"), 2.0);
    assert_eq!(sample(&after, "datsync_files_parked"), 0.0);
    assert!(sample(&after, "datsync_last_success_timestamp_seconds") > 1e9);
    let rows: i64 = db.query(&format!("SELECT count(*) FROM {TABLE}"), &[])[0].get(0);
    assert_eq!(
        rows as f64,
        sample(&after, "datsync_rows_total{outcome=\"inserted\"}")
    );
}

/// `run --metrics-file`: the text format, its counters the run's summary.
#[test]
fn run_writes_its_metrics_to_a_file() {
    let db = TestDb::new();
    let work = Work::new(2_000, 43, MESSY);
    let ck = work.checkpoints("ck");
    let file = work.path().join("datsync.prom");
    let out = work.run(&db, &ck, &["--metrics-file", file.to_str().unwrap()], &[]);
    let s = out.summary();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("# TYPE datsync_rows_total counter\n"),
        "{text}"
    );
    assert_eq!(
        sample(&text, "datsync_rows_total{outcome=\"inserted\"}"),
        u(&s, "records_inserted") as f64
    );
    assert_eq!(
        sample(&text, "datsync_rows_total{outcome=\"rejected\"}"),
        u(&s, "rows_rejected") as f64
    );
    assert_eq!(
        sample(
            &text,
            &format!(
                "datsync_syncs_total{{status=\"{}\"}}",
                s["status"].as_str().unwrap()
            )
        ),
        1.0
    );
    assert_eq!(
        sample(&text, "datsync_source_bytes_total"),
        std::fs::metadata(&work.file).unwrap().len() as f64
    );
    assert!(!text.contains("datsync_receipts"), "{text}");
}

/// The system's Chromium, when installed (`.ci/run` installs it).
fn chromium() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

/// The page as headless Chromium renders it (`--dump-dom`: the DOM after parsing).
fn rendered(browser: &std::path::Path, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The status page in a real browser: during a sync (held at its third chunk by a lock the
/// test holds) it shows the running sync's progress, after it the finished sync's counts.
#[test]
fn the_status_page_renders_in_a_browser() {
    use std::io::BufRead as _;
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: no chromium on PATH (`apt-get install chromium`; CI installs it)");
        return;
    };
    let db = TestDb::new();
    db.init();
    // Chunk 2's upsert waits for the advisory lock the test holds.
    db.batch(&format!(
        "CREATE FUNCTION datsync_test_hold() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN
           IF (SELECT count(*) FROM public.sync_chunks) >= 2 THEN
             PERFORM pg_advisory_lock(4242);
             PERFORM pg_advisory_unlock(4242);
           END IF;
           RETURN NEW;
         END $f$;
         CREATE TRIGGER datsync_test_hold BEFORE INSERT ON {TABLE}
           FOR EACH ROW EXECUTE FUNCTION datsync_test_hold();"
    ));
    let hold = db.session();
    hold.query("SELECT pg_advisory_lock(4242)", &[]);

    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("in");
    std::fs::create_dir(&inbox).unwrap();
    crate::common::write_sample(&inbox.join("ztdwr_page.dat"), 3_000, 44, MESSY);
    let port = free_port();
    let url = db.url();
    let ck = dir.path().join("ck");
    let mut watch = Command::new(env!("CARGO_BIN_EXE_datsync"))
        .args(["watch", inbox.to_str().unwrap(), "--interval", "100ms"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .args([
            "--database-url",
            &url,
            "--checkpoint-dir",
            ck.to_str().unwrap(),
        ])
        .args(["--chunk-size", "500", "--json"])
        .current_dir(dir.path())
        .env_clear()
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, processed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    // Wait until the page shows the sync running with its two committed chunks.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if let Some((200, page)) = http_get(port, "/")
            && page.contains("<table id=\"running\">")
            && page.contains("<td class=\"num\">2 of about")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sync never showed as running"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let during = rendered(&browser, &format!("http://127.0.0.1:{port}/"));
    assert!(during.contains("<title>datsync status</title>"), "{during}");
    assert!(during.contains("http-equiv=\"refresh\""), "{during}");
    assert!(during.contains("name=\"viewport\""), "{during}");
    assert!(during.contains("<table id=\"running\">"), "{during}");
    assert!(during.contains("ztdwr_page.dat"), "{during}");
    assert!(during.contains("<progress max=\"100\""), "{during}");
    assert!(
        during.contains("<td class=\"IN_PROGRESS\">IN_PROGRESS</td>"),
        "{during}"
    );
    assert!(!during.contains("<script"), "{during}");

    drop(hold);
    let summary = loop {
        let p = processed
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("watch reported no sync");
        if p["summary"].is_object() {
            break p["summary"].clone();
        }
    };
    let after = rendered(&browser, &format!("http://127.0.0.1:{port}/"));
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        after.contains("No sync is running in this process."),
        "{after}"
    );
    let id = summary["sync_id"].as_str().unwrap();
    let row_start = after
        .find(&format!("data-sync=\"{id}\""))
        .unwrap_or_else(|| panic!("no row of {id} in {after}"));
    let row = &after[row_start..row_start + after[row_start..].find("</tr>").unwrap()];
    let status = summary["status"].as_str().unwrap();
    assert!(row.contains(&format!(">{status}</td>")), "{row}");
    for key in [
        "rows_read",
        "rows_loaded",
        "rows_rejected",
        "value_warnings",
    ] {
        assert!(
            row.contains(&format!("<td class=\"num\">{}</td>", u(&summary, key))),
            "{key} = {} in {row}",
            u(&summary, key)
        );
    }
}
