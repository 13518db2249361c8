//! The worker deployments of `deploy/kubernetes/` (a KEDA `ScaledJob`) and
//! `deploy/container-apps/` (an Azure Container Apps event-driven job), read as the engines
//! read them: parsed (YAML by a YAML parser, the Bicep template by the reader below), every
//! field checked against the fields the engine's schema has (a misspelt field is an error, not
//! a silently ignored line), the scale query equal to the one datsync documents, the secrets
//! each part names present, and the container's arguments accepted by the real binary.

// Test helpers outside `#[test]` functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

/// THE SCALE QUERY (issue 15) of the built-in profile's schema, as the library writes it:
/// the KEDA `postgresql` scaler's and the Azure Container Apps rule's query, the count
/// `datsync queue --json` prints as `pending`.
fn scale_query() -> String {
    datsync::scale_query(&datsync::Profile::ztdwr().schema)
}

/// The repository's root (this crate is crates/datsync-cli).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a YAML file, as JSON values (a parse error names the file and line).
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = read(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

/// The object at `path` (dot-separated keys) of `v`, or a panic naming what is missing.
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut here = v;
    for key in path.split('.') {
        here = here
            .get(key)
            .unwrap_or_else(|| panic!("{path}: `{key}` missing in {here}"));
    }
    here
}

fn text<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string: {}", at(v, path)))
}

fn int(v: &Value, path: &str) -> i64 {
    at(v, path)
        .as_i64()
        .unwrap_or_else(|| panic!("{path} is not an integer: {}", at(v, path)))
}

fn list<'a>(v: &'a Value, path: &str) -> &'a Vec<Value> {
    at(v, path)
        .as_array()
        .unwrap_or_else(|| panic!("{path} is not a list: {}", at(v, path)))
}

/// Every key of the object `v` is one the schema has (`what` names the object).
fn only_fields(v: &Value, what: &str, known: &[&str]) {
    let object = v
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not an object: {v}"));
    for key in object.keys() {
        assert!(
            known.contains(&key.as_str()),
            "{what}: `{key}` is not a field of the schema ({known:?})"
        );
    }
}

/// The fields of KEDA's `ScaledJobSpec` (keda.sh/v1alpha1, `apis/keda/v1alpha1/scaledjob_types.go`).
const SCALED_JOB_SPEC: &[&str] = &[
    "jobTargetRef",
    "pollingInterval",
    "successfulJobsHistoryLimit",
    "failedJobsHistoryLimit",
    "rolloutStrategy",
    "rollout",
    "envSourceContainerName",
    "minReplicaCount",
    "maxReplicaCount",
    "scalingStrategy",
    "triggers",
];
/// The fields of KEDA's `ScaleTriggers`.
const SCALE_TRIGGER: &[&str] = &[
    "type",
    "name",
    "useCachedMetrics",
    "metadata",
    "authenticationRef",
    "metricType",
];
/// The trigger metadata KEDA's `postgresql` scaler reads (`pkg/scalers/postgresql_scaler.go`;
/// `connection` and `password` only through a TriggerAuthentication or `…FromEnv`).
const POSTGRESQL_METADATA: &[&str] = &[
    "query",
    "targetQueryValue",
    "activationTargetQueryValue",
    "connectionFromEnv",
    "host",
    "port",
    "userName",
    "dbName",
    "sslmode",
    "passwordFromEnv",
];
/// The fields of Kubernetes' `batch/v1` `JobSpec`.
const JOB_SPEC: &[&str] = &[
    "parallelism",
    "completions",
    "activeDeadlineSeconds",
    "podFailurePolicy",
    "successPolicy",
    "backoffLimit",
    "backoffLimitPerIndex",
    "maxFailedIndexes",
    "selector",
    "manualSelector",
    "template",
    "ttlSecondsAfterFinished",
    "completionMode",
    "suspend",
    "podReplacementPolicy",
    "managedBy",
];

/// A number written as a string (KEDA's metadata is a map of strings), parsed.
fn numeric_text(v: &Value, path: &str) -> f64 {
    let t = text(v, path);
    t.parse()
        .unwrap_or_else(|e| panic!("{path} = {t:?} is not a number: {e}"))
}

