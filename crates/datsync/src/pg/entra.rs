//! Microsoft Entra access tokens as PostgreSQL passwords (`DB_AUTH=entra`), for Azure
//! Database for PostgreSQL with a managed identity.
//!
//! The token for the resource [`ENTRA_RESOURCE`] comes from, in order:
//!
//! - App Service and Functions: `IDENTITY_ENDPOINT` with the `IDENTITY_HEADER` secret
//!   (API version 2019-08-01);
//! - AKS workload identity: `AZURE_FEDERATED_TOKEN_FILE` with `AZURE_TENANT_ID` and
//!   `AZURE_CLIENT_ID`, exchanged at `AZURE_AUTHORITY_HOST` (default
//!   `https://login.microsoftonline.com/`);
//! - virtual machines, scale sets and AKS pod identity: the instance metadata service
//!   ([`DEFAULT_IMDS_ENDPOINT`], overridable with [`IMDS_ENDPOINT_VARIABLE`] for tests).
//!
//! `AZURE_CLIENT_ID` picks a user-assigned identity. A token is reused until
//! [`REFRESH_MARGIN`] before it expires, so every new connection of a long sync (each chunk
//! retry, each `watch` cycle) gets one that is still valid; a connection already open is
//! not affected by its token expiring. Tokens never appear in messages or logs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::ErrorClass;

/// The resource (audience) of tokens for Azure Database for PostgreSQL.
pub const ENTRA_RESOURCE: &str = "https://ossrdbms-aad.database.windows.net";
/// The instance metadata service's token endpoint.
pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
/// Replaces [`DEFAULT_IMDS_ENDPOINT`] (tests point it at a fake on loopback).
pub const IMDS_ENDPOINT_VARIABLE: &str = "DATSYNC_IMDS_ENDPOINT";
/// The Entra endpoint for workload identity when `AZURE_AUTHORITY_HOST` is unset.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com/";
/// A token this close to its expiry is replaced before a new connection uses it.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// The longest a token request may take.
pub const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of an error answer that is shown.
const MAX_SHOWN_BODY: usize = 300;

/// A token could not be obtained.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EntraError {
    /// The identity settings are incomplete or malformed.
    #[error("DB_AUTH=entra: {0}")]
    Config(String),
    /// The endpoint could not be reached.
    #[error("cannot get a Microsoft Entra token from {endpoint}: {reason}")]
    Request {
        /// The endpoint (no query, no secret).
        endpoint: String,
        /// What failed.
        reason: String,
        /// Whether a later attempt can succeed.
        transient: bool,
    },
}

impl EntraError {
    /// Whether retrying later can succeed.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Request {
                transient: true, ..
            } => ErrorClass::Transient,
            _ => ErrorClass::Fatal,
        }
    }
}

#[derive(Debug, Clone)]
enum Source {
    AppService {
        endpoint: url::Url,
        secret: String,
    },
    Workload {
        token_url: url::Url,
        client_id: String,
        assertion_file: PathBuf,
    },
    Imds {
        endpoint: url::Url,
    },
}

/// A token and when it expires.
#[derive(Clone)]
struct Token {
    secret: String,
    expires: SystemTime,
}

/// The clock tokens are judged by (tests set their own).
pub(crate) type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Tokens of one managed identity, cached until shortly before they expire.
pub struct EntraTokens {
    source: Source,
    client_id: Option<String>,
    cache: tokio::sync::Mutex<Option<Token>>,
    clock: Clock,
}

impl std::fmt::Debug for EntraTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EntraTokens({})", self.endpoint())
    }
}

fn parse_url(var: &str, value: &str) -> Result<url::Url, EntraError> {
    url::Url::parse(value)
        .map_err(|e| EntraError::Config(format!("{var} `{value}` is not a URL: {e}")))
}

