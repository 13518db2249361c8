//! Command-line arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Resumable, exactly-once loading of large SAP ZTDWR extract files into PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "datsync", version, about, long_about = None)]
pub struct Cli {
    /// Options of every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Only warnings and errors on stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// A column profile (TOML) instead of the built-in `ztdwr` one.
    #[arg(long, global = true, env = "DATSYNC_PROFILE")]
    pub profile: Option<PathBuf>,
    /// The configuration file: every setting that has an environment variable, in sections
    /// ([database], [checkpoint], [alert], …; see `datsync config`) [default: ./datsync.toml
    /// when it exists]. Flags win over the environment, which wins over the file.
    #[arg(long, global = true, value_name = "FILE", env = "DATSYNC_CONFIG")]
    pub config: Option<PathBuf>,
    /// Whether `--profile` was given on the command line (for `datsync config`).
    #[arg(skip)]
    pub profile_from_flag: bool,
}

/// Log line formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a realistic ZTDWR sample file (same seed, same bytes).
    Sample(SampleArgs),
    /// Show what a file holds: compression, delimiter, header mapping, rows.
    Inspect(InspectArgs),
    /// Profiles: `profile init FILE` drafts a starting profile from a file.
    Profile(ProfileArgs),
    /// Load a source into PostgreSQL, continuing its unfinished sync if it has one.
    ///
    /// Exit codes: 0 SUCCESS, 2 PARTIAL_SUCCESS (failed chunks kept for `resume`, or rejected
    /// rows), 1 FAILED or BAD_INPUT or an error before the sync started, 64 a usage error.
    ///
    /// A chunk's load is tried 4 times on a transient database error, pausing 500 ms then
    /// doubling; DATSYNC_RETRY_BACKOFF_MS sets the first pause (also for `resume`).
    ///
    /// SIGTERM or SIGINT (also for `resume`): the chunk in flight finishes and commits, no
    /// further chunk starts, the sync stays IN_PROGRESS with its checkpoint and the run exits
    /// 1 (the summary says `interrupted`); the same command, or `resume`, continues it. A
    /// second signal exits at once (143, or 130 for SIGINT).
    Run(RunArgs),
    /// Continue a sync: finish its conversion, load every chunk not committed yet.
    ///
    /// Exit codes as for `run`.
    Resume(ResumeArgs),
    /// Register a sync and convert its source into chunks for `datsync worker` processes.
    ///
    /// The source is read once (as `run` reads it) into chunks in the checkpoint storage,
    /// which every worker must be able to open (a shared directory, az://, s3://, gs://);
    /// each chunk is put in the work queue (the table chunk_queue) as soon as it is saved, so
    /// workers load while the conversion goes on. Exits once the conversion is complete,
    /// printing the sync id (--json: {"sync_id", "chunks_total", ...}); the workers finish
    /// the sync. Submitting the same source again continues its unfinished sync, as `run`
    /// does; `resume SYNC` loads the rest in this process.
    ///
    /// Exit codes: 0 when the chunks are queued (or the source was already loaded), 1 when
    /// the sync stopped (bad input, a failure) or could not start.
    Submit(SubmitArgs),
    /// Load queued chunks of submitted syncs and finish those syncs, until stopped.
    ///
    /// Each chunk is claimed (SELECT … FOR UPDATE SKIP LOCKED) in the transaction that loads
    /// it with its ledger row: a worker that dies releases its chunk, and a chunk commits
    /// once. The worker that commits a sync's last chunk (or the next one) writes its final
    /// status, refreshes the views, cleans up, calls the hooks and alerts. A sync stopped by
    /// the error threshold, bad input or a fatal error stops for every worker. Workers load
    /// syncs of their profile's table: run one worker deployment per profile, with the same
    /// --profile and configuration as `submit`.
    ///
    /// SIGTERM or SIGINT: the chunks in flight finish, then it exits 0. Exit codes: 0 when
    /// stopped or idle (--exit-when-idle), 1 on an error that stops the worker.
    Worker(WorkerArgs),
    /// How much work the queue holds: `SELECT count(*) FROM <schema>.chunk_queue`, the
    /// figure KEDA's postgresql scaler and Azure Container Apps' scale rule watch.
    Queue(QueueArgs),
    /// Load every new `.dat` / `.dat.gz` file of a directory or blob prefix (az://, s3://, gs://) exactly
    /// once, polling it, and retry unfinished syncs (same sync id, growing pause) until they
    /// are parked as poison.
    ///
    /// Each cycle lists the directory (not its subdirectories) or every blob under the
    /// prefix (names starting with `.` or ending in `.tmp` / `.partial` are skipped), then
    /// handles each file in name order: a new file (or a new size or modification time of
    /// one, or a new ETag of a blob) starts a sync; a FAILED sync, or
    /// a PARTIAL_SUCCESS one with failed chunks, is resumed once its pause is over; after
    /// --max-attempts it is parked and an alert is sent. Receipts are kept in the table
    /// datsync_receipts.
    ///
    /// SIGTERM or SIGINT: the sync in flight finishes its current chunk, and watch exits 0
    /// (the next start resumes that sync, not counting an attempt); a second signal exits at
    /// once.
    ///
    /// With --once, exit codes of the cycle: 0 when nothing failed, 2 when a sync ended
    /// PARTIAL_SUCCESS, 1 when a sync ended FAILED or BAD_INPUT or with an error, a file was
    /// parked, or the directory could not be listed. --json prints one JSON object per file
    /// and cycle.
    Watch(WatchArgs),
    /// Serve as an Azure Functions custom handler (see deploy/azure-functions and the README).
    ///
    /// Routes: POST /ztdwr_sync (the blob trigger's invocation: the blob is streamed from
    /// storage by the name in its metadata; 200 when it is done, 500 to have the host retry
    /// it — each retry continues the same sync), POST /api/sync-ztdwr (a manual re-run:
    /// {"blob_path" | "blob_name" | "file_name", "container"}; it resumes the blob's
    /// unfinished sync, or loads it again as a new sync when the last one finished),
    /// GET /api/healthz ({status, database, timestamp}); /sync_ztdwr and
    /// /healthz accept the same as HTTP-trigger invocations. Prints `listening on
    /// http://ADDR:PORT` on stdout once it accepts requests. SIGTERM or SIGINT: stops
    /// accepting, the syncs in flight finish their current chunk, then it exits 0.
    Serve(ServeArgs),
    // operations
    /// Create or upgrade datsync's tables and the target table (safe to run again).
    InitDb(InitDbArgs),
    /// Recent syncs from sync_metadata, newest first.
    List(ListArgs),
    /// One sync's status (default: the most recent): counts, chunks, errors.
    Status(StatusArgs),
    /// Every rejected row and every value warning of a sync, in line order, one record each
    /// (fields kind, line, column, target, value, reason, raw).
    ///
    /// A rejected row (kind `rejected`) was not loaded; `column` and `value` are those of its
    /// first broken rule (null for a whole-row reason such as a ragged row), `reason` lists
    /// every broken rule, `raw` is the line. A warning (kind `warning`) is a value that was
    /// loaded as NULL, as midnight or rounded; its row was loaded.
    Rejects(RejectsArgs),
    /// Remove checkpoint directories, and rejects, older than the retention period.
    Gc(GcArgs),
    /// See datsync at work: generate a sample file, load it, kill the load part way
    /// (SIGKILL), resume it, and show what the resume saved.
    ///
    /// Database: --database-url or DATABASE_URL (etc.) if set; else the server on
    /// 127.0.0.1:5432 (in a database `datsync_demo`, dropped and recreated); else a private
    /// throwaway PostgreSQL started from the installed server binaries and removed afterwards.
    Demo(DemoArgs),
    /// Print the effective settings, each with where it came from: a flag, the environment
    /// (env), the configuration file (file:PATH) or the default; passwords and keys masked.
    ///
    /// Takes the flags of `run`, so that their effect can be seen too.
    Config(ConfigArgs),
    /// Print a shell completion script on stdout, generated from these definitions.
    ///
    /// bash: `datsync completions bash > /etc/bash_completion.d/datsync`; zsh: into a
    /// directory of $fpath as `_datsync`; fish: `~/.config/fish/completions/datsync.fish`.
    Completions(CompletionsArgs),
    /// Write the manual pages generated from these definitions: datsync(1) on stdout, or,
    /// with --out DIR, datsync.1 and one page per command (datsync-run.1, …) into DIR.
    Man(ManArgs),
    /// End-to-end benchmark: PostgreSQL's own COPY vs a first run, a resume after a kill at
    /// 80%, and a run without checkpoints, with peak memory (see the README).
    #[command(hide = true)]
    Bench(BenchArgs),
}