/// The binary's parser accepts `args` (a container's arguments): `datsync ARGS --help`
/// parses every argument before it prints the command's help, so an unknown flag or a
/// value that does not parse fails it.
fn binary_accepts(args: &[String], what: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_datsync"))
        .args(args)
        .arg("--help")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: datsync {args:?} is refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The sub-command of a container's arguments and its flags, the global ones before it
/// left out (`--log-format json worker --exit-when-idle` → `worker`, `[--exit-when-idle]`).
fn command_of(args: &[String]) -> (&str, &[String]) {
    let mut i = 0;
    while i < args.len() && args[i].starts_with("--") {
        // Every global flag of datsync but --quiet takes a value.
        i += if args[i] == "--quiet" { 1 } else { 2 };
    }
    assert!(i < args.len(), "no command in {args:?}");
    (&args[i], &args[i + 1..])
}

fn strings(v: &Value, path: &str) -> Vec<String> {
    list(v, path)
        .iter()
        .map(|a| {
            a.as_str()
                .unwrap_or_else(|| panic!("{path}: {a} is not a string"))
                .to_owned()
        })
        .collect()
}

/// What a worker's container must say, on any engine: `worker --exit-when-idle`, and
/// arguments the binary accepts.
fn check_worker_args(args: &[String], what: &str) {
    let (command, flags) = command_of(args);
    assert_eq!(command, "worker", "{what}: {args:?}");
    assert!(
        flags.iter().any(|f| f == "--exit-when-idle"),
        "{what}: a worker started by a scaler exits once the queue is empty: {args:?}"
    );
    binary_accepts(args, what);
}

/// The Kubernetes manifests by kind and name, from the files of `dir`.
fn manifests(dir: &Path) -> BTreeMap<(String, String), Value> {
    let mut all = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for file in files {
        for doc in yaml_documents(&file) {
            let kind = text(&doc, "kind").to_owned();
            if kind == "Kustomization" {
                continue;
            }
            let name = doc["metadata"]["name"]
                .as_str()
                .or(doc["metadata"]["generateName"].as_str())
                .unwrap_or_else(|| panic!("{}: a {kind} without a name", file.display()))
                .to_owned();
            let previous = all.insert((kind.clone(), name.clone()), doc);
            assert!(previous.is_none(), "two {kind} named {name}");
        }
    }
    all
}

fn kubernetes_dir() -> PathBuf {
    repo_root().join("deploy/kubernetes")
}

/// The example Secret's keys (the names the manifests may refer to).
fn secret_keys() -> Vec<String> {
    let docs = yaml_documents(&kubernetes_dir().join("secret.example.yaml"));
    assert_eq!(docs.len(), 1);
    let secret = &docs[0];
    assert_eq!(
        (text(secret, "apiVersion"), text(secret, "kind")),
        ("v1", "Secret")
    );
    assert_eq!(text(secret, "metadata.name"), "datsync");
    at(secret, "stringData")
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// A pod template's containers: each named and with an image, every `secretKeyRef` to a
/// key of the example Secret; returns the containers.
fn check_pod(pod: &Value, what: &str) -> Vec<Value> {
    let keys = secret_keys();
    let containers = list(pod, "containers");
    assert!(!containers.is_empty(), "{what}: no container");
    for c in containers {
        assert!(!text(c, "name").is_empty());
        assert!(text(c, "image").starts_with("datsync"), "{what}: {c}");
        assert!(
            c.get("command").is_none(),
            "{what}: the image's entrypoint is datsync; args only"
        );
        for env in c["env"].as_array().into_iter().flatten() {
            if let Some(r) = env.pointer("/valueFrom/secretKeyRef") {
                assert_eq!(text(r, "name"), "datsync", "{what}: {env}");
                assert!(
                    keys.iter().any(|k| k == text(r, "key")),
                    "{what}: {env} names a key the Secret lacks ({keys:?})"
                );
            }
        }
        assert_eq!(
            c.pointer("/securityContext/allowPrivilegeEscalation"),
            Some(&Value::Bool(false))
        );
    }
    assert_eq!(
        pod.pointer("/securityContext/runAsNonRoot"),
        Some(&Value::Bool(true))
    );
    // Long enough for the chunks in flight to commit after SIGTERM (as the systemd unit).
    assert!(int(pod, "terminationGracePeriodSeconds") >= 60, "{what}");
    containers.clone()
}

#[test]
fn keda_scaled_job_runs_workers_on_the_scale_query() {
    let all = manifests(&kubernetes_dir().join("workers"));
    let key = |kind: &str, name: &str| (kind.to_owned(), name.to_owned());
    let job = &all[&key("ScaledJob", "datsync-worker")];
    assert_eq!(text(job, "apiVersion"), "keda.sh/v1alpha1");
    let spec = at(job, "spec");
    only_fields(spec, "ScaledJob.spec", SCALED_JOB_SPEC);
    assert!(int(spec, "pollingInterval") >= 1);
    assert_eq!(
        int(spec, "minReplicaCount"),
        0,
        "no worker while nothing is pending"
    );
    assert!(int(spec, "maxReplicaCount") >= 1);
    // The query counts the chunks in flight (a queue row is deleted when its chunk commits):
    // the strategy that subtracts running jobs, not `accurate` (which assumes a queue that
    // hides what is being worked on).
    assert_eq!(text(spec, "scalingStrategy.strategy"), "default");

    // The trigger: KEDA's postgresql scaler on THE SCALE QUERY.
    let triggers = list(spec, "triggers");
    assert_eq!(triggers.len(), 1, "{triggers:?}");
    let trigger = &triggers[0];
    only_fields(trigger, "trigger", SCALE_TRIGGER);
    assert_eq!(text(trigger, "type"), "postgresql");
    let metadata = at(trigger, "metadata");
    only_fields(metadata, "postgresql metadata", POSTGRESQL_METADATA);
    for (k, v) in metadata.as_object().unwrap() {
        assert!(
            v.is_string(),
            "metadata.{k} must be a string (a map of strings): {v}"
        );
    }
    assert_eq!(text(metadata, "query"), scale_query());
    assert!(numeric_text(metadata, "targetQueryValue") > 0.0);
    assert!(numeric_text(metadata, "activationTargetQueryValue") >= 0.0);

    // The connection: a TriggerAuthentication of these files, from the Secret's key.
    let auth_name = text(trigger, "authenticationRef.name");
    let kind = trigger["authenticationRef"]["kind"]
        .as_str()
        .unwrap_or("TriggerAuthentication");
    let auth = all
        .get(&key(kind, auth_name))
        .unwrap_or_else(|| panic!("no {kind} named {auth_name}"));
    assert_eq!(text(auth, "apiVersion"), "keda.sh/v1alpha1");
    let refs = list(auth, "spec.secretTargetRef");
    let connection = refs
        .iter()
        .find(|r| r["parameter"] == "connection")
        .unwrap_or_else(|| panic!("{auth_name} gives no `connection`: {refs:?}"));
    assert_eq!(text(connection, "name"), "datsync");
    assert!(secret_keys().iter().any(|k| k == text(connection, "key")));

    // The job: a worker that exits when idle, bounded, not restarted in place.
    let target = at(spec, "jobTargetRef");
    only_fields(target, "jobTargetRef", JOB_SPEC);
    assert_eq!(
        int(target, "parallelism"),
        1,
        "KEDA counts jobs, one worker each"
    );
    assert!((0..=6).contains(&int(target, "backoffLimit")));
    assert!(int(target, "activeDeadlineSeconds") > 0);
    let pod = at(target, "template.spec");
    assert_eq!(text(pod, "restartPolicy"), "Never");
    let containers = check_pod(pod, "ScaledJob");
    assert_eq!(containers.len(), 1);
    check_worker_args(&strings(&containers[0], "args"), "ScaledJob");
    // The workers' connection, from the Secret (the location of each sync's chunks comes
    // from sync_metadata, not from here).
    let env = list(&containers[0], "env");
    assert!(env.iter().any(|e| e["name"] == "DATABASE_URL"));
    assert!(
        !env.iter().any(|e| e["name"] == "CHECKPOINT_BASE_PATH"),
        "workers read the checkpoint location the sync recorded"
    );
}

#[test]
fn the_submit_job_converts_one_source_into_shared_storage() {
    let all = manifests(&kubernetes_dir());
    let job = &all[&("Job".to_owned(), "datsync-submit-".to_owned())];
    assert_eq!(text(job, "apiVersion"), "batch/v1");
    let spec = at(job, "spec");
    only_fields(spec, "Job.spec", JOB_SPEC);
    assert_eq!(
        int(spec, "parallelism"),
        1,
        "one conversion pass per source"
    );
    let pod = at(spec, "template.spec");
    assert_eq!(text(pod, "restartPolicy"), "Never");
    let containers = check_pod(pod, "submit Job");
    let args = strings(&containers[0], "args");
    let (command, rest) = command_of(&args);
    assert_eq!(command, "submit");
    assert!(rest.iter().any(|a| a.starts_with("az://")), "{args:?}");
    assert!(rest.iter().any(|a| a == "--json"), "{args:?}");
    let env = list(&containers[0], "env");
    let base = env
        .iter()
        .find(|e| e["name"] == "CHECKPOINT_BASE_PATH")
        .unwrap();
    assert!(
        text(base, "value").starts_with("az://"),
        "storage every worker reads, never the pod's disk: {base}"
    );
    binary_accepts(&args, "submit Job");
}

/// `kubectl kustomize DIR` (where kubectl is installed), its documents by kind.
fn kustomize(dir: &Path) -> Option<Vec<Value>> {
    let out = match Command::new("kubectl").arg("kustomize").arg(dir).output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("kubectl not installed ({e}); the kustomizations were read as YAML only");
            return None;
        }
    };
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    Some(
        serde_yaml_ng::Deserializer::from_str(&text)
            .map(|d| Value::deserialize(d).unwrap())
            .collect(),
    )
}

