//! Races over real HTTP: the guarantees of RULES.md hold when requests arrive together.

use crate::helpers::TestApp;
use futures::future::join_all;
use serde_json::json;
use std::collections::HashMap;

fn tally(statuses: impl IntoIterator<Item = (u16, String)>) -> HashMap<(u16, String), usize> {
    let mut counts = HashMap::new();
    for s in statuses {
        *counts.entry(s).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_orders_never_oversell() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    const STOCK: i64 = 7;
    const BUYERS: usize = 30;
    let p = app.product(&seller, 100, STOCK).await;
    let mut buyers = Vec::new();
    for _ in 0..BUYERS {
        buyers.push(app.buyer().await);
    }
    let line = [(p, 1)];
    let results = join_all(buyers.iter().map(|b| app.order(&b.token, &line))).await;
    let counts = tally(
        results
            .iter()
            .map(|r| (r.status, r.body["code"].as_str().unwrap_or("").to_owned())),
    );
    assert_eq!(
        counts.get(&(201, String::new())),
        Some(&(STOCK as usize)),
        "{counts:?}"
    );
    assert_eq!(
        counts.get(&(409, "OUT_OF_STOCK".to_owned())),
        Some(&(BUYERS - STOCK as usize)),
        "{counts:?}"
    );
    assert_eq!(app.stock(p).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_payments_never_overdraw_a_wallet() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let p = app.product(&seller, 1_000, 100).await;
    let buyer = app.funded_buyer(5_000).await;
    let mut orders = Vec::new();
    for _ in 0..12 {
        orders.push(app.order_id(&buyer.token, &[(p, 1)]).await);
    }
    let results = join_all(orders.iter().map(|o| app.pay(&buyer.token, *o))).await;
    let paid = results.iter().filter(|r| r.status == 201).count();
    let refused = results
        .iter()
        .filter(|r| r.status == 409 && r.body["code"] == "INSUFFICIENT_BALANCE")
        .count();
    assert_eq!((paid, refused), (5, 7));
    assert_eq!(app.balance(&buyer.token).await, 0);
    // balance == sum of the wallet's transactions
    let tx = app
        .get("/api/v1/balance/transactions?limit=100", Some(&buyer.token))
        .await;
    let sum: i64 = tx.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["amount"].as_i64().unwrap())
        .sum();
    assert_eq!(sum, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_charges_never_lose_an_update() {
    let app = TestApp::spawn().await;
    let buyer = app.buyer().await;
    let results = join_all((0..40).map(|_| app.charge(&buyer.token, 100))).await;
    assert!(results.iter().all(|r| r.status == 200));
    assert_eq!(app.balance(&buyer.token).await, 4_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coupon_burst_issues_exactly_its_quantity() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    const QUANTITY: usize = 10;
    let coupon = app
        .coupon_id(&seller, json!({"totalQuantity": QUANTITY}))
        .await;
    let mut buyers = Vec::new();
    for _ in 0..40 {
        buyers.push(app.buyer().await);
    }
    // Every buyer asks twice at once: per-user limit 1 must hold too.
    let requests = buyers
        .iter()
        .flat_map(|b| [app.issue(&b.token, coupon), app.issue(&b.token, coupon)]);
    let results = join_all(requests).await;
    let issued = results.iter().filter(|r| r.status == 201).count();
    assert_eq!(issued, QUANTITY);
    for r in results.iter().filter(|r| r.status != 201) {
        let code = r.body["code"].as_str().unwrap();
        assert!(
            r.status == 409 && ["COUPON_SOLD_OUT", "COUPON_ALREADY_ISSUED"].contains(&code),
            "{r:?}"
        );
    }
    let mut holders = std::collections::HashSet::new();
    for r in results.iter().filter(|r| r.status == 201) {
        assert!(
            holders.insert(r.body["userId"].as_i64().unwrap()),
            "one per user"
        );
    }
    let c = app
        .get(&format!("/api/v1/coupons/{coupon}"), Some(&seller.token))
        .await;
    assert_eq!(c.ok(200)["issuedQuantity"], QUANTITY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pay_and_cancel_race_with_exactly_one_winner() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let p = app.product(&seller, 1_000, 100).await;
    let buyer = app.funded_buyer(100_000).await;
    let mut still_paid = 0;
    for _ in 0..10 {
        let order = app.order_id(&buyer.token, &[(p, 1)]).await;
        let before = app.balance(&buyer.token).await;
        let (paid, canceled) = tokio::join!(
            app.pay(&buyer.token, order),
            app.cancel(&buyer.token, order)
        );
        let final_status = app
            .get(&format!("/api/v1/orders/{order}"), Some(&buyer.token))
            .await
            .ok(200)["status"]
            .as_str()
            .unwrap()
            .to_owned();
        let balance = app.balance(&buyer.token).await;
        match (paid.status, canceled.status) {
            // The cancel won: the payment finds a canceled order; no money moved.
            (409, 200) => {
                assert_eq!(paid.body["code"], "ORDER_NOT_PAYABLE");
                assert_eq!((final_status.as_str(), balance), ("CANCELED", before));
            }
            // The payment won and the cancel, coming after it, refunded it.
            (201, 200) => {
                assert_eq!((final_status.as_str(), balance), ("REFUNDED", before));
            }
            // The payment won while the cancel was deciding: the cancel lost with a 409.
            (201, 409) => {
                assert_eq!(canceled.body["code"], "INVALID_ORDER_STATE");
                assert_eq!((final_status.as_str(), balance), ("PAID", before - 1_000));
                still_paid += 1;
            }
            other => panic!("unexpected outcome {other:?}: {paid:?} {canceled:?}"),
        }
    }
    // Stock = initial - units of the orders that stayed paid: nothing lost, nothing doubled.
    assert_eq!(app.stock(p).await, 100 - still_paid);
}
