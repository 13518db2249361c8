//! The small-files alternative: a `blobTrigger` (`"source": "EventGrid"`) invocation, whose
//! `Data` is the whole blob, Base64. The handler streams past it and loads the blob from
//! storage by the metadata, checked like any event.

use serde_json::{Value, json};

use super::*;
use crate::errors::{FAST_RETRY, failing_trigger, lone_key_of_chunk, reference};

/// What the host POSTs to `/ztdwr_sync` when `path` lands in the container: the blob's
/// content in `Data` (a stand-in of the same size: the handler must read past it, never use
/// or hold it), string metadata serialized as JSON once more, without `BlobTrigger`.
fn blob_invocation(emulator: &Emulator, path: &str, size: u64) -> Value {
    let quoted = |s: String| Value::String(Value::String(s).to_string());
    let name = path.rsplit('/').next().unwrap().to_owned();
    json!({
        "Data": { "myBlob": "QUJD".repeat(usize::try_from(size / 3 + 1).unwrap()) },
        "Metadata": {
            "Uri": quoted(format!("{}/data/{path}", emulator.azurite.blob_endpoint())),
            "Properties": { "ContentType": "application/octet-stream", "BlobType": 2, "Length": size },
            "Metadata": {},
            "name": quoted(name),
            "sys": { "MethodName": "ztdwr_sync", "UtcNow": "2026-11-28T03:00:00Z", "RandGuid": "0c8c1a0e-0000-4000-8000-000000000000" }
        }
    })
}

#[test]
fn the_blob_trigger_streams_its_data_past_and_retries_continue_the_same_sync() {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let work = Work::new(3_000, 71, MESSY);
    emulator.upload(&work.file, BLOB);
    let (reference_db, _, _) = reference(&work, &sync_id(71));
    let db = TestDb::new();
    let failing = lone_key_of_chunk(&reference_db, &work.file, 2);
    failing_trigger(&db, &failing, "40001", Some("datsync_test_flag"));
    let handler = Handler::start(work.path(), &db.url(), &[(key, &value), FAST_RETRY], &[]);
    // More than a web framework's default body limit, as a real blob would be.
    assert!(size_of(&work.file) > 2 * 1024 * 1024);
    let invocation = blob_invocation(
        &emulator,
        "hex-ztdwr/ZTDWR_20250129.dat",
        size_of(&work.file),
    );

    let (status, reply) = handler.invoke("ztdwr_sync", &invocation);
    assert_eq!(status, 500, "the host must retry: {reply}");
    assert_eq!(reply["ReturnValue"]["reason"], "chunks_failed", "{reply}");
    let sync = reply["ReturnValue"]["sync_id"].as_str().unwrap().to_owned();
    db.batch("DELETE FROM datsync_test_flag");
    let (status, reply) = handler.invoke("ztdwr_sync", &invocation);
    assert_eq!(status, 200, "{reply}");
    let done = &reply["ReturnValue"];
    assert_eq!(
        (done["action"].as_str(), done["sync_id"].as_str()),
        (Some("resumed"), Some(sync.as_str()))
    );
    assert_eq!(done["finished"], true);
    assert!(
        rows(&db) == rows(&reference_db),
        "the table differs from a plain run's"
    );
    let (status, reply) = handler.invoke("ztdwr_sync", &invocation);
    assert_eq!(
        (status, &reply["ReturnValue"]["action"]),
        (200, &json!("skipped_done"))
    );

    // Not a source of the folder, another account, deleted since: nothing to retry.
    let mut other_account = invocation.clone();
    other_account["Metadata"]["Uri"] = json!(
        invocation["Metadata"]["Uri"]
            .as_str()
            .unwrap()
            .replace("devstoreaccount1", "other")
    );
    for (inv, action) in [
        (
            blob_invocation(&emulator, "hex-ztdwr/notes.txt", 10),
            "ignored",
        ),
        (blob_invocation(&emulator, "elsewhere/a.dat", 10), "ignored"),
        (other_account, "ignored"),
        (
            blob_invocation(&emulator, "hex-ztdwr/gone.dat", 10),
            "missing",
        ),
    ] {
        let (status, reply) = handler.invoke("ztdwr_sync", &inv);
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["ReturnValue"]["action"], action, "{reply}");
    }
    assert_eq!(sync_ids(&db), vec![sync]);
}
