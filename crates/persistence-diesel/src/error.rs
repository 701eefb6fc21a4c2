//! The error policy of the adapter, in one place.
//!
//! Every diesel, pool and connection error becomes a [`RepoError`] here and nowhere else, by
//! the error's SQLSTATE (never by the server's message, which follows `lc_messages` and may be
//! translated):
//!
//! | SQLSTATE | meaning | `RepoError` | client sees |
//! |---|---|---|---|
//! | `40001`, `40P01`, `55P03` | serialization failure, deadlock victim, lock not available | `Conflict` | the use case runs again, or 503 |
//! | `23505` | unique violation (a lost race) | `Conflict` | as above |
//! | `57014` | statement canceled (statement timeout) | `Unavailable` | 503, retry later |
//! | `57P01`..`57P05`, `08xxx` | session ended (admin shutdown, crash, cannot connect), connection exception | `Unavailable`, the connection is discarded | 503 |
//! | `53xxx` | insufficient resources (too many connections, disk full, out of memory) | `Unavailable` | 503 |
//! | none (the driver's own) | socket closed, cannot send | `Unavailable`, the connection is discarded | 503 |
//! | anything else (`23514` check, `23503` foreign key, `42xxx`, ...) | a bug or a broken invariant | `Internal` | 500 |
//!
//! A unique violation is a *race* in this schema: every unique key the use cases write is
//! either chosen by the database (identity ids) or guarded by a prior check in the same
//! transaction (coupon issue numbers, the one succeeded payment per order), so a violation
//! means a concurrent transaction won. Its constraint name ([`violated_constraint`]) tells
//! the unique keys apart where an adapter needs to. A CHECK violation, in contrast, means a
//! conditional update let something through that it should not have: a bug, hence `Internal`.
//!
//! # Where the SQLSTATE comes from
//! diesel-async 0.9 (`AsyncPgConnection`) reads the SQLSTATE of every server error from
//! tokio-postgres, maps eight of them to a [`DatabaseErrorKind`] (`23505` unique, `23503`
//! foreign key, `23001` restrict, `23P01` exclusion, `40001` serialization, `25006` read-only,
//! `23502` not null, `23514` check) and wraps the rest as `DatabaseErrorKind::Unknown` in a
//! private type that implements only [`DatabaseErrorInformation`]: message, detail, hint,
//! table, column, constraint and position. The code itself is dropped there and nothing in
//! diesel 2.3's trait (which has no `Any` bound) gives it back. So:
//!
//! - a mapped kind *is* its SQLSTATE ([`sql_state`]);
//! - a driver error without any SQLSTATE (socket closed, cannot send) arrives as
//!   `UnableToSendCommand` or `ClosedConnection`;
//! - for `Unknown`, the SQLSTATE of the few server errors this policy must tell apart
//!   (`40P01`, `55P03`, `57014`, `57P0x`, `53300`, `08xxx`) is recovered from the primary
//!   message that PostgreSQL raises them with ([`erased_sql_state`], English server messages,
//!   the default `lc_messages`). That one table is the only place that reads a message, and
//!   only to name the code; an unrecognised `Unknown` error is `Internal`. It goes away once
//!   the driver hands the SQLSTATE through.

use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind, Error as DieselError};
use domain::ports::RepoError;

/// A query error.
pub fn from_diesel(error: DieselError) -> RepoError {
    match error {
        DieselError::DatabaseError(kind, info) => {
            let detailed = describe(info.as_ref());
            match sql_state(kind, info.as_ref()) {
                Some(code) => classify(code, detailed),
                // No SQLSTATE at all: the driver lost or could not use the socket.
                None if is_driver_failure(kind) => RepoError::Unavailable(detailed),
                None => RepoError::Internal(detailed),
            }
        }
        DieselError::RollbackErrorOnCommit { commit_error, .. } => from_diesel(*commit_error),
        other => RepoError::Internal(other.to_string()),
    }
}

/// The class of a SQLSTATE (five characters, e.g. `40P01`).
fn classify(code: &str, detailed: String) -> RepoError {
    match code {
        // A concurrent transaction won: running again may succeed.
        SERIALIZATION_FAILURE | DEADLOCK_DETECTED | LOCK_NOT_AVAILABLE | UNIQUE_VIOLATION => {
            RepoError::Conflict(format!("{detailed} [{code}]"))
        }
        // The statement ran out of time, the session ended or the server is short of
        // resources: the store cannot answer now.
        QUERY_CANCELED => RepoError::Unavailable(format!("{detailed} [{code}]")),
        _ if ends_session_code(code) || code.starts_with("53") => {
            RepoError::Unavailable(format!("{detailed} [{code}]"))
        }
        _ => RepoError::Internal(format!("{detailed} [{code}]")),
    }
}

