use crate::helpers::TestApp;
use serde_json::{Value, json};

#[tokio::test]
async fn a_seller_publishes_a_coupon_and_buyers_see_it() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let r = app
        .coupon(
            &seller,
            json!({"discountType": "PERCENT", "amount": null, "percent": 10,
                   "maxDiscount": 5000, "minOrderAmount": 10000, "totalQuantity": 3,
                   "perUserLimit": 2}),
        )
        .await;
    let c = r.ok(201).clone();
    let keys: Vec<&String> = c.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "amount",
            "createdAt",
            "discountType",
            "expiresAt",
            "id",
            "issuedQuantity",
            "maxDiscount",
            "minOrderAmount",
            "name",
            "perUserLimit",
            "percent",
            "remainingQuantity",
            "sellerId",
            "startsAt",
            "totalQuantity"
        ]
    );
    assert_eq!(c["discountType"], "PERCENT");
    assert_eq!(c["amount"], Value::Null);
    assert_eq!(c["percent"], 10);
    assert_eq!(c["maxDiscount"], 5000);
    assert_eq!(c["minOrderAmount"], 10000);
    assert_eq!(c["perUserLimit"], 2);
    assert_eq!(
        (
            c["issuedQuantity"].as_i64(),
            c["remainingQuantity"].as_i64()
        ),
        (Some(0), Some(3))
    );
    assert_eq!(c["sellerId"], seller.id);

    let buyer = app.buyer().await;
    let id = c["id"].as_i64().unwrap();
    let one = app
        .get(&format!("/api/v1/coupons/{id}"), Some(&buyer.token))
        .await;
    assert_eq!(one.ok(200), &c);
    let list = app.get("/api/v1/coupons", Some(&buyer.token)).await;
    let items = list.ok(200)["items"].as_array().unwrap().clone();
    assert!(items.iter().any(|i| i["id"] == id));
    app.get("/api/v1/coupons/999999", Some(&buyer.token))
        .await
        .problem(404, "NOT_FOUND");
}

#[tokio::test]
async fn buyers_cannot_publish_and_coupon_fields_are_validated() {
    let app = TestApp::spawn().await;
    let buyer = app.buyer().await;
    app.coupon(&buyer, json!({}))
        .await
        .problem(403, "FORBIDDEN");
    let seller = app.seller().await;
    for (extra, field) in [
        (json!({"totalQuantity": 0}), "totalQuantity"),
        (
            json!({"discountType": "PERCENT", "amount": null, "percent": 101}),
            "percent",
        ),
        (json!({"discountType": "FREE"}), "discountType"),
        (json!({"startsAt": "yesterday"}), "startsAt"),
        (json!({"expiresAt": "2000-01-01T00:00:00Z"}), "expiresAt"),
        (json!({"totalQuantity": 1.5}), "totalQuantity"),
    ] {
        app.coupon(&seller, extra).await.invalid(field);
    }
    let list = app.get("/api/v1/coupons", Some(&seller.token)).await;
    assert_eq!(list.ok(200)["items"], json!([]), "nothing was published");
}

#[tokio::test]
async fn issuance_is_first_come_and_limited_per_user() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let coupon = app.coupon_id(&seller, json!({"totalQuantity": 2})).await;
    let a = app.buyer().await;
    let r = app.issue(&a.token, coupon).await;
    let issue = r.ok(201).clone();
    let keys: Vec<&String> = issue.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "couponId", "id", "issuedAt", "orderId", "status", "usedAt", "userId"
        ]
    );
    assert_eq!(issue["status"], "ISSUED");
    assert_eq!(issue["couponId"], coupon);
    assert_eq!(issue["userId"], a.id);
    assert_eq!(
        (&issue["usedAt"], &issue["orderId"]),
        (&Value::Null, &Value::Null)
    );

    app.issue(&a.token, coupon)
        .await
        .problem(409, "COUPON_ALREADY_ISSUED");
    let b = app.buyer().await;
    app.issue(&b.token, coupon).await.ok(201);
    let c = app.buyer().await;
    app.issue(&c.token, coupon)
        .await
        .problem(409, "COUPON_SOLD_OUT");
    app.issue(&c.token, 999_999).await.problem(404, "NOT_FOUND");

    let after = app
        .get(&format!("/api/v1/coupons/{coupon}"), Some(&c.token))
        .await;
    assert_eq!(after.ok(200)["issuedQuantity"], 2);
    assert_eq!(after.body["remainingQuantity"], 0);
    let list = app.get("/api/v1/coupons", Some(&c.token)).await;
    assert!(
        !list.ok(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == coupon),
        "sold-out coupons are not listed"
    );
}

#[tokio::test]
async fn a_coupon_cannot_be_issued_outside_its_window() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let later = app
        .coupon_id(
            &seller,
            json!({"startsAt": fmt(now + time::Duration::hours(1)),
                   "expiresAt": fmt(now + time::Duration::hours(2))}),
        )
        .await;
    let buyer = app.buyer().await;
    app.issue(&buyer.token, later)
        .await
        .problem(409, "COUPON_NOT_ACTIVE");
    let my = app.get("/api/v1/coupons/my", Some(&buyer.token)).await;
    assert_eq!(my.ok(200)["items"], json!([]));
}

