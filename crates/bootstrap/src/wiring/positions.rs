//! Kafka consumer positions kept in the store (PostgreSQL in production), next to the effects
//! they guard: rskafka has no consumer groups, so the service keeps its own offsets.
//!
//! With PostgreSQL, the partition claims of [`PositionStore::claim`] are session advisory locks
//! ([`persistence_diesel::AdvisoryLocks`], one dedicated connection per process), one per
//! consumer, topic and partition: with several service instances on one database each
//! partition is consumed by one instance at a time, and a crashed instance's partitions are
//! free as soon as its connection is gone. The runner confirms its claims every
//! `ConsumerOptions::claim_interval`; between a lost connection and that confirmation two
//! instances may both consume a partition, which the handlers' de-duplication on the event id
//! makes harmless. The in-memory store has a single process by definition: every claim is
//! granted.

use async_trait::async_trait;
use domain::ports::UnitOfWork;
use messaging_kafka::{PositionError, PositionStore};
use persistence_diesel::AdvisoryLocks;
use std::sync::Arc;

pub struct StorePositions {
    store: Arc<dyn UnitOfWork>,
    locks: Option<Arc<AdvisoryLocks>>,
}

impl StorePositions {
    /// Positions in `store`; every claim is granted (one process).
    pub fn new(store: Arc<dyn UnitOfWork>) -> Self {
        Self { store, locks: None }
    }

    /// Positions in `store`, partitions claimed through advisory locks on the same database.
    pub fn with_locks(store: Arc<dyn UnitOfWork>, locks: Arc<AdvisoryLocks>) -> Self {
        Self {
            store,
            locks: Some(locks),
        }
    }

    /// The advisory lock key of one consumer's partition: the same in every instance.
    pub fn claim_key(consumer: &str, topic: &str, partition: i32) -> i64 {
        AdvisoryLocks::key(&format!("kafka-consumer\0{consumer}\0{topic}\0{partition}"))
    }
}

fn position_error(e: impl std::fmt::Display) -> PositionError {
    PositionError(e.to_string())
}

#[async_trait]
impl PositionStore for StorePositions {
    async fn load(
        &self,
        consumer: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, PositionError> {
        let mut view = self.store.read().await.map_err(position_error)?;
        view.inbox()
            .position(consumer, topic, partition)
            .await
            .map_err(position_error)
    }

    async fn save(
        &self,
        consumer: &str,
        topic: &str,
        partition: i32,
        next_offset: i64,
    ) -> Result<(), PositionError> {
        let mut tx = self.store.begin().await.map_err(position_error)?;
        tx.inbox()
            .save_position(consumer, topic, partition, next_offset)
            .await
            .map_err(position_error)?;
        tx.commit().await.map_err(position_error)
    }

    async fn claim(
        &self,
        consumer: &str,
        topic: &str,
        partition: i32,
    ) -> Result<bool, PositionError> {
        let Some(locks) = &self.locks else {
            return Ok(true);
        };
        let claimed = locks
            .try_lock(Self::claim_key(consumer, topic, partition))
            .await
            .map_err(position_error);
        metrics::counter!("kafka_partition_claims_lost_total").absolute(locks.lost_total());
        claimed
    }

    async fn release(&self, consumer: &str, topic: &str, partition: i32) {
        let Some(locks) = &self.locks else {
            return;
        };
        if let Err(e) = locks
            .unlock(Self::claim_key(consumer, topic, partition))
            .await
        {
            // The lock went with the failed connection: released all the same.
            tracing::warn!(consumer, topic, partition, error = %e,
                "could not release the partition claim cleanly");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use persistence_diesel::test_db::FreshDatabase;
    use persistence_diesel::{PgConfig, PgStore};

    #[tokio::test]
    async fn the_memory_store_grants_every_claim() {
        let positions = StorePositions::new(Arc::new(memory::MemoryStore::new()));
        assert_eq!(positions.claim("c", "t", 0).await, Ok(true));
        assert_eq!(positions.claim("c", "t", 0).await, Ok(true));
        positions.release("c", "t", 0).await;
    }

    #[test]
    fn claim_keys_differ_per_consumer_topic_and_partition() {
        let keys = [
            StorePositions::claim_key("ranking-updater", "order.paid", 0),
            StorePositions::claim_key("ranking-updater", "order.paid", 1),
            StorePositions::claim_key("ranking-updater", "order.refunded", 0),
            StorePositions::claim_key("coupon-issuer", "order.paid", 0),
        ];
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
    }

    /// Two instances' position stores on one PostgreSQL database: a partition has one
    /// consumer at a time; releasing hands it over.
    #[tokio::test]
    async fn two_instances_on_postgres_share_partitions_one_at_a_time() {
        let db = FreshDatabase::new().await;
        let config = PgConfig::new(db.url.clone());
        let instance = || {
            let store = PgStore::new(&config).unwrap();
            StorePositions::with_locks(Arc::new(store), Arc::new(AdvisoryLocks::new(&config)))
        };
        let (a, b) = (instance(), instance());

        assert_eq!(a.claim("ranking-updater", "order.paid", 0).await, Ok(true));
        assert_eq!(b.claim("ranking-updater", "order.paid", 0).await, Ok(false));
        assert_eq!(b.claim("ranking-updater", "order.paid", 1).await, Ok(true));
        assert_eq!(a.claim("ranking-updater", "order.paid", 1).await, Ok(false));
        // Another consumer of the same partition is claimed on its own.
        assert_eq!(b.claim("coupon-issuer", "order.paid", 0).await, Ok(true));
        // Confirming a claim keeps it.
        assert_eq!(a.claim("ranking-updater", "order.paid", 0).await, Ok(true));

        a.save("ranking-updater", "order.paid", 0, 42)
            .await
            .unwrap();
        a.release("ranking-updater", "order.paid", 0).await;
        assert_eq!(b.claim("ranking-updater", "order.paid", 0).await, Ok(true));
        assert_eq!(
            b.load("ranking-updater", "order.paid", 0).await,
            Ok(Some(42)),
            "the next holder resumes where the last one stopped"
        );
        assert_eq!(a.claim("ranking-updater", "order.paid", 0).await, Ok(false));
    }
}
