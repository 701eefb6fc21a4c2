use crate::common::fixtures::NOW;
use crate::common::{TestDb, scalar};
use domain::OutboxId;
use domain::outbox::OutboxOutcome::{Failed, Retry, Sent, Untried};
use domain::outbox::{EventEnvelope, EventType, OutboxClaim, OutboxOutcome, OutboxStatus};
use domain::page::CursorPage;
use domain::ports::{OutboxRetry, Transaction, UnitOfWork};
use time::{Duration, OffsetDateTime};

/// How long the claims of these tests last.
const LEASE: Duration = Duration::seconds(30);

async fn claim(tx: &mut dyn Transaction, now: OffsetDateTime, limit: u32) -> OutboxClaim {
    tx.outbox()
        .claim_ready(now, now + LEASE, limit)
        .await
        .unwrap()
}

/// A claim of its own, committed at once, as the relay makes it.
async fn claim_committed(db: &TestDb, now: OffsetDateTime, limit: u32) -> OutboxClaim {
    let mut tx = db.store.begin().await.unwrap();
    let claim = claim(tx.as_mut(), now, limit).await;
    tx.commit().await.unwrap();
    claim
}

/// Settles in a transaction of its own, as the relay does; returns how many rows changed.
async fn settle(
    db: &TestDb,
    lease: domain::outbox::OutboxLease,
    now: OffsetDateTime,
    outcomes: &[(OutboxId, OutboxOutcome)],
) -> usize {
    let mut tx = db.store.begin().await.unwrap();
    let settled = tx.outbox().settle(lease, now, outcomes).await.unwrap();
    tx.commit().await.unwrap();
    settled
}

fn ids(claim: &OutboxClaim) -> Vec<OutboxId> {
    claim.events.iter().map(|e| e.id).collect()
}

fn retry(error: &str, next_attempt_at: OffsetDateTime) -> OutboxOutcome {
    Retry {
        error: error.into(),
        next_attempt_at,
    }
}

/// Rows that carry a lease, straight from the table.
async fn leased_rows(db: &TestDb) -> i64 {
    let mut raw = db.raw().await;
    scalar(
        &mut raw,
        "(SELECT count(*) FROM outbox_events WHERE lease_token IS NOT NULL)",
    )
    .await
}

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
    tx.commit().await.unwrap();
    let first = claim_committed(&db, NOW, 10).await;
    assert_eq!(ids(&first), [a.id, b.id, c.id, d.id]);
    assert_eq!(first.until, NOW + LEASE);
    let outcomes = [
        (a.id, Untried),
        (b.id, Sent),
        (c.id, retry("broker down", NOW + Duration::SECOND)),
        (
            d.id,
            Failed {
                error: "rejected".into(),
            },
        ),
    ];
    assert_eq!(settle(&db, first.lease, NOW, &outcomes).await, 4);
    assert_eq!(leased_rows(&db).await, 0, "settling ends every lease");

    let mut tx = db.store.begin().await.unwrap();
    let due = claim(tx.as_mut(), NOW, 10).await;
    assert_eq!(ids(&due), [a.id]);
    assert_ne!(due.lease, first.lease, "a new token per claim");
    let untried = [(a.id, Untried)];
    tx.outbox().settle(due.lease, NOW, &untried).await.unwrap();
    let later = claim(tx.as_mut(), NOW + Duration::SECOND, 10).await;
    assert_eq!(ids(&later), [a.id, c.id]);
    let untried = [(a.id, Untried), (c.id, Untried)];
    tx.outbox()
        .settle(later.lease, NOW, &untried)
        .await
        .unwrap();
    let one = claim(tx.as_mut(), NOW + Duration::SECOND, 1).await;
    assert_eq!(ids(&one), [a.id]);

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
    let retried = &later.events[1];
    assert_eq!(
        (
            retried.attempts,
            retried.last_error.as_deref(),
            retried.next_attempt_at
        ),
        (1, Some("broker down"), NOW + Duration::SECOND)
    );
    let untouched = &later.events[0];
    assert_eq!(
        (untouched.attempts, untouched.last_error.as_deref()),
        (0, None)
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
            .map(|e| (e.id, e.attempts, e.last_error.as_deref(), e.next_attempt_at))
            .collect::<Vec<_>>(),
        [(d.id, 1, Some("rejected"), NOW)]
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
    for attempt in 0..3 {
        let claim = claim(tx.as_mut(), NOW, 1).await;
        assert_eq!(ids(&claim), [failed.id]);
        let outcome = if attempt < 2 {
            retry("timeout", NOW)
        } else {
            Failed {
                error: "gave up".into(),
            }
        };
        let outcomes = [(failed.id, outcome)];
        assert_eq!(
            tx.outbox()
                .settle(claim.lease, NOW, &outcomes)
                .await
                .unwrap(),
            1
        );
    }
    let later = NOW + Duration::HOUR;
    let failed_row = tx
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
    assert_eq!(failed_row.items[0].attempts, 3);
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
    let claim = claim(tx.as_mut(), NOW, 10).await;
    let outcomes: Vec<_> = claim
        .events
        .iter()
        .map(|e| {
            let sent = e.id == ids[0] || e.id == ids[3];
            let outcome = if sent { Sent } else { Untried };
            (e.id, outcome)
        })
        .collect();
    assert_eq!(
        tx.outbox()
            .settle(claim.lease, NOW, &outcomes)
            .await
            .unwrap(),
        5
    );
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
    tx.commit().await.unwrap();
    // Order 1's first event failed and backs off for a second.
    let first = claim_committed(&db, NOW, 1).await;
    let backoff = [(paid.id, retry("broker down", NOW + Duration::SECOND))];
    assert_eq!(settle(&db, first.lease, NOW, &backoff).await, 1);

    let due = claim_committed(&db, NOW, 10).await;
    assert_eq!(ids(&due), [other.id]);
    assert_eq!(settle(&db, due.lease, NOW, &[(other.id, Untried)]).await, 1);

    let later = claim_committed(&db, NOW + Duration::SECOND, 10).await;
    assert_eq!(ids(&later), [paid.id, other.id, refunded.id, third.id]);
    let release: Vec<_> = ids(&later).into_iter().map(|id| (id, Untried)).collect();
    assert_eq!(settle(&db, later.lease, NOW, &release).await, 4);
    // A limit that cuts an aggregate's run keeps its head.
    let two = claim_committed(&db, NOW + Duration::SECOND, 2).await;
    assert_eq!(ids(&two), [paid.id, other.id]);
    // And while that head is leased, the rest of its aggregate waits.
    let rest = claim_committed(&db, NOW + Duration::SECOND, 10).await;
    assert!(rest.events.is_empty(), "{:?}", ids(&rest));
}

