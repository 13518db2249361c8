//! The rejects directory of a store: `rejects/<sync_id>/…`, kept apart from the checkpoint
//! directories so that cleanup after a successful sync keeps it (see [`crate::rejects`] for
//! what the files hold), listed and removed here.

use futures::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path;

use super::faults::Verdict;
use super::{DELETE_CONCURRENCY, ObjectInfo, ObjectKey, REJECTS_DIR, Store, StoreError};
use crate::model::SyncId;

impl Store {
    /// Every object of a sync's rejects directory, sorted by key (none when it has none).
    pub async fn list_rejects(&self, sync: &SyncId) -> Result<Vec<ObjectInfo>, StoreError> {
        let dir = ObjectKey::rejects_dir(sync);
        if self.read_verdict() == Verdict::Dead {
            return Err(self.injected("list", &dir));
        }
        let metas: Vec<_> = self
            .inner
            .list(Some(&dir.0))
            .try_collect()
            .await
            .map_err(|e| self.list_error(&self.describe(&dir), e))?;
        let mut out: Vec<ObjectInfo> = metas
            .into_iter()
            .map(|m| {
                let key = ObjectKey(m.location);
                ObjectInfo {
                    kind: key.kind(),
                    key,
                    size: m.size,
                    last_modified: m.last_modified,
                }
            })
            .collect();
        out.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
        Ok(out)
    }

    /// The syncs that have a rejects directory.
    pub async fn list_rejects_syncs(&self) -> Result<Vec<SyncId>, StoreError> {
        if self.read_verdict() == Verdict::Dead {
            return Err(self.injected_at("list", self.location.to_string()));
        }
        let prefix = Path::from(REJECTS_DIR);
        let listing = self
            .inner
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|e| self.list_error(&self.location.to_string(), e))?;
        let mut ids: Vec<SyncId> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().and_then(|n| SyncId::parse(n).ok()))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Removes a sync's rejects directory, then, on a local store, the directory itself with
    /// any temporary file a killed write left.
    pub async fn delete_rejects(&self, sync: &SyncId) -> Result<(), StoreError> {
        let objects = self.list_rejects(sync).await?;
        futures::stream::iter(objects.into_iter().map(|o| o.key))
            .map(|key| async move { self.delete(&key).await })
            .buffer_unordered(DELETE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        if let Some(root) = &self.local_root {
            let dir = root.join(REJECTS_DIR).join(sync.as_str());
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(StoreError::Object {
                        op: "delete",
                        object: dir.display().to_string(),
                        source: Box::new(e),
                    });
                }
            }
        }
        Ok(())
    }
}
