//! Background jobs: the outbox relay, the unpaid-order sweeper, and the event handlers
//! (ranking updater, data-platform forwarder, async coupon issuer, in [`crate::handlers`]).
//! The bootstrap binary runs them on timers; tests call the `*_once` functions directly.

use crate::orders::cancel_unpaid;
use crate::support::retry_on_conflict;
use crate::{Shop, ShopError};
use domain::outbox::{OutboxEvent, OutboxOutcome};
use std::collections::HashMap;
use time::{Duration, OffsetDateTime};

/// The longest wait between two attempts of one outbox row.
const MAX_BACKOFF: Duration = Duration::minutes(5);

/// What one publish of a relay round came to.
enum Published {
    Yes,
    /// The broker refused, failed or did not answer in time.
    No(String),
    /// Left for a later round: an older event of the same aggregate was not published first.
    NotTried,
}

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

/// `base * 2^attempts`, capped at [`MAX_BACKOFF`]; `attempts` counts the failures before this
/// one, so the first retry waits `base`.
fn backoff(base: Duration, attempts: i32) -> Duration {
    let exponent = attempts.clamp(0, 30) as u32;
    let factor = 1i32.checked_shl(exponent).unwrap_or(i32::MAX);
    base.max(Duration::ZERO)
        .checked_mul(factor)
        .map_or(MAX_BACKOFF, |wait| wait.min(MAX_BACKOFF))
}

impl Shop {
    /// One relay round: claims up to `batch` due READY outbox rows under a lease, publishes
    /// them, and records the outcomes: SENT, or a retry after an exponential backoff, or
    /// FAILED after `outbox_max_attempts` (ERROR log + metric). Returns how many rows were
    /// published.
    ///
    /// No transaction is open while the broker is waited on: the claim and the outcomes are
    /// each one short transaction, and the lease (`outbox_lease`) keeps other relays off the
    /// rows in between. The round stops publishing at half its lease, so that its outcomes are
    /// recorded while the rows are still its own; a relay that stalls beyond its lease loses
    /// the rows to the next claim and its outcomes are then ignored.
    ///
    /// Delivery is at least once: a row whose outcome is not recorded (the relay died, or the
    /// outcomes could not be committed) stays READY and is published again once its lease
    /// expires; consumers de-duplicate on the event id.
    pub async fn relay_outbox_once(&self, batch: u32) -> Result<usize, ShopError> {
        let lease = self.config.outbox_lease;
        let claimed_at = self.now();
        let claim = {
            let mut tx = self.ports.store.begin().await?;
            let claim = tx
                .outbox()
                .claim_ready(claimed_at, claimed_at + lease, batch)
                .await?;
            tx.commit().await?;
            claim
        };
        if claim.events.is_empty() {
            return Ok(0);
        }
        let deadline = tokio::time::Instant::now() + (lease / 2_i32).unsigned_abs();
        // One aggregate's events go out in id order, one after the other (Kafka key = order id
        // keeps that order downstream); different aggregates are published concurrently, so a
        // batch costs about one broker round trip per event of the busiest aggregate instead of
        // one per row.
        let published = futures::future::join_all(
            by_aggregate(&claim.events)
                .into_iter()
                .map(|rows| self.publish_in_order(rows, deadline)),
        )
        .await;

        let now = self.now();
        let mut sent = 0;
        let mut outcomes = Vec::with_capacity(claim.events.len());
        for (row, result) in published.into_iter().flatten() {
            let outcome = match result {
                Published::Yes => {
                    sent += 1;
                    OutboxOutcome::Sent
                }
                Published::NotTried => OutboxOutcome::Untried,
                Published::No(error) => self.after_failed_publish(row, error, now),
            };
            outcomes.push((row.id, outcome));
        }
        let settled = {
            let mut tx = self.ports.store.begin().await?;
            let settled = tx.outbox().settle(claim.lease, now, &outcomes).await?;
            tx.commit().await?;
            settled
        };
        if settled < outcomes.len() {
            // Another relay claimed these rows after this round's lease ran out; its outcome
            // stands, and these rows were (or will be) published again: at least once.
            metrics::counter!("outbox_lease_lost_total")
                .increment((outcomes.len() - settled) as u64);
            tracing::warn!(
                claimed = outcomes.len(), settled, lease = ?lease,
                "outbox relay round outlived its lease; rows taken over by another relay"
            );
        }
        Ok(sent)
    }

    /// The outcome of a failed publish: a retry after a backoff, or FAILED once the retry
    /// budget is spent.
    fn after_failed_publish(
        &self,
        row: &OutboxEvent,
        error: String,
        now: OffsetDateTime,
    ) -> OutboxOutcome {
        let event_type = row.envelope.event_type.as_str();
        let attempts = row.attempts.saturating_add(1);
        if attempts >= self.config.outbox_max_attempts {
            metrics::counter!("outbox_failed_total", "event_type" => event_type).increment(1);
            tracing::error!(
                outbox = %row.id, event_id = %row.envelope.event_id, event_type,
                attempts, %error,
                "outbox event FAILED after its retry budget; an admin must re-drive it"
            );
            OutboxOutcome::Failed { error }
        } else {
            let next = now + backoff(self.config.outbox_base_backoff, row.attempts);
            tracing::warn!(
                outbox = %row.id, event_type, attempts, %error, next_attempt_at = %next,
                "outbox publish failed, backing off"
            );
            OutboxOutcome::Retry {
                error,
                next_attempt_at: next,
            }
        }
    }

    /// Publishes one aggregate's rows in order and stops at the first failure, or when
    /// `deadline` passes: the rows after it are not tried (released as they were, no attempt
    /// counted), so a later event of an order can never overtake an earlier one.
    async fn publish_in_order<'a>(
        &self,
        rows: Vec<&'a OutboxEvent>,
        deadline: tokio::time::Instant,
    ) -> Vec<(&'a OutboxEvent, Published)> {
        let mut outcomes = Vec::with_capacity(rows.len());
        let mut stopped = false;
        for row in rows {
            if stopped {
                outcomes.push((row, Published::NotTried));
                continue;
            }
            let publish = self.ports.publisher.publish(row.topic(), &row.envelope);
            let outcome = match tokio::time::timeout_at(deadline, publish).await {
                Ok(Ok(())) => {
                    metrics::counter!(
                        "outbox_published_total",
                        "event_type" => row.envelope.event_type.as_str()
                    )
                    .increment(1);
                    Published::Yes
                }
                Ok(Err(e)) => Published::No(e.to_string()),
                Err(_) => Published::No(
                    "no answer from the broker before the relay round's deadline".to_owned(),
                ),
            };
            stopped = !matches!(outcome, Published::Yes);
            outcomes.push((row, outcome));
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