#[test]
fn the_kustomizations_build_the_workers_with_az_or_a_shared_volume() {
    for variant in ["workers", "workers-shared-volume"] {
        let dir = kubernetes_dir().join(variant);
        let kustomization = &yaml_documents(&dir.join("kustomization.yaml"))[0];
        assert_eq!(text(kustomization, "kind"), "Kustomization");
        let Some(docs) = kustomize(&dir) else { return };
        let job = docs
            .iter()
            .find(|d| d["kind"] == "ScaledJob")
            .unwrap_or_else(|| panic!("{variant}: no ScaledJob"));
        for d in &docs {
            assert_eq!(text(d, "metadata.namespace"), "datsync", "{variant}: {d}");
        }
        let pod = at(job, "spec.jobTargetRef.template.spec");
        let image = text(&list(pod, "containers")[0], "image");
        assert!(image.ends_with("/datsync:0.1.0"), "{variant}: {image}");
        let work = list(pod, "volumes")
            .iter()
            .find(|v| v["name"] == "work")
            .unwrap();
        if variant == "workers-shared-volume" {
            // The claim at the same path in every pod: the recorded absolute checkpoint
            // path opens alike in the submitting pod and in each worker.
            let claim = text(work, "persistentVolumeClaim.claimName");
            let pvc = docs
                .iter()
                .find(|d| d["kind"] == "PersistentVolumeClaim" && d["metadata"]["name"] == claim)
                .unwrap_or_else(|| panic!("no claim {claim}"));
            assert_eq!(strings(pvc, "spec.accessModes"), ["ReadWriteMany"]);
            let mount = list(&list(pod, "containers")[0], "volumeMounts")
                .iter()
                .find(|m| m["name"] == "work")
                .unwrap()
                .clone();
            assert_eq!(text(&mount, "mountPath"), "/var/lib/datsync");
            let dockerfile = read(&repo_root().join("Dockerfile"));
            assert!(dockerfile.contains("ENV CHECKPOINT_BASE_PATH=/var/lib/datsync/checkpoints"));
        } else {
            assert!(work.get("emptyDir").is_some(), "{work}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Bicep, read as far as these templates use it.

/// A Bicep template: its parameters (with their defaults) and its resources.
#[derive(Debug)]
struct Bicep {
    /// `param NAME TYPE [= DEFAULT]`: the default, `Null` when none.
    params: BTreeMap<String, Value>,
    /// `resource SYMBOL 'TYPE@VERSION' [existing] = { … }`: (type, version, body).
    resources: BTreeMap<String, (String, String, Value)>,
}

/// Strips a `//` comment outside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'\'' => quoted = !quoted,
            b'/' if !quoted && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
        i += 1;
    }
    line
}

/// A scalar: a string literal (escapes read, `${param}` replaced by the parameter's
/// default), an integer, a boolean, or an expression kept as `<expr …>`.
fn bicep_scalar(raw: &str, params: &BTreeMap<String, Value>, at_line: usize) -> Value {
    let raw = raw.trim();
    if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        let mut out = String::new();
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(c @ ('\\' | '\'' | '$')) => out.push(c),
                    other => panic!("line {at_line}: escape \\{other:?}"),
                },
                '\'' => panic!("line {at_line}: an unescaped quote inside {raw}"),
                '$' if chars.peek() == Some(&'{') => {
                    chars.next();
                    let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                    match params.get(&name) {
                        Some(Value::String(s)) => out.push_str(s),
                        Some(Value::Number(n)) => out.push_str(&n.to_string()),
                        _ => {
                            out.push_str("${");
                            out.push_str(&name);
                            out.push('}');
                        }
                    }
                }
                c => out.push(c),
            }
        }
        return Value::String(out);
    }
    if let Ok(n) = raw.parse::<i64>() {
        return n.into();
    }
    match raw {
        "true" => true.into(),
        "false" => false.into(),
        _ => {
            // An expression: a name, a call, a member, a condition — one value, so no
            // comma outside parentheses.
            let mut depth = 0i32;
            for c in raw.chars() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    ',' if depth == 0 => panic!("line {at_line}: two values in {raw:?}"),
                    _ => {}
                }
            }
            assert!(
                depth == 0 && raw.starts_with(|c: char| c.is_ascii_alphabetic()),
                "line {at_line}: cannot read {raw:?}"
            );
            Value::String(format!("<expr {raw}>"))
        }
    }
}

