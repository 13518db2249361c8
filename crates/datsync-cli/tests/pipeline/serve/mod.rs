//! `datsync serve`, the Azure Functions custom handler, driven with the requests the Functions
//! host sends (a blob-trigger invocation, HTTP requests forwarded as they are, an HTTP-trigger
//! invocation) against Azurite and the real PostgreSQL.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::azure::Emulator;
use crate::common::*;
use crate::errors::{FAST_RETRY, failing_trigger, lone_key_of_chunk, reference};

const BLOB: &str = "az://data/hex-ztdwr/ZTDWR_20250129.dat";

/// A running `datsync serve`, stopped when dropped.
struct Handler {
    child: Child,
    port: u16,
}

impl Handler {
    fn start(dir: &std::path::Path, database_url: &str, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_datsync"));
        cmd.args([
            "serve",
            "--port",
            "0",
            "--database-url",
            database_url,
            "--checkpoint-dir",
            "az://checkpoints/datsync",
            "--chunk-size",
            CHUNK_SIZE,
        ])
        .current_dir(dir)
        .env_clear()
        .env("RUST_LOG", "warn")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no listening line: {line:?}"));
        Self { child, port }
    }

    /// One HTTP/1.1 request; the status and the JSON body.
    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let body = body.map(Value::to_string).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let body = dechunk(head, body);
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {response}"));
        (status, json)
    }
}

