//! Configurable topic names (EVENTS.md: "names configurable, these are the defaults"): the
//! use cases and handlers speak the default names; these decorators put `KAFKA_TOPIC_PREFIX`
//! in front on the way to and from the broker.

use async_trait::async_trait;
use domain::outbox::EventEnvelope;
use domain::ports::{EventHandler, EventPublisher, HandleError, PublishError};
use std::sync::Arc;

pub struct PrefixedPublisher {
    inner: Arc<dyn EventPublisher>,
    prefix: String,
}

impl PrefixedPublisher {
    /// `inner` itself when the prefix is empty.
    pub fn wrap(inner: Arc<dyn EventPublisher>, prefix: &str) -> Arc<dyn EventPublisher> {
        if prefix.is_empty() {
            return inner;
        }
        Arc::new(Self {
            inner,
            prefix: prefix.to_owned(),
        })
    }
}

#[async_trait]
impl EventPublisher for PrefixedPublisher {
    async fn publish(&self, topic: &str, envelope: &EventEnvelope) -> Result<(), PublishError> {
        self.inner
            .publish(&format!("{}{topic}", self.prefix), envelope)
            .await
    }
}

pub struct PrefixedHandler {
    inner: Arc<dyn EventHandler>,
    /// `topics()` hands out `&'static str`: the prefixed names are built once and leaked, a
    /// handful of strings per process lifetime.
    topics: Vec<&'static str>,
}

impl PrefixedHandler {
    /// `inner` itself when the prefix is empty.
    pub fn wrap(inner: Arc<dyn EventHandler>, prefix: &str) -> Arc<dyn EventHandler> {
        if prefix.is_empty() {
            return inner;
        }
        let topics = inner
            .topics()
            .into_iter()
            .map(|t| &*Box::leak(format!("{prefix}{t}").into_boxed_str()))
            .collect();
        Arc::new(Self { inner, topics })
    }
}

#[async_trait]
impl EventHandler for PrefixedHandler {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn topics(&self) -> Vec<&'static str> {
        self.topics.clone()
    }

    async fn handle(&self, envelope: &EventEnvelope) -> Result<(), HandleError> {
        self.inner.handle(envelope).await
    }
}
