//! datsync: resumable, exactly-once loading of large delimited SAP extract files into
//! PostgreSQL.
//!
//! Modules, in the order data flows (all private; what is public is re-exported below, by
//! stage):
//!
//! - `model`: shared vocabulary (sync ids, chunk ids, fingerprints, statuses, counts, row
//!   errors).
//! - `config`: pipeline settings from flags, environment (legacy names too), `datsync.toml`.
//! - `profile`: the column profile (names, aliases, types, rules, key) from TOML.
//! - `azure`: Azure Storage accounts and container clients, for sources and checkpoints.
//! - `cloud`: which cloud a URL names (`az://`, `s3://`, `gs://`), S3 and Google Cloud
//!   Storage settings and bucket clients, for sources and checkpoints.
//! - `source`: everything read from a source (files and blobs): opening, streaming with a
//!   fingerprint, listing, versions.
//! - `parse`: the push decoder, bytes → Arrow batches of text columns with line numbers.
//! - `store`: where checkpoint objects live (local, memory, Azure), atomic writes.
//! - `checkpoint`: the checkpoint manager: Parquet chunks and `manifest.json`, crash-proof.
//! - `value`: parsers of single text values (exact decimals, integers, booleans, dates, times).
//! - `validate`: profile rules over a text batch → accepted rows, rejects, superseded duplicates.
//! - `transform`: accepted text batch → typed batch for the target table.
//! - `rejects`: what a sync did not load as written (rejected rows, value warnings), kept
//!   per chunk next to its checkpoint and read back in line order (`datsync rejects`).
//! - `pg`: PostgreSQL connection, SQLSTATE classification, migrations (`init-db`), the
//!   administration the demo and the benchmark need.
//! - `load`: one chunk per transaction: binary COPY to staging, newest-wins upsert, ledger row.
//! - `status`: `sync_metadata` rows, ledger totals, materialized view refresh, reports.
//! - `pipeline`: run, resume, retries and the final status: the only module that knows every stage.
//! - `intake`: what `watch` does with the sources it lists: receipts, retries with the same
//!   sync id, poison parking.
//! - `serve`: the Azure Functions custom handler on top of `intake`.
//! - `alert`: email (SMTP) and webhook alerts when a sync ends FAILED, BAD_INPUT or
//!   PARTIAL_SUCCESS.
//! - `hooks`: post-sync HTTP calls by final status (`[[hooks.on_success]]`, …) and the legacy
//!   cache warm-up call; a failure is logged and counted, never fatal.
//! - `http`: outgoing HTTPS (reqwest, rustls with ring) for webhooks and hooks: trust, the
//!   plain-text rule, one request.
//! - `telemetry`: named events, logged and counted in one place (the Prometheus metrics,
//!   the live progress of the status page); crash injection.
//! - `monitor`: what `watch` and `serve` show on `--metrics-addr`: `GET /metrics`, and the
//!   status page at `GET /`.
//! - `sample`: a generator of realistic ZTDWR files for demos, tests and benchmarks.
//! - `inspect`: a report of what a file holds, as the decoder sees it.
//! - `draft`: a starting profile drafted from a file's first records (`profile init`).
//! - `pgtemp`: a private throwaway PostgreSQL server for `datsync demo`.
//! - `azurite` (feature `test-support`): a throwaway Azure Storage emulator for tests.
//! - `moto` (feature `test-support`): a throwaway S3 emulator (moto's server) for tests.
//! - `test_http` (feature `test-support`): an HTTP(S) server on loopback, with a certificate
//!   authority of its own, for tests of webhooks and hooks.
//!
//! ```text
//! source ──bytes──> parse ──RecordBatch(text, _line)──> checkpoint ──> validate ──> transform ──> load
//! ```
//!
//! # Features
//!
//! - `crash-injection`: `DATSYNC_KILL_AT=<event>:<n>` / `DATSYNC_TERM_AT=<event>:<n>` make
//!   the process kill (SIGKILL) or stop (SIGTERM) itself at the n-th emission of a telemetry
//!   event. The `datsync` binary enables it: `datsync demo` and `datsync bench` kill their
//!   own child runs with it. Without it the variables are ignored.
//! - `test-support` (implies `crash-injection`): `Azurite`, `Moto`, the checkpoint store's crash
//!   plans (`FaultPlan`, `Store::with_faults`), blob uploads (`Blob::put`) and the binary
//!   `numeric` encoder (`put_numeric`). Only the tests enable it.
//!
//! # Example
//!
//! Decoding a ZTDWR extract into text batches, however the bytes arrive:
//!
//! ```
//! use datsync::{Decoder, ParseOptions, Profile};
//!
//! let file = "^SPB ID~|^nopol~|^nik_supir~\n^0001~|^B 1234 XYZ~|^0012345678901234~\n";
//! let mut decoder = Decoder::new(&Profile::ztdwr(), ParseOptions::default());
//! for piece in file.as_bytes().chunks(7) {
//!     let mut pos = 0;
//!     while pos < piece.len() {
//!         pos += decoder.decode(&piece[pos..])?;
//!     }
//! }
//! let batch = decoder.flush()?.expect("one batch");
//! assert_eq!(batch.num_rows(), 1);
//! assert!(batch.schema().field_with_name("surat_pengantar_brg").is_ok());
//! # Ok::<(), datsync::ParseError>(())
//! ```

