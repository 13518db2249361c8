//! A small profile covering every column type, and a row builder for it.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray, UInt64Array,
};
use datsync::{
    ChunkId, ChunkLoad, Loader, Profile, SyncId, SyncRef, SyncRegistration, register_sync,
};
use tokio_postgres::Client;

pub const DOCS_PROFILE: &str = r#"
name = "docs"
schema = "public"
table = "docs"
key = "id"
materialized_views = []

[[columns]]
source = "id"
type = "text"
required = true
not_empty = true
[[columns]]
source = "amount"
type = "decimal"
scale = 6
[[columns]]
source = "qty"
type = "integer"
[[columns]]
source = "flag"
type = "boolean"
[[columns]]
source = "day"
type = "date"
[[columns]]
source = "at"
type = "time"
[[columns]]
target = "ts"
source = "ts_date"
time_source = "ts_time"
type = "timestamp"
[[columns]]
source = "note"
type = "text"
"#;

pub fn docs_profile() -> Profile {
    Profile::from_toml_str(DOCS_PROFILE, Path::new("docs.toml")).expect("valid docs profile")
}

/// One row of the docs profile; `amount` is a mantissa with scale 6.
#[derive(Debug, Clone, Default)]
pub struct Doc {
    pub line: u64,
    pub id: Option<&'static str>,
    pub amount: Option<i128>,
    pub qty: Option<i64>,
    pub flag: Option<bool>,
    pub day: Option<i32>,
    pub at: Option<i64>,
    pub ts: Option<i64>,
    pub note: Option<String>,
}

/// A row with a key, a line and a note.
pub fn doc(line: u64, id: &'static str, note: &str) -> Doc {
    Doc {
        line,
        id: Some(id),
        note: Some(note.to_owned()),
        ..Doc::default()
    }
}

pub fn batch(profile: &Profile, rows: &[Doc]) -> RecordBatch {
    let amounts: Decimal128Array = rows.iter().map(|r| r.amount).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.line))),
        Arc::new(rows.iter().map(|r| r.id).collect::<StringArray>()),
        Arc::new(amounts.with_precision_and_scale(38, 6).unwrap()),
        Arc::new(rows.iter().map(|r| r.qty).collect::<Int64Array>()),
        Arc::new(rows.iter().map(|r| r.flag).collect::<BooleanArray>()),
        Arc::new(rows.iter().map(|r| r.day).collect::<Date32Array>()),
        Arc::new(
            rows.iter()
                .map(|r| r.at)
                .collect::<Time64MicrosecondArray>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| r.ts)
                .collect::<TimestampMicrosecondArray>(),
        ),
        Arc::new(rows.iter().map(|r| r.note.clone()).collect::<StringArray>()),
    ];
    RecordBatch::try_new(super::typed_gen::schema(profile), columns).unwrap()
}

/// Registers a sync of `file` with a fixed id suffix.
pub async fn register(client: &Client, n: u32, file: &str) -> SyncRef {
    let t = chrono::DateTime::parse_from_rfc3339("2025-01-29T14:30:22Z")
        .unwrap()
        .to_utc();
    let reg = SyncRegistration {
        sync_id: SyncId::new(t, n),
        file_name: file.to_owned(),
        file_path: format!("data/hex-ztdwr/{file}"),
        file_size_bytes: Some(1234),
        checkpoint_location: None,
    };
    register_sync(client, "public", &reg).await.unwrap()
}

pub async fn load(
    loader: &Loader,
    client: &mut Client,
    sync: &SyncRef,
    chunk: u32,
    batch: &RecordBatch,
) -> ChunkLoad {
    loader
        .load_chunk(client, sync, ChunkId(chunk), &format!("sha-{chunk}"), batch)
        .await
        .unwrap()
}

/// `id → note` of the docs table, in key order.
pub async fn notes(client: &Client) -> Vec<(String, Option<String>)> {
    client
        .query("SELECT id, note FROM docs ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}
