//! Idempotency keys: claim, replay, mismatch, in progress, release.

use super::{Kit, expect_code, invalid_fields};
use application::Shop;
use domain::idempotency::{IdempotencyStart, StoredResponse};

fn response(status: u16, body: &str) -> StoredResponse {
    StoredResponse {
        status,
        content_type: "application/json".into(),
        body: body.as_bytes().to_vec(),
    }
}

pub async fn keys_replay_refuse_and_release(shop: Shop) {
    let kit = Kit::new(shop).await;
    let (buyer, other) = (kit.buyer().await, kit.buyer().await);
    let shop = &kit.shop;
    let body = br#"{"amount":1000}"#;
    let (scope, start) = shop
        .begin_idempotent(buyer, "POST", "/api/v1/balance/charge", "k-1", body)
        .await
        .unwrap();
    assert_eq!(start, IdempotencyStart::Started);
    assert_eq!((scope.user_id, scope.key.as_str()), (buyer.user_id, "k-1"));
    // While the first request runs, the same key waits.
    expect_code(
        shop.begin_idempotent(buyer, "POST", "/api/v1/balance/charge", "k-1", body)
            .await,
        "IDEMPOTENCY_IN_PROGRESS",
    );
    let first = response(200, r#"{"balance":1000}"#);
    shop.finish_idempotent(&scope, first.clone()).await;
    let (_, replay) = shop
        .begin_idempotent(buyer, "POST", "/api/v1/balance/charge", "k-1", body)
        .await
        .unwrap();
    assert_eq!(replay, IdempotencyStart::Replay(first));
    expect_code(
        shop.begin_idempotent(buyer, "POST", "/api/v1/balance/charge", "k-1", b"{}")
            .await,
        "IDEMPOTENCY_KEY_REUSED",
    );
    // The key is scoped to (user, method, path).
    for (actor, path) in [(other, "/api/v1/balance/charge"), (buyer, "/api/v1/orders")] {
        let (_, start) = shop
            .begin_idempotent(actor, "POST", path, "k-1", body)
            .await
            .unwrap();
        assert_eq!(start, IdempotencyStart::Started);
    }
    // A 5xx and a 400 are not kept: the key is free again.
    for status in [503, 400] {
        let key = format!("k-{status}");
        let (scope, _) = shop
            .begin_idempotent(buyer, "POST", "/api/v1/payments", &key, body)
            .await
            .unwrap();
        shop.finish_idempotent(&scope, response(status, "{}")).await;
        let (_, again) = shop
            .begin_idempotent(buyer, "POST", "/api/v1/payments", &key, b"{\"fixed\":true}")
            .await
            .unwrap();
        assert_eq!(again, IdempotencyStart::Started, "after a {status}");
    }
    // A business refusal (409) is replayed like a success.
    let (scope, _) = shop
        .begin_idempotent(buyer, "POST", "/api/v1/payments", "k-409", body)
        .await
        .unwrap();
    shop.finish_idempotent(&scope, response(409, "{}")).await;
    let (_, again) = shop
        .begin_idempotent(buyer, "POST", "/api/v1/payments", "k-409", body)
        .await
        .unwrap();
    assert!(matches!(again, IdempotencyStart::Replay(r) if r.status == 409));
    for bad in ["", "tab\there", &"k".repeat(256), "키"] {
        assert_eq!(
            invalid_fields(shop.begin_idempotent(buyer, "POST", "/x", bad, body).await),
            ["Idempotency-Key"]
        );
    }
}
