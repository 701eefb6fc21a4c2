//! Consumers of the service's own events (EVENTS.md, "Consumers inside the service").
//!
//! Delivery is at least once, so every handler is idempotent on the event id: the ranking
//! store records each event id once, the coupon issuer records it in the inbox in the same
//! transaction as its effect, and the data platform receives the event id in the envelope it
//! de-duplicates on.

use crate::Shop;
use crate::events::{CouponIssueRequested, OrderPaid, OrderRefunded};
use async_trait::async_trait;
use domain::coupon::NewCouponIssue;
use domain::outbox::{EventEnvelope, EventType};
use domain::ports::{
    Clock, DataPlatform, DeliveryError, EventHandler, HandleError, IssueError, RankingStore,
    RepoError, UnitOfWork,
};
use domain::sales::{BusinessCalendar, ProductSales};
use serde::de::DeserializeOwned;
use std::sync::Arc;

fn order_topics() -> Vec<&'static str> {
    vec![
        EventType::OrderPaid.default_topic(),
        EventType::OrderRefunded.default_topic(),
    ]
}

fn payload<T: DeserializeOwned>(envelope: &EventEnvelope) -> Result<T, HandleError> {
    serde_json::from_value(envelope.payload.clone()).map_err(|e| {
        HandleError::Poison(format!(
            "event {} has a malformed {} payload: {e}",
            envelope.event_id,
            envelope.event_type.as_str()
        ))
    })
}

/// Keeps the ranking store's daily sorted sets in step with payments and refunds: `+quantity`
/// on the business day of `paidAt`, `-quantity` on the business day of `refundedAt` (the same
/// days the payment and refund transactions write to the roll-up).
pub struct RankingUpdater {
    ranking: Arc<dyn RankingStore>,
    calendar: BusinessCalendar,
}

impl RankingUpdater {
    pub fn new(ranking: Arc<dyn RankingStore>, calendar: BusinessCalendar) -> Self {
        Self { ranking, calendar }
    }

    /// The day and the signed deltas an event stands for; `None` for events it ignores.
    fn deltas(
        &self,
        envelope: &EventEnvelope,
    ) -> Result<Option<(time::Date, Vec<ProductSales>)>, HandleError> {
        let (at, items, sign) = match envelope.event_type {
            EventType::OrderPaid => {
                let paid: OrderPaid = payload(envelope)?;
                (paid.paid_at, paid.items, 1)
            }
            EventType::OrderRefunded => {
                let refunded: OrderRefunded = payload(envelope)?;
                (refunded.refunded_at, refunded.items, -1)
            }
            EventType::CouponIssueRequested => return Ok(None),
        };
        let deltas = items
            .iter()
            .map(|item| ProductSales {
                product_id: item.product_id,
                quantity: sign * item.quantity,
            })
            .collect();
        Ok(Some((self.calendar.day_of(at), deltas)))
    }
}

#[async_trait]
impl EventHandler for RankingUpdater {
    fn name(&self) -> &'static str {
        "ranking-updater"
    }

    fn topics(&self) -> Vec<&'static str> {
        order_topics()
    }

    async fn handle(&self, envelope: &EventEnvelope) -> Result<(), HandleError> {
        let Some((day, deltas)) = self.deltas(envelope)? else {
            return Ok(());
        };
        // `record` counts each event id once, which makes redeliveries harmless.
        self.ranking
            .record(&envelope.event_id, day, &deltas)
            .await
            .map_err(|e| HandleError::Retry(e.to_string()))
    }
}

/// Hands every paid and refunded order to the external data platform.
pub struct DataPlatformForwarder {
    platform: Arc<dyn DataPlatform>,
}

impl DataPlatformForwarder {
    pub fn new(platform: Arc<dyn DataPlatform>) -> Self {
        Self { platform }
    }
}

