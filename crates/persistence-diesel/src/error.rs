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
//! diesel-async 0.9 (`AsyncPgConnection`) maps eight SQLSTATEs to a [`DatabaseErrorKind`]
//! (`23505` unique, `23503` foreign key, `23001` restrict, `23P01` exclusion, `40001`
//! serialization, `25006` read-only, `23502` not null, `23514` check) and drops the code of
//! every other server error (`Unknown`). So:
//!
//! - a mapped kind *is* its SQLSTATE ([`sql_state`]);
//! - for `Unknown`, the code is the one the [`Session`] heard on its socket with that error
//!   (see [`crate::session`]): errors of a statement are mapped with [`from_session`];
//! - a driver error without any SQLSTATE (socket closed, cannot send) arrives as
//!   `UnableToSendCommand` or `ClosedConnection`;
//! - an `Unknown` error with no code (not from a session) is `Internal`.
//!
//! The server's message is never read to classify an error (it follows `lc_messages`).

use crate::session::Session;
use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind, Error as DieselError};
use domain::ports::RepoError;
use std::borrow::Cow;

/// An error that no session can tell more about (pool set-up, a connection that is not a
/// [`Session`]): `Unknown` server errors are `Internal`.
pub fn from_diesel(error: DieselError) -> RepoError {
    classify_error(error, None)
}

/// A statement's error on `session`, with the SQLSTATE the session heard for it.
pub fn from_session(session: &Session, error: DieselError) -> RepoError {
    classify_error(error, Some(session))
}

fn classify_error(error: DieselError, session: Option<&Session>) -> RepoError {
    match error {
        DieselError::DatabaseError(kind, info) => {
            let detailed = describe(info.as_ref());
            match sql_state(kind, info.as_ref(), session) {
                Some(code) => classify(&code, detailed),
                // No SQLSTATE at all: the driver lost or could not use the socket.
                None if is_driver_failure(kind) => RepoError::Unavailable(detailed),
                None => RepoError::Internal(detailed),
            }
        }
        DieselError::RollbackErrorOnCommit { commit_error, .. } => {
            classify_error(*commit_error, session)
        }
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
pub fn ends_session(session: Option<&Session>, error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(kind, _) if is_driver_failure(*kind) => true,
        DieselError::DatabaseError(kind, info) => {
            sql_state(*kind, info.as_ref(), session).is_some_and(|c| ends_session_code(&c))
        }
        DieselError::RollbackErrorOnCommit { commit_error, .. } => {
            ends_session(session, commit_error)
        }
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

/// The SQLSTATE of a database error: its kind's, or the one `session` heard for it (see the
/// module documentation). `None` for driver failures and `Unknown` errors no session heard.
pub fn sql_state(
    kind: DatabaseErrorKind,
    info: &(dyn DatabaseErrorInformation + Send + Sync),
    session: Option<&Session>,
) -> Option<Cow<'static, str>> {
    Some(Cow::Borrowed(match kind {
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
        _ => return session.and_then(|s| s.sql_state(info)).map(Cow::Owned),
    }))
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
            assert_eq!(
                sql_state(kind, &info, None).as_deref(),
                Some(code),
                "{kind:?}"
            );
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
            assert!(ends_session(None, &error(kind, "whatever")));
        }
        assert!(!ends_session(
            None,
            &error(DatabaseErrorKind::UniqueViolation, "duplicate key")
        ));
    }

    #[test]
    fn an_unknown_error_no_session_heard_is_internal_whatever_its_message() {
        // Without the code heard on a session, the message is not consulted: these are the
        // server's English texts for 40P01, 57014 and 57P01.
        for message in [
            "deadlock detected",
            "canceling statement due to statement timeout",
            "terminating connection due to administrator command",
        ] {
            let info = Info {
                message,
                constraint: None,
            };
            assert_eq!(sql_state(DatabaseErrorKind::Unknown, &info, None), None);
            assert!(matches!(
                db(DatabaseErrorKind::Unknown, message),
                RepoError::Internal(_)
            ));
            assert!(!ends_session(
                None,
                &error(DatabaseErrorKind::Unknown, message)
            ));
        }
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
