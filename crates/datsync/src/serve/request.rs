//! What callers and the Functions host send, narrowed to what the handler may load: the
//! sources of one container and folder ([`Sources`]) of one storage account.
//!
//! Every name is checked before anything is read: another container, another account, a
//! path outside the folder, a `..` segment, a name that is not a source — all are refused
//! with the same answer as a source that does not exist ([`RequestError::NotASource`]), so a
//! caller learns nothing about blobs it may not load.

use serde::Deserialize;
use serde_json::Value;

/// A request that does not name a source the handler loads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not the JSON expected (the parser's message names line and column only).
    #[error("the request body is not valid JSON: {0}")]
    Json(String),
    /// No field names the blob.
    #[error(
        "the request names no blob: give blob_path, blob_name or file_name (a .dat or .dat.gz \
         file of the source folder)"
    )]
    NoBlob,
    /// The name is not one of a source this handler loads, or no such source exists: the
    /// one answer for both (no existence oracle).
    #[error("no such source: name a .dat or .dat.gz file of the source folder this handler loads")]
    NotASource,
    /// The trigger's metadata names no blob.
    #[error(
        "the blob trigger's metadata names no blob (no Metadata.Uri, Metadata.BlobTrigger or \
         Metadata.name)"
    )]
    NoTriggerBlob,
}

/// The one place sources are: a container and a folder in it (the trigger path
/// `data/hex-ztdwr/{name}`), and the storage account that holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    container: String,
    /// The folder without slashes at either end; empty for the whole container.
    prefix: String,
    /// The configured account (`None`: none configured, nothing can be loaded).
    account: Option<String>,
}

impl Sources {
    /// Sources in `container`, under `prefix` (`hex-ztdwr/`), of `account`.
    pub fn new(container: &str, prefix: &str, account: Option<&str>) -> Self {
        Self {
            container: container.trim().trim_matches('/').to_owned(),
            prefix: prefix.trim().trim_matches('/').to_owned(),
            account: account.map(|a| a.trim().to_owned()),
        }
    }

    /// The container.
    pub fn container(&self) -> &str {
        &self.container
    }

    /// The folder, without slashes at either end.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The configured account.
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    /// The folder as a listing URL, `az://container/prefix/`.
    pub fn listing_url(&self) -> String {
        if self.prefix.is_empty() {
            format!("az://{}/", self.container)
        } else {
            format!("az://{}/{}/", self.container, self.prefix)
        }
    }

    /// `az://container/path` when `path` in `container` is a source of this folder: the same
    /// container, a clean path (no empty, `.` or `..` segment, no backslash or control
    /// character) below the folder, and a source's name (`.dat`, `.dat.gz`, not hidden or
    /// temporary).
    pub fn admit(&self, container: &str, path: &str) -> Option<String> {
        if container != self.container || !clean_path(path) {
            return None;
        }
        let below = if self.prefix.is_empty() {
            path
        } else {
            path.strip_prefix(&self.prefix)?.strip_prefix('/')?
        };
        let name = below.rsplit('/').next()?;
        if below.is_empty() || !crate::intake::is_source_name(name) {
            return None;
        }
        Some(format!("az://{container}/{path}"))
    }

    /// [`Sources::admit`] for a blob of `account` (an event's or the host's URL): the account
    /// must be the configured one.
    pub fn admit_in(&self, account: &str, container: &str, path: &str) -> Option<String> {
        if self.account.as_deref() != Some(account) {
            return None;
        }
        self.admit(container, path)
    }
}

/// A path of non-empty segments, none `.` or `..`, without backslashes or control
/// characters.
fn clean_path(path: &str) -> bool {
    !path.is_empty()
        && !path.chars().any(|c| c == '\\' || c.is_control())
        && path
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
}

/// The legacy manual re-run body (`ztdwr.md` §7).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct BlobRequest {
    /// `container/path/file.dat`, a path in the source container, or an `az://` URL.
    #[serde(default)]
    pub blob_path: Option<String>,
    /// A file name in the source folder, or a path.
    #[serde(default)]
    pub blob_name: Option<String>,
    /// The same as `blob_name` (older callers).
    #[serde(default)]
    pub file_name: Option<String>,
    /// The container (it must be the source container).
    #[serde(default)]
    pub container: Option<String>,
}

impl BlobRequest {
    /// Parses a body; it must name a blob.
    pub fn from_json(body: &[u8]) -> Result<Self, RequestError> {
        let request: Self = serde_json::from_slice(body).map_err(|e| {
            // serde_json's message quotes no input beyond a field name; keep its position.
            RequestError::Json(format!("line {}, column {}", e.line(), e.column()))
        })?;
        if request.named().is_some() {
            Ok(request)
        } else {
            Err(RequestError::NoBlob)
        }
    }

