//! One configuration file: every setting that has an environment variable can be written in
//! `datsync.toml` (or the file of `--config` / `DATSYNC_CONFIG`) too, under a section —
//! `[database] url` is `DATABASE_URL`, `[checkpoint] base_path` is `CHECKPOINT_BASE_PATH` —
//! with the precedence flags, then the environment, then the file, then the defaults.
//!
//! [`KEYS`] is the one table of keys: section, name, variable, whether it is a secret, the
//! default as shown. The layers are merged by `figment` (providers of our own: the file is
//! parsed by `toml`, the environment is the map every reader is given), which also records
//! where each value came from for `datsync config`. The readers of each setting (`pg`,
//! `alert`, `azure`, the pipeline's [`crate::RawSettings`]) are unchanged: they read
//! variables from a map, and [`install_file_settings`] puts the file's values into the map
//! [`crate::process_env`] returns, below the real environment. The flat keys of earlier
//! versions (`chunk_size = 5` at the top) still work: a top-level key is a variable's name in
//! lower case.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use toml::de::{DeTable, DeValue};

use crate::config::ConfigError;
use crate::hooks::{DEFAULT_HOOK_TIMEOUT, HookEvent, HookSpec, MAX_HOOK_RETRIES};

/// One setting of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The section (`database` for `[database]`).
    pub section: &'static str,
    /// The key in its section.
    pub name: &'static str,
    /// The environment variable it stands for.
    pub env: &'static str,
    /// Never printed: `datsync config` shows it masked.
    pub secret: bool,
    /// The default as shown by `datsync config` (empty: none, or decided by other settings).
    pub default: &'static str,
}

impl Key {
    /// `[section] name`.
    pub fn display(&self) -> String {
        format!("[{}] {}", self.section, self.name)
    }
}

const fn key(
    section: &'static str,
    name: &'static str,
    env: &'static str,
    default: &'static str,
) -> Key {
    Key {
        section,
        name,
        env,
        secret: false,
        default,
    }
}

const fn secret(section: &'static str, name: &'static str, env: &'static str) -> Key {
    Key {
        section,
        name,
        env,
        secret: true,
        default: "",
    }
}

