//! Settings of a sync: command-line flags over environment variables (the legacy names of
//! `ztdwr.md` §6 included) over `datsync.toml` over defaults.
//!
//! Raw settings are read into [`RawSettings`] (every field optional), layered, then checked
//! into [`Settings`]. Database and alert settings are read by `pg` and `alert`, which own
//! them; this module holds the settings of the pipeline itself.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::profile::Profile;
use crate::validate::DEFAULT_ERROR_THRESHOLD;

/// The file read from the working directory when it exists.
pub const DEFAULT_CONFIG_FILE: &str = "datsync.toml";
/// Where checkpoints go when nothing else is said (`CHECKPOINT_BASE_PATH`).
pub const DEFAULT_CHECKPOINT_BASE: &str = "./checkpoints";
/// Days after which a checkpoint directory is removed (`CHECKPOINT_RETENTION_DAYS`).
pub const DEFAULT_RETENTION_DAYS: u32 = 7;

/// An unusable setting; it names the variable or key and the source it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value that does not parse.
    #[error("{origin} `{name}` = {value:?}: {expected}")]
    Invalid {
        /// Where the value came from (`environment variable`, `datsync.toml`).
        origin: &'static str,
        /// The variable or key.
        name: String,
        /// The value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The config file cannot be read or parsed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong (with line and column for a syntax error).
        message: String,
    },
}

/// Settings as given, each optional; later layers fill what earlier ones left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawSettings {
    /// Target schema (`DB_SCHEMA`), overriding the profile's.
    pub db_schema: Option<String>,
    /// Target table (`DB_TABLE`), overriding the profile's.
    pub db_table: Option<String>,
    /// Error-rate threshold, a fraction (`VALIDATION_ERROR_THRESHOLD`).
    pub validation_error_threshold: Option<f64>,
    /// Refresh materialized views after a successful sync (`ENABLE_MV_REFRESH`).
    pub enable_mv_refresh: Option<bool>,
    /// Views to refresh, in order (`MATERIALIZED_VIEWS`), overriding the profile's.
    pub materialized_views: Option<Vec<String>>,
    /// Write Parquet checkpoints (`ENABLE_CHECKPOINTING`).
    pub enable_checkpointing: Option<bool>,
    /// Checkpoint directory or object URL (`CHECKPOINT_BASE_PATH`).
    pub checkpoint_base_path: Option<String>,
    /// Delete checkpoints after a SUCCESS (`CHECKPOINT_CLEANUP_ON_SUCCESS`).
    pub checkpoint_cleanup_on_success: Option<bool>,
    /// Retention of checkpoint directories in days (`CHECKPOINT_RETENTION_DAYS`).
    pub checkpoint_retention_days: Option<u32>,
    /// Rows per chunk (`CHUNK_SIZE`).
    pub chunk_size: Option<usize>,
    /// Compression of new checkpoints' chunk files: auto, snappy, zstd or none
    /// (`CHECKPOINT_COMPRESSION`).
    pub checkpoint_compression: Option<String>,
    /// The byte budget of a chunk (`CHUNK_BYTES`): a chunk ends at `chunk_size` rows or once
    /// its rows hold this many bytes, whichever comes first.
    pub chunk_bytes: Option<ByteSize>,
    /// The longest line decoded into fields (`MAX_LINE_BYTES`); a longer line is one
    /// rejected row.
    pub max_line_bytes: Option<ByteSize>,
    /// The most fields a header may have (`MAX_HEADER_COLUMNS`).
    pub max_header_columns: Option<usize>,
    /// Chunks loaded at once, each on a connection of its own (`DATSYNC_JOBS`).
    pub jobs: Option<usize>,
}

