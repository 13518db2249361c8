//! The header line: delimiter detection and mapping header names to profile columns.

use std::collections::HashSet;
use std::fmt;

use serde::Serialize;

use crate::profile::{Profile, canonical_name};

/// A field delimiter, decided from the header line (`ztdwr.md` §1) and applied to every line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Delimiter {
    /// `~|^`: fields wrapped as `^value~` and joined by `|`.
    TildePipeCaret,
    /// `~\|\^`: the same, written escaped.
    EscapedTildePipeCaret,
    /// `~^`: the form the design notes use.
    TildeCaret,
    /// A tab.
    Tab,
    /// `|`.
    Pipe,
    /// No known delimiter on the header line: one column per line.
    None,
}

impl Delimiter {
    /// Detection order: the first delimiter found on the header line wins.
    const DETECTION_ORDER: [Self; 5] = [
        Self::EscapedTildePipeCaret,
        Self::TildePipeCaret,
        Self::TildeCaret,
        Self::Tab,
        Self::Pipe,
    ];

    /// The delimiter's bytes.
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Self::TildePipeCaret => b"~|^",
            Self::EscapedTildePipeCaret => b"~\\|\\^",
            Self::TildeCaret => b"~^",
            Self::Tab => b"\t",
            Self::Pipe => b"|",
            Self::None => b"",
        }
    }

    /// Whether fields carry `^`/`~` markers to strip.
    pub fn has_markers(self) -> bool {
        matches!(
            self,
            Self::TildePipeCaret | Self::EscapedTildePipeCaret | Self::TildeCaret
        )
    }

    /// The name shown to users and in `inspect --json`: the delimiter text, or `tab`/`none`.
    pub fn name(self) -> &'static str {
        match self {
            Self::TildePipeCaret => "~|^",
            Self::EscapedTildePipeCaret => "~\\|\\^",
            Self::TildeCaret => "~^",
            Self::Tab => "tab",
            Self::Pipe => "|",
            Self::None => "none",
        }
    }

    /// Detects the delimiter of a header line.
    pub fn detect(header: &[u8]) -> Self {
        Self::DETECTION_ORDER
            .into_iter()
            .find(|d| memchr::memmem::find(header, d.bytes()).is_some())
            .unwrap_or(Self::None)
    }
}

impl fmt::Display for Delimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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
    /// The line number of the header (1 unless blank lines precede it).
    pub line: u64,
}

impl Header {
    /// Parses a header line (BOM and line ending already removed) against a profile.
    pub(crate) fn parse(line: &str, line_no: u64, profile: &Profile) -> Self {
        let delimiter = Delimiter::detect(line.as_bytes());
        let raw_fields: Vec<&str> = if delimiter == Delimiter::None {
            vec![line]
        } else {
            line.split(std::str::from_utf8(delimiter.bytes()).unwrap_or("\u{0}"))
                .collect()
        };
        let mut seen = HashSet::new();
        let columns = raw_fields
            .into_iter()
            .enumerate()
            .map(|(i, raw)| {
                let canonical = canonical_name(raw);
                let resolved = profile.resolve(&canonical);
                let base = match resolved {
                    Some(source) => source.to_owned(),
                    None if canonical.is_empty() => format!("column_{}", i + 1),
                    None => canonical.clone(),
                };
                let duplicate = !seen.insert(base.clone());
                let name = if duplicate {
                    unique_name(&base, &mut seen)
                } else {
                    base
                };
                HeaderColumn {
                    raw: raw.to_owned(),
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

    /// The required profile sources that the header lacks.
    pub fn missing_required(&self, profile: &Profile) -> Vec<String> {
        profile
            .required_sources()
            .filter(|s| !self.columns.iter().any(|c| c.known && c.name == *s))
            .map(str::to_owned)
            .collect()
    }

    /// The optional profile sources that the header lacks (they load as NULL).
    pub fn missing_optional(&self, profile: &Profile) -> Vec<String> {
        profile
            .sources()
            .filter(|(s, required)| {
                !required && !self.columns.iter().any(|c| c.known && c.name == *s)
            })
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

fn unique_name(base: &str, seen: &mut HashSet<String>) -> String {
    let mut n = 2;
    loop {
        let candidate = format!("{base}_{n}");
        if seen.insert(candidate.clone()) {
            return candidate;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_delimiter() {
        for (line, want) in [
            ("^a~|^b~|^c~", Delimiter::TildePipeCaret),
            ("a~\\|\\^b", Delimiter::EscapedTildePipeCaret),
            ("a~^b~^c", Delimiter::TildeCaret),
            ("a\tb|c", Delimiter::Tab),
            ("a|b", Delimiter::Pipe),
            ("abc", Delimiter::None),
        ] {
            assert_eq!(Delimiter::detect(line.as_bytes()), want, "{line}");
        }
    }

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
}