/// Every key of the file, in the order `datsync config` prints them.
pub const KEYS: &[Key] = &[
    // PostgreSQL (README "Connecting to PostgreSQL").
    secret("database", "url", "DATABASE_URL"),
    secret(
        "database",
        "connection_string",
        "POSTGRES_CONNECTION_STRING",
    ),
    key("database", "host", "DB_HOST", ""),
    key("database", "port", "DB_PORT", "5432"),
    key("database", "name", "DB_NAME", "postgres"),
    key("database", "user", "DB_USER", ""),
    secret("database", "password", "DB_PASSWORD"),
    key("database", "ssl_mode", "DB_SSL_MODE", ""),
    key("database", "auth", "DB_AUTH", "password"),
    key("database", "pooler", "DB_POOLER", "none"),
    key("database", "schema", "DB_SCHEMA", "the profile's"),
    key("database", "table", "DB_TABLE", "the profile's"),
    key("database", "retry_for", "DATSYNC_DB_RETRY_FOR", "5m"),
    key(
        "database",
        "retry_backoff_ms",
        "DATSYNC_RETRY_BACKOFF_MS",
        "500",
    ),
    // libpq's own variables, read as libpq reads them.
    key("libpq", "host", "PGHOST", ""),
    key("libpq", "hostaddr", "PGHOSTADDR", ""),
    key("libpq", "port", "PGPORT", ""),
    key("libpq", "database", "PGDATABASE", ""),
    key("libpq", "user", "PGUSER", ""),
    secret("libpq", "password", "PGPASSWORD"),
    key("libpq", "passfile", "PGPASSFILE", "~/.pgpass"),
    key("libpq", "service", "PGSERVICE", ""),
    key(
        "libpq",
        "servicefile",
        "PGSERVICEFILE",
        "~/.pg_service.conf",
    ),
    key("libpq", "sysconfdir", "PGSYSCONFDIR", ""),
    key("libpq", "appname", "PGAPPNAME", ""),
    key("libpq", "connect_timeout", "PGCONNECT_TIMEOUT", ""),
    key("libpq", "options", "PGOPTIONS", ""),
    key("libpq", "sslmode", "PGSSLMODE", ""),
    key("libpq", "sslrootcert", "PGSSLROOTCERT", ""),
    key("libpq", "sslcert", "PGSSLCERT", ""),
    key("libpq", "sslkey", "PGSSLKEY", ""),
    key("libpq", "sslcrl", "PGSSLCRL", ""),
    key("libpq", "sslcrldir", "PGSSLCRLDIR", ""),
    key("libpq", "sslsni", "PGSSLSNI", ""),
    key("libpq", "sslcertmode", "PGSSLCERTMODE", ""),
    key("libpq", "sslnegotiation", "PGSSLNEGOTIATION", ""),
    key(
        "libpq",
        "sslminprotocolversion",
        "PGSSLMINPROTOCOLVERSION",
        "",
    ),
    key(
        "libpq",
        "sslmaxprotocolversion",
        "PGSSLMAXPROTOCOLVERSION",
        "",
    ),
    key("libpq", "channelbinding", "PGCHANNELBINDING", ""),
    key("libpq", "targetsessionattrs", "PGTARGETSESSIONATTRS", ""),
    key("libpq", "loadbalancehosts", "PGLOADBALANCEHOSTS", ""),
    key("libpq", "requirepeer", "PGREQUIREPEER", ""),
    key("libpq", "gssencmode", "PGGSSENCMODE", ""),
    key("libpq", "clientencoding", "PGCLIENTENCODING", ""),
    key("libpq", "requiressl", "PGREQUIRESSL", ""),
    // The pipeline (README "Settings of run and resume").
    key(
        "pipeline",
        "validation_error_threshold",
        "VALIDATION_ERROR_THRESHOLD",
        "0.1",
    ),
    key("pipeline", "chunk_size", "CHUNK_SIZE", "10000"),
    key("pipeline", "chunk_bytes", "CHUNK_BYTES", "64 MiB"),
    key("pipeline", "max_line_bytes", "MAX_LINE_BYTES", "1 MiB"),
    key(
        "pipeline",
        "max_header_columns",
        "MAX_HEADER_COLUMNS",
        "2000",
    ),
    key("pipeline", "jobs", "DATSYNC_JOBS", "1"),
    key("pipeline", "enable_mv_refresh", "ENABLE_MV_REFRESH", "true"),
    key(
        "pipeline",
        "materialized_views",
        "MATERIALIZED_VIEWS",
        "the profile's",
    ),
    key("pipeline", "profile", "DATSYNC_PROFILE", "built-in ztdwr"),
    // Checkpoints.
    key("checkpoint", "enabled", "ENABLE_CHECKPOINTING", "true"),
    key(
        "checkpoint",
        "base_path",
        "CHECKPOINT_BASE_PATH",
        "./checkpoints",
    ),
    key(
        "checkpoint",
        "cleanup_on_success",
        "CHECKPOINT_CLEANUP_ON_SUCCESS",
        "true",
    ),
    key(
        "checkpoint",
        "retention_days",
        "CHECKPOINT_RETENTION_DAYS",
        "7",
    ),
    key(
        "checkpoint",
        "compression",
        "CHECKPOINT_COMPRESSION",
        "auto",
    ),
    // Alerts.
    key("alert", "email", "ALERT_EMAIL", "off"),
    key("alert", "from", "ALERT_FROM", "datsync@localhost"),
    secret("alert", "smtp_url", "SMTP_URL"),
    secret("alert", "webhook_url", "ALERT_WEBHOOK_URL"),
    key(
        "alert",
        "webhook_allow_http",
        "ALERT_WEBHOOK_ALLOW_HTTP",
        "false",
    ),
    key("alert", "timeout_seconds", "ALERT_TIMEOUT_SECONDS", "10"),
    // HTTPS of webhooks and hooks.
    key("http", "ca_file", "DATSYNC_CA_FILE", ""),
    // Post-sync hooks (the legacy cache warm-up call).
    key(
        "hooks",
        "enable_cache_prepopulation",
        "ENABLE_CACHE_PREPOPULATION",
        "",
    ),
    key(
        "hooks",
        "transport_intelligence_service_url",
        "TRANSPORT_INTELLIGENCE_SERVICE_URL",
        "",
    ),
    // Azure Blob Storage, and Entra for PostgreSQL.
    secret("azure", "connection_string", "AzureWebJobsStorage"),
    secret(
        "azure",
        "storage_connection_string",
        "AZURE_STORAGE_CONNECTION_STRING",
    ),
    key("azure", "account_name", "AZURE_STORAGE_ACCOUNT_NAME", ""),
    secret("azure", "account_key", "AZURE_STORAGE_ACCOUNT_KEY"),
    secret("azure", "sas_token", "AZURE_STORAGE_SAS_TOKEN"),
    key("azure", "blob_endpoint", "AZURE_STORAGE_BLOB_ENDPOINT", ""),
    key("azure", "client_id", "AZURE_CLIENT_ID", ""),
    key("azure", "tenant_id", "AZURE_TENANT_ID", ""),
    key(
        "azure",
        "federated_token_file",
        "AZURE_FEDERATED_TOKEN_FILE",
        "",
    ),
    key(
        "azure",
        "authority_host",
        "AZURE_AUTHORITY_HOST",
        "https://login.microsoftonline.com",
    ),
    key("azure", "identity_endpoint", "IDENTITY_ENDPOINT", ""),
    secret("azure", "identity_header", "IDENTITY_HEADER"),
    key(
        "azure",
        "imds_endpoint",
        "DATSYNC_IMDS_ENDPOINT",
        "http://169.254.169.254",
    ),
    // S3 and Google Cloud Storage (sources and checkpoints; see `crate::cloud`).
    key("s3", "access_key_id", "AWS_ACCESS_KEY_ID", ""),
    secret("s3", "secret_access_key", "AWS_SECRET_ACCESS_KEY"),
    secret("s3", "session_token", "AWS_SESSION_TOKEN"),
    key("s3", "region", "AWS_REGION", "us-east-1"),
    key("s3", "default_region", "AWS_DEFAULT_REGION", ""),
    key("s3", "endpoint_url", "AWS_ENDPOINT_URL", ""),
    key("s3", "allow_http", "AWS_ALLOW_HTTP", "false"),
    key("s3", "role_arn", "AWS_ROLE_ARN", ""),
    key(
        "s3",
        "web_identity_token_file",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "",
    ),
    key(
        "gcs",
        "application_credentials",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "",
    ),
    key("gcs", "service_account", "GOOGLE_SERVICE_ACCOUNT", ""),
    secret("gcs", "service_account_key", "GOOGLE_SERVICE_ACCOUNT_KEY"),
    // watch and serve.
    key("watch", "retry_backoff", "DATSYNC_WATCH_BACKOFF", "60s"),
    key("metrics", "addr", "DATSYNC_METRICS_ADDR", "off"),
    key("serve", "port", "FUNCTIONS_CUSTOMHANDLER_PORT", "8080"),
    key(
        "serve",
        "allow_non_loopback",
        "DATSYNC_SERVE_ALLOW_NON_LOOPBACK",
        "false",
    ),
    key("serve", "container", "DATSYNC_BLOB_CONTAINER", "data"),
    key("serve", "prefix", "DATSYNC_BLOB_PREFIX", "hex-ztdwr/"),
    // watch and serve: sources above this size go to the work queue (`datsync worker`).
    key("queue", "submit_above", "DATSYNC_SUBMIT_ABOVE", "off"),
    // worker: work that keeps failing (`pipeline/queue.rs`).
    key("queue", "max_attempts", "DATSYNC_QUEUE_MAX_ATTEMPTS", "5"),
    key("queue", "backoff", "DATSYNC_QUEUE_BACKOFF", "5s"),
];

