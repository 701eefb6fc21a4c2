//! PostgreSQL session advisory locks held on one dedicated connection: "only one process at a
//! time does X" across service instances that share a database (the bootstrap uses it so that
//! each Kafka partition has one consumer at a time).
//!
//! # Semantics
//! - A lock is a 64-bit key ([`AdvisoryLocks::key`] derives one from a name). Keys are scoped
//!   to the database: two databases on one server never contend.
//! - [`AdvisoryLocks::try_lock`] never waits: `true` when this holder has the lock (newly taken
//!   or already held), `false` when another session holds it. Asking again for a lock already
//!   held does not take it twice (PostgreSQL counts session locks, this type does not let the
//!   count grow), but it does prove the connection, and so the lock, is still alive.
//! - The locks live as long as the dedicated connection: a closed or broken connection
//!   releases all of them on the server at once, so a crashed process never blocks the others.
//!   The pool is not used for this, since a pooled connection goes back to the pool (and to
//!   other work) with its locks.
//! - After a connection failure the next call reconnects and takes every lock it held again.
//!   A lock that another session took in the meantime is *lost*: it is dropped from
//!   [`AdvisoryLocks::held`], logged at WARN, counted in [`AdvisoryLocks::lost_total`], and
//!   `try_lock` for it answers `false` (the caller must stop acting as its holder). Between the
//!   failure and that call both sessions may believe they hold it: callers re-confirm
//!   periodically and keep their work idempotent for that window.
//! - Every database call is bounded by the configuration's `connect_timeout` (connecting) and
//!   `statement_timeout` (queries); a call that times out drops the connection (and with it
//!   the locks, which the next call tries to take again).
//! - Calls are serialised on the one connection: meant for a handful of locks confirmed every
//!   few seconds, not for hot paths.

use crate::config::{PgConfig, redact};
use crate::error;
use crate::session::Session;
use diesel::sql_types::{BigInt, Bool};
use diesel_async::SimpleAsyncConnection;
use domain::ports::RepoError;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;

/// `application_name` of the dedicated connection, to find it in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "shop-advisory-locks";

/// Session advisory locks on a dedicated connection; see the [module docs](self).
pub struct AdvisoryLocks {
    url: String,
    connect_timeout: Duration,
    query_timeout: Duration,
    state: Mutex<State>,
    lost: AtomicU64,
}

#[derive(Default)]
struct State {
    conn: Option<Session>,
    /// The locks this holder believes it has.
    held: BTreeSet<i64>,
}

impl std::fmt::Debug for AdvisoryLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdvisoryLocks")
            .field("url", &redact(&self.url))
            .field("lost_total", &self.lost_total())
            .finish_non_exhaustive()
    }
}

#[derive(diesel::QueryableByName)]
struct Answer {
    #[diesel(sql_type = Bool)]
    answer: bool,
}

impl AdvisoryLocks {
    /// A holder for the database of `config.url`. Connects on first use.
    pub fn new(config: &PgConfig) -> Self {
        Self {
            url: config.url.clone(),
            connect_timeout: config.connect_timeout,
            query_timeout: config.statement_timeout,
            state: Mutex::new(State::default()),
            lost: AtomicU64::new(0),
        }
    }

