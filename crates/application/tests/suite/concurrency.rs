//! Races on a multi-thread runtime: the invariants of RULES.md under real concurrency.

use super::{CouponShape, Kit};
use application::coupons::IssueOutcome;
use application::{Actor, Shop, ShopError};
use domain::order::OrderStatus;
use domain::outbox::EventType;
use domain::wallet::WalletTransactionType;
use std::collections::HashMap;

/// Runs every future on its own task, all at once, and collects the results in order.
async fn race<T, F>(futures: Vec<F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(futures.len()));
    let tasks: Vec<_> = futures
        .into_iter()
        .map(|f| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                f.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.expect("task panicked"));
    }
    results
}

fn codes<T>(results: &[Result<T, ShopError>]) -> HashMap<&'static str, usize> {
    let mut counts = HashMap::new();
    for r in results {
        *counts
            .entry(r.as_ref().map_or_else(|e| e.code(), |_| "OK"))
            .or_default() += 1;
    }
    counts
}

pub async fn concurrent_orders_never_oversell(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let p = kit.product(seller, 1_000, 7).await.id;
    let mut buyers = Vec::new();
    for _ in 0..30 {
        buyers.push(kit.buyer().await);
    }
    let results = race(
        buyers
            .iter()
            .map(|&buyer| {
                let shop = kit.shop.clone();
                async move {
                    shop.place_order(buyer, super::order_lines(&[(p, 1)]), None, None)
                        .await
                }
            })
            .collect(),
    )
    .await;
    let counts = codes(&results);
    assert_eq!(counts.get("OK"), Some(&7), "{counts:?}");
    assert_eq!(counts.get("OUT_OF_STOCK"), Some(&23), "{counts:?}");
    assert_eq!(kit.stock(p).await, 0);
    assert_eq!(kit.ledger(p).await.len(), 8);
    kit.assert_ledger_consistent(p).await;
}

pub async fn concurrent_payments_never_overdraw(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let p = kit.product(seller, 3_000, 100).await.id;
    let buyer = kit.funded_buyer(10_000).await;
    let mut orders = Vec::new();
    for _ in 0..10 {
        orders.push(kit.order(buyer, &[(p, 1)]).await.id);
    }
    let results = race(
        orders
            .iter()
            .map(|&order| {
                let shop = kit.shop.clone();
                async move { shop.pay(buyer, order, None).await }
            })
            .collect(),
    )
    .await;
    let counts = codes(&results);
    assert_eq!(counts.get("OK"), Some(&3), "{counts:?}");
    assert_eq!(counts.get("INSUFFICIENT_BALANCE"), Some(&7), "{counts:?}");
    assert_eq!(kit.balance(buyer).await, 1_000);
    let payments = kit
        .wallet_rows(buyer)
        .await
        .iter()
        .filter(|t| t.kind == WalletTransactionType::Payment)
        .count();
    assert_eq!(payments, 3);
    assert_eq!(kit.outbox(None).await.len(), 3);
    kit.assert_wallet_consistent(buyer).await;
}

pub async fn coupon_burst_issues_exactly_the_quantity(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let coupon = kit.coupon(seller, CouponShape::amount(1_000, 10)).await;
    let mut buyers = Vec::new();
    for _ in 0..40 {
        buyers.push(kit.buyer().await);
    }
    // Every buyer tries twice, all at once.
    let attempts: Vec<Actor> = buyers.iter().chain(buyers.iter()).copied().collect();
    let results = race(
        attempts
            .iter()
            .map(|&buyer| {
                let shop = kit.shop.clone();
                async move { shop.issue_coupon(buyer, coupon.id, None).await }
            })
            .collect(),
    )
    .await;
    let counts = codes(&results);
    assert_eq!(counts.get("OK"), Some(&10), "{counts:?}");
    assert_eq!(
        counts.get("COUPON_SOLD_OUT").unwrap_or(&0)
            + counts.get("COUPON_ALREADY_ISSUED").unwrap_or(&0),
        70,
        "{counts:?}"
    );
    assert!(
        results
            .iter()
            .flatten()
            .all(|o| matches!(o, IssueOutcome::Issued(_)))
    );
    assert_eq!(
        kit.shop
            .get_coupon(coupon.id)
            .await
            .unwrap()
            .issued_quantity,
        10
    );
    let mut holders = 0;
    for buyer in buyers {
        let held = kit.shop.my_coupons(buyer, None).await.unwrap().len();
        assert!(held <= 1, "user {} holds {held}", buyer.user_id);
        holders += held;
    }
    assert_eq!(holders, 10);
}

