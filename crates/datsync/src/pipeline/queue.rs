//! The work queue (`datsync submit`, `datsync worker`): PostgreSQL is the coordinator.
//!
//! `submit` registers the sync as `run` does and converts the source into chunks in the
//! checkpoint storage (shared by the workers: a directory they all mount, or `az://`,
//! `s3://`, `gs://`); each chunk whose Parquet file and journal entry are written gets a row
//! in `<schema>.chunk_queue` at once, so workers load while the conversion goes on. When the
//! conversion is complete, `sync_metadata.chunks_total` and `converted_at` are written with
//! the sync's *finish row* (`chunk_id` = -1) in one transaction.
//!
//! A worker takes work in the transaction that does it:
//!
//! ```text
//! BEGIN
//!   SELECT … FROM chunk_queue … FOR UPDATE OF q SKIP LOCKED LIMIT 1   -- the claim
//!   (read the chunk's Parquet file, validate, keep rejects, transform: no statement)
//!   pg_advisory_xact_lock(sync, chunk); the ledger check               -- load::Loader
//!   COPY into staging; the upsert (one chunk of a sync at a time); the ledger row (worker)
//!   DELETE the chunk's queue row
//! COMMIT
//! ```
//!
//! A worker that dies rolls back: the row is free again for the next `SKIP LOCKED`, with no
//! lease to time out. A chunk commits once: its ledger row and its queue row's deletion are
//! in its transaction, and a second loader of the same chunk (a worker after a retry, a
//! `run`/`resume` of the same sync) waits on the chunk's advisory lock and then finds the
//! ledger row. `run`/`resume` delete a chunk's queue row in its transaction too, skipping
//! it when a worker holds it (that worker deletes it): no lock cycle.
//!
//! The finish row is taken only when no chunk row of its sync is left (the rows of chunks
//! in flight are still there, locked): the worker that takes it holds it while it finishes
//! the sync on a second connection (the final status from the ledger, views,
//! `sync_metadata`, cleanup, hooks, alert: `finish.rs`), then deletes it and commits. If that
//! worker dies, the row is free again and the next worker (or `datsync resume SYNC`)
//! finishes the sync; the final steps can be done twice.
//!
//! A sync halted by a worker (too many rejects, bad input, a corrupt or missing chunk file,
//! a fatal database error; not a passing storage or I/O error, which leaves the chunk
//! queued) is halted in one transaction: its chunk rows deleted (a `DELETE` that waits for
//! the chunks in flight to commit or roll back), its status and the halt's message written
//! (claims take chunk rows of IN_PROGRESS syncs only), its finish row queued. The halting
//! worker then claims the finish row and finishes the sync with its halt; if it dies first,
//! the next worker claims the row and finishes the sync with the recorded message. A worker
//! with nothing to do deletes chunk rows left for syncs that are not IN_PROGRESS, never a
//! finish row.
//!
//! Workers never write the checkpoint's manifest (only `submit`, its one writer, does): the
//! manifest never says a chunk is done that the ledger does not have.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tokio_postgres::Client;

use super::chunk::{ChunkResult, FailedChunk};
use super::convert::{ConvertOutcome, Converted, Rows};
use super::halt::{Halt, TransientFailure};
use super::jobs::Conn;
use super::plan::Plan;
use super::retry::LoadAttempt;
use super::run::{Run, Shared, Tally, run_loader};
use super::{Pipeline, PipelineError, RunSummary};
use crate::checkpoint::{CheckpointError, CheckpointManager};
use crate::load::{ChunkFacts, LoadError};
use crate::model::{ChunkCut, ChunkId, SourceFingerprint, SyncCounts, SyncId, SyncRef, SyncStatus};
use crate::pg::{PgError, quote_ident};
use crate::profile::StoredType;
use crate::source::SourceRef;
use crate::store::{ObjectKey, Store};
use crate::telemetry::{FinishClaimed, SyncHalted};

/// The `chunk_id` of a sync's finish row.
const FINISH: i32 = -1;

/// How a run treats its chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// `run`, `resume`: this process loads each chunk.
    Load,
    /// `submit`: each chunk is put in the work queue for the workers.
    Submit,
    /// `worker`: the chunk was claimed by a transaction on the loader's connection, open
    /// while [`super::run::Shared::claim_open`] says so; a retry opens a new one and claims
    /// the chunk again.
    Claimed,
}

/// What `datsync submit` did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Submitted {
    /// The sync.
    pub sync_id: SyncId,
    /// Chunks of the whole source (the conversion is complete).
    pub chunks_total: u64,
    /// Chunks this submit put in the queue.
    pub chunks_enqueued: u64,
    /// Whether it continued an earlier submit (or run) of the source.
    pub resumed: bool,
    /// The sync ended during the submit (the source was already loaded, or the input is
    /// bad): its summary; `None` when the workers load it.
    #[serde(skip)]
    pub ended: Option<RunSummary>,
}

/// How a worker works (`datsync worker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerOptions {
    /// Chunks loaded at once, each on its own connection.
    pub concurrency: usize,
    /// Exit once there has been nothing to do for `max_idle`.
    pub exit_when_idle: bool,
    /// See `exit_when_idle`.
    pub max_idle: Duration,
    /// The pause between two looks at an empty queue.
    pub poll: Duration,
    /// Claims of a chunk that may end without it loaded (it failed past its retries, or its
    /// storage could not be read) before the chunk is given up: the sync then finishes
    /// without it (PARTIAL_SUCCESS, its checkpoint kept) and `datsync resume` loads it.
    pub max_attempts: u32,
    /// The pause before a failed piece of work is claimed again, doubled at each attempt
    /// (at most [`MAX_BACKOFF`], or this pause when it is longer).
    pub backoff: Duration,
}

/// The longest pause between two attempts at a piece of work (unless
/// [`WorkerOptions::backoff`] is longer).
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            concurrency: 1,
            exit_when_idle: false,
            max_idle: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            max_attempts: 5,
            backoff: Duration::from_secs(5),
        }
    }
}

/// What a worker did before it exited.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorkerReport {
    /// Chunks it committed.
    pub chunks_loaded: u64,
    /// Syncs it finished (their final status written), with their status.
    pub syncs_finished: Vec<(SyncId, SyncStatus)>,
    /// Syncs it halted (too many rejects, bad input, a fatal error).
    pub syncs_halted: Vec<(SyncId, SyncStatus)>,
}

impl WorkerReport {
    fn add(&mut self, other: Self) {
        self.chunks_loaded += other.chunks_loaded;
        self.syncs_finished.extend(other.syncs_finished);
        self.syncs_halted.extend(other.syncs_halted);
    }
}

/// A claimed queue row and what `sync_metadata` says of its sync.
#[derive(Debug, Clone)]
struct Claim {
    sync_id: SyncId,
    chunk: i32,
    checksum: String,
    cut: ChunkCut,
    sync_seq: i64,
    file_name: String,
    file_path: String,
    file_size: u64,
    location: Option<String>,
    /// The sync's status when it was claimed.
    status: String,
    /// The sync's recorded error message (that of a halt, for a halted sync's finish row).
    error_message: Option<String>,
}

/// What the work queue of a schema holds (`datsync queue --json`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueStatus {
    /// Pieces of work waiting (chunks to load and syncs to finish): the figure the scalers
    /// watch, [`scale_query`].
    pub pending: i64,
    /// Of them, chunks to load.
    pub chunks: i64,
    /// Of them, syncs whose conversion is complete, to finish once their chunks are in.
    pub finishing: i64,
    /// Of them, pieces held back after a failed attempt until their backoff has passed.
    pub waiting: i64,
    /// Syncs with work waiting.
    pub syncs: i64,
    /// Chunks given up after their attempts (not pending: `datsync resume SYNC` loads
    /// them once what failed is mended), and queue rows that name no chunk or no sync.
    pub failed: i64,
}

