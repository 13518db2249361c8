//! Creating a container: `object_store` writes blobs but never creates containers, so a
//! checkpoint location in a new container would fail at its first write.

use super::{Auth, AzureAccount, AzureConfigError, STORAGE_RETRY_TIMEOUT, install_crypto_provider};

/// The storage service version our own requests (container creation) speak.
const SERVICE_VERSION: &str = "2021-08-06";

impl AzureAccount {
    /// Creates `container` if it does not exist (`object_store` writes blobs but never creates
    /// containers). Idempotent: an existing container is fine. With an ambient identity
    /// (no key, no SAS) nothing is done: the container must exist.
    pub async fn create_container(&self, container: &str) -> Result<(), AzureConfigError> {
        install_crypto_provider();
        let fail = |problem: String| AzureConfigError::Client {
            container: container.to_owned(),
            problem,
        };
        let mut url = url::Url::parse(&self.blob_endpoint()).map_err(|e| fail(e.to_string()))?;
        url.path_segments_mut()
            .map_err(|()| fail("the blob endpoint cannot hold a path".into()))?
            .pop_if_empty()
            .push(container);
        url.query_pairs_mut().append_pair("restype", "container");
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let client = reqwest::Client::builder()
            .timeout(STORAGE_RETRY_TIMEOUT)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let mut authorization = None;
        match &self.auth {
            Auth::Key(key) => {
                let signature = shared_key_signature(&self.account, key, &url, &date)
                    .ok_or_else(|| fail("the account key is not valid base64".into()))?;
                authorization = Some(format!("SharedKey {}:{signature}", self.account));
            }
            Auth::Sas(sas) => url.set_query(Some(&format!("restype=container&{sas}"))),
            Auth::Ambient => {
                // Creating containers is an administrator's grant an identity rarely has;
                // the first write says so if the container is missing.
                tracing::debug!(
                    container,
                    "with an ambient identity, the container is assumed to exist"
                );
                return Ok(());
            }
        }
        let mut request = client
            .put(url)
            .header("x-ms-date", &date)
            .header("x-ms-version", SERVICE_VERSION)
            .header("content-length", "0");
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        // Without the URL: it carries the SAS.
        let response = request
            .send()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?;
        let status = response.status();
        // 409: it exists already.
        if status.is_success() || status.as_u16() == 409 {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let code = body
            .split("<Code>")
            .nth(1)
            .and_then(|r| r.split("</Code>").next())
            .unwrap_or("");
        Err(fail(format!("creating it answered {status} {code}")))
    }
}

/// The Shared Key signature of a bodiless `PUT ?restype=container`.
fn shared_key_signature(account: &str, key: &str, url: &url::Url, date: &str) -> Option<String> {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD.decode(key).ok()?;
    let mut query: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
        .collect();
    query.sort();
    let mut resource = format!("/{account}{}", url.path());
    for (k, v) in &query {
        resource.push('\n');
        resource.push_str(k);
        resource.push(':');
        resource.push_str(v);
    }
    // VERB, Content-Encoding, -Language, -Length (empty when 0), -MD5, -Type, Date,
    // If-Modified-Since, If-Match, If-None-Match, If-Unmodified-Since, Range, then the
    // x-ms- headers in order, then the resource.
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{SERVICE_VERSION}\n{resource}"
    );
    let hmac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let tag = ring::hmac::sign(&hmac, to_sign.as_bytes());
    Some(base64::engine::general_purpose::STANDARD.encode(tag.as_ref()))
}
