//! Wallet payments. An order has at most one `SUCCEEDED` payment; failed attempts are kept
//! for audit; a refund turns the succeeded payment into `REFUNDED`.

use crate::{OrderId, PaymentId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    Succeeded,
    Failed,
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Refunded => "REFUNDED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "SUCCEEDED" => Some(Self::Succeeded),
            "FAILED" => Some(Self::Failed),
            "REFUNDED" => Some(Self::Refunded),
            _ => None,
        }
    }
}

/// The only method today; kept as a field so the wire format can grow.
pub const WALLET_METHOD: &str = "WALLET";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub order_id: OrderId,
    pub user_id: UserId,
    pub amount: i64,
    pub status: PaymentStatus,
    /// Why an attempt failed (`INSUFFICIENT_BALANCE`); `None` for a success.
    pub failure_code: Option<String>,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPayment {
    pub order_id: OrderId,
    pub user_id: UserId,
    pub amount: i64,
    pub status: PaymentStatus,
    pub failure_code: Option<String>,
    pub created_at: OffsetDateTime,
}
