//! The Redis adapter (fred): the first-come coupon gate, the daily sales ranking and the request
//! budgets shared by every instance.
//!
//! # Wiring (bootstrap)
//! ```no_run
//! # async fn wire() -> Result<(), cache_redis::ConnectError> {
//! let redis = cache_redis::connect("redis://127.0.0.1:6379").await?;
//! let gate = redis.coupon_gate();         // impl domain::ports::CouponGate
//! let ranking = redis.ranking_store();    // impl domain::ports::RankingStore
//! let limiter = redis.rate_limiter();     // impl domain::ports::RateLimiter (shared budgets)
//! let health = redis.health_check();      // impl domain::ports::HealthCheck, named "cache"
//! // ... and at shutdown:
//! redis.shutdown().await;
//! # Ok(()) }
//! ```
//! [`connect_with`] takes [`RedisSettings`] (key prefix, timeouts, pool size, retention);
//! [`connect_lazy`] is the synchronous variant for wiring code that cannot await (it returns at
//! once and connects in the background).
//!
//! # Failure policy (fail closed, fail fast)
//! Redis is a cache in front of PostgreSQL, never the truth. Every command carries a short
//! timeout (500 ms by default), is written at most once (no silent resend of a script that may
//! already have run) and fails immediately while the connection is down, so a request never
//! waits for a reconnect: the gate answers `Unavailable` (503, nothing issued) and ranking
//! readers fall back to the roll-up. The client reconnects in the background, and `connect`
//! succeeds even when Redis is down at start-up so that the service can start without it.
//!
//! # Keys
//! Every key starts with the configurable prefix (default empty) and carries a hash tag, so
//! that the keys one script touches live in one Redis Cluster slot:
//! - `{coupon:<id>}:loaded`, `{coupon:<id>}:issued`, `{coupon:<id>}:users` (hash user → count),
//!   `{coupon:<id>}:staging:<uuid>` (transient, while loading): expire with the coupon plus
//!   [`RedisSettings::counter_margin`].
//! - `{ranking}:day:<YYYY-MM-DD>` (sorted set product → net quantity), `…:built` markers,
//!   `{ranking}:tmp:<uuid>` (scratch): expire
//!   [`RedisSettings::ranking_retention_days`] after the day.
//! - `{rate:<budget>}` (`user:<id>`, `sign-up:<address>`, `auth-failure:<address>`): a request
//!   budget's TAT; expires when the budget is full again. All ranking keys share one slot
//!   so that a read can union several days in one script; ranking data is small.
//!
//! The scripts are in `src/lua/` and are the whole of the logic; `redis-benchmark` can run
//! them as they are (the command is in `examples/gate_burst.rs`, which measures a burst
//! through this adapter).
//!
//! Redis should run with `maxmemory-policy noeviction` (or without a memory limit); if keys
//! are evicted anyway, the gate notices the missing counters and answers `Unloaded` instead of
//! guessing, and the ranking reports missing days.

mod conn;
mod gate;
mod health;
mod keys;
mod ranking;
mod rate_limit;

pub use gate::RedisCouponGate;
pub use health::RedisHealth;
pub use ranking::RedisRankingStore;
pub use rate_limit::RedisRateLimiter;

use conn::Conn;
use fred::prelude::*;
use std::time::Duration;

/// How to reach Redis and how to name and age keys.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Prepended to every key, e.g. `shop:`; must not contain `{` or `}` (hash tags).
    pub key_prefix: String,
    /// The most any single command may take, including queueing in the client.
    pub command_timeout: Duration,
    /// The TCP connect timeout of one (re)connection attempt.
    pub connect_timeout: Duration,
    /// How long [`connect_with`] waits for the first connection before returning anyway.
    pub startup_wait: Duration,
    /// The most a rate-limit command may take (every request waits for one).
    pub rate_limit_timeout: Duration,
    /// Connections; commands are pipelined on each, round-robin across them.
    pub pool_size: usize,
    /// Gate counters live until the coupon's `expires_at` plus this margin.
    pub counter_margin: Duration,
    /// Ranking days live this many days after the day.
    /// Must exceed the longest window read (30 days).
    pub ranking_retention_days: u32,
}

impl RedisSettings {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            key_prefix: String::new(),
            command_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_millis(500),
            startup_wait: Duration::from_secs(2),
            rate_limit_timeout: Duration::from_millis(200),
            pool_size: 2,
            counter_margin: Duration::from_secs(24 * 3600),
            ranking_retention_days: 40,
        }
    }

    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid Redis settings: {0}")]
    InvalidSettings(String),
}

