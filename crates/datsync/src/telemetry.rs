//! Named events of a sync, emitted through one place: each is logged and counted together.
//!
//! Counters are named `<event>_total`. The same place hosts crash injection for tests: with
//! `DATSYNC_KILL_AT=<event>:<n>` in the environment, the process kills itself with SIGKILL at
//! the n-th emission of that event — a real `kill -9` at an exact instant, which the crash
//! tests use to stop a sync during conversion, mid-COPY, between a commit and the manifest
//! update, or during cleanup.
//!
//! `DATSYNC_TERM_AT=<event>:<n>` sends SIGTERM instead, to test a graceful stop: the process
//! signals itself at the n-th emission, then waits (at most [`TERM_WAIT`]) until its stop
//! signal ([`Telemetry::observe_stop`]) shows that the signal handler has seen it, so that
//! the processor stops at exactly that point rather than whenever the handler task runs.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::model::{ChunkId, SyncId, SyncStatus};

/// The environment variable that arms crash injection.
pub const KILL_AT_ENV: &str = "DATSYNC_KILL_AT";
/// The environment variable that arms SIGTERM injection.
pub const TERM_AT_ENV: &str = "DATSYNC_TERM_AT";
/// The longest an armed SIGTERM waits for the process's handler to see it.
pub const TERM_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Every event name, so that counters and kill points can be listed and checked.
pub const EVENT_NAMES: &[&str] = &[
    ChunkConverted::NAME,
    ChunkStaged::NAME,
    ChunkCommitted::NAME,
    ChunkCompleted::NAME,
    ChunkFailed::NAME,
    RowsRejected::NAME,
    CleanupStarted::NAME,
    SyncFinished::NAME,
];

/// One named event.
pub trait Event {
    /// The event name (`snake_case`); its counter is `<name>_total`.
    const NAME: &'static str;
    /// Logs the event with its fields.
    fn log(&self);
}

/// A chunk's Parquet file is written and listed in the manifest.
pub struct ChunkConverted<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
    /// The chunk.
    pub chunk: ChunkId,
    /// Rows in the chunk.
    pub rows: u64,
}

impl Event for ChunkConverted<'_> {
    const NAME: &'static str = "chunk_converted";
    fn log(&self) {
        tracing::debug!(sync_id = %self.sync_id, chunk = self.chunk.0, rows = self.rows, "chunk converted");
    }
}

/// A chunk's rows are in the staging table; the upsert and commit have not happened yet.
pub struct ChunkStaged<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
    /// The chunk.
    pub chunk: ChunkId,
}

impl Event for ChunkStaged<'_> {
    const NAME: &'static str = "chunk_staged";
    fn log(&self) {
        tracing::trace!(sync_id = %self.sync_id, chunk = self.chunk.0, "chunk staged");
    }
}

/// A chunk's upsert and ledger row are committed; the manifest is not updated yet.
pub struct ChunkCommitted<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
    /// The chunk.
    pub chunk: ChunkId,
}

impl Event for ChunkCommitted<'_> {
    const NAME: &'static str = "chunk_committed";
    fn log(&self) {
        tracing::trace!(sync_id = %self.sync_id, chunk = self.chunk.0, "chunk committed");
    }
}

/// A chunk is marked completed in the manifest.
pub struct ChunkCompleted<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
    /// The chunk.
    pub chunk: ChunkId,
    /// Rows inserted.
    pub inserted: u64,
    /// Rows updated.
    pub updated: u64,
}

impl Event for ChunkCompleted<'_> {
    const NAME: &'static str = "chunk_completed";
    fn log(&self) {
        tracing::debug!(
            sync_id = %self.sync_id, chunk = self.chunk.0, inserted = self.inserted, updated = self.updated,
            "chunk completed"
        );
    }
}

/// A chunk failed for now (a transient database error after retries).
pub struct ChunkFailed<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
    /// The chunk.
    pub chunk: ChunkId,
    /// The error.
    pub error: &'a str,
}

impl Event for ChunkFailed<'_> {
    const NAME: &'static str = "chunk_failed";
    fn log(&self) {
        tracing::warn!(sync_id = %self.sync_id, chunk = self.chunk.0, error = self.error, "chunk failed; it will be retried on resume");
    }
}

/// Rows of a chunk were rejected by validation (kept in the rejects file).
pub struct RowsRejected<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
    /// The chunk.
    pub chunk: ChunkId,
    /// Rows rejected.
    pub count: u64,
}

impl Event for RowsRejected<'_> {
    const NAME: &'static str = "rows_rejected";
    fn log(&self) {
        tracing::debug!(sync_id = %self.sync_id, chunk = self.chunk.0, count = self.count, "rows rejected");
    }
}

/// Checkpoint cleanup begins.
pub struct CleanupStarted<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
}

impl Event for CleanupStarted<'_> {
    const NAME: &'static str = "cleanup_started";
    fn log(&self) {
        tracing::debug!(sync_id = %self.sync_id, "removing checkpoints");
    }
}