/// The variable that names the configuration file (`--config` wins over it).
pub const CONFIG_ENV: &str = "DATSYNC_CONFIG";

/// The key whose variable is `env`.
pub fn key_of(env: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.env == env)
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag (its name, `--chunk-size`).
    Flag(String),
    /// The environment variable.
    Env,
    /// The configuration file.
    File(PathBuf),
    /// Not set: the default.
    Default,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flag(flag) => write!(f, "flag {flag}"),
            Self::Env => f.write_str("env"),
            Self::File(path) => write!(f, "file:{}", path.display()),
            Self::Default => f.write_str("default"),
        }
    }
}

/// One line of `datsync config`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Effective {
    /// `[section] name`.
    pub key: String,
    /// The environment variable.
    pub env: &'static str,
    /// The value as shown: masked for a secret; the default's text when unset.
    pub value: Option<String>,
    /// Where it came from (`flag --chunk-size`, `env`, `file:/etc/datsync.toml`, `default`).
    pub origin: String,
    /// Whether the value is masked.
    pub secret: bool,
}

/// The file's values (by variable) and the merged layers.
#[derive(Debug)]
pub struct Layers {
    file: Option<PathBuf>,
    from_file: HashMap<String, String>,
    /// The hooks the file declares (`[[hooks.on_success]]`, …).
    hooks: Vec<HookSpec>,
    figment: Figment,
}

