//! Placing, reading and canceling orders (refund when paid).
//!
//! Cancel, refund and the expiry sweeper share the private steps at the bottom of this module:
//! each takes the open transaction, so one order's effects (status, stock, coupon, wallet,
//! payment, sales, outbox) are committed together or not at all.

use crate::catalog::stock_error;
use crate::events::{ORDER_AGGREGATE, OrderRefunded, envelope};
use crate::idempotency::{Keyed, record_answer};
use crate::support::{AttemptError, check_cursor, retry_on_conflict};
use crate::wallet::wallet_error;
use crate::{Actor, Shop, ShopError};
use domain::coupon::{Coupon, CouponIssueStatus, WindowError};
use domain::order::{
    CancelKind, NewOrder, Order, OrderLine, OrderStatus, PricingError, price_order, validate_lines,
};
use domain::outbox::EventType;
use domain::page::{CursorPage, Slice};
use domain::ports::{StockChangeError, Transaction, WalletChange};
use domain::product::{Product, StockChange, StockReason};
use domain::sales::{BusinessCalendar, ProductSales};
use domain::wallet::WalletTransactionType;
use domain::{CouponIssueId, OrderId, ProductId};
use std::collections::HashMap;
use time::OffsetDateTime;

impl Shop {
    /// One transaction: validate lines, reserve stock for every line in ascending product id
    /// order (all or nothing), snapshot names and prices, apply the coupon (USED), price.
    /// Errors: `Validation`, `NotFound` (product), `ProductNotOnSale`, `OutOfStock`,
    /// `CouponNotApplicable` (coupon issue missing, not the caller's, used, or outside its
    /// window, or the order does not qualify).
    #[tracing::instrument(skip_all, fields(user = %actor.user_id))]
    pub async fn place_order(
        &self,
        actor: Actor,
        lines: Vec<OrderLine>,
        coupon_issue_id: Option<CouponIssueId>,
        keyed: Option<&Keyed<Order>>,
    ) -> Result<Order, ShopError> {
        validate_lines(&lines).map_err(ShopError::Validation)?;
        let _changes_catalog = self.caches.catalog_write();
        let order = retry_on_conflict("place_order", || {
            self.place_order_attempt(actor, &lines, coupon_issue_id, keyed)
        })
        .await?;
        metrics::counter!("orders_placed_total").increment(1);
        tracing::info!(order = %order.id, total = order.total_amount, "order placed");
        Ok(order)
    }

