//! The handler under hostile clients: oversized bodies and metadata, slow heads and
//! stalled bodies by the hundred, a non-loopback address, values that try to forge log
//! lines.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

use serde_json::json;

use super::*;

/// The handler's thread count (`Threads:` of `/proc/<pid>/status`).
fn threads(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

/// A connection that sent `text` and stays open.
fn partial(port: u16, text: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(text.as_bytes()).unwrap();
    s
}

#[test]
fn bodies_and_metadata_are_capped_and_slow_clients_cost_no_threads() {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let work = Work::new(100, 94, CLEAN);
    let db = TestDb::new();
    let handler = Handler::start(
        work.path(),
        &db.url(),
        &[(key, &value)],
        &["--read-timeout", "5s"],
    );

    // Over the caps: a 2 MiB queue invocation, 100 KiB of blob-trigger metadata, a 2 MiB
    // manual re-run.
    let big = json!({"Data": {"event": "x".repeat(2 << 20)}, "Metadata": {}});
    let (status, _) = handler.invoke("ztdwr_blob_created", &big);
    assert_eq!(status, 413);
    let fat = json!({"Data": {"myBlob": "QUJD"}, "Metadata": {"Uri": "x".repeat(100 << 10)}});
    let (status, reply) = handler.invoke("ztdwr_sync", &fat);
    assert_eq!(status, 413, "{reply}");
    let (status, _) = handler.send(
        "POST",
        "/api/sync-ztdwr",
        Some(&json!({"blob_name": "y".repeat(2 << 20)})),
        &[],
    );
    assert_eq!(status, 413);

    let before = threads(handler.pid());
    // Two hundred clients that never finish their head, and twenty-four blob-trigger
    // bodies that stall after their first bytes.
    let slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            partial(
                handler.port,
                "POST /ztdwr_blob_created HTTP/1.1\r\nHost: x\r\n",
            )
        })
        .collect();
    let head = "POST /ztdwr_sync HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Content-Length: 100000000\r\n\r\n{\"Data\": {\"myBlob\": \"QUJD";
    let stalled: Vec<TcpStream> = (0..24).map(|_| partial(handler.port, head)).collect();
    // The host's own requests are still served meanwhile.
    let (status, health) = handler.send("GET", "/api/healthz", None, &[]);
    assert_eq!(status, 200, "{health}");
    let during = threads(handler.pid());
    assert!(
        during <= before + 1,
        "{during} threads with 224 slow clients, {before} before"
    );
    // Two parsing threads and two waiting places take at most four bodies, which are given
    // up when they stall (408); every other is refused at once (503); none is left hanging.
    let mut answers = std::collections::BTreeMap::new();
    for mut s in stalled {
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        let status = answer.get(9..12).unwrap_or("none").to_owned();
        if status == "503" {
            assert!(answer.contains("busy"), "{answer}");
        }
        *answers.entry(status).or_insert(0) += 1;
    }
    // (On a loaded machine the split moves: threads that have not taken their job yet leave
    // fewer places, a handler run late may find a place a stalled body gave up.)
    assert_eq!(
        answers
            .keys()
            .filter(|k| *k != "408" && *k != "503")
            .count(),
        0,
        "{answers:?}"
    );
    assert!(answers.get("408").copied().unwrap_or(0) >= 1, "{answers:?}");
    assert!(
        answers.get("503").copied().unwrap_or(0) >= 12,
        "{answers:?}"
    );
    // A head that never ends is cut off.
    for mut s in slow {
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    }
}

#[test]
fn a_non_loopback_address_is_refused_unless_allowed_and_then_warned_about() {
    let work = Work::new(10, 95, CLEAN);
    let out = datsync(
        work.path(),
        &[
            "serve",
            "--bind",
            "0.0.0.0",
            "--port",
            "0",
            "--database-url",
            SERVER,
        ],
        &[],
    );
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("refusing to listen on 0.0.0.0")
            && out.stderr.contains("--allow-non-loopback"),
        "{}",
        out.describe()
    );
    let db = TestDb::new();
    let handler = Handler::start(
        work.path(),
        &db.url(),
        &[],
        &["--bind", "0.0.0.0", "--allow-non-loopback"],
    );
    let warned = handler
        .stderr
        .wait_for("a warning", |l| l.contains("non-loopback"));
    assert!(warned.contains("WARN"), "{warned}");
    let (status, _) = handler.send("GET", "/api/healthz", None, &[]);
    assert_eq!(status, 200);
}

#[test]
fn request_values_cannot_forge_log_lines_in_the_text_format() {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let work = Work::new(10, 96, CLEAN);
    let db = TestDb::new();
    let handler = Handler::start(
        work.path(),
        &db.url(),
        &[(key, &value)],
        &["--log-format", "text"],
    );
    let forged = "x.dat\n2026-01-01T00:00:00.000000Z  INFO forged: database dropped\r\u{1b}[2J";
    let (status, _) = handler.send(
        "POST",
        "/api/sync-ztdwr",
        Some(&json!({ "blob_name": forged })),
        &[],
    );
    assert_eq!(status, 404);
    let (status, _) = handler.send(
        "POST",
        "/api/sync-ztdwr",
        Some(&json!({ "blob_path": "data/hex-ztdwr/\u{1b}]0;owned\u{7}\u{2028}x.dat" })),
        &[],
    );
    assert_eq!(status, 404);
    handler.stdout.wait_events("invocation outcome", 2);
    let lines: Vec<String> = handler
        .stdout
        .all()
        .into_iter()
        .chain(handler.stderr.all())
        .collect();
    let refusals: Vec<&String> = lines.iter().filter(|l| l.contains("refused")).collect();
    assert_eq!(refusals.len(), 2, "{lines:#?}");
    assert!(refusals[0].contains("\\n2026-01-01"), "{}", refusals[0]);
    for line in &lines {
        assert!(
            !line.trim_start().starts_with("2026-01-01T00:00:00.000000Z"),
            "a forged line: {line:?}"
        );
        assert!(!line.contains('\u{1b}') && !line.contains('\r'), "{line:?}");
        assert!(
            !line.contains('\u{7}') && !line.contains('\u{2028}'),
            "{line:?}"
        );
    }
}
