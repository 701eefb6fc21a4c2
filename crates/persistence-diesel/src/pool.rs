//! The connection pool and the store handle built on it.

use crate::config::{PgConfig, redact};
use crate::health::PgHealthCheck;
use crate::idempotency::PgIdempotencyStore;
use crate::recycle::{PgManager, PgPool, VERIFY_AFTER_IDLE};
use deadpool::managed::PoolError;
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;

/// The store: a pool of PostgreSQL connections. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
}

/// Why [`connect`] failed. Its `Display` is one line, with the URL's password redacted; the
/// bootstrap prefixes the variable it came from (`DATABASE_URL: ...`).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid pool settings: {0}")]
    Config(String),
    #[error("cannot reach PostgreSQL at {url}: {reason}")]
    Unreachable { url: String, reason: String },
}

/// Builds the pool and opens one connection to prove the database is reachable, so that a
/// wrong URL or a stopped server is reported at start-up, within `connect_timeout`.
///
/// # Errors
/// [`ConnectError::Unreachable`] when no connection can be opened (the URL in the message has
/// its password redacted).
pub async fn connect(config: &PgConfig) -> Result<PgStore, ConnectError> {
    let store = PgStore::new(config)?;
    store
        .pool
        .get()
        .await
        .map(drop)
        .map_err(|e| ConnectError::Unreachable {
            url: redact(&config.url),
            reason: match e {
                PoolError::Backend(
                    diesel_async::pooled_connection::PoolError::ConnectionError(e),
                ) => e.to_string(),
                PoolError::Timeout(_) => format!("no answer within {:?}", config.connect_timeout),
                other => other.to_string(),
            },
        })?;
    Ok(store)
}

impl PgStore {
    /// Builds the pool without connecting (connections are opened on first use).
    ///
    /// # Errors
    /// [`ConnectError::Config`] for an unusable pool size.
    pub fn new(config: &PgConfig) -> Result<Self, ConnectError> {
        // Every new connection gets the session settings before the pool hands it out. A
        // reused connection is refused when closed or broken, and checked with a `SELECT 1`
        // when it sat idle (see `recycle`), so connections broken by a database restart are
        // replaced rather than handed to a request: the service recovers by itself when the
        // database returns.
        let recycler = AsyncDieselConnectionManager::<AsyncPgConnection>::new(config.url.clone());
        let manager = PgManager::new(
            config.url.clone(),
            session_settings(config),
            recycler,
            VERIFY_AFTER_IDLE,
        );
        let pool = PgPool::builder(manager)
            .max_size(config.pool_size)
            .wait_timeout(Some(config.wait_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| ConnectError::Config(e.to_string()))?;
        Ok(Self { pool })
    }

    /// The `Idempotency-Key` store on the same pool.
    pub fn idempotency(&self) -> PgIdempotencyStore {
        PgIdempotencyStore::new(self.pool.clone())
    }

    /// The `database` check of `/health/ready`.
    pub fn health_check(&self) -> PgHealthCheck {
        PgHealthCheck::new(self.pool.clone(), self.pool.timeouts().wait)
    }

    /// Pool occupancy, for metrics and tests.
    pub fn pool_status(&self) -> deadpool::Status {
        self.pool.status()
    }

    /// Closes the pool: idle connections are closed now, busy ones when they are returned.
    pub fn close(&self) {
        self.pool.close();
    }
}

/// The `SET` statements every new connection runs.
fn session_settings(config: &PgConfig) -> String {
    format!(
        "SET statement_timeout = {}; SET idle_in_transaction_session_timeout = {}; SET TIME ZONE 'UTC'",
        config.statement_timeout.as_millis(),
        config.idle_in_transaction_timeout.as_millis(),
    )
}
