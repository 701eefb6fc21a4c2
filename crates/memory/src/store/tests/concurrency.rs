//! The store's guarantees under real concurrency: many tasks on a multi-thread runtime, released
//! together by a barrier, yielding inside their transactions to widen every race window.

use super::fixtures::*;
use crate::MemoryStore;
use domain::order::OrderStatus;
use domain::page::CursorPage;
use domain::ports::{IssueError, StockChangeError, UnitOfWork, WalletChangeError};
use domain::product::StockReason;
use domain::{CouponId, ProductId, UserId};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Barrier;
use tokio::task::{JoinSet, yield_now};

/// Spawns `n` copies of `task(i)`, all released at once; returns their results.
async fn burst<T, F, Fut>(n: usize, task: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let mut set = JoinSet::new();
    for i in 0..n {
        let barrier = barrier.clone();
        let fut = task(i);
        set.spawn(async move {
            barrier.wait().await;
            fut.await
        });
    }
    let mut results = Vec::with_capacity(n);
    while let Some(result) = set.join_next().await {
        results.push(result.unwrap());
    }
    results
}

async fn product_with_stock(store: &MemoryStore, stock: i64) -> ProductId {
    let mut tx = store.begin().await.unwrap();
    let id = tx
        .products()
        .insert(new_product(UserId(1), stock))
        .await
        .unwrap()
        .id;
    tx.commit().await.unwrap();
    id
}