/// How to reach PostgreSQL.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// PostgreSQL URL or key-value string, as psql takes it [default: DATABASE_URL, else
    /// POSTGRES_CONNECTION_STRING, else DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD,
    /// DB_SSL_MODE, else the PG* variables (PGHOST, PGSERVICE …)]. What it leaves out comes
    /// from the service file and the PG* variables, as in libpq; without sslmode, a remote
    /// host is verify-full. DB_AUTH=entra takes the password from Azure's managed identity.
    /// The target schema and table come from the profile, overridden by DB_SCHEMA and
    /// DB_TABLE.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

/// Arguments of `datsync init-db`.
#[derive(Debug, Args)]
pub struct InitDbArgs {
    /// The database.
    #[command(flatten)]
    pub db: DbArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Take over an existing target table (another loader's): add the columns datsync needs
    /// (nullable, no default: the table is not rewritten) in one transaction with the
    /// migrations, under --lock-timeout, retried --lock-attempts times. Without it, init-db
    /// refuses such a table and prints the SQL this would run.
    #[arg(long, conflicts_with = "print_sql")]
    pub adopt: bool,
    /// Change nothing: print the SQL init-db (or --adopt) would run on this database, and
    /// the grants a role needs to run syncs without owning the tables, for a DBA to apply
    /// by hand.
    #[arg(long)]
    pub print_sql: bool,
    /// The role the printed grants are for (with --print-sql; default: the connecting user).
    #[arg(long, value_name = "ROLE", requires = "print_sql")]
    pub role: Option<String>,
    /// How long --adopt waits for each lock per attempt (`lock_timeout`); also the first
    /// pause between attempts, doubled after each.
    #[arg(long, value_parser = duration, default_value = seconds(datsync::DEFAULT_ADOPT_LOCK_TIMEOUT))]
    pub lock_timeout: Duration,
    /// Attempts of --adopt before it gives up, naming the sessions that hold the locks.
    #[arg(long, default_value_t = datsync::DEFAULT_ADOPT_ATTEMPTS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub lock_attempts: u32,
}

/// Options shared by `run` and `resume`.
#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    /// PostgreSQL URL or key-value string, as psql takes it (else DATABASE_URL,
    /// POSTGRES_CONNECTION_STRING, DB_* or the PG* variables; see `init-db --help`).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Checkpoint directory or object URL (else CHECKPOINT_BASE_PATH, else ./checkpoints;
    /// `resume`: else where the sync's run recorded it in sync_metadata, first).
    #[arg(long)]
    pub checkpoint_dir: Option<String>,
    /// Rows per chunk at most (else CHUNK_SIZE, else 10,000).
    #[arg(long)]
    pub chunk_size: Option<usize>,
    /// The byte budget of a chunk: it ends at --chunk-size rows or once its rows hold this
    /// much, whichever comes first (else CHUNK_BYTES, else 64 MiB). A size such as 67108864,
    /// 64MiB or 512KiB.
    #[arg(long, value_name = "SIZE")]
    pub chunk_bytes: Option<datsync::ByteSize>,
    /// The longest line decoded into fields; a longer line is one rejected row ("line too
    /// long", its first 64 KiB kept) and the rest of the file loads (else MAX_LINE_BYTES,
    /// else 1 MiB).
    #[arg(long, value_name = "SIZE")]
    pub max_line_bytes: Option<datsync::ByteSize>,
    /// Rows flow from the parser to the loader without Parquet checkpoints
    /// (as ENABLE_CHECKPOINTING=false).
    #[arg(long)]
    pub no_checkpoint: bool,
    /// Chunks loaded at once, each on a database connection of its own, so that the next
    /// chunks' staging COPY overlaps the current one's upsert (else DATSYNC_JOBS, else 1:
    /// one chunk at a time on the run's connection). From 1 to 64.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `datsync run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The source: a local file (`.dat`, gzip or not) or a blob, `az://container/path`
    /// (account from AzureWebJobsStorage, or AZURE_STORAGE_ACCOUNT_NAME with
    /// AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN), `s3://bucket/path` (AWS_*
    /// variables) or `gs://bucket/path` (GOOGLE_APPLICATION_CREDENTIALS or
    /// GOOGLE_SERVICE_ACCOUNT).
    pub source: String,
    /// Use this sync id (continue it, or start it with this id).
    #[arg(long)]
    pub sync_id: Option<String>,
    /// Start a new sync even if this source has an unfinished one, or was already loaded
    /// (same path, size and modification time or ETag) by a sync that ended SUCCESS,
    /// BAD_INPUT or PARTIAL_SUCCESS with only rejected rows.
    #[arg(long, conflicts_with = "sync_id")]
    pub fresh: bool,
    /// Write the process's Prometheus metrics to this file at the end, in the text format
    /// (for node_exporter's textfile collector; written to a temporary file, then renamed).
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<std::path::PathBuf>,
    /// Shared options.
    #[command(flatten)]
    pub sync: SyncArgs,
}

