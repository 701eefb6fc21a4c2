//! Placing, reading and canceling orders (refund when paid).

use crate::{Actor, Shop, ShopError};
use domain::order::{Order, OrderLine, OrderStatus};
use domain::page::{CursorPage, Slice};
use domain::{CouponIssueId, OrderId};

impl Shop {
    /// One transaction: validate lines, reserve stock for every line in ascending product id
    /// order (all or nothing), snapshot names and prices, apply the coupon (USED), price.
    /// Errors: `Validation`, `NotFound` (product or coupon issue), `ProductNotOnSale`,
    /// `OutOfStock`, `CouponNotApplicable`.
    pub async fn place_order(
        &self,
        actor: Actor,
        lines: Vec<OrderLine>,
        coupon_issue_id: Option<CouponIssueId>,
    ) -> Result<Order, ShopError> {
        todo!("{actor:?} {lines:?} {coupon_issue_id:?}")
    }

    pub async fn get_order(&self, actor: Actor, id: OrderId) -> Result<Order, ShopError> {
        todo!("{actor:?} {id}")
    }

    pub async fn list_orders(
        &self,
        actor: Actor,
        status: Option<OrderStatus>,
        page: CursorPage,
    ) -> Result<Slice<Order>, ShopError> {
        todo!("{actor:?} {status:?} {page:?}")
    }

    /// CREATED → CANCELED; PAID → REFUNDED (wallet REFUND, sales roll-up down, payment
    /// REFUNDED, ORDER_REFUNDED outbox event). Errors: `NotFound`, `InvalidOrderState`.
    pub async fn cancel_order(&self, actor: Actor, id: OrderId) -> Result<Order, ShopError> {
        todo!("{actor:?} {id}")
    }
}
