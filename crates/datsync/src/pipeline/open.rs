//! Opening a sync for a run: the database (migrated), the source's lock (`run SOURCE`), the
//! writer lock on the connection that commits the chunks, held for the whole run, the sync's
//! registration (its `sync_seq` drawn once), and its checkpoint — created, or checked
//! against the source.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::profile::StoredType;

use crate::checkpoint::{
    CheckpointError, CheckpointManager, CheckpointOptions, ChunkCompression, NewCheckpoint,
    verify_fingerprint,
};
use crate::model::{ChunkCut, SourceFingerprint, SyncRef, SyncStatus};
use crate::status::SyncRegistration;
use crate::store::Store;

use super::plan::{Plan, source_mismatch};
use super::run::{Run, Shared, run_loader};
use super::{Pipeline, PipelineError, RunSummary};

impl Pipeline {
    /// Where checkpoints and rejects are kept (rejects are kept even without checkpoints).
    pub(super) async fn store(&self) -> Result<Store, PipelineError> {
        let store = Store::open(&self.settings.checkpoint_base)?;
        store.ensure_container().await;
        Ok(store)
    }

    /// Takes the lock of the source `source_key` for `run SOURCE` on `client`, under its
    /// planning lock (kept until the sync is registered, see [`Self::sync`]); held by
    /// another process, the error names that process's sync.
    pub(super) async fn lock_source(
        &self,
        client: &Client,
        source_key: &str,
        source_path: &str,
    ) -> Result<(), PipelineError> {
        crate::pg::lock_source_planning(client, source_key).await?;
        if crate::pg::try_lock_source(client, source_key).await? {
            return Ok(());
        }
        // The holder released the planning lock once its sync was registered.
        let holder = crate::status::source_holder(client, &self.profile.schema, source_path)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read which sync holds the source");
                None
            });
        Err(PipelineError::SourceBusy {
            source_path: source_path.to_owned(),
            holder,
        })
    }

    /// Opens the sync of `plan` and runs it on `client`, which holds the writer lock until
    /// the run ends (and, for `run SOURCE`, the source's lock and its planning lock
    /// `planning`, released once the sync is registered).
    pub(super) async fn sync(
        &self,
        plan: Plan,
        store: Store,
        (client, stored): (Client, Vec<(String, StoredType)>),
        planning: Option<String>,
        mode: super::queue::Mode,
    ) -> Result<RunSummary, PipelineError> {
        let started = Instant::now();
        if !crate::pg::try_lock_sync(&client, &plan.sync_id).await? {
            return Err(PipelineError::Busy(plan.sync_id));
        }
        // Counted once this process holds the sync (a busy attempt never shows as running).
        let _running = self.telemetry.metrics().running(&plan.sync_id);
        let registered = self.register(&client, &plan, &store).await?;
        if let Some(key) = &planning {
            crate::pg::unlock_source_planning(&client, key).await?;
        }
        // A finished sync whose checkpoint is gone was cleaned up (perhaps cut short): it
        // has nothing left to convert or load.
        let cleaned = registered.finished_before && !self.has_checkpoint(&store, &plan).await?;
        // Chunks committed earlier were cut somehow; without their checkpoint the ledger
        // tells how (each row records its cut), and chunks must be cut there again.
        let ledger_cut =
            crate::status::ledger_cut(&client, &self.profile.schema, plan.sync_id.as_str())
                .await?
                .map(|cut| self.effective_cut(cut));
        // What the sync's source was when it started, for a checkpoint made again (the chunks
        // committed were cut from those bytes).
        let started_from = if ledger_cut.is_some() {
            crate::status::recorded_source_fingerprint(&client, &self.profile.schema, &plan.sync_id)
                .await?
        } else {
            None
        };
        let manager = if self.settings.enable_checkpointing && !cleaned {
            // A done chunk's file goes at once only where this process loads the chunks
            // and no worker may still read one: not for `submit`, nor for a sync in the work
            // queue (a `resume` beside the workers: a worker that claimed a chunk before this
            // process committed it reads its file before it finds the chunk committed).
            let remove_done_files = self.settings.cleanup_on_success
                && mode == super::queue::Mode::Load
                && !super::queue::sync_is_queued(&client, &self.profile.schema, &plan.sync_id)
                    .await?;
            Some(
                self.open_checkpoint(
                    &store,
                    &plan,
                    (ledger_cut, started_from.as_ref()),
                    remove_done_files,
                )
                .await?,
            )
        } else {
            None
        };
        let checkpoint_dir = manager.as_ref().map(|_| store.describe_sync(&plan.sync_id));
        self.progress.source_size(plan.fingerprint.size_bytes);
        let plan = if cleaned {
            Plan {
                source: None,
                ..plan
            }
        } else {
            plan
        };
        let run = Run {
            shared: Shared {
                pipeline: self,
                plan: &plan,
                sync_ref: registered.sync_ref,
                store,
                manager: manager.map(|m| Arc::new(Mutex::new(m))),
                started,
                checkpoint_dir,
                ledger_cut,
                loader: run_loader(self, &plan.sync_id),
                unknown_columns: Vec::new(),
                profile: self.profile.clone().with_stored(&stored),
                writer: None,
                mode,
                claim_open: std::sync::atomic::AtomicBool::new(false),
            },
            client,
            pid: 0,
            helpers: Vec::new(),
        };
        if cleaned {
            run.finished().await
        } else {
            Box::pin(run.execute()).await
        }
    }

    /// Registers the sync for this run (status IN_PROGRESS, its `sync_seq`).
    async fn register(
        &self,
        client: &tokio_postgres::Client,
        plan: &Plan,
        store: &Store,
    ) -> Result<Registered, PipelineError> {
        let schema = &self.profile.schema;
        let stored = crate::status::stored_sync(client, schema, &plan.sync_id).await?;
        let finished_before = stored
            .as_ref()
            .is_some_and(|s| matches!(s.status, SyncStatus::Success | SyncStatus::PartialSuccess));
        let registration = SyncRegistration {
            sync_id: plan.sync_id.clone(),
            file_name: plan.file_name.clone(),
            file_path: plan.source_path.clone(),
            file_size_bytes: i64::try_from(plan.fingerprint.size_bytes).ok(),
            checkpoint_location: store.reopenable_location(),
        };
        let sync_ref = crate::status::register_sync(client, schema, &registration).await?;
        if plan.source.is_some() {
            crate::status::record_source_fingerprint(
                client,
                schema,
                &plan.sync_id,
                &plan.fingerprint,
            )
            .await?;
        }
        Ok(Registered {
            sync_ref,
            finished_before,
        })
    }

    /// Whether the sync has a checkpoint (never, without checkpointing).
    async fn has_checkpoint(&self, store: &Store, plan: &Plan) -> Result<bool, PipelineError> {
        if !self.settings.enable_checkpointing {
            return Ok(false);
        }
        let mut manager = CheckpointManager::new(store.clone(), plan.sync_id.clone());
        Ok(manager.checkpoint_exists().await?)
    }

    /// Opens the sync's checkpoint, creating it when there is none, and refuses it when the
    /// source has changed: since the checkpoint was made, or, for a checkpoint made again
    /// for a sync with committed chunks, since the sync started (`started_from`, the
    /// fingerprint `sync_metadata` recorded).
    async fn open_checkpoint(
        &self,
        store: &Store,
        plan: &Plan,
        (ledger_cut, started_from): (Option<ChunkCut>, Option<&SourceFingerprint>),
        remove_done_files: bool,
    ) -> Result<CheckpointManager, PipelineError> {
        let options = CheckpointOptions {
            compression: self
                .settings
                .compression
                .unwrap_or_else(|| ChunkCompression::for_location(store.location())),
            remove_done_files,
            ..CheckpointOptions::default()
        };
        let mut manager =
            CheckpointManager::new(store.clone(), plan.sync_id.clone()).with_options(options);
        if manager.checkpoint_exists().await? {
            // The chunks were cut from the source as it was: a source that has changed since
            // is refused, whatever the phase (a resume never mixes two versions of a file).
            if let (Some(m), Some(source)) = (manager.manifest(), &plan.source)
                && let Some(mismatch) = source_mismatch(m, source).await?
            {
                return Err(CheckpointError::from(mismatch).into());
            }
        } else {
            // The chunks are cut again from the source (a checkpoint cleaned up, deleted, or
            // discarded by `--rebuild-checkpoint`): never from other bytes than the committed
            // ones were cut from.
            if let (Some(recorded), Some(_)) = (started_from, &plan.source) {
                verify_fingerprint(&plan.sync_id, recorded, &plan.fingerprint)
                    .map_err(CheckpointError::from)?;
            }
            manager
                .create_checkpoint(NewCheckpoint {
                    source_file: plan.file_name.clone(),
                    source_path: plan.source_path.clone(),
                    fingerprint: plan.fingerprint.clone(),
                    cut: ledger_cut.unwrap_or_else(|| self.settings_cut()),
                })
                .await?;
        }
        Ok(manager)
    }
}

/// The sync as registered for a run.
struct Registered {
    sync_ref: SyncRef,
    /// It had ended SUCCESS or PARTIAL_SUCCESS before this run.
    finished_before: bool,
}
