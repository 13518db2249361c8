//! Everything read from a source, and nothing else: opening one and streaming its bytes
//! with a fingerprint computed on the way, listing a directory or a blob prefix, and what
//! identifies a version of a file (size and modification time) or a blob (its ETag).
//! Checkpoints are elsewhere ([`crate::store`]); both reach Azure through [`crate::azure`],
//! S3 and Google Cloud Storage through [`crate::cloud`].
//!
//! A source is a local file (`local.rs`) or a blob: `az://container/path`,
//! `s3://bucket/path` or `gs://bucket/path` (`blob.rs`; an S3 or GCS object is a "blob"
//! here too).
//! A blob is read in ranges of [`BLOB_RANGE_BYTES`], the next range fetched while the current
//! one is decoded, so memory stays at two ranges whatever the blob's size; every range is
//! asked for with the ETag seen when the source was opened. Every error is a
//! [`SourceError`] naming the source.

mod blob;
mod local;

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::model::{SourceFingerprint, hex};
use blob::BlobReader;
pub(crate) use blob::with_hint;
pub use blob::{
    Blob, BlobMeta, check_blob_prefix, is_azure_url, is_blob_url, list_blobs, list_from_env,
    list_objects,
};
pub use local::{FileIdentity, LocalFile, LocalSource, list_dir, local_file};

/// Bytes fetched by one ranged read of a blob.
pub const BLOB_RANGE_BYTES: u64 = 8 * 1024 * 1024;

/// A source as a run knows it: what it is called, what it was when opened, and how to read
/// it again. Cheap to clone.
#[derive(Debug, Clone)]
pub enum SourceRef {
    /// A local file (an absolute path).
    Local {
        /// The path.
        path: PathBuf,
        /// Size and modification time when opened.
        fingerprint: SourceFingerprint,
        /// The file opened (inode, size, modification time): every later read must find it
        /// unchanged (see [`SourceRef::changed`]).
        identity: FileIdentity,
    },
    /// A blob.
    Blob {
        /// The blob.
        blob: Blob,
        /// Size, ETag and modification time when opened.
        meta: BlobMeta,
        /// The runtime that fetches its ranges (readers run on plain threads).
        runtime: tokio::runtime::Handle,
    },
}

impl SourceRef {
    /// Opens a local path (made absolute) or an `az://`, `s3://` or `gs://` URL (its account
    /// or settings from the environment). Call it inside the tokio runtime that will fetch the blob's ranges.
    pub async fn open(name: &str) -> Result<Self, SourceError> {
        if is_blob_url(name) {
            return Self::open_blob(Blob::open(name)?).await;
        }
        let path = Path::new(name);
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let local = LocalSource::open(&path)?;
        Ok(Self::Local {
            fingerprint: local.fingerprint(),
            identity: local.identity(),
            path,
        })
    }

