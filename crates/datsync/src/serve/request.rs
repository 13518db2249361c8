//! Reading what the Functions host and manual callers send: which blob to sync.

use serde::Deserialize;
use serde_json::Value;

use super::ServeOptions;

/// A request that does not say which blob to sync.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not the JSON expected.
    #[error("the request body is not valid JSON: {0}")]
    Json(String),
    /// No field names the blob.
    #[error(
        "the request names no blob: give blob_path (container/path or a path in the default \
         container), blob_name or file_name, and optionally container"
    )]
    NoBlob,
    /// The trigger's metadata names no blob.
    #[error(
        "the blob trigger's metadata names no blob (no Metadata.BlobTrigger, Metadata.Uri or \
         Metadata.name)"
    )]
    NoTriggerBlob,
}

/// The legacy manual re-run body (`ztdwr.md` §7).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct BlobRequest {
    /// `container/path/file.dat`, a path in the default container, or an `az://` URL.
    #[serde(default)]
    pub blob_path: Option<String>,
    /// A blob name: a file name in the default folder, or a path.
    #[serde(default)]
    pub blob_name: Option<String>,
    /// The same as `blob_name` (older callers).
    #[serde(default)]
    pub file_name: Option<String>,
    /// The container (default: the trigger's, `data`).
    #[serde(default)]
    pub container: Option<String>,
}

impl BlobRequest {
    /// Parses a body; it must name a blob.
    pub fn from_json(body: &[u8]) -> Result<Self, RequestError> {
        let request: Self =
            serde_json::from_slice(body).map_err(|e| RequestError::Json(e.to_string()))?;
        let named = [&request.blob_path, &request.blob_name, &request.file_name]
            .into_iter()
            .any(|f| f.as_deref().is_some_and(|s| !s.trim().is_empty()));
        if named {
            Ok(request)
        } else {
            Err(RequestError::NoBlob)
        }
    }

