//! Idempotency keys: claim, replay, mismatch, in progress, release; the answer of a change is
//! stored in the change's own transaction, and a claim that was taken over changes nothing.

use super::{Kit, expect_code, invalid_fields};
use application::Shop;
use application::idempotency::{Keyed, Render};
use domain::idempotency::{IN_PROGRESS_LEASE, IdempotencyClaim, IdempotencyStart, StoredResponse};
use domain::wallet::{Wallet, WalletTransaction};
use std::sync::Arc;

fn response(status: u16, body: &str) -> StoredResponse {
    StoredResponse {
        status,
        content_type: "application/json".into(),
        body: body.as_bytes().to_vec(),
    }
}

fn started(start: IdempotencyStart) -> IdempotencyClaim {
    match start {
        IdempotencyStart::Started(claim) => claim,
        other => panic!("expected Started, got {other:?}"),
    }
}

/// Renders a charge the way a client would see it, for the stored answer.
fn charge_answer() -> Render<(Wallet, WalletTransaction)> {
    Arc::new(|(wallet, tx): &(Wallet, WalletTransaction)| {
        response(
            200,
            &format!(r#"{{"balance":{},"tx":{}}}"#, wallet.balance, tx.id),
        )
    })
}

pub async fn keys_replay_refuse_and_release(shop: Shop) {
    let kit = Kit::new(shop).await;
    let (buyer, other) = (kit.buyer().await, kit.buyer().await);
    let shop = &kit.shop;
    let body = br#"{"amount":1000}"#;
    let claim = started(
        shop.begin_idempotent(buyer, "POST", "/api/v1/balance/charge", "k-1", body)
            .await
            .unwrap(),
    );
    assert_eq!(
        (claim.scope.user_id, claim.scope.key.as_str()),
        (buyer.user_id, "k-1")
    );
    // While the first request runs, the same key waits.
    expect_code(
        shop.begin_idempotent(buyer, "POST", "/api/v1/balance/charge", "k-1", body)
            .await,
        "IDEMPOTENCY_IN_PROGRESS",
    );
    let first = response(200, r#"{"balance":1000}"#);
    shop.finish_idempotent(&claim, &first).await;
    let replay = shop
        .begin_idempotent(buyer, "POST", "/api/v1/balance/charge", "k-1", body)
        .await
        .unwrap();
    assert_eq!(replay, IdempotencyStart::Replay(first));
    expect_code(
        shop.begin_idempotent(buyer, "POST", "/api/v1/balance/charge", "k-1", b"{}")
            .await,
        "IDEMPOTENCY_KEY_REUSED",
    );
    // The key is scoped to (user, method, route).
    for (actor, path) in [(other, "/api/v1/balance/charge"), (buyer, "/api/v1/orders")] {
        let start = shop
            .begin_idempotent(actor, "POST", path, "k-1", body)
            .await
            .unwrap();
        assert!(matches!(start, IdempotencyStart::Started(_)));
    }
    // A 5xx and a 400 are not kept: the key is free again.
    for status in [503, 400] {
        let key = format!("k-{status}");
        let claim = started(
            shop.begin_idempotent(buyer, "POST", "/api/v1/payments", &key, body)
                .await
                .unwrap(),
        );
        shop.finish_idempotent(&claim, &response(status, "{}"))
            .await;
        let again = shop
            .begin_idempotent(buyer, "POST", "/api/v1/payments", &key, b"{\"fixed\":true}")
            .await
            .unwrap();
        assert!(
            matches!(again, IdempotencyStart::Started(_)),
            "after a {status}"
        );
    }
    // A business refusal (409) is replayed like a success.
    let claim = started(
        shop.begin_idempotent(buyer, "POST", "/api/v1/payments", "k-409", body)
            .await
            .unwrap(),
    );
    shop.finish_idempotent(&claim, &response(409, "{}")).await;
    let again = shop
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

/// The change and its answer commit together: once the charge is in, neither a release nor a
/// refusal's answer (what a request that only saw an error would send) can free the key or
/// replace the answer; a retry replays it.
pub async fn a_committed_change_keeps_its_answer(shop: Shop) {
    let kit = Kit::new(shop).await;
    let buyer = kit.buyer().await;
    let shop = &kit.shop;
    let body = br#"{"amount":700}"#;
    let path = "/api/v1/balance/charge";
    let claim = started(
        shop.begin_idempotent(buyer, "POST", path, "once", body)
            .await
            .unwrap(),
    );
    let keyed = Keyed::new(claim.clone(), charge_answer());
    let charged = shop.charge(buyer, 700, Some(&keyed)).await.unwrap();
    let stored = keyed.answer(&charged);
    // What the HTTP layer does after an ambiguous failure: release; after a refusal: store it.
    shop.finish_idempotent(&claim, &response(503, "{}")).await;
    shop.finish_idempotent(&claim, &response(409, r#"{"code":"X"}"#))
        .await;
    assert_eq!(
        shop.begin_idempotent(buyer, "POST", path, "once", body)
            .await
            .unwrap(),
        IdempotencyStart::Replay(stored)
    );
    assert_eq!(kit.balance(buyer).await, 700);
    assert_eq!(kit.wallet_rows(buyer).await.len(), 1);
}

/// A refused change stores nothing with it: its refusal is stored afterwards, and the key
/// never carries an answer the store did not commit.
pub async fn a_refused_change_leaves_the_key_to_its_refusal(shop: Shop) {
    let kit = Kit::new(shop).await;
    let buyer = kit.buyer().await;
    let shop = &kit.shop;
    let max = shop.config().wallet.max_balance;
    let body = br#"{"amount":"too much"}"#;
    let path = "/api/v1/balance/charge";
    let claim = started(
        shop.begin_idempotent(buyer, "POST", path, "big", body)
            .await
            .unwrap(),
    );
    let keyed = Keyed::new(claim.clone(), charge_answer());
    expect_code(
        shop.charge(buyer, max + 1, Some(&keyed)).await,
        "BALANCE_LIMIT_EXCEEDED",
    );
    // Still in progress: the use case wrote nothing under the key.
    expect_code(
        shop.begin_idempotent(buyer, "POST", path, "big", body)
            .await,
        "IDEMPOTENCY_IN_PROGRESS",
    );
    shop.finish_idempotent(&claim, &response(409, "{}")).await;
    assert!(matches!(
        shop.begin_idempotent(buyer, "POST", path, "big", body).await,
        Ok(IdempotencyStart::Replay(r)) if r.status == 409
    ));
    assert_eq!(kit.balance(buyer).await, 0);
}

/// A request whose claim was taken over after the lease (it looked dead) can no longer commit
/// its change: only the new owner's change counts, whatever order they finish in.
pub async fn a_claim_taken_over_cannot_commit(shop: Shop) {
    let kit = Kit::new(shop).await;
    let buyer = kit.buyer().await;
    let shop = &kit.shop;
    let body = br#"{"amount":500}"#;
    let path = "/api/v1/balance/charge";
    let old = started(
        shop.begin_idempotent(buyer, "POST", path, "slow", body)
            .await
            .unwrap(),
    );
    kit.advance(IN_PROGRESS_LEASE);
    let new = started(
        shop.begin_idempotent(buyer, "POST", path, "slow", body)
            .await
            .unwrap(),
    );
    assert_ne!(old.token, new.token);
    let stale = Keyed::new(old.clone(), charge_answer());
    expect_code(
        shop.charge(buyer, 500, Some(&stale)).await,
        "IDEMPOTENCY_IN_PROGRESS",
    );
    assert_eq!(
        kit.balance(buyer).await,
        0,
        "the stale owner's charge rolled back"
    );
    // Nor can the stale owner free or answer the key.
    shop.finish_idempotent(&old, &response(503, "{}")).await;
    expect_code(
        shop.begin_idempotent(buyer, "POST", path, "slow", body)
            .await,
        "IDEMPOTENCY_IN_PROGRESS",
    );
    let current = Keyed::new(new, charge_answer());
    let charged = shop.charge(buyer, 500, Some(&current)).await.unwrap();
    assert_eq!(
        shop.begin_idempotent(buyer, "POST", path, "slow", body)
            .await
            .unwrap(),
        IdempotencyStart::Replay(current.answer(&charged))
    );
    assert_eq!(kit.balance(buyer).await, 500);
}
