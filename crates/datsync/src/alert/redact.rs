//! Masking of secrets in free text before it leaves the process in an alert.

/// The mask written in place of a secret.
const MASK: &str = "***";

/// Keys whose `key=value` value is a secret (matched case-insensitively, as a whole word
/// or after `_`, so `DB_PASSWORD=…` is masked too).
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "sig",
    "accountkey",
    "sharedaccesskey",
    "access_key",
    "apikey",
    "api_key",
];

/// Returns `text` with secrets masked: the password of any `scheme://user:password@host`
/// URL and the value of any `password=…`, `sig=…`, `AccountKey=…` (and similar) pair.
pub fn redact_secrets(text: &str) -> String {
    mask_key_values(&mask_url_passwords(text))
}

/// `scheme://user:pass@host` → `scheme://user:***@host`.
fn mask_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '/' | '?' | '#' | '"' | '\''))
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) if authority[..at].contains(':') => {
                let colon = authority[..at].find(':').unwrap_or(at);
                out.push_str(&authority[..=colon]);
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// `password=hunter2` → `password=***` for every key in [`SECRET_KEYS`].
fn mask_key_values(text: &str) -> String {
    let lower = text.to_ascii_lowercase().into_bytes();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let key_len = SECRET_KEYS.iter().find_map(|k| {
            let starts_word = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
            let matches =
                lower[i..].starts_with(k.as_bytes()) && lower.get(i + k.len()) == Some(&b'=');
            (starts_word && matches).then_some(k.len())
        });
        let Some(key_len) = key_len else {
            i += 1;
            continue;
        };
        let value_start = i + key_len + 1;
        let value_len = text[value_start..]
            .find(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | ',' | '"' | '\''))
            .unwrap_or(text.len() - value_start);
        out.push_str(&text[copied..value_start]);
        out.push_str(MASK);
        copied = value_start + value_len;
        i = copied.max(i + 1);
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::redact_secrets;

    #[test]
    fn masks_url_passwords_and_secret_pairs() {
        let cases = [
            (
                "connect postgres://root:hunter2@db:5432/x failed",
                "connect postgres://root:***@db:5432/x failed",
            ),
            (
                "host=db user=u password=hunter2 dbname=x",
                "host=db user=u password=*** dbname=x",
            ),
            ("DB_PASSWORD=hunter2;x=1", "DB_PASSWORD=***;x=1"),
            (
                "DefaultEndpointsProtocol=https;AccountKey=abc==;EndpointSuffix=x",
                "DefaultEndpointsProtocol=https;AccountKey=***;EndpointSuffix=x",
            ),
            (
                "az://c/f.dat?sv=1&sig=XYZ%3D&se=2",
                "az://c/f.dat?sv=1&sig=***&se=2",
            ),
            (
                "smtp://user@host:25 and file:///tmp/a",
                "smtp://user@host:25 and file:///tmp/a",
            ),
            (
                "no secrets, signal=ok, tokens=3",
                "no secrets, signal=ok, tokens=3",
            ),
            ("PWD=é, ü", "PWD=***, ü"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_secrets(input), want, "{input}");
        }
    }
}
