//! The default deployment: Event Grid `BlobCreated` events through a Storage queue, delivered
//! by the host as queue-trigger invocations — repeated, counted by `DequeueCount`, killed
//! part way, given up on (the poison queue), and swept for events that never came.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use super::*;
use crate::errors::{FAST_RETRY, failing_trigger, lone_key_of_chunk, reference};

const QUEUE: &str = "ztdwr_blob_created";
const POISON: &str = "ztdwr_blob_created_poison";
const SWEEP: &str = "ztdwr_sweep";
const PATH: &str = "hex-ztdwr/ZTDWR_20250129.dat";

/// The timer invocation the host POSTs for the sweep.
fn timer() -> Value {
    json!({"Data": {"timer": {"Schedule": {"AdjustForDST": true},
        "ScheduleStatus": {"Last": "2026-11-28T02:45:00Z", "Next": "2026-11-28T03:15:00Z", "LastUpdated": "2026-11-28T02:45:00Z"},
        "IsPastDue": false}}, "Metadata": {"sys": {"MethodName": "ztdwr_sweep"}}})
}

fn is_poison(alert: &Value) -> bool {
    alert["error_message"]
        .as_str()
        .is_some_and(|m| m.contains("parked as poison"))
}

/// The next poison alert (alerts of final outcomes, rejected rows, come too).
fn poison_alert(alerts: &std::sync::mpsc::Receiver<(String, Value)>) -> Value {
    loop {
        let (_, alert) = alerts.recv_timeout(PATIENCE).unwrap();
        if is_poison(&alert) {
            return alert;
        }
    }
}

fn outcome_levels(handler: &Handler, stdout: usize, stderr: usize) -> Vec<(String, String)> {
    handler.stdout.wait_events("invocation outcome", stdout);
    handler.stderr.wait_events("invocation outcome", stderr);
    let mut all = Vec::new();
    for (stream, lines) in [("stdout", &handler.stdout), ("stderr", &handler.stderr)] {
        for e in lines.events("invocation outcome") {
            all.push((stream.to_owned(), e["level"].as_str().unwrap().to_owned()));
        }
    }
    all
}

