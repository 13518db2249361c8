use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    // No home directory files unless a test gives its own HOME.
    map.entry("HOME".into())
        .or_insert_with(|| "/nonexistent-datsync-home".into());
    map
}

fn resolve(pairs: &[(&str, &str)]) -> PgSettings {
    PgSettings::from_env(&env(pairs)).unwrap()
}

fn hosts(s: &PgSettings) -> Vec<(String, u16, &'static str)> {
    s.hosts
        .iter()
        .map(|h| (h.host.clone(), h.port, h.sslmode.as_str()))
        .collect()
}

#[test]
fn sources_are_taken_in_order() {
    let all = [
        ("DATABASE_URL", "postgresql://a@h1/db1"),
        ("POSTGRES_CONNECTION_STRING", "host=h2 dbname=db2"),
        ("DB_HOST", "h3"),
        ("PGHOST", "h4"),
    ];
    let flag = PgSettings::resolve(Some("host=h0 dbname=db0"), &env(&all)).unwrap();
    assert_eq!(
        (flag.dbname(), flag.source()),
        ("db0", SettingsSource::Flag)
    );
    let s = resolve(&all);
    assert_eq!(
        (s.dbname(), s.source()),
        ("db1", SettingsSource::DatabaseUrl)
    );
    let s = resolve(&all[1..]);
    assert_eq!(
        (s.dbname(), s.source()),
        ("db2", SettingsSource::PostgresConnectionString)
    );
    let s = resolve(&all[2..]);
    assert_eq!(
        (s.dbname(), s.source(), s.hosts[0].host.as_str()),
        ("postgres", SettingsSource::Legacy, "h3")
    );
    let s = resolve(&all[3..]);
    assert_eq!(
        (s.source(), s.hosts[0].host.as_str()),
        (SettingsSource::LibpqEnvironment, "h4")
    );
    let s = resolve(&[]);
    assert_eq!(s.source(), SettingsSource::Nothing);
    assert!(matches!(s.hosts[0].address, Address::Socket(_)));
    // An empty or blank variable is unset.
    let s = resolve(&[("DATABASE_URL", "  "), ("PGHOST", "h5")]);
    assert_eq!(s.hosts[0].host, "h5");
}

#[test]
fn pg_variables_fill_what_a_string_leaves_out() {
    let s = resolve(&[
        ("DATABASE_URL", "postgresql://db.example.com/app"),
        ("PGUSER", "alice"),
        ("PGPORT", "6543"),
        ("PGDATABASE", "ignored"),
        ("PGHOST", "ignored"),
        ("PGAPPNAME", "nightly"),
        ("PGCONNECT_TIMEOUT", "7"),
        ("PGSSLMODE", "require"),
        ("PGPASSWORD", "pw"),
        ("PGTARGETSESSIONATTRS", "read-write"),
    ]);
    assert_eq!(hosts(&s), vec![("db.example.com".into(), 6543, "require")]);
    assert_eq!((s.user(), s.dbname()), ("alice", "app"));
    assert_eq!(s.application_name, "nightly");
    assert_eq!(s.connect_timeout, Some(Duration::from_secs(7)));
    assert_eq!(s.password.as_deref(), Some("pw"));
    assert_eq!(s.target, TargetSessionAttrs::ReadWrite);
}

