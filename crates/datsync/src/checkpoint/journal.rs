//! How a checkpoint's state is written: a chunk transition is one journal object; a change
//! of the sync's state rewrites `manifest.json` (a compaction), which folds the journal in
//! (see the module docs for why and when).

use bytes::Bytes;
use futures::StreamExt;

use super::manager::{JOURNAL_IO_CONCURRENCY, count_done};
use super::manifest::{JournalEntry, Manifest};
use super::{CheckpointError, CheckpointManager};
use crate::store::ObjectKey;

impl CheckpointManager {
    /// Records one chunk transition: a journal entry, then (once the journal holds
    /// `max(compact_every, total_chunks)` entries) a rewrite of the manifest. The in-memory manifest changes only once the entry is written,
    /// and by the same [`Manifest::apply`] that replays the journal on load.
    pub(super) async fn journal(&mut self, mut entry: JournalEntry) -> Result<(), CheckpointError> {
        let state = self.loaded().await?;
        entry.seq = state.next_seq;
        state.next_seq += 1;
        let bytes = serde_json::to_vec(&entry).map_err(|source| CheckpointError::Serialize {
            sync_id: self.sync_id.clone(),
            source,
        })?;
        self.store
            .put(
                &ObjectKey::journal(&self.sync_id, entry.seq),
                Bytes::from(bytes),
            )
            .await?;
        let seq = entry.seq;
        let compact_every = self.options.compact_every;
        let state = self.loaded().await?;
        let id = entry.chunk.chunk_id;
        let was_done = state.manifest.chunk(id).is_some_and(|c| c.status.is_done());
        match (was_done, entry.chunk.status.is_done()) {
            (false, true) => state.done += 1,
            (true, false) => state.done -= 1,
            _ => {}
        }
        state.manifest.apply(entry);
        state.since_compaction += 1;
        state.stale.push(seq);
        let threshold = compact_every.max(state.manifest.total_chunks);
        if state.since_compaction >= threshold
            && let Err(e) = self.compact().await
        {
            // The transition is durable in the journal; compaction is retried next time.
            tracing::warn!(sync_id = %self.sync_id, error = %e, "manifest compaction failed");
        }
        Ok(())
    }

    /// Replaces the manifest with `next` (a change of sync state) and folds the journal in.
    pub(super) async fn commit(&mut self, mut next: Manifest) -> Result<(), CheckpointError> {
        let state = self.loaded().await?;
        next.journal_seq = state.next_seq - 1;
        self.write_manifest(&next).await?;
        let state = self.loaded().await?;
        state.done = count_done(&next);
        state.manifest = next;
        state.since_compaction = 0;
        self.delete_stale().await;
        Ok(())
    }

    /// Rewrites `manifest.json` now, folding the journal in (it is done automatically; this
    /// is for a caller that wants the file alone up to date, for example before exiting).
    pub async fn compact(&mut self) -> Result<(), CheckpointError> {
        let manifest = self.loaded().await?.manifest.clone();
        self.commit(manifest).await
    }

    /// Deletes journal objects folded into the manifest, several at a time; failures leave
    /// them for next time (they are ignored when read).
    async fn delete_stale(&mut self) {
        let Some(state) = self.state.as_mut() else {
            return;
        };
        let folded = std::mem::take(&mut state.stale);
        let (store, sync_id) = (&self.store, &self.sync_id);
        let failed: Vec<u64> = futures::stream::iter(folded)
            .map(|seq| async move {
                let deleted = store.delete(&ObjectKey::journal(sync_id, seq)).await;
                deleted.is_err().then_some(seq)
            })
            .buffer_unordered(JOURNAL_IO_CONCURRENCY)
            .filter_map(std::future::ready)
            .collect()
            .await;
        if let Some(state) = self.state.as_mut() {
            state.stale.extend(failed);
        }
    }

    pub(super) async fn write_manifest(&self, manifest: &Manifest) -> Result<(), CheckpointError> {
        let bytes =
            serde_json::to_vec_pretty(manifest).map_err(|source| CheckpointError::Serialize {
                sync_id: self.sync_id.clone(),
                source,
            })?;
        self.store
            .put(&ObjectKey::manifest(&self.sync_id), Bytes::from(bytes))
            .await?;
        Ok(())
    }
}
