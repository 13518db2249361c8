//! One broken rule (or one value warning) on one row: what validation records, the ledger and
//! `sync_metadata` keep a sample of, alerts list, and `datsync rejects` prints.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::LineNo;

/// Values in a [`RowError`] are cut to this many characters (the rejects keep them whole).
pub const MAX_ERROR_VALUE_CHARS: usize = 256;

/// What a [`RowError`] did to its row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowErrorKind {
    /// A broken rule: the row was rejected (kept in the rejects, not loaded).
    #[default]
    Rejected,
    /// A value not loaded as written (read as NULL, a time as midnight, an integer rounded):
    /// the row was loaded.
    Warning,
}

impl RowErrorKind {
    /// `rejected` or `warning`, as `datsync rejects` and the JSON samples write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Warning => "warning",
        }
    }
}

impl fmt::Display for RowErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One broken rule (or one value warning) on one row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
// A sample read back from the database tolerates missing fields, as a hand-made one (or one
// written before `kind` existed: a rejected row's) may.
#[serde(default)]
pub struct RowError {
    /// Whether the row was rejected or loaded with a warning.
    pub kind: RowErrorKind,
    /// The source line of the row.
    pub line: LineNo,
    /// The source column, or `None` for a problem with the whole row (a ragged row).
    pub column: Option<String>,
    /// The target column a warning is about (`None` for a rejected row's broken rule).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The value as read (the raw line for a whole-row problem), cut to
    /// [`MAX_ERROR_VALUE_CHARS`]; `None` when it was empty.
    pub value: Option<String>,
    /// What is wrong, in words.
    pub reason: String,
}

impl RowError {
    /// A broken rule of a rejected row, with `value` cut to [`MAX_ERROR_VALUE_CHARS`].
    pub fn new(line: LineNo, column: Option<&str>, value: Option<&str>, reason: String) -> Self {
        Self {
            kind: RowErrorKind::Rejected,
            line,
            column: column.map(str::to_owned),
            target: None,
            value: value.filter(|v| !v.is_empty()).map(cut),
            reason,
        }
    }

    /// A value warning: `value` of source column `column` (target `target`) on `line` was not
    /// loaded as written, `reason` says how it was loaded instead.
    pub fn warning(line: LineNo, column: &str, target: &str, value: &str, reason: String) -> Self {
        Self {
            kind: RowErrorKind::Warning,
            line,
            column: Some(column.to_owned()),
            target: Some(target.to_owned()),
            value: Some(value).filter(|v| !v.is_empty()).map(cut),
            reason,
        }
    }
}

/// `v` cut to [`MAX_ERROR_VALUE_CHARS`] characters (an ellipsis marks the cut), a NUL
/// character shown as U+FFFD: PostgreSQL's `jsonb` and `text`, where the samples go (the
/// ledger, `sync_metadata.validation_errors`), cannot hold one (22P05), and a line with a
/// NUL byte is exactly what gets rejected. The rejects keep the raw bytes.
fn cut(v: &str) -> String {
    let v = match v.char_indices().nth(MAX_ERROR_VALUE_CHARS) {
        Some((at, _)) => format!("{}…", &v[..at]),
        None => v.to_owned(),
    };
    if v.contains('\0') {
        v.replace('\0', "\u{FFFD}")
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_in_a_value_is_shown_as_the_replacement_character() {
        let e = RowError::new(2, None, Some("a\0b"), "NUL byte".into());
        assert_eq!(e.value.as_deref(), Some("a\u{FFFD}b"));
        let long = "x".repeat(MAX_ERROR_VALUE_CHARS + 5);
        let e = RowError::new(2, None, Some(&long), "long".into());
        assert!(e.value.unwrap().ends_with('…'));
    }
}
