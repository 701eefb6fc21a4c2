//! Which adapter serves which port, decided once at start-up from the configuration.
//!
//! One function per port group. Each has an embedded (in-memory) branch, used when its
//! variable is unset, and a named place where the production adapter plugs in
//! (`postgres_store`, `redis_cache`, `kafka_broker`, `http_data_platform`). Until an adapter
//! exists, setting its variable stops start-up with a clear line rather than silently running
//! embedded: an operator who configured PostgreSQL must never get an in-memory shop.

use crate::config::Config;
use application::handlers::{CouponIssuer, DataPlatformForwarder, RankingUpdater};
use application::{Ports, ShopConfig};
use domain::ports::{
    Clock, CouponGate, DataPlatform, EventPublisher, HealthCheck, IdempotencyStore, RankingStore,
    UnitOfWork,
};
use std::sync::Arc;

/// A variable is set whose adapter is not part of this build yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotWired {
    pub variable: &'static str,
    pub adapter: &'static str,
}

impl std::fmt::Display for NotWired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: is set, but the {} is not available in this build yet (unset it to run embedded)",
            self.variable, self.adapter
        )
    }
}

impl std::error::Error for NotWired {}

/// The transactional store and the idempotency records (they live in the same database).
pub struct StoreGroup {
    pub store: Arc<dyn UnitOfWork>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub health: Vec<Arc<dyn HealthCheck>>,
}

/// The first-come gate and the ranking (Redis in production).
pub struct CacheGroup {
    pub gate: Arc<dyn CouponGate>,
    pub ranking: Arc<dyn RankingStore>,
    pub health: Vec<Arc<dyn HealthCheck>>,
}

/// How events reach their consumers.
pub enum Consumers {
    /// The in-process bus: its workers are started with the application.
    InProcess(memory::InProcessBus),
}

/// The broker side of the outbox relay and its consumers (Kafka in production).
pub struct BrokerGroup {
    pub publisher: Arc<dyn EventPublisher>,
    pub consumers: Consumers,
    pub health: Vec<Arc<dyn HealthCheck>>,
}

/// Everything the application runs on.
pub struct Wiring {
    pub ports: Ports,
    pub consumers: Consumers,
    pub health: Vec<Arc<dyn HealthCheck>>,
}

pub fn wire(config: &Config) -> Result<Wiring, NotWired> {
    let clock: Arc<dyn Clock> = Arc::new(memory::SystemClock);
    let store = store(config)?;
    let cache = cache(config)?;
    let broker = broker(config)?;
    let platform = data_platform(config)?;
    subscribe_consumers(
        &broker.consumers,
        &store,
        &cache,
        platform,
        clock.clone(),
        &config.shop,
    );
    let health = [store.health, cache.health, broker.health].concat();
    Ok(Wiring {
        ports: Ports {
            store: store.store,
            gate: cache.gate,
            ranking: cache.ranking,
            publisher: broker.publisher,
            idempotency: store.idempotency,
            clock,
        },
        consumers: broker.consumers,
        health,
    })
}

pub fn store(config: &Config) -> Result<StoreGroup, NotWired> {
    match &config.database_url {
        Some(url) => postgres_store(url.expose()),
        None => Ok(StoreGroup {
            store: Arc::new(memory::MemoryStore::new()),
            idempotency: Arc::new(memory::MemoryIdempotencyStore::new()),
            health: Vec::new(),
        }),
    }
}

/// Plug-in point for `persistence-diesel` (pool, migrations, health check `database`).
fn postgres_store(_url: &str) -> Result<StoreGroup, NotWired> {
    Err(NotWired {
        variable: "DATABASE_URL",
        adapter: "PostgreSQL adapter",
    })
}

pub fn cache(config: &Config) -> Result<CacheGroup, NotWired> {
    match &config.redis_url {
        Some(url) => redis_cache(url.expose()),
        None => Ok(CacheGroup {
            gate: Arc::new(memory::MemoryCouponGate::new()),
            ranking: Arc::new(memory::MemoryRankingStore::new()),
            health: Vec::new(),
        }),
    }
}

/// Plug-in point for `cache-redis` (gate, ranking, health check `cache`).
fn redis_cache(_url: &str) -> Result<CacheGroup, NotWired> {
    Err(NotWired {
        variable: "REDIS_URL",
        adapter: "Redis adapter",
    })
}

pub fn broker(config: &Config) -> Result<BrokerGroup, NotWired> {
    if !config.kafka_brokers.is_empty() {
        return kafka_broker(&config.kafka_brokers);
    }
    let bus = memory::InProcessBus::new();
    Ok(BrokerGroup {
        publisher: Arc::new(bus.clone()),
        consumers: Consumers::InProcess(bus),
        health: Vec::new(),
    })
}

/// Plug-in point for `messaging-kafka` (producer, consumers, health check `broker`).
fn kafka_broker(_brokers: &[String]) -> Result<BrokerGroup, NotWired> {
    Err(NotWired {
        variable: "KAFKA_BROKERS",
        adapter: "Kafka adapter",
    })
}

pub fn data_platform(config: &Config) -> Result<Arc<dyn DataPlatform>, NotWired> {
    match &config.data_platform_url {
        Some(url) => http_data_platform(url),
        None => Ok(Arc::new(memory::LoggingDataPlatform)),
    }
}

/// Plug-in point for the HTTP client that POSTs envelopes to `{DATA_PLATFORM_URL}/events`.
fn http_data_platform(_url: &str) -> Result<Arc<dyn DataPlatform>, NotWired> {
    Err(NotWired {
        variable: "DATA_PLATFORM_URL",
        adapter: "HTTP data-platform client",
    })
}

/// The service's own consumers (EVENTS.md): ranking updater, data-platform forwarder and the
/// asynchronous coupon issuer.
fn subscribe_consumers(
    consumers: &Consumers,
    store: &StoreGroup,
    cache: &CacheGroup,
    platform: Arc<dyn DataPlatform>,
    clock: Arc<dyn Clock>,
    shop: &ShopConfig,
) {
    match consumers {
        Consumers::InProcess(bus) => {
            bus.subscribe(Arc::new(RankingUpdater::new(
                cache.ranking.clone(),
                shop.calendar,
            )));
            bus.subscribe(Arc::new(DataPlatformForwarder::new(platform)));
            bus.subscribe(Arc::new(CouponIssuer::new(store.store.clone(), clock)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn embedded_by_default() {
        let wiring = wire(&Config::default()).unwrap();
        assert!(wiring.health.is_empty());
    }

    #[test]
    fn a_configured_but_missing_adapter_is_refused_by_name() {
        let refused = |config: Config| wire(&config).err().unwrap().variable;
        let database_url = Some(Secret::new("postgres://localhost/shop"));
        let redis_url = Some(Secret::new("redis://localhost"));
        let kafka_brokers = vec!["localhost:9092".to_owned()];
        let data_platform_url = Some("http://localhost:1".to_owned());
        let d = Config::default;
        assert_eq!(
            refused(Config {
                database_url,
                ..d()
            }),
            "DATABASE_URL"
        );
        assert_eq!(refused(Config { redis_url, ..d() }), "REDIS_URL");
        assert_eq!(
            refused(Config {
                kafka_brokers,
                ..d()
            }),
            "KAFKA_BROKERS"
        );
        assert_eq!(
            refused(Config {
                data_platform_url,
                ..d()
            }),
            "DATA_PLATFORM_URL"
        );
    }
}
