//! Every `sslmode`, root certificates, client certificates, and `pg_hba.conf` rules that
//! accept only TLS or only plain text: psql and datsync connect or refuse alike.

use std::path::{Path, PathBuf};

use super::{
    Certs, Expect, Row, check_rows, file, plain_read_only_server, stop, tls_server, tls_server_with,
};

const TLS: Expect = Expect::Connects { tls: true };
const PLAIN: Expect = Expect::Connects { tls: false };
const REFUSED: Expect = Expect::Refused;

/// The client-side files of the table.
struct Files {
    dir: tempfile::TempDir,
    ca: String,
    other: String,
    crt: String,
    key: String,
    loose: String,
    server_crt: String,
    self_signed: String,
    home_empty: PathBuf,
    home_root: PathBuf,
    home_other: PathBuf,
    home_client: PathBuf,
}

impl Files {
    fn new(certs: &Certs) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let path =
            |name: &str, pem: &str, mode: u32| file(d, name, pem, mode).display().to_string();
        let home = |name: &str, files: &[(&str, &str, u32)]| {
            let h = d.join(name);
            std::fs::create_dir(&h).unwrap();
            for (f, pem, mode) in files {
                file(&h, f, pem, *mode);
            }
            h
        };
        Self {
            ca: path("ca.crt", &certs.ca, 0o644),
            other: path("other.crt", &certs.other_ca, 0o644),
            crt: path("client.crt", &certs.client, 0o644),
            key: path("client.key", &certs.client_key, 0o600),
            loose: path("client-loose.key", &certs.client_key, 0o644),
            server_crt: path("server.crt", &certs.server, 0o644),
            self_signed: path("self-signed.crt", &certs.self_signed, 0o644),
            home_empty: home("home-empty", &[]),
            home_root: home("home-root", &[(".postgresql/root.crt", &certs.ca, 0o644)]),
            home_other: home(
                "home-other",
                &[(".postgresql/root.crt", &certs.other_ca, 0o644)],
            ),
            home_client: home(
                "home-client",
                &[
                    (".postgresql/root.crt", &certs.ca, 0o644),
                    (".postgresql/postgresql.crt", &certs.client, 0o644),
                    (".postgresql/postgresql.key", &certs.client_key, 0o600),
                ],
            ),
            dir,
        }
    }
}

/// The user the private servers run as (`postgres` when the tests run as root).
fn server_user() -> String {
    let uid = if nix::unistd::geteuid().is_root() {
        nix::unistd::User::from_name("postgres")
            .unwrap()
            .unwrap()
            .uid
    } else {
        nix::unistd::geteuid()
    };
    nix::unistd::User::from_uid(uid).unwrap().unwrap().name
}

