//! Personal data kept in the rejects files only: the values of columns marked `pii = true`
//! are masked in every copy of a row error that leaves them (`validation_errors`, the
//! ledger's samples, alerts, logs) and in `inspect`'s rows.
//!
//! A value of a personal column becomes [`PII_MASK`]; a raw line (the value of a row error
//! about a whole row: a ragged row, a line over the maximum length) cannot be cut into its
//! fields, so it is masked whole when the profile has any personal column. A NUL in what is
//! kept becomes [`NUL_SYMBOL`]: PostgreSQL's `jsonb` refuses `\u0000`.

use std::borrow::Cow;

use super::Profile;
use crate::model::RowError;

/// What a personal value (or a raw line holding one) is shown as.
pub const PII_MASK: &str = "***";
/// What a NUL byte of a row error is stored as (U+FFFD, as `RowError::new` shows it).
pub const NUL_SYMBOL: char = '\u{FFFD}';

impl Profile {
    /// A copy of `error` fit to leave the rejects files: the value of a personal column, or
    /// a whole raw line when the profile has a personal column, masked; NULs replaced.
    pub fn masked_error(&self, error: &RowError) -> RowError {
        let mut e = error.clone();
        let personal = match &e.column {
            Some(column) => {
                self.is_pii(column) || e.target.as_deref().is_some_and(|t| self.is_pii(t))
            }
            None => self.has_pii(),
        };
        if personal && e.value.is_some() {
            e.value = Some(PII_MASK.to_owned());
        }
        e.value = e.value.map(without_nul);
        e.reason = without_nul(e.reason);
        e
    }

    /// [`Self::masked_error`] of each of `errors`.
    pub fn masked_errors(&self, errors: &[RowError]) -> Vec<RowError> {
        errors.iter().map(|e| self.masked_error(e)).collect()
    }

    /// `value` of column `column` as it may be shown: [`PII_MASK`] for a personal column.
    pub fn masked_value<'a>(&self, column: &str, value: &'a str) -> Cow<'a, str> {
        if self.is_pii(column) {
            Cow::Borrowed(PII_MASK)
        } else {
            Cow::Borrowed(value)
        }
    }

    /// A raw line as it may be shown: whole, or [`PII_MASK`] when the profile has a personal
    /// column (its fields cannot be told apart).
    pub fn masked_raw<'a>(&self, raw: &'a str) -> Cow<'a, str> {
        if self.has_pii() {
            Cow::Borrowed(PII_MASK)
        } else {
            Cow::Borrowed(raw)
        }
    }
}

/// `s` with each NUL replaced by [`NUL_SYMBOL`].
pub(crate) fn without_nul(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', &NUL_SYMBOL.to_string())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RowErrorKind;

    const NIK: &str = "3174012345678901";

    #[test]
    fn personal_values_and_raw_lines_are_masked_the_rest_kept() {
        let p = Profile::ztdwr();
        assert!(p.is_pii("nik_supir") && p.is_pii("nama_supir") && p.is_pii("nik_pemuat_3"));
        assert!(!p.is_pii("no_polisi") && !p.is_pii("qty_dikirim"));
        // A rejected row's broken rule on a personal column.
        let e = RowError::new(7, Some("nik_supir"), Some(NIK), "too long".into());
        let m = p.masked_error(&e);
        assert_eq!(m.value.as_deref(), Some(PII_MASK));
        assert_eq!(
            (m.line, m.column.as_deref(), m.reason.as_str()),
            (7, Some("nik_supir"), "too long")
        );
        // A value warning named by its target.
        let w = RowError::warning(3, "x", "nama_supir", "Budi Santoso", "odd".into());
        assert_eq!(p.masked_error(&w).value.as_deref(), Some(PII_MASK));
        assert_eq!(p.masked_error(&w).kind, RowErrorKind::Warning);
        // Another column's value is kept.
        let e = RowError::new(7, Some("qty_dikirim"), Some("abc"), "not a number".into());
        assert_eq!(p.masked_error(&e), e);
        // A ragged row's raw line is masked whole; an empty one stays empty.
        let raw = format!("1~|^{NIK}~|^Budi Santoso");
        let e = RowError::new(9, None, Some(&raw), "ragged row".into());
        assert_eq!(p.masked_error(&e).value.as_deref(), Some(PII_MASK));
        let e = RowError::new(9, None, None, "ragged row".into());
        assert_eq!(p.masked_error(&e).value, None);
        assert_eq!(p.masked_value("nik_supir", NIK), PII_MASK);
        assert_eq!(p.masked_value("no_polisi", "B 1234 XY"), "B 1234 XY");
        assert_eq!(p.masked_raw(&raw), PII_MASK);
    }

    #[test]
    fn a_profile_without_personal_columns_masks_nothing_but_nuls() {
        let mut p = Profile::ztdwr();
        for c in &mut p.columns {
            c.pii = false;
        }
        let e = RowError::new(9, None, Some("a~|^b\0c"), "ragged\0row".into());
        let m = p.masked_error(&e);
        assert_eq!(m.value.as_deref(), Some("a~|^b\u{FFFD}c"));
        assert_eq!(m.reason, "ragged\u{FFFD}row");
        assert_eq!(p.masked_raw("a~|^b"), "a~|^b");
    }

    #[test]
    fn pii_is_read_from_the_profile_file() {
        let text = "name = \"t\"\ntable = \"t\"\nkey = \"k\"\n\
            [[columns]]\nsource = \"k\"\ntype = \"text\"\nrequired = true\nnot_empty = true\n\
            [[columns]]\nsource = \"nama\"\ntype = \"text\"\npii = true\n";
        let p = Profile::from_toml_str(text, std::path::Path::new("t.toml")).unwrap();
        assert!(p.is_pii("nama") && !p.is_pii("k") && p.has_pii());
    }
}
