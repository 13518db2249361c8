//! Why a sync stops before every chunk is loaded, typed: the input is at fault
//! ([`BadInput`] → BAD_INPUT), something else failed ([`SyncFailure`] → FAILED), or a stop
//! was asked for ([`Halt::Stopped`], not a status). The errors of the stages are kept whole,
//! so their [`ErrorClass`] reaches the run's summary; their text is what `sync_metadata`,
//! the summary and the alert say.

use crate::checkpoint::CheckpointError;
use crate::load::LoadError;
use crate::model::{ChunkId, RowError};
use crate::parse::ParseError;
use crate::pg::{ErrorClass, PgError};
use crate::source::SourceError;
use crate::status::StatusError;
use crate::store::StoreError;
use crate::transform::TransformError;
use crate::validate::ValidateError;

/// How many rejected rows the message of [`TooManyRejects`] quotes.
const QUOTED_REJECTS: usize = 3;

/// Why a sync stopped early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Halt {
    /// The input is at fault: the sync ends BAD_INPUT.
    #[error(transparent)]
    BadInput(#[from] BadInput),
    /// Anything else: the sync ends FAILED.
    #[error(transparent)]
    Failed(#[from] SyncFailure),
    /// A stop was asked for ([`super::PipelineBuilder::stop`]): not a status, the sync goes
    /// on later.
    #[error("stopped on request")]
    Stopped,
    /// The connection that held the writer lock was lost and another process holds the lock
    /// now: this process stops without writing anything more (no status either).
    #[error("the sync's writer lock was lost to another process")]
    LockLost,
}

impl Halt {
    /// Whether trying the sync again can help: the class of the stage's error; bad input
    /// and a stop are fatal (the same input fails the same way; a stop is not a failure).
    pub(crate) fn class(&self) -> ErrorClass {
        match self {
            Self::Failed(failure) => failure.class(),
            Self::BadInput(_) | Self::Stopped => ErrorClass::Fatal,
            Self::LockLost => ErrorClass::Transient,
        }
    }
}

/// The stages' errors that fail a sync, straight into a [`Halt`].
macro_rules! fails_the_sync {
    ($($error:ty),*) => {$(
        impl From<$error> for Halt {
            fn from(e: $error) -> Self {
                Self::Failed(SyncFailure::from(e))
            }
        }
    )*};
}

fails_the_sync!(
    LoadError,
    CheckpointError,
    StoreError,
    SourceError,
    StatusError
);

/// The input cannot be loaded as it is.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BadInput {
    /// The source cannot be decoded.
    #[error("{source_name}: {error}")]
    Parse {
        /// The source.
        source_name: String,
        /// What the decoder found.
        error: ParseError,
    },
    /// The source's columns are not the profile's (a required column is missing).
    #[error("{source_name}: {error}")]
    Columns {
        /// The source.
        source_name: String,
        /// What validation found.
        error: ValidateError,
    },
    /// The header has columns the profile does not know, and the profile says
    /// `unknown_columns = "fail"`.
    #[error(
        "{source_name}: the header has columns profile `{profile}` does not know: {}; the \
         profile says unknown_columns = \"fail\" (add them to the profile or as aliases, or \
         set unknown_columns = \"warn\" to load the known ones)",
        .columns.join(", ")
    )]
    UnknownColumns {
        /// The source.
        source_name: String,
        /// The profile's name.
        profile: String,
        /// The unknown columns (canonical names).
        columns: Vec<String>,
    },
    /// The header lacks optional columns of the profile, and the profile says
    /// `missing_optional = "fail"`.
    #[error(
        "{source_name}: the header lacks optional columns of profile `{profile}`: {}; the \
         profile says missing_optional = \"fail\" (set missing_optional = \"null\" to load \
         them as NULL)",
        .columns.join(", ")
    )]
    MissingOptional {
        /// The source.
        source_name: String,
        /// The profile's name.
        profile: String,
        /// The missing columns (canonical source names).
        columns: Vec<String>,
    },
    /// A chunk has more rejected rows than the threshold allows.
    #[error(transparent)]
    TooManyRejects(Box<TooManyRejects>),
    /// A halt recorded in `sync_metadata` by a worker that did not finish the sync: its
    /// message as recorded (a worker finishing the sync for it).
    #[error("{message}")]
    Recorded {
        /// The recorded error message.
        message: String,
    },
}

