use crate::common::fixtures::{NOW, coupon, new_coupon, order, product, user};
use crate::common::{TestDb, scalar};
use domain::coupon::{CouponIssueStatus, CouponScope, Discount, NewCouponIssue};
use domain::ports::{IssueError, IssuedCounts, RepoError, UnitOfWork};
use domain::user::Role;
use domain::{CouponId, CouponIssueId, UserId};

fn grant(coupon: CouponId, user: UserId) -> NewCouponIssue {
    NewCouponIssue {
        coupon_id: coupon,
        user_id: user,
        issued_at: NOW,
    }
}

#[tokio::test]
async fn coupons_round_trip_every_discount_shape_and_scope() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let seller = user(tx.as_mut(), Role::Seller).await;
    let admin = user(tx.as_mut(), Role::Admin).await;
    let amount = coupon(tx.as_mut(), &seller, 10, 1).await;
    assert_eq!(amount.discount, Discount::Amount(1_000));
    assert_eq!(amount.scope, CouponScope::Seller(seller.id));
    assert_eq!((amount.issued_quantity, amount.total_quantity), (0, 10));
    let mut draft = new_coupon(&admin, 5, 3);
    draft.scope = CouponScope::Store;
    draft.discount = Discount::Percent {
        percent: 15,
        max_discount: Some(3_000),
    };
    draft.min_order_amount = 20_000;
    let percent = tx.coupons().insert(draft.clone()).await.unwrap();
    assert_eq!(percent.discount, draft.discount);
    assert_eq!(percent.scope, CouponScope::Store);
    assert_eq!(
        (
            percent.seller_id,
            percent.min_order_amount,
            percent.per_user_limit
        ),
        (admin.id, 20_000, 3)
    );
    assert_eq!(
        (percent.starts_at, percent.expires_at),
        (draft.starts_at, draft.expires_at)
    );
    let mut uncapped = new_coupon(&seller, 1, 1);
    uncapped.discount = Discount::Percent {
        percent: 100,
        max_discount: None,
    };
    let uncapped = tx.coupons().insert(uncapped).await.unwrap();
    tx.commit().await.unwrap();

    let mut read = db.store.read().await.unwrap();
    assert_eq!(read.coupons().get(amount.id).await.unwrap(), Some(amount));
    assert_eq!(read.coupons().get(percent.id).await.unwrap(), Some(percent));
    assert_eq!(
        read.coupons().get(uncapped.id).await.unwrap(),
        Some(uncapped)
    );
    assert_eq!(read.coupons().get(CouponId(999)).await.unwrap(), None);
}

#[tokio::test]
async fn list_active_keeps_coupons_in_their_window_with_quantity_left_newest_first() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let seller = user(tx.as_mut(), Role::Seller).await;
    let buyer = user(tx.as_mut(), Role::Buyer).await;
    let older = coupon(tx.as_mut(), &seller, 10, 1).await;
    let newer = coupon(tx.as_mut(), &seller, 10, 1).await;
    let sold_out = coupon(tx.as_mut(), &seller, 1, 1).await;
    tx.coupons()
        .issue(grant(sold_out.id, buyer.id))
        .await
        .unwrap();
    let mut future = new_coupon(&seller, 10, 1);
    future.starts_at = NOW + time::Duration::HOUR;
    tx.coupons().insert(future).await.unwrap();
    let mut expired = new_coupon(&seller, 10, 1);
    expired.expires_at = NOW;
    tx.coupons().insert(expired).await.unwrap();
    tx.commit().await.unwrap();

    let mut read = db.store.read().await.unwrap();
    let active: Vec<_> = read
        .coupons()
        .list_active(NOW)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(active, [newer.id, older.id]);
}

