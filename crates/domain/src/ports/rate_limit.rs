use crate::rate_limit::{RateDecision, RateKey, RateLimit};
use async_trait::async_trait;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// The budgets' storage cannot be reached (Redis down). The caller decides on its own;
    /// an outage of the limiter must never become an outage of the shop.
    #[error("rate limiter unavailable: {0}")]
    Unavailable(String),
}

/// Request budgets (GCRA, [`crate::rate_limit`]). One budget per [`RateKey`]; the Redis
/// adapter shares them between every instance on the same key prefix, the memory adapter keeps
/// them in process.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Takes one request from `key`'s budget of size `limit`, atomically (concurrent callers
    /// never share the last request of a budget). A `Limited` answer changes nothing. MUST
    /// answer `Allowed` when `limit` is disabled, and `Err(Unavailable)` rather than a guess
    /// when its storage cannot be reached.
    async fn acquire(
        &self,
        key: &RateKey,
        limit: RateLimit,
    ) -> Result<RateDecision, RateLimitError>;
}
