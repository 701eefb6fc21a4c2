use crate::common::TestDb;
use crate::common::fixtures::NOW;
use domain::ports::UnitOfWork;

#[tokio::test]
async fn record_tells_whether_the_event_is_new_for_that_consumer() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    assert!(tx.inbox().record("ranking", "evt-1", NOW).await.unwrap());
    assert!(!tx.inbox().record("ranking", "evt-1", NOW).await.unwrap());
    assert!(tx.inbox().record("forwarder", "evt-1", NOW).await.unwrap());
    tx.commit().await.unwrap();

    // A rolled-back record leaves nothing behind.
    let mut tx = db.store.begin().await.unwrap();
    assert!(tx.inbox().record("ranking", "evt-2", NOW).await.unwrap());
    drop(tx);
    let mut tx = db.store.begin().await.unwrap();
    assert!(!tx.inbox().record("ranking", "evt-1", NOW).await.unwrap());
    assert!(tx.inbox().record("ranking", "evt-2", NOW).await.unwrap());
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn positions_are_stored_per_consumer_topic_and_partition() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    assert_eq!(
        tx.inbox()
            .position("ranking", "order.paid", 0)
            .await
            .unwrap(),
        None
    );
    tx.inbox()
        .save_position("ranking", "order.paid", 0, 10)
        .await
        .unwrap();
    tx.inbox()
        .save_position("ranking", "order.paid", 1, 3)
        .await
        .unwrap();
    tx.inbox()
        .save_position("forwarder", "order.paid", 0, 7)
        .await
        .unwrap();
    tx.inbox()
        .save_position("ranking", "order.paid", 0, 11)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut read = db.store.read().await.unwrap();
    assert_eq!(
        read.inbox()
            .position("ranking", "order.paid", 0)
            .await
            .unwrap(),
        Some(11)
    );
    assert_eq!(
        read.inbox()
            .position("ranking", "order.paid", 1)
            .await
            .unwrap(),
        Some(3)
    );
    assert_eq!(
        read.inbox()
            .position("forwarder", "order.paid", 0)
            .await
            .unwrap(),
        Some(7)
    );
    assert_eq!(
        read.inbox()
            .position("ranking", "order.refunded", 0)
            .await
            .unwrap(),
        None
    );
}