#[tokio::test]
async fn issue_numbers_each_users_copies_and_counts_them() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let seller = user(tx.as_mut(), Role::Seller).await;
    let (a, b) = (
        user(tx.as_mut(), Role::Buyer).await,
        user(tx.as_mut(), Role::Buyer).await,
    );
    let c = coupon(tx.as_mut(), &seller, 10, 2).await;
    let first = tx.coupons().issue(grant(c.id, a.id)).await.unwrap();
    assert_eq!(
        (first.coupon_id, first.user_id, first.seq, first.status),
        (c.id, a.id, 1, CouponIssueStatus::Issued)
    );
    assert_eq!(
        (first.issued_at, first.used_at, first.order_id),
        (NOW, None, None)
    );
    let second = tx.coupons().issue(grant(c.id, a.id)).await.unwrap();
    assert_eq!(second.seq, 2);
    assert_eq!(
        tx.coupons().issue(grant(c.id, a.id)).await,
        Err(IssueError::LimitReached)
    );
    let other = tx.coupons().issue(grant(c.id, b.id)).await.unwrap();
    assert_eq!(other.seq, 1);
    assert_eq!(
        tx.coupons()
            .get(c.id)
            .await
            .unwrap()
            .unwrap()
            .issued_quantity,
        3,
        "a refusal gives its unit back"
    );
    assert_eq!(
        tx.coupons().issued_counts(c.id).await.unwrap(),
        IssuedCounts {
            issued: 3,
            per_user: vec![(a.id, 2), (b.id, 1)],
        }
    );
    assert_eq!(
        tx.coupons().issued_counts(CouponId(999)).await.unwrap(),
        IssuedCounts::default()
    );
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn issue_refuses_when_sold_out_or_unknown() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let seller = user(tx.as_mut(), Role::Seller).await;
    let (a, b) = (
        user(tx.as_mut(), Role::Buyer).await,
        user(tx.as_mut(), Role::Buyer).await,
    );
    let c = coupon(tx.as_mut(), &seller, 1, 1).await;
    tx.coupons().issue(grant(c.id, a.id)).await.unwrap();
    assert_eq!(
        tx.coupons().issue(grant(c.id, b.id)).await,
        Err(IssueError::SoldOut)
    );
    // Holding the only copy and asking again: the user's own limit is the better answer.
    assert_eq!(
        tx.coupons().issue(grant(c.id, a.id)).await,
        Err(IssueError::LimitReached)
    );
    assert_eq!(
        tx.coupons().issue(grant(CouponId(999), a.id)).await,
        Err(IssueError::NotFound)
    );
    assert_eq!(
        tx.coupons()
            .get(c.id)
            .await
            .unwrap()
            .unwrap()
            .issued_quantity,
        1
    );
    tx.commit().await.unwrap();
}

/// An answer of `issue`/`issue_batch` with the parts that do not depend on the call's
/// timing: who got which number, or why not.
fn outcome(
    answer: &Result<domain::coupon::CouponIssue, IssueError>,
) -> Result<(UserId, i64), IssueError> {
    answer
        .as_ref()
        .map(|i| (i.user_id, i.seq))
        .map_err(Clone::clone)
}

#[tokio::test]
async fn issue_batch_decides_in_input_order_as_issue_one_by_one_would() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let seller = user(tx.as_mut(), Role::Seller).await;
    let mut buyers = Vec::new();
    for _ in 0..4 {
        buyers.push(user(tx.as_mut(), Role::Buyer).await.id);
    }
    let (a, b, c, d) = (buyers[0], buyers[1], buyers[2], buyers[3]);
    // Two identical coupons of 4, 2 per user, where `a` already holds one: the batch runs on
    // the first, `issue` one by one on the second.
    let batched = coupon(tx.as_mut(), &seller, 4, 2).await;
    let one_by_one = coupon(tx.as_mut(), &seller, 4, 2).await;
    for id in [batched.id, one_by_one.id] {
        tx.coupons().issue(grant(id, a)).await.unwrap();
    }
    tx.commit().await.unwrap();

    // a over its limit within the batch, b twice in the batch, sold out after the second b,
    // and a both sold out and at its limit.
    let users = [a, a, b, b, c, a, d];
    let expected = vec![
        Ok((a, 2)),
        Err(IssueError::LimitReached),
        Ok((b, 1)),
        Ok((b, 2)),
        Err(IssueError::SoldOut),
        Err(IssueError::LimitReached),
        Err(IssueError::SoldOut),
    ];
    let batch: Vec<NewCouponIssue> = users.iter().map(|&u| grant(batched.id, u)).collect();
    let mut tx = db.store.begin().await.unwrap();
    let answers = tx.coupons().issue_batch(&batch).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(answers.iter().map(outcome).collect::<Vec<_>>(), expected);
    let mut tx = db.store.begin().await.unwrap();
    let mut sequential = Vec::new();
    for &u in &users {
        sequential.push(outcome(&tx.coupons().issue(grant(one_by_one.id, u)).await));
    }
    tx.commit().await.unwrap();
    assert_eq!(sequential, expected);

    // Each answer is the stored row, and the counter equals the rows.
    let mut read = db.store.read().await.unwrap();
    for issue in answers.iter().flatten() {
        assert_eq!(issue.coupon_id, batched.id);
        assert_eq!(issue.issued_at, NOW);
        assert_eq!(issue.status, CouponIssueStatus::Issued);
        assert_eq!(
            read.coupons().get_issue(issue.id).await.unwrap().as_ref(),
            Some(issue)
        );
    }
    let stored = read.coupons().get(batched.id).await.unwrap().unwrap();
    assert_eq!(stored.issued_quantity, 4);
    assert_eq!(
        read.coupons().issued_counts(batched.id).await.unwrap(),
        IssuedCounts {
            issued: 4,
            per_user: vec![(a, 2), (b, 2)],
        }
    );
    drop(read);
    let mut raw = db.raw().await;
    let rows = scalar(
        &mut raw,
        &format!(
            "(SELECT count(*) FROM coupon_issues WHERE coupon_id = {})",
            batched.id
        ),
    )
    .await;
    assert_eq!(rows, 4);
}

