//! Opening a source and streaming its bytes, with a fingerprint computed on the way.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::model::SourceFingerprint;

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

/// Lower-case hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
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
