//! One broken rule (or one warning) on one row: what validation records, the ledger and
//! `sync_metadata` keep a sample of, and alerts list.

use serde::{Deserialize, Serialize};

use super::LineNo;

/// Values in a [`RowError`] are cut to this many characters (the rejects keep them whole).
pub const MAX_ERROR_VALUE_CHARS: usize = 256;

/// One broken rule (or one warning) on one row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
// A sample read back from the database tolerates missing fields, as a hand-made one may.
#[serde(default)]
pub struct RowError {
    /// The source line of the row.
    pub line: LineNo,
    /// The source column, or `None` for a problem with the whole row (a ragged row).
    pub column: Option<String>,
    /// The value as read (the raw line for a whole-row problem), cut to
    /// [`MAX_ERROR_VALUE_CHARS`]; `None` when it was empty.
    pub value: Option<String>,
    /// What is wrong, in words.
    pub reason: String,
}

impl RowError {
    /// A row error, with `value` cut to [`MAX_ERROR_VALUE_CHARS`].
    pub fn new(line: LineNo, column: Option<&str>, value: Option<&str>, reason: String) -> Self {
        let value = value.filter(|v| !v.is_empty()).map(|v| {
            match v.char_indices().nth(MAX_ERROR_VALUE_CHARS) {
                Some((at, _)) => format!("{}…", &v[..at]),
                None => v.to_owned(),
            }
        });
        Self {
            line,
            column: column.map(str::to_owned),
            value,
            reason,
        }
    }
}