/// A chunk whose share of rejected rows is above `VALIDATION_ERROR_THRESHOLD`. It is never
/// committed, so the ledger does not have its errors: they travel here to `sync_metadata`
/// and the alert.
#[derive(Debug, thiserror::Error)]
#[error(
    "{source_name}: chunk {chunk}: {rejected} of {rows_read} rows rejected ({:.1}%), above the \
     threshold of {:.1}% (VALIDATION_ERROR_THRESHOLD); first errors: {}",
    100.0 * crate::validate::error_rate(*rejected, *rows_read),
    100.0 * threshold,
    quoted(errors)
)]
pub(crate) struct TooManyRejects {
    /// The source.
    pub(crate) source_name: String,
    /// The chunk.
    pub(crate) chunk: ChunkId,
    /// Rows rejected in the chunk.
    pub(crate) rejected: u64,
    /// Rows of the chunk.
    pub(crate) rows_read: u64,
    /// The threshold, a fraction.
    pub(crate) threshold: f64,
    /// Rule violations found in the chunk.
    pub(crate) errors_count: u64,
    /// The first violations (the validation error sample).
    pub(crate) errors: Vec<RowError>,
}

/// The first rejected rows, as the message quotes them.
fn quoted(errors: &[RowError]) -> String {
    errors
        .iter()
        .take(QUOTED_REJECTS)
        .map(|e| match &e.column {
            Some(c) => format!("line {} column {c}: {}", e.line, e.reason),
            None => format!("line {}: {}", e.line, e.reason),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Something other than the input failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SyncFailure {
    /// Loading a chunk failed for good.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The database could not be reached for a chunk's load (and not transiently).
    #[error(transparent)]
    Connect(#[from] PgError),
    /// Reading or writing `sync_metadata` failed.
    #[error(transparent)]
    Status(#[from] StatusError),
    /// The checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Writing to the checkpoint store (a rejects file) failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The source cannot be opened or read to the end.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Reading the source failed in the middle of decoding it.
    #[error("{source_name}: read error: {error}")]
    Read {
        /// The source.
        source_name: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A local source changed while the sync was reading or loading it: the run stopped
    /// before anything read after the change was saved or committed.
    #[error(
        "{source_path} changed while this sync was loading it ({change}); the run stopped \
         before any chunk cut after the change was saved or committed (the chunks committed \
         before it hold the file as it was). `datsync run {source_path}` loads the file as it \
         is now, as a new sync; this sync cannot be resumed against the new file"
    )]
    SourceChanged {
        /// The source.
        source_path: String,
        /// What changed.
        change: String,
    },
    /// The conversion is unfinished and the source cannot be read.
    #[error(
        "{source_path}: the source cannot be read, and the conversion of this sync is unfinished"
    )]
    SourceUnreadable {
        /// The source as recorded.
        source_path: String,
    },
    /// A chunk to load has no checkpoint (it was not written).
    #[error("chunk {chunk} has no checkpoint to load")]
    NoCheckpoint {
        /// The chunk.
        chunk: ChunkId,
    },
    /// A chunk file is missing or corrupt and the source cannot be read to regenerate it.
    #[error(
        "{error}; the source cannot be read now, so it cannot be: make {source_path} readable \
         again (the same bytes) and run `datsync resume {sync_id}`, or load the source anew \
         with `datsync run {source_path} --fresh`"
    )]
    CannotRegenerate {
        /// Why the chunk file cannot be used.
        error: Box<CheckpointError>,
        /// The sync.
        sync_id: crate::model::SyncId,
        /// The source as recorded.
        source_path: String,
    },
    /// The accepted rows of a chunk cannot be typed.
    #[error("{source_name}, chunk {chunk}: {error}")]
    Transform {
        /// The source.
        source_name: String,
        /// The chunk.
        chunk: ChunkId,
        /// What failed.
        error: TransformError,
    },
    /// A chunk's rejects file cannot be encoded.
    #[error("chunk {chunk}: writing the rejects file failed: {error}")]
    Rejects {
        /// The chunk.
        chunk: ChunkId,
        /// The Parquet error.
        error: parquet::errors::ParquetError,
    },
    /// A chunk's Parquet file cannot be encoded.
    #[error("chunk {chunk}: writing its Parquet file failed: {error}")]
    Encode {
        /// The chunk.
        chunk: ChunkId,
        /// The Parquet error.
        error: parquet::errors::ParquetError,
    },
    /// A task of the run died (a bug); reported rather than panicking.
    #[error("{task}: {error}")]
    TaskDied {
        /// What the task was doing.
        task: String,
        /// How it ended.
        error: tokio::task::JoinError,
    },
    /// A halt recorded in `sync_metadata` by a worker that did not finish the sync: its
    /// message as recorded (a worker finishing the sync for it).
    #[error("{message}")]
    Recorded {
        /// The recorded error message.
        message: String,
    },
    /// The processor stopped taking chunks while the converter still had some.
    #[error("the processor stopped")]
    ProcessorGone,
    /// The reader thread ended without a result.
    #[error("the source reader stopped without a result")]
    ReaderGone,
    /// The database stayed away for the whole outage budget.
    #[error(
        "the database could not be reached for {}s (DATSYNC_DB_RETRY_FOR): {error}; the \
         checkpoint is kept: `datsync resume {sync_id}` continues the sync once the database \
         is back",
        waited.as_secs()
    )]
    Outage {
        /// The sync.
        sync_id: crate::model::SyncId,
        /// How long the outage was waited out.
        waited: std::time::Duration,
        /// The last failure.
        error: Box<TransientFailure>,
    },
}

