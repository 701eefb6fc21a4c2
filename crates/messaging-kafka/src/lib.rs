//! The Kafka adapter (rskafka): the outbox relay's publisher, the consumer runner that drives
//! the service's event handlers, topic creation at start-up, and the HTTP client of the data
//! platform ([`data_platform`]).
//!
//! # Wiring (bootstrap)
//! ```no_run
//! # use std::sync::Arc;
//! # async fn wire(
//! #     handler: Arc<dyn domain::ports::EventHandler>,
//! #     positions: Arc<dyn messaging_kafka::PositionStore>,
//! #     shutdown: tokio::sync::watch::Receiver<bool>,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! use messaging_kafka::{KafkaClients, KafkaSettings};
//! let kafka = KafkaClients::new(KafkaSettings::new(vec!["127.0.0.1:9092".into()]))?;
//! kafka.ensure_topics(&["order.paid", "order.refunded", "coupon.issue.requested"]).await?;
//! let publisher = kafka.publisher();       // impl domain::ports::EventPublisher
//! let health = kafka.health_check();       // impl domain::ports::HealthCheck, named "broker"
//! let tasks = kafka.consumer(handler, positions).start(shutdown);
//! let platform = messaging_kafka::data_platform::HttpDataPlatform::new("http://dp.local")?;
//! # Ok(()) }
//! ```
//!
//! # Delivery
//! - Publishing: key = aggregate id (Kafka's default murmur2 partitioner, so one order's
//!   events share a partition and keep their order), value = the envelope JSON, headers
//!   `event-id` and `event-type`; `Ok` only once the broker acknowledged the write. One record
//!   per produce request by default ([`PublishMode`]).
//! - Consuming: rskafka has no consumer groups; positions (the next offset to read, per
//!   consumer, topic and partition) live behind the [`PositionStore`] port, normally in
//!   PostgreSQL. Delivery is at least once: handlers de-duplicate on the event id.
//!
//! # The local broker (tansu 0.6.0) and its two quirks
//! - A fetch that starts in the middle of a multi-record batch returns nothing. Hence
//!   [`PublishMode::OneRecordPerBatch`] (the default): every stored position is a batch
//!   boundary. Apache Kafka and Redpanda return the whole batch (rskafka drops the records
//!   before the asked offset), so [`PublishMode::Batched`] is safe there.
//! - `ListOffsets` for the latest offset lags behind. The runner never asks for it: it uses
//!   the high watermark returned with every fetch (lag metric, end-of-partition checks).
//!
//! # Failures
//! Every broker call is bounded by [`KafkaSettings::request_timeout`]; the client (re)connects
//! lazily, so the service starts while the broker is down and the outbox simply waits.
//!
//! # Tests
//! `cargo test -p messaging-kafka` runs the unit tests and the data-platform client tests
//! (local HTTP server, no broker). The broker tests need the `kafka-tests` feature and a
//! broker at `KAFKA_BROKERS` (default 127.0.0.1:9092); with the feature, a missing broker
//! fails them instead of skipping them:
//! ```sh
//! deploy/tansu.sh start
//! cargo test -p messaging-kafka --features kafka-tests
//! ```
//! One of them starts a tansu of its own (`TANSU_BIN`, else the one `deploy/tansu.sh install`
//! built, else `tansu` on PATH) to freeze it with SIGSTOP.

pub mod data_platform;

mod connection;
mod consumer;
mod health;
mod partitioner;
mod publisher;

pub use consumer::{
    ConsumerOptions, InMemoryPositions, KafkaConsumerRunner, PositionError, PositionStore,
};
pub use health::KafkaHealth;
pub use partitioner::partition_for_key;
pub use publisher::{HEADER_EVENT_ID, HEADER_EVENT_TYPE, KafkaPublisher};

use connection::Connection;
use domain::ports::EventHandler;
use std::sync::Arc;
use std::time::Duration;

/// How the publisher groups records into produce requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishMode {
    /// One record per produce request (and so per record batch). Required by tansu; several
    /// produce calls may be in flight at once.
    OneRecordPerBatch,
    /// Concurrent publishes to one partition share a produce request, formed within `linger`
    /// and up to `max_batch_bytes`. For Apache Kafka, Redpanda and managed services.
    Batched {
        linger: Duration,
        max_batch_bytes: usize,
    },
}

