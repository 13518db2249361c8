//! Post-sync hooks: HTTP calls made after a sync reaches its final status, by that status —
//! `on_success` (SUCCESS), `on_partial` (PARTIAL_SUCCESS), `on_failure` (FAILED, BAD_INPUT)
//! — once the materialized views are refreshed (whatever came of it) and `sync_metadata`
//! holds the status.
//!
//! Hooks are declared in the configuration file (`[[hooks.on_success]]` tables: method, URL,
//! query, headers whose values may name variables as `${NAME}`, `timeout_seconds`,
//! `retries`); the legacy variables `ENABLE_CACHE_PREPOPULATION` and
//! `TRANSPORT_INTELLIGENCE_SERVICE_URL` make the legacy loader's cache warm-up call, a
//! built-in hook on SUCCESS and PARTIAL_SUCCESS ([`settings`]). Requests go through
//! [`crate::http`] (reqwest, rustls with ring, `DATSYNC_CA_FILE`).
//!
//! A declared hook's call also carries `X-Datsync-Sync-Id` and `X-Datsync-Status` (the
//! legacy call, made exactly as the legacy loader made it, does not).
//!
//! A hook's failure is never fatal: it is logged as a warning, counted in
//! `datsync_hook_failures_total{hook}` and in the summary's `hooks_failed`, and the sync's
//! status and exit code stay what they were. An attempt that times out, cannot connect or
//! gets a 5xx or 429 is tried again up to `retries` times, after 0.5 s, 1 s, 2 s, … (at most
//! 10 s); any other answer that is not 2xx (a 4xx, a redirect) is not.

mod settings;

use std::time::Duration;

pub use settings::{
    CACHE_HOOK_NAME, CACHE_HOOK_PATH, CACHE_HOOK_TIMEOUT, CACHE_PREPOPULATION_ENV,
    DEFAULT_HOOK_TIMEOUT, Hook, HookError, HookEvent, HookLine, HookSettings, HookSpec,
    MAX_HOOK_RETRIES, STATUS_HEADER, SYNC_ID_HEADER, TRANSPORT_INTELLIGENCE_URL_ENV, describe,
};

use crate::model::{SyncId, SyncStatus};

/// The pause before the first retry of a hook; it doubles each retry, up to
/// [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(500);
/// The longest pause between two attempts of a hook.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(10);

/// Calls the hooks; built once from [`HookSettings`] (reads the CA file; opens no
/// connection).
pub struct Hooks {
    hooks: Vec<(Hook, reqwest::Client)>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.hooks.iter().map(|(h, _)| h))
            .finish()
    }
}

impl Hooks {
    /// A client per hook, with the hook's timeout.
    pub fn new(settings: &HookSettings) -> Result<Self, HookError> {
        let hooks = settings
            .hooks
            .iter()
            .map(|h| Ok((h.clone(), crate::http::client(h.timeout, &settings.tls)?)))
            .collect::<Result<Vec<_>, HookError>>()?;
        Ok(Self { hooks })
    }

    /// The names of the hooks, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.hooks.iter().map(|(h, _)| h.name.as_str())
    }

    /// Calls every hook of `status`, one after the other. Never fails: returns the names of
    /// the hooks that failed after their retries (each logged as a warning).
    pub async fn run(&self, sync_id: &SyncId, status: SyncStatus) -> Vec<String> {
        let Some(event) = HookEvent::of(status) else {
            return Vec::new();
        };
        let mut failed = Vec::new();
        for (hook, client) in self.hooks.iter().filter(|(h, _)| h.events.contains(&event)) {
            if !call(hook, client, sync_id, status).await {
                failed.push(hook.name.clone());
            }
        }
        failed
    }
}

/// One hook, with its retries; whether it succeeded.
async fn call(hook: &Hook, client: &reqwest::Client, sync_id: &SyncId, status: SyncStatus) -> bool {
    let url = crate::http::shown(&hook.url);
    let event = HookEvent::of(status).map_or("", HookEvent::key);
    let mut headers = hook.headers.clone();
    if hook.sync_headers {
        headers.push((SYNC_ID_HEADER.to_owned(), sync_id.to_string()));
        headers.push((STATUS_HEADER.to_owned(), status.as_str().to_owned()));
    }
    let mut pause = FIRST_RETRY_PAUSE;
    for attempt in 0..=hook.retries {
        let result = crate::http::send_empty(client, &hook.method, &hook.url, &headers).await;
        match result {
            Ok(code) => {
                tracing::info!(%sync_id, hook = %hook.name, event, %url, status = code,
                    "hook called");
                return true;
            }
            Err(e) if e.retryable() && attempt < hook.retries => {
                tracing::warn!(%sync_id, hook = %hook.name, attempt = attempt + 1, error = %e,
                    "hook failed; trying again in {} ms", pause.as_millis());
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_RETRY_PAUSE);
            }
            Err(e) => {
                tracing::warn!(%sync_id, hook = %hook.name, event,
                    attempts = attempt + 1, error = %e,
                    "hook failed (the sync's status is unchanged)");
                return false;
            }
        }
    }
    false
}
