//! Typed ids: a `ProductId` can never be passed where an `OrderId` is expected.
//!
//! Ids are positive 64-bit integers assigned by the store (JSON numbers on the wire).

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<i64> for $name {
            fn from(raw: i64) -> Self {
                Self(raw)
            }
        }
    )*};
}

id_type!(
    /// A user of any role.
    UserId,
    /// A catalog product.
    ProductId,
    /// A coupon policy published by a seller or an admin.
    CouponId,
    /// One coupon handed to one user.
    CouponIssueId,
    /// An order.
    OrderId,
    /// One line of an order.
    OrderItemId,
    /// A payment attempt.
    PaymentId,
    /// A wallet transaction (charge, payment, refund).
    WalletTransactionId,
    /// A stock ledger row.
    StockLedgerId,
    /// An outbox row.
    OutboxId,
);
