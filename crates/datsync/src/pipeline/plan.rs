//! What a run works on: the source and the sync. `run SOURCE` continues the source's
//! unfinished sync when its checkpoint is there (same name, same bytes), else starts a new
//! one; `resume SYNC_ID` finds the sync's source in its manifest, else in `sync_metadata`.

use crate::checkpoint::{CheckpointManager, Manifest, SourceMismatch, verify_source};
use crate::model::{CheckpointStatus, SourceFingerprint, SyncId};
use crate::source::SourceRef;
use crate::store::Store;

use super::{Pipeline, PipelineError, RunSummary};

/// What a run works on.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub(super) sync_id: SyncId,
    /// The source, when it can be read.
    pub(super) source: Option<SourceRef>,
    /// The source's base name.
    pub(super) file_name: String,
    /// The source as recorded: an absolute path or an `az://` URL.
    pub(super) source_path: String,
    /// What the source is (as recorded, when it cannot be read).
    pub(super) fingerprint: SourceFingerprint,
}

impl Pipeline {
    /// The plan of `run SOURCE`: the sync `sync_id` when given, else (unless `fresh`) the
    /// source's unfinished sync: `unfinished`, the newest sync of these bytes when
    /// `sync_metadata` says it did not end and its checkpoint is in this run's store (that
    /// checkpoint may say every chunk is done: a run killed before its final status; see
    /// [`continuable`]), else the newest checkpoint of these bytes not completed; else a new
    /// sync.
    pub(super) async fn plan_run(
        &self,
        store: &Store,
        source: SourceRef,
        sync_id: Option<SyncId>,
        fresh: bool,
        unfinished: Option<SyncId>,
    ) -> Result<Plan, PipelineError> {
        let path = source.name();
        let discover = !fresh && sync_id.is_none() && self.settings.enable_checkpointing;
        let found = if !discover {
            None
        } else if let Some(id) = unfinished
            && continuable(store, &id, &source).await?
        {
            Some(id)
        } else {
            unfinished_sync(store, &source).await?
        };
        if let Some(id) = &found {
            tracing::info!(sync_id = %id, source = %path, "continuing the unfinished sync of this source (use --fresh to start a new one)");
        }
        Ok(Plan {
            sync_id: sync_id.or(found).unwrap_or_else(new_sync_id),
            file_name: source.file_name(),
            fingerprint: source.fingerprint(),
            source: Some(source),
            source_path: path,
        })
    }

    /// What the newest sync of `source`'s bytes made of them: the most recently started
    /// sync of the same path whose source had the same size and modification time (a blob:
    /// the same ETag). [`Earlier::Loaded`] with its summary if it ended with a final status
    /// (SUCCESS, BAD_INPUT, or PARTIAL_SUCCESS with rows rejected and nothing pending);
    /// [`Earlier::Unfinished`] if it did not end so (FAILED, IN_PROGRESS, failed chunks): the
    /// run continues it. Called with the source's lock held, so two runs of one source cannot
    /// both decide.
    pub(super) async fn earlier(
        &self,
        client: &tokio_postgres::Client,
        source: &SourceRef,
    ) -> Result<Earlier, PipelineError> {
        let started = std::time::Instant::now();
        let found = source.fingerprint();
        let earlier =
            crate::status::earlier_syncs(client, &self.profile.schema, &source.name()).await?;
        let Some(sync) = earlier
            .into_iter()
            .find(|s| same_version(&s.fingerprint, &found))
        else {
            return Ok(Earlier::None);
        };
        let mut summary = RunSummary {
            sync_id: sync.sync_id,
            status: sync.status,
            counts: sync.counts,
            chunks_skipped_on_resume: 0,
            duration_s: started.elapsed().as_secs_f64(),
            time_saved_s: None,
            checkpoint_dir: None,
            rejects_dir: None,
            unknown_columns: sync.unknown_columns,
            resumed: false,
            error: sync.error_message,
            error_class: None,
            interrupted: false,
            all_older: false,
            already_loaded: false,
            derived_failed: 0,
            hooks_failed: 0,
        };
        // A PARTIAL_SUCCESS with rows pending had failed chunks: not final.
        if !summary.is_final() {
            return Ok(Earlier::Unfinished(summary.sync_id));
        }
        summary.already_loaded = true;
        tracing::info!(sync_id = %summary.sync_id, status = %summary.status, source = %source.name(),
            "already loaded by this sync; nothing to do (use --fresh to load it again)");
        Ok(Earlier::Loaded(Box::new(summary)))
    }

    /// The plan of `resume SYNC_ID`: the source its manifest names, else the one
    /// `sync_metadata` names. A source that cannot be opened leaves the plan without one: a
    /// sync whose chunks are all converted can still finish.
    pub(super) async fn plan_resume(
        &self,
        store: &Store,
        sync_id: SyncId,
    ) -> Result<Plan, PipelineError> {
        let Some(recorded) = self.recorded_source(store, &sync_id).await? else {
            return Err(PipelineError::UnknownSync(sync_id));
        };
        let (source, fingerprint) = match SourceRef::open(&recorded.path).await {
            Ok(source) => {
                let fingerprint = source.fingerprint();
                (Some(source), fingerprint)
            }
            Err(e) => {
                tracing::warn!(sync_id = %sync_id, source = %recorded.path, error = %e, "the source cannot be opened; finishing from the checkpoint");
                (None, recorded.fingerprint.unwrap_or_default())
            }
        };
        Ok(Plan {
            sync_id,
            source,
            file_name: recorded.file_name,
            source_path: recorded.path,
            fingerprint,
        })
    }

