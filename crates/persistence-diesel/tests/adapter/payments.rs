use crate::common::TestDb;
use crate::common::fixtures::{NOW, order, shop};
use domain::PaymentId;
use domain::payment::{NewPayment, PaymentStatus};
use domain::ports::{RepoError, UnitOfWork};

fn payment(order: &domain::order::Order, status: PaymentStatus) -> NewPayment {
    NewPayment {
        order_id: order.id,
        user_id: order.user_id,
        amount: order.total_amount,
        status,
        failure_code: (status == PaymentStatus::Failed).then(|| "INSUFFICIENT_BALANCE".into()),
        created_at: NOW,
    }
}

#[tokio::test]
async fn payments_round_trip_and_failed_attempts_are_kept() {
    let db = TestDb::new().await;
    let (buyer, _, p) = shop(&db.store, 10).await;
    let mut tx = db.store.begin().await.unwrap();
    let o = order(tx.as_mut(), &buyer, &[(&p, 2)]).await;
    let failed1 = tx
        .payments()
        .insert(payment(&o, PaymentStatus::Failed))
        .await
        .unwrap();
    let failed2 = tx
        .payments()
        .insert(payment(&o, PaymentStatus::Failed))
        .await
        .unwrap();
    assert_ne!(failed1.id, failed2.id);
    assert_eq!(
        failed1.failure_code.as_deref(),
        Some("INSUFFICIENT_BALANCE")
    );
    assert_eq!(tx.payments().succeeded_for_order(o.id).await.unwrap(), None);
    let ok = tx
        .payments()
        .insert(payment(&o, PaymentStatus::Succeeded))
        .await
        .unwrap();
    assert_eq!(
        (
            ok.order_id,
            ok.user_id,
            ok.amount,
            ok.status,
            ok.failure_code.clone(),
            ok.created_at
        ),
        (o.id, buyer.id, 2_000, PaymentStatus::Succeeded, None, NOW)
    );
    tx.commit().await.unwrap();

    let mut read = db.store.read().await.unwrap();
    assert_eq!(read.payments().get(ok.id).await.unwrap(), Some(ok.clone()));
    assert_eq!(
        read.payments().get(failed1.id).await.unwrap(),
        Some(failed1)
    );
    assert_eq!(read.payments().get(PaymentId(999)).await.unwrap(), None);
    assert_eq!(
        read.payments().succeeded_for_order(o.id).await.unwrap(),
        Some(ok)
    );
}

#[tokio::test]
async fn a_second_succeeded_payment_for_an_order_is_a_conflict() {
    let db = TestDb::new().await;
    let (buyer, _, p) = shop(&db.store, 10).await;
    let mut tx = db.store.begin().await.unwrap();
    let o = order(tx.as_mut(), &buyer, &[(&p, 1)]).await;
    tx.payments()
        .insert(payment(&o, PaymentStatus::Succeeded))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = db.store.begin().await.unwrap();
    let second = tx
        .payments()
        .insert(payment(&o, PaymentStatus::Succeeded))
        .await;
    assert!(matches!(second, Err(RepoError::Conflict(_))), "{second:?}");
}

#[tokio::test]
async fn mark_refunded_turns_the_success_into_a_refund_once() {
    let db = TestDb::new().await;
    let (buyer, _, p) = shop(&db.store, 10).await;
    let mut tx = db.store.begin().await.unwrap();
    let o = order(tx.as_mut(), &buyer, &[(&p, 1)]).await;
    let ok = tx
        .payments()
        .insert(payment(&o, PaymentStatus::Succeeded))
        .await
        .unwrap();
    tx.payments().mark_refunded(ok.id).await.unwrap();
    assert_eq!(
        tx.payments().get(ok.id).await.unwrap().unwrap().status,
        PaymentStatus::Refunded
    );
    assert_eq!(tx.payments().succeeded_for_order(o.id).await.unwrap(), None);
    tx.commit().await.unwrap();

    // Refunding twice, or a payment that never succeeded, is a broken invariant.
    let mut tx = db.store.begin().await.unwrap();
    assert!(matches!(
        tx.payments().mark_refunded(ok.id).await,
        Err(RepoError::Internal(_))
    ));
    drop(tx);
    let mut tx = db.store.begin().await.unwrap();
    assert!(matches!(
        tx.payments().mark_refunded(PaymentId(999)).await,
        Err(RepoError::Internal(_))
    ));
    drop(tx);
    // A refunded payment still counts as the order's one success.
    let mut tx = db.store.begin().await.unwrap();
    assert!(matches!(
        tx.payments()
            .insert(payment(&o, PaymentStatus::Succeeded))
            .await,
        Err(RepoError::Conflict(_))
    ));
}
