//! Parsing libpq connection strings, both forms, exactly as libpq's `conninfo_parse` and
//! `conninfo_uri_parse_options` do:
//!
//! - key-value: `host=db port=5432 password='it''s'` — blanks around `=`, values quoted with
//!   `'` (a backslash escapes the next character, quoted or not);
//! - URI: `postgresql://user:password@host1:5432,[::1]:5433/dbname?sslmode=require` (or
//!   `postgres://`), every part percent-decoded; several hosts become the lists `host=a,b`
//!   and `port=5432,5433`; the query takes any keyword, and `ssl=true` means
//!   `sslmode=require` (as libpq accepts for JDBC compatibility).
//!
//! A later value of the same keyword replaces an earlier one. Errors name the position and
//! the keyword but never a value (it may be a password).

use std::collections::BTreeMap;

use super::keywords::{Keyword, keyword};

/// Connection parameters by libpq keyword, as given (not yet defaulted).
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Params(BTreeMap<&'static str, String>);

impl Params {
    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Sets `name` (a known keyword) to `value`.
    pub fn set(&mut self, k: &'static Keyword, value: impl Into<String>) {
        self.0.insert(k.name, value.into());
    }

    /// Sets `name` unless it is set already.
    pub fn set_default(&mut self, k: &'static Keyword, value: &str) {
        self.0.entry(k.name).or_insert_with(|| value.to_owned());
    }

    /// Every parameter that is set, by keyword.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.0.iter().map(|(k, v)| (*k, v.as_str()))
    }
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = self.0.iter().map(|(k, v)| {
            let v = if matches!(*k, "password" | "sslpassword") {
                "***"
            } else {
                v.as_str()
            };
            (*k, v)
        });
        f.debug_map().entries(shown).finish()
    }
}

/// A malformed connection string. Never holds a value, only keywords and positions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnInfoError {
    /// A key-value word without `=` after it.
    #[error("missing \"=\" after the word at character {at}")]
    MissingEquals {
        /// 1-based character position of the word.
        at: usize,
    },
    /// A quoted value without its closing quote.
    #[error("unterminated quoted string starting at character {at}")]
    Unterminated {
        /// 1-based character position of the opening quote.
        at: usize,
    },
    /// A keyword libpq does not know.
    #[error("invalid connection option {shown}")]
    UnknownOption {
        /// The keyword, quoted, or its position when it does not look like a keyword.
        shown: String,
    },
    /// A malformed URI.
    #[error("invalid connection URI: {problem}")]
    Uri {
        /// What is wrong, with the position.
        problem: String,
    },
}

/// Whether `conn` is a URI (`postgresql://` or `postgres://`), as libpq decides.
pub(crate) fn is_uri(conn: &str) -> bool {
    conn.starts_with("postgresql://") || conn.starts_with("postgres://")
}

/// Parses a connection string of either form.
pub(crate) fn parse(conn: &str) -> Result<Params, ConnInfoError> {
    if is_uri(conn) {
        parse_uri(conn)
    } else {
        parse_key_values(conn)
    }
}

/// How an unknown keyword is shown: quoted when it looks like a keyword, else by position
/// (a stray word may be a password pasted in the wrong place).
fn shown_key(key: &str, at: usize) -> String {
    let plausible = !key.is_empty()
        && key.len() <= 40
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit());
    if plausible {
        format!("\"{key}\"")
    } else {
        format!("(the keyword at character {at})")
    }
}

fn store(params: &mut Params, key: &str, value: String, at: usize) -> Result<(), ConnInfoError> {
    let k = keyword(key).ok_or_else(|| ConnInfoError::UnknownOption {
        shown: shown_key(key, at),
    })?;
    params.set(k, value);
    Ok(())
}

