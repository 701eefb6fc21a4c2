use crate::common::TestDb;
use crate::common::fixtures::NOW;
use domain::OutboxId;
use domain::outbox::{EventEnvelope, EventType, OutboxStatus};
use domain::page::CursorPage;
use domain::ports::{OutboxRetry, RepoError, UnitOfWork};
use time::Duration;

pub fn envelope(n: u32) -> EventEnvelope {
    EventEnvelope {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_type: EventType::OrderPaid,
        aggregate_type: "ORDER".into(),
        aggregate_id: n.to_string(),
        occurred_at: NOW,
        payload: serde_json::json!({"orderId": n, "items": [{"productId": 1, "quantity": 2}], "total": 1.5}),
    }
}

#[tokio::test]
async fn append_writes_a_ready_event_due_now_and_keeps_the_envelope() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let e = envelope(1);
    let stored = tx.outbox().append(e.clone(), NOW).await.unwrap();
    assert_eq!(stored.envelope, e);
    assert_eq!(
        (
            stored.status,
            stored.attempts,
            stored.last_error.clone(),
            stored.sent_at
        ),
        (OutboxStatus::Ready, 0, None, None)
    );
    assert_eq!((stored.next_attempt_at, stored.created_at), (NOW, NOW));
    tx.commit().await.unwrap();
    let mut read = db.store.read().await.unwrap();
    let listed = read
        .outbox()
        .list(
            None,
            CursorPage {
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.items, vec![stored]);
}

#[tokio::test]
async fn claim_ready_takes_due_ready_rows_oldest_first() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let a = tx.outbox().append(envelope(1), NOW).await.unwrap();
    let b = tx.outbox().append(envelope(2), NOW).await.unwrap();
    let c = tx.outbox().append(envelope(3), NOW).await.unwrap();
    let d = tx.outbox().append(envelope(4), NOW).await.unwrap();
    tx.outbox().mark_sent(b.id, NOW).await.unwrap();
    tx.outbox()
        .mark_retry(c.id, "broker down", NOW + Duration::SECOND)
        .await
        .unwrap();
    tx.outbox().mark_failed(d.id, "rejected").await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = db.store.begin().await.unwrap();
    let due = tx.outbox().claim_ready(NOW, 10).await.unwrap();
    assert_eq!(due.iter().map(|e| e.id).collect::<Vec<_>>(), [a.id]);
    let later = tx
        .outbox()
        .claim_ready(NOW + Duration::SECOND, 10)
        .await
        .unwrap();
    assert_eq!(later.iter().map(|e| e.id).collect::<Vec<_>>(), [a.id, c.id]);
    let one = tx
        .outbox()
        .claim_ready(NOW + Duration::SECOND, 1)
        .await
        .unwrap();
    assert_eq!(one.iter().map(|e| e.id).collect::<Vec<_>>(), [a.id]);

    let sent = tx
        .outbox()
        .list(
            Some(OutboxStatus::Sent),
            CursorPage {
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(sent.items.len(), 1);
    assert_eq!((sent.items[0].id, sent.items[0].sent_at), (b.id, Some(NOW)));
    let retried = &later[1];
    assert_eq!(
        (
            retried.attempts,
            retried.last_error.as_deref(),
            retried.next_attempt_at
        ),
        (1, Some("broker down"), NOW + Duration::SECOND)
    );
    let failed = tx
        .outbox()
        .list(
            Some(OutboxStatus::Failed),
            CursorPage {
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        failed
            .items
            .iter()
            .map(|e| (e.id, e.attempts, e.last_error.as_deref()))
            .collect::<Vec<_>>(),
        [(d.id, 1, Some("rejected"))]
    );
    assert_eq!(
        tx.outbox().count_by_status().await.unwrap(),
        vec![
            (OutboxStatus::Ready, 2),
            (OutboxStatus::Sent, 1),
            (OutboxStatus::Failed, 1)
        ]
    );
}

#[tokio::test]
async fn retry_requeues_failed_events_only() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let failed = tx.outbox().append(envelope(1), NOW).await.unwrap();
    let ready = tx.outbox().append(envelope(2), NOW).await.unwrap();
    for _ in 0..3 {
        tx.outbox()
            .mark_retry(failed.id, "timeout", NOW)
            .await
            .unwrap();
    }
    tx.outbox().mark_failed(failed.id, "gave up").await.unwrap();
    let later = NOW + Duration::HOUR;
    let OutboxRetry::Requeued(requeued) = tx.outbox().retry(failed.id, later).await.unwrap() else {
        panic!("a FAILED event is requeued");
    };
    assert_eq!(
        (requeued.status, requeued.attempts, requeued.next_attempt_at),
        (OutboxStatus::Ready, 0, later)
    );
    assert_eq!(requeued.last_error.as_deref(), Some("gave up"));
    assert_eq!(
        tx.outbox().retry(failed.id, later).await.unwrap(),
        OutboxRetry::NotFailed(OutboxStatus::Ready)
    );
    assert_eq!(
        tx.outbox().retry(ready.id, later).await.unwrap(),
        OutboxRetry::NotFailed(OutboxStatus::Ready)
    );
    assert_eq!(
        tx.outbox().retry(OutboxId(999), later).await.unwrap(),
        OutboxRetry::NotFound
    );
    assert_eq!(
        tx.outbox().count_by_status().await.unwrap(),
        vec![
            (OutboxStatus::Ready, 2),
            (OutboxStatus::Sent, 0),
            (OutboxStatus::Failed, 0)
        ]
    );
}

#[tokio::test]
async fn list_pages_newest_first_and_filters_by_status() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(tx.outbox().append(envelope(n), NOW).await.unwrap().id);
    }
    tx.outbox().mark_sent(ids[0], NOW).await.unwrap();
    tx.outbox().mark_sent(ids[3], NOW).await.unwrap();
    tx.commit().await.unwrap();

    let mut read = db.store.read().await.unwrap();
    let page = |before, limit| CursorPage { before, limit };
    let first = read.outbox().list(None, page(None, 2)).await.unwrap();
    assert_eq!(
        first.items.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[4], ids[3]]
    );
    let second = read.outbox().list(None, page(first.next, 2)).await.unwrap();
    assert_eq!(
        second.items.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[2], ids[1]]
    );
    let third = read
        .outbox()
        .list(None, page(second.next, 2))
        .await
        .unwrap();
    assert_eq!((third.items.len(), third.next), (1, None));
    let ready = read
        .outbox()
        .list(Some(OutboxStatus::Ready), page(None, 10))
        .await
        .unwrap();
    assert_eq!(
        ready.items.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[4], ids[2], ids[1]]
    );
}

