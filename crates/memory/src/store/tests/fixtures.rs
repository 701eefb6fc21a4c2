//! Builders of the domain's "new" records, with sensible defaults.

use crate::MemoryStore;
use domain::coupon::{Coupon, CouponScope, Discount, NewCoupon, NewCouponIssue};
use domain::order::{NewOrder, Order, OrderItem};
use domain::outbox::{EventEnvelope, EventType, OutboxOutcome};
use domain::payment::{NewPayment, PaymentStatus};
use domain::ports::{Transaction, UnitOfWork, WalletChange};
use domain::product::{NewProduct, Product, ProductStatus, StockChange, StockReason};
use domain::user::{NewUser, Role, TokenHash, User, UserName};
use domain::wallet::WalletTransactionType;
use domain::{CouponId, CouponIssueId, OrderId, ProductId, UserId};
use time::OffsetDateTime;
use time::macros::datetime;

pub const T0: OffsetDateTime = datetime!(2026-11-21 09:30 UTC);
/// How long the outbox claims of these tests last.
pub const LEASE: time::Duration = time::Duration::seconds(30);

pub fn new_user(token: &str) -> NewUser {
    NewUser {
        name: UserName::new(token).unwrap(),
        role: Role::Buyer,
        token_hash: TokenHash(token.into()),
        created_at: T0,
    }
}

pub fn new_product(seller: UserId, stock: i64) -> NewProduct {
    NewProduct::new(seller, "Tea", 1_000, stock, None, T0).unwrap()
}

pub fn new_coupon(seller: UserId, total: i64, per_user: i64) -> NewCoupon {
    NewCoupon {
        seller_id: seller,
        scope: CouponScope::Seller(seller),
        name: "Welcome".into(),
        discount: Discount::Amount(500),
        min_order_amount: 0,
        total_quantity: total,
        per_user_limit: per_user,
        starts_at: T0,
        expires_at: T0 + time::Duration::days(7),
        created_at: T0,
    }
}

pub fn issue_for(coupon: CouponId, user: UserId) -> NewCouponIssue {
    NewCouponIssue {
        coupon_id: coupon,
        user_id: user,
        issued_at: T0,
    }
}

pub fn new_order(user: UserId, product: &Product, quantity: i64) -> NewOrder {
    new_order_with(
        user,
        product,
        quantity,
        None,
        T0 + time::Duration::minutes(15),
    )
}

pub fn new_order_with(
    user: UserId,
    product: &Product,
    quantity: i64,
    coupon_issue_id: Option<CouponIssueId>,
    expires_at: OffsetDateTime,
) -> NewOrder {
    let subtotal = product.price * quantity;
    NewOrder {
        user_id: user,
        items: vec![OrderItem {
            product_id: product.id,
            seller_id: product.seller_id,
            name: product.name.clone(),
            unit_price: product.price,
            quantity,
            subtotal,
        }],
        subtotal,
        discount: 0,
        total_amount: subtotal,
        coupon_issue_id,
        created_at: T0,
        expires_at,
    }
}

pub fn payment(order: &Order, status: PaymentStatus) -> NewPayment {
    NewPayment {
        order_id: order.id,
        user_id: order.user_id,
        amount: order.total_amount,
        status,
        failure_code: (status == PaymentStatus::Failed).then(|| "INSUFFICIENT_BALANCE".into()),
        created_at: T0,
    }
}

pub fn charge(user: UserId, amount: i64) -> WalletChange {
    WalletChange {
        user_id: user,
        kind: WalletTransactionType::Charge,
        amount,
        max_balance: Some(1_000_000),
        order_id: None,
        at: T0,
    }
}

pub fn pay(user: UserId, amount: i64, order: OrderId) -> WalletChange {
    WalletChange {
        user_id: user,
        kind: WalletTransactionType::Payment,
        amount: -amount,
        max_balance: None,
        order_id: Some(order),
        at: T0,
    }
}

pub fn stock(product: ProductId, delta: i64, reason: StockReason) -> StockChange {
    StockChange {
        product_id: product,
        delta,
        reason,
        order_id: None,
        note: None,
        at: T0,
    }
}

