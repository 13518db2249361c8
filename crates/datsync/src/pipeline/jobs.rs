//! `--jobs N`: N loaders on N connections in one process (2N with a derived table: each
//! loader's second one upserts its chunks' derived tables, `load/derived.rs`). Each loader
//! takes the next chunk (a recorded one read back, or the converter's next), validates,
//! transforms and encodes it, and loads it in one transaction with its ledger row on its own
//! connection; so while one chunk upserts, the next one's client work and staging COPY go on
//! beside it.
//!
//! ```text
//! converter ─chunk─> loader 1 (the run's session)  ─┐
//!           ─chunk─> loader 2 (a helper connection) ├─> commits, in any order
//!           ─chunk─> loader N                       ─┘
//! ```
//!
//! Why the promises hold in any commit order:
//!
//! - **Exactly once**: a chunk's rows and its ledger row commit in one transaction under the
//!   chunk's advisory lock, which re-reads the ledger first (`load/mod.rs`); the loaders take
//!   chunks from one feed, so no two loaders of a run ever hold the same chunk.
//! - **Counts and newest wins**: the upserts of one sync run one at a time (the sync's
//!   upsert lock, taken after the staging COPY), and the guard compares `(row_version,
//!   sync_seq, source_line)`, so a chunk committing before an earlier one never lets an older
//!   row win, and every count is the one of a run in order (`load/mod.rs`, "Counts").
//! - **The manifest claims only commits**: a chunk is marked completed by the loader that
//!   committed it, after its commit; the journal records transitions per chunk, in any order.
//! - **One writer**: the run's session holds the sync's writer lock. Before each attempt a
//!   helper checks that the session holding it is one of this run's (`pg_locks`); when that
//!   session was lost (a restart, a cut connection) the first loader to notice takes the lock
//!   on its own session, or stops the run when another process has it ([`Halt::LockLost`]).
//! - **Flat memory**: a loader takes a chunk only when it is free, one at a time through
//!   the feed: at most N chunks are being loaded, besides the converter's hand-over.
//! - **Stopping**: a stop request, a fatal error or bad input ends the feed for every loader
//!   (no further chunk starts); the chunks in flight finish (commit, or fail and are kept).
//!   Transient errors are retried per chunk by the loader that has it (`retry.rs`).
//!
//! With `--jobs 1` (the default) the one loader is the run's session, as it always was.

use std::sync::Mutex as SyncMutex;

use futures::future::join_all;
use tokio::sync::{Mutex, mpsc, watch};
use tokio_postgres::Client;

use super::chunk::ChunkResult;
use super::convert::Converted;
use super::halt::{Halt, SyncFailure};
use super::progress::ChunkDone;
use super::reconcile::Ledger;
use super::run::{Next, Run, Shared, Tally, next_chunk};
use super::session::Reconnect;
use crate::model::ChunkId;
use crate::pg::PgError;

/// A connection a loader commits chunks on: the run's session, or a helper's.
pub(super) struct Conn<'c> {
    /// The connection (made again in place when it breaks).
    pub(super) client: &'c mut Client,
    /// Its backend's process id, with more than one loader (0 with one).
    pub(super) pid: &'c mut i32,
    /// The loader's second connection, where a chunk's derived tables are upserted beside
    /// its transaction (`Loader::load_chunk_beside`).
    pub(super) side: Side,
}

/// A loader's second connection: made when first needed, dropped after a failed attempt
/// (made again for the next) and before the loader's own connection is made again (a server
/// at its connection limit gives that one the slot).
pub(super) enum Side {
    /// Not made (yet, or again).
    None,
    Open(Client),
    /// It could not be made (a connection limit, a standby), or the loads are the work
    /// queue's: the derived tables are upserted in each chunk's transaction for the rest of
    /// the run.
    Unavailable,
}

impl Side {
    /// The open connection.
    pub(super) fn client(&self) -> Option<&Client> {
        match self {
            Self::Open(client) => Some(client),
            Self::None | Self::Unavailable => None,
        }
    }

    /// Whether a connection should be made now: none is open and one may be.
    pub(super) fn wanted(&self) -> bool {
        match self {
            Self::None => true,
            Self::Open(client) => client.is_closed(),
            Self::Unavailable => false,
        }
    }

    /// Drops the open connection (it is made again when next wanted).
    pub(super) fn drop_open(&mut self) {
        if let Self::Open(_) = self {
            *self = Self::None;
        }
    }
}

/// A loader's own connection, besides the run's session (`--jobs` above 1).
pub(super) struct Helper {
    client: Client,
    pid: i32,
}

