//! The new user: a PostgreSQL server with TLS on and a certificate for `localhost`
//! only, the same connection strings and environment given to `psql` and to
//! `datsync init-db`; both connect or refuse alike, and datsync says why on one line.

use std::path::Path;

use datsync::{SearchPaths, TempPostgres, TempPostgresOptions, find_binaries};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::harness::{TestDb, datsync};

/// A CA, and a server certificate and key for `localhost` signed by it (PEM).
fn certificates() -> (String, String, String) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().unwrap();
    let cert = server.signed_by(&key, &ca).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

fn tls_server(cert: &str, key: &str) -> TempPostgres {
    let options = TempPostgresOptions {
        tcp: true,
        settings: vec![
            ("ssl".into(), "on".into()),
            ("ssl_cert_file".into(), "server.crt".into()),
            ("ssl_key_file".into(), "server.key".into()),
        ],
        data_files: vec![
            ("server.crt".into(), cert.as_bytes().to_vec()),
            ("server.key".into(), key.as_bytes().to_vec()),
        ],
        ..TempPostgresOptions::default()
    };
    TempPostgres::start_with(&options).unwrap()
}

/// Whether psql connects with this string and environment.
fn psql_connects(conn: Option<&str>, env: &[(&str, &str)], home: &Path) -> bool {
    let psql = find_binaries(&SearchPaths::default())
        .unwrap()
        .bindir
        .join("psql");
    let mut cmd = std::process::Command::new(psql);
    cmd.env_clear()
        .env("HOME", home)
        .envs(env.iter().copied())
        .args(["-X", "-w", "-c", "select 1"]);
    if let Some(conn) = conn {
        cmd.arg(conn);
    }
    cmd.output().unwrap().status.success()
}

/// A row: the connection string (or none), the environment, whether psql connects, and
/// what datsync's message must say otherwise.
type Row<'a> = (Option<String>, Vec<(&'a str, &'a str)>, bool, &'a str);

#[test]
fn datsync_connects_or_refuses_as_psql_does() {
    let (ca_pem, cert, key) = certificates();
    let server = tls_server(&cert, &key);
    let home = tempfile::tempdir().unwrap();
    let ca = home.path().join("ca.crt");
    std::fs::write(&ca, ca_pem).unwrap();
    let ca = ca.display().to_string();
    let port = server.port().to_string();
    let url =
        |host: &str, query: &str| format!("postgresql://datsync@{host}:{port}/postgres?{query}");
    let home_var = home.path().display().to_string();
    let rows: Vec<Row> = vec![
        (Some(url("127.0.0.1", "sslmode=require")), vec![], true, ""),
        (Some(url("127.0.0.1", "sslmode=prefer")), vec![], true, ""),
        (Some(url("127.0.0.1", "")), vec![], true, ""),
        (
            Some(url(
                "127.0.0.1",
                &format!("sslmode=verify-full&sslrootcert={ca}"),
            )),
            vec![],
            false,
            "server certificate for \"localhost\" (and 1 other name) does not match host name \"127.0.0.1\"",
        ),
        (
            Some(url(
                "localhost",
                &format!("sslmode=verify-full&sslrootcert={ca}"),
            )),
            vec![],
            true,
            "",
        ),
        (
            Some(url("127.0.0.1", "sslmode=verify-ca")),
            vec![],
            false,
            "root certificate file",
        ),
        (
            None,
            vec![
                ("PGHOST", "127.0.0.1"),
                ("PGPORT", &port),
                ("PGUSER", "datsync"),
                ("PGDATABASE", "postgres"),
                ("PGSSLMODE", "require"),
            ],
            true,
            "",
        ),
    ];
    for (conn, env, connects, why) in rows {
        let psql = psql_connects(conn.as_deref(), &env, home.path());
        assert_eq!(psql, connects, "psql: {conn:?} {env:?}");
        let mut args = vec!["init-db", "--json"];
        if let Some(c) = &conn {
            args.extend(["--database-url", c.as_str()]);
        }
        let mut env = env.clone();
        env.push(("HOME", &home_var));
        let (code, out, err) = datsync(home.path(), &args, &env);
        assert_eq!(code == 0, connects, "datsync: {conn:?} {env:?}: {out}{err}");
        if !connects {
            let line = err.trim();
            assert!(!line.contains('\n'), "{line}");
            assert!(
                line.contains(&format!(":{port} (")) && line.contains("sslmode="),
                "{line}"
            );
            assert_eq!(line.matches(why).count(), 1, "{line}");
        }
    }
    server.shutdown().unwrap();
}

#[test]
fn the_pg_variables_alone_are_database_settings() {
    let db = TestDb::new();
    let cwd = tempfile::tempdir().unwrap();
    let home = cwd.path().display().to_string();
    let (code, out, err) = datsync(
        cwd.path(),
        &["init-db", "--json"],
        &[
            ("PGHOST", "127.0.0.1"),
            ("PGUSER", "root"),
            ("PGDATABASE", &db.name),
            ("PGAPPNAME", "datsync-ops-test"),
            ("HOME", &home),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&db.name), "{out}");
}