    /// The blob's URL, `az://container/path`.
    ///
    /// - an `az://` URL is taken as it is;
    /// - with `container`, `blob_path` is a path inside it;
    /// - without, a `blob_path` whose first segment is the default container includes it
    ///   (`data/hex-ztdwr/f.dat`), any other is a path in the default container;
    /// - a `blob_name` / `file_name` without `/` is a file in the default folder
    ///   (`hex-ztdwr/`), one with `/` a path as for `blob_path`.
    pub fn url(&self, options: &ServeOptions) -> String {
        let nonblank = |f: &Option<String>| {
            f.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let container = nonblank(&self.container);
        let (path, bare_name) = if let Some(p) = nonblank(&self.blob_path) {
            (p, false)
        } else {
            let name = nonblank(&self.blob_name)
                .or_else(|| nonblank(&self.file_name))
                .unwrap_or_default();
            let bare = !name.contains('/');
            (name, bare)
        };
        if crate::source::is_blob_url(&path) {
            return path;
        }
        let path = path.trim_start_matches('/');
        let default_container = options.default_container.trim_matches('/');
        let (container, path) = match container {
            Some(c) => (c, path.to_owned()),
            None => match path.split_once('/') {
                Some((first, rest)) if first == default_container && !bare_name => {
                    (first.to_owned(), rest.to_owned())
                }
                _ => (default_container.to_owned(), path.to_owned()),
            },
        };
        let path = if bare_name {
            let prefix = options.default_prefix.trim_matches('/');
            if prefix.is_empty() {
                path
            } else {
                format!("{prefix}/{path}")
            }
        } else {
            path
        };
        format!("az://{}/{path}", container.trim_matches('/'))
    }
}

/// The blob of a blob-trigger invocation, `az://container/path`, from its `Metadata`:
/// `Uri` (what the host sends), else `BlobTrigger` (`container/path`, which some hosts
/// send), else `name` in the default folder.
///
/// The host serializes string metadata as JSON once more, so a value arrives as
/// `"\"https://…\""`; such a value is decoded once before use.
pub fn blob_from_metadata(
    metadata: &Value,
    options: &ServeOptions,
) -> Result<String, RequestError> {
    let text = |name: &str| field(metadata, name).and_then(Value::as_str).map(unquote);
    if let Some(uri) = text("Uri")
        && let Some(url) = blob_from_uri(&uri)
    {
        return Ok(url);
    }
    if let Some(path) = text("BlobTrigger")
        && let Some((container, path)) = path.trim_start_matches('/').split_once('/')
        && !path.is_empty()
    {
        return Ok(format!("az://{container}/{path}"));
    }
    if let Some(name) = text("name")
        && !name.trim().is_empty()
    {
        let request = BlobRequest {
            blob_name: Some(name),
            ..BlobRequest::default()
        };
        return Ok(request.url(options));
    }
    Err(RequestError::NoTriggerBlob)
}

/// A string that is itself a JSON string (`"\"x\""`) decoded once; any other as it is.
fn unquote(s: &str) -> String {
    let t = s.trim();
    if t.len() >= 2
        && t.starts_with('"')
        && t.ends_with('"')
        && let Ok(inner) = serde_json::from_str::<String>(t)
    {
        return inner;
    }
    t.to_owned()
}

/// Reads an invocation's `Metadata` (any case) from a JSON object while skipping every other
/// member — `Data` holds the blob's whole content, which is read past without being kept.
pub fn invocation_metadata(reader: impl std::io::Read) -> Result<Value, RequestError> {
    use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
    struct Metadata;
    impl<'de> Visitor<'de> for Metadata {
        type Value = Option<Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an invocation object with Data and Metadata")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<String>()? {
                if key.eq_ignore_ascii_case("Metadata") {
                    found = Some(map.next_value::<Value>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(reader));
    let metadata = de
        .deserialize_map(Metadata)
        .map_err(|e| RequestError::Json(e.to_string()))?;
    de.end().map_err(|e| RequestError::Json(e.to_string()))?;
    metadata.ok_or(RequestError::NoTriggerBlob)
}

/// `https://acct.blob.core.windows.net/data/a/f.dat` or the emulator's
/// `http://127.0.0.1:10000/devstoreaccount1/data/a/f.dat` → `az://data/a/f.dat`.
fn blob_from_uri(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    let mut segments: Vec<String> = url
        .path_segments()?
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let host = url.host_str()?;
    // Path-style (emulator, IP or localhost): the account comes first.
    if host == "localhost" || host.parse::<std::net::IpAddr>().is_ok() {
        if segments.is_empty() {
            return None;
        }
        segments.remove(0);
    }
    if segments.len() < 2 {
        return None;
    }
    Some(format!("az://{}", segments.join("/")))
}

/// A member of a JSON object, its name in any case (the host writes `Data`, `Metadata`).
fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    let map = v.as_object()?;
    map.get(name).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// The body of the HTTP request inside an HTTP trigger invocation (`Data.req.Body`), as the
/// JSON text the caller sent.
pub(super) fn http_request_body(invocation: &[u8]) -> Result<String, RequestError> {
    let v: Value =
        serde_json::from_slice(invocation).map_err(|e| RequestError::Json(e.to_string()))?;
    let data = field(&v, "Data").ok_or(RequestError::NoBlob)?;
    // The HTTP trigger's binding is usually named `req`; take the first object with a Body.
    let req = field(data, "req")
        .or_else(|| {
            data.as_object()?
                .values()
                .find(|r| field(r, "Body").is_some())
        })
        .ok_or(RequestError::NoBlob)?;
    match field(req, "Body") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other @ Value::Object(_)) => Ok(other.to_string()),
        _ => Err(RequestError::NoBlob),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn url(body: &Value) -> String {
        BlobRequest::from_json(body.to_string().as_bytes())
            .unwrap()
            .url(&ServeOptions::default())
    }

    #[test]
    fn legacy_request_fields_name_the_blob() {
        assert_eq!(
            url(&json!({"blob_path": "data/hex-ztdwr/ZTDWR_1.dat"})),
            "az://data/hex-ztdwr/ZTDWR_1.dat"
        );
        assert_eq!(
            url(&json!({"blob_path": "hex-ztdwr/ZTDWR_1.dat"})),
            "az://data/hex-ztdwr/ZTDWR_1.dat"
        );
        assert_eq!(
            url(&json!({"blob_path": "in/ZTDWR_1.dat", "container": "other"})),
            "az://other/in/ZTDWR_1.dat"
        );
        assert_eq!(
            url(&json!({"blob_name": "ZTDWR_1.dat"})),
            "az://data/hex-ztdwr/ZTDWR_1.dat"
        );
        assert_eq!(
            url(&json!({"file_name": "ZTDWR_1.dat.gz", "container": "c"})),
            "az://c/hex-ztdwr/ZTDWR_1.dat.gz"
        );
        assert_eq!(
            url(&json!({"blob_path": "az://x/y/z.dat", "container": "ignored"})),
            "az://x/y/z.dat"
        );
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
        assert!(matches!(
            BlobRequest::from_json(b"{not json"),
            Err(RequestError::Json(_))
        ));
    }

    fn from_invocation(inv: &Value) -> Result<String, RequestError> {
        let metadata = invocation_metadata(inv.to_string().as_bytes())?;
        blob_from_metadata(&metadata, &ServeOptions::default())
    }

    #[test]
    fn trigger_metadata_names_the_blob() {
        // As the host sends it: string metadata JSON-encoded once more, no BlobTrigger.
        let inv = json!({"Data": {"myBlob": "U3VyYXQ="}, "Metadata": {
            "Uri": "\"https://acct.blob.core.windows.net/data/hex-ztdwr/ZTDWR_2.dat\"",
            "name": "\"ZTDWR_2.dat\"",
            "Properties": {"ETag": "\"0x8DC\"", "Length": 10}}});
        assert_eq!(
            from_invocation(&inv).unwrap(),
            "az://data/hex-ztdwr/ZTDWR_2.dat"
        );
        let inv = json!({"Metadata": {"Uri": "http://127.0.0.1:10000/devstoreaccount1/data/hex-ztdwr/a%20b.dat"}});
        assert_eq!(
            from_invocation(&inv).unwrap(),
            "az://data/hex-ztdwr/a b.dat"
        );
        let inv = json!({"Metadata": {"BlobTrigger": "data/in/f.dat", "name": "f.dat"}});
        assert_eq!(from_invocation(&inv).unwrap(), "az://data/in/f.dat");
        let inv = json!({"metadata": {"name": "\"f.dat\""}, "Data": {"x": [1, {"y": null}]}});
        assert_eq!(from_invocation(&inv).unwrap(), "az://data/hex-ztdwr/f.dat");
        assert_eq!(
            from_invocation(&json!({"Metadata": {}})).unwrap_err(),
            RequestError::NoTriggerBlob
        );
        assert_eq!(
            from_invocation(&json!({"Data": {}})).unwrap_err(),
            RequestError::NoTriggerBlob
        );
        assert!(from_invocation(&json!([1])).is_err());
        assert!(invocation_metadata(&b"{\"Metadata\": {}} trailing"[..]).is_err());
    }

    #[test]
    fn a_large_data_member_is_skipped_while_reading() {
        // 8 MB of base64-like content before the metadata.
        let big = "QUJD".repeat(2_000_000);
        let inv = json!({"Data": {"myBlob": big}, "Metadata": {"name": "\"x.dat\""}});
        assert_eq!(from_invocation(&inv).unwrap(), "az://data/hex-ztdwr/x.dat");
    }

    #[test]
    fn http_invocations_carry_the_body_as_text_or_json() {
        let inv = json!({"Data": {"req": {"Url": "http://localhost:7071/api/sync-ztdwr",
            "Method": "POST", "Query": {}, "Headers": {"Content-Type": ["application/json"]},
            "Params": {}, "Body": "{\"blob_name\":\"f.dat\"}"}}, "Metadata": {}});
        assert_eq!(
            http_request_body(inv.to_string().as_bytes()).unwrap(),
            "{\"blob_name\":\"f.dat\"}"
        );
        let inv = json!({"Data": {"request": {"Body": {"blob_name": "f.dat"}}}});
        assert_eq!(
            http_request_body(inv.to_string().as_bytes()).unwrap(),
            "{\"blob_name\":\"f.dat\"}"
        );
        assert!(http_request_body(b"{}").is_err());
    }
}