/// A sync reached a final status.
pub struct SyncFinished<'a> {
    /// The sync.
    pub sync_id: &'a SyncId,
    /// Its status.
    pub status: SyncStatus,
}

impl Event for SyncFinished<'_> {
    const NAME: &'static str = "sync_finished";
    fn log(&self) {
        tracing::info!(sync_id = %self.sync_id, status = %self.status, "sync finished");
    }
}

/// Counters of emitted events, plus the armed kill and stop points, if any.
#[derive(Debug, Default)]
pub struct Telemetry {
    counters: Mutex<HashMap<&'static str, u64>>,
    kill_at: Option<(String, u64)>,
    term_at: Option<(String, u64)>,
    stop: std::sync::OnceLock<tokio::sync::watch::Receiver<bool>>,
}

impl Telemetry {
    /// Telemetry with crash injection armed from `DATSYNC_KILL_AT` in `env`, if set.
    /// `DATSYNC_TERM_AT` arms SIGTERM injection the same way.
    pub fn from_env(env: &HashMap<String, String>) -> Self {
        let point = |var: &str| {
            env.get(var).and_then(|spec| {
                let (name, n) = spec.rsplit_once(':')?;
                Some((name.to_owned(), n.trim().parse().ok()?))
            })
        };
        Self {
            kill_at: point(KILL_AT_ENV),
            term_at: point(TERM_AT_ENV),
            ..Self::default()
        }
    }

    /// The stop signal an armed SIGTERM waits for (the first one given is kept).
    pub fn observe_stop(&self, stop: tokio::sync::watch::Receiver<bool>) {
        let _ = self.stop.set(stop);
    }

    /// Logs and counts an event; kills the process if it is the armed kill point.
    pub fn emit<E: Event>(&self, event: &E) {
        event.log();
        let count = {
            let mut counters = self
                .counters
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let c = counters.entry(E::NAME).or_insert(0);
            *c += 1;
            *c
        };
        if let Some((name, at)) = &self.kill_at
            && name == E::NAME
            && *at == count
        {
            kill_self();
        }
        if let Some((name, at)) = &self.term_at
            && name == E::NAME
            && *at == count
        {
            self.term_self();
        }
    }

    /// SIGTERM to this process, then a wait until the stop signal shows it was handled.
    fn term_self(&self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let _ = kill(Pid::this(), Signal::SIGTERM);
        let Some(stop) = self.stop.get() else {
            return;
        };
        let wait = || {
            let deadline = std::time::Instant::now() + TERM_WAIT;
            while !*stop.borrow() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        };
        // On a runtime worker, hand the worker's queued tasks to another thread while this
        // one waits: the signal handler's task may sit in this worker's queue, where no
        // other worker would take it, and the wait would only end at its deadline.
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait);
            }
            _ => wait(),
        }
    }

    /// The counter `<name>_total`.
    pub fn count(&self, name: &str) -> u64 {
        let counters = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        counters.get(name).copied().unwrap_or(0)
    }

    /// Every counter as `(name_total, value)`, sorted by name.
    pub fn counters(&self) -> Vec<(String, u64)> {
        let counters = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut all: Vec<_> = counters
            .iter()
            .map(|(k, v)| (format!("{k}_total"), *v))
            .collect();
        all.sort();
        all
    }
}

/// SIGKILL to this process: no destructor, no flush, no unwinding — like `kill -9`.
fn kill_self() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let _ = kill(Pid::this(), Signal::SIGKILL);
    // SIGKILL cannot be caught; should delivery lag, stop here anyway.
    std::process::abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_events_by_name() {
        let t = Telemetry::default();
        let id = SyncId::parse("sync_20250129_143022_a3f4b2c1").unwrap();
        t.emit(&ChunkConverted {
            sync_id: &id,
            chunk: ChunkId(0),
            rows: 10,
        });
        t.emit(&ChunkConverted {
            sync_id: &id,
            chunk: ChunkId(1),
            rows: 10,
        });
        t.emit(&SyncFinished {
            sync_id: &id,
            status: SyncStatus::Success,
        });
        assert_eq!(t.count("chunk_converted"), 2);
        assert_eq!(
            t.counters(),
            [
                ("chunk_converted_total".to_owned(), 2),
                ("sync_finished_total".to_owned(), 1)
            ]
        );
    }

    #[test]
    fn kill_spec_is_parsed_and_unarmed_without_it() {
        let env: HashMap<String, String> =
            [(KILL_AT_ENV.to_owned(), "chunk_committed:3".to_owned())].into();
        assert_eq!(
            Telemetry::from_env(&env).kill_at,
            Some(("chunk_committed".to_owned(), 3))
        );
        assert_eq!(Telemetry::from_env(&HashMap::new()).kill_at, None);
        let env: HashMap<String, String> =
            [(TERM_AT_ENV.to_owned(), "chunk_completed:2".to_owned())].into();
        let t = Telemetry::from_env(&env);
        assert_eq!(t.term_at, Some(("chunk_completed".to_owned(), 2)));
        assert_eq!(t.kill_at, None);
        assert!(EVENT_NAMES.contains(&"chunk_committed"));
    }
}
