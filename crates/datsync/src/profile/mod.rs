//! The column profile: which source headers exist, how they map to target columns, their
//! types and row rules, and the conflict key.
//!
//! A profile is read from TOML (format documented at the top of `profiles/ztdwr.toml`) into
//! raw serde structs (`raw.rs`), then checked into a [`Profile`] (`check.rs`); this file is
//! the checked model. The built-in [`Profile::ztdwr`] encodes `ztdwr.md` §2–§5.

mod check;
mod derived;
mod format;
mod pii;
mod policy;
mod raw;
mod stored;
mod version;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use check::Checker;
pub use derived::{DERIVED_BOOKKEEPING, Derived, DerivedColumn, DerivedUpdate};
pub use format::{DelimiterSetting, Escape, Format, MAX_DELIMITER_BYTES, TextEncoding};
pub use pii::{NUL_SYMBOL, PII_MASK};
pub use policy::{LoadMode, MissingOptional, OnInvalid, UnknownColumns};
use raw::RawProfile;
pub use stored::StoredType;
pub use version::{
    NameVersion, ROW_VERSION_COLUMN, RowVersion, VersionColumns, readable_version, stamp,
};

/// The target schema of a profile that names none.
pub const DEFAULT_SCHEMA: &str = "public";

/// The TOML text of the built-in `ztdwr` profile.
pub const ZTDWR_PROFILE_TOML: &str = include_str!("../../profiles/ztdwr.toml");

/// Default number of decimal places kept for a `decimal` column.
pub const DEFAULT_DECIMAL_SCALE: u8 = 6;

/// Largest scale a `decimal` column may ask for (Arrow `Decimal128` holds 38 digits).
pub const MAX_DECIMAL_SCALE: u8 = 18;

/// The null tokens used when a profile names none (`ztdwr.md` §1).
pub const DEFAULT_NULL_TOKENS: &[&str] =
    &["", "~", "NULL", "null", "None", "nan", "NaN", "NAN", "<NA>"];

/// An error reading or checking a profile. Every variant names the file and, where known,
/// the line and field.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read.
    #[error("cannot read profile {path}: {source}")]
    Read {
        /// The profile file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has a field of the wrong type or an unknown field.
    #[error("invalid profile {path}: {message}")]
    Syntax {
        /// The profile file.
        path: PathBuf,
        /// The TOML parser's message, which includes the line and column.
        message: String,
    },
    /// The TOML is well formed but a field has a value that cannot be used.
    #[error("invalid profile {path}, line {line}, field `{field}`: {message}")]
    Invalid {
        /// The profile file.
        path: PathBuf,
        /// 1-based line of the offending entry.
        line: usize,
        /// The field that is wrong.
        field: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
}

/// The type of a target column, and how its text is read (`ztdwr.md` §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Text, loaded as it is (trimmed, markers stripped).
    Text,
    /// An exact decimal (`numeric`), with this many decimal places kept.
    Decimal {
        /// Decimal places kept.
        scale: u8,
    },
    /// A 64-bit integer; a non-whole value rounds half away from zero and warns.
    Integer,
    /// `X`/`1`/`Y`/`YES`/`TRUE`/`T` true; `0`/`N`/`NO`/`FALSE`/`F` false; blank null.
    Boolean,
    /// A calendar date (`date`).
    Date,
    /// A time of day (`time`).
    Time,
    /// A `timestamp`: built from a date column and a time column (`time_source`), or read
    /// from one column (ISO 8601, or the column's `format`).
    Timestamp,
    /// A date loaded as a `timestamp` at midnight.
    DateTimestamp,
    /// A `timestamptz`: ISO 8601 with an offset or `Z` (or the column's `format`; a value
    /// without an offset is UTC).
    TimestampTz,
    /// A `double precision`.
    Float,
    /// A decimal without a fixed scale (`numeric`), every digit kept as written.
    Numeric,
}

impl ColumnType {
    /// The name used in profile files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Decimal { .. } => "decimal",
            Self::Integer => "integer",
            Self::Boolean => "boolean",
            Self::Date => "date",
            Self::Time => "time",
            Self::Timestamp => "timestamp",
            Self::DateTimestamp => "date_timestamp",
            Self::TimestampTz => "timestamptz",
            Self::Float => "float",
            Self::Numeric => "numeric",
        }
    }

    fn is_numeric(self) -> bool {
        matches!(
            self,
            Self::Decimal { .. } | Self::Integer | Self::Float | Self::Numeric
        )
    }

    /// Whether a strftime `format` applies to the type.
    pub fn takes_format(self) -> bool {
        matches!(
            self,
            Self::Date | Self::Time | Self::Timestamp | Self::DateTimestamp | Self::TimestampTz
        )
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One end of a numeric range rule, kept as the decimal text of the profile so that the
/// comparison can be exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// The bound as decimal text (`"0"`, `"500"`, `"0.5"`).
    pub value: String,
    /// Whether a value equal to the bound passes.
    pub inclusive: bool,
}