mod alert;
mod azure;
#[cfg(feature = "test-support")]
mod azurite;
mod checkpoint;
mod cloud;
mod config;
mod draft;
#[cfg(feature = "test-support")]
mod emulator;
mod hooks;
mod http;
mod inspect;
mod intake;
mod layers;
mod load;
mod model;
mod monitor;
#[cfg(feature = "test-support")]
mod moto;
mod parse;
mod pg;
mod pgtemp;
mod pipeline;
mod profile;
mod rejects;
mod sample;
mod serve;
mod source;
mod status;
mod store;
mod telemetry;
#[cfg(feature = "test-support")]
mod test_http;
mod transform;
mod validate;
mod value;

// ---- vocabulary -------------------------------------------------------------------------

pub use model::{
    CheckpointStatus, ChunkCounts, ChunkCut, ChunkId, ChunkStatus, ERROR_COLUMN, InvalidSyncId,
    LINE_COLUMN, LineNo, MAX_ERROR_VALUE_CHARS, RAW_COLUMN, RecordedStatus, ResumePoint, RowError,
    RowErrorKind, SourceFingerprint, SourceHashState, SyncCounts, SyncId, SyncRef, SyncStatus,
    UnknownSyncStatus, VERSION_COLUMN,
};

// ---- settings and the profile -----------------------------------------------------------

pub use config::{
    ByteSize, ConfigError, DEFAULT_CHECKPOINT_BASE, DEFAULT_CONFIG_FILE, DEFAULT_RETENTION_DAYS,
    RawSettings, Settings, apply_overrides, parse_bool, process_env,
};
pub use layers::{
    CONFIG_ENV, Effective, KEYS, Key, Layers, Origin, file_hooks, install_file_hooks,
    install_file_settings, key_of,
};
pub use profile::{
    Bound, Column, ColumnType, DEFAULT_DECIMAL_SCALE, DEFAULT_NULL_TOKENS, DEFAULT_SCHEMA,
    DelimiterSetting, Escape, Format, MAX_DECIMAL_SCALE, MAX_DELIMITER_BYTES, MissingOptional,
    NUL_SYMBOL, NameVersion, OnInvalid, PII_MASK, Profile, ProfileError, ROW_VERSION_COLUMN,
    RangeRule, RowVersion, Rules, StoredType, TextEncoding, UnknownColumns, VersionColumns,
    ZTDWR_PROFILE_TOML, canonical_name, readable_version,
};
pub use profile::{DERIVED_BOOKKEEPING, Derived, DerivedColumn, DerivedUpdate};

// ---- sources ----------------------------------------------------------------------------

pub use azure::{AzureAccount, AzureConfigError};
pub use cloud::{Cloud, CloudConfigError, CloudSettings};
pub use source::{
    BLOB_RANGE_BYTES, Blob, BlobMeta, HashingReader, LocalFile, LocalSource, SHA256_BLOCK_BYTES,
    SOURCE_HASH_FORMAT, SourceDigest, SourceError, SourceHasher, SourceRef, check_blob_prefix,
    is_azure_url, is_blob_url, list_blobs, list_dir, list_from_env, list_objects, local_file,
};

// ---- parse ------------------------------------------------------------------------------

pub use parse::{
    BatchCut, DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ROWS, DEFAULT_MAX_HEADER_COLUMNS,
    DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_RAW_BYTES, Decoder, Delimiter, Header, HeaderColumn,
    OtherDelimiter, ParseError, ParseOptions, ParseStats, READ_BUFFER_BYTES, decode_reader,
};

// ---- checkpoints ------------------------------------------------------------------------

