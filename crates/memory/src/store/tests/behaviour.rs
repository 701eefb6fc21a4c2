//! What each repository answers, as the port docs say it must.

use super::fixtures::*;
use crate::MemoryStore;
use domain::coupon::CouponIssueStatus;
use domain::order::OrderStatus;
use domain::outbox::{OutboxClaim, OutboxOutcome, OutboxStatus};
use domain::page::{CursorPage, OffsetPage};
use domain::payment::PaymentStatus;
use domain::ports::{
    IssueError, OutboxRetry, RepoError, StockChangeError, UnitOfWork, WalletChangeError,
};
use domain::product::{MAX_STOCK, ProductPatch, ProductStatus, StockReason};
use domain::sales::ProductSales;
use domain::user::{TokenHash, TokenSecret};
use domain::{OrderId, ProductId, UserId};
use std::time::Duration;

fn cursor(before: Option<i64>, limit: u32) -> CursorPage {
    CursorPage { before, limit }
}

fn sales(id: i64, quantity: i64) -> ProductSales {
    ProductSales {
        product_id: ProductId(id),
        quantity,
    }
}

#[tokio::test]
async fn ids_start_at_one_per_table_and_users_are_found_by_token() {
    let store = MemoryStore::new();
    let mut tx = begin(&store).await;
    let a = tx.users().insert(new_user("a")).await.unwrap();
    let b = tx.users().insert(new_user("b")).await.unwrap();
    assert_eq!((a.id, b.id), (UserId(1), UserId(2)));
    let p = tx.products().insert(new_product(a.id, 0)).await.unwrap();
    assert_eq!(p.id, ProductId(1));
    let found = tx
        .users()
        .find_by_token(&TokenHash("b".into()))
        .await
        .unwrap();
    assert_eq!(found, Some(b.clone()));
    assert_eq!(
        tx.users()
            .find_by_token(&TokenHash("zz".into()))
            .await
            .unwrap(),
        None
    );
    let wallet = tx.wallets().get(b.id).await.unwrap().unwrap();
    assert_eq!((wallet.balance, wallet.updated_at), (0, T0));
    assert!(matches!(
        tx.users().insert(new_user("a")).await,
        Err(RepoError::Conflict(_))
    ));
}

#[tokio::test]
async fn the_token_secret_is_stored_once_and_read_views_cannot_store_it() {
    let store = MemoryStore::new();
    let mut read = store.read().await.unwrap();
    assert!(matches!(
        read.users().token_secret(TokenSecret::new([1; 32])).await,
        Err(RepoError::Internal(_))
    ));
    drop(read);
    let mut tx = begin(&store).await;
    let first = tx
        .users()
        .token_secret(TokenSecret::new([1; 32]))
        .await
        .unwrap();
    assert_eq!(first, TokenSecret::new([1; 32]));
    tx.commit().await.unwrap();
    let mut tx = begin(&store).await;
    let again = tx
        .users()
        .token_secret(TokenSecret::new([2; 32]))
        .await
        .unwrap();
    assert_eq!(again, first);
}

#[tokio::test]
async fn wallet_apply_refuses_with_the_current_balance() {
    let (store, seed) = seeded().await;
    let mut tx = begin(&store).await;
    let user = seed.buyer.id;
    assert_eq!(
        tx.wallets().apply(charge(user, 950_001)).await,
        Err(WalletChangeError::LimitExceeded { balance: 50_000 })
    );
    assert_eq!(
        tx.wallets().apply(pay(user, 50_001, OrderId(1))).await,
        Err(WalletChangeError::Insufficient { balance: 50_000 })
    );
    assert_eq!(
        tx.wallets().apply(charge(UserId(99), 1)).await,
        Err(WalletChangeError::NotFound)
    );
    let (wallet, row) = tx.wallets().apply(charge(user, 950_000)).await.unwrap();
    assert_eq!(
        (wallet.balance, row.balance_after, row.amount),
        (1_000_000, 1_000_000, 950_000)
    );
    // A refund may exceed the maximum: it gives back money the user had.
    let mut refund = pay(user, -10, OrderId(1));
    refund.kind = domain::wallet::WalletTransactionType::Refund;
    assert_eq!(
        tx.wallets().apply(refund).await.unwrap().0.balance,
        1_000_010
    );
}

