//! First-come coupons: publishing, issuance through the gate, the async issuer.

use super::{CouponShape, Kit, expect_code, invalid_fields};
use application::coupons::IssueOutcome;
use application::events::{COUPON_AGGREGATE, CouponIssueRequested, envelope};
use application::{CouponIssueMode, Shop};
use domain::coupon::{CouponIssueStatus, CouponScope};
use domain::outbox::{EventEnvelope, EventType};
use domain::ports::{EventHandler, HandleError};
use domain::{CouponId, UserId};
use std::sync::atomic::Ordering;
use time::Duration;

/// A `coupon.issue.requested` event as the async issue endpoint publishes it.
fn issue_request(kit: &Kit, coupon: CouponId, user: UserId) -> EventEnvelope {
    let payload = CouponIssueRequested {
        request_id: uuid::Uuid::new_v4().to_string(),
        coupon_id: coupon,
        user_id: user,
        requested_at: kit.now(),
    };
    envelope(
        EventType::CouponIssueRequested,
        COUPON_AGGREGATE,
        coupon,
        &payload,
        kit.now(),
    )
    .unwrap()
}

async fn issued_quantity(kit: &Kit, coupon: CouponId) -> i64 {
    kit.shop.get_coupon(coupon).await.unwrap().issued_quantity
}

pub async fn only_sellers_and_admins_create_coupons(shop: Shop) {
    let kit = Kit::new(shop).await;
    let buyer = kit.buyer().await;
    let shape = CouponShape::amount(1_000, 10);
    expect_code(
        kit.shop
            .create_coupon(buyer, shape.draft(kit.now()), None)
            .await,
        "FORBIDDEN",
    );
    let seller = kit.seller().await;
    let bad = CouponShape::percent(0, None, 0);
    assert_eq!(
        invalid_fields(
            kit.shop
                .create_coupon(seller, bad.draft(kit.now()), None)
                .await
        ),
        ["percent", "totalQuantity"]
    );
    let coupon = kit.coupon(seller, shape).await;
    assert_eq!(coupon.scope, CouponScope::Seller(seller.user_id));
    assert_eq!((coupon.issued_quantity, coupon.per_user_limit), (0, 1));
    assert_eq!(kit.shop.get_coupon(coupon.id).await.unwrap(), coupon);
    let store_wide = kit.coupon(kit.admin, shape).await;
    assert_eq!(store_wide.scope, CouponScope::Store);
    expect_code(kit.shop.get_coupon(CouponId(999_999)).await, "NOT_FOUND");
}

pub async fn issuing_persists_an_issued_coupon(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let coupon = kit.coupon(seller, CouponShape::amount(1_000, 10)).await;
    let buyer = kit.buyer().await;
    let IssueOutcome::Issued(issue) = kit.shop.issue_coupon(buyer, coupon.id, None).await.unwrap()
    else {
        panic!("sync mode answers Issued");
    };
    assert_eq!((issue.coupon_id, issue.user_id), (coupon.id, buyer.user_id));
    assert_eq!(issue.status, CouponIssueStatus::Issued);
    assert_eq!(
        (issue.issued_at, issue.used_at, issue.order_id),
        (kit.now(), None, None)
    );
    assert_eq!(issued_quantity(&kit, coupon.id).await, 1);
    let mine = kit.shop.my_coupons(buyer, None).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(
        (mine[0].issue.id, mine[0].status),
        (issue.id, CouponIssueStatus::Issued)
    );
    assert_eq!(mine[0].coupon.id, coupon.id);
    assert!(kit.shop.my_coupons(seller, None).await.unwrap().is_empty());
}

