//! A generator of realistic ZTDWR files for demos, tests and benchmarks.
//!
//! The same options and seed always give the same bytes. Values look like the real ones:
//! plates like `B 1234 XYZ`, 16-digit NIKs with leading zeros, SAP dates with `00000000`,
//! times with leading zeros and `000000`, decimals as `12.5` and `1.234,56`, `X`/blank flags,
//! and some Latin-1 names. Invalid, duplicate and ragged rows are mixed in at given rates, and
//! so are unreadable values in optional typed columns (`abc` in a decimal, `MAYBE` in a flag,
//! `20251399` as a date, `2400` as a time, `2,5` as a counter), which load as NULL (or
//! midnight, or rounded) with a warning; an extra column the profile does not know can be
//! added to every line.

use std::io::{self, Write};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::parse::Delimiter;
use crate::profile::{ColumnType, Profile};

/// The seed used when none is given.
pub const DEFAULT_SAMPLE_SEED: u64 = 42;
/// Rows written when neither a row count nor a size is given.
pub const DEFAULT_SAMPLE_ROWS: u64 = 10_000;
/// A duplicate reuses the key of one of this many preceding rows.
const DUPLICATE_WINDOW: u64 = 25_000;
/// The first key number; keys are ten digits with leading zeros.
const FIRST_KEY: u64 = 7_000_001;

/// How much to write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SampleSize {
    /// This many data rows.
    Rows(u64),
    /// Data rows until the text reaches this many bytes (before compression).
    Bytes(u64),
}

/// Generator settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleOptions {
    /// How much to write.
    pub size: SampleSize,
    /// Seed of the random generator.
    pub seed: u64,
    /// Fraction of rows that break a validation rule.
    pub invalid_rate: f64,
    /// Fraction of rows that repeat an earlier row's key (a newer version of it: its change
    /// date and time are later than any earlier row's).
    pub dup_rate: f64,
    /// Fraction of rows with a missing or extra field.
    pub ragged_rate: f64,
    /// Gzip the output.
    pub gzip: bool,
    /// End lines with CRLF.
    pub crlf: bool,
    /// The field delimiter.
    pub delimiter: Delimiter,
    /// A header with a BOM, `^name~` markers, backslashes, aliases and truncated names.
    pub quirky_header: bool,
    /// Fraction of rows with one unreadable value in an optional typed column (a decimal,
    /// the integer, a flag, a date or a time), which loads with a warning.
    pub bad_value_rate: f64,
    /// A column the profile does not know, added (with a value on every line) as the
    /// eleventh column; `None` for none.
    pub extra_column: Option<String>,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            size: SampleSize::Rows(DEFAULT_SAMPLE_ROWS),
            seed: DEFAULT_SAMPLE_SEED,
            invalid_rate: 0.0,
            dup_rate: 0.0,
            ragged_rate: 0.0,
            gzip: false,
            crlf: false,
            delimiter: Delimiter::TildePipeCaret,
            quirky_header: false,
            bad_value_rate: 0.0,
            extra_column: None,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SampleSummary {
    /// Data rows written (every kind).
    pub rows: u64,
    /// Bytes of text written (before compression).
    pub text_bytes: u64,
    /// Rows made to break a validation rule.
    pub invalid_rows: u64,
    /// Rows repeating an earlier key.
    pub duplicate_rows: u64,
    /// Rows with a wrong field count.
    pub ragged_rows: u64,
    /// Rows holding a Latin-1 (not UTF-8) name.
    pub latin1_rows: u64,
    /// Rows holding one unreadable value in an optional typed column.
    pub bad_value_rows: u64,
}

