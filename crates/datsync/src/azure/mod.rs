//! Azure Blob Storage accounts, in one place for the sources (`az://container/path`, see
//! [`crate::source`]) and the checkpoints (`az://container/prefix`, see [`crate::store`]):
//! the connection string of an Azure Functions app (`AzureWebJobsStorage`), account + key or
//! SAS variables, the `object_store` client of one container, and creating a container
//! (`container.rs`).
//!
//! Accepted settings, first match wins:
//! - `AzureWebJobsStorage`, then `AZURE_STORAGE_CONNECTION_STRING`: a connection string.
//!   `UseDevelopmentStorage=true` means the local emulator (Azurite) at
//!   `http://127.0.0.1:10000/devstoreaccount1` with its well-known key;
//!   `DefaultEndpointsProtocol=…;AccountName=…;AccountKey=…;EndpointSuffix=…` a real account;
//!   `BlobEndpoint=…` overrides the endpoint (Azurite on another port);
//!   `SharedAccessSignature=…` authenticates with a SAS instead of the key.
//! - `AZURE_STORAGE_ACCOUNT_NAME` with `AZURE_STORAGE_ACCOUNT_KEY` or `AZURE_STORAGE_SAS_TOKEN`
//!   (and optionally `AZURE_STORAGE_BLOB_ENDPOINT`); the account name alone lets
//!   `object_store` find a managed identity or workload identity.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

mod container;

use object_store::azure::MicrosoftAzureBuilder;
use object_store::{ObjectStore, RetryConfig};

/// The connection string variable of an Azure Functions app.
pub const CONNECTION_STRING_ENV: &str = "AzureWebJobsStorage";
/// The connection string variable of the Azure SDKs.
pub const SDK_CONNECTION_STRING_ENV: &str = "AZURE_STORAGE_CONNECTION_STRING";
/// The account name variable.
pub const ACCOUNT_ENV: &str = "AZURE_STORAGE_ACCOUNT_NAME";
/// The account key variable.
pub const KEY_ENV: &str = "AZURE_STORAGE_ACCOUNT_KEY";
/// The SAS token variable.
pub const SAS_ENV: &str = "AZURE_STORAGE_SAS_TOKEN";
/// The blob endpoint variable (an emulator, a private endpoint).
pub const ENDPOINT_ENV: &str = "AZURE_STORAGE_BLOB_ENDPOINT";

/// The emulator's account (the same for every Azurite).
pub const EMULATOR_ACCOUNT: &str = "devstoreaccount1";
/// The emulator's well-known, public account key (documented by Microsoft; not a secret).
pub const EMULATOR_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const EMULATOR_BLOB_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

/// Requests retried by `object_store` on a transient storage error before we see it.
const STORAGE_RETRIES: usize = 4;
/// The longest pause between two of those retries.
const STORAGE_MAX_BACKOFF: Duration = Duration::from_secs(8);
/// How long one request may take, including its retries.
const STORAGE_RETRY_TIMEOUT: Duration = Duration::from_secs(120);

/// Azure settings that cannot be used; the message names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AzureConfigError {
    /// A connection string without what it needs.
    #[error("the Azure Storage connection string in {variable} is not usable: {problem}")]
    ConnectionString {
        /// Where it came from.
        variable: String,
        /// What is wrong (never the secret itself).
        problem: String,
    },
    /// No account is configured.
    #[error(
        "no Azure Storage account is configured: set AzureWebJobsStorage to a connection string \
         (UseDevelopmentStorage=true for Azurite on 127.0.0.1:10000), or \
         AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN"
    )]
    Missing,
    /// The client could not be built.
    #[error("cannot configure Azure Storage for container `{container}`: {problem}")]
    Client {
        /// The container.
        container: String,
        /// What `object_store` said.
        problem: String,
    },
}

/// How requests are authorized.
#[derive(Clone, PartialEq, Eq)]
enum Auth {
    /// A shared key.
    Key(String),
    /// A SAS token (without the leading `?`).
    Sas(String),
    /// Whatever `object_store` finds (managed identity, workload identity, Azure CLI).
    Ambient,
}

/// An Azure Storage account and how to reach it. `Debug` hides the key and the SAS.
#[derive(Clone, PartialEq, Eq)]
pub struct AzureAccount {
    account: String,
    /// The blob endpoint, with the account in its path for the emulator
    /// (`http://127.0.0.1:10000/devstoreaccount1`); `None` is `https://{account}.blob.{suffix}`.
    endpoint: Option<String>,
    auth: Auth,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Key(_) => "key (hidden)",
            Self::Sas(_) => "SAS (hidden)",
            Self::Ambient => "ambient identity",
        })
    }
}

impl fmt::Debug for AzureAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureAccount")
            .field("account", &self.account)
            .field("endpoint", &self.endpoint)
            .field("auth", &self.auth)
            .finish()
    }
}

