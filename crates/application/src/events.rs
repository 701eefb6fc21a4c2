//! The payloads of EVENTS.md as types, so that the producers (pay, refund, async issuance) and
//! the consumers ([`crate::handlers`]) cannot drift apart.
//!
//! Field names and shapes are the wire contract: `{orderId, userId, paymentId, items:
//! [{productId, quantity, unitPrice}], subtotal, discount, totalAmount, paidAt}` and so on,
//! timestamps as RFC 3339 in UTC.

use crate::ShopError;
use domain::order::{Order, OrderItem};
use domain::outbox::{EventEnvelope, EventType};
use domain::{CouponId, OrderId, PaymentId, ProductId, UserId};
use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, UtcOffset};

/// The aggregate type of every order event.
pub const ORDER_AGGREGATE: &str = "ORDER";
/// The aggregate type of an asynchronous coupon issue request.
pub const COUPON_AGGREGATE: &str = "COUPON";

/// One order line as events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventItem {
    pub product_id: ProductId,
    pub quantity: i64,
    pub unit_price: i64,
}

impl From<&OrderItem> for EventItem {
    fn from(item: &OrderItem) -> Self {
        Self {
            product_id: item.product_id,
            quantity: item.quantity,
            unit_price: item.unit_price,
        }
    }
}

/// `ORDER_PAID` on `order.paid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderPaid {
    pub order_id: OrderId,
    pub user_id: UserId,
    pub payment_id: PaymentId,
    pub items: Vec<EventItem>,
    pub subtotal: i64,
    pub discount: i64,
    pub total_amount: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub paid_at: OffsetDateTime,
}

/// `ORDER_REFUNDED` on `order.refunded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRefunded {
    pub order_id: OrderId,
    pub user_id: UserId,
    pub payment_id: PaymentId,
    pub items: Vec<EventItem>,
    pub total_amount: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub refunded_at: OffsetDateTime,
}

/// `COUPON_ISSUE_REQUESTED` on `coupon.issue.requested` (asynchronous issuance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CouponIssueRequested {
    pub request_id: String,
    pub coupon_id: CouponId,
    pub user_id: UserId,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
}

impl OrderPaid {
    pub fn new(order: &Order, payment_id: PaymentId, paid_at: OffsetDateTime) -> Self {
        Self {
            order_id: order.id,
            user_id: order.user_id,
            payment_id,
            items: order.items.iter().map(EventItem::from).collect(),
            subtotal: order.subtotal,
            discount: order.discount,
            total_amount: order.total_amount,
            paid_at: utc(paid_at),
        }
    }
}

impl OrderRefunded {
    pub fn new(order: &Order, payment_id: PaymentId, refunded_at: OffsetDateTime) -> Self {
        Self {
            order_id: order.id,
            user_id: order.user_id,
            payment_id,
            items: order.items.iter().map(EventItem::from).collect(),
            total_amount: order.total_amount,
            refunded_at: utc(refunded_at),
        }
    }
}

/// RFC 3339 timestamps on the wire are in UTC (`...Z`), whatever offset the clock used.
fn utc(at: OffsetDateTime) -> OffsetDateTime {
    at.to_offset(UtcOffset::UTC)
}

/// Wraps a payload into the envelope of EVENTS.md with a fresh UUID v4 event id.
pub fn envelope<P: Serialize>(
    event_type: EventType,
    aggregate_type: &str,
    aggregate_id: impl ToString,
    payload: &P,
    occurred_at: OffsetDateTime,
) -> Result<EventEnvelope, ShopError> {
    let payload = serde_json::to_value(payload)
        .map_err(|e| ShopError::Internal(format!("cannot encode {event_type:?}: {e}")))?;
    Ok(EventEnvelope {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_type,
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id: aggregate_id.to_string(),
        occurred_at: utc(occurred_at),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::order::OrderStatus;
    use time::macros::datetime;

    fn order() -> Order {
        Order {
            id: OrderId(42),
            user_id: UserId(7),
            status: OrderStatus::Paid,
            items: vec![OrderItem {
                product_id: ProductId(3),
                seller_id: UserId(2),
                name: "Tea".into(),
                unit_price: 1_500,
                quantity: 2,
                subtotal: 3_000,
            }],
            subtotal: 3_000,
            discount: 300,
            total_amount: 2_700,
            coupon_issue_id: None,
            created_at: datetime!(2026-11-21 09:00 UTC),
            expires_at: datetime!(2026-11-21 09:15 UTC),
            paid_at: None,
            canceled_at: None,
        }
    }

    #[test]
    fn order_paid_payload_has_exactly_the_fields_of_events_md() {
        let at = datetime!(2026-11-21 18:30 +09:00);
        let env = envelope(
            EventType::OrderPaid,
            ORDER_AGGREGATE,
            OrderId(42),
            &OrderPaid::new(&order(), PaymentId(5), at),
            at,
        )
        .unwrap();
        assert_eq!(
            env.payload,
            serde_json::json!({
                "orderId": 42, "userId": 7, "paymentId": 5,
                "items": [{"productId": 3, "quantity": 2, "unitPrice": 1500}],
                "subtotal": 3000, "discount": 300, "totalAmount": 2700,
                "paidAt": "2026-11-21T09:30:00Z"
            })
        );
        assert_eq!(env.aggregate_id, "42");
        assert_eq!(env.aggregate_type, "ORDER");
        assert_eq!(env.occurred_at, datetime!(2026-11-21 09:30 UTC));
        assert!(uuid::Uuid::parse_str(&env.event_id).is_ok());
        let back: OrderPaid = serde_json::from_value(env.payload).unwrap();
        assert_eq!(back.paid_at, at);
    }

    #[test]
    fn order_refunded_payload_has_exactly_the_fields_of_events_md() {
        let at = datetime!(2026-11-21 09:30 UTC);
        let value = serde_json::to_value(OrderRefunded::new(&order(), PaymentId(5), at)).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "orderId": 42, "userId": 7, "paymentId": 5,
                "items": [{"productId": 3, "quantity": 2, "unitPrice": 1500}],
                "totalAmount": 2700, "refundedAt": "2026-11-21T09:30:00Z"
            })
        );
    }
}
