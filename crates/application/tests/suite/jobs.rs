//! The unpaid-order sweeper and the outbox relay.

use super::{CouponShape, Kit, expect_code};
use application::Shop;
use domain::OutboxId;
use domain::coupon::CouponIssueStatus;
use domain::order::OrderStatus;
use domain::outbox::OutboxStatus;
use domain::page::CursorPage;
use std::sync::atomic::Ordering;
use time::Duration;

pub async fn expiry_sweeper_cancels_only_due_orders(shop: Shop) {
    let kit = Kit::new(shop).await;
    let ttl = kit.shop.config().payment_ttl;
    let seller = kit.seller().await;
    let p = kit.product(seller, 1_000, 20).await.id;
    let coupon = kit.coupon(seller, CouponShape::amount(100, 10)).await;
    let buyer = kit.funded_buyer(10_000).await;
    let issue = kit.issue(coupon.id, buyer).await;
    let first = kit.try_order(buyer, &[(p, 2)], Some(issue)).await.unwrap();
    let paid = kit.order(buyer, &[(p, 1)]).await;
    kit.shop.pay(buyer, paid.id, None).await.unwrap();
    kit.advance(Duration::minutes(5));
    let second = kit.order(buyer, &[(p, 3)]).await;
    assert_eq!(kit.stock(p).await, 14);

    kit.advance(ttl - Duration::minutes(5) - Duration::SECOND);
    assert_eq!(kit.shop.expire_orders_once(100).await.unwrap(), 0);
    kit.advance(Duration::SECOND);
    assert_eq!(kit.shop.expire_orders_once(100).await.unwrap(), 1);
    let expired = kit.shop.get_order(buyer, first.id).await.unwrap();
    assert_eq!(
        (expired.status, expired.canceled_at),
        (OrderStatus::Canceled, Some(kit.now()))
    );
    assert_eq!(kit.stock(p).await, 16);
    let held = kit.shop.my_coupons(buyer, None).await.unwrap();
    assert_eq!(held[0].status, CouponIssueStatus::Issued);
    assert_eq!(
        kit.shop.get_order(buyer, second.id).await.unwrap().status,
        OrderStatus::Created
    );
    expect_code(
        kit.shop.pay(buyer, first.id, None).await,
        "ORDER_NOT_PAYABLE",
    );

    kit.advance(Duration::minutes(5));
    assert_eq!(kit.shop.expire_orders_once(100).await.unwrap(), 1);
    assert_eq!(kit.shop.expire_orders_once(100).await.unwrap(), 0);
    assert_eq!(kit.stock(p).await, 19);
    assert_eq!(
        kit.shop.get_order(buyer, paid.id).await.unwrap().status,
        OrderStatus::Paid
    );

    // The batch size bounds one run.
    for _ in 0..3 {
        kit.order(buyer, &[(p, 1)]).await;
    }
    kit.advance(ttl);
    assert_eq!(kit.shop.expire_orders_once(2).await.unwrap(), 2);
    assert_eq!(kit.shop.expire_orders_once(2).await.unwrap(), 1);
    assert_eq!(kit.stock(p).await, 19);
    kit.assert_ledger_consistent(p).await;
}