#[test]
fn libpq_defaults_apply_last() {
    let s = resolve(&[("PGHOST", "h"), ("PGUSER", "bob")]);
    assert_eq!(
        (s.user(), s.dbname()),
        ("bob", "bob"),
        "dbname defaults to the user"
    );
    assert_eq!(s.hosts[0].port, DEFAULT_PORT);
    assert_eq!(s.application_name, DEFAULT_APPLICATION_NAME);
    assert_eq!(s.connect_timeout, Some(DEFAULT_CONNECT_TIMEOUT));
    assert_eq!(s.keepalives.map(|k| k.idle), Some(DEFAULT_KEEPALIVES_IDLE));
    let s = PgSettings::from_connection_string(
        "host=h fallback_application_name=x connect_timeout=1 keepalives=0",
    )
    .unwrap();
    assert_eq!(s.application_name, "x");
    assert_eq!(
        s.connect_timeout,
        Some(Duration::from_secs(2)),
        "libpq's minimum"
    );
    assert_eq!(s.keepalives, None);
    let s = PgSettings::from_connection_string("host=h connect_timeout=0").unwrap();
    assert_eq!(s.connect_timeout, None);
    let s =
        PgSettings::from_connection_string("host=h application_name=a fallback_application_name=b")
            .unwrap();
    assert_eq!(s.application_name, "a");
}

#[test]
fn a_string_given_by_the_program_ignores_the_environment() {
    let s = PgSettings::from_connection_string("host=h").unwrap();
    assert_eq!(s.source(), SettingsSource::String);
    assert_eq!(s.passfile, None, "no home directory, no ~/.pgpass");
    assert_eq!(s.tls.root, RootCerts::Nowhere);
}

#[test]
fn unspecified_sslmode_is_verify_full_off_this_machine() {
    for (conn, expected) in [
        ("host=db.example.com", vec!["verify-full"]),
        ("host=10.1.2.3", vec!["verify-full"]),
        ("host=localhost", vec!["prefer"]),
        ("host=LOCALHOST", vec!["prefer"]),
        ("host=127.0.0.1", vec!["prefer"]),
        ("host=127.9.9.9", vec!["prefer"]),
        ("host=::1", vec!["prefer"]),
        ("host=/var/run/postgresql", vec!["prefer"]),
        ("host=localhost hostaddr=127.0.0.1", vec!["prefer"]),
        ("hostaddr=127.0.0.1", vec!["prefer"]),
        // The host named decides, not where it happens to point.
        (
            "host=db.example.com hostaddr=127.0.0.1",
            vec!["verify-full"],
        ),
        ("host=localhost hostaddr=10.0.0.1", vec!["verify-full"]),
        ("hostaddr=10.0.0.1", vec!["verify-full"]),
        (
            "host=localhost,db.example.com",
            vec!["prefer", "verify-full"],
        ),
        ("host=db.example.com sslmode=prefer", vec!["prefer"]),
        ("host=localhost sslmode=verify-full", vec!["verify-full"]),
        (
            "host=db.example.com sslrootcert=system",
            vec!["verify-full"],
        ),
    ] {
        let s = PgSettings::from_connection_string(conn).unwrap();
        let modes: Vec<&str> = s.hosts.iter().map(|h| h.sslmode.as_str()).collect();
        assert_eq!(modes, expected, "{conn}");
    }
    let s = PgSettings::from_connection_string("host=db.example.com").unwrap();
    assert_eq!(s.hosts[0].mode_origin, ModeOrigin::DefaultRemote);
    assert!(
        s.to_string()
            .contains("sslmode=verify-full (the default for a remote host)"),
        "{s}"
    );
    // An explicit mode from the environment is explicit.
    let s = resolve(&[("PGHOST", "db.example.com"), ("PGSSLMODE", "disable")]);
    assert_eq!(hosts(&s)[0].2, "disable");
    let s = resolve(&[("PGHOST", "db.example.com"), ("PGREQUIRESSL", "1")]);
    assert_eq!(hosts(&s)[0].2, "require");
}

