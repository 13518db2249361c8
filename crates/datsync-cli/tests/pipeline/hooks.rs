//! Post-sync hooks through the real binary and the real PostgreSQL, received by a local
//! HTTP(S) server the test runs (`datsync::TestHttpServer`, HTTPS with a certificate
//! authority of its own): each final status calls its hooks with the declared method, path,
//! query and headers (values from the environment); the legacy variables make the legacy
//! loader's cache warm-up call, after a view refresh that failed too; a hook that times out or
//! answers 500 is retried, then counted, and the sync's status and exit code do not change.

use std::path::{Path, PathBuf};
use std::time::Duration;

use datsync::{RecordedRequest, TestHttpServer};

use crate::common::{CLEAN, Outcome, Rates, TABLE, TestDb, Work, datsync, u};

/// How long a test waits for a request it expects (the binary has exited by then: the
/// request is already recorded; this is only a guard).
const GUARD: Duration = Duration::from_secs(30);

/// Rows rejected under the threshold: PARTIAL_SUCCESS.
const SOME_INVALID: Rates = Rates {
    invalid: 0.03,
    dup: 0.0,
    ragged: 0.0,
};

/// Rows rejected over the threshold: BAD_INPUT.
const MOSTLY_INVALID: Rates = Rates {
    invalid: 0.5,
    dup: 0.0,
    ragged: 0.0,
};

/// Writes `datsync.toml` in `dir` with `text`, the server's CA as `[http] ca_file` first.
fn config(dir: &Path, server: &TestHttpServer, text: &str) -> PathBuf {
    let ca = server.write_ca(dir).unwrap();
    let path = dir.join("datsync.toml");
    std::fs::write(
        &path,
        format!("[http]\nca_file = {:?}\n\n{text}", ca.to_str().unwrap()),
    )
    .unwrap();
    path
}

/// One hook per status, each to a path of its own on `server`.
fn three_hooks(server: &TestHttpServer) -> String {
    format!(
        r#"
[[hooks.on_success]]
name = "done"
method = "PUT"
url = "{}"
query = {{ source = "datsync", n = 3 }}
headers = {{ Authorization = "Bearer ${{HOOK_TOKEN}}", X-Team = "literal-team-secret" }}
timeout_seconds = 5

[[hooks.on_partial]]
name = "partial"
url = "{}"

[[hooks.on_failure]]
name = "failure"
method = "GET"
url = "{}"
headers = {{ X-Token = "${{HOOK_TOKEN}}" }}
"#,
        server.url("/hooks/done"),
        server.url("/hooks/partial"),
        server.url("/hooks/failure"),
    )
}

/// The only request `server` received during a run that is over.
fn only_request(server: &TestHttpServer, out: &Outcome) -> RecordedRequest {
    let first = server
        .next_request(GUARD)
        .unwrap_or_else(|| panic!("no hook called\n{}", out.describe()));
    let more = server.received();
    assert!(more.is_empty(), "one request only: {first:?} then {more:?}");
    first
}

#[test]
fn each_final_status_calls_its_hooks() {
    let server = TestHttpServer::https(&[204]).unwrap();
    let success = Work::new(300, 61, CLEAN);
    let file = config(success.path(), &server, &three_hooks(&server));
    let file = file.to_str().unwrap();
    let env = [("DATSYNC_CONFIG", file), ("HOOK_TOKEN", "t0ken-from-env")];

    // SUCCESS: on_success, as declared, the header's value from the environment.
    let db = TestDb::new();
    let out = success.run(&db, &success.checkpoints("ck"), &[], &env);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let s = out.summary();
    assert_eq!(s["status"], "SUCCESS");
    assert_eq!(u(&s, "hooks_failed"), 0);
    let req = only_request(&server, &out);
    assert!(req.tls, "the hook went over TLS");
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("PUT", "/hooks/done")
    );
    assert_eq!(
        req.query_pairs(),
        [
            ("n".into(), "3".into()),
            ("source".into(), "datsync".into())
        ],
        "the query's parameters in name order"
    );
    assert_eq!(req.header("authorization"), Some("Bearer t0ken-from-env"));
    assert_eq!(req.header("x-team"), Some("literal-team-secret"));
    assert_eq!(req.header("x-datsync-sync-id"), s["sync_id"].as_str());
    assert_eq!(req.header("x-datsync-status"), Some("SUCCESS"));
    assert!(req.body.is_empty());

    // PARTIAL_SUCCESS (rows rejected under the threshold): on_partial, POST by default.
    let partial = Work::new(1_000, 62, SOME_INVALID);
    let db = TestDb::new();
    let out = partial.run(&db, &partial.checkpoints("ck"), &[], &env);
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    assert_eq!(out.summary()["status"], "PARTIAL_SUCCESS");
    let req = only_request(&server, &out);
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/hooks/partial")
    );
    assert_eq!(req.header("content-length"), Some("0"));
    assert_eq!(req.header("x-datsync-status"), Some("PARTIAL_SUCCESS"));

    // FAILED (a fatal database error on every row): on_failure.
    let db = TestDb::new();
    failing_trigger_on_every_row(&db);
    let out = success.run(&db, &success.checkpoints("ck_failed"), &[], &env);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert_eq!(out.summary()["status"], "FAILED");
    let req = only_request(&server, &out);
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("GET", "/hooks/failure")
    );
    assert_eq!(req.header("x-token"), Some("t0ken-from-env"));
    assert_eq!(req.header("x-datsync-status"), Some("FAILED"));

    // BAD_INPUT: on_failure too.
    let bad = Work::new(1_000, 63, MOSTLY_INVALID);
    let db = TestDb::new();
    let out = bad.run(&db, &bad.checkpoints("ck"), &[], &env);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert_eq!(out.summary()["status"], "BAD_INPUT");
    let req = only_request(&server, &out);
    assert_eq!(req.path, "/hooks/failure");
    assert_eq!(req.header("x-datsync-status"), Some("BAD_INPUT"));
    assert_eq!(
        req.header("x-datsync-sync-id"),
        out.summary()["sync_id"].as_str()
    );

    // `datsync config` shows the hooks, header values masked, references unexpanded.
    let shown = datsync(success.path(), &["config"], &env);
    assert_eq!(shown.code(), Some(0), "{}", shown.describe());
    assert!(
        shown
            .stdout
            .contains("hook done (on_success) = PUT https://localhost:")
            && shown.stdout.contains("/hooks/done?n=3&source=datsync")
            && shown.stdout.contains("Authorization: ********")
            && !shown.stdout.contains("literal-team-secret")
            && !shown.stdout.contains("t0ken-from-env"),
        "{}",
        shown.stdout
    );
    // A variable a hook names and the environment lacks stops the run before it loads.
    let db = TestDb::new();
    let out = success.run(&db, &success.checkpoints("ck_unset"), &[], &env[..1]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("needs the variable HOOK_TOKEN")
            && out.stderr.contains("datsync.toml line"),
        "{}",
        out.describe()
    );
    assert!(server.received().is_empty());
}