pub async fn relay_publishes_each_ready_event_once(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let p = kit.product(seller, 1_000, 20).await.id;
    let buyer = kit.funded_buyer(100_000).await;
    let mut orders = Vec::new();
    for _ in 0..2 {
        let order = kit.order(buyer, &[(p, 1)]).await;
        kit.shop.pay(buyer, order.id, None).await.unwrap();
        orders.push(order);
    }
    assert_eq!(kit.shop.relay_outbox_once(10).await.unwrap(), 2);
    let published = kit.publisher.published();
    assert_eq!(published.len(), 2);
    let rows = kit.outbox(None).await;
    for row in &rows {
        assert_eq!(
            (row.status, row.sent_at),
            (OutboxStatus::Sent, Some(kit.now()))
        );
        assert!(
            published
                .iter()
                .any(|(topic, env)| topic == "order.paid" && *env == row.envelope)
        );
    }
    // Oldest first: per-order events keep their order.
    assert_eq!(published[0].1.aggregate_id, orders[0].id.to_string());
    assert_eq!(kit.shop.relay_outbox_once(10).await.unwrap(), 0);
    assert_eq!(kit.publisher.calls.load(Ordering::SeqCst), 2);

    kit.shop
        .cancel_order(buyer, orders[0].id, None)
        .await
        .unwrap();
    assert_eq!(kit.shop.relay_outbox_once(10).await.unwrap(), 1);
    let (topic, env) = kit.publisher.published().pop().unwrap();
    assert_eq!(
        (topic.as_str(), env.aggregate_id),
        ("order.refunded", orders[0].id.to_string())
    );

    for _ in 0..3 {
        let order = kit.order(buyer, &[(p, 1)]).await;
        kit.shop.pay(buyer, order.id, None).await.unwrap();
    }
    assert_eq!(kit.shop.relay_outbox_once(2).await.unwrap(), 2);
    assert_eq!(kit.shop.relay_outbox_once(2).await.unwrap(), 1);
    assert_eq!(kit.outbox(Some(OutboxStatus::Sent)).await.len(), 6);
    assert!(kit.outbox(Some(OutboxStatus::Ready)).await.is_empty());
}

pub async fn relay_backs_off_then_fails_and_an_admin_re_drives(shop: Shop) {
    let kit = Kit::with(shop, |c| {
        c.outbox_max_attempts = 3;
        c.outbox_base_backoff = Duration::SECOND;
    })
    .await;
    let seller = kit.seller().await;
    let p = kit.product(seller, 1_000, 20).await.id;
    let buyer = kit.funded_buyer(10_000).await;
    let order = kit.order(buyer, &[(p, 1)]).await;
    kit.shop.pay(buyer, order.id, None).await.unwrap();
    let calls = || kit.publisher.calls.load(Ordering::SeqCst);
    kit.publisher.failing.store(true, Ordering::SeqCst);

    assert_eq!(kit.shop.relay_outbox_once(10).await.unwrap(), 0);
    let row = kit.outbox(None).await.remove(0);
    assert_eq!((row.status, row.attempts), (OutboxStatus::Ready, 1));
    assert!(
        row.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("broker")
    );
    assert_eq!(row.next_attempt_at, kit.now() + Duration::SECOND);
    // Not due yet: not even tried.
    kit.shop.relay_outbox_once(10).await.unwrap();
    assert_eq!(calls(), 1);

    kit.advance(Duration::SECOND);
    kit.shop.relay_outbox_once(10).await.unwrap();
    let row = kit.outbox(None).await.remove(0);
    assert_eq!((row.attempts, calls()), (2, 2));
    // The second wait is twice the first.
    assert_eq!(row.next_attempt_at, kit.now() + Duration::seconds(2));
    kit.advance(Duration::SECOND);
    kit.shop.relay_outbox_once(10).await.unwrap();
    assert_eq!(calls(), 2);
    kit.advance(Duration::SECOND);
    kit.shop.relay_outbox_once(10).await.unwrap();
    let row = kit.outbox(None).await.remove(0);
    assert_eq!(
        (row.status, row.attempts, calls()),
        (OutboxStatus::Failed, 3, 3)
    );

    // FAILED rows wait for an admin, even once the broker is back.
    kit.publisher.failing.store(false, Ordering::SeqCst);
    kit.advance(Duration::hours(1));
    assert_eq!(kit.shop.relay_outbox_once(10).await.unwrap(), 0);
    assert_eq!(calls(), 3);
    let failed = kit.outbox(Some(OutboxStatus::Failed)).await;
    assert_eq!(failed.len(), 1);

    let requeued = kit
        .shop
        .retry_outbox(kit.admin, row.id, None)
        .await
        .unwrap();
    assert_eq!(
        (requeued.status, requeued.attempts),
        (OutboxStatus::Ready, 0)
    );
    assert_eq!(kit.shop.relay_outbox_once(10).await.unwrap(), 1);
    let sent = kit.outbox(None).await.remove(0);
    assert_eq!(sent.status, OutboxStatus::Sent);
    assert_eq!(kit.publisher.published().len(), 1);
    // A SENT event is not FAILED: a conflict with its state.
    expect_code(
        kit.shop.retry_outbox(kit.admin, row.id, None).await,
        "OUTBOX_EVENT_NOT_FAILED",
    );
    expect_code(
        kit.shop
            .retry_outbox(kit.admin, OutboxId(999_999), None)
            .await,
        "NOT_FOUND",
    );
}