/// A provider of variable-named values under one name (`flag`, `env`, the file).
struct Layer {
    metadata: Metadata,
    values: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

fn layer(metadata: Metadata, values: impl IntoIterator<Item = (String, String)>) -> Layer {
    Layer {
        metadata,
        values: values
            .into_iter()
            .map(|(k, v)| (k, Value::from(v)))
            .collect(),
    }
}

impl Layers {
    /// Reads the configuration file (`path`, else `DATSYNC_CONFIG`, else `./datsync.toml`
    /// when it exists; a file named explicitly must exist) and layers the environment `env`
    /// over it.
    pub fn load(path: Option<&Path>, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let named = path.map(Path::to_path_buf).or_else(|| {
            env.get(CONFIG_ENV)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let (file, text) = if let Some(p) = named {
            let text = std::fs::read_to_string(&p).map_err(|e| ConfigError::File {
                path: p.clone(),
                message: e.to_string(),
            })?;
            (Some(p), Some(text))
        } else {
            let p = PathBuf::from(crate::config::DEFAULT_CONFIG_FILE);
            match std::fs::read_to_string(&p) {
                Ok(text) => (Some(p), Some(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, None),
                Err(e) => {
                    return Err(ConfigError::File {
                        path: p,
                        message: e.to_string(),
                    });
                }
            }
        };
        let parsed = match (&file, &text) {
            (Some(p), Some(text)) => parse_file(p, text)?,
            _ => Parsed::default(),
        };
        Ok(Self::from_parts(file, parsed, env))
    }

    /// Layers from a file's text (for tests and `from_file`).
    pub fn from_text(
        path: &Path,
        text: &str,
        env: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let parsed = parse_file(path, text)?;
        Ok(Self::from_parts(Some(path.to_path_buf()), parsed, env))
    }

    fn from_parts(file: Option<PathBuf>, parsed: Parsed, env: &HashMap<String, String>) -> Self {
        let Parsed {
            values: from_file,
            hooks,
        } = parsed;
        let file_meta = match &file {
            Some(p) => Metadata::from("file", Source::File(p.clone())),
            None => Metadata::named("file"),
        };
        let env_values = KEYS.iter().filter_map(|k| {
            env.get(k.env)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (k.env.to_owned(), v.clone()))
        });
        let figment = Figment::new()
            .merge(layer(file_meta, from_file.clone()))
            .merge(layer(Metadata::named("env"), env_values));
        Self {
            file,
            from_file,
            hooks,
            figment,
        }
    }

    /// The hooks the file declares, in its order (what [`install_file_hooks`] takes).
    pub fn hooks(&self) -> &[HookSpec] {
        &self.hooks
    }

    /// The configuration file read, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The file's values by variable name (what [`install_file_settings`] takes).
    pub fn file_values(&self) -> &HashMap<String, String> {
        &self.from_file
    }

    /// `env` with the file's values where it has none (the environment wins).
    pub fn environment(&self, env: &HashMap<String, String>) -> HashMap<String, String> {
        let mut merged = env.clone();
        overlay(&mut merged, &self.from_file);
        merged
    }

    /// Every key's effective value and origin, flags (`(variable, flag name, value)`) over
    /// the environment over the file over the defaults. Secrets are masked.
    pub fn effective(&self, flags: &[(&str, &str, String)]) -> Vec<Effective> {
        let flag_meta = |flag: &str| Metadata::named(format!("flag {flag}"));
        let mut figment = self.figment.clone();
        for (env, flag, value) in flags {
            figment = figment.merge(layer(flag_meta(flag), [((*env).to_owned(), value.clone())]));
        }
        KEYS.iter()
            .map(|k| {
                let found = figment.find_value(k.env).ok().and_then(Value::into_string);
                let origin = match (&found, figment.find_metadata(k.env)) {
                    (None, _) | (_, None) => Origin::Default,
                    (Some(_), Some(m)) => match (&m.source, m.name.as_ref()) {
                        (Some(Source::File(p)), _) => Origin::File(p.clone()),
                        (_, "env") => Origin::Env,
                        (_, name) => Origin::Flag(name.trim_start_matches("flag ").to_owned()),
                    },
                };
                let value = match found {
                    Some(v) if k.secret => Some(mask(&v)),
                    Some(v) => Some(v),
                    None if k.default.is_empty() => None,
                    None => Some(k.default.to_owned()),
                };
                Effective {
                    key: k.display(),
                    env: k.env,
                    value,
                    origin: origin.to_string(),
                    secret: k.secret,
                }
            })
            .collect()
    }
}

/// A secret as shown: a URL keeps its scheme, user and host with the password masked and
/// no query; anything else is `********`.
fn mask(value: &str) -> String {
    match url::Url::parse(value.trim()) {
        Ok(u) if u.has_host() => {
            let mut u = u;
            if u.password().is_some() {
                let _ = u.set_password(Some("********"));
            }
            if u.query().is_some() {
                u.set_query(Some("********"));
            }
            u.set_fragment(None);
            u.to_string()
        }
        _ => "********".to_owned(),
    }
}

fn overlay(env: &mut HashMap<String, String>, from_file: &HashMap<String, String>) {
    for (k, v) in from_file {
        match env.get_mut(k) {
            Some(old) if old.trim().is_empty() => old.clone_from(v),
            Some(_) => {}
            None => {
                env.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The file's values installed for this process (see [`install_file_settings`]).
static FILE_SETTINGS: OnceLock<HashMap<String, String>> = OnceLock::new();

/// Makes the configuration file's values part of [`crate::process_env`] (and of every reader
/// of the process environment in this crate), below the real environment. Called once by
/// the command line at start; a second call is ignored.
pub fn install_file_settings(values: impl IntoIterator<Item = (String, String)>) {
    let _ = FILE_SETTINGS.set(values.into_iter().collect());
}

/// The configuration file's hooks installed for this process (see [`install_file_hooks`]).
static FILE_HOOKS: OnceLock<Vec<HookSpec>> = OnceLock::new();

/// Makes the hooks the configuration file declares those of [`file_hooks`], which the
/// commands that run syncs resolve into [`crate::HookSettings`]. Called once by the command
/// line at start; a second call is ignored.
pub fn install_file_hooks(hooks: Vec<HookSpec>) {
    let _ = FILE_HOOKS.set(hooks);
}

/// The hooks of the configuration file installed for this process (none when none was).
pub fn file_hooks() -> Vec<HookSpec> {
    FILE_HOOKS.get().cloned().unwrap_or_default()
}

/// The process environment with the installed file settings below it.
pub(crate) fn with_file_settings(mut env: HashMap<String, String>) -> HashMap<String, String> {
    if let Some(values) = FILE_SETTINGS.get() {
        overlay(&mut env, values);
    }
    env
}

/// One variable of the process environment, else of the installed file settings.
pub(crate) fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| FILE_SETTINGS.get().and_then(|m| m.get(name).cloned()))
}

/// How a value of `name` read from the process environment is named in an error: a value
/// that came from the configuration file says so.
pub(crate) fn origin_of(name: &str) -> &'static str {
    let in_env = std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let in_file = FILE_SETTINGS.get().is_some_and(|m| m.contains_key(name));
    if in_file && !in_env {
        "configuration file setting (variable)"
    } else {
        "environment variable"
    }
}

/// 1-based line and column of byte `offset` of `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

/// The nearest known key to `given` (a `[section] name` or a flat name), when close enough.
fn nearest(given: &str, candidates: impl Iterator<Item = String>) -> Option<String> {
    candidates
        .map(|c| (strsim::jaro_winkler(given, &c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn sectioned_names() -> impl Iterator<Item = String> {
    KEYS.iter().map(Key::display)
}

/// What a file holds: values by variable name, and the hooks it declares.
#[derive(Debug, Default)]
struct Parsed {
    values: HashMap<String, String>,
    hooks: Vec<HookSpec>,
}

/// Parses the file's text into values by variable name and hooks.
fn parse_file(path: &Path, text: &str) -> Result<Parsed, ConfigError> {
    let err = |offset: usize, message: String| {
        let (line, col) = line_col(text, offset);
        ConfigError::File {
            path: path.to_path_buf(),
            message: format!("line {line}, column {col}: {message}"),
        }
    };
    // toml's message names the line and column and shows the line.
    let doc = DeTable::parse(text).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    let mut out: HashMap<String, String> = HashMap::new();
    let mut hooks: Vec<HookSpec> = Vec::new();
    let mut set_by: HashMap<&'static str, String> = HashMap::new();
    for (name, item) in doc.get_ref() {
        let name_text: &str = name.get_ref();
        match item.get_ref() {
            DeValue::Table(section) if KEYS.iter().any(|k| k.section == name_text) => {
                for (key, value) in section {
                    let key_text: &str = key.get_ref();
                    if let Some(event) = HookEvent::ALL
                        .into_iter()
                        .find(|e| name_text == "hooks" && e.key() == key_text)
                    {
                        let declared = parse_hooks(event, value, path, text, &err)?;
                        for h in declared {
                            if hooks.iter().any(|other| other.name == h.name) {
                                return Err(ConfigError::File {
                                    path: path.to_path_buf(),
                                    message: format!(
                                        "{}: a hook named `{}` is declared twice",
                                        h.at, h.name
                                    ),
                                });
                            }
                            hooks.push(h);
                        }
                        continue;
                    }
                    let Some(k) = KEYS
                        .iter()
                        .find(|k| k.section == name_text && k.name == key_text)
                    else {
                        let given = format!("[{name_text}] {key_text}");
                        let hook_keys = HookEvent::ALL.map(|e| format!("[hooks] {}", e.key()));
                        return Err(err(
                            key.span().start,
                            unknown(&given, sectioned_names().chain(hook_keys)),
                        ));
                    };
                    let v = scalar(value.get_ref())
                        .map_err(|m| err(value.span().start, format!("{}: {m}", k.display())))?;
                    if let Some(other) = set_by.insert(k.env, k.display()) {
                        return Err(err(
                            key.span().start,
                            format!("{} is set twice (also as `{other}`)", k.display()),
                        ));
                    }
                    out.insert(k.env.to_owned(), v);
                }
            }
            DeValue::Table(_) => {
                let sections: Vec<&str> = KEYS.iter().map(|k| k.section).collect();
                let given = format!("[{name_text}]");
                let candidates = sections.iter().map(|s| format!("[{s}]"));
                return Err(err(name.span().start, unknown(&given, candidates)));
            }
            value => {
                // A flat key of earlier versions: a variable's name in lower case.
                let Some(k) = KEYS
                    .iter()
                    .find(|k| k.env.eq_ignore_ascii_case(name_text) && is_lower(name_text))
                else {
                    let flat = KEYS.iter().map(|k| k.env.to_ascii_lowercase());
                    return Err(err(
                        name.span().start,
                        unknown(name_text, flat.chain(sectioned_names())),
                    ));
                };
                let v = scalar(value)
                    .map_err(|m| err(item.span().start, format!("{name_text}: {m}")))?;
                if let Some(other) = set_by.insert(k.env, name_text.to_owned()) {
                    return Err(err(
                        name.span().start,
                        format!("{name_text} is set twice (also as `{other}`)"),
                    ));
                }
                out.insert(k.env.to_owned(), v);
            }
        }
    }
    Ok(Parsed { values: out, hooks })
}

/// The keys of one hook's table.
const HOOK_KEYS: [&str; 8] = [
    "name",
    "method",
    "url",
    "query",
    "headers",
    "timeout_seconds",
    "retries",
    "allow_http",
];

/// The hooks of `[[hooks.on_success]]` (an array of tables; one `[hooks.on_success]` table
/// is one hook).
fn parse_hooks(
    event: HookEvent,
    value: &toml::Spanned<DeValue<'_>>,
    path: &Path,
    text: &str,
    err: &impl Fn(usize, String) -> ConfigError,
) -> Result<Vec<HookSpec>, ConfigError> {
    let key = event.key();
    let tables: Vec<(usize, &DeTable<'_>)> = match value.get_ref() {
        DeValue::Table(t) => vec![(value.span().start, t)],
        DeValue::Array(items) => items
            .iter()
            .map(|item| match item.get_ref() {
                DeValue::Table(t) => Ok((item.span().start, t)),
                _ => Err(err(
                    item.span().start,
                    format!("[hooks] {key}: each hook is a table ([[hooks.{key}]])"),
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(err(
                value.span().start,
                format!("[hooks] {key}: expected hook tables ([[hooks.{key}]])"),
            ));
        }
    };
    tables
        .into_iter()
        .enumerate()
        .map(|(i, (start, table))| {
            let (line, _) = line_col(text, start);
            let spec = HookSpec {
                event,
                name: format!("{key}_{}", i + 1),
                method: "POST".into(),
                url: String::new(),
                query: Vec::new(),
                headers: Vec::new(),
                timeout: DEFAULT_HOOK_TIMEOUT,
                retries: 0,
                allow_http: false,
                at: format!("{} line {line}", path.display()),
            };
            parse_hook(spec, start, table, err)
        })
        .collect()
}

/// One hook's table into `spec` (which holds the defaults).
fn parse_hook(
    mut spec: HookSpec,
    start: usize,
    table: &DeTable<'_>,
    err: &impl Fn(usize, String) -> ConfigError,
) -> Result<HookSpec, ConfigError> {
    let event = spec.event.key();
    let mut has_url = false;
    for (key, value) in table {
        let key_text: &str = key.get_ref();
        let here = format!("[[hooks.{event}]] {key_text}");
        let bad = |m: &str| err(value.span().start, format!("{here}: {m}"));
        let string = || match value.get_ref() {
            DeValue::String(s) => Ok(s.to_string()),
            _ => Err(bad("expected text")),
        };
        let number = || match value.get_ref() {
            v @ (DeValue::Integer(_) | DeValue::Float(_)) => scalar(v).ok(),
            _ => None,
        };
        match key_text {
            "name" => {
                spec.name = string()?;
                let ok = !spec.name.is_empty()
                    && spec
                        .name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
                if !ok {
                    return Err(bad("a name is letters, digits, `_`, `-` or `.`"));
                }
            }
            "method" => spec.method = string()?,
            "url" => {
                spec.url = string()?;
                has_url = true;
            }
            "query" => spec.query = hook_pairs(&here, value, false, err)?,
            "headers" => spec.headers = hook_pairs(&here, value, true, err)?,
            "timeout_seconds" => {
                let secs = number()
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
                    .ok_or_else(|| bad("expected a number of seconds between 0 and 3600"))?;
                spec.timeout = std::time::Duration::from_secs_f64(secs);
            }
            "retries" => {
                spec.retries = number()
                    .and_then(|v| v.parse::<u32>().ok())
                    .filter(|n| *n <= MAX_HOOK_RETRIES)
                    .ok_or_else(|| {
                        bad(&format!(
                            "expected a whole number from 0 to {MAX_HOOK_RETRIES}"
                        ))
                    })?;
            }
            "allow_http" => {
                let DeValue::Boolean(b) = value.get_ref() else {
                    return Err(bad("expected true or false"));
                };
                spec.allow_http = *b;
            }
            other => {
                let given = format!("[[hooks.{event}]] {other}");
                let candidates = HOOK_KEYS.iter().map(|k| format!("[[hooks.{event}]] {k}"));
                return Err(err(key.span().start, unknown(&given, candidates)));
            }
        }
    }
    if !has_url {
        return Err(err(
            start,
            format!("[[hooks.{event}]] `{}` has no url", spec.name),
        ));
    }
    Ok(spec)
}

/// The `{ NAME = value }` table of a hook's `query` or `headers` (header values are text and
/// their names header names).
fn hook_pairs(
    here: &str,
    value: &toml::Spanned<DeValue<'_>>,
    headers: bool,
    err: &impl Fn(usize, String) -> ConfigError,
) -> Result<Vec<(String, String)>, ConfigError> {
    let DeValue::Table(pairs) = value.get_ref() else {
        return Err(err(
            value.span().start,
            format!("{here}: expected a table, {{ NAME = \"value\" }}"),
        ));
    };
    let mut out = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        let name: &str = k.get_ref();
        let text = match (headers, v.get_ref()) {
            (true, DeValue::String(s)) => s.to_string(),
            (true, _) => {
                return Err(err(
                    v.span().start,
                    format!("{here}.{name}: a header value is text"),
                ));
            }
            (false, other) => {
                scalar(other).map_err(|m| err(v.span().start, format!("{here}.{name}: {m}")))?
            }
        };
        if headers && reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(err(
                k.span().start,
                format!("{here}: `{name}` is not a header name"),
            ));
        }
        out.push((name.to_owned(), text));
    }
    Ok(out)
}

fn is_lower(s: &str) -> bool {
    !s.chars().any(|c| c.is_ascii_uppercase())
}

fn unknown(given: &str, candidates: impl Iterator<Item = String>) -> String {
    match nearest(given, candidates) {
        Some(near) => format!("unknown key `{given}`; did you mean `{near}`?"),
        None => format!(
            "unknown key `{given}` (the keys are listed in the README, \"One configuration file\")"
        ),
    }
}

/// A value as its variable would hold it: text as is, numbers and booleans written out, a
/// list joined by commas.
fn scalar(value: &DeValue<'_>) -> Result<String, String> {
    match value {
        DeValue::String(s) => Ok(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            i64::from_str_radix(&digits, i.radix())
                .map(|n| n.to_string())
                .map_err(|e| format!("`{digits}` is not an integer ({e})"))
        }
        DeValue::Float(f) => Ok(f.as_str().replace('_', "")),
        DeValue::Boolean(b) => Ok(b.to_string()),
        DeValue::Array(items) => items
            .iter()
            .map(|item| match item.get_ref() {
                DeValue::Array(_) | DeValue::Table(_) => {
                    Err("a list may hold only text, numbers or booleans".to_owned())
                }
                other => scalar(other),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join(",")),
        DeValue::Datetime(_) => Err("a date is not a value of any setting".to_owned()),
        DeValue::Table(_) => Err("expected a value, found a table".to_owned()),
    }
}

#[cfg(test)]
#[path = "layers_tests.rs"]
mod tests;