#[tokio::test]
async fn claim_ready_skips_an_aggregate_whose_older_event_another_relay_holds() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let first = tx.outbox().append(for_order(1), NOW).await.unwrap();
    let second = tx.outbox().append(for_order(1), NOW).await.unwrap();
    let other = tx.outbox().append(for_order(2), NOW).await.unwrap();
    tx.commit().await.unwrap();

    // Relay A is still inside its claim statement's transaction: the row is locked.
    let mut relay_a = db.store.begin().await.unwrap();
    let a = claim(relay_a.as_mut(), NOW, 1).await;
    assert_eq!(ids(&a), [first.id]);
    // Relay B must not publish order 1's second event while A publishes its first.
    let b = claim_committed(&db, NOW, 10).await;
    assert_eq!(ids(&b), [other.id]);
    relay_a.commit().await.unwrap();
    // A's claim is committed: the lease, no lock any more, keeps B off the order.
    assert_eq!(settle(&db, b.lease, NOW, &[(other.id, Untried)]).await, 1);
    let b = claim_committed(&db, NOW + Duration::SECOND, 10).await;
    assert_eq!(ids(&b), [other.id]);
    assert_eq!(settle(&db, b.lease, NOW, &[(other.id, Untried)]).await, 1);

    assert_eq!(settle(&db, a.lease, NOW, &[(first.id, Sent)]).await, 1);
    let b = claim_committed(&db, NOW + Duration::SECOND, 10).await;
    assert_eq!(ids(&b), [second.id, other.id]);
}

