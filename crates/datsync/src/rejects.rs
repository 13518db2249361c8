//! What a sync did not load as written, kept outside its checkpoint so that cleanup after a
//! success keeps it: per chunk, the rejected rows (`rejects/<sync_id>/rejects_NNNN.parquet`,
//! written by the pipeline from [`crate::validate`]'s rejects batch) and the value warnings
//! (`rejects/<sync_id>/warnings_NNNN.parquet`, from [`crate::transform`]'s warnings); and
//! reading both back, in line order, as the records `datsync rejects` prints.
//!
//! Both files of a chunk are written before the chunk's transaction commits, and written
//! again, with the same content, when the chunk is loaded again after a crash: they hold
//! exactly what the ledger counts.
//!
//! | file | columns |
//! |---|---|
//! | `rejects_NNNN.parquet` | `_line`, every text column of the chunk (header order), `_raw` (the line, for a row the decoder could not cut), `_column` (the column of the first broken rule), `_reasons` |
//! | `warnings_NNNN.parquet` | `_line`, `column` (source), `target`, `value` (as read), `reason` |
//!
//! Memory: one chunk's two files at a time.

mod read;
mod write;

pub use read::{RecordFormat, RecordWriter, RejectRecord, RejectsError, Selection, read_rejects};
pub use write::warnings_batch;

/// The delimiter shown between the fields of a rejected row whose line was not kept (a row
/// the decoder cut into fields), when the sync did not record its file's.
pub const DEFAULT_RAW_DELIMITER: &str = "~|^";
