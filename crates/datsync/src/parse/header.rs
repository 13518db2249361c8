//! The header line: mapping header names to profile columns.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::Delimiter;
use crate::profile::{Profile, canonical_name};

/// One column of the header, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderColumn {
    /// The header field as written (markers and BOM included).
    pub raw: String,
    /// The canonical form of the header field (`ztdwr.md` §2).
    pub canonical: String,
    /// The output column name: the profile's source name for a known column (after aliases),
    /// else the canonical name (made unique).
    pub name: String,
    /// Whether the profile knows this column.
    pub known: bool,
    /// Whether an earlier column already had this name (the later one is not used).
    pub duplicate: bool,
}

/// The parsed header line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Header {
    /// The delimiter found on the header line.
    pub delimiter: Delimiter,
    /// The columns in file order.
    pub columns: Vec<HeaderColumn>,
    /// The line number of the header (1 unless lines precede it); 0 for a file without a
    /// header line (`[format] header = false`), whose columns the profile names.
    pub line: u64,
}

impl Header {
    /// Parses a header line (BOM and line ending already removed, no quotes) against a
    /// profile: the delimiter detected, the fields cut.
    #[cfg(test)]
    pub(crate) fn parse(line: &str, line_no: u64, profile: &Profile) -> Self {
        let delimiter = Delimiter::detect(line.as_bytes());
        let mut raw_fields = Vec::new();
        delimiter.for_each_field(line.as_bytes(), |start, end| {
            // Cut at ASCII bytes, so every field of a `str` is a `str`.
            raw_fields.push(line.get(start..end).unwrap_or_default().to_owned());
        });
        Self::from_fields(&raw_fields, delimiter, line_no, profile)
    }

    /// The header made of these fields (as written), in time linear in their number (names
    /// are resolved and made unique through hash maps).
    pub(crate) fn from_fields(
        raw_fields: &[String],
        delimiter: Delimiter,
        line_no: u64,
        profile: &Profile,
    ) -> Self {
        let sources: HashSet<&str> = profile.sources().map(|(s, _)| s).collect();
        let mut names = UniqueNames::with_capacity(raw_fields.len());
        let columns = raw_fields
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                let canonical = canonical_name(raw);
                let resolved = if sources.contains(canonical.as_str()) {
                    Some(canonical.clone())
                } else {
                    profile.resolve(&canonical).map(str::to_owned)
                };
                let base = match &resolved {
                    Some(source) => source.clone(),
                    None if canonical.is_empty() => format!("column_{}", i + 1),
                    None => canonical.clone(),
                };
                let (name, duplicate) = names.claim(base);
                HeaderColumn {
                    raw: raw.clone(),
                    canonical,
                    name,
                    known: resolved.is_some() && !duplicate,
                    duplicate,
                }
            })
            .collect();
        Self {
            delimiter,
            columns,
            line: line_no,
        }
    }

    /// The columns of a file without a header line: the names the profile gives, in file
    /// order (canonical already).
    pub(crate) fn from_names(names: &[String], delimiter: Delimiter, profile: &Profile) -> Self {
        Self::from_fields(names, delimiter, 0, profile)
    }

    fn known_names(&self) -> HashSet<&str> {
        self.columns
            .iter()
            .filter(|c| c.known)
            .map(|c| c.name.as_str())
            .collect()
    }

    /// The required profile sources that the header lacks.
    pub fn missing_required(&self, profile: &Profile) -> Vec<String> {
        let known = self.known_names();
        profile
            .required_sources()
            .filter(|s| !known.contains(s))
            .map(str::to_owned)
            .collect()
    }

    /// The optional profile sources that the header lacks (they load as NULL).
    pub fn missing_optional(&self, profile: &Profile) -> Vec<String> {
        let known = self.known_names();
        profile
            .sources()
            .filter(|(s, required)| !required && !known.contains(s))
            .map(|(s, _)| s.to_owned())
            .collect()
    }

    /// The header columns the profile does not know (canonical names), duplicates included.
    pub fn unknown_columns(&self) -> Vec<String> {
        self.columns
            .iter()
            .filter(|c| !c.known)
            .map(|c| c.name.clone())
            .collect()
    }
}

