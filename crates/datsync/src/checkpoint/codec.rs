//! The format of chunk files: a decoder text batch as Parquet, and back.

use std::fmt;
use std::str::FromStr;

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch, UInt64Array};
use arrow_schema::DataType;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use crate::model::{LINE_COLUMN, LineNo};
use crate::store::StoreLocation;

/// The compression of chunk files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkCompression {
    /// Snappy, the seed's choice: fast, moderate ratio (the default for object storage).
    #[default]
    Snappy,
    /// Zstandard at its default level: smaller files, a little slower.
    Zstd,
    /// No compression (the default for a local directory), except a chunk file of more than
    /// [`UNCOMPRESSED_MAX_TEXT_BYTES`] of text, which is written with Snappy: uncompressed,
    /// its pages and the file itself are each held whole in memory while it is encoded (the
    /// widest rows the defaults accept, in 64 MiB chunks: ~320 MB of peak RSS instead of
    /// ~210 MB, over the 256 MB budget, in the memory test).
    None,
}

impl ChunkCompression {
    /// The compression of a new checkpoint in `location` when the settings name none.
    ///
    /// A local directory gets `none`: there the chunk files' bytes cost a page cache and a
    /// disk, while Snappy cost a run on two cores most of the checkpoint's overhead (issue
    /// 14: the 100 MB sample's ten chunks encoded in 0.19 s instead of 0.48 s, read back in
    /// 0.09 s instead of 0.26 s, 78 MB instead of 57 MB, the text columns' lengths
    /// delta-encoded). Object storage keeps the seed's Snappy: its bytes are uploaded,
    /// downloaded on a resume and billed; so does a store in memory, whose bytes are the
    /// process's memory.
    pub fn for_location(location: &StoreLocation) -> Self {
        match location {
            StoreLocation::Local(_) => Self::None,
            StoreLocation::Memory
            | StoreLocation::Azure { .. }
            | StoreLocation::S3 { .. }
            | StoreLocation::Gcs { .. } => Self::Snappy,
        }
    }

    fn parquet(self) -> Compression {
        match self {
            Self::Snappy => Compression::SNAPPY,
            Self::Zstd => Compression::ZSTD(ZstdLevel::default()),
            Self::None => Compression::UNCOMPRESSED,
        }
    }

    /// The name used in settings and the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Snappy => "snappy",
            Self::Zstd => "zstd",
            Self::None => "none",
        }
    }
}

impl fmt::Display for ChunkCompression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChunkCompression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "snappy" => Ok(Self::Snappy),
            "zstd" => Ok(Self::Zstd),
            "none" | "uncompressed" => Ok(Self::None),
            other => Err(format!(
                "unknown chunk compression `{other}`: use snappy, zstd or none"
            )),
        }
    }
}

/// The rows of a chunk and the source lines they span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLines {
    /// Rows in the chunk.
    pub rows: u64,
    /// The first row's source line.
    pub first_line: LineNo,
    /// The last row's source line.
    pub last_line: LineNo,
}

impl ChunkLines {
    /// Reads them from a text batch's `_line` column.
    pub fn of(batch: &RecordBatch) -> Result<Self, String> {
        let column = batch
            .column_by_name(LINE_COLUMN)
            .ok_or_else(|| format!("no `{LINE_COLUMN}` column"))?;
        let lines = column
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| format!("`{LINE_COLUMN}` is not UInt64"))?;
        if lines.is_empty() {
            return Err("no rows".to_owned());
        }
        if lines.null_count() > 0 {
            return Err(format!("`{LINE_COLUMN}` has nulls"));
        }
        Ok(Self {
            rows: lines.len() as u64,
            first_line: lines.value(0),
            last_line: lines.value(lines.len() - 1),
        })
    }
}

/// Rows per Parquet row group. The writer buffers a whole row group's pages before writing
/// them; with a 10,000-row chunk of ~90 text columns as one group, that buffer alone was
/// ~100 MB of the sync's peak memory. Dictionaries are off for the same reason (one per
/// column); snappy over plain pages gave smaller files on ZTDWR samples all the same.
const ROW_GROUP_ROWS: usize = 2048;

/// The most text a chunk file written under [`ChunkCompression::None`] holds uncompressed
/// (the bytes of its text values); a 10,000-row chunk of ZTDWR rows holds ~11 MB.
pub const UNCOMPRESSED_MAX_TEXT_BYTES: usize = 24 << 20;

