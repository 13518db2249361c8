//! The column profile: which source headers exist, how they map to target columns, their
//! types and row rules, and the conflict key.
//!
//! A profile is read from TOML (format documented at the top of `profiles/ztdwr.toml`), then
//! checked into a [`Profile`]. The built-in [`Profile::ztdwr`] encodes `ztdwr.md` §2–§5.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// The TOML text of the built-in `ztdwr` profile.
pub const ZTDWR_PROFILE_TOML: &str = include_str!("../profiles/ztdwr.toml");

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
    /// A `timestamp` built from a date column and a time column.
    Timestamp,
    /// A date loaded as a `timestamp` at midnight.
    DateTimestamp,
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
        }
    }

    fn is_numeric(self) -> bool {
        matches!(self, Self::Decimal { .. } | Self::Integer)
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
    /// The source column(s) must be present in the header.
    pub required: bool,
    /// Row rules.
    pub rules: Rules,
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
    /// Target column of the conflict (primary) key.
    pub key: String,
    /// Materialized views refreshed after a sync, in order.
    pub materialized_views: Vec<String>,
    /// Values that mean NULL, compared after trimming whitespace.
    pub null_tokens: Vec<String>,
    /// The target columns, in profile order.
    pub columns: Vec<Column>,
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

    /// The column of the conflict key.
    pub fn key_column(&self) -> &Column {
        // `check` guarantees the key names a column.
        self.columns
            .iter()
            .find(|c| c.target == self.key)
            .unwrap_or(&self.columns[0])
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

// ---- raw TOML ------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: String,
    #[serde(default = "default_schema")]
    schema: String,
    table: Spanned<String>,
    key: Spanned<String>,
    #[serde(default)]
    materialized_views: Vec<String>,
    null_tokens: Option<Vec<String>>,
    aliases: Option<Spanned<HashMap<String, Vec<String>>>>,
    columns: Vec<Spanned<RawColumn>>,
}

fn default_schema() -> String {
    "public".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    target: Option<String>,
    source: String,
    time_source: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    scale: Option<u8>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    not_empty: bool,
    #[serde(default)]
    valid: bool,
    range: Option<RawRange>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRange {
    gt: Option<RawNumber>,
    ge: Option<RawNumber>,
    lt: Option<RawNumber>,
    le: Option<RawNumber>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawNumber {
    Int(i64),
    Float(f64),
    Text(String),
}

impl RawNumber {
    fn to_decimal_text(&self) -> Option<String> {
        let text = match self {
            Self::Int(i) => i.to_string(),
            Self::Float(f) if f.is_finite() => f.to_string(),
            Self::Float(_) => return None,
            Self::Text(t) => t.trim().to_owned(),
        };
        let digits = text.strip_prefix('-').unwrap_or(&text);
        let mut parts = digits.splitn(2, '.');
        let int_ok = parts
            .next()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        let frac_ok = parts
            .next()
            .is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        (int_ok && frac_ok).then_some(text)
    }
}

// ---- checking -----------------------------------------------------------------------------

struct Checker<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Checker<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        memchr::memchr_iter(b'\n', &self.text.as_bytes()[..end]).count() + 1
    }

    fn invalid(&self, offset: usize, field: &'static str, message: String) -> ProfileError {
        ProfileError::Invalid {
            path: self.path.to_path_buf(),
            line: self.line_of(offset),
            field,
            message,
        }
    }

    fn check(&self, raw: RawProfile) -> Result<Profile, ProfileError> {
        if raw.columns.is_empty() {
            return Err(self.invalid(0, "columns", "the profile has no [[columns]]".into()));
        }
        let mut columns = Vec::with_capacity(raw.columns.len());
        let mut targets = HashSet::new();
        let mut sources: Vec<(String, bool)> = Vec::new();
        for spanned in &raw.columns {
            let at = spanned.span().start;
            let column = self.check_column(spanned.get_ref(), at)?;
            if !targets.insert(column.target.clone()) {
                return Err(self.invalid(
                    at,
                    "target",
                    format!("target column `{}` is defined twice", column.target),
                ));
            }
            for s in column.sources() {
                match sources.iter_mut().find(|(n, _)| n == s) {
                    Some(entry) => entry.1 |= column.required,
                    None => sources.push((s.to_owned(), column.required)),
                }
            }
            columns.push(column);
        }
        let key = raw.key.get_ref().clone();
        match columns.iter().find(|c| c.target == key) {
            None => {
                return Err(self.invalid(
                    raw.key.span().start,
                    "key",
                    format!("the key `{key}` is not the target of any column"),
                ));
            }
            Some(c) if !c.required || !c.rules.not_empty => {
                return Err(self.invalid(
                    raw.key.span().start,
                    "key",
                    format!(
                        "the key column `{key}` must have `required = true` and `not_empty = true`"
                    ),
                ));
            }
            Some(_) => {}
        }
        if raw.table.get_ref().trim().is_empty() {
            return Err(self.invalid(
                raw.table.span().start,
                "table",
                "the table name is empty".into(),
            ));
        }
        let aliases = match &raw.aliases {
            Some(a) => self.check_aliases(a, &sources)?,
            None => HashMap::new(),
        };
        Ok(Profile {
            name: raw.name,
            schema: raw.schema,
            table: raw.table.into_inner(),
            key,
            materialized_views: raw.materialized_views,
            null_tokens: raw.null_tokens.unwrap_or_else(|| {
                DEFAULT_NULL_TOKENS
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect()
            }),
            columns,
            aliases,
            sources,
        })
    }

    fn check_source_name(
        &self,
        name: &str,
        at: usize,
        field: &'static str,
    ) -> Result<(), ProfileError> {
        let canonical = canonical_name(name);
        if canonical.is_empty() || canonical != name {
            return Err(self.invalid(
                at,
                field,
                format!("`{name}` is not a canonical header name; write `{canonical}`"),
            ));
        }
        Ok(())
    }

    fn check_column(&self, raw: &RawColumn, at: usize) -> Result<Column, ProfileError> {
        self.check_source_name(&raw.source, at, "source")?;
        let kind = match raw.kind.as_str() {
            "text" => ColumnType::Text,
            "decimal" => {
                let scale = raw.scale.unwrap_or(DEFAULT_DECIMAL_SCALE);
                if scale > MAX_DECIMAL_SCALE {
                    return Err(self.invalid(
                        at,
                        "scale",
                        format!("scale {scale} is above the maximum {MAX_DECIMAL_SCALE}"),
                    ));
                }
                ColumnType::Decimal { scale }
            }
            "integer" => ColumnType::Integer,
            "boolean" => ColumnType::Boolean,
            "date" => ColumnType::Date,
            "time" => ColumnType::Time,
            "timestamp" => ColumnType::Timestamp,
            "date_timestamp" => ColumnType::DateTimestamp,
            other => {
                return Err(self.invalid(
                    at,
                    "type",
                    format!(
                        "unknown type `{other}`; use text, decimal, integer, boolean, date, time, \
                         timestamp or date_timestamp"
                    ),
                ));
            }
        };
        if raw.scale.is_some() && !matches!(kind, ColumnType::Decimal { .. }) {
            return Err(self.invalid(
                at,
                "scale",
                format!("`scale` applies to decimal columns, not {kind}"),
            ));
        }
        match (&raw.time_source, kind) {
            (None, ColumnType::Timestamp) => {
                return Err(self.invalid(
                    at,
                    "time_source",
                    "a `timestamp` column needs `time_source` (use `date_timestamp` for a date at midnight)".into(),
                ));
            }
            (Some(_), k) if k != ColumnType::Timestamp => {
                return Err(self.invalid(
                    at,
                    "time_source",
                    format!("`time_source` applies to timestamp columns, not {k}"),
                ));
            }
            (Some(t), _) => self.check_source_name(t, at, "time_source")?,
            (None, _) => {}
        }
        let range = match &raw.range {
            None => None,
            Some(_) if !kind.is_numeric() => {
                return Err(self.invalid(
                    at,
                    "range",
                    format!("`range` applies to decimal or integer columns, not {kind}"),
                ));
            }
            Some(r) => Some(self.check_range(r, at)?),
        };
        if raw.valid && kind == ColumnType::Text {
            return Err(self.invalid(
                at,
                "valid",
                "`valid` has no meaning for a text column".into(),
            ));
        }
        let target = raw.target.clone().unwrap_or_else(|| raw.source.clone());
        if target.trim().is_empty() {
            return Err(self.invalid(at, "target", "the target column name is empty".into()));
        }
        Ok(Column {
            target,
            source: raw.source.clone(),
            time_source: raw.time_source.clone(),
            kind,
            required: raw.required,
            rules: Rules {
                not_empty: raw.not_empty,
                valid: raw.valid,
                range,
            },
        })
    }

    fn check_range(&self, raw: &RawRange, at: usize) -> Result<RangeRule, ProfileError> {
        let bound =
            |exclusive: &Option<RawNumber>, inclusive: &Option<RawNumber>, names: &str| match (
                exclusive, inclusive,
            ) {
                (Some(_), Some(_)) => {
                    Err(self.invalid(at, "range", format!("give only one of {names}")))
                }
                (None, None) => Ok(None),
                (Some(n), None) | (None, Some(n)) => n
                    .to_decimal_text()
                    .map(|value| {
                        Some(Bound {
                            value,
                            inclusive: inclusive.is_some(),
                        })
                    })
                    .ok_or_else(|| {
                        self.invalid(
                            at,
                            "range",
                            "a range bound must be a finite decimal number".into(),
                        )
                    }),
            };
        let lower = bound(&raw.gt, &raw.ge, "`gt` and `ge`")?;
        let upper = bound(&raw.lt, &raw.le, "`lt` and `le`")?;
        if lower.is_none() && upper.is_none() {
            return Err(self.invalid(at, "range", "a range needs `gt`/`ge` or `lt`/`le`".into()));
        }
        Ok(RangeRule { lower, upper })
    }

    fn check_aliases(
        &self,
        raw: &Spanned<HashMap<String, Vec<String>>>,
        sources: &[(String, bool)],
    ) -> Result<HashMap<String, String>, ProfileError> {
        let at = raw.span().start;
        let mut aliases = HashMap::new();
        let mut canon: Vec<_> = raw.get_ref().iter().collect();
        canon.sort();
        for (canonical, variants) in canon {
            if !sources.iter().any(|(n, _)| n == canonical) {
                return Err(self.invalid(
                    at,
                    "aliases",
                    format!("alias target `{canonical}` is not the source of any column"),
                ));
            }
            for variant in variants {
                self.check_source_name(variant, at, "aliases")?;
                if sources.iter().any(|(n, _)| n == variant) && variant != canonical {
                    // A variant may also be a source in its own right (`waktu_timbang_terima`
                    // is a target name, not a source); a real collision is ambiguous.
                    return Err(self.invalid(
                        at,
                        "aliases",
                        format!(
                            "`{variant}` is both a source column and an alias of `{canonical}`"
                        ),
                    ));
                }
                if let Some(previous) = aliases.insert(variant.clone(), canonical.clone()) {
                    return Err(self.invalid(
                        at,
                        "aliases",
                        format!("`{variant}` is an alias of both `{previous}` and `{canonical}`"),
                    ));
                }
            }
        }
        Ok(aliases)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profile_loads_with_every_column() {
        let p = Profile::ztdwr();
        assert_eq!(p.table, "transport_documents");
        assert_eq!(p.key, "surat_pengantar_barang");
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

    fn err(text: &str) -> String {
        Profile::from_toml_str(text, Path::new("p.toml"))
            .unwrap_err()
            .to_string()
    }

    const HEAD: &str = "name = \"t\"\ntable = \"t\"\nkey = \"k\"\n";

    #[test]
    fn errors_name_line_and_field() {
        let e = err(&format!(
            "{HEAD}[[columns]]\ntarget = \"k\"\nsource = \"k\"\ntype = \"text\"\nrequired = true\nnot_empty = true\n\
             [[columns]]\nsource = \"d\"\ntype = \"money\"\n"
        ));
        assert!(
            e.contains("line 10") && e.contains("`type`") && e.contains("money"),
            "{e}"
        );

        let e = err(&format!(
            "{HEAD}[[columns]]\nsource = \"k\"\ntype = \"text\"\ncolour = 1\n"
        ));
        assert!(
            e.contains("p.toml") && e.contains("colour") && e.contains("line 7"),
            "{e}"
        );

        let e = err(&format!(
            "{HEAD}[[columns]]\nsource = \"k\"\ntype = \"text\"\nrequired = true\nnot_empty = true\n\
             [[columns]]\nsource = \"t\"\ntype = \"timestamp\"\n"
        ));
        assert!(e.contains("time_source") && e.contains("line 9"), "{e}");

        let e = err(&format!(
            "{HEAD}[[columns]]\nsource = \"k\"\ntype = \"text\"\nrequired = true\nnot_empty = true\n\
             [[columns]]\nsource = \"Bad Name\"\ntype = \"text\"\n"
        ));
        assert!(e.contains("bad_name") && e.contains("`source`"), "{e}");

        let e = err(
            "name = \"t\"\ntable = \"t\"\nkey = \"nope\"\n[[columns]]\nsource = \"k\"\ntype = \"text\"\n",
        );
        assert!(e.contains("line 3") && e.contains("`key`"), "{e}");

        let e = err(&format!(
            "{HEAD}[[columns]]\nsource = \"k\"\ntype = \"text\"\nrequired = true\nnot_empty = true\nrange = {{ gt = 1 }}\n"
        ));
        assert!(e.contains("`range`"), "{e}");
    }

    #[test]
    fn range_bounds_keep_decimal_text() {
        let p = Profile::from_toml_str(
            &format!(
                "{HEAD}[[columns]]\nsource = \"k\"\ntype = \"text\"\nrequired = true\nnot_empty = true\n\
                 [[columns]]\nsource = \"x\"\ntype = \"decimal\"\nscale = 3\nrange = {{ ge = \"0.5\", lt = 10 }}\n"
            ),
            Path::new("p.toml"),
        )
        .unwrap();
        let x = &p.columns[1];
        assert_eq!(x.kind, ColumnType::Decimal { scale: 3 });
        let r = x.rules.range.as_ref().unwrap();
        assert_eq!(
            r.lower,
            Some(Bound {
                value: "0.5".into(),
                inclusive: true
            })
        );
        assert_eq!(
            r.upper,
            Some(Bound {
                value: "10".into(),
                inclusive: false
            })
        );
    }
}