pub fn envelope(event_id: &str, order: OrderId) -> EventEnvelope {
    EventEnvelope {
        event_id: event_id.into(),
        event_type: EventType::OrderPaid,
        aggregate_type: "ORDER".into(),
        aggregate_id: order.to_string(),
        occurred_at: T0,
        payload: serde_json::json!({ "orderId": order.get() }),
    }
}

/// What [`seeded`] created.
pub struct Seed {
    pub buyer: User,
    pub seller: User,
    pub product: Product,
    pub coupon: Coupon,
    /// ISSUED to the buyer.
    pub issue: CouponIssueId,
    /// USED by `open_order`.
    pub used_issue: CouponIssueId,
    /// CREATED, holding `used_issue`.
    pub open_order: Order,
    /// PAID, with a SUCCEEDED payment.
    pub paid_order: Order,
    pub payment: domain::PaymentId,
    pub ready_event: domain::OutboxId,
    pub failed_event: domain::OutboxId,
}

/// A store with one row of every kind, committed.
pub async fn seeded() -> (MemoryStore, Seed) {
    let store = MemoryStore::new();
    let mut tx = store.begin().await.unwrap();
    let buyer = tx.users().insert(new_user("buyer")).await.unwrap();
    let mut seller = new_user("seller");
    seller.role = Role::Seller;
    let seller = tx.users().insert(seller).await.unwrap();
    tx.wallets().apply(charge(buyer.id, 50_000)).await.unwrap();
    let product = tx
        .products()
        .insert(new_product(seller.id, 100))
        .await
        .unwrap();
    let coupon = tx
        .coupons()
        .insert(new_coupon(seller.id, 10, 3))
        .await
        .unwrap();
    let issue = tx
        .coupons()
        .issue(issue_for(coupon.id, buyer.id))
        .await
        .unwrap()
        .id;
    let used_issue = tx
        .coupons()
        .issue(issue_for(coupon.id, buyer.id))
        .await
        .unwrap()
        .id;
    let open_order = tx
        .orders()
        .insert(new_order_with(
            buyer.id,
            &product,
            2,
            Some(used_issue),
            T0 + time::Duration::minutes(15),
        ))
        .await
        .unwrap();
    tx.coupons()
        .use_issue(used_issue, open_order.id, T0)
        .await
        .unwrap()
        .unwrap();
    let paid_order = tx
        .orders()
        .insert(new_order(buyer.id, &product, 1))
        .await
        .unwrap();
    let payment = tx
        .payments()
        .insert(payment(&paid_order, PaymentStatus::Succeeded))
        .await
        .unwrap()
        .id;
    let paid_order = tx
        .orders()
        .transition(
            paid_order.id,
            domain::order::OrderStatus::Created,
            domain::order::OrderStatus::Paid,
            T0,
        )
        .await
        .unwrap()
        .unwrap();
    tx.sales()
        .add(
            T0.date(),
            &[domain::sales::ProductSales {
                product_id: product.id,
                quantity: 1,
            }],
        )
        .await
        .unwrap();
    let ready_event = tx
        .outbox()
        .append(envelope("e-ready", paid_order.id), T0)
        .await
        .unwrap()
        .id;
    let failed_event = tx
        .outbox()
        .append(envelope("e-failed", paid_order.id), T0)
        .await
        .unwrap()
        .id;
    let claim = tx.outbox().claim_ready(T0, T0 + LEASE, 10).await.unwrap();
    let outcomes = [
        (ready_event, OutboxOutcome::Untried),
        (
            failed_event,
            OutboxOutcome::Failed {
                error: "boom".into(),
            },
        ),
    ];
    assert_eq!(
        tx.outbox()
            .settle(claim.lease, T0, &outcomes)
            .await
            .unwrap(),
        2
    );
    tx.inbox().record("ranking", "e-old", T0).await.unwrap();
    tx.inbox()
        .save_position("ranking", "order.paid", 0, 7)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut other = store.begin().await.unwrap();
    assert_eq!(
        other
            .products()
            .get(product.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        ProductStatus::OnSale
    );
    drop(other);
    let seed = Seed {
        buyer,
        seller,
        product,
        coupon,
        issue,
        used_issue,
        open_order,
        paid_order,
        payment,
        ready_event,
        failed_event,
    };
    (store, seed)
}

/// Begins a transaction, asserting success.
pub async fn begin(store: &MemoryStore) -> Box<dyn Transaction> {
    store.begin().await.unwrap()
}