/// Arguments of `datsync submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The source, as `run` takes it (a local file, az://, s3://, gs://).
    pub source: String,
    /// Use this sync id (continue it, or start it with this id).
    #[arg(long)]
    pub sync_id: Option<String>,
    /// Start a new sync even if this source has an unfinished one or was already loaded.
    #[arg(long, conflicts_with = "sync_id")]
    pub fresh: bool,
    /// Shared options (--checkpoint-dir must be storage every worker can open).
    #[command(flatten)]
    pub sync: SyncArgs,
}

/// Arguments of `datsync worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The database.
    #[command(flatten)]
    pub db: DbArgs,
    /// Chunks loaded at once, each on a connection of its own.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub concurrency: u32,
    /// Exit 0 once the queue has had nothing for this worker for --max-idle (for KEDA
    /// ScaledJobs and Container Apps jobs).
    #[arg(long)]
    pub exit_when_idle: bool,
    /// How long --exit-when-idle waits with nothing to do (`500ms`, `30s`, `5m`).
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub max_idle: Duration,
    /// Claims of a chunk that may end without it loaded (it failed past its retries, or its
    /// storage could not be read) before the workers give it up: its sync then finishes
    /// without it (PARTIAL_SUCCESS, checkpoint kept) and `datsync resume SYNC` loads it.
    #[arg(long, default_value_t = 5, env = "DATSYNC_QUEUE_MAX_ATTEMPTS",
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_attempts: u32,
    /// The pause before a failed chunk (or a finish another process holds) is claimed
    /// again, doubled at each attempt up to 5 minutes (`500ms`, `5s`, `1m`).
    #[arg(long, default_value = "5s", env = "DATSYNC_QUEUE_BACKOFF", value_parser = duration)]
    pub backoff: Duration,
    /// Serve the Prometheus metrics (`GET /metrics`) and the status page (`GET /`) on this
    /// address (`127.0.0.1:9464`).
    #[arg(long, value_name = "ADDR:PORT", env = "DATSYNC_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Print what the worker did as one JSON object when it exits.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `datsync queue`.
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// The database.
    #[command(flatten)]
    pub db: DbArgs,
    /// Print one JSON object: {"pending": N, "chunks": …, "finishing": …, "waiting": …,
    /// "syncs": …, "failed": …, "query": …}.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `datsync resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The sync to continue (`sync_YYYYMMDD_HHMMSS_xxxxxxxx`).
    pub sync_id: String,
    /// Discard the sync's checkpoint and make it again from the source (which must be the
    /// one the sync started from) and the database: for a checkpoint whose manifest is
    /// unreadable or missing. The chunks committed stay committed and are not loaded again.
    #[arg(long)]
    pub rebuild_checkpoint: bool,
    /// Write the process's Prometheus metrics to this file at the end, in the text format
    /// (for node_exporter's textfile collector; written to a temporary file, then renamed).
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<std::path::PathBuf>,
    /// Shared options.
    #[command(flatten)]
    pub sync: SyncArgs,
}

