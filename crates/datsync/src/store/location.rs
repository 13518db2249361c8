//! Where checkpoints live (a parsed location) and what objects are called inside it.

use std::fmt;
use std::path::PathBuf;

use object_store::path::Path;

use crate::model::{ChunkId, SyncId};

const MANIFEST_NAME: &str = "manifest.json";
const JOURNAL_DIR: &str = "journal";

/// A parsed checkpoint location. Every location string is parsed here and only here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A local directory (a plain path or a `file://` URL).
    Local(PathBuf),
    /// An in-memory store (`memory://`), for tests: it lives as long as the [`super::Store`].
    Memory,
    /// An Azure Blob Storage container and prefix (`az://container/prefix`).
    Azure {
        /// The container.
        container: String,
        /// The prefix inside the container (may be empty).
        prefix: String,
    },
    /// An S3 bucket and prefix (`s3://bucket/prefix`).
    S3 {
        /// The bucket.
        bucket: String,
        /// The prefix inside the bucket (may be empty).
        prefix: String,
    },
    /// A Google Cloud Storage bucket and prefix (`gs://bucket/prefix`).
    Gcs {
        /// The bucket.
        bucket: String,
        /// The prefix inside the bucket (may be empty).
        prefix: String,
    },
}

/// A location string that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    /// The location is empty.
    #[error(
        "empty checkpoint location: give a directory or a URL (file://, memory://, az://, s3://, \
         gs://)"
    )]
    Empty,
    /// A URL scheme this tool does not know.
    #[error(
        "checkpoint location `{location}` has an unknown scheme `{scheme}`: use a directory, \
         file://, memory://, az://, s3:// or gs://"
    )]
    UnknownScheme {
        /// The location as given.
        location: String,
        /// The scheme.
        scheme: String,
    },
    /// A URL without the container or bucket, or a `file://` URL without an absolute path.
    #[error("checkpoint location `{location}` is malformed: {problem}")]
    Malformed {
        /// The location as given.
        location: String,
        /// What is wrong.
        problem: &'static str,
    },
}

impl StoreLocation {
    /// Parses a directory path or a URL: `file:///abs/dir`, `memory://`,
    /// `az://container/prefix` (also `azure://`), `s3://bucket/prefix`, `gs://bucket/prefix`.
    pub fn parse(location: &str) -> Result<Self, LocationError> {
        let location = location.trim();
        if location.is_empty() {
            return Err(LocationError::Empty);
        }
        let Some((scheme, rest)) = location.split_once("://") else {
            return Ok(Self::Local(PathBuf::from(location)));
        };
        let malformed = |problem| LocationError::Malformed {
            location: location.to_owned(),
            problem,
        };
        match scheme.to_ascii_lowercase().as_str() {
            "memory" => Ok(Self::Memory),
            "file" => {
                if rest.starts_with('/') {
                    Ok(Self::Local(PathBuf::from(rest)))
                } else {
                    Err(malformed(
                        "a file:// URL needs an absolute path (file:///dir)",
                    ))
                }
            }
            "az" | "azure" => {
                let (container, prefix) = split_bucket(rest)
                    .ok_or_else(|| malformed("expected az://container/prefix"))?;
                Ok(Self::Azure { container, prefix })
            }
            "s3" => {
                let (bucket, prefix) =
                    split_bucket(rest).ok_or_else(|| malformed("expected s3://bucket/prefix"))?;
                Ok(Self::S3 { bucket, prefix })
            }
            "gs" => {
                let (bucket, prefix) =
                    split_bucket(rest).ok_or_else(|| malformed("expected gs://bucket/prefix"))?;
                Ok(Self::Gcs { bucket, prefix })
            }
            other => Err(LocationError::UnknownScheme {
                location: location.to_owned(),
                scheme: other.to_owned(),
            }),
        }
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(dir) => write!(f, "{}", dir.display()),
            Self::Memory => f.write_str("memory://"),
            Self::Azure { container, prefix } => url(f, "az", container, prefix),
            Self::S3 { bucket, prefix } => url(f, "s3", bucket, prefix),
            Self::Gcs { bucket, prefix } => url(f, "gs", bucket, prefix),
        }
    }
}

