//! The profile file as written: serde structs with `deny_unknown_fields`, spans kept for
//! the line numbers of the checker's messages (`check.rs`).

use std::collections::HashMap;

use serde::Deserialize;
use toml::Spanned;

use super::{LoadMode, MissingOptional, OnInvalid, UnknownColumns};

/// A profile file (`name`, `schema`, `table`, `key`, `[[columns]]`, …).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProfile {
    /// The profile's name.
    pub(super) name: String,
    /// The target schema ([`super::DEFAULT_SCHEMA`] when absent).
    #[serde(default = "default_schema")]
    pub(super) schema: String,
    /// The target table.
    pub(super) table: Spanned<String>,
    /// The target column(s) of the conflict key: a string or a list (none in append mode).
    pub(super) key: Option<Spanned<RawKey>>,
    /// `upsert` (the default) or `append`.
    pub(super) mode: Option<Spanned<LoadMode>>,
    /// Views refreshed after a sync, in order.
    #[serde(default)]
    pub(super) materialized_views: Vec<String>,
    /// Values that mean NULL ([`super::DEFAULT_NULL_TOKENS`] when absent).
    pub(super) null_tokens: Option<Vec<String>>,
    /// Canonical source name → the header variants that mean it.
    pub(super) aliases: Option<Spanned<HashMap<String, Vec<String>>>>,
    /// The default of every column's `on_invalid`.
    #[serde(default)]
    pub(super) on_invalid: OnInvalid,
    /// Header columns the profile does not know: `warn`, `ignore` or `fail`.
    #[serde(default)]
    pub(super) unknown_columns: UnknownColumns,
    /// Optional columns the header lacks: `null` or `fail`.
    #[serde(default)]
    pub(super) missing_optional: MissingOptional,
    /// The row version: target columns of a date, then optionally a time (`version.rs`).
    pub(super) version: Option<Spanned<Vec<String>>>,
    /// The file's version: a regular expression with a named group `date` (and `time`)
    /// searched in the file's base name.
    pub(super) version_from_name: Option<Spanned<String>>,
    /// The file format (`[format]`).
    pub(super) format: Option<Spanned<super::format::RawFormat>>,
    /// The target columns.
    pub(super) columns: Vec<Spanned<RawColumn>>,
    /// Side tables upserted from each chunk's rows (`[[derived]]`, `derived.rs`).
    #[serde(default)]
    pub(super) derived: Vec<Spanned<super::derived::RawDerived>>,
}

/// `key = "a"` or `key = ["a", "b"]`: the key's target columns, in order.
pub(super) struct RawKey(pub(super) Vec<String>);

impl<'de> Deserialize<'de> for RawKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a target column name, or a list of them (`key = [\"a\", \"b\"]`)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawKey, E> {
                Ok(RawKey(vec![v.to_owned()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawKey, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    out.push(name);
                }
                Ok(RawKey(out))
            }
        }
        d.deserialize_any(Visitor)
    }
}

fn default_schema() -> String {
    super::DEFAULT_SCHEMA.to_owned()
}

/// One `[[columns]]` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawColumn {
    /// The target column (the source name when absent).
    pub(super) target: Option<String>,
    /// The canonical source header (the date half of a timestamp).
    pub(super) source: String,
    /// The time half of a timestamp.
    pub(super) time_source: Option<String>,
    /// `text`, `decimal`, `numeric`, `float`, `integer`, `boolean`, `date`, `time`,
    /// `timestamp`, `date_timestamp` or `timestamptz`.
    #[serde(rename = "type")]
    pub(super) kind: String,
    /// The strftime format of a date, time or timestamp value.
    pub(super) format: Option<String>,
    /// Decimal places of a decimal ([`super::DEFAULT_DECIMAL_SCALE`] when absent).
    pub(super) scale: Option<u8>,
    /// The source column must be in the header.
    #[serde(default)]
    pub(super) required: bool,
    /// The value must not be empty or a null token.
    #[serde(default)]
    pub(super) not_empty: bool,
    /// The value must parse as the column's type.
    #[serde(default)]
    pub(super) valid: bool,
    /// The parsed value must fall in this range.
    pub(super) range: Option<RawRange>,
    /// What a value the type cannot read does to the row (the top level's when absent).
    pub(super) on_invalid: Option<OnInvalid>,
    /// The column holds personal data: its values are masked outside the rejects files.
    #[serde(default)]
    pub(super) pii: bool,
}

/// A `range = { gt | ge = …, lt | le = … }` rule.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRange {
    /// Greater than.
    pub(super) gt: Option<RawNumber>,
    /// Greater than or equal.
    pub(super) ge: Option<RawNumber>,
    /// Less than.
    pub(super) lt: Option<RawNumber>,
    /// Less than or equal.
    pub(super) le: Option<RawNumber>,
}

/// A range bound as written: an integer, a float or decimal text.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawNumber {
    Int(i64),
    Float(f64),
    Text(String),
}

impl RawNumber {
    pub(super) fn to_decimal_text(&self) -> Option<String> {
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
