use crate::helpers::TestApp;
use serde_json::{Value, json};

#[tokio::test]
async fn placing_an_order_reserves_stock_and_snapshots_prices() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let a = app.product(&seller, 1_000, 10).await;
    let b = app.product(&seller, 2_500, 10).await;
    let buyer = app.buyer().await;
    let r = app.order(&buyer.token, &[(a, 2), (b, 1)]).await;
    let order = r.ok(201).clone();
    let keys: Vec<&String> = order.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "canceledAt",
            "couponIssueId",
            "createdAt",
            "discount",
            "expiresAt",
            "id",
            "items",
            "paidAt",
            "status",
            "subtotal",
            "totalAmount",
            "userId"
        ]
    );
    assert_eq!(order["status"], "CREATED");
    assert_eq!(order["userId"], buyer.id);
    assert_eq!(order["subtotal"], 4_500);
    assert_eq!(order["discount"], 0);
    assert_eq!(order["totalAmount"], 4_500);
    assert_eq!(order["couponIssueId"], Value::Null);
    assert_eq!(order["paidAt"], Value::Null);
    assert_eq!(order["canceledAt"], Value::Null);
    assert!(order["expiresAt"].as_str().unwrap() > order["createdAt"].as_str().unwrap());
    let item = &order["items"][0];
    let keys: Vec<&String> = item.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["name", "productId", "quantity", "subtotal", "unitPrice"]
    );
    assert_eq!(item["productId"], a);
    assert_eq!(
        (item["unitPrice"].as_i64(), item["subtotal"].as_i64()),
        (Some(1_000), Some(2_000))
    );
    assert_eq!(app.stock(a).await, 8);
    assert_eq!(app.stock(b).await, 9);

    // A later price change does not touch the order.
    app.patch(
        &format!("/api/v1/products/{a}"),
        Some(&seller.token),
        &json!({"price": 9}),
    )
    .await
    .ok(200);
    let id = order["id"].as_i64().unwrap();
    let again = app
        .get(&format!("/api/v1/orders/{id}"), Some(&buyer.token))
        .await;
    assert_eq!(again.ok(200), &order);
}

#[tokio::test]
async fn orders_refuse_unsold_missing_and_scarce_products_atomically() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let plenty = app.product(&seller, 100, 10).await;
    let scarce = app.product(&seller, 100, 1).await;
    let paused = app.product(&seller, 100, 10).await;
    app.patch(
        &format!("/api/v1/products/{paused}"),
        Some(&seller.token),
        &json!({"status": "PAUSED"}),
    )
    .await
    .ok(200);
    let buyer = app.buyer().await;
    app.order(&buyer.token, &[(plenty, 1), (scarce, 2)])
        .await
        .problem(409, "OUT_OF_STOCK");
    app.order(&buyer.token, &[(plenty, 1), (paused, 1)])
        .await
        .problem(409, "PRODUCT_NOT_ON_SALE");
    app.order(&buyer.token, &[(plenty, 1), (999_999, 1)])
        .await
        .problem(404, "NOT_FOUND");
    assert_eq!(app.stock(plenty).await, 10, "all or nothing");
    assert_eq!(app.stock(scarce).await, 1);
    let list = app.get("/api/v1/orders", Some(&buyer.token)).await;
    assert_eq!(list.ok(200)["items"], json!([]));
}

#[tokio::test]
async fn order_lines_are_validated() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let p = app.product(&seller, 100, 10).await;
    let buyer = app.buyer().await;
    let many: Vec<Value> = (1..=51)
        .map(|i| json!({"productId": i, "quantity": 1}))
        .collect();
    for (body, field) in [
        (json!({"items": []}), "items"),
        (json!({"items": many}), "items"),
        (
            json!({"items": [{"productId": p, "quantity": 0}]}),
            "items[0].quantity",
        ),
        (
            json!({"items": [{"productId": p, "quantity": 1001}]}),
            "items[0].quantity",
        ),
        (
            json!({"items": [{"productId": p, "quantity": -1}]}),
            "items[0].quantity",
        ),
        (
            json!({"items": [{"productId": p, "quantity": 1}, {"productId": p, "quantity": 1}]}),
            "items[1].productId",
        ),
        (
            // A fraction is not a quantity (`1.0` is the integer 1, as JSON Schema reads it).
            json!({"items": [{"productId": p, "quantity": 1.5}]}),
            "items[0].quantity",
        ),
        (json!({"items": [{"productId": p}]}), "items[0].quantity"),
        (
            json!({"items": [{"productId": p, "quantity": 1, "price": 1}]}),
            "items[0].price",
        ),
        (
            json!({"items": [{"productId": 0, "quantity": 1}]}),
            "items[0].productId",
        ),
    ] {
        app.post("/api/v1/orders", Some(&buyer.token), &body)
            .await
            .invalid(field);
    }
    assert_eq!(app.stock(p).await, 10);
}

