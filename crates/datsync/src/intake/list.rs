//! The listing seam: what a watched place holds now, as [`Found`] entries: a local
//! directory, or the blobs under an `az://container/prefix`.

use std::path::Path;
use std::time::UNIX_EPOCH;

use super::{Found, IntakeError};

/// Name suffixes of sources (compared without regard to case).
pub const SOURCE_SUFFIXES: &[&str] = &[".dat", ".dat.gz"];

/// Name suffixes of files still being written by the usual copy tools; never listed.
pub const TEMP_SUFFIXES: &[&str] = &[".tmp", ".partial"];

/// The sources in `dir` (not its subdirectories), sorted by name: regular files (or links
/// to them) whose name ends in `.dat` or `.dat.gz` in any case, except hidden ones (a
/// leading `.`) and temporary ones (`.tmp`, `.partial`; writers should write under such a
/// name and rename when done, as a file still growing would be seen part way).
///
/// `source` is the file's absolute path (as the pipeline records it), `version` its size and
/// modification time in nanoseconds since the epoch (`<size>-<mtime_ns>`): a file rewritten
/// or touched is a new version. A file that disappears while being listed is left out.
pub async fn list_local(dir: &Path) -> Result<Vec<Found>, IntakeError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || list_dir(&dir))
        .await
        .map_err(|e| IntakeError::Internal(format!("the directory listing task died: {e}")))?
}

fn list_dir(dir: &Path) -> Result<Vec<Found>, IntakeError> {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let error = |error| IntakeError::List {
        place: absolute.display().to_string(),
        error,
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&absolute).map_err(error)? {
        let entry = entry.map_err(error)?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            tracing::warn!(dir = %absolute.display(), name = ?entry.file_name(), "skipping a file whose name is not UTF-8");
            continue;
        };
        if !is_source_name(&name) {
            continue;
        }
        let path = absolute.join(&name);
        // Follows a symbolic link: a link to a file is a source.
        let meta = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(error(e)),
        };
        found.push(Found {
            source: path.display().to_string(),
            name,
            version: local_version(meta.len(), meta.modified().ok()),
            size: meta.len(),
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// What a watched place holds now: [`list_blobs`] for an `az://` prefix, else
/// [`list_local`].
pub async fn list(place: &str) -> Result<Vec<Found>, IntakeError> {
    if crate::store::blob::is_blob_url(place) {
        list_blobs(place).await
    } else {
        list_local(Path::new(place)).await
    }
}

/// The sources under `az://container/prefix` (every depth below the prefix), sorted by
/// path, with the same name rules as [`list_local`] applied to the last path segment.
/// `version` is the blob's ETag: a blob uploaded again is a new version.
pub async fn list_blobs(prefix_url: &str) -> Result<Vec<Found>, IntakeError> {
    let error = |e| store_error(prefix_url, &e);
    let account = crate::store::env_account(prefix_url).map_err(error)?;
    let blobs = crate::store::blob::list_blobs(prefix_url, &account)
        .await
        .map_err(error)?;
    Ok(blobs
        .into_iter()
        .filter(|(blob, _)| is_source_name(&blob.file_name()))
        .map(|(blob, meta)| blob_found(&blob, &meta))
        .collect())
}

/// The [`Found`] of one blob as it is now (the handler's blob trigger and manual re-runs);
/// [`IntakeError::Missing`] when it does not exist.
pub async fn found_blob(url: &str) -> Result<Found, IntakeError> {
    let error = |e| store_error(url, &e);
    let blob = crate::store::blob::Blob::open(url).map_err(error)?;
    match blob.head().await.map_err(error)? {
        Some(meta) => Ok(blob_found(&blob, &meta)),
        None => Err(IntakeError::Missing {
            source_name: blob.url(),
        }),
    }
}

/// The version `source` has now (`None` when it is gone), to check that a run would read
/// the version its receipt names. An error reading it is `Err`: let the run report it.
pub(super) async fn current_version(found: &Found) -> Result<Option<String>, IntakeError> {
    if crate::store::blob::is_blob_url(&found.source) {
        return match found_blob(&found.source).await {
            Ok(now) => Ok(Some(now.version)),
            Err(IntakeError::Missing { .. }) => Ok(None),
            Err(e) => Err(e),
        };
    }
    match std::fs::metadata(&found.source) {
        Ok(m) => Ok(Some(local_version(m.len(), m.modified().ok()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(IntakeError::List {
            place: found.source.clone(),
            error,
        }),
    }
}

fn store_error(place: &str, e: &crate::store::StoreError) -> IntakeError {
    IntakeError::List {
        place: place.to_owned(),
        error: std::io::Error::other(e.to_string()),
    }
}

fn blob_found(blob: &crate::store::blob::Blob, meta: &crate::store::blob::BlobMeta) -> Found {
    Found {
        source: blob.url(),
        name: blob.file_name(),
        // Azure always sends an ETag; without one, size and time stand in.
        version: meta.etag.clone().unwrap_or_else(|| {
            format!(
                "{}-{}",
                meta.size,
                meta.last_modified.timestamp_nanos_opt().unwrap_or(0)
            )
        }),
        size: meta.size,
    }
}

/// Whether a file name is one of a source's, and not hidden or temporary.
pub fn is_source_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.starts_with('.')
        && !TEMP_SUFFIXES.iter().any(|s| lower.ends_with(s))
        && SOURCE_SUFFIXES.iter().any(|s| lower.ends_with(s))
}

/// `<size>-<mtime in nanoseconds since the epoch>` (negative before it; `0` when the file
/// system keeps no modification time).
pub(super) fn local_version(size: u64, modified: Option<std::time::SystemTime>) -> String {
    let nanos: i128 = match modified {
        Some(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
            Err(e) => -i128::try_from(e.duration().as_nanos()).unwrap_or(i128::MAX),
        },
        None => 0,
    };
    format!("{size}-{nanos}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names() {
        for ok in ["a.dat", "B.DAT", "x.Dat.Gz", "ztdwr_20250129.dat.gz"] {
            assert!(is_source_name(ok), "{ok}");
        }
        for no in [
            ".a.dat",
            "a.dat.tmp",
            "a.dat.gz.partial",
            "a.DAT.TMP",
            "a.txt",
            "a.dat.zip",
            "a.gz",
            "dat",
        ] {
            assert!(!is_source_name(no), "{no}");
        }
    }

    #[test]
    fn versions_hold_size_and_nanoseconds() {
        let t = UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(local_version(42, Some(t)), "42-1700000000123456789");
        assert_eq!(local_version(7, None), "7-0");
        let before = UNIX_EPOCH - std::time::Duration::from_nanos(5);
        assert_eq!(local_version(1, Some(before)), "1--5");
    }

    #[tokio::test]
    async fn lists_sources_sorted_and_skips_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "b.dat",
            "A.DAT.GZ",
            "c.dat.gz",
            ".hidden.dat",
            "d.dat.tmp",
            "e.dat.partial",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.dat")).unwrap();
        std::fs::write(dir.path().join("sub.dat").join("inner.dat"), "x").unwrap();
        let found = list_local(dir.path()).await.unwrap();
        let names: Vec<&str> = found.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["A.DAT.GZ", "b.dat", "c.dat.gz"]);
        let b = &found[1];
        assert_eq!(b.size, 5);
        assert_eq!(
            Path::new(&b.source),
            std::path::absolute(dir.path()).unwrap().join("b.dat")
        );
        assert!(b.version.starts_with("5-"), "{}", b.version);
        let err = list_local(&dir.path().join("missing")).await.unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