/// The object or array that opens on the line before `lines[*i]`, up to its closing line.
fn bicep_block(
    lines: &[(usize, String)],
    i: &mut usize,
    array: bool,
    params: &BTreeMap<String, Value>,
) -> Value {
    let close = if array { "]" } else { "}" };
    let mut object = serde_json::Map::new();
    let mut items = Vec::new();
    loop {
        let (n, line) = lines
            .get(*i)
            .unwrap_or_else(|| panic!("unclosed block at the end"));
        let n = *n;
        *i += 1;
        if line == close {
            return if array {
                Value::Array(items)
            } else {
                Value::Object(object)
            };
        }
        if array {
            items.push(match line.as_str() {
                "{" => bicep_block(lines, i, false, params),
                "[" => bicep_block(lines, i, true, params),
                scalar => bicep_scalar(scalar, params, n),
            });
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("line {n}: not `key: value`: {line}"));
        let key = key.trim().trim_matches('\'').to_owned();
        assert!(
            key.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_${}.-".contains(c)),
            "line {n}: key {key:?}"
        );
        let value = match value.trim() {
            "{" => bicep_block(lines, i, false, params),
            "[" => bicep_block(lines, i, true, params),
            "{}" => Value::Object(serde_json::Map::new()),
            "[]" => Value::Array(Vec::new()),
            scalar => bicep_scalar(scalar, params, n),
        };
        let previous = object.insert(key.clone(), value);
        assert!(previous.is_none(), "line {n}: `{key}` twice");
    }
}