#[tokio::test]
async fn issue_batch_refuses_unknown_coupons_and_mixed_batches() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let seller = user(tx.as_mut(), Role::Seller).await;
    let buyer = user(tx.as_mut(), Role::Buyer).await;
    let c = coupon(tx.as_mut(), &seller, 10, 1).await;
    tx.commit().await.unwrap();

    let mut tx = db.store.begin().await.unwrap();
    assert_eq!(tx.coupons().issue_batch(&[]).await, Ok(Vec::new()));
    let unknown = [
        grant(CouponId(999), buyer.id),
        grant(CouponId(999), seller.id),
    ];
    assert_eq!(
        tx.coupons().issue_batch(&unknown).await,
        Ok(vec![Err(IssueError::NotFound), Err(IssueError::NotFound)])
    );
    let mixed = [grant(c.id, buyer.id), grant(CouponId(999), buyer.id)];
    assert!(matches!(
        tx.coupons().issue_batch(&mixed).await,
        Err(RepoError::Internal(_))
    ));
    drop(tx);
    let mut read = db.store.read().await.unwrap();
    assert_eq!(
        read.coupons()
            .get(c.id)
            .await
            .unwrap()
            .unwrap()
            .issued_quantity,
        0
    );
}

#[tokio::test]
async fn issue_batch_takes_a_large_batch_in_one_go() {
    // More rows than any per-statement parameter count would allow if it grew per item.
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let seller = user(tx.as_mut(), Role::Seller).await;
    let mut buyers = Vec::new();
    for _ in 0..600 {
        buyers.push(user(tx.as_mut(), Role::Buyer).await.id);
    }
    let c = coupon(tx.as_mut(), &seller, 500, 1).await;
    tx.commit().await.unwrap();
    let batch: Vec<NewCouponIssue> = buyers.iter().map(|&u| grant(c.id, u)).collect();
    let mut tx = db.store.begin().await.unwrap();
    let answers = tx.coupons().issue_batch(&batch).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(answers.len(), 600);
    for (answer, &user) in answers.iter().take(500).zip(&buyers) {
        assert_eq!(outcome(answer), Ok((user, 1)));
    }
    assert!(
        answers[500..]
            .iter()
            .all(|a| *a == Err(IssueError::SoldOut))
    );
    let mut read = db.store.read().await.unwrap();
    assert_eq!(
        read.coupons()
            .get(c.id)
            .await
            .unwrap()
            .unwrap()
            .issued_quantity,
        500
    );
    assert_eq!(
        read.coupons().issued_counts(c.id).await.unwrap().issued,
        500
    );
}

