use crate::common::TestDb;
use crate::common::fixtures::{NOW, new_order, order, product, shop, user};
use domain::coupon::NewCouponIssue;
use domain::order::OrderStatus;
use domain::page::CursorPage;
use domain::ports::UnitOfWork;
use domain::user::Role;
use domain::{OrderId, UserId};

#[tokio::test]
async fn insert_and_get_keep_the_item_snapshots_in_order() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let seller = user(tx.as_mut(), Role::Seller).await;
    let buyer = user(tx.as_mut(), Role::Buyer).await;
    let p1 = product(tx.as_mut(), &seller, 3_000, 10).await;
    let p2 = product(tx.as_mut(), &seller, 1_500, 10).await;
    let c = crate::common::fixtures::coupon(tx.as_mut(), &seller, 5, 1).await;
    let issue = tx
        .coupons()
        .issue(NewCouponIssue {
            coupon_id: c.id,
            user_id: buyer.id,
            issued_at: NOW,
        })
        .await
        .unwrap();
    // Items deliberately not in id order: the order of the request is kept.
    let mut new = new_order(&buyer, &[(&p2, 2), (&p1, 1)]);
    new.discount = 1_000;
    new.total_amount = new.subtotal - 1_000;
    new.coupon_issue_id = Some(issue.id);
    let created = tx.orders().insert(new.clone()).await.unwrap();
    assert_eq!(created.status, OrderStatus::Created);
    assert_eq!(created.items, new.items);
    assert_eq!(
        (created.subtotal, created.discount, created.total_amount),
        (6_000, 1_000, 5_000)
    );
    assert_eq!(created.coupon_issue_id, Some(issue.id));
    assert_eq!(
        (created.created_at, created.expires_at),
        (new.created_at, new.expires_at)
    );
    assert_eq!((created.paid_at, created.canceled_at), (None, None));
    tx.commit().await.unwrap();

    let mut read = db.store.read().await.unwrap();
    assert_eq!(read.orders().get(created.id).await.unwrap(), Some(created));
    assert_eq!(read.orders().get(OrderId(999)).await.unwrap(), None);
}

#[tokio::test]
async fn transition_is_a_compare_and_set_that_stamps_the_instant() {
    let db = TestDb::new().await;
    let (buyer, _, p) = shop(&db.store, 10).await;
    let mut tx = db.store.begin().await.unwrap();
    let o = order(tx.as_mut(), &buyer, &[(&p, 1)]).await;
    let paid_at = NOW + time::Duration::MINUTE;
    let paid = tx
        .orders()
        .transition(o.id, OrderStatus::Created, OrderStatus::Paid, paid_at)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (paid.status, paid.paid_at, paid.canceled_at),
        (OrderStatus::Paid, Some(paid_at), None)
    );
    assert_eq!(paid.items, o.items);
    // The order is not CREATED any more: nothing changes.
    assert_eq!(
        tx.orders()
            .transition(o.id, OrderStatus::Created, OrderStatus::Canceled, paid_at)
            .await
            .unwrap(),
        None
    );
    let refunded_at = NOW + time::Duration::HOUR;
    let refunded = tx
        .orders()
        .transition(o.id, OrderStatus::Paid, OrderStatus::Refunded, refunded_at)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (refunded.status, refunded.paid_at, refunded.canceled_at),
        (OrderStatus::Refunded, Some(paid_at), Some(refunded_at))
    );

    let other = order(tx.as_mut(), &buyer, &[(&p, 1)]).await;
    let canceled = tx
        .orders()
        .transition(
            other.id,
            OrderStatus::Created,
            OrderStatus::Canceled,
            refunded_at,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (canceled.status, canceled.paid_at, canceled.canceled_at),
        (OrderStatus::Canceled, None, Some(refunded_at))
    );
    assert_eq!(
        tx.orders()
            .transition(OrderId(999), OrderStatus::Created, OrderStatus::Paid, NOW)
            .await
            .unwrap(),
        None
    );
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn list_for_user_pages_newest_first_and_filters_by_status() {
    let db = TestDb::new().await;
    let (buyer, _, p) = shop(&db.store, 100).await;
    let mut tx = db.store.begin().await.unwrap();
    let other = user(tx.as_mut(), Role::Buyer).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(order(tx.as_mut(), &buyer, &[(&p, 1)]).await.id);
    }
    order(tx.as_mut(), &other, &[(&p, 1)]).await;
    for id in [ids[1], ids[3]] {
        tx.orders()
            .transition(id, OrderStatus::Created, OrderStatus::Paid, NOW)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    let mut read = db.store.read().await.unwrap();
    let first = read
        .orders()
        .list_for_user(
            buyer.id,
            None,
            CursorPage {
                before: None,
                limit: 3,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        first.items.iter().map(|o| o.id).collect::<Vec<_>>(),
        [ids[4], ids[3], ids[2]]
    );
    assert!(first.items.iter().all(|o| o.items.len() == 1));
    let rest = read
        .orders()
        .list_for_user(
            buyer.id,
            None,
            CursorPage {
                before: first.next,
                limit: 3,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        rest.items.iter().map(|o| o.id).collect::<Vec<_>>(),
        [ids[1], ids[0]]
    );
    assert_eq!(rest.next, None);
    let paid = read
        .orders()
        .list_for_user(
            buyer.id,
            Some(OrderStatus::Paid),
            CursorPage {
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        paid.items.iter().map(|o| o.id).collect::<Vec<_>>(),
        [ids[3], ids[1]]
    );
    assert!(
        read.orders()
            .list_for_user(
                UserId(999),
                None,
                CursorPage {
                    before: None,
                    limit: 10
                }
            )
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn claim_expired_takes_unpaid_orders_past_their_deadline_oldest_first() {
    let db = TestDb::new().await;
    let (buyer, _, p) = shop(&db.store, 100).await;
    let mut tx = db.store.begin().await.unwrap();
    let make = |minutes: i64| {
        let mut new = new_order(&buyer, &[(&p, 1)]);
        new.expires_at = NOW + time::Duration::minutes(minutes);
        new
    };
    let late = tx.orders().insert(make(-1)).await.unwrap();
    let oldest = tx.orders().insert(make(-10)).await.unwrap();
    let due_now = tx.orders().insert(make(0)).await.unwrap();
    let not_yet = tx.orders().insert(make(5)).await.unwrap();
    let paid = tx.orders().insert(make(-20)).await.unwrap();
    tx.orders()
        .transition(paid.id, OrderStatus::Created, OrderStatus::Paid, NOW)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = db.store.begin().await.unwrap();
    let claimed = tx.orders().claim_expired(NOW, 2).await.unwrap();
    assert_eq!(
        claimed.iter().map(|o| o.id).collect::<Vec<_>>(),
        [oldest.id, late.id]
    );
    assert_eq!(claimed[0].items.len(), 1);
    let all = tx.orders().claim_expired(NOW, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|o| o.id).collect::<Vec<_>>(),
        [oldest.id, late.id, due_now.id],
        "the deadline itself is expired; the paid and the not-yet-due orders are not"
    );
    assert!(!all.iter().any(|o| o.id == not_yet.id));
}
