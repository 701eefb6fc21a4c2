//! The external data platform, in process: logged in embedded mode, recorded in tests.

use async_trait::async_trait;
use domain::outbox::EventEnvelope;
use domain::ports::{DataPlatform, DeliveryError};
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Embedded mode (`DATA_PLATFORM_URL` unset): every event is written to the log and accepted.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoggingDataPlatform;

#[async_trait]
impl DataPlatform for LoggingDataPlatform {
    async fn deliver(&self, envelope: &EventEnvelope) -> Result<(), DeliveryError> {
        tracing::info!(
            event_id = %envelope.event_id,
            event_type = envelope.event_type.as_str(),
            aggregate_type = %envelope.aggregate_type,
            aggregate_id = %envelope.aggregate_id,
            payload = %envelope.payload,
            "data platform (embedded): event delivered to the log"
        );
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Script {
    delivered: Vec<EventEnvelope>,
    attempts: usize,
    /// Answers for the next calls, used up one per call before `failing` is looked at.
    next: VecDeque<DeliveryError>,
    /// Answer to every call while set.
    failing: Option<DeliveryError>,
}

/// A data platform for tests: keeps every accepted envelope (duplicates included, so a test
/// sees exactly what an at-least-once sender did) and fails when scripted to.
#[derive(Debug, Default)]
pub struct RecordingDataPlatform {
    script: Mutex<Script>,
}

impl RecordingDataPlatform {
    pub fn new() -> Self {
        Self::default()
    }

    /// The envelopes accepted so far, in order.
    pub fn delivered(&self) -> Vec<EventEnvelope> {
        self.lock().delivered.clone()
    }

    /// How many times `deliver` was called, failures included.
    pub fn attempts(&self) -> usize {
        self.lock().attempts
    }

    /// The next call answers `error` (queued after earlier scripted failures).
    pub fn fail_next(&self, error: DeliveryError) {
        self.lock().next.push_back(error);
    }

    /// Every call answers `error` while set; `None` accepts again.
    pub fn set_failing(&self, error: Option<DeliveryError>) {
        self.lock().failing = error;
    }

    fn lock(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl DataPlatform for RecordingDataPlatform {
    async fn deliver(&self, envelope: &EventEnvelope) -> Result<(), DeliveryError> {
        let mut script = self.lock();
        script.attempts += 1;
        if let Some(error) = script.next.pop_front() {
            return Err(error);
        }
        if let Some(error) = &script.failing {
            return Err(error.clone());
        }
        script.delivered.push(envelope.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::outbox::EventType;
    use time::macros::datetime;

    fn envelope(id: &str) -> EventEnvelope {
        EventEnvelope {
            event_id: id.into(),
            event_type: EventType::OrderPaid,
            aggregate_type: "ORDER".into(),
            aggregate_id: "1".into(),
            occurred_at: datetime!(2026-11-21 09:30 UTC),
            payload: serde_json::json!({"orderId": 1}),
        }
    }

    #[tokio::test]
    async fn records_deliveries_and_follows_its_script() {
        let platform = RecordingDataPlatform::new();
        platform.fail_next(DeliveryError::Retryable("503".into()));
        assert_eq!(
            platform.deliver(&envelope("a")).await,
            Err(DeliveryError::Retryable("503".into()))
        );
        platform.deliver(&envelope("a")).await.unwrap();
        platform.set_failing(Some(DeliveryError::Rejected("400".into())));
        assert!(platform.deliver(&envelope("b")).await.is_err());
        platform.set_failing(None);
        platform.deliver(&envelope("b")).await.unwrap();
        let ids: Vec<_> = platform
            .delivered()
            .into_iter()
            .map(|e| e.event_id)
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(platform.attempts(), 4);
        assert_eq!(LoggingDataPlatform.deliver(&envelope("c")).await, Ok(()));
    }
}