pub async fn issuance_respects_the_validity_window(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let shape = CouponShape {
        starts_in: Duration::hours(1),
        lasts: Duration::hours(2),
        per_user_limit: Some(5),
        ..CouponShape::amount(500, 10)
    };
    let coupon = kit.coupon(seller, shape).await;
    let buyer = kit.buyer().await;
    expect_code(
        kit.shop.issue_coupon(buyer, coupon.id, None).await,
        "COUPON_NOT_ACTIVE",
    );
    kit.advance(Duration::hours(1));
    kit.issue(coupon.id, buyer).await;
    kit.advance(Duration::hours(2) - Duration::SECOND);
    kit.issue(coupon.id, buyer).await;
    kit.advance(Duration::SECOND);
    expect_code(
        kit.shop.issue_coupon(buyer, coupon.id, None).await,
        "COUPON_NOT_ACTIVE",
    );
    assert_eq!(issued_quantity(&kit, coupon.id).await, 2);
    expect_code(
        kit.shop.issue_coupon(buyer, CouponId(999_999), None).await,
        "NOT_FOUND",
    );
}

pub async fn per_user_limit_and_total_quantity_are_enforced(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let shape = CouponShape {
        per_user_limit: Some(2),
        ..CouponShape::amount(500, 3)
    };
    let coupon = kit.coupon(seller, shape).await;
    let (a, b, c) = (kit.buyer().await, kit.buyer().await, kit.buyer().await);
    kit.issue(coupon.id, a).await;
    kit.issue(coupon.id, a).await;
    expect_code(
        kit.shop.issue_coupon(a, coupon.id, None).await,
        "COUPON_ALREADY_ISSUED",
    );
    kit.issue(coupon.id, b).await;
    expect_code(
        kit.shop.issue_coupon(c, coupon.id, None).await,
        "COUPON_SOLD_OUT",
    );
    assert_eq!(issued_quantity(&kit, coupon.id).await, 3);
    assert_eq!(kit.shop.my_coupons(a, None).await.unwrap().len(), 2);
    assert!(kit.shop.my_coupons(c, None).await.unwrap().is_empty());
}

pub async fn active_coupons_exclude_sold_out_and_inactive_ones(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let active = kit.coupon(seller, CouponShape::amount(500, 5)).await;
    let sold_out = kit.coupon(seller, CouponShape::amount(500, 1)).await;
    kit.issue(sold_out.id, kit.buyer().await).await;
    let later = CouponShape {
        starts_in: Duration::hours(1),
        ..CouponShape::amount(500, 5)
    };
    let future = kit.coupon(seller, later).await;
    let ids: Vec<_> = kit
        .shop
        .list_active_coupons()
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, [active.id]);
    kit.advance(Duration::hours(1));
    let mut ids: Vec<_> = kit
        .shop
        .list_active_coupons()
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    ids.sort();
    assert_eq!(ids, [active.id, future.id]);
    kit.advance(Duration::days(1));
    assert!(
        kit.shop
            .list_active_coupons()
            .await
            .unwrap()
            .iter()
            .all(|c| c.id == future.id)
    );
}

pub async fn gate_down_issues_nothing(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let coupon = kit.coupon(seller, CouponShape::amount(500, 5)).await;
    let buyer = kit.buyer().await;
    kit.gate.down.store(true, Ordering::SeqCst);
    expect_code(
        kit.shop.issue_coupon(buyer, coupon.id, None).await,
        "UNAVAILABLE",
    );
    assert_eq!(issued_quantity(&kit, coupon.id).await, 0);
    assert!(kit.shop.my_coupons(buyer, None).await.unwrap().is_empty());
    kit.gate.down.store(false, Ordering::SeqCst);
    kit.issue(coupon.id, buyer).await;
    assert_eq!(issued_quantity(&kit, coupon.id).await, 1);
}

