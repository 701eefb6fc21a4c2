//! The shared, lazily built rskafka client: partition clients and partition counts are cached
//! and forgotten on errors, so that a broker restart (or a topic recreated by it) heals on the
//! next call. Every call is bounded by the request timeout.

use crate::{KafkaError, KafkaSettings};
use rskafka::BackoffConfig;
use rskafka::client::error::{Error as ClientError, ProtocolError};
use rskafka::client::partition::{PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub(crate) struct Connection {
    pub(crate) settings: KafkaSettings,
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
    partitions: Mutex<HashMap<(String, i32), Arc<PartitionClient>>>,
    partition_counts: Mutex<HashMap<String, i32>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("brokers", &self.settings.brokers)
            .finish_non_exhaustive()
    }
}

/// Whether an rskafka error says the topic or partition does not exist.
pub(crate) fn is_unknown_topic(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::ServerError {
            protocol_error: ProtocolError::UnknownTopicOrPartition,
            ..
        }
    )
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps hold caches only: a panic elsewhere cannot leave them inconsistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Connection {
    pub(crate) fn new(settings: KafkaSettings) -> Self {
        Self {
            settings,
            client: tokio::sync::Mutex::new(None),
            partitions: Mutex::new(HashMap::new()),
            partition_counts: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.settings.request_timeout
    }

    /// Runs a broker call under the request timeout.
    pub(crate) async fn bounded<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, BrokerFailure> {
        match tokio::time::timeout(self.timeout(), fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(BrokerFailure::Client(what.to_owned(), e)),
            Err(_) => Err(BrokerFailure::Timeout(what.to_owned(), self.timeout())),
        }
    }

    pub(crate) async fn client(&self) -> Result<Arc<Client>, KafkaError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        // rskafka retries internally with this backoff; the deadline makes it give up in time
        // (the default retries forever).
        let backoff = BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
            deadline: Some(self.timeout()),
        };
        let builder = ClientBuilder::new(self.settings.brokers.clone())
            .client_id(self.settings.client_id.clone())
            .backoff_config(backoff);
        let client = Arc::new(self.bounded("connect", builder.build()).await?);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// The client of one partition, cached.
    pub(crate) async fn partition(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<PartitionClient>, BrokerFailure> {
        let key = (topic.to_owned(), partition);
        if let Some(pc) = lock(&self.partitions).get(&key) {
            return Ok(pc.clone());
        }
        let client = self.client().await.map_err(BrokerFailure::Other)?;
        let pc = Arc::new(
            self.bounded(
                "partition leader lookup",
                client.partition_client(topic, partition, UnknownTopicHandling::Error),
            )
            .await?,
        );
        lock(&self.partitions).insert(key, pc.clone());
        Ok(pc)
    }

    /// Drops what is cached about a topic (after an error), so that the next call looks again.
    pub(crate) fn forget(&self, topic: &str) {
        lock(&self.partitions).retain(|(t, _), _| t != topic);
        lock(&self.partition_counts).remove(topic);
    }

    /// How many partitions `topic` has; creates it first when it is missing and
    /// `recreate_missing_topics` is set.
    pub(crate) async fn partition_count(&self, topic: &str) -> Result<i32, KafkaError> {
        if let Some(count) = lock(&self.partition_counts).get(topic) {
            return Ok(*count);
        }
        let client = self.client().await?;
        let topics = self
            .bounded("list topics", client.list_topics())
            .await
            .map_err(KafkaError::from)?;
        let found = topics
            .iter()
            .find(|t| t.name == topic)
            .map(|t| t.partitions.len() as i32)
            .filter(|n| *n > 0);
        let count = match found {
            Some(count) => count,
            None if self.settings.recreate_missing_topics => {
                tracing::warn!(topic, "topic missing on the broker; creating it");
                self.create_topic(topic).await?;
                self.settings.topic_partitions
            }
            None => return Err(KafkaError::Broker(format!("topic {topic} does not exist"))),
        };
        lock(&self.partition_counts).insert(topic.to_owned(), count);
        Ok(count)
    }

    /// Creates a topic unless it exists.
    pub(crate) async fn create_topic(&self, topic: &str) -> Result<(), KafkaError> {
        let client = self.client().await?;
        let controller = client
            .controller_client()
            .map_err(|e| KafkaError::Broker(format!("controller client: {e}")))?;
        let timeout_ms = i32::try_from(self.timeout().as_millis()).unwrap_or(i32::MAX);
        let created = self
            .bounded(
                "create topic",
                controller.create_topic(topic, self.settings.topic_partitions, 1, timeout_ms),
            )
            .await;
        match created {
            Ok(()) => {
                tracing::info!(
                    topic,
                    partitions = self.settings.topic_partitions,
                    "topic created"
                );
                Ok(())
            }
            Err(BrokerFailure::Client(
                _,
                ClientError::ServerError {
                    protocol_error: ProtocolError::TopicAlreadyExists,
                    ..
                },
            )) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// A failed broker call, keeping rskafka's error for callers that look at it.
#[derive(Debug)]
pub(crate) enum BrokerFailure {
    Client(String, ClientError),
    Timeout(String, Duration),
    Other(KafkaError),
}

impl BrokerFailure {
    pub(crate) fn client_error(&self) -> Option<&ClientError> {
        match self {
            Self::Client(_, e) => Some(e),
            _ => None,
        }
    }
}

impl std::fmt::Display for BrokerFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Client(what, e) => write!(f, "{what}: {e}"),
            Self::Timeout(what, after) => write!(f, "{what}: no answer within {after:?}"),
            Self::Other(e) => e.fmt(f),
        }
    }
}

impl From<BrokerFailure> for KafkaError {
    fn from(e: BrokerFailure) -> Self {
        match e {
            BrokerFailure::Other(e) => e,
            other => KafkaError::Broker(other.to_string()),
        }
    }
}
