//! Request budgets shared by every instance on one Redis (and key prefix): one script
//! (`lua/rate_limit.lua`) takes a request from a GCRA budget atomically, on Redis' clock.
//!
//! Invariant: a budget allows at most `burst` requests at once and one per interval after
//! that, in total over all instances, because the read and the write of the TAT happen in one
//! script. A key lives only while its budget is not full.

use crate::conn::{Conn, LuaScript};
use crate::keys;
use async_trait::async_trait;
use domain::ports::{RateLimitError, RateLimiter};
use domain::rate_limit::{RateDecision, RateKey, RateLimit};
use fred::prelude::*;
use std::sync::LazyLock;

static ACQUIRE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("rate_limit", include_str!("lua/rate_limit.lua")));

/// [`RateLimiter`] on Redis. Built by [`crate::RedisClients::rate_limiter`].
#[derive(Clone)]
pub struct RedisRateLimiter {
    conn: Conn,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("prefix", &self.conn.prefix())
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    pub(crate) fn new(conn: Conn) -> Self {
        Self { conn }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn acquire(
        &self,
        key: &RateKey,
        limit: RateLimit,
    ) -> Result<RateDecision, RateLimitError> {
        let Some(gcra) = limit.gcra() else {
            return Ok(RateDecision::Allowed);
        };
        let args = vec![
            Value::from(i64::try_from(gcra.interval_us).unwrap_or(i64::MAX)),
            Value::from(i64::try_from(gcra.tolerance_us).unwrap_or(i64::MAX)),
        ];
        let answer = self
            .conn
            .eval(
                &ACQUIRE,
                vec![keys::rate_budget(self.conn.prefix(), key)],
                args,
            )
            .await
            .map_err(RateLimitError::Unavailable)?;
        match answer.as_i64() {
            Some(0) => Ok(RateDecision::Allowed),
            Some(wait_us) if wait_us > 0 => Ok(RateDecision::from_wait_us(wait_us.unsigned_abs())),
            _ => Err(RateLimitError::Unavailable(format!(
                "rate_limit answered {answer:?}"
            ))),
        }
    }
}
