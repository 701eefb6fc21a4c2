//! The external data platform's HTTP client (seed 000/002): every paid and refunded order is
//! POSTed as its event envelope to `{DATA_PLATFORM_URL}/events`.
//!
//! Answer mapping ([`DeliveryError`]): 2xx delivered; 408, 429, 5xx, a timeout or a network
//! failure → `Retryable` (the forwarder backs off and tries again); any other 4xx →
//! `Rejected` (a poison event: the platform will never accept it). The `event-id` header
//! carries the event id so that the platform can de-duplicate redeliveries.

use async_trait::async_trait;
use domain::outbox::EventEnvelope;
use domain::ports::{DataPlatform, DeliveryError};
use reqwest::StatusCode;
use std::time::Duration;

/// The default bound on one delivery (connect, send, answer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid DATA_PLATFORM_URL: {0}")]
pub struct InvalidUrl(String);

/// [`DataPlatform`] over HTTP.
#[derive(Debug, Clone)]
pub struct HttpDataPlatform {
    client: reqwest::Client,
    endpoint: String,
}

impl HttpDataPlatform {
    /// `base_url` like `http://data-platform.internal:8080` (a trailing `/` is fine).
    ///
    /// # Errors
    /// `InvalidUrl` unless it is an `http://` URL (this build carries no TLS).
    pub fn new(base_url: &str) -> Result<Self, InvalidUrl> {
        Self::with_timeout(base_url, DEFAULT_TIMEOUT)
    }

    /// # Errors
    /// As [`HttpDataPlatform::new`].
    pub fn with_timeout(base_url: &str, timeout: Duration) -> Result<Self, InvalidUrl> {
        let base = base_url.trim_end_matches('/');
        let rest = base
            .strip_prefix("http://")
            .ok_or_else(|| InvalidUrl(format!("{base_url:?} is not an http:// URL")))?;
        if rest.is_empty() {
            return Err(InvalidUrl(format!("{base_url:?} has no host")));
        }
        let endpoint = format!("{base}/events");
        reqwest::Url::parse(&endpoint).map_err(|e| InvalidUrl(format!("{base_url:?}: {e}")))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| InvalidUrl(format!("HTTP client: {e}")))?;
        Ok(Self { client, endpoint })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

/// What an HTTP status means for a delivery.
fn classify(status: StatusCode, body: &str) -> Result<(), DeliveryError> {
    let reason = || {
        let mut text = format!("data platform answered {status}");
        if !body.is_empty() {
            let excerpt: String = body.chars().take(200).collect();
            text.push_str(": ");
            text.push_str(&excerpt);
        }
        text
    };
    if status.is_success() {
        Ok(())
    } else if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        Err(DeliveryError::Retryable(reason()))
    } else if status.is_client_error() {
        Err(DeliveryError::Rejected(reason()))
    } else {
        // 1xx/3xx as a final answer: not a delivery, but nothing says it never will be.
        Err(DeliveryError::Retryable(reason()))
    }
}

#[async_trait]
impl DataPlatform for HttpDataPlatform {
    async fn deliver(&self, envelope: &EventEnvelope) -> Result<(), DeliveryError> {
        let response = self
            .client
            .post(&self.endpoint)
            .header("event-id", &envelope.event_id)
            .json(envelope)
            .send()
            .await
            .map_err(|e| DeliveryError::Retryable(format!("data platform unreachable: {e}")))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        classify(status, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_retry_or_reject() {
        assert_eq!(classify(StatusCode::OK, ""), Ok(()));
        assert_eq!(classify(StatusCode::ACCEPTED, ""), Ok(()));
        for retryable in [408, 429, 500, 502, 503, 504] {
            let status = StatusCode::from_u16(retryable).unwrap();
            assert!(
                matches!(classify(status, ""), Err(DeliveryError::Retryable(_))),
                "{status}"
            );
        }
        for rejected in [400, 401, 403, 404, 409, 413, 422] {
            let status = StatusCode::from_u16(rejected).unwrap();
            assert!(
                matches!(classify(status, "bad"), Err(DeliveryError::Rejected(_))),
                "{status}"
            );
        }
    }

    #[test]
    fn only_http_urls_are_accepted() {
        assert_eq!(
            HttpDataPlatform::new("http://127.0.0.1:8080/")
                .unwrap()
                .endpoint(),
            "http://127.0.0.1:8080/events"
        );
        assert!(HttpDataPlatform::new("https://dp.example").is_err());
        assert!(HttpDataPlatform::new("dp.example").is_err());
        assert!(HttpDataPlatform::new("http://").is_err());
    }
}