/// The key-value form (`conninfo_parse`).
fn parse_key_values(conn: &str) -> Result<Params, ConnInfoError> {
    let chars: Vec<char> = conn.chars().collect();
    let mut params = Params::default();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let key_at = i + 1;
        let mut key = String::new();
        while i < chars.len() && chars[i] != '=' && !chars[i].is_ascii_whitespace() {
            key.push(chars[i]);
            i += 1;
        }
        while i < chars.len() && chars[i].is_ascii_whitespace() {
            i += 1;
        }
        if chars.get(i) != Some(&'=') {
            return Err(ConnInfoError::MissingEquals { at: key_at });
        }
        i += 1;
        while i < chars.len() && chars[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if chars.get(i) == Some(&'\'') {
            let quote_at = i + 1;
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(ConnInfoError::Unterminated { at: quote_at }),
                    Some('\\') => {
                        if let Some(&c) = chars.get(i + 1) {
                            value.push(c);
                            i += 2;
                        } else {
                            i += 1;
                        }
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < chars.len() && !chars[i].is_ascii_whitespace() {
                if chars[i] == '\\' {
                    if let Some(&c) = chars.get(i + 1) {
                        value.push(c);
                    }
                    i += 2;
                } else {
                    value.push(chars[i]);
                    i += 1;
                }
            }
        }
        store(&mut params, &key, value, key_at)?;
    }
    Ok(params)
}

fn uri_error(problem: impl Into<String>) -> ConnInfoError {
    ConnInfoError::Uri {
        problem: problem.into(),
    }
}

/// Percent-decodes one URI part; `%00` and malformed escapes are errors (as in libpq).
fn decode(part: &str, at: usize) -> Result<String, ConnInfoError> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
            let (Some(hi), Some(lo)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) else {
                return Err(uri_error(format!(
                    "invalid percent-encoded token at character {}",
                    at + i
                )));
            };
            let b = (hi * 16 + lo) as u8;
            if b == 0 {
                return Err(uri_error(format!(
                    "forbidden value %00 in percent-encoded value at character {}",
                    at + i
                )));
            }
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        uri_error(format!(
            "percent-encoded value at character {at} is not UTF-8"
        ))
    })
}

/// The URI form (`conninfo_uri_parse_options`).
fn parse_uri(uri: &str) -> Result<Params, ConnInfoError> {
    let prefix = if uri.starts_with("postgresql://") {
        "postgresql://".len()
    } else {
        "postgres://".len()
    };
    let mut params = Params::default();
    let b = uri.as_bytes();
    let mut p = parse_credentials(uri, prefix, &mut params)?;
    let (hosts, ports, end) = parse_hosts(uri, p)?;
    p = end;
    if !hosts.is_empty() {
        store(&mut params, "host", decode(&hosts, prefix + 1)?, prefix + 1)?;
    }
    if !ports.is_empty() {
        store(&mut params, "port", decode(&ports, prefix + 1)?, prefix + 1)?;
    }
    let mut terminator = b.get(p).copied();
    // /dbname
    if terminator == Some(b'/') {
        p += 1;
        let start = p;
        while p < b.len() && b[p] != b'?' {
            p += 1;
        }
        if p > start {
            let at = start + 1;
            store(&mut params, "dbname", decode(&uri[start..p], at)?, at)?;
        }
        terminator = b.get(p).copied();
    }
    // ?key=value&...
    if terminator.is_some() {
        p += 1;
        let mut at = p;
        let query = &uri[p.min(uri.len())..];
        let pairs: Vec<&str> = query.split('&').collect();
        for (i, pair) in pairs.iter().enumerate() {
            // libpq stops at the end of the string: an empty query, or one ending in `&`,
            // has no last parameter.
            if pair.is_empty() && i + 1 == pairs.len() {
                break;
            }
            parse_query_pair(&mut params, pair, at + 1)?;
            at += pair.len() + 1;
        }
    }
    Ok(params)
}

/// `user[:password]@`, looked for up to the first `/` (as libpq does); where the hosts
/// start.
fn parse_credentials(uri: &str, p: usize, params: &mut Params) -> Result<usize, ConnInfoError> {
    let b = uri.as_bytes();
    let mut look = p;
    while look < b.len() && b[look] != b'@' && b[look] != b'/' {
        look += 1;
    }
    if look >= b.len() || b[look] != b'@' {
        return Ok(p);
    }
    let creds = &uri[p..look];
    let (user, password) = match creds.find(':') {
        Some(c) => (&creds[..c], Some((&creds[c + 1..], p + c + 2))),
        None => (creds, None),
    };
    if !user.is_empty() {
        store(params, "user", decode(user, p + 1)?, p + 1)?;
    }
    if let Some((password, at)) = password
        && !password.is_empty()
    {
        store(params, "password", decode(password, at)?, at)?;
    }
    Ok(look + 1)
}