#[async_trait]
impl EventHandler for DataPlatformForwarder {
    fn name(&self) -> &'static str {
        "data-platform-forwarder"
    }

    fn topics(&self) -> Vec<&'static str> {
        order_topics()
    }

    async fn handle(&self, envelope: &EventEnvelope) -> Result<(), HandleError> {
        if !matches!(
            envelope.event_type,
            EventType::OrderPaid | EventType::OrderRefunded
        ) {
            return Ok(());
        }
        match self.platform.deliver(envelope).await {
            Ok(()) => {
                metrics::counter!("data_platform_delivered_total").increment(1);
                Ok(())
            }
            Err(DeliveryError::Retryable(reason)) => Err(HandleError::Retry(reason)),
            Err(DeliveryError::Rejected(reason)) => {
                metrics::counter!("data_platform_rejected_total").increment(1);
                tracing::error!(
                    event_id = %envelope.event_id, event_type = envelope.event_type.as_str(),
                    %reason, "data platform rejected an event; skipping it"
                );
                Err(HandleError::Poison(reason))
            }
        }
    }
}

/// Asynchronous issuance: persists the issue row a `coupon.issue.requested` grant stands for.
pub struct CouponIssuer {
    store: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
}

impl CouponIssuer {
    pub const NAME: &'static str = "coupon-issuer";

    pub fn new(store: Arc<dyn UnitOfWork>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }
}

fn retry_or_poison(e: RepoError) -> HandleError {
    match e {
        RepoError::Unavailable(m) | RepoError::Conflict(m) => HandleError::Retry(m),
        RepoError::Internal(m) => HandleError::Poison(m),
    }
}

#[async_trait]
impl EventHandler for CouponIssuer {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn topics(&self) -> Vec<&'static str> {
        vec![EventType::CouponIssueRequested.default_topic()]
    }

    async fn handle(&self, envelope: &EventEnvelope) -> Result<(), HandleError> {
        if envelope.event_type != EventType::CouponIssueRequested {
            return Ok(());
        }
        let request: CouponIssueRequested = payload(envelope)?;
        let mut tx = self.store.begin().await.map_err(retry_or_poison)?;
        // The inbox row and the issue commit together: a redelivery finds the row and stops.
        let first_time = tx
            .inbox()
            .record(Self::NAME, &envelope.event_id, self.clock.now())
            .await
            .map_err(retry_or_poison)?;
        if !first_time {
            tracing::debug!(event_id = %envelope.event_id, "coupon issue request already handled");
            return Ok(());
        }
        let issued = tx
            .coupons()
            .issue(NewCouponIssue {
                coupon_id: request.coupon_id,
                user_id: request.user_id,
                // The grant was final when the request was made; that is when the user got it.
                issued_at: request.requested_at,
            })
            .await;
        match issued {
            Ok(issue) => {
                tx.commit().await.map_err(retry_or_poison)?;
                metrics::counter!("coupons_issued_total").increment(1);
                tracing::info!(
                    issue = %issue.id, coupon = %request.coupon_id, user = %request.user_id,
                    request_id = %request.request_id, "coupon issued asynchronously"
                );
                Ok(())
            }
            Err(e @ (IssueError::SoldOut | IssueError::LimitReached | IssueError::NotFound)) => {
                // The gate granted what the store refuses: they disagree. The grant is not
                // released (the gate's count would then under-count a unit the store may
                // hold), and retrying cannot change the store's mind.
                metrics::counter!("coupon_issue_poison_total").increment(1);
                tracing::error!(
                    coupon = %request.coupon_id, user = %request.user_id,
                    request_id = %request.request_id, error = %e,
                    "store refused a coupon grant the gate made; the user was told PENDING"
                );
                Err(HandleError::Poison(format!(
                    "request {}: {e}",
                    request.request_id
                )))
            }
            Err(IssueError::Repo(e)) => Err(retry_or_poison(e)),
        }
    }
}

impl Shop {
    /// The ranking updater over this shop's ranking store and business calendar.
    pub fn ranking_updater(&self) -> RankingUpdater {
        RankingUpdater::new(self.ports.ranking.clone(), self.config.calendar)
    }

    /// The asynchronous coupon issuer over this shop's store.
    pub fn coupon_issuer(&self) -> CouponIssuer {
        CouponIssuer::new(self.ports.store.clone(), self.ports.clock.clone())
    }
}