pub async fn per_user_limit_holds_under_a_burst(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let shape = CouponShape {
        per_user_limit: Some(3),
        ..CouponShape::amount(1_000, 100)
    };
    let coupon = kit.coupon(seller, shape).await;
    let mut buyers = Vec::new();
    for _ in 0..5 {
        buyers.push(kit.buyer().await);
    }
    let attempts: Vec<Actor> = buyers.iter().flat_map(|&b| [b; 10]).collect();
    let results = race(
        attempts
            .iter()
            .map(|&buyer| {
                let shop = kit.shop.clone();
                async move { shop.issue_coupon(buyer, coupon.id, None).await }
            })
            .collect(),
    )
    .await;
    let counts = codes(&results);
    assert_eq!(counts.get("OK"), Some(&15), "{counts:?}");
    assert_eq!(counts.get("COUPON_ALREADY_ISSUED"), Some(&35), "{counts:?}");
    for buyer in buyers {
        assert_eq!(kit.shop.my_coupons(buyer, None).await.unwrap().len(), 3);
    }
    assert_eq!(
        kit.shop
            .get_coupon(coupon.id)
            .await
            .unwrap()
            .issued_quantity,
        15
    );
}

pub async fn pay_and_cancel_race_has_one_winner(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let p = kit.product(seller, 1_000, 100).await.id;
    let buyer = kit.funded_buyer(100_000).await;
    let (mut paid, mut canceled, mut refunded) = (0, 0, 0);
    for _ in 0..20 {
        let order = kit.order(buyer, &[(p, 1)]).await.id;
        let (shop_a, shop_b) = (kit.shop.clone(), kit.shop.clone());
        let mut results = race(vec![
            Box::pin(async move { shop_a.pay(buyer, order, None).await.map(|_| None) })
                as std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>,
            Box::pin(async move {
                shop_b
                    .cancel_order(buyer, order, None)
                    .await
                    .map(|o| Some(o.status))
            }),
        ])
        .await;
        let cancel = results.pop().unwrap();
        let pay = results.pop().unwrap();
        let status = kit.shop.get_order(buyer, order).await.unwrap().status;
        match (&pay, &cancel, status) {
            // Pay won; the cancel lost the race (409) ...
            (Ok(_), Err(e), OrderStatus::Paid) => {
                assert_eq!(e.code(), "INVALID_ORDER_STATE");
                paid += 1;
            }
            // ... or came after it and was a refund: two requests in sequence, no race.
            (Ok(_), Ok(Some(OrderStatus::Refunded)), OrderStatus::Refunded) => refunded += 1,
            // Cancel won; the payment is refused.
            (Err(e), Ok(Some(OrderStatus::Canceled)), OrderStatus::Canceled) => {
                assert_eq!(e.code(), "ORDER_NOT_PAYABLE");
                canceled += 1;
            }
            other => panic!("illegal outcome {other:?}"),
        }
    }
    assert_eq!(paid + canceled + refunded, 20);
    // Money and stock follow the final states exactly.
    assert_eq!(kit.balance(buyer).await, 100_000 - 1_000 * paid);
    assert_eq!(kit.stock(p).await, 100 - paid);
    let events = kit.outbox(None).await;
    let count = |t| events.iter().filter(|e| e.envelope.event_type == t).count() as i64;
    assert_eq!(count(EventType::OrderPaid), paid + refunded);
    assert_eq!(count(EventType::OrderRefunded), refunded);
    kit.assert_wallet_consistent(buyer).await;
    kit.assert_ledger_consistent(p).await;
}

pub async fn double_payment_race_has_one_winner(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let p = kit.product(seller, 1_000, 100).await.id;
    let buyer = kit.funded_buyer(100_000).await;
    let order = kit.order(buyer, &[(p, 2)]).await.id;
    let results = race(
        (0..8)
            .map(|_| {
                let shop = kit.shop.clone();
                async move { shop.pay(buyer, order, None).await }
            })
            .collect(),
    )
    .await;
    let counts = codes(&results);
    assert_eq!(counts.get("OK"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("ORDER_NOT_PAYABLE"), Some(&7), "{counts:?}");
    assert_eq!(kit.balance(buyer).await, 98_000);
    assert_eq!(kit.outbox(None).await.len(), 1);

    // Eight concurrent cancels of the paid order: one refund.
    let results = race(
        (0..8)
            .map(|_| {
                let shop = kit.shop.clone();
                async move { shop.cancel_order(buyer, order, None).await }
            })
            .collect(),
    )
    .await;
    let counts = codes(&results);
    assert_eq!(counts.get("OK"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("INVALID_ORDER_STATE"), Some(&7), "{counts:?}");
    assert_eq!(kit.balance(buyer).await, 100_000);
    assert_eq!(kit.stock(p).await, 100);
    assert_eq!(kit.outbox(None).await.len(), 2);
    kit.assert_wallet_consistent(buyer).await;
    kit.assert_ledger_consistent(p).await;
}