/// The bytes of `batch`'s text values (their buffers', so at least that).
fn text_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .filter_map(|c| c.as_string_opt::<i32>())
        .map(|s| s.values().len())
        .sum()
}

/// Writes a batch as one Parquet file in memory.
///
/// Text columns are written `DELTA_LENGTH_BYTE_ARRAY` (the values' lengths bit-packed, then
/// their bytes), not `PLAIN` (a 4-byte length before each value): on the 100 MB sample,
/// 78 MB instead of 109 MB uncompressed, 55 instead of 57 MB with Snappy, encoded as fast
/// and read back in a third less time. Every Parquet reader reads both, so chunk files
/// written before are read as they are.
///
/// Without column statistics: nothing reads them (chunk files, like the rejects and warnings
/// files also written here, are always read whole, and a chunk's first and last lines are
/// taken from its `_line` column itself), and computing a minimum and maximum of every text
/// column's pages was a sixth of the encoding's CPU (issue 14: 0.36 s → 0.30 s for the 100 MB
/// sample's chunks, best of two), which a run on two cores pays in wall time.
pub(super) fn encode(
    batch: &RecordBatch,
    compression: ChunkCompression,
) -> Result<Bytes, ParquetError> {
    let compression = match compression {
        ChunkCompression::None if text_bytes(batch) > UNCOMPRESSED_MAX_TEXT_BYTES => {
            ChunkCompression::Snappy
        }
        c => c,
    };
    let mut props = WriterProperties::builder()
        .set_compression(compression.parquet())
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::None);
    for field in batch.schema().fields() {
        if field.data_type() == &DataType::Utf8 {
            props = props.set_column_encoding(
                ColumnPath::from(field.name().as_str()),
                Encoding::DELTA_LENGTH_BYTE_ARRAY,
            );
        }
    }
    let props = props.build();
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props))?;
    writer.write(batch)?;
    Ok(Bytes::from(writer.into_inner()?))
}

