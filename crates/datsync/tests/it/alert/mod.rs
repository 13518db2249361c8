//! Alerts against real servers on loopback: an SMTP conversation with a server the test
//! starts, a webhook POST to an HTTP and an HTTPS server the test starts (its certificate
//! authority trusted through `DATSYNC_CA_FILE`, or not), and unreachable servers.

mod smtp_server;

use std::collections::HashMap;
use std::time::Duration;

use datsync::{
    AlertReport, AlertSettings, Alerter, Channel, RowError, SyncCounts, SyncId, SyncStatus,
    TestHttpServer,
};

use smtp_server::SmtpServer;

const SYNC_ID: &str = "sync_20250129_143022_a3f4b2c1";
/// A bound on how long any one test may wait, so a bug hangs no test run.
const GUARD: Duration = Duration::from_secs(60);

/// The pipeline may send alerts from a spawned task.
fn assert_send<T: Send>(_: &T) {}

fn env(pairs: &[(&str, String)]) -> AlertSettings {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    AlertSettings::from_env(|k| map.get(k).cloned()).unwrap()
}

fn report(status: SyncStatus) -> AlertReport {
    AlertReport {
        sync_id: SyncId::parse(SYNC_ID).unwrap(),
        file_name: "ZTDWR_20250129.dat".into(),
        file_path: "/data/in/ZTDWR_20250129.dat".into(),
        status,
        error_message: Some(
            "error rate 0.25 above the threshold 0.10 (database postgres://root:hunter2@db/x)"
                .into(),
        ),
        counts: SyncCounts {
            rows_read: 100,
            rows_loaded: 75,
            rows_rejected: 25,
            rows_superseded: 0,
            records_inserted: 70,
            records_updated: 5,
            chunks_total: 4,
            chunks_completed: 3,
            chunks_failed: 1,
            ..SyncCounts::default()
        },
        validation_errors_count: 25,
        validation_errors: (0..25)
            .map(|i| {
                let value = if i == 1 {
                    "Müller".to_owned()
                } else {
                    format!("abc{i}")
                };
                RowError::new(
                    10 + i * 3,
                    Some("QUANTITY"),
                    Some(&value),
                    "not a decimal number".into(),
                )
            })
            .collect(),
        value_warnings: Vec::new(),
        unknown_columns: Vec::new(),
        checkpoint_dir: Some(format!("./checkpoints/{SYNC_ID}")),
        duration: Duration::from_millis(4200),
    }
}

#[tokio::test]
async fn email_alert_is_delivered_over_a_real_smtp_conversation() {
    let mut server = SmtpServer::start(true).await;
    let settings = env(&[
        (
            "ALERT_EMAIL",
            "ops@example.com, Data Team <data@example.com>".into(),
        ),
        ("ALERT_FROM", "datsync@test.localhost".into()),
        (
            "SMTP_URL",
            format!("smtp://mailer:s3cr3t-pw@{}", server.addr),
        ),
    ]);
    let alerter = Alerter::new(&settings).unwrap();
    let bad_input = report(SyncStatus::BadInput);
    let notify = alerter.notify(&bad_input);
    assert_send(&notify);
    let outcome = tokio::time::timeout(GUARD, notify).await.unwrap();
    let failures: Vec<_> = outcome
        .failures()
        .map(|(c, e)| format!("{c:?}: {e}"))
        .collect();
    assert!(failures.is_empty(), "{failures:?} {:?}", server.transcript);
    assert_eq!(outcome.deliveries.len(), 1);

    let msg = server.messages.recv().await.unwrap();
    assert_eq!(msg.mail_from, "datsync@test.localhost");
    assert_eq!(msg.rcpt_to, ["ops@example.com", "data@example.com"]);
    // base64("\0mailer\0s3cr3t-pw"): the credentials from SMTP_URL were used ...
    assert_eq!(msg.auth_plain.as_deref(), Some("AG1haWxlcgBzM2NyM3QtcHc="));
    // ... and appear nowhere in the message.
    assert!(
        !msg.data.contains("s3cr3t") && !msg.data.contains("hunter2"),
        "{}",
        msg.data
    );
    assert_eq!(
        msg.header("Subject").unwrap(),
        format!("Error: ZTDWR Sync {SYNC_ID}")
    );
    assert!(msg.header("To").unwrap().contains("data@example.com"));

    let body = msg.body();
    for want in [
        format!("Sync id:   {SYNC_ID}"),
        "File:      ZTDWR_20250129.dat".to_owned(),
        "Status:    BAD_INPUT".to_owned(),
        "error rate 0.25 above the threshold 0.10".to_owned(),
        "rows rejected     25".to_owned(),
        "Validation errors: 25".to_owned(),
        "line 10: QUANTITY = 'abc0': not a decimal number".to_owned(),
        "line 13: QUANTITY = 'Müller': not a decimal number".to_owned(),
        "line 67: QUANTITY = 'abc19': not a decimal number".to_owned(),
        "... and 5 more".to_owned(),
        format!("./checkpoints/{SYNC_ID}"),
        format!("datsync status {SYNC_ID}"),
        format!("datsync resume {SYNC_ID}"),
    ] {
        assert!(body.contains(&want), "missing `{want}` in:\n{body}");
    }
    assert!(
        !body.contains("line 70:"),
        "only the first 20 errors are listed:\n{body}"
    );
}

