//! Local source files: opening one for streaming, listing a directory, and what identifies a
//! version of a file (its size and modification time).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{HashingReader, SourceError};
use crate::model::SourceFingerprint;

/// A local source file, opened for streaming.
pub struct LocalSource {
    path: PathBuf,
    file: File,
    size_bytes: u64,
    modified: Option<String>,
    identity: FileIdentity,
}

/// Which file a path named, and what it held, when it was looked at: device and inode (a
/// file replaced by a rename is another inode), size and modification time (a file
/// rewritten in place changes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl FileIdentity {
    /// The identity in `meta`.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }

    /// How `now` differs from `self`, for a person; `None` when it does not.
    pub fn change(&self, now: &Self) -> Option<String> {
        let mut changes = Vec::new();
        if (self.dev, self.ino) != (now.dev, now.ino) {
            changes.push("it was replaced by another file (another inode)".to_owned());
        }
        if self.size != now.size {
            changes.push(format!(
                "its size went from {} to {} bytes",
                self.size, now.size
            ));
        }
        if self.mtime_ns != now.mtime_ns {
            changes.push("its modification time changed".to_owned());
        }
        (!changes.is_empty()).then(|| changes.join(", "))
    }
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
            identity: FileIdentity::of(&meta),
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

    /// Which file was opened, and what it held then.
    pub fn identity(&self) -> FileIdentity {
        self.identity
    }

    /// A reader over the bytes that hashes them as they pass.
    pub fn reader(self) -> HashingReader<File> {
        HashingReader::new(self.file)
    }

    /// The open file.
    pub(super) fn into_file(self) -> File {
        self.file
    }
}

/// A file found by [`list_dir`] or [`local_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// Its absolute path.
    pub path: PathBuf,
    /// Its name in the directory.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its last modification, when the file system keeps one.
    pub modified: Option<SystemTime>,
}

impl LocalFile {
    /// What identifies these bytes: `<size>-<mtime in nanoseconds since the epoch>`
    /// (negative before it; `0` when the file system keeps no modification time). A file
    /// rewritten or touched is a new version.
    pub fn version(&self) -> String {
        let nanos: i128 = match self.modified {
            Some(t) => match t.duration_since(UNIX_EPOCH) {
                Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
                Err(e) => -i128::try_from(e.duration().as_nanos()).unwrap_or(i128::MAX),
            },
            None => 0,
        };
        format!("{}-{nanos}", self.size)
    }
}

/// The regular files of `dir` (not its subdirectories; a link to a file counts) whose name
/// `wanted` accepts, sorted by name. A file that disappears while being listed is left out;
/// a name that is not UTF-8 is skipped with a warning.
pub fn list_dir(dir: &Path, wanted: impl Fn(&str) -> bool) -> Result<Vec<LocalFile>, SourceError> {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let error = |error| SourceError {
        path: absolute.display().to_string(),
        error,
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&absolute).map_err(error)? {
        let entry = entry.map_err(error)?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            tracing::warn!(dir = %absolute.display(), name = ?entry.file_name(), "skipping a file whose name is not UTF-8");
            continue;
        };
        if !wanted(&name) {
            continue;
        }
        let path = absolute.join(&name);
        match stat(&path, name) {
            Ok(Some(file)) => found.push(file),
            Ok(None) => {}
            Err(e) => return Err(error(e)),
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The file at `path` as it is now; `None` when it is gone (or is not a regular file).
pub fn local_file(path: &Path) -> Result<Option<LocalFile>, SourceError> {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    stat(path, name).map_err(|error| SourceError {
        path: path.display().to_string(),
        error,
    })
}

/// Follows a symbolic link: a link to a file is a file.
fn stat(path: &Path, name: String) -> io::Result<Option<LocalFile>> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(Some(LocalFile {
            path: path.to_path_buf(),
            name,
            size: m.len(),
            modified: m.modified().ok(),
        })),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64, modified: Option<SystemTime>) -> LocalFile {
        LocalFile {
            path: PathBuf::from("/in/a.dat"),
            name: "a.dat".into(),
            size,
            modified,
        }
    }

    #[test]
    fn versions_hold_size_and_nanoseconds() {
        let t = UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(file(42, Some(t)).version(), "42-1700000000123456789");
        assert_eq!(file(7, None).version(), "7-0");
        let before = UNIX_EPOCH - std::time::Duration::from_nanos(5);
        assert_eq!(file(1, Some(before)).version(), "1--5");
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = LocalSource::open(Path::new("/nonexistent/x.dat"))
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("/nonexistent/x.dat: "), "{e}");
        assert_eq!(local_file(Path::new("/nonexistent/x.dat")).unwrap(), None);
    }
}