    /// Where a sync's source is: its manifest says, else its `sync_metadata` row.
    async fn recorded_source(
        &self,
        store: &Store,
        sync_id: &SyncId,
    ) -> Result<Option<RecordedSource>, PipelineError> {
        if self.settings.enable_checkpointing {
            let mut manager = CheckpointManager::new(store.clone(), sync_id.clone());
            if manager.checkpoint_exists().await?
                && let Some(m) = manager.manifest()
            {
                return Ok(Some(RecordedSource {
                    path: m.source_path.clone(),
                    file_name: m.source_file.clone(),
                    fingerprint: Some(m.source_fingerprint.clone()),
                }));
            }
        }
        let mut client = crate::pg::connect(&self.pg).await?;
        crate::pg::init_db(&mut client, &self.profile).await?;
        let stored = crate::status::stored_sync(&client, &self.profile.schema, sync_id).await?;
        Ok(stored.and_then(|stored| {
            let path = stored.file_path?;
            Some(RecordedSource {
                file_name: stored.file_name.unwrap_or_else(|| base_name(&path)),
                path,
                fingerprint: None,
            })
        }))
    }
}

/// What the newest sync of a source's bytes made of them.
#[derive(Debug)]
pub(super) enum Earlier {
    /// No sync of these bytes.
    None,
    /// They were loaded: the summary of the sync that did.
    Loaded(Box<RunSummary>),
    /// Their newest sync did not end: the run continues it.
    Unfinished(SyncId),
}

/// Whether `run SOURCE` can continue the unfinished sync `id` of `source`'s bytes: its
/// checkpoint is in this run's store and was made from the same path and bytes (whatever its
/// status: a checkpoint whose chunks are all done still has the final steps ahead). Without
/// one here — expired and removed, deleted, or in another store that `submit`'s workers
/// load it from — the run does as before: it continues the newest unfinished checkpoint of
/// the source, else starts a new sync (`resume SYNC_ID` continues a sync from its ledger).
async fn continuable(
    store: &Store,
    id: &SyncId,
    source: &SourceRef,
) -> Result<bool, PipelineError> {
    checkpoint_of(store, id, source, |_| true).await
}

/// Whether sync `id` has a readable checkpoint in `store` made from `source` (same path, same
/// bytes) that `wanted` accepts; `wanted` is asked before the bytes are compared, which may
/// hash the source. Unreadable checkpoints are passed over with a warning (`datsync status`
/// and `resume` report them in full).
async fn checkpoint_of(
    store: &Store,
    id: &SyncId,
    source: &SourceRef,
    wanted: impl Fn(&Manifest) -> bool,
) -> Result<bool, PipelineError> {
    let mut manager = CheckpointManager::new(store.clone(), id.clone());
    match manager.checkpoint_exists().await {
        Ok(true) => {}
        Ok(false) => return Ok(false),
        Err(e) => {
            tracing::warn!(sync_id = %id, error = %e, "skipping an unreadable checkpoint");
            return Ok(false);
        }
    }
    let Some(m) = manager.manifest() else {
        return Ok(false);
    };
    Ok(m.source_path == source.name() && wanted(m) && source_mismatch(m, source).await?.is_none())
}

/// A sync's source as recorded.
struct RecordedSource {
    path: String,
    file_name: String,
    /// The manifest's fingerprint (`sync_metadata` keeps none).
    fingerprint: Option<SourceFingerprint>,
}

/// The newest checkpoint made from `source` (same path, same bytes) that is not completed.
async fn unfinished_sync(
    store: &Store,
    source: &SourceRef,
) -> Result<Option<SyncId>, PipelineError> {
    let mut ids = store.list_syncs().await?;
    ids.sort();
    for id in ids.into_iter().rev() {
        if checkpoint_of(store, &id, source, |m| {
            m.status != CheckpointStatus::Completed
        })
        .await?
        {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// How `source` differs from the bytes the manifest was made from; `None` when it holds
/// them. Same size but another modification time or ETag: the bytes decide when the manifest
/// knows their SHA-256 (a copied, touched or re-uploaded file is still the same source).
pub(super) async fn source_mismatch(
    m: &Manifest,
    source: &SourceRef,
) -> Result<Option<SourceMismatch>, PipelineError> {
    let found = source.fingerprint();
    let Err(mismatch) = verify_source(m, &found) else {
        return Ok(None);
    };
    let recorded = &m.source_fingerprint;
    if recorded.size_bytes == found.size_bytes && recorded.sha256.is_some() {
        let source = source.clone();
        let digest = tokio::task::spawn_blocking(move || source.digest())
            .await
            .map_err(|error| PipelineError::Internal {
                task: "hashing the source",
                error,
            })??;
        if recorded.sha256.as_deref() == Some(digest.sha256.as_str()) {
            return Ok(None);
        }
    }
    Ok(Some(mismatch))
}

/// Whether two fingerprints taken before reading name the same version of a source: the
/// same size, modification time and ETag (a blob's), or the same SHA-256 when both know it.
fn same_version(recorded: &SourceFingerprint, found: &SourceFingerprint) -> bool {
    if recorded.size_bytes != found.size_bytes {
        return false;
    }
    if let (Some(a), Some(b)) = (&recorded.sha256, &found.sha256) {
        return a == b;
    }
    recorded.etag == found.etag && recorded.modified == found.modified
}

/// A new sync id: the current UTC time and eight random hex digits.
pub(crate) fn new_sync_id() -> SyncId {
    use std::hash::{BuildHasher, Hasher};
    // `RandomState` is seeded from the OS per process: eight hex digits that two processes
    // started in the same second do not share.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    SyncId::new(chrono::Utc::now(), h.finish() as u32)
}

fn base_name(path: &str) -> String {
    path.rsplit(['/', '\\']).next().unwrap_or(path).to_owned()
}
