//! Finding the unfinished sync of a source, so that `run SOURCE` continues it.

use crate::checkpoint::CheckpointManager;
use crate::model::{CheckpointStatus, SyncId};
use crate::source::SourceRef;
use crate::store::Store;

use super::PipelineError;

/// The newest checkpoint made from `source_path` with the same fingerprint that is not
/// completed. Unreadable checkpoints are passed over with a warning (`datsync status` and
/// `resume` report them in full).
pub(super) async fn unfinished_sync(
    store: &Store,
    source: &SourceRef,
) -> Result<Option<SyncId>, PipelineError> {
    let source_path = source.name();
    let mut ids = store.list_syncs().await?;
    ids.sort();
    for id in ids.into_iter().rev() {
        let mut manager = CheckpointManager::new(store.clone(), id.clone());
        match manager.checkpoint_exists().await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(sync_id = %id, error = %e, "skipping an unreadable checkpoint");
                continue;
            }
        }
        let Some(m) = manager.manifest() else {
            continue;
        };
        if m.source_path == source_path
            && m.status != CheckpointStatus::Completed
            && super::same_source(m, source).await?.is_ok()
        {
            return Ok(Some(id));
        }
    }
    Ok(None)
}