/// Writes a sample file to `out`.
pub fn write_sample<W: Write>(out: W, options: &SampleOptions) -> io::Result<SampleSummary> {
    let out = io::BufWriter::with_capacity(1 << 20, out);
    if options.gzip {
        let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
        let summary = Generator::new(options).run(&mut gz)?;
        gz.finish()?.flush()?;
        Ok(summary)
    } else {
        let mut out = out;
        let summary = Generator::new(options).run(&mut out)?;
        out.flush()?;
        Ok(summary)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Key,
    Nik,
    Plate,
    Person,
    Company,
    Place,
    Code(&'static str),
    Date { required: bool },
    Time { required: bool },
    Decimal { max: f64 },
    Measure,
    Bool,
    Int,
}

struct Column {
    source: String,
    kind: Kind,
    /// What an unreadable value of this column looks like, when it is an optional typed one.
    bad: Option<Bad>,
    /// The date half of the pair, for a time half (a time is read only with its date).
    date_of_pair: Option<usize>,
}

/// The kinds of unreadable values the generator writes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Bad {
    Number,
    Integer,
    Boolean,
    Date,
    Time,
}

impl Bad {
    fn values(self) -> &'static [&'static str] {
        match self {
            Self::Number => &["abc", "12x", "--5"],
            Self::Integer => &["dua", "2,5"],
            Self::Boolean => &["MAYBE", "?"],
            Self::Date => &["20251399", "31.02.2025", "2025-13-01"],
            Self::Time => &["2400", "996100", "25:00"],
        }
    }
}

/// Where the extra column goes (0-based field index).
const EXTRA_COLUMN_AT: usize = 10;

struct Generator<'a> {
    options: &'a SampleOptions,
    rng: ChaCha8Rng,
    columns: Vec<Column>,
    line: Vec<u8>,
    field: String,
    summary: SampleSummary,
    /// The fields of the change date and time (the built-in profile's row version).
    change: [Option<usize>; 2],
}

const PERSONS: &[&str] = &[
    "AGUS SALIM",
    "BUDI SANTOSO",
    "NATANAEL",
    "RENATA",
    "SITI AMINAH",
    "DEWI LESTARI",
    "JOKO WIDODO",
    "RINA MARLINA",
    "YOHANES",
    "NATALIA",
    "ANNA MARIA",
    "SRI WAHYUNI",
];
/// Names written in Latin-1 (the byte 0xC9 is `É`).
const LATIN1_PERSONS: &[&[u8]] = &[b"JOS\xC9 RAMOS", b"REN\xC9", b"ANDR\xC9 SIHOMBING"];
const COMPANIES: &[&str] = &[
    "PT SINAR MAS AGRO",
    "PT \"BERKAH\" ANGKUTAN",
    "CV MAJU JAYA",
    "PT TRANS KALIMANTAN",
    "PT SAWIT NUSANTARA",
    "KOPERASI TANI MAKMUR",
];
const PLACES: &[&str] = &[
    "PKS SEI MANGKEI",
    "KEBUN BUKIT 1",
    "DIVISI III",
    "GUDANG PUSAT",
    "TBS RAMP 2",
];
const PLATE_REGIONS: &[&str] = &["B", "D", "F", "BK", "BM", "KT", "KB", "DA", "BH", "AA"];

impl<'a> Generator<'a> {
    fn new(options: &'a SampleOptions) -> Self {
        let profile = Profile::ztdwr();
        let mut columns: Vec<Column> = Vec::new();
        for col in &profile.columns {
            let date_at = columns.len();
            for (i, source) in col.sources().enumerate() {
                if columns.iter().any(|c: &Column| c.source == source) {
                    continue;
                }
                let kind = kind_of(source, col.kind, i == 1, col.required);
                columns.push(Column {
                    source: source.to_owned(),
                    kind,
                    bad: bad_of(col.kind, kind, i == 1),
                    date_of_pair: (i == 1).then_some(date_at),
                });
            }
        }
        let at = |name: &str| columns.iter().position(|c| c.source == name);
        let change = [at("change_date"), at("change_time")];
        Self {
            options,
            rng: ChaCha8Rng::seed_from_u64(options.seed),
            change,
            columns,
            line: Vec::with_capacity(4096),
            field: String::with_capacity(64),
            summary: SampleSummary::default(),
        }
    }