pub async fn gate_counters_are_rebuilt_from_the_store(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    // Created while the gate is down: it never received counters for this coupon.
    kit.gate.down.store(true, Ordering::SeqCst);
    let coupon = kit.coupon(seller, CouponShape::amount(500, 3)).await;
    let (a, b, c, d) = (
        kit.buyer().await,
        kit.buyer().await,
        kit.buyer().await,
        kit.buyer().await,
    );
    // Two issues reach the store without the gate (as after a Redis restart).
    let issuer = kit.shop.coupon_issuer();
    for user in [a, b] {
        issuer
            .handle(&issue_request(&kit, coupon.id, user.user_id))
            .await
            .unwrap();
    }
    kit.gate.down.store(false, Ordering::SeqCst);
    // The gate answers Unloaded, the shop loads {issued: 2, a: 1, b: 1} and asks again.
    expect_code(
        kit.shop.issue_coupon(a, coupon.id, None).await,
        "COUPON_ALREADY_ISSUED",
    );
    kit.issue(coupon.id, c).await;
    expect_code(
        kit.shop.issue_coupon(d, coupon.id, None).await,
        "COUPON_SOLD_OUT",
    );
    assert_eq!(issued_quantity(&kit, coupon.id).await, 3);
}

pub async fn store_refusal_of_a_grant_is_answered_and_the_grant_returned(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    // The gate is loaded with zero counts at creation...
    let coupon = kit.coupon(seller, CouponShape::amount(500, 1)).await;
    // ...then the only unit reaches the store behind the gate's back.
    let (a, b) = (kit.buyer().await, kit.buyer().await);
    let issuer = kit.shop.coupon_issuer();
    issuer
        .handle(&issue_request(&kit, coupon.id, a.user_id))
        .await
        .unwrap();
    // The gate grants b a unit the store no longer has: the store's answer wins and the grant
    // goes back.
    expect_code(
        kit.shop.issue_coupon(b, coupon.id, None).await,
        "COUPON_SOLD_OUT",
    );
    assert_eq!(kit.gate.releases.load(Ordering::SeqCst), 1);
    assert_eq!(issued_quantity(&kit, coupon.id).await, 1);
}

pub async fn my_coupons_reports_expired_issues(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let product = kit.product(seller, 10_000, 10).await.id;
    let shape = CouponShape {
        per_user_limit: Some(2),
        lasts: Duration::hours(1),
        ..CouponShape::amount(500, 10)
    };
    let coupon = kit.coupon(seller, shape).await;
    let buyer = kit.buyer().await;
    let used = kit.issue(coupon.id, buyer).await;
    let kept = kit.issue(coupon.id, buyer).await;
    kit.try_order(buyer, &[(product, 1)], Some(used))
        .await
        .unwrap();
    let statuses = |held: Vec<application::coupons::HeldCoupon>| {
        held.into_iter()
            .map(|h| (h.issue.id, h.status))
            .collect::<Vec<_>>()
    };
    let mut now = statuses(kit.shop.my_coupons(buyer, None).await.unwrap());
    now.sort_by_key(|(id, _)| *id);
    assert_eq!(
        now,
        [
            (used, CouponIssueStatus::Used),
            (kept, CouponIssueStatus::Issued)
        ]
    );
    kit.advance(Duration::hours(1));
    let mut later = statuses(kit.shop.my_coupons(buyer, None).await.unwrap());
    later.sort_by_key(|(id, _)| *id);
    assert_eq!(
        later,
        [
            (used, CouponIssueStatus::Used),
            (kept, CouponIssueStatus::Expired)
        ]
    );
    let expired = kit
        .shop
        .my_coupons(buyer, Some(CouponIssueStatus::Expired))
        .await
        .unwrap();
    assert_eq!(statuses(expired), [(kept, CouponIssueStatus::Expired)]);
    let issued = kit
        .shop
        .my_coupons(buyer, Some(CouponIssueStatus::Issued))
        .await
        .unwrap();
    assert!(issued.is_empty());
    let used_only = kit
        .shop
        .my_coupons(buyer, Some(CouponIssueStatus::Used))
        .await
        .unwrap();
    assert_eq!(statuses(used_only), [(used, CouponIssueStatus::Used)]);
}