/// Reads a template written one property per line (as deploy/'s are); anything else is
/// refused naming its line, so the reader never skips what it does not understand.
fn read_bicep(path: &Path) -> Bicep {
    let source = read(path);
    let lines: Vec<(usize, String)> = source
        .lines()
        .enumerate()
        .map(|(n, l)| (n + 1, strip_comment(l).trim().to_owned()))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    let mut bicep = Bicep {
        params: BTreeMap::new(),
        resources: BTreeMap::new(),
    };
    let mut i = 0;
    while i < lines.len() {
        let (n, line) = &lines[i];
        i += 1;
        if line.starts_with('@') {
            continue; // a decorator: @description('…'), @secure()
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first().copied() {
            Some("param") => {
                let (head, default) = match line.split_once(" = ") {
                    Some((h, d)) => (h, Some(d)),
                    None => (line.as_str(), None),
                };
                let parts: Vec<&str> = head.split_whitespace().collect();
                assert_eq!(parts.len(), 3, "line {n}: {line}");
                let value = default.map_or(Value::Null, |d| bicep_scalar(d, &bicep.params, *n));
                bicep.params.insert(parts[1].to_owned(), value);
            }
            Some("resource") => {
                assert!(line.ends_with("= {"), "line {n}: {line}");
                let symbol = words[1].to_owned();
                let kind = words[2].trim_matches('\'');
                let (kind, version) = kind
                    .split_once('@')
                    .unwrap_or_else(|| panic!("line {n}: no API version"));
                let body = bicep_block(&lines, &mut i, false, &bicep.params);
                bicep
                    .resources
                    .insert(symbol, (kind.to_owned(), version.to_owned(), body));
            }
            Some("output" | "targetScope" | "var") => {}
            _ => panic!("{}: line {n}: cannot read {line}", path.display()),
        }
    }
    bicep
}

/// The fields of `Microsoft.App/jobs` (API 2024-03-01) at each level this template uses.
const ACA_JOB: &[&str] = &["name", "location", "tags", "identity", "properties"];
const ACA_JOB_PROPERTIES: &[&str] = &[
    "environmentId",
    "workloadProfileName",
    "configuration",
    "template",
];
const ACA_JOB_CONFIGURATION: &[&str] = &[
    "triggerType",
    "replicaTimeout",
    "replicaRetryLimit",
    "manualTriggerConfig",
    "scheduleTriggerConfig",
    "eventTriggerConfig",
    "secrets",
    "registries",
];
const ACA_EVENT_TRIGGER: &[&str] = &["parallelism", "replicaCompletionCount", "scale"];
const ACA_JOB_SCALE: &[&str] = &["minExecutions", "maxExecutions", "pollingInterval", "rules"];
const ACA_SCALE_RULE: &[&str] = &["name", "type", "metadata", "auth"];
const ACA_CONTAINER: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "env",
    "resources",
    "probes",
    "volumeMounts",
];

