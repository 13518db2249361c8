//! Posting an alert as JSON to a webhook.
//!
//! A deliberately small HTTP/1.1 client over `tokio::net::TcpStream`: one `POST` with
//! `Content-Length`, `Connection: close`, success on any 2xx status. Only `http://` URLs
//! are supported for now (no TLS, no redirects, no proxy); an `https://` URL is refused
//! when the settings are read ([`super::AlertError::WebhookHttpsUnsupported`]). A full
//! HTTP client (hyper/reqwest) would add far more to the build than this one request
//! needs; switch when https webhooks are wanted.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::AlertError;

/// The most of the response that is read (the status line is all that is used).
const MAX_RESPONSE_BYTES: u64 = 16 * 1024;

/// POSTs `json` to `url` and checks for a 2xx answer, all within `timeout`.
pub(crate) async fn post_json(
    url: &url::Url,
    json: &[u8],
    timeout: Duration,
) -> Result<(), AlertError> {
    let target = target_of(url);
    let fail = |reason: String| AlertError::Webhook {
        url: target.clone(),
        reason,
    };
    let exchange = async {
        let host = url
            .host_str()
            .ok_or_else(|| fail("no host in the url".into()))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let mut stream = TcpStream::connect((host, port))
            .await
            .map_err(|e| fail(format!("cannot connect: {e}")))?;
        stream
            .write_all(&request(url, json))
            .await
            .map_err(|e| fail(format!("cannot send the request: {e}")))?;
        let mut response = Vec::new();
        (&mut stream)
            .take(MAX_RESPONSE_BYTES)
            .read_to_end(&mut response)
            .await
            .map_err(|e| fail(format!("cannot read the response: {e}")))?;
        check_status(&response).map_err(fail)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| fail(format!("no answer within {} s", timeout.as_secs_f64())))?
}

/// The request bytes: head and JSON body.
fn request(url: &url::Url, json: &[u8]) -> Vec<u8> {
    let mut path = url.path().to_owned();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    let host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: datsync/{}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        json.len()
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(json);
    out
}

/// `Ok` for `HTTP/1.x 2xx`, else the status line as the reason.
fn check_status(response: &[u8]) -> Result<(), String> {
    let line_end = response
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(response.len());
    let line = String::from_utf8_lossy(&response[..line_end])
        .trim()
        .to_owned();
    let mut parts = line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    let code = parts.next().and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(200..=299) if version.starts_with("HTTP/1.") => Ok(()),
        Some(_) => Err(format!("the server answered `{line}`")),
        None if line.is_empty() => Err("the server closed the connection without an answer".into()),
        None => Err(format!(
            "not an HTTP answer: `{}`",
            line.chars().take(80).collect::<String>()
        )),
    }
}

/// The URL without credentials, query or fragment, for messages.
fn target_of(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        assert!(check_status(b"HTTP/1.1 204 No Content\r\n\r\n").is_ok());
        assert!(check_status(b"HTTP/1.0 200 OK\r\n").is_ok());
        let e = check_status(b"HTTP/1.1 500 Internal Server Error\r\n\r\n").unwrap_err();
        assert!(e.contains("500"), "{e}");
        assert!(check_status(b"").is_err());
        assert!(check_status(b"SSH-2.0-OpenSSH\r\n").is_err());
    }

    #[test]
    fn request_has_host_length_and_body() {
        let url = url::Url::parse("http://u:p@127.0.0.1:8080/hooks/a?k=v").unwrap();
        let req = String::from_utf8(request(&url, b"{\"a\":1}")).unwrap();
        assert!(
            req.starts_with("POST /hooks/a?k=v HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"),
            "{req}"
        );
        assert!(
            req.contains("Content-Length: 7\r\n") && req.ends_with("\r\n\r\n{\"a\":1}"),
            "{req}"
        );
        assert_eq!(target_of(&url), "http://127.0.0.1:8080/hooks/a");
    }
}
