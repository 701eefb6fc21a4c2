use crate::helpers::TestApp;
use domain::idempotency::IdempotencyStart;
use serde_json::json;

#[tokio::test]
async fn a_charge_with_a_key_is_replayed_byte_for_byte() {
    let app = TestApp::spawn().await;
    let buyer = app.buyer().await;
    let body = json!({"amount": 1_000});
    let first = app
        .post_key("/api/v1/balance/charge", &buyer.token, "charge-1", &body)
        .await;
    first.ok(200);
    let again = app
        .post_key("/api/v1/balance/charge", &buyer.token, "charge-1", &body)
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.raw, first.raw, "byte for byte");
    assert_eq!(again.header("content-type"), first.header("content-type"));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.balance(&buyer.token).await, 1_000, "charged once");

    // Another key is another request.
    app.post_key("/api/v1/balance/charge", &buyer.token, "charge-2", &body)
        .await
        .ok(200);
    assert_eq!(app.balance(&buyer.token).await, 2_000);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422() {
    let app = TestApp::spawn().await;
    let buyer = app.buyer().await;
    app.post_key(
        "/api/v1/balance/charge",
        &buyer.token,
        "k",
        &json!({"amount": 1_000}),
    )
    .await
    .ok(200);
    app.post_key(
        "/api/v1/balance/charge",
        &buyer.token,
        "k",
        &json!({"amount": 2_000}),
    )
    .await
    .problem(422, "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(app.balance(&buyer.token).await, 1_000);
}

#[tokio::test]
async fn keys_are_scoped_per_user_and_path() {
    let app = TestApp::spawn().await;
    let a = app.buyer().await;
    let b = app.buyer().await;
    let body = json!({"amount": 500});
    app.post_key("/api/v1/balance/charge", &a.token, "shared", &body)
        .await
        .ok(200);
    app.post_key("/api/v1/balance/charge", &b.token, "shared", &body)
        .await
        .ok(200);
    assert_eq!(app.balance(&a.token).await, 500);
    assert_eq!(app.balance(&b.token).await, 500);
    let seller = app.seller().await;
    let p = app.product(&seller, 100, 5).await;
    let r = app
        .post_key(
            "/api/v1/orders",
            &a.token,
            "shared",
            &json!({"items": [{"productId": p, "quantity": 1}]}),
        )
        .await;
    r.ok(201);
}

#[tokio::test]
async fn a_request_that_fails_validation_is_not_stored() {
    let app = TestApp::spawn().await;
    let buyer = app.buyer().await;
    let charge = "/api/v1/balance/charge";
    // Invalid amount (400): the key stays free ...
    app.post_key(charge, &buyer.token, "retry-me", &json!({"amount": 0}))
        .await
        .problem(400, "INVALID_AMOUNT");
    // ... so the corrected request with the same key runs (not 422, not a replayed 400).
    let r = app
        .post_key(charge, &buyer.token, "retry-me", &json!({"amount": 700}))
        .await;
    r.ok(200);
    assert!(r.header("idempotent-replayed").is_none());
    assert_eq!(app.balance(&buyer.token).await, 700);

    // The same for an order refused by the use case's own validation.
    let seller = app.seller().await;
    let p = app.product(&seller, 100, 5).await;
    let bad = json!({"items": [{"productId": p, "quantity": 0}]});
    app.post_key("/api/v1/orders", &buyer.token, "order-key", &bad)
        .await
        .invalid("items[0].quantity");
    let good = json!({"items": [{"productId": p, "quantity": 1}]});
    app.post_key("/api/v1/orders", &buyer.token, "order-key", &good)
        .await
        .ok(201);
}

#[tokio::test]
async fn business_refusals_are_replayed_too() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let p = app.product(&seller, 100, 1).await;
    let buyer = app.buyer().await;
    let body = json!({"items": [{"productId": p, "quantity": 2}]});
    let first = app
        .post_key("/api/v1/orders", &buyer.token, "o", &body)
        .await;
    first.problem(409, "OUT_OF_STOCK");
    // Stock arrives, but the same key still answers what it answered.
    app.post(
        &format!("/api/v1/products/{p}/stock-adjustments"),
        Some(&seller.token),
        &json!({"delta": 5}),
    )
    .await
    .ok(200);
    let again = app
        .post_key("/api/v1/orders", &buyer.token, "o", &body)
        .await;
    assert_eq!((again.status, &again.raw), (409, &first.raw));
    assert_eq!(app.stock(p).await, 6);
}

