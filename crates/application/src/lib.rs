//! The shop's use cases, one module per area of API.md, plus the background jobs.
//!
//! [`Shop`] is the single entry point the inbound adapters call. It owns nothing but ports
//! (`Arc<dyn ...>`), so the same code runs on the embedded default and on PostgreSQL + Redis +
//! Kafka. Every method takes the authenticated [`Actor`] where the rules depend on who asks,
//! and returns [`ShopError`], whose variants are exactly the stable error codes of API.md.

mod actor;
mod cache;
mod config;
mod error;
mod issue_batcher;
mod support;
mod tokens;

pub mod admin;
pub mod catalog;
pub mod coupons;
pub mod events;
pub mod handlers;
pub mod idempotency;
pub mod jobs;
pub mod orders;
pub mod payments;
pub mod popular;
pub mod rate_limits;
pub mod users;
pub mod wallet;

pub use actor::Actor;
pub use config::{CouponIssueMode, ShopConfig};
pub use error::ShopError;
pub use tokens::{SigningKey, TokenKeys};

use domain::ports::{
    Clock, CouponGate, EventPublisher, IdempotencyStore, RankingStore, UnitOfWork,
};
use std::sync::Arc;

/// The ports a [`Shop`] works through.
#[derive(Clone)]
pub struct Ports {
    pub store: Arc<dyn UnitOfWork>,
    pub gate: Arc<dyn CouponGate>,
    pub ranking: Arc<dyn RankingStore>,
    pub publisher: Arc<dyn EventPublisher>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub clock: Arc<dyn Clock>,
}

/// The application: cheap to clone, shared by every request handler and worker.
#[derive(Clone)]
pub struct Shop {
    ports: Ports,
    config: Arc<ShopConfig>,
    caches: Arc<Caches>,
    /// Groups the concurrent grants of one coupon into one transaction (sync issue mode).
    issue_batcher: Arc<issue_batcher::IssueBatcher>,
    /// Signs and verifies bearer tokens with the configured keys and/or the store's secret,
    /// built on first use (`users::token_signer`); shared by clones.
    token_signer: Arc<tokio::sync::OnceCell<tokens::TokenSigner>>,
    /// SHA-256 of the configured `ADMIN_TOKEN` and the bootstrap administrator it belongs to,
    /// set by `users::ensure_admin`: the only unsigned token that authenticates; shared by
    /// clones.
    admin_token_hash: Arc<std::sync::RwLock<Option<(domain::user::TokenHash, domain::UserId)>>>,
}

/// Short-lived answers reused across requests (see [`cache`] for why each is safe).
struct Caches {
    /// SHA-256 of the `ADMIN_TOKEN` → the caller.
    actors: cache::TtlCache<String, Actor>,
    /// A user's current token version, as last read (or written) here. Versions only grow:
    /// an entry is never replaced by a smaller one while fresh.
    token_versions: cache::TtlCache<domain::UserId, domain::user::TokenVersion>,
    /// A coupon's policy, for the issue path's window check (counters are never read from it).
    coupons: cache::TtlCache<domain::CouponId, domain::coupon::Coupon>,
    popular: cache::TtlCache<(u32, u32), popular::Popular>,
    /// Product pages, stamped with the catalog version they were read at.
    products: cache::TtlCache<domain::ProductId, (u64, domain::product::Product)>,
    /// Product list pages by (status filter, page), stamped like `products`.
    product_lists:
        cache::TtlCache<ProductListKey, (u64, domain::page::Paged<domain::product::Product>)>,
    /// Bumped after every use case that may change a product (stock, price, status) has
    /// finished, so a cached page read before (or during) a local change is never served
    /// after it. Another instance's changes show within `product_cache_ttl`.
    catalog_version: std::sync::atomic::AtomicU64,
}

/// A product list request: status filter (None = every status), 1-based page, page size.
type ProductListKey = (Option<domain::product::ProductStatus>, u32, u32);

/// Bumps the catalog version when dropped: at the end of a use case that changes products,
/// after its commit, whether it succeeded, failed or was cancelled.
struct CatalogWrite<'a>(&'a Caches);

impl Drop for CatalogWrite<'_> {
    fn drop(&mut self) {
        self.0
            .catalog_version
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Caches {
    fn new(config: &ShopConfig) -> Self {
        Self {
            actors: cache::TtlCache::new(config.auth_cache_ttl, 100_000),
            token_versions: cache::TtlCache::new(config.token_version_ttl, 100_000),
            coupons: cache::TtlCache::new(config.coupon_cache_ttl, 10_000),
            popular: cache::TtlCache::new(config.popular_cache_ttl, 1_000),
            products: cache::TtlCache::new(config.product_cache_ttl, 100_000),
            product_lists: cache::TtlCache::new(config.product_cache_ttl, 10_000),
            catalog_version: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn catalog_version(&self) -> u64 {
        self.catalog_version
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn catalog_write(&self) -> CatalogWrite<'_> {
        CatalogWrite(self)
    }
}

impl Shop {
    pub fn new(ports: Ports, config: ShopConfig) -> Self {
        Self {
            ports,
            caches: Arc::new(Caches::new(&config)),
            issue_batcher: Arc::default(),
            token_signer: Arc::default(),
            admin_token_hash: Arc::default(),
            config: Arc::new(config),
        }
    }

    pub fn config(&self) -> &ShopConfig {
        &self.config
    }

    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// The current instant of the shop's clock (tests move it).
    fn now(&self) -> time::OffsetDateTime {
        self.ports.clock.now()
    }
}
