//! Concurrency against a real PostgreSQL, on a multi-thread runtime: many tasks race for the
//! same hot rows, and the invariants of RULES.md must hold whatever the interleaving.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

#[path = "common/mod.rs"]
mod common;

use application::coupons::IssueOutcome;
use application::{Actor, Ports, Shop, ShopConfig, ShopError};
use common::fixtures::{NOW, charge, coupon, new_order, order, shop, user};
use common::{TestDb, scalar};
use domain::coupon::{Coupon, NewCouponIssue};
use domain::idempotency::{IdempotencyKey, IdempotencyRequest, IdempotencyScope, IdempotencyStart};
use domain::order::{OrderLine, OrderStatus};
use domain::outbox::{EventEnvelope, EventType};
use domain::ports::{
    CouponGate, GateDecision, GateError, IdempotencyStore, IssueError, IssuedCounts, RepoError,
    StockChangeError, Transaction, UnitOfWork, WalletChange, WalletChangeError,
};
use domain::product::{StockChange, StockReason};
use domain::sales::ProductSales;
use domain::user::Role;
use domain::wallet::WalletTransactionType;
use domain::{CouponId, ProductId, UserId};
use memory::{InProcessBus, ManualClock, MemoryRankingStore};
use persistence_diesel::PgStore;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use time::macros::date;
use tokio::sync::Barrier;

/// A database whose pool lets every racer wait for a connection instead of failing fast.
async fn racing_db() -> TestDb {
    TestDb::with_config(|c| {
        c.pool_size = 16;
        c.wait_timeout = Duration::from_secs(30);
    })
    .await
}

/// Runs `n` copies of `race` at once (released together by a barrier) and collects results.
async fn race<T, F, Fut>(store: &PgStore, n: usize, race: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(PgStore, usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let run = race(store.clone(), i);
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            run.await
        }));
    }
    let mut results = Vec::with_capacity(n);
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