/// THE SCALE QUERY of `schema`'s work queue: the pieces of work waiting (chunks to load,
/// syncs to finish; not the chunks given up). KEDA's `postgresql` scaler
/// (`deploy/kubernetes/workers/worker.yaml`) and the Container Apps job's scale rule
/// (`deploy/container-apps/main.bicep`) run it; it counts what [`QueueStatus::pending`] is.
/// The schema is always quoted (a schema named like a reserved word, `user` or `select`,
/// or with capitals, is then read as written).
pub fn scale_query(schema: &str) -> String {
    format!(
        "SELECT count(*) FROM {}.chunk_queue WHERE {PENDING}",
        quote_ident(schema)
    )
}

/// The condition of a queue row that is work waiting (see [`scale_query`]).
const PENDING: &str = "failed_at IS NULL";

/// Whether the work queue's table exists in the schema quoted as `s` (its migration ran).
async fn queue_exists(client: &Client, s: &str) -> Result<bool, PgError> {
    Ok(client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("{s}.chunk_queue")],
        )
        .await
        .map_err(|e| PgError::query("cannot look for the work queue", e))?
        .get(0))
}

/// Whether the work queue of `schema` holds a row of `sync_id` (a chunk to load, given up,
/// or the finish): the sync was submitted, so workers may read its chunk files.
pub(super) async fn sync_is_queued(
    client: &Client,
    schema: &str,
    sync_id: &SyncId,
) -> Result<bool, PgError> {
    let s = quote_ident(schema);
    if !queue_exists(client, &s).await? {
        return Ok(false);
    }
    let queued: bool = client
        .query_one(
            &format!("SELECT EXISTS (SELECT 1 FROM {s}.chunk_queue WHERE sync_id = $1)"),
            &[&sync_id.as_str()],
        )
        .await
        .map_err(|e| PgError::query("cannot look for the sync in the work queue", e))?
        .get(0);
    Ok(queued)
}

/// What the work queue of `schema` holds (all zero before the queue's migration ran).
pub async fn pending_work(client: &Client, schema: &str) -> Result<QueueStatus, PgError> {
    let s = quote_ident(schema);
    if !queue_exists(client, &s).await? {
        return Ok(QueueStatus::default());
    }
    let row = client
        .query_one(
            &format!(
                "SELECT count(*) FILTER (WHERE {PENDING}),
                        count(*) FILTER (WHERE {PENDING} AND chunk_id >= 0),
                        count(*) FILTER (WHERE {PENDING} AND chunk_id = {FINISH}),
                        count(*) FILTER (WHERE {PENDING} AND not_before > now()),
                        count(DISTINCT sync_id) FILTER (WHERE {PENDING}),
                        count(*) FILTER (WHERE NOT ({PENDING}))
                   FROM {s}.chunk_queue"
            ),
            &[],
        )
        .await
        .map_err(|e| PgError::query("cannot count the work queue", e))?;
    Ok(QueueStatus {
        pending: row.get(0),
        chunks: row.get(1),
        finishing: row.get(2),
        waiting: row.get(3),
        syncs: row.get(4),
        failed: row.get(5),
    })
}

