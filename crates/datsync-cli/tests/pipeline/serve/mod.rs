//! `datsync serve`, the Azure Functions custom handler, driven with what the Functions host
//! sends — queue deliveries of Event Grid events (repeated, counted, killed), the poison
//! queue, the sweep timer, HTTP requests forwarded as they are, HTTP-trigger invocations,
//! the blob trigger — against Azurite and the real PostgreSQL; plus the deployment's own
//! configuration files.

mod blob;
mod bounds;
mod deploy;
mod manual;
mod memory;
mod queue;
mod submit;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::azure::Emulator;
use crate::common::*;

/// The source every test uploads.
pub(crate) const BLOB: &str = "az://data/hex-ztdwr/ZTDWR_20250129.dat";
/// Where the handler keeps its checkpoints.
const CHECKPOINTS: &str = "az://checkpoints/datsync";
/// How long a test waits for something the handler does in the background.
const PATIENCE: Duration = Duration::from_secs(120);

/// Lines a process writes to one stream, collected by a thread as they come.
#[derive(Clone, Default)]
pub(crate) struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn collect(stream: impl Read + Send + 'static) -> Self {
        let lines = Self::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                sink.0.lock().unwrap().push(line);
            }
        });
        lines
    }

    pub(crate) fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// The JSON log lines (`--log-format json`) whose message is `message`.
    pub(crate) fn events(&self, message: &str) -> Vec<Value> {
        self.all()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["fields"]["message"] == message)
            .collect()
    }

    /// Waits until `count` JSON log lines (or text lines) with `message` are in, and
    /// returns the JSON ones (the handler logs before it answers, but this thread may read
    /// the line after the test has the answer).
    pub(crate) fn wait_events(&self, message: &str, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let n = self.all().iter().filter(|l| l.contains(message)).count();
            if n >= count {
                return self.events(message);
            }
            assert!(
                Instant::now() < deadline,
                "fewer than {count} {message:?} in {:?}",
                self.all()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until a line satisfies `found`.
    pub(crate) fn wait_for(&self, what: &str, found: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(l) = self.all().into_iter().find(|l| found(l)) {
                return l;
            }
            assert!(Instant::now() < deadline, "no {what} in {:?}", self.all());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A running `datsync serve --log-format json`, stopped when dropped.
pub(crate) struct Handler {
    child: Child,
    pub port: u16,
    pub stdout: Lines,
    pub stderr: Lines,
}

impl Handler {
    /// The handler in `dir` (where a `host.json` may sit) on `database_url`, with the
    /// emulator's account, `env` and `args` added.
    pub(crate) fn start(
        dir: &std::path::Path,
        database_url: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_datsync"));
        let format = if args.contains(&"--log-format") {
            &[][..]
        } else {
            &["--log-format", "json"][..]
        };
        let chunks = if args.contains(&"--chunk-size") {
            &[][..]
        } else {
            &["--chunk-size", CHUNK_SIZE][..]
        };
        cmd.args([
            "serve",
            "--port",
            "0",
            "--database-url",
            database_url,
            "--checkpoint-dir",
            CHECKPOINTS,
        ])
        .args(chunks)
        .args(format)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("RUST_LOG", "info")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = Lines::collect(child.stdout.take().unwrap());
        let stderr = Lines::collect(child.stderr.take().unwrap());
        let line = stdout.wait_for("listening line", |l| l.starts_with("listening on"));
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Self {
            child,
            port,
            stdout,
            stderr,
        }
    }

    /// One HTTP/1.1 request with `headers`; the status and the JSON body.
    pub(crate) fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let (status, _, body) = self.raw(method, path, body, headers);
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {body}"));
        (status, json)
    }

    /// One request; the status, the head, and the body as text.
    pub(crate) fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (u16, String, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (k, v) in headers {
            let _ = std::fmt::Write::write_fmt(&mut head, format_args!("{k}: {v}\r\n"));
        }
        write!(stream, "{head}\r\n{body}").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{method} {path}: no answer: {response:?}"));
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_owned(), dechunk(head, body))
    }

    /// A POST of an invocation to the function's route, as the host sends it.
    pub(crate) fn invoke(&self, function: &str, invocation: &Value) -> (u16, Value) {
        self.send(
            "POST",
            &format!("/{function}"),
            Some(invocation),
            &[(
                "x-azure-functions-invocationid",
                "6a0e1e2c-0000-4000-8000-00000000abcd",
            )],
        )
    }

    /// An invocation the handler may die on: `None` when the connection ends without an
    /// answer (the process was killed).
    pub(crate) fn try_invoke(&self, function: &str, invocation: &Value) -> Option<(u16, Value)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        let body = invocation.to_string();
        write!(
            stream,
            "POST /{function} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, serde_json::from_str(&dechunk(head, body)).ok()?))
    }

    /// Waits for the process to exit by itself.
    pub(crate) fn wait(mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
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

/// A `host.json` in `dir`, as the Functions app would have it, with the queue retry
/// settings given.
pub(crate) fn host_json(dir: &std::path::Path, max_dequeue_count: u32, visibility: &str) {
    let text = json!({
        "version": "2.0",
        "functionTimeout": "00:10:00",
        "extensions": { "queues": {
            "maxDequeueCount": max_dequeue_count,
            "visibilityTimeout": visibility,
            "batchSize": 1,
            "newBatchThreshold": 0
        }},
        "customHandler": { "description": { "defaultExecutablePath": "datsync" } }
    });
    std::fs::write(dir.join("host.json"), text.to_string()).unwrap();
}

/// Microsoft's `BlobCreated` event (Event Grid schema) for `name` in the emulator's
/// `data/hex-ztdwr/`.
pub(crate) fn blob_created(emulator: &Emulator, path: &str, etag: &str, length: u64) -> Value {
    json!({
        "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/devstoreaccount1",
        "subject": format!("/blobServices/default/containers/data/blobs/{path}"),
        "eventType": "Microsoft.Storage.BlobCreated",
        "eventTime": "2026-11-28T03:00:00.9584103Z",
        "id": "831e1650-001e-001b-66ab-eeb76e069631",
        "data": {
            "api": "PutBlockList",
            "clientRequestId": "6d79dbfb-0e37-4fc4-981f-442c9ca65760",
            "requestId": "831e1650-001e-001b-66ab-eeb76e000000",
            "eTag": format!("\"{etag}\""),
            "contentType": "application/octet-stream",
            "contentLength": length,
            "blobType": "BlockBlob",
            "url": format!("{}/data/{path}", emulator.azurite.blob_endpoint()),
            "sequencer": "00000000000004420000000000028963",
            "storageDiagnostics": { "batchId": "b68529f3-68cd-4744-baa4-3c0498ec19f0" }
        },
        "dataVersion": "",
        "metadataVersion": "1"
    })
}

/// The event in the CloudEvents 1.0 schema.
pub(crate) fn as_cloud_event(event: &Value) -> Value {
    json!({
        "source": event["topic"],
        "subject": event["subject"],
        "type": event["eventType"],
        "time": event["eventTime"],
        "id": event["id"],
        "data": event["data"],
        "specversion": "1.0"
    })
}

/// How the host hands the message to the handler.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Encoding {
    /// `messageEncoding: base64` (the default): the host decodes Event Grid's Base64 and
    /// serializes the text as a JSON string.
    HostDecoded,
    /// `messageEncoding: none`: the Base64 text as Event Grid wrote it.
    Base64,
}

/// The queue-trigger invocation the host POSTs for a message holding `event`, delivered
/// for the `delivery`-th time.
pub(crate) fn queue_delivery(event: &Value, delivery: u32, encoding: Encoding) -> Value {
    let text = event.to_string();
    let message = match encoding {
        Encoding::HostDecoded => Value::String(Value::String(text).to_string()),
        Encoding::Base64 => Value::String(
            Value::String(base64::engine::general_purpose::STANDARD.encode(text)).to_string(),
        ),
    };
    let quoted = |s: &str| Value::String(Value::String(s.to_owned()).to_string());
    json!({
        "Data": { "event": message },
        "Metadata": {
            "DequeueCount": delivery.to_string(),
            "ExpirationTime": quoted("2026-12-05T03:00:00+00:00"),
            "Id": quoted("800ae4b3-bdd2-4c08-badd-f08e5a34b865"),
            "InsertionTime": quoted("2026-11-28T03:00:01+00:00"),
            "NextVisibleTime": quoted("2026-11-28T03:10:01+00:00"),
            "PopReceipt": quoted("AgAAAAMAAAAAAAAAAgtnj8x+1QE="),
            "sys": { "MethodName": "ztdwr_blob_created", "UtcNow": "2026-11-28T03:00:02Z", "RandGuid": "24ad4c06-24ad-4e5b-8294-3da9714877e9" }
        }
    })
}

/// The ETag and size of a blob in the emulator.
pub(crate) fn etag_of(emulator: &Emulator, url: &str) -> (String, u64) {
    let blob = datsync::Blob::open_with(url, &emulator.azurite.account()).unwrap();
    let meta = emulator.rt.block_on(blob.head()).unwrap().unwrap();
    (meta.etag.unwrap(), meta.size)
}

/// Every target row without the columns that name the sync, the file or the time (the
/// reference loaded the same bytes from a local file of another name).
pub(crate) fn rows(db: &TestDb) -> Vec<String> {
    db.table_without(&["sync_id", "sync_seq", "source_file"])
}

pub(crate) fn sync_ids(db: &TestDb) -> Vec<String> {
    db.query(
        "SELECT sync_id FROM public.sync_metadata ORDER BY sync_id",
        &[],
    )
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Every receipt: `(name, sync_id, attempts, finished, parked)`.
pub(crate) fn receipts(db: &TestDb) -> Vec<(String, String, i32, bool, bool)> {
    db.query(
        "SELECT name, sync_id, attempts, finished_at IS NOT NULL, poisoned_at IS NOT NULL
           FROM public.datsync_receipts ORDER BY name, created_at",
        &[],
    )
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
    .collect()
}

pub(crate) fn size_of(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Values that must never appear in an answer: the database's user, host and port, local
/// paths, key material.
pub(crate) fn assert_reveals_nothing(answer: &Value, work: &Work) {
    let text = answer.to_string();
    for secret in [
        "root@",
        "127.0.0.1:5432",
        ":5432",
        "postgresql://",
        "/tmp",
        work.path().to_str().unwrap(),
        "AccountKey",
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq",
        "injected failure",
        "SQLSTATE",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}
