//! Finding the PostgreSQL server binaries (`initdb`, `postgres`) installed on the machine.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::PgTempError;

/// The server programs a throwaway cluster needs, from one installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    /// The directory holding them.
    pub bindir: PathBuf,
    /// `initdb`.
    pub initdb: PathBuf,
    /// `postgres` (the server).
    pub postgres: PathBuf,
}

/// Where to look for the binaries, in order: `pg_config --bindir`, then versioned
/// installation directories (newest version first), then fixed directories, then every
/// directory on `PATH`.
#[derive(Debug, Clone)]
pub struct SearchPaths {
    /// The `pg_config` program to ask for `--bindir` (a name looked up on `PATH`, or a
    /// path); `None` skips it.
    pub pg_config: Option<PathBuf>,
    /// Versioned installation roots as `(parent, prefix)`: every directory
    /// `<parent>/<prefix><version>/bin`, newest version first. Defaults cover Debian and
    /// Ubuntu (`/usr/lib/postgresql/15/bin`) and the PGDG RPMs (`/usr/pgsql-16/bin`).
    pub versioned: Vec<(PathBuf, String)>,
    /// Fixed directories tried after the versioned ones (default: `/usr/local/pgsql/bin`,
    /// where a build from source installs).
    pub fixed: Vec<PathBuf>,
    /// The `PATH` value to search last.
    pub path: Option<OsString>,
}

impl Default for SearchPaths {
    fn default() -> Self {
        Self {
            pg_config: Some("pg_config".into()),
            versioned: vec![
                ("/usr/lib/postgresql".into(), String::new()),
                ("/usr".into(), "pgsql-".to_owned()),
            ],
            fixed: vec!["/usr/local/pgsql/bin".into()],
            path: std::env::var_os("PATH"),
        }
    }
}

/// Finds `initdb` and `postgres` in one directory, searching as [`SearchPaths`] says.
pub fn find_binaries(search: &SearchPaths) -> Result<PgBinaries, PgTempError> {
    candidate_dirs(search)
        .into_iter()
        .find_map(|dir| binaries_in(&dir))
        .ok_or(PgTempError::NoServerBinaries)
}

/// Every directory to try, in order (duplicates are harmless).
fn candidate_dirs(search: &SearchPaths) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = search.pg_config.as_deref().and_then(pg_config_bindir) {
        dirs.push(dir);
    }
    for (parent, prefix) in &search.versioned {
        dirs.extend(versioned_bindirs(parent, prefix));
    }
    dirs.extend(search.fixed.iter().cloned());
    if let Some(path) = &search.path {
        dirs.extend(std::env::split_paths(path));
    }
    dirs
}

/// `pg_config --bindir`, when `pg_config` runs and answers.
fn pg_config_bindir(pg_config: &Path) -> Option<PathBuf> {
    let out = Command::new(pg_config).arg("--bindir").output().ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !dir.trim().is_empty()).then(|| PathBuf::from(dir.trim()))
}

/// `<parent>/<prefix><version>/bin` for every version found, newest first.
fn versioned_bindirs(parent: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut found: Vec<(Vec<u64>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let version = version_key(name.strip_prefix(prefix)?)?;
            Some((version, e.path().join("bin")))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, dir)| dir).collect()
}

/// `"9.6"` → `[9, 6]`; `None` for anything that is not a dotted number.
fn version_key(s: &str) -> Option<Vec<u64>> {
    s.split('.').map(|p| p.parse().ok()).collect()
}

/// Both programs, when `dir` holds them as executable files.
fn binaries_in(dir: &Path) -> Option<PgBinaries> {
    let initdb = dir.join("initdb");
    let postgres = dir.join("postgres");
    (is_executable(&initdb) && is_executable(&postgres)).then(|| PgBinaries {
        bindir: dir.to_path_buf(),
        initdb,
        postgres,
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn fake_install(root: &Path, version: &str) -> PathBuf {
        let bin = root.join(version).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for name in ["initdb", "postgres"] {
            let p = bin.join(name);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        bin
    }

    fn search(root: &Path, path: Option<OsString>) -> SearchPaths {
        SearchPaths {
            pg_config: None,
            versioned: vec![(root.to_path_buf(), String::new())],
            fixed: Vec::new(),
            path,
        }
    }

    #[test]
    fn newest_version_wins_and_incomplete_installs_are_skipped() {
        let root = tempfile::tempdir().unwrap();
        fake_install(root.path(), "9.6");
        fake_install(root.path(), "15");
        let newest = fake_install(root.path(), "16");
        std::fs::create_dir_all(root.path().join("17/bin")).unwrap(); // client only
        std::fs::create_dir_all(root.path().join("notes")).unwrap();
        let found = find_binaries(&search(root.path(), None)).unwrap();
        assert_eq!(found.bindir, newest);
        assert_eq!(found.postgres, newest.join("postgres"));
    }

    #[test]
    fn path_is_searched_last() {
        let root = tempfile::tempdir().unwrap();
        let on_path = fake_install(root.path(), "x");
        let empty = root.path().join("none");
        let found = find_binaries(&search(&empty, Some(on_path.clone().into()))).unwrap();
        assert_eq!(found.bindir, on_path);
    }

    #[test]
    fn nothing_installed_says_what_to_install() {
        let root = tempfile::tempdir().unwrap();
        let err = find_binaries(&search(root.path(), Some(OsString::new()))).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("apt-get install postgresql"), "{msg}");
        assert!(msg.contains("brew install postgresql"), "{msg}");
    }
}