/// Where the loaders take their chunks from: the chunks recorded before this run and not
/// committed, by id, then the converter's (those the ledger has are marked completed, not
/// loaded).
pub(super) struct Feed<'f> {
    recorded: std::vec::IntoIter<ChunkId>,
    converter: Option<(mpsc::Receiver<Converted>, &'f Ledger)>,
}

impl<'f> Feed<'f> {
    /// The recorded chunks `pending`.
    pub(super) fn recorded(pending: std::vec::IntoIter<ChunkId>) -> Self {
        Self {
            recorded: pending,
            converter: None,
        }
    }

    /// Then the converter's chunks; `ledger` holds those committed before this run.
    pub(super) fn then(self, chunks: mpsc::Receiver<Converted>, ledger: &'f Ledger) -> Self {
        Self {
            converter: Some((chunks, ledger)),
            ..self
        }
    }
}

/// The feed with the signals that end it.
struct FeedState<'f> {
    feed: Feed<'f>,
    /// The pipeline's stop request.
    stop: Option<watch::Receiver<bool>>,
    /// Turns `true` once a loader stopped the sync.
    halted: watch::Receiver<bool>,
}

impl FeedState<'_> {
    /// The next chunk to load; `None` once there is none, or once a loader stopped the sync.
    async fn next(&mut self, shared: &Shared<'_>) -> Result<Option<Converted>, Halt> {
        for chunk in self.feed.recorded.by_ref() {
            if shared.pipeline.stopping() {
                return Err(Halt::Stopped);
            }
            if *self.halted.borrow() {
                return Ok(None);
            }
            if let Some(c) = shared.recorded_chunk(chunk).await? {
                return Ok(Some(c));
            }
        }
        let Some((chunks, ledger)) = &mut self.feed.converter else {
            return Ok(None);
        };
        loop {
            let c = match next_chunk(chunks, self.stop.as_mut(), &mut self.halted).await {
                Next::Chunk(c) => c,
                Next::Stop => return Err(Halt::Stopped),
                Next::End => return Ok(None),
            };
            match ledger.get(&c.chunk) {
                Some(done) => shared.complete_from_ledger(c.chunk, done).await?,
                None => return Ok(Some(c)),
            }
        }
    }
}

/// What the loaders of one feed share.
struct Loading<'f> {
    feed: Mutex<FeedState<'f>>,
    tally: SyncMutex<Tally>,
    /// The first reason the sync stopped (a stop request gives way to an error).
    halt: SyncMutex<Option<Halt>>,
    halted: watch::Sender<bool>,
}

impl Loading<'_> {
    /// Records why the sync stops and ends the feed for every loader.
    fn stop(&self, halt: Halt) {
        if let Ok(mut first) = self.halt.lock()
            && (first.is_none() || matches!(*first, Some(Halt::Stopped)))
        {
            *first = Some(halt);
        }
        self.halted.send_replace(true);
    }

    /// Counts what came of a chunk and reports a commit.
    fn count(&self, shared: &Shared<'_>, c: Counted) {
        let Ok(mut tally) = self.tally.lock() else {
            return;
        };
        match c.result {
            ChunkResult::Committed(counts) => {
                tally.loaded += 1;
                tally.load_time += c.took;
                let done = tally.loaded + tally.skipped_on_resume;
                drop(tally);
                shared.pipeline.progress.chunk_done(&ChunkDone {
                    chunk: c.chunk,
                    done,
                    counts,
                    source_bytes: c.source_bytes,
                    elapsed: shared.started.elapsed(),
                });
            }
            ChunkResult::Failed(failed) => tally.failed.push(failed),
            // `submit` counts the chunks it queued as the chunks of this run.
            ChunkResult::Queued => tally.loaded += 1,
            ChunkResult::Released => {}
        }
    }
}

/// A chunk's result with what the tally and the progress need.
struct Counted {
    chunk: ChunkId,
    source_bytes: Option<u64>,
    result: ChunkResult,
    took: std::time::Duration,
}

