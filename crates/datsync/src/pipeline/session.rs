//! The run's database session. One connection holds the sync's writer lock and commits its
//! chunks: a chunk is only ever committed on a session that holds the lock, so the lock is
//! checked by construction before every commit. (A chunk's derived tables commit on the
//! loader's second connection, which holds no lock: applying them again changes nothing,
//! `load/derived.rs`.) When that connection is lost (a server restart,
//! `pg_terminate_backend`, a network cut), the lock goes with it; the next load makes a new
//! connection — waiting out the outage with a doubling pause for up to
//! [`super::DEFAULT_DB_RETRY_FOR`] (`DATSYNC_DB_RETRY_FOR`) — and takes the lock again
//! before it writes anything. Finding the lock held by another process, it stops
//! ([`Halt::LockLost`]): the other process writes the sync now.
//!
//! | failure | how long it is retried |
//! |---|---|
//! | server away: refused connections, a broken connection, SQLSTATE 08xxx, 53xxx, 57P01–57P03 | for the outage budget, counted from the first failure |
//! | a statement that lost a race: 40001, 40P01, 55P03, 57014, … | the load attempts ([`super::DEFAULT_LOAD_ATTEMPTS`]) |

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::halt::Halt;
use super::jobs::{Conn, Side};
use super::run::{Run, Shared};
use super::{Pipeline, PipelineError};
use crate::pg::PgError;
use crate::profile::StoredType;

/// The longest pause between two connection attempts during an outage.
const MAX_OUTAGE_PAUSE: Duration = Duration::from_secs(5);

/// An outage under way: when it began and the next pause.
#[derive(Debug, Clone, Copy)]
pub(super) struct Outage {
    began: Instant,
    pause: Duration,
}

impl Outage {
    /// An outage that begins now; the first pause is `backoff`.
    pub(super) fn begin(backoff: Duration) -> Self {
        Self {
            began: Instant::now(),
            pause: backoff,
        }
    }

    /// Waits before the next try, unless the budget `retry_for` is spent (then `false`).
    pub(super) async fn wait(&mut self, retry_for: Duration) -> bool {
        let Some(left) = retry_for
            .checked_sub(self.began.elapsed())
            .filter(|l| !l.is_zero())
        else {
            return false;
        };
        let pause = self.pause.min(left);
        tokio::time::sleep(pause).await;
        self.pause = (self.pause * 2).min(MAX_OUTAGE_PAUSE);
        true
    }

    /// How long the outage has lasted.
    pub(super) fn lasted(&self) -> Duration {
        self.began.elapsed()
    }
}