fn unit(product: ProductId, delta: i64) -> StockChange {
    StockChange {
        product_id: product,
        delta,
        reason: StockReason::Order,
        order_id: None,
        note: None,
        at: NOW,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_oversell_n_reservations_against_stock_s_succeed_min_n_s_times() {
    let db = racing_db().await;
    const STOCK: i64 = 25;
    const BUYERS: usize = 100;
    let (_, _, p) = shop(&db.store, STOCK).await;
    let results = race(&db.store, BUYERS, move |store, _| async move {
        let mut tx = store.begin().await?;
        match tx.products().change_stock(unit(p.id, -1)).await {
            Ok(_) => tx.commit().await.map(|()| true),
            Err(StockChangeError::Insufficient { available }) => {
                assert_eq!(available, 0, "refused only when nothing is left");
                Ok(false)
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    })
    .await;
    let sold = results
        .into_iter()
        .map(|r: Result<bool, RepoError>| r.unwrap())
        .filter(|sold| *sold)
        .count();
    assert_eq!(sold, usize::try_from(STOCK).unwrap());

    let mut raw = db.raw().await;
    let stock = scalar(
        &mut raw,
        &format!("(SELECT stock FROM products WHERE id = {})", p.id),
    )
    .await;
    let ledger = scalar(
        &mut raw,
        &format!(
            "(SELECT sum(delta)::bigint FROM product_stock_ledger WHERE product_id = {})",
            p.id
        ),
    )
    .await;
    assert_eq!((stock, ledger), (0, 0));
    let rows = scalar(
        &mut raw,
        "(SELECT count(*) FROM product_stock_ledger WHERE reason = 'ORDER')",
    )
    .await;
    assert_eq!(rows, STOCK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_item_reservations_in_id_order_never_oversell_nor_deadlock() {
    let db = racing_db().await;
    let mut tx = db.store.begin().await.unwrap();
    let seller = user(tx.as_mut(), Role::Seller).await;
    let mut products = Vec::new();
    for stock in [10, 7, 13] {
        products.push(
            common::fixtures::product(tx.as_mut(), &seller, 100, stock)
                .await
                .id,
        );
    }
    tx.commit().await.unwrap();
    let products = Arc::new(products);
    // Each buyer wants 1..=3 units of every product; all or nothing, locks in id order.
    let results = race(&db.store, 60, move |store, i| {
        let products = products.clone();
        async move {
            let quantity = i64::try_from(i % 3 + 1).unwrap();
            let mut tx = store.begin().await.unwrap();
            for id in products.iter() {
                match tx.products().change_stock(unit(*id, -quantity)).await {
                    Ok(_) => {}
                    Err(StockChangeError::Insufficient { .. }) => return 0,
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }
            tx.commit().await.unwrap();
            quantity
        }
    })
    .await;
    let reserved: i64 = results.iter().sum();
    assert!(reserved > 0);
    let mut raw = db.raw().await;
    assert_eq!(
        scalar(
            &mut raw,
            "(SELECT count(*) FROM products p WHERE p.stock <> \
              (SELECT sum(delta) FROM product_stock_ledger l WHERE l.product_id = p.id))"
        )
        .await,
        0,
        "stock = sum of ledger deltas for every product"
    );
    assert_eq!(
        scalar(&mut raw, "(SELECT sum(stock)::bigint FROM products)").await,
        30 - 3 * reserved
    );
    assert!(scalar(&mut raw, "(SELECT min(stock) FROM products)").await >= 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_double_spend_concurrent_debits_and_charges_keep_the_books_balanced() {
    let db = racing_db().await;
    let mut tx = db.store.begin().await.unwrap();
    let u = user(tx.as_mut(), Role::Buyer).await;
    charge(tx.as_mut(), &u, 1_000).await;
    tx.commit().await.unwrap();
    let change = move |amount: i64| WalletChange {
        user_id: u.id,
        kind: if amount < 0 {
            WalletTransactionType::Payment
        } else {
            WalletTransactionType::Charge
        },
        amount,
        max_balance: Some(1_000_000),
        order_id: None,
        at: NOW,
    };
    // 40 debits of 100 and 20 charges of 50, interleaved.
    let results = race(&db.store, 60, move |store, i| async move {
        let amount = if i % 3 == 2 { 50 } else { -100 };
        let mut tx = store.begin().await.unwrap();
        match tx.wallets().apply(change(amount)).await {
            Ok((wallet, row)) => {
                assert!(wallet.balance >= 0 && row.balance_after == wallet.balance);
                tx.commit().await.unwrap();
                Some(amount)
            }
            Err(WalletChangeError::Insufficient { balance }) => {
                assert!(amount < 0 && balance < 100, "refused with {balance}");
                None
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    })
    .await;
    let applied: Vec<i64> = results.into_iter().flatten().collect();
    let charges = applied.iter().filter(|a| **a > 0).count();
    let debits = applied.iter().filter(|a| **a < 0).count();
    assert_eq!(charges, 20, "charges never fail here");
    assert!((10..=20).contains(&debits), "{debits} debits");
    let expected = 1_000 + applied.iter().sum::<i64>();

    let mut raw = db.raw().await;
    let balance = scalar(
        &mut raw,
        &format!("(SELECT balance FROM wallets WHERE user_id = {})", u.id),
    )
    .await;
    let sum = scalar(
        &mut raw,
        &format!(
            "(SELECT sum(amount)::bigint FROM wallet_transactions WHERE user_id = {})",
            u.id
        ),
    )
    .await;
    assert_eq!((balance, sum), (expected, expected));
    assert!(balance >= 0);
    assert_eq!(
        scalar(
            &mut raw,
            "(SELECT count(*) FROM wallet_transactions WHERE balance_after < 0)"
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_debits_beyond_the_balance_succeed_exactly_as_often_as_money_allows() {
    let db = racing_db().await;
    let mut tx = db.store.begin().await.unwrap();
    let u = user(tx.as_mut(), Role::Buyer).await;
    charge(tx.as_mut(), &u, 1_000).await;
    tx.commit().await.unwrap();
    let results = race(&db.store, 50, move |store, _| async move {
        let mut tx = store.begin().await.unwrap();
        let debit = WalletChange {
            user_id: u.id,
            kind: WalletTransactionType::Payment,
            amount: -100,
            max_balance: None,
            order_id: None,
            at: NOW,
        };
        match tx.wallets().apply(debit).await {
            Ok(_) => {
                tx.commit().await.unwrap();
                true
            }
            Err(WalletChangeError::Insufficient { balance: 0 }) => false,
            Err(e) => panic!("unexpected {e:?}"),
        }
    })
    .await;
    assert_eq!(results.iter().filter(|ok| **ok).count(), 10);
    let mut read = db.store.read().await.unwrap();
    assert_eq!(read.wallets().get(u.id).await.unwrap().unwrap().balance, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_coupon_burst_never_issues_beyond_the_total_or_a_users_limit() {
    let db = racing_db().await;
    let mut tx = db.store.begin().await.unwrap();
    let seller = user(tx.as_mut(), Role::Seller).await;
    let mut buyers = Vec::new();
    for _ in 0..15 {
        buyers.push(user(tx.as_mut(), Role::Buyer).await.id);
    }
    let c = coupon(tx.as_mut(), &seller, 20, 2).await;
    tx.commit().await.unwrap();
    let buyers = Arc::new(buyers);
    // 15 users x 4 attempts = 60 requests for 20 copies, at most 2 per user.
    let results = race(&db.store, 60, move |store, i| {
        let buyers = buyers.clone();
        async move {
            let user = buyers[i % buyers.len()];
            let mut tx = store.begin().await.unwrap();
            let issued = tx
                .coupons()
                .issue(NewCouponIssue {
                    coupon_id: c.id,
                    user_id: user,
                    issued_at: NOW,
                })
                .await;
            match issued {
                Ok(issue) => {
                    tx.commit().await.unwrap();
                    Ok((user, issue.seq))
                }
                Err(e @ (IssueError::SoldOut | IssueError::LimitReached)) => Err(e),
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
    })
    .await;
    let granted: Vec<(UserId, i64)> = results.iter().filter_map(|r| r.clone().ok()).collect();
    assert_eq!(granted.len(), 20);
    let mut per_user: HashMap<UserId, Vec<i64>> = HashMap::new();
    for (user, seq) in granted {
        per_user.entry(user).or_default().push(seq);
    }
    for seqs in per_user.values_mut() {
        seqs.sort_unstable();
        assert!(seqs == &[1] || seqs == &[1, 2], "{seqs:?}");
    }
    let mut read = db.store.read().await.unwrap();
    let stored = read.coupons().get(c.id).await.unwrap().unwrap();
    let counts = read.coupons().issued_counts(c.id).await.unwrap();
    assert_eq!((stored.issued_quantity, counts.issued), (20, 20));
    assert!(counts.per_user.iter().all(|(_, n)| *n <= 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_user_hammering_a_coupon_gets_exactly_the_per_user_limit() {
    let db = racing_db().await;
    let mut tx = db.store.begin().await.unwrap();
    let seller = user(tx.as_mut(), Role::Seller).await;
    let buyer = user(tx.as_mut(), Role::Buyer).await;
    let c = coupon(tx.as_mut(), &seller, 100, 3).await;
    tx.commit().await.unwrap();
    let results = race(&db.store, 30, move |store, _| async move {
        let mut tx = store.begin().await.unwrap();
        let issued = tx
            .coupons()
            .issue(NewCouponIssue {
                coupon_id: c.id,
                user_id: buyer.id,
                issued_at: NOW,
            })
            .await;
        match issued {
            Ok(issue) => {
                tx.commit().await.unwrap();
                Some(issue.seq)
            }
            Err(IssueError::LimitReached) => None,
            Err(e) => panic!("unexpected {e:?}"),
        }
    })
    .await;
    let mut seqs: Vec<i64> = results.into_iter().flatten().collect();
    seqs.sort_unstable();
    assert_eq!(seqs, [1, 2, 3]);
    let mut read = db.store.read().await.unwrap();
    assert_eq!(
        read.coupons()
            .get(c.id)
            .await
            .unwrap()
            .unwrap()
            .issued_quantity,
        3
    );
}

/// A gate that grants every request, so that a burst reaches the store whole and the store's
/// counter is the only thing between it and an over-issue (as after Redis lost its state).
struct GrantAll;

#[async_trait::async_trait]
impl CouponGate for GrantAll {
    async fn try_acquire(&self, _: &Coupon, _: UserId) -> Result<GateDecision, GateError> {
        Ok(GateDecision::Granted)
    }
    async fn release(&self, _: CouponId, _: UserId) -> Result<(), GateError> {
        Ok(())
    }
    async fn load(&self, _: &Coupon, _: &IssuedCounts) -> Result<(), GateError> {
        Ok(())
    }
}

/// The store under test, counting the transactions opened through it.
struct CountingStore {
    inner: PgStore,
    begins: AtomicUsize,
}

#[async_trait::async_trait]
impl UnitOfWork for CountingStore {
    async fn begin(&self) -> Result<Box<dyn Transaction>, RepoError> {
        self.begins.fetch_add(1, Ordering::SeqCst);
        self.inner.begin().await
    }
    async fn read(&self) -> Result<Box<dyn Transaction>, RepoError> {
        self.inner.read().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_through_the_shop_is_batched_and_never_over_issues() {
    let db = racing_db().await;
    let mut tx = db.store.begin().await.unwrap();
    let seller = user(tx.as_mut(), Role::Seller).await;
    let mut buyers = Vec::new();
    for _ in 0..200 {
        buyers.push(user(tx.as_mut(), Role::Buyer).await.id);
    }
    let c = coupon(tx.as_mut(), &seller, 100, 1).await;
    tx.commit().await.unwrap();
    let store = Arc::new(CountingStore {
        inner: db.store.clone(),
        begins: AtomicUsize::new(0),
    });
    let shop = Shop::new(
        Ports {
            store: store.clone(),
            gate: Arc::new(GrantAll),
            ranking: Arc::new(MemoryRankingStore::cold()),
            publisher: Arc::new(InProcessBus::new()),
            idempotency: Arc::new(db.store.idempotency()),
            clock: Arc::new(ManualClock::new(NOW)),
        },
        ShopConfig::default(),
    );
    // 200 users ask twice each through the shop (400 grants for 100 copies, at most one per
    // user), while 50 of them also get issues written one by one, as the async issuer does.
    let barrier = Arc::new(Barrier::new(450));
    let mut requests = Vec::new();
    for &buyer in buyers.iter().chain(&buyers) {
        let (shop, barrier) = (shop.clone(), barrier.clone());
        requests.push(tokio::spawn(async move {
            barrier.wait().await;
            let actor = Actor {
                user_id: buyer,
                role: Role::Buyer,
            };
            (buyer, shop.issue_coupon(actor, c.id, None).await)
        }));
    }
    let mut singles = Vec::new();
    for &buyer in &buyers[..50] {
        let (store, barrier) = (db.store.clone(), barrier.clone());
        singles.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut tx = store.begin().await.unwrap();
            let issued = tx
                .coupons()
                .issue(NewCouponIssue {
                    coupon_id: c.id,
                    user_id: buyer,
                    issued_at: NOW,
                })
                .await;
            match issued {
                Ok(issue) => {
                    tx.commit().await.unwrap();
                    Some(issue.user_id)
                }
                Err(IssueError::SoldOut | IssueError::LimitReached) => None,
                Err(e) => panic!("unexpected {e:?}"),
            }
        }));
    }
    let mut granted = Vec::new();
    for request in requests {
        match request.await.unwrap() {
            (buyer, Ok(IssueOutcome::Issued(issue))) => {
                assert_eq!((issue.user_id, issue.coupon_id), (buyer, c.id));
                granted.push(buyer);
            }
            (_, Err(ShopError::CouponSoldOut(_) | ShopError::CouponAlreadyIssued(_))) => {}
            (_, other) => panic!("unexpected {other:?}"),
        }
    }
    let shop_grants = granted.len();
    for single in singles {
        granted.extend(single.await.unwrap());
    }
    assert_eq!(granted.len(), 100);
    let distinct: HashSet<UserId> = granted.iter().copied().collect();
    assert_eq!(distinct.len(), 100, "a user got two copies");

    let mut read = db.store.read().await.unwrap();
    let stored = read.coupons().get(c.id).await.unwrap().unwrap();
    let counts = read.coupons().issued_counts(c.id).await.unwrap();
    assert_eq!((stored.issued_quantity, counts.issued), (100, 100));
    assert!(counts.per_user.iter().all(|(_, n)| *n == 1));
    let mut raw = db.raw().await;
    let rows = scalar(
        &mut raw,
        &format!(
            "(SELECT count(*) FROM coupon_issues WHERE coupon_id = {})",
            c.id
        ),
    )
    .await;
    assert_eq!(rows, 100);
    // Every shop request got a grant from the gate; the store saw them in far fewer
    // transactions than grants (one each without batching).
    let transactions = store.begins.load(Ordering::SeqCst);
    assert!(
        transactions * 2 <= 400,
        "{transactions} transactions for 400 grants ({shop_grants} issued)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_pay_cancel_and_expiry_transitions_have_exactly_one_winner() {
    let db = racing_db().await;
    let (buyer, _, p) = shop(&db.store, 100).await;
    for _ in 0..5 {
        let mut tx = db.store.begin().await.unwrap();
        let o = order(tx.as_mut(), &buyer, &[(&p, 1)]).await;
        tx.commit().await.unwrap();
        let results = race(&db.store, 24, move |store, i| async move {
            let to = match i % 3 {
                0 => OrderStatus::Paid,
                _ => OrderStatus::Canceled,
            };
            let mut tx = store.begin().await.unwrap();
            let won = tx
                .orders()
                .transition(o.id, OrderStatus::Created, to, NOW)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            won.map(|order| (to, order.status))
        })
        .await;
        let winners: Vec<_> = results.into_iter().flatten().collect();
        assert_eq!(winners.len(), 1, "{winners:?}");
        let (wanted, got) = winners[0];
        assert_eq!(wanted, got);
        let mut read = db.store.read().await.unwrap();
        assert_eq!(
            read.orders().get(o.id).await.unwrap().unwrap().status,
            wanted
        );
    }
}

fn envelope(n: usize) -> EventEnvelope {
    EventEnvelope {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_type: EventType::OrderPaid,
        aggregate_type: "ORDER".into(),
        aggregate_id: n.to_string(),
        occurred_at: NOW,
        payload: serde_json::json!({ "n": n }),
    }
}

/// How long the outbox claims of these races last.
const LEASE: time::Duration = time::Duration::seconds(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_open_transactions_never_claim_the_same_outbox_rows() {
    let db = racing_db().await;
    let mut tx = db.store.begin().await.unwrap();
    for n in 0..40 {
        tx.outbox().append(envelope(n), NOW).await.unwrap();
    }
    tx.commit().await.unwrap();

    // Two claim statements whose transactions are both still open: the row locks keep them
    // apart until the leases are committed.
    let mut first = db.store.begin().await.unwrap();
    let mut second = db.store.begin().await.unwrap();
    let a = first
        .outbox()
        .claim_ready(NOW, NOW + LEASE, 25)
        .await
        .unwrap();
    let b = second
        .outbox()
        .claim_ready(NOW, NOW + LEASE, 25)
        .await
        .unwrap();
    let a_ids: HashSet<_> = a.events.iter().map(|e| e.id).collect();
    let b_ids: HashSet<_> = b.events.iter().map(|e| e.id).collect();
    assert_eq!((a_ids.len(), b_ids.len()), (25, 15));
    assert!(a_ids.is_disjoint(&b_ids));
    assert_ne!(a.lease, b.lease);
    first.commit().await.unwrap();
    second.commit().await.unwrap();
    // Committed, the leases keep every row off a third claim.
    let mut third = db.store.begin().await.unwrap();
    let c = third
        .outbox()
        .claim_ready(NOW, NOW + LEASE, 40)
        .await
        .unwrap();
    assert!(c.events.is_empty());
    third.commit().await.unwrap();
}

/// Relays as the service runs them: claim (committed at once), publish with no transaction
/// open, settle in a second transaction. Eight of them at once over 200 rows of 50 orders:
/// no row is ever claimed by two of them, every row is published exactly once, and each
/// order's events are published in id order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relays_racing_with_leases_publish_each_row_once_and_each_order_in_order() {
    let db = racing_db().await;
    let mut tx = db.store.begin().await.unwrap();
    for n in 0..200 {
        let mut event = envelope(n);
        event.aggregate_id = format!("order-{}", n % 50);
        tx.outbox().append(event, NOW).await.unwrap();
    }
    tx.commit().await.unwrap();

    static PUBLISHED: AtomicUsize = AtomicUsize::new(0);
    static SETTLED: AtomicUsize = AtomicUsize::new(0);
    let results = race(&db.store, 8, move |store, _| async move {
        // (order, row id, publish sequence number) of every row this relay published.
        let mut published = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while SETTLED.load(Ordering::SeqCst) < 200 {
            assert!(std::time::Instant::now() < deadline, "the outbox drains");
            let mut tx = store.begin().await.unwrap();
            let claim = tx.outbox().claim_ready(NOW, NOW + LEASE, 7).await.unwrap();
            tx.commit().await.unwrap();
            if claim.events.is_empty() {
                // Rows may be waiting behind another relay's lease: look again shortly.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            let mut outcomes = Vec::new();
            for event in &claim.events {
                published.push((
                    event.envelope.aggregate_id.clone(),
                    event.id,
                    PUBLISHED.fetch_add(1, Ordering::SeqCst),
                ));
                outcomes.push((event.id, domain::outbox::OutboxOutcome::Sent));
                tokio::task::yield_now().await;
            }
            let mut tx = store.begin().await.unwrap();
            let settled = tx
                .outbox()
                .settle(claim.lease, NOW, &outcomes)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            assert_eq!(settled, outcomes.len(), "no lease expires in this race");
            SETTLED.fetch_add(settled, Ordering::SeqCst);
        }
        published
    })
    .await;
    let all: Vec<_> = results.into_iter().flatten().collect();
    let unique: HashSet<_> = all.iter().map(|(_, id, _)| *id).collect();
    assert_eq!((all.len(), unique.len()), (200, 200));
    let mut by_order: HashMap<&str, Vec<(usize, domain::OutboxId)>> = HashMap::new();
    for (order, id, seq) in &all {
        by_order.entry(order).or_default().push((*seq, *id));
    }
    for (order, mut rows) in by_order {
        rows.sort_unstable();
        let ids: Vec<_> = rows.iter().map(|(_, id)| *id).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted, "{order} published out of order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_open_transactions_never_claim_the_same_expired_orders() {
    let db = racing_db().await;
    let (buyer, _, p) = shop(&db.store, 1_000).await;
    let mut tx = db.store.begin().await.unwrap();
    for _ in 0..30 {
        let mut new = new_order(&buyer, &[(&p, 1)]);
        new.expires_at = NOW - time::Duration::MINUTE;
        tx.orders().insert(new).await.unwrap();
    }
    tx.commit().await.unwrap();

    let mut first = db.store.begin().await.unwrap();
    let mut second = db.store.begin().await.unwrap();
    let a: HashSet<_> = first
        .orders()
        .claim_expired(NOW, 20)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    let b: HashSet<_> = second
        .orders()
        .claim_expired(NOW, 20)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    assert_eq!((a.len(), b.len()), (20, 10));
    assert!(a.is_disjoint(&b));
    // Committed, not dropped: a dropped transaction releases its row locks only when its
    // background ROLLBACK lands, and the racers below must see every row.
    first.commit().await.unwrap();
    second.commit().await.unwrap();

    // Three sweepers at once cancel every expired order exactly once.
    let results = race(&db.store, 3, move |store, _| async move {
        let mut canceled = Vec::new();
        loop {
            let mut tx = store.begin().await.unwrap();
            let batch = tx.orders().claim_expired(NOW, 4).await.unwrap();
            if batch.is_empty() {
                return canceled;
            }
            for order in batch {
                let done = tx
                    .orders()
                    .transition(order.id, OrderStatus::Created, OrderStatus::Canceled, NOW)
                    .await
                    .unwrap();
                assert!(done.is_some(), "a claimed order is still CREATED");
                canceled.push(order.id);
            }
            tx.commit().await.unwrap();
        }
    })
    .await;
    let all: Vec<_> = results.into_iter().flatten().collect();
    let unique: HashSet<_> = all.iter().copied().collect();
    assert_eq!((all.len(), unique.len()), (30, 30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_requests_with_one_idempotency_key_start_once() {
    let db = racing_db().await;
    let mut tx = db.store.begin().await.unwrap();
    let u = user(tx.as_mut(), Role::Buyer).await;
    tx.commit().await.unwrap();
    for round in 0..5 {
        let scope = IdempotencyScope {
            user_id: u.id,
            method: "POST".into(),
            path: "/api/v1/payments".into(),
            key: IdempotencyKey::new(&format!("retry-{round}")).unwrap(),
        };
        let results = race(&db.store, 30, move |store, i| {
            let request = IdempotencyRequest {
                scope: scope.clone(),
                token: domain::idempotency::ClaimToken(i as i64),
                fingerprint: "same body".into(),
                now: NOW,
            };
            async move { store.idempotency().start(&request).await.unwrap() }
        })
        .await;
        let started = results
            .iter()
            .filter(|r| matches!(r, IdempotencyStart::Started(_)))
            .count();
        let waiting = results
            .iter()
            .filter(|r| **r == IdempotencyStart::InProgress)
            .count();
        assert_eq!((started, waiting), (1, 29));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_roll_up_increments_and_inbox_records_are_not_lost() {
    let db = racing_db().await;
    let (_, _, p) = shop(&db.store, 1).await;
    let day = date!(2026 - 11 - 21);
    let results = race(&db.store, 40, move |store, i| async move {
        let mut tx = store.begin().await.unwrap();
        tx.sales()
            .add(
                day,
                &[ProductSales {
                    product_id: p.id,
                    quantity: 2,
                }],
            )
            .await
            .unwrap();
        let first = tx
            .inbox()
            .record("ranking", &format!("evt-{}", i % 4), NOW)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        first
    })
    .await;
    assert_eq!(results.iter().filter(|first| **first).count(), 4);
    let mut read = db.store.read().await.unwrap();
    assert_eq!(
        read.sales().day_totals(day).await.unwrap(),
        vec![ProductSales {
            product_id: p.id,
            quantity: 80
        }]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deadlock_victim_gets_a_conflict() {
    // Use cases lock rows in ascending id order so this never happens; if a bug made two
    // transactions lock in opposite orders, PostgreSQL breaks the cycle and the victim must
    // see a retryable Conflict, not a 500.
    let db = racing_db().await;
    let mut tx = db.store.begin().await.unwrap();
    let seller = user(tx.as_mut(), Role::Seller).await;
    let a = common::fixtures::product(tx.as_mut(), &seller, 1, 10)
        .await
        .id;
    let b = common::fixtures::product(tx.as_mut(), &seller, 1, 10)
        .await
        .id;
    tx.commit().await.unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let run = |first: ProductId, second: ProductId| {
        let store = db.store.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            tx.products().change_stock(unit(first, -1)).await.unwrap();
            barrier.wait().await;
            match tx.products().change_stock(unit(second, -1)).await {
                Ok(_) => tx.commit().await,
                Err(StockChangeError::Repo(e)) => Err(e),
                Err(e) => panic!("unexpected {e:?}"),
            }
        })
    };
    let (x, y) = (run(a, b), run(b, a));
    let outcomes = [x.await.unwrap(), y.await.unwrap()];
    let conflicts = outcomes
        .iter()
        .filter(|o| matches!(o, Err(RepoError::Conflict(_))))
        .count();
    let committed = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!((conflicts, committed), (1, 1), "{outcomes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_orders_with_lines_in_opposite_orders_neither_deadlock_nor_fail() {
    // Orders lock their products' rows when they take the stock. Buyers list an order's lines
    // in any order; if the rows were locked in that order, two orders naming the same products
    // in opposite orders would each hold a row the other needs: PostgreSQL breaks the cycle
    // after `deadlock_timeout` by failing one of them, and under load the retries end in 503s
    // and statement timeouts. Locking in ascending product id order makes such a cycle
    // impossible. A trigger holds every stock row a little after its update, so that opposite
    // orders racing here reliably overlap: without the sort the deadlock counter moves.
    let db = racing_db().await;
    let mut raw = db.raw().await;
    {
        use diesel_async::SimpleAsyncConnection as _;
        raw.batch_execute(
            "CREATE FUNCTION hold_stock_row() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END $$;
             CREATE TRIGGER hold_stock_row AFTER UPDATE OF stock ON products
             FOR EACH ROW EXECUTE FUNCTION hold_stock_row();",
        )
        .await
        .unwrap();
    }
    let mut tx = db.store.begin().await.unwrap();
    let seller = user(tx.as_mut(), Role::Seller).await;
    let mut products = Vec::new();
    for _ in 0..3 {
        products.push(
            common::fixtures::product(tx.as_mut(), &seller, 100, 1_000)
                .await
                .id,
        );
    }
    let mut buyers = Vec::new();
    for _ in 0..24 {
        buyers.push(user(tx.as_mut(), Role::Buyer).await.id);
    }
    tx.commit().await.unwrap();
    let shop = Shop::new(
        Ports {
            store: Arc::new(db.store.clone()),
            gate: Arc::new(GrantAll),
            ranking: Arc::new(MemoryRankingStore::cold()),
            publisher: Arc::new(InProcessBus::new()),
            idempotency: Arc::new(db.store.idempotency()),
            clock: Arc::new(ManualClock::new(NOW)),
        },
        ShopConfig::default(),
    );
    let deadlocks = "(SELECT deadlocks FROM pg_stat_database WHERE datname = current_database())";
    let before = scalar(&mut raw, deadlocks).await;

    // Three rounds of 24 buyers at once: 3-item orders ascending, 3-item orders descending,
    // and 2-item orders in both directions.
    let (a, b, c) = (products[0], products[1], products[2]);
    let shapes: [&[ProductId]; 4] = [&[a, b, c], &[c, b, a], &[b, a], &[c, a]];
    let mut quantities = HashMap::new();
    for round in 0..3 {
        let barrier = Arc::new(Barrier::new(buyers.len()));
        let mut tasks = Vec::new();
        for (i, &buyer) in buyers.iter().enumerate() {
            let lines: Vec<OrderLine> = shapes[(i + round) % shapes.len()]
                .iter()
                .map(|&product_id| OrderLine {
                    product_id,
                    quantity: 1,
                })
                .collect();
            for line in &lines {
                *quantities.entry(line.product_id).or_insert(0_i64) += 1;
            }
            let (shop, barrier) = (shop.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let actor = Actor {
                    user_id: buyer,
                    role: Role::Buyer,
                };
                shop.place_order(actor, lines, None, None).await
            }));
        }
        for task in tasks {
            let placed = task.await.unwrap();
            assert!(placed.is_ok(), "round {round}: {placed:?}");
        }
    }

    // A backend reports its deadlocks to the statistics when it goes idle (at most a second
    // later): wait that long before trusting an unchanged counter.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        let now = scalar(&mut raw, deadlocks).await;
        assert_eq!(
            now, before,
            "deadlocks happened: {before} before, {now} after"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (product, sold) in quantities {
        let stock = scalar(
            &mut raw,
            &format!("(SELECT stock FROM products WHERE id = {product})"),
        )
        .await;
        assert_eq!(stock, 1_000 - sold, "product {product}");
    }
}
