use crate::common::TestDb;
use crate::common::fixtures::{NOW, user};
use domain::UserId;
use domain::idempotency::{
    ClaimToken, IN_PROGRESS_LEASE, IdempotencyClaim, IdempotencyKey, IdempotencyRequest,
    IdempotencyScope, IdempotencyStart, RETENTION, StoredResponse,
};
use domain::ports::{IdempotencyStore, UnitOfWork};
use domain::user::Role;
use std::sync::atomic::{AtomicI64, Ordering};
use time::Duration;

pub fn scope(user: i64, key: &str) -> IdempotencyScope {
    IdempotencyScope {
        user_id: UserId(user),
        method: "POST".into(),
        path: "/api/v1/orders".into(),
        key: IdempotencyKey::new(key).unwrap(),
    }
}

/// Every request claims with a token of its own.
fn request(scope: &IdempotencyScope, body: &str, now: time::OffsetDateTime) -> IdempotencyRequest {
    static TOKENS: AtomicI64 = AtomicI64::new(1);
    IdempotencyRequest {
        scope: scope.clone(),
        token: ClaimToken(TOKENS.fetch_add(1, Ordering::Relaxed)),
        fingerprint: body.into(),
        now,
    }
}

/// Starts the key and returns its claim.
async fn claim(
    store: &impl IdempotencyStore,
    scope: &IdempotencyScope,
    body: &str,
    now: time::OffsetDateTime,
) -> IdempotencyClaim {
    match store.start(&request(scope, body, now)).await.unwrap() {
        IdempotencyStart::Started(claim) => claim,
        other => panic!("expected Started, got {other:?}"),
    }
}

fn is_started(start: &IdempotencyStart) -> bool {
    matches!(start, IdempotencyStart::Started(_))
}

fn response(status: u16) -> StoredResponse {
    StoredResponse {
        status,
        content_type: "application/json".into(),
        body: vec![b'{', 0, 255, b'}'],
    }
}

async fn buyer(db: &TestDb) -> i64 {
    let mut tx = db.store.begin().await.unwrap();
    let u = user(tx.as_mut(), Role::Buyer).await;
    tx.commit().await.unwrap();
    u.id.0
}

#[tokio::test]
async fn a_key_is_started_once_then_in_progress_then_replayed() {
    let db = TestDb::new().await;
    let store = db.store.idempotency();
    let s = scope(buyer(&db).await, "k1");
    let first = claim(&store, &s, "A", NOW).await;
    assert_eq!(
        store.start(&request(&s, "A", NOW)).await.unwrap(),
        IdempotencyStart::InProgress
    );
    assert_eq!(
        store.start(&request(&s, "B", NOW)).await.unwrap(),
        IdempotencyStart::Mismatch
    );
    assert!(store.complete(&first, &response(201), NOW).await.unwrap());
    assert_eq!(
        store
            .start(&request(&s, "A", NOW + Duration::HOUR))
            .await
            .unwrap(),
        IdempotencyStart::Replay(response(201))
    );
    assert_eq!(
        store.start(&request(&s, "B", NOW)).await.unwrap(),
        IdempotencyStart::Mismatch
    );
    // A second completion (a late duplicate) does not overwrite the first response.
    assert!(!store.complete(&first, &response(500), NOW).await.unwrap());
    assert_eq!(
        store.start(&request(&s, "A", NOW)).await.unwrap(),
        IdempotencyStart::Replay(response(201))
    );
}

#[tokio::test]
async fn keys_are_scoped_to_user_method_and_path() {
    let db = TestDb::new().await;
    let store = db.store.idempotency();
    let (a, b) = (buyer(&db).await, buyer(&db).await);
    let s = scope(a, "k");
    claim(&store, &s, "A", NOW).await;
    let other_user = scope(b, "k");
    let mut other_path = scope(a, "k");
    other_path.path = "/api/v1/payments".into();
    let mut other_method = scope(a, "k");
    other_method.method = "PUT".into();
    for s in [other_user, other_path, other_method] {
        assert!(
            is_started(&store.start(&request(&s, "A", NOW)).await.unwrap()),
            "{s:?}"
        );
    }
}

#[tokio::test]
async fn only_the_owner_releases_a_key_and_never_an_answered_one() {
    let db = TestDb::new().await;
    let store = db.store.idempotency();
    let s = scope(buyer(&db).await, "k");
    let first = claim(&store, &s, "A", NOW).await;
    let mut stranger = first.clone();
    stranger.token = ClaimToken(first.token.0 ^ 0x5555);
    assert!(!store.release(&stranger).await.unwrap());
    assert!(
        !store
            .complete(&stranger, &response(200), NOW)
            .await
            .unwrap()
    );
    assert!(store.release(&first).await.unwrap());
    let second = claim(&store, &s, "B", NOW).await;
    // Releasing a completed key changes nothing.
    assert!(store.complete(&second, &response(200), NOW).await.unwrap());
    assert!(!store.release(&second).await.unwrap());
    assert_eq!(
        store.start(&request(&s, "B", NOW)).await.unwrap(),
        IdempotencyStart::Replay(response(200))
    );
    // Neither does releasing or completing a key nobody started.
    let nobody = IdempotencyClaim {
        scope: scope(1, "nobody"),
        token: ClaimToken(1),
    };
    assert!(!store.release(&nobody).await.unwrap());
    assert!(!store.complete(&nobody, &response(200), NOW).await.unwrap());
}