/// `scheme://container/prefix/`, ending in `/` so that an object's name can follow.
fn url(f: &mut fmt::Formatter<'_>, scheme: &str, container: &str, prefix: &str) -> fmt::Result {
    if prefix.is_empty() {
        write!(f, "{scheme}://{container}/")
    } else {
        write!(f, "{scheme}://{container}/{prefix}/")
    }
}

/// `container/a/b/` → (`container`, `a/b`).
fn split_bucket(rest: &str) -> Option<(String, String)> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return None;
    }
    Some((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

/// The name of one object of a checkpoint, relative to the store's base. Only this module
/// builds them, so the layout lives in one place:
///
/// ```text
/// <sync_id>/manifest.json
/// <sync_id>/chunk_0000.parquet      (four digits, more past 9999)
/// <sync_id>/journal/000000000001.json
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey(pub(super) Path);

/// What an object of a checkpoint directory is, judged by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// `manifest.json`.
    Manifest,
    /// A chunk's Parquet file.
    Chunk(ChunkId),
    /// A journal entry with its sequence number.
    Journal(u64),
    /// Anything else.
    Other,
}

impl ObjectKey {
    /// `<sync_id>/manifest.json`.
    pub fn manifest(sync: &SyncId) -> Self {
        Self(Path::from_iter([sync.as_str(), MANIFEST_NAME]))
    }

    /// `<sync_id>/chunk_NNNN.parquet`.
    pub fn chunk(sync: &SyncId, chunk: ChunkId) -> Self {
        Self(Path::from_iter([
            sync.as_str(),
            chunk_file_name(chunk).as_str(),
        ]))
    }

    /// `<sync_id>/journal/NNNNNNNNNNNN.json`.
    pub fn journal(sync: &SyncId, seq: u64) -> Self {
        Self(Path::from_iter([
            sync.as_str(),
            JOURNAL_DIR,
            format!("{seq:012}.json").as_str(),
        ]))
    }

    /// `rejects/<sync_id>/rejects_NNNN.parquet`: the rows of chunk `chunk` that validation
    /// rejected. Outside the sync's checkpoint directory, so that cleanup after a successful
    /// sync keeps them.
    pub fn rejects(sync: &SyncId, chunk: ChunkId) -> Self {
        Self(Path::from_iter([
            REJECTS_DIR,
            sync.as_str(),
            format!("rejects_{:04}.parquet", chunk.0).as_str(),
        ]))
    }

    /// `rejects/<sync_id>/warnings_NNNN.parquet`: the value warnings of chunk `chunk` (values
    /// loaded as NULL, as midnight, or rounded). Next to the chunk's rejects file.
    pub fn warnings(sync: &SyncId, chunk: ChunkId) -> Self {
        Self(Path::from_iter([
            REJECTS_DIR,
            sync.as_str(),
            format!("warnings_{:04}.parquet", chunk.0).as_str(),
        ]))
    }

    /// `rejects/<sync_id>`: the directory of a sync's rejects files.
    pub fn rejects_dir(sync: &SyncId) -> Self {
        Self(Path::from_iter([REJECTS_DIR, sync.as_str()]))
    }

    /// The key's path relative to the store's base, `/`-separated.
    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }

    /// The last part of the name (`manifest.json`, `chunk_0001.parquet`).
    pub fn file_name(&self) -> &str {
        self.0.filename().unwrap_or_default()
    }

    /// What the object is, judged by its name.
    pub fn kind(&self) -> ObjectKind {
        let parts: Vec<_> = self.0.parts().collect();
        let names: Vec<&str> = parts.iter().map(AsRef::as_ref).collect();
        match names.as_slice() {
            [_, MANIFEST_NAME] => ObjectKind::Manifest,
            [_, name] => parse_chunk_file_name(name).map_or(ObjectKind::Other, ObjectKind::Chunk),
            [_, JOURNAL_DIR, name] => name
                .strip_suffix(".json")
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse().ok())
                .map_or(ObjectKind::Other, ObjectKind::Journal),
            _ => ObjectKind::Other,
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The top-level directory of rejects files (never a sync id, so never taken for a checkpoint).
pub const REJECTS_DIR: &str = "rejects";

/// `chunk_0000.parquet`: four digits, more past 9999 (the seed's `chunk_{chunk_id:04d}`).
pub fn chunk_file_name(chunk: ChunkId) -> String {
    format!("chunk_{:04}.parquet", chunk.0)
}

/// The chunk id of a chunk file name, if it is one.
pub fn parse_chunk_file_name(name: &str) -> Option<ChunkId> {
    let digits = name.strip_prefix("chunk_")?.strip_suffix(".parquet")?;
    if digits.len() < 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id: u32 = digits.parse().ok()?;
    (chunk_file_name(ChunkId(id)) == name).then_some(ChunkId(id))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_of_location() {
        use StoreLocation as L;
        assert_eq!(
            L::parse("./checkpoints").unwrap(),
            L::Local("./checkpoints".into())
        );
        assert_eq!(
            L::parse("file:///tmp/x").unwrap(),
            L::Local("/tmp/x".into())
        );
        assert_eq!(L::parse("memory://").unwrap(), L::Memory);
        assert_eq!(
            L::parse("az://ckpt/a/b/").unwrap(),
            L::Azure {
                container: "ckpt".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            L::parse("s3://bucket").unwrap(),
            L::S3 {
                bucket: "bucket".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            L::parse("gs://bucket/ckpt/").unwrap(),
            L::Gcs {
                bucket: "bucket".into(),
                prefix: "ckpt".into()
            }
        );
        // Shown as URLs an object's name can follow, and parsed back to the same location.
        for (given, shown) in [
            ("s3://bucket", "s3://bucket/"),
            ("s3://bucket/ckpt", "s3://bucket/ckpt/"),
            ("gs://bucket/a/b/", "gs://bucket/a/b/"),
            ("az://c/p", "az://c/p/"),
        ] {
            let parsed = L::parse(given).unwrap();
            assert_eq!(parsed.to_string(), shown);
            assert_eq!(L::parse(shown).unwrap(), parsed);
        }
        assert!(matches!(L::parse(""), Err(LocationError::Empty)));
        assert!(matches!(
            L::parse("file://rel"),
            Err(LocationError::Malformed { .. })
        ));
        assert!(matches!(
            L::parse("az://"),
            Err(LocationError::Malformed { .. })
        ));
        assert!(matches!(
            L::parse("gs://"),
            Err(LocationError::Malformed { .. })
        ));
        assert!(matches!(
            L::parse("ftp://b/p"),
            Err(LocationError::UnknownScheme { .. })
        ));
    }

    #[test]
    fn names_objects_and_reads_names_back() {
        let sync = SyncId::parse("sync_20250129_143022_a3f4b2c1").unwrap();
        let m = ObjectKey::manifest(&sync);
        assert_eq!(m.as_str(), "sync_20250129_143022_a3f4b2c1/manifest.json");
        assert_eq!(m.kind(), ObjectKind::Manifest);
        let c = ObjectKey::chunk(&sync, ChunkId(7));
        assert_eq!(c.file_name(), "chunk_0007.parquet");
        assert_eq!(c.kind(), ObjectKind::Chunk(ChunkId(7)));
        let big = ObjectKey::chunk(&sync, ChunkId(12_345));
        assert_eq!(big.file_name(), "chunk_12345.parquet");
        assert_eq!(big.kind(), ObjectKind::Chunk(ChunkId(12_345)));
        let j = ObjectKey::journal(&sync, 42);
        assert_eq!(
            j.as_str(),
            "sync_20250129_143022_a3f4b2c1/journal/000000000042.json"
        );
        assert_eq!(j.kind(), ObjectKind::Journal(42));
        for bad in [
            "chunk_7.parquet",
            "chunk_00007.parquet",
            "chunk_abcd.parquet",
            "x.json",
        ] {
            assert_eq!(parse_chunk_file_name(bad), None, "{bad}");
        }
    }
}