/// Arguments of `datsync watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The directory to watch, or an Azure Blob Storage prefix `az://container/path`
    /// (account from AzureWebJobsStorage, or AZURE_STORAGE_ACCOUNT_NAME with a key or SAS),
    /// an S3 prefix `s3://bucket/path` or a Google Cloud Storage prefix `gs://bucket/path`.
    #[arg(value_name = "SOURCE_PREFIX")]
    pub source_prefix: String,
    /// Pause between two cycles (`500ms`, `30s`, `5m`, `1h`).
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub interval: Duration,
    /// Run one cycle, then exit.
    #[arg(long)]
    pub once: bool,
    /// Attempts of a sync before it is parked as poison.
    #[arg(long, default_value_t = datsync::DEFAULT_MAX_ATTEMPTS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,
    /// Pause after a sync's first attempt; it doubles after each further one, up to 1h.
    #[arg(
        long,
        default_value = seconds(datsync::DEFAULT_INTAKE_BACKOFF),
        value_parser = duration,
        env = "DATSYNC_WATCH_BACKOFF"
    )]
    pub retry_backoff: Duration,
    /// Sources larger than this (a size: 1073741824, 1GiB, 500MB) are not loaded here but
    /// submitted to the work queue, as `datsync submit` does: converted into chunks in the
    /// checkpoint storage (which the workers must share: az://, s3://, gs:// or a shared
    /// directory) for `datsync worker` processes to load [default: off, every source is
    /// loaded here].
    #[arg(long, value_name = "SIZE", env = "DATSYNC_SUBMIT_ABOVE")]
    pub submit_above: Option<datsync::ByteSize>,
    /// Serve the Prometheus metrics (`GET /metrics`) and the status page (`GET /`) on this
    /// address (`127.0.0.1:9464`).
    #[arg(long, value_name = "ADDR:PORT", env = "DATSYNC_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Shared options.
    #[command(flatten)]
    pub sync: SyncArgs,
}