impl Handler {
    /// Waits for the process to exit by itself.
    fn wait(mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of a chunked response, or the body as it is.
fn dechunk(head: &str, body: &str) -> String {
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_owned();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

/// What the Functions host POSTs to `/ztdwr_sync` when a blob lands in
/// `data/hex-ztdwr/{name}`: the blob's whole content, base64, in `Data` (a stand-in of the
/// same size here: the handler must read past it, never use or hold it), and string
/// metadata serialized as JSON once more (`"\"…\""`), without `BlobTrigger`.
fn blob_invocation(emulator: &Emulator, name: &str, size: u64) -> Value {
    let quoted = |s: String| Value::String(Value::String(s).to_string());
    json!({
        "Data": { "myBlob": "QUJD".repeat(usize::try_from(size / 3 + 1).unwrap()) },
        "Metadata": {
            "Uri": quoted(format!("{}/data/hex-ztdwr/{name}", emulator.azurite.blob_endpoint())),
            "Properties": { "ContentType": "application/octet-stream", "BlobType": 2, "Length": size },
            "Metadata": {},
            "name": quoted(name.to_owned()),
            "sys": { "MethodName": "ztdwr_sync", "UtcNow": "2026-11-28T03:00:00Z", "RandGuid": "0c8c1a0e-0000-4000-8000-000000000000" }
        }
    })
}

fn size_of(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Every target row without the columns that name the sync, the file or the time (the
/// reference loaded the same bytes from a local file of another name).
pub(crate) fn rows(db: &TestDb) -> Vec<String> {
    db.table_without(&["sync_id", "sync_seq", "source_file"])
}

fn sync_ids(db: &TestDb) -> Vec<String> {
    db.query(
        "SELECT sync_id FROM public.sync_metadata ORDER BY sync_id",
        &[],
    )
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[test]
fn a_blob_trigger_loads_the_blob_once_and_a_failure_is_retried_as_the_same_sync() {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let work = Work::new(3_000, 71, MESSY);
    emulator.upload(&work.file, BLOB);
    let sync = sync_id(71);
    let (reference_db, expected, _) = reference(&work, &sync);

    let db = TestDb::new();
    // The database refuses one chunk while the flag row exists.
    let failing = lone_key_of_chunk(&reference_db, &work.file, 2);
    failing_trigger(&db, &failing, "40001", Some("datsync_test_flag"));
    let handler = Handler::start(work.path(), &db.url(), &[(key, &value), FAST_RETRY]);
    // More than a web framework's default body limit, as a real blob would be.
    assert!(size_of(&work.file) > 2 * 1024 * 1024);
    let invocation = blob_invocation(&emulator, "ZTDWR_20250129.dat", size_of(&work.file));

    let (status, reply) = handler.request("POST", "/ztdwr_sync", Some(&invocation));
    assert_eq!(status, 500, "the host must retry: {reply}");
    let first = &reply["ReturnValue"];
    assert_eq!(first["summary"]["status"], "PARTIAL_SUCCESS", "{reply}");
    assert!(u(&first["summary"], "chunks_failed") >= 1, "{reply}");
    let sync_id = first["sync_id"].as_str().unwrap().to_owned();
    assert!(
        reply["Logs"].as_array().is_some_and(|l| !l.is_empty()),
        "{reply}"
    );

    // The host retries; the database is back: the same sync finishes.
    db.batch("DELETE FROM datsync_test_flag");
    let (status, reply) = handler.request("POST", "/ztdwr_sync", Some(&invocation));
    assert_eq!(status, 200, "{reply}");
    let done = &reply["ReturnValue"];
    assert_eq!(done["sync_id"], sync_id.as_str(), "{reply}");
    assert_eq!(done["action"], "resumed", "{reply}");
    assert_eq!(done["finished"], true, "{reply}");
    let (got, want) = (rows(&db), rows(&reference_db));
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the table differs from an uninterrupted run's");
    // Chunk 2 was loaded after the chunks that follow it.
    assert_counts_match_out_of_order(&done["summary"], &expected);
    let _ = sync;

    // Delivered again (the host may): nothing is loaded twice.
    let (status, reply) = handler.request("POST", "/ztdwr_sync", Some(&invocation));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["ReturnValue"]["action"], "skipped_done", "{reply}");
    assert_eq!(reply["ReturnValue"]["blob"], BLOB, "{reply}");
    assert_eq!(sync_ids(&db), vec![sync_id.clone()]);
    // A watcher on the same database agrees: the blob is done (same receipt, same ETag).
    let (out, lines) = crate::azure::watch_once(&work, &db, &[(key, &value)]);
    assert_eq!(lines.len(), 1, "{}", out.describe());
    assert_eq!(lines[0]["action"], "skipped_done", "{}", out.describe());
    assert_eq!(sync_ids(&db), vec![sync_id.clone()]);

    // Overwritten with new content: a new ETag, a new sync.
    write_sample(&work.file, 1_200, 72, CLEAN);
    emulator.upload(&work.file, BLOB);
    let invocation = blob_invocation(&emulator, "ZTDWR_20250129.dat", size_of(&work.file));
    let (status, reply) = handler.request("POST", "/ztdwr_sync", Some(&invocation));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["ReturnValue"]["action"], "started", "{reply}");
    assert_ne!(reply["ReturnValue"]["sync_id"], sync_id.as_str(), "{reply}");
    assert_eq!(sync_ids(&db).len(), 2);
}

#[test]
fn manual_reruns_and_health_answer_as_the_legacy_http_functions() {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let work = Work::new(1_500, 73, CLEAN);
    emulator.upload(&work.file, BLOB);
    let db = TestDb::new();
    let handler = Handler::start(work.path(), &db.url(), &[(key, &value)]);

    // Forwarded as it is (enableForwardingHttpRequest).
    let (status, health) = handler.request("GET", "/api/healthz", None);
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["database"], "connected");
    assert!(
        chrono::DateTime::parse_from_rfc3339(health["timestamp"].as_str().unwrap()).is_ok(),
        "{health}"
    );

    let (status, reply) = handler.request(
        "POST",
        "/api/sync-ztdwr",
        Some(&json!({ "blob_name": "ZTDWR_20250129.dat" })),
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["blob"], BLOB);
    assert_eq!(reply["summary"]["status"], "SUCCESS", "{reply}");
    assert_eq!(u(&reply["summary"], "rows_read"), 1_500);
    let first = reply["sync_id"].as_str().unwrap().to_owned();

    // The same request as an HTTP-trigger invocation: the answer travels in Outputs.res.
    // A finished blob re-run by hand is loaded again, as a new sync.
    let invocation = json!({
        "Data": { "req": {
            "Url": "http://localhost:7071/api/sync-ztdwr", "Method": "POST", "Query": {},
            "Headers": { "Content-Type": ["application/json"] }, "Params": {},
            "Body": json!({ "blob_path": "data/hex-ztdwr/ZTDWR_20250129.dat" }).to_string()
        }},
        "Metadata": {}
    });
    let (status, reply) = handler.request("POST", "/sync_ztdwr", Some(&invocation));
    assert_eq!(status, 200, "{reply}");
    let res = &reply["Outputs"]["res"];
    assert_eq!(res["statusCode"], 200, "{reply}");
    let body: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["summary"]["status"], "SUCCESS", "{body}");
    assert_ne!(body["sync_id"], first.as_str(), "{body}");

    // Triggers that retrying cannot help are answered 200: a blob that is not a source, and
    // one deleted since the trigger fired.
    let (status, reply) = handler.request(
        "POST",
        "/ztdwr_sync",
        Some(&blob_invocation(&emulator, "notes.txt", 10)),
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["ReturnValue"]["action"], "ignored", "{reply}");
    let (status, reply) = handler.request(
        "POST",
        "/ztdwr_sync",
        Some(&blob_invocation(&emulator, "gone.dat", 10)),
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["ReturnValue"]["action"], "missing", "{reply}");
    let (status, reply) = handler.request("POST", "/ztdwr_sync", Some(&json!({"Data": {}})));
    assert_eq!(status, 400, "{reply}");

    // Bad requests say what is wrong.
    let (status, reply) = handler.request("POST", "/api/sync-ztdwr", Some(&json!({})));
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("blob_path"),
        "{reply}"
    );
    let (status, reply) = handler.request(
        "POST",
        "/api/sync-ztdwr",
        Some(&json!({ "blob_name": "missing.dat" })),
    );
    assert_eq!(status, 404, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("az://data/hex-ztdwr/missing.dat"),
        "{reply}"
    );
}

#[test]
fn health_says_when_the_database_is_unreachable() {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let work = Work::new(10, 74, CLEAN);
    // Nothing listens on port 1.
    let handler = Handler::start(
        work.path(),
        "postgresql://root:hunter2@127.0.0.1:1/none?connect_timeout=2",
        &[(key, &value)],
    );
    let (status, health) = handler.request("GET", "/api/healthz", None);
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "unhealthy");
    assert!(!health.to_string().contains("hunter2"), "{health}");
    let (status, reply) = handler.request(
        "POST",
        "/healthz",
        Some(&json!({"Data": {}, "Metadata": {}})),
    );
    assert_eq!(status, 200);
    assert_eq!(reply["Outputs"]["res"]["statusCode"], 503, "{reply}");
}

