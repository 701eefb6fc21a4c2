use crate::helpers::TestApp;
use serde_json::Value;

#[tokio::test]
async fn admins_see_the_outbox_events_of_payments_and_refunds() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let p = app.product(&seller, 100, 10).await;
    let buyer = app.funded_buyer(1_000).await;
    let order = app.order_id(&buyer.token, &[(p, 2)]).await;
    app.pay(&buyer.token, order).await.ok(201);
    app.cancel(&buyer.token, order).await.ok(200);

    let r = app
        .get("/api/v1/admin/outbox", Some(&app.admin_token))
        .await;
    let items = r.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    let newest = &items[0];
    let keys: Vec<&String> = newest.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "aggregateId",
            "aggregateType",
            "attempts",
            "createdAt",
            "eventId",
            "eventType",
            "id",
            "lastError",
            "payload",
            "sentAt",
            "status"
        ]
    );
    assert_eq!(newest["eventType"], "ORDER_REFUNDED");
    assert_eq!(items[1]["eventType"], "ORDER_PAID");
    assert_eq!(items[1]["aggregateId"], order.to_string());
    assert_eq!(items[1]["payload"]["orderId"], order);
    assert_eq!(r.body["nextCursor"], Value::Null);

    app.eventually("the relay sends both events", || async {
        let r = app
            .get(
                "/api/v1/admin/outbox?status=SENT&limit=10",
                Some(&app.admin_token),
            )
            .await;
        r.ok(200)["items"].as_array().unwrap().len() == 2
    })
    .await;
    let ready = app
        .get("/api/v1/admin/outbox?status=READY", Some(&app.admin_token))
        .await;
    assert_eq!(ready.ok(200)["items"].as_array().unwrap().len(), 0);
    let sent = app
        .get(
            "/api/v1/admin/outbox?status=SENT&limit=1",
            Some(&app.admin_token),
        )
        .await;
    assert!(sent.ok(200)["items"][0]["sentAt"].is_string());
    assert!(sent.body["nextCursor"].is_string());

    // Only FAILED rows can be re-driven.
    let id = items[0]["id"].as_i64().unwrap();
    let r = app
        .post_raw(
            &format!("/api/v1/admin/outbox/{id}/retry"),
            Some(&app.admin_token),
            "",
            &[],
        )
        .await;
    r.problem(409, "OUTBOX_EVENT_NOT_FAILED");
    // Like every state-changing POST it takes an Idempotency-Key: the refusal is replayed.
    let key = [("Idempotency-Key", "redrive-1")];
    let path = format!("/api/v1/admin/outbox/{id}/retry");
    let first = app.post_raw(&path, Some(&app.admin_token), "", &key).await;
    first.problem(409, "OUTBOX_EVENT_NOT_FAILED");
    let again = app.post_raw(&path, Some(&app.admin_token), "", &key).await;
    assert_eq!((again.status, &again.raw), (409, &first.raw));
    assert_eq!(again.header("Idempotent-Replayed"), Some("true"));
    app.post_raw(
        "/api/v1/admin/outbox/999999/retry",
        Some(&app.admin_token),
        "",
        &[],
    )
    .await
    .problem(404, "NOT_FOUND");
}

#[tokio::test]
async fn the_outbox_is_for_admins_only() {
    let app = TestApp::spawn().await;
    let buyer = app.buyer().await;
    let seller = app.seller().await;
    for token in [&buyer.token, &seller.token] {
        app.get("/api/v1/admin/outbox", Some(token))
            .await
            .problem(403, "FORBIDDEN");
        app.post_raw("/api/v1/admin/outbox/1/retry", Some(token), "", &[])
            .await
            .problem(403, "FORBIDDEN");
    }
    app.get("/api/v1/admin/outbox", None)
        .await
        .problem(401, "UNAUTHENTICATED");
    app.get("/api/v1/admin/outbox?status=LOST", Some(&app.admin_token))
        .await
        .invalid("status");
}
