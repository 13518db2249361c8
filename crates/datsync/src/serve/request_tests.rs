use serde_json::json;

use super::*;

fn sources() -> Sources {
    Sources::new("data", "hex-ztdwr/", Some("acct"))
}

fn target(body: &Value) -> Result<String, RequestError> {
    BlobRequest::from_json(body.to_string().as_bytes())?.target(&sources())
}

#[test]
fn legacy_request_fields_name_a_source_of_the_folder() {
    for (body, want) in [
        (
            json!({"blob_path": "data/hex-ztdwr/ZTDWR_1.dat"}),
            "az://data/hex-ztdwr/ZTDWR_1.dat",
        ),
        (
            json!({"blob_path": "hex-ztdwr/ZTDWR_1.dat"}),
            "az://data/hex-ztdwr/ZTDWR_1.dat",
        ),
        (
            json!({"blob_path": "hex-ztdwr/sub/ZTDWR_1.DAT.GZ"}),
            "az://data/hex-ztdwr/sub/ZTDWR_1.DAT.GZ",
        ),
        (
            json!({"blob_name": "ZTDWR_1.dat"}),
            "az://data/hex-ztdwr/ZTDWR_1.dat",
        ),
        (
            json!({"file_name": "ZTDWR_1.dat.gz", "container": "data"}),
            "az://data/hex-ztdwr/ZTDWR_1.dat.gz",
        ),
        (
            json!({"blob_path": "az://data/hex-ztdwr/z.dat"}),
            "az://data/hex-ztdwr/z.dat",
        ),
    ] {
        assert_eq!(target(&body).unwrap(), want, "{body}");
    }
}

/// Every way out of the folder, and every name that is not a source, gets the one answer.
#[test]
fn anything_but_a_source_of_the_folder_is_refused_alike() {
    for body in [
        json!({"blob_path": "secrets/host.json"}),
        json!({"blob_path": "azure-webjobs-secrets/app/host.json"}),
        json!({"blob_path": "x.dat", "container": "secrets"}),
        json!({"blob_name": "f.dat", "container": "azure-webjobs-secrets"}),
        json!({"blob_path": "az://secrets/hex-ztdwr/f.dat"}),
        json!({"blob_path": "azure://data/other/f.dat"}),
        json!({"blob_path": "data/other/f.dat"}),
        json!({"blob_path": "data/hex-ztdwr/../secrets/f.dat"}),
        json!({"blob_path": "data/hex-ztdwr/./f.dat"}),
        json!({"blob_path": "data/hex-ztdwr//f.dat"}),
        json!({"blob_path": "data/hex-ztdwr/a\\..\\f.dat"}),
        json!({"blob_name": "../f.dat"}),
        json!({"blob_name": "f\n.dat"}),
        json!({"blob_name": "f\u{1b}[2J.dat"}),
        json!({"blob_name": "host.json"}),
        json!({"blob_name": "f.dat.tmp"}),
        json!({"blob_name": ".hidden.dat"}),
        json!({"blob_path": "data/hex-ztdwr/"}),
        json!({"blob_path": "data/hex-ztdwr"}),
        json!({"blob_path": "hex-ztdwrx/f.dat"}),
        json!({"blob_path": "az://data"}),
    ] {
        assert_eq!(target(&body), Err(RequestError::NotASource), "{body}");
    }
}

#[test]
fn a_request_without_a_blob_is_refused() {
    for body in [
        json!({}),
        json!({"container": "data"}),
        json!({"blob_name": " "}),
    ] {
        let e = BlobRequest::from_json(body.to_string().as_bytes()).unwrap_err();
        assert_eq!(e, RequestError::NoBlob, "{body}");
    }
    // The parser's complaint names a position, never the input.
    let e = BlobRequest::from_json(b"{\"blob_name\": \"secret-value").unwrap_err();
    assert!(
        matches!(&e, RequestError::Json(m) if m.starts_with("line 1")),
        "{e}"
    );
    assert!(!e.to_string().contains("secret"), "{e}");
}

