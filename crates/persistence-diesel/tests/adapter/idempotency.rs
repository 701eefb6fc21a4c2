use crate::common::TestDb;
use crate::common::fixtures::{NOW, user};
use domain::UserId;
use domain::idempotency::{
    IN_PROGRESS_LEASE, IdempotencyKey, IdempotencyRequest, IdempotencyScope, IdempotencyStart,
    RETENTION, StoredResponse,
};
use domain::ports::{IdempotencyStore, UnitOfWork};
use domain::user::Role;
use time::Duration;

pub fn scope(user: i64, key: &str) -> IdempotencyScope {
    IdempotencyScope {
        user_id: UserId(user),
        method: "POST".into(),
        path: "/api/v1/orders".into(),
        key: IdempotencyKey::new(key).unwrap(),
    }
}

fn request(scope: &IdempotencyScope, body: &str, now: time::OffsetDateTime) -> IdempotencyRequest {
    IdempotencyRequest {
        scope: scope.clone(),
        fingerprint: body.into(),
        now,
    }
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
    assert_eq!(
        store.start(&request(&s, "A", NOW)).await.unwrap(),
        IdempotencyStart::Started
    );
    assert_eq!(
        store.start(&request(&s, "A", NOW)).await.unwrap(),
        IdempotencyStart::InProgress
    );
    assert_eq!(
        store.start(&request(&s, "B", NOW)).await.unwrap(),
        IdempotencyStart::Mismatch
    );
    store.complete(&s, &response(201), NOW).await.unwrap();
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
    store.complete(&s, &response(500), NOW).await.unwrap();
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
    assert_eq!(
        store.start(&request(&s, "A", NOW)).await.unwrap(),
        IdempotencyStart::Started
    );
    let other_user = scope(b, "k");
    let mut other_path = scope(a, "k");
    other_path.path = "/api/v1/payments".into();
    let mut other_method = scope(a, "k");
    other_method.method = "PUT".into();
    for s in [other_user, other_path, other_method] {
        assert_eq!(
            store.start(&request(&s, "A", NOW)).await.unwrap(),
            IdempotencyStart::Started,
            "{s:?}"
        );
    }
}

#[tokio::test]
async fn an_abandoned_key_can_be_started_again_with_any_body() {
    let db = TestDb::new().await;
    let store = db.store.idempotency();
    let s = scope(buyer(&db).await, "k");
    assert_eq!(
        store.start(&request(&s, "A", NOW)).await.unwrap(),
        IdempotencyStart::Started
    );
    store.abandon(&s).await.unwrap();
    assert_eq!(
        store.start(&request(&s, "B", NOW)).await.unwrap(),
        IdempotencyStart::Started
    );
    // Abandoning a completed key changes nothing.
    store.complete(&s, &response(200), NOW).await.unwrap();
    store.abandon(&s).await.unwrap();
    assert_eq!(
        store.start(&request(&s, "B", NOW)).await.unwrap(),
        IdempotencyStart::Replay(response(200))
    );
    // Neither does abandoning or completing a key nobody started.
    store.abandon(&scope(1, "nobody")).await.unwrap();
    store
        .complete(&scope(1, "nobody"), &response(200), NOW)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_claim_older_than_the_lease_is_taken_over_by_the_same_request() {
    let db = TestDb::new().await;
    let store = db.store.idempotency();
    let s = scope(buyer(&db).await, "k");
    assert_eq!(
        store.start(&request(&s, "A", NOW)).await.unwrap(),
        IdempotencyStart::Started
    );
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
    assert_eq!(
        store.start(&request(&s, "A", after)).await.unwrap(),
        IdempotencyStart::Started
    );
    // The new claim has a fresh lease.
    assert_eq!(
        store
            .start(&request(&s, "A", after + Duration::SECOND))
            .await
            .unwrap(),
        IdempotencyStart::InProgress
    );
}

#[tokio::test]
async fn records_past_retention_behave_as_purged() {
    let db = TestDb::new().await;
    let store = db.store.idempotency();
    let s = scope(buyer(&db).await, "k");
    let kept = scope(s.user_id.0, "kept");
    store.start(&request(&s, "A", NOW)).await.unwrap();
    store.complete(&s, &response(201), NOW).await.unwrap();
    store
        .start(&request(&kept, "A", NOW + Duration::HOUR))
        .await
        .unwrap();
    store
        .complete(&kept, &response(201), NOW + Duration::HOUR)
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
    store.start(&request(&stuck, "A", NOW)).await.unwrap();
    assert_eq!(
        store
            .start(&request(&stuck, "B", NOW + RETENTION - Duration::SECOND))
            .await
            .unwrap(),
        IdempotencyStart::Mismatch
    );
    assert_eq!(
        store
            .start(&request(&stuck, "B", NOW + RETENTION))
            .await
            .unwrap(),
        IdempotencyStart::Started
    );
    let late = scope(s.user_id.0, "late");
    store.start(&request(&late, "A", NOW)).await.unwrap();
    store.complete(&late, &response(201), NOW).await.unwrap();
    assert_eq!(
        store
            .start(&request(&late, "B", NOW + RETENTION))
            .await
            .unwrap(),
        IdempotencyStart::Started
    );
}