pub use checkpoint::{
    CheckpointError, CheckpointManager, CheckpointOptions, ChunkCompression, ChunkEntry,
    ChunkLines, ChunkOutcome, Clock, DEFAULT_ACTIVE_GRACE_HOURS, DEFAULT_COMPACT_EVERY, Damage,
    FORMAT_VERSION, FingerprintDifference, JournalEntry, KeepReason, Manifest, ManualClock,
    NewCheckpoint, RetentionPolicy, RetentionReport, SourceMismatch, SystemClock, decode_parquet,
    encode_parquet, remove_expired as remove_expired_checkpoints, verify_source,
};
pub use store::{
    LocationError, ObjectInfo, ObjectKey, ObjectKind, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, Store,
    StoreError, StoreLocation, chunk_file_name, parse_chunk_file_name, private_dirs, private_file,
};

// ---- validate, transform ----------------------------------------------------------------

pub use transform::{
    TransformError, Transformed, arrow_type, has_row_version, transform, typed_schema,
};
pub use validate::{
    DEFAULT_ERROR_THRESHOLD, REASONS_COLUMN, REJECT_COLUMN_COLUMN, VALIDATION_ERRORS_SAMPLE,
    ValidateError, Validated, check_columns, error_rate, exceeds_threshold, validate,
};

// ---- rejects ----------------------------------------------------------------------------

pub use rejects::{
    DEFAULT_RAW_DELIMITER, RecordFormat, RecordWriter, RejectRecord, RejectsError, Selection,
    read_rejects, warnings_batch,
};

// ---- PostgreSQL -------------------------------------------------------------------------

pub use load::{
    BaselineError, ChunkFacts, ChunkLoad, CopyBaselines, LoadError, LoadHook, LoadPoint, Loader,
    copy_baseline, copy_baselines, derived_copy_baseline, encode_baseline, file_version,
    upsert_baseline, worker_name,
};
pub use pg::{
    AUTH_VARIABLE, AttemptFailure, BOOKKEEPING_COLUMNS, ConnInfoError, DEFAULT_APPLICATION_NAME,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_IMDS_ENDPOINT, DEFAULT_KEEPALIVES_IDLE, DEFAULT_PORT,
    DEFAULT_SOCKET_DIRS, DEFAULT_STATEMENT_TIMEOUT, DEFAULT_SYSCONFDIR, ENTRA_RESOURCE, EntraError,
    EntraTokens, ErrorClass, IMDS_ENDPOINT_VARIABLE, INIT_LOCK_KEY, InitReport, LEGACY_VARIABLES,
    MIGRATIONS, Migration, POOLER_VARIABLE, PgError, PgSettings, PoolerMode,
    REFRESH_MARGIN as ENTRA_REFRESH_MARGIN, Redacted, SQLSTATE_RULES, ServiceError, SettingsSource,
    SqlStateRule, SslMode, TargetSessionAttrs, Verification, check_target, configured_in_env,
    connect, create_target_sql, drop_database, empty_target, fit_text_sql, init_db, quote_ident,
    quote_literal, quote_qualified, recreate_database, recreate_schema, try_lock_sync,
};
pub use pg::{
    AdoptOptions, DEFAULT_ADOPT_ATTEMPTS, DEFAULT_ADOPT_LOCK_TIMEOUT, LockHolder, TargetPlan,
    TypeNote, adopt_db, grants_sql, init_sql, lock_holders, plan_target,
};
pub use pg::{DerivedPlan, create_derived_sql, plan_derived};
pub use status::{
    CHECKSUM_IGNORED_COLUMNS, CheckpointState, CheckpointSummary, ChunkProgress, ChunkRow,
    LedgerChunk, LedgerSample, LedgerSummary, LedgerTotals, OlderThan, ReadError, RecordedHeader,
    StatusError, StatusReport, StoredSync, SyncDetail, SyncOutcome, SyncRecord, SyncRegistration,
    TIME_SAVED_NOT_RECORDED, TIME_SAVED_TOO_FEW, TableChecksum, TablePreview, TimeSavedEstimate,
    VALIDATION_SAMPLE_SHOWN, ViewOutcome, ViewRefresh, build_report as build_status_report,
    committed_chunks, estimate_time_saved, finish_sync, latest_sync_id, ledger_chunks,
    ledger_totals, preview_target, read_checkpoint, recent_syncs, record_header, recorded_header,
    recorded_location as recorded_checkpoint_location, refresh_materialized_views, register_sync,
    stored_sync, sync_detail, table_checksum,
};

// ---- running syncs ----------------------------------------------------------------------

