//! Named events of a sync, emitted through one place: each is logged and counted together.
//!
//! Counters are named `<event>_total`. The same place hosts crash injection (`kill.rs`, with
//! the `crash-injection` feature, which the `datsync` binary enables for `demo` and `bench`
//! and the tests for the crash tests): with `DATSYNC_KILL_AT=<event>:<n>` in the environment,
//! the process kills itself with SIGKILL at the n-th emission of that event — a real
//! `kill -9` at an exact instant, which the crash tests use to stop a sync during
//! conversion, mid-COPY, between a commit and the manifest update, or during cleanup.
//!
//! `DATSYNC_TERM_AT=<event>:<n>` sends SIGTERM instead, to test a graceful stop: the process
//! signals itself at the n-th emission, then waits (at most ten seconds) until its stop
//! signal ([`Telemetry::observe_stop`]) shows that the signal handler has seen it, so that
//! the processor stops at exactly that point rather than whenever the handler task runs.
//!
//! `DATSYNC_PAUSE_AT=<event>:<n>,…` with `DATSYNC_PAUSE_DIR=<dir>` holds the process at
//! those points: it writes the marker file `<dir>/<event>-<n>` and waits until the file is
//! removed, so a test can act on the world (restart the database server) at an exact
//! instant of a run.
//!
//! Without the feature these variables are ignored.

mod events;
#[cfg(feature = "crash-injection")]
mod kill;
mod live;
mod metrics;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use events::{
    ChunkCommitted, ChunkCompleted, ChunkConverted, ChunkFailed, ChunkStaged, CleanupStarted,
    DerivedCommitted, FinalStepsDone, FinishClaimed, RowsRejected, SyncFinished, SyncHalted,
    ValuesWarned,
};
pub use live::{FailedChunkNote, Live, RunningSync};
pub use metrics::{Metrics, RECEIPT_STATES};

/// The environment variable that arms crash injection.
pub const KILL_AT_ENV: &str = "DATSYNC_KILL_AT";
/// The environment variable that arms SIGTERM injection.
pub const TERM_AT_ENV: &str = "DATSYNC_TERM_AT";
/// The environment variable that arms pause points (`<event>:<n>`, comma-separated).
pub const PAUSE_AT_ENV: &str = "DATSYNC_PAUSE_AT";
/// The environment variable that arms a SIGSTOP of the process (`<event>:<n>`): the process
/// stops itself whole, every thread at once, until a test sends SIGCONT.
pub const SIGSTOP_AT_ENV: &str = "DATSYNC_SIGSTOP_AT";
/// The directory of the pause points' marker files.
pub const PAUSE_DIR_ENV: &str = "DATSYNC_PAUSE_DIR";

/// Every event name, so that counters and kill points can be listed and checked.
#[cfg(test)]
pub(crate) const EVENT_NAMES: &[&str] = &[
    ChunkConverted::NAME,
    ChunkStaged::NAME,
    ChunkCommitted::NAME,
    ChunkCompleted::NAME,
    ChunkFailed::NAME,
    RowsRejected::NAME,
    ValuesWarned::NAME,
    CleanupStarted::NAME,
    SyncHalted::NAME,
    SyncFinished::NAME,
    FinishClaimed::NAME,
    FinalStepsDone::NAME,
];

/// One named event.
pub trait Event {
    /// The event name (`snake_case`); its counter is `<name>_total`.
    const NAME: &'static str;
    /// Logs the event with its fields.
    fn log(&self);
    /// Counts the event into the process's metrics (most events have no family of their
    /// own).
    fn record(&self, _metrics: &Metrics) {}
}

/// Counters of emitted events, plus the armed kill and stop points, if any.
#[derive(Debug, Default)]
pub struct Telemetry {
    counters: Mutex<HashMap<&'static str, u64>>,
    /// The process's metrics, shared by every pipeline of the process.
    metrics: Arc<Metrics>,
    #[cfg(feature = "crash-injection")]
    kill: kill::KillPoints,
}

impl Telemetry {
    /// Telemetry with crash injection armed from `DATSYNC_KILL_AT` in `env`, if set.
    /// `DATSYNC_TERM_AT` arms SIGTERM injection the same way. Without the
    /// `crash-injection` feature, both are ignored.
    #[cfg_attr(
        not(feature = "crash-injection"),
        allow(unused_variables, reason = "nothing to arm")
    )]
    pub fn from_env(env: &HashMap<String, String>) -> Self {
        Self {
            #[cfg(feature = "crash-injection")]
            kill: kill::KillPoints::from_env(env),
            ..Self::default()
        }
    }

    /// The same, counting into `metrics` (the process's, shared with other pipelines).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The process's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The stop signal an armed SIGTERM waits for (the first one given is kept).
    #[cfg_attr(
        not(feature = "crash-injection"),
        allow(
            unused_variables,
            clippy::unused_self,
            clippy::needless_pass_by_value,
            reason = "nothing is armed"
        )
    )]
    pub fn observe_stop(&self, stop: tokio::sync::watch::Receiver<bool>) {
        #[cfg(feature = "crash-injection")]
        self.kill.observe_stop(stop);
    }

    /// Logs and counts an event; kills the process if it is an armed kill point.
    pub fn emit<E: Event>(&self, event: &E) {
        event.log();
        event.record(&self.metrics);
        let count = {
            let mut counters = self
                .counters
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let c = counters.entry(E::NAME).or_insert(0);
            *c += 1;
            *c
        };
        #[cfg(feature = "crash-injection")]
        self.kill.emitted(E::NAME, count);
        #[cfg(not(feature = "crash-injection"))]
        let _ = count;
    }

    /// The counter `<name>_total`.
    #[cfg(test)]
    pub(crate) fn count(&self, name: &str) -> u64 {
        let counters = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        counters.get(name).copied().unwrap_or(0)
    }

    /// Every counter as `(name_total, value)`, sorted by name.
    #[cfg(test)]
    pub(crate) fn counters(&self) -> Vec<(String, u64)> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChunkId, SyncId};

    #[test]
    fn counts_events_by_name() {
        let t = Telemetry::default();
        let id = SyncId::parse("sync_20250129_143022_a3f4b2c1").unwrap();
        t.emit(&ChunkConverted {
            sync_id: &id,
            chunk: ChunkId(0),
            rows: 10,
            source_bytes: 100,
        });
        t.emit(&ChunkConverted {
            sync_id: &id,
            chunk: ChunkId(1),
            rows: 10,
            source_bytes: 100,
        });
        t.emit(&CleanupStarted { sync_id: &id });
        assert_eq!(t.count("chunk_converted"), 2);
        assert_eq!(
            t.counters(),
            [
                ("chunk_converted_total".to_owned(), 2),
                ("cleanup_started_total".to_owned(), 1)
            ]
        );
    }
}
