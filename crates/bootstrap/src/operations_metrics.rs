//! Gauges an operator alerts on that no request updates: what waits in the outbox, the
//! PostgreSQL pool, the partition claims held. Sampled by a worker every
//! [`SAMPLE_INTERVAL`]; every instance reports the same outbox figures (alerts take `max`).
//!
//! | metric | meaning |
//! |---|---|
//! | `outbox_ready_events` | events not yet published |
//! | `outbox_oldest_ready_age_seconds` | age of the oldest of them (0 when none) |
//! | `outbox_failed_events` | events the relay gave up on (an admin re-drives them) |
//! | `db_pool_connections{state="in_use"\|"idle"}`, `db_pool_max_connections` | the pool (PostgreSQL profile) |
//! | `db_pool_waiting_requests` | requests waiting for a connection |
//! | `kafka_partition_claims_held` | partitions this instance consumes (Kafka on PostgreSQL) |

use crate::wiring::Samplers;
use application::{Shop, ShopError};
use std::time::Duration;

/// How often the gauges are refreshed: well inside a scrape interval.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// Creates, at 0, the counters the alert rules take a rate of, so that a rule sees 0 rather
/// than no series before the first event (an absent series never fires, nor resolves).
pub fn register_series() {
    for name in [
        "outbox_lease_lost_total",
        "data_platform_rejected_total",
        "kafka_partition_claims_lost_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    for budget in ["user", "sign_up", "failed_authentication"] {
        metrics::counter!("http_rate_limited_total", "budget" => budget).increment(0);
    }
    crate::wiring::MeteredGate::register_series();
}

/// One round: sets every gauge it can read now. The outbox needs the store; a failure leaves
/// the previous values (and is logged by the worker).
pub async fn sample(shop: &Shop, samplers: &Samplers) -> Result<(), ShopError> {
    if let Some(pool) = &samplers.pool {
        let status = pool.pool_status();
        let idle = status.available;
        metrics::gauge!("db_pool_connections", "state" => "in_use")
            .set(status.size.saturating_sub(idle) as f64);
        metrics::gauge!("db_pool_connections", "state" => "idle").set(idle as f64);
        metrics::gauge!("db_pool_max_connections").set(status.max_size as f64);
        metrics::gauge!("db_pool_waiting_requests").set(status.waiting as f64);
    }
    if let Some(held) = samplers.claims.as_ref().and_then(|c| c.held_now()) {
        metrics::gauge!("kafka_partition_claims_held").set(held as f64);
    }
    let backlog = shop.outbox_backlog().await?;
    metrics::gauge!("outbox_ready_events").set(backlog.ready as f64);
    metrics::gauge!("outbox_failed_events").set(backlog.failed as f64);
    let age = backlog.oldest_ready.map_or(0.0, |oldest| {
        (shop.ports().clock.now() - oldest)
            .as_seconds_f64()
            .max(0.0)
    });
    metrics::gauge!("outbox_oldest_ready_age_seconds").set(age);
    Ok(())
}