#[tokio::test]
async fn partial_success_sends_a_warning_and_success_sends_nothing() {
    let mut server = SmtpServer::start(false).await;
    let settings = env(&[
        ("ALERT_EMAIL", "ops@example.com".into()),
        ("SMTP_URL", format!("smtp://{}", server.addr)),
    ]);
    let alerter = Alerter::new(&settings).unwrap();

    let outcome = alerter.notify(&report(SyncStatus::Success)).await;
    assert!(outcome.deliveries.is_empty());

    let outcome = tokio::time::timeout(GUARD, alerter.notify(&report(SyncStatus::PartialSuccess)))
        .await
        .unwrap();
    assert!(outcome.all_delivered(), "{:?}", outcome.deliveries);
    let msg = server.messages.recv().await.unwrap();
    assert_eq!(msg.mail_from, "datsync@localhost");
    assert_eq!(
        msg.header("Subject").unwrap(),
        format!("Warning: ZTDWR Sync {SYNC_ID}")
    );
    assert!(
        msg.body().contains("Status:    PARTIAL_SUCCESS"),
        "{}",
        msg.body()
    );
    // The SUCCESS report sent nothing: the PARTIAL_SUCCESS one is the first message.
    assert!(server.messages.try_recv().is_err());
}

#[tokio::test]
async fn webhook_receives_the_report_as_json() {
    let server = TestHttpServer::http(&[204]).unwrap();
    let settings = env(&[("ALERT_WEBHOOK_URL", server.url("/hooks/datsync?team=ops"))]);
    let alerter = Alerter::new(&settings).unwrap();
    let outcome = tokio::time::timeout(GUARD, alerter.notify(&report(SyncStatus::Failed)))
        .await
        .unwrap();
    assert!(outcome.all_delivered(), "{:?}", outcome.deliveries);
    assert_eq!(outcome.deliveries[0].channel, Channel::Webhook);

    let req = server.next_request(GUARD).unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/hooks/datsync");
    assert_eq!(req.query.as_deref(), Some("team=ops"));
    assert!(!req.tls);
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.header("host"),
        Some(format!("127.0.0.1:{}", server.addr().port()).as_str())
    );
    let json = req.json();
    assert_eq!(json["sync_id"], SYNC_ID);
    assert_eq!(json["status"], "FAILED");
    assert_eq!(json["level"], "error");
    assert_eq!(json["subject"], format!("Error: ZTDWR Sync {SYNC_ID}"));
    assert_eq!(json["rows_read"], 100);
    assert_eq!(json["chunks_failed"], 1);
    assert_eq!(json["validation_errors_count"], 25);
    assert_eq!(json["validation_errors"].as_array().unwrap().len(), 20);
    assert_eq!(json["validation_errors"][0]["line"], 10);
    assert_eq!(
        json["validation_errors"][0]["reason"],
        "not a decimal number"
    );
    assert_eq!(json["duration_s"], 4.2);
    let text = String::from_utf8(req.body).unwrap();
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn https_webhook_is_delivered_when_its_authority_is_trusted() {
    let server = TestHttpServer::https(&[200]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = server.write_ca(dir.path()).unwrap();
    let url = server.url("/hooks/datsync?token=s3cret-token");
    // Trusted through DATSYNC_CA_FILE: delivered over TLS.
    let settings = env(&[
        ("ALERT_WEBHOOK_URL", url.clone()),
        ("DATSYNC_CA_FILE", ca.display().to_string()),
    ]);
    let outcome = tokio::time::timeout(
        GUARD,
        Alerter::new(&settings)
            .unwrap()
            .notify(&report(SyncStatus::BadInput)),
    )
    .await
    .unwrap();
    assert!(outcome.all_delivered(), "{:?}", outcome.deliveries);
    let req = server.next_request(GUARD).unwrap();
    assert!(req.tls);
    assert_eq!(req.method, "POST");
    assert_eq!(req.query.as_deref(), Some("token=s3cret-token"));
    assert_eq!(req.json()["status"], "BAD_INPUT");

    // Not trusted: the certificate is refused, the error says so without the token.
    let settings = env(&[("ALERT_WEBHOOK_URL", url)]);
    let outcome = tokio::time::timeout(
        GUARD,
        Alerter::new(&settings)
            .unwrap()
            .notify(&report(SyncStatus::BadInput)),
    )
    .await
    .unwrap();
    let errors: Vec<String> = outcome.failures().map(|(_, e)| e.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("certificate") && errors[0].contains("https://localhost:"),
        "{errors:?}"
    );
    assert!(!errors[0].contains("s3cret"), "{errors:?}");
    assert!(server.received().is_empty(), "no request without TLS trust");
}

#[tokio::test]
async fn webhook_error_status_is_reported_not_fatal() {
    let server = TestHttpServer::http(&[500]).unwrap();
    let settings = env(&[("ALERT_WEBHOOK_URL", server.url("/x"))]);
    let outcome = Alerter::new(&settings)
        .unwrap()
        .notify(&report(SyncStatus::Failed))
        .await;
    let errors: Vec<String> = outcome.failures().map(|(_, e)| e.to_string()).collect();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("500"), "{errors:?}");
}