/// Arguments of `datsync serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The port [default: FUNCTIONS_CUSTOMHANDLER_PORT, else 8080]; 0 picks a free one.
    #[arg(long)]
    pub port: Option<u16>,
    /// Serve the Prometheus metrics (`GET /metrics`) and the status page (`GET /`) on this
    /// address too, a port of their own (`127.0.0.1:9464`); the handler's port serves
    /// `GET /metrics` as well.
    #[arg(long, value_name = "ADDR:PORT", env = "DATSYNC_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The address to listen on (the Functions host connects to 127.0.0.1). Any other
    /// address is refused unless --allow-non-loopback.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Listen on an address other than loopback: only with a gateway in front that
    /// authenticates callers (the handler itself checks no function key).
    #[arg(long, env = "DATSYNC_SERVE_ALLOW_NON_LOOPBACK")]
    pub allow_non_loopback: bool,
    /// The container of the sources; no other is ever read.
    #[arg(long, default_value = datsync::DEFAULT_SERVE_CONTAINER, env = "DATSYNC_BLOB_CONTAINER")]
    pub container: String,
    /// The folder of the sources in the container; nothing outside it is ever read.
    #[arg(long, default_value = datsync::DEFAULT_SERVE_PREFIX, env = "DATSYNC_BLOB_PREFIX")]
    pub prefix: String,
    /// Attempts of a source's sync before it is parked as poison [default: host.json's
    /// extensions.queues.maxDequeueCount, else 5]; must equal that when both are given.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: Option<u32>,
    /// The pause before a failed sync is tried again, e.g. 5m [default: host.json's
    /// extensions.queues.visibilityTimeout, else 5m]; must equal that when both are given.
    #[arg(long, value_parser = duration)]
    pub retry_backoff: Option<Duration>,
    /// The Functions app's host.json, whose queue retry settings the receipts follow
    /// [default: ./host.json, when it exists].
    #[arg(long, value_name = "FILE")]
    pub host_json: Option<PathBuf>,
    /// How long a client may stay silent while it sends a request: its head [default: 10s]
    /// or, between two parts, its body [default: 30s].
    #[arg(long, value_parser = duration)]
    pub read_timeout: Option<Duration>,
    /// Sources larger than this (a size: 1073741824, 1GiB, 500MB) are not loaded here but
    /// submitted to the work queue, as `datsync submit` does: converted into chunks in the
    /// checkpoint storage (which the workers must share: az://, s3://, gs:// or a shared
    /// directory) for `datsync worker` processes to load [default: off, every source is
    /// loaded here].
    #[arg(long, value_name = "SIZE", env = "DATSYNC_SUBMIT_ABOVE")]
    pub submit_above: Option<datsync::ByteSize>,
    /// Shared options.
    #[command(flatten)]
    pub sync: SyncArgs,
}