#[tokio::test]
async fn wallet_transactions_are_newest_first_keyset_pages() {
    let (store, seed) = seeded().await;
    let mut tx = begin(&store).await;
    for amount in 1..=4 {
        tx.wallets()
            .apply(charge(seed.buyer.id, amount))
            .await
            .unwrap();
    }
    let first = tx
        .wallets()
        .transactions(seed.buyer.id, cursor(None, 3))
        .await
        .unwrap();
    let amounts: Vec<_> = first.items.iter().map(|t| t.amount).collect();
    assert_eq!(amounts, [4, 3, 2]);
    assert_eq!(first.next, Some(first.items[2].id.get()));
    let second = tx
        .wallets()
        .transactions(seed.buyer.id, cursor(first.next, 3))
        .await
        .unwrap();
    let amounts: Vec<_> = second.items.iter().map(|t| t.amount).collect();
    assert_eq!(amounts, [1, 50_000]);
    assert_eq!(second.next, None);
    let none = tx
        .wallets()
        .transactions(UserId(99), cursor(None, 3))
        .await
        .unwrap();
    assert!(none.items.is_empty() && none.next.is_none());
}

#[tokio::test]
async fn stock_stays_within_bounds_and_every_change_has_its_ledger_row() {
    let (store, seed) = seeded().await;
    let mut tx = begin(&store).await;
    let id = seed.product.id;
    assert_eq!(
        tx.products()
            .change_stock(stock(id, -101, StockReason::Order))
            .await,
        Err(StockChangeError::Insufficient { available: 100 })
    );
    assert_eq!(
        tx.products()
            .change_stock(stock(id, MAX_STOCK, StockReason::Adjust))
            .await,
        Err(StockChangeError::Insufficient { available: 100 })
    );
    assert_eq!(
        tx.products()
            .change_stock(stock(ProductId(99), 1, StockReason::Adjust))
            .await,
        Err(StockChangeError::NotFound)
    );
    let mut order = stock(id, -100, StockReason::Order);
    order.order_id = Some(OrderId(5));
    order.at = T0 + time::Duration::MINUTE;
    let p = tx.products().change_stock(order).await.unwrap();
    assert_eq!((p.stock, p.updated_at), (0, T0 + time::Duration::MINUTE));
    let ledger = tx.products().ledger(id, cursor(None, 10)).await.unwrap();
    let deltas: Vec<_> = ledger.items.iter().map(|r| (r.delta, r.reason)).collect();
    assert_eq!(
        deltas,
        [(-100, StockReason::Order), (100, StockReason::Initial)]
    );
    assert_eq!(ledger.items[0].order_id, Some(OrderId(5)));
}

#[tokio::test]
async fn products_list_by_id_with_offset_pages_and_status_filter() {
    let store = MemoryStore::new();
    let mut tx = begin(&store).await;
    for i in 0..5 {
        let p = tx
            .products()
            .insert(new_product(UserId(1), i))
            .await
            .unwrap();
        if i % 2 == 1 {
            let patch = ProductPatch::new(None, None, Some(ProductStatus::Off)).unwrap();
            tx.products().patch(p.id, &patch, T0).await.unwrap();
        }
    }
    let all = tx
        .products()
        .list(None, OffsetPage { page: 2, size: 2 })
        .await
        .unwrap();
    let ids: Vec<_> = all.items.iter().map(|p| p.id.get()).collect();
    assert_eq!((ids, all.total_items), (vec![3, 4], 5));
    let on_sale = tx
        .products()
        .list(
            Some(ProductStatus::OnSale),
            OffsetPage { page: 1, size: 10 },
        )
        .await
        .unwrap();
    let ids: Vec<_> = on_sale.items.iter().map(|p| p.id.get()).collect();
    assert_eq!((ids, on_sale.total_items), (vec![1, 3, 5], 3));
    let paused = tx
        .products()
        .list(
            Some(ProductStatus::Paused),
            OffsetPage { page: 1, size: 10 },
        )
        .await
        .unwrap();
    assert_eq!((paused.items.len(), paused.total_items), (0, 0));
    let beyond = tx
        .products()
        .list(None, OffsetPage { page: 9, size: 10 })
        .await
        .unwrap();
    assert_eq!((beyond.items.len(), beyond.total_items), (0, 5));
    let many = tx
        .products()
        .get_many(&[ProductId(2), ProductId(2), ProductId(42), ProductId(1)])
        .await
        .unwrap();
    let mut ids: Vec<_> = many.iter().map(|p| p.id.get()).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2]);
    let none = tx
        .products()
        .patch(ProductId(42), &ProductPatch::default(), T0)
        .await
        .unwrap();
    assert_eq!(none, None);
}

