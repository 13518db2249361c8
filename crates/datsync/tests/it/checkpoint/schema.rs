//! The `manifest.json` of a run over a generated file, compared field by field with the
//! seed design's example manifest.

use datsync::Store;
use serde_json::Value;

use super::{Source, clock, converted, manager, outcome, sync_id};

/// The seed design's example ("Manifest Schema"), verbatim.
const SEED_EXAMPLE: &str = r#"{
  "sync_id": "sync_20250129_143022_a3f4b2c1",
  "source_file": "ZTDWR_20250129_LARGE.dat",
  "source_path": "data/hex-ztdwr/ZTDWR_20250129_LARGE.dat",
  "file_size_bytes": 104857600,
  "total_chunks": 150,
  "chunk_size": 10000,
  "status": "processing",
  "created_at": "2025-01-29T14:30:22Z",
  "updated_at": "2025-01-29T14:45:10Z",
  "phase": "processing",
  "chunks": [
    {
      "chunk_id": 0,
      "status": "completed",
      "rows": 10000,
      "parquet_path": "chunk_0000.parquet",
      "parquet_size_bytes": 524288,
      "created_at": "2025-01-29T14:31:00Z",
      "processed_at": "2025-01-29T14:32:15Z",
      "records_inserted": 9850,
      "records_updated": 150,
      "validation_errors": 0
    }
  ]
}"#;

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() => "unsigned integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every field of `seed` is in `ours` with the same JSON type.
fn assert_same_shape(seed: &Value, ours: &Value, at: &str) {
    let (Value::Object(seed), Value::Object(ours)) = (seed, ours) else {
        panic!("{at}: not an object");
    };
    for (name, example) in seed {
        let value = ours
            .get(name)
            .unwrap_or_else(|| panic!("{at}.{name} is missing"));
        assert_eq!(kind(value), kind(example), "{at}.{name}: {value}");
    }
}

fn is_utc_stamp(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok() && s.len() == 20
    })
}

#[tokio::test]
async fn a_run_writes_the_seeds_manifest_fields_with_their_types() {
    let source = Source::generate(2_500, 1_000);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).unwrap();
    let (sync, clock) = (sync_id(0xa3f4_b2c1), clock());
    let mut m = manager(&store, &sync, &clock);
    converted(&mut m, &source, 1_000).await;
    for id in m.get_pending_chunks().await.unwrap() {
        m.mark_chunk_processing(id).await.unwrap();
        let rows = m.load_chunk(id).await.unwrap().num_rows() as u64;
        m.mark_chunk_complete(id, outcome(id.0, rows))
            .await
            .unwrap();
    }
    let path = dir.path().join(sync.as_str()).join("manifest.json");
    let ours: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let seed: Value = serde_json::from_str(SEED_EXAMPLE).unwrap();

    assert_same_shape(&seed, &ours, "manifest");
    assert_same_shape(&seed["chunks"][0], &ours["chunks"][0], "chunks[0]");
    assert_eq!(ours["sync_id"], "sync_20250129_143022_a3f4b2c1");
    assert_eq!(ours["source_file"], "ZTDWR_20250129.dat");
    assert_eq!(ours["file_size_bytes"], source.bytes.len() as u64);
    assert_eq!(ours["total_chunks"], 3);
    assert_eq!(ours["chunk_size"], 1_000);
    assert_eq!(ours["status"], "completed");
    assert_eq!(ours["phase"], "completed");
    assert!(is_utc_stamp(&ours["created_at"]) && is_utc_stamp(&ours["updated_at"]));
    // Our additions.
    assert_eq!(ours["format_version"], 1);
    assert_eq!(ours["compression"], "snappy");
    let fp = &ours["source_fingerprint"];
    assert_eq!(fp["size_bytes"], source.bytes.len() as u64);
    assert_eq!(
        fp["sha256"],
        source.final_fingerprint().sha256.unwrap().as_str()
    );
    assert!(fp["etag"].is_null() && fp["modified"].is_string());
    let chunks = ours["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 3);
    let mut next_line = 2;
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk["chunk_id"], i);
        assert_eq!(chunk["status"], "completed");
        assert_eq!(chunk["parquet_path"], format!("chunk_{i:04}.parquet"));
        let file = dir
            .path()
            .join(sync.as_str())
            .join(format!("chunk_{i:04}.parquet"));
        assert_eq!(
            chunk["parquet_size_bytes"],
            std::fs::metadata(file).unwrap().len()
        );
        assert!(is_utc_stamp(&chunk["created_at"]) && is_utc_stamp(&chunk["processed_at"]));
        assert_eq!(chunk["first_line"], next_line);
        next_line = chunk["last_line"].as_u64().unwrap() + 1;
        let sha = chunk["parquet_sha256"].as_str().unwrap();
        assert!(sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(chunk["attempts"], 1);
        assert!(chunk["error"].is_null() && chunk["failed_at"].is_null());
        assert!(chunk["rows_rejected"].is_u64());
    }
    let rows: u64 = chunks.iter().map(|c| c["rows"].as_u64().unwrap()).sum();
    assert_eq!(rows, 2_500);
}