    async fn place_order_attempt(
        &self,
        actor: Actor,
        lines: &[OrderLine],
        coupon_issue_id: Option<CouponIssueId>,
        keyed: Option<&Keyed<Order>>,
    ) -> Result<Order, AttemptError> {
        let now = self.now();
        let mut tx = self.ports.store.begin().await?;
        let ids: Vec<ProductId> = lines.iter().map(|l| l.product_id).collect();
        let products: HashMap<ProductId, Product> = tx
            .products()
            .get_many(&ids)
            .await?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        let priced_lines = lines
            .iter()
            .map(|line| {
                products
                    .get(&line.product_id)
                    .map(|product| (*line, product))
                    .ok_or_else(|| ShopError::not_found("product", line.product_id))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let coupon = match coupon_issue_id {
            Some(issue) => Some(usable_coupon(tx.as_mut(), actor, issue, now).await?),
            None => None,
        };
        let pricing = price_order(&priced_lines, coupon.as_ref()).map_err(pricing_error)?;
        refuse_if_short(lines, &products)?;
        // The order row goes first so that every ledger row and the coupon can name it; a
        // refusal below drops the transaction and with it the order.
        let order = tx
            .orders()
            .insert(NewOrder {
                user_id: actor.user_id,
                items: pricing.items,
                subtotal: pricing.subtotal,
                discount: pricing.discount,
                total_amount: pricing.total_amount,
                coupon_issue_id,
                created_at: now,
                expires_at: now + self.config.payment_ttl,
            })
            .await?;
        move_stock(tx.as_mut(), &order, StockReason::Order, now).await?;
        if let Some(issue) = coupon_issue_id {
            // Conditional ISSUED → USED: of two orders racing for one coupon, one gets it.
            tx.coupons()
                .use_issue(issue, order.id, now)
                .await?
                .ok_or_else(|| {
                    ShopError::CouponNotApplicable(format!("coupon issue {issue} is already used"))
                })?;
        }
        record_answer(tx.as_mut(), keyed, &order, now).await?;
        tx.commit().await?;
        Ok(order)
    }

    /// The owner or an admin; anyone else gets `NotFound`.
    pub async fn get_order(&self, actor: Actor, id: OrderId) -> Result<Order, ShopError> {
        let mut tx = self.ports.store.read().await?;
        Ok(visible_order(tx.as_mut(), actor, id).await?)
    }

    /// The caller's own orders, newest first.
    pub async fn list_orders(
        &self,
        actor: Actor,
        status: Option<OrderStatus>,
        page: CursorPage,
    ) -> Result<Slice<Order>, ShopError> {
        let page = check_cursor(page)?;
        let mut tx = self.ports.store.read().await?;
        Ok(tx
            .orders()
            .list_for_user(actor.user_id, status, page)
            .await?)
    }

    /// CREATED → CANCELED; PAID → REFUNDED (wallet REFUND, sales roll-up down, payment
    /// REFUNDED, ORDER_REFUNDED outbox event). The owner or an admin.
    /// Errors: `NotFound`, `InvalidOrderState` (already final, or a concurrent pay/cancel/expiry
    /// changed the order first).
    #[tracing::instrument(skip_all, fields(user = %actor.user_id, order = %id))]
    pub async fn cancel_order(
        &self,
        actor: Actor,
        id: OrderId,
        keyed: Option<&Keyed<Order>>,
    ) -> Result<Order, ShopError> {
        let _changes_catalog = self.caches.catalog_write();
        let order =
            retry_on_conflict("cancel_order", || self.cancel_attempt(actor, id, keyed)).await?;
        let outcome = if order.status == OrderStatus::Refunded {
            "refunded"
        } else {
            "canceled"
        };
        metrics::counter!("orders_canceled_total", "outcome" => outcome).increment(1);
        tracing::info!(status = order.status.as_str(), "order canceled");
        Ok(order)
    }

    async fn cancel_attempt(
        &self,
        actor: Actor,
        id: OrderId,
        keyed: Option<&Keyed<Order>>,
    ) -> Result<Order, AttemptError> {
        let now = self.now();
        let mut tx = self.ports.store.begin().await?;
        let order = visible_order(tx.as_mut(), actor, id).await?;
        let kind = order.cancel_kind().map_err(|_| {
            ShopError::InvalidOrderState(format!(
                "order {id} is {} and cannot be canceled",
                order.status.as_str()
            ))
        })?;
        let done = match kind {
            CancelKind::Cancel => cancel_unpaid(tx.as_mut(), &order, now).await?,
            CancelKind::Refund => {
                refund_paid(tx.as_mut(), &order, &self.config.calendar, now).await?
            }
        };
        // `None`: the status changed between the read and the compare-and-set; the winner of
        // that race (pay, expiry or another cancel) stands and this request changed nothing.
        let done = done.ok_or_else(|| {
            ShopError::InvalidOrderState(format!(
                "order {id} was changed by a concurrent request; read it again"
            ))
        })?;
        record_answer(tx.as_mut(), keyed, &done, now).await?;
        tx.commit().await?;
        Ok(done)
    }
}

/// An order the actor may see; others' orders look exactly like missing ones.
async fn visible_order(
    tx: &mut dyn Transaction,
    actor: Actor,
    id: OrderId,
) -> Result<Order, AttemptError> {
    tx.orders()
        .get(id)
        .await?
        .filter(|order| actor.can_see(order.user_id))
        .ok_or_else(|| ShopError::not_found("order", id).into())
}

/// The coupon behind `issue` if the actor may apply it now. Missing and someone else's issues
/// get the same answer, so that the request reveals nothing about other users' coupons.
async fn usable_coupon(
    tx: &mut dyn Transaction,
    actor: Actor,
    issue_id: CouponIssueId,
    now: OffsetDateTime,
) -> Result<Coupon, AttemptError> {
    let not_applicable =
        |why: &str| ShopError::CouponNotApplicable(format!("coupon issue {issue_id} {why}"));
    let issue = tx
        .coupons()
        .get_issue(issue_id)
        .await?
        .filter(|issue| issue.user_id == actor.user_id)
        .ok_or_else(|| not_applicable("is not one of your coupons"))?;
    if issue.status != CouponIssueStatus::Issued {
        return Err(not_applicable("is already used").into());
    }
    let coupon = tx.coupons().get(issue.coupon_id).await?.ok_or_else(|| {
        ShopError::Internal(format!(
            "coupon issue {issue_id} has no coupon {}",
            issue.coupon_id
        ))
    })?;
    match coupon.check_window(now) {
        Ok(()) => Ok(coupon),
        Err(WindowError::NotStarted) => Err(not_applicable("is not valid yet").into()),
        Err(WindowError::Expired) => Err(not_applicable("has expired").into()),
    }
}

fn pricing_error(e: PricingError) -> AttemptError {
    match e {
        PricingError::NotOnSale(id) => {
            ShopError::ProductNotOnSale(format!("product {id} is not on sale")).into()
        }
        PricingError::CouponNotApplicable(why) => ShopError::CouponNotApplicable(why).into(),
    }
}

/// Reserves (`ORDER`, negative) or returns (`CANCEL`, positive) the stock of every line, in
/// ascending product id order: concurrent orders lock product rows in the same order and so
/// never deadlock.
/// Refuses an order that the stock just read cannot serve, before anything is written or
/// locked. The read is of committed rows inside this transaction, so the refusal is exactly the
/// one the locking path would give at that moment; what it saves is the order insert and the
/// wait on the product row, which in a burst for one product (thousands of refusals queued on
/// one hot row) is most of the cost. Lines of one product are added up; products are checked
/// in ascending id order, as `move_stock` takes them.
fn refuse_if_short(
    lines: &[OrderLine],
    products: &HashMap<ProductId, Product>,
) -> Result<(), AttemptError> {
    let mut wanted: std::collections::BTreeMap<ProductId, i64> = Default::default();
    for line in lines {
        *wanted.entry(line.product_id).or_default() += line.quantity;
    }
    for (id, quantity) in wanted {
        if let Some(product) = products.get(&id)
            && product.stock < quantity
        {
            return Err(stock_error(
                id,
                quantity,
                StockChangeError::Insufficient {
                    available: product.stock,
                },
            ));
        }
    }
    Ok(())
}

async fn move_stock(
    tx: &mut dyn Transaction,
    order: &Order,
    reason: StockReason,
    at: OffsetDateTime,
) -> Result<(), AttemptError> {
    let mut items: Vec<_> = order.items.iter().collect();
    items.sort_by_key(|item| item.product_id);
    for item in items {
        let delta = match reason {
            StockReason::Order => -item.quantity,
            _ => item.quantity,
        };
        let change = StockChange {
            product_id: item.product_id,
            delta,
            reason,
            order_id: Some(order.id),
            note: None,
            at,
        };
        tx.products()
            .change_stock(change)
            .await
            .map_err(|e| match (reason, e) {
                (StockReason::Order, e) => stock_error(item.product_id, item.quantity, e),
                // A deadlock or serialization failure: run the transaction again.
                (_, StockChangeError::Repo(e)) => e.into(),
                // Giving stock back can only fail at MAX_STOCK (a seller raised it meanwhile):
                // nothing the client can fix.
                (_, e) => ShopError::Internal(format!(
                    "cannot return {} units of product {} for order {}: {e}",
                    item.quantity, item.product_id, order.id
                ))
                .into(),
            })?;
    }
    Ok(())
}

/// When a canceled order's coupon goes back to its owner.
#[derive(Clone, Copy)]
enum CouponReturn {
    /// Canceled before payment: the coupon was never really spent.
    Always,
    /// Refunded: back only while the coupon is still valid (RULES.md); an expired one stays
    /// USED, recording which order consumed it.
    WhileValid,
}

/// Stock and coupon back: what every cancellation undoes.
async fn release_reservation(
    tx: &mut dyn Transaction,
    order: &Order,
    coupon_return: CouponReturn,
    at: OffsetDateTime,
) -> Result<(), AttemptError> {
    move_stock(tx, order, StockReason::Cancel, at).await?;
    let Some(issue_id) = order.coupon_issue_id else {
        return Ok(());
    };
    let give_back = match coupon_return {
        CouponReturn::Always => true,
        CouponReturn::WhileValid => coupon_still_valid(tx, issue_id, at).await?,
    };
    if give_back {
        tx.coupons().release_issue(issue_id, order.id).await?;
    }
    Ok(())
}

async fn coupon_still_valid(
    tx: &mut dyn Transaction,
    issue_id: CouponIssueId,
    at: OffsetDateTime,
) -> Result<bool, AttemptError> {
    let Some(issue) = tx.coupons().get_issue(issue_id).await? else {
        return Ok(false);
    };
    let coupon = tx.coupons().get(issue.coupon_id).await?;
    Ok(coupon.is_some_and(|c| at < c.expires_at))
}

/// CREATED → CANCELED, stock and coupon back. Shared by the buyer's cancel and the expiry
/// sweeper. The compare-and-set goes first, so the loser of a race with pay or expiry changes
/// nothing; `Ok(None)` reports that loss.
pub(crate) async fn cancel_unpaid(
    tx: &mut dyn Transaction,
    order: &Order,
    at: OffsetDateTime,
) -> Result<Option<Order>, AttemptError> {
    let Some(canceled) = tx
        .orders()
        .transition(order.id, OrderStatus::Created, OrderStatus::Canceled, at)
        .await?
    else {
        return Ok(None);
    };
    release_reservation(tx, order, CouponReturn::Always, at).await?;
    Ok(Some(canceled))
}

/// PAID → REFUNDED: everything a cancel does, plus the money back, the payment REFUNDED, the
/// sales roll-up decreased and an ORDER_REFUNDED event.
///
/// The roll-up is decreased on the business day of the *refund*: it is the day the
/// ORDER_REFUNDED event carries (`refundedAt`), so the ranking updater, which only sees
/// events, subtracts on the same day and a ranking rebuilt from the roll-up equals the one
/// built from events. Net sales over a window are thus "paid in the window minus refunded in
/// the window", like a till that books returns on the day they come back.
async fn refund_paid(
    tx: &mut dyn Transaction,
    order: &Order,
    calendar: &BusinessCalendar,
    at: OffsetDateTime,
) -> Result<Option<Order>, AttemptError> {
    let Some(refunded) = tx
        .orders()
        .transition(order.id, OrderStatus::Paid, OrderStatus::Refunded, at)
        .await?
    else {
        return Ok(None);
    };
    release_reservation(tx, order, CouponReturn::WhileValid, at).await?;
    let payment = tx
        .payments()
        .succeeded_for_order(order.id)
        .await?
        .ok_or_else(|| ShopError::Internal(format!("paid order {} has no payment", order.id)))?;
    if payment.amount > 0 {
        // No upper limit: this is money the user already had (RULES.md).
        tx.wallets()
            .apply(WalletChange {
                user_id: order.user_id,
                kind: WalletTransactionType::Refund,
                amount: payment.amount,
                max_balance: None,
                order_id: Some(order.id),
                at,
            })
            .await
            .map_err(|e| wallet_error(order.user_id, e))?;
    }
    tx.payments().mark_refunded(payment.id).await?;
    tx.sales()
        .add(calendar.day_of(at), &sold_quantities(order, -1))
        .await?;
    let event = envelope(
        EventType::OrderRefunded,
        ORDER_AGGREGATE,
        order.id,
        &OrderRefunded::new(order, payment.id, at),
        at,
    )?;
    tx.outbox().append(event, at).await?;
    Ok(Some(refunded))
}

/// The order's quantities per product, signed: `+1` for a payment, `-1` for a refund. In
/// ascending product id order, like every multi-row change: the roll-up upserts lock one row
/// per (product, day), and concurrent payments must take those locks in the same order.
pub(crate) fn sold_quantities(order: &Order, sign: i64) -> Vec<ProductSales> {
    let mut sold: Vec<ProductSales> = order
        .items
        .iter()
        .map(|item| ProductSales {
            product_id: item.product_id,
            quantity: sign * item.quantity,
        })
        .collect();
    sold.sort_by_key(|s| s.product_id);
    sold
}
