//! Orders: pricing (items, coupon, totals) and the state machine.
//!
//! ```text
//! CREATED ──pay──▶ PAID ──cancel──▶ REFUNDED
//!    │
//!    └──cancel / payment TTL──▶ CANCELED
//! ```
//! Final states are final. The store changes a status only if it is still the one the use case
//! read (a compare-and-set), so races between pay, cancel and expiry have exactly one winner.

use crate::coupon::Coupon;
use crate::product::{FieldError, Product, ProductStatus};
use crate::{CouponIssueId, OrderId, ProductId, UserId};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use time::OffsetDateTime;

pub const MAX_ORDER_ITEMS: usize = 50;
pub const MAX_ITEM_QUANTITY: i64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Created,
    Paid,
    Canceled,
    Refunded,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "CREATED",
            Self::Paid => "PAID",
            Self::Canceled => "CANCELED",
            Self::Refunded => "REFUNDED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "CREATED" => Some(Self::Created),
            "PAID" => Some(Self::Paid),
            "CANCELED" => Some(Self::Canceled),
            "REFUNDED" => Some(Self::Refunded),
            _ => None,
        }
    }
}

/// A snapshot of what was bought: name and price as they were when the order was placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderItem {
    pub product_id: ProductId,
    pub seller_id: UserId,
    pub name: String,
    pub unit_price: i64,
    pub quantity: i64,
    pub subtotal: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub user_id: UserId,
    pub status: OrderStatus,
    pub items: Vec<OrderItem>,
    pub subtotal: i64,
    pub discount: i64,
    pub total_amount: i64,
    pub coupon_issue_id: Option<CouponIssueId>,
    pub created_at: OffsetDateTime,
    /// An unpaid order is canceled automatically at this instant.
    pub expires_at: OffsetDateTime,
    pub paid_at: Option<OffsetDateTime>,
    /// When it was canceled or refunded.
    pub canceled_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OrderStateError {
    #[error("order {0} is {1:?} and cannot be paid")]
    NotPayable(OrderId, OrderStatus),
    #[error("order {0} is {1:?} and cannot be canceled")]
    InvalidState(OrderId, OrderStatus),
}

/// What canceling an order means given its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelKind {
    /// CREATED → CANCELED: stock and coupon back.
    Cancel,
    /// PAID → REFUNDED: stock and coupon back, wallet credited, sales roll-up decreased.
    Refund,
}

impl CancelKind {
    pub fn target(self) -> OrderStatus {
        match self {
            Self::Cancel => OrderStatus::Canceled,
            Self::Refund => OrderStatus::Refunded,
        }
    }
}

impl Order {
    /// Only a CREATED order whose payment window is still open can be paid.
    pub fn check_payable(&self, now: OffsetDateTime) -> Result<(), OrderStateError> {
        if self.status == OrderStatus::Created && now < self.expires_at {
            Ok(())
        } else {
            Err(OrderStateError::NotPayable(self.id, self.status))
        }
    }

    pub fn cancel_kind(&self) -> Result<CancelKind, OrderStateError> {
        match self.status {
            OrderStatus::Created => Ok(CancelKind::Cancel),
            OrderStatus::Paid => Ok(CancelKind::Refund),
            other => Err(OrderStateError::InvalidState(self.id, other)),
        }
    }

    /// Unpaid past its payment window: the expiry sweeper cancels it.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.status == OrderStatus::Created && now >= self.expires_at
    }
}

/// One requested line, as the client sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderLine {
    pub product_id: ProductId,
    pub quantity: i64,
}

