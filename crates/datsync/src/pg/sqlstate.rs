//! Classification of PostgreSQL failures into transient (retry the chunk later) and fatal
//! (stop the sync), by SQLSTATE — never by message text.
//!
//! [`SQLSTATE_RULES`] is the one table: a full five-character code beats its two-character
//! class, and a code that matches no row is fatal (what we do not understand we do not
//! retry blindly).

/// Whether a failure is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The operation may succeed if retried later (the chunk stays pending).
    Transient,
    /// Retrying will not help: the data, the schema or the settings must change.
    Fatal,
}

/// One row of the classification table: a SQLSTATE code or two-character class.
#[derive(Debug, Clone, Copy)]
pub struct SqlStateRule {
    /// A five-character SQLSTATE code or a two-character class prefix.
    pub code: &'static str,
    /// The class given to errors matching `code`.
    pub class: ErrorClass,
    /// Why it is in this class.
    pub why: &'static str,
}

/// Class 08, connection exception: the connection broke or could not be made.
pub const CONNECTION_EXCEPTION: &str = "08";
/// 08P01 protocol violation: a client or server bug, not a network hiccup.
pub const PROTOCOL_VIOLATION: &str = "08P01";
/// 40001 serialization failure.
pub const SERIALIZATION_FAILURE: &str = "40001";
/// 40P01 deadlock detected.
pub const DEADLOCK_DETECTED: &str = "40P01";
/// 40003 statement completion unknown.
pub const STATEMENT_COMPLETION_UNKNOWN: &str = "40003";
/// 53300 too many connections.
pub const TOO_MANY_CONNECTIONS: &str = "53300";
/// 53200 out of memory.
pub const OUT_OF_MEMORY: &str = "53200";
/// 55P03 lock not available.
pub const LOCK_NOT_AVAILABLE: &str = "55P03";
/// 57014 query canceled (includes `statement_timeout`).
pub const QUERY_CANCELED: &str = "57014";
/// 57P01 admin shutdown.
pub const ADMIN_SHUTDOWN: &str = "57P01";
/// 57P02 crash shutdown.
pub const CRASH_SHUTDOWN: &str = "57P02";
/// 57P03 cannot connect now.
pub const CANNOT_CONNECT_NOW: &str = "57P03";
/// 25P03 idle-in-transaction session timeout.
pub const IDLE_IN_TRANSACTION_TIMEOUT: &str = "25P03";
/// Class 22, data exception.
pub const DATA_EXCEPTION: &str = "22";
/// Class 23, integrity constraint violation.
pub const INTEGRITY_CONSTRAINT_VIOLATION: &str = "23";
/// Class 42, syntax error or access rule violation.
pub const SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION: &str = "42";
/// Class 28, invalid authorization specification.
pub const INVALID_AUTHORIZATION: &str = "28";
/// 3D000 invalid catalog name (the database does not exist).
pub const INVALID_CATALOG_NAME: &str = "3D000";
/// Class 21, cardinality violation (21000: `ON CONFLICT` hit a key twice).
pub const CARDINALITY_VIOLATION: &str = "21";
/// 53100 disk full.
pub const DISK_FULL: &str = "53100";
/// Class 53, insufficient resources (53000; 53100 disk full, 53200 out of memory, 53300 too
/// many connections, 53400 configuration limit exceeded).
pub const INSUFFICIENT_RESOURCES: &str = "53";
/// Class 54, program limit exceeded.
pub const PROGRAM_LIMIT_EXCEEDED: &str = "54";
/// Class 0A, feature not supported.
pub const FEATURE_NOT_SUPPORTED: &str = "0A";
/// Class XX, internal error.
pub const INTERNAL_ERROR: &str = "XX";

