//! The outbox relay's publisher: one envelope, one Kafka record, acknowledged before `Ok`.

use crate::PublishMode;
use crate::connection::{BrokerFailure, Connection, is_unknown_topic};
use crate::partitioner::partition_for_key;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::outbox::EventEnvelope;
use domain::ports::{EventPublisher, PublishError};
use rskafka::client::partition::Compression;
use rskafka::client::producer::aggregator::RecordAggregator;
use rskafka::client::producer::{BatchProducer, BatchProducerBuilder};
use rskafka::record::Record;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

/// Header names (EVENTS.md).
pub const HEADER_EVENT_ID: &str = "event-id";
pub const HEADER_EVENT_TYPE: &str = "event-type";

/// A batching producer per (topic, partition).
type Batchers = HashMap<(String, i32), Arc<BatchProducer<RecordAggregator>>>;

/// [`EventPublisher`] on Kafka. Built by [`crate::KafkaClients::publisher`].
pub struct KafkaPublisher {
    conn: Arc<Connection>,
    /// One batching producer per partition ([`PublishMode::Batched`] only).
    batchers: Mutex<Batchers>,
}

impl std::fmt::Debug for KafkaPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPublisher")
            .field("brokers", &self.conn.settings.brokers)
            .field("mode", &self.conn.settings.publish_mode)
            .finish_non_exhaustive()
    }
}

/// The Kafka record of an envelope (EVENTS.md): key = aggregate id, value = the envelope.
pub(crate) fn to_record(envelope: &EventEnvelope) -> Result<Record, serde_json::Error> {
    let value = serde_json::to_vec(envelope)?;
    let headers = BTreeMap::from([
        (
            HEADER_EVENT_ID.to_owned(),
            envelope.event_id.as_bytes().to_vec(),
        ),
        (
            HEADER_EVENT_TYPE.to_owned(),
            envelope.event_type.as_str().as_bytes().to_vec(),
        ),
    ]);
    let millis = (envelope.occurred_at.unix_timestamp_nanos() / 1_000_000) as i64;
    Ok(Record {
        key: Some(envelope.aggregate_id.as_bytes().to_vec()),
        value: Some(value),
        headers,
        timestamp: DateTime::<Utc>::from_timestamp_millis(millis).unwrap_or_default(),
    })
}

impl KafkaPublisher {
    pub(crate) fn new(conn: Arc<Connection>) -> Self {
        Self {
            conn,
            batchers: Mutex::new(HashMap::new()),
        }
    }

    async fn produce(
        &self,
        topic: &str,
        partition: i32,
        record: Record,
    ) -> Result<i64, BrokerFailure> {
        let client = self.conn.partition(topic, partition).await?;
        match self.conn.settings.publish_mode {
            PublishMode::OneRecordPerBatch => {
                let offsets = self
                    .conn
                    .bounded(
                        "produce",
                        client.produce(vec![record], Compression::NoCompression),
                    )
                    .await?;
                offsets.first().copied().ok_or_else(|| {
                    BrokerFailure::Other(crate::KafkaError::Broker(
                        "produce acknowledged no offset".into(),
                    ))
                })
            }
            PublishMode::Batched {
                linger,
                max_batch_bytes,
            } => {
                let batcher = {
                    let mut batchers = self.batchers.lock().unwrap_or_else(PoisonError::into_inner);
                    batchers
                        .entry((topic.to_owned(), partition))
                        .or_insert_with(|| {
                            Arc::new(
                                BatchProducerBuilder::new(client)
                                    .with_linger(linger)
                                    .build(RecordAggregator::new(max_batch_bytes)),
                            )
                        })
                        .clone()
                };
                match tokio::time::timeout(self.conn.timeout(), batcher.produce(record)).await {
                    Ok(Ok(offset)) => Ok(offset),
                    Ok(Err(e)) => Err(BrokerFailure::Other(crate::KafkaError::Broker(format!(
                        "produce (batched): {e}"
                    )))),
                    Err(_) => Err(BrokerFailure::Timeout(
                        "produce (batched)".into(),
                        self.conn.timeout(),
                    )),
                }
            }
        }
    }

    fn forget(&self, topic: &str) {
        self.conn.forget(topic);
        self.batchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(t, _), _| t != topic);
    }
}

#[async_trait]
impl EventPublisher for KafkaPublisher {
    async fn publish(&self, topic: &str, envelope: &EventEnvelope) -> Result<(), PublishError> {
        let record = to_record(envelope)
            .map_err(|e| PublishError::Unavailable(format!("encoding the envelope: {e}")))?;
        let partitions = self
            .conn
            .partition_count(topic)
            .await
            .map_err(|e| PublishError::Unavailable(e.to_string()))?;
        let partition = partition_for_key(envelope.aggregate_id.as_bytes(), partitions);
        match self.produce(topic, partition, record).await {
            Ok(offset) => {
                tracing::debug!(topic, partition, offset, event_id = %envelope.event_id, "published");
                Ok(())
            }
            Err(failure) => {
                if failure.client_error().is_some_and(is_unknown_topic) {
                    tracing::warn!(topic, "the broker does not know the topic (any more)");
                }
                // Whatever went wrong, look the topic and its leaders up afresh next time.
                self.forget(topic);
                Err(PublishError::Unavailable(failure.to_string()))
            }
        }
    }
}