/// The table: every row against the TLS server (port `s`, socket directory `socket`) or
/// the server without TLS (port `p`).
#[allow(clippy::too_many_lines)] // a data table
fn table(f: &Files, s: u16, p: u16, socket: &Path) -> Vec<Row> {
    let Files {
        ca,
        other,
        crt,
        key,
        loose,
        ..
    } = f;
    let at = |host: &str, user: &str, extra: &str| {
        format!("host={host} port={s} user={user} dbname=postgres {extra}")
    };
    let plain_at =
        |extra: &str| format!("host=127.0.0.1 port={p} user=trusted dbname=postgres {extra}");
    let ip = |extra: &str| at("127.0.0.1", "trusted", extra);
    let home = |r: Row, h: &Path| r.env("HOME", h.display().to_string());
    let (home_root, home_other, home_client) = (&f.home_root, &f.home_other, &f.home_client);
    let d = f.dir.path();
    vec![
        // The server: TLS on, a certificate for localhost only.
        Row::new("disable", ip("sslmode=disable"), PLAIN),
        Row::new("allow tries plain text first", ip("sslmode=allow"), PLAIN),
        Row::new("prefer", ip("sslmode=prefer"), TLS),
        Row::new("require does not verify", ip("sslmode=require"), TLS),
        Row::new("require as a URL", format!("postgresql://trusted@127.0.0.1:{s}/postgres?sslmode=require"), TLS),
        Row::new("ssl=true in a URL is require", format!("postgresql://trusted@127.0.0.1:{s}/postgres?ssl=true"), TLS),
        Row::new("unspecified on loopback is prefer", ip(""), TLS),
        Row::new("unspecified on localhost is prefer", at("localhost", "trusted", ""), TLS),
        Row::new("verify-ca without a root certificate", ip("sslmode=verify-ca"), REFUSED),
        Row::new("verify-full without a root certificate", at("localhost", "trusted", "sslmode=verify-full"), REFUSED),
        Row::new("verify-ca with the CA", ip(&format!("sslmode=verify-ca sslrootcert={ca}")), TLS),
        Row::new("verify-ca with another CA", ip(&format!("sslmode=verify-ca sslrootcert={other}")), REFUSED),
        Row::new("verify-full, certificate for another name", ip(&format!("sslmode=verify-full sslrootcert={ca}")), REFUSED),
        Row::new("verify-full with the right name", at("localhost", "trusted", &format!("sslmode=verify-full sslrootcert={ca}")), TLS),
        Row::new("verify-full checks host, connects to hostaddr", at("localhost", "trusted", &format!("hostaddr=127.0.0.1 sslmode=verify-full sslrootcert={ca}")), TLS),
        Row::new("require with a root certificate verifies the chain", ip(&format!("sslmode=require sslrootcert={other}")), REFUSED),
        Row::new("require with the right root certificate", ip(&format!("sslmode=require sslrootcert={ca}")), TLS),
        Row::new("prefer falls back to plain text when the chain fails", ip(&format!("sslmode=prefer sslrootcert={other}")), PLAIN),
        Row::new("allow with a bad root certificate stays plain", ip(&format!("sslmode=allow sslrootcert={other}")), PLAIN),
        Row::new("a missing sslrootcert file means no verification for require", ip("sslmode=require sslrootcert=/nonexistent/ca.crt"), TLS),
        home(Row::new("~/.postgresql/root.crt is the default root", at("localhost", "trusted", "sslmode=verify-full"), TLS), home_root),
        home(Row::new("~/.postgresql/root.crt makes require verify", ip("sslmode=require"), REFUSED), home_other),
        Row::new("PGSSLMODE and PGSSLROOTCERT", at("localhost", "trusted", ""), TLS)
            .env("PGSSLMODE", "verify-full")
            .env("PGSSLROOTCERT", ca.clone()),
        Row::new("the string beats PGSSLMODE", ip("sslmode=disable"), PLAIN).env("PGSSLMODE", "require"),
        Row::new("TLS 1.3 at least", ip("sslmode=require ssl_min_protocol_version=TLSv1.3"), TLS),
        Row::new("TLS 1.2 at most", ip("sslmode=require ssl_max_protocol_version=TLSv1.2"), TLS),
        // pg_hba.conf: hostssl only.
        Row::new("hostssl only: disable", at("127.0.0.1", "sslonly", "sslmode=disable"), REFUSED),
        Row::new("hostssl only: allow retries with TLS", at("127.0.0.1", "sslonly", "sslmode=allow"), TLS),
        Row::new("hostssl only: prefer", at("127.0.0.1", "sslonly", "sslmode=prefer"), TLS),
        // pg_hba.conf: hostnossl only.
        Row::new("hostnossl only: prefer retries in plain text", at("127.0.0.1", "nossl", "sslmode=prefer"), PLAIN),
        Row::new("hostnossl only: require", at("127.0.0.1", "nossl", "sslmode=require"), REFUSED),
        Row::new("hostnossl only: allow", at("127.0.0.1", "nossl", "sslmode=allow"), PLAIN),
        // Client certificates (`cert` authentication).
        Row::new("client certificate", at("localhost", "certuser", &format!("sslmode=verify-full sslrootcert={ca} sslcert={crt} sslkey={key}")), TLS),
        Row::new("client certificate with require", at("127.0.0.1", "certuser", &format!("sslmode=require sslcert={crt} sslkey={key}")), TLS),
        Row::new("no client certificate", at("localhost", "certuser", &format!("sslmode=verify-full sslrootcert={ca}")), REFUSED),
        Row::new("a key others may read is refused", at("localhost", "certuser", &format!("sslmode=verify-full sslrootcert={ca} sslcert={crt} sslkey={loose}")), REFUSED),
        Row::new("certificate without its key", at("localhost", "certuser", &format!("sslmode=require sslcert={crt} sslkey={}/missing.key", d.display())), REFUSED),
        Row::new("PGSSLCERT and PGSSLKEY", at("localhost", "certuser", &format!("sslmode=verify-full sslrootcert={ca}")), TLS)
            .env("PGSSLCERT", crt.clone())
            .env("PGSSLKEY", key.clone()),
        home(Row::new("~/.postgresql/postgresql.crt and .key", at("localhost", "certuser", "sslmode=verify-full"), TLS), home_client),
        Row::new("sslcertmode=disable sends none", at("localhost", "certuser", &format!("sslmode=verify-full sslrootcert={ca} sslcert={crt} sslkey={key} sslcertmode=disable")), REFUSED)
            .differs("sslcertmode is PostgreSQL 16's; psql 15 does not know it", REFUSED),
        // A server without TLS.
        Row::new("no TLS: disable", plain_at("sslmode=disable"), PLAIN).port(p),
        Row::new("no TLS: allow", plain_at("sslmode=allow"), PLAIN),
        Row::new("no TLS: prefer", plain_at("sslmode=prefer"), PLAIN),
        Row::new("no TLS: unspecified on loopback", plain_at(""), PLAIN),
        Row::new("no TLS: require", plain_at("sslmode=require"), REFUSED),
        Row::new("no TLS: verify-full", format!("host=localhost port={p} user=trusted dbname=postgres sslmode=verify-full sslrootcert={ca}"), REFUSED),
        // Unix sockets never use TLS (libpq ignores sslmode there).
        Row::new("socket with require", format!("host={} port={s} user=trusted dbname=postgres sslmode=require", socket.display()), PLAIN),
        Row::new("socket with verify-full", format!("host={} port={s} user=trusted dbname=postgres sslmode=verify-full", socket.display()), PLAIN),
        Row::new("requirepeer names the server's user", format!("host={} port={s} user=trusted dbname=postgres requirepeer={}", socket.display(), server_user()), PLAIN),
        Row::new("requirepeer names another user", format!("host={} port={s} user=trusted dbname=postgres requirepeer=nobody", socket.display()), REFUSED),
        // Where datsync departs from libpq on purpose.
        Row::new("unspecified for a remote host name", at("db.example.com", "trusted", "hostaddr=127.0.0.1"), TLS)
            .differs("an unspecified sslmode is verify-full for a remote host (system roots)", REFUSED),
        Row::new("unspecified for a remote host with its root", at("db.example.com", "trusted", &format!("hostaddr=127.0.0.1 sslrootcert={ca}")), TLS)
            .differs("verify-full: the certificate is for localhost, not db.example.com", REFUSED),
        Row::new("sslrootcert=system with require", ip("sslmode=require sslrootcert=system"), TLS)
            .differs("PostgreSQL 16: sslrootcert=system needs verify-full (psql 15 reads a file named system)", REFUSED),
        Row::new("sslrootcert=system: the test CA is not a system root", at("localhost", "trusted", "sslrootcert=system"), TLS)
            .differs("PostgreSQL 16: sslrootcert=system means verify-full with the system's roots", REFUSED),
    ]
}

