//! Amazon S3 and Google Cloud Storage, in one place for the sources (`s3://bucket/path`,
//! `gs://bucket/path`, see [`crate::source`]) and the checkpoints (`s3://bucket/prefix`,
//! `gs://bucket/prefix`, see [`crate::store`]): which cloud a URL names, the settings read
//! from the environment (and `datsync.toml`), and the `object_store` client of one bucket.
//! Azure Blob Storage has its own module, [`crate::azure`].
//!
//! The settings are the usual variables of each cloud's tools, as `object_store` reads them:
//!
//! - S3: every `AWS_*` variable `object_store` knows — `AWS_ACCESS_KEY_ID` with
//!   `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), `AWS_REGION` (or
//!   `AWS_DEFAULT_REGION`; `us-east-1` when neither is set), `AWS_ENDPOINT_URL` for an
//!   S3-compatible service or an emulator (an `http://` endpoint allows plain HTTP, as
//!   `AWS_ALLOW_HTTP=true` would), `AWS_WEB_IDENTITY_TOKEN_FILE` with `AWS_ROLE_ARN`, the ECS
//!   container credentials variables. Without a key or one of those, the instance metadata
//!   service of an EC2 machine is asked.
//! - Google Cloud Storage: `GOOGLE_APPLICATION_CREDENTIALS` (an application default
//!   credentials file), `GOOGLE_SERVICE_ACCOUNT` (a service account key file) or
//!   `GOOGLE_SERVICE_ACCOUNT_KEY` (the key itself, JSON). Without any, the application
//!   default credentials of `gcloud` (`~/.config/gcloud/application_default_credentials.json`)
//!   and then the metadata service of a Google Cloud machine are used.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};

/// An object store a URL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cloud {
    /// Azure Blob Storage: `az://container/path` (also `azure://`).
    Azure,
    /// Amazon S3 or an S3-compatible service: `s3://bucket/path`.
    S3,
    /// Google Cloud Storage: `gs://bucket/path`.
    Gcs,
}

impl Cloud {
    /// The cloud of a URL scheme (any case): `az`, `azure`, `s3`, `gs`.
    pub fn from_scheme(scheme: &str) -> Option<Self> {
        match scheme.to_ascii_lowercase().as_str() {
            "az" | "azure" => Some(Self::Azure),
            "s3" => Some(Self::S3),
            "gs" => Some(Self::Gcs),
            _ => None,
        }
    }

    /// The cloud of a URL (`s3://…`), if it names one.
    pub fn of_url(url: &str) -> Option<Self> {
        let (scheme, _) = url.trim().split_once("://")?;
        Self::from_scheme(scheme)
    }

    /// The scheme URLs are written with: `az`, `s3`, `gs`.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Azure => "az",
            Self::S3 => "s3",
            Self::Gcs => "gs",
        }
    }

    /// What the top level is called: `container` on Azure, `bucket` elsewhere.
    pub fn container_word(self) -> &'static str {
        match self {
            Self::Azure => "container",
            Self::S3 | Self::Gcs => "bucket",
        }
    }

    /// What one stored file is called: `blob` on Azure, `object` elsewhere.
    pub fn object_word(self) -> &'static str {
        match self {
            Self::Azure => "blob",
            Self::S3 | Self::Gcs => "object",
        }
    }

    /// The service, for messages.
    pub fn service(self) -> &'static str {
        match self {
            Self::Azure => "Azure Blob Storage",
            Self::S3 => "S3",
            Self::Gcs => "Google Cloud Storage",
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.service())
    }
}

/// S3 or Google Cloud Storage settings that cannot be used; the message names the variable,
/// never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudConfigError {
    /// A variable is missing, or unusable with the others.
    #[error("{cloud} settings: {problem}")]
    Setting {
        /// The cloud.
        cloud: Cloud,
        /// What is wrong, naming the variables.
        problem: String,
    },
    /// The client could not be built.
    #[error("cannot configure {cloud} for bucket `{bucket}`: {problem}")]
    Client {
        /// The cloud.
        cloud: Cloud,
        /// The bucket.
        bucket: String,
        /// What `object_store` said.
        problem: String,
    },
    /// Azure settings are not read here (see [`crate::AzureAccount`]).
    #[error("Azure Blob Storage settings are read by AzureAccount, not CloudSettings")]
    NotHere,
}

/// The S3 or Google Cloud Storage settings of one process: the variables of that cloud
/// (`AWS_*`, `GOOGLE_*`). `Debug` shows which variables are set, never their values.
#[derive(Clone, PartialEq, Eq)]
pub struct CloudSettings {
    cloud: Cloud,
    vars: BTreeMap<String, String>,
}