/// A size in bytes, written as a whole number of bytes (`1048576`) or with a unit (`64 MiB`,
/// `512KiB`, `1 GiB`; `KB`, `MB` and `GB` are powers of ten).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &str = "a size in bytes such as 1048576, 64 MiB or 512 KiB";
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 = number.parse().map_err(|_| EXPECTED)?;
        let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            _ => return Err(EXPECTED),
        };
        number.checked_mul(scale).map(Self).ok_or(EXPECTED)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Self(n)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// The environment variables read, with the field each fills.
const ENV_NAMES: &[&str] = &[
    "DB_SCHEMA",
    "DB_TABLE",
    "VALIDATION_ERROR_THRESHOLD",
    "ENABLE_MV_REFRESH",
    "MATERIALIZED_VIEWS",
    "ENABLE_CHECKPOINTING",
    "CHECKPOINT_BASE_PATH",
    "CHECKPOINT_CLEANUP_ON_SUCCESS",
    "CHECKPOINT_RETENTION_DAYS",
    "CHUNK_SIZE",
    "CHECKPOINT_COMPRESSION",
    "CHUNK_BYTES",
    "MAX_LINE_BYTES",
    "MAX_HEADER_COLUMNS",
    "DATSYNC_JOBS",
];

impl RawSettings {
    /// Reads the variables datsync knows (`DB_SCHEMA`, `CHUNK_SIZE`, … listed in the
    /// README) from an environment map.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let mut raw = Self::default();
        for &name in ENV_NAMES {
            let Some(value) = get(name) else { continue };
            let invalid = |expected| ConfigError::Invalid {
                origin: crate::layers::origin_of(name),
                name: name.to_owned(),
                value: value.to_owned(),
                expected,
            };
            match name {
                "DB_SCHEMA" => raw.db_schema = Some(value.to_owned()),
                "DB_TABLE" => raw.db_table = Some(value.to_owned()),
                "VALIDATION_ERROR_THRESHOLD" => {
                    raw.validation_error_threshold = Some(
                        value
                            .parse()
                            .map_err(|_| invalid("a fraction such as 0.1"))?,
                    );
                }
                "ENABLE_MV_REFRESH" => {
                    raw.enable_mv_refresh = Some(parse_bool(value).ok_or_else(|| invalid(BOOL))?);
                }
                "MATERIALIZED_VIEWS" => {
                    raw.materialized_views = Some(
                        value
                            .split(',')
                            .map(str::trim)
                            .filter(|v| !v.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    );
                }
                "ENABLE_CHECKPOINTING" => {
                    raw.enable_checkpointing =
                        Some(parse_bool(value).ok_or_else(|| invalid(BOOL))?);
                }
                "CHECKPOINT_BASE_PATH" => raw.checkpoint_base_path = Some(value.to_owned()),
                "CHECKPOINT_CLEANUP_ON_SUCCESS" => {
                    raw.checkpoint_cleanup_on_success =
                        Some(parse_bool(value).ok_or_else(|| invalid(BOOL))?);
                }
                "CHECKPOINT_RETENTION_DAYS" => {
                    raw.checkpoint_retention_days = Some(
                        value
                            .parse()
                            .map_err(|_| invalid("a whole number of days"))?,
                    );
                }
                "CHUNK_SIZE" => {
                    raw.chunk_size =
                        Some(value.parse().map_err(|_| invalid("a positive row count"))?);
                }
                "CHECKPOINT_COMPRESSION" => raw.checkpoint_compression = Some(value.to_owned()),
                "CHUNK_BYTES" => raw.chunk_bytes = Some(value.parse().map_err(invalid)?),
                "MAX_LINE_BYTES" => raw.max_line_bytes = Some(value.parse().map_err(invalid)?),
                "MAX_HEADER_COLUMNS" => {
                    raw.max_header_columns = Some(
                        value
                            .parse()
                            .map_err(|_| invalid("a positive column count"))?,
                    );
                }
                "DATSYNC_JOBS" => {
                    raw.jobs = Some(
                        value
                            .parse()
                            .map_err(|_| invalid("a number of loaders from 1 to 64"))?,
                    );
                }
                _ => {}
            }
        }
        Ok(raw)
    }