impl EntraTokens {
    /// The identity the environment describes (see the module docs).
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, EntraError> {
        let var = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let client_id = var("AZURE_CLIENT_ID").map(str::to_owned);
        let source = if let Some(endpoint) = var("IDENTITY_ENDPOINT") {
            let secret = var("IDENTITY_HEADER").ok_or_else(|| {
                EntraError::Config("IDENTITY_ENDPOINT is set but IDENTITY_HEADER is not".into())
            })?;
            Source::AppService {
                endpoint: parse_url("IDENTITY_ENDPOINT", endpoint)?,
                secret: secret.to_owned(),
            }
        } else if let Some(file) = var("AZURE_FEDERATED_TOKEN_FILE") {
            let missing = |v: &str| {
                EntraError::Config(format!("AZURE_FEDERATED_TOKEN_FILE is set but {v} is not"))
            };
            let tenant = var("AZURE_TENANT_ID").ok_or_else(|| missing("AZURE_TENANT_ID"))?;
            let client = client_id
                .clone()
                .ok_or_else(|| missing("AZURE_CLIENT_ID"))?;
            let authority = var("AZURE_AUTHORITY_HOST").unwrap_or(DEFAULT_AUTHORITY_HOST);
            let base = parse_url("AZURE_AUTHORITY_HOST", authority)?;
            let token_url = base
                .join(&format!("{tenant}/oauth2/v2.0/token"))
                .map_err(|e| EntraError::Config(format!("AZURE_TENANT_ID `{tenant}`: {e}")))?;
            Source::Workload {
                token_url,
                client_id: client,
                assertion_file: PathBuf::from(file),
            }
        } else {
            let endpoint = var(IMDS_ENDPOINT_VARIABLE).unwrap_or(DEFAULT_IMDS_ENDPOINT);
            Source::Imds {
                endpoint: parse_url(IMDS_ENDPOINT_VARIABLE, endpoint)?,
            }
        };
        Ok(Self {
            source,
            client_id,
            cache: tokio::sync::Mutex::new(None),
            clock: Arc::new(SystemTime::now),
        })
    }

    /// The same identity judged by another clock.
    #[cfg(test)]
    pub(crate) fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Where tokens come from, for messages (no query, no secret).
    pub fn endpoint(&self) -> String {
        let url = match &self.source {
            Source::AppService { endpoint, .. } | Source::Imds { endpoint } => endpoint,
            Source::Workload { token_url, .. } => token_url,
        };
        let mut shown = url.clone();
        shown.set_query(None);
        shown.to_string()
    }

    /// A token valid for at least [`REFRESH_MARGIN`] (fetched when the cached one is not).
    pub async fn token(&self) -> Result<String, EntraError> {
        let mut cache = self.cache.lock().await;
        let now = (self.clock)();
        if let Some(t) = cache.as_ref()
            && t.expires > now + REFRESH_MARGIN
        {
            return Ok(t.secret.clone());
        }
        let token = self.fetch(now).await?;
        let secret = token.secret.clone();
        *cache = Some(token);
        Ok(secret)
    }

    async fn fetch(&self, now: SystemTime) -> Result<Token, EntraError> {
        let endpoint = self.endpoint();
        let fail = |reason: String, transient: bool| EntraError::Request {
            endpoint: endpoint.clone(),
            reason,
            transient,
        };
        // reqwest is built with rustls but no crypto provider; this process uses ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(TOKEN_REQUEST_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(|e| fail(e.to_string(), false))?;
        let request = match &self.source {
            Source::AppService { endpoint, secret } => {
                let mut url = endpoint.clone();
                url.query_pairs_mut()
                    .append_pair("resource", ENTRA_RESOURCE)
                    .append_pair("api-version", "2019-08-01");
                if let Some(id) = &self.client_id {
                    url.query_pairs_mut().append_pair("client_id", id);
                }
                client.get(url).header("X-IDENTITY-HEADER", secret)
            }
            Source::Imds { endpoint } => {
                let mut url = endpoint.clone();
                url.query_pairs_mut()
                    .append_pair("api-version", "2018-02-01")
                    .append_pair("resource", ENTRA_RESOURCE);
                if let Some(id) = &self.client_id {
                    url.query_pairs_mut().append_pair("client_id", id);
                }
                client.get(url).header("Metadata", "true")
            }
            Source::Workload {
                token_url,
                client_id,
                assertion_file,
            } => {
                let assertion = std::fs::read_to_string(assertion_file).map_err(|e| {
                    fail(
                        format!(
                            "cannot read AZURE_FEDERATED_TOKEN_FILE {}: {e}",
                            assertion_file.display()
                        ),
                        false,
                    )
                })?;
                let scope = format!("{ENTRA_RESOURCE}/.default");
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("client_id", client_id)
                    .append_pair("scope", &scope)
                    .append_pair(
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    )
                    .append_pair("client_assertion", assertion.trim())
                    .append_pair("grant_type", "client_credentials")
                    .finish();
                client
                    .post(token_url.clone())
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(body)
            }
        };
        let response = request
            .send()
            .await
            .map_err(|e| fail(format!("no answer ({})", chain(&e)), true))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| fail(format!("cannot read the answer ({})", chain(&e)), true))?;
        if !status.is_success() {
            let transient = status.is_server_error() || status.as_u16() == 429;
            return Err(fail(
                format!("HTTP {status}: {}", shown_body(&body)),
                transient,
            ));
        }
        parse_token(&body, now).map_err(|problem| fail(problem, false))
    }
}

/// An error and its causes on one line, without repeats.
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    parts.join(": ")
}

