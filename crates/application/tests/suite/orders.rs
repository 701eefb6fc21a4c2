//! Placing orders: validation, stock, pricing with coupons, visibility, cancel.

use super::{CouponShape, Kit, expect_code, invalid_fields};
use application::Shop;
use application::catalog::ProductUpdate;
use domain::coupon::CouponIssueStatus;
use domain::order::OrderStatus;
use domain::page::CursorPage;
use domain::product::{ProductStatus, StockReason};
use domain::{CouponIssueId, OrderId, ProductId};
use time::Duration;

pub async fn placing_an_order_reserves_stock_and_snapshots_prices(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let p1 = kit.product(seller, 1_000, 10).await;
    let p2 = kit.product(seller, 2_500, 5).await;
    let buyer = kit.buyer().await;
    let order = kit.order(buyer, &[(p2.id, 2), (p1.id, 3)]).await;
    assert_eq!(
        (order.user_id, order.status),
        (buyer.user_id, OrderStatus::Created)
    );
    let items: Vec<_> = order
        .items
        .iter()
        .map(|i| {
            (
                i.product_id,
                i.name.as_str(),
                i.unit_price,
                i.quantity,
                i.subtotal,
            )
        })
        .collect();
    assert_eq!(
        items,
        [
            (p2.id, p2.name.as_str(), 2_500, 2, 5_000),
            (p1.id, p1.name.as_str(), 1_000, 3, 3_000)
        ]
    );
    assert_eq!(
        (order.subtotal, order.discount, order.total_amount),
        (8_000, 0, 8_000)
    );
    assert_eq!(order.coupon_issue_id, None);
    assert_eq!(order.created_at, kit.now());
    assert_eq!(order.expires_at, kit.now() + kit.shop.config().payment_ttl);
    assert_eq!((order.paid_at, order.canceled_at), (None, None));
    assert_eq!((kit.stock(p1.id).await, kit.stock(p2.id).await), (7, 3));
    let newest = &kit.ledger(p1.id).await[0];
    assert_eq!((newest.delta, newest.reason), (-3, StockReason::Order));
    assert_eq!(newest.order_id, Some(order.id));
    // Later price changes do not touch the snapshot.
    kit.shop
        .update_product(
            seller,
            p1.id,
            ProductUpdate {
                price: Some(9_999),
                name: Some("renamed".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(kit.shop.get_order(buyer, order.id).await.unwrap(), order);
    kit.assert_ledger_consistent(p1.id).await;
    kit.assert_ledger_consistent(p2.id).await;
}

pub async fn order_lines_are_validated(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let p = kit.product(seller, 1_000, 10).await.id;
    let buyer = kit.buyer().await;
    assert_eq!(
        invalid_fields(kit.try_order(buyer, &[], None).await),
        ["items"]
    );
    assert_eq!(
        invalid_fields(kit.try_order(buyer, &[(p, 1), (p, 2)], None).await),
        ["items[1].productId"]
    );
    assert_eq!(
        invalid_fields(kit.try_order(buyer, &[(p, 0)], None).await),
        ["items[0].quantity"]
    );
    assert_eq!(
        invalid_fields(kit.try_order(buyer, &[(p, 1_001)], None).await),
        ["items[0].quantity"]
    );
    let many: Vec<_> = (1..=51).map(|i| (ProductId(i), 1)).collect();
    assert!(invalid_fields(kit.try_order(buyer, &many, None).await).contains(&"items".to_owned()));
    assert_eq!(kit.stock(p).await, 10);
}

pub async fn unknown_products_are_not_found(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let p = kit.product(seller, 1_000, 10).await.id;
    let buyer = kit.buyer().await;
    let detail = expect_code(
        kit.try_order(buyer, &[(p, 1), (ProductId(999_999), 1)], None)
            .await,
        "NOT_FOUND",
    );
    assert!(detail.contains("999999"), "{detail}");
    assert_eq!(kit.stock(p).await, 10);
}

pub async fn products_not_on_sale_cannot_be_ordered(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let ok = kit.product(seller, 1_000, 10).await.id;
    let paused = kit.product(seller, 1_000, 10).await.id;
    kit.set_status(paused, ProductStatus::Paused).await;
    let off = kit.product(seller, 1_000, 10).await.id;
    kit.set_status(off, ProductStatus::Off).await;
    let buyer = kit.buyer().await;
    for bad in [paused, off] {
        expect_code(
            kit.try_order(buyer, &[(ok, 1), (bad, 1)], None).await,
            "PRODUCT_NOT_ON_SALE",
        );
    }
    for p in [ok, paused, off] {
        assert_eq!(kit.stock(p).await, 10);
    }
}

pub async fn stock_reservation_is_all_or_nothing(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let plenty = kit.product(seller, 1_000, 10).await.id;
    let scarce = kit.product(seller, 1_000, 2).await.id;
    let buyer = kit.buyer().await;
    let detail = expect_code(
        kit.try_order(buyer, &[(plenty, 3), (scarce, 5)], None)
            .await,
        "OUT_OF_STOCK",
    );
    assert_eq!(detail, format!("product {scarce} has 2 left, 5 requested"));
    assert_eq!((kit.stock(plenty).await, kit.stock(scarce).await), (10, 2));
    assert_eq!(kit.ledger(plenty).await.len(), 1);
    let orders = kit
        .shop
        .list_orders(
            buyer,
            None,
            CursorPage {
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert!(orders.items.is_empty());
    // Exactly the remaining stock is fine.
    kit.order(buyer, &[(scarce, 2)]).await;
    assert_eq!(kit.stock(scarce).await, 0);
    kit.assert_ledger_consistent(scarce).await;
}

pub async fn seller_coupon_discounts_only_that_sellers_items_end_to_end(shop: Shop) {
    let kit = Kit::new(shop).await;
    let (seller_a, seller_b) = (kit.seller().await, kit.seller().await);
    let pa = kit.product(seller_a, 10_000, 10).await.id;
    let pb = kit.product(seller_b, 5_000, 10).await.id;
    let coupon = kit
        .coupon(seller_a, CouponShape::percent(10, None, 10))
        .await;
    let buyer = kit.funded_buyer(100_000).await;
    let issue = kit.issue(coupon.id, buyer).await;
    let order = kit
        .try_order(buyer, &[(pa, 2), (pb, 1)], Some(issue))
        .await
        .unwrap();
    assert_eq!(
        (order.subtotal, order.discount, order.total_amount),
        (25_000, 2_000, 23_000)
    );
    assert_eq!(order.coupon_issue_id, Some(issue));
    let held = kit.shop.my_coupons(buyer, None).await.unwrap();
    assert_eq!(held[0].status, CouponIssueStatus::Used);
    assert_eq!(held[0].issue.order_id, Some(order.id));
    assert_eq!(held[0].issue.used_at, Some(kit.now()));

    let payment = kit.shop.pay(buyer, order.id, None).await.unwrap();
    assert_eq!(payment.amount, 23_000);
    assert_eq!(kit.balance(buyer).await, 77_000);
    let events = kit.outbox(None).await;
    assert_eq!(events.len(), 1);
    let payload = &events[0].envelope.payload;
    assert_eq!(
        (
            &payload["subtotal"],
            &payload["discount"],
            &payload["totalAmount"]
        ),
        (&25_000.into(), &2_000.into(), &23_000.into())
    );
    kit.assert_wallet_consistent(buyer).await;
}

pub async fn store_coupon_can_bring_the_total_to_zero(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let p = kit.product(seller, 1_000, 10).await.id;
    let coupon = kit.coupon(kit.admin, CouponShape::amount(5_000, 10)).await;
    let buyer = kit.buyer().await;
    let issue = kit.issue(coupon.id, buyer).await;
    let order = kit.try_order(buyer, &[(p, 2)], Some(issue)).await.unwrap();
    assert_eq!(
        (order.subtotal, order.discount, order.total_amount),
        (2_000, 2_000, 0)
    );
    // Nothing to pay: an empty wallet pays it and no money moves.
    let payment = kit.shop.pay(buyer, order.id, None).await.unwrap();
    assert_eq!(payment.amount, 0);
    assert!(kit.wallet_rows(buyer).await.is_empty());
    let paid = kit.shop.get_order(buyer, order.id).await.unwrap();
    assert_eq!(paid.status, OrderStatus::Paid);
}

pub async fn percent_coupon_is_capped_and_minimum_is_enforced(shop: Shop) {
    let kit = Kit::new(shop).await;
    let (seller, other_seller) = (kit.seller().await, kit.seller().await);
    let p = kit.product(seller, 10_000, 10).await.id;
    let foreign = kit.product(other_seller, 50_000, 10).await.id;
    let shape = CouponShape {
        min_order_amount: Some(30_000),
        per_user_limit: Some(3),
        ..CouponShape::percent(10, Some(500), 10)
    };
    let coupon = kit.coupon(seller, shape).await;
    let buyer = kit.buyer().await;
    let issue = kit.issue(coupon.id, buyer).await;
    // The minimum is compared to the eligible subtotal (only this seller's items).
    expect_code(
        kit.try_order(buyer, &[(p, 2), (foreign, 1)], Some(issue))
            .await,
        "COUPON_NOT_APPLICABLE",
    );
    expect_code(
        kit.try_order(buyer, &[(foreign, 1)], Some(issue)).await,
        "COUPON_NOT_APPLICABLE",
    );
    assert_eq!((kit.stock(p).await, kit.stock(foreign).await), (10, 10));
    let order = kit
        .try_order(buyer, &[(p, 3), (foreign, 1)], Some(issue))
        .await
        .unwrap();
    // floor(30,000 × 10%) = 3,000, capped at 500.
    assert_eq!(
        (order.subtotal, order.discount, order.total_amount),
        (80_000, 500, 79_500)
    );
    let uncapped_shape = CouponShape::percent(15, None, 10);
    let uncapped = kit.coupon(seller, uncapped_shape).await;
    let other_issue = kit.issue(uncapped.id, buyer).await;
    let order = kit
        .try_order(buyer, &[(p, 1)], Some(other_issue))
        .await
        .unwrap();
    assert_eq!((order.discount, order.total_amount), (1_500, 8_500));
}

pub async fn coupon_must_be_owned_unused_and_valid(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let p = kit.product(seller, 10_000, 10).await.id;
    let shape = CouponShape {
        lasts: Duration::hours(1),
        per_user_limit: Some(2),
        ..CouponShape::amount(1_000, 10)
    };
    let coupon = kit.coupon(seller, shape).await;
    let (owner, stranger) = (kit.buyer().await, kit.buyer().await);
    let issue = kit.issue(coupon.id, owner).await;
    let spare = kit.issue(coupon.id, owner).await;
    expect_code(
        kit.try_order(stranger, &[(p, 1)], Some(issue)).await,
        "COUPON_NOT_APPLICABLE",
    );
    expect_code(
        kit.try_order(owner, &[(p, 1)], Some(CouponIssueId(999_999)))
            .await,
        "COUPON_NOT_APPLICABLE",
    );
    kit.try_order(owner, &[(p, 1)], Some(issue)).await.unwrap();
    let detail = expect_code(
        kit.try_order(owner, &[(p, 1)], Some(issue)).await,
        "COUPON_NOT_APPLICABLE",
    );
    assert!(detail.contains("used"), "{detail}");
    kit.advance(Duration::hours(1));
    let detail = expect_code(
        kit.try_order(owner, &[(p, 1)], Some(spare)).await,
        "COUPON_NOT_APPLICABLE",
    );
    assert!(detail.contains("expired"), "{detail}");
    // Only the one accepted order took stock.
    assert_eq!(kit.stock(p).await, 9);
    kit.assert_ledger_consistent(p).await;
}

pub async fn owners_and_admins_see_orders(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let p = kit.product(seller, 1_000, 10).await.id;
    let (buyer, other) = (kit.buyer().await, kit.buyer().await);
    let first = kit.order(buyer, &[(p, 1)]).await;
    let second = kit.order(buyer, &[(p, 2)]).await;
    let theirs = kit.order(other, &[(p, 1)]).await;
    kit.shop.cancel_order(buyer, first.id, None).await.unwrap();

    expect_code(kit.shop.get_order(other, first.id).await, "NOT_FOUND");
    expect_code(
        kit.shop.get_order(buyer, OrderId(999_999)).await,
        "NOT_FOUND",
    );
    assert_eq!(
        kit.shop
            .get_order(kit.admin, first.id)
            .await
            .unwrap()
            .user_id,
        buyer.user_id
    );

    let page = CursorPage {
        before: None,
        limit: 10,
    };
    let mine = kit.shop.list_orders(buyer, None, page).await.unwrap();
    assert_eq!(
        mine.items.iter().map(|o| o.id).collect::<Vec<_>>(),
        [second.id, first.id]
    );
    let created = kit
        .shop
        .list_orders(buyer, Some(OrderStatus::Created), page)
        .await
        .unwrap();
    assert_eq!(
        created.items.iter().map(|o| o.id).collect::<Vec<_>>(),
        [second.id]
    );
    let canceled = kit
        .shop
        .list_orders(buyer, Some(OrderStatus::Canceled), page)
        .await
        .unwrap();
    assert_eq!(
        canceled.items.iter().map(|o| o.id).collect::<Vec<_>>(),
        [first.id]
    );
    let one = CursorPage {
        before: None,
        limit: 1,
    };
    let paged = kit.shop.list_orders(buyer, None, one).await.unwrap();
    assert_eq!(paged.items.len(), 1);
    assert!(paged.next.is_some());
    let theirs_listed = kit.shop.list_orders(other, None, page).await.unwrap();
    assert_eq!(
        theirs_listed.items.iter().map(|o| o.id).collect::<Vec<_>>(),
        [theirs.id]
    );
}

pub async fn cancel_returns_stock_and_coupon(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let (p1, p2) = (
        kit.product(seller, 1_000, 10).await.id,
        kit.product(seller, 2_000, 10).await.id,
    );
    let coupon = kit.coupon(seller, CouponShape::amount(500, 10)).await;
    let (buyer, other) = (kit.buyer().await, kit.buyer().await);
    let issue = kit.issue(coupon.id, buyer).await;
    let order = kit
        .try_order(buyer, &[(p2, 4), (p1, 3)], Some(issue))
        .await
        .unwrap();
    expect_code(
        kit.shop.cancel_order(other, order.id, None).await,
        "NOT_FOUND",
    );
    kit.advance(Duration::minutes(1));
    let canceled = kit.shop.cancel_order(buyer, order.id, None).await.unwrap();
    assert_eq!(canceled.status, OrderStatus::Canceled);
    assert_eq!(canceled.canceled_at, Some(kit.now()));
    assert_eq!((kit.stock(p1).await, kit.stock(p2).await), (10, 10));
    for (p, qty) in [(p1, 3), (p2, 4)] {
        let newest = &kit.ledger(p).await[0];
        assert_eq!(
            (newest.delta, newest.reason, newest.order_id),
            (qty, StockReason::Cancel, Some(order.id))
        );
        kit.assert_ledger_consistent(p).await;
    }
    let held = kit.shop.my_coupons(buyer, None).await.unwrap();
    assert_eq!(
        (held[0].status, held[0].issue.order_id),
        (CouponIssueStatus::Issued, None)
    );
    expect_code(
        kit.shop.cancel_order(buyer, order.id, None).await,
        "INVALID_ORDER_STATE",
    );
    expect_code(
        kit.shop.pay(buyer, order.id, None).await,
        "ORDER_NOT_PAYABLE",
    );
    // The coupon is usable again, and an admin may cancel anyone's order.
    let again = kit.try_order(buyer, &[(p1, 1)], Some(issue)).await.unwrap();
    assert_eq!(again.discount, 500);
    let by_admin = kit
        .shop
        .cancel_order(kit.admin, again.id, None)
        .await
        .unwrap();
    assert_eq!(by_admin.status, OrderStatus::Canceled);
    assert_eq!(kit.stock(p1).await, 10);
    // No event for an unpaid cancel.
    assert!(kit.outbox(None).await.is_empty());
}
