//! Consumers of the service's own events (EVENTS.md, "Consumers inside the service").
//!
//! Delivery is at least once, so every handler is idempotent: the ranking updater copies the
//! roll-up (a redelivery only refreshes it again), the coupon issuer records it in the inbox in the same
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
use domain::sales::BusinessCalendar;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
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

/// Keeps the ranking store's daily sorted sets in step with payments and refunds.
///
/// Each `order.paid` / `order.refunded` event makes its business day (of `paidAt` /
/// `refundedAt`, the days the payment and refund transactions write to) be re-read from the
/// roll-up and written to the ranking store whole. Adding the event's own quantities instead
/// (`ZINCRBY`) double-counts whenever a day is rebuilt from the roll-up while events of
/// payments already in it are still on their way — the roll-up is the truth (RULES.md), so the
/// ranking is made a copy of it, which is idempotent and order-independent by construction.
///
/// Refreshes are coalesced: the event's payment committed before the event was published, so a
/// refresh that reads the roll-up after the event arrived covers it; events arriving while a
/// refresh of their day runs are covered by the next one, one read for a whole burst.
pub struct RankingUpdater {
    store: Arc<dyn UnitOfWork>,
    ranking: Arc<dyn RankingStore>,
    calendar: BusinessCalendar,
    /// Per day: how many refreshes were asked for.
    requested: std::sync::Mutex<HashMap<time::Date, u64>>,
    /// Per day: up to which request the ranking is known fresh; held while refreshing.
    refreshed: tokio::sync::Mutex<HashMap<time::Date, u64>>,
}

impl RankingUpdater {
    pub fn new(
        store: Arc<dyn UnitOfWork>,
        ranking: Arc<dyn RankingStore>,
        calendar: BusinessCalendar,
    ) -> Self {
        Self {
            store,
            ranking,
            calendar,
            requested: std::sync::Mutex::new(HashMap::new()),
            refreshed: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The business day an event changes; `None` for events it ignores.
    fn day_of(&self, envelope: &EventEnvelope) -> Result<Option<time::Date>, HandleError> {
        let at = match envelope.event_type {
            EventType::OrderPaid => payload::<OrderPaid>(envelope)?.paid_at,
            EventType::OrderRefunded => payload::<OrderRefunded>(envelope)?.refunded_at,
            EventType::CouponIssueRequested => return Ok(None),
        };
        Ok(Some(self.calendar.day_of(at)))
    }

    fn ask(&self, day: time::Date) -> u64 {
        let mut requested = self
            .requested
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ticket = requested.entry(day).or_insert(0);
        *ticket += 1;
        *ticket
    }

    fn asked(&self, day: time::Date) -> u64 {
        self.requested
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&day)
            .copied()
            .unwrap_or(0)
    }

    /// Makes `day` in the ranking store equal to the roll-up as of now or later.
    async fn refresh(&self, day: time::Date) -> Result<(), HandleError> {
        let ticket = self.ask(day);
        let mut refreshed = self.refreshed.lock().await;
        if refreshed.get(&day).is_some_and(|&done| done >= ticket) {
            return Ok(());
        }
        // Every request made until now is covered by the read below.
        let covered = self.asked(day);
        let totals = {
            let mut view = self.store.read().await.map_err(retry)?;
            view.sales().day_totals(day).await.map_err(retry)?
        };
        self.ranking
            .rebuild_day(day, &totals)
            .await
            .map_err(|e| HandleError::Retry(e.to_string()))?;
        refreshed.insert(day, covered);
        Ok(())
    }
}

fn retry(e: RepoError) -> HandleError {
    HandleError::Retry(e.to_string())
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
        match self.day_of(envelope)? {
            Some(day) => self.refresh(day).await,
            None => Ok(()),
        }
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
        RankingUpdater::new(
            self.ports.store.clone(),
            self.ports.ranking.clone(),
            self.config.calendar,
        )
    }

