//! Dropping a transaction without commit leaves the state exactly as before, for every kind of
//! change (indexes included: the whole state is compared, only id sequences may move).

use super::fixtures::*;
use crate::MemoryStore;
use domain::order::OrderStatus;
use domain::outbox::OutboxOutcome;
use domain::payment::PaymentStatus;
use domain::ports::{OutboxRetry, UnitOfWork};
use domain::product::{ProductPatch, ProductStatus, StockReason};
use domain::sales::ProductSales;

/// Runs `$body` in a transaction that is then dropped, and asserts the state did not change.
/// The body asserts that its change was visible inside the transaction, so a no-op cannot pass.
macro_rules! rolls_back {
    ($store:expr, |$tx:ident| $body:block) => {{
        let store: &MemoryStore = &$store;
        let before = store.snapshot().await;
        {
            let mut $tx = begin(store).await;
            $body
        }
        let mut after = store.snapshot().await;
        after.seq = before.seq.clone();
        assert_eq!(after, before, "the dropped transaction left changes behind");
    }};
}

#[tokio::test]
async fn user_insert_and_its_wallet() {
    let (store, _) = seeded().await;
    rolls_back!(store, |tx| {
        let user = tx.users().insert(new_user("new")).await.unwrap();
        assert!(tx.wallets().get(user.id).await.unwrap().is_some());
        let token = domain::user::TokenHash("new".into());
        assert!(tx.users().find_by_token(&token).await.unwrap().is_some());
    });
}

#[tokio::test]
async fn first_token_secret() {
    let (store, _) = seeded().await;
    rolls_back!(store, |tx| {
        let secret = domain::user::TokenSecret::new([7; 32]);
        assert_eq!(
            tx.users().token_secret(secret.clone()).await.unwrap(),
            secret
        );
    });
}

#[tokio::test]
async fn wallet_charge_and_payment() {
    let (store, seed) = seeded().await;
    let user = seed.buyer.id;
    rolls_back!(store, |tx| {
        tx.wallets().apply(charge(user, 1_000)).await.unwrap();
        let (wallet, _) = tx
            .wallets()
            .apply(pay(user, 3_000, seed.open_order.id))
            .await
            .unwrap();
        assert_eq!(wallet.balance, 48_000);
    });
}

#[tokio::test]
async fn first_wallet_transaction_of_a_user() {
    let (store, seed) = seeded().await;
    rolls_back!(store, |tx| {
        tx.wallets().apply(charge(seed.seller.id, 5)).await.unwrap();
    });
}

#[tokio::test]
async fn product_insert_and_its_initial_ledger_row() {
    let (store, seed) = seeded().await;
    rolls_back!(store, |tx| {
        let p = tx
            .products()
            .insert(new_product(seed.seller.id, 5))
            .await
            .unwrap();
        let ledger = tx.products().ledger(p.id, page(10)).await.unwrap();
        assert_eq!(ledger.items.len(), 1);
    });
}

#[tokio::test]
async fn product_patch_including_a_status_change() {
    let (store, seed) = seeded().await;
    rolls_back!(store, |tx| {
        let patch =
            ProductPatch::new(Some("Green tea"), Some(5), Some(ProductStatus::Off)).unwrap();
        let p = tx
            .products()
            .patch(seed.product.id, &patch, T0 + time::Duration::HOUR)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.status, ProductStatus::Off);
    });
}

#[tokio::test]
async fn stock_changes_and_their_ledger_rows() {
    let (store, seed) = seeded().await;
    rolls_back!(store, |tx| {
        tx.products()
            .change_stock(stock(seed.product.id, -7, StockReason::Order))
            .await
            .unwrap();
        let p = tx
            .products()
            .change_stock(stock(seed.product.id, 3, StockReason::Adjust))
            .await
            .unwrap();
        assert_eq!(p.stock, 96);
    });
}

#[tokio::test]
async fn coupon_insert() {
    let (store, seed) = seeded().await;
    rolls_back!(store, |tx| {
        tx.coupons()
            .insert(new_coupon(seed.seller.id, 1, 1))
            .await
            .unwrap();
    });
}

#[tokio::test]
async fn coupon_issue_counters_and_indexes() {
    let (store, seed) = seeded().await;
    rolls_back!(store, |tx| {
        let issue = tx
            .coupons()
            .issue(issue_for(seed.coupon.id, seed.buyer.id))
            .await
            .unwrap();
        assert_eq!(issue.seq, 3);
        tx.coupons()
            .issue(issue_for(seed.coupon.id, seed.seller.id))
            .await
            .unwrap();
        let counts = tx.coupons().issued_counts(seed.coupon.id).await.unwrap();
        assert_eq!(counts.issued, 4);
    });
}