/// A numeric range rule; either end may be open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeRule {
    /// The lower bound.
    pub lower: Option<Bound>,
    /// The upper bound.
    pub upper: Option<Bound>,
}

/// The row rules of one column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// The value must not be empty or a null token.
    pub not_empty: bool,
    /// The value must parse as the column's type (for a timestamp: date and time both).
    pub valid: bool,
    /// The parsed value must fall in this range.
    pub range: Option<RangeRule>,
}

/// One target column and where its value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Target column name.
    pub target: String,
    /// Canonical source header name (the date half of a `timestamp`).
    pub source: String,
    /// The time half of a `timestamp`.
    pub time_source: Option<String>,
    /// The column type.
    pub kind: ColumnType,
    /// The strftime format of a date, time or timestamp value (of the date half of a date +
    /// time pair); `None`: the type's default forms.
    pub format: Option<String>,
    /// The source column(s) must be present in the header.
    pub required: bool,
    /// Row rules.
    pub rules: Rules,
    /// What a value this column's type cannot read does to its row.
    pub on_invalid: OnInvalid,
    /// The type of the existing target column when it holds less than the profile type
    /// (an adopted table); `None` when it holds every value of the type. Values that do not
    /// fit are value warnings (see [`StoredType`]).
    pub stored: Option<StoredType>,
    /// The column holds personal data (`pii = true`: national ID numbers, names): its values
    /// are masked wherever they would leave the rejects files — `validation_errors`, the
    /// ledger, alerts, logs, `inspect` (see [`Profile::masked_errors`]).
    pub pii: bool,
}

impl Column {
    /// The source columns this target reads: one, or two for a date + time pair.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.source.as_str()).chain(self.time_source.as_deref())
    }
}

/// A checked column profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Profile name (`ztdwr`).
    pub name: String,
    /// Target schema (default `public`).
    pub schema: String,
    /// Target table.
    pub table: String,
    /// Target columns of the conflict (primary) key, in key order: one, or several for a
    /// composite key; none in append mode.
    pub key: Vec<String>,
    /// Upsert by `key` (newest wins) or append every row.
    pub mode: LoadMode,
    /// Materialized views refreshed after a sync, in order.
    pub materialized_views: Vec<String>,
    /// Values that mean NULL, compared after trimming whitespace.
    pub null_tokens: Vec<String>,
    /// The target columns, in profile order.
    pub columns: Vec<Column>,
    /// What a run does with header columns the profile does not know.
    pub unknown_columns: UnknownColumns,
    /// What a run does when optional columns are missing from the header.
    pub missing_optional: MissingOptional,
    /// The file format (`[format]`): delimiter, header, quoting, escapes, encoding.
    pub format: Format,
    /// What orders two versions of a row before `sync_seq` and the source line (`version`,
    /// `version_from_name`); `None`: newest wins by `(sync_seq, source_line)` alone.
    pub version: Option<RowVersion>,
    /// Side tables upserted from each chunk's rows, beside the chunk's transaction or in it
    /// (`[[derived]]`, `load/derived.rs`).
    pub derived: Vec<Derived>,
    /// Header variant → canonical source name.
    aliases: HashMap<String, String>,
    /// Every source name the profile reads, in first-use order, with its required flag.
    sources: Vec<(String, bool)>,
}

impl Profile {
    /// The built-in `ztdwr` profile.
    ///
    /// # Panics
    ///
    /// Never in a released build: the built-in TOML is checked by a unit test.
    pub fn ztdwr() -> Self {
        // The built-in profile is checked by a unit test; failing here is a build defect.
        #[allow(clippy::expect_used)]
        Self::from_toml_str(ZTDWR_PROFILE_TOML, Path::new("<built-in ztdwr>"))
            .expect("the built-in ztdwr profile is valid")
    }

