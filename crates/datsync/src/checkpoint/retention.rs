//! Retention: removing old checkpoint directories, never one whose sync may be running.
//!
//! The rule: a checkpoint's age is the time since its last update (the manifest's
//! `updated_at` after the journal is applied; for an unreadable checkpoint, its newest
//! object). A `completed` or `failed` sync is removed once its age reaches the retention
//! period. A sync that may still be running (`converting`, `ready`, `processing`) or whose
//! state cannot be read is removed only once its age reaches the retention period *and* the
//! active grace period ([`DEFAULT_ACTIVE_GRACE_HOURS`]): a running sync writes at every chunk,
//! so one silent for that long has died; even a retention of 0 days never removes a sync that
//! wrote within the grace period.
//!
//! A sync's rejects (`rejects/<sync_id>/`, kept when its checkpoint is cleaned up after a
//! success) follow the same rule: they go with a checkpoint that is removed, stay with one
//! that is kept, and without a checkpoint their age is that of their newest file — and a sync
//! without a checkpoint may be running (`--no-checkpoint`, or between its cleanup and its
//! end), so they also get the active grace period.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::clock::{Clock, parse_stamp};
use super::{CheckpointError, CheckpointManager};
use crate::model::SyncId;
use crate::store::Store;

/// Hours since its last update during which a possibly running sync is never removed.
pub const DEFAULT_ACTIVE_GRACE_HOURS: i64 = 24;

/// How long checkpoints are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Checkpoints whose last update is older than this are removed.
    pub max_age: TimeDelta,
    /// A sync that may be running is kept at least this long after its last update.
    pub active_grace: TimeDelta,
}

impl RetentionPolicy {
    /// Keep checkpoints `days` days.
    pub fn days(days: u32) -> Self {
        Self {
            max_age: TimeDelta::days(i64::from(days)),
            active_grace: TimeDelta::hours(DEFAULT_ACTIVE_GRACE_HOURS),
        }
    }
}

impl Default for RetentionPolicy {
    /// [`crate::config::DEFAULT_RETENTION_DAYS`] (`CHECKPOINT_RETENTION_DAYS`).
    fn default() -> Self {
        Self::days(crate::config::DEFAULT_RETENTION_DAYS)
    }
}

/// Why a checkpoint was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepReason {
    /// Younger than the retention period.
    Recent,
    /// Its sync may still be running.
    Active,
}

/// What [`remove_expired`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Checkpoints removed.
    pub removed: Vec<SyncId>,
    /// Checkpoints kept, with the reason.
    pub kept: Vec<(SyncId, KeepReason)>,
    /// Rejects directories removed.
    pub rejects_removed: Vec<SyncId>,
    /// Rejects directories kept, with the reason.
    pub rejects_kept: Vec<(SyncId, KeepReason)>,
}

/// Removes the checkpoints of `store` that the policy lets go (see the module docs).
pub async fn remove_expired(
    store: &Store,
    policy: &RetentionPolicy,
    clock: &Arc<dyn Clock>,
) -> Result<RetentionReport, CheckpointError> {
    let now = clock.now();
    let keep = |last: &LastUpdate| {
        let age = last.at.map_or(TimeDelta::MAX, |t| now - t);
        if age < policy.max_age {
            Some(KeepReason::Recent)
        } else if last.may_be_running && age < policy.active_grace {
            Some(KeepReason::Active)
        } else {
            None
        }
    };
    let mut report = RetentionReport::default();
    for sync in store.list_syncs().await? {
        let last = last_update(store, &sync).await?;
        if let Some(reason) = keep(&last) {
            report.kept.push((sync, reason));
        } else {
            store.delete_sync(&sync).await?;
            report.removed.push(sync);
        }
    }
    for sync in store.list_rejects_syncs().await? {
        let decision = if let Some((_, reason)) = report.kept.iter().find(|(s, _)| *s == sync) {
            Some(*reason)
        } else if report.removed.contains(&sync) {
            None
        } else {
            let newest = store
                .list_rejects(&sync)
                .await?
                .iter()
                .map(|o| o.last_modified)
                .max();
            keep(&LastUpdate {
                at: newest,
                may_be_running: true,
            })
        };
        if let Some(reason) = decision {
            report.rejects_kept.push((sync, reason));
        } else {
            store.delete_rejects(&sync).await?;
            report.rejects_removed.push(sync);
        }
    }
    Ok(report)
}

/// What retention needs to know of a checkpoint (or a rejects directory).
struct LastUpdate {
    /// Its last update (`None`: it holds no object).
    at: Option<DateTime<Utc>>,
    /// Its sync may still be running (or its state cannot be read).
    may_be_running: bool,
}

/// The last update of a checkpoint, and whether its sync may be running.
async fn last_update(store: &Store, sync: &SyncId) -> Result<LastUpdate, CheckpointError> {
    let mut manager = CheckpointManager::new(store.clone(), sync.clone());
    if let Ok(true) = manager.checkpoint_exists().await
        && let Some(m) = manager.manifest()
        && let Some(t) = parse_stamp(&m.updated_at)
    {
        return Ok(LastUpdate {
            at: Some(t),
            may_be_running: m.status.is_active(),
        });
    }
    let newest = store
        .list_sync(sync)
        .await?
        .iter()
        .map(|o| o.last_modified)
        .max();
    Ok(LastUpdate {
        at: newest,
        may_be_running: true,
    })
}
