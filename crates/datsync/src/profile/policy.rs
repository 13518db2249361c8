//! What a profile says to do with data that does not fit it: a value its column cannot read
//! ([`OnInvalid`]), header columns it does not know ([`UnknownColumns`]), optional columns
//! the header lacks ([`MissingOptional`]). Each is a TOML string; the defaults are those of
//! `ztdwr.md` §2–§3.

use std::fmt;

use serde::Deserialize;

/// What happens to a row with a value its column's type cannot read (a number, integer,
/// boolean, date or time that does not parse, an impossible time, a non-whole integer).
/// Per column (`on_invalid = …`), defaulting to the profile's top-level `on_invalid`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnInvalid {
    /// Load the row with NULL (a time: midnight; an integer: rounded) and record a value
    /// warning (`ztdwr.md` §3 for optional columns).
    #[default]
    Null,
    /// Reject the row, as a broken rule does: it goes to the rejects, not to the table.
    Reject,
}

/// What a run does when the header has columns the profile does not know.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownColumns {
    /// Load the known columns; name the others in one warning, the summary, `sync_metadata`
    /// and `status`.
    #[default]
    Warn,
    /// As `warn`, without the warning line (they are still named in the summary and
    /// `sync_metadata`).
    Ignore,
    /// Stop the sync with BAD_INPUT before any chunk is loaded.
    Fail,
}

/// What a run does when the header lacks optional columns of the profile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingOptional {
    /// Load them as NULL (and say which, in one warning line).
    #[default]
    Null,
    /// Stop the sync with BAD_INPUT before any chunk is loaded.
    Fail,
}

/// How a profile's rows reach the target table (`mode = …`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadMode {
    /// Upsert by the profile's `key` (one column or several): the newest row of a key wins.
    #[default]
    Upsert,
    /// A table without a natural key: every row is inserted once (exactly once across crashes,
    /// by the chunk ledger and the table's own `(sync_id, source_line)` key); no upsert, no
    /// row versions.
    Append,
}

impl fmt::Display for LoadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Upsert => "upsert",
            Self::Append => "append",
        })
    }
}

impl fmt::Display for OnInvalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Null => "null",
            Self::Reject => "reject",
        })
    }
}

impl fmt::Display for UnknownColumns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Warn => "warn",
            Self::Ignore => "ignore",
            Self::Fail => "fail",
        })
    }
}

impl fmt::Display for MissingOptional {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Null => "null",
            Self::Fail => "fail",
        })
    }
}
