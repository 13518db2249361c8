//! A sync that ends BAD_INPUT sends its alert: the webhook channel, received by a small HTTP
//! server on loopback that the test runs (the SMTP channel shares the same report and is
//! tested with a real SMTP conversation in the library's `alert` tests).

use std::net::TcpListener;
use std::time::Duration;

use crate::common::{Rates, TestDb, Work, fresh_sync_id};

#[test]
fn a_bad_input_sync_posts_its_alert_to_the_webhook() {
    let work = Work::new(
        1_000,
        35,
        Rates {
            invalid: 0.5,
            dup: 0.0,
            ragged: 0.0,
        },
    );
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let sync = fresh_sync_id();
    let (url, received) = crate::common::webhook_server();
    let out = work.run(
        &db,
        &ck,
        &["--sync-id", &sync],
        &[("ALERT_WEBHOOK_URL", &url)],
    );
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let (request_line, alert) = received.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(
        request_line.starts_with("POST /hooks/datsync "),
        "{request_line}"
    );
    assert_eq!(alert["sync_id"], sync.as_str());
    assert_eq!(alert["status"], "BAD_INPUT");
    assert_eq!(alert["subject"], format!("Error: ZTDWR Sync {sync}"));
    let error = alert["error_message"].as_str().unwrap();
    assert!(error.contains("VALIDATION_ERROR_THRESHOLD"), "{error}");
    let errors = alert["validation_errors"].as_array().unwrap();
    assert!(
        !errors.is_empty(),
        "the first validation errors travel with the alert"
    );
    assert!(errors.iter().all(|e| e["line"].as_u64().unwrap() >= 2));
    assert!(alert["validation_errors_count"].as_u64().unwrap() >= errors.len() as u64);
    // sync_metadata keeps the first errors (up to 100; the alert lists fewer), though the
    // chunk was never committed.
    let m = db.metadata(&sync).unwrap();
    let stored = m["validation_errors"].as_array().unwrap();
    assert!(
        stored.len() >= errors.len(),
        "{} < {}",
        stored.len(),
        errors.len()
    );
    assert_eq!(stored[0]["line"], errors[0]["line"]);
}

#[test]
fn a_successful_sync_sends_no_alert() {
    let work = Work::new(300, 36, crate::common::CLEAN);
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let out = work.run(&db, &ck, &[], &[("ALERT_WEBHOOK_URL", &url)]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert_eq!(out.summary()["status"], "SUCCESS");
    // The run is over: had it posted, the connection would be waiting in the backlog.
    assert!(listener.accept().is_err(), "no alert for a SUCCESS");
}

/// The webhook over HTTPS, its certificate authority trusted the way OpenSSL programs are
/// told to (`SSL_CERT_FILE`); and a plain `http://` webhook to a host that is not loopback is
/// refused before anything is loaded.
#[test]
fn a_failed_sync_posts_its_alert_to_an_https_webhook() {
    let work = Work::new(
        1_000,
        36,
        Rates {
            invalid: 0.5,
            dup: 0.0,
            ragged: 0.0,
        },
    );
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let sync = fresh_sync_id();
    let server = datsync::TestHttpServer::https(&[202]).unwrap();
    let ca = server.write_ca(work.path()).unwrap();
    let url = server.url("/hooks/datsync");
    let out = work.run(
        &db,
        &ck,
        &["--sync-id", &sync],
        &[
            ("ALERT_WEBHOOK_URL", &url),
            ("SSL_CERT_FILE", ca.to_str().unwrap()),
        ],
    );
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    let req = server.next_request(Duration::from_secs(30)).unwrap();
    assert!(req.tls, "the alert went over TLS");
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/hooks/datsync")
    );
    assert_eq!(req.json()["sync_id"], sync.as_str());
    assert_eq!(req.json()["status"], "BAD_INPUT");

    let out = work.run(
        &db,
        &ck,
        &["--fresh"],
        &[("ALERT_WEBHOOK_URL", "http://hooks.example.com/datsync")],
    );
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("ALERT_WEBHOOK_ALLOW_HTTP") && out.stderr.contains("plain text"),
        "{}",
        out.describe()
    );
}