#[tokio::test]
async fn a_claim_older_than_the_lease_is_taken_over_and_the_old_owner_is_fenced_off() {
    let db = TestDb::new().await;
    let store = db.store.idempotency();
    let s = scope(buyer(&db).await, "k");
    let old = claim(&store, &s, "A", NOW).await;
    let almost = NOW + IN_PROGRESS_LEASE - Duration::SECOND;
    assert_eq!(
        store.start(&request(&s, "A", almost)).await.unwrap(),
        IdempotencyStart::InProgress
    );
    let after = NOW + IN_PROGRESS_LEASE;
    // A different body is still a different request.
    assert_eq!(
        store.start(&request(&s, "B", after)).await.unwrap(),
        IdempotencyStart::Mismatch
    );
    let new = claim(&store, &s, "A", after).await;
    assert_ne!(old.token, new.token);
    // The new claim has a fresh lease.
    assert_eq!(
        store
            .start(&request(&s, "A", after + Duration::SECOND))
            .await
            .unwrap(),
        IdempotencyStart::InProgress
    );
    // The old owner can neither release, nor answer, nor commit an answer with its change.
    assert!(!store.release(&old).await.unwrap());
    assert!(!store.complete(&old, &response(201), after).await.unwrap());
    let mut tx = db.store.begin().await.unwrap();
    assert!(
        !tx.idempotency()
            .complete(&old, &response(201), after)
            .await
            .unwrap()
    );
    drop(tx);
    let mut tx = db.store.begin().await.unwrap();
    assert!(
        tx.idempotency()
            .complete(&new, &response(201), after)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert_eq!(
        store.start(&request(&s, "A", after)).await.unwrap(),
        IdempotencyStart::Replay(response(201))
    );
}

/// The answer stored by a change's transaction is undone with it.
#[tokio::test]
async fn an_answer_stored_in_a_transaction_rolls_back_with_it() {
    let db = TestDb::new().await;
    let store = db.store.idempotency();
    let s = scope(buyer(&db).await, "k");
    let first = claim(&store, &s, "A", NOW).await;
    let mut tx = db.store.begin().await.unwrap();
    assert!(
        tx.idempotency()
            .complete(&first, &response(201), NOW)
            .await
            .unwrap()
    );
    drop(tx);
    assert_eq!(
        store.start(&request(&s, "A", NOW)).await.unwrap(),
        IdempotencyStart::InProgress,
        "still the first claim, unanswered"
    );
    assert!(store.release(&first).await.unwrap());
}

/// What makes a release after an ambiguous failure safe: it waits for the transaction that
/// holds the key's row and then sees the answer that transaction committed.
#[tokio::test]
async fn a_release_waits_for_the_committing_transaction_and_then_changes_nothing() {
    let db = TestDb::new().await;
    let store = db.store.idempotency();
    let s = scope(buyer(&db).await, "k");
    let first = claim(&store, &s, "A", NOW).await;
    let mut tx = db.store.begin().await.unwrap();
    assert!(
        tx.idempotency()
            .complete(&first, &response(201), NOW)
            .await
            .unwrap()
    );
    let releasing = {
        let (store, first) = (store.clone(), first.clone());
        tokio::spawn(async move { store.release(&first).await.unwrap() })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !releasing.is_finished(),
        "the release waits for the row lock"
    );
    tx.commit().await.unwrap();
    assert!(!releasing.await.unwrap(), "the committed answer stays");
    assert_eq!(
        store.start(&request(&s, "A", NOW)).await.unwrap(),
        IdempotencyStart::Replay(response(201))
    );
}

#[tokio::test]
async fn records_past_retention_behave_as_purged() {
    let db = TestDb::new().await;
    let store = db.store.idempotency();
    let s = scope(buyer(&db).await, "k");
    let kept = scope(s.user_id.0, "kept");
    let first = claim(&store, &s, "A", NOW).await;
    store.complete(&first, &response(201), NOW).await.unwrap();
    let kept_claim = claim(&store, &kept, "A", NOW + Duration::HOUR).await;
    store
        .complete(&kept_claim, &response(201), NOW + Duration::HOUR)
        .await
        .unwrap();
    assert_eq!(
        store
            .start(&request(&s, "B", NOW + RETENTION - Duration::SECOND))
            .await
            .unwrap(),
        IdempotencyStart::Mismatch
    );
    assert_eq!(store.purge_expired(NOW + RETENTION).await.unwrap(), 1);
    assert_eq!(
        store
            .start(&request(&kept, "A", NOW + RETENTION))
            .await
            .unwrap(),
        IdempotencyStart::Replay(response(201))
    );
    // Without a purge, an expired record is replaced on the next start, whatever the body:
    // a completed one counted from its completion, an abandoned claim from its start.
    let stuck = scope(s.user_id.0, "stuck");
    claim(&store, &stuck, "A", NOW).await;
    assert_eq!(
        store
            .start(&request(&stuck, "B", NOW + RETENTION - Duration::SECOND))
            .await
            .unwrap(),
        IdempotencyStart::Mismatch
    );
    claim(&store, &stuck, "B", NOW + RETENTION).await;
    let late = scope(s.user_id.0, "late");
    let late_claim = claim(&store, &late, "A", NOW).await;
    store
        .complete(&late_claim, &response(201), NOW)
        .await
        .unwrap();
    claim(&store, &late, "B", NOW + RETENTION).await;
}
