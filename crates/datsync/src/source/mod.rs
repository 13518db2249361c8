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

use crate::model::{SourceFingerprint, SourceHashState, hex};
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
        Ok(HashingReader::new(
            self.reader_at_in_ranges(0, range_bytes)?,
        ))
    }

    /// A reader over the bytes from byte `offset` on, not hashing them (the caller hashes
    /// what it uses: see [`SourceHasher`]). Blocks on the runtime for a blob, like
    /// [`Self::reader`].
    pub fn reader_at(&self, offset: u64) -> Result<Box<dyn Read + Send>, SourceError> {
        self.reader_at_in_ranges(offset, BLOB_RANGE_BYTES)
    }

    /// [`Self::reader_at`] with another range size for blobs.
    pub fn reader_at_in_ranges(
        &self,
        offset: u64,
        range_bytes: u64,
    ) -> Result<Box<dyn Read + Send>, SourceError> {
        Ok(match self {
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
                let mut file = local.into_file();
                if offset > 0 {
                    use std::io::Seek as _;
                    file.seek(io::SeekFrom::Start(offset))
                        .map_err(|error| SourceError {
                            path: path.display().to_string(),
                            error,
                        })?;
                }
                Box::new(file)
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
                offset,
            )),
        })
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

/// The format of [`SourceHashState::state`] this build writes and reads: sha2 0.11's
/// serialized SHA-256 state (the eight state words and the block count, then the partial
/// block and its length). A unit test pins it; another format means another name.
pub const SOURCE_HASH_FORMAT: &str = "sha2-0.11-sha256";

/// SHA-256's block: a state saved at a multiple of it holds no partial block (no source
/// bytes).
pub const SHA256_BLOCK_BYTES: usize = 64;

/// The SHA-256 and length of a source's bytes hashed so far, which can be saved at a point
/// ([`Self::save`]) and taken up again by a later run from there ([`Self::restore`]).
#[derive(Clone, Default)]
pub struct SourceHasher {
    hasher: Sha256,
    bytes: u64,
}

impl SourceHasher {
    /// Hashes the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.bytes += bytes.len() as u64;
    }

    /// Bytes hashed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The lower-case hex SHA-256 of the bytes hashed so far.
    pub fn sha256_hex(&self) -> String {
        hex(&self.hasher.clone().finalize())
    }

    /// The state after the bytes hashed so far, which should be a multiple of
    /// [`SHA256_BLOCK_BYTES`]: otherwise the state holds the last partial block, source bytes, and
    /// [`Self::restore`] refuses it.
    pub fn save(&self) -> SourceHashState {
        use base64::Engine as _;
        use sha2::digest::common::hazmat::SerializableState as _;
        SourceHashState {
            bytes: self.bytes,
            format: SOURCE_HASH_FORMAT.to_owned(),
            state: base64::engine::general_purpose::STANDARD.encode(self.hasher.serialize()),
        }
    }

    /// The hasher a saved state describes; `None` for a state of another format, one that
    /// cannot be read, or one that is not at a block boundary `saved.bytes` bytes in (its
    /// block count says otherwise, or it holds a partial block).
    pub fn restore(saved: &SourceHashState) -> Option<Self> {
        use base64::Engine as _;
        use sha2::digest::common::hazmat::SerializableState;
        if saved.format != SOURCE_HASH_FORMAT {
            return None;
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&saved.state)
            .ok()?;
        // The state words (32 bytes), the block count (8, little-endian), then the partial
        // block and its length, which must be empty.
        let blocks = u64::from_le_bytes(bytes.get(32..40)?.try_into().ok()?);
        if blocks.checked_mul(SHA256_BLOCK_BYTES as u64) != Some(saved.bytes)
            || bytes[40..].iter().any(|&b| b != 0)
        {
            return None;
        }
        let state =
            <&sha2::digest::common::hazmat::SerializedState<Sha256>>::try_from(bytes.as_slice())
                .ok()?;
        Some(Self {
            hasher: Sha256::deserialize(state).ok()?,
            bytes: saved.bytes,
        })
    }
}

/// A reader that computes the SHA-256 and the length of everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: SourceHasher,
}