#[test]
fn sigterm_lets_the_chunk_in_flight_commit_answers_and_the_next_delivery_resumes() {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let work = Work::new(3_000, 75, MESSY);
    emulator.upload(&work.file, BLOB);
    let (reference_db, expected, _) = reference(&work, &sync_id(75));
    let db = TestDb::new();
    let invocation = blob_invocation(&emulator, "ZTDWR_20250129.dat", size_of(&work.file));

    // SIGTERM arrives when the second chunk is completed.
    let handler = Handler::start(
        work.path(),
        &db.url(),
        &[(key, &value), ("DATSYNC_TERM_AT", "chunk_completed:2")],
    );
    let (status, reply) = handler.request("POST", "/ztdwr_sync", Some(&invocation));
    assert_eq!(status, 500, "not done: the host retries it: {reply}");
    let stopped = &reply["ReturnValue"];
    assert_eq!(stopped["interrupted"], true, "{reply}");
    assert_eq!(stopped["attempts"], 0, "a stop is not an attempt: {reply}");
    let sync = stopped["sync_id"].as_str().unwrap().to_owned();
    let exit = handler.wait();
    assert_eq!(exit.code(), Some(0), "a clean exit after the answer");
    db.wait_for_other_sessions();
    assert_eq!(
        db.committed_chunks(&sync),
        2,
        "the chunk in flight committed, no other"
    );

    // The host delivers the blob again to a new handler: the same sync finishes.
    let handler = Handler::start(work.path(), &db.url(), &[(key, &value)]);
    let (status, reply) = handler.request("POST", "/ztdwr_sync", Some(&invocation));
    assert_eq!(status, 200, "{reply}");
    let done = &reply["ReturnValue"];
    assert_eq!(done["action"], "resumed", "{reply}");
    assert_eq!(done["sync_id"], sync.as_str());
    assert_eq!(done["attempts"], 1, "{reply}");
    assert_eq!(
        u(&done["summary"], "chunks_skipped_on_resume"),
        2,
        "{reply}"
    );
    for k in [
        "status",
        "rows_read",
        "rows_loaded",
        "rows_rejected",
        "rows_superseded",
        "records_inserted",
        "records_updated",
    ] {
        assert_eq!(done["summary"][k], expected[k], "{k}");
    }
    let (got, want) = (rows(&db), rows(&reference_db));
    assert!(got == want, "the table differs from an uninterrupted run's");
}
