//! The manual re-run and status routes, forwarded as they are or as HTTP-trigger
//! invocations: 202 at once, a status URL that follows the sync, one answer for everything
//! that is not a source of the folder, and nothing about the database or the machine in any
//! answer.

use serde_json::{Value, json};

use super::*;
use crate::errors::reference;

/// The forwarded status of `sync`, polled until this handler no longer runs it.
fn settled_status(handler: &Handler, sync: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = handler.send("GET", &format!("/api/sync-ztdwr/{sync}"), None, &[]);
        assert_eq!(status, 200, "{body}");
        if body["running"] == false && body["status"] != "IN_PROGRESS" {
            return body;
        }
        assert!(Instant::now() < deadline, "still running: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_manual_rerun_answers_202_at_once_and_its_status_url_follows_the_sync() {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let work = Work::new(2_000, 91, MESSY);
    emulator.upload(&work.file, BLOB);
    let (reference_db, expected, _) = reference(&work, &sync_id(91));
    let db = TestDb::new();
    db.init();
    // Every insert waits while the test holds advisory lock 4242: the sync cannot end
    // before the test lets it.
    db.batch(
        "CREATE FUNCTION datsync_test_gate() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN NEW; END $f$;
         CREATE TRIGGER datsync_test_gate BEFORE INSERT ON public.transport_documents
           FOR EACH ROW EXECUTE FUNCTION datsync_test_gate();",
    );
    let gate = db.session();
    gate.query("SELECT pg_advisory_lock(4242)", &[]);
    let handler = Handler::start(work.path(), &db.url(), &[(key, &value)], &[]);

    let (status, head, body) = handler.raw(
        "POST",
        "/api/sync-ztdwr",
        Some(&json!({ "blob_name": "ZTDWR_20250129.dat" })),
        &[],
    );
    assert_eq!(status, 202, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    let sync = body["sync_id"].as_str().unwrap().to_owned();
    let url = format!("/api/sync-ztdwr/{sync}");
    assert_eq!(body["status_url"], url.as_str());
    assert_eq!(body["action"], "started");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("location: {url}")),
        "{head}"
    );
    // Answered while the sync is held inside its first chunk.
    let (status, now) = handler.send("GET", &url, None, &[]);
    assert_eq!(status, 200, "{now}");
    assert_eq!(
        (
            now["status"].as_str(),
            now["running"].as_bool(),
            now["finished"].as_bool()
        ),
        (Some("IN_PROGRESS"), Some(true), Some(false)),
        "{now}"
    );
    assert_eq!(now["attempts"], 1);
    drop(gate);

    let done = settled_status(&handler, &sync);
    assert_eq!(done["status"], expected["status"], "{done}");
    assert_eq!(done["rows_read"], expected["rows_read"], "{done}");
    assert_eq!(done["rows_rejected"], expected["rows_rejected"], "{done}");
    assert_eq!(done["finished"], true, "{done}");
    assert_eq!(done["file_name"], "ZTDWR_20250129.dat");
    assert_reveals_nothing(&done, &work);
    assert!(
        rows(&db) == rows(&reference_db),
        "the table differs from a plain run's"
    );
    // The outcome of the background run is logged with the request's correlation id.
    let cid = body["correlation_id"].as_str().unwrap();
    let ended = handler.stdout.wait_events("invocation outcome", 1);
    assert!(
        ended.iter().any(
            |e| e["fields"]["correlation_id"] == cid && e["fields"]["sync_id"] == sync.as_str()
        ),
        "{ended:?}"
    );

    // The same as an HTTP-trigger invocation: a finished source re-run by hand is loaded
    // again, as a new sync; its status through the status function's invocation.
    let invocation = json!({
        "Data": { "req": {
            "Url": "http://localhost:7071/api/sync-ztdwr", "Method": "POST", "Query": {},
            "Headers": { "Content-Type": ["application/json"] }, "Params": {},
            "Body": json!({ "blob_path": "data/hex-ztdwr/ZTDWR_20250129.dat" }).to_string()
        }},
        "Metadata": {}
    });
    let (status, reply) = handler.invoke("sync_ztdwr", &invocation);
    assert_eq!(status, 200, "{reply}");
    let res = &reply["Outputs"]["res"];
    assert_eq!(res["statusCode"], 202, "{reply}");
    let again: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
    let second = again["sync_id"].as_str().unwrap().to_owned();
    assert_ne!(second, sync);
    assert_eq!(
        again["correlation_id"], "6a0e1e2c-0000-4000-8000-00000000abcd",
        "the host's invocation id"
    );
    settled_status(&handler, &second);
    let status_invocation = json!({
        "Data": { "req": { "Url": format!("http://localhost:7071/api/sync-ztdwr/{second}"),
            "Method": "GET", "Query": {}, "Headers": {}, "Params": { "sync_id": second } } },
        "Metadata": { "sync_id": format!("\"{second}\"") }
    });
    let (status, reply) = handler.invoke("sync_ztdwr_status", &status_invocation);
    assert_eq!(status, 200, "{reply}");
    let res = &reply["Outputs"]["res"];
    assert_eq!(res["statusCode"], 200, "{reply}");
    let state: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
    assert_eq!(state["sync_id"], second.as_str());
    assert_eq!(state["finished"], true, "{state}");
    assert_eq!(sync_ids(&db).len(), 2);
}

