use domain::sales::BusinessCalendar;
use domain::wallet::WalletLimits;

/// How `POST /coupons/{id}/issue` persists a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CouponIssueMode {
    /// The row is written before answering 201 (default).
    #[default]
    Sync,
    /// The grant answers 202 and a `coupon.issue.requested` consumer writes the row.
    Async,
}

/// Business settings (API.md configuration table).
#[derive(Debug, Clone)]
pub struct ShopConfig {
    pub wallet: WalletLimits,
    /// `ORDER_PAYMENT_TTL_SECONDS`: unpaid orders are canceled after this.
    pub payment_ttl: time::Duration,
    pub calendar: BusinessCalendar,
    pub coupon_issue_mode: CouponIssueMode,
    /// How long a `/products/popular` answer is reused.
    pub popular_cache_ttl: std::time::Duration,
    /// How long a resolved `ADMIN_TOKEN` is reused (users and roles never change). An instance
    /// still configured with a replaced `ADMIN_TOKEN` refuses it at most this long after the
    /// replacement.
    pub auth_cache_ttl: std::time::Duration,
    /// How long a user's token version is reused by `authenticate`: a token replaced on
    /// another instance stops working here at most this long after the replacement (on the
    /// replacing instance at once). Keeps steady-state authentication free of store round
    /// trips: one read per active user per period.
    pub token_version_ttl: std::time::Duration,
    /// How long a coupon's policy is reused on the issue path (policies never change).
    pub coupon_cache_ttl: std::time::Duration,
    /// How long a product page or list page is reused; local changes invalidate it at once, other
    /// instances' changes show within this.
    pub product_cache_ttl: std::time::Duration,
    /// Outbox relay: attempts before a row is FAILED, and the first backoff (doubled each time).
    pub outbox_max_attempts: i32,
    pub outbox_base_backoff: time::Duration,
    /// How long a relay round holds the outbox rows it claimed. It publishes for at most half
    /// of it; rows of a relay that died mid-round wait this long before another relay takes
    /// them over.
    pub outbox_lease: time::Duration,
    /// `TOKEN_SIGNING_KEYS`: which secrets sign and verify bearer tokens (default: the store's).
    pub token_keys: crate::TokenKeys,
}

impl Default for ShopConfig {
    fn default() -> Self {
        Self {
            wallet: WalletLimits::default(),
            payment_ttl: time::Duration::seconds(900),
            calendar: BusinessCalendar::default(),
            coupon_issue_mode: CouponIssueMode::Sync,
            popular_cache_ttl: std::time::Duration::from_secs(1),
            auth_cache_ttl: std::time::Duration::from_secs(60),
            token_version_ttl: std::time::Duration::from_secs(1),
            coupon_cache_ttl: std::time::Duration::from_secs(5),
            product_cache_ttl: std::time::Duration::from_secs(1),
            outbox_max_attempts: 10,
            outbox_base_backoff: time::Duration::milliseconds(500),
            outbox_lease: time::Duration::seconds(30),
            token_keys: crate::TokenKeys::default(),
        }
    }
}
