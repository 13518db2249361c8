//! A chunk's load retried on transient database errors (SQLSTATE classes, see
//! [`crate::pg::ErrorClass`]), with a doubling pause; a connection that broke is made again,
//! with the sync's writer lock (`session.rs`). An outage (the server away or short of
//! resources) is waited out for the outage budget; other transient errors get a number of
//! attempts. A chunk whose attempts run out is kept for a resume and the run goes on; an
//! outage that outlasts the budget stops the sync (FAILED, checkpoint kept).

use std::time::Duration;

use arrow_array::RecordBatch;

use super::halt::{Halt, SyncFailure, TransientFailure};
use super::jobs::Conn;
use super::queue::Mode;
use super::run::Shared;
use super::session::{Outage, Reconnect};
use crate::load::{ChunkFacts, ChunkLoad};
use crate::model::ChunkId;
use crate::pg::ErrorClass;

/// How often a chunk's load is tried in one run, and how patiently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LoadRetries {
    /// Attempts (at least one is made).
    pub(super) attempts: u32,
    /// The pause before the second attempt; it doubles before each further one.
    pub(super) backoff: Duration,
    /// How long an outage is waited out (`DATSYNC_DB_RETRY_FOR`).
    pub(super) retry_for: Duration,
}

impl LoadRetries {
    /// The pause before attempt `attempt` (2 or more).
    fn pause(self, attempt: u32) -> Duration {
        self.backoff
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(2)))
    }
}

/// What an attempt (or the last of them) came to.
pub(super) enum LoadAttempt {
    /// The chunk is committed with its ledger row.
    Loaded(ChunkLoad),
    /// The database failed transiently.
    Transient(TransientFailure),
    /// A worker's claim on the chunk was lost (see `queue.rs`): not this process's to load.
    Released,
}

impl Shared<'_> {
    /// Loads a chunk, retrying transient database errors; returns the last attempt's
    /// outcome. A fatal error stops the sync.
    pub(super) async fn load_with_retries(
        &self,
        conn: &mut Conn<'_>,
        chunk: ChunkId,
        checksum: &str,
        batch: &RecordBatch,
        facts: &ChunkFacts,
    ) -> Result<LoadAttempt, Halt> {
        let retries = self.pipeline.retries;
        let mut attempt = 1;
        let mut outage: Option<Outage> = None;
        loop {
            let outcome = self
                .load_once(conn, chunk, checksum, batch, facts, attempt)
                .await?;
            let failure = match outcome {
                LoadAttempt::Loaded(load) => return Ok(LoadAttempt::Loaded(load)),
                LoadAttempt::Released => return Ok(LoadAttempt::Released),
                LoadAttempt::Transient(failure) => failure,
            };
            if failure.is_outage() {
                let o = outage.get_or_insert_with(|| Outage::begin(retries.backoff));
                if o.wait(retries.retry_for).await {
                    continue;
                }
                return Err(SyncFailure::Outage {
                    sync_id: self.plan.sync_id.clone(),
                    waited: o.lasted(),
                    error: Box::new(failure),
                }
                .into());
            }
            outage = None;
            if attempt >= retries.attempts {
                return Ok(LoadAttempt::Transient(failure));
            }
            attempt += 1;
            self.pipeline.telemetry.metrics().db_retry();
            tokio::time::sleep(retries.pause(attempt)).await;
        }
    }

    /// One attempt, on a new connection when the last one broke (with more than one loader,
    /// once a session of this run holds the writer lock, see `jobs.rs`).
    async fn load_once(
        &self,
        conn: &mut Conn<'_>,
        chunk: ChunkId,
        checksum: &str,
        batch: &RecordBatch,
        facts: &ChunkFacts,
        attempt: u32,
    ) -> Result<LoadAttempt, Halt> {
        if self.mode == Mode::Claimed {
            return match self.load_claimed(conn, chunk, checksum, batch, facts).await {
                Ok(outcome) => Ok(outcome),
                Err(e) if e.class() == ErrorClass::Transient => {
                    tracing::warn!(sync_id = %self.plan.sync_id, %chunk, attempt, error = %e, "transient database error; retrying");
                    Ok(LoadAttempt::Transient(TransientFailure::Load(e)))
                }
                Err(e) => Err(e.into()),
            };
        }
        let mut ready = Ok(());
        if conn.client.is_closed() {
            // The second connection's slot first: a server at its connection limit must give
            // the loader its own connection back.
            conn.side.drop_open();
            ready = self.reconnect_loader(conn).await;
        }
        if ready.is_ok() {
            ready = self.ensure_writer(conn).await;
        }
        match ready {
            Ok(()) => {}
            Err(Reconnect::Transient(e)) => {
                return Ok(LoadAttempt::Transient(TransientFailure::Connect(e)));
            }
            Err(Reconnect::Halt(h)) => return Err(h),
        }
        if self.loader.derives_beside() && conn.side.wanted() {
            conn.side = self.side_connection().await;
        }
        let loaded = self
            .loader
            .load_chunk_beside(
                conn.client,
                conn.side.client(),
                &self.sync_ref,
                chunk,
                checksum,
                batch,
                facts,
            )
            .await;
        if loaded.is_err() {
            // Whatever state the failed attempt left it in (a transaction open, a COPY cut
            // off), the next attempt starts on a new connection.
            conn.side.drop_open();
        }
        match loaded {
            Ok(load) => Ok(LoadAttempt::Loaded(load)),
            Err(e) if e.class() == ErrorClass::Transient => {
                tracing::warn!(sync_id = %self.plan.sync_id, %chunk, attempt, error = %e, "transient database error; retrying");
                Ok(LoadAttempt::Transient(TransientFailure::Load(e)))
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_from_the_second_attempt() {
        let retries = LoadRetries {
            attempts: 4,
            backoff: Duration::from_millis(500),
            retry_for: Duration::from_secs(300),
        };
        let pauses: Vec<u128> = (2..=4).map(|a| retries.pause(a).as_millis()).collect();
        assert_eq!(pauses, [500, 1000, 2000]);
        // Saturates instead of overflowing.
        assert!(retries.pause(u32::MAX) > Duration::from_secs(1 << 30));
    }
}
