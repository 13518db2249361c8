//! Source blobs and objects in Azure Blob Storage, S3 and Google Cloud Storage: one read in
//! ranges, and those under a prefix.
//!
//! A blob is named `az://container/path/to/file.dat` (`azure://` works too), an object
//! `s3://bucket/path/to/file.dat` or `gs://bucket/path/to/file.dat`; all three are "blobs"
//! here. Reads are ranged GETs made with `If-Match: <ETag>`, so a blob replaced while it is
//! being read fails the read ("the blob changed", "the object changed") instead of mixing
//! two versions of the file. The Azure account comes from [`crate::azure`], the S3 and
//! Google settings from [`crate::cloud`], as the checkpoint store's do.

use std::io::{self, Read};
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};

use super::SourceError;
use crate::azure::AzureAccount;
use crate::cloud::{Cloud, CloudSettings};

/// What a blob is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// Its size in bytes.
    pub size: u64,
    /// Its ETag without quotes, when the service gives one.
    pub etag: Option<String>,
    /// When it was last written.
    pub last_modified: DateTime<Utc>,
}

impl BlobMeta {
    /// What identifies these bytes: the ETag (Azure, S3 and GCS always send one); without one, size and
    /// modification time (`<size>-<mtime_ns>`, as for a local file).
    pub fn version(&self) -> String {
        self.etag.clone().unwrap_or_else(|| {
            format!(
                "{}-{}",
                self.size,
                self.last_modified.timestamp_nanos_opt().unwrap_or(0)
            )
        })
    }
}

/// One blob of a container, or one object of a bucket.
#[derive(Debug, Clone)]
pub struct Blob {
    client: Arc<dyn ObjectStore>,
    /// Said after an error of the service when no credentials are configured.
    hint: Option<&'static str>,
    cloud: Cloud,
    container: String,
    path: Path,
}

/// Whether `name` is a blob or object URL (`az://…`, `azure://…`, `s3://…`, `gs://…`)
/// rather than a local path.
pub fn is_blob_url(name: &str) -> bool {
    Cloud::of_url(name).is_some()
}

/// Whether `name` is an Azure blob URL (`az://…` or `azure://…`).
pub fn is_azure_url(name: &str) -> bool {
    Cloud::of_url(name) == Some(Cloud::Azure)
}

impl Blob {
    /// Opens `az://container/path`, `s3://bucket/path` or `gs://bucket/path` with the
    /// environment's account or settings.
    pub fn open(url: &str) -> Result<Self, SourceError> {
        let (cloud, _, _) = blob_parts(url)?;
        match cloud {
            Cloud::Azure => Self::open_with(url, &env_account(url)?),
            cloud => Self::open_in(url, &CloudSettings::from_env(cloud)),
        }
    }

    /// Opens `az://container/path` with `account`.
    pub fn open_with(url: &str, account: &AzureAccount) -> Result<Self, SourceError> {
        let (container, path) = object_parts(url, Cloud::Azure)?;
        Ok(Self {
            client: container_client(url, account, &container)?,
            hint: None,
            cloud: Cloud::Azure,
            container,
            path,
        })
    }

    /// Opens `s3://bucket/path` or `gs://bucket/path` with `settings` (of that cloud).
    pub fn open_in(url: &str, settings: &CloudSettings) -> Result<Self, SourceError> {
        let cloud = settings.cloud();
        let (container, path) = object_parts(url, cloud)?;
        Ok(Self {
            client: bucket_client(url, settings, &container)?,
            hint: settings.no_credentials_hint(),
            cloud,
            container,
            path,
        })
    }

    /// `az://container/path`, `s3://bucket/path`, `gs://bucket/path`.
    pub fn url(&self) -> String {
        format!("{}://{}/{}", self.cloud.scheme(), self.container, self.path)
    }

    /// Where it is kept.
    pub fn cloud(&self) -> Cloud {
        self.cloud
    }

    /// The container or bucket.
    pub fn container(&self) -> &str {
        &self.container
    }

    /// The path inside the container or bucket.
    pub fn path(&self) -> &str {
        self.path.as_ref()
    }

    /// The last segment of the path (`source_file` in the manifest and the table).
    pub fn file_name(&self) -> String {
        self.path
            .filename()
            .map_or_else(|| self.path.to_string(), str::to_owned)
    }