/// A refund's event must never overtake the payment event of the same order, even while the
/// payment event is backing off after a failed publish (Kafka key = order id keeps the order
/// downstream only if the relay publishes in order).
pub async fn relay_keeps_one_orders_events_in_order(shop: Shop) {
    let kit = Kit::with(shop, |c| c.outbox_base_backoff = Duration::SECOND).await;
    let seller = kit.seller().await;
    let p = kit.product(seller, 1_000, 20).await.id;
    let buyer = kit.funded_buyer(10_000).await;
    let order = kit.order(buyer, &[(p, 1)]).await;
    kit.shop.pay(buyer, order.id, None).await.unwrap();
    kit.publisher.failing.store(true, Ordering::SeqCst);
    assert_eq!(kit.shop.relay_outbox_once(10).await.unwrap(), 0);
    kit.publisher.failing.store(false, Ordering::SeqCst);

    // The refund is due now, the payment event only in a second: nothing of this order goes.
    kit.shop.cancel_order(buyer, order.id, None).await.unwrap();
    let other = kit.order(buyer, &[(p, 1)]).await;
    kit.shop.pay(buyer, other.id, None).await.unwrap();
    assert_eq!(kit.shop.relay_outbox_once(10).await.unwrap(), 1);
    let first: Vec<_> = kit
        .publisher
        .published()
        .into_iter()
        .map(|(t, e)| (t, e.aggregate_id))
        .collect();
    assert_eq!(first, [("order.paid".to_owned(), other.id.to_string())]);

    kit.advance(Duration::SECOND);
    assert_eq!(kit.shop.relay_outbox_once(10).await.unwrap(), 2);
    let mine: Vec<_> = kit
        .publisher
        .published()
        .into_iter()
        .filter(|(_, e)| e.aggregate_id == order.id.to_string())
        .map(|(t, _)| t)
        .collect();
    assert_eq!(mine, ["order.paid", "order.refunded"]);
}

pub async fn outbox_admin_is_for_admins_only(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let buyer = kit.funded_buyer(10_000).await;
    let page = CursorPage {
        before: None,
        limit: 10,
    };
    for actor in [seller, buyer] {
        expect_code(kit.shop.outbox(actor, None, page).await, "FORBIDDEN");
        expect_code(
            kit.shop.retry_outbox(actor, OutboxId(1), None).await,
            "FORBIDDEN",
        );
    }
    let p = kit.product(seller, 1_000, 20).await.id;
    for _ in 0..3 {
        let order = kit.order(buyer, &[(p, 1)]).await;
        kit.shop.pay(buyer, order.id, None).await.unwrap();
    }
    kit.shop.relay_outbox_once(1).await.unwrap();
    let two = CursorPage {
        before: None,
        limit: 2,
    };
    let first = kit.shop.outbox(kit.admin, None, two).await.unwrap();
    assert_eq!(first.items.len(), 2);
    assert!(first.items[0].id > first.items[1].id, "newest first");
    let rest = kit
        .shop
        .outbox(
            kit.admin,
            None,
            CursorPage {
                before: first.next,
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!((rest.items.len(), rest.next), (1, None));
    assert_eq!(kit.outbox(Some(OutboxStatus::Sent)).await.len(), 1);
    assert_eq!(kit.outbox(Some(OutboxStatus::Ready)).await.len(), 2);
}