#[test]
fn an_event_loads_its_blob_once_whatever_form_and_however_often_it_comes() {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let work = Work::new(3_000, 81, MESSY);
    emulator.upload(&work.file, BLOB);
    let (reference_db, expected, _) = reference(&work, &sync_id(81));
    let db = TestDb::new();
    let handler = Handler::start(work.path(), &db.url(), &[(key, &value)], &[]);
    let (etag, size) = etag_of(&emulator, BLOB);
    let event = blob_created(&emulator, PATH, &etag, size);

    let (status, reply) = handler.invoke(QUEUE, &queue_delivery(&event, 1, Encoding::HostDecoded));
    assert_eq!(status, 200, "{reply}");
    let r = &reply["ReturnValue"];
    assert_eq!(r["action"], "started", "{reply}");
    assert_eq!(r["finished"], true, "{reply}");
    assert_eq!(r["status"], expected["status"], "{reply}");
    assert_eq!(r["counts"]["rows_read"], expected["rows_read"], "{reply}");
    assert_eq!(r["counts"]["rows_rejected"], expected["rows_rejected"]);
    assert_eq!(r["delivery"], 1);
    let sync = r["sync_id"].as_str().unwrap().to_owned();
    let log = reply["Logs"][0].as_str().unwrap();
    assert!(log.contains(&sync) && log.contains("rows read"), "{log}");
    assert!(
        rows(&db) == rows(&reference_db),
        "the table differs from a plain run's"
    );
    assert_reveals_nothing(&reply, &work);

    // Event Grid delivers at least once: the same event again, as a second message, in the
    // other encoding and the other schema, and this message delivered again.
    for delivery in [
        queue_delivery(&event, 1, Encoding::Base64),
        queue_delivery(&as_cloud_event(&event), 1, Encoding::HostDecoded),
        queue_delivery(&event, 2, Encoding::HostDecoded),
    ] {
        let (status, reply) = handler.invoke(QUEUE, &delivery);
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["ReturnValue"]["action"], "skipped_done", "{reply}");
        assert_eq!(reply["ReturnValue"]["sync_id"], sync.as_str());
    }
    assert_eq!(sync_ids(&db), vec![sync.clone()]);

    // Events the handler leaves alone: another folder, not a source, another account, a
    // file whose content is not there yet, another event type; and a message that is no
    // event. None is retried (200), none is loaded.
    emulator.upload(&work.file, "az://data/other/ZTDWR_x.dat");
    emulator.upload(&work.file, "az://data/hex-ztdwr/notes.txt");
    let mut other_account = event.clone();
    other_account["data"]["url"] = json!(
        event["data"]["url"]
            .as_str()
            .unwrap()
            .replace("devstoreaccount1", "otheraccount")
    );
    let mut pending = event.clone();
    pending["data"]["api"] = json!("CreateFile");
    let mut deleted = event.clone();
    deleted["eventType"] = json!("Microsoft.Storage.BlobDeleted");
    for e in [
        blob_created(&emulator, "other/ZTDWR_x.dat", &etag, size),
        blob_created(&emulator, "hex-ztdwr/notes.txt", &etag, size),
        other_account,
        pending,
        deleted,
    ] {
        let (status, reply) = handler.invoke(QUEUE, &queue_delivery(&e, 1, Encoding::HostDecoded));
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["ReturnValue"]["action"], "ignored", "{e}: {reply}");
    }
    let garbage = json!({"Data": {"event": "\"AccountKey=c2VjcmV0 not an event\""}, "Metadata": {"DequeueCount": "1"}});
    let (status, reply) = handler.invoke(QUEUE, &garbage);
    assert_eq!(status, 200, "retrying cannot help: {reply}");
    assert_eq!(reply["ReturnValue"]["action"], "unreadable");
    assert!(!reply.to_string().contains("c2VjcmV0"), "{reply}");
    assert_eq!(
        receipts(&db),
        vec![("ZTDWR_20250129.dat".into(), sync.clone(), 1, true, false)]
    );

    // One outcome line per invocation, at its level, on the stream the host reads at that
    // level: INFO on stdout; the misrouted account a WARN on stderr (the host sees "warn");
    // the unreadable message an ERROR on stderr.
    let levels = outcome_levels(&handler, 8, 2);
    assert_eq!(levels.len(), 10, "{levels:?}");
    let count = |stream: &str, level: &str| {
        levels
            .iter()
            .filter(|(s, l)| s == stream && l == level)
            .count()
    };
    assert_eq!(count("stdout", "INFO"), 8, "{levels:?}");
    assert_eq!(count("stderr", "WARN"), 1, "{levels:?}");
    assert_eq!(count("stderr", "ERROR"), 1, "{levels:?}");
    for line in handler.stderr.all() {
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if v["level"] == "WARN" {
            assert!(line.to_ascii_lowercase().contains("warn"), "{line}");
        }
        assert_ne!(v["level"], "INFO", "INFO on stderr: {line}");
    }
}

