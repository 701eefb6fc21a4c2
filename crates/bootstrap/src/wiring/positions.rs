//! Kafka consumer positions kept in the store (PostgreSQL in production), next to the effects
//! they guard: rskafka has no consumer groups, so the service keeps its own offsets.

use async_trait::async_trait;
use domain::ports::UnitOfWork;
use messaging_kafka::{PositionError, PositionStore};
use std::sync::Arc;

pub struct StorePositions {
    store: Arc<dyn UnitOfWork>,
}

impl StorePositions {
    pub fn new(store: Arc<dyn UnitOfWork>) -> Self {
        Self { store }
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
}