/// Stock and the sum of the ledger, read in one view.
async fn stock_and_ledger_sum(store: &MemoryStore, id: ProductId) -> (i64, i64) {
    let mut view = store.read().await.unwrap();
    let stock = view.products().get(id).await.unwrap().unwrap().stock;
    let mut sum = 0;
    let mut before = None;
    loop {
        let page = view
            .products()
            .ledger(id, CursorPage { before, limit: 100 })
            .await
            .unwrap();
        sum += page.items.iter().map(|r| r.delta).sum::<i64>();
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    (stock, sum)
}

async fn reserve_one(store: MemoryStore, id: ProductId) -> bool {
    let mut tx = store.begin().await.unwrap();
    yield_now().await;
    match tx
        .products()
        .change_stock(stock(id, -1, StockReason::Order))
        .await
    {
        Ok(_) => {
            yield_now().await;
            tx.commit().await.unwrap();
            true
        }
        Err(StockChangeError::Insufficient { available: 0 }) => false,
        Err(other) => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn n_reservations_against_stock_s_succeed_exactly_min_n_s_times() {
    for (n, s) in [(300, 100), (60, 100), (100, 100)] {
        let store = MemoryStore::new();
        let id = product_with_stock(&store, s).await;
        let results = burst(n, |_| reserve_one(store.clone(), id)).await;
        let won = results.iter().filter(|won| **won).count() as i64;
        assert_eq!(won, (n as i64).min(s), "n={n} s={s}");
        let (stock, ledger) = stock_and_ledger_sum(&store, id).await;
        assert_eq!(stock, s - won);
        assert_eq!(ledger, stock, "stock must equal the sum of its ledger");
    }
}

/// Orders of two products reserve both or neither: a failure on the second rolls back the
/// first, under contention.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_item_reservations_are_all_or_nothing() {
    let store = MemoryStore::new();
    let a = product_with_stock(&store, 30).await;
    let b = product_with_stock(&store, 20).await;
    let results = burst(120, |_| {
        let store = store.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            for id in [a, b] {
                yield_now().await;
                if tx
                    .products()
                    .change_stock(stock(id, -1, StockReason::Order))
                    .await
                    .is_err()
                {
                    return false; // dropped: the first reservation is undone
                }
            }
            tx.commit().await.unwrap();
            true
        }
    })
    .await;
    assert_eq!(results.iter().filter(|won| **won).count(), 20);
    assert_eq!(stock_and_ledger_sum(&store, a).await, (10, 10));
    assert_eq!(stock_and_ledger_sum(&store, b).await, (0, 0));
}

async fn user_with_balance(store: &MemoryStore, balance: i64) -> UserId {
    let mut tx = store.begin().await.unwrap();
    let user = tx.users().insert(new_user("u")).await.unwrap().id;
    tx.wallets().apply(charge(user, balance)).await.unwrap();
    tx.commit().await.unwrap();
    user
}

/// Applies `change` in its own transaction; the signed amount when it was applied.
async fn apply_one(store: MemoryStore, change: domain::ports::WalletChange) -> Option<i64> {
    let mut tx = store.begin().await.unwrap();
    yield_now().await;
    match tx.wallets().apply(change).await {
        Ok((wallet, row)) => {
            assert!(wallet.balance >= 0);
            assert_eq!(row.balance_after, wallet.balance);
            yield_now().await;
            tx.commit().await.unwrap();
            Some(row.amount)
        }
        Err(WalletChangeError::Insufficient { balance }) => {
            assert!(balance < 100);
            None
        }
        Err(other) => panic!("unexpected {other:?}"),
    }
}

/// Balance, and the sum and count of the wallet's rows, read in one view.
async fn wallet_totals(store: &MemoryStore, user: UserId) -> (i64, i64, usize) {
    let mut view = store.read().await.unwrap();
    let balance = view.wallets().get(user).await.unwrap().unwrap().balance;
    let rows = view
        .wallets()
        .transactions(
            user,
            CursorPage {
                before: None,
                limit: 1_000,
            },
        )
        .await
        .unwrap();
    assert!(rows.next.is_none());
    let sum = rows.items.iter().map(|r| r.amount).sum();
    (balance, sum, rows.items.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_debits_spend_the_balance_exactly_once() {
    let store = MemoryStore::new();
    let user = user_with_balance(&store, 10_000).await;
    let results = burst(300, |i| {
        apply_one(store.clone(), pay(user, 100, domain::OrderId(i as i64 + 1)))
    })
    .await;
    assert_eq!(results.iter().flatten().count(), 100);
    assert_eq!(wallet_totals(&store, user).await, (0, 0, 101));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_charges_and_debits_never_overdraw_and_rows_sum_to_the_balance() {
    let store = MemoryStore::new();
    let user = user_with_balance(&store, 10_000).await;
    // 300 debits of 100 racing with 50 charges of 10.
    let results = burst(350, |i| {
        let change = if i % 7 == 0 {
            charge(user, 10)
        } else {
            pay(user, 100, domain::OrderId(i as i64 + 1))
        };
        apply_one(store.clone(), change)
    })
    .await;
    let applied: i64 = results.iter().flatten().sum();
    let (balance, sum, rows) = wallet_totals(&store, user).await;
    assert_eq!(balance, 10_000 + applied, "no update was lost");
    assert!(balance >= 0);
    assert_eq!(sum, balance, "balance must equal the sum of its rows");
    assert_eq!(rows, 1 + results.iter().flatten().count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_coupon_burst_never_exceeds_total_nor_per_user_limit() {
    let store = MemoryStore::new();
    let mut tx = store.begin().await.unwrap();
    let coupon = tx
        .coupons()
        .insert(new_coupon(UserId(1), 50, 2))
        .await
        .unwrap()
        .id;
    tx.commit().await.unwrap();

    // 40 users asking 5 times each: 80 could be served by the per-user limit, 50 exist.
    let results = burst(200, |i| {
        let store = store.clone();
        async move {
            let user = UserId(100 + (i % 40) as i64);
            let mut tx = store.begin().await.unwrap();
            yield_now().await;
            let outcome = tx.coupons().issue(issue_for(coupon, user)).await;
            if outcome.is_ok() {
                tx.commit().await.unwrap();
            }
            outcome
        }
    })
    .await;

    let issued: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(issued.len(), 50);
    assert!(results.iter().all(|r| matches!(
        r,
        Ok(_) | Err(IssueError::SoldOut) | Err(IssueError::LimitReached)
    )));
    let mut per_user: HashMap<UserId, Vec<i64>> = HashMap::new();
    for issue in &issued {
        per_user.entry(issue.user_id).or_default().push(issue.seq);
    }
    for seqs in per_user.values_mut() {
        seqs.sort_unstable();
        assert!(seqs.len() <= 2);
        assert_eq!(*seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    }
    let mut view = store.read().await.unwrap();
    let counts = view.coupons().issued_counts(coupon).await.unwrap();
    assert_eq!(counts.issued, 50);
    let mut expected: Vec<_> = per_user
        .iter()
        .map(|(user, seqs)| (*user, seqs.len() as i64))
        .collect();
    expected.sort_unstable();
    assert_eq!(counts.per_user, expected);
    let stored = view.coupons().get(coupon).await.unwrap().unwrap();
    assert_eq!(stored.issued_quantity, 50);
    assert!(view.coupons().get(CouponId(2)).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_transition_race_has_exactly_one_winner() {
    for round in 0..20 {
        let (store, seed) = seeded().await;
        let order = seed.open_order.id;
        let results = burst(50, |i| {
            let store = store.clone();
            async move {
                // Pay, cancel and expiry all race from CREATED.
                let to = if (i + round) % 2 == 0 {
                    OrderStatus::Paid
                } else {
                    OrderStatus::Canceled
                };
                let mut tx = store.begin().await.unwrap();
                let seen = tx.orders().get(order).await.unwrap().unwrap().status;
                yield_now().await;
                let won = tx
                    .orders()
                    .transition(order, OrderStatus::Created, to, T0)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                won.map(|o| {
                    assert_eq!(seen, OrderStatus::Created);
                    o.status
                })
            }
        })
        .await;
        let winners: Vec<_> = results.into_iter().flatten().collect();
        assert_eq!(winners.len(), 1, "round {round}");
        let mut view = store.read().await.unwrap();
        let stored = view.orders().get(order).await.unwrap().unwrap();
        assert_eq!(stored.status, winners[0]);
    }
}

/// Transactions that are dropped part-way (errors, cancelled requests) interleave with ones that
/// commit; the invariants still hold at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_transactions_interleaved_with_commits_keep_every_invariant() {
    let store = MemoryStore::new();
    let id = product_with_stock(&store, 1_000).await;
    let results = burst(400, |i| {
        let store = store.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            let delta = if i % 3 == 0 { 2 } else { -3 };
            let changed = tx
                .products()
                .change_stock(stock(id, delta, StockReason::Adjust))
                .await
                .is_ok();
            yield_now().await;
            if changed && i % 5 != 0 {
                tx.commit().await.unwrap();
                delta
            } else {
                0
            }
        }
    })
    .await;
    let net: i64 = results.iter().sum();
    let (stock, ledger) = stock_and_ledger_sum(&store, id).await;
    assert_eq!(stock, 1_000 + net);
    assert_eq!(ledger, stock);
    assert!(stock >= 0);
}