pub async fn async_issuance_answers_pending_and_persists_once(shop: Shop) {
    let kit = Kit::with(shop, |c| c.coupon_issue_mode = CouponIssueMode::Async).await;
    let seller = kit.seller().await;
    let coupon = kit.coupon(seller, CouponShape::amount(500, 10)).await;
    let buyer = kit.buyer().await;
    let IssueOutcome::Pending {
        coupon_id,
        user_id,
        request_id,
    } = kit.shop.issue_coupon(buyer, coupon.id, None).await.unwrap()
    else {
        panic!("async mode answers Pending");
    };
    assert_eq!((coupon_id, user_id), (coupon.id, buyer.user_id));
    let published = kit.publisher.published();
    assert_eq!(published.len(), 1);
    let (topic, event) = &published[0];
    assert_eq!(topic, "coupon.issue.requested");
    assert_eq!(event.event_type, EventType::CouponIssueRequested);
    assert_eq!(event.payload["requestId"], request_id.as_str());
    assert_eq!(event.payload["couponId"], coupon.id.get());
    assert_eq!(event.payload["userId"], buyer.user_id.get());
    // The grant is final: a second request of the same user is refused by the gate already.
    expect_code(
        kit.shop.issue_coupon(buyer, coupon.id, None).await,
        "COUPON_ALREADY_ISSUED",
    );

    assert!(kit.shop.my_coupons(buyer, None).await.unwrap().is_empty());
    let issuer = kit.shop.coupon_issuer();
    assert_eq!(issuer.topics(), ["coupon.issue.requested"]);
    issuer.handle(event).await.unwrap();
    // A redelivery has no second effect.
    issuer.handle(event).await.unwrap();
    let mine = kit.shop.my_coupons(buyer, None).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].status, CouponIssueStatus::Issued);
    assert_eq!(issued_quantity(&kit, coupon.id).await, 1);
}

pub async fn async_publish_failure_gives_the_grant_back(shop: Shop) {
    let kit = Kit::with(shop, |c| c.coupon_issue_mode = CouponIssueMode::Async).await;
    let seller = kit.seller().await;
    let coupon = kit.coupon(seller, CouponShape::amount(500, 1)).await;
    let buyer = kit.buyer().await;
    kit.publisher.failing.store(true, Ordering::SeqCst);
    expect_code(
        kit.shop.issue_coupon(buyer, coupon.id, None).await,
        "UNAVAILABLE",
    );
    assert_eq!(kit.gate.releases.load(Ordering::SeqCst), 1);
    kit.publisher.failing.store(false, Ordering::SeqCst);
    // The only unit is still there for the same user.
    let outcome = kit.shop.issue_coupon(buyer, coupon.id, None).await.unwrap();
    assert!(matches!(outcome, IssueOutcome::Pending { .. }));
    expect_code(
        kit.shop
            .issue_coupon(kit.buyer().await, coupon.id, None)
            .await,
        "COUPON_SOLD_OUT",
    );
}

pub async fn async_issuer_treats_a_store_refusal_as_poison(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let coupon = kit.coupon(seller, CouponShape::amount(500, 1)).await;
    let issuer = kit.shop.coupon_issuer();
    let first = issue_request(&kit, coupon.id, kit.buyer().await.user_id);
    let second = issue_request(&kit, coupon.id, kit.buyer().await.user_id);
    issuer.handle(&first).await.unwrap();
    assert!(matches!(
        issuer.handle(&second).await,
        Err(HandleError::Poison(_))
    ));
    assert_eq!(issued_quantity(&kit, coupon.id).await, 1);
    let mut malformed = first.clone();
    malformed.event_id = uuid::Uuid::new_v4().to_string();
    malformed.payload = serde_json::json!({"couponId": "not a number"});
    assert!(matches!(
        issuer.handle(&malformed).await,
        Err(HandleError::Poison(_))
    ));
    assert_eq!(issued_quantity(&kit, coupon.id).await, 1);
}