#[test]
fn container_apps_job_runs_workers_on_the_same_scale_rule() {
    let path = repo_root().join("deploy/container-apps/main.bicep");
    let bicep = read_bicep(&path);
    let jobs: Vec<&(String, String, Value)> = bicep
        .resources
        .values()
        .filter(|(kind, _, _)| kind == "Microsoft.App/jobs")
        .collect();
    assert_eq!(jobs.len(), 1, "{:?}", bicep.resources.keys());
    let (_, version, job) = jobs[0];
    assert!(
        version.as_str() >= "2023-05-01",
        "event jobs are GA from 2023-05-01: {version}"
    );
    only_fields(job, "job", ACA_JOB);
    let properties = at(job, "properties");
    only_fields(properties, "properties", ACA_JOB_PROPERTIES);
    assert!(text(properties, "environmentId").starts_with("<expr"));
    let configuration = at(properties, "configuration");
    only_fields(configuration, "configuration", ACA_JOB_CONFIGURATION);
    assert_eq!(text(configuration, "triggerType"), "Event");
    assert!(int(configuration, "replicaTimeout") > 0);
    assert!((0..=6).contains(&int(configuration, "replicaRetryLimit")));
    let secrets: Vec<&str> = list(configuration, "secrets")
        .iter()
        .map(|s| {
            assert!(
                s.get("value").is_some() || s.get("keyVaultUrl").is_some(),
                "{s}"
            );
            text(s, "name")
        })
        .collect();

    let trigger = at(configuration, "eventTriggerConfig");
    only_fields(trigger, "eventTriggerConfig", ACA_EVENT_TRIGGER);
    assert_eq!(int(trigger, "parallelism"), 1);
    assert_eq!(int(trigger, "replicaCompletionCount"), 1);
    let scale = at(trigger, "scale");
    only_fields(scale, "scale", ACA_JOB_SCALE);
    assert_eq!(int(scale, "minExecutions"), 0);
    let max = text(scale, "maxExecutions");
    let max_param = max.trim_start_matches("<expr ").trim_end_matches('>');
    assert!(bicep.params[max_param].as_i64().unwrap() >= 1, "{max}");
    assert!(int(scale, "pollingInterval") >= 1);
    let rules = list(scale, "rules");
    assert_eq!(rules.len(), 1);
    let rule = &rules[0];
    only_fields(rule, "rule", ACA_SCALE_RULE);
    assert_eq!(text(rule, "type"), "postgresql");
    let metadata = at(rule, "metadata");
    only_fields(metadata, "postgresql metadata", POSTGRESQL_METADATA);
    assert_eq!(text(metadata, "query"), scale_query());
    assert!(numeric_text(metadata, "targetQueryValue") > 0.0);
    assert!(numeric_text(metadata, "activationTargetQueryValue") >= 0.0);
    let auth = list(rule, "auth");
    let connection = auth
        .iter()
        .find(|a| a["triggerParameter"] == "connection")
        .unwrap_or_else(|| panic!("no connection in {auth:?}"));
    assert!(secrets.contains(&text(connection, "secretRef")));

    // The same scale rule as the ScaledJob: one documented query, one target.
    let keda = manifests(&kubernetes_dir().join("workers"));
    let scaled = &keda[&("ScaledJob".to_owned(), "datsync-worker".to_owned())];
    let keda_metadata = &list(scaled, "spec.triggers")[0]["metadata"];
    assert_eq!(
        keda_metadata, metadata,
        "the KEDA trigger and the ACA rule differ"
    );

    let containers = list(properties, "template.containers");
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    only_fields(container, "container", ACA_CONTAINER);
    assert!(
        container.get("command").is_none(),
        "the image's entrypoint is datsync"
    );
    let args = strings(container, "args");
    check_worker_args(&args, "Container Apps job");
    let keda_args = strings(
        &list(scaled, "spec.jobTargetRef.template.spec.containers")[0],
        "args",
    );
    assert_eq!(args, keda_args, "the same worker on both engines");
    for env in list(container, "env") {
        if let Some(r) = env.get("secretRef") {
            assert!(secrets.contains(&r.as_str().unwrap()), "{env}");
        }
    }
    assert!(
        list(container, "env")
            .iter()
            .any(|e| e["name"] == "DATABASE_URL")
    );
}