pub use intake::{
    Action, Begun, DEFAULT_BACKOFF as DEFAULT_INTAKE_BACKOFF, DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_BACKOFF as DEFAULT_INTAKE_MAX_BACKOFF, Found, Intake, IntakeError, Mode, Processed,
    QUEUE_LEASE, QUEUE_REDELIVERY_SLACK, Ready, RetryPolicy, SOURCE_SUFFIXES, SyncState,
    TEMP_SUFFIXES, is_source_name, list as list_sources, list_local as list_local_sources,
};
pub use pipeline::{
    ChunkDone, DB_RETRY_FOR_ENV, DEFAULT_DB_RETRY_FOR, DEFAULT_LOAD_ATTEMPTS,
    DEFAULT_RETRY_BACKOFF, NoProgress, Pipeline, PipelineBuilder, PipelineError, Progress,
    QueueStatus, RunSummary, Submitted, WorkerOptions, WorkerReport, pending_work, scale_query,
};
pub use serve::body::{
    DEFAULT_BODY_IDLE_TIMEOUT, DEFAULT_MAX_BLOB_INVOCATION_BYTES, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_METADATA_BYTES,
};
pub use serve::hostjson::{HOST_DEFAULT_MAX_DEQUEUE_COUNT, HostJsonError, HostSettings};
pub use serve::server::{DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS};
pub use serve::{
    BLOB_FUNCTION, BindRefused, BlobRequest, BodyError, BodyLimits,
    DEFAULT_CONTAINER as DEFAULT_SERVE_CONTAINER, DEFAULT_PREFIX as DEFAULT_SERVE_PREFIX,
    DEFAULT_RETRY_BACKOFF as DEFAULT_SERVE_RETRY_BACKOFF, HEALTH_FUNCTION, POISON_FUNCTION,
    PORT_ENV as SERVE_PORT_ENV, ParsePool, QUEUE_BINDING, QUEUE_FUNCTION, RequestError,
    STATUS_FUNCTION, SWEEP_FUNCTION, SYNC_FUNCTION, ServeOptions, ServerLimits, Sources,
    blob_from_metadata, blob_url_parts, check_bind, router as serve_router, serve,
};

// ---- alerts and telemetry ---------------------------------------------------------------

pub use alert::{
    AlertError, AlertOutcome, AlertReport, AlertSettings, Alerter, Channel, DEFAULT_ALERT_FROM,
    DEFAULT_ALERT_TIMEOUT, DEFAULT_SMTP_URL, Delivery, EmailSettings, MAX_LISTED_VALIDATION_ERRORS,
    WEBHOOK_ALLOW_HTTP_ENV, WebhookSettings, redact_secrets,
};
pub use hooks::{
    CACHE_HOOK_NAME, CACHE_HOOK_PATH, CACHE_HOOK_TIMEOUT, CACHE_PREPOPULATION_ENV,
    DEFAULT_HOOK_TIMEOUT, Hook, HookError, HookEvent, HookLine, HookSettings, HookSpec, Hooks,
    MAX_HOOK_RETRIES, STATUS_HEADER, SYNC_ID_HEADER, TRANSPORT_INTELLIGENCE_URL_ENV,
    describe as describe_hooks,
};
pub use http::{CA_FILE_ENV, HttpError, HttpTls};
pub use telemetry::{
    FailedChunkNote, KILL_AT_ENV, Live, Metrics, PAUSE_AT_ENV, PAUSE_DIR_ENV, RECEIPT_STATES,
    RunningSync, SIGSTOP_AT_ENV, TERM_AT_ENV,
};

// ---- watching it run: metrics and the status page -----------------------------------------

pub use monitor::{
    METRICS_CONTENT_TYPE, Monitor, PAGE_REFRESH_SECONDS, monitor_metrics_router, monitor_router,
};

// ---- tools: samples, inspection, a throwaway PostgreSQL ---------------------------------

pub use draft::{DEFAULT_DRAFT_ROWS, Draft, DraftError, DraftOptions, draft_profile};
pub use inspect::{DEFAULT_INSPECT_ROWS, InspectReport, SampleRow, inspect};
pub use pgtemp::{
    DEFAULT_PROBE_TIMEOUT, PgBinaries, PgTempError, SearchPaths, StopMode, TEMP_DATABASE,
    TEMP_PORT, TEMP_USER, TempPostgres, TempPostgresOptions, find_binaries, local_server_answers,
};
pub use sample::{
    DEFAULT_SAMPLE_ROWS, DEFAULT_SAMPLE_SEED, SampleOptions, SampleSize, SampleSummary,
    write_sample,
};

// ---- test support -----------------------------------------------------------------------

#[cfg(feature = "test-support")]
pub use azurite::{Azurite, AzuriteError};
#[cfg(feature = "test-support")]
pub use load::put_numeric;
#[cfg(feature = "test-support")]
pub use moto::{Moto, MotoError};
#[cfg(feature = "test-support")]
pub use store::{CrashPoint, FaultPlan};
#[cfg(feature = "test-support")]
pub use test_http::{RecordedRequest, TestHttpServer};