    /// A stable 64-bit key for a name (FNV-1a): the same name gives the same key in every
    /// process and version, so instances built from different code still exclude each other.
    pub fn key(name: &str) -> i64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in name.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        i64::from_ne_bytes(hash.to_ne_bytes())
    }

    /// Takes the lock without waiting, or confirms it is still held. `Ok(false)`: another
    /// session holds it (including a lock this holder lost with its connection).
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database cannot be reached; the lock is then not
    /// held (any lock held before is re-taken by a later successful call, if still free).
    pub async fn try_lock(&self, key: i64) -> Result<bool, RepoError> {
        let mut state = self.state.lock().await;
        // One retry on a fresh connection: a connection that broke since the last call (a
        // database restart, a terminated backend) should not cost the caller a round.
        for attempt in 0..2 {
            let reconnected = self.ensure_connected(&mut state).await?;
            let already_held = state.held.contains(&key);
            let Some(conn) = state.conn.as_mut() else {
                continue;
            };
            let asked = if already_held {
                self.bounded(confirm(conn)).await
            } else {
                self.bounded(lock_query(conn, LOCK, key)).await
            };
            match asked {
                Ok(true) => {
                    state.held.insert(key);
                    return Ok(true);
                }
                Ok(false) => return Ok(false),
                Err(e) => {
                    tracing::warn!(key, error = %e, "advisory lock connection failed; dropping it");
                    state.conn = None;
                    if reconnected || attempt == 1 {
                        return Err(e);
                    }
                }
            }
        }
        Err(RepoError::Unavailable(
            "advisory lock connection unavailable".into(),
        ))
    }

    /// Gives the lock up. `Ok(false)` when it was not held. A failure drops the connection,
    /// which releases the lock on the server anyway (and the others, which later calls take
    /// again).
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database could not be told; the lock is released
    /// all the same (its connection is gone).
    pub async fn unlock(&self, key: i64) -> Result<bool, RepoError> {
        let mut state = self.state.lock().await;
        if !state.held.remove(&key) {
            return Ok(false);
        }
        let Some(conn) = state.conn.as_mut() else {
            // The connection is gone, and the lock with it.
            return Ok(true);
        };
        match self.bounded(lock_query(conn, UNLOCK, key)).await {
            Ok(was_held) => {
                if !was_held {
                    tracing::warn!(key, "advisory lock was not held by the session on unlock");
                }
                Ok(true)
            }
            Err(e) => {
                state.conn = None;
                Err(e)
            }
        }
    }

    /// The keys this holder believes it holds, ascending.
    pub async fn held(&self) -> Vec<i64> {
        self.state.lock().await.held.iter().copied().collect()
    }

    /// How many locks this holder believes it has; `None` while a call holds the state (a
    /// sampler skips that moment rather than wait for a reconnect).
    pub fn held_now(&self) -> Option<usize> {
        self.state.try_lock().ok().map(|state| state.held.len())
    }

    /// How many locks were lost to another session after a connection failure, since start.
    pub fn lost_total(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Releases every lock and closes the dedicated connection. The locks are released
    /// explicitly first, so that another holder can take them as soon as this returns (the
    /// server would notice the closed connection a moment later anyway).
    pub async fn close(&self) {
        let mut state = self.state.lock().await;
        state.held.clear();
        if let Some(mut conn) = state.conn.take() {
            let released = self
                .bounded(async {
                    conn.batch_execute("SELECT pg_advisory_unlock_all()")
                        .await
                        .map_err(|e| error::from_session(&conn, e))
                })
                .await;
            if let Err(e) = released {
                tracing::warn!(error = %e, "could not release the advisory locks before closing");
            }
        }
    }

    /// Opens the connection if there is none, and takes back the locks held before; returns
    /// whether it connected now.
    async fn ensure_connected(&self, state: &mut State) -> Result<bool, RepoError> {
        if state.conn.is_some() {
            return Ok(false);
        }
        let mut conn =
            match tokio::time::timeout(self.connect_timeout, Session::connect(&self.url)).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    return Err(RepoError::Unavailable(format!(
                        "cannot connect to the database for advisory locks: {e}"
                    )));
                }
                Err(_) => {
                    return Err(RepoError::Unavailable(format!(
                        "cannot connect to the database for advisory locks within {:?}",
                        self.connect_timeout
                    )));
                }
            };
        self.bounded(async {
            conn.batch_execute(&format!("SET application_name = '{APPLICATION_NAME}'"))
                .await
                .map_err(|e| error::from_session(&conn, e))
        })
        .await?;
        let before: Vec<i64> = std::mem::take(&mut state.held).into_iter().collect();
        for (i, &key) in before.iter().enumerate() {
            match self.bounded(lock_query(&mut conn, LOCK, key)).await {
                Ok(true) => {
                    tracing::info!(key, "advisory lock taken again after a reconnect");
                    state.held.insert(key);
                }
                Ok(false) => {
                    self.lost.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        key,
                        "advisory lock lost: another session took it while the connection was down"
                    );
                }
                Err(e) => {
                    // This connection failed at once: nothing is held on it. The keys not yet
                    // decided stay wanted, for the next attempt.
                    state.held = before[i..].iter().copied().collect();
                    return Err(e);
                }
            }
        }
        state.conn = Some(conn);
        Ok(true)
    }

    async fn bounded<T>(
        &self,
        query: impl Future<Output = Result<T, RepoError>>,
    ) -> Result<T, RepoError> {
        tokio::time::timeout(self.query_timeout, query)
            .await
            .unwrap_or_else(|_| {
                Err(RepoError::Unavailable(format!(
                    "advisory lock query took longer than {:?}",
                    self.query_timeout
                )))
            })
    }
}

const LOCK: &str = "SELECT pg_try_advisory_lock($1) AS answer";
const UNLOCK: &str = "SELECT pg_advisory_unlock($1) AS answer";

async fn lock_query(conn: &mut Session, sql: &'static str, key: i64) -> Result<bool, RepoError> {
    use diesel_async::RunQueryDsl;
    diesel::sql_query(sql)
        .bind::<BigInt, _>(key)
        .get_result::<Answer>(&mut **conn)
        .await
        .map(|a| a.answer)
        .map_err(|e| error::from_session(conn, e))
}

/// The connection, and so every lock on it, is alive.
async fn confirm(conn: &mut Session) -> Result<bool, RepoError> {
    use diesel_async::RunQueryDsl;
    diesel::sql_query("SELECT true AS answer")
        .get_result::<Answer>(&mut **conn)
        .await
        .map(|a| a.answer)
        .map_err(|e| error::from_session(conn, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_distinct() {
        // FNV-1a 64 of "a": a fixed value, so instances of different builds agree.
        assert_eq!(
            AdvisoryLocks::key("a"),
            i64::from_ne_bytes(0xaf63_dc4c_8601_ec8c_u64.to_ne_bytes())
        );
        assert_ne!(
            AdvisoryLocks::key("consumer/topic/0"),
            AdvisoryLocks::key("consumer/topic/1")
        );
    }
}