    fn newline(&self) -> &'static [u8] {
        if self.options.crlf { b"\r\n" } else { b"\n" }
    }

    fn run<W: Write>(mut self, out: &mut W) -> io::Result<SampleSummary> {
        self.header();
        out.write_all(&self.line)?;
        self.summary.text_bytes += self.line.len() as u64;
        loop {
            let done = match self.options.size {
                SampleSize::Rows(n) => self.summary.rows >= n,
                SampleSize::Bytes(b) => self.summary.text_bytes >= b,
            };
            if done {
                break;
            }
            self.row();
            out.write_all(&self.line)?;
            self.summary.text_bytes += self.line.len() as u64;
            self.summary.rows += 1;
        }
        Ok(self.summary)
    }

    fn header(&mut self) {
        self.line.clear();
        let quirky = self.options.quirky_header;
        if quirky {
            self.line.extend_from_slice("\u{feff}".as_bytes());
        }
        let mut names: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if quirky {
                    quirky_name(&c.source, i)
                } else {
                    c.source.clone()
                }
            })
            .collect();
        if let Some(extra) = &self.options.extra_column {
            names.insert(EXTRA_COLUMN_AT.min(names.len()), extra.clone());
        }
        let wrapped = quirky && self.options.delimiter.has_markers();
        self.join(names.iter().map(String::as_bytes), wrapped);
        let nl = self.newline();
        self.line.extend_from_slice(nl);
    }

    fn join<'b>(&mut self, fields: impl Iterator<Item = &'b [u8]>, wrapped: bool) {
        let delimiter = self.options.delimiter.bytes();
        for (i, f) in fields.enumerate() {
            if i > 0 {
                self.line.extend_from_slice(delimiter);
            }
            if wrapped {
                self.line.push(b'^');
            }
            self.line.extend_from_slice(f);
            if wrapped {
                self.line.push(b'~');
            }
        }
    }

    fn row(&mut self) {
        let o = self.options;
        let n = self.summary.rows;
        let duplicate = n > 0 && self.rng.random_bool(o.dup_rate.clamp(0.0, 1.0));
        let key = if duplicate {
            self.summary.duplicate_rows += 1;
            FIRST_KEY + n - self.rng.random_range(1..=n.min(DUPLICATE_WINDOW))
        } else {
            FIRST_KEY + n
        };
        let invalid = self.rng.random_bool(o.invalid_rate.clamp(0.0, 1.0));
        let defect = if invalid {
            self.summary.invalid_rows += 1;
            Some(self.rng.random_range(0..8u8))
        } else {
            None
        };
        let ragged = self.rng.random_bool(o.ragged_rate.clamp(0.0, 1.0));
        let wrapped = o.delimiter.has_markers() && self.rng.random_bool(0.25);
        let mut fields: Vec<Vec<u8>> = Vec::with_capacity(self.columns.len() + 1);
        let mut latin1 = false;
        for i in 0..self.columns.len() {
            let (source, kind) = (self.columns[i].source.as_str(), self.columns[i].kind);
            let value = match (defect, kind, source) {
                (Some(0), Kind::Key, _)
                | (Some(1), Kind::Nik, "nik_supir")
                | (Some(2), Kind::Plate, _) => Vec::new(),
                (Some(3), _, "bbm_actual") => b"612.5".to_vec(),
                (Some(4), _, "kilometer_actual") => b"abc".to_vec(),
                (Some(5), _, "tanggal_timbang") => b"20250230".to_vec(),
                (Some(6), _, "jam_timbang") => b"2400".to_vec(),
                (Some(7), _, "tanggal_timbang") => b"00000000".to_vec(),
                (_, Kind::Key, _) => format!("{key:010}").into_bytes(),
                (_, Kind::Person, _) if self.rng.random_bool(0.01) => {
                    latin1 = true;
                    LATIN1_PERSONS[self.rng.random_range(0..LATIN1_PERSONS.len())].to_vec()
                }
                _ => {
                    self.value(kind);
                    self.field.as_bytes().to_vec()
                }
            };
            fields.push(value);
        }
        if latin1 {
            self.summary.latin1_rows += 1;
        }
        // Only when asked: the random stream (so the bytes of every other option) is unchanged.
        if o.bad_value_rate > 0.0
            && self.rng.random_bool(o.bad_value_rate.clamp(0.0, 1.0))
            && defect.is_none()
        {
            self.summary.bad_value_rows += 1;
            let at = self.bad_value(&mut fields);
            // A duplicate's change stamp is rewritten below: its bad value would be gone.
            if duplicate && at.is_some_and(|at| self.change.contains(&Some(at))) {
                self.summary.bad_value_rows -= 1;
            }
        }
        if duplicate {
            self.newer_change(n, &mut fields);
        }
        if o.extra_column.is_some() {
            let tonnes = self.rng.random_range(0..100_000u32);
            let value = format!("{}.{:03}", tonnes / 1000, tonnes % 1000).into_bytes();
            fields.insert(EXTRA_COLUMN_AT.min(fields.len()), value);
        }
        if ragged {
            self.summary.ragged_rows += 1;
            if self.rng.random_bool(0.5) {
                fields.pop();
            } else {
                fields.push(b"EXTRA".to_vec());
            }
        }
        self.line.clear();
        self.join(fields.iter().map(Vec::as_slice), wrapped);
        let nl = self.newline();
        self.line.extend_from_slice(nl);
    }

    /// A duplicate is a newer version of its key: its change date and time (the profile's
    /// row version) are `2026-01-01` plus `n` seconds, later than any earlier row's.
    fn newer_change(&self, n: u64, fields: &mut [Vec<u8>]) {
        let base = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0));
        let seconds = i64::try_from(n).unwrap_or(i64::MAX);
        let Some(stamp) =
            base.and_then(|b| b.checked_add_signed(chrono::TimeDelta::seconds(seconds)))
        else {
            return;
        };
        let [date, time] = self.change;
        if let Some(f) = date.and_then(|at| fields.get_mut(at)) {
            *f = stamp.format("%Y%m%d").to_string().into_bytes();
        }
        if let Some(f) = time.and_then(|at| fields.get_mut(at)) {
            *f = stamp.format("%H%M%S").to_string().into_bytes();
        }
    }

    /// Puts one unreadable value into an optional typed column of `fields` (a time with a
    /// valid date, which is what makes the time read); returns the column written.
    fn bad_value(&mut self, fields: &mut [Vec<u8>]) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.columns.len())
            .filter(|&i| self.columns[i].bad.is_some())
            .collect();
        let &at = candidates.get(self.rng.random_range(0..candidates.len().max(1)))?;
        let (Some(bad), date) = (self.columns[at].bad, self.columns[at].date_of_pair) else {
            return None;
        };
        let values = bad.values();
        fields[at] = values[self.rng.random_range(0..values.len())]
            .as_bytes()
            .to_vec();
        if let Some(date) = date {
            fields[date] = b"20250115".to_vec();
        }
        Some(at)
    }

    /// Writes a valid value of `kind` into `self.field`.
    fn value(&mut self, kind: Kind) {
        use std::fmt::Write as _;
        let rng = &mut self.rng;
        let f = &mut self.field;
        f.clear();
        let _ = match kind {
            Kind::Key => Ok(()),
            Kind::Nik => write!(f, "{:016}", rng.random_range(0..10_000_000_000_000_000u64)),
            Kind::Plate => {
                let region = PLATE_REGIONS[rng.random_range(0..PLATE_REGIONS.len())];
                let letters: String = (0..rng.random_range(1..=3))
                    .map(|_| char::from(rng.random_range(b'A'..=b'Z')))
                    .collect();
                write!(f, "{region} {} {letters}", rng.random_range(1..=9999))
            }
            Kind::Person => {
                f.push_str(PERSONS[rng.random_range(0..PERSONS.len())]);
                Ok(())
            }
            Kind::Company => {
                f.push_str(COMPANIES[rng.random_range(0..COMPANIES.len())]);
                Ok(())
            }
            Kind::Place => {
                f.push_str(PLACES[rng.random_range(0..PLACES.len())]);
                Ok(())
            }
            Kind::Code(prefix) => {
                if rng.random_bool(0.1) {
                    Ok(())
                } else {
                    write!(f, "{prefix}{:08}", rng.random_range(0..100_000_000u32))
                }
            }
            Kind::Date { required } => date(rng, f, required),
            Kind::Time { required } => time(rng, f, required),
            Kind::Measure => {
                let tenths = rng.random_range(1..=5000u32);
                let sep = if rng.random_bool(0.5) { '.' } else { ',' };
                write!(f, "{}{sep}{}", tenths / 10, tenths % 10)
            }
            Kind::Decimal { max } => decimal(rng, f, max),
            Kind::Bool => {
                f.push_str(match rng.random_range(0..10) {
                    0..=3 => "X",
                    4 => "1",
                    5 => "N",
                    _ => "",
                });
                Ok(())
            }
            Kind::Int => write!(f, "{}", rng.random_range(0..6)),
        };
    }
}

