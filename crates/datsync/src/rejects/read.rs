//! Reading a sync's rejects directory back as records, in line order, and writing them as
//! JSON lines or CSV.

use std::collections::BTreeMap;
use std::io::Write;

use arrow_array::{Array, RecordBatch, StringArray, UInt64Array};
use serde::Serialize;

use super::write::{COLUMN, REASON, TARGET, VALUE};
use crate::checkpoint::decode_parquet;
use crate::model::{LINE_COLUMN, LineNo, RAW_COLUMN, RowErrorKind, SyncId};
use crate::store::{ObjectKey, Store, StoreError};
use crate::validate::{REASONS_COLUMN, REJECT_COLUMN_COLUMN};

/// Reading or writing rejects failed.
#[derive(Debug, thiserror::Error)]
pub enum RejectsError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file is not Parquet, or is cut short.
    #[error("{file}: not a readable rejects file: {source}")]
    Parquet {
        /// The file.
        file: String,
        /// What the reader found.
        source: parquet::errors::ParquetError,
    },
    /// A file lacks a column it must have.
    #[error("{file}: not a rejects file of datsync: {message}")]
    Format {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// Writing the records failed.
    #[error("cannot write the records: {0}")]
    Io(#[from] std::io::Error),
    /// Writing a CSV record failed (not for I/O: that is [`Self::Io`]).
    #[error("cannot write the records as CSV: {0}")]
    Csv(String),
}

impl From<csv::Error> for RejectsError {
    /// An I/O error stays one (a closed pipe is told apart from other failures by its kind).
    fn from(e: csv::Error) -> Self {
        match e.into_kind() {
            csv::ErrorKind::Io(io) => Self::Io(io),
            other => Self::Csv(format!("{other:?}")),
        }
    }
}

/// Which records to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Rejected rows only.
    Rejected,
    /// Value warnings only.
    Warning,
    /// Both, merged in line order.
    All,
}

impl Selection {
    fn wants(self, kind: RowErrorKind) -> bool {
        match self {
            Self::All => true,
            Self::Rejected => kind == RowErrorKind::Rejected,
            Self::Warning => kind == RowErrorKind::Warning,
        }
    }
}

/// One rejected row or one value warning, as `datsync rejects` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectRecord {
    /// `rejected` or `warning`.
    pub kind: RowErrorKind,
    /// The source line.
    pub line: LineNo,
    /// The source column: of the warning, or of a rejected row's first broken rule; `None`
    /// for a whole-row reason (a ragged row, a line too long).
    pub column: Option<String>,
    /// The target column of a warning.
    pub target: Option<String>,
    /// The value of `column` as read (`None` when it was empty).
    pub value: Option<String>,
    /// Why: every broken rule of a rejected row (`; `-joined), or what a warned value was
    /// loaded as.
    pub reason: String,
    /// A rejected row's line: as read for a row the decoder could not cut into fields (its
    /// start, for a line too long); else its fields joined by the file's delimiter (the
    /// columns the profile does not know are not kept). `None` for a warning.
    pub raw: Option<String>,
}

/// How records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    /// One JSON object per line.
    Jsonl,
    /// CSV with a header line (`kind,line,column,target,value,reason,raw`).
    Csv,
}

/// Writes records as JSON lines or CSV.
pub struct RecordWriter<W: Write> {
    inner: Sink<W>,
}

enum Sink<W: Write> {
    Jsonl(W),
    Csv(Box<csv::Writer<W>>),
}

impl<W: Write> RecordWriter<W> {
    /// A writer of `format` into `out`; CSV starts with its header line.
    pub fn new(format: RecordFormat, out: W) -> Result<Self, RejectsError> {
        let inner = match format {
            RecordFormat::Jsonl => Sink::Jsonl(out),
            RecordFormat::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(["kind", "line", "column", "target", "value", "reason", "raw"])?;
                Sink::Csv(Box::new(w))
            }
        };
        Ok(Self { inner })
    }

    /// Writes one record.
    pub fn write(&mut self, r: &RejectRecord) -> Result<(), RejectsError> {
        match &mut self.inner {
            Sink::Jsonl(out) => {
                serde_json::to_writer(&mut *out, r).map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
            }
            Sink::Csv(w) => {
                let text = |v: &Option<String>| v.clone().unwrap_or_default();
                w.write_record([
                    r.kind.as_str().to_owned(),
                    r.line.to_string(),
                    text(&r.column),
                    text(&r.target),
                    text(&r.value),
                    r.reason.clone(),
                    text(&r.raw),
                ])?;
            }
        }
        Ok(())
    }

    /// Flushes what is buffered.
    pub fn finish(self) -> Result<(), RejectsError> {
        match self.inner {
            Sink::Jsonl(mut out) => out.flush()?,
            Sink::Csv(mut w) => w.flush()?,
        }
        Ok(())
    }
}

