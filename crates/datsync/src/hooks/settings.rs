//! Hook settings: the hooks declared in the configuration file (`[[hooks.on_success]]`, …,
//! [`HookSpec`]) and the legacy loader's cache warm-up call (`ENABLE_CACHE_PREPOPULATION`,
//! `TRANSPORT_INTELLIGENCE_SERVICE_URL`), resolved against the environment once, at start,
//! into [`Hook`]s ready to call.

use std::time::Duration;

use serde::Serialize;

use crate::http::{HttpError, HttpTls, check_url};
use crate::model::SyncStatus;

/// The variable that turns the legacy cache warm-up call on or off (default on).
pub const CACHE_PREPOPULATION_ENV: &str = "ENABLE_CACHE_PREPOPULATION";
/// The variable holding the base URL of the service the legacy call warms up.
pub const TRANSPORT_INTELLIGENCE_URL_ENV: &str = "TRANSPORT_INTELLIGENCE_SERVICE_URL";
/// The name of the built-in hook the legacy variables make (the `hook` label of the metric).
pub const CACHE_HOOK_NAME: &str = "cache_prepopulation";
/// The path and query the legacy loader appended to `TRANSPORT_INTELLIGENCE_SERVICE_URL`.
pub const CACHE_HOOK_PATH: &str =
    "/api/v1/cache/repopulate?concurrency=15&cleanupFirst=true&clearFirst=true";
/// The legacy call's timeout.
pub const CACHE_HOOK_TIMEOUT: Duration = Duration::from_secs(30);
/// A declared hook's timeout when it names none.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(30);
/// The most retries a hook may ask for.
pub const MAX_HOOK_RETRIES: u32 = 10;

/// When a hook is called: by the sync's final status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HookEvent {
    /// SUCCESS.
    OnSuccess,
    /// PARTIAL_SUCCESS.
    OnPartial,
    /// FAILED or BAD_INPUT.
    OnFailure,
}

impl HookEvent {
    /// Every event, in the order of the file's keys.
    pub const ALL: [Self; 3] = [Self::OnSuccess, Self::OnPartial, Self::OnFailure];

    /// The key in `[hooks]`: `on_success`, `on_partial`, `on_failure`.
    pub fn key(self) -> &'static str {
        match self {
            Self::OnSuccess => "on_success",
            Self::OnPartial => "on_partial",
            Self::OnFailure => "on_failure",
        }
    }

    /// The event of a final status (none for IN_PROGRESS: no final status, no hook).
    pub fn of(status: SyncStatus) -> Option<Self> {
        match status {
            SyncStatus::Success => Some(Self::OnSuccess),
            SyncStatus::PartialSuccess => Some(Self::OnPartial),
            SyncStatus::Failed | SyncStatus::BadInput => Some(Self::OnFailure),
            SyncStatus::InProgress => None,
        }
    }
}

/// A hook as the configuration file declares it, before the environment is read: `url`,
/// query values and header values may hold `${VARIABLE}` references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSpec {
    /// The key it is declared under.
    pub event: HookEvent,
    /// Its name (`name = …`, else `on_success_1` for the first of `[[hooks.on_success]]`).
    pub name: String,
    /// The HTTP method, upper case (default `POST`).
    pub method: String,
    /// The URL as written.
    pub url: String,
    /// Query parameters appended to the URL, in name order (as the file's table is read).
    pub query: Vec<(String, String)>,
    /// Headers; their values are never printed.
    pub headers: Vec<(String, String)>,
    /// The most time one attempt may take (`timeout_seconds`).
    pub timeout: Duration,
    /// Attempts after the first when one fails with a timeout, a connection error, a 5xx or
    /// a 429 (`retries`, default 0).
    pub retries: u32,
    /// `allow_http = true`: a plain `http://` URL to a host that is not loopback.
    pub allow_http: bool,
    /// Where it is declared (`datsync.toml line 12`).
    pub at: String,
}

/// A hook ready to call: its URL with the query, its headers with their values.
#[derive(Clone)]
pub struct Hook {
    /// The name (the `hook` label of `datsync_hook_failures_total`).
    pub name: String,
    /// The statuses it is called for.
    pub events: Vec<HookEvent>,
    /// The method.
    pub method: reqwest::Method,
    /// The URL, query included (may hold a token: shown through [`crate::http::shown`]).
    pub url: url::Url,
    /// Headers with their values from the environment (secrets: never printed).
    pub headers: Vec<(String, String)>,
    /// The most time one attempt may take.
    pub timeout: Duration,
    /// Attempts after the first on a failure that may pass.
    pub retries: u32,
    /// Whether each call says which sync and status it follows ([`SYNC_ID_HEADER`],
    /// [`STATUS_HEADER`]): declared hooks do; the legacy call, made exactly as the legacy
    /// loader made it, does not.
    pub sync_headers: bool,
}