/// Arguments of `datsync list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The database.
    #[command(flatten)]
    pub db: DbArgs,
    /// How many syncs to show.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `datsync status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The sync (default: the most recently started one).
    pub sync_id: Option<String>,
    /// The database.
    #[command(flatten)]
    pub db: DbArgs,
    /// Checkpoint directory or URL [default: where the sync's run recorded it in
    /// sync_metadata, else CHECKPOINT_BASE_PATH, else ./checkpoints].
    #[arg(long, value_name = "DIR|URL")]
    pub checkpoint_dir: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Redraw the report every `--interval` until the sync is no longer IN_PROGRESS.
    #[arg(long)]
    pub watch: bool,
    /// Pause between two reports of `--watch` (`500ms`, `2s`).
    #[arg(long, default_value = "2s", value_parser = duration, requires = "watch")]
    pub interval: Duration,
}

/// Arguments of `datsync rejects`.
#[derive(Debug, Args)]
pub struct RejectsArgs {
    /// The sync (`sync_YYYYMMDD_HHMMSS_xxxxxxxx`).
    pub sync_id: String,
    /// The database.
    #[command(flatten)]
    pub db: DbArgs,
    /// Checkpoint directory or URL, where the rejects are kept [default:
    /// CHECKPOINT_BASE_PATH, else ./checkpoints; where the sync's run recorded it in
    /// sync_metadata comes first].
    #[arg(long, value_name = "DIR|URL")]
    pub checkpoint_dir: Option<String>,
    /// Which records.
    #[arg(long, value_enum, default_value_t = RejectsKind::All)]
    pub kind: RejectsKind,
    /// How records are written.
    #[arg(long, value_enum, default_value_t = RejectsFormat::Jsonl)]
    pub format: RejectsFormat,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Which records `datsync rejects` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RejectsKind {
    /// Rejected rows.
    Rejected,
    /// Value warnings.
    Warning,
    /// Both, in line order.
    All,
}

/// How `datsync rejects` writes records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RejectsFormat {
    /// One JSON object per line.
    Jsonl,
    /// CSV with a header line.
    Csv,
}