    /// The first non-blank name, and whether it came from `blob_path`.
    fn named(&self) -> Option<(String, bool)> {
        let nonblank = |f: &Option<String>| {
            f.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        nonblank(&self.blob_path)
            .map(|p| (p, true))
            .or_else(|| nonblank(&self.blob_name).map(|n| (n, false)))
            .or_else(|| nonblank(&self.file_name).map(|n| (n, false)))
    }

    /// The blob's URL, `az://container/path`, when it is a source of `sources`:
    ///
    /// - an `az://` URL is taken as it is;
    /// - with `container`, the name is a path inside it;
    /// - a `blob_path` whose first segment is the source container includes it
    ///   (`data/hex-ztdwr/f.dat`), any other is a path in the source container;
    /// - a `blob_name` / `file_name` without `/` is a file of the source folder, one with `/`
    ///   a path as for `blob_path`.
    ///
    /// Anything that is not a source of `sources` is [`RequestError::NotASource`].
    pub fn target(&self, sources: &Sources) -> Result<String, RequestError> {
        let (name, is_path) = self.named().ok_or(RequestError::NoBlob)?;
        let (container, path) = if crate::source::is_azure_url(&name) {
            let rest = name.split_once("://").map_or("", |(_, rest)| rest);
            rest.split_once('/')
                .map(|(c, p)| (c.to_owned(), p.to_owned()))
                .ok_or(RequestError::NotASource)?
        } else if let Some(c) = self
            .container
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            (c.to_owned(), in_folder(&name, is_path, sources))
        } else {
            match name.split_once('/') {
                Some((first, rest)) if is_path && first == sources.container() => {
                    (first.to_owned(), rest.to_owned())
                }
                _ => (
                    sources.container().to_owned(),
                    in_folder(&name, is_path, sources),
                ),
            }
        };
        sources
            .admit(&container, &path)
            .ok_or(RequestError::NotASource)
    }
}

/// A bare file name (not a `blob_path`) is a file of the source folder; anything else is a
/// path as given.
fn in_folder(name: &str, is_path: bool, sources: &Sources) -> String {
    if is_path || name.contains('/') || sources.prefix().is_empty() {
        name.to_owned()
    } else {
        format!("{}/{name}", sources.prefix())
    }
}

/// A blob URL's parts: `https://acct.blob.core.windows.net/c/a/f.dat` (or `dfs.`, or a
/// private endpoint: the account is the host's first label), or the emulator's path-style
/// `http://127.0.0.1:10000/devstoreaccount1/c/a/f.dat` → (`acct`, `c`, `a/f.dat`), each
/// segment percent-decoded.
pub fn blob_url_parts(uri: &str) -> Option<(String, String, String)> {
    let url = url::Url::parse(uri.trim()).ok()?;
    if !matches!(url.scheme(), "https" | "http") {
        return None;
    }
    let mut segments = url
        .path_segments()?
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(std::borrow::Cow::into_owned)
        })
        .collect::<Option<Vec<String>>>()?;
    let host = url.host_str()?;
    let account = if host == "localhost" || host.parse::<std::net::IpAddr>().is_ok() {
        if segments.is_empty() {
            return None;
        }
        segments.remove(0)
    } else {
        host.split('.').next()?.to_owned()
    };
    if segments.len() < 2 || account.is_empty() {
        return None;
    }
    let container = segments.remove(0);
    Some((account, container, segments.join("/")))
}

/// The blob of a blob-trigger invocation, from its `Metadata`: `Uri` (what the host sends:
/// the account is checked), else `BlobTrigger` (`container/path`, which some hosts send),
/// else `name` in the source folder — admitted only when it is a source of `sources`.
///
/// The host serializes string metadata as JSON once more, so a value arrives as
/// `"\"https://…\""`; such a value is decoded once before use.
pub fn blob_from_metadata(metadata: &Value, sources: &Sources) -> Result<String, RequestError> {
    let text = |name: &str| field(metadata, name).and_then(Value::as_str).map(unquote);
    if let Some(uri) = text("Uri") {
        let (account, container, path) = blob_url_parts(&uri).ok_or(RequestError::NoTriggerBlob)?;
        return sources
            .admit_in(&account, &container, &path)
            .ok_or(RequestError::NotASource);
    }
    if let Some(path) = text("BlobTrigger") {
        let (container, path) = path
            .trim_start_matches('/')
            .split_once('/')
            .ok_or(RequestError::NoTriggerBlob)?;
        return sources
            .admit(container, path)
            .ok_or(RequestError::NotASource);
    }
    if let Some(name) = text("name").filter(|n| !n.trim().is_empty()) {
        let request = BlobRequest {
            blob_name: Some(name),
            ..BlobRequest::default()
        };
        return request.target(sources);
    }
    Err(RequestError::NoTriggerBlob)
}

/// A string that is itself a JSON string (`"\"x\""`) decoded once; any other as it is.
pub(super) fn unquote(s: &str) -> String {
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

/// A member of a JSON object, its name in any case (the host writes `Data`, `Metadata`).
pub(super) fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    let map = v.as_object()?;
    map.get(name).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// The HTTP request inside an HTTP-trigger invocation (`Data.req`): its body as the JSON
/// text the caller sent, and its route parameters (`Params`).
pub(super) fn http_request(invocation: &[u8]) -> Result<(String, Value), RequestError> {
    let v: Value = serde_json::from_slice(invocation)
        .map_err(|e| RequestError::Json(format!("line {}, column {}", e.line(), e.column())))?;
    let data = field(&v, "Data").ok_or(RequestError::NoBlob)?;
    // The HTTP trigger's binding is usually named `req`; else the first object with a Body
    // or Params.
    let req = field(data, "req")
        .or_else(|| {
            data.as_object()?
                .values()
                .find(|r| field(r, "Body").is_some() || field(r, "Params").is_some())
        })
        .ok_or(RequestError::NoBlob)?;
    let params = field(req, "Params").cloned().unwrap_or(Value::Null);
    let body = match field(req, "Body") {
        Some(Value::String(s)) => s.clone(),
        Some(other @ Value::Object(_)) => other.to_string(),
        _ => String::new(),
    };
    Ok((body, params))
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
