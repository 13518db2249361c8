//! Damage a resume looks for before it trusts a checkpoint, and the one repair it makes.
//!
//! A checkpoint written by datsync is consistent: chunk ids `0..n` with no hole, each
//! chunk's lines after the previous one's, nothing after the chunk that ends the source,
//! every journal object readable and named by its own sequence number. A checkpoint damaged
//! from outside (a journal object deleted, copied, edited or truncated; a chunk file
//! replaced) breaks one of these, and [`Manifest::audit`] finds it without reading a chunk
//! file. A chunk file that disagrees with its entry is found when it is read
//! ([`CheckpointManager::load_chunk`]).
//!
//! The repair is always the same: the damaged entries are dropped
//! ([`CheckpointManager::forget_chunks`]) and the conversion is reopened, so that the
//! pipeline cuts those chunks again from the source (whose bytes the manifest's fingerprint
//! vouches for) while the ledger in PostgreSQL decides which of them are committed. Dropping
//! an entry never loses a committed chunk, and never loads one twice.

use std::collections::BTreeSet;
use std::fmt;

use super::manifest::Manifest;
use super::{CheckpointError, CheckpointManager};
use crate::model::{CheckpointStatus, ChunkId};
use crate::store::ObjectKey;

/// What is wrong with a checkpoint's chunk entries, found without reading a chunk file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Damage {
    /// Chunk ids missing between the recorded ones (their journal objects were lost), as
    /// ranges `first..=last`.
    pub gaps: Vec<(ChunkId, ChunkId)>,
    /// Entries recorded after the chunk that ends the source: the source has no such chunk.
    pub past_end: Vec<ChunkId>,
    /// Entries whose lines cannot be right: they run backwards, hold more rows than lines or
    /// than a chunk may, or do not come after the previous chunk's.
    pub bad_lines: Vec<ChunkId>,
    /// Entries that say the chunk is done (completed or skipped) when the ledger in
    /// PostgreSQL has no commit of it (set by the pipeline, which reads the ledger).
    pub unconfirmed: Vec<ChunkId>,
    /// Journal objects left unread: each one's name and why (unreadable, or holding
    /// another entry than its name says: a copy).
    pub journal: Vec<String>,
}

impl Damage {
    /// Whether nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.gaps.is_empty()
            && self.past_end.is_empty()
            && self.bad_lines.is_empty()
            && self.unconfirmed.is_empty()
            && self.journal.is_empty()
    }

    /// The entries to drop: every damaged one.
    pub fn to_forget(&self) -> Vec<ChunkId> {
        let set: BTreeSet<ChunkId> = self
            .past_end
            .iter()
            .chain(&self.bad_lines)
            .chain(&self.unconfirmed)
            .copied()
            .collect();
        set.into_iter().collect()
    }

    /// Whether the repair cuts chunks from the source again (anything beyond ignored
    /// journal objects).
    pub fn needs_source(&self) -> bool {
        !(self.gaps.is_empty()
            && self.past_end.is_empty()
            && self.bad_lines.is_empty()
            && self.unconfirmed.is_empty())
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids = |ids: &[ChunkId]| {
            ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !self.gaps.is_empty() {
            let gaps: Vec<String> = self
                .gaps
                .iter()
                .map(|(first, last)| {
                    if first == last {
                        format!("chunk {first}")
                    } else {
                        format!("chunks {first} to {last}")
                    }
                })
                .collect();
            parts.push(format!(
                "no entry for {} (a gap in the journal)",
                gaps.join(", ")
            ));
        }
        if !self.past_end.is_empty() {
            parts.push(format!(
                "an entry for chunk {} after the chunk that ends the source (a stray entry)",
                ids(&self.past_end)
            ));
        }
        if !self.bad_lines.is_empty() {
            parts.push(format!(
                "the entry of chunk {} names lines that cannot follow the previous chunk's",
                ids(&self.bad_lines)
            ));
        }
        if !self.unconfirmed.is_empty() {
            parts.push(format!(
                "the entry of chunk {} says it is done, but the database has no commit of it",
                ids(&self.unconfirmed)
            ));
        }
        for journal in &self.journal {
            parts.push(format!("journal object {journal}"));
        }
        f.write_str(&parts.join("; "))
    }
}

impl Manifest {
    /// The damage visible in the entries themselves (see the module docs); the pipeline adds
    /// [`Damage::unconfirmed`] from the ledger and the manager [`Damage::journal`].
    pub fn audit(&self) -> Damage {
        let mut damage = Damage::default();
        let mut expected = 0u32;
        let mut previous_last = None;
        let mut ended = false;
        for c in &self.chunks {
            if expected < c.chunk_id.0 {
                damage
                    .gaps
                    .push((ChunkId(expected), ChunkId(c.chunk_id.0 - 1)));
            }
            expected = c.chunk_id.0.saturating_add(1);
            if ended {
                damage.past_end.push(c.chunk_id);
                continue;
            }
            let span = c
                .last_line
                .checked_sub(c.first_line)
                .map(|d| d.saturating_add(1));
            let impossible = span.is_none_or(|span| c.rows == 0 || c.rows > span)
                || (self.chunk_size > 0 && c.rows > self.chunk_size)
                || previous_last.is_some_and(|last| c.first_line <= last);
            if impossible {
                damage.bad_lines.push(c.chunk_id);
                // The next chunk is checked against the lines of the last good one.
                continue;
            }
            previous_last = Some(c.last_line);
            ended = c.source_end;
        }
        damage
    }
}

impl CheckpointManager {
    /// Journal objects that were not applied when the checkpoint was opened: each one's name
    /// and why (see [`Damage::journal`]); they are deleted at the next rewrite of the
    /// manifest.
    pub fn damaged_journal(&self) -> Vec<String> {
        self.state
            .as_ref()
            .map(|s| s.damaged.clone())
            .unwrap_or_default()
    }

    /// Repairs a damaged checkpoint: drops the entries of `chunks` and their files, and
    /// when `reopen` moves a finalized conversion back to `converting`, so that the missing
    /// chunks are cut again from the source (and [`Self::finalize_conversion`] checks the
    /// source's SHA-256 once more). Rewrites the manifest, which also deletes the journal
    /// objects left unread.
    pub async fn forget_chunks(
        &mut self,
        chunks: &[ChunkId],
        reopen: bool,
    ) -> Result<(), CheckpointError> {
        let sync_id = self.sync_id.clone();
        let state = self.loaded().await?;
        let mut next = state.manifest.clone();
        next.chunks.retain(|c| !chunks.contains(&c.chunk_id));
        next.total_chunks = u32::try_from(next.chunks.len()).unwrap_or(u32::MAX);
        if reopen && next.phase != CheckpointStatus::Converting {
            next.phase = CheckpointStatus::Converting;
            next.status = CheckpointStatus::Converting;
        }
        for chunk in chunks {
            state.unrecorded.remove(chunk);
        }
        state.damaged.clear();
        self.commit(next).await?;
        for &chunk in chunks {
            self.store
                .delete(&ObjectKey::chunk(&sync_id, chunk))
                .await?;
        }
        Ok(())
    }
}