fn q(what: &'static str) -> impl Fn(tokio_postgres::Error) -> PgError {
    move |e| PgError::query(what, e)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Pipeline {
    /// `datsync submit SOURCE`: registers the sync (or continues the source's unfinished
    /// one, as `run` does), converts the source into the checkpoint storage and queues each
    /// chunk as soon as it is saved; returns once the conversion is complete. Needs
    /// checkpoints in a store the workers can open (not `memory://`).
    pub async fn submit(
        &self,
        source: &str,
        sync_id: Option<SyncId>,
        fresh: bool,
    ) -> Result<Submitted, PipelineError> {
        if !self.settings.enable_checkpointing {
            return Err(PipelineError::NotShared {
                reason: "checkpointing is off (ENABLE_CHECKPOINTING=false or --no-checkpoint): \
                         the workers read the chunks from the checkpoint storage"
                    .to_owned(),
            });
        }
        let store = self.store().await?;
        if store.reopenable_location().is_none() {
            return Err(PipelineError::NotShared {
                reason: format!(
                    "the checkpoint storage {} cannot be opened by another process; use a \
                     directory the workers share, or az://, s3://, gs://",
                    self.settings.checkpoint_base
                ),
            });
        }
        let source = SourceRef::open(source).await?;
        let summary = self
            .run_source_as(source, sync_id, fresh, Mode::Submit)
            .await?;
        let ended = summary.status != SyncStatus::InProgress
            || summary.already_loaded
            || summary.interrupted;
        Ok(Submitted {
            sync_id: summary.sync_id.clone(),
            chunks_total: summary.counts.chunks_total,
            chunks_enqueued: summary.counts.chunks_completed,
            resumed: summary.resumed,
            ended: ended.then_some(summary),
        })
    }

    /// `datsync worker`: loads queued chunks of any submitted sync of the profile's table
    /// and finishes syncs whose chunks are all committed, `options.concurrency` at a time
    /// (each slot a task of its own, on a connection of its own, so that the slots' CPU work
    /// runs on the runtime's threads side by side), until a stop is asked for (the chunks in
    /// flight finish) or, with `options.exit_when_idle`, until nothing was left to do for
    /// `options.max_idle`. A slot that fails ends the others too (after their work in
    /// flight), so that its error reaches the exit code at once.
    pub async fn work(
        self: std::sync::Arc<Self>,
        options: WorkerOptions,
    ) -> Result<WorkerReport, PipelineError> {
        let (client, stored) = self.connect_migrated().await?;
        let stored = std::sync::Arc::new(stored);
        let mut first = Some(client);
        let failed = std::sync::Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..options.concurrency.max(1))
            .map(|_| {
                let (pipeline, stored, client) = (self.clone(), stored.clone(), first.take());
                let failed = failed.clone();
                tokio::spawn(async move {
                    let result = pipeline.slot(client, &stored, options, &failed).await;
                    if result.is_err() {
                        failed.store(true, Ordering::SeqCst);
                    }
                    result
                })
            })
            .collect();
        let mut report = WorkerReport::default();
        for joined in futures::future::join_all(tasks).await {
            let result = joined.map_err(|error| PipelineError::Internal {
                task: "a worker's slot",
                error,
            })?;
            report.add(result?);
        }
        Ok(report)
    }

    /// One of a worker's loops: claims, loads or finishes, until stopped, idle, or another
    /// slot `failed`.
    async fn slot(
        &self,
        client: Option<Client>,
        stored: &[(String, StoredType)],
        options: WorkerOptions,
        failed: &AtomicBool,
    ) -> Result<WorkerReport, PipelineError> {
        let mut report = WorkerReport::default();
        let mut client = match client {
            Some(c) => c,
            None => match self.connect_unless_stopped().await? {
                Some(c) => c,
                None => return Ok(report),
            },
        };
        let mut idle_since: Option<Instant> = None;
        let schema = self.profile.schema.clone();
        loop {
            if self.stopping() {
                break;
            }
            if failed.load(Ordering::SeqCst) {
                tracing::warn!("another slot of this worker failed; this one stops too");
                break;
            }
            if client.is_closed() {
                match self.connect_unless_stopped().await? {
                    Some(c) => client = c,
                    None => break,
                }
            }
            let claimed = match claim_next(&client, &schema, &self.profile.table, None).await {
                Ok(c) => c,
                Err(e) if e.is_outage() || e.class() == crate::pg::ErrorClass::Transient => {
                    tracing::warn!(error = %e, "cannot read the work queue; trying again");
                    // The claim's transaction is aborted (or the connection gone): the next
                    // BEGIN must not meet it (25P02).
                    rollback(&client).await;
                    self.pause(options.poll).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let busy = match claimed {
                Some(claim) if claim.chunk == FINISH => {
                    self.telemetry.emit(&FinishClaimed {
                        sync_id: &claim.sync_id,
                    });
                    let (c, finished) =
                        Box::pin(self.finish_claimed(client, claim, stored, None, &options)).await;
                    client = c;
                    if let Some(done) = &finished {
                        report.syncs_finished.push(done.clone());
                    }
                    finished.is_some()
                }
                Some(claim) => {
                    let (c, outcome) =
                        Box::pin(self.load_claimed_chunk(client, claim, stored, &options)).await;
                    client = c;
                    match outcome {
                        Worked::Loaded => {
                            report.chunks_loaded += 1;
                            true
                        }
                        Worked::Halted(id, status) => {
                            report.syncs_halted.push((id, status));
                            true
                        }
                        Worked::Nothing => false,
                    }
                }
                None => {
                    rollback(&client).await;
                    if let Err(e) = sweep(&client, &schema).await {
                        tracing::warn!(error = %e, "cannot delete the queue rows of stopped syncs");
                    }
                    false
                }
            };
            if busy {
                idle_since = None;
                continue;
            }
            let since = *idle_since.get_or_insert_with(Instant::now);
            if options.exit_when_idle && since.elapsed() >= options.max_idle {
                tracing::info!(
                    idle_s = since.elapsed().as_secs_f64(),
                    "no work left; exiting"
                );
                break;
            }
            self.pause(options.poll).await;
        }
        rollback(&client).await;
        Ok(report)
    }

    /// [`Self::connect_waiting`], or `None` as soon as a stop is asked for (a worker told to
    /// stop during an outage exits at once instead of waiting out the outage budget).
    async fn connect_unless_stopped(&self) -> Result<Option<Client>, PgError> {
        let Some(mut stop) = self.stop.clone() else {
            return self.connect_waiting().await.map(Some);
        };
        tokio::select! {
            connected = self.connect_waiting() => connected.map(Some),
            Ok(_) = stop.wait_for(|s| *s) => {
                tracing::info!("stopping while the database cannot be reached");
                Ok(None)
            }
        }
    }

    /// Waits `pause`, or less when a stop is asked for.
    async fn pause(&self, pause: Duration) {
        match self.stop.clone() {
            Some(mut stop) => {
                let _ = tokio::time::timeout(pause, stop.wait_for(|s| *s)).await;
            }
            None => tokio::time::sleep(pause).await,
        }
    }

    /// Loads the chunk claimed on `client` (its transaction open) with the chunk code of
    /// `run`; a sync the chunk halts is halted for every worker. Returns the client.
    async fn load_claimed_chunk(
        &self,
        client: Client,
        claim: Claim,
        stored: &[(String, StoredType)],
        options: &WorkerOptions,
    ) -> (Client, Worked) {
        // Claims take chunk ids of 0 and more only.
        let chunk = ChunkId(u32::try_from(claim.chunk).unwrap_or_default());
        let plan = claim.plan();
        let store = match claim.store() {
            Ok(store) => store,
            Err(e) => {
                rollback(&client).await;
                tracing::error!(sync_id = %claim.sync_id, %chunk, error = %e, "the sync's checkpoint storage cannot be opened");
                self.try_again_later(&client, &claim, &e.to_string(), options, Passing)
                    .await;
                return (client, Worked::Nothing);
            }
        };
        let batch = read_chunk(&store, &claim, chunk).await;
        let mut run = self.claimed_run(&plan, &claim, store, client, stored);
        let result = match batch {
            Ok(batch) => {
                let Run {
                    shared,
                    client,
                    pid,
                    ..
                } = &mut run;
                let mut conn = Conn {
                    client,
                    pid,
                    side: super::jobs::Side::Unavailable,
                };
                shared
                    .process(
                        &mut conn,
                        Converted {
                            chunk,
                            rows: Rows::Text(batch),
                            checksum: claim.checksum.clone(),
                            source_bytes: None,
                        },
                    )
                    .await
            }
            Err(halt) => Err(halt),
        };
        if run.claim_open.swap(false, Ordering::SeqCst) {
            rollback(&run.client).await;
        }
        match result {
            Ok(ChunkResult::Committed(_)) => (run.client, Worked::Loaded),
            Ok(ChunkResult::Failed(failed)) => {
                tracing::warn!(sync_id = %claim.sync_id, chunk = %failed.chunk, error = %failed.error,
                    "the chunk failed after its retries; it stays in the queue");
                let error = failed.error.to_string();
                self.try_again_later(&run.client, &claim, &error, options, Repeats)
                    .await;
                (run.client, Worked::Nothing)
            }
            Ok(ChunkResult::Released | ChunkResult::Queued) => (run.client, Worked::Nothing),
            Err(halt) if halts_the_sync(&halt) => {
                let client = run.client;
                let id = claim.sync_id.clone();
                match halt_sync(&client, self, &id, &halt).await {
                    Ok(Some(status)) => {
                        let client =
                            Box::pin(self.finish_halted(client, &id, halt, stored, options)).await;
                        (client, Worked::Halted(id, status))
                    }
                    Ok(None) => (client, Worked::Nothing),
                    Err(e) => {
                        tracing::error!(sync_id = %id, error = %e, "the sync could not be halted; its chunk stays in the queue and the next worker tries again");
                        (client, Worked::Nothing)
                    }
                }
            }
            Err(halt) => {
                tracing::warn!(sync_id = %claim.sync_id, %chunk, error = %halt,
                    "the chunk was not loaded (a transient database or storage failure); it stays in the queue");
                self.try_again_later(&run.client, &claim, &halt.to_string(), options, Passing)
                    .await;
                (run.client, Worked::Nothing)
            }
        }
    }

    /// Records a claim of `claim`'s row that ended without its work done (`error`): one more
    /// attempt, the row held back for its backoff; a chunk whose failure `Repeats` is given up
    /// once its attempts are used up (logged; the sync finishes without it), one whose
    /// failure is `Passing` (its storage away, the database away, its sync held) never is. In the claim's transaction when one
    /// is open on `client` (committed here), else on its own; a row another session holds
    /// now is left alone (it is being tried). A failure to record is logged: the row is
    /// claimed again at once.
    async fn try_again_later(
        &self,
        client: &Client,
        claim: &Claim,
        error: &str,
        options: &WorkerOptions,
        failure: Failure,
    ) {
        let recorded = record_attempt(
            client,
            &self.profile.schema,
            &claim.sync_id,
            claim.chunk,
            error,
            options,
            failure,
        )
        .await;
        let recorded = match recorded {
            Ok(r) => client
                .batch_execute("COMMIT")
                .await
                .map(|()| r)
                .map_err(q("cannot record the attempt")),
            Err(e) => Err(e),
        };
        let sync_id = &claim.sync_id;
        match recorded {
            Ok(Some(Attempts {
                attempts,
                given_up: true,
            })) => {
                tracing::error!(%sync_id, chunk = claim.chunk, attempts, error,
                    "the chunk is given up after its attempts (DATSYNC_QUEUE_MAX_ATTEMPTS): the \
                     sync finishes without it and keeps its checkpoint; `datsync resume` loads \
                     it once what failed is mended");
            }
            Ok(Some(Attempts { attempts, .. })) => {
                tracing::info!(%sync_id, chunk = claim.chunk, attempts, "claimed again after its backoff");
            }
            Ok(None) => {}
            Err(e) => {
                rollback(client).await;
                tracing::warn!(%sync_id, chunk = claim.chunk, error = %e, "the attempt could not be recorded");
            }
        }
    }

    /// A run of the claimed chunk's sync on `client`, for the chunk code of `run`.
    fn claimed_run<'a>(
        &'a self,
        plan: &'a Plan,
        claim: &Claim,
        store: Store,
        client: Client,
        stored: &[(String, StoredType)],
    ) -> Run<'a> {
        Run {
            shared: Shared {
                pipeline: self,
                plan,
                sync_ref: SyncRef {
                    sync_id: claim.sync_id.clone(),
                    sync_seq: claim.sync_seq,
                    source_file: claim.file_name.clone(),
                },
                store,
                manager: None,
                started: Instant::now(),
                checkpoint_dir: None,
                ledger_cut: Some(claim.cut),
                loader: run_loader(self, &claim.sync_id),
                unknown_columns: Vec::new(),
                profile: self.profile.clone().with_stored(stored),
                writer: None,
                mode: Mode::Claimed,
                claim_open: AtomicBool::new(true),
            },
            client,
            pid: 0,
            helpers: Vec::new(),
        }
    }

    /// Finishes the sync whose finish row is claimed on `client` (its transaction open), on
    /// a second connection that takes the sync's writer lock (a `run`/`resume` of the sync
    /// finishes it itself); then deletes the row and commits. Returns the client and the
    /// sync's final status when it was written.
    async fn finish_claimed(
        &self,
        client: Client,
        claim: Claim,
        stored: &[(String, StoredType)],
        halt: Option<Halt>,
        options: &WorkerOptions,
    ) -> (Client, Option<(SyncId, SyncStatus)>) {
        let sync_id = claim.sync_id.clone();
        let finished = self.finish_sync(&claim, stored, halt).await;
        let done = match finished {
            Ok(Some(summary)) => {
                let deleted = client
                    .execute(
                        &format!(
                            "DELETE FROM {}.chunk_queue WHERE sync_id = $1 AND chunk_id = $2",
                            quote_ident(&self.profile.schema)
                        ),
                        &[&sync_id.as_str(), &FINISH],
                    )
                    .await;
                match deleted {
                    Ok(_) => match client.batch_execute("COMMIT").await {
                        Ok(()) => Some((sync_id, summary.status)),
                        Err(e) => {
                            tracing::warn!(%sync_id, error = %e, "the finish row could not be deleted; the sync may be finished again");
                            None
                        }
                    },
                    Err(e) => {
                        tracing::warn!(%sync_id, error = %e, "the finish row could not be deleted; the sync may be finished again");
                        None
                    }
                }
            }
            Ok(None) => {
                // Held back, so that the row is not claimed over and over while the holder
                // (a run or resume of the sync, which finishes it) works.
                let held = "another process holds the sync";
                self.try_again_later(&client, &claim, held, options, Passing)
                    .await;
                return (client, None);
            }
            Err(e) => {
                tracing::error!(%sync_id, error = %e, "the sync could not be finished; the next worker tries again");
                self.try_again_later(&client, &claim, &e.to_string(), options, Passing)
                    .await;
                return (client, None);
            }
        };
        if done.is_none() {
            rollback(&client).await;
        }
        (client, done)
    }

    /// The final steps of a submitted sync whose chunks are all committed, or of a sync
    /// halted by a worker (with `halt`, or else the halt its `sync_metadata` row records);
    /// `None` when another process holds the sync (it finishes it).
    async fn finish_sync(
        &self,
        claim: &Claim,
        stored: &[(String, StoredType)],
        halt: Option<Halt>,
    ) -> Result<Option<RunSummary>, PipelineError> {
        let sync_id = &claim.sync_id;
        let client = self.connect_waiting().await?;
        if !crate::pg::try_lock_sync(&client, sync_id).await? {
            tracing::info!(%sync_id, "another process holds the sync; it finishes it");
            return Ok(None);
        }
        let store = claim.store()?;
        let mut manager = CheckpointManager::new(store.clone(), sync_id.clone());
        let manager = match manager.checkpoint_exists().await {
            Ok(true) => Some(manager),
            Ok(false) => None,
            Err(e) => {
                tracing::warn!(%sync_id, error = %e, "the checkpoint cannot be read; finishing from the ledger");
                None
            }
        };
        let unknown_columns =
            crate::status::recorded_header(&client, &self.profile.schema, sync_id)
                .await?
                .map(|h| h.unknown_columns)
                .unwrap_or_default();
        let plan = claim.plan();
        let checkpoint_dir = manager.as_ref().map(|_| store.describe_sync(sync_id));
        let mut run = self.claimed_run(&plan, claim, store, client, stored);
        run.mode = Mode::Load;
        run.claim_open = AtomicBool::new(false);
        run.manager = manager.map(|m| std::sync::Arc::new(tokio::sync::Mutex::new(m)));
        run.checkpoint_dir = checkpoint_dir;
        run.unknown_columns = unknown_columns;
        let halt = halt.or_else(|| claim.recorded_halt());
        let tally = Tally {
            failed: given_up_chunks(&run.client, &self.profile.schema, sync_id).await?,
            ..Tally::default()
        };
        let summary = run.finish(halt, &tally, None, true).await?;
        tracing::info!(%sync_id, status = %summary.status, "sync finished by this worker");
        Ok(Some(summary))
    }

    /// After this worker halted the sync `sync_id` ([`halt_sync`]): claims its finish row and
    /// finishes it with `halt` (its counts, error sample and message). When another worker
    /// has the row already, that one finishes the sync (with the halt's recorded message).
    async fn finish_halted(
        &self,
        client: Client,
        sync_id: &SyncId,
        halt: Halt,
        stored: &[(String, StoredType)],
        options: &WorkerOptions,
    ) -> Client {
        let claimed = claim_next(
            &client,
            &self.profile.schema,
            &self.profile.table,
            Some(sync_id),
        )
        .await;
        match claimed {
            Ok(Some(claim)) if claim.chunk == FINISH => {
                Box::pin(self.finish_claimed(client, claim, stored, Some(halt), options))
                    .await
                    .0
            }
            Ok(_) => {
                rollback(&client).await;
                tracing::info!(%sync_id, "another worker finishes the halted sync");
                client
            }
            Err(e) => {
                rollback(&client).await;
                tracing::warn!(%sync_id, error = %e, "cannot claim the halted sync's finish row; it stays queued for the next worker");
                client
            }
        }
    }
}