#[test]
fn legacy_variables_keep_their_meaning() {
    let local = resolve(&[
        ("DB_HOST", "localhost"),
        ("DB_NAME", "d"),
        ("DB_USER", "u"),
        ("DB_PASSWORD", " pw "),
    ]);
    assert_eq!(hosts(&local), vec![("localhost".into(), 5432, "prefer")]);
    assert_eq!(local.password.as_deref(), Some(" pw "));
    let remote = resolve(&[
        ("DB_HOST", "x.postgres.database.azure.com"),
        ("DB_PORT", "6432"),
    ]);
    assert_eq!(
        hosts(&remote),
        vec![("x.postgres.database.azure.com".into(), 6432, "verify-full")]
    );
    for (mode, expected) in [
        ("disable", "disable"),
        ("REQUIRE", "require"),
        ("allow", "allow"),
        ("verify-ca", "verify-ca"),
    ] {
        let s = resolve(&[("DB_HOST", "db"), ("DB_SSL_MODE", mode)]);
        assert_eq!(hosts(&s)[0].2, expected, "{mode}");
    }
    // Unset DB_* fall back to the PG* variables.
    let s = resolve(&[
        ("DB_HOST", "db"),
        ("PGUSER", "pguser"),
        ("PGDATABASE", "pgdb"),
    ]);
    assert_eq!((s.user(), s.dbname()), ("pguser", "pgdb"));
    for bad in [
        vec![("DB_HOST", "db"), ("DB_PORT", "x")],
        vec![("DB_HOST", "db"), ("DB_PORT", "0")],
        vec![("DB_HOST", "db"), ("DB_SSL_MODE", "sometimes")],
    ] {
        assert!(PgSettings::from_env(&env(&bad)).is_err(), "{bad:?}");
    }
}

#[test]
fn several_hosts_and_ports_pair_up_as_in_libpq() {
    let s = PgSettings::from_connection_string(
        "postgresql://h1:5432,h2:5433,h3/db?target_session_attrs=read-write",
    )
    .unwrap();
    assert_eq!(
        hosts(&s),
        vec![
            ("h1".into(), 5432, "verify-full"),
            ("h2".into(), 5433, "verify-full"),
            ("h3".into(), 5432, "verify-full"),
        ]
    );
    let s = PgSettings::from_connection_string("host=a,b port=6000").unwrap();
    assert_eq!(
        hosts(&s).iter().map(|h| h.1).collect::<Vec<_>>(),
        vec![6000, 6000]
    );
    let s = PgSettings::from_connection_string("host=a,b hostaddr=10.0.0.1,10.0.0.2").unwrap();
    assert_eq!(s.hosts[1].address, Address::Ip("10.0.0.2".parse().unwrap()));
    assert_eq!(s.hosts[1].shown(), "b:5432 (hostaddr 10.0.0.2)");
    for (conn, message) in [
        (
            "host=a,b port=1,2,3",
            "could not match 3 port numbers to 2 hosts",
        ),
        (
            "host=a,b hostaddr=10.0.0.1",
            "could not match 2 host names to 1 hostaddr values",
        ),
        ("host=a port=99999", "invalid port number: \"99999\""),
        (
            "hostaddr=db.example.com",
            "could not parse network address \"db.example.com\"",
        ),
        (
            "host=a target_session_attrs=any-one",
            "invalid target_session_attrs value: \"any-one\"",
        ),
        (
            "host=a load_balance_hosts=yes",
            "invalid load_balance_hosts value: \"yes\"",
        ),
    ] {
        let e = PgSettings::from_connection_string(conn)
            .unwrap_err()
            .to_string();
        assert!(e.contains(message), "{conn}: {e}");
    }
}