#[test]
fn anything_but_a_source_of_the_folder_gets_one_answer_and_no_answer_tells_secrets() {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let work = Work::new(300, 92, CLEAN);
    let account = emulator.azurite.account();
    emulator
        .rt
        .block_on(account.create_container("secrets"))
        .unwrap();
    std::fs::write(
        work.path().join("host.json.secret"),
        "{\"masterKey\": \"hunter2\"}",
    )
    .unwrap();
    for url in [
        "az://secrets/host.json",
        "az://secrets/hex-ztdwr/x.dat",
        "az://data/other/x.dat",
        "az://data/hex-ztdwr/notes.txt",
    ] {
        emulator.upload(&work.path().join("host.json.secret"), url);
    }
    let db = TestDb::new();
    let handler = Handler::start(work.path(), &db.url(), &[(key, &value)], &[]);

    let mut answers = Vec::new();
    for body in [
        json!({"blob_path": "secrets/host.json"}),
        json!({"blob_path": "host.json", "container": "secrets"}),
        json!({"blob_path": "az://secrets/hex-ztdwr/x.dat"}),
        json!({"blob_path": "x.dat", "container": "secrets"}),
        json!({"blob_name": "notes.txt"}),
        json!({"blob_path": "data/other/x.dat"}),
        json!({"blob_path": "data/hex-ztdwr/../other/x.dat"}),
        json!({"blob_name": "../other/x.dat"}),
        json!({"blob_path": "azure-webjobs-secrets/app/host.json"}),
        // A source's name that does not exist: the same answer (no existence oracle).
        json!({"blob_name": "missing.dat"}),
    ] {
        let (status, answer) = handler.send("POST", "/api/sync-ztdwr", Some(&body), &[]);
        assert_eq!(status, 404, "{body}: {answer}");
        assert!(!answer.to_string().contains("hunter2"), "{answer}");
        assert_reveals_nothing(&answer, &work);
        answers.push(answer["error"].clone());
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    for body in [json!({}), json!({"blob_name": " "})] {
        let (status, answer) = handler.send("POST", "/api/sync-ztdwr", Some(&body), &[]);
        assert_eq!(status, 400, "{answer}");
    }
    let (status, answer) = handler.send(
        "POST",
        "/api/sync-ztdwr",
        Some(&Value::String("{\"blob_name\": \"hunter2".into())),
        &[],
    );
    assert_eq!(status, 400, "{answer}");
    assert!(!answer.to_string().contains("hunter2"), "{answer}");
    for id in [
        "sync_20250101_000000_deadbeef",
        "not-a-sync",
        "..%2F..%2Fetc",
    ] {
        let (status, answer) = handler.send("GET", &format!("/api/sync-ztdwr/{id}"), None, &[]);
        assert_eq!(status, 404, "{id}: {answer}");
        assert_eq!(answer["error"], "no such sync");
    }
    // Nothing was read or recorded.
    assert!(receipts(&db).is_empty());
    assert!(sync_ids(&db).is_empty());
    // Each refusal is in the log, with what was asked, under the answer's correlation id.
    let refused = handler.stdout.wait_events("invocation outcome", 10);
    assert!(
        refused.iter().any(|e| e["fields"]["action"] == "refused"
            && e["fields"]["blob"].as_str().unwrap().contains("secrets")),
        "{refused:?}"
    );
}

#[test]
fn an_unreachable_database_is_answered_without_its_user_host_or_port() {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let work = Work::new(300, 93, CLEAN);
    emulator.upload(&work.file, BLOB);
    // Nothing listens on port 1.
    let handler = Handler::start(
        work.path(),
        "postgresql://root:hunter2@127.0.0.1:1/none?connect_timeout=2",
        &[(key, &value)],
        &[],
    );
    let (status, health) = handler.send("GET", "/api/healthz", None, &[]);
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "unhealthy");
    let (status, reply) = handler.invoke("healthz", &json!({"Data": {}, "Metadata": {}}));
    assert_eq!(status, 200);
    assert_eq!(reply["Outputs"]["res"]["statusCode"], 503, "{reply}");
    let (status, rerun) = handler.send(
        "POST",
        "/api/sync-ztdwr",
        Some(&json!({"blob_name": "ZTDWR_20250129.dat"})),
        &[],
    );
    assert_eq!(status, 503, "{rerun}");
    let (status, state) = handler.send(
        "GET",
        "/api/sync-ztdwr/sync_20250101_000000_deadbeef",
        None,
        &[],
    );
    assert_eq!(status, 503, "{state}");
    for answer in [&health, &reply, &rerun, &state] {
        assert!(!answer.to_string().contains("hunter2"), "{answer}");
        assert!(!answer.to_string().contains(":1/"), "{answer}");
        assert_reveals_nothing(answer, &work);
        assert!(answer.to_string().contains("correlation_id"), "{answer}");
    }
    // The operator finds the reason in the log, by the correlation id.
    let cid = rerun["correlation_id"].as_str().unwrap();
    let logged = handler
        .stderr
        .wait_for("the re-run's error", |l| l.contains(cid));
    assert!(logged.contains("cannot connect"), "{logged}");
    assert!(!logged.contains("hunter2"), "{logged}");
}