/// One connection pool and the adapters built on it. Cheap to clone.
#[derive(Clone)]
pub struct RedisClients {
    conn: Conn,
    settings: RedisSettings,
}

impl std::fmt::Debug for RedisClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClients")
            .field("key_prefix", &self.settings.key_prefix)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

/// [`connect_with`] with the default [`RedisSettings`].
///
/// # Errors
/// `InvalidSettings` when the URL cannot be parsed. An unreachable server is not an error.
pub async fn connect(url: &str) -> Result<RedisClients, ConnectError> {
    connect_with(RedisSettings::new(url)).await
}

/// [`connect_lazy`], then waits up to `settings.startup_wait` for the first connection and
/// returns even if Redis is down (the adapters answer `Unavailable` until it comes back;
/// reconnection never stops).
///
/// # Errors
/// As [`connect_lazy`].
pub async fn connect_with(settings: RedisSettings) -> Result<RedisClients, ConnectError> {
    let startup_wait = settings.startup_wait;
    let clients = connect_lazy(settings)?;
    match tokio::time::timeout(startup_wait, clients.conn.wait_for_connect()).await {
        Ok(Ok(())) => tracing::info!("connected to Redis"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Redis not reachable yet; retrying in the background");
        }
        Err(_) => tracing::warn!("Redis not reachable yet; retrying in the background"),
    }
    Ok(clients)
}

/// Builds the pool and starts connecting in the background without waiting (for synchronous
/// wiring code). Must be called inside a Tokio runtime.
///
/// # Errors
/// `InvalidSettings` when the URL cannot be parsed, the pool size is 0 or the key prefix holds
/// a brace.
pub fn connect_lazy(settings: RedisSettings) -> Result<RedisClients, ConnectError> {
    if settings.key_prefix.contains(['{', '}']) {
        return Err(ConnectError::InvalidSettings(
            "the key prefix must not contain '{' or '}'".into(),
        ));
    }
    if settings.pool_size == 0 {
        return Err(ConnectError::InvalidSettings(
            "pool size must be at least 1".into(),
        ));
    }
    if !settings.url.starts_with("redis") {
        return Err(ConnectError::InvalidSettings(
            "REDIS_URL must start with redis://, rediss://, redis-cluster:// or redis-sentinel://"
                .into(),
        ));
    }
    let mut config = Config::from_url(&settings.url)
        .map_err(|e| ConnectError::InvalidSettings(format!("REDIS_URL: {}", e.details())))?;
    // Keep retrying the first connection in the background instead of failing start-up.
    config.fail_fast = false;

    let connect_timeout = settings.connect_timeout;
    let command_timeout = settings.command_timeout;
    let pool = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = connect_timeout;
            c.internal_command_timeout = command_timeout;
            // A command interrupted by a broken connection is not written again: a script
            // may have run already, and the caller is better off with a clear failure.
            c.max_command_attempts = 1;
        })
        .with_performance_config(|p| p.default_command_timeout = command_timeout)
        // Forever, 100 ms doubling up to 2 s between attempts.
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
        .build_pool(settings.pool_size)
        .map_err(|e| ConnectError::InvalidSettings(e.details().to_owned()))?;

    // The connection tasks run until `shutdown`; their handles are not needed.
    drop(pool.connect_pool());

    let conn = Conn::new(pool, settings.key_prefix.clone(), command_timeout);
    Ok(RedisClients { conn, settings })
}

impl RedisClients {
    /// The first-come gate (`domain::ports::CouponGate`).
    pub fn coupon_gate(&self) -> RedisCouponGate {
        RedisCouponGate::new(self.conn.clone(), self.settings.counter_margin)
    }

    /// The daily ranking (`domain::ports::RankingStore`).
    pub fn ranking_store(&self) -> RedisRankingStore {
        RedisRankingStore::new(self.conn.clone(), self.settings.ranking_retention_days)
    }

    /// Request budgets shared by every instance (`domain::ports::RateLimiter`). Its commands
    /// get a shorter timeout than the gate's: every request waits for it, and the caller falls
    /// back to its own budgets when Redis does not answer.
    pub fn rate_limiter(&self) -> RedisRateLimiter {
        RedisRateLimiter::new(self.conn.with_timeout(self.settings.rate_limit_timeout))
    }

    /// PING, reported as `cache` by `/health/ready`.
    pub fn health_check(&self) -> RedisHealth {
        RedisHealth::new(self.conn.clone())
    }

    /// Whether every pooled connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.conn.is_connected()
    }

    /// Closes the connections and stops reconnecting.
    pub async fn shutdown(&self) {
        self.conn.shutdown().await;
    }
}