/// A trigger that fails every insert into the target with a fatal SQLSTATE.
fn failing_trigger_on_every_row(db: &TestDb) {
    db.init();
    db.batch(&format!(
        "CREATE FUNCTION datsync_test_fail_all() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN
           RAISE EXCEPTION 'injected failure 22012' USING ERRCODE = '22012';
         END $f$;
         CREATE TRIGGER datsync_test_fail_all BEFORE INSERT ON {TABLE}
           FOR EACH ROW EXECUTE FUNCTION datsync_test_fail_all();"
    ));
}

/// `ENABLE_CACHE_PREPOPULATION` (default true) and `TRANSPORT_INTELLIGENCE_SERVICE_URL`: a
/// POST of no body to `{url}/api/v1/cache/repopulate?concurrency=15&cleanupFirst=true&
/// clearFirst=true` after a sync that loaded its rows (SUCCESS, PARTIAL_SUCCESS), after the
/// views — here one whose refresh fails; none after a FAILED sync, none when turned off.
#[test]
fn the_legacy_variables_make_the_legacy_cache_call() {
    let server = TestHttpServer::http(&[200]).unwrap();
    let base = server.url("/ti/");
    let work = Work::new(300, 64, CLEAN);
    let legacy = [
        ("TRANSPORT_INTELLIGENCE_SERVICE_URL", base.as_str()),
        ("MATERIALIZED_VIEWS", "public.mv_broken"),
    ];
    let db = TestDb::new();
    db.init();
    // A view whose refresh always fails (division by zero).
    db.batch(&format!(
        "CREATE MATERIALIZED VIEW public.mv_broken AS \
         SELECT 1 / (count(*) - count(*)) AS x FROM {TABLE} WITH NO DATA"
    ));
    let metrics = work.path().join("metrics.prom");
    let out = work.run(
        &db,
        &work.checkpoints("ck"),
        &["--metrics-file", metrics.to_str().unwrap()],
        &legacy,
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(out.summary()["status"], "SUCCESS");
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        text.contains("datsync_hook_failures_total{hook=\"cache_prepopulation\"} 0\n"),
        "{text}"
    );
    assert!(
        out.stderr.contains("mv_broken"),
        "the view's refresh failed first: {}",
        out.describe()
    );
    let req = only_request(&server, &out);
    assert_eq!(
        (req.method.as_str(), req.path.as_str(), req.query.as_deref()),
        (
            "POST",
            "/ti/api/v1/cache/repopulate",
            Some("concurrency=15&cleanupFirst=true&clearFirst=true")
        )
    );
    assert!(req.body.is_empty());
    assert_eq!(req.header("content-length"), Some("0"));
    assert_eq!(req.header("content-type"), None);
    assert_eq!(req.header("authorization"), None);
    assert_eq!(
        req.header("x-datsync-sync-id"),
        None,
        "the legacy request, nothing added"
    );

    // PARTIAL_SUCCESS: called too; ENABLE_CACHE_PREPOPULATION=true says the default.
    let partial = Work::new(1_000, 65, SOME_INVALID);
    let db = TestDb::new();
    let on = [legacy[0], ("ENABLE_CACHE_PREPOPULATION", "true")];
    let out = partial.run(&db, &partial.checkpoints("ck"), &[], &on);
    assert_eq!(out.code(), Some(2), "{}", out.describe());
    assert_eq!(
        only_request(&server, &out).path,
        "/ti/api/v1/cache/repopulate"
    );

    // FAILED: the legacy loader warmed the cache only after a load; no call.
    let db = TestDb::new();
    failing_trigger_on_every_row(&db);
    let out = work.run(&db, &work.checkpoints("ck_failed"), &[], &on);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert_eq!(out.summary()["status"], "FAILED");
    // Turned off: no call after a SUCCESS either.
    let db = TestDb::new();
    let off = [legacy[0], ("ENABLE_CACHE_PREPOPULATION", "false")];
    let out = work.run(&db, &work.checkpoints("ck_off"), &[], &off);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(out.summary()["status"], "SUCCESS");
    let calls = server.received();
    assert!(
        calls.is_empty(),
        "no call after FAILED or when off: {calls:?}"
    );
}