impl AzureAccount {
    /// The local emulator (Azurite) at `blob_endpoint`, e.g. `http://127.0.0.1:10000/devstoreaccount1`.
    pub fn emulator(blob_endpoint: &str) -> Self {
        Self {
            account: EMULATOR_ACCOUNT.to_owned(),
            endpoint: Some(blob_endpoint.trim_end_matches('/').to_owned()),
            auth: Auth::Key(EMULATOR_KEY.to_owned()),
        }
    }

    /// The account name.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The blob endpoint, as requests will use it.
    pub fn blob_endpoint(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("https://{}.blob.core.windows.net", self.account))
    }

    /// Reads the settings from the process environment (see the module documentation);
    /// `Ok(None)` when none is set.
    pub fn from_env() -> Result<Option<Self>, AzureConfigError> {
        Self::from_vars(crate::layers::var)
    }

    /// The account of the process environment; [`AzureConfigError::Missing`] when none is
    /// configured.
    pub fn required_from_env() -> Result<Self, AzureConfigError> {
        Self::from_env()?.ok_or(AzureConfigError::Missing)
    }

    /// Reads the settings through `get` (a variable's value, if set and not blank).
    pub fn from_vars(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, AzureConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        for variable in [CONNECTION_STRING_ENV, SDK_CONNECTION_STRING_ENV] {
            if let Some(s) = get(variable) {
                return Self::from_connection_string(&s, variable).map(Some);
            }
        }
        let Some(account) = get(ACCOUNT_ENV) else {
            return Ok(None);
        };
        let auth = match (get(KEY_ENV), get(SAS_ENV)) {
            (Some(key), _) => Auth::Key(key.trim().to_owned()),
            (None, Some(sas)) => Auth::Sas(sas.trim().trim_start_matches('?').to_owned()),
            (None, None) => Auth::Ambient,
        };
        Ok(Some(Self {
            account: account.trim().to_owned(),
            endpoint: get(ENDPOINT_ENV).map(|e| e.trim().trim_end_matches('/').to_owned()),
            auth,
        }))
    }

    /// Parses a connection string (`Key=Value;…`, keys in any case). `variable` names where it
    /// came from, for messages; the secret is never part of a message.
    pub fn from_connection_string(s: &str, variable: &str) -> Result<Self, AzureConfigError> {
        let bad = |problem: String| AzureConfigError::ConnectionString {
            variable: variable.to_owned(),
            problem,
        };
        let mut fields = std::collections::HashMap::new();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                let name: String = part.chars().take(40).collect();
                return Err(bad(format!("`{name}` is not Key=Value")));
            };
            fields.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
        let field = |k: &str| fields.get(k).filter(|v| !v.is_empty()).cloned();
        if field("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            let endpoint = field("developmentstorageproxyuri").map_or_else(
                || EMULATOR_BLOB_ENDPOINT.to_owned(),
                |proxy| format!("{}/{EMULATOR_ACCOUNT}", proxy.trim_end_matches('/')),
            );
            return Ok(Self::emulator(&endpoint));
        }
        let account = field("accountname");
        let endpoint = field("blobendpoint").map(|e| e.trim_end_matches('/').to_owned());
        let account = match (account, &endpoint) {
            (Some(a), _) => a,
            // A SAS connection string may name only the endpoint: the account is its host's
            // first label (`https://acct.blob.core.windows.net`).
            (None, Some(e)) => account_from_endpoint(e).ok_or_else(|| {
                bad("it has neither AccountName nor a BlobEndpoint naming the account".into())
            })?,
            (None, None) => {
                return Err(bad(
                    "it has no AccountName (or UseDevelopmentStorage=true for Azurite)".into(),
                ));
            }
        };
        let endpoint = endpoint.or_else(|| {
            let suffix = field("endpointsuffix")?;
            let protocol = field("defaultendpointsprotocol").unwrap_or_else(|| "https".into());
            Some(format!("{protocol}://{account}.blob.{suffix}"))
        });
        let auth = match (field("accountkey"), field("sharedaccesssignature")) {
            (Some(key), _) => Auth::Key(key),
            (None, Some(sas)) => Auth::Sas(sas.trim_start_matches('?').to_owned()),
            (None, None) => Auth::Ambient,
        };
        Ok(Self {
            account,
            endpoint,
            auth,
        })
    }

    /// The `object_store` client of one container.
    pub(crate) fn container(
        &self,
        container: &str,
    ) -> Result<Arc<dyn ObjectStore>, AzureConfigError> {
        install_crypto_provider();
        let fail = |problem: String| AzureConfigError::Client {
            container: container.to_owned(),
            problem,
        };
        let mut builder = MicrosoftAzureBuilder::new()
            .with_account(&self.account)
            .with_container_name(container)
            .with_retry(storage_retry());
        if let Some(endpoint) = &self.endpoint {
            builder = builder
                .with_endpoint(endpoint.clone())
                .with_allow_http(endpoint.starts_with("http://"));
        }
        builder = match &self.auth {
            Auth::Key(key) => builder.with_access_key(key),
            Auth::Sas(sas) => builder.with_sas_authorization(sas_pairs(sas)),
            Auth::Ambient => builder,
        };
        let client = builder.build().map_err(|e| fail(e.to_string()))?;
        Ok(Arc::new(client))
    }
}

