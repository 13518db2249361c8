//! Connection strings shown without their password.

use std::fmt;

/// Displays a connection string with its password replaced by `***`, in URL form
/// (`postgresql://user:secret@host`) and key-value form (`password=secret`, quoted or not).
pub struct Redacted<'a>(pub &'a str);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(self.0))
    }
}

fn redact(conn: &str) -> String {
    let mut s = conn.to_owned();
    // URL userinfo: scheme://user:password@host
    if let Some(scheme_end) = s.find("://") {
        let rest = &s[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@')
            && let Some(colon) = rest[..at].find(':')
        {
            let start = scheme_end + 3 + colon + 1;
            let end = scheme_end + 3 + at;
            s.replace_range(start..end, "***");
        }
    }
    redact_key_values(&s)
}

/// Replaces the value of every `password=` key (URL query or key-value form).
fn redact_key_values(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while let Some(pos) = lower[i..].find("password") {
        let key_start = i + pos;
        let mut j = key_start + "password".len();
        let bytes = s.as_bytes();
        while j < s.len() && bytes[j] == b' ' {
            j += 1;
        }
        if j >= s.len() || bytes[j] != b'=' {
            out.push_str(&s[i..key_start + "password".len()]);
            i = key_start + "password".len();
            continue;
        }
        j += 1;
        while j < s.len() && bytes[j] == b' ' {
            j += 1;
        }
        out.push_str(&s[i..j]);
        out.push_str("***");
        i = value_end(bytes, j);
    }
    out.push_str(&s[i..]);
    out
}

/// End of a connection-string value starting at `j`: a quoted value ends after its closing
/// quote (backslash escapes honoured), else at whitespace or `&`.
fn value_end(bytes: &[u8], mut j: usize) -> usize {
    if bytes.get(j) == Some(&b'\'') {
        j += 1;
        while j < bytes.len() && bytes[j] != b'\'' {
            j += if bytes[j] == b'\\' { 2 } else { 1 };
        }
        return (j + 1).min(bytes.len());
    }
    while j < bytes.len() && !matches!(bytes[j], b' ' | b'&') {
        j += 1;
    }
    j
}