impl Pipeline {
    /// A connection, made through an outage: a server that is down, starting, shutting down
    /// or out of connection slots is tried again with a doubling pause for up to the outage
    /// budget; then (or at once, for a fatal failure) the last error.
    pub(super) async fn connect_waiting(&self) -> Result<Client, PgError> {
        let mut outage: Option<Outage> = None;
        loop {
            match crate::pg::connect(&self.pg).await {
                Ok(client) => return Ok(client),
                Err(e) if e.is_outage() => {
                    let o = outage.get_or_insert_with(|| Outage::begin(self.retries.backoff));
                    tracing::warn!(error = %e, waited_s = o.lasted().as_secs(), budget_s = self.retries.retry_for.as_secs(),
                        "the database cannot be reached; waiting for it (DATSYNC_DB_RETRY_FOR)");
                    if !o.wait(self.retries.retry_for).await {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// [`Self::connect_waiting`], then datsync's tables made or checked (`init_db`), the
    /// whole retried through an outage; with the target table's narrower columns.
    pub(super) async fn connect_migrated(
        &self,
    ) -> Result<(Client, Vec<(String, StoredType)>), PipelineError> {
        let mut outage: Option<Outage> = None;
        loop {
            let mut client = self.connect_waiting().await?;
            match crate::pg::init_db(&mut client, &self.profile).await {
                Ok(report) => return Ok((client, report.stored)),
                Err(e) if e.is_outage() => {
                    let o = outage.get_or_insert_with(|| Outage::begin(self.retries.backoff));
                    if !o.wait(self.retries.retry_for).await {
                        return Err(e.into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Why a new session could not be had.
pub(super) enum Reconnect {
    /// The database is still away (or failed transiently): the load may try again.
    Transient(PgError),
    /// The sync cannot go on in this process.
    Halt(Halt),
}

impl Shared<'_> {
    /// A new session holding the sync's writer lock: connected (one attempt; the caller
    /// paces the retries), then the lock taken.
    pub(super) async fn connect_writer(&self) -> Result<Client, Reconnect> {
        let client = match crate::pg::connect(&self.pipeline.pg).await {
            Ok(client) => client,
            Err(e) if e.is_outage() => return Err(Reconnect::Transient(e)),
            Err(e) => return Err(Reconnect::Halt(super::halt::SyncFailure::Connect(e).into())),
        };
        match crate::pg::try_lock_sync(&client, &self.plan.sync_id).await {
            Ok(true) => {
                tracing::warn!(sync_id = %self.plan.sync_id, "connected again after the connection was lost; the sync's writer lock is held again");
                Ok(client)
            }
            Ok(false) => Err(Reconnect::Halt(Halt::LockLost)),
            Err(e) if e.is_outage() => Err(Reconnect::Transient(e)),
            Err(e) => Err(Reconnect::Halt(super::halt::SyncFailure::Connect(e).into())),
        }
    }

    /// A loader's second connection, for the derived tables (`Conn::side`): a primary (a
    /// multi-host connection string may land elsewhere than the loader's own connection);
    /// unavailable, said once, when it cannot be made: the derived tables are then upserted
    /// in each chunk's transaction, as before.
    pub(super) async fn side_connection(&self) -> Side {
        let made = async {
            let client = crate::pg::connect(&self.pipeline.pg)
                .await
                .map_err(|e| e.to_string())?;
            let standby: bool = client
                .query_one("SELECT pg_is_in_recovery()", &[])
                .await
                .map_err(|e| crate::pg::server_message(&e))?
                .get(0);
            if standby {
                return Err("it reached a standby".to_owned());
            }
            // Told apart from the loader's own connection in `pg_stat_activity`.
            client
                .execute(
                    "SELECT set_config('application_name', \
                       current_setting('application_name') || ' (derived tables)', false)",
                    &[],
                )
                .await
                .map_err(|e| crate::pg::server_message(&e))?;
            Ok(client)
        };
        match made.await {
            Ok(client) => Side::Open(client),
            Err(error) => {
                tracing::warn!(sync_id = %self.plan.sync_id, %error,
                    "no second connection for the derived tables; upserting them in each chunk's transaction");
                Side::Unavailable
            }
        }
    }

    /// A loader's connection made again after it was lost. With one loader it is the run's
    /// session, made again holding the writer lock; with more, a connection whose loader
    /// checks the lock before each chunk ([`Shared::ensure_writer`]).
    pub(super) async fn reconnect_loader(&self, conn: &mut Conn<'_>) -> Result<(), Reconnect> {
        if self.writer.is_none() {
            *conn.client = self.connect_writer().await?;
            return Ok(());
        }
        let client = match crate::pg::connect(&self.pipeline.pg).await {
            Ok(client) => client,
            Err(e) if e.is_outage() => return Err(Reconnect::Transient(e)),
            Err(e) => return Err(Reconnect::Halt(super::halt::SyncFailure::Connect(e).into())),
        };
        match crate::pg::backend_pid(&client).await {
            Ok(pid) => *conn.pid = pid,
            Err(e) if e.is_outage() => return Err(Reconnect::Transient(e)),
            Err(e) => return Err(Reconnect::Halt(super::halt::SyncFailure::Connect(e).into())),
        }
        *conn.client = client;
        Ok(())
    }
}

impl Run<'_> {
    /// A new session for the run after its connection was lost: connected (one attempt; the
    /// caller paces the retries) and holding the sync's writer lock again.
    pub(super) async fn reconnect(&mut self) -> Result<(), Reconnect> {
        self.client = self.connect_writer().await?;
        Ok(())
    }
}
