//! Paying from the wallet and refunding: every effect, exactly once.

use super::{CouponShape, Kit, expect_code};
use application::Shop;
use domain::coupon::CouponIssueStatus;
use domain::order::OrderStatus;
use domain::outbox::{EventType, OutboxStatus};
use domain::payment::PaymentStatus;
use domain::product::StockReason;
use domain::wallet::WalletTransactionType;
use domain::{OrderId, PaymentId};
use serde_json::json;
use time::Duration;
use time::format_description::well_known::Rfc3339;

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC).format(&Rfc3339).unwrap()
}

pub async fn paying_moves_money_and_records_everything_once(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let (p1, p2) = (
        kit.product(seller, 3_000, 10).await.id,
        kit.product(seller, 2_000, 10).await.id,
    );
    let buyer = kit.funded_buyer(50_000).await;
    let order = kit.order(buyer, &[(p1, 2), (p2, 1)]).await;
    kit.advance(Duration::minutes(1));
    let payment = kit.shop.pay(buyer, order.id, None).await.unwrap();
    assert_eq!(
        (payment.order_id, payment.user_id),
        (order.id, buyer.user_id)
    );
    assert_eq!(
        (payment.amount, payment.status),
        (8_000, PaymentStatus::Succeeded)
    );
    assert_eq!(
        (payment.failure_code.as_deref(), payment.created_at),
        (None, kit.now())
    );

    assert_eq!(kit.balance(buyer).await, 42_000);
    let debit = &kit.wallet_rows(buyer).await[0];
    assert_eq!(debit.kind, WalletTransactionType::Payment);
    assert_eq!(
        (debit.amount, debit.balance_after, debit.order_id),
        (-8_000, 42_000, Some(order.id))
    );
    let paid = kit.shop.get_order(buyer, order.id).await.unwrap();
    assert_eq!(
        (paid.status, paid.paid_at),
        (OrderStatus::Paid, Some(kit.now()))
    );

    assert_eq!(
        kit.shop.get_payment(buyer, payment.id).await.unwrap(),
        payment
    );
    assert_eq!(
        kit.shop.get_payment(kit.admin, payment.id).await.unwrap(),
        payment
    );
    expect_code(
        kit.shop.get_payment(kit.buyer().await, payment.id).await,
        "NOT_FOUND",
    );
    expect_code(
        kit.shop.get_payment(buyer, PaymentId(999_999)).await,
        "NOT_FOUND",
    );

    let events = kit.outbox(None).await;
    assert_eq!(events.len(), 1, "exactly one event per paid order");
    let event = &events[0];
    assert_eq!(event.status, OutboxStatus::Ready);
    let env = &event.envelope;
    assert_eq!(env.event_type, EventType::OrderPaid);
    assert_eq!(
        (env.aggregate_type.as_str(), env.aggregate_id.clone()),
        ("ORDER", order.id.to_string())
    );
    assert_eq!(env.occurred_at, kit.now());
    assert_eq!(
        env.payload,
        json!({
            "orderId": order.id.get(), "userId": buyer.user_id.get(), "paymentId": payment.id.get(),
            "items": [
                {"productId": p1.get(), "quantity": 2, "unitPrice": 3_000},
                {"productId": p2.get(), "quantity": 1, "unitPrice": 2_000}
            ],
            "subtotal": 8_000, "discount": 0, "totalAmount": 8_000,
            "paidAt": rfc3339(kit.now())
        })
    );

    expect_code(
        kit.shop.pay(buyer, order.id, None).await,
        "ORDER_NOT_PAYABLE",
    );
    assert_eq!(kit.outbox(None).await.len(), 1);
    assert_eq!(kit.balance(buyer).await, 42_000);
    kit.assert_wallet_consistent(buyer).await;
}