/// How `object_store` retries a transient storage error before we see it (Azure, S3 and
/// Google Cloud Storage alike).
pub(crate) fn storage_retry() -> RetryConfig {
    RetryConfig {
        max_retries: STORAGE_RETRIES,
        retry_timeout: STORAGE_RETRY_TIMEOUT,
        backoff: object_store::BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: STORAGE_MAX_BACKOFF,
            base: 2.0,
        },
    }
}

/// `sv=…&sig=…` → pairs, percent-decoded.
fn sas_pairs(sas: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(sas.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn account_from_endpoint(endpoint: &str) -> Option<String> {
    let url = url::Url::parse(endpoint).ok()?;
    let host = url.host_str()?;
    if host.parse::<std::net::IpAddr>().is_ok() || host == "localhost" {
        // Emulator style: the account is the first path segment.
        return url
            .path_segments()?
            .next()
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
    }
    host.split('.').next().map(str::to_owned)
}

/// reqwest is built with rustls but without a crypto provider; this process uses ring (as the
/// PostgreSQL and SMTP clients do). Installing twice is harmless.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> AzureAccount {
        AzureAccount::from_connection_string(s, "AzureWebJobsStorage").unwrap()
    }

    #[test]
    fn development_storage_is_the_local_emulator() {
        let a = parse("UseDevelopmentStorage=true");
        assert_eq!(a.account(), "devstoreaccount1");
        assert_eq!(a.blob_endpoint(), "http://127.0.0.1:10000/devstoreaccount1");
        assert_eq!(a.auth, Auth::Key(EMULATOR_KEY.into()));
        let a =
            parse("UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://127.0.0.1:9999/");
        assert_eq!(a.blob_endpoint(), "http://127.0.0.1:9999/devstoreaccount1");
    }

    #[test]
    fn account_key_with_endpoint_suffix() {
        let a = parse(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5==;EndpointSuffix=core.windows.net",
        );
        assert_eq!(a.account(), "acct");
        assert_eq!(a.blob_endpoint(), "https://acct.blob.core.windows.net");
        // The key keeps its `=` padding.
        assert_eq!(a.auth, Auth::Key("a2V5==".into()));
    }

    #[test]
    fn explicit_blob_endpoint_wins() {
        let a = parse(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=k;\
             BlobEndpoint=http://127.0.0.1:41234/devstoreaccount1/;",
        );
        assert_eq!(a.blob_endpoint(), "http://127.0.0.1:41234/devstoreaccount1");
    }

    #[test]
    fn sas_connection_string_names_the_account_by_its_endpoint() {
        let a = parse(
            "BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=?sv=2022&sig=a%2Bb",
        );
        assert_eq!(a.account(), "acct");
        assert_eq!(a.auth, Auth::Sas("sv=2022&sig=a%2Bb".into()));
        assert_eq!(
            sas_pairs("sv=2022&sig=a%2Bb"),
            vec![("sv".into(), "2022".into()), ("sig".into(), "a+b".into())]
        );
    }

    #[test]
    fn unusable_strings_say_why_without_the_secret() {
        let e = AzureAccount::from_connection_string("AccountKey=sekret", "AzureWebJobsStorage")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("AzureWebJobsStorage") && e.contains("AccountName"),
            "{e}"
        );
        assert!(!e.contains("sekret"), "{e}");
        let e = AzureAccount::from_connection_string("garbage", "X").unwrap_err();
        assert!(e.to_string().contains("not Key=Value"), "{e}");
    }

    #[test]
    fn debug_hides_secrets() {
        let a = parse("AccountName=acct;AccountKey=sekret;EndpointSuffix=core.windows.net");
        let shown = format!("{a:?}");
        assert!(
            !shown.contains("sekret") && shown.contains("acct"),
            "{shown}"
        );
    }

    #[test]
    fn variables_in_order() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(AzureAccount::from_vars(vars(&[])).unwrap(), None);
        let a = AzureAccount::from_vars(vars(&[
            (ACCOUNT_ENV, "acct"),
            (SAS_ENV, "?sv=1&sig=x"),
            (ENDPOINT_ENV, "http://127.0.0.1:1/acct/"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(a.auth, Auth::Sas("sv=1&sig=x".into()));
        assert_eq!(a.blob_endpoint(), "http://127.0.0.1:1/acct");
        // The Functions connection string wins over the separate variables.
        let a = AzureAccount::from_vars(vars(&[
            (ACCOUNT_ENV, "acct"),
            (CONNECTION_STRING_ENV, "UseDevelopmentStorage=true"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(a.account(), EMULATOR_ACCOUNT);
        // A blank variable is unset.
        assert_eq!(
            AzureAccount::from_vars(vars(&[(CONNECTION_STRING_ENV, " ")])).unwrap(),
            None
        );
    }
}
