//! Which adapter serves which port, decided once at start-up from the configuration.
//!
//! One function per port group. Each has an embedded (in-memory) branch, used when its
//! variable is unset, and a production branch: PostgreSQL (`DATABASE_URL`), Redis
//! (`REDIS_URL`), Kafka (`KAFKA_BROKERS`), the data platform's HTTP API (`DATA_PLATFORM_URL`).
//! A production adapter that cannot be set up stops start-up with one line naming its
//! variable: an operator who configured PostgreSQL must never get an in-memory shop.

mod metered_gate;
mod positions;
mod topics;

use crate::config::Config;
use application::handlers::{CouponIssuer, DataPlatformForwarder, RankingUpdater};
use application::rate_limits::RateLimits;
use application::{Ports, ShopConfig};
use domain::outbox::EventType;
use domain::ports::{
    Clock, CouponGate, DataPlatform, EventHandler, EventPublisher, HealthCheck, IdempotencyStore,
    RankingStore, RateLimiter, UnitOfWork,
};
use std::sync::Arc;

pub use metered_gate::MeteredGate;
pub use positions::StorePositions;
pub use topics::{PrefixedHandler, PrefixedPublisher};

/// An adapter could not be set up; displays as one line naming the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WiringError {
    pub variable: &'static str,
    pub message: String,
}

impl std::fmt::Display for WiringError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

impl std::error::Error for WiringError {}

fn failed(variable: &'static str, message: impl std::fmt::Display) -> WiringError {
    WiringError {
        variable,
        message: message.to_string(),
    }
}

/// Sources of the operator's gauges that only some profiles have (see `workers`).
#[derive(Clone, Default)]
pub struct Samplers {
    /// The PostgreSQL pool (connections in use, idle, waited for).
    pub pool: Option<persistence_diesel::PgStore>,
    /// The Kafka consumers' partition claims held by this instance.
    pub claims: Option<Arc<persistence_diesel::AdvisoryLocks>>,
}

/// The transactional store and the idempotency records (they live in the same database).
pub struct StoreGroup {
    pub pool: Option<persistence_diesel::PgStore>,
    pub store: Arc<dyn UnitOfWork>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub health: Vec<Arc<dyn HealthCheck>>,
    /// Advisory locks on the same database (PostgreSQL only): the Kafka consumers' partition
    /// claims, so that several instances never consume one partition at once.
    pub locks: Option<Arc<persistence_diesel::AdvisoryLocks>>,
}

/// The first-come gate, the ranking and the shared request budgets (Redis in production).
pub struct CacheGroup {
    pub gate: Arc<dyn CouponGate>,
    pub ranking: Arc<dyn RankingStore>,
    /// Budgets every instance shares; `None` in the embedded mode (one process).
    pub rate_limiter: Option<Arc<dyn RateLimiter>>,
    pub health: Vec<Arc<dyn HealthCheck>>,
}

/// How events reach their consumers.
pub enum Consumers {
    /// The in-process bus: its workers are started with the application.
    InProcess(memory::InProcessBus),
    /// Kafka: one runner per handler, positions kept in the store.
    Kafka {
        clients: messaging_kafka::KafkaClients,
        handlers: Vec<Arc<dyn EventHandler>>,
        positions: Arc<dyn messaging_kafka::PositionStore>,
    },
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
    /// What the operations-metrics worker samples besides the store.
    pub samplers: Samplers,
    /// The request budgets (shared through Redis when it is configured).
    pub rate_limits: Arc<RateLimits>,
    pub consumers: Consumers,
    pub health: Vec<Arc<dyn HealthCheck>>,
}