#[test]
fn blob_urls_name_their_account() {
    for (url, want) in [
        (
            "https://acct.blob.core.windows.net/data/hex-ztdwr/a%20b.dat",
            ("acct", "data", "hex-ztdwr/a b.dat"),
        ),
        (
            "https://acct.dfs.core.windows.net/data/hex-ztdwr/f.dat",
            ("acct", "data", "hex-ztdwr/f.dat"),
        ),
        (
            "http://127.0.0.1:10000/devstoreaccount1/data/hex-ztdwr/f.dat",
            ("devstoreaccount1", "data", "hex-ztdwr/f.dat"),
        ),
        (
            "http://localhost:10000/devstoreaccount1/data/f.dat",
            ("devstoreaccount1", "data", "f.dat"),
        ),
    ] {
        let (a, c, p) = blob_url_parts(url).unwrap();
        assert_eq!((a.as_str(), c.as_str(), p.as_str()), want, "{url}");
    }
    for bad in [
        "ftp://acct.blob.core.windows.net/data/f.dat",
        "https://acct.blob.core.windows.net/data",
        "http://127.0.0.1:10000/devstoreaccount1/data",
        "https://acct.blob.core.windows.net/data/%FF.dat",
        "not a url",
    ] {
        assert!(blob_url_parts(bad).is_none(), "{bad}");
    }
}

fn from_metadata(metadata: &Value) -> Result<String, RequestError> {
    blob_from_metadata(metadata, &sources())
}

#[test]
fn trigger_metadata_names_a_source_of_the_configured_account() {
    // As the host sends it: string metadata JSON-encoded once more, no BlobTrigger.
    let m = json!({
        "Uri": "\"https://acct.blob.core.windows.net/data/hex-ztdwr/ZTDWR_2.dat\"",
        "name": "\"ZTDWR_2.dat\"",
        "Properties": {"ETag": "\"0x8DC\"", "Length": 10}});
    assert_eq!(
        from_metadata(&m).unwrap(),
        "az://data/hex-ztdwr/ZTDWR_2.dat"
    );
    let m = json!({"BlobTrigger": "data/hex-ztdwr/f.dat", "name": "f.dat"});
    assert_eq!(from_metadata(&m).unwrap(), "az://data/hex-ztdwr/f.dat");
    let m = json!({"name": "\"f.dat\""});
    assert_eq!(from_metadata(&m).unwrap(), "az://data/hex-ztdwr/f.dat");
    // Another account, another container, not a source.
    for m in [
        json!({"Uri": "https://other.blob.core.windows.net/data/hex-ztdwr/f.dat"}),
        json!({"Uri": "https://acct.blob.core.windows.net/secrets/hex-ztdwr/f.dat"}),
        json!({"BlobTrigger": "data/hex-ztdwr/notes.txt"}),
    ] {
        assert_eq!(from_metadata(&m), Err(RequestError::NotASource), "{m}");
    }
    assert_eq!(
        from_metadata(&json!({})).unwrap_err(),
        RequestError::NoTriggerBlob
    );
    // No account configured: nothing is admitted by URL.
    let none = Sources::new("data", "hex-ztdwr", None);
    let m = json!({"Uri": "https://acct.blob.core.windows.net/data/hex-ztdwr/f.dat"});
    assert_eq!(blob_from_metadata(&m, &none), Err(RequestError::NotASource));
}

#[test]
fn http_invocations_carry_the_body_as_text_or_json_and_the_route_parameters() {
    let inv = json!({"Data": {"req": {"Url": "http://localhost:7071/api/sync-ztdwr",
        "Method": "POST", "Query": {}, "Headers": {"Content-Type": ["application/json"]},
        "Params": {}, "Body": "{\"blob_name\":\"f.dat\"}"}}, "Metadata": {}});
    let (body, _) = http_request(inv.to_string().as_bytes()).unwrap();
    assert_eq!(body, "{\"blob_name\":\"f.dat\"}");
    let inv = json!({"Data": {"request": {"Body": {"blob_name": "f.dat"}}}});
    let (body, _) = http_request(inv.to_string().as_bytes()).unwrap();
    assert_eq!(body, "{\"blob_name\":\"f.dat\"}");
    let inv = json!({"Data": {"req": {"Method": "GET", "Params": {"sync_id": "s"}}}});
    let (body, params) = http_request(inv.to_string().as_bytes()).unwrap();
    assert_eq!((body.as_str(), &params), ("", &json!({"sync_id": "s"})));
    assert!(http_request(b"{}").is_err());
}
