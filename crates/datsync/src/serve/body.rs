//! Request bodies, bounded: every buffered part has a cap, every read a timeout, and the one
//! body parsed while it streams (a blob-trigger invocation, whose `Data` is the blob) is
//! parsed on a fixed pool of threads, never a thread per request.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use serde_json::Value;

/// The most a buffered request body may hold (queue, timer and HTTP invocations, manual
/// re-runs): an Event Grid event is a few kilobytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// The most an invocation's `Metadata` may hold (it is buffered; the host writes a few
/// hundred bytes).
pub const DEFAULT_MAX_METADATA_BYTES: u64 = 64 * 1024;
/// The most a member name may hold while a blob-trigger invocation streams past.
const MAX_KEY_BYTES: u64 = 1024;
/// The most a blob-trigger invocation may hold in all (it carries the blob, Base64; it is
/// streamed past, not held — the limit bounds the time spent reading it). The blob trigger
/// is for small files; large ones go through the queue.
pub const DEFAULT_MAX_BLOB_INVOCATION_BYTES: u64 = 256 * 1024 * 1024;
/// The longest pause between two parts of a request body.
pub const DEFAULT_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Threads that parse streamed bodies.
pub const DEFAULT_PARSE_THREADS: usize = 2;
/// Chunks of a body handed from the server to a parsing thread at once.
const BODY_CHUNKS_IN_FLIGHT: usize = 4;

/// What bounds a request's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// See [`DEFAULT_MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
    /// See [`DEFAULT_MAX_METADATA_BYTES`].
    pub max_metadata_bytes: u64,
    /// See [`DEFAULT_MAX_BLOB_INVOCATION_BYTES`].
    pub max_blob_invocation_bytes: u64,
    /// See [`DEFAULT_BODY_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_metadata_bytes: DEFAULT_MAX_METADATA_BYTES,
            max_blob_invocation_bytes: DEFAULT_MAX_BLOB_INVOCATION_BYTES,
            idle_timeout: DEFAULT_BODY_IDLE_TIMEOUT,
        }
    }
}

/// A body that could not be read within its bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// More than the cap.
    #[error("the request is larger than {limit} bytes")]
    TooLarge {
        /// The cap.
        limit: u64,
    },
    /// A part of the body did not arrive in time.
    #[error("the request body stalled for more than {} s", .0.as_secs())]
    Stalled(Duration),
    /// The connection failed while the body was read.
    #[error("the request body could not be read")]
    Broken,
    /// Every parsing thread is busy (and their queue full).
    #[error("the handler is busy parsing other requests")]
    Busy,
    /// The body is not what the route expects (position only, never the input).
    #[error("the request body is not a valid invocation: {0}")]
    Invalid(String),
}