    /// The blob's size, ETag and modification time; `Ok(None)` when it does not exist.
    pub async fn head(&self) -> Result<Option<BlobMeta>, SourceError> {
        match self.client.head(&self.path).await {
            Ok(m) => Ok(Some(BlobMeta {
                size: m.size,
                etag: bare_etag(m.e_tag),
                last_modified: m.last_modified,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Bytes `range` of the blob, only if its ETag is still `etag` (when given).
    pub async fn get_range(
        &self,
        range: Range<u64>,
        etag: Option<&str>,
    ) -> Result<Bytes, SourceError> {
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            // The header wants the quoted form; ours is bare (see `bare_etag`).
            if_match: etag.map(|e| format!("\"{e}\"")),
            ..GetOptions::default()
        };
        let result = match self.client.get_opts(&self.path, options).await {
            Ok(r) => r,
            Err(object_store::Error::Precondition { .. }) => {
                return Err(SourceError {
                    path: self.url(),
                    error: io::Error::other(format!(
                        "the {} changed while it was being read (its ETag is not the one \
                         the sync started with); the next run reads the new version",
                        self.cloud.object_word()
                    )),
                });
            }
            Err(e) => return Err(self.error(e)),
        };
        result.bytes().await.map_err(|e| self.error(e))
    }

    /// Writes the whole blob (uploads in tests).
    #[cfg(feature = "test-support")]
    pub async fn put(&self, bytes: Bytes) -> Result<(), SourceError> {
        self.client
            .put(&self.path, object_store::PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    fn error(&self, e: object_store::Error) -> SourceError {
        SourceError {
            path: self.url(),
            error: with_hint(e, self.hint),
        }
    }
}

/// Every blob under `az://container/prefix`, with what it is now, sorted by path.
pub async fn list_blobs(
    prefix_url: &str,
    account: &AzureAccount,
) -> Result<Vec<(Blob, BlobMeta)>, SourceError> {
    let (container, prefix) = prefix_parts(prefix_url, Cloud::Azure)?;
    let client = container_client(prefix_url, account, &container)?;
    list_in(prefix_url, (client, None), Cloud::Azure, container, &prefix).await
}

/// Every object under `s3://bucket/prefix` or `gs://bucket/prefix` (the cloud of
/// `settings`), with what it is now, sorted by path.
pub async fn list_objects(
    prefix_url: &str,
    settings: &CloudSettings,
) -> Result<Vec<(Blob, BlobMeta)>, SourceError> {
    let cloud = settings.cloud();
    let (container, prefix) = prefix_parts(prefix_url, cloud)?;
    let client = bucket_client(prefix_url, settings, &container)?;
    let hint = settings.no_credentials_hint();
    list_in(prefix_url, (client, hint), cloud, container, &prefix).await
}

/// Every blob or object under a prefix URL of any cloud, with the environment's account or
/// settings.
pub async fn list_from_env(prefix_url: &str) -> Result<Vec<(Blob, BlobMeta)>, SourceError> {
    let (cloud, _, _) = blob_parts(prefix_url)?;
    match cloud {
        Cloud::Azure => list_blobs(prefix_url, &env_account(prefix_url)?).await,
        cloud => list_objects(prefix_url, &CloudSettings::from_env(cloud)).await,
    }
}

async fn list_in(
    prefix_url: &str,
    (client, hint): (Arc<dyn ObjectStore>, Option<&'static str>),
    cloud: Cloud,
    container: String,
    prefix: &str,
) -> Result<Vec<(Blob, BlobMeta)>, SourceError> {
    let prefix = (!prefix.is_empty()).then(|| Path::from(prefix));
    let metas: Vec<_> = client
        .list(prefix.as_ref())
        .try_collect()
        .await
        .map_err(|e| SourceError {
            path: prefix_url.to_owned(),
            error: with_hint(e, hint),
        })?;
    let mut blobs: Vec<_> = metas
        .into_iter()
        .map(|m| {
            let meta = BlobMeta {
                size: m.size,
                etag: bare_etag(m.e_tag),
                last_modified: m.last_modified,
            };
            let blob = Blob {
                client: Arc::clone(&client),
                hint,
                cloud,
                container: container.clone(),
                path: m.location,
            };
            (blob, meta)
        })
        .collect();
    blobs.sort_by(|a, b| a.0.path.as_ref().cmp(b.0.path.as_ref()));
    Ok(blobs)
}

/// Checks that `url` names a container or bucket (`az://container/`,
/// `s3://bucket/prefix`, `gs://bucket/prefix`).
pub fn check_blob_prefix(url: &str) -> Result<(), SourceError> {
    blob_parts(url).map(|_| ())
}

/// The Azure account of the environment, or an error naming the blob and the settings.
fn env_account(url: &str) -> Result<AzureAccount, SourceError> {
    AzureAccount::required_from_env().map_err(|e| SourceError {
        path: url.to_owned(),
        error: io::Error::other(e),
    })
}

fn container_client(
    url: &str,
    account: &AzureAccount,
    container: &str,
) -> Result<Arc<dyn ObjectStore>, SourceError> {
    account.container(container).map_err(|e| SourceError {
        path: url.to_owned(),
        error: io::Error::other(e),
    })
}

fn bucket_client(
    url: &str,
    settings: &CloudSettings,
    bucket: &str,
) -> Result<Arc<dyn ObjectStore>, SourceError> {
    settings.bucket(bucket).map_err(|e| SourceError {
        path: url.to_owned(),
        error: io::Error::other(e),
    })
}

/// A service's error, followed by `hint` when there is one.
pub(crate) fn with_hint(e: object_store::Error, hint: Option<&str>) -> io::Error {
    match hint {
        Some(hint) => io::Error::other(format!("{e}; {hint}")),
        None => io::Error::other(e),
    }
}

/// An ETag without its quotes: a HEAD answers `"0x8DC…"`, a listing `0x8DC…`, and the two
/// must compare equal (they name receipts and fingerprints).
fn bare_etag(etag: Option<String>) -> Option<String> {
    etag.map(|e| e.trim().trim_matches('"').to_owned())
        .filter(|e| !e.is_empty())
}

/// `az://container/a/b` → (Azure, `container`, `a/b`); `s3://bucket/a` → (S3, `bucket`, `a`).
fn blob_parts(url: &str) -> Result<(Cloud, String, String), SourceError> {
    let expected = "expected az://container/path, s3://bucket/path or gs://bucket/path";
    let (scheme, rest) = url
        .trim()
        .split_once("://")
        .ok_or_else(|| malformed(url, expected))?;
    let cloud = Cloud::from_scheme(scheme).ok_or_else(|| malformed(url, expected))?;
    let (container, path) = rest.split_once('/').unwrap_or((rest, ""));
    if container.is_empty() {
        return Err(malformed(url, &expected_of(cloud, "path")));
    }
    Ok((
        cloud,
        container.to_owned(),
        path.trim_matches('/').to_owned(),
    ))
}

/// The container and prefix of a prefix URL of `cloud`.
fn prefix_parts(url: &str, cloud: Cloud) -> Result<(String, String), SourceError> {
    match blob_parts(url)? {
        (found, container, prefix) if found == cloud => Ok((container, prefix)),
        _ => Err(malformed(url, &expected_of(cloud, "prefix"))),
    }
}

/// The container and path of one blob or object of `cloud`.
fn object_parts(url: &str, cloud: Cloud) -> Result<(String, Path), SourceError> {
    let (container, path) = prefix_parts(url, cloud)?;
    if path.is_empty() {
        return Err(malformed(url, &expected_of(cloud, "path/to/file")));
    }
    Ok((container, Path::from(path.as_str())))
}

/// `expected s3://bucket/path`.
fn expected_of(cloud: Cloud, what: &str) -> String {
    format!(
        "expected {}://{}/{what}",
        cloud.scheme(),
        cloud.container_word()
    )
}

fn malformed(url: &str, problem: &str) -> SourceError {
    SourceError {
        path: url.to_owned(),
        error: io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a blob URL: {problem}"),
        ),
    }
}

type Fetch = tokio::task::JoinHandle<Result<Bytes, SourceError>>;

/// A blob read range by range, the next range in flight while the current one is consumed.
pub(super) struct BlobReader {
    blob: Blob,
    etag: Option<String>,
    size: u64,
    range_bytes: u64,
    /// The end of the bytes fetched or in flight.
    fetched_to: u64,
    current: Bytes,
    next: Option<Fetch>,
    runtime: tokio::runtime::Handle,
}

impl BlobReader {
    /// A reader of `blob` as `meta` describes it from byte `offset` on, `range_bytes` at a
    /// time, its ranges fetched on `runtime`.
    pub(super) fn new(
        blob: Blob,
        meta: &BlobMeta,
        range_bytes: u64,
        runtime: tokio::runtime::Handle,
        offset: u64,
    ) -> Self {
        Self {
            blob,
            etag: meta.etag.clone(),
            size: meta.size,
            range_bytes: range_bytes.max(1),
            fetched_to: offset.min(meta.size),
            current: Bytes::new(),
            next: None,
            runtime,
        }
    }

    fn fetch_next(&mut self) -> Option<Fetch> {
        if self.fetched_to >= self.size {
            return None;
        }
        let end = (self.fetched_to + self.range_bytes).min(self.size);
        let range = self.fetched_to..end;
        self.fetched_to = end;
        let blob = self.blob.clone();
        let etag = self.etag.clone();
        Some(
            self.runtime
                .spawn(async move { blob.get_range(range, etag.as_deref()).await }),
        )
    }
}

/// A range fetched ahead and not read (the reader dropped: a resume moved on past it) is not
/// downloaded on.
impl Drop for BlobReader {
    fn drop(&mut self) {
        if let Some(fetch) = self.next.take() {
            fetch.abort();
        }
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.current.is_empty() {
            let Some(fetch) = self.next.take().or_else(|| self.fetch_next()) else {
                return Ok(0);
            };
            // The reader's caller names the source: only the cause goes up.
            let bytes = self
                .runtime
                .block_on(fetch)
                .map_err(|e| io::Error::other(format!("reading a range: {e}")))?
                .map_err(|e| e.error)?;
            if bytes.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the blob or object ended before its recorded size",
                ));
            }
            self.current = bytes;
            // Read ahead while this range is decoded.
            self.next = self.fetch_next();
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_urls_name_a_container_and_a_path() {
        let parts = |c: Cloud, a: &str, b: &str| (c, a.to_owned(), b.to_owned());
        assert_eq!(
            blob_parts("az://data/hex-ztdwr/a.dat").unwrap(),
            parts(Cloud::Azure, "data", "hex-ztdwr/a.dat")
        );
        assert_eq!(
            blob_parts(" AZURE://data/p/ ").unwrap(),
            parts(Cloud::Azure, "data", "p")
        );
        assert_eq!(
            blob_parts("az://data").unwrap(),
            parts(Cloud::Azure, "data", "")
        );
        assert_eq!(
            blob_parts("s3://bucket/in/a.dat").unwrap(),
            parts(Cloud::S3, "bucket", "in/a.dat")
        );
        assert_eq!(
            blob_parts("gs://bucket/").unwrap(),
            parts(Cloud::Gcs, "bucket", "")
        );
        for bad in [
            "az:///x",
            "s3:///k",
            "gs://",
            "/data/a.dat",
            "az://",
            "ftp://h/x",
        ] {
            let e = blob_parts(bad).unwrap_err().to_string();
            assert!(e.starts_with(bad) && e.contains("not a blob URL"), "{e}");
            assert!(!e.contains("checkpoint"), "{e}");
        }
        let e = blob_parts("s3:///k").unwrap_err().to_string();
        assert!(e.contains("expected s3://bucket/path"), "{e}");
        // A bucket alone is a prefix, not an object; a URL of another cloud is refused.
        let e = object_parts("s3://bucket/", Cloud::S3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected s3://bucket/path/to/file"), "{e}");
        let e = object_parts("gs://b/a.dat", Cloud::S3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected s3://bucket/"), "{e}");
        assert!(is_blob_url("S3://b/k") && is_blob_url("gs://b/k") && !is_blob_url("/x"));
        assert!(is_azure_url("az://c/k") && !is_azure_url("s3://b/k"));
    }

    #[test]
    fn a_blob_version_is_its_etag_else_size_and_time() {
        let t = DateTime::from_timestamp(1_700_000_000, 5).unwrap();
        let mut meta = BlobMeta {
            size: 42,
            etag: Some("0x8DC".into()),
            last_modified: t,
        };
        assert_eq!(meta.version(), "0x8DC");
        meta.etag = None;
        assert_eq!(meta.version(), "42-1700000000000000005");
        assert_eq!(bare_etag(Some("\"0x8DC\"".into())), Some("0x8DC".into()));
        assert_eq!(bare_etag(Some("\"\"".into())), None);
    }
}
