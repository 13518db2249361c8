//! The start of a run on a checkpoint: the ledger wins over the manifest. A chunk the ledger
//! has but the manifest does not show done (a crash came between its commit and its
//! manifest update) is marked completed, never loaded again.
//!
//! Then the checkpoint is audited (`checkpoint/audit.rs`): a gap in the chunk ids, a stray
//! entry after the chunk that ends the source, an entry whose lines cannot be right, an
//! entry done that the ledger has no commit of, a journal object unreadable or copied. Damage
//! is repaired in this same run: the damaged entries are dropped and the conversion is
//! reopened, so that the converter cuts the missing chunks again from the source (verified
//! unchanged when the checkpoint was opened) and the ledger decides which are committed.
//! Without a readable source the run is refused, naming the damage and how to recover.

use std::collections::{BTreeSet, HashMap};

use super::PipelineError;
use super::run::Run;
use crate::checkpoint::{CheckpointManager, ChunkOutcome};
use crate::model::{CheckpointStatus, ChunkId};
use crate::status::LedgerChunk;

/// The chunks the ledger records as committed, by id.
pub(super) type Ledger = HashMap<ChunkId, LedgerChunk>;

/// What is left of phase 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Conversion {
    /// Every chunk is converted.
    Done,
    /// The chunks recorded are converted; the reader decodes past them and converts the rest.
    Continue,
    /// Every chunk is recorded (the last one is shorter than the chunk size: the source
    /// ended there); only the source's SHA-256 is missing.
    HashOnly,
}

/// The manifest once the ledger is applied.
#[derive(Debug, Clone)]
pub(super) struct Reconciled {
    /// Chunks the manifest records (converted before this run): the converter cuts the
    /// others.
    pub(super) recorded: BTreeSet<ChunkId>,
    /// Recorded chunks still to load, by id.
    pub(super) pending: Vec<ChunkId>,
    /// What is left of phase 1.
    pub(super) conversion: Conversion,
}

impl Run<'_> {
    /// The ledger of the sync.
    pub(super) async fn ledger(&self) -> Result<Ledger, PipelineError> {
        let schema = &self.pipeline.profile.schema;
        let chunks =
            crate::status::ledger_chunks(&self.client, schema, self.plan.sync_id.as_str()).await?;
        Ok(chunks
            .into_iter()
            .map(|c| (ChunkId(c.chunk_id), c))
            .collect())
    }

    /// Marks completed every chunk the ledger has but the manifest does not; returns what is
    /// left to do. Without a checkpoint, everything is: the whole source is converted.
    pub(super) async fn reconcile(&self, ledger: &Ledger) -> Result<Reconciled, PipelineError> {
        let nothing_recorded = Reconciled {
            recorded: BTreeSet::new(),
            pending: Vec::new(),
            conversion: Conversion::Continue,
        };
        let Some(manager) = &self.manager else {
            return Ok(nothing_recorded);
        };
        let mut m = manager.lock().await;
        let Some(manifest) = m.manifest().cloned() else {
            return Ok(nothing_recorded);
        };
        for entry in manifest.chunks.iter().filter(|c| !c.status.is_done()) {
            if let Some(done) = ledger.get(&entry.chunk_id) {
                m.mark_chunk_complete(entry.chunk_id, outcome_of(done))
                    .await?;
            }
        }
        let repaired = self.repair(&mut m, ledger).await?;
        let Some(manifest) = m.manifest().cloned() else {
            return Ok(nothing_recorded);
        };
        let pending = m.get_pending_chunks().await?;
        // Every chunk is recorded when the last one was cut by the end of the source (never
        // inferred from its being short, once chunks are cut by bytes too) and none is
        // missing before it.
        let conversion = match manifest.phase {
            CheckpointStatus::Converting if manifest.last_chunk_ends_source() && !repaired => {
                Conversion::HashOnly
            }
            CheckpointStatus::Converting => Conversion::Continue,
            _ => {
                self.pipeline
                    .progress
                    .total_chunks(u64::from(manifest.total_chunks));
                Conversion::Done
            }
        };
        Ok(Reconciled {
            recorded: manifest.chunks.iter().map(|c| c.chunk_id).collect(),
            pending,
            conversion,
        })
    }

    /// Audits the checkpoint against itself and the ledger and repairs what is damaged (see
    /// the module docs); `true` when chunks are to be cut again. A repair that needs the
    /// source when it cannot be read is refused.
    async fn repair(
        &self,
        m: &mut CheckpointManager,
        ledger: &Ledger,
    ) -> Result<bool, PipelineError> {
        let Some(manifest) = m.manifest() else {
            return Ok(false);
        };
        let mut damage = manifest.audit();
        damage.unconfirmed = manifest
            .chunks
            .iter()
            .filter(|c| c.status.is_done() && !ledger.contains_key(&c.chunk_id))
            .map(|c| c.chunk_id)
            .collect();
        damage.journal = m.damaged_journal();
        if damage.is_empty() {
            return Ok(false);
        }
        let sync_id = &self.plan.sync_id;
        if damage.needs_source() && self.plan.source.is_none() {
            return Err(PipelineError::DamagedCheckpoint {
                sync_id: sync_id.clone(),
                damage: damage.to_string(),
                source_path: self.plan.source_path.clone(),
            });
        }
        tracing::warn!(%sync_id, damage = %damage, "the checkpoint is damaged; repairing it from the source (the database decides which chunks are committed)");
        let forget = damage.to_forget();
        m.forget_chunks(&forget, damage.needs_source()).await?;
        Ok(damage.needs_source())
    }
}

/// What the ledger recorded of a committed chunk, as the manifest keeps it.
pub(super) fn outcome_of(done: &LedgerChunk) -> ChunkOutcome {
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    ChunkOutcome {
        records_inserted: n(done.inserted),
        records_updated: n(done.updated),
        validation_errors: n(done.validation_errors_count),
        rows_rejected: n(done.rejected),
    }
}
