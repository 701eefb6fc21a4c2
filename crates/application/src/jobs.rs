//! Background jobs: the outbox relay, the unpaid-order sweeper, and the event handlers
//! (ranking updater, data-platform forwarder, async coupon issuer, in [`crate::handlers`]).
//! The bootstrap binary runs them on timers; tests call the `*_once` functions directly.

use crate::orders::cancel_unpaid;
use crate::support::retry_on_conflict;
use crate::{Shop, ShopError};
use domain::outbox::OutboxEvent;
use std::collections::HashMap;
use time::Duration;

/// The longest wait between two attempts of one outbox row.
const MAX_BACKOFF: Duration = Duration::minutes(5);

/// `base * 2^attempts`, capped at [`MAX_BACKOFF`]; `attempts` counts the failures before this
/// one, so the first retry waits `base`.
/// Groups claimed rows by aggregate, keeping each group in claim (id) order.
fn by_aggregate(rows: &[OutboxEvent]) -> Vec<Vec<&OutboxEvent>> {
    let mut groups: Vec<Vec<&OutboxEvent>> = Vec::new();
    let mut index: HashMap<(&str, &str), usize> = HashMap::new();
    for row in rows {
        let key = (
            row.envelope.aggregate_type.as_str(),
            row.envelope.aggregate_id.as_str(),
        );
        match index.get(&key) {
            Some(&i) => groups[i].push(row),
            None => {
                index.insert(key, groups.len());
                groups.push(vec![row]);
            }
        }
    }
    groups
}

fn backoff(base: Duration, attempts: i32) -> Duration {
    let exponent = attempts.clamp(0, 30) as u32;
    let factor = 1i32.checked_shl(exponent).unwrap_or(i32::MAX);
    base.max(Duration::ZERO)
        .checked_mul(factor)
        .map_or(MAX_BACKOFF, |wait| wait.min(MAX_BACKOFF))
}

impl Shop {
    /// Publishes due READY outbox rows (claimed with skip-locked), marks them SENT, backs off
    /// exponentially on failure, FAILED after `outbox_max_attempts` (ERROR log + metric).
    /// Returns how many rows were published.
    ///
    /// Delivery is at least once: if the marks cannot be committed, the rows stay READY and
    /// are published again by a later run; consumers de-duplicate on the event id.
    pub async fn relay_outbox_once(&self, batch: u32) -> Result<usize, ShopError> {
        let now = self.now();
        let mut tx = self.ports.store.begin().await?;
        let due = tx.outbox().claim_ready(now, batch).await?;
        // One aggregate's events go out in id order, one after the other (Kafka key = order id
        // keeps that order downstream); different aggregates are published concurrently, so a
        // batch costs about one broker round trip per event of the busiest aggregate instead of
        // one per row.
        let outcomes = futures::future::join_all(
            by_aggregate(&due)
                .into_iter()
                .map(|rows| self.publish_in_order(rows)),
        )
        .await;
        let mut sent = 0;
        for (row, outcome) in outcomes.into_iter().flatten() {
            let event_type = row.envelope.event_type.as_str();
            match outcome {
                Ok(()) => {
                    tx.outbox().mark_sent(row.id, now).await?;
                    metrics::counter!("outbox_published_total", "event_type" => event_type)
                        .increment(1);
                    sent += 1;
                }
                Err(error) => {
                    let attempts = row.attempts.saturating_add(1);
                    if attempts >= self.config.outbox_max_attempts {
                        tx.outbox().mark_failed(row.id, &error).await?;
                        metrics::counter!("outbox_failed_total", "event_type" => event_type)
                            .increment(1);
                        tracing::error!(
                            outbox = %row.id, event_id = %row.envelope.event_id, event_type,
                            attempts, %error,
                            "outbox event FAILED after its retry budget; an admin must re-drive it"
                        );
                    } else {
                        let next = now + backoff(self.config.outbox_base_backoff, row.attempts);
                        tx.outbox().mark_retry(row.id, &error, next).await?;
                        tracing::warn!(
                            outbox = %row.id, event_type, attempts, %error, next_attempt_at = %next,
                            "outbox publish failed, backing off"
                        );
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(sent)
    }

    /// Publishes one aggregate's rows in order and stops at the first failure: the rows after
    /// it are left untouched (still READY, no attempt counted), so a later event of an order can
    /// never overtake an earlier one.
    async fn publish_in_order<'a>(
        &self,
        rows: Vec<&'a OutboxEvent>,
    ) -> Vec<(&'a OutboxEvent, Result<(), String>)> {
        let mut outcomes = Vec::with_capacity(rows.len());
        for row in rows {
            let outcome = self
                .ports
                .publisher
                .publish(row.topic(), &row.envelope)
                .await
                .map_err(|e| e.to_string());
            let failed = outcome.is_err();
            outcomes.push((row, outcome));
            if failed {
                break;
            }
        }
        outcomes
    }

    /// Cancels CREATED orders past their payment window (stock and coupon back), up to `batch`
    /// of them, each in its own transaction: one transaction over several orders would lock
    /// their product rows order after order, not in one ascending order, and deadlock with
    /// concurrent orders and cancels (each of which locks its products in ascending order).
    pub async fn expire_orders_once(&self, batch: u32) -> Result<usize, ShopError> {
        let _changes_catalog = self.caches.catalog_write();
        let mut canceled = 0;
        for _ in 0..batch {
            let outcome = retry_on_conflict("expire_orders", || async {
                let now = self.now();
                let mut tx = self.ports.store.begin().await?;
                let due = tx.orders().claim_expired(now, 1).await?;
                let Some(order) = due.first() else {
                    tx.commit().await?;
                    return Ok(None);
                };
                // Claimed rows cannot be paid meanwhile, so `None` (lost the race) only happens
                // on a store without row claims; such an order simply is not counted.
                let done = cancel_unpaid(tx.as_mut(), order, now).await?.is_some();
                tx.commit().await?;
                if done {
                    tracing::info!(order = %order.id, "unpaid order expired");
                }
                Ok(Some(done))
            })
            .await?;
            match outcome {
                None => break,
                Some(true) => canceled += 1,
                Some(false) => {}
            }
        }
        if canceled > 0 {
            metrics::counter!("orders_canceled_total", "outcome" => "expired")
                .increment(canceled as u64);
        }
        Ok(canceled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_and_is_capped() {
        let base = Duration::milliseconds(500);
        assert_eq!(backoff(base, 0), Duration::milliseconds(500));
        assert_eq!(backoff(base, 1), Duration::seconds(1));
        assert_eq!(backoff(base, 3), Duration::seconds(4));
        assert_eq!(backoff(base, 12), MAX_BACKOFF);
        assert_eq!(backoff(base, i32::MAX), MAX_BACKOFF);
        assert_eq!(backoff(base, -1), base);
    }
}
