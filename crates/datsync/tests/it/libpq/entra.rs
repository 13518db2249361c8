//! `DB_AUTH=entra`: a Microsoft Entra token from the managed identity is the password. A
//! fake identity endpoint on loopback (a real HTTP conversation) hands out tokens, and a
//! private server whose role's password is the current token checks that datsync sends it,
//! reuses it while it is fresh and fetches a new one before it expires.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use datsync::{ENTRA_RESOURCE, ErrorClass, PgSettings, connect};

use super::{Certs, admin, stop, tls_server};

/// One request the endpoint received.
#[derive(Debug, Clone)]
struct Request {
    path: String,
    query: HashMap<String, String>,
    headers: HashMap<String, String>,
    form: HashMap<String, String>,
}

#[derive(Default)]
struct Endpoint {
    /// Tokens to hand out, with their lifetime in seconds; an empty queue answers 400.
    tokens: VecDeque<(String, u64)>,
    requests: Vec<Request>,
}

type Shared = Arc<Mutex<Endpoint>>;

async fn token(
    State(state): State<Shared>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut st = state.lock().unwrap();
    st.requests.push(Request {
        path: uri.path().to_owned(),
        query: url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        form: url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect(),
    });
    let Some((token, secs)) = st.tokens.pop_front() else {
        return (
            StatusCode::BAD_REQUEST,
            r#"{"error":"invalid_request","error_description":"Identity not found"}"#,
        )
            .into_response();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // App Service answers expires_on as a string, IMDS both, Entra expires_in as a number.
    axum::Json(serde_json::json!({
        "access_token": token,
        "expires_on": (now + secs).to_string(),
        "expires_in": secs,
        "resource": ENTRA_RESOURCE,
        "token_type": "Bearer",
    }))
    .into_response()
}

async fn start_endpoint() -> (Shared, u16, tokio::task::JoinHandle<()>) {
    let state: Shared = Arc::default();
    let app = axum::Router::new()
        .fallback(axum::routing::any(token))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (state, port, task)
}

async fn who(settings: &PgSettings) -> Result<(tokio_postgres::Client, String), String> {
    let client = connect(settings).await.map_err(|e| e.to_string())?;
    let user: String = client
        .query_one("select current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    Ok((client, user))
}

#[tokio::test]
async fn entra_tokens_are_the_password_and_are_refreshed_before_they_expire() {
    let certs = Certs::new();
    let server = tls_server(&certs).await;
    let (state, port, task) = start_endpoint().await;
    let set_password = |pw: &str| format!("ALTER ROLE entrauser PASSWORD '{pw}'");
    let give = |token: &str, secs: u64| {
        state
            .lock()
            .unwrap()
            .tokens
            .push_back((token.to_owned(), secs));
    };
    let requests = || state.lock().unwrap().requests.clone();
    let mut env: HashMap<String, String> = [
        ("DB_AUTH", "entra".to_owned()),
        (
            "IDENTITY_ENDPOINT",
            format!("http://127.0.0.1:{port}/msi/token"),
        ),
        ("IDENTITY_HEADER", "h3ader-s3cret".to_owned()),
        ("PGHOST", "127.0.0.1".to_owned()),
        ("PGPORT", server.port().to_string()),
        ("PGUSER", "entrauser".to_owned()),
        ("PGDATABASE", "postgres".to_owned()),
        ("HOME", "/nonexistent-datsync-home".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();

    // App Service / Functions: a token about to expire is fetched again for each new
    // connection; a fresh one is reused.
    admin(&server, &set_password("token-1")).await;
    give("token-1", 60);
    let settings = PgSettings::from_env(&env).unwrap();
    let (first, user) = who(&settings).await.unwrap();
    assert_eq!(user, "entrauser");
    let r = requests();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].path, "/msi/token");
    assert_eq!(r[0].query["resource"], ENTRA_RESOURCE);
    assert_eq!(r[0].query["api-version"], "2019-08-01");
    assert_eq!(r[0].headers["x-identity-header"], "h3ader-s3cret");
    admin(&server, &set_password("token-2")).await;
    give("token-2", 3600);
    let (_second, _) = who(&settings).await.unwrap();
    assert_eq!(requests().len(), 2, "token-1 was within the refresh margin");
    let (_third, _) = who(&settings).await.unwrap();
    assert_eq!(requests().len(), 2, "token-2 is fresh and reused");
    // A connection made with the old token stays usable.
    first.simple_query("select 1").await.unwrap();

    // The endpoint refuses: the message names it, never the secret header.
    let refused = PgSettings::from_env(&env).unwrap();
    let e = connect(&refused).await.unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains(&format!("cannot get a Microsoft Entra token from http://127.0.0.1:{port}/msi/token: HTTP 400 Bad Request")),
        "{m}"
    );
    assert!(
        m.contains("Identity not found") && !m.contains("h3ader-s3cret"),
        "{m}"
    );
    assert_eq!(e.class(), ErrorClass::Fatal);

    other_identities(&mut env, port, &state).await;

    task.abort();
    stop(server).await;
}

/// Virtual machines (IMDS, a user-assigned identity) and AKS workload identity.
async fn other_identities(env: &mut HashMap<String, String>, port: u16, state: &Shared) {
    let give = |token: &str, secs: u64| {
        state
            .lock()
            .unwrap()
            .tokens
            .push_back((token.to_owned(), secs));
    };
    let requests = || state.lock().unwrap().requests.clone();
    // Virtual machines: the instance metadata service, with a user-assigned identity.
    env.remove("IDENTITY_ENDPOINT");
    env.remove("IDENTITY_HEADER");
    env.insert(
        "DATSYNC_IMDS_ENDPOINT".into(),
        format!("http://127.0.0.1:{port}/metadata/identity/oauth2/token"),
    );
    env.insert("AZURE_CLIENT_ID".into(), "client-1".into());
    give("token-2", 3600);
    let (_c, user) = who(&PgSettings::from_env(env).unwrap()).await.unwrap();
    assert_eq!(user, "entrauser");
    let r = requests().pop().unwrap();
    assert_eq!(r.path, "/metadata/identity/oauth2/token");
    assert_eq!(r.query["api-version"], "2018-02-01");
    assert_eq!(r.query["resource"], ENTRA_RESOURCE);
    assert_eq!(r.query["client_id"], "client-1");
    assert_eq!(r.headers["metadata"], "true");

    // AKS workload identity: the federated token exchanged at the authority.
    let dir = tempfile::tempdir().unwrap();
    let assertion = dir.path().join("token");
    std::fs::write(&assertion, "federated-jwt\n").unwrap();
    env.remove("DATSYNC_IMDS_ENDPOINT");
    env.insert(
        "AZURE_FEDERATED_TOKEN_FILE".into(),
        assertion.display().to_string(),
    );
    env.insert("AZURE_TENANT_ID".into(), "tenant-1".into());
    env.insert(
        "AZURE_AUTHORITY_HOST".into(),
        format!("http://127.0.0.1:{port}/"),
    );
    give("token-2", 3600);
    let (_c, user) = who(&PgSettings::from_env(env).unwrap()).await.unwrap();
    assert_eq!(user, "entrauser");
    let r = requests().pop().unwrap();
    assert_eq!(r.path, "/tenant-1/oauth2/v2.0/token");
    assert_eq!(r.form["client_assertion"], "federated-jwt");
    assert_eq!(r.form["client_id"], "client-1");
    assert_eq!(r.form["grant_type"], "client_credentials");
    assert_eq!(r.form["scope"], format!("{ENTRA_RESOURCE}/.default"));

    // An identity endpoint that does not answer is worth retrying later.
    env.insert("AZURE_AUTHORITY_HOST".into(), "http://127.0.0.1:1/".into());
    let e = connect(&PgSettings::from_env(env).unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient, "{e}");
}