#[test]
fn failed_deliveries_count_as_the_host_counts_them_and_the_last_one_parks_first() {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let work = Work::new(3_000, 82, MESSY);
    emulator.upload(&work.file, BLOB);
    let (reference_db, _, _) = reference(&work, &sync_id(82));
    let db = TestDb::new();
    // The database refuses one chunk while the flag row exists.
    let failing = lone_key_of_chunk(&reference_db, &work.file, 2);
    failing_trigger(&db, &failing, "40001", Some("datsync_test_flag"));
    let (url, alerts) = webhook_server();
    host_json(work.path(), 3, "00:05:00");
    let env = [
        (key, value.as_str()),
        FAST_RETRY,
        ("ALERT_WEBHOOK_URL", url.as_str()),
    ];
    let handler = Handler::start(work.path(), &db.url(), &env, &[]);
    let (etag, size) = etag_of(&emulator, BLOB);
    let event = blob_created(&emulator, PATH, &etag, size);

    let mut sync = String::new();
    for delivery in [1, 2] {
        let (status, reply) = handler.invoke(
            QUEUE,
            &queue_delivery(&event, delivery, Encoding::HostDecoded),
        );
        assert_eq!(status, 500, "the host must deliver it again: {reply}");
        let r = &reply["ReturnValue"];
        assert_eq!(r["reason"], "chunks_failed", "{reply}");
        assert_eq!(r["attempts"], delivery, "{reply}");
        sync = r["sync_id"].as_str().unwrap().to_owned();
        // No error text, user, host or path in the answer, though the error has them.
        assert_reveals_nothing(&reply, &work);
        assert_eq!(
            receipts(&db),
            vec![(
                "ZTDWR_20250129.dat".into(),
                sync.clone(),
                i32::try_from(delivery).unwrap(),
                false,
                false
            )]
        );
    }
    assert!(
        alerts.try_iter().all(|(_, a)| !is_poison(&a)),
        "no poison alert while the host retries"
    );
    // The host drops a 500's Logs: the outcome line on stderr says why, with the sync.
    let warned = handler.stderr.wait_events("invocation outcome", 2);
    assert_eq!(warned.len(), 2, "{:?}", handler.stderr.all());
    for w in &warned {
        assert_eq!(w["level"], "WARN");
        assert_eq!(w["fields"]["sync_id"], sync.as_str());
        assert_eq!(w["fields"]["reason"], "chunks_failed");
        assert!(
            w["fields"]["error"]
                .as_str()
                .unwrap()
                .contains("injected failure"),
            "{w}"
        );
        assert!(w["fields"]["rows_pending"].as_u64().unwrap() > 0, "{w}");
    }

    // The third delivery is the host's last (maxDequeueCount 3): still failing, it is parked
    // here, with its alert, and answered 200 so the host deletes the message instead of
    // poisoning it.
    let (status, reply) = handler.invoke(QUEUE, &queue_delivery(&event, 3, Encoding::HostDecoded));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["ReturnValue"]["action"], "parked", "{reply}");
    assert_eq!(reply["ReturnValue"]["attempts"], 3);
    let alert = poison_alert(&alerts);
    assert_eq!(alert["sync_id"], sync.as_str());
    assert!(
        alert["error_message"]
            .as_str()
            .unwrap()
            .contains("3 attempt(s)"),
        "{alert}"
    );
    assert_eq!(
        receipts(&db),
        vec![("ZTDWR_20250129.dat".into(), sync.clone(), 3, false, true)]
    );
    let parked = handler.stderr.wait_events("invocation outcome", 3);
    assert_eq!(parked.last().unwrap()["level"], "ERROR");
    // Another message for it (Event Grid sent the event twice): nothing runs, no alert.
    let (status, reply) = handler.invoke(QUEUE, &queue_delivery(&event, 1, Encoding::HostDecoded));
    assert_eq!(
        (status, &reply["ReturnValue"]["action"]),
        (200, &json!("skipped_parked"))
    );
    assert!(alerts.try_recv().is_err(), "one alert");
    assert_eq!(sync_ids(&db), vec![sync]);
}

