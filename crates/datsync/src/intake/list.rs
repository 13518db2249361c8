//! The listing seam: what a watched place holds now, as [`Found`] entries: a local
//! directory, or the blobs under an `az://container/prefix` (or the objects under an
//! `s3://bucket/prefix` or `gs://bucket/prefix`; all listed by
//! [`crate::source`], which also says what a version is).

use std::path::Path;

use super::{Found, IntakeError};
use crate::source::{Blob, BlobMeta, LocalFile, SourceError, is_blob_url};

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
    let files = crate::source::list_dir(dir, is_source_name).map_err(listing_error)?;
    Ok(files.iter().map(local_found).collect())
}

/// What a watched place holds now: `list_blobs` for an `az://`, `s3://` or `gs://` prefix,
/// else
/// [`list_local`].
pub async fn list(place: &str) -> Result<Vec<Found>, IntakeError> {
    if is_blob_url(place) {
        list_blobs(place).await
    } else {
        list_local(Path::new(place)).await
    }
}

/// The sources under `az://container/prefix` (or `s3://bucket/prefix`,
/// `gs://bucket/prefix`; every depth below the prefix), sorted by path, with the same name
/// rules as [`list_local`] applied to the last path segment. `version` is the blob's ETag: a
/// blob uploaded again is a new version.
pub async fn list_blobs(prefix_url: &str) -> Result<Vec<Found>, IntakeError> {
    let blobs = crate::source::list_from_env(prefix_url)
        .await
        .map_err(listing_error)?;
    Ok(blobs
        .into_iter()
        .filter(|(blob, _)| is_source_name(&blob.file_name()))
        .map(|(blob, meta)| blob_found(&blob, &meta))
        .collect())
}

/// The [`Found`] of one blob as it is now (the handler's blob trigger and manual re-runs);
/// [`IntakeError::Missing`] when it does not exist.
pub async fn found_blob(url: &str) -> Result<Found, IntakeError> {
    let blob = Blob::open(url).map_err(listing_error)?;
    match blob.head().await.map_err(listing_error)? {
        Some(meta) => Ok(blob_found(&blob, &meta)),
        None => Err(IntakeError::Missing {
            source_name: blob.url(),
        }),
    }
}

/// The version `source` has now (`None` when it is gone), to check that a run would read
/// the version its receipt names. An error reading it is `Err`: let the run report it.
pub(super) async fn current_version(found: &Found) -> Result<Option<String>, IntakeError> {
    if is_blob_url(&found.source) {
        return match found_blob(&found.source).await {
            Ok(now) => Ok(Some(now.version)),
            Err(IntakeError::Missing { .. }) => Ok(None),
            Err(e) => Err(e),
        };
    }
    let file = crate::source::local_file(Path::new(&found.source)).map_err(listing_error)?;
    Ok(file.map(|f| f.version()))
}

/// A source that cannot be listed (or looked at): the place and the cause.
fn listing_error(e: SourceError) -> IntakeError {
    IntakeError::List {
        place: e.path,
        error: e.error,
    }
}

fn local_found(file: &LocalFile) -> Found {
    Found {
        source: file.path.display().to_string(),
        name: file.name.clone(),
        version: file.version(),
        size: file.size,
    }
}

fn blob_found(blob: &Blob, meta: &BlobMeta) -> Found {
    Found {
        source: blob.url(),
        name: blob.file_name(),
        version: meta.version(),
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