pub async fn insufficient_balance_records_a_failed_payment(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let p = kit.product(seller, 5_000, 10).await.id;
    let buyer = kit.funded_buyer(1_000).await;
    let order = kit.order(buyer, &[(p, 1)]).await;
    let detail = expect_code(
        kit.shop.pay(buyer, order.id, None).await,
        "INSUFFICIENT_BALANCE",
    );
    assert!(detail.contains("1000"), "{detail}");
    // Nothing of the payment happened.
    let unpaid = kit.shop.get_order(buyer, order.id).await.unwrap();
    assert_eq!(
        (unpaid.status, unpaid.paid_at),
        (OrderStatus::Created, None)
    );
    assert_eq!(kit.balance(buyer).await, 1_000);
    assert_eq!(kit.wallet_rows(buyer).await.len(), 1);
    assert!(kit.outbox(None).await.is_empty());
    // The order can be paid later.
    kit.shop.charge(buyer, 4_000, None).await.unwrap();
    let payment = kit.shop.pay(buyer, order.id, None).await.unwrap();
    assert_eq!(kit.balance(buyer).await, 0);
    // The refused attempt was kept for audit.
    let mut failed = Vec::new();
    for id in 1..payment.id.get() {
        if let Ok(p) = kit.shop.get_payment(kit.admin, PaymentId(id)).await
            && p.order_id == order.id
        {
            failed.push(p);
        }
    }
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].status, PaymentStatus::Failed);
    assert_eq!(
        failed[0].failure_code.as_deref(),
        Some("INSUFFICIENT_BALANCE")
    );
    assert_eq!(
        (failed[0].amount, failed[0].user_id),
        (5_000, buyer.user_id)
    );
    assert_eq!(kit.outbox(None).await.len(), 1);
    kit.assert_wallet_consistent(buyer).await;
}

pub async fn only_created_orders_within_their_window_are_payable(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let p = kit.product(seller, 1_000, 10).await.id;
    let buyer = kit.funded_buyer(10_000).await;
    let ttl = kit.shop.config().payment_ttl;
    let first = kit.order(buyer, &[(p, 1)]).await;
    kit.advance(ttl - Duration::SECOND);
    let second = kit.order(buyer, &[(p, 1)]).await;
    assert!(
        kit.shop.pay(buyer, first.id, None).await.is_ok(),
        "one second before the deadline"
    );
    // Exactly at the deadline the window is closed.
    kit.advance(ttl);
    let detail = expect_code(
        kit.shop.pay(buyer, second.id, None).await,
        "ORDER_NOT_PAYABLE",
    );
    assert!(detail.contains("window"), "{detail}");
    assert_eq!(
        kit.shop.get_order(buyer, second.id).await.unwrap().status,
        OrderStatus::Created
    );
    let canceled = kit.order(buyer, &[(p, 1)]).await;
    kit.shop
        .cancel_order(buyer, canceled.id, None)
        .await
        .unwrap();
    expect_code(
        kit.shop.pay(buyer, canceled.id, None).await,
        "ORDER_NOT_PAYABLE",
    );
    expect_code(
        kit.shop.pay(buyer, first.id, None).await,
        "ORDER_NOT_PAYABLE",
    );
    assert_eq!(kit.balance(buyer).await, 9_000);
    kit.assert_wallet_consistent(buyer).await;
}

pub async fn only_the_owner_pays(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let p = kit.product(seller, 1_000, 10).await.id;
    let buyer = kit.funded_buyer(10_000).await;
    let order = kit.order(buyer, &[(p, 1)]).await;
    let stranger = kit.funded_buyer(10_000).await;
    expect_code(kit.shop.pay(stranger, order.id, None).await, "NOT_FOUND");
    kit.shop.charge(kit.admin, 10_000, None).await.unwrap();
    expect_code(kit.shop.pay(kit.admin, order.id, None).await, "NOT_FOUND");
    expect_code(
        kit.shop.pay(buyer, OrderId(999_999), None).await,
        "NOT_FOUND",
    );
    assert_eq!(kit.balance(stranger).await, 10_000);
    assert_eq!(kit.balance(kit.admin).await, 10_000);
    assert!(kit.shop.pay(buyer, order.id, None).await.is_ok());
}