/// A server whose certificate is self-signed (`self_port`), given as its own root — and
/// the CA-signed server's leaf given alone as a root (`s`), which is not enough.
fn self_signed_rows(f: &Files, s: u16, self_port: u16) -> Vec<Row> {
    let at = |host: &str, port: u16, extra: &str| {
        format!("host={host} port={port} user=trusted dbname=postgres {extra}")
    };
    let (own, leaf) = (&f.self_signed, &f.server_crt);
    vec![
        Row::new(
            "self-signed certificate as its own root",
            at(
                "localhost",
                self_port,
                &format!("sslmode=verify-full sslrootcert={own}"),
            ),
            TLS,
        ),
        Row::new(
            "self-signed, verify-ca by address",
            at(
                "127.0.0.1",
                self_port,
                &format!("sslmode=verify-ca sslrootcert={own}"),
            ),
            TLS,
        ),
        Row::new(
            "self-signed, verify-full by address",
            at(
                "127.0.0.1",
                self_port,
                &format!("sslmode=verify-full sslrootcert={own}"),
            ),
            REFUSED,
        ),
        Row::new(
            "self-signed, another root",
            at(
                "localhost",
                self_port,
                &format!("sslmode=verify-full sslrootcert={}", f.ca),
            ),
            REFUSED,
        ),
        Row::new(
            "a CA-signed leaf alone is no root",
            at(
                "localhost",
                s,
                &format!("sslmode=verify-full sslrootcert={leaf}"),
            ),
            REFUSED,
        ),
    ]
}

