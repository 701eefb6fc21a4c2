//! Per-user request rate limiting: a token bucket per authenticated user.
//!
//! Why per user and not per IP: a shop sits behind load balancers and NATs, where one address
//! carries many honest users, while a token identifies exactly the client that floods. The
//! check runs where the bearer token is resolved ([`crate::extract`]), so every authenticated
//! endpoint is covered in one place; a refused request answers 429 `RATE_LIMITED` with
//! `Retry-After` before any use case runs (nothing changes).

use domain::UserId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Settings: `per_second` tokens are added per second up to `burst`; `per_second == 0`
/// disables limiting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

impl RateLimit {
    pub const DISABLED: Self = Self {
        per_second: 0.0,
        burst: 0.0,
    };
}

impl Default for RateLimit {
    /// Generous for people and scripts, tight for a runaway client.
    fn default() -> Self {
        Self {
            per_second: 50.0,
            burst: 100.0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

/// Buckets are forgotten once full (an idle user costs nothing); the map is swept when it
/// grows past [`RateLimiter::SWEEP_AT`] entries.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<UserId, Bucket>>,
}

impl RateLimiter {
    const SWEEP_AT: usize = 50_000;

    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `user`; `Err(seconds)` says when the next one is available.
    pub fn check(&self, user: UserId) -> Result<(), u64> {
        self.check_at(user, Instant::now())
    }

    fn check_at(&self, user: UserId, now: Instant) -> Result<(), u64> {
        let RateLimit { per_second, burst } = self.limit;
        if per_second <= 0.0 {
            return Ok(());
        }
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= Self::SWEEP_AT {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.refilled_at).as_secs_f64() * per_second < burst
            });
        }
        let bucket = buckets.entry(user).or_insert(Bucket {
            tokens: burst,
            refilled_at: now,
        });
        let elapsed = now
            .saturating_duration_since(bucket.refilled_at)
            .as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(burst);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / per_second;
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_passes_then_the_rate_applies_per_user() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 2.0,
            burst: 3.0,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check_at(UserId(1), t0), Ok(()));
        }
        assert_eq!(limiter.check_at(UserId(1), t0), Err(1));
        // Another user has a bucket of its own.
        assert_eq!(limiter.check_at(UserId(2), t0), Ok(()));
        // Half a second later one token is back, not two.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(limiter.check_at(UserId(1), t1), Ok(()));
        assert!(limiter.check_at(UserId(1), t1).is_err());
    }

    #[test]
    fn zero_rate_disables_limiting() {
        let limiter = RateLimiter::new(RateLimit::DISABLED);
        let now = Instant::now();
        assert!((0..10_000).all(|_| limiter.check_at(UserId(1), now).is_ok()));
    }
}