#[test]
fn tls_parameters_are_checked_as_libpq_checks_them() {
    for (conn, message) in [
        ("host=h sslmode=bogus", "invalid sslmode value: \"bogus\""),
        (
            "host=h sslmode=require sslrootcert=system",
            "weak sslmode \"require\" may not be used with sslrootcert=system (use \"verify-full\")",
        ),
        (
            "host=localhost sslnegotiation=direct",
            "weak sslmode \"prefer\" may not be used with sslnegotiation=direct",
        ),
        (
            "host=h sslnegotiation=fast",
            "invalid sslnegotiation value: \"fast\"",
        ),
        (
            "host=h sslcertmode=always",
            "invalid sslcertmode value: \"always\"",
        ),
        (
            "host=h gssencmode=require",
            "GSSAPI support is not compiled in",
        ),
        (
            "host=h channel_binding=maybe",
            "invalid channel_binding value: \"maybe\"",
        ),
        (
            "host=h ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=TLSv1.2",
            "invalid SSL protocol version range",
        ),
        (
            "host=h ssl_max_protocol_version=TLSv1.1",
            "TLS 1.2 and 1.3 only",
        ),
        (
            "host=h ssl_min_protocol_version=SSLv3",
            "invalid ssl_min_protocol_version value",
        ),
        (
            "host=h connect_timeout=soon",
            "invalid integer value \"soon\" for connection option \"connect_timeout\"",
        ),
        (
            "host=h require_auth=password",
            "connection option \"require_auth\" is not supported",
        ),
        (
            "host=h replication=database",
            "connection option \"replication\" is not supported",
        ),
        (
            "host=h client_encoding=LATIN1",
            "client_encoding \"LATIN1\" is not supported",
        ),
        ("host=h sslsni=2", "invalid sslsni value: \"2\""),
    ] {
        let e = PgSettings::from_connection_string(conn)
            .unwrap_err()
            .to_string();
        assert!(e.contains(message), "{conn}: {e}");
    }
    let s = PgSettings::from_connection_string(
        "host=h sslmode=verify-full sslnegotiation=direct sslrootcert=/ca.pem sslcert=/c.pem \
         sslkey=/k.pem sslcrl=/crl.pem sslsni=0 ssl_min_protocol_version=TLSv1.3 \
         sslcompression=1 krbsrvname=x gssencmode=disable client_encoding=UTF8",
    )
    .unwrap();
    assert_eq!(s.tls.root, RootCerts::File("/ca.pem".into()));
    assert_eq!(s.tls.negotiation, Negotiation::Direct);
    assert_eq!(s.tls.cert.as_deref(), Some(Path::new("/c.pem")));
    assert_eq!(s.tls.key.as_deref(), Some(Path::new("/k.pem")));
    assert_eq!(s.tls.crl.as_deref(), Some(Path::new("/crl.pem")));
    assert!(!s.tls.sni);
    assert_eq!(s.tls.min_version, TlsVersion::V13);
}

#[test]
fn home_directory_files_are_libpqs() {
    let s = resolve(&[("PGHOST", "h"), ("HOME", "/home/u")]);
    assert_eq!(s.passfile.as_deref(), Some(Path::new("/home/u/.pgpass")));
    assert_eq!(
        s.tls.root,
        RootCerts::Home("/home/u/.postgresql/root.crt".into())
    );
    assert_eq!(
        s.tls.cert.as_deref(),
        Some(Path::new("/home/u/.postgresql/postgresql.crt"))
    );
    assert_eq!(
        s.tls.key.as_deref(),
        Some(Path::new("/home/u/.postgresql/postgresql.key"))
    );
    assert_eq!(
        s.tls.crl.as_deref(),
        Some(Path::new("/home/u/.postgresql/root.crl"))
    );
    let s = resolve(&[
        ("PGHOST", "h"),
        ("PGPASSFILE", "/p"),
        ("PGSSLROOTCERT", "/r"),
    ]);
    assert_eq!(s.passfile.as_deref(), Some(Path::new("/p")));
    assert_eq!(s.tls.root, RootCerts::File("/r".into()));
}

#[test]
fn a_service_fills_in_before_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("services.conf");
    std::fs::write(
        &file,
        "[prod]\nhost=db.example.com\nport=6432\nsslmode=verify-ca\nuser=svc\n",
    )
    .unwrap();
    let f = file.display().to_string();
    let s = resolve(&[
        ("PGSERVICEFILE", f.as_str()),
        ("DATABASE_URL", "postgresql://override@/app?service=prod"),
        ("PGPORT", "7777"),
    ]);
    assert_eq!(
        hosts(&s),
        vec![("db.example.com".into(), 6432, "verify-ca")]
    );
    assert_eq!((s.user(), s.dbname()), ("override", "app"));
    let s = resolve(&[("PGSERVICEFILE", f.as_str()), ("PGSERVICE", "prod")]);
    assert_eq!(s.source(), SettingsSource::LibpqEnvironment);
    assert_eq!(s.user(), "svc");
    let e = PgSettings::from_env(&env(&[
        ("PGSERVICEFILE", f.as_str()),
        ("PGSYSCONFDIR", "/nonexistent"),
        ("PGSERVICE", "test"),
    ]))
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("definition of service \"test\" not found"),
        "{e}"
    );
}