/// Arguments of `datsync gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Remove checkpoints (and rejects) not updated for this many days [default:
    /// CHECKPOINT_RETENTION_DAYS, else 7]. A sync that may still be running is kept for 24
    /// hours after its last update.
    #[arg(long)]
    pub days: Option<u32>,
    /// Checkpoint directory or URL [default: CHECKPOINT_BASE_PATH, else ./checkpoints].
    #[arg(long, value_name = "DIR|URL")]
    pub checkpoint_dir: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `datsync demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Data rows of the generated file.
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub rows: u64,
    /// PostgreSQL URL or key-value string, as psql takes it (else DATABASE_URL,
    /// POSTGRES_CONNECTION_STRING, DB_* or the PG* variables).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Directories (a PATH-style list) searched for the PostgreSQL server binaries instead
    /// of the usual places; for tests.
    #[arg(long, hide = true, env = "DATSYNC_DEMO_PG_BIN_PATH")]
    pub pg_bin_path: Option<std::ffi::OsString>,
    /// The local port probed for a running server; for tests.
    #[arg(long, hide = true, default_value_t = datsync::DEFAULT_PORT)]
    pub local_port: u16,
}

/// Arguments of `datsync config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The flags of `run`, shown as the settings they set.
    #[command(flatten)]
    pub sync: SyncArgs,
}

/// Arguments of `datsync completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Arguments of `datsync man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write datsync.1 and a page per command into this directory (created when missing)
    /// instead of printing datsync(1).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Arguments of `datsync bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Size of the generated file in MB (else DATSYNC_BENCH_MB, else 100).
    #[arg(long, env = "DATSYNC_BENCH_MB", default_value_t = 100)]
    pub mb: u64,
    /// The server to create the benchmark database on (trust or password in the URL).
    #[arg(
        long,
        env = "DATSYNC_BENCH_DATABASE_URL",
        default_value = "host=127.0.0.1 port=5432 user=root dbname=postgres"
    )]
    pub database_url: String,
    /// Rows per chunk.
    #[arg(long, default_value_t = datsync::DEFAULT_BATCH_ROWS)]
    pub chunk_size: usize,
    /// Print one JSON object (the times, the ratios, peak RSS, the load average) instead of
    /// the table.
    #[arg(long)]
    pub json: bool,
    /// Time the COPY baselines, the first run, the run without checkpoints and the gzipped
    /// run this many times each and keep the best of each (a shared machine's noise only ever
    /// adds time).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub repeat: u32,
    /// Only the COPY baselines and the first run (what the regression guard needs).
    #[arg(long)]
    pub quick: bool,
    /// Only the COPY baselines, the first run and the resumes after 80% of the chunks, with
    /// and without the checkpoint's resume points.
    #[arg(long, conflicts_with = "quick")]
    pub resume_only: bool,
    /// Compare with a committed figure file (a `--json` output, e.g.
    /// crates/datsync-cli/bench/baseline.json, of the same --mb): exit 1 when a first-run
    /// ratio is more than 25% above the committed one.
    #[arg(long, value_name = "FILE")]
    pub guard: Option<PathBuf>,
}

/// Arguments of `datsync sample`.
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Number of data rows.
    #[arg(long, conflicts_with = "mb")]
    pub rows: Option<u64>,
    /// Size of the text in MiB (before compression) instead of a row count.
    #[arg(long)]
    pub mb: Option<f64>,
    /// Seed of the generator.
    #[arg(long, default_value_t = datsync::DEFAULT_SAMPLE_SEED)]
    pub seed: u64,
    /// Fraction of rows that break a validation rule.
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    pub invalid_rate: f64,
    /// Fraction of rows that repeat an earlier key.
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    pub dup_rate: f64,
    /// Fraction of rows with a missing or extra field.
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    pub ragged_rate: f64,
    /// Fraction of rows with one unreadable value in an optional typed column (`abc` as a
    /// quantity, `MAYBE` as a flag, `20251399` as a date, `2400` as a time): loaded as NULL
    /// (or midnight, or rounded) with a warning.
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    pub bad_value_rate: f64,
    /// Add a column the profile does not know, with this header name, to every line.
    #[arg(long, value_name = "NAME")]
    pub extra_column: Option<String>,
    /// Gzip the output.
    #[arg(long)]
    pub gzip: bool,
    /// End lines with CRLF.
    #[arg(long)]
    pub crlf: bool,
    /// Field delimiter: `~|^`, `~\|\^`, `~^`, `|` or `tab`.
    #[arg(long, default_value = "~|^", value_parser = delimiter)]
    pub delimiter: datsync::Delimiter,
    /// A header with a BOM, `^name~` markers, backslashes, aliases and truncated names.
    #[arg(long)]
    pub quirky_header: bool,
    /// Output file (default: standard output).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Print what was written (row counts by kind) as one JSON object; needs `-o`.
    #[arg(long, requires = "output")]
    pub json: bool,
}

