//! libpq's files: the connection service file (`pg_service.conf`) and the password file
//! (`~/.pgpass`), read as libpq 17 reads them.
//!
//! **Service file.** A service named by `service=` (or `PGSERVICE`) is looked up in
//! `PGSERVICEFILE`, else `~/.pg_service.conf`; when that file lacks it, in
//! `PGSYSCONFDIR/pg_service.conf` (default [`DEFAULT_SYSCONFDIR`]). Its lines (`[name]`,
//! then `keyword=value`; `#` comments; blanks trimmed at both ends of the line only) fill in
//! the parameters the connection string left unset. A service found in neither file is an
//! error, as are unknown keywords and nested `service=` lines.
//!
//! **Password file.** `passfile=` (or `PGPASSFILE`), else `~/.pgpass`; used only when no
//! password is given. Lines `host:port:database:user:password` (`*` matches anything, `\`
//! escapes `:` and `\`, `#` starts a comment); the first matching line wins. The host is
//! the `host` of the server tried (its `hostaddr` when no host is given; `localhost` for the
//! default socket directory). A file that is not a plain file, or that the group or others
//! may read, is ignored with a warning, as libpq does.

use std::path::{Path, PathBuf};

use super::conninfo::Params;
use super::keywords::keyword;

/// Where libpq looks for `pg_service.conf` when `PGSYSCONFDIR` is unset (Debian and Ubuntu's
/// libpq; other builds use their own `--sysconfdir`, which `PGSYSCONFDIR` overrides).
pub const DEFAULT_SYSCONFDIR: &str = "/etc/postgresql-common";

/// A service file that cannot be used, or a service that is not defined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The service is in no service file.
    #[error("definition of service \"{service}\" not found (looked in {looked})")]
    NotFound {
        /// The service.
        service: String,
        /// The files looked in.
        looked: String,
    },
    /// A line of the service's section is not `keyword=value` with a known keyword.
    #[error("syntax error in service file \"{}\", line {line}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// A `service=` line inside a service.
    #[error("nested service specifications not supported in service file \"{}\", line {line}", path.display())]
    Nested {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// The file exists but cannot be read.
    #[error("cannot read service file \"{}\": {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Fills `params` from the service `service` (parameters already set win), reading the
/// files in libpq's order. `home` is the home directory, `var` reads the environment.
pub(crate) fn apply_service(
    params: &mut Params,
    service: &str,
    home: Option<&Path>,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ServiceError> {
    let user_file = match var("PGSERVICEFILE") {
        Some(f) => Some(PathBuf::from(f)),
        None => home.map(|h| h.join(".pg_service.conf")),
    };
    let sysconfdir = var("PGSYSCONFDIR").unwrap_or_else(|| DEFAULT_SYSCONFDIR.to_owned());
    let system_file = Path::new(&sysconfdir).join("pg_service.conf");
    let mut looked = Vec::new();
    for file in user_file.into_iter().chain([system_file]) {
        looked.push(format!("\"{}\"", file.display()));
        if !file.exists() {
            continue;
        }
        let text = std::fs::read(&file).map_err(|e| ServiceError::Read {
            path: file.clone(),
            reason: e.to_string(),
        })?;
        if apply_service_text(params, service, &String::from_utf8_lossy(&text), &file)? {
            return Ok(());
        }
    }
    Err(ServiceError::NotFound {
        service: service.to_owned(),
        looked: looked.join(" and "),
    })
}

/// Applies the section `[service]` of one file's `text`; whether the section was found.
fn apply_service_text(
    params: &mut Params,
    service: &str,
    text: &str,
    path: &Path,
) -> Result<bool, ServiceError> {
    let mut in_group = false;
    let mut found = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_matches(|c: char| c.is_ascii_whitespace());
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            if in_group {
                break;
            }
            in_group = rest.starts_with(service) && rest[service.len()..].starts_with(']');
            found |= in_group;
            continue;
        }
        if !in_group {
            continue;
        }
        let at = || (path.to_path_buf(), n + 1);
        let Some((key, value)) = line.split_once('=') else {
            let (path, line) = at();
            return Err(ServiceError::Syntax { path, line });
        };
        if key == "service" {
            let (path, line) = at();
            return Err(ServiceError::Nested { path, line });
        }
        let Some(k) = keyword(key) else {
            let (path, line) = at();
            return Err(ServiceError::Syntax { path, line });
        };
        params.set_default(k, value);
    }
    Ok(found)
}