type FmtResult = std::fmt::Result;

/// A SAP date: mostly `YYYYMMDD`, some `DD.MM.YYYY` and ISO; optional ones may be
/// `00000000` or blank.
fn date(rng: &mut ChaCha8Rng, f: &mut String, required: bool) -> FmtResult {
    use std::fmt::Write as _;
    if !required && rng.random_bool(0.15) {
        f.push_str(if rng.random_bool(0.5) { "00000000" } else { "" });
        return Ok(());
    }
    let (y, m, d) = (
        2025,
        rng.random_range(1..=12u32),
        rng.random_range(1..=28u32),
    );
    match rng.random_range(0..10) {
        0 => write!(f, "{d:02}.{m:02}.{y}"),
        1 => write!(f, "{y}-{m:02}-{d:02}"),
        _ => write!(f, "{y}{m:02}{d:02}"),
    }
}

/// A SAP time: mostly `HHMMSS` with leading zeros, some `000000`, `HH:MM:SS`, `HHMM`.
fn time(rng: &mut ChaCha8Rng, f: &mut String, required: bool) -> FmtResult {
    use std::fmt::Write as _;
    let (h, m, s) = (
        rng.random_range(0..24),
        rng.random_range(0..60),
        rng.random_range(0..60),
    );
    match rng.random_range(0..20) {
        0 => write!(f, "000000"),
        1 if !required => Ok(()),
        2 => write!(f, "{h:02}:{m:02}:{s:02}"),
        3 => write!(f, "{h:02}{m:02}"),
        _ => write!(f, "{h:02}{m:02}{s:02}"),
    }
}