/// What a worker's claim came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Worked {
    /// The chunk committed.
    Loaded,
    /// The chunk halted its sync, which now has this status.
    Halted(SyncId, SyncStatus),
    /// Nothing changed (the chunk stays in the queue, or another process loaded it).
    Nothing,
}

/// Whether a chunk's halt stops its sync for every worker: bad input, a chunk file that is
/// corrupt or missing, or a database failure that trying again cannot mend. A transient
/// failure (an outage that outlasted the budget) and a storage or I/O error (an `az://` or
/// `s3://` 503, a throttle, a timeout reading the chunk or writing its rejects) leave the
/// chunk in the queue for the next claim.
fn halts_the_sync(halt: &Halt) -> bool {
    use super::halt::SyncFailure;
    match halt {
        Halt::BadInput(_) => true,
        Halt::Failed(
            SyncFailure::Store(_)
            | SyncFailure::Read { .. }
            | SyncFailure::Checkpoint(CheckpointError::Store(_)),
        )
        | Halt::Stopped
        | Halt::LockLost => false,
        Halt::Failed(f) => f.class() == crate::pg::ErrorClass::Fatal,
    }
}

/// The status a halt gives its sync.
fn halt_status(halt: &Halt) -> SyncStatus {
    match halt {
        Halt::BadInput(_) => SyncStatus::BadInput,
        _ => SyncStatus::Failed,
    }
}

