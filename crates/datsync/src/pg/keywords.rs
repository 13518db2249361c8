//! libpq's connection parameters: every keyword libpq 17 knows, the environment variable
//! that supplies it when a connection string leaves it out, and what datsync does with it.
//!
//! `tokio_postgres::Config` parses only a subset (it rejects `sslrootcert`, `sslcert`,
//! `passfile`, `service` and more), so datsync parses connection strings itself
//! ([`super::conninfo`]) against this table. A keyword libpq does not know is refused with
//! libpq's own message; a keyword libpq knows but datsync cannot honour is refused with the
//! reason, never silently dropped; a few that change nothing for datsync are accepted.

/// What datsync does with a keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Support {
    /// Honoured as libpq does.
    Used,
    /// Accepted and without effect, for the reason given.
    Ignored(&'static str),
    /// Refused when given, for the reason given.
    Refused(&'static str),
}

/// One libpq connection parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keyword {
    /// The keyword as written in a connection string.
    pub name: &'static str,
    /// The environment variable libpq reads when the string does not set it.
    pub env: Option<&'static str>,
    /// What datsync does with it.
    pub support: Support,
}

const fn kw(name: &'static str, env: Option<&'static str>, support: Support) -> Keyword {
    Keyword { name, env, support }
}

use Support::{Ignored, Refused, Used};

const NO_GSS: &str = "datsync has no GSSAPI/Kerberos support";

/// libpq 17's keywords (`PQconninfoOptions` in `fe-connect.c`), in libpq's order.
pub(crate) const KEYWORDS: &[Keyword] = &[
    kw("service", Some("PGSERVICE"), Used),
    kw("user", Some("PGUSER"), Used),
    kw("password", Some("PGPASSWORD"), Used),
    kw("passfile", Some("PGPASSFILE"), Used),
    kw("channel_binding", Some("PGCHANNELBINDING"), Used),
    kw("connect_timeout", Some("PGCONNECT_TIMEOUT"), Used),
    kw("dbname", Some("PGDATABASE"), Used),
    kw("host", Some("PGHOST"), Used),
    kw("hostaddr", Some("PGHOSTADDR"), Used),
    kw("port", Some("PGPORT"), Used),
    kw("client_encoding", Some("PGCLIENTENCODING"), Used),
    kw("options", Some("PGOPTIONS"), Used),
    kw("application_name", Some("PGAPPNAME"), Used),
    kw("fallback_application_name", None, Used),
    kw("keepalives", None, Used),
    kw("keepalives_idle", None, Used),
    kw("keepalives_interval", None, Used),
    kw("keepalives_count", None, Used),
    kw("tcp_user_timeout", None, Used),
    kw("sslmode", Some("PGSSLMODE"), Used),
    kw("sslnegotiation", Some("PGSSLNEGOTIATION"), Used),
    kw(
        "sslcompression",
        Some("PGSSLCOMPRESSION"),
        Ignored("TLS compression is obsolete and never used"),
    ),
    kw("sslcert", Some("PGSSLCERT"), Used),
    kw("sslkey", Some("PGSSLKEY"), Used),
    kw("sslcertmode", Some("PGSSLCERTMODE"), Used),
    kw("sslpassword", None, Used),
    kw("sslrootcert", Some("PGSSLROOTCERT"), Used),
    kw("sslcrl", Some("PGSSLCRL"), Used),
    kw("sslcrldir", Some("PGSSLCRLDIR"), Used),
    kw("sslsni", Some("PGSSLSNI"), Used),
    kw("requirepeer", Some("PGREQUIREPEER"), Used),
    kw(
        "require_auth",
        Some("PGREQUIREAUTH"),
        Refused(
            "datsync's PostgreSQL driver picks the authentication method the server asks for and cannot restrict it; use sslmode=verify-full and channel_binding=require to be sure of the server",
        ),
    ),
    kw(
        "ssl_min_protocol_version",
        Some("PGSSLMINPROTOCOLVERSION"),
        Used,
    ),
    kw(
        "ssl_max_protocol_version",
        Some("PGSSLMAXPROTOCOLVERSION"),
        Used,
    ),
    kw("gssencmode", Some("PGGSSENCMODE"), Used),
    kw("krbsrvname", Some("PGKRBSRVNAME"), Ignored(NO_GSS)),
    kw("gsslib", Some("PGGSSLIB"), Ignored(NO_GSS)),
    kw("gssdelegation", Some("PGGSSDELEGATION"), Ignored(NO_GSS)),
    kw(
        "replication",
        None,
        Refused("datsync loads tables and never opens replication connections"),
    ),
    kw("target_session_attrs", Some("PGTARGETSESSIONATTRS"), Used),
    kw("load_balance_hosts", Some("PGLOADBALANCEHOSTS"), Used),
];

/// The keyword named `name` (exact, lower case as libpq requires).
pub(crate) fn keyword(name: &str) -> Option<&'static Keyword> {
    KEYWORDS.iter().find(|k| k.name == name)
}

/// The environment variables that name a server or a service: with one of them set, the
/// libpq environment counts as database settings.
pub(crate) const DESTINATION_VARIABLES: &[&str] =
    &["PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGSERVICE"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_lower_case() {
        for (i, k) in KEYWORDS.iter().enumerate() {
            assert_eq!(k.name, k.name.to_ascii_lowercase());
            assert!(
                KEYWORDS[..i].iter().all(|o| o.name != k.name),
                "{} twice",
                k.name
            );
            if let Some(env) = k.env {
                assert!(env.starts_with("PG"), "{env}");
            }
        }
    }

    #[test]
    fn the_psql_variables_map_to_their_keywords() {
        for (env, name) in [
            ("PGHOST", "host"),
            ("PGHOSTADDR", "hostaddr"),
            ("PGPORT", "port"),
            ("PGDATABASE", "dbname"),
            ("PGUSER", "user"),
            ("PGPASSWORD", "password"),
            ("PGPASSFILE", "passfile"),
            ("PGSSLMODE", "sslmode"),
            ("PGSSLROOTCERT", "sslrootcert"),
            ("PGSSLCERT", "sslcert"),
            ("PGSSLKEY", "sslkey"),
            ("PGAPPNAME", "application_name"),
            ("PGCONNECT_TIMEOUT", "connect_timeout"),
            ("PGSERVICE", "service"),
            ("PGTARGETSESSIONATTRS", "target_session_attrs"),
        ] {
            assert_eq!(keyword(name).and_then(|k| k.env), Some(env), "{name}");
        }
        assert!(keyword("ssl").is_none());
        assert!(keyword("HOST").is_none());
    }
}
