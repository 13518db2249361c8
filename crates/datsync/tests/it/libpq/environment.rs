//! The libpq environment and files — `PG*` variables, the password file, the service file
//! — and several hosts with `target_session_attrs`: psql and datsync reach the same server
//! as the same user, or both refuse.

use super::{
    Certs, Expect, PW, Row, check_rows, dead_port, file, plain_read_only_server, stop, tls_server,
};

const TLS: Expect = Expect::Connects { tls: true };
const PLAIN: Expect = Expect::Connects { tls: false };
const REFUSED: Expect = Expect::Refused;

/// A password file line for `pwuser` (the password escaped as the file wants it).
fn pgpass_line(host: &str, port: &str) -> String {
    let pw = PW.replace('\\', "\\\\").replace(':', "\\:");
    format!("# datsync test\n{host}:{port}:postgres:pwuser:{pw}\n")
}

#[tokio::test]
async fn the_libpq_environment_and_files_work_as_in_psql() {
    let certs = Certs::new();
    let (rw, ro) = tokio::join!(tls_server(&certs), plain_read_only_server());
    let (s, p, dead) = (rw.port(), ro.port(), dead_port());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let empty_home = d.join("home-empty");
    std::fs::create_dir(&empty_home).unwrap();
    let ca = file(d, "ca.crt", &certs.ca, 0o644).display().to_string();
    let port = s.to_string();
    let passfile = file(d, "pgpass", &pgpass_line("127.0.0.1", &port), 0o600);
    let wildcard = file(d, "pgpass-wild", &pgpass_line("*", "*"), 0o600);
    let loose = file(d, "pgpass-loose", &pgpass_line("*", "*"), 0o644);
    let home_pgpass = d.join("home-pgpass");
    file(
        &home_pgpass,
        ".pgpass",
        &pgpass_line("localhost", &port),
        0o600,
    );
    let services = format!(
        "# services\n[prod]\nhost=localhost\nport={s}\nuser=trusted\ndbname=postgres\nsslmode=verify-full\nsslrootcert={ca}\n\n[plain]\nhost=127.0.0.1\nport={p}\nuser=trusted\ndbname=postgres\n"
    );
    let service_file = file(d, "services.conf", &services, 0o644)
        .display()
        .to_string();
    let sysconf = d.join("sysconf");
    file(&sysconf, "pg_service.conf", &services, 0o644);
    let home_service = d.join("home-service");
    file(&home_service, ".pg_service.conf", &services, 0o644);
    let sysconf = sysconf.display().to_string();
    let path = |p: &std::path::Path| p.display().to_string();

    let pwuser = format!("host=127.0.0.1 port={s} user=pwuser dbname=postgres");
    let both = |extra: &str| {
        format!("host=127.0.0.1,127.0.0.1 port={p},{s} user=trusted dbname=postgres {extra}")
    };
    let rows = vec![
        // PG* alone, as the issue tried.
        Row::env_only("PGHOST, PGPORT, PGUSER, PGDATABASE", TLS)
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", &port)
            .env("PGUSER", "trusted")
            .env("PGDATABASE", "postgres")
            .port(s),
        Row::env_only("PGHOSTADDR with PGHOST for verify-full", TLS)
            .env("PGHOST", "localhost")
            .env("PGHOSTADDR", "127.0.0.1")
            .env("PGPORT", &port)
            .env("PGUSER", "trusted")
            .env("PGDATABASE", "postgres")
            .env("PGSSLMODE", "verify-full")
            .env("PGSSLROOTCERT", &ca),
        Row::new("PG* fill what the string leaves out", "dbname=postgres", PLAIN)
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", &port)
            .env("PGUSER", "trusted")
            .env("PGSSLMODE", "disable"),
        Row::new("the string beats PG*", format!("host=127.0.0.1 port={p} user=trusted dbname=postgres"), PLAIN)
            .env("PGPORT", &port)
            .port(p),
        // Passwords.
        Row::new("PGPASSWORD", pwuser.clone(), TLS).env("PGPASSWORD", PW),
        Row::new("a wrong PGPASSWORD", pwuser.clone(), REFUSED).env("PGPASSWORD", "nope"),
        Row::new("no password at all", pwuser.clone(), REFUSED),
        Row::new("PGPASSFILE", pwuser.clone(), TLS).env("PGPASSFILE", path(&passfile)),
        Row::new("passfile= in the string", format!("{pwuser} passfile={}", path(&passfile)), TLS),
        Row::new("a password file with wildcards", pwuser.clone(), TLS).env("PGPASSFILE", path(&wildcard)),
        Row::new("a password file others may read is ignored", pwuser.clone(), REFUSED)
            .env("PGPASSFILE", path(&loose)),
        Row::new("~/.pgpass, matched by host name", format!("host=localhost port={s} user=pwuser dbname=postgres"), TLS)
            .env("HOME", path(&home_pgpass)),
        Row::new("~/.pgpass for another host", pwuser.clone(), REFUSED).env("HOME", path(&home_pgpass)),
        Row::new("PGPASSWORD beats the password file", pwuser.clone(), REFUSED)
            .env("PGPASSWORD", "nope")
            .env("PGPASSFILE", path(&wildcard)),
        // Services.
        Row::new("service= with PGSERVICEFILE", "service=prod", TLS).env("PGSERVICEFILE", &service_file),
        Row::env_only("PGSERVICE", TLS)
            .env("PGSERVICE", "prod")
            .env("PGSERVICEFILE", &service_file),
        Row::new("PGSYSCONFDIR/pg_service.conf", "service=plain", PLAIN).env("PGSYSCONFDIR", &sysconf).port(p),
        Row::new("~/.pg_service.conf", "service=plain", PLAIN).env("HOME", path(&home_service)),
        Row::new("the string beats the service", "service=prod sslmode=disable host=127.0.0.1", PLAIN)
            .env("PGSERVICEFILE", &service_file),
        Row::new("the service beats PG*", "service=plain", PLAIN)
            .env("PGSERVICEFILE", &service_file)
            .env("PGPORT", &port)
            .port(p),
        Row::new("an unknown service", "service=missing", REFUSED)
            .env("PGSERVICEFILE", &service_file)
            .env("PGSYSCONFDIR", &sysconf),
        // Several hosts.
        Row::new("the first host is down", format!("host=127.0.0.1,127.0.0.1 port={dead},{s} user=trusted dbname=postgres"), TLS).port(s),
        Row::new("URL with two hosts, read-write wanted", format!("postgresql://trusted@127.0.0.1:{p},127.0.0.1:{s}/postgres?target_session_attrs=read-write"), TLS).port(s),
        Row::new("read-only wanted", format!("postgresql://trusted@127.0.0.1:{s},127.0.0.1:{p}/postgres?target_session_attrs=read-only"), PLAIN).port(p),
        Row::new("any: the first that answers", both("target_session_attrs=any"), PLAIN).port(p),
        Row::new("primary: neither is in recovery", both("target_session_attrs=primary"), PLAIN).port(p),
        Row::new("standby: none", both("target_session_attrs=standby"), REFUSED),
        Row::new("prefer-standby: none, so any", both("target_session_attrs=prefer-standby"), PLAIN).port(p),
        Row::env_only("PGHOST and PGPORT lists with PGTARGETSESSIONATTRS", TLS)
            .env("PGHOST", "127.0.0.1,127.0.0.1")
            .env("PGPORT", format!("{p},{s}"))
            .env("PGUSER", "trusted")
            .env("PGDATABASE", "postgres")
            .env("PGTARGETSESSIONATTRS", "read-write")
            .port(s),
        Row::new("every host down", format!("host=127.0.0.1,127.0.0.1 port={dead},{dead} user=trusted dbname=postgres"), REFUSED),
    ];
    let results = check_rows(&rows, &empty_home).await;
    let message = |name: &str| {
        results
            .iter()
            .find(|(r, _)| r.name == name)
            .and_then(|(_, o)| o.clone().err())
            .unwrap()
    };
    let m = message("every host down");
    assert_eq!(
        m.matches(&format!(
            "127.0.0.1:{dead} (sslmode=prefer (the default for a local host)): connection failed"
        ))
        .count(),
        2,
        "{m}"
    );
    assert!(m.contains("; then "), "{m}");
    let m = message("a wrong PGPASSWORD");
    assert!(
        m.contains("password authentication failed for user \"pwuser\" (SQLSTATE 28P01)"),
        "{m}"
    );
    assert!(!m.contains("nope"), "{m}");
    let m = message("standby: none");
    assert_eq!(
        m.matches("server is not in hot standby mode").count(),
        2,
        "{m}"
    );
    let m = message("no password at all");
    assert!(m.contains("none was given"), "{m}");

    // PGAPPNAME and application_name reach the server; datsync's own name otherwise.
    let env = |pairs: &[(&str, &str)]| {
        let mut e: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        e.insert("HOME".into(), empty_home.display().to_string());
        e
    };
    let conn = format!("host=127.0.0.1 port={s} user=trusted dbname=postgres");
    let name = "show application_name";
    for (vars, conn, expected) in [
        (vec![], conn.clone(), "datsync"),
        (
            vec![("PGAPPNAME", "nightly-load")],
            conn.clone(),
            "nightly-load",
        ),
        (
            vec![("PGAPPNAME", "x")],
            format!("{conn} application_name=from-string"),
            "from-string",
        ),
    ] {
        let e = env(&vars);
        assert_eq!(
            super::datsync(Some(&conn), &e, name).await.unwrap(),
            expected
        );
        if expected != "datsync" {
            assert_eq!(super::psql(Some(&conn), &e, name).await.unwrap(), expected);
        }
    }

    tokio::join!(stop(rw), stop(ro));
}
