//! Operator views: the outbox and its re-drive.

use crate::{Actor, Shop, ShopError};
use domain::OutboxId;
use domain::outbox::{OutboxEvent, OutboxStatus};
use domain::page::{CursorPage, Slice};

impl Shop {
    /// ADMIN only (`Forbidden` otherwise).
    pub async fn outbox(
        &self,
        actor: Actor,
        status: Option<OutboxStatus>,
        page: CursorPage,
    ) -> Result<Slice<OutboxEvent>, ShopError> {
        todo!("{actor:?} {status:?} {page:?}")
    }

    /// FAILED → READY. Errors: `Forbidden`, `NotFound`, `InvalidOrderState`-like refusal is
    /// `Validation` ("only FAILED events can be retried").
    pub async fn retry_outbox(&self, actor: Actor, id: OutboxId) -> Result<OutboxEvent, ShopError> {
        todo!("{actor:?} {id}")
    }
}