/// Arguments of `datsync profile`.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ProfileCommand,
}

/// The `profile` subcommands.
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Draft a starting profile from a file's first records: the delimiter, header or not,
    /// quoting and COPY escapes, a name, a type and a format per column, and a key, every
    /// guess commented, for a person to review before loading with `--profile`.
    ///
    /// Without `-o` the profile is printed on stdout; with it, it is written to a new file
    /// (an existing one is not replaced) and a summary is printed on stderr.
    Init(ProfileInitArgs),
}

/// Arguments of `datsync profile init`.
#[derive(Debug, Args)]
pub struct ProfileInitArgs {
    /// The file to draft from (gzip or not).
    pub file: PathBuf,
    /// The target table [default: the file's name].
    #[arg(long)]
    pub table: Option<String>,
    /// The key column, a header name or a drafted column name (`column_3`) [default: the
    /// first column whose values are all present and distinct in the records read].
    #[arg(long, value_name = "COL")]
    pub key: Option<String>,
    /// How many records to read.
    #[arg(long, default_value_t = datsync::DEFAULT_DRAFT_ROWS)]
    pub rows: usize,
    /// Write the profile to this new file instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Arguments of `datsync inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The file to inspect (`.dat`, gzip or not), or a blob `az://container/path`,
    /// `s3://bucket/path`, `gs://bucket/path`.
    pub file: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// How many rows to show.
    #[arg(long, default_value_t = datsync::DEFAULT_INSPECT_ROWS)]
    pub rows: usize,
    /// The longest line decoded into fields (else MAX_LINE_BYTES, else 1 MiB); a longer
    /// line is shown as a rejected row.
    #[arg(long, value_name = "SIZE")]
    pub max_line_bytes: Option<datsync::ByteSize>,
    /// The most fields a header may have (else MAX_HEADER_COLUMNS, else 2000).
    #[arg(long, value_name = "N")]
    pub max_header_columns: Option<usize>,
}

/// A duration such as `500ms`, `30s`, `5m`, `1h` or `1h 30m`.
/// A library default as a flag's default text (`60s`), so that the library stays its one
/// owner. The text lives as long as the process: clap asks once, when it builds the parser.
fn seconds(d: Duration) -> &'static str {
    Box::leak(format!("{}s", d.as_secs()).into_boxed_str())
}

pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration ({e}); write it like 500ms, 30s, 5m or 1h"))
}

fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a fraction between 0 and 1")),
    }
}

fn delimiter(s: &str) -> Result<datsync::Delimiter, String> {
    use datsync::Delimiter;
    match s {
        "~|^" => Ok(Delimiter::TildePipeCaret),
        "~\\|\\^" => Ok(Delimiter::EscapedTildePipeCaret),
        "~^" => Ok(Delimiter::TildeCaret),
        "|" => Ok(Delimiter::Pipe),
        "tab" | "\t" => Ok(Delimiter::Tab),
        _ => Err(format!(
            "unknown delimiter `{s}`; use '~|^', '~\\|\\^', '~^', '|' or tab"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("0s"), Ok(Duration::ZERO));
        assert_eq!(duration(" 1h 30m "), Ok(Duration::from_secs(5400)));
        for bad in ["", "30", "soon", "-5s", "5 parsecs"] {
            let e = duration(bad).unwrap_err();
            assert!(e.contains("500ms, 30s"), "{bad}: {e}");
        }
    }
}
