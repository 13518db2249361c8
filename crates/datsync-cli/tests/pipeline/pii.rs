//! Personal data (issue 21 item 3): the built-in profile marks every `nik_*` and `nama_*`
//! column `pii = true`, and their values never leave the rejects files. A file with ragged
//! rows, a line over the maximum length, a NUL row, an empty NIK and unreadable values — the
//! raw lines starting with NIKs and names — is run through the real binary with an SMTP
//! server and a webhook on loopback; `validation_errors`, the ledger, the mail, the webhook
//! body, the logs (stderr at debug), the summary and `inspect`'s output are scanned for every
//! NIK and name of those rows: none may appear. The rejects files keep them (`datsync
//! rejects` shows them). A NUL byte of a row error is stored as U+FFFD (jsonb refuses `\u0000`).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;

use crate::common::{CLEAN, TestDb, Work, datsync, fresh_sync_id, webhook_server};

/// NIKs and names written into the broken rows (the generator never writes them).
const NIKS: [&str; 5] = [
    "3174019988776601",
    "3174019988776602",
    "3174019988776603",
    "3174019988776604",
    "3174019988776605",
];
const NAMES: [&str; 4] = [
    "Sutrisno Wibowo Pribadi",
    "Ratna Kusumawati Lestari",
    "Bambang Hartono Saputro",
    "Wulandari Puspitasari",
];

/// A file of 200 clean rows with five broken ones, each holding a NIK and a name:
/// a ragged row starting with them, a long line whose key is a NIK, a NUL row, a row with an
/// empty `nik_supir`, and a row with an unreadable `qty_dikirim`.
fn personal_file(work: &Work) {
    // Lossy: the generator writes a few Latin-1 rows; their text does not matter here.
    let text = String::from_utf8_lossy(&std::fs::read(&work.file).unwrap()).into_owned();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let header: Vec<String> = lines[0]
        .split("~|^")
        .map(|h| h.trim_matches(['^', '~']).to_owned())
        .collect();
    let at = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (nik, pemuat, nama, qty, nopol) = (
        at("nik_supir"),
        at("nik_pemuat_1"),
        at("nama_supir"),
        at("qty_dikirim"),
        at("no_polisi"),
    );
    let edit = |line: &str, f: &dyn Fn(&mut Vec<String>)| {
        let mut fields: Vec<String> = line.split("~|^").map(str::to_owned).collect();
        f(&mut fields);
        fields.join("~|^")
    };
    // Ragged: two fields too many, the NIK and the name first.
    lines[10] = format!(
        "{}~|^{}~|^{}",
        NIKS[0],
        NAMES[0],
        edit(&lines[10], &|f| f[nik] = NIKS[0].into())
    );
    // Longer than MAX_LINE_BYTES (16 KiB in the run): its key is a NIK.
    lines[20] = edit(&lines[20], &|f| {
        f[0] = NIKS[1].into();
        f[nama] = NAMES[1].into();
        f[nopol] = "Z".repeat(20_000);
    });
    // A NUL byte: the decoder keeps the raw line.
    lines[30] = edit(&lines[30], &|f| {
        f[0] = format!("{}\0{}", NIKS[2], NAMES[2]);
        f[nik] = NIKS[2].into();
    });
    // An empty NIK (required), a name and another NIK beside it.
    lines[40] = edit(&lines[40], &|f| {
        f[nik] = String::new();
        f[pemuat] = NIKS[3].into();
        f[nama] = NAMES[3].into();
    });
    // An unreadable quantity: a value warning on a row holding a NIK.
    lines[50] = edit(&lines[50], &|f| {
        f[nik] = NIKS[4].into();
        f[qty] = "abc".into();
    });
    std::fs::write(&work.file, lines.join("\n") + "\n").unwrap();
}

/// Every NIK or name of the broken rows found in `text`, for `what`.
fn leaks(what: &str, text: &str) -> Vec<String> {
    NIKS.iter()
        .chain(NAMES.iter())
        .filter(|v| text.contains(*v))
        .map(|v| format!("{what}: {v}"))
        .collect()
}

/// A minimal SMTP server on loopback: accepts every message and sends its DATA (headers and
/// body, the body decoded from base64 or quoted-printable) on the channel.
fn smtp_server() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("smtp://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let _ = stream.write_all(b"220 localhost ESMTP test\r\n");
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let verb = line.trim_end().to_ascii_uppercase();
                let reply: &[u8] = if verb.starts_with("DATA") {
                    let _ = stream.write_all(b"354 go on\r\n");
                    let mut data = String::new();
                    loop {
                        let mut l = String::new();
                        if reader.read_line(&mut l).unwrap_or(0) == 0 || l == ".\r\n" {
                            break;
                        }
                        data.push_str(&l);
                    }
                    let _ = tx.send(decoded(&data));
                    b"250 queued\r\n"
                } else if verb.starts_with("QUIT") {
                    let _ = stream.write_all(b"221 bye\r\n");
                    break;
                } else {
                    b"250 ok\r\n"
                };
                let _ = stream.write_all(reply);
            }
        }
    });
    (url, rx)
}