/// A password file that is ignored, and why (libpq prints the same as a warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PassfileWarning {
    /// Not a regular file.
    NotPlain(PathBuf),
    /// Readable or writable by the group or others.
    Insecure(PathBuf),
}

impl std::fmt::Display for PassfileWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotPlain(p) => write!(f, "password file \"{}\" is not a plain file", p.display()),
            Self::Insecure(p) => write!(
                f,
                "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
                p.display()
            ),
        }
    }
}

/// What to match in the password file.
pub(crate) struct PassKey<'a> {
    /// The host (or socket directory, or hostaddr) tried.
    pub host: &'a str,
    /// Its port, as text.
    pub port: &'a str,
    /// The database.
    pub dbname: &'a str,
    /// The user.
    pub user: &'a str,
}

/// The password for `key` from the file at `path`: `Ok(None)` when the file is missing or
/// has no matching line; `Err` when the file is ignored (the warning to show).
pub(crate) fn password_from_file(
    path: &Path,
    key: &PassKey<'_>,
) -> Result<Option<String>, PassfileWarning> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(None);
    };
    if !meta.is_file() {
        return Err(PassfileWarning::NotPlain(path.to_path_buf()));
    }
    if group_or_world_access(&meta) {
        return Err(PassfileWarning::Insecure(path.to_path_buf()));
    }
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(None);
    };
    Ok(password_from_text(&String::from_utf8_lossy(&bytes), key))
}

#[cfg(unix)]
fn group_or_world_access(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    meta.permissions().mode() & 0o077 != 0
}

#[cfg(not(unix))]
fn group_or_world_access(_: &std::fs::Metadata) -> bool {
    false
}

/// The first line of a password file's `text` that matches `key`, de-escaped.
pub(crate) fn password_from_text(text: &str, key: &PassKey<'_>) -> Option<String> {
    let host = key.host;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let rest = Some(line)
            .and_then(|t| field_matches(t, host))
            .and_then(|t| field_matches(t, key.port))
            .and_then(|t| field_matches(t, key.dbname))
            .and_then(|t| field_matches(t, key.user));
        if let Some(rest) = rest {
            return Some(unescape_password(rest));
        }
    }
    None
}

/// libpq's `pwdfMatchesString`: whether the first field of `buf` matches `token`, and the
/// rest of the line after its `:`.
fn field_matches<'a>(buf: &'a str, token: &str) -> Option<&'a str> {
    if buf.is_empty() {
        return None;
    }
    if let Some(rest) = buf.strip_prefix("*:") {
        return Some(rest);
    }
    let b = buf.as_bytes();
    let t = token.as_bytes();
    let (mut i, mut j) = (0, 0);
    while i < b.len() {
        let mut escaped = false;
        if b[i] == b'\\' {
            i += 1;
            escaped = true;
            if i >= b.len() {
                return None;
            }
        }
        if b[i] == b':' && j == t.len() && !escaped {
            return Some(&buf[i + 1..]);
        }
        if j == t.len() || b[i] != t[j] {
            return None;
        }
        i += 1;
        j += 1;
    }
    None
}

