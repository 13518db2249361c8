use serde_json::json;

use super::*;

const URL: &str = "https://acct.blob.core.windows.net/data/hex-ztdwr/ZTDWR_1.dat";

/// Microsoft's sample `BlobCreated` event (Event Grid schema), for our blob.
fn event_grid() -> Value {
    json!({
        "topic": "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
        "subject": "/blobServices/default/containers/data/blobs/hex-ztdwr/ZTDWR_1.dat",
        "eventType": "Microsoft.Storage.BlobCreated",
        "eventTime": "2026-11-28T03:00:00.9584103Z",
        "id": "831e1650-001e-001b-66ab-eeb76e069631",
        "data": {
            "api": "PutBlockList",
            "clientRequestId": "6d79dbfb-0e37-4fc4-981f-442c9ca65760",
            "requestId": "831e1650-001e-001b-66ab-eeb76e000000",
            "eTag": "\"0x8D4BCC2E4835CD0\"",
            "contentType": "application/octet-stream",
            "contentLength": 524_288,
            "blobType": "BlockBlob",
            "url": URL,
            "sequencer": "00000000000004420000000000028963",
            "storageDiagnostics": { "batchId": "b68529f3-68cd-4744-baa4-3c0498ec19f0" }
        },
        "dataVersion": "",
        "metadataVersion": "1"
    })
}

/// The same event in the CloudEvents 1.0 schema.
fn cloud_event() -> Value {
    let mut e = event_grid();
    let m = e.as_object_mut().unwrap();
    let source = m.remove("topic").unwrap();
    let kind = m.remove("eventType").unwrap();
    let time = m.remove("eventTime").unwrap();
    m.remove("dataVersion");
    m.remove("metadataVersion");
    m.insert("source".into(), source);
    m.insert("type".into(), kind);
    m.insert("time".into(), time);
    m.insert("specversion".into(), json!("1.0"));
    e
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn invocation(message: &Value, dequeue: &Value) -> Vec<u8> {
    json!({
        "Data": { "event": message },
        "Metadata": {
            "DequeueCount": dequeue,
            "ExpirationTime": "\"2026-12-05T03:00:00+00:00\"",
            "Id": "\"800ae4b3-bdd2-4c08-badd-f08e5a34b865\"",
            "InsertionTime": "\"2026-11-28T03:00:01+00:00\"",
            "NextVisibleTime": "\"2026-11-28T03:10:01+00:00\"",
            "PopReceipt": "\"AgAAAAMAAAAAAAAAAgtnj8x+1QE=\"",
            "sys": { "MethodName": "ztdwr_blob_created", "UtcNow": "2026-11-28T03:00:02Z", "RandGuid": "24ad4c06-24ad-4e5b-8294-3da9714877e9" }
        }
    })
    .to_string()
    .into_bytes()
}

/// Every form a message takes on its way (Event Grid's Base64 or not, the host's JSON
/// string serialization, either schema, one event or an array) reads as the same event.
#[test]
fn every_form_of_the_message_reads_as_the_event() {
    let eg = event_grid().to_string();
    let ce = cloud_event().to_string();
    let forms = [
        event_grid(),
        cloud_event(),
        json!([event_grid()]),
        json!([cloud_event()]),
        Value::String(eg.clone()),
        Value::String(ce.clone()),
        Value::String(Value::String(eg.clone()).to_string()),
        Value::String(b64(&eg)),
        Value::String(b64(&ce)),
        Value::String(b64(&format!("[{eg}]"))),
        Value::String(format!("  {}\n", b64(&eg))),
        Value::String(Value::String(b64(&eg)).to_string()),
    ];
    for form in forms {
        let inv = queue_invocation(&invocation(&form, &json!(1)), Some("event")).unwrap();
        assert_eq!(inv.events.len(), 1, "{form}");
        let e = &inv.events[0];
        assert_eq!(e.event_type, BLOB_CREATED, "{form}");
        assert_eq!(e.url.as_deref(), Some(URL), "{form}");
        assert_eq!(e.etag.as_deref(), Some("0x8D4BCC2E4835CD0"), "{form}");
        assert_eq!(e.content_length, Some(524_288), "{form}");
        assert_eq!(e.api.as_deref(), Some("PutBlockList"), "{form}");
        assert_eq!(e.skipped_because(), None, "{form}");
        assert_eq!(
            inv.message_id.as_deref(),
            Some("800ae4b3-bdd2-4c08-badd-f08e5a34b865")
        );
    }
}

#[test]
fn the_dequeue_count_is_read_in_each_form_the_host_writes() {
    for (count, want) in [
        (json!(3), 3),
        (json!("3"), 3),
        (json!("\"3\""), 3),
        (json!(null), 1),
        (json!(0), 1),
        (json!("x"), 1),
    ] {
        let inv = queue_invocation(&invocation(&event_grid(), &count), None).unwrap();
        assert_eq!(inv.delivery, want, "{count}");
    }
    let body = json!({"Data": {"m": event_grid()}}).to_string();
    assert_eq!(queue_invocation(body.as_bytes(), None).unwrap().delivery, 1);
}

#[test]
fn renames_name_the_new_blob_and_pending_files_are_skipped() {
    let renamed = json!({
        "eventType": BLOB_RENAMED, "id": "r1",
        "data": { "api": "RenameFile",
            "sourceUrl": "https://acct.dfs.core.windows.net/data/hex-ztdwr/f.dat.tmp",
            "destinationUrl": "https://acct.dfs.core.windows.net/data/hex-ztdwr/f.dat" }
    });
    let e = &events(&renamed).unwrap()[0];
    assert_eq!(
        e.url.as_deref(),
        Some("https://acct.dfs.core.windows.net/data/hex-ztdwr/f.dat")
    );
    assert_eq!(e.skipped_because(), None);
    let mut created = event_grid();
    created["data"]["api"] = json!("CreateFile");
    created["data"]["contentLength"] = json!(0);
    assert!(events(&created).unwrap()[0].skipped_because().is_some());
    let mut deleted = event_grid();
    deleted["eventType"] = json!("Microsoft.Storage.BlobDeleted");
    assert!(events(&deleted).unwrap()[0].skipped_because().is_some());
}

#[test]
fn what_is_not_an_event_says_so_without_echoing_it() {
    let secret = "AccountKey=c2VjcmV0";
    for message in [
        json!(42),
        json!([]),
        json!({"no": "type"}),
        Value::String(format!("{secret} not base64 !")),
        Value::String(b64(&b64(&b64(&b64(&b64(&event_grid().to_string())))))),
        Value::String(b64("\u{0}\u{1}")),
        Value::String("{broken".into()),
    ] {
        let e = events(&message).unwrap_err();
        assert!(matches!(e, EventError::NotAnEvent(_)), "{message}: {e}");
        assert!(!e.to_string().contains("c2VjcmV0"), "{e}");
    }
    assert_eq!(
        queue_invocation(b"{\"Metadata\": {}}", None).unwrap_err(),
        EventError::NoMessage
    );
    assert!(matches!(
        queue_invocation(b"{\"Data\": ", None).unwrap_err(),
        EventError::Json(_)
    ));
}
