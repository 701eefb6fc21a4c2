//! The error policy of the adapter, in one place.
//!
//! Every diesel, pool and connection error becomes a [`RepoError`] here and nowhere else:
//!
//! | cause | `RepoError` | client sees |
//! |---|---|---|
//! | pool wait timeout, connection refused/lost, server shutting down, statement timeout | `Unavailable` | 503, retry later |
//! | serialization failure, deadlock victim, unique violation (a lost race) | `Conflict` | the use case retries or answers 409/503 |
//! | anything else (check or foreign-key violation, bad row, bug) | `Internal` | 500 |
//!
//! A unique violation is a *race* in this schema: every unique key the use cases write is
//! either chosen by the database (identity ids) or guarded by a prior check in the same
//! transaction (coupon issue numbers, the one succeeded payment per order), so a violation
//! means a concurrent transaction won. A CHECK violation, in contrast, means a conditional
//! update let something through that it should not have: a bug, hence `Internal`.
//!
//! PostgreSQL reports deadlocks and cancellations with SQLSTATEs diesel does not classify
//! (`40P01`, `57014`, `57P0x`); diesel exposes only their message, so those few are recognised by
//! the server's (English, default `lc_messages`) text.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use domain::ports::RepoError;

/// A query error.
pub fn from_diesel(error: DieselError) -> RepoError {
    match error {
        DieselError::DatabaseError(kind, info) => {
            let message = info.message().to_owned();
            let detailed = match info.constraint_name() {
                Some(constraint) => format!("{message} ({constraint})"),
                None => message.clone(),
            };
            match kind {
                DatabaseErrorKind::SerializationFailure | DatabaseErrorKind::UniqueViolation => {
                    RepoError::Conflict(detailed)
                }
                DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection => {
                    RepoError::Unavailable(detailed)
                }
                _ => classify_unknown(&message, detailed),
            }
        }
        DieselError::RollbackErrorOnCommit { commit_error, .. } => from_diesel(*commit_error),
        other => RepoError::Internal(other.to_string()),
    }
}

/// Whether the error means the session itself is gone or going (server shutdown, terminated
/// backend, broken socket): such a connection must never be handed out again.
pub(crate) fn ends_session(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(
            DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection,
            _,
        ) => true,
        DieselError::DatabaseError(_, info) => {
            let message = info.message();
            ["terminating connection", "connection closed"]
                .iter()
                .any(|m| message.contains(m))
        }
        DieselError::RollbackErrorOnCommit { commit_error, .. } => ends_session(commit_error),
        _ => false,
    }
}

fn classify_unknown(message: &str, detailed: String) -> RepoError {
    const CONFLICT: &[&str] = &[
        "deadlock detected",                       // 40P01
        "could not serialize access",              // 40001 when not classified
        "canceling statement due to lock timeout", // 55P03
    ];
    const UNAVAILABLE: &[&str] = &[
        "canceling statement due to statement timeout", // 57014
        "canceling statement due to user request",      // 57014 (pg_cancel_backend)
        "terminating connection",                       // 57P01..57P05
        "the database system is",                       // starting up / shutting down
        "too many connections",                         // 53300
        "connection closed",
    ];
    if CONFLICT.iter().any(|m| message.starts_with(m)) {
        RepoError::Conflict(detailed)
    } else if UNAVAILABLE.iter().any(|m| message.contains(m)) {
        RepoError::Unavailable(detailed)
    } else {
        RepoError::Internal(detailed)
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

    struct Info(&'static str);

    impl diesel::result::DatabaseErrorInformation for Info {
        fn message(&self) -> &str {
            self.0
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
            None
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn db(kind: DatabaseErrorKind, message: &'static str) -> RepoError {
        from_diesel(DieselError::DatabaseError(kind, Box::new(Info(message))))
    }

    #[test]
    fn races_are_conflicts() {
        assert!(matches!(
            db(DatabaseErrorKind::UniqueViolation, "duplicate key"),
            RepoError::Conflict(_)
        ));
        assert!(matches!(
            db(
                DatabaseErrorKind::SerializationFailure,
                "could not serialize access"
            ),
            RepoError::Conflict(_)
        ));
        assert!(matches!(
            db(DatabaseErrorKind::Unknown, "deadlock detected"),
            RepoError::Conflict(_)
        ));
    }

    #[test]
    fn lost_connections_and_timeouts_are_unavailable() {
        assert!(matches!(
            db(DatabaseErrorKind::ClosedConnection, "closed"),
            RepoError::Unavailable(_)
        ));
        assert!(matches!(
            db(DatabaseErrorKind::UnableToSendCommand, "connection reset"),
            RepoError::Unavailable(_)
        ));
        assert!(matches!(
            db(
                DatabaseErrorKind::Unknown,
                "canceling statement due to statement timeout"
            ),
            RepoError::Unavailable(_)
        ));
        assert!(matches!(
            db(
                DatabaseErrorKind::Unknown,
                "terminating connection due to administrator command"
            ),
            RepoError::Unavailable(_)
        ));
    }

    #[test]
    fn broken_invariants_are_internal() {
        assert!(matches!(
            db(
                DatabaseErrorKind::CheckViolation,
                "violates check constraint"
            ),
            RepoError::Internal(_)
        ));
        assert!(matches!(
            db(
                DatabaseErrorKind::ForeignKeyViolation,
                "violates foreign key"
            ),
            RepoError::Internal(_)
        ));
        assert!(matches!(
            from_diesel(DieselError::NotFound),
            RepoError::Internal(_)
        ));
    }
}