#[test]
fn the_bicep_reader_refuses_what_it_does_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.bicep");
    let good = "param n int = 3\nresource r 'A/b@2024-01-01' = {\n  name: 'x-${n}' // c\n  p: {\n    l: [\n      'a'\n      {\n        k: f(n)\n      }\n    ]\n  }\n}\n";
    std::fs::write(&path, good).unwrap();
    let b = read_bicep(&path);
    let (_, _, body) = &b.resources["r"];
    assert_eq!(body["name"], "x-3");
    assert_eq!(body["p"]["l"][0], "a");
    assert_eq!(body["p"]["l"][1]["k"], "<expr f(n)>");
    for bad in [
        // two properties on one line, a stray word, an unclosed block
        "resource r 'A/b@1' = {\n  a: 1, b: 2\n}\n",
        "resource r 'A/b@1' = {\n  a 1\n}\n",
        "resource r 'A/b@1' = {\n  a: {\n}\n",
        "module m './x.bicep' = {\n}\n",
    ] {
        std::fs::write(&path, bad).unwrap();
        let caught = std::panic::catch_unwind(|| read_bicep(&path));
        assert!(caught.is_err(), "{bad}");
    }
}

#[test]
fn the_readme_documents_the_scale_query_and_both_deployments() {
    let readme = read(&repo_root().join("README.md"));
    for want in [
        scale_query().as_str(),
        "deploy/kubernetes",
        "deploy/container-apps",
    ] {
        assert!(readme.contains(want), "the README lacks {want}");
    }
}