/// The header that names the sync a declared hook's call follows.
pub const SYNC_ID_HEADER: &str = "X-Datsync-Sync-Id";
/// The header that names the final status a declared hook's call follows.
pub const STATUS_HEADER: &str = "X-Datsync-Status";

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hook")
            .field("name", &self.name)
            .field("events", &self.events)
            .field("method", &self.method)
            .field("url", &crate::http::shown(&self.url))
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("sync_headers", &self.sync_headers)
            .finish()
    }
}

/// A hook setting that cannot be used. Raised at start, before anything is loaded.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// A variable has a value that cannot be used.
    #[error("hook setting {name} is invalid: {reason}")]
    InvalidSetting {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A declared hook names a variable that is not set.
    #[error("hook `{hook}` ({at}): {field} needs the variable {variable}, which is not set")]
    MissingVariable {
        /// The hook.
        hook: String,
        /// Where it is declared.
        at: String,
        /// `url`, `query.NAME` or `headers.NAME`.
        field: String,
        /// The variable.
        variable: String,
    },
    /// A declared hook's method is not an HTTP method.
    #[error("hook `{hook}` ({at}): `{method}` is not an HTTP method")]
    Method {
        /// The hook.
        hook: String,
        /// Where it is declared.
        at: String,
        /// The method as written.
        method: String,
    },
    /// The URL or the HTTPS set-up cannot be used.
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// Every hook of this process and the trust of their HTTPS.
#[derive(Debug, Clone, Default)]
pub struct HookSettings {
    /// The hooks: the declared ones in the file's order, then the legacy one.
    pub hooks: Vec<Hook>,
    /// Extra root certificates (`DATSYNC_CA_FILE`).
    pub tls: HttpTls,
}

impl HookSettings {
    /// Resolves the `declared` hooks and the legacy variables through `env` (blank values
    /// are unset): `${VARIABLE}` references expanded, URLs checked (`https://`, or
    /// `http://` to loopback, or with `allow_http`).
    pub fn from_env(
        declared: &[HookSpec],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, HookError> {
        let get = |name: &str| {
            env(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut hooks = declared
            .iter()
            .map(|spec| resolve(spec, &get))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(hook) = legacy_cache_hook(&get)? {
            hooks.push(hook);
        } else if get(CACHE_PREPOPULATION_ENV)
            .as_deref()
            .and_then(crate::config::parse_bool)
            == Some(true)
        {
            tracing::warn!(
                "{CACHE_PREPOPULATION_ENV} is true but {TRANSPORT_INTELLIGENCE_URL_ENV} is not \
                 set: no cache warm-up call is made"
            );
        }
        Ok(Self {
            hooks,
            tls: HttpTls::from_env(get),
        })
    }

    /// Whether any hook is configured.
    pub fn enabled(&self) -> bool {
        !self.hooks.is_empty()
    }
}

/// The legacy loader's cache warm-up call: with `TRANSPORT_INTELLIGENCE_SERVICE_URL` set and
/// `ENABLE_CACHE_PREPOPULATION` not false, a `POST` of no body to
/// `{url}/api/v1/cache/repopulate?concurrency=15&cleanupFirst=true&clearFirst=true` (a
/// trailing `/` of the URL dropped), 30 s, no retry, after a sync that loaded its rows
/// (SUCCESS, PARTIAL_SUCCESS). It carries no data and no secret, so a plain `http://` URL is
/// accepted whatever its host, as the legacy loader did.
fn legacy_cache_hook(get: &impl Fn(&str) -> Option<String>) -> Result<Option<Hook>, HookError> {
    let enabled = match get(CACHE_PREPOPULATION_ENV) {
        None => true,
        Some(v) => crate::config::parse_bool(&v).ok_or_else(|| HookError::InvalidSetting {
            name: CACHE_PREPOPULATION_ENV,
            reason: format!("`{v}` is not true or false"),
        })?,
    };
    let Some(base) = get(TRANSPORT_INTELLIGENCE_URL_ENV) else {
        return Ok(None);
    };
    if !enabled {
        return Ok(None);
    }
    let text = format!("{}{CACHE_HOOK_PATH}", base.trim_end_matches('/'));
    let url = check_url(&text, TRANSPORT_INTELLIGENCE_URL_ENV, "", true)?;
    Ok(Some(Hook {
        name: CACHE_HOOK_NAME.to_owned(),
        events: vec![HookEvent::OnSuccess, HookEvent::OnPartial],
        method: reqwest::Method::POST,
        url,
        headers: Vec::new(),
        timeout: CACHE_HOOK_TIMEOUT,
        retries: 0,
        sync_headers: false,
    }))
}

fn resolve(spec: &HookSpec, get: &impl Fn(&str) -> Option<String>) -> Result<Hook, HookError> {
    let expand_field = |field: String, text: &str| {
        expand(text, get).map_err(|variable| HookError::MissingVariable {
            hook: spec.name.clone(),
            at: spec.at.clone(),
            field,
            variable,
        })
    };
    let method = reqwest::Method::from_bytes(spec.method.as_bytes())
        .ok()
        .filter(|_| spec.method.chars().all(|c| c.is_ascii_uppercase()))
        .ok_or_else(|| HookError::Method {
            hook: spec.name.clone(),
            at: spec.at.clone(),
            method: spec.method.clone(),
        })?;
    let setting = format!("hook `{}` ({}) url", spec.name, spec.at);
    let mut url = check_url(
        &expand_field("url".into(), &spec.url)?,
        &setting,
        "allow_http = true",
        spec.allow_http,
    )?;
    if !spec.query.is_empty() {
        let mut pairs = Vec::with_capacity(spec.query.len());
        for (k, v) in &spec.query {
            pairs.push((k.clone(), expand_field(format!("query.{k}"), v)?));
        }
        url.query_pairs_mut().extend_pairs(pairs);
    }
    let headers = spec
        .headers
        .iter()
        .map(|(k, v)| Ok((k.clone(), expand_field(format!("headers.{k}"), v)?)))
        .collect::<Result<Vec<_>, HookError>>()?;
    Ok(Hook {
        name: spec.name.clone(),
        events: vec![spec.event],
        method,
        url,
        headers,
        timeout: spec.timeout,
        retries: spec.retries,
        sync_headers: true,
    })
}

/// `text` with each `${NAME}` replaced by the variable's value; `Err(NAME)` for a variable
/// that is not set. A `$` not followed by `{` stays as it is.
pub(crate) fn expand(text: &str, get: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        out.push_str(&get(name).ok_or_else(|| name.to_owned())?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// One hook as `datsync config` shows it: header values masked, `${NAME}` references
/// unexpanded, a URL without its credentials.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HookLine {
    /// The name.
    pub name: String,
    /// The statuses it is called for (`on_success`, …).
    pub events: Vec<&'static str>,
    /// The method.
    pub method: String,
    /// The URL as written, without credentials (a query written in it masked).
    pub url: String,
    /// The query as written (values unexpanded).
    pub query: Vec<(String, String)>,
    /// Header names, each with `********`.
    pub headers: Vec<(String, String)>,
    /// The timeout of one attempt, in seconds.
    pub timeout_seconds: f64,
    /// Retries.
    pub retries: u32,
    /// Where it is declared: `file:PATH line N`, or the legacy variables.
    pub origin: String,
    /// Why it cannot be used, when it cannot (a bad legacy variable).
    pub error: Option<String>,
}

/// The lines of `datsync config` for the `declared` hooks and the legacy variables of `env`.
pub fn describe(declared: &[HookSpec], env: impl Fn(&str) -> Option<String>) -> Vec<HookLine> {
    const MASK: &str = "********";
    let get = |name: &str| {
        env(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let url_shown = |text: &str| match url::Url::parse(text) {
        Ok(u) if u.has_host() => {
            let mut shown = crate::http::shown(&u);
            if u.query().is_some() {
                shown.push('?');
                shown.push_str(MASK);
            }
            shown
        }
        _ => text.to_owned(),
    };
    let mut lines: Vec<HookLine> = declared
        .iter()
        .map(|spec| HookLine {
            name: spec.name.clone(),
            events: vec![spec.event.key()],
            method: spec.method.clone(),
            url: url_shown(&spec.url),
            query: spec.query.clone(),
            headers: spec
                .headers
                .iter()
                .map(|(k, _)| (k.clone(), MASK.to_owned()))
                .collect(),
            timeout_seconds: spec.timeout.as_secs_f64(),
            retries: spec.retries,
            origin: format!("file:{}", spec.at),
            error: None,
        })
        .collect();
    let origin = format!("env {CACHE_PREPOPULATION_ENV}, {TRANSPORT_INTELLIGENCE_URL_ENV}");
    match legacy_cache_hook(&get) {
        Ok(None) => {}
        Ok(Some(hook)) => lines.push(HookLine {
            name: hook.name,
            events: hook.events.iter().map(|e| e.key()).collect(),
            method: hook.method.to_string(),
            url: crate::http::shown(&hook.url),
            query: hook.url.query_pairs().into_owned().collect(),
            headers: Vec::new(),
            timeout_seconds: hook.timeout.as_secs_f64(),
            retries: hook.retries,
            origin,
            error: None,
        }),
        Err(e) => lines.push(HookLine {
            name: CACHE_HOOK_NAME.to_owned(),
            events: vec![HookEvent::OnSuccess.key(), HookEvent::OnPartial.key()],
            method: "POST".to_owned(),
            url: String::new(),
            query: Vec::new(),
            headers: Vec::new(),
            timeout_seconds: CACHE_HOOK_TIMEOUT.as_secs_f64(),
            retries: 0,
            origin,
            error: Some(e.to_string()),
        }),
    }
    lines
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn spec(url: &str) -> HookSpec {
        HookSpec {
            event: HookEvent::OnFailure,
            name: "pager".into(),
            method: "PUT".into(),
            url: url.into(),
            query: vec![("team".into(), "ops".into()), ("k".into(), "${KEY}".into())],
            headers: vec![("Authorization".into(), "Bearer ${TOKEN}".into())],
            timeout: Duration::from_secs(5),
            retries: 2,
            allow_http: false,
            at: "datsync.toml line 3".into(),
        }
    }

    #[test]
    fn the_legacy_variables_make_the_legacy_call() {
        let s = HookSettings::from_env(
            &[],
            env(&[(TRANSPORT_INTELLIGENCE_URL_ENV, "http://ti.internal:8080/")]),
        )
        .unwrap();
        let [hook] = s.hooks.as_slice() else {
            panic!("{s:?}")
        };
        assert_eq!(hook.name, CACHE_HOOK_NAME);
        assert_eq!(hook.method, reqwest::Method::POST);
        assert_eq!(
            hook.url.as_str(),
            "http://ti.internal:8080/api/v1/cache/repopulate?concurrency=15&cleanupFirst=true&clearFirst=true"
        );
        assert_eq!(hook.timeout, Duration::from_secs(30));
        assert_eq!(hook.retries, 0);
        assert_eq!(hook.events, [HookEvent::OnSuccess, HookEvent::OnPartial]);
        let count =
            |pairs: &[(&str, &str)]| HookSettings::from_env(&[], env(pairs)).unwrap().hooks.len();
        let url = (TRANSPORT_INTELLIGENCE_URL_ENV, "https://ti.example.com");
        assert_eq!(count(&[(CACHE_PREPOPULATION_ENV, "false"), url]), 0);
        assert_eq!(count(&[(CACHE_PREPOPULATION_ENV, "true"), url]), 1);
        assert_eq!(
            count(&[(CACHE_PREPOPULATION_ENV, "true")]),
            0,
            "no URL, no call"
        );
        assert_eq!(count(&[]), 0);
        let e = HookSettings::from_env(
            &[],
            env(&[
                (CACHE_PREPOPULATION_ENV, "perhaps"),
                (TRANSPORT_INTELLIGENCE_URL_ENV, "https://ti.example.com"),
            ]),
        )
        .unwrap_err();
        assert!(e.to_string().contains(CACHE_PREPOPULATION_ENV), "{e}");
    }

    #[test]
    fn a_declared_hook_takes_its_secrets_from_the_environment() {
        let s = HookSettings::from_env(
            &[spec("https://pager.example.com/v1/${PATH_PART}")],
            env(&[("TOKEN", "s3cret"), ("KEY", "a&b"), ("PATH_PART", "events")]),
        )
        .unwrap();
        let hook = &s.hooks[0];
        assert_eq!(hook.method, reqwest::Method::PUT);
        assert_eq!(
            hook.url.as_str(),
            "https://pager.example.com/v1/events?team=ops&k=a%26b"
        );
        assert_eq!(
            hook.headers,
            [("Authorization".to_owned(), "Bearer s3cret".to_owned())]
        );
        assert!(!format!("{s:?}").contains("s3cret"));
        let e = HookSettings::from_env(&[spec("https://pager.example.com/")], env(&[("KEY", "k")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("TOKEN") && e.contains("headers.Authorization") && e.contains("line 3"),
            "{e}"
        );
        let e = HookSettings::from_env(
            &[spec("http://pager.example.com/")],
            env(&[("KEY", "k"), ("TOKEN", "t")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("allow_http = true") && e.contains("pager"),
            "{e}"
        );
        let mut lower = spec("https://pager.example.com/");
        lower.method = "post".into();
        assert!(matches!(
            HookSettings::from_env(&[lower], env(&[("KEY", "k"), ("TOKEN", "t")])),
            Err(HookError::Method { .. })
        ));
    }

    #[test]
    fn references_are_expanded() {
        let get = env(&[("A", "1"), ("B", "two")]);
        assert_eq!(expand("x${A}y${B}$z${", &get).unwrap(), "x1ytwo$z${");
        assert_eq!(expand("${C}", &get).unwrap_err(), "C");
    }
}