    /// Reads the pipeline settings of a `datsync.toml` (sections or the flat keys of earlier
    /// versions; see [`crate::layers`]); a missing file gives empty settings.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(ConfigError::File {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                });
            }
        };
        let layers = crate::layers::Layers::from_text(path, &text, &HashMap::new())?;
        Self::from_env(layers.file_values()).map_err(|e| match e {
            ConfigError::Invalid {
                name,
                value,
                expected,
                ..
            } => ConfigError::File {
                path: path.to_path_buf(),
                message: format!(
                    "{} = {value:?}: {expected}",
                    crate::layers::key_of(&name).map_or(name, crate::layers::Key::display)
                ),
            },
            other @ ConfigError::File { .. } => other,
        })
    }

    /// `self` where set, else `lower`.
    #[must_use]
    pub fn or(self, lower: Self) -> Self {
        Self {
            db_schema: self.db_schema.or(lower.db_schema),
            db_table: self.db_table.or(lower.db_table),
            validation_error_threshold: self
                .validation_error_threshold
                .or(lower.validation_error_threshold),
            enable_mv_refresh: self.enable_mv_refresh.or(lower.enable_mv_refresh),
            materialized_views: self.materialized_views.or(lower.materialized_views),
            enable_checkpointing: self.enable_checkpointing.or(lower.enable_checkpointing),
            checkpoint_base_path: self.checkpoint_base_path.or(lower.checkpoint_base_path),
            checkpoint_cleanup_on_success: self
                .checkpoint_cleanup_on_success
                .or(lower.checkpoint_cleanup_on_success),
            checkpoint_retention_days: self
                .checkpoint_retention_days
                .or(lower.checkpoint_retention_days),
            chunk_size: self.chunk_size.or(lower.chunk_size),
            checkpoint_compression: self.checkpoint_compression.or(lower.checkpoint_compression),
            chunk_bytes: self.chunk_bytes.or(lower.chunk_bytes),
            max_line_bytes: self.max_line_bytes.or(lower.max_line_bytes),
            max_header_columns: self.max_header_columns.or(lower.max_header_columns),
            jobs: self.jobs.or(lower.jobs),
        }
    }

    /// Checks the layered settings and fills defaults.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let threshold = self
            .validation_error_threshold
            .unwrap_or(DEFAULT_ERROR_THRESHOLD);
        if !(0.0..=1.0).contains(&threshold) {
            return Err(ConfigError::Invalid {
                origin: "setting",
                name: "validation_error_threshold".into(),
                value: threshold.to_string(),
                expected: "a fraction between 0 and 1",
            });
        }
        let chunk_size = self.chunk_size.unwrap_or(crate::parse::DEFAULT_BATCH_ROWS);
        if chunk_size == 0 {
            return Err(ConfigError::Invalid {
                origin: "setting",
                name: "chunk_size".into(),
                value: "0".into(),
                expected: "a positive row count",
            });
        }
        let positive =
            |name: &str, value: Option<u64>, default: usize, max: u64, expected| match value {
                None => Ok(default),
                Some(v) if v >= 1 && v <= max => Ok(usize::try_from(v).unwrap_or(default)),
                Some(v) => Err(ConfigError::Invalid {
                    origin: "setting",
                    name: name.to_owned(),
                    value: v.to_string(),
                    expected,
                }),
            };
        let chunk_bytes = positive(
            "chunk_bytes",
            self.chunk_bytes.map(|b| b.0),
            crate::parse::DEFAULT_BATCH_BYTES,
            u64::MAX,
            "a positive size in bytes",
        )?;
        let max_line_bytes = positive(
            "max_line_bytes",
            self.max_line_bytes.map(|b| b.0),
            crate::parse::DEFAULT_MAX_LINE_BYTES,
            MAX_MAX_LINE_BYTES,
            "a size in bytes between 1 and 1 GiB",
        )?;
        let max_header_columns = positive(
            "max_header_columns",
            self.max_header_columns
                .map(|n| u64::try_from(n).unwrap_or(u64::MAX)),
            crate::parse::DEFAULT_MAX_HEADER_COLUMNS,
            u64::MAX,
            "a positive column count",
        )?;
        let jobs = positive(
            "jobs",
            self.jobs.map(|n| u64::try_from(n).unwrap_or(u64::MAX)),
            DEFAULT_JOBS,
            MAX_JOBS as u64,
            "a number of loaders from 1 to 64",
        )?;
        let compression = match self.checkpoint_compression.as_deref() {
            None => None,
            Some(text) if text.trim().eq_ignore_ascii_case("auto") => None,
            Some(text) => Some(text.parse().map_err(|_| ConfigError::Invalid {
                origin: "setting",
                name: "checkpoint_compression".into(),
                value: text.to_owned(),
                expected: "auto, snappy, zstd or none",
            })?),
        };
        Ok(Settings {
            compression,
            db_schema: self.db_schema,
            db_table: self.db_table,
            error_threshold: threshold,
            enable_mv_refresh: self.enable_mv_refresh.unwrap_or(true),
            materialized_views: self.materialized_views,
            enable_checkpointing: self.enable_checkpointing.unwrap_or(true),
            checkpoint_base: self
                .checkpoint_base_path
                .unwrap_or_else(|| DEFAULT_CHECKPOINT_BASE.to_owned()),
            cleanup_on_success: self.checkpoint_cleanup_on_success.unwrap_or(true),
            retention_days: self
                .checkpoint_retention_days
                .unwrap_or(DEFAULT_RETENTION_DAYS),
            chunk_size,
            chunk_bytes,
            max_line_bytes,
            max_header_columns,
            jobs,
        })
    }
}

