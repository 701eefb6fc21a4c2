//! Request budgets in process: the embedded default, and every instance's fallback while Redis
//! is down.
//!
//! Memory is bounded: at most [`MemoryRateLimiter::DEFAULT_CAPACITY`] budgets are kept. A
//! budget whose TAT has passed is full and is forgotten at the next sweep (forgetting it changes
//! no decision). When the table is full of budgets still in use, the ones closest to full are
//! dropped first: forgetting a budget hands its owner a full one, and those owe the least, so
//! the least is given away. A flood of fresh addresses therefore costs a bounded table, never
//! unbounded memory, and at worst gives the quietest clients a fresh budget.
//!
//! A general-purpose cache (moka, LRU) would bound the table too, but evicts by recency or
//! frequency, not by what forgetting a budget gives away; this table is small enough to write.

use async_trait::async_trait;
use domain::ports::{RateLimitError, RateLimiter};
use domain::rate_limit::{GcraOutcome, RateDecision, RateKey, RateLimit};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Instant;

/// Shards, so that concurrent requests rarely wait on one lock.
const SHARDS: usize = 16;

/// [`RateLimiter`] in process, bounded.
#[derive(Debug)]
pub struct MemoryRateLimiter {
    shards: Vec<Mutex<HashMap<RateKey, u64>>>,
    /// Budgets per shard before a sweep.
    shard_capacity: usize,
    hasher: RandomState,
    /// The µs clock: monotonic, counted from here.
    epoch: Instant,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRateLimiter {
    /// About 100 bytes a budget: 200,000 budgets are some 20 MB at most.
    pub const DEFAULT_CAPACITY: usize = 200_000;

    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// At most `capacity` budgets (rounded up to a multiple of the shard count).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            shard_capacity: capacity.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
            epoch: Instant::now(),
        }
    }

    /// How many budgets are held right now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The decision at `now` (µs since `epoch`), for tests that move time.
    fn acquire_at(&self, key: &RateKey, limit: RateLimit, now: u64) -> RateDecision {
        let Some(gcra) = limit.gcra() else {
            return RateDecision::Allowed;
        };
        let shard = &self.shards[self.hasher.hash_one(key) as usize % SHARDS];
        let mut budgets = lock(shard);
        let tat = budgets.get(key).copied();
        match gcra.decide(tat, now) {
            GcraOutcome::Allowed { new_tat } => {
                if tat.is_none() && budgets.len() >= self.shard_capacity {
                    make_room(&mut budgets, self.shard_capacity, now);
                }
                budgets.insert(*key, new_tat);
                RateDecision::Allowed
            }
            GcraOutcome::Limited { wait_us } => RateDecision::from_wait_us(wait_us),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a half-written TAT behind.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Forgets full budgets; if that leaves the shard above 7/8 of `capacity`, drops the budgets
/// closest to full until it is there. Running only when full and freeing at least 1/8 keeps
/// the cost amortised O(1) per new budget.
fn make_room(budgets: &mut HashMap<RateKey, u64>, capacity: usize, now: u64) {
    budgets.retain(|_, tat| *tat > now);
    let target = capacity - capacity / 8;
    if budgets.len() > target {
        let mut tats: Vec<u64> = budgets.values().copied().collect();
        let excess = budgets.len() - target;
        let (_, cutoff, _) = tats.select_nth_unstable(excess - 1);
        let cutoff = *cutoff;
        let mut dropped = 0;
        budgets.retain(|_, tat| {
            let drop = *tat <= cutoff && dropped < excess;
            dropped += usize::from(drop);
            !drop
        });
    }
    tracing::debug!(kept = budgets.len(), "rate-limit table swept");
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn acquire(
        &self,
        key: &RateKey,
        limit: RateLimit,
    ) -> Result<RateDecision, RateLimitError> {
        Ok(self.acquire_at(key, limit, self.now_us()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::UserId;
    use domain::rate_limit::ClientAddress;
    use std::net::{IpAddr, Ipv4Addr};

    const LIMIT: RateLimit = RateLimit {
        per_second: 1,
        burst: 2,
    };

    fn client(n: u32) -> RateKey {
        RateKey::SignUp(ClientAddress::new(IpAddr::V4(Ipv4Addr::from(n))))
    }

    #[test]
    fn budgets_are_per_key_and_a_refusal_says_when() {
        let limiter = MemoryRateLimiter::new();
        let user = RateKey::User(UserId(1));
        assert_eq!(limiter.acquire_at(&user, LIMIT, 0), RateDecision::Allowed);
        assert_eq!(limiter.acquire_at(&user, LIMIT, 0), RateDecision::Allowed);
        assert_eq!(
            limiter.acquire_at(&user, LIMIT, 0),
            RateDecision::from_wait_us(1_000_000)
        );
        assert_eq!(
            limiter.acquire_at(&RateKey::User(UserId(2)), LIMIT, 0),
            RateDecision::Allowed
        );
        assert_eq!(
            limiter.acquire_at(&user, RateLimit::DISABLED, 0),
            RateDecision::Allowed
        );
    }

    #[test]
    fn a_flood_of_fresh_clients_stays_within_capacity() {
        let limiter = MemoryRateLimiter::with_capacity(1_600);
        // 100,000 addresses, each one request, all within one second: none of the budgets is
        // full again yet, so the sweep has to drop budgets in use.
        for n in 0..100_000u32 {
            let now = u64::from(n) * 10;
            assert_eq!(
                limiter.acquire_at(&client(n), LIMIT, now),
                RateDecision::Allowed
            );
        }
        assert!(limiter.len() <= 1_600, "{}", limiter.len());
    }

    #[test]
    fn full_budgets_go_first_and_a_busy_one_is_kept() {
        let limiter = MemoryRateLimiter::with_capacity(SHARDS * 8);
        let busy = client(u32::MAX);
        // The busy client spends its whole budget at t = 10 s.
        let t = 10_000_000;
        limiter.acquire_at(&busy, LIMIT, t);
        limiter.acquire_at(&busy, LIMIT, t);
        // Many others came once, long before: their budgets are full again by t.
        for n in 0..10_000 {
            limiter.acquire_at(&client(n), LIMIT, 0);
        }
        for n in 10_000..10_100 {
            limiter.acquire_at(&client(n), LIMIT, t);
        }
        assert!(matches!(
            limiter.acquire_at(&busy, LIMIT, t),
            RateDecision::Limited { .. }
        ));
    }
}