#[tokio::test]
async fn coupon_use_and_release() {
    let (store, seed) = seeded().await;
    rolls_back!(store, |tx| {
        let used = tx
            .coupons()
            .use_issue(seed.issue, seed.paid_order.id, T0)
            .await
            .unwrap();
        assert!(used.is_some());
    });
    rolls_back!(store, |tx| {
        tx.coupons()
            .release_issue(seed.used_issue, seed.open_order.id)
            .await
            .unwrap();
    });
}

#[tokio::test]
async fn order_insert() {
    let (store, seed) = seeded().await;
    rolls_back!(store, |tx| {
        tx.orders()
            .insert(new_order(seed.buyer.id, &seed.product, 1))
            .await
            .unwrap();
        assert_eq!(
            tx.orders()
                .claim_expired(T0 + time::Duration::HOUR, 10)
                .await
                .unwrap()
                .len(),
            2
        );
    });
}

#[tokio::test]
async fn order_transitions() {
    let (store, seed) = seeded().await;
    rolls_back!(store, |tx| {
        let t = T0 + time::Duration::MINUTE;
        let paid = tx
            .orders()
            .transition(
                seed.open_order.id,
                OrderStatus::Created,
                OrderStatus::Paid,
                t,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(paid.paid_at, Some(t));
        tx.orders()
            .transition(
                seed.open_order.id,
                OrderStatus::Paid,
                OrderStatus::Refunded,
                t,
            )
            .await
            .unwrap()
            .unwrap();
    });
    rolls_back!(store, |tx| {
        tx.orders()
            .transition(
                seed.open_order.id,
                OrderStatus::Created,
                OrderStatus::Canceled,
                T0,
            )
            .await
            .unwrap()
            .unwrap();
    });
}

#[tokio::test]
async fn payment_insert_and_refund() {
    let (store, seed) = seeded().await;
    rolls_back!(store, |tx| {
        tx.payments()
            .insert(payment(&seed.open_order, PaymentStatus::Failed))
            .await
            .unwrap();
        tx.payments()
            .insert(payment(&seed.open_order, PaymentStatus::Succeeded))
            .await
            .unwrap();
        assert!(
            tx.payments()
                .succeeded_for_order(seed.open_order.id)
                .await
                .unwrap()
                .is_some()
        );
    });
    rolls_back!(store, |tx| {
        tx.payments().mark_refunded(seed.payment).await.unwrap();
        assert!(
            tx.payments()
                .succeeded_for_order(seed.paid_order.id)
                .await
                .unwrap()
                .is_none()
        );
    });
}

#[tokio::test]
async fn sales_roll_up_upserts() {
    let (store, seed) = seeded().await;
    let other_day = T0.date().next_day().unwrap();
    rolls_back!(store, |tx| {
        let deltas = [
            ProductSales {
                product_id: seed.product.id,
                quantity: 4,
            },
            ProductSales {
                product_id: domain::ProductId(999),
                quantity: 2,
            },
            ProductSales {
                product_id: seed.product.id,
                quantity: -1,
            },
        ];
        tx.sales().add(T0.date(), &deltas).await.unwrap();
        tx.sales().add(other_day, &deltas).await.unwrap();
        let day = tx.sales().day_totals(T0.date()).await.unwrap();
        assert!(day.contains(&ProductSales {
            product_id: seed.product.id,
            quantity: 4
        }));
    });
}

#[tokio::test]
async fn outbox_append_and_every_status_change() {
    let (store, seed) = seeded().await;
    rolls_back!(store, |tx| {
        let e = tx
            .outbox()
            .append(envelope("e-new", seed.open_order.id), T0)
            .await
            .unwrap();
        let claim = tx.outbox().claim_ready(T0, T0 + LEASE, 10).await.unwrap();
        assert_eq!(claim.events.len(), 2);
        let outcomes = [
            (e.id, OutboxOutcome::Sent),
            (
                seed.ready_event,
                OutboxOutcome::Retry {
                    error: "broker down".into(),
                    next_attempt_at: T0 + time::Duration::SECOND,
                },
            ),
        ];
        assert_eq!(
            tx.outbox()
                .settle(claim.lease, T0, &outcomes)
                .await
                .unwrap(),
            2
        );
        let requeued = tx.outbox().retry(seed.failed_event, T0).await.unwrap();
        assert!(matches!(requeued, OutboxRetry::Requeued(_)));
    });
    rolls_back!(store, |tx| {
        let claim = tx.outbox().claim_ready(T0, T0 + LEASE, 10).await.unwrap();
        let failed = [(
            seed.ready_event,
            OutboxOutcome::Failed {
                error: "gave up".into(),
            },
        )];
        assert_eq!(
            tx.outbox().settle(claim.lease, T0, &failed).await.unwrap(),
            1
        );
    });
    // A claim left unsettled: its leases go with the transaction.
    rolls_back!(store, |tx| {
        let claim = tx.outbox().claim_ready(T0, T0 + LEASE, 10).await.unwrap();
        assert_eq!(claim.events.len(), 1);
        assert!(
            tx.outbox()
                .claim_ready(T0, T0 + LEASE, 10)
                .await
                .unwrap()
                .events
                .is_empty()
        );
    });
}

#[tokio::test]
async fn inbox_records_and_positions() {
    let (store, _) = seeded().await;
    rolls_back!(store, |tx| {
        assert!(tx.inbox().record("ranking", "e-new", T0).await.unwrap());
        tx.inbox()
            .save_position("ranking", "order.paid", 0, 8)
            .await
            .unwrap();
        tx.inbox()
            .save_position("ranking", "order.refunded", 0, 1)
            .await
            .unwrap();
    });
}

/// A whole "pay" and a whole "cancel" in one transaction, undone in reverse order.
#[tokio::test]
async fn a_mix_of_every_change_in_one_transaction() {
    let (store, seed) = seeded().await;
    let buyer = seed.buyer.id;
    rolls_back!(store, |tx| {
        let order = &seed.open_order;
        tx.wallets()
            .apply(pay(buyer, order.total_amount, order.id))
            .await
            .unwrap();
        tx.payments()
            .insert(payment(order, PaymentStatus::Succeeded))
            .await
            .unwrap();
        tx.orders()
            .transition(order.id, OrderStatus::Created, OrderStatus::Paid, T0)
            .await
            .unwrap()
            .unwrap();
        tx.sales()
            .add(
                T0.date(),
                &[ProductSales {
                    product_id: seed.product.id,
                    quantity: 2,
                }],
            )
            .await
            .unwrap();
        tx.outbox()
            .append(envelope("e-paid", order.id), T0)
            .await
            .unwrap();
        // Then refund it.
        tx.orders()
            .transition(order.id, OrderStatus::Paid, OrderStatus::Refunded, T0)
            .await
            .unwrap()
            .unwrap();
        tx.products()
            .change_stock(stock(seed.product.id, 2, StockReason::Cancel))
            .await
            .unwrap();
        tx.coupons()
            .release_issue(seed.used_issue, order.id)
            .await
            .unwrap();
        tx.users().insert(new_user("late")).await.unwrap();
        tx.inbox().record("c", "e", T0).await.unwrap();
    });
}

#[tokio::test]
async fn refused_conditional_operations_change_nothing_even_when_committed() {
    let (store, seed) = seeded().await;
    let before = store.snapshot().await;
    let mut tx = begin(&store).await;
    assert!(
        tx.wallets()
            .apply(pay(seed.buyer.id, 1_000_000, seed.open_order.id))
            .await
            .is_err()
    );
    assert!(
        tx.wallets()
            .apply(charge(seed.buyer.id, 999_999))
            .await
            .is_err()
    );
    assert!(
        tx.products()
            .change_stock(stock(seed.product.id, -101, StockReason::Order))
            .await
            .is_err()
    );
    assert!(
        tx.payments()
            .insert(payment(&seed.paid_order, PaymentStatus::Succeeded))
            .await
            .is_err()
    );
    assert!(
        tx.orders()
            .transition(
                seed.paid_order.id,
                OrderStatus::Created,
                OrderStatus::Canceled,
                T0
            )
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        tx.coupons()
            .use_issue(seed.used_issue, seed.paid_order.id, T0)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!tx.inbox().record("ranking", "e-old", T0).await.unwrap());
    tx.commit().await.unwrap();
    let mut after = store.snapshot().await;
    after.seq = before.seq.clone();
    assert_eq!(after, before);
}

#[tokio::test]
async fn commit_keeps_the_changes() {
    let (store, seed) = seeded().await;
    let mut tx = begin(&store).await;
    tx.wallets().apply(charge(seed.buyer.id, 1)).await.unwrap();
    let user = tx.users().insert(new_user("kept")).await.unwrap();
    tx.commit().await.unwrap();
    let mut view = store.read().await.unwrap();
    let wallet = view.wallets().get(seed.buyer.id).await.unwrap().unwrap();
    assert_eq!(wallet.balance, 50_001);
    assert_eq!(view.users().get(user.id).await.unwrap(), Some(user));
}

fn page(limit: u32) -> domain::page::CursorPage {
    domain::page::CursorPage {
        before: None,
        limit,
    }
}