fn for_order(order: u32) -> EventEnvelope {
    let mut e = envelope(order);
    e.aggregate_id = format!("order-{order}");
    e
}

#[tokio::test]
async fn claim_ready_never_lets_an_event_overtake_an_older_one_of_its_aggregate() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let paid = tx.outbox().append(for_order(1), NOW).await.unwrap();
    let other = tx.outbox().append(for_order(2), NOW).await.unwrap();
    let refunded = tx.outbox().append(for_order(1), NOW).await.unwrap();
    let third = tx.outbox().append(for_order(1), NOW).await.unwrap();
    // Order 1's first event failed and backs off for a second.
    tx.outbox()
        .mark_retry(paid.id, "broker down", NOW + Duration::SECOND)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = db.store.begin().await.unwrap();
    let due = tx.outbox().claim_ready(NOW, 10).await.unwrap();
    assert_eq!(due.iter().map(|e| e.id).collect::<Vec<_>>(), [other.id]);
    tx.commit().await.unwrap();

    let mut tx = db.store.begin().await.unwrap();
    let later = tx
        .outbox()
        .claim_ready(NOW + Duration::SECOND, 10)
        .await
        .unwrap();
    assert_eq!(
        later.iter().map(|e| e.id).collect::<Vec<_>>(),
        [paid.id, other.id, refunded.id, third.id]
    );
    // A limit that cuts an aggregate's run keeps its head.
    let two = tx
        .outbox()
        .claim_ready(NOW + Duration::SECOND, 2)
        .await
        .unwrap();
    assert_eq!(
        two.iter().map(|e| e.id).collect::<Vec<_>>(),
        [paid.id, other.id]
    );
}

#[tokio::test]
async fn claim_ready_skips_an_aggregate_whose_older_event_another_relay_holds() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let first = tx.outbox().append(for_order(1), NOW).await.unwrap();
    let second = tx.outbox().append(for_order(1), NOW).await.unwrap();
    let other = tx.outbox().append(for_order(2), NOW).await.unwrap();
    tx.commit().await.unwrap();

    let mut relay_a = db.store.begin().await.unwrap();
    let a = relay_a.outbox().claim_ready(NOW, 1).await.unwrap();
    assert_eq!(a.iter().map(|e| e.id).collect::<Vec<_>>(), [first.id]);
    // Relay B must not publish order 1's second event while A publishes its first.
    let mut relay_b = db.store.begin().await.unwrap();
    let b = relay_b.outbox().claim_ready(NOW, 10).await.unwrap();
    assert_eq!(b.iter().map(|e| e.id).collect::<Vec<_>>(), [other.id]);
    relay_b.commit().await.unwrap();

    relay_a.outbox().mark_sent(first.id, NOW).await.unwrap();
    relay_a.commit().await.unwrap();
    let mut relay_b = db.store.begin().await.unwrap();
    let b = relay_b.outbox().claim_ready(NOW, 10).await.unwrap();
    assert_eq!(
        b.iter().map(|e| e.id).collect::<Vec<_>>(),
        [second.id, other.id]
    );
}

#[tokio::test]
async fn bookkeeping_of_an_unknown_row_is_a_bug() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let missing = OutboxId(999);
    assert!(matches!(
        tx.outbox().mark_sent(missing, NOW).await,
        Err(RepoError::Internal(_))
    ));
    assert!(matches!(
        tx.outbox().mark_retry(missing, "x", NOW).await,
        Err(RepoError::Internal(_))
    ));
    assert!(matches!(
        tx.outbox().mark_failed(missing, "x").await,
        Err(RepoError::Internal(_))
    ));
}