#[tokio::test]
async fn orders_list_newest_first_filter_by_status_and_stay_private() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let p = app.product(&seller, 100, 100).await;
    let buyer = app.funded_buyer(10_000).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.order_id(&buyer.token, &[(p, 1)]).await);
    }
    app.pay(&buyer.token, ids[1]).await.ok(201);

    let r = app.get("/api/v1/orders?limit=2", Some(&buyer.token)).await;
    let page = r.ok(200).clone();
    let got: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, [ids[2], ids[1]]);
    let cursor = page["nextCursor"].as_str().unwrap();
    let r = app
        .get(
            &format!("/api/v1/orders?limit=2&cursor={cursor}"),
            Some(&buyer.token),
        )
        .await;
    assert_eq!(r.ok(200)["items"][0]["id"], ids[0]);
    assert_eq!(r.body["nextCursor"], Value::Null);

    let paid = app
        .get("/api/v1/orders?status=PAID", Some(&buyer.token))
        .await;
    let paid = paid.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0]["id"], ids[1]);
    assert_eq!(paid[0]["status"], "PAID");
    assert!(paid[0]["paidAt"].is_string());

    let other = app.buyer().await;
    app.get(&format!("/api/v1/orders/{}", ids[0]), Some(&other.token))
        .await
        .problem(404, "NOT_FOUND");
    app.cancel(&other.token, ids[0])
        .await
        .problem(404, "NOT_FOUND");
    let mine = app.get("/api/v1/orders", Some(&other.token)).await;
    assert_eq!(mine.ok(200)["items"], json!([]));
    app.get(
        &format!("/api/v1/orders/{}", ids[0]),
        Some(&app.admin_token),
    )
    .await
    .ok(200);
}

#[tokio::test]
async fn canceling_restores_stock_and_refunding_restores_money() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let p = app.product(&seller, 1_000, 10).await;
    let buyer = app.funded_buyer(10_000).await;

    let created = app.order_id(&buyer.token, &[(p, 3)]).await;
    assert_eq!(app.stock(p).await, 7);
    let r = app.cancel(&buyer.token, created).await;
    let o = r.ok(200);
    assert_eq!(o["status"], "CANCELED");
    assert!(o["canceledAt"].is_string());
    assert_eq!(app.stock(p).await, 10);
    app.cancel(&buyer.token, created)
        .await
        .problem(409, "INVALID_ORDER_STATE");

    let paid = app.order_id(&buyer.token, &[(p, 2)]).await;
    app.pay(&buyer.token, paid).await.ok(201);
    assert_eq!(app.balance(&buyer.token).await, 8_000);
    let r = app.cancel(&buyer.token, paid).await;
    assert_eq!(r.ok(200)["status"], "REFUNDED");
    assert_eq!(app.balance(&buyer.token).await, 10_000);
    assert_eq!(app.stock(p).await, 10);
    app.cancel(&buyer.token, paid)
        .await
        .problem(409, "INVALID_ORDER_STATE");

    let tx = app
        .get("/api/v1/balance/transactions", Some(&buyer.token))
        .await;
    let kinds: Vec<(String, i64, Value)> = tx.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["type"].as_str().unwrap().to_owned(),
                t["amount"].as_i64().unwrap(),
                t["orderId"].clone(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("REFUND".to_owned(), 2_000, json!(paid)),
            ("PAYMENT".to_owned(), -2_000, json!(paid)),
            ("CHARGE".to_owned(), 10_000, Value::Null),
        ]
    );
    let ledger = app
        .get(
            &format!("/api/v1/products/{p}/stock-ledger"),
            Some(&seller.token),
        )
        .await;
    let reasons: Vec<(&str, i64)> = ledger.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["reason"].as_str().unwrap(), e["delta"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("CANCEL", 2),
            ("ORDER", -2),
            ("CANCEL", 3),
            ("ORDER", -3),
            ("INITIAL", 10)
        ]
    );
}

#[tokio::test]
async fn unpaid_orders_expire_after_the_payment_window() {
    let app = TestApp::spawn_with(|c| c.shop.payment_ttl = time::Duration::seconds(1)).await;
    let seller = app.seller().await;
    let p = app.product(&seller, 100, 5).await;
    let buyer = app.funded_buyer(1_000).await;
    let id = app.order_id(&buyer.token, &[(p, 2)]).await;
    app.eventually("the sweeper cancels the unpaid order", || async {
        let r = app
            .get(&format!("/api/v1/orders/{id}"), Some(&buyer.token))
            .await;
        r.ok(200)["status"] == "CANCELED"
    })
    .await;
    assert_eq!(app.stock(p).await, 5);
    app.pay(&buyer.token, id)
        .await
        .problem(409, "ORDER_NOT_PAYABLE");
    assert_eq!(app.balance(&buyer.token).await, 1_000);
}