/// The start of an error answer, on one line (Entra's answers hold no secrets).
fn shown_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_SHOWN_BODY)
        .collect();
    one_line.trim().to_owned()
}

/// A number that endpoints send as a JSON number or a string.
fn number(v: Option<&serde_json::Value>) -> Option<u64> {
    match v? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The token and its expiry from an answer: `expires_on` (seconds since 1970) if there,
/// else `expires_in` seconds from `now`.
fn parse_token(body: &[u8], now: SystemTime) -> Result<Token, String> {
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let secret = json
        .get("access_token")
        .and_then(serde_json::Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or("the answer has no access_token")?
        .to_owned();
    let expires = if let Some(on) = number(json.get("expires_on")) {
        UNIX_EPOCH + Duration::from_secs(on)
    } else if let Some(secs) = number(json.get("expires_in")) {
        now + Duration::from_secs(secs)
    } else {
        return Err("the answer has neither expires_on nor expires_in".into());
    };
    Ok(Token { secret, expires })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_environment_picks_the_identity() {
        let t = EntraTokens::from_env(&env(&[
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:41000/msi/token"),
            ("IDENTITY_HEADER", "s3cr3t"),
        ]))
        .unwrap();
        assert_eq!(t.endpoint(), "http://127.0.0.1:41000/msi/token");
        assert!(!format!("{t:?}").contains("s3cr3t"));
        let t = EntraTokens::from_env(&env(&[])).unwrap();
        assert_eq!(t.endpoint(), DEFAULT_IMDS_ENDPOINT);
        let t = EntraTokens::from_env(&env(&[
            ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
            ("AZURE_TENANT_ID", "t1"),
            ("AZURE_CLIENT_ID", "c1"),
        ]))
        .unwrap();
        assert_eq!(
            t.endpoint(),
            "https://login.microsoftonline.com/t1/oauth2/v2.0/token"
        );
        for bad in [
            vec![("IDENTITY_ENDPOINT", "http://x/")],
            vec![
                ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
                ("AZURE_TENANT_ID", "t"),
            ],
            vec![(IMDS_ENDPOINT_VARIABLE, "not a url")],
        ] {
            assert!(EntraTokens::from_env(&env(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn answers_of_each_endpoint_kind_are_read() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let t = parse_token(
            br#"{"access_token":"a","expires_on":"1003600","resource":"r"}"#,
            now,
        )
        .unwrap();
        assert_eq!(t.expires, UNIX_EPOCH + Duration::from_secs(1_003_600));
        let t = parse_token(br#"{"access_token":"b","expires_in":3599}"#, now).unwrap();
        assert_eq!(t.expires, now + Duration::from_secs(3599));
        assert_eq!(t.secret, "b");
        for bad in [
            &b"nope"[..],
            br#"{"expires_in":1}"#,
            br#"{"access_token":"","expires_in":1}"#,
            br#"{"access_token":"x"}"#,
        ] {
            assert!(parse_token(bad, now).is_err());
        }
    }

    #[tokio::test]
    async fn a_token_is_reused_until_shortly_before_it_expires() {
        // Nothing listens on port 1: a fetch fails, which shows when one happens.
        let start = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let now = Arc::new(std::sync::Mutex::new(start));
        let clock_now = now.clone();
        let tokens = EntraTokens::from_env(&env(&[(
            IMDS_ENDPOINT_VARIABLE,
            "http://127.0.0.1:1/token",
        )]))
        .unwrap()
        .with_clock(Arc::new(move || *clock_now.lock().unwrap()));
        *tokens.cache.lock().await = Some(Token {
            secret: "cached".into(),
            expires: start + Duration::from_secs(3600),
        });
        assert_eq!(tokens.token().await.unwrap(), "cached");
        *now.lock().unwrap() =
            start + Duration::from_secs(3600) - REFRESH_MARGIN - Duration::from_secs(1);
        assert_eq!(
            tokens.token().await.unwrap(),
            "cached",
            "still valid for the margin"
        );
        *now.lock().unwrap() = start + Duration::from_secs(3600) - REFRESH_MARGIN;
        let e = tokens.token().await.unwrap_err();
        assert!(e.to_string().contains("http://127.0.0.1:1/token"), "{e}");
        assert_eq!(e.class(), ErrorClass::Transient, "{e}");
        assert!(!e.to_string().contains("cached"));
    }

    #[test]
    fn error_answers_are_shown_on_one_short_line() {
        let body = format!(
            "{{\"error\":\"invalid_request\",\n\"x\":\"{}\"}}",
            "y".repeat(1000)
        );
        let shown = shown_body(body.as_bytes());
        assert!(!shown.contains('\n'));
        assert_eq!(shown.chars().count(), MAX_SHOWN_BODY);
    }
}