/// A decimal below `max` as `1.234,56`, `1234,56` or `1234.56`.
fn decimal(rng: &mut ChaCha8Rng, f: &mut String, max: f64) -> FmtResult {
    use std::fmt::Write as _;
    let cents = rng.random_range(0..(max * 100.0) as u64);
    let (whole, frac) = (cents / 100, cents % 100);
    if whole >= 1000 && rng.random_bool(0.5) {
        write!(f, "{},{frac:02}", group_thousands(whole, '.'))
    } else if rng.random_bool(0.3) {
        write!(f, "{whole},{frac:02}")
    } else {
        write!(f, "{whole}.{frac:02}")
    }
}

fn group_thousands(mut n: u64, sep: char) -> String {
    let mut groups = Vec::new();
    while n >= 1000 {
        groups.push(format!("{:03}", n % 1000));
        n /= 1000;
    }
    groups.push(n.to_string());
    groups.reverse();
    groups.join(&sep.to_string())
}

fn kind_of(source: &str, kind: ColumnType, is_time_half: bool, required: bool) -> Kind {
    match kind {
        ColumnType::Timestamp if is_time_half => Kind::Time { required },
        ColumnType::Timestamp
        | ColumnType::DateTimestamp
        | ColumnType::Date
        | ColumnType::TimestampTz => Kind::Date { required },
        ColumnType::Time => Kind::Time { required },
        ColumnType::Boolean => Kind::Bool,
        ColumnType::Integer => Kind::Int,
        ColumnType::Decimal { .. } if source == "bbm_actual" || source == "kilometer_actual" => {
            Kind::Measure
        }
        ColumnType::Decimal { .. } if source == "ongkos_angkut" => {
            Kind::Decimal { max: 5_000_000.0 }
        }
        ColumnType::Decimal { .. } | ColumnType::Float | ColumnType::Numeric => {
            Kind::Decimal { max: 40_000.0 }
        }
        ColumnType::Text => match source {
            "surat_pengantar_brg" => Kind::Key,
            s if s.starts_with("nik_") => Kind::Nik,
            "no_polisi" => Kind::Plate,
            "nama_supir" => Kind::Person,
            s if s.ends_with("_name") || s == "nama_pt" || s == "pengangkut" => Kind::Company,
            "asal" | "tujuan" | "divisi_sender" | "division_receiver" | "posisi_divisi" => {
                Kind::Place
            }
            "change_time" => Kind::Time { required: false },
            s if s.starts_with("user_") || s.ends_with("_by") => Kind::Code("U"),
            _ => Kind::Code("C"),
        },
    }
}

