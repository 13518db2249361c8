//! The libpq environment and files — `PG*` variables, the password file, the service file
//! — and several hosts with `target_session_attrs`: psql and datsync reach the same server
//! as the same user, or both refuse.

use std::path::{Path, PathBuf};

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

/// The client-side files of the table.
struct Files {
    _dir: tempfile::TempDir,
    empty_home: PathBuf,
    ca: String,
    passfile: String,
    wildcard: String,
    loose: String,
    home_pgpass: String,
    service_file: String,
    sysconf: String,
    home_service: String,
}

impl Files {
    /// Files for the read-write server on `rw` and the read-only one on `ro`.
    fn new(certs: &Certs, rw: u16, ro: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        let shown = |p: &Path| p.display().to_string();
        let empty_home = base.join("home-empty");
        std::fs::create_dir(&empty_home).unwrap();
        let ca = shown(&file(base, "ca.crt", &certs.ca, 0o644));
        let port = rw.to_string();
        let home_pgpass = base.join("home-pgpass");
        file(
            &home_pgpass,
            ".pgpass",
            &pgpass_line("localhost", &port),
            0o600,
        );
        let services = format!(
            "# services\n[prod]\nhost=localhost\nport={rw}\nuser=trusted\ndbname=postgres\n\
             sslmode=verify-full\nsslrootcert={ca}\n\n[plain]\nhost=127.0.0.1\nport={ro}\n\
             user=trusted\ndbname=postgres\n"
        );
        let sysconf = base.join("sysconf");
        file(&sysconf, "pg_service.conf", &services, 0o644);
        let home_service = base.join("home-service");
        file(&home_service, ".pg_service.conf", &services, 0o644);
        Self {
            passfile: shown(&file(
                base,
                "pgpass",
                &pgpass_line("127.0.0.1", &port),
                0o600,
            )),
            wildcard: shown(&file(base, "pgpass-wild", &pgpass_line("*", "*"), 0o600)),
            loose: shown(&file(base, "pgpass-loose", &pgpass_line("*", "*"), 0o644)),
            service_file: shown(&file(base, "services.conf", &services, 0o644)),
            home_pgpass: shown(&home_pgpass),
            sysconf: shown(&sysconf),
            home_service: shown(&home_service),
            ca,
            empty_home,
            _dir: dir,
        }
    }
}

/// The table: the read-write TLS server on `s`, the read-only plain one on `p`.
#[allow(clippy::too_many_lines)] // a data table
fn table(f: &Files, s: u16, p: u16) -> Vec<Row> {
    let dead = dead_port();
    let port = s.to_string();
    let Files {
        ca,
        passfile,
        wildcard,
        loose,
        home_pgpass,
        service_file,
        sysconf,
        home_service,
        ..
    } = f;
    let pwuser = format!("host=127.0.0.1 port={s} user=pwuser dbname=postgres");
    let both = |extra: &str| {
        format!("host=127.0.0.1,127.0.0.1 port={p},{s} user=trusted dbname=postgres {extra}")
    };
    vec![
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
            .env("PGSSLROOTCERT", ca),
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
        Row::new("PGPASSFILE", pwuser.clone(), TLS).env("PGPASSFILE", passfile),
        Row::new("passfile= in the string", format!("{pwuser} passfile={passfile}"), TLS),
        Row::new("a password file with wildcards", pwuser.clone(), TLS).env("PGPASSFILE", wildcard),
        Row::new("a password file others may read is ignored", pwuser.clone(), REFUSED)
            .env("PGPASSFILE", loose),
        Row::new("~/.pgpass, matched by host name", format!("host=localhost port={s} user=pwuser dbname=postgres"), TLS)
            .env("HOME", home_pgpass),
        Row::new("~/.pgpass for another host", pwuser.clone(), REFUSED).env("HOME", home_pgpass),
        Row::new("channel_binding=require over TLS", format!("{pwuser} channel_binding=require"), TLS)
            .env("PGPASSWORD", PW),
        Row::new("channel_binding=require without TLS", format!("{pwuser} channel_binding=require sslmode=disable"), REFUSED)
            .env("PGPASSWORD", PW),
        Row::new("PGPASSWORD beats the password file", pwuser.clone(), REFUSED)
            .env("PGPASSWORD", "nope")
            .env("PGPASSFILE", wildcard),
        // Services.
        Row::new("service= with PGSERVICEFILE", "service=prod", TLS).env("PGSERVICEFILE", service_file),
        Row::env_only("PGSERVICE", TLS)
            .env("PGSERVICE", "prod")
            .env("PGSERVICEFILE", service_file),
        Row::new("PGSYSCONFDIR/pg_service.conf", "service=plain", PLAIN).env("PGSYSCONFDIR", sysconf).port(p),
        Row::new("~/.pg_service.conf", "service=plain", PLAIN).env("HOME", home_service),
        Row::new("the string beats the service", "service=prod sslmode=disable host=127.0.0.1", PLAIN)
            .env("PGSERVICEFILE", service_file),
        Row::new("the service beats PG*", "service=plain", PLAIN)
            .env("PGSERVICEFILE", service_file)
            .env("PGPORT", &port)
            .port(p),
        Row::new("an unknown service", "service=missing", REFUSED)
            .env("PGSERVICEFILE", service_file)
            .env("PGSYSCONFDIR", sysconf),
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
        Row::new("load_balance_hosts=random still finds the live host", format!("host=127.0.0.1,127.0.0.1 port={dead},{s} user=trusted dbname=postgres load_balance_hosts=random"), REFUSED)
            .differs("PostgreSQL 16's load_balance_hosts; psql 15 does not know it", TLS),
    ]
}

#[tokio::test]
async fn the_libpq_environment_and_files_work_as_in_psql() {
    let certs = Certs::new();
    let (rw, ro) = tokio::join!(tls_server(&certs), plain_read_only_server());
    let files = Files::new(&certs, rw.port(), ro.port());
    let rows = table(&files, rw.port(), ro.port());
    let empty_home = &files.empty_home;
    let results = check_rows(&rows, empty_home).await;
    let message = |name: &str| {
        results
            .iter()
            .find(|(r, _)| r.name == name)
            .and_then(|(_, o)| o.clone().err())
            .unwrap()
    };
    let m = message("every host down");
    assert_eq!(
        m.matches("(sslmode=prefer (the default for a local host)): connection failed")
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

    application_names(rw.port(), empty_home).await;

    tokio::join!(stop(rw), stop(ro));
}

/// `PGAPPNAME` and `application_name` reach the server; datsync's own name otherwise.
async fn application_names(port: u16, empty_home: &Path) {
    let env = |pairs: &[(&str, &str)]| {
        let mut e: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        e.insert("HOME".into(), empty_home.display().to_string());
        e
    };
    let conn = format!("host=127.0.0.1 port={port} user=trusted dbname=postgres");
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
}