/// The files of one chunk.
#[derive(Debug, Default)]
struct ChunkFiles {
    rejects: Option<ObjectKey>,
    warnings: Option<ObjectKey>,
}

/// Reads the selected records of a sync, chunk after chunk (so in line order), and hands
/// each to `each`; returns how many. `delimiter` joins the fields of a rejected row whose
/// line was not kept.
pub async fn read_rejects(
    store: &Store,
    sync: &SyncId,
    selection: Selection,
    delimiter: &str,
    mut each: impl FnMut(&RejectRecord) -> Result<(), RejectsError>,
) -> Result<u64, RejectsError> {
    let mut chunks: BTreeMap<u32, ChunkFiles> = BTreeMap::new();
    for object in store.list_rejects(sync).await? {
        let name = object.key.file_name();
        if let Some(n) = chunk_of(name, "rejects_") {
            chunks.entry(n).or_default().rejects = Some(object.key);
        } else if let Some(n) = chunk_of(name, "warnings_") {
            chunks.entry(n).or_default().warnings = Some(object.key);
        }
    }
    let mut count = 0;
    for files in chunks.values() {
        let mut records = Vec::new();
        if let Some(key) = files
            .rejects
            .as_ref()
            .filter(|_| selection.wants(RowErrorKind::Rejected))
        {
            let batch = read_file(store, key).await?;
            rejected_rows(&batch, delimiter, &mut records)
                .map_err(|message| format_error(store, key, message))?;
        }
        if let Some(key) = files
            .warnings
            .as_ref()
            .filter(|_| selection.wants(RowErrorKind::Warning))
        {
            let batch = read_file(store, key).await?;
            warnings(&batch, &mut records).map_err(|message| format_error(store, key, message))?;
        }
        // Stable: a line's warnings keep their column order.
        records.sort_by_key(|r| r.line);
        for r in &records {
            each(r)?;
        }
        count += records.len() as u64;
    }
    Ok(count)
}

/// The chunk number of `rejects_NNNN.parquet` (with `prefix` `rejects_`) and the like.
fn chunk_of(name: &str, prefix: &str) -> Option<u32> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(".parquet")?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

async fn read_file(store: &Store, key: &ObjectKey) -> Result<RecordBatch, RejectsError> {
    let Some(bytes) = store.get(key).await? else {
        // Removed since it was listed (gc): nothing to read.
        return Ok(RecordBatch::new_empty(std::sync::Arc::new(
            arrow_schema::Schema::empty(),
        )));
    };
    decode_parquet(bytes).map_err(|source| RejectsError::Parquet {
        file: store.describe(key),
        source,
    })
}

fn format_error(store: &Store, key: &ObjectKey, message: String) -> RejectsError {
    RejectsError::Format {
        file: store.describe(key),
        message,
    }
}

fn lines(batch: &RecordBatch) -> Result<&UInt64Array, String> {
    batch
        .column_by_name(LINE_COLUMN)
        .and_then(|a| a.as_any().downcast_ref::<UInt64Array>())
        .ok_or_else(|| format!("no `{LINE_COLUMN}` column of line numbers"))
}

fn text<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a StringArray> {
    batch
        .column_by_name(name)
        .and_then(|a| a.as_any().downcast_ref::<StringArray>())
}

fn value(array: Option<&StringArray>, row: usize) -> Option<String> {
    array
        .filter(|a| a.is_valid(row))
        .map(|a| a.value(row).to_owned())
}