/// `host[:port][,host[:port]...]` from `p`: the comma lists libpq makes of them, and where
/// they end.
fn parse_hosts(uri: &str, mut p: usize) -> Result<(String, String, usize), ConnInfoError> {
    let b = uri.as_bytes();
    let mut hosts = String::new();
    let mut ports = String::new();
    loop {
        if b.get(p) == Some(&b'[') {
            let start = p + 1;
            let Some(close) = uri[start..].find(']').map(|i| start + i) else {
                return Err(uri_error(format!(
                    "no \"]\" closes the IPv6 host address opened at character {start}"
                )));
            };
            if close == start {
                return Err(uri_error(format!(
                    "empty IPv6 host address at character {start}"
                )));
            }
            hosts.push_str(&uri[start..close]);
            p = close + 1;
            if let Some(&c) = b.get(p)
                && !matches!(c, b':' | b'/' | b'?' | b',')
            {
                return Err(uri_error(format!(
                    "unexpected character at position {} (expected \":\" or \"/\")",
                    p + 1
                )));
            }
        } else {
            let start = p;
            while p < b.len() && !matches!(b[p], b':' | b'/' | b'?' | b',') {
                p += 1;
            }
            hosts.push_str(&uri[start..p]);
        }
        if b.get(p) == Some(&b':') {
            p += 1;
            let start = p;
            while p < b.len() && !matches!(b[p], b'/' | b'?' | b',') {
                p += 1;
            }
            ports.push_str(&uri[start..p]);
        }
        if b.get(p) != Some(&b',') {
            return Ok((hosts, ports, p));
        }
        p += 1;
        hosts.push(',');
        ports.push(',');
    }
}