    /// The asynchronous coupon issuer over this shop's store.
    pub fn coupon_issuer(&self) -> CouponIssuer {
        CouponIssuer::new(self.ports.store.clone(), self.ports.clock.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventItem, ORDER_AGGREGATE, envelope};
    use domain::ports::{MockDataPlatform, MockRankingStore, RankingError};
    use domain::sales::ProductSales;
    use domain::{OrderId, PaymentId, ProductId, UserId};
    use time::macros::{date, datetime};

    fn paid_event(paid_at: time::OffsetDateTime) -> EventEnvelope {
        let payload = OrderPaid {
            order_id: OrderId(1),
            user_id: UserId(2),
            payment_id: PaymentId(3),
            items: vec![
                EventItem {
                    product_id: ProductId(7),
                    quantity: 2,
                    unit_price: 100,
                },
                EventItem {
                    product_id: ProductId(9),
                    quantity: 1,
                    unit_price: 50,
                },
            ],
            subtotal: 250,
            discount: 0,
            total_amount: 250,
            paid_at,
        };
        envelope(EventType::OrderPaid, ORDER_AGGREGATE, 1, &payload, paid_at).unwrap()
    }

    fn refunded_event(refunded_at: time::OffsetDateTime) -> EventEnvelope {
        let payload = OrderRefunded {
            order_id: OrderId(1),
            user_id: UserId(2),
            payment_id: PaymentId(3),
            items: vec![EventItem {
                product_id: ProductId(7),
                quantity: 2,
                unit_price: 100,
            }],
            total_amount: 200,
            refunded_at,
        };
        envelope(
            EventType::OrderRefunded,
            ORDER_AGGREGATE,
            1,
            &payload,
            refunded_at,
        )
        .unwrap()
    }

    fn sales(pairs: &[(i64, i64)]) -> Vec<ProductSales> {
        pairs
            .iter()
            .map(|&(id, quantity)| ProductSales {
                product_id: ProductId(id),
                quantity,
            })
            .collect()
    }

    /// A store whose roll-up holds `totals` on `day`.
    async fn store_with(day: time::Date, totals: &[(i64, i64)]) -> Arc<dyn UnitOfWork> {
        let store = memory::MemoryStore::new();
        let mut tx = store.begin().await.unwrap();
        tx.sales().add(day, &sales(totals)).await.unwrap();
        tx.commit().await.unwrap();
        Arc::new(store)
    }

    #[tokio::test]
    async fn ranking_updater_copies_the_rollup_of_the_business_day_of_payment() {
        // 16:00 UTC is already the next day in Seoul.
        let event = paid_event(datetime!(2026-11-21 16:00 UTC));
        let day = date!(2026 - 11 - 22);
        let store = store_with(day, &[(7, 5), (9, 1)]).await;
        let mut ranking = MockRankingStore::new();
        ranking
            .expect_rebuild_day()
            .withf(move |d, totals| {
                let mut totals = totals.to_vec();
                totals.sort_by_key(|s| s.product_id);
                *d == day && totals == sales(&[(7, 5), (9, 1)])
            })
            .times(1)
            .returning(|_, _| Ok(()));
        let updater = RankingUpdater::new(store, Arc::new(ranking), BusinessCalendar::default());
        assert_eq!(updater.handle(&event).await, Ok(()));
        assert_eq!(updater.topics(), ["order.paid", "order.refunded"]);
    }

    #[tokio::test]
    async fn ranking_updater_refreshes_the_day_of_the_refund() {
        let event = refunded_event(datetime!(2026-11-21 14:59 UTC));
        let day = date!(2026 - 11 - 21);
        let store = store_with(day, &[(7, -2)]).await;
        let mut ranking = MockRankingStore::new();
        ranking
            .expect_rebuild_day()
            .withf(move |d, totals| *d == day && totals == sales(&[(7, -2)]).as_slice())
            .times(1)
            .returning(|_, _| Ok(()));
        let updater = RankingUpdater::new(store, Arc::new(ranking), BusinessCalendar::default());
        assert_eq!(updater.handle(&event).await, Ok(()));
    }

    #[tokio::test]
    async fn ranking_updater_retries_when_the_ranking_store_is_down_and_skips_garbage() {
        let mut ranking = MockRankingStore::new();
        ranking
            .expect_rebuild_day()
            .returning(|_, _| Err(RankingError::Unavailable("down".into())));
        let store = store_with(date!(2026 - 11 - 21), &[]).await;
        let updater = RankingUpdater::new(store, Arc::new(ranking), BusinessCalendar::default());
        let event = paid_event(datetime!(2026-11-21 09:00 UTC));
        assert!(matches!(
            updater.handle(&event).await,
            Err(HandleError::Retry(_))
        ));
        let mut garbage = event;
        garbage.payload = serde_json::json!({"orderId": "x"});
        assert!(matches!(
            updater.handle(&garbage).await,
            Err(HandleError::Poison(_))
        ));
    }

    #[tokio::test]
    async fn forwarder_maps_delivery_errors_to_retry_and_poison() {
        let mut platform = MockDataPlatform::new();
        let mut answers = vec![
            Err(DeliveryError::Rejected("400 bad request".into())),
            Err(DeliveryError::Retryable("503".into())),
            Ok(()),
        ];
        platform
            .expect_deliver()
            .times(3)
            .returning(move |_| answers.pop().unwrap_or(Ok(())));
        let forwarder = DataPlatformForwarder::new(Arc::new(platform));
        let event = paid_event(datetime!(2026-11-21 09:00 UTC));
        assert_eq!(forwarder.handle(&event).await, Ok(()));
        assert!(matches!(
            forwarder.handle(&event).await,
            Err(HandleError::Retry(_))
        ));
        assert!(matches!(
            forwarder.handle(&event).await,
            Err(HandleError::Poison(_))
        ));
    }

    #[tokio::test]
    async fn forwarder_passes_the_envelope_unchanged() {
        let event = refunded_event(datetime!(2026-11-21 09:00 UTC));
        let expected = event.clone();
        let mut platform = MockDataPlatform::new();
        platform
            .expect_deliver()
            .withf(move |delivered| *delivered == expected)
            .times(1)
            .returning(|_| Ok(()));
        let forwarder = DataPlatformForwarder::new(Arc::new(platform));
        assert_eq!(forwarder.handle(&event).await, Ok(()));
    }
}