    /// Reads and checks a profile file.
    pub fn from_file(path: &Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text, path)
    }

    /// Parses and checks profile TOML; `path` is used in error messages only.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self, ProfileError> {
        let raw: RawProfile = toml::from_str(text).map_err(|e| ProfileError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        Checker { text, path }.check(raw)
    }

    /// The canonical source name a canonical header name stands for, after aliases;
    /// `None` when the profile does not know the column.
    pub fn resolve(&self, canonical_header: &str) -> Option<&str> {
        if let Some(source) = self.aliases.get(canonical_header) {
            return Some(source);
        }
        self.sources
            .iter()
            .find(|(name, _)| name == canonical_header)
            .map(|(name, _)| name.as_str())
    }

    /// Every source name the profile reads, with whether it is required.
    pub fn sources(&self) -> impl Iterator<Item = (&str, bool)> {
        self.sources.iter().map(|(n, r)| (n.as_str(), *r))
    }

    /// The source names that must be present in the header.
    pub fn required_sources(&self) -> impl Iterator<Item = &str> {
        self.sources().filter(|(_, r)| *r).map(|(n, _)| n)
    }

    /// The optional source names that are not among `names` (header column names), in
    /// profile order.
    pub fn missing_optional<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let names: std::collections::HashSet<&str> = names.into_iter().collect();
        self.sources()
            .filter(|(n, required)| !required && !names.contains(n))
            .map(|(n, _)| n.to_owned())
            .collect()
    }

    /// The columns of the conflict key, in key order (none in append mode).
    pub fn key_columns(&self) -> impl Iterator<Item = &Column> {
        // `check` guarantees each key part names a column.
        self.key
            .iter()
            .filter_map(|k| self.columns.iter().find(|c| &c.target == k))
    }

    /// The positions in [`Self::columns`] of the key's columns, in key order.
    pub fn key_positions(&self) -> Vec<usize> {
        self.key
            .iter()
            .filter_map(|k| self.columns.iter().position(|c| &c.target == k))
            .collect()
    }

    /// Whether target column `target` is part of the conflict key.
    pub fn is_key(&self, target: &str) -> bool {
        self.key.iter().any(|k| k == target)
    }

    /// Whether the profile appends every row (`mode = "append"`) instead of upserting.
    pub fn appends(&self) -> bool {
        self.mode == LoadMode::Append
    }

    /// Whether `name` (a source header name, canonical, or a target column name) is a
    /// column marked `pii = true`.
    pub fn is_pii(&self, name: &str) -> bool {
        self.columns
            .iter()
            .any(|c| c.pii && (c.target == name || c.sources().any(|s| s == name)))
    }

    /// Whether any column is marked `pii = true` (a raw line whose fields cannot be told
    /// apart is then masked whole).
    pub fn has_pii(&self) -> bool {
        self.columns.iter().any(|c| c.pii)
    }

    /// The profile with the stored types of an existing target table (target column name →
    /// type; see [`Column::stored`]); columns not named hold every value of their type.
    #[must_use]
    pub fn with_stored(mut self, stored: &[(String, StoredType)]) -> Self {
        for c in &mut self.columns {
            c.stored = stored
                .iter()
                .find(|(name, _)| *name == c.target)
                .map(|(_, t)| *t);
        }
        self
    }

    /// Whether `token` (already trimmed) is one of the null tokens.
    pub fn is_null_token(&self, token: &str) -> bool {
        self.null_tokens.iter().any(|t| t == token)
    }
}

/// Canonicalizes a header name (`ztdwr.md` §2): drop a BOM, strip `^`/`~` markers and
/// backslashes, trim, turn every run of characters outside `[0-9A-Za-z]` into `_`, trim `_`,
/// lowercase.
pub fn canonical_name(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut pending_sep = false;
    for c in raw.chars() {
        if c == '\u{feff}' || c == '\\' || c == '^' || c == '~' {
            continue;
        }
        if c.is_ascii_alphanumeric() {
            if pending_sep && !out.is_empty() {
                out.push('_');
            }
            pending_sep = false;
            out.push(c.to_ascii_lowercase());
        } else {
            pending_sep = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profile_loads_with_every_column() {
        let p = Profile::ztdwr();
        assert_eq!(p.table, "transport_documents");
        assert_eq!(p.key, ["surat_pengantar_barang"]);
        assert_eq!(p.mode, LoadMode::Upsert);
        let required: Vec<_> = p.required_sources().collect();
        for r in [
            "surat_pengantar_brg",
            "nik_supir",
            "no_polisi",
            "tanggal_timbang",
            "jam_timbang",
            "bbm_actual",
            "kilometer_actual",
        ] {
            assert!(required.contains(&r), "{r} must be required");
        }
        assert_eq!(required.len(), 7);
        assert_eq!(p.resolve("spb"), Some("surat_pengantar_brg"));
        assert_eq!(p.resolve("waktu_timbang"), Some("jam_timbang"));
        assert_eq!(p.resolve("no_tiket"), Some("no_tiket"));
        assert_eq!(p.resolve("unknown_thing"), None);
        let ts = p
            .columns
            .iter()
            .filter(|c| c.kind == ColumnType::Timestamp)
            .count();
        assert_eq!(ts, 8);
        let midnight = p
            .columns
            .iter()
            .filter(|c| c.kind == ColumnType::DateTimestamp)
            .count();
        assert_eq!(midnight, 4);
        assert_eq!(p.materialized_views.len(), 16);
    }

    #[test]
    fn canonical_names() {
        for (raw, want) in [
            ("\u{feff}^Surat Pengantar Brg~", "surat_pengantar_brg"),
            ("  NIK\\ Supir ", "nik_supir"),
            ("__a--b__", "a_b"),
            ("Tanggal.Tim", "tanggal_tim"),
            ("~", ""),
        ] {
            assert_eq!(canonical_name(raw), want, "{raw:?}");
        }
    }
}
