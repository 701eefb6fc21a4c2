//! Background jobs: the outbox relay, the unpaid-order sweeper, and the event handlers
//! (ranking updater, data-platform forwarder, async coupon issuer). The bootstrap binary runs
//! them on timers; tests call the `*_once` functions directly.

use crate::{Shop, ShopError};

impl Shop {
    /// Publishes due READY outbox rows (claimed with skip-locked), marks them SENT, backs off
    /// exponentially on failure, FAILED after `outbox_max_attempts` (ERROR log + metric).
    /// Returns how many rows were published.
    pub async fn relay_outbox_once(&self, batch: u32) -> Result<usize, ShopError> {
        todo!("{batch}")
    }

    /// Cancels CREATED orders past their payment window (stock and coupon back).
    pub async fn expire_orders_once(&self, batch: u32) -> Result<usize, ShopError> {
        todo!("{batch}")
    }
}