/// The classification table. Transient rows carry the reason a retry can succeed.
pub const SQLSTATE_RULES: &[SqlStateRule] = &[
    SqlStateRule {
        code: CONNECTION_EXCEPTION,
        class: ErrorClass::Transient,
        why: "the connection failed or was lost; a new connection may work",
    },
    SqlStateRule {
        code: PROTOCOL_VIOLATION,
        class: ErrorClass::Fatal,
        why: "a protocol bug repeats on every retry",
    },
    SqlStateRule {
        code: SERIALIZATION_FAILURE,
        class: ErrorClass::Transient,
        why: "a concurrent transaction won; PostgreSQL asks for a retry",
    },
    SqlStateRule {
        code: DEADLOCK_DETECTED,
        class: ErrorClass::Transient,
        why: "we were picked as the deadlock victim; the other side finishes and a retry passes",
    },
    SqlStateRule {
        code: STATEMENT_COMPLETION_UNKNOWN,
        class: ErrorClass::Transient,
        why: "the outcome is unknown; the chunk ledger makes a retry safe",
    },
    SqlStateRule {
        code: TOO_MANY_CONNECTIONS,
        class: ErrorClass::Transient,
        why: "connection slots free up as other clients disconnect",
    },
    SqlStateRule {
        code: OUT_OF_MEMORY,
        class: ErrorClass::Transient,
        why: "server memory pressure from concurrent work passes",
    },
    SqlStateRule {
        code: LOCK_NOT_AVAILABLE,
        class: ErrorClass::Transient,
        why: "another session holds the lock (lock_timeout); it will release it",
    },
    SqlStateRule {
        code: QUERY_CANCELED,
        class: ErrorClass::Transient,
        why: "statement_timeout or an operator cancel; the chunk can be retried on a later run",
    },
    SqlStateRule {
        code: ADMIN_SHUTDOWN,
        class: ErrorClass::Transient,
        why: "the server is restarting (failover, maintenance)",
    },
    SqlStateRule {
        code: CRASH_SHUTDOWN,
        class: ErrorClass::Transient,
        why: "another backend crashed and the server is recovering",
    },
    SqlStateRule {
        code: CANNOT_CONNECT_NOW,
        class: ErrorClass::Transient,
        why: "the server is starting up or in recovery",
    },
    SqlStateRule {
        code: IDLE_IN_TRANSACTION_TIMEOUT,
        class: ErrorClass::Transient,
        why: "the session was closed for idling; a new session works",
    },
    SqlStateRule {
        code: DATA_EXCEPTION,
        class: ErrorClass::Fatal,
        why: "the data does not fit the column; it will not fit on retry",
    },
    SqlStateRule {
        code: INTEGRITY_CONSTRAINT_VIOLATION,
        class: ErrorClass::Fatal,
        why: "a constraint rejects the data",
    },
    SqlStateRule {
        code: SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION,
        class: ErrorClass::Fatal,
        why: "a schema mismatch or missing privilege",
    },
    SqlStateRule {
        code: INVALID_AUTHORIZATION,
        class: ErrorClass::Fatal,
        why: "wrong user or password",
    },
    SqlStateRule {
        code: INVALID_CATALOG_NAME,
        class: ErrorClass::Fatal,
        why: "the database does not exist",
    },
    SqlStateRule {
        code: CARDINALITY_VIOLATION,
        class: ErrorClass::Fatal,
        why: "a statement touched a row twice; a bug, not a hiccup",
    },
    SqlStateRule {
        code: DISK_FULL,
        class: ErrorClass::Transient,
        why: "the server's disk filled up; the transaction was rolled back, and once space is \
              freed (by an operator, or WAL recycled at a checkpoint) a retry passes",
    },
    SqlStateRule {
        code: INSUFFICIENT_RESOURCES,
        class: ErrorClass::Transient,
        why: "the server is short of a resource (memory, connections, a limit) that other \
              clients give back",
    },
    SqlStateRule {
        code: PROGRAM_LIMIT_EXCEEDED,
        class: ErrorClass::Fatal,
        why: "a value or statement is too large",
    },
    SqlStateRule {
        code: FEATURE_NOT_SUPPORTED,
        class: ErrorClass::Fatal,
        why: "the server lacks a feature",
    },
    SqlStateRule {
        code: INTERNAL_ERROR,
        class: ErrorClass::Fatal,
        why: "a server bug or corruption",
    },
];

/// Classifies a SQLSTATE code: an exact row first, then its class, else fatal.
pub fn classify_sqlstate(code: &str) -> ErrorClass {
    let exact = SQLSTATE_RULES.iter().find(|r| r.code == code);
    let class = || {
        SQLSTATE_RULES
            .iter()
            .find(|r| r.code.len() == 2 && code.get(..2) == Some(r.code))
    };
    exact.or_else(class).map_or(ErrorClass::Fatal, |r| r.class)
}

/// The SQLSTATE codes and classes that mean the server is away, restarting or short of
/// resources, rather than that a statement lost a race: a load is retried through them for
/// the whole outage budget (`DATSYNC_DB_RETRY_FOR`, see `pipeline/retry.rs`), not for a
/// number of attempts.
pub const OUTAGE_SQLSTATES: &[&str] = &[
    CONNECTION_EXCEPTION,
    INSUFFICIENT_RESOURCES,
    ADMIN_SHUTDOWN,
    CRASH_SHUTDOWN,
    CANNOT_CONNECT_NOW,
];

/// Whether `code` is transient and one of [`OUTAGE_SQLSTATES`] (a code, or in a class).
pub fn is_outage_sqlstate(code: &str) -> bool {
    classify_sqlstate(code) == ErrorClass::Transient
        && OUTAGE_SQLSTATES
            .iter()
            .any(|c| *c == code || (c.len() == 2 && code.get(..2) == Some(*c)))
}

/// Whether a `tokio_postgres` error says the server is away ([`is_outage_sqlstate`]), or the
/// connection is closed or failed at the socket.
pub fn is_outage(err: &tokio_postgres::Error) -> bool {
    match err.code() {
        Some(code) => is_outage_sqlstate(code.code()),
        None => err.is_closed() || has_io_source(err),
    }
}