/// What an unreadable value of a column looks like, for the optional typed columns (`kind`
/// is the generator's, which knows the required ones); `None` for the others.
fn bad_of(column: ColumnType, kind: Kind, is_time_half: bool) -> Option<Bad> {
    match (column, kind) {
        (ColumnType::Timestamp, Kind::Time { required: false }) if is_time_half => Some(Bad::Time),
        (ColumnType::Time, Kind::Time { required: false }) => Some(Bad::Time),
        (
            ColumnType::Timestamp | ColumnType::DateTimestamp | ColumnType::Date,
            Kind::Date { required: false },
        ) => Some(Bad::Date),
        (ColumnType::Decimal { .. }, Kind::Decimal { .. }) => Some(Bad::Number),
        (ColumnType::Integer, _) => Some(Bad::Integer),
        (ColumnType::Boolean, _) => Some(Bad::Boolean),
        _ => None,
    }
}

/// The header name written for a source with `--quirky-header`.
fn quirky_name(source: &str, index: usize) -> String {
    match source {
        "surat_pengantar_brg" => "SPB ID".to_owned(),
        "nik_supir" => "NIK\\Supir".to_owned(),
        "no_polisi" => "nopol".to_owned(),
        "bbm_actual" => "BBM".to_owned(),
        "kilometer_actual" => "Kilometer Act".to_owned(),
        "jam_timbang" => "Waktu Timbang".to_owned(),
        "tanggal_timbang" => "Tanggal.Tim".to_owned(),
        s if index.is_multiple_of(3) => s.to_uppercase(),
        s if index % 3 == 1 => s.replace('_', " "),
        s => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(options: &SampleOptions) -> (Vec<u8>, SampleSummary) {
        let mut out = Vec::new();
        let summary = write_sample(&mut out, options).unwrap();
        (out, summary)
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let o = SampleOptions {
            size: SampleSize::Rows(200),
            invalid_rate: 0.1,
            dup_rate: 0.1,
            ..SampleOptions::default()
        };
        let (a, sa) = sample(&o);
        let (b, _) = sample(&o);
        let (c, _) = sample(&SampleOptions {
            seed: 7,
            ..o.clone()
        });
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(sa.rows, 200);
        assert_eq!(sa.text_bytes, a.len() as u64);
        assert!(sa.invalid_rows > 5 && sa.duplicate_rows > 5, "{sa:?}");
    }

    #[test]
    fn size_in_bytes_is_reached() {
        let (out, s) = sample(&SampleOptions {
            size: SampleSize::Bytes(100_000),
            ..SampleOptions::default()
        });
        assert!(out.len() >= 100_000 && out.len() < 110_000, "{}", out.len());
        assert_eq!(s.text_bytes, out.len() as u64);
    }

    /// Every bad value the generator writes is read with a warning, on the right line and
    /// column; the extra column is named, never loaded; with neither option the bytes are
    /// those of before.
    #[test]
    fn bad_values_warn_and_the_extra_column_is_unknown() {
        let base = SampleOptions {
            size: SampleSize::Rows(2_000),
            dup_rate: 0.05,
            ..SampleOptions::default()
        };
        let (plain, _) = sample(&base);
        let (plain_again, _) = sample(&SampleOptions {
            bad_value_rate: 0.0,
            extra_column: None,
            ..base.clone()
        });
        assert_eq!(plain, plain_again);
        let (bytes, summary) = sample(&SampleOptions {
            bad_value_rate: 0.05,
            extra_column: Some("TONASE".into()),
            ..base
        });
        assert!(summary.bad_value_rows > 50, "{summary:?}");
        let profile = Profile::ztdwr();
        let mut decoder =
            crate::parse::Decoder::new(&profile, crate::parse::ParseOptions::default());
        let mut warned_lines = std::collections::BTreeSet::new();
        crate::parse::decode_reader(&bytes[..], &mut decoder, |batch| {
            let v = crate::validate::validate(&profile, &batch).unwrap();
            assert_eq!(v.rejected(), 0);
            for b in [&v.accepted, &v.superseded_rows] {
                for w in crate::transform::transform(&profile, b).unwrap().warnings {
                    warned_lines.insert(w.line);
                }
            }
            Ok::<(), crate::parse::ParseError>(())
        })
        .unwrap();
        assert_eq!(warned_lines.len() as u64, summary.bad_value_rows);
        assert!(
            decoder
                .header()
                .unwrap()
                .columns
                .iter()
                .any(|c| c.canonical == "tonase"),
            "the extra column is in the header"
        );
    }

    #[test]
    fn thousands_grouping() {
        assert_eq!(group_thousands(1_234_567, '.'), "1.234.567");
        assert_eq!(group_thousands(999, '.'), "999");
    }
}
