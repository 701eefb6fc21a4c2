use crate::outbox::EventEnvelope;
use async_trait::async_trait;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The broker did not acknowledge: the outbox row stays READY and is retried with backoff.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}

/// The broker side of the outbox relay (Kafka, or the in-process bus).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes one envelope to `topic`, keyed by its aggregate id. `Ok` only once the broker
    /// acknowledged it durably.
    async fn publish(&self, topic: &str, envelope: &EventEnvelope) -> Result<(), PublishError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// Try the same event again later (dependency down); the consumer does not advance.
    #[error("retry later: {0}")]
    Retry(String),
    /// The event can never be handled (malformed, rejected): recorded, alerted, skipped.
    #[error("poison event: {0}")]
    Poison(String),
}

/// A consumer of events. Delivery is at least once, so handlers MUST be idempotent on
/// `envelope.event_id`.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait EventHandler: Send + Sync {
    /// A stable name, used to store positions and de-duplication records.
    fn name(&self) -> &'static str;
    /// The topics it consumes.
    fn topics(&self) -> Vec<&'static str>;
    async fn handle(&self, envelope: &EventEnvelope) -> Result<(), HandleError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Network error, timeout, 5xx, 408 or 429: retry with backoff.
    #[error("retryable: {0}")]
    Retryable(String),
    /// Any other 4xx: the platform will never accept this event.
    #[error("rejected: {0}")]
    Rejected(String),
}

/// The external data platform (seed 000/002) that receives every paid and refunded order.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait DataPlatform: Send + Sync {
    async fn deliver(&self, envelope: &EventEnvelope) -> Result<(), DeliveryError>;
}