/// Stops the sync `sync_id` for every worker (a worker's chunk, or `submit`, halted it), in
/// one transaction: its chunk rows deleted (waiting for the chunks in flight to commit or
/// roll back), its status and the halt's message written (so no worker claims its chunks
/// any more), and its finish row queued, which any worker may claim: the final steps
/// (counts from the ledger, cleanup, hooks, alert) are done by whoever claims it, and if that
/// one dies the row is free again. `Some(status)` when this call halted the sync, `None`
/// when it was no longer IN_PROGRESS (already halted or finished).
async fn halt_sync(
    client: &Client,
    pipeline: &Pipeline,
    sync_id: &SyncId,
    halt: &Halt,
) -> Result<Option<SyncStatus>, PgError> {
    let schema = &pipeline.profile.schema;
    let s = quote_ident(schema);
    let status = halt_status(halt);
    let id = sync_id.as_str();
    tracing::error!(%sync_id, error = %halt, "the sync stops for every worker");
    client
        .batch_execute("BEGIN")
        .await
        .map_err(q("cannot begin halting the sync"))?;
    let halted = async {
        client
            .execute(
                &format!("DELETE FROM {s}.chunk_queue WHERE sync_id = $1 AND chunk_id >= 0"),
                &[&id],
            )
            .await
            .map_err(q("cannot delete the sync's chunk rows"))?;
        let marked = client
            .execute(
                &format!(
                    "UPDATE {s}.sync_metadata
                        SET status = $2, error_message = {message}, updated_at = now()
                      WHERE sync_id = $1 AND status = 'IN_PROGRESS'",
                    message = crate::pg::fit_text_sql(
                        "$3::text",
                        schema,
                        "sync_metadata",
                        "error_message"
                    ),
                ),
                &[&id, &status.as_str(), &halt.to_string()],
            )
            .await
            .map_err(q("cannot mark the sync halted"))?;
        if marked == 0 {
            return Ok(false);
        }
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.chunk_queue (sync_id, chunk_id, target) VALUES ($1, {FINISH}, $2)
                     ON CONFLICT (sync_id, chunk_id) DO NOTHING"
                ),
                &[&id, &pipeline.profile.table],
            )
            .await
            .map_err(q("cannot queue the halted sync's finish"))?;
        client
            .batch_execute("COMMIT")
            .await
            .map_err(q("cannot commit the sync's halt"))?;
        Ok(true)
    }
    .await;
    match halted {
        Ok(true) => {
            pipeline.telemetry.emit(&SyncHalted { sync_id, status });
            Ok(Some(status))
        }
        Ok(false) => {
            rollback(client).await;
            tracing::info!(%sync_id, "the sync was already stopped or finished");
            Ok(None)
        }
        Err(e) => {
            rollback(client).await;
            Err(e)
        }
    }
}

/// Rolls back whatever transaction is open on `client` (nothing when none is).
async fn rollback(client: &Client) {
    if !client.is_closed() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
}

/// Opens a transaction on `client` and claims the next piece of work for the table `table`
/// in it (of the sync `only`, if given): a chunk of an IN_PROGRESS sync, the finish row of
/// a sync with no chunk row left to try (chunks given up do not count), or the finish row of
/// a sync halted by a worker (BAD_INPUT, FAILED: its chunk rows are never loaded); never a
/// row given up or held back for its backoff. `None` (the transaction left open, to roll
/// back) when there is none. A row whose sync id is not one is marked failed on the way (it
/// would be claimed first again and again).
async fn claim_next(
    client: &Client,
    schema: &str,
    table: &str,
    only: Option<&SyncId>,
) -> Result<Option<Claim>, PgError> {
    let s = quote_ident(schema);
    let sql = format!(
        "SELECT q.sync_id, q.chunk_id, q.checksum, q.cut_rows, q.cut_bytes,
                q.cut_max_line_bytes, m.sync_seq, m.file_name, m.file_path,
                m.file_size_bytes, m.checkpoint_location, m.status, m.error_message
           FROM {s}.chunk_queue q JOIN {s}.sync_metadata m USING (sync_id)
          WHERE (q.target = $1 OR q.target IS NULL)
            AND ($2::text IS NULL OR q.sync_id = $2)
            AND q.{PENDING}
            AND (q.not_before IS NULL OR q.not_before <= now())
            AND ((q.chunk_id >= 0 AND m.status = 'IN_PROGRESS')
             OR (q.chunk_id = {FINISH} AND m.status IN ('BAD_INPUT', 'FAILED'))
             OR (q.chunk_id = {FINISH}
                 AND m.status IN ('IN_PROGRESS', 'SUCCESS', 'PARTIAL_SUCCESS')
                 AND NOT EXISTS (
                   SELECT 1 FROM {s}.chunk_queue c
                    WHERE c.sync_id = q.sync_id AND c.chunk_id >= 0 AND c.{PENDING})))
          ORDER BY q.chunk_id = {FINISH} DESC, q.enqueued_at, q.sync_id, q.chunk_id
          LIMIT 1
          FOR UPDATE OF q SKIP LOCKED"
    );
    // Each turn but the one that returns marks one malformed row failed and commits.
    for _ in 0..MALFORMED_PER_CLAIM {
        client
            .batch_execute("BEGIN")
            .await
            .map_err(q("cannot begin a claim"))?;
        let row = client
            .query_opt(&sql, &[&table, &only.map(SyncId::as_str)])
            .await
            .map_err(q("cannot claim work from the queue"))?;
        let Some(r) = row else {
            return Ok(None);
        };
        let id: String = r.get(0);
        let chunk: i32 = r.get(1);
        let sync_id = match SyncId::parse(&id) {
            Ok(sync_id) => sync_id,
            Err(e) => {
                let reason = format!("the queue row names no valid sync id: {e}");
                tracing::warn!(sync_id = id, chunk, "{reason}; marked failed");
                client
                    .execute(
                        &format!(
                            "UPDATE {s}.chunk_queue SET failed_at = now(), last_error = $3
                              WHERE sync_id = $1 AND chunk_id = $2"
                        ),
                        &[&id, &chunk, &reason],
                    )
                    .await
                    .map_err(q("cannot mark a malformed queue row failed"))?;
                client
                    .batch_execute("COMMIT")
                    .await
                    .map_err(q("cannot mark a malformed queue row failed"))?;
                continue;
            }
        };
        let n = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
        return Ok(Some(Claim {
            sync_id,
            chunk,
            checksum: r.get(2),
            cut: ChunkCut {
                rows: n(r.get(3)).unwrap_or(0),
                bytes: n(r.get(4)),
                max_line_bytes: n(r.get(5)),
            },
            sync_seq: r.get::<_, Option<i64>>(6).unwrap_or_default(),
            file_name: r.get::<_, Option<String>>(7).unwrap_or_default(),
            file_path: r.get::<_, Option<String>>(8).unwrap_or_default(),
            file_size: n(r.get(9)).unwrap_or(0),
            location: r.get(10),
            status: r.get::<_, Option<String>>(11).unwrap_or_default(),
            error_message: r.get(12),
        }));
    }
    // Too many malformed rows at once: the next claim goes on with the rest.
    client
        .batch_execute("BEGIN")
        .await
        .map_err(q("cannot begin a claim"))?;
    Ok(None)
}