/// Brokers and behaviour.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    pub client_id: String,
    /// The most one broker call may take (connect, retries and all).
    pub request_timeout: Duration,
    /// Partitions of the topics this service creates.
    pub topic_partitions: i32,
    /// Create a topic the broker does not know (again) when publishing or consuming: a broker
    /// with in-memory storage (tansu in development) forgets its topics when it restarts.
    pub recreate_missing_topics: bool,
    pub publish_mode: PublishMode,
}

impl KafkaSettings {
    pub fn new(brokers: Vec<String>) -> Self {
        Self {
            brokers,
            client_id: "shop".into(),
            request_timeout: Duration::from_secs(5),
            topic_partitions: 3,
            recreate_missing_topics: true,
            publish_mode: PublishMode::OneRecordPerBatch,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KafkaError {
    #[error("invalid Kafka settings: {0}")]
    InvalidSettings(String),
    /// The broker refused, failed or did not answer in time.
    #[error("broker: {0}")]
    Broker(String),
}

/// One lazily connected client and the adapters built on it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct KafkaClients {
    conn: Arc<Connection>,
}

/// [`KafkaClients::new`] with the default [`KafkaSettings`] for `brokers`.
///
/// # Errors
/// `InvalidSettings` when `brokers` is empty or malformed. Does not contact the broker.
pub fn connect(brokers: &[String]) -> Result<KafkaClients, KafkaError> {
    KafkaClients::new(KafkaSettings::new(brokers.to_vec()))
}

/// Creates `topics` with `partitions` partitions each, leaving existing ones alone. Call it at
/// start-up: the broker does not create topics on first use (tansu never does).
///
/// # Errors
/// `Broker` when the broker is unreachable or refuses for another reason than "exists".
pub async fn ensure_topics(
    brokers: &[String],
    topics: &[&str],
    partitions: i32,
) -> Result<(), KafkaError> {
    let mut settings = KafkaSettings::new(brokers.to_vec());
    settings.topic_partitions = partitions;
    KafkaClients::new(settings)?.ensure_topics(topics).await
}

impl KafkaClients {
    /// # Errors
    /// `InvalidSettings` when `brokers` is empty or an entry is not `host:port`, or the
    /// partition count is below 1. Connecting happens on first use.
    pub fn new(settings: KafkaSettings) -> Result<Self, KafkaError> {
        if settings.brokers.is_empty() {
            return Err(KafkaError::InvalidSettings("no broker given".into()));
        }
        for broker in &settings.brokers {
            let valid = broker
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid {
                return Err(KafkaError::InvalidSettings(format!(
                    "broker {broker:?} is not host:port"
                )));
            }
        }
        if settings.topic_partitions < 1 {
            return Err(KafkaError::InvalidSettings(
                "topics need at least one partition".into(),
            ));
        }
        Ok(Self {
            conn: Arc::new(Connection::new(settings)),
        })
    }

    /// Creates the topics with [`KafkaSettings::topic_partitions`] partitions unless they
    /// exist.
    ///
    /// # Errors
    /// `Broker` as in [`ensure_topics`].
    pub async fn ensure_topics(&self, topics: &[&str]) -> Result<(), KafkaError> {
        for topic in topics {
            self.conn.create_topic(topic).await?;
        }
        Ok(())
    }

    /// The outbox relay's publisher (`domain::ports::EventPublisher`).
    pub fn publisher(&self) -> KafkaPublisher {
        KafkaPublisher::new(self.conn.clone())
    }

    /// A runner that feeds every partition of `handler.topics()` to `handler`.
    pub fn consumer(
        &self,
        handler: Arc<dyn EventHandler>,
        positions: Arc<dyn PositionStore>,
    ) -> KafkaConsumerRunner {
        KafkaConsumerRunner::new(self.conn.clone(), handler, positions)
    }

    /// A metadata round trip, reported as `broker` by `/health/ready`.
    pub fn health_check(&self) -> KafkaHealth {
        KafkaHealth::new(self.conn.clone())
    }
}