#[tokio::test]
async fn unreachable_servers_yield_reported_errors() {
    // A port nobody listens on: bind, note the port, close.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    // A server that accepts connections but never speaks: only the timeout ends the wait.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();

    for (smtp, webhook) in [(closed, closed), (silent_addr, silent_addr)] {
        let settings = env(&[
            ("ALERT_EMAIL", "ops@example.com".into()),
            ("SMTP_URL", format!("smtp://mailer:s3cr3t-pw@{smtp}")),
            ("ALERT_WEBHOOK_URL", format!("http://{webhook}/hook")),
            ("ALERT_TIMEOUT_SECONDS", "0.5".into()),
        ]);
        let alerter = Alerter::new(&settings).unwrap();
        let outcome = tokio::time::timeout(GUARD, alerter.notify(&report(SyncStatus::Failed)))
            .await
            .expect("the alert timeout bounds the wait");
        let errors: Vec<(Channel, String)> = outcome
            .failures()
            .map(|(c, e)| (c, e.to_string()))
            .collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].0, Channel::Email);
        assert!(errors[0].1.contains(&smtp.to_string()), "{errors:?}");
        assert!(
            errors[1].1.contains(&format!("http://{webhook}/hook")),
            "{errors:?}"
        );
        assert!(
            errors.iter().all(|(_, e)| !e.contains("s3cr3t")),
            "{errors:?}"
        );
    }
    drop(silent);
}