#[tokio::test]
async fn my_coupons_show_their_policy_and_follow_the_order() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let coupon = app
        .coupon_id(&seller, json!({"amount": 1000, "minOrderAmount": 5000}))
        .await;
    let product = app.product(&seller, 3000, 10).await;
    let buyer = app.funded_buyer(50_000).await;
    let issue = app.issue(&buyer.token, coupon).await.ok(201)["id"]
        .as_i64()
        .unwrap();

    let my = app.get("/api/v1/coupons/my", Some(&buyer.token)).await;
    let held = my.ok(200)["items"][0].clone();
    let keys: Vec<&String> = held.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "coupon", "couponId", "id", "issuedAt", "orderId", "status", "usedAt", "userId"
        ]
    );
    assert_eq!(held["id"], issue);
    assert_eq!(held["status"], "ISSUED");
    assert_eq!(held["coupon"]["id"], coupon);

    // Below the minimum: not applicable, nothing reserved.
    let r = app
        .post(
            "/api/v1/orders",
            Some(&buyer.token),
            &json!({"items": [{"productId": product, "quantity": 1}], "couponIssueId": issue}),
        )
        .await;
    r.problem(409, "COUPON_NOT_APPLICABLE");
    assert_eq!(app.stock(product).await, 10);

    let r = app
        .post(
            "/api/v1/orders",
            Some(&buyer.token),
            &json!({"items": [{"productId": product, "quantity": 2}], "couponIssueId": issue}),
        )
        .await;
    let order = r.ok(201).clone();
    assert_eq!(order["subtotal"], 6000);
    assert_eq!(order["discount"], 1000);
    assert_eq!(order["totalAmount"], 5000);
    assert_eq!(order["couponIssueId"], issue);

    let used = app
        .get("/api/v1/coupons/my?status=USED", Some(&buyer.token))
        .await;
    let used = used.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(used.len(), 1);
    assert_eq!(used[0]["orderId"], order["id"]);
    assert!(used[0]["usedAt"].is_string());
    let issued = app
        .get("/api/v1/coupons/my?status=ISSUED", Some(&buyer.token))
        .await;
    assert_eq!(issued.ok(200)["items"], json!([]));

    // A used coupon cannot be applied twice.
    let r = app
        .post(
            "/api/v1/orders",
            Some(&buyer.token),
            &json!({"items": [{"productId": product, "quantity": 2}], "couponIssueId": issue}),
        )
        .await;
    r.problem(409, "COUPON_NOT_APPLICABLE");

    // Canceling the order gives the coupon back.
    app.cancel(&buyer.token, order["id"].as_i64().unwrap())
        .await
        .ok(200);
    let issued = app
        .get("/api/v1/coupons/my?status=ISSUED", Some(&buyer.token))
        .await;
    assert_eq!(issued.ok(200)["items"][0]["id"], issue);

    app.get("/api/v1/coupons/my?status=LOST", Some(&buyer.token))
        .await
        .invalid("status");
}

#[tokio::test]
async fn issuance_fails_closed_when_the_gate_is_down() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let coupon = app.coupon_id(&seller, json!({"totalQuantity": 5})).await;
    let buyer = app.buyer().await;
    app.set_gate_available(false);
    let r = app.issue(&buyer.token, coupon).await;
    r.problem(503, "UNAVAILABLE");
    assert!(r.header("retry-after").is_some());
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        !detail.contains("gate") || !detail.contains("redis"),
        "{detail}"
    );
    let after = app
        .get(&format!("/api/v1/coupons/{coupon}"), Some(&buyer.token))
        .await;
    assert_eq!(after.ok(200)["issuedQuantity"], 0, "nothing issued");
    app.set_gate_available(true);
    app.issue(&buyer.token, coupon).await.ok(201);
}

#[tokio::test]
async fn asynchronous_issuance_answers_202_and_the_issue_appears() {
    let app = TestApp::spawn_with(|c| {
        c.shop.coupon_issue_mode = application::CouponIssueMode::Async;
    })
    .await;
    let seller = app.seller().await;
    let coupon = app.coupon_id(&seller, json!({"totalQuantity": 5})).await;
    let buyer = app.buyer().await;
    let r = app.issue(&buyer.token, coupon).await;
    let body = r.ok(202).clone();
    assert_eq!(body["status"], "PENDING");
    assert_eq!(body["couponId"], coupon);
    assert_eq!(body["userId"], buyer.id);
    assert!(body["requestId"].as_str().is_some_and(|s| !s.is_empty()));
    app.eventually("the pending issue is written", || async {
        let my = app.get("/api/v1/coupons/my", Some(&buyer.token)).await;
        my.ok(200)["items"].as_array().unwrap().len() == 1
    })
    .await;
}