/// The whole body, at most `limits.max_body_bytes`, each part within the idle timeout.
pub async fn read_capped(body: axum::body::Body, limits: &BodyLimits) -> Result<Bytes, BodyError> {
    let mut stream = body.into_data_stream();
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = next_chunk(&mut stream, limits.idle_timeout).await? {
        if out.len() + chunk.len() > limits.max_body_bytes {
            return Err(BodyError::TooLarge {
                limit: limits.max_body_bytes as u64,
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

async fn next_chunk(
    stream: &mut axum::body::BodyDataStream,
    idle: Duration,
) -> Result<Option<Bytes>, BodyError> {
    match tokio::time::timeout(idle, stream.next()).await {
        Err(_) => Err(BodyError::Stalled(idle)),
        Ok(None) => Ok(None),
        Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
        Ok(Some(Err(_))) => Err(BodyError::Broken),
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads for the blocking JSON parser, with a short queue in front: a
/// request that finds both full is answered "busy" at once.
pub struct ParsePool {
    jobs: Mutex<mpsc::SyncSender<Job>>,
}

impl ParsePool {
    /// `threads` parsing threads (at least one) and as many waiting places.
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::sync_channel::<Job>(threads);
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..threads {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("datsync-parse-{n}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a body-parsing thread");
            }
        }
        Self {
            jobs: Mutex::new(tx),
        }
    }

    fn submit(&self, job: Job) -> Result<(), BodyError> {
        let jobs = self.jobs.lock().map_err(|_| BodyError::Busy)?;
        jobs.try_send(job).map_err(|_| BodyError::Busy)
    }
}

/// Position of the parser in a streamed body, and the bound on what it is buffering now.
#[derive(Default)]
struct Budget {
    read: AtomicU64,
    /// Where the bounded part started, and its cap (`u64::MAX`: nothing bounded).
    start: AtomicU64,
    cap: AtomicU64,
}

impl Budget {
    fn bound(&self, cap: u64) {
        self.start
            .store(self.read.load(Ordering::Relaxed), Ordering::Relaxed);
        self.cap.store(cap, Ordering::Relaxed);
    }

    fn unbound(&self) {
        self.cap.store(u64::MAX, Ordering::Relaxed);
    }

    fn exceeded(&self) -> bool {
        let cap = self.cap.load(Ordering::Relaxed);
        cap != u64::MAX
            && self.read.load(Ordering::Relaxed) - self.start.load(Ordering::Relaxed) > cap
    }
}

/// The invocation's `Metadata` (any case) of a streamed blob-trigger body, parsed on `pool`
/// while the body arrives: every other member (`Data`, the blob) is read past without being
/// kept; `Metadata` may hold at most `limits.max_metadata_bytes`, a member name 1 KiB, the
/// whole body `limits.max_blob_invocation_bytes`.
pub async fn streamed_metadata(
    body: axum::body::Body,
    pool: &ParsePool,
    limits: &BodyLimits,
) -> Result<Value, BodyError> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, ()>>(BODY_CHUNKS_IN_FLIGHT);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let max_metadata = limits.max_metadata_bytes;
    pool.submit(Box::new(move || {
        let budget = Arc::new(Budget {
            cap: AtomicU64::new(u64::MAX),
            ..Budget::default()
        });
        let reader = Counted {
            inner: std::io::BufReader::new(ChannelReader {
                rx,
                current: Bytes::new(),
            }),
            budget: Arc::clone(&budget),
        };
        let _ = done_tx.send(metadata_of(reader, &budget, max_metadata));
    }))?;
    let mut stream = body.into_data_stream();
    let mut total = 0u64;
    let mut failure = None;
    loop {
        let chunk = match next_chunk(&mut stream, limits.idle_timeout).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                failure = Some(e);
                let _ = tx.send(Err(())).await;
                break;
            }
        };
        total += chunk.len() as u64;
        if total > limits.max_blob_invocation_bytes {
            failure = Some(BodyError::TooLarge {
                limit: limits.max_blob_invocation_bytes,
            });
            let _ = tx.send(Err(())).await;
            break;
        }
        // The parser stopped (it failed or found the end): the rest is not needed.
        if tx.send(Ok(chunk)).await.is_err() {
            break;
        }
    }
    drop(tx);
    let parsed = done_rx
        .await
        .unwrap_or_else(|_| Err(BodyError::Invalid("the parser stopped".into())));
    match failure {
        Some(e) => Err(e),
        None => parsed,
    }
}

/// Runs the parser over `reader`, bounding `Metadata` and member names by `budget`.
fn metadata_of(reader: impl Read, budget: &Budget, max_metadata: u64) -> Result<Value, BodyError> {
    use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
    struct Metadata<'b> {
        budget: &'b Budget,
        cap: u64,
    }
    impl<'de> Visitor<'de> for Metadata<'_> {
        type Value = Option<Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an invocation object with Data and Metadata")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            loop {
                self.budget.bound(MAX_KEY_BYTES);
                let Some(key) = map.next_key::<String>()? else {
                    break;
                };
                if key.eq_ignore_ascii_case("Metadata") {
                    self.budget.bound(self.cap);
                    found = Some(map.next_value::<Value>()?);
                } else {
                    self.budget.unbound();
                    map.next_value::<IgnoredAny>()?;
                }
            }
            self.budget.unbound();
            Ok(found)
        }
    }
    let mut de = serde_json::Deserializer::from_reader(reader);
    let visitor = Metadata {
        budget,
        cap: max_metadata,
    };
    let position = |e: &serde_json::Error| {
        if e.is_io() && budget.exceeded() {
            BodyError::TooLarge {
                limit: budget.cap.load(Ordering::Relaxed),
            }
        } else if e.is_io() {
            BodyError::Broken
        } else {
            BodyError::Invalid(format!("line {}, column {}", e.line(), e.column()))
        }
    };
    let metadata = de.deserialize_map(visitor).map_err(|e| position(&e))?;
    de.end().map_err(|e| position(&e))?;
    metadata.ok_or_else(|| BodyError::Invalid("no Metadata member".into()))
}

/// A reader that counts what it yields and fails once the budget's bounded part is over its
/// cap.
struct Counted<R> {
    inner: R,
    budget: Arc<Budget>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.budget.exceeded() {
            return Err(std::io::Error::other("over the cap"));
        }
        let n = self.inner.read(buf)?;
        self.budget.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A blocking reader over body chunks sent through a channel; an `Err` chunk is a failed
/// body.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, ()>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(())) => return Err(std::io::Error::other("the body failed")),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