impl SyncFailure {
    /// Whether trying again can help: a database error's class; anything else is fatal.
    pub(crate) fn class(&self) -> ErrorClass {
        match self {
            Self::Load(e) => e.class(),
            Self::Connect(e) => e.class(),
            Self::Status(e) => e.class(),
            Self::Outage { .. } => ErrorClass::Transient,
            _ => ErrorClass::Fatal,
        }
    }

    /// A task that died: `task` says what it was doing.
    pub(crate) fn task_died(task: impl Into<String>, error: tokio::task::JoinError) -> Self {
        Self::TaskDied {
            task: task.into(),
            error,
        }
    }
}

/// A chunk given up on after its load attempts: the last transient error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransientFailure {
    /// The database could not be reached.
    #[error(transparent)]
    Connect(PgError),
    /// The load failed.
    #[error(transparent)]
    Load(LoadError),
    /// The workers gave the chunk up after its attempts (`chunk_queue.failed_at`).
    #[error("given up by the workers after its attempts: {last_error}")]
    GivenUp {
        /// The last attempt's error, as the queue recorded it.
        last_error: String,
    },
}

impl TransientFailure {
    /// Whether the database is away or short of resources, rather than a statement having
    /// lost a race.
    pub(crate) fn is_outage(&self) -> bool {
        match self {
            Self::Connect(e) => e.is_outage(),
            Self::Load(e) => e.is_outage(),
            Self::GivenUp { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_rejects_names_the_chunk_the_rate_and_the_first_errors() {
        let error = |line, column: Option<&str>| RowError::new(line, column, None, "bad".into());
        let halt = Halt::from(BadInput::TooManyRejects(Box::new(TooManyRejects {
            source_name: "/in/a.dat".into(),
            chunk: ChunkId(2),
            rejected: 5,
            rows_read: 20,
            threshold: 0.1,
            errors_count: 6,
            errors: vec![
                error(3, Some("nik")),
                error(4, None),
                error(5, Some("bbm")),
                error(6, None),
            ],
        })));
        assert_eq!(
            halt.to_string(),
            "/in/a.dat: chunk 2: 5 of 20 rows rejected (25.0%), above the threshold of 10.0% \
             (VALIDATION_ERROR_THRESHOLD); first errors: line 3 column nik: bad; line 4: bad; \
             line 5 column bbm: bad"
        );
        assert_eq!(halt.class(), ErrorClass::Fatal);
    }
}