pub async fn wire(config: &Config) -> Result<Wiring, WiringError> {
    let clock: Arc<dyn Clock> = Arc::new(memory::SystemClock);
    let store = store(config).await?;
    let cache = cache(config).await?;
    let platform = data_platform(config)?;
    let handlers = handlers(&store, &cache, platform, clock.clone(), &config.shop);
    let broker = broker(config, &store, handlers).await?;
    let health = [store.health, cache.health, broker.health].concat();
    let rate_limits = Arc::new(rate_limits(config, cache.rate_limiter.clone()));
    let samplers = Samplers {
        pool: store.pool.clone(),
        claims: store.locks.clone(),
    };
    Ok(Wiring {
        samplers,
        rate_limits,
        ports: Ports {
            store: store.store,
            gate: Arc::new(MeteredGate::new(cache.gate)),
            ranking: cache.ranking,
            publisher: broker.publisher,
            idempotency: store.idempotency,
            clock,
        },
        consumers: broker.consumers,
        health,
    })
}

pub async fn store(config: &Config) -> Result<StoreGroup, WiringError> {
    match &config.database_url {
        Some(url) => postgres_store(url.expose(), config).await,
        None => {
            // One store for both ports: a keyed request's answer is kept in the same state
            // (and under the same lock) as the change it answers.
            let store = memory::MemoryStore::new();
            Ok(StoreGroup {
                pool: None,
                store: Arc::new(store.clone()),
                idempotency: Arc::new(store),
                health: Vec::new(),
                locks: None,
            })
        }
    }
}

/// Applies the embedded migrations, then opens the pool (failing fast when PostgreSQL is
/// unreachable at start-up).
async fn postgres_store(url: &str, config: &Config) -> Result<StoreGroup, WiringError> {
    migrate(url).await?;
    let mut pg = persistence_diesel::PgConfig::new(url);
    pg.pool_size = config.db_pool.size;
    pg.wait_timeout = config.db_pool.wait_timeout;
    pg.statement_timeout = config.db_pool.statement_timeout;
    let store = persistence_diesel::connect(&pg)
        .await
        .map_err(|e| failed("DATABASE_URL", e))?;
    Ok(StoreGroup {
        pool: Some(store.clone()),
        idempotency: Arc::new(store.idempotency()),
        health: vec![Arc::new(store.health_check())],
        store: Arc::new(store),
        locks: Some(Arc::new(persistence_diesel::AdvisoryLocks::new(&pg))),
    })
}

/// Applies the embedded migrations (also the `shop migrate` subcommand).
pub async fn migrate(url: &str) -> Result<Vec<String>, WiringError> {
    let applied = persistence_diesel::migrate(url)
        .await
        .map_err(|e| failed("DATABASE_URL", e))?;
    for migration in &applied {
        tracing::info!(%migration, "migration applied");
    }
    Ok(applied)
}

pub async fn cache(config: &Config) -> Result<CacheGroup, WiringError> {
    match &config.redis_url {
        Some(url) => {
            // Succeeds while Redis is down (the gate then answers 503 until it returns); fails
            // only on a URL it cannot use.
            let settings = cache_redis::RedisSettings::new(url.expose())
                .with_key_prefix(config.redis_key_prefix.clone());
            let redis = cache_redis::connect_with(settings)
                .await
                .map_err(|e| failed("REDIS_URL", e))?;
            Ok(CacheGroup {
                gate: Arc::new(redis.coupon_gate()),
                ranking: Arc::new(redis.ranking_store()),
                rate_limiter: Some(Arc::new(redis.rate_limiter())),
                health: vec![Arc::new(redis.health_check())],
            })
        }
        None => Ok(CacheGroup {
            gate: Arc::new(memory::MemoryCouponGate::new()),
            ranking: Arc::new(memory::MemoryRankingStore::new()),
            rate_limiter: None,
            health: Vec::new(),
        }),
    }
}

/// The request budgets: shared through `shared` when there is one, with this process's own
/// (bounded) budgets as the fallback while it is down; only the latter in the embedded mode.
pub fn rate_limits(config: &Config, shared: Option<Arc<dyn RateLimiter>>) -> RateLimits {
    let local: Arc<dyn RateLimiter> = Arc::new(memory::MemoryRateLimiter::new());
    match shared {
        Some(shared) => RateLimits::shared(config.rate_limits, shared, local),
        None => RateLimits::local(config.rate_limits, local),
    }
}