/// The records of a rejects file (an empty batch, from a file gone since it was listed,
/// has none).
fn rejected_rows(
    batch: &RecordBatch,
    delimiter: &str,
    out: &mut Vec<RejectRecord>,
) -> Result<(), String> {
    if batch.num_rows() == 0 {
        return Ok(());
    }
    let lines = lines(batch)?;
    let reasons = text(batch, REASONS_COLUMN)
        .ok_or_else(|| format!("no `{REASONS_COLUMN}` column of reasons"))?;
    // Written before the first broken rule's column was recorded: no column.
    let columns = text(batch, REJECT_COLUMN_COLUMN);
    let raws = text(batch, RAW_COLUMN);
    let schema = batch.schema();
    let fields: Vec<(&str, Option<&StringArray>)> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(f, _)| !f.name().starts_with('_'))
        .map(|(f, a)| (f.name().as_str(), a.as_any().downcast_ref::<StringArray>()))
        .collect();
    for row in 0..batch.num_rows() {
        let column = value(columns, row);
        let value = column.as_deref().and_then(|c| {
            fields
                .iter()
                .find(|(name, _)| *name == c)
                .and_then(|(_, a)| value(*a, row))
        });
        let raw = value_or_join(raws, &fields, row, delimiter);
        out.push(RejectRecord {
            kind: RowErrorKind::Rejected,
            line: lines.value(row),
            column,
            target: None,
            value: value.filter(|v| !v.is_empty()),
            reason: self::value(Some(reasons), row).unwrap_or_default(),
            raw: Some(raw),
        });
    }
    Ok(())
}