#[test]
fn deliveries_that_died_before_they_counted_are_counted_from_the_dequeue_count() {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let work = Work::new(1_200, 83, CLEAN);
    emulator.upload(&work.file, BLOB);
    let db = TestDb::new();
    db.init();
    // Every insert fails: each attempt ends FAILED.
    db.batch(
        "CREATE FUNCTION datsync_test_fail() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN RAISE EXCEPTION 'injected failure 22012' USING ERRCODE = '22012'; END $f$;
         CREATE TRIGGER datsync_test_fail BEFORE INSERT ON public.transport_documents
           FOR EACH ROW EXECUTE FUNCTION datsync_test_fail();",
    );
    host_json(work.path(), 4, "00:01:00");
    let handler = Handler::start(work.path(), &db.url(), &[(key, &value)], &[]);
    let (etag, size) = etag_of(&emulator, BLOB);
    let event = blob_created(&emulator, PATH, &etag, size);
    // Deliveries 1 and 2 never reached the handler (the instance died first): the first one
    // it sees says 3, and the receipt counts 3.
    let (status, reply) = handler.invoke(QUEUE, &queue_delivery(&event, 3, Encoding::HostDecoded));
    assert_eq!(status, 500, "{reply}");
    assert_eq!(reply["ReturnValue"]["attempts"], 3, "{reply}");
    assert_eq!(reply["ReturnValue"]["reason"], "failed", "{reply}");
    // A delivery behind the receipt's count (a duplicate message) still counts one more.
    let (status, reply) = handler.invoke(QUEUE, &queue_delivery(&event, 1, Encoding::HostDecoded));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["ReturnValue"]["action"], "parked", "{reply}");
    assert_eq!(reply["ReturnValue"]["attempts"], 4, "{reply}");
}

/// A TCP relay to PostgreSQL that can be cut: the database's outage as the handler sees
/// it (connections refused part way).
struct Relay {
    port: u16,
    down: Arc<AtomicBool>,
}

impl Relay {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let cut = Arc::clone(&down);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                if cut.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", 5432)) else {
                    continue;
                };
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Self { port, down }
    }

    fn url(&self, db: &TestDb) -> String {
        db.url().replace(":5432/", &format!(":{}/", self.port))
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}

#[test]
fn a_database_outage_does_not_park_the_file_and_nothing_is_lost_when_it_outlasts_the_retries() {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let work = Work::new(2_000, 84, CLEAN);
    emulator.upload(&work.file, BLOB);
    let (reference_db, expected, _) = reference(&work, &sync_id(84));
    let db = TestDb::new();
    let relay = Relay::start();
    let (url, alerts) = webhook_server();
    let env = [(key, value.as_str()), ("ALERT_WEBHOOK_URL", url.as_str())];
    let handler = Handler::start(work.path(), &relay.url(&db), &env, &[]);
    let (etag, size) = etag_of(&emulator, BLOB);
    let event = blob_created(&emulator, PATH, &etag, size);

    relay.set_down(true);
    for delivery in [1, 2] {
        let (status, reply) = handler.invoke(
            QUEUE,
            &queue_delivery(&event, delivery, Encoding::HostDecoded),
        );
        assert_eq!(status, 500, "{reply}");
        assert_eq!(reply["ReturnValue"]["reason"], "error", "{reply}");
        assert_reveals_nothing(&reply, &work);
    }
    relay.set_down(false);
    let (status, reply) = handler.invoke(QUEUE, &queue_delivery(&event, 3, Encoding::HostDecoded));
    assert_eq!(status, 200, "{reply}");
    let r = &reply["ReturnValue"];
    assert_eq!(
        (r["action"].as_str(), r["finished"].as_bool()),
        (Some("started"), Some(true))
    );
    assert_eq!(r["attempts"], 3, "the host's count: {reply}");
    assert_eq!(r["status"], expected["status"]);
    assert!(rows(&db) == rows(&reference_db));
    assert!(alerts.try_recv().is_err(), "not parked, no alert");

    // An outage through all five deliveries: the host moves the message to its poison
    // queue; the poison function finds no receipt (nothing ever ran) and the sweep loads
    // the blob.
    let second = "az://data/hex-ztdwr/ZTDWR_20250130.dat";
    emulator.upload(&work.file, second);
    let (etag2, size2) = etag_of(&emulator, second);
    let event2 = blob_created(&emulator, "hex-ztdwr/ZTDWR_20250130.dat", &etag2, size2);
    relay.set_down(true);
    for delivery in 1..=5 {
        let (status, _) = handler.invoke(
            QUEUE,
            &queue_delivery(&event2, delivery, Encoding::HostDecoded),
        );
        assert_eq!(status, 500);
    }
    let last = handler.stderr.wait_events("invocation outcome", 7);
    let last = last.last().unwrap();
    assert_eq!(last["level"], "ERROR");
    assert!(
        last["fields"]["error"].as_str().unwrap().contains("poison"),
        "{last}"
    );
    relay.set_down(false);
    let (status, reply) =
        handler.invoke(POISON, &queue_delivery(&event2, 1, Encoding::HostDecoded));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["ReturnValue"]["action"], "no_receipt", "{reply}");
    let (status, reply) = handler.invoke(SWEEP, &timer());
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["ReturnValue"]["tally"],
        json!({"skipped_done": 1, "started": 1}),
        "{reply}"
    );
    assert_eq!(sync_ids(&db).len(), 2);
    assert!(alerts.try_recv().is_err());
}