#[tokio::test]
async fn a_claimed_row_is_claimable_again_only_once_its_lease_expires() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let row = tx.outbox().append(envelope(1), NOW).await.unwrap();
    tx.commit().await.unwrap();

    let a = claim_committed(&db, NOW, 10).await;
    assert_eq!(ids(&a), [row.id]);
    assert_eq!(leased_rows(&db).await, 1);
    for at in [NOW, NOW + LEASE - Duration::MILLISECOND] {
        let other = claim_committed(&db, at, 10).await;
        assert!(other.events.is_empty(), "leased until {}", a.until);
    }
    // The relay that claimed it died: once the lease expires the row is claimable again.
    let b = claim_committed(&db, NOW + LEASE, 10).await;
    assert_eq!(ids(&b), [row.id]);
    assert_ne!(b.lease, a.lease);
    assert_eq!(b.events[0].status, OutboxStatus::Ready);
    assert!(
        claim_committed(&db, NOW + LEASE, 10)
            .await
            .events
            .is_empty(),
        "the new lease holds in turn"
    );

    // A claim that is rolled back leaves no lease behind.
    assert_eq!(settle(&db, b.lease, NOW, &[(row.id, Untried)]).await, 1);
    let mut tx = db.store.begin().await.unwrap();
    assert_eq!(ids(&claim(tx.as_mut(), NOW, 10).await), [row.id]);
    drop(tx);
    // The rollback of a dropped unit of work lands in the background; until then the row is
    // still locked and skipped.
    let mut again = Vec::new();
    for _ in 0..100 {
        again = ids(&claim_committed(&db, NOW, 10).await);
        if !again.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(again, [row.id]);
}

#[tokio::test]
async fn a_relay_past_its_lease_changes_nothing_once_another_relay_took_its_rows() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let paid = tx.outbox().append(for_order(1), NOW).await.unwrap();
    let refunded = tx.outbox().append(for_order(1), NOW).await.unwrap();
    tx.commit().await.unwrap();

    let stale = claim_committed(&db, NOW, 10).await;
    assert_eq!(ids(&stale), [paid.id, refunded.id]);
    let taken_over = NOW + LEASE;
    let owner = claim_committed(&db, taken_over, 10).await;
    assert_eq!(ids(&owner), [paid.id, refunded.id]);

    // Every kind of outcome of the stale relay is ignored.
    for outcome in [
        Sent,
        retry("late", NOW + Duration::HOUR),
        Failed {
            error: "late".into(),
        },
        Untried,
    ] {
        let late = [(paid.id, outcome.clone()), (refunded.id, outcome)];
        assert_eq!(settle(&db, stale.lease, taken_over, &late).await, 0);
    }
    let mut read = db.store.read().await.unwrap();
    let rows = read
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
    assert!(
        rows.items
            .iter()
            .all(|r| (r.status, r.attempts, r.last_error.as_deref())
                == (OutboxStatus::Ready, 0, None)),
        "{rows:?}"
    );
    drop(read);
    // Nor does it release the new owner's lease.
    assert!(claim_committed(&db, taken_over, 10).await.events.is_empty());

    // The owner's outcomes stand, and the stale relay cannot overwrite them afterwards.
    let outcomes = [
        (paid.id, Sent),
        (
            refunded.id,
            Failed {
                error: "rejected".into(),
            },
        ),
    ];
    assert_eq!(settle(&db, owner.lease, taken_over, &outcomes).await, 2);
    let late = [(paid.id, retry("late", NOW)), (refunded.id, Sent)];
    assert_eq!(settle(&db, stale.lease, taken_over, &late).await, 0);
    assert_eq!(settle(&db, owner.lease, taken_over, &late).await, 0);
    let mut read = db.store.read().await.unwrap();
    assert_eq!(
        read.outbox().count_by_status().await.unwrap(),
        vec![
            (OutboxStatus::Ready, 0),
            (OutboxStatus::Sent, 1),
            (OutboxStatus::Failed, 1)
        ]
    );
}

#[tokio::test]
async fn a_relay_past_its_lease_still_settles_rows_nobody_took_over() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let row = tx.outbox().append(envelope(1), NOW).await.unwrap();
    tx.commit().await.unwrap();
    let slow = claim_committed(&db, NOW, 10).await;
    let outcomes = [(row.id, Sent)];
    assert_eq!(settle(&db, slow.lease, NOW + LEASE * 2, &outcomes).await, 1);
    assert_eq!(leased_rows(&db).await, 0);
}

#[tokio::test]
async fn settling_rows_no_lease_of_ours_holds_changes_nothing() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let row = tx.outbox().append(envelope(1), NOW).await.unwrap();
    tx.commit().await.unwrap();
    let empty = claim_committed(&db, NOW - Duration::SECOND, 10).await;
    assert!(empty.events.is_empty());
    let outcomes = [(row.id, Sent), (OutboxId(999), Sent)];
    // Never claimed, by an empty claim's token or by any other.
    assert_eq!(settle(&db, empty.lease, NOW, &outcomes).await, 0);
    let claim = claim_committed(&db, NOW, 10).await;
    let forged = domain::outbox::OutboxLease(claim.lease.0 + 1);
    assert_eq!(settle(&db, forged, NOW, &outcomes).await, 0);
    assert_eq!(settle(&db, claim.lease, NOW, &outcomes).await, 1);
}