#[tokio::test]
async fn every_sslmode_connects_or_refuses_as_psql_does() {
    let certs = Certs::new();
    let (tls_srv, plain_srv, self_srv) = tokio::join!(
        tls_server(&certs),
        plain_read_only_server(),
        tls_server_with(&certs, &certs.self_signed, &certs.self_signed_key)
    );
    let files = Files::new(&certs);
    let s = tls_srv.port();
    let mut rows = table(&files, s, plain_srv.port(), tls_srv.dir());
    rows.extend(self_signed_rows(&files, s, self_srv.port()));
    let results = check_rows(&rows, &files.home_empty).await;
    let other = &files.other;

    // Every refusal is one line naming host, port, database, user and sslmode, with its
    // cause said once.
    for (row, outcome) in &results {
        let Err(message) = outcome else { continue };
        assert!(!message.contains('\n'), "{}: {message}", row.name);
        if message.starts_with("database settings") {
            continue;
        }
        for needle in ["database \"postgres\"", "as user \"", "sslmode=", ":"] {
            assert!(
                message.contains(needle),
                "{}: {needle} missing in {message}",
                row.name
            );
        }
        let cause = message.rsplit("): ").next().unwrap_or_default();
        assert_eq!(
            message.matches(cause).count(),
            1,
            "{}: cause repeated in {message}",
            row.name
        );
    }
    let message = |name: &str| {
        results
            .iter()
            .find(|(r, _)| r.name == name)
            .and_then(|(_, o)| o.clone().err())
            .unwrap()
    };
    let m = message("verify-full, certificate for another name");
    assert!(
        m.contains(&format!("127.0.0.1:{s} (sslmode=verify-full, tls, certificate and host name verified): server certificate for \"localhost\" (and 1 other name) does not match host name \"127.0.0.1\"")),
        "{m}"
    );
    let m = message("no TLS: require");
    assert!(
        m.contains("the server does not support TLS, but sslmode=require requires it"),
        "{m}"
    );
    let m = message("verify-ca without a root certificate");
    assert!(
        m.contains("root certificate file") && m.contains("does not exist"),
        "{m}"
    );
    let m = message("unspecified for a remote host name");
    assert!(
        m.contains("sslmode=verify-full (the default for a remote host)"),
        "{m}"
    );
    assert!(
        m.contains("does not chain to the system's trusted roots"),
        "{m}"
    );
    let m = message("verify-ca with another CA");
    assert!(
        m.contains(&format!("does not chain to sslrootcert \"{other}\"")),
        "{m}"
    );
    let m = message("a key others may read is refused");
    assert!(m.contains("has group or world access"), "{m}");

    tokio::join!(stop(tls_srv), stop(plain_srv), stop(self_srv));
}
