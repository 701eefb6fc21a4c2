//! Paying an order from the wallet.

use crate::{Actor, Shop, ShopError};
use domain::payment::Payment;
use domain::{OrderId, PaymentId};

impl Shop {
    /// One transaction: debit the wallet (PAYMENT row), SUCCEEDED payment, order PAID, daily
    /// sales roll-up, ORDER_PAID outbox event. On insufficient balance nothing of that happens;
    /// a FAILED payment is recorded for audit and the order stays CREATED.
    /// Errors: `NotFound`, `OrderNotPayable`, `InsufficientBalance`.
    pub async fn pay(&self, actor: Actor, order_id: OrderId) -> Result<Payment, ShopError> {
        todo!("{actor:?} {order_id}")
    }

    pub async fn get_payment(&self, actor: Actor, id: PaymentId) -> Result<Payment, ShopError> {
        todo!("{actor:?} {id}")
    }
}