impl Run<'_> {
    /// Opens the helpers' connections (`--jobs` above 1), as the run's session was opened
    /// (the same settings and TLS, an outage waited out), and notes which session holds the
    /// writer lock: the run's.
    pub(super) async fn open_helpers(&mut self) -> Result<(), Halt> {
        let jobs = self.pipeline.settings.jobs;
        if jobs <= 1 {
            return Ok(());
        }
        let failed = |e: PgError| Halt::from(SyncFailure::Connect(e));
        self.pid = crate::pg::backend_pid(&self.client).await.map_err(failed)?;
        self.shared.writer = Some(Mutex::new(self.pid));
        for _ in 1..jobs {
            let client = self.pipeline.connect_waiting().await.map_err(failed)?;
            let pid = crate::pg::backend_pid(&client).await.map_err(failed)?;
            self.helpers.push(Helper { client, pid });
        }
        tracing::info!(sync_id = %self.plan.sync_id, jobs, "loading chunks on {jobs} connections");
        Ok(())
    }

    /// Closes the helpers' connections. When one took the writer lock over, it releases it
    /// and the run's session takes it back (or `finish` does, making the session again when
    /// it is lost); another process taking it in between stops the run
    /// ([`Halt::LockLost`]).
    pub(super) async fn close_helpers(&mut self) -> Result<(), Halt> {
        let holder = match &self.shared.writer {
            Some(w) => *w.lock().await,
            None => return Ok(()),
        };
        let sync_id = &self.shared.plan.sync_id;
        for helper in self.helpers.drain(..) {
            if helper.pid == holder
                && !helper.client.is_closed()
                && let Err(e) = crate::pg::unlock_sync(&helper.client, sync_id).await
            {
                tracing::warn!(error = %e, "cannot release the writer lock on a loader's connection; closing it");
            }
        }
        if holder == self.pid || self.client.is_closed() {
            return Ok(());
        }
        match crate::pg::try_lock_sync(&self.client, sync_id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Halt::LockLost),
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the writer lock back on the run's session");
                Ok(())
            }
        }
    }

    /// Loads the chunks of `feed` on the run's session and the helpers' connections, each
    /// loader one chunk at a time, until the feed ends or the sync stops; the chunks in
    /// flight when it stops finish.
    pub(super) async fn load_chunks(
        &mut self,
        feed: Feed<'_>,
        tally: &mut Tally,
    ) -> Result<(), Halt> {
        let Run {
            shared,
            client,
            pid,
            helpers,
        } = self;
        let shared = &*shared;
        let (halted_tx, halted) = watch::channel(false);
        let loading = Loading {
            feed: Mutex::new(FeedState {
                feed,
                stop: shared.pipeline.stop.clone(),
                halted,
            }),
            tally: SyncMutex::new(std::mem::take(tally)),
            halt: SyncMutex::new(None),
            halted: halted_tx,
        };
        let mut conns = vec![Conn {
            client,
            pid,
            side: Side::None,
        }];
        conns.extend(helpers.iter_mut().map(|h| Conn {
            client: &mut h.client,
            pid: &mut h.pid,
            side: Side::None,
        }));
        join_all(conns.into_iter().map(|conn| loader(shared, &loading, conn))).await;
        let Loading { tally: t, halt, .. } = loading;
        *tally = t
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match halt
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Some(h) => Err(h),
            None => Ok(()),
        }
    }
}

/// One loader: takes the feed's next chunk and loads it on `conn`, until the feed ends.
async fn loader(shared: &Shared<'_>, loading: &Loading<'_>, mut conn: Conn<'_>) {
    loop {
        let next = loading.feed.lock().await.next(shared).await;
        let c = match next {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(h) => return loading.stop(h),
        };
        let (chunk, source_bytes) = (c.chunk, c.source_bytes);
        match shared.load(&mut conn, c).await {
            Ok((result, took)) => loading.count(
                shared,
                Counted {
                    chunk,
                    source_bytes,
                    result,
                    took,
                },
            ),
            Err(h) => return loading.stop(h),
        }
    }
}

impl Shared<'_> {
    /// With more than one loader: makes sure a session of this run holds the sync's writer
    /// lock before `conn` loads a chunk; when the session that held it is gone, takes it on
    /// `conn`'s. Another process holding it stops the run ([`Halt::LockLost`]).
    pub(super) async fn ensure_writer(&self, conn: &mut Conn<'_>) -> Result<(), Reconnect> {
        let Some(writer) = &self.writer else {
            return Ok(());
        };
        let mut holder = writer.lock().await;
        if *holder == *conn.pid {
            return Ok(());
        }
        let class = |e: PgError| {
            if e.is_outage() {
                Reconnect::Transient(e)
            } else {
                Reconnect::Halt(SyncFailure::Connect(e).into())
            }
        };
        let sync_id = &self.plan.sync_id;
        match crate::pg::sync_lock_holder(conn.client, sync_id)
            .await
            .map_err(class)?
        {
            Some(pid) if pid == *holder => Ok(()),
            Some(_) => Err(Reconnect::Halt(Halt::LockLost)),
            None => {
                if !crate::pg::try_lock_sync(conn.client, sync_id)
                    .await
                    .map_err(class)?
                {
                    return Err(Reconnect::Halt(Halt::LockLost));
                }
                tracing::warn!(%sync_id, "the session that held the sync's writer lock was lost; a loader's session holds it now");
                *holder = *conn.pid;
                Ok(())
            }
        }
    }
}