/// Chunks loaded at once by default (`--jobs`, `DATSYNC_JOBS`): one, on the run's session.
pub const DEFAULT_JOBS: usize = 1;
/// The most chunks loaded at once (each holds a connection and a chunk in memory).
pub const MAX_JOBS: usize = 64;

/// The largest `max_line_bytes` accepted: 1 GiB (a line is held whole while it is decoded).
const MAX_MAX_LINE_BYTES: u64 = 1 << 30;

/// Checked settings of the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Target schema override.
    pub db_schema: Option<String>,
    /// Target table override.
    pub db_table: Option<String>,
    /// Error-rate threshold.
    pub error_threshold: f64,
    /// Refresh materialized views after a successful sync.
    pub enable_mv_refresh: bool,
    /// Views to refresh instead of the profile's.
    pub materialized_views: Option<Vec<String>>,
    /// Write Parquet checkpoints.
    pub enable_checkpointing: bool,
    /// Checkpoint directory or object URL.
    pub checkpoint_base: String,
    /// Delete checkpoints after a SUCCESS.
    pub cleanup_on_success: bool,
    /// Retention in days.
    pub retention_days: u32,
    /// Rows per chunk.
    pub chunk_size: usize,
    /// Compression of new checkpoints' chunk files; `None` (`auto`, the default): as
    /// [`crate::checkpoint::ChunkCompression::for_location`] picks for the checkpoint's store
    /// (`none` in a local directory, the seed's `snappy` in object storage).
    pub compression: Option<crate::checkpoint::ChunkCompression>,
    /// The byte budget of a chunk ([`crate::parse::DEFAULT_BATCH_BYTES`] by default).
    pub chunk_bytes: usize,
    /// The longest line decoded into fields ([`crate::parse::DEFAULT_MAX_LINE_BYTES`]).
    pub max_line_bytes: usize,
    /// The most fields a header may have ([`crate::parse::DEFAULT_MAX_HEADER_COLUMNS`]).
    pub max_header_columns: usize,
    /// Chunks loaded at once, each on a connection of its own ([`DEFAULT_JOBS`]: one, on
    /// the run's session).
    pub jobs: usize,
}