/// Whether the error means the session itself is gone or going (server shutdown, terminated
/// backend, broken socket): such a connection must never be handed out again.
pub(crate) fn ends_session(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(kind, _) if is_driver_failure(*kind) => true,
        DieselError::DatabaseError(kind, info) => {
            sql_state(*kind, info.as_ref()).is_some_and(ends_session_code)
        }
        DieselError::RollbackErrorOnCommit { commit_error, .. } => ends_session(commit_error),
        _ => false,
    }
}

/// The constraint a unique violation (`23505`) names, for adapters that must tell unique keys
/// apart; `None` for any other error.
pub fn violated_constraint(error: &DieselError) -> Option<&str> {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            info.constraint_name()
        }
        _ => None,
    }
}

pub const UNIQUE_VIOLATION: &str = "23505";
pub const SERIALIZATION_FAILURE: &str = "40001";
pub const DEADLOCK_DETECTED: &str = "40P01";
pub const LOCK_NOT_AVAILABLE: &str = "55P03";
pub const QUERY_CANCELED: &str = "57014";
pub const ADMIN_SHUTDOWN: &str = "57P01";
pub const CRASH_SHUTDOWN: &str = "57P02";
pub const CANNOT_CONNECT_NOW: &str = "57P03";
pub const TOO_MANY_CONNECTIONS: &str = "53300";
pub const IDLE_IN_TRANSACTION_TIMEOUT: &str = "25P03";

/// `57P0x` (operator intervention that ends the session), `08xxx` (connection exception) and
/// `25P03` (the server closed a session idle in its transaction).
fn ends_session_code(code: &str) -> bool {
    code.starts_with("57P") || code.starts_with("08") || code == IDLE_IN_TRANSACTION_TIMEOUT
}

/// A failure of the driver itself (no server error): the connection is unusable.
fn is_driver_failure(kind: DatabaseErrorKind) -> bool {
    matches!(
        kind,
        DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection
    )
}

/// The SQLSTATE of a database error, as far as the driver lets it through (see the module
/// documentation). `None` for driver failures and unrecognised `Unknown` errors.
pub fn sql_state(
    kind: DatabaseErrorKind,
    info: &(dyn DatabaseErrorInformation + Send + Sync),
) -> Option<&'static str> {
    Some(match kind {
        DatabaseErrorKind::UniqueViolation => UNIQUE_VIOLATION,
        DatabaseErrorKind::ForeignKeyViolation => "23503",
        DatabaseErrorKind::RestrictViolation => "23001",
        DatabaseErrorKind::ExclusionViolation => "23P01",
        DatabaseErrorKind::SerializationFailure => SERIALIZATION_FAILURE,
        DatabaseErrorKind::ReadOnlyTransaction => "25006",
        DatabaseErrorKind::NotNullViolation => "23502",
        DatabaseErrorKind::CheckViolation => "23514",
        DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection => {
            return None;
        }
        _ => return erased_sql_state(info.message()),
    })
}

/// The SQLSTATE behind an `Unknown` server error, from the primary message PostgreSQL raises
/// that code with (its `errmsg`, English). Only the codes the policy distinguishes are
/// listed; see the module documentation for why this table exists.
fn erased_sql_state(message: &str) -> Option<&'static str> {
    const RAISED_AS: &[(&str, &str)] = &[
        ("deadlock detected", DEADLOCK_DETECTED),
        ("could not serialize access", SERIALIZATION_FAILURE),
        (
            "canceling statement due to lock timeout",
            LOCK_NOT_AVAILABLE,
        ),
        ("could not obtain lock on row", LOCK_NOT_AVAILABLE),
        (
            "canceling statement due to statement timeout",
            QUERY_CANCELED,
        ),
        ("canceling statement due to user request", QUERY_CANCELED),
        (
            "terminating connection due to administrator command",
            ADMIN_SHUTDOWN,
        ),
        (
            "terminating connection due to idle-in-transaction timeout",
            IDLE_IN_TRANSACTION_TIMEOUT,
        ),
        (
            "terminating connection due to idle-session timeout",
            "57P05",
        ),
        (
            "terminating connection due to unexpected postmaster exit",
            ADMIN_SHUTDOWN,
        ),
        (
            "terminating connection because of crash of another server process",
            CRASH_SHUTDOWN,
        ),
        ("the database system is starting up", CANNOT_CONNECT_NOW),
        ("the database system is shutting down", CANNOT_CONNECT_NOW),
        (
            "the database system is in recovery mode",
            CANNOT_CONNECT_NOW,
        ),
        ("sorry, too many clients already", TOO_MANY_CONNECTIONS),
        (
            "remaining connection slots are reserved",
            TOO_MANY_CONNECTIONS,
        ),
    ];
    RAISED_AS
        .iter()
        .find(|(raised, _)| message.starts_with(raised))
        .map(|(_, code)| *code)
}

