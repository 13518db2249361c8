//! The Functions app in `deploy/azure-functions/`, read as the host reads it: `host.json`
//! and every `function.json` carry the fields their bindings require, the retry settings
//! are the handler's defaults, every function has a route in the handler, and the Event Grid
//! template sends the folder's sources to the queue the trigger reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;

fn app_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/azure-functions")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every function of the app: its folder name and its bindings.
fn functions() -> BTreeMap<String, Vec<Value>> {
    let mut all = BTreeMap::new();
    for entry in std::fs::read_dir(app_dir()).unwrap() {
        let dir = entry.unwrap().path();
        let file = dir.join("function.json");
        if file.exists() {
            let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
            let bindings = read_json(&file)["bindings"].as_array().unwrap().clone();
            all.insert(name, bindings);
        }
    }
    all
}

/// A Storage queue name: 3–63 lower-case letters, digits and single hyphens, starting and
/// ending with a letter or digit.
fn is_queue_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// The fields each binding type requires (and the values some must have).
fn check_binding(function: &str, b: &Value) {
    let text = |k: &str| {
        b[k].as_str()
            .unwrap_or_else(|| panic!("{function}: {k} missing in {b}"))
    };
    assert!(!text("name").is_empty());
    match text("type") {
        "queueTrigger" => {
            assert_eq!(text("direction"), "in");
            assert!(is_queue_name(text("queueName")), "{function}: {b}");
            assert_eq!(text("connection"), "AzureWebJobsStorage");
        }
        "timerTrigger" => {
            assert_eq!(text("direction"), "in");
            let fields = text("schedule").split_whitespace().count();
            assert_eq!(fields, 6, "{function}: NCRONTAB has six fields: {b}");
            assert_eq!(b["runOnStartup"], false, "{function}: {b}");
        }
        "httpTrigger" => {
            assert_eq!(text("direction"), "in");
            assert!(["anonymous", "function", "admin"].contains(&text("authLevel")));
            assert!(
                b["methods"].as_array().is_some_and(|m| !m.is_empty()),
                "{b}"
            );
        }
        "http" => assert_eq!(text("direction"), "out"),
        "blobTrigger" => {
            assert_eq!(text("direction"), "in");
            assert!(text("path").contains("{name}"), "{b}");
            assert_eq!(text("connection"), "AzureWebJobsStorage");
            assert_eq!(
                text("source"),
                "EventGrid",
                "{function}: never the polling trigger"
            );
        }
        other => panic!("{function}: unexpected binding type {other}"),
    }
}

#[test]
fn host_json_runs_the_handler_with_the_queue_retries_it_counts() {
    let host = read_json(&app_dir().join("host.json"));
    assert_eq!(host["version"], "2.0");
    let handler = &host["customHandler"];
    assert_eq!(handler["description"]["defaultExecutablePath"], "datsync");
    assert_eq!(handler["description"]["arguments"][0], "serve");
    assert_eq!(handler["enableForwardingHttpRequest"], true);
    assert_eq!(
        host["extensionBundle"]["id"],
        "Microsoft.Azure.Functions.ExtensionBundle"
    );
    assert!(
        host["extensionBundle"]["version"]
            .as_str()
            .unwrap()
            .starts_with("[4."),
        "{host}"
    );
    let queues = &host["extensions"]["queues"];
    // One message (one sync) at a time per instance.
    assert_eq!(
        (
            queues["batchSize"].as_u64(),
            queues["newBatchThreshold"].as_u64()
        ),
        (Some(1), Some(0))
    );
    assert_eq!(
        queues["messageEncoding"], "base64",
        "what Event Grid writes"
    );
    // What the handler reads is what it would use without the file.
    let settings = datsync::HostSettings::read(&app_dir().join("host.json"))
        .unwrap()
        .unwrap();
    assert_eq!(settings.max_dequeue_count, datsync::DEFAULT_MAX_ATTEMPTS);
    assert_eq!(
        settings.visibility_timeout,
        datsync::DEFAULT_SERVE_RETRY_BACKOFF
    );
    // The Consumption plan's limit.
    assert!(settings.function_timeout.unwrap() <= std::time::Duration::from_secs(600));
}