#[tokio::test]
async fn coupon_issue_honours_total_and_per_user_limit_with_sequence_numbers() {
    let store = MemoryStore::new();
    let mut tx = begin(&store).await;
    let c = tx
        .coupons()
        .insert(new_coupon(UserId(1), 3, 2))
        .await
        .unwrap();
    let (a, b) = (UserId(10), UserId(11));
    let first = tx.coupons().issue(issue_for(c.id, a)).await.unwrap();
    let second = tx.coupons().issue(issue_for(c.id, a)).await.unwrap();
    assert_eq!((first.seq, second.seq), (1, 2));
    assert_eq!(first.status, CouponIssueStatus::Issued);
    assert_eq!(
        tx.coupons().issue(issue_for(c.id, a)).await,
        Err(IssueError::LimitReached)
    );
    tx.coupons().issue(issue_for(c.id, b)).await.unwrap();
    assert_eq!(
        tx.coupons().issue(issue_for(c.id, UserId(12))).await,
        Err(IssueError::SoldOut)
    );
    // Both limits reached: the per-user one is reported.
    assert_eq!(
        tx.coupons().issue(issue_for(c.id, a)).await,
        Err(IssueError::LimitReached)
    );
    assert_eq!(
        tx.coupons().issue(issue_for(domain::CouponId(99), a)).await,
        Err(IssueError::NotFound)
    );
    let counts = tx.coupons().issued_counts(c.id).await.unwrap();
    assert_eq!(counts.issued, 3);
    assert_eq!(counts.per_user, vec![(a, 2), (b, 1)]);
    let coupon = tx.coupons().get(c.id).await.unwrap().unwrap();
    assert_eq!(
        (coupon.issued_quantity, coupon.remaining_quantity()),
        (3, 0)
    );
    let held = tx.coupons().issues_of_user(a).await.unwrap();
    let ids: Vec<_> = held.iter().map(|(i, c)| (i.id, c.id)).collect();
    assert_eq!(ids, [(second.id, c.id), (first.id, c.id)]);
}