/// Malformed queue rows one claim marks failed before it gives up for this turn.
const MALFORMED_PER_CLAIM: usize = 16;

/// Whether a failed attempt counts toward giving a chunk up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The chunk's load failed past its retries (the database refused it each time):
    /// counted, the chunk given up after `max_attempts`.
    Repeats,
    /// Its storage or the database was away, or another process held its sync: held back,
    /// never given up (a storage outage of minutes must not cost a sync its chunks).
    Passing,
}

use Failure::{Passing, Repeats};

/// What [`record_attempt`] recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Attempts {
    /// Attempts of the row so far.
    attempts: i32,
    /// The chunk is given up (its attempts are used up).
    given_up: bool,
}

/// Records one more attempt at the queue row (`sync_id`, `chunk`) that ended without its
/// work done: `last_error`, `not_before` now plus `options.backoff` doubled at each attempt
/// (at most [`MAX_BACKOFF`], or the backoff when longer), and for a chunk whose failure
/// `Repeats` and whose attempts reach `options.max_attempts`, `failed_at` (a finish row is
/// never given up). `None` when the row is gone or another session holds it.
async fn record_attempt(
    client: &Client,
    schema: &str,
    sync_id: &SyncId,
    chunk: i32,
    error: &str,
    options: &WorkerOptions,
    failure: Failure,
) -> Result<Option<Attempts>, PgError> {
    let s = quote_ident(schema);
    let max_attempts = i32::try_from(options.max_attempts.max(1)).unwrap_or(i32::MAX);
    let row = client
        .query_opt(
            &format!(
                "UPDATE {s}.chunk_queue q
                    SET attempts = q.attempts + 1,
                        last_error = left($3, 2000),
                        not_before = now() + make_interval(secs => least(
                          $4::float8 * power(2, least(q.attempts, 30)),
                          greatest($4::float8, $5::float8))),
                        failed_at = CASE WHEN $7 AND q.chunk_id >= 0 AND q.attempts + 1 >= $6
                                         THEN now() END
                  WHERE q.ctid = (SELECT ctid FROM {s}.chunk_queue
                                   WHERE sync_id = $1 AND chunk_id = $2
                                     FOR UPDATE SKIP LOCKED)
                  RETURNING q.attempts, q.failed_at IS NOT NULL"
            ),
            &[
                &sync_id.as_str(),
                &chunk,
                &error,
                &options.backoff.as_secs_f64(),
                &MAX_BACKOFF.as_secs_f64(),
                &max_attempts,
                &(failure == Repeats),
            ],
        )
        .await
        .map_err(q("cannot record the attempt"))?;
    Ok(row.map(|r| Attempts {
        attempts: r.get(0),
        given_up: r.get(1),
    }))
}

/// The chunks of `sync_id` given up after their attempts and not committed since, with
/// their last error, for the sync's final status (PARTIAL_SUCCESS, each named).
async fn given_up_chunks(
    client: &Client,
    schema: &str,
    sync_id: &SyncId,
) -> Result<Vec<FailedChunk>, PgError> {
    let s = quote_ident(schema);
    let rows = client
        .query(
            &format!(
                "SELECT q.chunk_id, q.last_error FROM {s}.chunk_queue q
                  WHERE q.sync_id = $1 AND q.chunk_id >= 0 AND q.failed_at IS NOT NULL
                    AND NOT EXISTS (SELECT 1 FROM {s}.sync_chunks l
                                     WHERE l.sync_id = q.sync_id AND l.chunk_id = q.chunk_id)
                  ORDER BY q.chunk_id"
            ),
            &[&sync_id.as_str()],
        )
        .await
        .map_err(q("cannot read the chunks given up"))?;
    Ok(rows
        .iter()
        .map(|r| FailedChunk {
            chunk: ChunkId(u32::try_from(r.get::<_, i32>(0)).unwrap_or_default()),
            error: TransientFailure::GivenUp {
                last_error: r
                    .get::<_, Option<String>>(1)
                    .unwrap_or_else(|| "no error recorded".to_owned()),
            },
        })
        .collect())
}

/// Deletes the chunk rows of syncs that are not IN_PROGRESS (halted or finished by another
/// process), but no finish row (a sync whose finisher died after its status, or a halted
/// sync whose halter died before its final steps, is finished by the next worker: counts,
/// cleanup, hooks), no chunk given up (the record of what its sync lacks, until a resume
/// loads it), and none that another session holds. Marks failed the rows no claim ever
/// takes, which the scale query would count for ever: a chunk id below -1, a sync that
/// `sync_metadata` does not have.
async fn sweep(client: &Client, schema: &str) -> Result<u64, PgError> {
    let s = quote_ident(schema);
    let deleted = client
        .execute(
            &format!(
                "DELETE FROM {s}.chunk_queue WHERE ctid = ANY(ARRAY(
                   SELECT q.ctid FROM {s}.chunk_queue q JOIN {s}.sync_metadata m USING (sync_id)
                    WHERE q.chunk_id >= 0 AND m.status <> 'IN_PROGRESS' AND q.{PENDING}
                      FOR UPDATE OF q SKIP LOCKED))"
            ),
            &[],
        )
        .await
        .map_err(q("cannot delete the queue rows of stopped syncs"))?;
    let malformed = client
        .execute(
            &format!(
                "UPDATE {s}.chunk_queue SET failed_at = now(),
                        last_error = CASE WHEN chunk_id < {FINISH}
                                          THEN 'the queue row names no chunk (chunk_id below {FINISH})'
                                          ELSE 'the queue row names a sync that sync_metadata does not have' END
                  WHERE ctid = ANY(ARRAY(
                   SELECT q.ctid FROM {s}.chunk_queue q
                    WHERE q.{PENDING}
                      AND (q.chunk_id < {FINISH}
                           OR NOT EXISTS (SELECT 1 FROM {s}.sync_metadata m
                                           WHERE m.sync_id = q.sync_id))
                      FOR UPDATE OF q SKIP LOCKED))"
            ),
            &[],
        )
        .await
        .map_err(q("cannot mark the malformed queue rows failed"))?;
    if malformed > 0 {
        tracing::warn!(
            rows = malformed,
            "queue rows that name no chunk or no sync were marked failed (see `datsync queue`)"
        );
    }
    Ok(deleted)
}

/// Deletes the queue rows of a sync that was given its status (by `run`, `resume` or a
/// worker), but those another session holds (a worker that loads one of its chunks, or
/// holds its finish row, deletes that row itself) and, with `keep_given_up`, its chunks
/// given up (the record of what the sync lacks, for a later finish and `datsync queue`).
pub(super) async fn forget_sync(
    client: &Client,
    schema: &str,
    sync_id: &SyncId,
    keep_given_up: bool,
) -> Result<u64, PgError> {
    let s = quote_ident(schema);
    client
        .execute(
            &format!(
                "DELETE FROM {s}.chunk_queue WHERE ctid = ANY(ARRAY(
                   SELECT ctid FROM {s}.chunk_queue
                    WHERE sync_id = $1 AND (NOT $2 OR {PENDING})
                      FOR UPDATE SKIP LOCKED))"
            ),
            &[&sync_id.as_str(), &keep_given_up],
        )
        .await
        .map_err(q("cannot delete the sync's queue rows"))
}

