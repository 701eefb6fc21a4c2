//! The unit of work: one pooled connection, with or without an open transaction.
//!
//! # Rollback on drop
//! [`UnitOfWork::begin`] checks a connection out and sends `BEGIN` through diesel-async's
//! [`AnsiTransactionManager`], which tracks the transaction depth on the connection. A
//! [`PgTransaction`] dropped without [`Transaction::commit`] (an error, an early return, a
//! canceled request) must not hand that connection back to the pool with the transaction still
//! open: the next request would run inside it and its locks would stay held. So `Drop`:
//!
//! - sees a closed transaction (committed, or closed by a failed commit) → the connection goes
//!   back to the pool as it is;
//! - sees an open transaction → spawns a task on the current tokio runtime that sends
//!   `ROLLBACK` and only then lets the connection return to the pool; if the rollback fails,
//!   or there is no runtime to run it on, the connection is *detached* from the pool and
//!   closed, and PostgreSQL aborts the transaction of a closed session;
//! - sees a commit that was interrupted mid-flight (the future was dropped while `COMMIT` was
//!   on the wire) or a transaction manager in an error state → detaches and closes: nobody
//!   can know the session's state, so nobody may reuse it.
//!
//! Whatever the mode, a unit of work whose statement failed because the session ended (the
//! server terminated it) closes its connection on drop: the pool skips its `SELECT 1` for
//! recently used connections (see `recycle`) and might otherwise hand the dead session out
//! once more before tokio-postgres has seen its socket close.
//!
//! Two backstops stay behind this: diesel-async's pool recycling refuses any connection whose
//! transaction manager still reports an open transaction, and every session runs with
//! `idle_in_transaction_session_timeout`.
//!
//! # Aborted transactions
//! After a failed statement PostgreSQL ignores everything until the end of the transaction and
//! answers `COMMIT` with a silent `ROLLBACK`. The adapter remembers that a statement failed and
//! refuses to commit (`RepoError::Conflict`, nothing applied), so a use case that swallowed an
//! error can never believe that its remaining changes were committed.

use crate::error;
use crate::pool::PgStore;
use crate::recycle::PgConnection;
use async_trait::async_trait;
use diesel::QueryResult;
use diesel_async::{AnsiTransactionManager, AsyncPgConnection, TransactionManager};
use domain::ports::{
    CouponRepository, IdempotencyRecords, InboxRepository, OrderRepository, OutboxRepository,
    PaymentRepository, ProductRepository, RepoError, SalesRepository, Transaction, UnitOfWork,
    UserRepository, WalletRepository,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `read()`: autocommit statements, nothing to roll back.
    Read,
    /// `begin()`: an open transaction until commit or drop.
    Write,
}

/// One unit of work on one pooled connection. Implements every repository port.
pub struct PgTransaction {
    conn: Option<PgConnection>,
    mode: Mode,
    /// Set while `COMMIT` is in flight: if the commit future is dropped then, the session's
    /// state is unknown.
    committing: bool,
    /// The first statement error of this transaction: PostgreSQL has aborted it.
    aborted: Option<String>,
    /// A statement failed because the session ended (e.g. the server terminated it). The pool
    /// might not have noticed yet (it skips the ping for recently used connections), so Drop
    /// closes the connection instead of returning it.
    session_lost: bool,
    /// Items of the orders this unit of work has loaded. An order's items never change once
    /// it exists, so a later read in the same unit of work (the payment's status change after
    /// its `get`) takes them from here instead of another round trip.
    pub(crate) order_items: std::collections::HashMap<i64, Vec<domain::order::OrderItem>>,
}

#[async_trait]
impl UnitOfWork for PgStore {
    async fn begin(&self) -> Result<Box<dyn Transaction>, RepoError> {
        let mut conn = self.pool.get().await.map_err(error::from_pool)?;
        AnsiTransactionManager::begin_transaction(&mut **conn)
            .await
            .map_err(|e| error::from_session(&conn, e))?;
        Ok(Box::new(PgTransaction::open(conn, Mode::Write)))
    }

    async fn read(&self) -> Result<Box<dyn Transaction>, RepoError> {
        let conn = self.pool.get().await.map_err(error::from_pool)?;
        Ok(Box::new(PgTransaction::open(conn, Mode::Read)))
    }
}