#[test]
fn entra_authentication_is_chosen_by_db_auth() {
    let s = resolve(&[
        ("PGHOST", "x.postgres.database.azure.com"),
        ("DB_AUTH", "entra"),
        ("IDENTITY_ENDPOINT", "http://127.0.0.1:1/token"),
        ("IDENTITY_HEADER", "secret-header"),
    ]);
    assert!(matches!(s.auth, Auth::Entra(_)));
    assert!(!format!("{s:?}").contains("secret-header"));
    let e = PgSettings::from_env(&env(&[
        ("DATABASE_URL", "postgresql://u:pw@h/d"),
        ("DB_AUTH", "entra"),
    ]))
    .unwrap_err();
    assert!(e.to_string().contains("remove one"), "{e}");
    assert!(PgSettings::from_env(&env(&[("PGHOST", "h"), ("DB_AUTH", "kerberos")])).is_err());
    assert!(matches!(
        resolve(&[("PGHOST", "h"), ("DB_AUTH", "password")]).auth,
        Auth::Password
    ));
}

#[test]
fn the_demo_sees_any_source() {
    assert!(!configured_in_env(&env(&[
        ("PGUSER", "u"),
        ("PGPASSWORD", "p")
    ])));
    for var in [
        "DATABASE_URL",
        "POSTGRES_CONNECTION_STRING",
        "DB_HOST",
        "PGHOST",
        "PGSERVICE",
        "PGDATABASE",
    ] {
        assert!(configured_in_env(&env(&[(var, "x")])), "{var}");
    }
}

#[test]
fn passwords_never_show() {
    for conn in [
        "postgresql://user:s3cr3t@host:5432/db?sslmode=require",
        "postgres://user:s3cr3t@host/db",
        "host=h user=u password=s3cr3t dbname=d",
        "host=h password = 's3cr3t with space' dbname=d",
        "postgresql://u@h/db?password=s3cr3t&sslmode=require",
        "host=h PASSWORD=s3cr3t",
    ] {
        let shown = Redacted(conn).to_string();
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
    assert_eq!(
        Redacted("postgresql://user:s3cr3t@host/db").to_string(),
        "postgresql://user:***@host/db"
    );
    let s = PgSettings::from_connection_string("postgresql://user:s3cr3t@host/db").unwrap();
    assert!(!format!("{s} {s:?}").contains("s3cr3t"));
    let legacy = resolve(&[("DB_HOST", "h"), ("DB_PASSWORD", "s3cr3t")]);
    assert!(!format!("{legacy} {legacy:?}").contains("s3cr3t"));
    let from_env = resolve(&[("PGHOST", "h"), ("PGPASSWORD", "s3cr3t")]);
    assert!(!format!("{from_env} {from_env:?}").contains("s3cr3t"));
    for bad in [
        "postgresql://user:s3cr3t@host/db?sslmode=bogus",
        "host=h password=s3cr3t sslmode=bogus",
        "host=h password=s3cr3t bogus=1",
        "host=h password='s3cr3t",
        "host=h s3cr3t",
        "postgresql://user:s3cr3t@host/db?x=1",
        "postgresql://user:s3cr3t@[::1/db",
    ] {
        let err = PgSettings::from_connection_string(bad).unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"), "{bad}: {err}");
        assert!(!format!("{err:?}").contains("s3cr3t"), "{bad}: {err:?}");
    }
}