pub async fn refund_gives_everything_back(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let p = kit.product(seller, 3_000, 10).await.id;
    let coupon = kit.coupon(seller, CouponShape::amount(1_000, 10)).await;
    let buyer = kit.funded_buyer(50_000).await;
    let issue = kit.issue(coupon.id, buyer).await;
    let order = kit.try_order(buyer, &[(p, 3)], Some(issue)).await.unwrap();
    let payment = kit.shop.pay(buyer, order.id, None).await.unwrap();
    assert_eq!((payment.amount, kit.balance(buyer).await), (8_000, 42_000));
    kit.advance(Duration::minutes(5));

    let refunded = kit.shop.cancel_order(buyer, order.id, None).await.unwrap();
    assert_eq!(
        (refunded.status, refunded.canceled_at),
        (OrderStatus::Refunded, Some(kit.now()))
    );
    assert_eq!(kit.balance(buyer).await, 50_000);
    let credit = &kit.wallet_rows(buyer).await[0];
    assert_eq!(credit.kind, WalletTransactionType::Refund);
    assert_eq!(
        (credit.amount, credit.balance_after, credit.order_id),
        (8_000, 50_000, Some(order.id))
    );
    let payment_now = kit.shop.get_payment(buyer, payment.id).await.unwrap();
    assert_eq!(payment_now.status, PaymentStatus::Refunded);
    assert_eq!(kit.stock(p).await, 10);
    let newest = &kit.ledger(p).await[0];
    assert_eq!((newest.delta, newest.reason), (3, StockReason::Cancel));
    let held = kit.shop.my_coupons(buyer, None).await.unwrap();
    assert_eq!(held[0].status, CouponIssueStatus::Issued);

    let events = kit.outbox(None).await;
    assert_eq!(events.len(), 2);
    let env = &events[0].envelope;
    assert_eq!(env.event_type, EventType::OrderRefunded);
    assert_eq!(env.aggregate_id, order.id.to_string());
    assert_eq!(
        env.payload,
        json!({
            "orderId": order.id.get(), "userId": buyer.user_id.get(), "paymentId": payment.id.get(),
            "items": [{"productId": p.get(), "quantity": 3, "unitPrice": 3_000}],
            "totalAmount": 8_000, "refundedAt": rfc3339(kit.now())
        })
    );
    assert_ne!(events[0].envelope.event_id, events[1].envelope.event_id);

    expect_code(
        kit.shop.cancel_order(buyer, order.id, None).await,
        "INVALID_ORDER_STATE",
    );
    expect_code(
        kit.shop.pay(buyer, order.id, None).await,
        "ORDER_NOT_PAYABLE",
    );
    assert_eq!(kit.outbox(None).await.len(), 2);
    kit.assert_wallet_consistent(buyer).await;
    kit.assert_ledger_consistent(p).await;
}

pub async fn refund_may_exceed_the_maximum_balance(shop: Shop) {
    let kit = Kit::with(shop, |c| c.wallet.max_balance = 100_000).await;
    let seller = kit.seller().await;
    let p = kit.product(seller, 30_000, 10).await.id;
    let buyer = kit.funded_buyer(100_000).await;
    let order = kit.order(buyer, &[(p, 1)]).await;
    kit.shop.pay(buyer, order.id, None).await.unwrap();
    kit.shop.charge(buyer, 30_000, None).await.unwrap();
    assert_eq!(kit.balance(buyer).await, 100_000);
    kit.shop.cancel_order(buyer, order.id, None).await.unwrap();
    assert_eq!(kit.balance(buyer).await, 130_000);
    expect_code(
        kit.shop.charge(buyer, 1, None).await,
        "BALANCE_LIMIT_EXCEEDED",
    );
    kit.assert_wallet_consistent(buyer).await;
}

pub async fn refund_after_coupon_expiry_keeps_the_coupon_used(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let p = kit.product(seller, 3_000, 10).await.id;
    let shape = CouponShape {
        lasts: Duration::minutes(10),
        ..CouponShape::amount(1_000, 10)
    };
    let coupon = kit.coupon(seller, shape).await;
    let buyer = kit.funded_buyer(10_000).await;
    let issue = kit.issue(coupon.id, buyer).await;
    let order = kit.try_order(buyer, &[(p, 1)], Some(issue)).await.unwrap();
    kit.shop.pay(buyer, order.id, None).await.unwrap();
    kit.advance(Duration::minutes(10));
    kit.shop.cancel_order(buyer, order.id, None).await.unwrap();
    let held = kit.shop.my_coupons(buyer, None).await.unwrap();
    assert_eq!(
        (held[0].status, held[0].issue.order_id),
        (CouponIssueStatus::Used, Some(order.id))
    );
    assert_eq!(kit.balance(buyer).await, 10_000);
}