#[test]
fn an_invocation_killed_mid_sync_is_resumed_by_the_next_delivery_and_a_kill_on_the_last_is_parked_from_the_poison_queue()
 {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let work = Work::new(3_000, 85, MESSY);
    emulator.upload(&work.file, BLOB);
    let (reference_db, expected, _) = reference(&work, &sync_id(85));
    let db = TestDb::new();
    let (url, alerts) = webhook_server();
    host_json(work.path(), 2, "00:00:30");
    let env = [(key, value.as_str()), ("ALERT_WEBHOOK_URL", url.as_str())];
    let (etag, size) = etag_of(&emulator, BLOB);
    let event = blob_created(&emulator, PATH, &etag, size);

    // The host kills the handler (its timeout, a scale-in: SIGKILL) after two chunks.
    let mut killing = env.to_vec();
    killing.push(("DATSYNC_KILL_AT", "chunk_committed:2"));
    let doomed = Handler::start(work.path(), &db.url(), &killing, &[]);
    assert!(
        doomed
            .try_invoke(QUEUE, &queue_delivery(&event, 1, Encoding::HostDecoded))
            .is_none()
    );
    let exit = doomed.wait();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&exit),
        Some(9)
    );
    db.wait_for_other_sessions();
    let sync = receipts(&db)[0].1.clone();
    assert_eq!(db.committed_chunks(&sync), 2);
    assert_eq!(receipts(&db)[0].2, 1, "the killed delivery counted");

    // A sweep before the host delivers the message again leaves the receipt to the queue.
    let handler = Handler::start(work.path(), &db.url(), &env, &[]);
    let (status, reply) = handler.invoke(SWEEP, &timer());
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["ReturnValue"]["tally"],
        json!({"waiting_backoff": 1}),
        "{reply}"
    );

    // The second delivery continues the same sync to its end.
    let (status, reply) = handler.invoke(QUEUE, &queue_delivery(&event, 2, Encoding::HostDecoded));
    assert_eq!(status, 200, "{reply}");
    let r = &reply["ReturnValue"];
    assert_eq!(r["action"], "resumed", "{reply}");
    assert_eq!(r["sync_id"], sync.as_str());
    assert_eq!(r["attempts"], 2);
    assert_eq!(r["counts"]["rows_read"], expected["rows_read"]);
    assert!(
        rows(&db) == rows(&reference_db),
        "the table differs from a plain run's"
    );
    drop(handler);

    // A second blob, killed on both deliveries: after the last one the host moves the
    // message to its poison queue without calling the handler; the poison function parks
    // the receipt, with its alert.
    let second = "az://data/hex-ztdwr/ZTDWR_20250131.dat";
    emulator.upload(&work.file, second);
    let (etag2, size2) = etag_of(&emulator, second);
    let event2 = blob_created(&emulator, "hex-ztdwr/ZTDWR_20250131.dat", &etag2, size2);
    for delivery in [1, 2] {
        let doomed = Handler::start(work.path(), &db.url(), &killing, &[]);
        let message = queue_delivery(&event2, delivery, Encoding::HostDecoded);
        assert!(doomed.try_invoke(QUEUE, &message).is_none());
        doomed.wait();
        db.wait_for_other_sessions();
    }
    let handler = Handler::start(work.path(), &db.url(), &env, &[]);
    let (status, reply) = handler.invoke(POISON, &queue_delivery(&event2, 1, Encoding::Base64));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["ReturnValue"]["action"], "parked", "{reply}");
    let alert = poison_alert(&alerts);
    let message = alert["error_message"].as_str().unwrap();
    assert!(
        message.contains("poison queue") && message.contains("2 attempt(s)"),
        "{message}"
    );
    let r = receipts(&db);
    assert_eq!((r[1].2, r[1].3, r[1].4), (2, false, true), "{r:?}");
    // Its poison message delivered again: nothing more.
    let (_, reply) = handler.invoke(POISON, &queue_delivery(&event2, 2, Encoding::Base64));
    assert_eq!(reply["ReturnValue"]["action"], "skipped_parked", "{reply}");
    assert!(
        alerts.try_iter().all(|(_, a)| !is_poison(&a)),
        "one poison alert"
    );
}

