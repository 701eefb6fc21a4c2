//! How a pooled connection is checked before it is handed out again.
//!
//! diesel-async's manager verifies every checkout with a `SELECT 1` round trip. Under load a
//! connection goes back and out within microseconds, so that query is pure cost: a checkout
//! (order + payment) made 4 of its 26 round trips for it. This manager skips it for a
//! connection whose last checkout is recent, and verifies the rest as before:
//!
//! - a connection that tokio-postgres already knows to be closed (the server ended the
//!   session: restart, `pg_terminate_backend`, idle timeout) or whose transaction state is
//!   broken is refused either way (`is_broken`), so the common case of a database restart is
//!   still caught at checkout;
//! - a connection idle for longer than [`VERIFY_AFTER_IDLE`] gets the `SELECT 1`, as before;
//! - what is left — a session that ended within the last second, before tokio-postgres saw
//!   its socket close — fails its request with `Unavailable` (503), and the unit of work that
//!   saw that failure closes the connection instead of pooling it (`transaction`).

use crate::session::Session;
use deadpool::managed::{Manager, Metrics, RecycleResult};
use diesel::ConnectionError;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, PoolError, PoolableConnection,
};
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use std::time::Duration;

/// Connections checked out again within this are not pinged.
pub(crate) const VERIFY_AFTER_IDLE: Duration = Duration::from_secs(1);

/// The pool's manager: opens [`Session`]s (connections whose errors keep their SQLSTATE) with
/// the session settings applied, and recycles them with diesel-async's checks, the ping
/// skipped for recently used connections.
pub(crate) struct PgManager {
    url: String,
    /// SQL every new session runs before the pool hands it out.
    setup: String,
    /// diesel-async's manager, for its recycling checks only.
    recycler: AsyncDieselConnectionManager<AsyncPgConnection>,
    verify_after_idle: Duration,
}

impl PgManager {
    pub(crate) fn new(
        url: String,
        setup: String,
        recycler: AsyncDieselConnectionManager<AsyncPgConnection>,
        verify_after_idle: Duration,
    ) -> Self {
        Self {
            url,
            setup,
            recycler,
            verify_after_idle,
        }
    }
}

impl Manager for PgManager {
    type Type = Session;
    type Error = PoolError;

    async fn create(&self) -> Result<Session, PoolError> {
        let mut session = Session::connect(&self.url)
            .await
            .map_err(PoolError::ConnectionError)?;
        if !self.setup.is_empty() {
            session.batch_execute(&self.setup).await.map_err(|e| {
                PoolError::ConnectionError(ConnectionError::CouldntSetupConfiguration(e))
            })?;
        }
        Ok(session)
    }

    async fn recycle(&self, session: &mut Session, metrics: &Metrics) -> RecycleResult<PoolError> {
        let conn: &mut AsyncPgConnection = session;
        // `last_used` is the time since this connection was last handed out.
        if metrics.last_used() < self.verify_after_idle
            && !std::thread::panicking()
            && !conn.is_broken()
        {
            return Ok(());
        }
        self.recycler.recycle(conn, metrics).await
    }
}

/// The pool of [`PgManager`] connections.
pub(crate) type PgPool = deadpool::managed::Pool<PgManager>;

/// A connection checked out of [`PgPool`].
pub(crate) type PgConnection = deadpool::managed::Object<PgManager>;

#[cfg(test)]
mod tests {
    use super::*;
    use diesel_async::pooled_connection::{ManagerConfig, RecyclingMethod};
    use futures::FutureExt as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The server every PostgreSQL test uses (same default as `test_db::server_url`).
    fn server_url() -> String {
        std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
    }

    /// A pool of one connection whose verification query is counted.
    fn counting_pool(verify_after_idle: Duration) -> (PgPool, Arc<AtomicUsize>) {
        let pings = Arc::new(AtomicUsize::new(0));
        let counter = pings.clone();
        let mut config = ManagerConfig::<AsyncPgConnection>::default();
        config.recycling_method = RecyclingMethod::CustomFunction(Box::new(move |conn| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                use diesel_async::SimpleAsyncConnection as _;
                conn.batch_execute("SELECT 1").await
            }
            .boxed()
        }));
        let recycler = AsyncDieselConnectionManager::new_with_config(server_url(), config);
        let manager = PgManager::new(server_url(), String::new(), recycler, verify_after_idle);
        let pool = PgPool::builder(manager).max_size(1).build().expect("pool");
        (pool, pings)
    }

    #[tokio::test]
    async fn a_connection_handed_out_again_at_once_is_not_pinged() {
        let (pool, pings) = counting_pool(Duration::from_secs(60));
        for _ in 0..5 {
            drop(pool.get().await.expect("checkout"));
        }
        assert_eq!(pings.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn an_idle_connection_is_pinged_before_it_is_handed_out() {
        let (pool, pings) = counting_pool(Duration::ZERO);
        for _ in 0..5 {
            drop(pool.get().await.expect("checkout"));
        }
        // The first checkout creates the connection; each later one verifies it.
        assert_eq!(pings.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_closed_connection_is_replaced_even_when_recently_used() {
        let (pool, pings) = counting_pool(Duration::from_secs(60));
        let pid = {
            let mut conn = pool.get().await.expect("checkout");
            backend_pid(&mut conn).await
        };
        {
            let (other, _) = counting_pool(Duration::ZERO);
            let mut killer = other.get().await.expect("checkout");
            use diesel_async::RunQueryDsl as _;
            diesel::sql_query(format!("SELECT pg_terminate_backend({pid})"))
                .execute(&mut **killer)
                .await
                .expect("terminate");
        }
        // tokio-postgres notices the closed socket on its own task; a checkout that wins that
        // race gets the dead session and its query fails (`PgTransaction` then closes such a
        // connection instead of pooling it; this raw pool just tries again).
        let mut replaced = None;
        for _ in 0..50 {
            let mut conn = pool.get().await.expect("checkout");
            match try_backend_pid(&mut conn).await {
                Ok(now) if now != pid => {
                    replaced = Some(now);
                    break;
                }
                Ok(_) | Err(_) => {}
            }
            drop(conn);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            replaced.is_some(),
            "the killed session {pid} was handed out again"
        );
        assert_eq!(pings.load(Ordering::SeqCst), 0);
    }

    async fn backend_pid(conn: &mut AsyncPgConnection) -> i32 {
        try_backend_pid(conn).await.expect("pid")
    }

    async fn try_backend_pid(conn: &mut AsyncPgConnection) -> diesel::QueryResult<i32> {
        use diesel::dsl::sql;
        use diesel::sql_types::Integer;
        use diesel_async::RunQueryDsl as _;
        diesel::select(sql::<Integer>("pg_backend_pid()"))
            .get_result(conn)
            .await
    }
}