/// Column names handed out so far; a repeated name gets the next free `_N` suffix. Each
/// base name remembers its last suffix, so `n` repeats of one name cost `O(n)`, not
/// `O(n²)`.
struct UniqueNames {
    taken: HashSet<String>,
    next_suffix: HashMap<String, usize>,
}

impl UniqueNames {
    fn with_capacity(n: usize) -> Self {
        Self {
            taken: HashSet::with_capacity(n),
            next_suffix: HashMap::new(),
        }
    }

    /// The name for `base` and whether `base` was taken already.
    fn claim(&mut self, base: String) -> (String, bool) {
        if !self.taken.contains(&base) {
            self.taken.insert(base.clone());
            return (base, false);
        }
        let n = self.next_suffix.entry(base.clone()).or_insert(2);
        loop {
            let candidate = format!("{base}_{n}");
            *n += 1;
            if !self.taken.contains(&candidate) {
                self.taken.insert(candidate.clone());
                return (candidate, true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_aliases_unknown_and_duplicates() {
        let p = Profile::ztdwr();
        let h = Header::parse("^SPB ID~|^nopol~|^Mystery~|^no_polisi~|^~", 1, &p);
        let names: Vec<_> = h.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "surat_pengantar_brg",
                "no_polisi",
                "mystery",
                "no_polisi_2",
                "column_5"
            ]
        );
        assert_eq!(h.unknown_columns(), ["mystery", "no_polisi_2", "column_5"]);
        let missing = h.missing_required(&p);
        assert!(missing.contains(&"nik_supir".to_owned()));
        assert!(!missing.contains(&"no_polisi".to_owned()));
    }

    #[test]
    fn every_header_form_gives_the_same_columns() {
        let p = Profile::ztdwr();
        let want = Header::parse("^surat_pengantar~~|^NO_TIKET~|^nopol~", 1, &p);
        for line in [
            "surat_pengantar~|^NO_TIKET~|^nopol",
            "^surat_pengantar~~\\|\\^^NO_TIKET~\\|\\^nopol~",
            "surat_pengantar~\\|^NO_TIKET~|\\^nopol",
            "surat_pengantar\\~\\|\\^NO_TIKET\\~\\|\\^nopol",
            "^surat_pengantar~^^NO_TIKET~^^nopol~",
            "surat_pengantar~^NO_TIKET~^nopol",
        ] {
            let h = Header::parse(line, 1, &p);
            let names: Vec<_> = h.columns.iter().map(|c| (&c.name, c.known)).collect();
            let want: Vec<_> = want.columns.iter().map(|c| (&c.name, c.known)).collect();
            assert_eq!(names, want, "{line}");
        }
    }

    #[test]
    fn repeated_names_get_suffixes_past_taken_ones() {
        let p = Profile::ztdwr();
        let h = Header::parse("x|x_2|x|x|nopol|nopol", 1, &p);
        let names: Vec<_> = h.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["x", "x_2", "x_3", "x_4", "no_polisi", "no_polisi_2"]
        );
        let dups: Vec<_> = h.columns.iter().map(|c| c.duplicate).collect();
        assert_eq!(dups, [false, false, true, true, false, true]);
    }

    #[test]
    fn forty_thousand_repeated_names_are_made_unique() {
        // Quadratic de-duplication took over a minute on this header; linear takes
        // milliseconds. (No timing is asserted: the test proves the result.)
        let p = Profile::ztdwr();
        let line = vec!["^NAMA~"; 40_000].join("|");
        let h = Header::parse(&line, 1, &p);
        assert_eq!(h.columns.len(), 40_000);
        let unique: HashSet<_> = h.columns.iter().map(|c| &c.name).collect();
        assert_eq!(unique.len(), 40_000);
        assert_eq!(h.columns[39_999].name, "nama_40000");
    }
}