/// The message with its constraint, for logs (never shown to clients).
fn describe(info: &(dyn DatabaseErrorInformation + Send + Sync)) -> String {
    match info.constraint_name() {
        Some(constraint) => format!("{} ({constraint})", info.message()),
        None => info.message().to_owned(),
    }
}

/// A failure to check a connection out of the pool.
pub fn from_pool(error: diesel_async::pooled_connection::deadpool::PoolError) -> RepoError {
    use deadpool::managed::PoolError;
    match error {
        PoolError::Timeout(kind) => RepoError::Unavailable(format!(
            "no database connection available ({kind:?} timeout)"
        )),
        PoolError::Backend(e) => {
            RepoError::Unavailable(format!("cannot connect to the database: {e}"))
        }
        PoolError::Closed => RepoError::Unavailable("the connection pool is closed".into()),
        PoolError::PostCreateHook(e) => {
            RepoError::Unavailable(format!("cannot set up a database connection: {e}"))
        }
        PoolError::NoRuntimeSpecified => {
            RepoError::Internal("the connection pool has no runtime for its timeouts".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Info {
        message: &'static str,
        constraint: Option<&'static str>,
    }

    impl DatabaseErrorInformation for Info {
        fn message(&self) -> &str {
            self.message
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            self.constraint
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn error(kind: DatabaseErrorKind, message: &'static str) -> DieselError {
        DieselError::DatabaseError(
            kind,
            Box::new(Info {
                message,
                constraint: None,
            }),
        )
    }

    fn db(kind: DatabaseErrorKind, message: &'static str) -> RepoError {
        from_diesel(error(kind, message))
    }

    #[test]
    fn every_sqlstate_of_the_policy_has_its_class() {
        let conflict = [
            SERIALIZATION_FAILURE,
            DEADLOCK_DETECTED,
            LOCK_NOT_AVAILABLE,
            UNIQUE_VIOLATION,
        ];
        for code in conflict {
            assert!(
                matches!(classify(code, String::new()), RepoError::Conflict(_)),
                "{code}"
            );
        }
        let unavailable = [
            QUERY_CANCELED,
            ADMIN_SHUTDOWN,
            CRASH_SHUTDOWN,
            CANNOT_CONNECT_NOW,
            "57P05",
            "08000",
            "08006",
            "08P01",
            TOO_MANY_CONNECTIONS,
            "53100",
            IDLE_IN_TRANSACTION_TIMEOUT,
        ];
        for code in unavailable {
            assert!(
                matches!(classify(code, String::new()), RepoError::Unavailable(_)),
                "{code}"
            );
        }
        for code in [
            "23514", "23503", "23502", "42601", "42703", "22003", "XX000",
        ] {
            assert!(
                matches!(classify(code, String::new()), RepoError::Internal(_)),
                "{code}"
            );
        }
        // The session ends with operator intervention and connection exceptions only.
        for code in [ADMIN_SHUTDOWN, CRASH_SHUTDOWN, CANNOT_CONNECT_NOW, "08006"] {
            assert!(ends_session_code(code), "{code}");
        }
        for code in [
            QUERY_CANCELED,
            DEADLOCK_DETECTED,
            TOO_MANY_CONNECTIONS,
            "23505",
        ] {
            assert!(!ends_session_code(code), "{code}");
        }
    }

    #[test]
    fn a_mapped_kind_is_its_sqlstate_whatever_the_message_says() {
        // The message is not read for kinds that carry their SQLSTATE: a translated server
        // message changes nothing.
        for (kind, code) in [
            (DatabaseErrorKind::UniqueViolation, "23505"),
            (DatabaseErrorKind::ForeignKeyViolation, "23503"),
            (DatabaseErrorKind::RestrictViolation, "23001"),
            (DatabaseErrorKind::ExclusionViolation, "23P01"),
            (DatabaseErrorKind::SerializationFailure, "40001"),
            (DatabaseErrorKind::ReadOnlyTransaction, "25006"),
            (DatabaseErrorKind::NotNullViolation, "23502"),
            (DatabaseErrorKind::CheckViolation, "23514"),
        ] {
            let info = Info {
                message: "doppelter Schlüsselwert verletzt Unique-Constraint",
                constraint: None,
            };
            assert_eq!(sql_state(kind, &info), Some(code), "{kind:?}");
        }
        assert!(matches!(
            db(
                DatabaseErrorKind::UniqueViolation,
                "doppelter Schlüsselwert"
            ),
            RepoError::Conflict(_)
        ));
        assert!(matches!(
            db(
                DatabaseErrorKind::SerializationFailure,
                "konnte Zugriff nicht serialisieren"
            ),
            RepoError::Conflict(_)
        ));
        assert!(matches!(
            db(
                DatabaseErrorKind::CheckViolation,
                "verletzt Check-Constraint"
            ),
            RepoError::Internal(_)
        ));
        assert!(matches!(
            db(DatabaseErrorKind::ForeignKeyViolation, "deadlock detected"),
            RepoError::Internal(_)
        ));
    }

    #[test]
    fn driver_failures_are_unavailable_and_end_the_session() {
        for kind in [
            DatabaseErrorKind::ClosedConnection,
            DatabaseErrorKind::UnableToSendCommand,
        ] {
            assert!(matches!(db(kind, "whatever"), RepoError::Unavailable(_)));
            assert!(ends_session(&error(kind, "whatever")));
        }
        assert!(!ends_session(&error(
            DatabaseErrorKind::UniqueViolation,
            "duplicate key"
        )));
    }

    #[test]
    fn erased_sqlstates_are_recovered_for_the_codes_the_policy_needs() {
        for (message, code) in [
            ("deadlock detected", DEADLOCK_DETECTED),
            (
                "canceling statement due to lock timeout",
                LOCK_NOT_AVAILABLE,
            ),
            (
                "canceling statement due to statement timeout",
                QUERY_CANCELED,
            ),
            (
                "terminating connection due to administrator command",
                ADMIN_SHUTDOWN,
            ),
            ("the database system is shutting down", CANNOT_CONNECT_NOW),
            ("sorry, too many clients already", TOO_MANY_CONNECTIONS),
        ] {
            let info = Info {
                message,
                constraint: None,
            };
            assert_eq!(sql_state(DatabaseErrorKind::Unknown, &info), Some(code));
        }
        assert!(matches!(
            db(DatabaseErrorKind::Unknown, "deadlock detected"),
            RepoError::Conflict(_)
        ));
        assert!(matches!(
            db(
                DatabaseErrorKind::Unknown,
                "canceling statement due to statement timeout"
            ),
            RepoError::Unavailable(_)
        ));
        let terminated = error(
            DatabaseErrorKind::Unknown,
            "terminating connection due to administrator command",
        );
        assert!(ends_session(&terminated));
        assert!(matches!(from_diesel(terminated), RepoError::Unavailable(_)));
        // Anything unrecognised is a bug until shown otherwise.
        assert!(matches!(
            db(
                DatabaseErrorKind::Unknown,
                "syntax error at or near \"SELEC\""
            ),
            RepoError::Internal(_)
        ));
        assert!(matches!(
            from_diesel(DieselError::NotFound),
            RepoError::Internal(_)
        ));
    }

    #[test]
    fn a_unique_violation_names_its_constraint() {
        let violation = DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new(Info {
                message: "duplicate key value violates unique constraint",
                constraint: Some("coupon_issues_coupon_id_user_id_seq_key"),
            }),
        );
        assert_eq!(
            violated_constraint(&violation),
            Some("coupon_issues_coupon_id_user_id_seq_key")
        );
        let RepoError::Conflict(detail) = from_diesel(violation) else {
            panic!("a unique violation is a conflict");
        };
        assert!(detail.ends_with("(coupon_issues_coupon_id_user_id_seq_key) [23505]"));
        assert_eq!(
            violated_constraint(&error(DatabaseErrorKind::CheckViolation, "check")),
            None
        );
    }
}
