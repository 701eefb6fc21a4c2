//! The first-come coupon gate, in process (the twin of the Redis `DECR` + per-user set script).
//!
//! Why: in a burst the gate sheds the losers without opening a store transaction; the store's
//! conditional counter stays the source of truth.
//!
//! Invariants: per coupon, `granted` never exceeds the coupon's `total_quantity` and no user's
//! count exceeds its `per_user_limit`; a decision and its counter change happen under one lock,
//! so a burst grants exactly `total_quantity` at most. Counters exist only once loaded from the
//! store ([`CouponGate::load`]); before that the gate answers `Unloaded`, never a guess. When
//! both limits are reached `LimitReached` is reported first, as the store does.
//!
//! Counters are not evicted when a coupon expires (the use case checks the window before asking
//! the gate, so expired counters are only dead weight); [`MemoryCouponGate::evict`] and
//! [`MemoryCouponGate::clear`] let tests simulate a Redis that lost them.

use async_trait::async_trait;
use domain::coupon::Coupon;
use domain::ports::{CouponGate, GateDecision, GateError, IssuedCounts};
use domain::{CouponId, UserId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

#[derive(Debug, Default)]
struct Counters {
    granted: i64,
    per_user: HashMap<UserId, i64>,
}

#[derive(Debug)]
struct Inner {
    counters: Mutex<HashMap<CouponId, Counters>>,
    available: AtomicBool,
}

/// The in-process first-come gate. Cheap to clone: clones share the counters.
#[derive(Debug, Clone)]
pub struct MemoryCouponGate {
    inner: Arc<Inner>,
}

impl Default for MemoryCouponGate {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryCouponGate {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                counters: Mutex::new(HashMap::new()),
                available: AtomicBool::new(true),
            }),
        }
    }

    /// While `false`, every call answers `GateError::Unavailable` and changes nothing (Redis down).
    pub fn set_available(&self, available: bool) {
        self.inner.available.store(available, Ordering::SeqCst);
    }

    /// Forgets one coupon's counters (evicted key): the next `try_acquire` answers `Unloaded`.
    pub fn evict(&self, coupon: CouponId) {
        self.lock().remove(&coupon);
    }

    /// Forgets every counter (Redis restarted empty).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// How many units are granted for `coupon`, `None` when not loaded.
    pub fn granted(&self, coupon: CouponId) -> Option<i64> {
        self.lock().get(&coupon).map(|c| c.granted)
    }

    fn check_available(&self) -> Result<(), GateError> {
        if self.inner.available.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(GateError::Unavailable(
                "in-process coupon gate switched off".into(),
            ))
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<CouponId, Counters>> {
        // A panic while holding this lock cannot leave counters half-updated (every update is
        // one or two integer writes), so a poisoned lock is still consistent.
        self.inner
            .counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl CouponGate for MemoryCouponGate {
    async fn try_acquire(&self, coupon: &Coupon, user: UserId) -> Result<GateDecision, GateError> {
        self.check_available()?;
        let mut counters = self.lock();
        let Some(counters) = counters.get_mut(&coupon.id) else {
            return Ok(GateDecision::Unloaded);
        };
        let held = counters.per_user.get(&user).copied().unwrap_or(0);
        if held >= coupon.per_user_limit {
            return Ok(GateDecision::LimitReached);
        }
        if counters.granted >= coupon.total_quantity {
            return Ok(GateDecision::SoldOut);
        }
        counters.granted += 1;
        counters.per_user.insert(user, held + 1);
        Ok(GateDecision::Granted)
    }

    async fn release(&self, coupon: CouponId, user: UserId) -> Result<(), GateError> {
        self.check_available()?;
        let mut counters = self.lock();
        if let Some(counters) = counters.get_mut(&coupon) {
            // Only a grant that was counted can be given back: never below zero.
            if let Some(held) = counters.per_user.get_mut(&user)
                && *held > 0
            {
                *held -= 1;
                if *held == 0 {
                    counters.per_user.remove(&user);
                }
                counters.granted = (counters.granted - 1).max(0);
            }
        }
        Ok(())
    }

    async fn load(&self, coupon: &Coupon, counts: &IssuedCounts) -> Result<(), GateError> {
        self.check_available()?;
        self.lock().entry(coupon.id).or_insert_with(|| Counters {
            granted: counts.issued,
            per_user: counts.per_user.iter().copied().collect(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::coupon::{CouponScope, Discount};
    use time::macros::datetime;

    fn coupon(total: i64, per_user: i64) -> Coupon {
        Coupon {
            id: CouponId(1),
            seller_id: UserId(1),
            scope: CouponScope::Store,
            name: "c".into(),
            discount: Discount::Amount(100),
            min_order_amount: 0,
            total_quantity: total,
            issued_quantity: 0,
            per_user_limit: per_user,
            starts_at: datetime!(2026-01-01 00:00 UTC),
            expires_at: datetime!(2027-01-01 00:00 UTC),
            created_at: datetime!(2026-01-01 00:00 UTC),
        }
    }

    #[tokio::test]
    async fn unloaded_until_loaded_and_load_keeps_existing_counters() {
        let gate = MemoryCouponGate::new();
        let c = coupon(2, 1);
        assert_eq!(
            gate.try_acquire(&c, UserId(7)).await,
            Ok(GateDecision::Unloaded)
        );
        let counts = IssuedCounts {
            issued: 1,
            per_user: vec![(UserId(7), 1)],
        };
        gate.load(&c, &counts).await.unwrap();
        assert_eq!(
            gate.try_acquire(&c, UserId(7)).await,
            Ok(GateDecision::LimitReached)
        );
        assert_eq!(
            gate.try_acquire(&c, UserId(8)).await,
            Ok(GateDecision::Granted)
        );
        // A late loader must not overwrite the live counters.
        gate.load(&c, &IssuedCounts::default()).await.unwrap();
        assert_eq!(gate.granted(c.id), Some(2));
        assert_eq!(
            gate.try_acquire(&c, UserId(9)).await,
            Ok(GateDecision::SoldOut)
        );
    }

    #[tokio::test]
    async fn release_gives_back_one_grant_and_never_goes_below_zero() {
        let gate = MemoryCouponGate::new();
        let c = coupon(1, 1);
        gate.load(&c, &IssuedCounts::default()).await.unwrap();
        assert_eq!(
            gate.try_acquire(&c, UserId(1)).await,
            Ok(GateDecision::Granted)
        );
        gate.release(c.id, UserId(1)).await.unwrap();
        gate.release(c.id, UserId(1)).await.unwrap();
        gate.release(c.id, UserId(2)).await.unwrap();
        assert_eq!(gate.granted(c.id), Some(0));
        assert_eq!(
            gate.try_acquire(&c, UserId(2)).await,
            Ok(GateDecision::Granted)
        );
        assert_eq!(
            gate.try_acquire(&c, UserId(1)).await,
            Ok(GateDecision::SoldOut)
        );
    }

    #[tokio::test]
    async fn unavailable_gate_fails_closed_and_changes_nothing() {
        let gate = MemoryCouponGate::new();
        let c = coupon(5, 1);
        gate.load(&c, &IssuedCounts::default()).await.unwrap();
        gate.set_available(false);
        assert!(matches!(
            gate.try_acquire(&c, UserId(1)).await,
            Err(GateError::Unavailable(_))
        ));
        assert!(gate.load(&c, &IssuedCounts::default()).await.is_err());
        assert!(gate.release(c.id, UserId(1)).await.is_err());
        gate.set_available(true);
        assert_eq!(gate.granted(c.id), Some(0));
        gate.evict(c.id);
        assert_eq!(
            gate.try_acquire(&c, UserId(1)).await,
            Ok(GateDecision::Unloaded)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_burst_grants_exactly_the_total_and_never_twice_to_one_user() {
        let gate = MemoryCouponGate::new();
        let c = coupon(100, 1);
        gate.load(&c, &IssuedCounts::default()).await.unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(500));
        let mut set = tokio::task::JoinSet::new();
        for i in 0..500 {
            let (gate, c, barrier) = (gate.clone(), c.clone(), barrier.clone());
            // 300 users, the first 200 of them asking twice.
            let user = UserId(1 + (i % 300) as i64);
            set.spawn(async move {
                barrier.wait().await;
                (user, gate.try_acquire(&c, user).await.unwrap())
            });
        }
        let mut granted = Vec::new();
        while let Some(result) = set.join_next().await {
            let (user, decision) = result.unwrap();
            match decision {
                GateDecision::Granted => granted.push(user),
                GateDecision::SoldOut | GateDecision::LimitReached => {}
                GateDecision::Unloaded => panic!("counters were loaded"),
            }
        }
        assert_eq!(granted.len(), 100);
        granted.sort_unstable();
        granted.dedup();
        assert_eq!(granted.len(), 100, "a user was granted twice");
        assert_eq!(gate.granted(c.id), Some(100));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_user_bursting_gets_exactly_the_per_user_limit() {
        let gate = MemoryCouponGate::new();
        let c = coupon(1_000, 3);
        gate.load(&c, &IssuedCounts::default()).await.unwrap();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let (gate, c) = (gate.clone(), c.clone());
            set.spawn(async move { gate.try_acquire(&c, UserId(5)).await.unwrap() });
        }
        let decisions = set.join_all().await;
        let granted = decisions
            .iter()
            .filter(|d| **d == GateDecision::Granted)
            .count();
        assert_eq!(granted, 3);
        assert!(
            decisions
                .iter()
                .all(|d| matches!(d, GateDecision::Granted | GateDecision::LimitReached))
        );
    }
}
