use crate::coupon::Coupon;
use crate::{CouponId, UserId};
use async_trait::async_trait;

/// What the first-come gate decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateDecision {
    /// One unit is reserved for this user; it must be persisted or given back ([`CouponGate::release`]).
    Granted,
    SoldOut,
    /// The user already holds `per_user_limit` issues.
    LimitReached,
    /// The gate holds no counters for this coupon (new, evicted, Redis restarted): the caller
    /// loads them from the store ([`CouponGate::load`]) and asks again.
    Unloaded,
}

/// The issued counts a gate is rebuilt from; the store is the source of truth.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IssuedCounts {
    pub issued: i64,
    pub per_user: Vec<(UserId, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    /// The gate cannot decide safely (Redis down): answer 503, issue nothing.
    #[error("coupon gate unavailable: {0}")]
    Unavailable(String),
}

/// The first-come gate in front of coupon issuance (seed 002: Redis `DECR` + a per-user set in
/// one Lua script). It sheds the losers of a burst without touching the store; the store's
/// conditional counter stays the source of truth.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait CouponGate: Send + Sync {
    /// Atomically: if fewer than `coupon.total_quantity` units are granted and `user` holds
    /// fewer than `coupon.per_user_limit`, grant one. MUST return `Unloaded` rather than guess
    /// when its counters for the coupon are missing, and `Err(Unavailable)` when it cannot reach
    /// its storage (never `Granted`).
    async fn try_acquire(&self, coupon: &Coupon, user: UserId) -> Result<GateDecision, GateError>;

    /// Gives back a grant whose issue could not be persisted.
    async fn release(&self, coupon: CouponId, user: UserId) -> Result<(), GateError>;

    /// Installs counters from the store, unless counters already exist (a concurrent loader
    /// won). `coupon` supplies the expiry, so counters vanish with the coupon.
    async fn load(&self, coupon: &Coupon, counts: &IssuedCounts) -> Result<(), GateError>;
}
