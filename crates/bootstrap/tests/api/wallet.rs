use crate::helpers::TestApp;

#[tokio::test]
async fn a_new_wallet_is_empty_and_charges_add_up() {
    let app = TestApp::spawn().await;
    let buyer = app.buyer().await;
    let r = app.get("/api/v1/balance", Some(&buyer.token)).await;
    let body = r.ok(200);
    assert_eq!(body["userId"], buyer.id);
    assert_eq!(body["balance"], 0);
    assert!(body["updatedAt"].as_str().unwrap().ends_with('Z'));

    let r = app.charge(&buyer.token, 10_000).await;
    let body = r.ok(200).clone();
    assert_eq!(body["userId"], buyer.id);
    assert_eq!(body["balance"], 10_000);
    let t = &body["transaction"];
    let keys: Vec<&String> = t.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "amount",
            "balanceAfter",
            "createdAt",
            "id",
            "orderId",
            "type"
        ]
    );
    assert_eq!(t["type"], "CHARGE");
    assert_eq!(t["amount"], 10_000);
    assert_eq!(t["balanceAfter"], 10_000);
    assert_eq!(t["orderId"], serde_json::Value::Null);

    app.charge(&buyer.token, 5_000).await.ok(200);
    assert_eq!(app.balance(&buyer.token).await, 15_000);
}

#[tokio::test]
async fn transactions_are_newest_first_with_an_opaque_cursor() {
    let app = TestApp::spawn().await;
    let buyer = app.buyer().await;
    for amount in 1..=5 {
        app.charge(&buyer.token, amount * 100).await.ok(200);
    }
    let r = app
        .get("/api/v1/balance/transactions?limit=2", Some(&buyer.token))
        .await;
    let page = r.ok(200).clone();
    let amounts: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts, [500, 400]);
    let mut cursor = page["nextCursor"].as_str().unwrap().to_owned();
    assert!(cursor.parse::<i64>().is_err(), "cursor is opaque: {cursor}");
    let mut seen = amounts;
    loop {
        let r = app
            .get(
                &format!("/api/v1/balance/transactions?limit=2&cursor={cursor}"),
                Some(&buyer.token),
            )
            .await;
        let page = r.ok(200).clone();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["amount"].as_i64().unwrap()),
        );
        match page["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, [500, 400, 300, 200, 100]);
    // The default page holds everything here, and it is the last page.
    let all = app
        .get("/api/v1/balance/transactions", Some(&buyer.token))
        .await;
    assert_eq!(all.ok(200)["items"].as_array().unwrap().len(), 5);
    assert_eq!(all.body["nextCursor"], serde_json::Value::Null);
}

#[tokio::test]
async fn amounts_that_are_not_positive_integers_are_invalid_amount_and_integral_floats_are_integers()
 {
    let app = TestApp::spawn().await;
    let buyer = app.funded_buyer(1_000).await;
    for amount in [
        "0",
        "-5",
        "10.5",
        "1e30",
        "9223372036854775808",
        "\"1000\"",
        "null",
        "true",
    ] {
        let r = app
            .post_raw(
                "/api/v1/balance/charge",
                Some(&buyer.token),
                &format!(r#"{{"amount":{amount}}}"#),
                &[],
            )
            .await;
        r.problem(400, "INVALID_AMOUNT");
    }
    assert_eq!(
        app.balance(&buyer.token).await,
        1_000,
        "nothing was charged"
    );
    let r = app
        .get("/api/v1/balance/transactions", Some(&buyer.token))
        .await;
    assert_eq!(r.ok(200)["items"].as_array().unwrap().len(), 1);
    // An integer written with a zero fraction or an exponent is that integer (JSON Schema
    // counts it as one, so the OpenAPI document's `integer` allows it).
    for amount in ["1000.0", "1e3"] {
        app.post_raw(
            "/api/v1/balance/charge",
            Some(&buyer.token),
            &format!(r#"{{"amount":{amount}}}"#),
            &[],
        )
        .await
        .ok(200);
    }
    assert_eq!(app.balance(&buyer.token).await, 3_000);
}

#[tokio::test]
async fn the_maximum_balance_is_never_exceeded() {
    let app = TestApp::spawn().await;
    let buyer = app.funded_buyer(999_000).await;
    let r = app.charge(&buyer.token, 1_001).await;
    r.problem(409, "BALANCE_LIMIT_EXCEEDED");
    assert_eq!(
        app.balance(&buyer.token).await,
        999_000,
        "no partial charge"
    );
    app.charge(&buyer.token, 1_000).await.ok(200);
    assert_eq!(app.balance(&buyer.token).await, 1_000_000);
    app.charge(&buyer.token, 1)
        .await
        .problem(409, "BALANCE_LIMIT_EXCEEDED");
}

#[tokio::test]
async fn the_minimum_charge_is_configurable() {
    let app = TestApp::spawn_with(|c| c.shop.wallet.min_charge = 10_000).await;
    let buyer = app.buyer().await;
    app.charge(&buyer.token, 9_999)
        .await
        .problem(400, "INVALID_AMOUNT");
    app.charge(&buyer.token, 10_000).await.ok(200);
}