impl fmt::Debug for CloudSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudSettings")
            .field("cloud", &self.cloud)
            .field("variables", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl CloudSettings {
    /// The settings of `cloud` in the process environment, the configuration file's values
    /// below it (see [`crate::process_env`]).
    pub fn from_env(cloud: Cloud) -> Self {
        Self::from_vars(cloud, crate::process_env())
    }

    /// The settings of `cloud` among `vars` (name → value; blank values are unset, other
    /// clouds' variables ignored).
    pub fn from_vars(cloud: Cloud, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let prefix = match cloud {
            Cloud::S3 => Some("AWS_"),
            Cloud::Gcs => Some("GOOGLE_"),
            Cloud::Azure => None,
        };
        let vars = vars
            .into_iter()
            .filter(|(k, v)| prefix.is_some_and(|p| k.starts_with(p)) && !v.trim().is_empty())
            .map(|(k, v)| (k, v.trim().to_owned()))
            .collect();
        Self { cloud, vars }
    }

    /// The cloud these settings are for.
    pub fn cloud(&self) -> Cloud {
        self.cloud
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    fn setting(&self, problem: String) -> CloudConfigError {
        CloudConfigError::Setting {
            cloud: self.cloud,
            problem,
        }
    }

    /// Checks what can be checked without asking the service: credentials given by halves,
    /// credential files that cannot be read.
    pub fn check(&self) -> Result<(), CloudConfigError> {
        match self.cloud {
            Cloud::S3 => {
                let pair = (
                    self.get("AWS_ACCESS_KEY_ID"),
                    self.get("AWS_SECRET_ACCESS_KEY"),
                );
                match pair {
                    (Some(_), None) => Err(self.setting(
                        "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not; set both, \
                         or neither to use a role"
                            .into(),
                    )),
                    (None, Some(_)) => Err(self.setting(
                        "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not; set both, \
                         or neither to use a role"
                            .into(),
                    )),
                    _ => Ok(()),
                }
            }
            Cloud::Gcs => {
                for variable in ["GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_SERVICE_ACCOUNT"] {
                    if let Some(path) = self.get(variable)
                        && let Err(e) = std::fs::metadata(path)
                    {
                        return Err(self.setting(format!(
                            "{variable} names the credentials file {path}, which cannot be \
                             read: {e}"
                        )));
                    }
                }
                if self.get("GOOGLE_SERVICE_ACCOUNT").is_some()
                    && self.get("GOOGLE_SERVICE_ACCOUNT_KEY").is_some()
                {
                    return Err(self.setting(
                        "GOOGLE_SERVICE_ACCOUNT and GOOGLE_SERVICE_ACCOUNT_KEY are both set; \
                         give the service account's key once, as a file or as JSON"
                            .into(),
                    ));
                }
                Ok(())
            }
            Cloud::Azure => Err(CloudConfigError::NotHere),
        }
    }

    /// When no credentials are configured (so `object_store` asks the machine's identity),
    /// what to say after an error of the service: which variables were looked for.
    pub fn no_credentials_hint(&self) -> Option<&'static str> {
        let any = |names: &[&str]| names.iter().any(|n| self.get(n).is_some());
        match self.cloud {
            Cloud::S3 => (!any(&[
                "AWS_ACCESS_KEY_ID",
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_SKIP_SIGNATURE",
            ]))
            .then_some(
                "no S3 credentials are set (AWS_ACCESS_KEY_ID with AWS_SECRET_ACCESS_KEY, or \
                 AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN), so the machine's role was \
                 asked for them",
            ),
            Cloud::Gcs => {
                let gcloud = std::env::var_os("HOME").is_some_and(|home| {
                    std::path::Path::new(&home)
                        .join(".config/gcloud/application_default_credentials.json")
                        .exists()
                });
                (!gcloud
                    && !any(&[
                        "GOOGLE_APPLICATION_CREDENTIALS",
                        "GOOGLE_SERVICE_ACCOUNT",
                        "GOOGLE_SERVICE_ACCOUNT_KEY",
                        "GOOGLE_BEARER_TOKEN",
                        "GOOGLE_SKIP_SIGNATURE",
                    ]))
                .then_some(
                    "no Google Cloud Storage credentials are set \
                     (GOOGLE_APPLICATION_CREDENTIALS, GOOGLE_SERVICE_ACCOUNT or \
                     GOOGLE_SERVICE_ACCOUNT_KEY, or gcloud's application default credentials), \
                     so the machine's service account was asked for them",
                )
            }
            Cloud::Azure => None,
        }
    }

    /// The `object_store` client of one bucket.
    pub(crate) fn bucket(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, CloudConfigError> {
        crate::azure::install_crypto_provider();
        self.check()?;
        let fail = |problem: String| CloudConfigError::Client {
            cloud: self.cloud,
            bucket: bucket.to_owned(),
            problem,
        };
        match self.cloud {
            Cloud::S3 => {
                let mut builder = AmazonS3Builder::new();
                for (name, value) in &self.vars {
                    if let Ok(key) = name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                        builder = builder.with_config(key, value);
                    }
                }
                let http_endpoint = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT", "AWS_ENDPOINT_URL_S3"]
                    .iter()
                    .filter_map(|v| self.get(v))
                    .any(|e| e.to_ascii_lowercase().starts_with("http://"));
                if http_endpoint && self.get("AWS_ALLOW_HTTP").is_none() {
                    builder = builder.with_allow_http(true);
                }
                let client = builder
                    .with_bucket_name(bucket)
                    .with_retry(crate::azure::storage_retry())
                    .build()
                    .map_err(|e| fail(e.to_string()))?;
                Ok(Arc::new(client))
            }
            Cloud::Gcs => {
                let mut builder = GoogleCloudStorageBuilder::new();
                for (name, value) in &self.vars {
                    if let Ok(key) = name.to_ascii_lowercase().parse::<GoogleConfigKey>() {
                        builder = builder.with_config(key, value);
                    }
                }
                let client = builder
                    .with_bucket_name(bucket)
                    .with_retry(crate::azure::storage_retry())
                    .build()
                    .map_err(|e| fail(e.to_string()))?;
                Ok(Arc::new(client))
            }
            Cloud::Azure => Err(CloudConfigError::NotHere),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn schemes_name_clouds() {
        assert_eq!(Cloud::of_url("s3://b/k"), Some(Cloud::S3));
        assert_eq!(Cloud::of_url(" GS://b/k"), Some(Cloud::Gcs));
        assert_eq!(Cloud::of_url("azure://c/k"), Some(Cloud::Azure));
        assert_eq!(Cloud::of_url("file:///x"), None);
        assert_eq!(Cloud::of_url("/data/a.dat"), None);
    }

    #[test]
    fn only_the_clouds_own_variables_are_kept_and_never_shown() {
        let s = CloudSettings::from_vars(
            Cloud::S3,
            vars(&[
                ("AWS_ACCESS_KEY_ID", "AKIA1"),
                ("AWS_SECRET_ACCESS_KEY", "sekret"),
                ("AWS_REGION", " "),
                ("GOOGLE_SERVICE_ACCOUNT", "/x"),
                ("PATH", "/bin"),
            ]),
        );
        assert_eq!(
            s.vars.keys().collect::<Vec<_>>(),
            ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
        );
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("sekret") && !shown.contains("AKIA1"),
            "{shown}"
        );
    }

    #[test]
    fn half_a_key_names_the_missing_variable() {
        let e = CloudSettings::from_vars(Cloud::S3, vars(&[("AWS_ACCESS_KEY_ID", "AKIA1")]))
            .bucket("b")
            .unwrap_err()
            .to_string();
        assert!(e.contains("but AWS_SECRET_ACCESS_KEY is not"), "{e}");
        let e = CloudSettings::from_vars(Cloud::S3, vars(&[("AWS_SECRET_ACCESS_KEY", "sekret")]))
            .bucket("b")
            .unwrap_err()
            .to_string();
        assert!(e.contains("AWS_ACCESS_KEY_ID is not"), "{e}");
        assert!(!e.contains("sekret"), "{e}");
    }

    #[test]
    fn without_credentials_errors_say_which_variables_were_looked_for() {
        let none = CloudSettings::from_vars(Cloud::S3, vars(&[("AWS_REGION", "eu-west-1")]));
        assert!(
            none.no_credentials_hint()
                .unwrap()
                .contains("AWS_ACCESS_KEY_ID")
        );
        for set in ["AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE"] {
            let some = CloudSettings::from_vars(Cloud::S3, vars(&[(set, "x")]));
            assert_eq!(some.no_credentials_hint(), None, "{set}");
        }
        let some =
            CloudSettings::from_vars(Cloud::Gcs, vars(&[("GOOGLE_SERVICE_ACCOUNT_KEY", "{}")]));
        assert_eq!(some.no_credentials_hint(), None);
    }

    #[test]
    fn an_s3_client_builds_from_keys_and_an_http_endpoint() {
        let s = CloudSettings::from_vars(
            Cloud::S3,
            vars(&[
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ]),
        );
        let client = s.bucket("data").unwrap();
        assert!(client.to_string().contains("data"), "{client}");
    }

    #[test]
    fn unreadable_google_credentials_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.json");
        let missing = missing.to_str().unwrap();
        for variable in ["GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_SERVICE_ACCOUNT"] {
            let e = CloudSettings::from_vars(Cloud::Gcs, vars(&[(variable, missing)]))
                .bucket("b")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(variable) && e.contains(missing) && e.contains("Google Cloud Storage"),
                "{e}"
            );
        }
        let key_file = dir.path().join("key.json");
        std::fs::write(&key_file, "{}").unwrap();
        let e = CloudSettings::from_vars(
            Cloud::Gcs,
            vars(&[
                ("GOOGLE_SERVICE_ACCOUNT", key_file.to_str().unwrap()),
                (
                    "GOOGLE_SERVICE_ACCOUNT_KEY",
                    "{\"private_key\": \"sekret\"}",
                ),
            ]),
        )
        .bucket("b")
        .unwrap_err()
        .to_string();
        assert!(e.contains("both set") && !e.contains("sekret"), "{e}");
    }

    #[test]
    fn a_malformed_service_account_key_is_a_configuration_error() {
        let e = CloudSettings::from_vars(
            Cloud::Gcs,
            vars(&[("GOOGLE_SERVICE_ACCOUNT_KEY", "not json sekret")]),
        )
        .bucket("b")
        .unwrap_err();
        assert!(matches!(e, CloudConfigError::Client { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("bucket `b`") && !e.contains("sekret"), "{e}");
    }
}
