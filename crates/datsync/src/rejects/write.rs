//! The warnings file of a chunk, as a batch.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{ArrowError, DataType, Field, Schema};

use crate::model::{LINE_COLUMN, RowError};

/// Column of a warnings file: the source column.
pub(super) const COLUMN: &str = "column";
/// Column of a warnings file: the target column.
pub(super) const TARGET: &str = "target";
/// Column of a warnings file: the value as read.
pub(super) const VALUE: &str = "value";
/// Column of a warnings file: what was loaded instead.
pub(super) const REASON: &str = "reason";

/// The value warnings of a chunk as the batch of its warnings file (see the module docs).
pub fn warnings_batch(warnings: &[RowError]) -> Result<RecordBatch, ArrowError> {
    let schema = Schema::new(vec![
        Field::new(LINE_COLUMN, DataType::UInt64, false),
        Field::new(COLUMN, DataType::Utf8, true),
        Field::new(TARGET, DataType::Utf8, true),
        Field::new(VALUE, DataType::Utf8, true),
        Field::new(REASON, DataType::Utf8, false),
    ]);
    let text = |f: fn(&RowError) -> Option<&str>| -> ArrayRef {
        Arc::new(warnings.iter().map(f).collect::<StringArray>())
    };
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(UInt64Array::from_iter_values(
                warnings.iter().map(|w| w.line),
            )),
            text(|w| w.column.as_deref()),
            text(|w| w.target.as_deref()),
            text(|w| w.value.as_deref()),
            Arc::new(StringArray::from_iter_values(
                warnings.iter().map(|w| w.reason.as_str()),
            )),
        ],
    )
}