/// Issue 22: an old file re-run by hand after a newer one never rolls rows back; its rows are
/// counted as older. The profile orders rows by their change date and time.
#[test]
fn an_old_file_rerun_by_hand_never_rolls_the_table_back() {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("versioned.toml");
    std::fs::write(
        &profile,
        crate::versions::PROFILE.replace("'V_(", "'ZTDWR_("),
    )
    .unwrap();
    for (name, note, date) in [
        ("ZTDWR_20250130.dat", "old", "20250130"),
        ("ZTDWR_20250131.dat", "new", "20250131"),
    ] {
        let mut text = String::from("id|note|change_date|change_time\n");
        for k in ["k1", "k2", "k3"] {
            text.push_str(&[k, note, date, "101500"].join("|"));
            text.push('\n');
        }
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        emulator.upload(&path, &format!("az://data/hex-ztdwr/{name}"));
    }
    let db = TestDb::new();
    let profile_arg = profile.to_str().unwrap();
    let handler = Handler::start(
        dir.path(),
        &db.url(),
        &[(key, &value)],
        &["--profile", profile_arg],
    );
    let rerun = |name: &str| {
        let body = json!({ "blob_name": name });
        let (status, answer) = handler.send("POST", "/api/sync-ztdwr", Some(&body), &[]);
        assert_eq!(status, 202, "{answer}");
        let sync = answer["sync_id"].as_str().unwrap().to_owned();
        settled_status(&handler, &sync);
        sync
    };
    let notes = || -> Vec<String> {
        db.query("SELECT note FROM vdocs ORDER BY id", &[])
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    rerun("ZTDWR_20250131.dat");
    let late = rerun("ZTDWR_20250130.dat");
    assert_eq!(notes(), ["new", "new", "new"]);
    let again = rerun("ZTDWR_20250130.dat");
    assert_ne!(again, late);
    assert_eq!(
        notes(),
        ["new", "new", "new"],
        "the manual re-run rolled rows back"
    );
    for sync in [late, again] {
        let m = db.metadata(&sync).unwrap();
        assert_eq!(m["records_skipped_older"], 3, "{m}");
        assert_eq!(m["records_updated"], 0, "{m}");
    }
}
