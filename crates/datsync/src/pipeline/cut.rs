//! How a sync's chunks are cut from its source ([`ChunkCut`]): by the settings for a new
//! sync; as recorded (manifest, else ledger) for one that has chunks already, so that chunk
//! ids name the same lines on every run.

use super::Pipeline;
use crate::model::ChunkCut;
use crate::parse::ParseOptions;

impl Pipeline {
    /// How a new sync cuts its chunks: the settings.
    pub(super) fn settings_cut(&self) -> ChunkCut {
        let s = &self.settings;
        ChunkCut {
            rows: s.chunk_size as u64,
            bytes: Some(s.chunk_bytes as u64),
            max_line_bytes: Some(s.max_line_bytes as u64),
        }
    }

    /// A recorded cut with its line limit filled in (the current setting, when the cut did
    /// not record one).
    pub(super) fn effective_cut(&self, cut: ChunkCut) -> ChunkCut {
        ChunkCut {
            max_line_bytes: cut
                .max_line_bytes
                .or(Some(self.settings.max_line_bytes as u64)),
            ..cut
        }
    }

    /// The decoder settings that cut chunks as `cut` says.
    pub(super) fn parse_options(&self, cut: ChunkCut) -> ParseOptions {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        ParseOptions {
            batch_rows: size(cut.rows),
            batch_bytes: cut.bytes.map_or(usize::MAX, size),
            max_line_bytes: cut
                .max_line_bytes
                .map_or(self.settings.max_line_bytes, size),
            ..self.settings.parse_options()
        }
    }
}