/// A hook that answers 500 and one that never answers are tried `retries` more times, then
/// counted (summary, `datsync_hook_failures_total`); a 404 is not retried; the sync ends
/// SUCCESS, exit 0, as without hooks.
#[test]
fn a_failing_hook_is_retried_then_counted_and_changes_nothing() {
    let broken = TestHttpServer::https(&[500]).unwrap();
    let silent = TestHttpServer::https(&[TestHttpServer::NO_ANSWER]).unwrap();
    let missing = TestHttpServer::https(&[404]).unwrap();
    let work = Work::new(300, 66, CLEAN);
    // One CA file each: write the three, trust them all through one bundle.
    let bundle: String = [&broken, &silent, &missing]
        .iter()
        .map(|s| s.ca_pem().unwrap().to_owned())
        .collect();
    let ca = work.path().join("bundle.pem");
    std::fs::write(&ca, bundle).unwrap();
    let text = format!(
        r#"[http]
ca_file = {:?}

[[hooks.on_success]]
name = "broken"
url = "{}"
retries = 2

[[hooks.on_success]]
name = "silent"
url = "{}"
timeout_seconds = 2
retries = 1

[[hooks.on_success]]
name = "missing"
url = "{}"
retries = 3
"#,
        ca.to_str().unwrap(),
        broken.url("/b"),
        silent.url("/s"),
        missing.url("/m"),
    );
    let file = work.path().join("datsync.toml");
    std::fs::write(&file, text).unwrap();
    let metrics = work.path().join("metrics.prom");
    let db = TestDb::new();
    let out = work.run(
        &db,
        &work.checkpoints("ck"),
        &["--metrics-file", metrics.to_str().unwrap()],
        &[("DATSYNC_CONFIG", file.to_str().unwrap())],
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let s = out.summary();
    assert_eq!(s["status"], "SUCCESS");
    assert_eq!(u(&s, "hooks_failed"), 3);
    let m = db.metadata(s["sync_id"].as_str().unwrap()).unwrap();
    assert_eq!(m["status"], "SUCCESS");
    assert_eq!(broken.received().len(), 3, "1 + 2 retries");
    assert_eq!(silent.received().len(), 2, "1 + 1 retry");
    assert_eq!(missing.received().len(), 1, "a 404 is not retried");
    for name in ["broken", "silent", "missing"] {
        assert!(
            out.stderr.contains(name),
            "{name} logged: {}",
            out.describe()
        );
    }
    let text = std::fs::read_to_string(&metrics).unwrap();
    for name in ["broken", "silent", "missing"] {
        let line = format!("datsync_hook_failures_total{{hook=\"{name}\"}} 1\n");
        assert!(text.contains(&line), "{line} in\n{text}");
    }
}

/// `watch` runs its syncs through the same final steps: each file's SUCCESS calls the hook.
#[test]
fn watch_calls_the_hooks_of_each_sync() {
    let server = TestHttpServer::https(&[200]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("in");
    std::fs::create_dir(&inbox).unwrap();
    for (name, seed) in [("a.dat", 67), ("b.dat", 68)] {
        crate::common::write_sample(&inbox.join(name), 200, seed, CLEAN);
    }
    let text = format!(
        "[[hooks.on_success]]\nname = \"loaded\"\nurl = \"{}\"\n",
        server.url("/loaded")
    );
    let file = config(dir.path(), &server, &text);
    let db = TestDb::new();
    let url = db.url();
    let ck = dir.path().join("ck");
    let out = datsync(
        dir.path(),
        &[
            "watch",
            inbox.to_str().unwrap(),
            "--once",
            "--database-url",
            &url,
            "--checkpoint-dir",
            ck.to_str().unwrap(),
            "--json",
        ],
        &[("DATSYNC_CONFIG", file.to_str().unwrap())],
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let first = server.next_request(GUARD).unwrap();
    let mut calls = vec![first];
    calls.extend(server.received());
    assert_eq!(calls.len(), 2, "one call per sync: {calls:?}");
    assert!(
        calls
            .iter()
            .all(|r| r.path == "/loaded" && r.method == "POST")
    );
}