fn parse_query_pair(params: &mut Params, pair: &str, at: usize) -> Result<(), ConnInfoError> {
    let Some(eq) = pair.find('=') else {
        return Err(uri_error(format!(
            "missing key/value separator \"=\" in the query parameter at character {at}"
        )));
    };
    if pair[eq + 1..].contains('=') {
        return Err(uri_error(format!(
            "extra key/value separator \"=\" in the query parameter at character {at}"
        )));
    }
    let key = decode(&pair[..eq], at)?;
    let value = decode(&pair[eq + 1..], at + eq + 1)?;
    if key == "ssl" && value == "true" {
        return store(params, "sslmode", "require".to_owned(), at);
    }
    if keyword(&key).is_none() {
        return Err(uri_error(format!(
            "invalid query parameter {}",
            shown_key(&key, at)
        )));
    }
    store(params, &key, value, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(conn: &str) -> Vec<(&'static str, String)> {
        parse(conn)
            .unwrap()
            .iter()
            .map(|(k, v)| (k, v.to_owned()))
            .collect()
    }

    fn pairs(p: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        let mut v: Vec<_> = p.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        v.sort();
        v
    }

    #[test]
    fn key_value_forms() {
        for (conn, expected) in [
            ("host=h port=5433", vec![("host", "h"), ("port", "5433")]),
            (
                "  host = h   port =5433 ",
                vec![("host", "h"), ("port", "5433")],
            ),
            ("password='a b'", vec![("password", "a b")]),
            ("password='it\\'s'", vec![("password", "it's")]),
            ("password=it\\'s", vec![("password", "it's")]),
            ("password=back\\\\slash", vec![("password", "back\\slash")]),
            ("password=''", vec![("password", "")]),
            ("host=a host=b", vec![("host", "b")]),
            ("host=a,b port=1,2", vec![("host", "a,b"), ("port", "1,2")]),
            ("dbname=postgresql://x", vec![("dbname", "postgresql://x")]),
            ("host=h\tuser=u", vec![("host", "h"), ("user", "u")]),
            ("", vec![]),
        ] {
            assert_eq!(kv(conn), pairs(&expected), "{conn}");
        }
    }

    #[test]
    fn key_value_errors_name_positions_not_values() {
        assert_eq!(
            parse("host=h s3cr3t"),
            Err(ConnInfoError::MissingEquals { at: 8 })
        );
        assert_eq!(parse("host='h"), Err(ConnInfoError::Unterminated { at: 6 }));
        let e = parse("hots=h").unwrap_err();
        assert_eq!(e.to_string(), "invalid connection option \"hots\"");
        let e = parse("Pass:W0rd!=x").unwrap_err().to_string();
        assert!(!e.contains("W0rd"), "{e}");
        assert!(parse("ssl=true").is_err(), "ssl= is a URI-only alias");
        assert!(parse("=x").is_err());
        // Not a URI prefix: read as key-value, as libpq does.
        assert_eq!(
            parse("postgre://"),
            Err(ConnInfoError::MissingEquals { at: 1 })
        );
    }

    #[test]
    fn uri_forms() {
        for (conn, expected) in [
            ("postgresql://", vec![]),
            ("postgres://h", vec![("host", "h")]),
            (
                "postgresql://u:p%40ss@h:5433/db?sslmode=require",
                vec![
                    ("user", "u"),
                    ("password", "p@ss"),
                    ("host", "h"),
                    ("port", "5433"),
                    ("dbname", "db"),
                    ("sslmode", "require"),
                ],
            ),
            (
                "postgresql://h1:5432,h2:5433/db",
                vec![("host", "h1,h2"), ("port", "5432,5433"), ("dbname", "db")],
            ),
            (
                "postgresql://h1,h2:6432",
                vec![("host", "h1,h2"), ("port", ",6432")],
            ),
            (
                "postgresql://[::1]:5433,[fe80::1]/d",
                vec![("host", "::1,fe80::1"), ("port", "5433,"), ("dbname", "d")],
            ),
            (
                "postgresql://%2Fvar%2Frun%2Fpostgresql/db",
                vec![("host", "/var/run/postgresql"), ("dbname", "db")],
            ),
            (
                "postgresql:///db?host=/tmp&port=5433",
                vec![("dbname", "db"), ("host", "/tmp"), ("port", "5433")],
            ),
            ("postgresql://u@/", vec![("user", "u")]),
            ("postgresql://h/d?", vec![("host", "h"), ("dbname", "d")]),
            ("postgres://@host", vec![("host", "host")]),
            ("postgres://host:/", vec![("host", "host")]),
            ("postgres://:12345/", vec![("port", "12345")]),
            ("postgres:///", vec![]),
            ("postgresql://%68ost/", vec![("host", "host")]),
            (
                "postgres://otheruser@?host=/no/such/directory",
                vec![("user", "otheruser"), ("host", "/no/such/directory")],
            ),
            (
                "postgres://:12345/db?host=/path/to/socket",
                vec![
                    ("port", "12345"),
                    ("dbname", "db"),
                    ("host", "/path/to/socket"),
                ],
            ),
            (
                "postgresql://example.com?hostaddr=63.1.2.4",
                vec![("host", "example.com"), ("hostaddr", "63.1.2.4")],
            ),
            (
                "postgresql://host/db?u%73er=someone",
                vec![("host", "host"), ("dbname", "db"), ("user", "someone")],
            ),
            (
                "postgresql://h/d?sslmode=require&",
                vec![("host", "h"), ("dbname", "d"), ("sslmode", "require")],
            ),
            (
                "postgresql://:pw@h",
                vec![("password", "pw"), ("host", "h")],
            ),
            (
                "postgresql://h/db?ssl=true",
                vec![("host", "h"), ("dbname", "db"), ("sslmode", "require")],
            ),
            (
                "postgresql://h?application_name=a%20b&target_session_attrs=read-write",
                vec![
                    ("host", "h"),
                    ("application_name", "a b"),
                    ("target_session_attrs", "read-write"),
                ],
            ),
            (
                "postgresql://us%3Aer:pa:ss@h",
                vec![("user", "us:er"), ("password", "pa:ss"), ("host", "h")],
            ),
        ] {
            assert_eq!(kv(conn), pairs(&expected), "{conn}");
        }
    }

    #[test]
    fn uri_errors() {
        for (conn, needle) in [
            ("postgresql://[::1", "no \"]\""),
            ("postgresql://[]/d", "empty IPv6"),
            ("postgresql://[::1]x/d", "unexpected character"),
            ("postgresql://h/d?sslmode", "missing key/value separator"),
            ("postgresql://h/d?a=b=c", "extra key/value separator"),
            (
                "postgresql://h/d?sslmode=require&&x=1",
                "missing key/value separator",
            ),
            (
                "postgresql://h/d?bogus=1",
                "invalid query parameter \"bogus\"",
            ),
            ("postgresql://h/d%zz", "invalid percent-encoded"),
            ("postgresql://h/d%00", "forbidden value %00"),
            ("postgresql://%1", "invalid percent-encoded"),
            ("postgresql://%", "invalid percent-encoded"),
            (
                "postgresql://host?value1&value2",
                "missing key/value separator",
            ),
            (
                "postgresql://host/db?u%7aer=x",
                "invalid query parameter \"uzer\"",
            ),
        ] {
            let e = parse(conn).unwrap_err().to_string();
            assert!(e.contains(needle), "{conn}: {e}");
        }
        let e = parse("postgresql://u:s3cr%zz@h").unwrap_err().to_string();
        assert!(!e.contains("s3cr"), "{e}");
    }

    proptest::proptest! {
        /// No input makes the parser panic, and an error never holds a password given in
        /// the URI.
        #[test]
        fn any_input_parses_or_fails_cleanly(
            prefix in proptest::sample::select(vec!["", "postgresql://", "postgres://", "host="]),
            body in "[ -~\u{80}-\u{10ffff}]{0,60}",
        ) {
            let conn = format!("{prefix}{body}");
            let _ = parse(&conn);
            let with_secret = format!("postgresql://u:Zq9s3cr3t@{body}");
            if let Err(e) = parse(&with_secret) {
                proptest::prop_assert!(!e.to_string().contains("Zq9s3cr3t"));
            }
        }
    }
}
