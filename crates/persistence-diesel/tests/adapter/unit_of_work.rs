use crate::common::fixtures::{NOW, charge, order, shop, user};
use crate::common::{TestDb, scalar};
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use domain::ports::{HealthCheck, RepoError, StockChangeError, UnitOfWork};
use domain::product::{StockChange, StockReason};
use domain::user::{NewUser, Role, TokenHash, UserName};
use persistence_diesel::{ConnectError, MigrateError, PgConfig, PgStore};
use std::time::Duration;

/// Sessions of this database that sit in an open transaction, and all its sessions, seen
/// from outside the store's pool.
async fn sessions(raw: &mut AsyncPgConnection, db: &TestDb) -> (i64, i64) {
    let idle_in_tx = scalar(
        raw,
        &format!(
            "(SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' \
              AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid())",
            db.name
        ),
    )
    .await;
    let all = scalar(
        raw,
        &format!(
            "(SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid())",
            db.name
        ),
    )
    .await;
    (idle_in_tx, all)
}

/// Polls [`sessions`] until `expected` holds (rollbacks and closes run in the background).
async fn wait_for_sessions(
    raw: &mut AsyncPgConnection,
    db: &TestDb,
    expected: impl Fn((i64, i64)) -> bool,
) {
    let mut seen = (0, 0);
    for _ in 0..200 {
        seen = sessions(raw, db).await;
        if expected(seen) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("sessions (in transaction, all) stayed at {seen:?}");
}

/// Polls `condition` for up to 10 s (background rollbacks and closes are asynchronous).
async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn reserve(product: domain::ProductId, delta: i64) -> StockChange {
    StockChange {
        product_id: product,
        delta,
        reason: StockReason::Order,
        order_id: None,
        note: None,
        at: NOW,
    }
}

#[tokio::test]
async fn a_dropped_transaction_leaves_no_trace() {
    let db = TestDb::new().await;
    let (buyer, _, p) = shop(&db.store, 10).await;
    let mut tx = db.store.begin().await.unwrap();
    tx.products().change_stock(reserve(p.id, -4)).await.unwrap();
    order(tx.as_mut(), &buyer, &[(&p, 4)]).await;
    charge(tx.as_mut(), &buyer, 500).await;
    user(tx.as_mut(), Role::Buyer).await;
    drop(tx);

    let mut raw = db.raw().await;
    for (query, expected) in [
        (
            format!("(SELECT stock FROM products WHERE id = {})", p.id),
            10,
        ),
        ("(SELECT count(*) FROM product_stock_ledger)".to_owned(), 1),
        ("(SELECT count(*) FROM orders)".to_owned(), 0),
        ("(SELECT count(*) FROM order_items)".to_owned(), 0),
        ("(SELECT count(*) FROM wallet_transactions)".to_owned(), 0),
        ("(SELECT count(*) FROM users)".to_owned(), 2),
    ] {
        assert_eq!(scalar(&mut raw, &query).await, expected, "{query}");
    }
}

#[tokio::test]
async fn a_dropped_transaction_is_rolled_back_before_its_connection_is_reused() {
    let db = TestDb::with_config(|c| c.pool_size = 1).await;
    let (_, _, p) = shop(&db.store, 10).await;
    let mut raw = db.raw().await;

    let mut tx = db.store.begin().await.unwrap();
    tx.products().change_stock(reserve(p.id, -1)).await.unwrap();
    assert_eq!(sessions(&mut raw, &db).await, (1, 1));
    drop(tx);

    // The rollback runs in the background; the session must leave its transaction without
    // anyone checking the connection out again, and the connection stays pooled.
    wait_for_sessions(&mut raw, &db, |(in_tx, all)| in_tx == 0 && all == 1).await;
    let status = db.store.pool_status();
    assert_eq!((status.size, status.available), (1, 1));

    // The only connection, reused: its statements commit on their own, so nothing of the
    // dropped transaction can be around any more.
    let mut read = db.store.read().await.unwrap();
    assert!(read.inbox().record("probe", "e1", NOW).await.unwrap());
    drop(read);
    assert_eq!(
        scalar(&mut raw, "(SELECT count(*) FROM inbox_events)").await,
        1,
        "a statement on the reused connection is committed, not swallowed by a leftover transaction"
    );
    assert_eq!(
        scalar(
            &mut raw,
            &format!("(SELECT stock FROM products WHERE id = {})", p.id)
        )
        .await,
        10
    );
    // And the row lock is gone: another writer gets through at once.
    raw.batch_execute("SET lock_timeout = '2s'").await.unwrap();
    raw.batch_execute(&format!(
        "UPDATE products SET price = price WHERE id = {}",
        p.id
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn a_transaction_dropped_outside_any_runtime_is_closed_not_pooled() {
    let db = TestDb::with_config(|c| c.pool_size = 2).await;
    let (_, _, p) = shop(&db.store, 10).await;
    let mut tx = db.store.begin().await.unwrap();
    tx.products().change_stock(reserve(p.id, -1)).await.unwrap();
    // No tokio runtime on that thread: nothing could run a ROLLBACK, so the connection is
    // detached from the pool and closed, and PostgreSQL aborts its transaction.
    std::thread::spawn(move || drop(tx)).join().unwrap();
    let mut raw = db.raw().await;
    wait_for_sessions(&mut raw, &db, |(in_tx, _)| in_tx == 0).await;
    let mut read = db.store.read().await.unwrap();
    assert_eq!(read.products().get(p.id).await.unwrap().unwrap().stock, 10);
}

#[tokio::test]
async fn an_interrupted_commit_closes_the_connection() {
    let db = TestDb::with_config(|c| c.pool_size = 1).await;
    let (_, _, p) = shop(&db.store, 10).await;
    let mut tx = db.store.begin().await.unwrap();
    tx.products().change_stock(reserve(p.id, -1)).await.unwrap();
    // The future is polled once (COMMIT goes out) and dropped before the answer arrives.
    use futures::FutureExt;
    assert!(
        tx.commit().now_or_never().is_none(),
        "a commit cannot finish in one poll: it waits for the server"
    );
    eventually("the pool to drop the connection", || async {
        db.store.pool_status().size == 0
    })
    .await;
    // The store goes on with a new connection. Whether that COMMIT landed is unknowable
    // to the caller, but it is one or the other, never half.
    let stock = db
        .store
        .read()
        .await
        .unwrap()
        .products()
        .get(p.id)
        .await
        .unwrap()
        .unwrap()
        .stock;
    assert!(stock == 9 || stock == 10, "{stock}");
    let mut raw = db.raw().await;
    let ledger = scalar(
        &mut raw,
        &format!(
            "(SELECT sum(delta)::bigint FROM product_stock_ledger WHERE product_id = {})",
            p.id
        ),
    )
    .await;
    assert_eq!(ledger, stock);
}

#[tokio::test]
async fn a_transaction_with_a_failed_statement_refuses_to_commit() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let new_user = |token: &str| NewUser {
        name: UserName::new("x").unwrap(),
        role: Role::Buyer,
        token_hash: TokenHash(token.into()),
        created_at: NOW,
    };
    tx.users().insert(new_user("t1")).await.unwrap();
    let duplicate = tx.users().insert(new_user("t1")).await;
    assert!(matches!(duplicate, Err(RepoError::Conflict(_))));
    // PostgreSQL would answer COMMIT with a silent ROLLBACK; the adapter says so instead.
    let committed = tx.commit().await;
    assert!(
        matches!(committed, Err(RepoError::Conflict(_))),
        "{committed:?}"
    );
    let mut raw = db.raw().await;
    assert_eq!(scalar(&mut raw, "(SELECT count(*) FROM users)").await, 0);
    // The connection went back clean.
    let mut tx = db.store.begin().await.unwrap();
    tx.users().insert(new_user("t2")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(scalar(&mut raw, "(SELECT count(*) FROM users)").await, 1);
}

#[tokio::test]
async fn read_views_see_committed_data_and_their_commit_is_a_no_op() {
    let db = TestDb::new().await;
    let (_, _, p) = shop(&db.store, 3).await;
    let mut writer = db.store.begin().await.unwrap();
    writer
        .products()
        .change_stock(reserve(p.id, -1))
        .await
        .unwrap();
    let mut read = db.store.read().await.unwrap();
    assert_eq!(read.products().get(p.id).await.unwrap().unwrap().stock, 3);
    writer.commit().await.unwrap();
    assert_eq!(read.products().get(p.id).await.unwrap().unwrap().stock, 2);
    read.commit().await.unwrap();
}

#[tokio::test]
async fn a_lock_held_longer_than_the_statement_timeout_answers_unavailable() {
    let db = TestDb::with_config(|c| c.statement_timeout = Duration::from_millis(300)).await;
    let (_, _, p) = shop(&db.store, 3).await;
    let mut holder = db.store.begin().await.unwrap();
    holder
        .products()
        .change_stock(reserve(p.id, -1))
        .await
        .unwrap();
    let mut waiter = db.store.begin().await.unwrap();
    let blocked = waiter.products().change_stock(reserve(p.id, -1)).await;
    assert!(
        matches!(
            blocked,
            Err(StockChangeError::Repo(RepoError::Unavailable(_)))
        ),
        "{blocked:?}"
    );
    drop(waiter);
    holder.commit().await.unwrap();
}

#[tokio::test]
async fn an_exhausted_pool_answers_unavailable_after_the_wait_timeout() {
    let db = TestDb::with_config(|c| {
        c.pool_size = 1;
        c.wait_timeout = Duration::from_millis(100);
    })
    .await;
    let held = db.store.begin().await.unwrap();
    let starved = db.store.begin().await.err();
    assert!(
        matches!(starved, Some(RepoError::Unavailable(_))),
        "{starved:?}"
    );
    drop(held);
    eventually("the connection to come back", || async {
        db.store.begin().await.is_ok()
    })
    .await;
}

#[tokio::test]
async fn a_view_whose_session_was_terminated_is_closed_not_pooled() {
    let db = TestDb::new().await;
    let (_, _, p) = shop(&db.store, 3).await;
    let mut view = db.store.read().await.unwrap();
    assert!(view.products().get(p.id).await.is_ok());
    let mut raw = db.raw().await;
    raw.batch_execute(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{}' AND pid <> pg_backend_pid()",
        db.name
    ))
    .await
    .unwrap();
    let lost = view.products().get(p.id).await;
    assert!(matches!(lost, Err(RepoError::Unavailable(_))), "{lost:?}");
    let before = db.store.pool_status().size;
    drop(view);
    // Returned to the pool, it would count in `size` until a checkout refused it.
    assert_eq!(db.store.pool_status().size, before - 1);
    let mut fresh = db.store.read().await.unwrap();
    assert_eq!(fresh.products().get(p.id).await.unwrap().unwrap().stock, 3);
}

#[tokio::test]
async fn lost_connections_answer_unavailable_and_the_pool_recovers_by_itself() {
    let db = TestDb::new().await;
    let (_, _, p) = shop(&db.store, 3).await;
    let mut tx = db.store.begin().await.unwrap();
    let idle = db.store.read().await.unwrap();
    drop(idle);
    // What a database restart does to every open session.
    let mut raw = db.raw().await;
    raw.batch_execute(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{}' AND pid <> pg_backend_pid()",
        db.name
    ))
    .await
    .unwrap();
    let lost = tx.products().get(p.id).await;
    assert!(matches!(lost, Err(RepoError::Unavailable(_))), "{lost:?}");
    drop(tx);
    // The idle pooled connection was killed too. Checkout refuses it once tokio-postgres has
    // seen its socket close (on its own task, normally at once); a request that wins that race
    // gets `Unavailable` and the connection is discarded. Either way the pool must come back
    // by itself with fresh connections, without anybody restarting anything.
    eventually("a fresh connection", || async {
        let Ok(mut read) = db.store.read().await else {
            return false;
        };
        matches!(read.products().get(p.id).await, Ok(Some(found)) if found.stock == 3)
    })
    .await;
    assert!(db.store.health_check().check().await.is_ok());
}

fn unreachable_config() -> PgConfig {
    // Port 1 on loopback: connection refused at once.
    let mut config = PgConfig::new("postgres://shop:hunter2@127.0.0.1:1/shop");
    config.connect_timeout = Duration::from_secs(2);
    config.wait_timeout = Duration::from_secs(2);
    config
}

#[tokio::test]
async fn connect_fails_fast_with_one_clear_line_when_the_database_is_unreachable() {
    let err = persistence_diesel::connect(&unreachable_config())
        .await
        .err()
        .expect("must not connect");
    assert!(matches!(err, ConnectError::Unreachable { .. }));
    let line = err.to_string();
    assert!(
        line.starts_with("cannot reach PostgreSQL at postgres://shop:***@127.0.0.1:1/shop"),
        "{line}"
    );
    assert!(!line.contains("hunter2") && !line.contains('\n'), "{line}");

    let migrate = persistence_diesel::migrate("postgres://shop:hunter2@127.0.0.1:1/shop").await;
    assert!(
        matches!(migrate, Err(MigrateError::Unreachable { .. })),
        "{migrate:?}"
    );
}

#[tokio::test]
async fn a_database_down_at_runtime_is_unavailable_not_an_error() {
    let store = PgStore::new(&unreachable_config()).unwrap();
    assert!(matches!(
        store.begin().await.err(),
        Some(RepoError::Unavailable(_))
    ));
    assert!(matches!(
        store.read().await.err(),
        Some(RepoError::Unavailable(_))
    ));
    let health = store.health_check();
    assert_eq!(health.name(), "database");
    assert!(health.check().await.is_err());
    let start = domain::idempotency::IdempotencyRequest {
        scope: crate::idempotency::scope(1, "k"),
        token: domain::idempotency::ClaimToken(1),
        fingerprint: "f".into(),
        now: NOW,
    };
    use domain::ports::IdempotencyStore;
    assert!(matches!(
        store.idempotency().start(&start).await,
        Err(RepoError::Unavailable(_))
    ));
}

#[tokio::test]
async fn migrating_a_current_database_is_a_no_op() {
    let db = TestDb::new().await;
    assert_eq!(
        persistence_diesel::migrate(&db.url).await.unwrap(),
        Vec::<String>::new()
    );
    let mut raw = db.raw().await;
    let applied = scalar(
        &mut raw,
        "(SELECT count(*) FROM __diesel_schema_migrations)",
    )
    .await;
    let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(applied, i64::try_from(on_disk).unwrap());
}

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_revert_cleanly() {
    use diesel_migrations::MigrationHarness;
    let db = TestDb::new().await;
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        use diesel::Connection;
        let mut conn = diesel_async::async_connection_wrapper::AsyncConnectionWrapper::<
            AsyncPgConnection,
        >::establish(&url)
        .unwrap();
        conn.revert_all_migrations(persistence_diesel::MIGRATIONS)
            .unwrap();
        assert!(
            conn.has_pending_migration(persistence_diesel::MIGRATIONS)
                .unwrap()
        );
    })
    .await
    .unwrap();
    let mut raw = db.raw().await;
    assert_eq!(
        scalar(
            &mut raw,
            "(SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> '__diesel_schema_migrations')"
        )
        .await,
        0,
        "every down.sql removes what its up.sql created"
    );
    drop(raw);
    let applied = persistence_diesel::migrate(&db.url).await.unwrap();
    let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations"))
        .unwrap()
        .count();
    assert_eq!(applied.len(), on_disk);
}