    /// Opens a blob already located.
    pub async fn open_blob(blob: Blob) -> Result<Self, SourceError> {
        let url = blob.url();
        let meta = blob.head().await?.ok_or_else(|| SourceError {
            path: url.clone(),
            error: io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such {}", blob.cloud().object_word()),
            ),
        })?;
        Ok(Self::Blob {
            blob,
            meta,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// The name recorded in the manifest and `sync_metadata.file_path`: the absolute path or
    /// the blob's URL; [`SourceRef::open`] opens it again.
    pub fn name(&self) -> String {
        match self {
            Self::Local { path, .. } => path.display().to_string(),
            Self::Blob { blob, .. } => blob.url(),
        }
    }

    /// The base name (`source_file`).
    pub fn file_name(&self) -> String {
        match self {
            Self::Local { path, .. } => path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            Self::Blob { blob, .. } => blob.file_name(),
        }
    }

    /// What the source was when opened (a blob's ETag included).
    pub fn fingerprint(&self) -> SourceFingerprint {
        match self {
            Self::Local { fingerprint, .. } => fingerprint.clone(),
            Self::Blob { meta, .. } => SourceFingerprint {
                size_bytes: meta.size,
                etag: meta.etag.clone(),
                modified: Some(
                    meta.last_modified
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ),
                sha256: None,
            },
        }
    }

    /// A reader over the bytes, hashing them as they pass. A blob's reader blocks on the
    /// runtime: call it from a thread of its own or `spawn_blocking`, never from a task.
    pub fn reader(&self) -> Result<HashingReader<Box<dyn Read + Send>>, SourceError> {
        self.reader_in_ranges(BLOB_RANGE_BYTES)
    }

    /// [`Self::reader`] with another range size for blobs (tests cut small blobs in many
    /// ranges).
    pub fn reader_in_ranges(
        &self,
        range_bytes: u64,
    ) -> Result<HashingReader<Box<dyn Read + Send>>, SourceError> {
        let inner: Box<dyn Read + Send> = match self {
            Self::Local { path, identity, .. } => {
                let local = LocalSource::open(path)?;
                // The bytes read must be those of the file the sync opened.
                if let Some(change) = identity.change(&local.identity()) {
                    return Err(SourceError {
                        path: path.display().to_string(),
                        error: io::Error::other(format!(
                            "the file changed after this sync opened it: {change}"
                        )),
                    });
                }
                Box::new(local.into_file())
            }
            Self::Blob {
                blob,
                meta,
                runtime,
            } => Box::new(BlobReader::new(
                blob.clone(),
                meta,
                range_bytes,
                runtime.clone(),
            )),
        };
        Ok(HashingReader::new(inner))
    }

    /// How a local source differs from the file this sync opened (replaced by a rename,
    /// rewritten in place, grown, truncated, deleted), for a person; `None` while it is the
    /// same, and always for a blob (every range of a blob is read with `If-Match` on the
    /// ETag seen when it was opened).
    pub fn changed(&self) -> Option<String> {
        let Self::Local { path, identity, .. } = self else {
            return None;
        };
        match std::fs::metadata(path) {
            Ok(meta) => identity.change(&FileIdentity::of(&meta)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Some("it was deleted or renamed away".to_owned())
            }
            Err(e) => Some(format!("it cannot be looked at any more: {e}")),
        }
    }

    /// Reads the whole source: its length and SHA-256 (blocking, like [`Self::reader`]).
    pub fn digest(&self) -> Result<SourceDigest, SourceError> {
        let mut reader = self.reader()?;
        io::copy(&mut reader, &mut io::sink()).map_err(|error| SourceError {
            path: self.name(),
            error,
        })?;
        Ok(SourceDigest {
            bytes: reader.bytes_read(),
            sha256: reader.sha256_hex(),
        })
    }
}

/// What reading a whole source found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDigest {
    /// Its length in bytes.
    pub bytes: u64,
    /// The lower-case hex SHA-256 of its bytes.
    pub sha256: String,
}

/// An error opening, reading or listing a source; it names the source (a path or an
/// `az://`, `s3://` or `gs://` URL), never the checkpoint storage.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {error}")]
pub struct SourceError {
    /// The source (or the listed directory or prefix) as the user named it.
    pub path: String,
    /// What failed: the file system's error, or the blob service's inside an I/O error
    /// (shown in the message, not chained again).
    pub error: io::Error,
}

impl SourceError {
    /// Whether the source does not exist.
    pub fn is_not_found(&self) -> bool {
        self.error.kind() == io::ErrorKind::NotFound
    }
}

/// A reader that computes the SHA-256 and the length of everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps a reader.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The lower-case hex SHA-256 of the bytes read so far.
    pub fn sha256_hex(&self) -> String {
        hex(&self.hasher.clone().finalize())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_what_passes_through() {
        let mut r = HashingReader::new(&b"abc"[..]);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(r.bytes_read(), 3);
        assert_eq!(
            r.sha256_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