/// Reads the chunk's Parquet file from the sync's checkpoint storage, checked against the
/// checksum its queue row carries.
async fn read_chunk(
    store: &Store,
    claim: &Claim,
    chunk: ChunkId,
) -> Result<arrow_array::RecordBatch, Halt> {
    let key = ObjectKey::chunk(&claim.sync_id, chunk);
    let path = store.describe(&key);
    let Some(bytes) = store.get(&key).await? else {
        return Err(CheckpointError::ChunkMissing { chunk, path }.into());
    };
    let corrupt = |reason: String| CheckpointError::ChunkCorrupt {
        chunk,
        path: path.clone(),
        reason,
    };
    if crate::model::hex(&Sha256::digest(&bytes)) != claim.checksum {
        return Err(corrupt("checksum mismatch with its queue row".to_owned()).into());
    }
    crate::checkpoint::decode_parquet(bytes).map_err(|e| corrupt(e.to_string()).into())
}

impl Claim {
    /// The plan of a run of the claimed sync (its source is not opened: workers read the
    /// chunks).
    fn plan(&self) -> Plan {
        Plan {
            sync_id: self.sync_id.clone(),
            source: None,
            file_name: self.file_name.clone(),
            source_path: self.file_path.clone(),
            fingerprint: SourceFingerprint {
                size_bytes: self.file_size,
                ..SourceFingerprint::default()
            },
        }
    }

    /// The halt of a sync that a worker halted (BAD_INPUT, FAILED) but did not finish: its
    /// recorded message; `None` for any other status.
    fn recorded_halt(&self) -> Option<Halt> {
        let message = || {
            self.error_message.clone().unwrap_or_else(|| {
                format!(
                    "sync {} was halted by a worker that did not finish it",
                    self.sync_id
                )
            })
        };
        match self.status.as_str() {
            "BAD_INPUT" => Some(Halt::BadInput(super::halt::BadInput::Recorded {
                message: message(),
            })),
            "FAILED" => Some(Halt::Failed(super::halt::SyncFailure::Recorded {
                message: message(),
            })),
            _ => None,
        }
    }

    /// The sync's checkpoint storage, as `sync_metadata` records it.
    fn store(&self) -> Result<Store, PipelineError> {
        let Some(location) = &self.location else {
            return Err(PipelineError::NotShared {
                reason: format!(
                    "sync {} has no checkpoint_location in sync_metadata",
                    self.sync_id
                ),
            });
        };
        Ok(Store::open(location)?)
    }
}

impl Run<'_> {
    /// `submit`'s end: the conversion recorded complete with the sync's finish row, or the
    /// sync stopped (bad input, a failure: finished here with that status, its queue rows
    /// deleted; a stop: left to resume).
    pub(super) async fn submitted(
        mut self,
        halt: Option<Halt>,
        tally: &Tally,
        converted: Option<ConvertOutcome>,
        resumed: bool,
    ) -> Result<RunSummary, PipelineError> {
        match halt {
            None => {}
            Some(h @ (Halt::BadInput(_) | Halt::Failed(_))) => {
                // Halted with its finish row queued: if this process dies before its final
                // steps, a worker does them.
                halt_sync(&self.client, self.pipeline, &self.plan.sync_id, &h).await?;
                return self.finish(Some(h), tally, converted, resumed).await;
            }
            Some(h) => {
                let stored = crate::status::stored_sync(
                    &self.client,
                    &self.pipeline.profile.schema,
                    &self.plan.sync_id,
                )
                .await?;
                let status = stored.map_or(SyncStatus::InProgress, |s| s.status);
                let mut summary = self.queue_summary(status, tally, resumed, 0);
                summary.interrupted = true;
                summary.error = Some(format!("the submit stopped: {h}"));
                return Ok(summary);
            }
        }
        let total = match (&self.manager, &converted) {
            (Some(m), _) => {
                let mut m = m.lock().await;
                if let Err(e) = m.compact().await {
                    tracing::warn!(sync_id = %self.plan.sync_id, error = %e, "the manifest could not be compacted");
                }
                m.manifest().map_or(0, |m| u64::from(m.total_chunks))
            }
            (None, Some(c)) => u64::from(c.chunks),
            (None, None) => 0,
        };
        let s = quote_ident(&self.pipeline.profile.schema);
        let id = self.plan.sync_id.as_str().to_owned();
        let total_i = i32::try_from(total).unwrap_or(i32::MAX);
        let table = self.pipeline.profile.table.clone();
        let tx = self.client.transaction().await.map_err(q("cannot begin"))?;
        tx.execute(
            &format!(
                "UPDATE {s}.sync_metadata SET chunks_total = $2, converted_at = now(),
                        updated_at = now()
                  WHERE sync_id = $1"
            ),
            &[&id, &total_i],
        )
        .await
        .map_err(q("cannot record the conversion complete"))?;
        tx.execute(
            &format!(
                "INSERT INTO {s}.chunk_queue (sync_id, chunk_id, target)
                 SELECT $1, {FINISH}, $2 FROM {s}.sync_metadata
                  WHERE sync_id = $1 AND status = 'IN_PROGRESS'
                 ON CONFLICT (sync_id, chunk_id) DO NOTHING"
            ),
            &[&id, &table],
        )
        .await
        .map_err(q("cannot queue the sync's finish"))?;
        tx.commit()
            .await
            .map_err(q("cannot record the conversion complete"))?;
        tracing::info!(sync_id = %self.plan.sync_id, chunks_total = total, queued = tally.loaded,
            "conversion complete; the workers load and finish the sync");
        Ok(self.queue_summary(SyncStatus::InProgress, tally, resumed, total))
    }

    /// The summary of a submit: the sync as far as the queue knows it.
    fn queue_summary(
        &self,
        status: SyncStatus,
        tally: &Tally,
        resumed: bool,
        chunks_total: u64,
    ) -> RunSummary {
        RunSummary {
            sync_id: self.plan.sync_id.clone(),
            status,
            counts: SyncCounts {
                chunks_total,
                chunks_completed: tally.loaded,
                ..SyncCounts::default()
            },
            chunks_skipped_on_resume: tally.skipped_on_resume,
            duration_s: self.started.elapsed().as_secs_f64(),
            time_saved_s: None,
            checkpoint_dir: self.checkpoint_dir.clone(),
            rejects_dir: None,
            unknown_columns: self.unknown_columns.clone(),
            resumed,
            error: None,
            error_class: None,
            interrupted: false,
            all_older: false,
            already_loaded: false,
            derived_failed: 0,
            hooks_failed: 0,
        }
    }
}

