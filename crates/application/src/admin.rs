//! Operator views: the outbox and its re-drive.

use crate::idempotency::{Keyed, record_answer};
use crate::support::check_cursor;
use crate::{Actor, Shop, ShopError};
use domain::OutboxId;
use domain::outbox::{OutboxBacklog, OutboxEvent, OutboxStatus};
use domain::page::{CursorPage, Slice};
use domain::ports::OutboxRetry;

fn require_admin(actor: Actor) -> Result<(), ShopError> {
    if actor.is_admin() {
        Ok(())
    } else {
        Err(ShopError::Forbidden(
            "only admins may manage the outbox".into(),
        ))
    }
}

impl Shop {
    /// What waits in the outbox, for the process's own metrics (no caller to authorise).
    pub async fn outbox_backlog(&self) -> Result<OutboxBacklog, ShopError> {
        let mut tx = self.ports.store.read().await?;
        Ok(tx.outbox().backlog().await?)
    }

    /// ADMIN only (`Forbidden` otherwise).
    pub async fn outbox(
        &self,
        actor: Actor,
        status: Option<OutboxStatus>,
        page: CursorPage,
    ) -> Result<Slice<OutboxEvent>, ShopError> {
        require_admin(actor)?;
        let page = check_cursor(page)?;
        let mut tx = self.ports.store.read().await?;
        Ok(tx.outbox().list(status, page).await?)
    }

    /// FAILED → READY. Errors: `Forbidden`, `NotFound`, `OutboxEventNotFailed` (the event is
    /// READY or SENT: a conflict with its state, not a malformed request).
    /// With `keyed`, the answer is stored in the re-drive's transaction.
    pub async fn retry_outbox(
        &self,
        actor: Actor,
        id: OutboxId,
        keyed: Option<&Keyed<OutboxEvent>>,
    ) -> Result<OutboxEvent, ShopError> {
        require_admin(actor)?;
        let now = self.now();
        let mut tx = self.ports.store.begin().await?;
        match tx.outbox().retry(id, now).await? {
            OutboxRetry::Requeued(event) => {
                record_answer(tx.as_mut(), keyed, &event, now).await?;
                tx.commit().await?;
                tracing::info!(outbox = %id, admin = %actor.user_id, "outbox event re-driven");
                Ok(*event)
            }
            OutboxRetry::NotFailed(status) => Err(ShopError::OutboxEventNotFailed(format!(
                "only FAILED events can be retried; outbox event {id} is {}",
                status.as_str()
            ))),
            OutboxRetry::NotFound => Err(ShopError::not_found("outbox event", id)),
        }
    }
}