/// Reads a Parquet chunk file back into one batch.
pub(super) fn decode(bytes: Bytes) -> Result<RecordBatch, ParquetError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let rows = usize::try_from(builder.metadata().file_metadata().num_rows())
        .map_err(|_| ParquetError::General("negative row count".to_owned()))?;
    let schema = builder.schema().clone();
    let reader = builder.with_batch_size(rows.max(1)).build()?;
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    Ok(arrow_select::concat::concat_batches(&schema, &batches)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use arrow_array::StringArray;
    use arrow_schema::{Field, Schema};

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new(LINE_COLUMN, DataType::UInt64, false),
            Field::new("DOC_NO", DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(UInt64Array::from(vec![2, 3, 5])),
                Arc::new(StringArray::from(vec![Some("a"), None, Some("é")])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn round_trips_under_every_compression() {
        for c in [
            ChunkCompression::Snappy,
            ChunkCompression::Zstd,
            ChunkCompression::None,
        ] {
            let bytes = encode(&batch(), c).unwrap();
            assert_eq!(decode(bytes).unwrap(), batch(), "{c}");
            assert_eq!(c.as_str().parse::<ChunkCompression>().unwrap(), c);
        }
        assert!("lz4".parse::<ChunkCompression>().is_err());
    }

    #[test]
    fn a_chunk_of_several_row_groups_round_trips_without_statistics() {
        let rows = ROW_GROUP_ROWS * 2 + 7;
        let lines: Vec<u64> = (1..=rows as u64).collect();
        let docs: Vec<Option<String>> = (0..rows)
            .map(|i| (i % 5 != 0).then(|| format!("doc {i} é")))
            .collect();
        let batch = RecordBatch::try_new(
            batch().schema(),
            vec![
                Arc::new(UInt64Array::from(lines)),
                Arc::new(StringArray::from(docs)),
            ],
        )
        .unwrap();
        let bytes = encode(&batch, ChunkCompression::Snappy).unwrap();
        let meta = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .unwrap()
            .metadata()
            .clone();
        assert_eq!(meta.num_row_groups(), 3);
        for group in meta.row_groups() {
            for column in group.columns() {
                assert!(column.statistics().is_none(), "{}", column.column_path());
            }
        }
        assert_eq!(decode(bytes).unwrap(), batch);
    }

    /// Each column chunk of a file: its column's name, codec and encodings.
    fn column_chunks(bytes: Bytes) -> Vec<(String, Compression, Vec<Encoding>)> {
        let meta = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .metadata()
            .clone();
        meta.row_groups()
            .iter()
            .flat_map(|g| g.columns().iter())
            .map(|c| {
                let name = c.column_path().string();
                (name, c.compression(), c.encodings().collect())
            })
            .collect()
    }

    #[test]
    fn text_columns_are_delta_length_encoded_and_plain_files_are_still_read() {
        for c in [
            ChunkCompression::Snappy,
            ChunkCompression::Zstd,
            ChunkCompression::None,
        ] {
            let found = column_chunks(encode(&batch(), c).unwrap());
            assert_eq!(found.len(), 2, "{found:?}");
            for (column, _, used) in found {
                let delta = used.contains(&Encoding::DELTA_LENGTH_BYTE_ARRAY);
                let plain = used.contains(&Encoding::PLAIN);
                match column.as_str() {
                    "DOC_NO" => assert!(delta && !plain, "{c} {column}: {used:?}"),
                    _ => assert!(plain && !delta, "{c} {column}: {used:?}"),
                }
            }
        }
        // A chunk file as builds before this encoding wrote it: PLAIN text columns.
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_dictionary_enabled(false)
            .build();
        let mut writer = ArrowWriter::try_new(Vec::new(), batch().schema(), Some(props)).unwrap();
        writer.write(&batch()).unwrap();
        let old = Bytes::from(writer.into_inner().unwrap());
        assert!(
            column_chunks(old.clone())
                .iter()
                .all(|(_, _, used)| !used.contains(&Encoding::DELTA_LENGTH_BYTE_ARRAY))
        );
        assert_eq!(decode(old).unwrap(), batch());
    }

    #[test]
    fn an_uncompressed_chunk_file_of_too_much_text_is_written_with_snappy() {
        let text = |bytes: usize| {
            let value = "x".repeat(1 << 10);
            let rows = bytes.div_ceil(value.len());
            let lines: Vec<u64> = (1..=rows as u64).collect();
            let docs: Vec<Option<&str>> = vec![Some(value.as_str()); rows];
            RecordBatch::try_new(
                batch().schema(),
                vec![
                    Arc::new(UInt64Array::from(lines)),
                    Arc::new(StringArray::from(docs)),
                ],
            )
            .unwrap()
        };
        for (bytes, compression, want) in [
            (
                UNCOMPRESSED_MAX_TEXT_BYTES,
                ChunkCompression::None,
                Compression::UNCOMPRESSED,
            ),
            (
                UNCOMPRESSED_MAX_TEXT_BYTES + 1,
                ChunkCompression::None,
                Compression::SNAPPY,
            ),
            (
                UNCOMPRESSED_MAX_TEXT_BYTES + 1,
                ChunkCompression::Zstd,
                Compression::ZSTD(ZstdLevel::default()),
            ),
        ] {
            let batch = text(bytes);
            assert!(text_bytes(&batch) >= bytes && text_bytes(&batch) < bytes + 1024);
            let file = encode(&batch, compression).unwrap();
            let found = column_chunks(file.clone());
            assert!(
                found.iter().all(|(_, codec, _)| *codec == want),
                "{bytes} {compression}: {found:?}"
            );
            assert_eq!(decode(file).unwrap(), batch);
        }
    }

    #[test]
    fn a_new_checkpoint_is_uncompressed_on_disk_and_snappy_in_object_storage() {
        for (location, want) in [
            ("/tmp/checkpoints", ChunkCompression::None),
            ("file:///tmp/checkpoints", ChunkCompression::None),
            ("memory://", ChunkCompression::Snappy),
            ("az://container/prefix", ChunkCompression::Snappy),
            ("s3://bucket/prefix", ChunkCompression::Snappy),
            ("gs://bucket", ChunkCompression::Snappy),
        ] {
            let parsed = StoreLocation::parse(location).unwrap();
            assert_eq!(ChunkCompression::for_location(&parsed), want, "{location}");
        }
    }

    #[test]
    fn reads_lines_and_refuses_garbage() {
        let lines = ChunkLines::of(&batch()).unwrap();
        assert_eq!((lines.rows, lines.first_line, lines.last_line), (3, 2, 5));
        assert!(decode(Bytes::from_static(b"PAR1 nope")).is_err());
        let empty = batch().slice(0, 0);
        assert!(ChunkLines::of(&empty).is_err());
    }
}