impl Shared<'_> {
    /// `submit`: puts a saved chunk in the work queue (unless the ledger has it); stops
    /// when the sync is no longer IN_PROGRESS (a worker halted it).
    pub(super) async fn enqueue(
        &self,
        conn: &mut Conn<'_>,
        c: Converted,
    ) -> Result<ChunkResult, Halt> {
        let s = quote_ident(&self.pipeline.profile.schema);
        let cut = self.cut().await;
        let chunk = i32::try_from(c.chunk.0).unwrap_or(i32::MAX);
        let sync_id = self.plan.sync_id.as_str();
        let row = conn
            .client
            .query_one(
                &format!(
                    "WITH m AS (SELECT status FROM {s}.sync_metadata WHERE sync_id = $1),
                          ins AS (
                       INSERT INTO {s}.chunk_queue
                              (sync_id, chunk_id, checksum, cut_rows, cut_bytes, cut_max_line_bytes,
                               target)
                       SELECT $1, $2, $3, $4, $5, $6, $7
                        WHERE EXISTS (SELECT 1 FROM m WHERE status = 'IN_PROGRESS')
                          AND NOT EXISTS (SELECT 1 FROM {s}.sync_chunks
                                           WHERE sync_id = $1 AND chunk_id = $2)
                       ON CONFLICT (sync_id, chunk_id) DO NOTHING
                       RETURNING 1),
                          -- A chunk given up by the workers is tried again from the start.
                          revived AS (
                       UPDATE {s}.chunk_queue
                          SET attempts = 0, not_before = NULL, last_error = NULL,
                              failed_at = NULL, checksum = $3
                        WHERE ctid = (SELECT ctid FROM {s}.chunk_queue
                                       WHERE sync_id = $1 AND chunk_id = $2
                                         AND failed_at IS NOT NULL
                                         FOR UPDATE SKIP LOCKED)
                          AND EXISTS (SELECT 1 FROM m WHERE status = 'IN_PROGRESS')
                       RETURNING 1)
                     SELECT (SELECT status FROM m),
                            (SELECT count(*) FROM ins) + (SELECT count(*) FROM revived)"
                ),
                &[
                    &sync_id,
                    &chunk,
                    &c.checksum,
                    &to_i64(cut.rows),
                    &cut.bytes.map(to_i64),
                    &cut.max_line_bytes.map(to_i64),
                    &self.pipeline.profile.table,
                ],
            )
            .await
            .map_err(|e| LoadError::Database {
                sync_id: self.plan.sync_id.clone(),
                chunk: c.chunk,
                source: PgError::query("cannot put the chunk in the work queue", e),
            })?;
        let status: Option<String> = row.get(0);
        if status.as_deref() != Some("IN_PROGRESS") {
            tracing::warn!(%sync_id, status = ?status, "the sync was stopped by a worker; the conversion stops");
            return Err(Halt::Stopped);
        }
        if row.get::<_, i64>(1) > 0 {
            tracing::debug!(%sync_id, chunk = %c.chunk, "chunk queued");
            return Ok(ChunkResult::Queued);
        }
        Ok(ChunkResult::Released)
    }

    /// A worker's attempt at its claimed chunk: in the claim's transaction when it is still
    /// open, else (a retry) in a new one that claims the chunk again — `Released` when
    /// another process holds it or its row is gone (loaded elsewhere, or its sync halted).
    pub(super) async fn load_claimed(
        &self,
        conn: &mut Conn<'_>,
        chunk: ChunkId,
        checksum: &str,
        batch: &arrow_array::RecordBatch,
        facts: &ChunkFacts,
    ) -> Result<LoadAttempt, LoadError> {
        let db = |source| LoadError::Database {
            sync_id: self.plan.sync_id.clone(),
            chunk,
            source,
        };
        if !self.claim_open.load(Ordering::SeqCst) {
            if conn.client.is_closed() {
                *conn.client = crate::pg::connect(&self.pipeline.pg).await.map_err(db)?;
            }
            conn.client
                .batch_execute("BEGIN")
                .await
                .map_err(|e| db(PgError::query("cannot begin", e)))?;
            self.claim_open.store(true, Ordering::SeqCst);
            let s = quote_ident(&self.pipeline.profile.schema);
            let chunk_i = i32::try_from(chunk.0).unwrap_or(i32::MAX);
            let again = conn
                .client
                .query_opt(
                    &format!(
                        "SELECT 1 FROM {s}.chunk_queue q JOIN {s}.sync_metadata m USING (sync_id)
                          WHERE q.sync_id = $1 AND q.chunk_id = $2 AND m.status = 'IN_PROGRESS'
                            FOR UPDATE OF q SKIP LOCKED"
                    ),
                    &[&self.plan.sync_id.as_str(), &chunk_i],
                )
                .await
                .map_err(|e| db(PgError::query("cannot claim the chunk again", e)))?;
            if again.is_none() {
                rollback(conn.client).await;
                self.claim_open.store(false, Ordering::SeqCst);
                tracing::info!(sync_id = %self.plan.sync_id, %chunk, "the chunk is no longer this worker's to load");
                return Ok(LoadAttempt::Released);
            }
        }
        let loaded = self
            .loader
            .load_chunk_in_transaction(conn.client, &self.sync_ref, chunk, checksum, batch, facts)
            .await;
        let committed = match loaded {
            Ok(load) => conn
                .client
                .batch_execute("COMMIT")
                .await
                .map(|()| load)
                .map_err(|e| db(PgError::query("cannot commit the chunk", e))),
            Err(e) => Err(e),
        };
        if committed.is_err() {
            rollback(conn.client).await;
        }
        self.claim_open.store(false, Ordering::SeqCst);
        committed.map(LoadAttempt::Loaded)
    }
}

#[cfg(test)]
mod scale_query_tests {
    #[test]
    fn the_scale_query_quotes_every_schema_and_leaves_out_the_work_given_up() {
        for (schema, quoted) in [
            ("public", "\"public\""),
            ("ztdwr_2", "\"ztdwr_2\""),
            ("Sales", "\"Sales\""),
            // Reserved words read as names only when quoted.
            ("user", "\"user\""),
            ("select", "\"select\""),
            ("a\"b", "\"a\"\"b\""),
        ] {
            assert_eq!(
                super::scale_query(schema),
                format!("SELECT count(*) FROM {quoted}.chunk_queue WHERE failed_at IS NULL")
            );
        }
    }
}

#[cfg(test)]
mod halt_tests {
    use super::super::halt::{BadInput, Halt, SyncFailure};
    use super::{halt_status, halts_the_sync};
    use crate::checkpoint::CheckpointError;
    use crate::model::{ChunkId, SyncStatus};
    use crate::pg::PgError;
    use crate::store::StoreError;

    /// A storage failure as `az://` or `s3://` gives it (a 503 reading a chunk).
    fn unavailable() -> StoreError {
        StoreError::Object {
            op: "read",
            object: "az://ck/sync/chunks/3.parquet".to_owned(),
            source: "503 Service Unavailable".into(),
        }
    }

    #[test]
    fn a_passing_storage_or_io_error_leaves_the_chunk_queued() {
        let passing = [
            Halt::Failed(SyncFailure::Store(unavailable())),
            Halt::Failed(SyncFailure::Checkpoint(CheckpointError::Store(
                unavailable(),
            ))),
            Halt::Failed(SyncFailure::Read {
                source_name: "chunk 3".to_owned(),
                error: std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
            }),
            Halt::Stopped,
            Halt::LockLost,
        ];
        for halt in passing {
            assert!(!halts_the_sync(&halt), "{halt}");
        }
    }

    #[test]
    fn bad_input_a_broken_chunk_file_and_a_fatal_error_halt_the_sync() {
        let halting = [
            Halt::BadInput(BadInput::Recorded {
                message: "too many rejects".to_owned(),
            }),
            Halt::Failed(SyncFailure::Checkpoint(CheckpointError::ChunkMissing {
                chunk: ChunkId(3),
                path: "az://ck/sync/chunks/3.parquet".to_owned(),
            })),
            Halt::Failed(SyncFailure::Checkpoint(CheckpointError::ChunkCorrupt {
                chunk: ChunkId(3),
                path: "az://ck/sync/chunks/3.parquet".to_owned(),
                reason: "checksum mismatch".to_owned(),
            })),
            Halt::Failed(SyncFailure::Connect(PgError::Config {
                message: "no such role".to_owned(),
            })),
        ];
        for halt in halting {
            assert!(halts_the_sync(&halt), "{halt}");
        }
    }

    #[test]
    fn a_halt_gives_bad_input_or_failed() {
        let bad = Halt::BadInput(BadInput::Recorded {
            message: "x".to_owned(),
        });
        let failed = Halt::Failed(SyncFailure::Recorded {
            message: "x".to_owned(),
        });
        assert_eq!(halt_status(&bad), SyncStatus::BadInput);
        assert_eq!(halt_status(&failed), SyncStatus::Failed);
        assert_eq!(
            bad.to_string(),
            "x",
            "the recorded message is kept as it was"
        );
    }
}