/// Classifies a `tokio_postgres` error: a database error by its SQLSTATE; a closed
/// connection or an I/O failure (anywhere in the source chain) is transient; anything else
/// (type conversion, bad parameters, TLS setup) is fatal.
pub fn classify(err: &tokio_postgres::Error) -> ErrorClass {
    if let Some(code) = err.code() {
        return classify_sqlstate(code.code());
    }
    if err.is_closed() || has_io_source(err) {
        return ErrorClass::Transient;
    }
    ErrorClass::Fatal
}

pub(crate) fn has_io_source(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = err.source();
    while let Some(e) = next {
        if e.is::<std::io::Error>() {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::{Fatal, Transient};

    /// Checks one row of [`SQLSTATE_RULES`]: it exists with `class`, and decides `code`.
    fn row(rule: &str, code: &str, class: ErrorClass) {
        let found = SQLSTATE_RULES
            .iter()
            .find(|r| r.code == rule)
            .unwrap_or_else(|| panic!("no row {rule}"));
        assert_eq!(found.class, class, "row {rule}");
        assert!(!found.why.is_empty());
        assert_eq!(classify_sqlstate(code), class, "code {code}");
    }

    /// One test per row of the table, and a check that no row is left without one.
    macro_rules! row_tests {
        ($($name:ident: $rule:expr, $code:literal => $class:expr;)*) => {
            $(
                #[test]
                fn $name() {
                    row($rule, $code, $class);
                }
            )*

            #[test]
            fn every_row_has_its_test() {
                let tested = [$($rule),*];
                for rule in SQLSTATE_RULES {
                    assert!(tested.contains(&rule.code), "row {} has no test", rule.code);
                }
                assert_eq!(tested.len(), SQLSTATE_RULES.len());
            }
        };
    }

    row_tests! {
        connection_exception_is_transient: CONNECTION_EXCEPTION, "08006" => Transient;
        protocol_violation_is_fatal: PROTOCOL_VIOLATION, "08P01" => Fatal;
        serialization_failure_is_transient: SERIALIZATION_FAILURE, "40001" => Transient;
        deadlock_is_transient: DEADLOCK_DETECTED, "40P01" => Transient;
        completion_unknown_is_transient: STATEMENT_COMPLETION_UNKNOWN, "40003" => Transient;
        too_many_connections_is_transient: TOO_MANY_CONNECTIONS, "53300" => Transient;
        out_of_memory_is_transient: OUT_OF_MEMORY, "53200" => Transient;
        lock_not_available_is_transient: LOCK_NOT_AVAILABLE, "55P03" => Transient;
        query_canceled_is_transient: QUERY_CANCELED, "57014" => Transient;
        admin_shutdown_is_transient: ADMIN_SHUTDOWN, "57P01" => Transient;
        crash_shutdown_is_transient: CRASH_SHUTDOWN, "57P02" => Transient;
        cannot_connect_now_is_transient: CANNOT_CONNECT_NOW, "57P03" => Transient;
        idle_session_timeout_is_transient: IDLE_IN_TRANSACTION_TIMEOUT, "25P03" => Transient;
        data_exception_is_fatal: DATA_EXCEPTION, "22P02" => Fatal;
        integrity_violation_is_fatal: INTEGRITY_CONSTRAINT_VIOLATION, "23505" => Fatal;
        syntax_or_access_is_fatal: SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION, "42P01" => Fatal;
        invalid_authorization_is_fatal: INVALID_AUTHORIZATION, "28P01" => Fatal;
        missing_database_is_fatal: INVALID_CATALOG_NAME, "3D000" => Fatal;
        cardinality_violation_is_fatal: CARDINALITY_VIOLATION, "21000" => Fatal;
        disk_full_is_transient: DISK_FULL, "53100" => Transient;
        insufficient_resources_is_transient: INSUFFICIENT_RESOURCES, "53400" => Transient;
        program_limit_is_fatal: PROGRAM_LIMIT_EXCEEDED, "54000" => Fatal;
        feature_not_supported_is_fatal: FEATURE_NOT_SUPPORTED, "0A000" => Fatal;
        internal_error_is_fatal: INTERNAL_ERROR, "XX000" => Fatal;
    }

    #[test]
    fn exact_codes_beat_their_class() {
        assert_eq!(classify_sqlstate("08001"), Transient);
        assert_eq!(classify_sqlstate("08P01"), Fatal);
        assert_eq!(classify_sqlstate("53100"), Transient);
        assert_eq!(classify_sqlstate("53300"), Transient);
    }

    #[test]
    fn outages_are_the_server_away_or_short_of_resources() {
        for code in [
            "08000", "08001", "08006", "53000", "53100", "53200", "53300", "57P01", "57P02",
            "57P03",
        ] {
            assert!(is_outage_sqlstate(code), "{code}");
        }
        for code in [
            "08P01", "40001", "40P01", "57014", "55P03", "22012", "57P04",
        ] {
            assert!(!is_outage_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn unknown_codes_are_fatal() {
        for code in ["", "4", "40002", "P0001", "99999"] {
            assert_eq!(classify_sqlstate(code), Fatal, "{code}");
        }
    }
}