/// Checks the shape of an order request: 1..=50 lines, each product once, quantity 1..=1000.
pub fn validate_lines(lines: &[OrderLine]) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if lines.is_empty() || lines.len() > MAX_ORDER_ITEMS {
        errors.push(FieldError::new(
            "items",
            format!("must hold 1 to {MAX_ORDER_ITEMS} items"),
        ));
    }
    let mut seen = HashSet::new();
    for (i, line) in lines.iter().enumerate() {
        if line.product_id.0 <= 0 {
            errors.push(FieldError::new(
                format!("items[{i}].productId"),
                "must be a positive id",
            ));
        }
        if !(1..=MAX_ITEM_QUANTITY).contains(&line.quantity) {
            errors.push(FieldError::new(
                format!("items[{i}].quantity"),
                format!("must be between 1 and {MAX_ITEM_QUANTITY}"),
            ));
        }
        if !seen.insert(line.product_id) {
            errors.push(FieldError::new(
                format!("items[{i}].productId"),
                "each product may appear only once",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("product {0} is not on sale")]
    NotOnSale(ProductId),
    #[error("coupon does not apply: {0}")]
    CouponNotApplicable(String),
}

/// The priced order, before the store assigns ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pricing {
    pub items: Vec<OrderItem>,
    pub subtotal: i64,
    pub discount: i64,
    pub total_amount: i64,
}

/// Prices `lines` against the current `products` (same order, same length) and an optional
/// coupon. A seller's coupon discounts only that seller's items; `min_order_amount` is compared
/// to the eligible subtotal; the total never goes below 0.
pub fn price_order(
    lines: &[(OrderLine, &Product)],
    coupon: Option<&Coupon>,
) -> Result<Pricing, PricingError> {
    let mut items = Vec::with_capacity(lines.len());
    let mut subtotal = 0i64;
    for (line, product) in lines {
        if product.status != ProductStatus::OnSale {
            return Err(PricingError::NotOnSale(product.id));
        }
        // Within `MAX_PRICE` x `MAX_ITEM_QUANTITY` x `MAX_ORDER_ITEMS` nothing overflows; the
        // saturating forms keep pricing total for lines that skipped `validate_lines`.
        let item_subtotal = product.price.saturating_mul(line.quantity);
        subtotal = subtotal.saturating_add(item_subtotal);
        items.push(OrderItem {
            product_id: product.id,
            seller_id: product.seller_id,
            name: product.name.clone(),
            unit_price: product.price,
            quantity: line.quantity,
            subtotal: item_subtotal,
        });
    }
    let discount = match coupon {
        None => 0,
        Some(coupon) => {
            let eligible: i64 = items
                .iter()
                .filter(|item| coupon.covers_seller(item.seller_id))
                .fold(0i64, |sum, item| sum.saturating_add(item.subtotal));
            if eligible == 0 {
                return Err(PricingError::CouponNotApplicable(
                    "no item in the order is covered by the coupon".into(),
                ));
            }
            if eligible < coupon.min_order_amount {
                return Err(PricingError::CouponNotApplicable(format!(
                    "eligible subtotal {eligible} is below the minimum of {}",
                    coupon.min_order_amount
                )));
            }
            coupon.discount.apply_to(eligible)
        }
    };
    Ok(Pricing {
        items,
        subtotal,
        discount,
        total_amount: subtotal.saturating_sub(discount).max(0),
    })
}

/// A priced order ready to be stored. The use case reserves its stock through
/// `ProductRepository::change_stock` in the same transaction; `insert` only writes the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub user_id: UserId,
    pub items: Vec<OrderItem>,
    pub subtotal: i64,
    pub discount: i64,
    pub total_amount: i64,
    pub coupon_issue_id: Option<CouponIssueId>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CouponId;
    use crate::coupon::{CouponScope, Discount};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-21 09:30 UTC);

    fn product(id: i64, seller: i64, price: i64) -> Product {
        Product {
            id: ProductId(id),
            seller_id: UserId(seller),
            name: format!("p{id}"),
            price,
            stock: 10,
            status: ProductStatus::OnSale,
            created_at: NOW,
            updated_at: NOW,
        }
    }

    fn coupon(scope: CouponScope, discount: Discount, min: i64) -> Coupon {
        Coupon {
            id: CouponId(1),
            seller_id: UserId(1),
            scope,
            name: "c".into(),
            discount,
            min_order_amount: min,
            total_quantity: 10,
            issued_quantity: 1,
            per_user_limit: 1,
            starts_at: NOW,
            expires_at: NOW + time::Duration::DAY,
            created_at: NOW,
        }
    }

    fn line(id: i64, quantity: i64) -> OrderLine {
        OrderLine {
            product_id: ProductId(id),
            quantity,
        }
    }

    #[test]
    fn seller_coupon_discounts_only_that_sellers_items() {
        let (a, b) = (product(1, 1, 10_000), product(2, 2, 5_000));
        let lines = [(line(1, 2), &a), (line(2, 1), &b)];
        let c = coupon(
            CouponScope::Seller(UserId(1)),
            Discount::Percent {
                percent: 10,
                max_discount: None,
            },
            0,
        );
        let priced = price_order(&lines, Some(&c)).unwrap();
        assert_eq!(priced.subtotal, 25_000);
        assert_eq!(priced.discount, 2_000);
        assert_eq!(priced.total_amount, 23_000);
    }

    #[test]
    fn store_coupon_discounts_the_whole_order_and_total_never_negative() {
        let a = product(1, 1, 1_000);
        let c = coupon(CouponScope::Store, Discount::Amount(5_000), 0);
        let priced = price_order(&[(line(1, 1), &a)], Some(&c)).unwrap();
        assert_eq!((priced.discount, priced.total_amount), (1_000, 0));
    }

    #[test]
    fn minimum_is_compared_to_the_eligible_subtotal() {
        let (a, b) = (product(1, 1, 1_000), product(2, 2, 50_000));
        let c = coupon(CouponScope::Seller(UserId(1)), Discount::Amount(500), 2_000);
        let err = price_order(&[(line(1, 1), &a), (line(2, 1), &b)], Some(&c)).unwrap_err();
        assert!(matches!(err, PricingError::CouponNotApplicable(_)));
        let other = coupon(CouponScope::Seller(UserId(3)), Discount::Amount(500), 0);
        assert!(price_order(&[(line(1, 1), &a)], Some(&other)).is_err());
    }

    #[test]
    fn paused_products_cannot_be_ordered() {
        let mut a = product(1, 1, 1_000);
        a.status = ProductStatus::Paused;
        assert_eq!(
            price_order(&[(line(1, 1), &a)], None),
            Err(PricingError::NotOnSale(ProductId(1)))
        );
    }

    #[test]
    fn lines_are_validated() {
        assert!(validate_lines(&[]).is_err());
        assert!(validate_lines(&[line(1, 1), line(1, 2)]).is_err());
        assert!(validate_lines(&[line(1, 0)]).is_err());
        assert!(validate_lines(&[line(1, 1001)]).is_err());
        assert!(validate_lines(&[line(1, 1000), line(2, 1)]).is_ok());
        let many: Vec<_> = (1..=51).map(|i| line(i, 1)).collect();
        assert!(validate_lines(&many).is_err());
    }

    #[test]
    fn state_machine() {
        let mut order = Order {
            id: OrderId(1),
            user_id: UserId(1),
            status: OrderStatus::Created,
            items: vec![],
            subtotal: 0,
            discount: 0,
            total_amount: 0,
            coupon_issue_id: None,
            created_at: NOW,
            expires_at: NOW + time::Duration::MINUTE,
            paid_at: None,
            canceled_at: None,
        };
        assert!(order.check_payable(NOW).is_ok());
        assert!(order.check_payable(order.expires_at).is_err());
        assert!(order.is_expired(order.expires_at));
        assert_eq!(order.cancel_kind(), Ok(CancelKind::Cancel));
        order.status = OrderStatus::Paid;
        assert!(order.check_payable(NOW).is_err());
        assert_eq!(order.cancel_kind(), Ok(CancelKind::Refund));
        for s in [OrderStatus::Canceled, OrderStatus::Refunded] {
            order.status = s;
            assert!(order.cancel_kind().is_err());
            assert!(order.check_payable(NOW).is_err());
        }
    }
}