/// The password field: up to the first unescaped `:`, backslashes removed.
fn unescape_password(rest: &str) -> String {
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ':' => break,
            '\\' => match chars.next() {
                Some(n) => out.push(n),
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(host: &'a str, port: &'a str, db: &'a str, user: &'a str) -> PassKey<'a> {
        PassKey {
            host,
            port,
            dbname: db,
            user,
        }
    }

    #[test]
    fn password_lines_match_as_libpq_does() {
        let text = "# comment\n\
                    other:5432:db:u:nope\n\
                    db.example.com:5432:*:alice:a\\:b\\\\c:ignored\r\n\
                    *:6432:*:*:pooler\n\
                    *:*:*:*:any\n";
        let cases = [
            (key("db.example.com", "5432", "x", "alice"), Some("a:b\\c")),
            (key("db.example.com", "5432", "x", "bob"), Some("any")),
            (key("h", "6432", "d", "u"), Some("pooler")),
            (key("other", "5432", "db", "u"), Some("nope")),
            (key("other", "5432", "db2", "u"), Some("any")),
        ];
        for (k, expected) in cases {
            assert_eq!(
                password_from_text(text, &k).as_deref(),
                expected,
                "{}",
                k.user
            );
        }
        assert_eq!(
            password_from_text("h:5432:d:u:pw", &key("h", "5432", "d", "uu")),
            None
        );
        assert_eq!(
            password_from_text("h:5432:d:u:pw", &key("h", "5432", "d", "")),
            None
        );
        assert_eq!(
            password_from_text("h\\:x:5432:d:u:pw", &key("h:x", "5432", "d", "u")).as_deref(),
            Some("pw")
        );
        assert_eq!(
            password_from_text("h:5432:d:u:", &key("h", "5432", "d", "u")).as_deref(),
            Some("")
        );
        assert_eq!(
            password_from_text("h:5432:d:u", &key("h", "5432", "d", "u")),
            None
        );
    }

    #[test]
    fn insecure_or_odd_password_files_are_ignored() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pgpass");
        std::fs::write(&f, "*:*:*:*:pw\n").unwrap();
        let k = key("h", "5432", "d", "u");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let w = password_from_file(&f, &k).unwrap_err();
        assert!(w.to_string().contains("group or world access"), "{w}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(password_from_file(&f, &k).unwrap().as_deref(), Some("pw"));
        assert!(matches!(
            password_from_file(dir.path(), &k),
            Err(PassfileWarning::NotPlain(_))
        ));
        assert_eq!(password_from_file(&dir.path().join("none"), &k), Ok(None));
    }

    fn service(text: &str, name: &str, params: &mut Params) -> Result<bool, ServiceError> {
        apply_service_text(params, name, text, Path::new("/s.conf"))
    }

    #[test]
    fn service_sections_fill_only_unset_parameters() {
        let text = "# c\n[other]\nhost=o\n\n  [prod]  \nhost=db.example.com\nport=6432\n sslmode=verify-full \n[prod2]\nhost=x\n";
        let mut p = Params::default();
        p.set(keyword("port").unwrap(), "7000");
        assert!(service(text, "prod", &mut p).unwrap());
        assert_eq!(p.get("host"), Some("db.example.com"));
        assert_eq!(p.get("port"), Some("7000"));
        assert_eq!(p.get("sslmode"), Some("verify-full"));
        let mut q = Params::default();
        assert!(!service(text, "pro", &mut q).unwrap());
        assert!(!service(text, "missing", &mut q).unwrap());
        assert_eq!(q, Params::default());
    }

    #[test]
    fn service_errors_name_file_and_line() {
        let mut p = Params::default();
        assert_eq!(
            service("[s]\nhost = h\n", "s", &mut p),
            Err(ServiceError::Syntax {
                path: "/s.conf".into(),
                line: 2
            })
        );
        assert_eq!(
            service("[s]\nbogus=1\n", "s", &mut p),
            Err(ServiceError::Syntax {
                path: "/s.conf".into(),
                line: 2
            })
        );
        assert_eq!(
            service("[s]\n\nservice=t\n", "s", &mut p),
            Err(ServiceError::Nested {
                path: "/s.conf".into(),
                line: 3
            })
        );
        assert!(service("[t]\nbogus\n[s]\nhost=h\n", "s", &mut p).unwrap());
    }

    #[test]
    fn service_files_are_searched_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user.conf");
        let sys = dir.path().join("sys");
        std::fs::create_dir(&sys).unwrap();
        std::fs::write(&user, "[a]\nhost=from-user\n").unwrap();
        std::fs::write(
            sys.join("pg_service.conf"),
            "[a]\nhost=from-sys\n[b]\nhost=b-sys\n",
        )
        .unwrap();
        let vars = |k: &str| match k {
            "PGSERVICEFILE" => Some(user.display().to_string()),
            "PGSYSCONFDIR" => Some(sys.display().to_string()),
            _ => None,
        };
        let mut p = Params::default();
        apply_service(&mut p, "a", None, &vars).unwrap();
        assert_eq!(p.get("host"), Some("from-user"));
        let mut p = Params::default();
        apply_service(&mut p, "b", None, &vars).unwrap();
        assert_eq!(p.get("host"), Some("b-sys"));
        let e = apply_service(&mut Params::default(), "c", None, &vars).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("definition of service \"c\" not found"),
            "{e}"
        );
        // ~/.pg_service.conf when PGSERVICEFILE is unset.
        std::fs::write(dir.path().join(".pg_service.conf"), "[c]\nhost=home\n").unwrap();
        let vars = |k: &str| (k == "PGSYSCONFDIR").then(|| sys.display().to_string());
        let mut p = Params::default();
        apply_service(&mut p, "c", Some(dir.path()), &vars).unwrap();
        assert_eq!(p.get("host"), Some("home"));
    }
}