impl Settings {
    /// The decoder settings of a new sync (a resumed one cuts its chunks as it was cut).
    pub fn parse_options(&self) -> crate::parse::ParseOptions {
        crate::parse::ParseOptions {
            batch_rows: self.chunk_size,
            batch_bytes: self.chunk_bytes,
            max_line_bytes: self.max_line_bytes,
            max_header_columns: self.max_header_columns,
            ..crate::parse::ParseOptions::default()
        }
    }
}

/// Applies the `DB_SCHEMA` / `DB_TABLE` overrides of `settings` to the profile's target
/// schema and table (every command that touches the database uses the result).
pub fn apply_overrides(profile: &mut Profile, settings: &Settings) {
    if let Some(schema) = &settings.db_schema {
        profile.schema.clone_from(schema);
    }
    if let Some(table) = &settings.db_table {
        profile.table.clone_from(table);
    }
}

const BOOL: &str = "true or false";

/// `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, any case.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The process environment as a map, for the `from_env` readers, with the configuration
/// file's settings below it once the command line has installed them
/// ([`crate::install_file_settings`]).
pub fn process_env() -> HashMap<String, String> {
    crate::layers::with_file_settings(std::env::vars().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn legacy_environment_names_work() {
        let s = RawSettings::from_env(&env(&[
            ("DB_SCHEMA", "ops"),
            ("VALIDATION_ERROR_THRESHOLD", "0.25"),
            ("ENABLE_MV_REFRESH", "false"),
            ("MATERIALIZED_VIEWS", "mv_a, mv_b,,"),
            ("ENABLE_CHECKPOINTING", "FALSE"),
            ("CHECKPOINT_BASE_PATH", "/var/ck"),
            ("CHECKPOINT_CLEANUP_ON_SUCCESS", "no"),
            ("CHECKPOINT_RETENTION_DAYS", "3"),
        ]))
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(s.db_schema.as_deref(), Some("ops"));
        assert!((s.error_threshold - 0.25).abs() < f64::EPSILON);
        assert!(!s.enable_mv_refresh && !s.enable_checkpointing && !s.cleanup_on_success);
        assert_eq!(
            s.materialized_views,
            Some(vec!["mv_a".to_owned(), "mv_b".to_owned()])
        );
        assert_eq!(s.checkpoint_base, "/var/ck");
        assert_eq!(s.retention_days, 3);
    }

    #[test]
    fn defaults_and_layering() {
        let s = RawSettings::default().validate().unwrap();
        assert_eq!(s.checkpoint_base, DEFAULT_CHECKPOINT_BASE);
        assert_eq!(s.chunk_size, 10_000);
        assert!(s.enable_checkpointing && s.cleanup_on_success && s.enable_mv_refresh);
        let flags = RawSettings {
            chunk_size: Some(5),
            ..RawSettings::default()
        };
        let envs = RawSettings {
            chunk_size: Some(7),
            db_table: Some("t".into()),
            ..RawSettings::default()
        };
        let s = flags.or(envs).validate().unwrap();
        assert_eq!((s.chunk_size, s.db_table.as_deref()), (5, Some("t")));
    }

    #[test]
    fn checkpoint_compression_is_chosen_by_name() {
        use crate::checkpoint::ChunkCompression;
        let pick = |v: &str| {
            RawSettings::from_env(&env(&[("CHECKPOINT_COMPRESSION", v)]))
                .unwrap()
                .validate()
        };
        assert_eq!(RawSettings::default().validate().unwrap().compression, None);
        assert_eq!(pick("auto").unwrap().compression, None);
        assert_eq!(pick(" AUTO ").unwrap().compression, None);
        assert_eq!(
            pick("snappy").unwrap().compression,
            Some(ChunkCompression::Snappy)
        );
        assert_eq!(
            pick("zstd").unwrap().compression,
            Some(ChunkCompression::Zstd)
        );
        assert_eq!(
            pick("none").unwrap().compression,
            Some(ChunkCompression::None)
        );
        let e = pick("brotli").unwrap_err().to_string();
        assert!(
            e.contains("brotli") && e.contains("auto, snappy, zstd or none"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = RawSettings::from_env(&env(&[("ENABLE_CHECKPOINTING", "maybe")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ENABLE_CHECKPOINTING") && e.contains("maybe"),
            "{e}"
        );
        let e = RawSettings::from_env(&env(&[("VALIDATION_ERROR_THRESHOLD", "2")]))
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("between 0 and 1"), "{e}");
    }

    #[test]
    fn overrides_replace_the_profile_target() {
        let mut p = Profile::ztdwr();
        let (schema, table) = (p.schema.clone(), p.table.clone());
        apply_overrides(&mut p, &RawSettings::default().validate().unwrap());
        assert_eq!(
            (p.schema.as_str(), p.table.as_str()),
            (schema.as_str(), table.as_str())
        );
        let s = RawSettings::from_env(&env(&[("DB_SCHEMA", "ops"), ("DB_TABLE", "t2")]))
            .unwrap()
            .validate()
            .unwrap();
        apply_overrides(&mut p, &s);
        assert_eq!((p.schema.as_str(), p.table.as_str()), ("ops", "t2"));
    }

    #[test]
    fn sizes_and_limits_from_every_layer() {
        let s = RawSettings::default().validate().unwrap();
        assert_eq!(s.chunk_bytes, 64 << 20);
        assert_eq!(s.max_line_bytes, 1 << 20);
        assert_eq!(s.max_header_columns, 2_000);
        let s = RawSettings::from_env(&env(&[
            ("CHUNK_BYTES", "16 MiB"),
            ("MAX_LINE_BYTES", "262144"),
            ("MAX_HEADER_COLUMNS", "300"),
        ]))
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(
            (s.chunk_bytes, s.max_line_bytes, s.max_header_columns),
            (16 << 20, 256 << 10, 300)
        );
        let o = s.parse_options();
        assert_eq!((o.batch_bytes, o.max_line_bytes), (16 << 20, 256 << 10));
        for (text, want) in [
            ("1", 1),
            ("2KiB", 2048),
            ("3 mib", 3 << 20),
            ("1GiB", 1 << 30),
            ("5 MB", 5_000_000),
            ("7b", 7),
        ] {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(want)), "{text}");
        }
        for bad in [
            "",
            "MiB",
            "1.5 MiB",
            "-1",
            "10 parsecs",
            "99999999999999999999 GiB",
        ] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad}");
        }
        let e = RawSettings::from_env(&env(&[("MAX_LINE_BYTES", "lots")])).unwrap_err();
        assert!(e.to_string().contains("MAX_LINE_BYTES"), "{e}");
        let e = RawSettings::from_env(&env(&[("MAX_LINE_BYTES", "2 GiB")]))
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("max_line_bytes"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("datsync.toml");
        std::fs::write(&p, "chunk_bytes = \"8 MiB\"\nmax_line_bytes = 4096\n").unwrap();
        let s = RawSettings::from_file(&p).unwrap().validate().unwrap();
        assert_eq!((s.chunk_bytes, s.max_line_bytes), (8 << 20, 4096));
        std::fs::write(&p, "max_line_bytes = \"huge\"\n").unwrap();
        let e = RawSettings::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("size in bytes"), "{e}");
    }

    #[test]
    fn config_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("datsync.toml");
        assert_eq!(RawSettings::from_file(&p).unwrap(), RawSettings::default());
        std::fs::write(&p, "chunk_size = 5\nbogus = 1\n").unwrap();
        let e = RawSettings::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("datsync.toml") && e.contains("bogus"), "{e}");
    }
}
