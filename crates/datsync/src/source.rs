//! Opening a source and streaming its bytes, with a fingerprint computed on the way.
//!
//! A source is a local file or a blob (`az://container/path`, see [`crate::store::blob`]).
//! A blob is read in ranges of [`BLOB_RANGE_BYTES`], the next range fetched while the current
//! one is decoded, so memory stays at two ranges whatever the blob's size; every range is
//! asked for with the ETag seen when the source was opened.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::model::{SourceFingerprint, hex};
use crate::store::StoreError;
use crate::store::blob::{Blob, BlobMeta, is_blob_url};

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
    /// Opens a local path (made absolute) or an `az://` URL (its account from the
    /// environment). Call it inside the tokio runtime that will fetch the blob's ranges.
    pub async fn open(name: &str) -> Result<Self, SourceError> {
        if is_blob_url(name) {
            let blob = Blob::open(name).map_err(|e| store_error(name, e))?;
            return Self::open_blob(blob).await;
        }
        let path = Path::new(name);
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let local = LocalSource::open(&path)?;
        Ok(Self::Local {
            fingerprint: local.fingerprint(),
            path,
        })
    }

    /// Opens a blob already located.
    pub async fn open_blob(blob: Blob) -> Result<Self, SourceError> {
        let url = blob.url();
        let meta = blob
            .head()
            .await
            .map_err(|e| store_error(&url, e))?
            .ok_or_else(|| SourceError {
                path: url.clone(),
                error: io::Error::new(io::ErrorKind::NotFound, "no such blob"),
            })?;
        Ok(Self::Blob {
            blob,
            meta,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// The name recorded in the manifest and `sync_metadata.file_path`: the absolute path or
    /// the `az://` URL; [`SourceRef::open`] opens it again.
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
            Self::Local { path, .. } => Box::new(LocalSource::open(path)?.file),
            Self::Blob {
                blob,
                meta,
                runtime,
            } => Box::new(BlobReader {
                blob: blob.clone(),
                etag: meta.etag.clone(),
                size: meta.size,
                range_bytes: range_bytes.max(1),
                fetched_to: 0,
                current: Bytes::new(),
                next: None,
                runtime: runtime.clone(),
            }),
        };
        Ok(HashingReader::new(inner))
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

fn store_error(name: &str, e: StoreError) -> SourceError {
    SourceError {
        path: name.to_owned(),
        error: io_error(e),
    }
}

/// A store error as an I/O error of the source; the source's name is added by the caller
/// (a `StoreError::Object` message would say "checkpoint storage" and repeat the URL).
fn io_error(e: StoreError) -> io::Error {
    match e {
        StoreError::Object { source, .. } => io::Error::other(source),
        other => io::Error::other(other.to_string()),
    }
}

type Fetch = tokio::task::JoinHandle<Result<Bytes, StoreError>>;

/// A blob read range by range, the next range in flight while the current one is consumed.
struct BlobReader {
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

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.current.is_empty() {
            let Some(fetch) = self.next.take().or_else(|| self.fetch_next()) else {
                return Ok(0);
            };
            let bytes = self
                .runtime
                .block_on(fetch)
                .map_err(|e| io::Error::other(format!("reading the blob: {e}")))?
                .map_err(io_error)?;
            if bytes.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the blob ended before its recorded size",
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

/// What reading a whole source found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDigest {
    /// Its length in bytes.
    pub bytes: u64,
    /// The lower-case hex SHA-256 of its bytes.
    pub sha256: String,
}

/// An error opening or reading a source; it names the source.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {error}")]
pub struct SourceError {
    /// The source as the user named it.
    pub path: String,
    /// The I/O error (shown in the message, not chained again).
    pub error: io::Error,
}

/// A local source file, opened for streaming.
pub struct LocalSource {
    path: PathBuf,
    file: File,
    size_bytes: u64,
    modified: Option<String>,
}

impl LocalSource {
    /// Opens a local file.
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let wrap = |error| SourceError {
            path: path.display().to_string(),
            error,
        };
        let file = File::open(path).map_err(wrap)?;
        let meta = file.metadata().map_err(wrap)?;
        if meta.is_dir() {
            return Err(wrap(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a directory, not a file",
            )));
        }
        let modified = meta.modified().ok().map(|t| {
            chrono::DateTime::<chrono::Utc>::from(t)
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        });
        Ok(Self {
            path: path.to_path_buf(),
            file,
            size_bytes: meta.len(),
            modified,
        })
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The base name of the source (`source_file` in the manifest and the table).
    pub fn file_name(&self) -> String {
        self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// The fingerprint known before reading: size and modification time.
    pub fn fingerprint(&self) -> SourceFingerprint {
        SourceFingerprint {
            size_bytes: self.size_bytes,
            etag: None,
            modified: self.modified.clone(),
            sha256: None,
        }
    }

    /// A reader over the bytes that hashes them as they pass.
    pub fn reader(self) -> HashingReader<File> {
        HashingReader::new(self.file)
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

    #[test]
    fn missing_file_names_the_path() {
        let e = LocalSource::open(Path::new("/nonexistent/x.dat"))
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("/nonexistent/x.dat: "), "{e}");
    }
}