#[tokio::test]
async fn active_coupons_are_in_their_window_with_quantity_left_newest_first() {
    let store = MemoryStore::new();
    let mut tx = begin(&store).await;
    let old = tx
        .coupons()
        .insert(new_coupon(UserId(1), 5, 1))
        .await
        .unwrap();
    let sold_out = tx
        .coupons()
        .insert(new_coupon(UserId(1), 1, 1))
        .await
        .unwrap();
    tx.coupons()
        .issue(issue_for(sold_out.id, UserId(2)))
        .await
        .unwrap();
    let mut later = new_coupon(UserId(1), 5, 1);
    later.starts_at = T0 + time::Duration::HOUR;
    let later = tx.coupons().insert(later).await.unwrap();
    let new = tx
        .coupons()
        .insert(new_coupon(UserId(1), 5, 1))
        .await
        .unwrap();
    let ids = |cs: Vec<domain::coupon::Coupon>| cs.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(
        ids(tx.coupons().list_active(T0).await.unwrap()),
        [new.id, old.id]
    );
    let in_two_hours = T0 + time::Duration::hours(2);
    assert_eq!(
        ids(tx.coupons().list_active(in_two_hours).await.unwrap()),
        [new.id, later.id, old.id]
    );
    let at_expiry = old.expires_at;
    assert!(
        tx.coupons()
            .list_active(at_expiry)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn use_issue_is_a_compare_and_set_and_release_needs_the_using_order() {
    let (store, seed) = seeded().await;
    let mut tx = begin(&store).await;
    let used = tx
        .coupons()
        .use_issue(seed.issue, OrderId(77), T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(used.status, CouponIssueStatus::Used);
    assert_eq!((used.order_id, used.used_at), (Some(OrderId(77)), Some(T0)));
    assert_eq!(
        tx.coupons().use_issue(seed.issue, OrderId(78), T0).await,
        Ok(None)
    );
    assert!(matches!(
        tx.coupons().release_issue(seed.issue, OrderId(78)).await,
        Err(RepoError::Internal(_))
    ));
    tx.coupons()
        .release_issue(seed.issue, OrderId(77))
        .await
        .unwrap();
    let back = tx.coupons().get_issue(seed.issue).await.unwrap().unwrap();
    assert_eq!(
        (back.status, back.order_id, back.used_at),
        (CouponIssueStatus::Issued, None, None)
    );
}

#[tokio::test]
async fn order_transition_stamps_times_and_refuses_moves_the_machine_lacks() {
    let (store, seed) = seeded().await;
    let mut tx = begin(&store).await;
    let id = seed.open_order.id;
    let t = T0 + time::Duration::MINUTE;
    assert_eq!(
        tx.orders()
            .transition(id, OrderStatus::Paid, OrderStatus::Refunded, t)
            .await,
        Ok(None)
    );
    assert!(matches!(
        tx.orders()
            .transition(id, OrderStatus::Canceled, OrderStatus::Created, t)
            .await,
        Err(RepoError::Internal(_))
    ));
    let canceled = tx
        .orders()
        .transition(id, OrderStatus::Created, OrderStatus::Canceled, t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (canceled.status, canceled.canceled_at, canceled.paid_at),
        (OrderStatus::Canceled, Some(t), None)
    );
    assert_eq!(
        tx.orders()
            .transition(OrderId(999), OrderStatus::Created, OrderStatus::Paid, t)
            .await,
        Ok(None)
    );
}

#[tokio::test]
async fn orders_of_a_user_newest_first_with_status_filter() {
    let (store, seed) = seeded().await;
    let mut tx = begin(&store).await;
    let buyer = seed.buyer.id;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            tx.orders()
                .insert(new_order(buyer, &seed.product, 1))
                .await
                .unwrap()
                .id,
        );
    }
    let all = tx
        .orders()
        .list_for_user(buyer, None, cursor(None, 4))
        .await
        .unwrap();
    let got: Vec<_> = all.items.iter().map(|o| o.id).collect();
    assert_eq!(got, [ids[2], ids[1], ids[0], seed.paid_order.id]);
    assert_eq!(all.next, Some(seed.paid_order.id.get()));
    let rest = tx
        .orders()
        .list_for_user(buyer, None, cursor(all.next, 4))
        .await
        .unwrap();
    let got: Vec<_> = rest.items.iter().map(|o| o.id).collect();
    assert_eq!((got, rest.next), (vec![seed.open_order.id], None));
    let paid = tx
        .orders()
        .list_for_user(buyer, Some(OrderStatus::Paid), cursor(None, 10))
        .await
        .unwrap();
    let got: Vec<_> = paid.items.iter().map(|o| o.id).collect();
    assert_eq!(got, [seed.paid_order.id]);
    let other = tx
        .orders()
        .list_for_user(seed.seller.id, None, cursor(None, 10))
        .await
        .unwrap();
    assert!(other.items.is_empty());
}

#[tokio::test]
async fn claim_expired_returns_due_created_orders_oldest_first() {
    let (store, seed) = seeded().await;
    let mut tx = begin(&store).await;
    let buyer = seed.buyer.id;
    let late = tx
        .orders()
        .insert(new_order_with(
            buyer,
            &seed.product,
            1,
            None,
            T0 + time::Duration::minutes(30),
        ))
        .await
        .unwrap();
    let early = tx
        .orders()
        .insert(new_order_with(
            buyer,
            &seed.product,
            1,
            None,
            T0 + time::Duration::minutes(5),
        ))
        .await
        .unwrap();
    let ids =
        |orders: Vec<domain::order::Order>| orders.into_iter().map(|o| o.id).collect::<Vec<_>>();
    let at = T0 + time::Duration::minutes(15);
    assert_eq!(
        ids(tx.orders().claim_expired(at, 10).await.unwrap()),
        [early.id, seed.open_order.id]
    );
    assert_eq!(
        ids(tx.orders().claim_expired(at, 1).await.unwrap()),
        [early.id]
    );
    tx.orders()
        .transition(early.id, OrderStatus::Created, OrderStatus::Paid, T0)
        .await
        .unwrap()
        .unwrap();
    let everything = T0 + time::Duration::HOUR;
    assert_eq!(
        ids(tx.orders().claim_expired(everything, 10).await.unwrap()),
        [seed.open_order.id, late.id]
    );
}

#[tokio::test]
async fn one_succeeded_payment_per_order_failed_attempts_kept() {
    let (store, seed) = seeded().await;
    let mut tx = begin(&store).await;
    let order = &seed.open_order;
    let failed = tx
        .payments()
        .insert(payment(order, PaymentStatus::Failed))
        .await
        .unwrap();
    assert_eq!(failed.failure_code.as_deref(), Some("INSUFFICIENT_BALANCE"));
    let ok = tx
        .payments()
        .insert(payment(order, PaymentStatus::Succeeded))
        .await
        .unwrap();
    assert!(matches!(
        tx.payments()
            .insert(payment(order, PaymentStatus::Succeeded))
            .await,
        Err(RepoError::Conflict(_))
    ));
    assert_eq!(
        tx.payments().succeeded_for_order(order.id).await.unwrap(),
        Some(ok.clone())
    );
    tx.payments().mark_refunded(ok.id).await.unwrap();
    let refunded = tx.payments().get(ok.id).await.unwrap().unwrap();
    assert_eq!(refunded.status, PaymentStatus::Refunded);
    assert!(matches!(
        tx.payments().mark_refunded(ok.id).await,
        Err(RepoError::Internal(_))
    ));
    assert!(matches!(
        tx.payments().mark_refunded(failed.id).await,
        Err(RepoError::Internal(_))
    ));
}

#[tokio::test]
async fn sales_top_ranks_net_quantities_leaving_out_off_products() {
    let store = MemoryStore::new();
    let mut tx = begin(&store).await;
    for _ in 0..5 {
        tx.products()
            .insert(new_product(UserId(1), 0))
            .await
            .unwrap();
    }
    let off = ProductPatch::new(None, None, Some(ProductStatus::Off)).unwrap();
    tx.products().patch(ProductId(4), &off, T0).await.unwrap();
    let d1 = T0.date();
    let d2 = d1.next_day().unwrap();
    let d3 = d2.next_day().unwrap();
    tx.sales()
        .add(d1, &[sales(1, 3), sales(2, 5), sales(4, 50)])
        .await
        .unwrap();
    tx.sales()
        .add(d2, &[sales(1, 2), sales(3, 1), sales(5, 2), sales(5, -2)])
        .await
        .unwrap();
    tx.sales().add(d3, &[sales(3, 100)]).await.unwrap();
    let top = tx.sales().top(d1, d2, 10).await.unwrap();
    assert_eq!(top, [sales(1, 5), sales(2, 5), sales(3, 1)]);
    assert_eq!(tx.sales().top(d1, d2, 1).await.unwrap(), [sales(1, 5)]);
    assert!(tx.sales().top(d2, d1, 10).await.unwrap().is_empty());
    let mut day = tx.sales().day_totals(d2).await.unwrap();
    day.sort_by_key(|s| s.product_id);
    assert_eq!(day, [sales(1, 2), sales(3, 1), sales(5, 0)]);
}

#[tokio::test]
async fn outbox_claims_due_ready_rows_oldest_first_and_tracks_statuses() {
    let (store, seed) = seeded().await;
    let mut tx = begin(&store).await;
    let order = seed.paid_order.id;
    let second = tx.outbox().append(envelope("e2", order), T0).await.unwrap();
    let third = tx.outbox().append(envelope("e3", order), T0).await.unwrap();
    assert_eq!(second.status, OutboxStatus::Ready);
    let later = T0 + time::Duration::SECOND;
    let ids = |claim: OutboxClaim| claim.events.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let first = tx.outbox().claim_ready(T0, T0 + LEASE, 10).await.unwrap();
    let retry = [
        (seed.ready_event, OutboxOutcome::Untried),
        (
            second.id,
            OutboxOutcome::Retry {
                error: "down".into(),
                next_attempt_at: later,
            },
        ),
        (third.id, OutboxOutcome::Untried),
    ];
    assert_eq!(
        tx.outbox().settle(first.lease, T0, &retry).await.unwrap(),
        3
    );
    // `third` is due but stays behind `second`, an older event of the same order that is
    // backing off: one order's events are published in order.
    let claim = tx.outbox().claim_ready(T0, T0 + LEASE, 10).await.unwrap();
    assert_ne!(claim.lease, first.lease, "a new token per claim");
    let lease = claim.lease;
    assert_eq!(ids(claim), [seed.ready_event]);
    let release = [(seed.ready_event, OutboxOutcome::Untried)];
    tx.outbox().settle(lease, T0, &release).await.unwrap();
    let claim = tx
        .outbox()
        .claim_ready(later, later + LEASE, 2)
        .await
        .unwrap();
    let lease = claim.lease;
    assert_eq!(ids(claim), [seed.ready_event, second.id]);
    let sent = [
        (seed.ready_event, OutboxOutcome::Sent),
        (second.id, OutboxOutcome::Untried),
    ];
    assert_eq!(tx.outbox().settle(lease, later, &sent).await.unwrap(), 2);
    // Settled rows are no lease's any more: settling them again changes nothing.
    assert_eq!(tx.outbox().settle(lease, later, &sent).await.unwrap(), 0);
    let retried = tx
        .outbox()
        .list(Some(OutboxStatus::Ready), cursor(None, 10))
        .await
        .unwrap();
    let row = retried.items.iter().find(|r| r.id == second.id).unwrap();
    assert_eq!((row.attempts, row.last_error.as_deref()), (1, Some("down")));
    assert_eq!(row.next_attempt_at, later);
    assert_eq!(ids_of(&retried.items), [third.id, second.id]);
    assert_eq!(
        tx.outbox().count_by_status().await.unwrap(),
        [
            (OutboxStatus::Ready, 2),
            (OutboxStatus::Sent, 1),
            (OutboxStatus::Failed, 1)
        ]
    );
    let all = tx.outbox().list(None, cursor(None, 3)).await.unwrap();
    assert_eq!(ids_of(&all.items), [third.id, second.id, seed.failed_event]);
    assert_eq!(all.next, Some(seed.failed_event.get()));
    let rest = tx.outbox().list(None, cursor(all.next, 3)).await.unwrap();
    assert_eq!(
        (ids_of(&rest.items), rest.next),
        (vec![seed.ready_event], None)
    );
    let sent_row = &rest.items[0];
    assert_eq!(
        (sent_row.status, sent_row.sent_at),
        (OutboxStatus::Sent, Some(later))
    );

    assert_eq!(
        tx.outbox().retry(seed.ready_event, later).await.unwrap(),
        OutboxRetry::NotFailed(OutboxStatus::Sent)
    );
    assert_eq!(
        tx.outbox()
            .retry(domain::OutboxId(999), later)
            .await
            .unwrap(),
        OutboxRetry::NotFound
    );
    let OutboxRetry::Requeued(requeued) =
        tx.outbox().retry(seed.failed_event, later).await.unwrap()
    else {
        panic!("a FAILED row is requeued");
    };
    assert_eq!(
        (requeued.status, requeued.attempts, requeued.next_attempt_at),
        (OutboxStatus::Ready, 0, later)
    );
    // A row no lease holds (unknown, or never claimed) is left alone.
    let stray = [
        (domain::OutboxId(999), OutboxOutcome::Sent),
        (third.id, OutboxOutcome::Sent),
    ];
    assert_eq!(tx.outbox().settle(lease, later, &stray).await.unwrap(), 0);
}

fn ids_of(rows: &[domain::outbox::OutboxEvent]) -> Vec<domain::OutboxId> {
    rows.iter().map(|r| r.id).collect()
}

/// The lease contract of `claim_ready` and `settle`, across transactions as the relay uses
/// them: a claimed row stays the claimant's until its lease expires, then another relay may
/// take it over, and from then on the first relay's outcomes change nothing.
#[tokio::test]
async fn outbox_leases_hold_rows_until_they_expire_and_fence_stale_relays() {
    let store = MemoryStore::new();
    let order = OrderId(1);
    let mut tx = begin(&store).await;
    let paid = tx
        .outbox()
        .append(envelope("paid", order), T0)
        .await
        .unwrap();
    let refunded = tx
        .outbox()
        .append(envelope("refunded", order), T0)
        .await
        .unwrap();
    let other = tx
        .outbox()
        .append(envelope("other", OrderId(2)), T0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let claim = |now: time::OffsetDateTime, limit: u32| {
        let store = store.clone();
        async move {
            let mut tx = begin(&store).await;
            let claim = tx
                .outbox()
                .claim_ready(now, now + LEASE, limit)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            claim
        }
    };
    let settle = |lease, outcomes: Vec<(domain::OutboxId, OutboxOutcome)>| {
        let store = store.clone();
        async move {
            let mut tx = begin(&store).await;
            let n = tx.outbox().settle(lease, T0, &outcomes).await.unwrap();
            tx.commit().await.unwrap();
            n
        }
    };

    let a = claim(T0, 1).await;
    assert_eq!(ids_of(&a.events), [paid.id]);
    assert_eq!(a.until, T0 + LEASE);
    // While A's lease runs, B gets neither A's row nor the newer event of the same order.
    let just_before = T0 + LEASE - time::Duration::SECOND;
    let b = claim(just_before, 10).await;
    assert_eq!(ids_of(&b.events), [other.id]);
    assert_eq!(
        settle(b.lease, vec![(other.id, OutboxOutcome::Sent)]).await,
        1
    );
    // A's lease expired: C takes the order's events over, oldest first.
    let expired = T0 + LEASE;
    let c = claim(expired, 10).await;
    assert_eq!(ids_of(&c.events), [paid.id, refunded.id]);
    assert_ne!(c.lease, a.lease);
    // A, past its lease, reports a failure: nothing changes, C's claim stands.
    let stale = vec![(
        paid.id,
        OutboxOutcome::Failed {
            error: "late".into(),
        },
    )];
    assert_eq!(settle(a.lease, stale.clone()).await, 0);
    let sent = vec![
        (paid.id, OutboxOutcome::Sent),
        (refunded.id, OutboxOutcome::Sent),
    ];
    assert_eq!(settle(c.lease, sent).await, 2);
    assert_eq!(settle(a.lease, stale).await, 0);
    let mut tx = begin(&store).await;
    assert_eq!(
        tx.outbox().count_by_status().await.unwrap(),
        [
            (OutboxStatus::Ready, 0),
            (OutboxStatus::Sent, 3),
            (OutboxStatus::Failed, 0)
        ]
    );
    let rows = tx.outbox().list(None, cursor(None, 10)).await.unwrap();
    assert!(
        rows.items
            .iter()
            .all(|r| r.attempts == 0 && r.last_error.is_none())
    );
}

#[tokio::test]
async fn inbox_records_once_and_keeps_positions() {
    let store = MemoryStore::new();
    let mut tx = begin(&store).await;
    assert!(tx.inbox().record("a", "e1", T0).await.unwrap());
    assert!(!tx.inbox().record("a", "e1", T0).await.unwrap());
    assert!(tx.inbox().record("b", "e1", T0).await.unwrap());
    assert_eq!(tx.inbox().position("a", "t", 0).await.unwrap(), None);
    tx.inbox().save_position("a", "t", 0, 5).await.unwrap();
    tx.inbox().save_position("a", "t", 0, 6).await.unwrap();
    assert_eq!(tx.inbox().position("a", "t", 0).await.unwrap(), Some(6));
    assert_eq!(tx.inbox().position("a", "t", 1).await.unwrap(), None);
}

#[tokio::test]
async fn read_views_see_committed_data_and_refuse_writes() {
    let (store, seed) = seeded().await;
    let mut view = store.read().await.unwrap();
    assert_eq!(
        view.users().get(seed.buyer.id).await.unwrap(),
        Some(seed.buyer.clone())
    );
    assert!(matches!(
        view.users().insert(new_user("x")).await,
        Err(RepoError::Internal(_))
    ));
    assert!(matches!(
        view.wallets().apply(charge(seed.buyer.id, 1)).await,
        Err(WalletChangeError::Repo(RepoError::Internal(_)))
    ));
    assert!(view.sales().add(T0.date(), &[]).await.is_err());
    view.commit().await.unwrap();
}

#[tokio::test]
async fn a_second_begin_while_one_is_held_times_out_instead_of_hanging() {
    let store = MemoryStore::with_lock_timeout(Duration::from_millis(50));
    let held = begin(&store).await;
    assert!(matches!(
        store.begin().await,
        Err(RepoError::Unavailable(_))
    ));
    assert!(matches!(store.read().await, Err(RepoError::Unavailable(_))));
    drop(held);
    assert!(store.read().await.is_ok());
}