#[test]
fn the_sweep_loads_blobs_whose_events_were_lost_exactly_once_through_the_same_receipts() {
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let work = Work::new(1_500, 86, CLEAN);
    emulator.upload(&work.file, BLOB);
    let lost = "az://data/hex-ztdwr/ZTDWR_20250201.dat.gz";
    let gz = work.path().join("lost.dat.gz");
    let mut options = options(900, 87, CLEAN);
    options.gzip = true;
    datsync::write_sample(std::fs::File::create(&gz).unwrap(), &options).unwrap();
    emulator.upload(&gz, lost);
    let db = TestDb::new();
    let handler = Handler::start(work.path(), &db.url(), &[(key, &value)], &[]);
    let (etag, size) = etag_of(&emulator, BLOB);
    let (status, _) = handler.invoke(
        QUEUE,
        &queue_delivery(
            &blob_created(&emulator, PATH, &etag, size),
            1,
            Encoding::HostDecoded,
        ),
    );
    assert_eq!(status, 200);

    let (status, reply) = handler.invoke(SWEEP, &timer());
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["ReturnValue"]["tally"],
        json!({"skipped_done": 1, "started": 1}),
        "{reply}"
    );
    let (_, reply) = handler.invoke(SWEEP, &timer());
    assert_eq!(
        reply["ReturnValue"]["tally"],
        json!({"skipped_done": 2}),
        "{reply}"
    );
    // The lost event arrives after all: nothing is loaded twice.
    let (etag2, size2) = etag_of(&emulator, lost);
    let late = blob_created(&emulator, "hex-ztdwr/ZTDWR_20250201.dat.gz", &etag2, size2);
    let (status, reply) = handler.invoke(QUEUE, &queue_delivery(&late, 1, Encoding::Base64));
    assert_eq!(
        (status, &reply["ReturnValue"]["action"]),
        (200, &json!("skipped_done"))
    );
    // `watch --once` on the folder, the sweep outside Functions, agrees.
    let (out, lines) = crate::azure::watch_once(&work, &db, &[(key, &value)]);
    assert_eq!(lines.len(), 2, "{}", out.describe());
    assert!(
        lines.iter().all(|l| l["action"] == "skipped_done"),
        "{}",
        out.describe()
    );
    let r = receipts(&db);
    assert_eq!(r.len(), 2);
    assert!(
        r.iter()
            .all(|(_, _, attempts, finished, parked)| *attempts == 1 && *finished && !*parked),
        "{r:?}"
    );
    assert_eq!(sync_ids(&db).len(), 2);
}