/// The kept line of a row, else its fields joined by `delimiter` (a NULL field is empty).
fn value_or_join(
    raws: Option<&StringArray>,
    fields: &[(&str, Option<&StringArray>)],
    row: usize,
    delimiter: &str,
) -> String {
    if let Some(raw) = value(raws, row) {
        return raw;
    }
    fields
        .iter()
        .map(|(_, a)| value(*a, row).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(delimiter)
}

/// The records of a warnings file.
fn warnings(batch: &RecordBatch, out: &mut Vec<RejectRecord>) -> Result<(), String> {
    if batch.num_rows() == 0 {
        return Ok(());
    }
    let lines = lines(batch)?;
    let column = |name: &str| text(batch, name).ok_or_else(|| format!("no `{name}` column"));
    let (columns, targets, values, reasons) = (
        column(COLUMN)?,
        column(TARGET)?,
        column(VALUE)?,
        column(REASON)?,
    );
    for row in 0..batch.num_rows() {
        out.push(RejectRecord {
            kind: RowErrorKind::Warning,
            line: lines.value(row),
            column: value(Some(columns), row),
            target: value(Some(targets), row),
            value: value(Some(values), row),
            reason: value(Some(reasons), row).unwrap_or_default(),
            raw: None,
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::{ChunkId, RowError};
    use crate::rejects::warnings_batch;

    fn sync() -> SyncId {
        SyncId::parse("sync_20250129_143022_a3f4b2c1").unwrap()
    }

    fn rejects_batch() -> RecordBatch {
        use std::sync::Arc;

        use arrow_schema::{DataType, Field, Schema};
        let schema = Schema::new(vec![
            Field::new(LINE_COLUMN, DataType::UInt64, false),
            Field::new("spb", DataType::Utf8, true),
            Field::new("bbm", DataType::Utf8, true),
            Field::new(RAW_COLUMN, DataType::Utf8, true),
            Field::new(REJECT_COLUMN_COLUMN, DataType::Utf8, true),
            Field::new(REASONS_COLUMN, DataType::Utf8, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(UInt64Array::from(vec![3, 7])),
                Arc::new(StringArray::from(vec![Some("0001"), None])),
                Arc::new(StringArray::from(vec![Some("612,5"), None])),
                Arc::new(StringArray::from(vec![None, Some("a~|^b")])),
                Arc::new(StringArray::from(vec![Some("bbm"), None])),
                Arc::new(StringArray::from(vec![
                    "out of range: must be > 0 and <= 500",
                    "ragged row: expected 2 fields, found 1",
                ])),
            ],
        )
        .unwrap()
    }

    async fn store_with_files() -> Store {
        let store = Store::memory();
        let put = |key: ObjectKey, batch: RecordBatch| {
            let store = store.clone();
            async move {
                let bytes = crate::checkpoint::encode_parquet(
                    &batch,
                    crate::checkpoint::ChunkCompression::default(),
                )
                .unwrap();
                store.put(&key, bytes).await.unwrap();
            }
        };
        put(ObjectKey::rejects(&sync(), ChunkId(0)), rejects_batch()).await;
        let warnings = vec![
            RowError::warning(2, "kontanan", "kontanan", "MAYBE", "not a boolean".into()),
            RowError::warning(5, "qty", "qty", "abc", "not a number".into()),
            RowError::warning(5, "cnt", "cnt", "2,5", "rounded to 3".into()),
        ];
        put(
            ObjectKey::warnings(&sync(), ChunkId(0)),
            warnings_batch(&warnings).unwrap(),
        )
        .await;
        let later = vec![RowError::warning(
            12,
            "d",
            "d",
            "20251399",
            "not a date".into(),
        )];
        put(
            ObjectKey::warnings(&sync(), ChunkId(1)),
            warnings_batch(&later).unwrap(),
        )
        .await;
        store
    }

    async fn read(store: &Store, selection: Selection) -> Vec<RejectRecord> {
        let mut out = Vec::new();
        let n = read_rejects(store, &sync(), selection, "|", |r| {
            out.push(r.clone());
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(n as usize, out.len());
        out
    }

    #[tokio::test]
    async fn records_come_in_line_order_with_their_kind_and_raw_line() {
        let store = store_with_files().await;
        let all = read(&store, Selection::All).await;
        let seen: Vec<_> = all
            .iter()
            .map(|r| (r.kind, r.line, r.column.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                (RowErrorKind::Warning, 2, Some("kontanan")),
                (RowErrorKind::Rejected, 3, Some("bbm")),
                (RowErrorKind::Warning, 5, Some("qty")),
                (RowErrorKind::Warning, 5, Some("cnt")),
                (RowErrorKind::Rejected, 7, None),
                (RowErrorKind::Warning, 12, Some("d")),
            ]
        );
        let bbm = &all[1];
        assert_eq!(bbm.value.as_deref(), Some("612,5"));
        assert_eq!(bbm.raw.as_deref(), Some("0001|612,5"));
        assert_eq!(all[4].raw.as_deref(), Some("a~|^b"));
        assert_eq!(all[4].value, None);
        assert_eq!(all[0].raw, None);
        assert_eq!(all[0].target.as_deref(), Some("kontanan"));

        let rejected = read(&store, Selection::Rejected).await;
        assert_eq!(rejected.len(), 2);
        let warned = read(&store, Selection::Warning).await;
        assert_eq!(warned.len(), 4);
        assert!(read(&Store::memory(), Selection::All).await.is_empty());
    }

    #[tokio::test]
    async fn jsonl_and_csv_carry_every_field() {
        let store = store_with_files().await;
        let records = read(&store, Selection::All).await;
        let mut jsonl = RecordWriter::new(RecordFormat::Jsonl, Vec::new()).unwrap();
        let mut csv = RecordWriter::new(RecordFormat::Csv, Vec::new()).unwrap();
        for r in &records {
            jsonl.write(r).unwrap();
            csv.write(r).unwrap();
        }
        let Sink::Jsonl(bytes) = jsonl.inner else {
            unreachable!()
        };
        let text = String::from_utf8(bytes).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(
            first,
            serde_json::json!({"kind": "warning", "line": 2, "column": "kontanan",
                "target": "kontanan", "value": "MAYBE", "reason": "not a boolean", "raw": null})
        );
        assert_eq!(text.lines().count(), records.len());
        let Sink::Csv(w) = csv.inner else {
            unreachable!()
        };
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        let mut reader = ::csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(
            header,
            ["kind", "line", "column", "target", "value", "reason", "raw"]
        );
        let rows: Vec<::csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), records.len());
        // A field holding the delimiter and quotes survives the round trip.
        assert_eq!(&rows[4][6], "a~|^b");
        assert_eq!(&rows[1][4], "612,5");
    }

    #[tokio::test]
    async fn a_file_that_is_not_parquet_is_named() {
        let store = Store::memory();
        let key = ObjectKey::rejects(&sync(), ChunkId(4));
        store
            .put(&key, bytes::Bytes::from_static(b"not parquet"))
            .await
            .unwrap();
        let e = read_rejects(&store, &sync(), Selection::All, "|", |_| Ok(()))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("rejects_0004.parquet"), "{e}");
    }
}