#[test]
fn every_function_json_has_what_its_bindings_need_and_a_route_in_the_handler() {
    let all = functions();
    let names: Vec<&str> = all.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "healthz",
            "sync_ztdwr",
            "sync_ztdwr_status",
            "ztdwr_blob_created",
            "ztdwr_blob_created_poison",
            "ztdwr_sweep"
        ],
        "the deployed functions (the blob trigger is an alternative, not deployed)"
    );
    for (function, bindings) in &all {
        for b in bindings {
            check_binding(function, b);
        }
        let triggers = bindings.iter().filter(|b| b["direction"] == "in").count();
        assert_eq!(triggers, 1, "{function}: one trigger");
        if bindings.iter().any(|b| b["type"] == "httpTrigger") {
            assert!(
                bindings
                    .iter()
                    .any(|b| b["type"] == "http" && b["name"] == "res"),
                "{function}: an http output named res"
            );
        }
    }
    let queue = |f: &str| all[f][0]["queueName"].as_str().unwrap().to_owned();
    assert_eq!(all["ztdwr_blob_created"][0]["name"], datsync::QUEUE_BINDING);
    assert_eq!(
        queue("ztdwr_blob_created_poison"),
        format!("{}-poison", queue("ztdwr_blob_created")),
        "the host's poison queue is <queue>-poison"
    );
    assert_eq!(all["sync_ztdwr_status"][0]["route"], "sync-ztdwr/{sync_id}");
    assert_eq!(all["sync_ztdwr"][0]["route"], "sync-ztdwr");
    let alternative =
        read_json(&app_dir().join("alternatives/blob-trigger/ztdwr_sync/function.json"));
    for b in alternative["bindings"].as_array().unwrap() {
        check_binding("ztdwr_sync", b);
    }
    let ignored = std::fs::read_to_string(app_dir().join(".funcignore")).unwrap();
    assert!(
        ignored.lines().any(|l| l.trim() == "alternatives/"),
        "{ignored}"
    );

    // Each function's invocation route answers (not 404), as the host calls it.
    let emulator = Emulator::start();
    let (key, value) = emulator.env();
    let work = Work::new(10, 97, CLEAN);
    let db = TestDb::new();
    let handler = Handler::start(work.path(), &db.url(), &[(key, &value)], &[]);
    for function in all.keys().map(String::as_str).chain(["ztdwr_sync"]) {
        let (status, _, body) = handler.raw(
            "POST",
            &format!("/{function}"),
            Some(&json!({"Data": {}, "Metadata": {}})),
            &[],
        );
        assert_ne!(status, 404, "{function}: {body}");
    }
}

#[test]
fn the_event_grid_template_sends_the_folders_sources_to_the_triggers_queue() {
    let bicep = std::fs::read_to_string(app_dir().join("infra/main.bicep")).unwrap();
    let queue = functions()["ztdwr_blob_created"][0]["queueName"]
        .as_str()
        .unwrap()
        .to_owned();
    for needed in [
        "'Microsoft.EventGrid/systemTopics@",
        "'Microsoft.EventGrid/systemTopics/eventSubscriptions@",
        "topicType: 'Microsoft.Storage.StorageAccounts'",
        "endpointType: 'StorageQueue'",
        "'Microsoft.Storage.BlobCreated'",
        "subjectBeginsWith: '/blobServices/default/containers/${containerName}/blobs/${prefix}'",
        "operatorType: 'StringEndsWith'",
        "'.dat'",
        "'.dat.gz'",
        "key: 'data.api'",
        "'FlushWithClose'",
        "eventDeliverySchema: 'EventGridSchema'",
        "name: '${queueName}-poison'",
        "deadLetterDestination",
        &format!("param queueName string = '{queue}'"),
        &format!(
            "param containerName string = '{}'",
            datsync::DEFAULT_SERVE_CONTAINER
        ),
        &format!("param prefix string = '{}'", datsync::DEFAULT_SERVE_PREFIX),
    ] {
        assert!(bicep.contains(needed), "main.bicep lacks {needed}");
    }
    // Files still being written never announce themselves: CreateFile is not in the list.
    assert!(!bicep.contains("'CreateFile'"));
    // Braces and brackets balance (a cheap check that the file is whole).
    let balance = |open: char, close: char| {
        bicep.chars().filter(|c| *c == open).count()
            == bicep.chars().filter(|c| *c == close).count()
    };
    assert!(balance('{', '}') && balance('[', ']') && balance('(', ')'));
}

#[test]
fn the_settings_list_names_what_the_app_needs() {
    let settings = read_json(&app_dir().join("local.settings.json.example"));
    let values = settings["Values"].as_object().unwrap();
    for name in [
        "FUNCTIONS_WORKER_RUNTIME",
        "AzureWebJobsStorage",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "POSTGRES_CONNECTION_STRING",
        "CHECKPOINT_BASE_PATH",
    ] {
        assert!(values.contains_key(name), "{name} missing");
    }
    assert_eq!(values["FUNCTIONS_WORKER_RUNTIME"], "custom");
    assert!(
        values["CHECKPOINT_BASE_PATH"]
            .as_str()
            .unwrap()
            .starts_with("az://")
    );
}