impl PgTransaction {
    fn open(conn: PgConnection, mode: Mode) -> Self {
        Self {
            conn: Some(conn),
            mode,
            committing: false,
            aborted: None,
            session_lost: false,
            order_items: std::collections::HashMap::new(),
        }
    }

    /// The connection, for one statement. Its result must go through [`Self::check`].
    pub(crate) fn conn(&mut self) -> Result<&mut AsyncPgConnection, RepoError> {
        self.conn
            .as_deref_mut()
            .map(|session| &mut **session)
            .ok_or_else(|| RepoError::Internal("unit of work used after it ended".into()))
    }

    /// Maps a statement's error and remembers that the transaction is aborted.
    pub(crate) fn check<T>(&mut self, result: QueryResult<T>) -> Result<T, RepoError> {
        result.map_err(|e| {
            self.session_lost |= error::ends_session(self.conn.as_deref(), &e);
            let mapped = self.classify(e);
            if self.mode == Mode::Write && self.aborted.is_none() {
                self.aborted = Some(mapped.to_string());
            }
            mapped
        })
    }

    /// An error of this unit of work's session, with the SQLSTATE the session heard.
    fn classify(&self, e: diesel::result::Error) -> RepoError {
        match self.conn.as_deref() {
            Some(session) => error::from_session(session, e),
            None => error::from_diesel(e),
        }
    }

    /// Whether `begin()` opened it (as opposed to a `read()` view).
    pub fn is_transactional(&self) -> bool {
        self.mode == Mode::Write
    }
}

#[async_trait]
impl Transaction for PgTransaction {
    fn users(&mut self) -> &mut dyn UserRepository {
        self
    }
    fn wallets(&mut self) -> &mut dyn WalletRepository {
        self
    }
    fn products(&mut self) -> &mut dyn ProductRepository {
        self
    }
    fn coupons(&mut self) -> &mut dyn CouponRepository {
        self
    }
    fn orders(&mut self) -> &mut dyn OrderRepository {
        self
    }
    fn payments(&mut self) -> &mut dyn PaymentRepository {
        self
    }
    fn sales(&mut self) -> &mut dyn SalesRepository {
        self
    }
    fn outbox(&mut self) -> &mut dyn OutboxRepository {
        self
    }
    fn inbox(&mut self) -> &mut dyn InboxRepository {
        self
    }
    fn idempotency(&mut self) -> &mut dyn IdempotencyRecords {
        self
    }

    async fn commit(mut self: Box<Self>) -> Result<(), RepoError> {
        if self.mode == Mode::Read {
            return Ok(());
        }
        if let Some(cause) = self.aborted.take() {
            // Drop rolls back.
            return Err(RepoError::Conflict(format!(
                "transaction aborted by an earlier error ({cause}); nothing was committed"
            )));
        }
        self.committing = true;
        let conn = self.conn()?;
        let result = AnsiTransactionManager::commit_transaction(conn).await;
        self.committing = false;
        // On failure diesel-async has either rolled back or marked the transaction closed;
        // Drop looks at the manager's state and rolls back or detaches if it has to.
        result.map_err(|e| self.classify(e))
    }
}

impl Drop for PgTransaction {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if self.session_lost {
            detach(conn);
            return;
        }
        if self.mode == Mode::Read {
            return;
        }
        if self.committing {
            tracing::warn!("commit interrupted: closing the connection, its state is unknown");
            detach(conn);
            return;
        }
        let depth =
            <AnsiTransactionManager as TransactionManager<AsyncPgConnection>>::transaction_manager_status_mut(
                &mut conn,
            )
            .transaction_depth();
        match depth {
            Ok(None) => {} // closed: back to the pool
            Ok(Some(_)) => roll_back_in_background(conn),
            Err(_) => detach(conn),
        }
    }
}

fn roll_back_in_background(mut conn: PgConnection) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async move {
                if let Err(e) = AnsiTransactionManager::rollback_transaction(&mut **conn).await {
                    tracing::warn!(error = %e, "rollback failed: closing the connection");
                    detach(conn);
                }
                // Otherwise `conn` drops here, back to the pool with no transaction open.
            });
        }
        Err(_) => detach(conn),
    }
}

/// Takes the connection out of the pool for good and closes it: PostgreSQL aborts the open
/// transaction of a session whose client went away, and the pool opens a fresh connection
/// when it needs one.
fn detach(conn: PgConnection) {
    drop(PgConnection::take(conn));
}
