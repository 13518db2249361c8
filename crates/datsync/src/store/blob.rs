//! Source blobs in Azure Blob Storage: one blob read in ranges, and the blobs under a prefix.
//!
//! A blob is named `az://container/path/to/file.dat`. Reads are ranged GETs made with
//! `If-Match: <ETag>`, so a blob replaced while it is being read fails the read ("the blob
//! changed") instead of mixing two versions of the file.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};

use super::{AzureAccount, StoreError, StoreLocation};

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

/// One blob of a container.
#[derive(Debug, Clone)]
pub struct Blob {
    client: Arc<dyn ObjectStore>,
    container: String,
    path: Path,
}

/// Whether `name` is a blob URL (`az://…` or `azure://…`) rather than a local path.
pub fn is_blob_url(name: &str) -> bool {
    let lower = name.trim_start().to_ascii_lowercase();
    lower.starts_with("az://") || lower.starts_with("azure://")
}

impl Blob {
    /// Opens `az://container/path` with the environment's account.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, &super::env_account(url)?)
    }

    /// Opens `az://container/path` with `account`.
    pub fn open_with(url: &str, account: &AzureAccount) -> Result<Self, StoreError> {
        let (container, path) = blob_parts(url)?;
        if path.is_empty() {
            return Err(malformed(url, "expected az://container/path/to/file"));
        }
        let client = account
            .container(&container)
            .map_err(|source| StoreError::Azure {
                location: url.to_owned(),
                source,
            })?;
        Ok(Self {
            client,
            container,
            path: Path::from(path.as_str()),
        })
    }

    /// `az://container/path`.
    pub fn url(&self) -> String {
        format!("az://{}/{}", self.container, self.path)
    }

    /// The container.
    pub fn container(&self) -> &str {
        &self.container
    }

    /// The path inside the container.
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
    pub async fn head(&self) -> Result<Option<BlobMeta>, StoreError> {
        match self.client.head(&self.path).await {
            Ok(m) => Ok(Some(BlobMeta {
                size: m.size,
                etag: bare_etag(m.e_tag),
                last_modified: m.last_modified,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("read", e)),
        }
    }

    /// Bytes `range` of the blob, only if its ETag is still `etag` (when given).
    pub async fn get_range(
        &self,
        range: Range<u64>,
        etag: Option<&str>,
    ) -> Result<Bytes, StoreError> {
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            // The header wants the quoted form; ours is bare (see `bare_etag`).
            if_match: etag.map(|e| format!("\"{e}\"")),
            ..GetOptions::default()
        };
        let result = match self.client.get_opts(&self.path, options).await {
            Ok(r) => r,
            Err(object_store::Error::Precondition { .. }) => {
                return Err(StoreError::Object {
                    op: "read",
                    object: self.url(),
                    source: "the blob changed while it was being read (its ETag is not the one \
                             the sync started with); the next run reads the new version"
                        .into(),
                });
            }
            Err(e) => return Err(self.error("read", e)),
        };
        result.bytes().await.map_err(|e| self.error("read", e))
    }

    /// Writes the whole blob (uploads in tests and tools).
    pub async fn put(&self, bytes: Bytes) -> Result<(), StoreError> {
        self.client
            .put(&self.path, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| self.error("write", e))
    }

    fn error(&self, op: &'static str, e: object_store::Error) -> StoreError {
        StoreError::Object {
            op,
            object: self.url(),
            source: Box::new(e),
        }
    }
}

/// Every blob under `az://container/prefix`, with what it is now, sorted by path.
pub async fn list_blobs(
    prefix_url: &str,
    account: &AzureAccount,
) -> Result<Vec<(Blob, BlobMeta)>, StoreError> {
    let (container, prefix) = blob_parts(prefix_url)?;
    let client = account
        .container(&container)
        .map_err(|source| StoreError::Azure {
            location: prefix_url.to_owned(),
            source,
        })?;
    let prefix = (!prefix.is_empty()).then(|| Path::from(prefix.as_str()));
    let metas: Vec<_> = client
        .list(prefix.as_ref())
        .try_collect()
        .await
        .map_err(|e| StoreError::Object {
            op: "list",
            object: prefix_url.to_owned(),
            source: Box::new(e),
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
                container: container.clone(),
                path: m.location,
            };
            (blob, meta)
        })
        .collect();
    blobs.sort_by(|a, b| a.0.path.as_ref().cmp(b.0.path.as_ref()));
    Ok(blobs)
}

/// An ETag without its quotes: a HEAD answers `"0x8DC…"`, a listing `0x8DC…`, and the two
/// must compare equal (they name receipts and fingerprints).
fn bare_etag(etag: Option<String>) -> Option<String> {
    etag.map(|e| e.trim().trim_matches('"').to_owned())
        .filter(|e| !e.is_empty())
}

/// `az://container/a/b` → (`container`, `a/b`).
fn blob_parts(url: &str) -> Result<(String, String), StoreError> {
    match StoreLocation::parse(url)? {
        StoreLocation::Azure { container, prefix } => Ok((container, prefix)),
        _ => Err(malformed(url, "expected az://container/path")),
    }
}

fn malformed(url: &str, problem: &'static str) -> StoreError {
    StoreError::Location(super::LocationError::Malformed {
        location: url.to_owned(),
        problem,
    })
}