/// The topics this service produces and consumes (EVENTS.md).
pub const TOPICS: [&str; 3] = [
    EventType::OrderPaid.default_topic(),
    EventType::OrderRefunded.default_topic(),
    EventType::CouponIssueRequested.default_topic(),
];

pub async fn broker(
    config: &Config,
    store: &StoreGroup,
    handlers: Vec<Arc<dyn EventHandler>>,
) -> Result<BrokerGroup, WiringError> {
    if config.kafka_brokers.is_empty() {
        let bus = memory::InProcessBus::new();
        for handler in handlers {
            bus.subscribe(handler);
        }
        return Ok(BrokerGroup {
            publisher: Arc::new(bus.clone()),
            consumers: Consumers::InProcess(bus),
            health: Vec::new(),
        });
    }
    let clients = messaging_kafka::KafkaClients::new(messaging_kafka::KafkaSettings::new(
        config.kafka_brokers.clone(),
    ))
    .map_err(|e| failed("KAFKA_BROKERS", e))?;
    // A broker that is down at start-up must not stop the shop (orders keep working, events
    // wait in the outbox); the publisher and the consumers create missing topics later.
    let prefix = config.kafka_topic_prefix.clone();
    let topics: Vec<String> = TOPICS.iter().map(|t| format!("{prefix}{t}")).collect();
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    if let Err(e) = clients.ensure_topics(&topics).await {
        tracing::warn!(error = %e, "could not create the topics at start-up; will retry on use");
    }
    let handlers = handlers
        .into_iter()
        .map(|handler| PrefixedHandler::wrap(handler, &prefix))
        .collect();
    Ok(BrokerGroup {
        publisher: PrefixedPublisher::wrap(Arc::new(clients.publisher()), &prefix),
        health: vec![Arc::new(clients.health_check())],
        consumers: Consumers::Kafka {
            clients,
            handlers,
            positions: Arc::new(match &store.locks {
                Some(locks) => StorePositions::with_locks(store.store.clone(), locks.clone()),
                None => StorePositions::new(store.store.clone()),
            }),
        },
    })
}

pub fn data_platform(config: &Config) -> Result<Arc<dyn DataPlatform>, WiringError> {
    match &config.data_platform_url {
        Some(url) => Ok(Arc::new(
            messaging_kafka::data_platform::HttpDataPlatform::new(url)
                .map_err(|e| failed("DATA_PLATFORM_URL", e))?,
        )),
        None => Ok(Arc::new(memory::LoggingDataPlatform)),
    }
}

/// The service's own consumers (EVENTS.md): ranking updater, data-platform forwarder and the
/// asynchronous coupon issuer.
fn handlers(
    store: &StoreGroup,
    cache: &CacheGroup,
    platform: Arc<dyn DataPlatform>,
    clock: Arc<dyn Clock>,
    shop: &ShopConfig,
) -> Vec<Arc<dyn EventHandler>> {
    vec![
        Arc::new(RankingUpdater::new(
            store.store.clone(),
            cache.ranking.clone(),
            shop.calendar,
        )),
        Arc::new(DataPlatformForwarder::new(platform)),
        Arc::new(CouponIssuer::new(store.store.clone(), clock)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[tokio::test]
    async fn embedded_by_default() {
        let wiring = wire(&Config::default()).await.unwrap();
        assert!(wiring.health.is_empty());
        assert!(matches!(wiring.consumers, Consumers::InProcess(_)));
    }

    #[tokio::test]
    async fn an_unreachable_database_is_refused_by_name() {
        let config = Config {
            database_url: Some(Secret::new("postgres://postgres@127.0.0.1:1/shop")),
            ..Config::default()
        };
        let error = wire(&config).await.err().unwrap();
        assert_eq!(error.variable, "DATABASE_URL");
        assert!(!error.message.contains('\n'), "one line: {error}");
    }

    #[tokio::test]
    async fn an_unusable_data_platform_url_is_refused_by_name() {
        let config = Config {
            data_platform_url: Some("ftp://example".into()),
            ..Config::default()
        };
        assert_eq!(
            data_platform(&config).err().unwrap().variable,
            "DATA_PLATFORM_URL"
        );
    }
}