impl<R: Read> HashingReader<R> {
    /// Wraps a reader.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: SourceHasher::default(),
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.hasher.bytes()
    }

    /// The lower-case hex SHA-256 of the bytes read so far.
    pub fn sha256_hex(&self) -> String {
        self.hasher.sha256_hex()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| b"NIK 3171-2345~|^"[i % 16]).collect()
    }

    /// Saved at a block boundary and restored, a hasher hashes the rest to the SHA-256 of the
    /// bytes in one piece. A state saved elsewhere (it holds a partial block: source bytes),
    /// or whose byte count is not its block count's, is not restored.
    #[test]
    fn a_saved_hash_is_taken_up_where_it_was_saved() {
        let bytes = pattern(1000);
        let whole = hex(&Sha256::digest(&bytes));
        for at in [0, 1, 63, 64, 65, 128, 960, 999, 1000] {
            let mut first = SourceHasher::default();
            first.update(&bytes[..at]);
            let saved = first.save();
            assert_eq!(saved.bytes, at as u64);
            let Some(mut second) = SourceHasher::restore(&saved) else {
                assert_ne!(at % 64, 0, "saved at {at}");
                continue;
            };
            assert_eq!(at % 64, 0, "saved at {at}");
            second.update(&bytes[at..]);
            assert_eq!(second.bytes(), 1000);
            assert_eq!(second.sha256_hex(), whole, "saved at {at}");
            for wrong in [
                saved.bytes + 64,
                saved.bytes.wrapping_sub(64),
                saved.bytes + 1,
            ] {
                let moved = SourceHashState {
                    bytes: wrong,
                    ..saved.clone()
                };
                assert!(SourceHasher::restore(&moved).is_none(), "{at} as {wrong}");
            }
        }
    }

    /// A state saved at a block boundary holds the state words and the block count, and
    /// none of the source's bytes (a line may hold personal data).
    #[test]
    fn a_state_saved_at_a_block_boundary_holds_no_source_bytes() {
        use base64::Engine as _;
        let mut hasher = SourceHasher::default();
        hasher.update(&pattern(64 * 3));
        let state = base64::engine::general_purpose::STANDARD
            .decode(hasher.save().state)
            .unwrap();
        // Eight state words and the block count, then the (empty) partial block.
        assert_eq!(u64::from_le_bytes(state[32..40].try_into().unwrap()), 3);
        assert!(state[40..].iter().all(|&b| b == 0), "{state:?}");
    }

    /// The format recorded in manifests: sha2's serialized state of SHA-256 after 64 bytes
    /// of `a` (the state words, little-endian, then the block count and the empty partial
    /// block). Should sha2 change it, this fails: the new format needs a new name, or
    /// resumes would take up a state they misread.
    #[test]
    fn the_saved_state_format_is_the_one_named() {
        use base64::Engine as _;
        let mut hasher = SourceHasher::default();
        hasher.update(&[b'a'; 64]);
        let saved = hasher.save();
        assert_eq!(saved.format, SOURCE_HASH_FORMAT);
        let state = base64::engine::general_purpose::STANDARD
            .decode(&saved.state)
            .unwrap();
        let words: Vec<String> = state[..32]
            .chunks(4)
            .map(|w| format!("{:08x}", u32::from_le_bytes(w.try_into().unwrap())))
            .collect();
        // SHA-256's state after compressing one block of 64 `a`s (FIPS 180-4's functions,
        // computed independently of sha2 by the compression below).
        assert_eq!(words.concat(), reference_state_after_one_block(&[b'a'; 64]));
        assert_eq!(state.len(), 104);
    }

    /// SHA-256's compression of one block from the initial state (FIPS 180-4, 6.2.2), in
    /// the standard's names and constants.
    #[allow(clippy::many_single_char_names, clippy::unreadable_literal)]
    fn reference_state_after_one_block(block: &[u8; 64]) -> String {
        const K: [u32; 64] = [
            0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
            0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
            0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
            0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
            0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
            0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
            0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
            0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
            0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
            0xc67178f2,
        ];
        let h0: [u32; 8] = [
            0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
            0x5be0cd19,
        ];
        let mut w = [0u32; 64];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes(word.try_into().unwrap());
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = h0;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = h
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            (h, g, f, e, d, c, b, a) = (g, f, e, d.wrapping_add(t1), c, b, a, t1.wrapping_add(t2));
        }
        let words: Vec<u8> = [a, b, c, d, e, f, g, h]
            .iter()
            .zip(h0)
            .flat_map(|(x, y)| x.wrapping_add(y).to_be_bytes())
            .collect();
        hex(&words)
    }

    /// A state of another format, or one that cannot be read, is not taken up.
    #[test]
    fn a_state_of_another_format_or_unreadable_is_not_used() {
        let mut hasher = SourceHasher::default();
        hasher.update(&pattern(128));
        let saved = hasher.save();
        let other = SourceHashState {
            format: "sha2-0.12-sha256".to_owned(),
            ..saved.clone()
        };
        let short = SourceHashState {
            state: saved.state[..20].to_owned(),
            ..saved.clone()
        };
        let garbled = SourceHashState {
            state: "not base64!".to_owned(),
            ..saved.clone()
        };
        for state in [other, short, garbled] {
            assert!(SourceHasher::restore(&state).is_none(), "{state:?}");
        }
        assert!(SourceHasher::restore(&saved).is_some());
    }

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
