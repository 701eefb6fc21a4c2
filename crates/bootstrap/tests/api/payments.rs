use crate::helpers::TestApp;
use serde_json::json;

#[tokio::test]
async fn paying_debits_the_wallet_and_marks_the_order_paid() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let p = app.product(&seller, 1_500, 10).await;
    let buyer = app.funded_buyer(5_000).await;
    let order = app.order_id(&buyer.token, &[(p, 2)]).await;
    let r = app.pay(&buyer.token, order).await;
    let payment = r.ok(201).clone();
    let keys: Vec<&String> = payment.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "amount",
            "createdAt",
            "id",
            "method",
            "orderId",
            "status",
            "userId"
        ]
    );
    assert_eq!(payment["orderId"], order);
    assert_eq!(payment["userId"], buyer.id);
    assert_eq!(payment["amount"], 3_000);
    assert_eq!(payment["method"], "WALLET");
    assert_eq!(payment["status"], "SUCCEEDED");
    assert_eq!(app.balance(&buyer.token).await, 2_000);

    let id = payment["id"].as_i64().unwrap();
    let again = app
        .get(&format!("/api/v1/payments/{id}"), Some(&buyer.token))
        .await;
    assert_eq!(again.ok(200), &payment);
    let other = app.buyer().await;
    app.get(&format!("/api/v1/payments/{id}"), Some(&other.token))
        .await
        .problem(404, "NOT_FOUND");
    app.get(&format!("/api/v1/payments/{id}"), Some(&app.admin_token))
        .await
        .ok(200);
    app.get("/api/v1/payments/999999", Some(&buyer.token))
        .await
        .problem(404, "NOT_FOUND");

    let o = app
        .get(&format!("/api/v1/orders/{order}"), Some(&buyer.token))
        .await;
    assert_eq!(o.ok(200)["status"], "PAID");
    app.pay(&buyer.token, order)
        .await
        .problem(409, "ORDER_NOT_PAYABLE");
    assert_eq!(app.balance(&buyer.token).await, 2_000, "no double charge");
}

#[tokio::test]
async fn insufficient_balance_leaves_the_order_payable_later() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let p = app.product(&seller, 4_000, 10).await;
    let buyer = app.funded_buyer(3_000).await;
    let order = app.order_id(&buyer.token, &[(p, 1)]).await;
    app.pay(&buyer.token, order)
        .await
        .problem(409, "INSUFFICIENT_BALANCE");
    assert_eq!(app.balance(&buyer.token).await, 3_000);
    let o = app
        .get(&format!("/api/v1/orders/{order}"), Some(&buyer.token))
        .await;
    assert_eq!(o.ok(200)["status"], "CREATED");
    app.charge(&buyer.token, 1_000).await.ok(200);
    app.pay(&buyer.token, order).await.ok(201);
    assert_eq!(app.balance(&buyer.token).await, 0);
}

#[tokio::test]
async fn nobody_pays_someone_elses_order() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let p = app.product(&seller, 100, 10).await;
    let owner = app.funded_buyer(1_000).await;
    let thief = app.funded_buyer(1_000).await;
    let order = app.order_id(&owner.token, &[(p, 1)]).await;
    app.pay(&thief.token, order).await.problem(404, "NOT_FOUND");
    app.pay(&thief.token, 999_999)
        .await
        .problem(404, "NOT_FOUND");
    assert_eq!(app.balance(&thief.token).await, 1_000);
    let canceled = app.order_id(&owner.token, &[(p, 1)]).await;
    app.cancel(&owner.token, canceled).await.ok(200);
    app.pay(&owner.token, canceled)
        .await
        .problem(409, "ORDER_NOT_PAYABLE");
    app.post(
        "/api/v1/payments",
        Some(&owner.token),
        &json!({"orderId": 0}),
    )
    .await
    .invalid("orderId");
}