#[tokio::test]
async fn orders_payments_and_cancels_are_replayed_without_repeating_effects() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let p = app.product(&seller, 1_000, 10).await;
    let buyer = app.funded_buyer(10_000).await;
    let body = json!({"items": [{"productId": p, "quantity": 2}]});
    let first = app
        .post_key("/api/v1/orders", &buyer.token, "place", &body)
        .await;
    let order = first.ok(201)["id"].as_i64().unwrap();
    let again = app
        .post_key("/api/v1/orders", &buyer.token, "place", &body)
        .await;
    assert_eq!((again.status, &again.raw), (201, &first.raw));
    assert_eq!(app.stock(p).await, 8, "one reservation");

    let pay = json!({"orderId": order});
    let paid = app
        .post_key("/api/v1/payments", &buyer.token, "pay", &pay)
        .await;
    paid.ok(201);
    let repaid = app
        .post_key("/api/v1/payments", &buyer.token, "pay", &pay)
        .await;
    assert_eq!((repaid.status, &repaid.raw), (201, &paid.raw));
    assert_eq!(app.balance(&buyer.token).await, 8_000, "one debit");

    let path = format!("/api/v1/orders/{order}/cancel");
    let key = [("Idempotency-Key", "cancel")];
    let canceled = app.post_raw(&path, Some(&buyer.token), "", &key).await;
    assert_eq!(canceled.ok(200)["status"], "REFUNDED");
    let recanceled = app.post_raw(&path, Some(&buyer.token), "", &key).await;
    assert_eq!((recanceled.status, &recanceled.raw), (200, &canceled.raw));
    assert_eq!(app.balance(&buyer.token).await, 10_000, "one refund");
}

#[tokio::test]
async fn a_key_still_in_progress_is_409() {
    let app = TestApp::spawn().await;
    let buyer = app.buyer().await;
    let actor = app.shop.authenticate(&buyer.token).await.unwrap();
    let body = json!({"amount": 300}).to_string();
    // Another request holds the key (as if it were still running).
    let started = app
        .shop
        .begin_idempotent(
            actor,
            "POST",
            "/api/v1/balance/charge",
            "busy",
            body.as_bytes(),
        )
        .await
        .unwrap();
    let IdempotencyStart::Started(claim) = started else {
        panic!("the key was free: {started:?}");
    };
    let r = app
        .post_raw(
            "/api/v1/balance/charge",
            Some(&buyer.token),
            &body,
            &[("Idempotency-Key", "busy")],
        )
        .await;
    r.problem(409, "IDEMPOTENCY_IN_PROGRESS");
    assert_eq!(app.balance(&buyer.token).await, 0);
    // Only the owner can release it; then the key is free again.
    let mut stranger = claim.clone();
    stranger.token = domain::idempotency::ClaimToken(claim.token.0.wrapping_add(1));
    let idempotency = &app.shop.ports().idempotency;
    assert!(!idempotency.release(&stranger).await.unwrap());
    assert!(idempotency.release(&claim).await.unwrap());
    app.post_raw(
        "/api/v1/balance/charge",
        Some(&buyer.token),
        &body,
        &[("Idempotency-Key", "busy")],
    )
    .await
    .ok(200);
}

#[tokio::test]
async fn malformed_keys_are_refused() {
    let app = TestApp::spawn().await;
    let buyer = app.buyer().await;
    let long = "k".repeat(256);
    for key in ["", long.as_str(), "tab\there"] {
        let r = app
            .post_raw(
                "/api/v1/balance/charge",
                Some(&buyer.token),
                r#"{"amount":100}"#,
                &[("Idempotency-Key", key)],
            )
            .await;
        r.invalid("Idempotency-Key");
    }
    assert_eq!(app.balance(&buyer.token).await, 0);
}

/// A key's scope is the matched route and its parameters, not the raw path: two spellings of
/// one resource share the key (one charge, one order cancel), and replays say so.
#[tokio::test]
async fn two_spellings_of_one_route_are_one_scope() {
    let app = TestApp::spawn().await;
    let buyer = app.buyer().await;
    let body = json!({"amount": 500}).to_string();
    let key = [("Idempotency-Key", "spelled-twice")];
    let first = app
        .post_raw("/api/v1/balance/%63harge", Some(&buyer.token), &body, &key)
        .await;
    first.ok(200);
    let again = app
        .post_raw("/api/v1/balance/charge", Some(&buyer.token), &body, &key)
        .await;
    assert_eq!((again.status, &again.raw), (200, &first.raw));
    assert_eq!(again.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(app.balance(&buyer.token).await, 500, "one charge");

    let seller = app.seller().await;
    let product = app.product(&seller, 1_000, 5).await;
    let order = app.order_id(&buyer.token, &[(product, 1)]).await;
    let key = [("Idempotency-Key", "cancel-spelled-twice")];
    let canceled = app
        .post_raw(
            &format!("/api/v1/orders/{order}/cancel"),
            Some(&buyer.token),
            "",
            &key,
        )
        .await;
    canceled.ok(200);
    let again = app
        .post_raw(
            &format!("/api/v1/orders/0{order}/cancel"),
            Some(&buyer.token),
            "",
            &key,
        )
        .await;
    assert_eq!((again.status, &again.raw), (200, &canceled.raw));
    assert_eq!(again.header("Idempotent-Replayed"), Some("true"));
}