#[tokio::test]
async fn issues_are_used_by_one_order_and_released_by_that_order_only() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let seller = user(tx.as_mut(), Role::Seller).await;
    let buyer = user(tx.as_mut(), Role::Buyer).await;
    let p = product(tx.as_mut(), &seller, 5_000, 10).await;
    let c = coupon(tx.as_mut(), &seller, 10, 1).await;
    let issue = tx.coupons().issue(grant(c.id, buyer.id)).await.unwrap();
    let o1 = order(tx.as_mut(), &buyer, &[(&p, 1)]).await;
    let o2 = order(tx.as_mut(), &buyer, &[(&p, 1)]).await;
    let at = NOW + time::Duration::MINUTE;

    let used = tx
        .coupons()
        .use_issue(issue.id, o1.id, at)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (used.status, used.used_at, used.order_id),
        (CouponIssueStatus::Used, Some(at), Some(o1.id))
    );
    assert_eq!(
        tx.coupons().use_issue(issue.id, o2.id, at).await.unwrap(),
        None
    );
    assert_eq!(
        tx.coupons()
            .use_issue(CouponIssueId(999), o2.id, at)
            .await
            .unwrap(),
        None
    );

    // Another order cannot give it back: a bug in the caller, and nothing changes.
    assert!(matches!(
        tx.coupons().release_issue(issue.id, o2.id).await,
        Err(RepoError::Internal(_))
    ));
    assert!(matches!(
        tx.coupons().release_issue(CouponIssueId(999), o1.id).await,
        Err(RepoError::Internal(_))
    ));
    assert_eq!(tx.coupons().get_issue(issue.id).await.unwrap(), Some(used));

    tx.coupons().release_issue(issue.id, o1.id).await.unwrap();
    let released = tx.coupons().get_issue(issue.id).await.unwrap().unwrap();
    assert_eq!(
        (released.status, released.used_at, released.order_id),
        (CouponIssueStatus::Issued, None, None)
    );
    assert_eq!(released.seq, 1);
    // Released twice: refused.
    assert!(matches!(
        tx.coupons().release_issue(issue.id, o1.id).await,
        Err(RepoError::Internal(_))
    ));
    // Usable again.
    assert!(
        tx.coupons()
            .use_issue(issue.id, o2.id, at)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        tx.coupons().get_issue(CouponIssueId(999)).await.unwrap(),
        None
    );
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn issues_of_user_come_with_their_coupon_newest_first() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let seller = user(tx.as_mut(), Role::Seller).await;
    let (buyer, other) = (
        user(tx.as_mut(), Role::Buyer).await,
        user(tx.as_mut(), Role::Buyer).await,
    );
    let c1 = coupon(tx.as_mut(), &seller, 10, 1).await;
    let c2 = coupon(tx.as_mut(), &seller, 10, 1).await;
    let i1 = tx.coupons().issue(grant(c1.id, buyer.id)).await.unwrap();
    tx.coupons().issue(grant(c1.id, other.id)).await.unwrap();
    let i2 = tx.coupons().issue(grant(c2.id, buyer.id)).await.unwrap();
    tx.commit().await.unwrap();

    let mut read = db.store.read().await.unwrap();
    let held = read.coupons().issues_of_user(buyer.id).await.unwrap();
    let c1_now = read.coupons().get(c1.id).await.unwrap().unwrap();
    let c2_now = read.coupons().get(c2.id).await.unwrap().unwrap();
    assert_eq!(held, vec![(i2, c2_now), (i1, c1_now)]);
    assert!(
        read.coupons()
            .issues_of_user(UserId(999))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Two grant batches of one coupon, interleaved exactly: the first transaction takes its grant
/// and stays open while the second runs its whole batch. The second must wait for the first
/// (the coupon row is locked `FOR UPDATE` before anything is counted) and then decide on what
/// the first committed: here the last copy is gone, so `SoldOut`, and the same user asking
/// again is at the per-user limit, so `LimitReached`. Without that lock the second batch counts
/// from a stale snapshot and only a constraint stops it (an internal error or a conflict
/// instead of the refusal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_batch_waits_for_an_open_batch_of_the_same_coupon_and_decides_after_it() {
    for (total, second_user_is_first) in [(1, false), (10, true)] {
        let db = TestDb::new().await;
        let mut setup = db.store.begin().await.unwrap();
        let seller = user(setup.as_mut(), Role::Seller).await;
        let first_user = user(setup.as_mut(), Role::Buyer).await.id;
        let other_user = user(setup.as_mut(), Role::Buyer).await.id;
        let c = coupon(setup.as_mut(), &seller, total, 1).await;
        setup.commit().await.unwrap();
        let second_user = if second_user_is_first {
            first_user
        } else {
            other_user
        };

        let mut first = db.store.begin().await.unwrap();
        let granted = first
            .coupons()
            .issue_batch(&[grant(c.id, first_user)])
            .await
            .unwrap();
        assert!(matches!(granted.as_slice(), [Ok(_)]), "{granted:?}");

        let store = db.store.clone();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let second = tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            started_tx.send(()).unwrap();
            let answers = tx.coupons().issue_batch(&[grant(c.id, second_user)]).await;
            let committed = tx.commit().await;
            (answers, committed)
        });
        started.await.unwrap();
        // The second batch cannot decide while the first holds the coupon.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            !second.is_finished(),
            "the second batch decided while the first was still open"
        );
        first.commit().await.unwrap();

        let (answers, committed) = second.await.unwrap();
        let expected = if second_user_is_first {
            IssueError::LimitReached
        } else {
            IssueError::SoldOut
        };
        assert_eq!(answers, Ok(vec![Err(expected)]), "coupon of {total}");
        assert_eq!(committed, Ok(()));

        let mut raw = db.raw().await;
        let counts = (
            scalar(
                &mut raw,
                &format!("(SELECT issued_quantity FROM coupons WHERE id = {})", c.id),
            )
            .await,
            scalar(
                &mut raw,
                &format!(
                    "(SELECT count(*) FROM coupon_issues WHERE coupon_id = {})",
                    c.id
                ),
            )
            .await,
        );
        assert_eq!(counts, (1, 1), "coupon of {total}: (counter, rows)");
    }
}