/// A message's headers and its body decoded as a mail reader would.
fn decoded(data: &str) -> String {
    let (head, body) = data.split_once("\r\n\r\n").unwrap_or((data, ""));
    let encoding = head.to_ascii_lowercase();
    let body = if encoding.contains("content-transfer-encoding: base64") {
        let b64: String = body.split_whitespace().collect();
        String::from_utf8_lossy(
            &base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .into_owned()
    } else if encoding.contains("content-transfer-encoding: quoted-printable") {
        let joined = body.replace("=\r\n", "");
        let mut out = Vec::new();
        let bytes = joined.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'='
                && i + 2 < bytes.len()
                && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
            {
                out.push(b);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    } else {
        body.to_owned()
    };
    format!("{head}\r\n\r\n{body}")
}

#[test]
fn personal_values_never_leave_the_rejects_files() {
    let work = Work::new(200, 41, CLEAN);
    personal_file(&work);
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let sync = fresh_sync_id();
    let (hook, posted) = webhook_server();
    let (smtp, mailed) = smtp_server();
    let out = work.run(
        &db,
        &ck,
        &["--sync-id", &sync],
        &[
            ("ALERT_WEBHOOK_URL", &hook),
            ("ALERT_EMAIL", "ops@example.com"),
            ("SMTP_URL", &smtp),
            ("MAX_LINE_BYTES", "16KiB"),
            ("RUST_LOG", "debug"),
        ],
    );
    let summary = out.summary();
    assert!(
        ["PARTIAL_SUCCESS", "BAD_INPUT"].contains(&summary["status"].as_str().unwrap()),
        "{}",
        out.describe()
    );
    let (_, alert) = posted.recv_timeout(Duration::from_secs(30)).unwrap();
    let mail = mailed.recv_timeout(Duration::from_secs(30)).unwrap();
    let metadata = db.metadata(&sync).unwrap();
    let ledger = serde_json::to_string(&db.ledger(&sync)).unwrap();
    let inspect = datsync(
        work.path(),
        &["inspect", work.file(), "--max-line-bytes", "16KiB"],
        &[],
    );
    assert_eq!(inspect.code(), Some(0), "{}", inspect.describe());
    let inspect_json = datsync(
        work.path(),
        &[
            "inspect",
            work.file(),
            "--json",
            "--rows",
            "100",
            "--max-line-bytes",
            "16KiB",
        ],
        &[],
    );
    assert_eq!(inspect_json.code(), Some(0), "{}", inspect_json.describe());

    // The rows are there, masked: the ragged row, the long line and the NUL row are named.
    let errors = metadata["validation_errors"].as_array().unwrap();
    for line in [11, 21, 31, 41] {
        assert!(
            errors.iter().any(|e| e["line"] == line),
            "line {line} in {errors:?}"
        );
    }
    let raw_lines: Vec<_> = errors.iter().filter(|e| e["column"].is_null()).collect();
    assert!(raw_lines.len() >= 3, "{errors:?}");
    assert!(raw_lines.iter().all(|e| e["value"] == "***"), "{errors:?}");
    let alerted = serde_json::to_string(&alert).unwrap();
    assert!(alerted.contains("***"), "{alerted}");
    assert!(mail.contains("line 11: ragged row"), "{mail}");
    assert!(
        inspect_json.stdout.contains("***"),
        "{}",
        inspect_json.stdout
    );

    let mut found = Vec::new();
    found.extend(leaks("validation_errors", &metadata.to_string()));
    found.extend(leaks("ledger", &ledger));
    found.extend(leaks("webhook", &alerted));
    found.extend(leaks("mail", &mail));
    found.extend(leaks("stderr", &out.stderr));
    found.extend(leaks("summary", &out.stdout));
    found.extend(leaks("inspect", &(inspect.stdout + &inspect.stderr)));
    found.extend(leaks(
        "inspect --json",
        &(inspect_json.stdout + &inspect_json.stderr),
    ));
    assert!(
        found.is_empty(),
        "personal data left the rejects files: {found:?}"
    );

    // The rejects files keep them, for whoever may read them (0600 in a 0700 directory).
    let rejects = datsync(
        work.path(),
        &[
            "rejects",
            &sync,
            "--database-url",
            &db.url(),
            "--checkpoint-dir",
            ck.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        rejects.stdout.contains(NIKS[0]) && rejects.stdout.contains(NAMES[0]),
        "{}",
        rejects.describe()
    );
}

/// A row error's NUL byte is stored as U+FFFD in `validation_errors` (jsonb): here with a profile
/// that marks no column personal, so that the raw line is kept.
#[test]
fn a_nul_byte_of_a_row_error_is_stored_as_the_nul_symbol() {
    let work = Work::new(200, 42, CLEAN);
    personal_file(&work);
    let profile = work.path().join("no-pii.toml");
    let text = datsync::ZTDWR_PROFILE_TOML.replace("pii = true\n", "");
    assert!(!text.contains("pii = true"));
    std::fs::write(&profile, text).unwrap();
    let db = TestDb::new();
    let ck = work.checkpoints("ck");
    let sync = fresh_sync_id();
    let out = work.run(
        &db,
        &ck,
        &["--sync-id", &sync, "--profile", profile.to_str().unwrap()],
        &[("MAX_LINE_BYTES", "16KiB")],
    );
    let summary = out.summary();
    assert_eq!(summary["status"], "PARTIAL_SUCCESS", "{}", out.describe());
    let metadata = db.metadata(&sync).unwrap();
    let errors = metadata["validation_errors"].as_array().unwrap();
    let nul = errors.iter().find(|e| e["line"] == 31).unwrap();
    let value = nul["value"].as_str().unwrap();
    assert!(
        value.starts_with(&format!("{}\u{FFFD}{}", NIKS[2], NAMES[2])),
        "{value:?}"
    );
    // Without `pii`, the raw lines are shown as they are.
    assert!(
        errors
            .iter()
            .any(|e| e["value"].as_str().is_some_and(|v| v.contains(NIKS[0]))),
        "{errors:?}"
    );
}
