//! Refreshing materialized views after a sync: `CONCURRENTLY` first, plain as fallback;
//! a missing or failing view is reported, never fatal.

use tokio_postgres::Client;

use crate::pg::quote_ident;
use crate::profile::Profile;

/// What happened to one view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewOutcome {
    /// Refreshed; `concurrently` tells which form worked.
    Refreshed {
        /// `REFRESH MATERIALIZED VIEW CONCURRENTLY` worked.
        concurrently: bool,
    },
    /// No relation of that name exists.
    Missing,
    /// The relation exists but is not a materialized view.
    NotAView,
    /// Both forms failed.
    Failed {
        /// SQLSTATE of the last failure, when the server sent one.
        sqlstate: Option<String>,
        /// The last failure.
        message: String,
    },
}

/// One view and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewRefresh {
    /// The view name as configured.
    pub view: String,
    /// What happened.
    pub outcome: ViewOutcome,
}

/// The views to refresh: the configured list (`MATERIALIZED_VIEWS`, see
/// `config::Settings::materialized_views`) when set, else the profile's list.
pub fn views_to_refresh(configured: Option<&[String]>, profile: &Profile) -> Vec<String> {
    configured.map_or_else(|| profile.materialized_views.clone(), <[String]>::to_vec)
}

/// Quotes `view` or `schema.view`.
fn quote_view(view: &str) -> String {
    match view.split_once('.') {
        Some((schema, name)) => format!("{}.{}", quote_ident(schema), quote_ident(name)),
        None => quote_ident(view),
    }
}

/// Refreshes each view in order and reports each outcome.
pub async fn refresh_materialized_views(client: &Client, views: &[String]) -> Vec<ViewRefresh> {
    let mut out = Vec::with_capacity(views.len());
    for view in views {
        let outcome = refresh_one(client, view).await;
        match &outcome {
            ViewOutcome::Refreshed { concurrently } => {
                tracing::info!(view, concurrently, "materialized view refreshed");
            }
            ViewOutcome::Missing => tracing::debug!(view, "materialized view does not exist"),
            other => tracing::warn!(view, outcome = ?other, "materialized view not refreshed"),
        }
        out.push(ViewRefresh {
            view: view.clone(),
            outcome,
        });
    }
    out
}

async fn refresh_one(client: &Client, view: &str) -> ViewOutcome {
    let quoted = quote_view(view);
    let kind = client
        .query_opt(
            "SELECT c.relkind::text FROM pg_catalog.pg_class c WHERE c.oid = to_regclass($1)",
            &[&quoted],
        )
        .await;
    match kind {
        Ok(None) => return ViewOutcome::Missing,
        Ok(Some(r)) if r.get::<_, String>(0) != "m" => return ViewOutcome::NotAView,
        Ok(Some(_)) => {}
        Err(e) => return failed(&e),
    }
    let concurrent = format!("REFRESH MATERIALIZED VIEW CONCURRENTLY {quoted}");
    if client.batch_execute(&concurrent).await.is_ok() {
        return ViewOutcome::Refreshed { concurrently: true };
    }
    match client
        .batch_execute(&format!("REFRESH MATERIALIZED VIEW {quoted}"))
        .await
    {
        Ok(()) => ViewOutcome::Refreshed {
            concurrently: false,
        },
        Err(e) => failed(&e),
    }
}

fn failed(e: &tokio_postgres::Error) -> ViewOutcome {
    ViewOutcome::Failed {
        sqlstate: e.code().map(|c| c.code().to_owned()),
        message: e
            .as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_views_override_the_profile() {
        let p = Profile::ztdwr();
        assert_eq!(views_to_refresh(None, &p), p.materialized_views);
        let configured = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(views_to_refresh(Some(&configured), &p), configured);
    }

    #[test]
    fn view_names_are_quoted() {
        assert_eq!(quote_view("s.v"), "\"s\".\"v\"");
        assert_eq!(quote_view("v\"x"), "\"v\"\"x\"");
    }
}
