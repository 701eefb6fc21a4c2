//! `AdvisoryLocks` against a real PostgreSQL: two holders on one database exclude each other,
//! and a lock goes with its connection (unlock, connection loss), is taken back after a
//! reconnect when still free, and is reported lost when another holder took it meanwhile.

#[path = "common/mod.rs"]
mod common;

use common::{TestDb, scalar};
use persistence_diesel::{AdvisoryLocks, PgConfig};
use std::time::{Duration, Instant};

fn holder(db: &TestDb) -> AdvisoryLocks {
    AdvisoryLocks::new(&PgConfig::new(db.url.clone()))
}

/// `pg_locks` identifies a bigint advisory key by its two 32-bit halves.
fn lock_filter(key: i64) -> String {
    let bits = u64::from_ne_bytes(key.to_ne_bytes());
    format!(
        "locktype = 'advisory' AND granted AND objsubid = 1 \
         AND classid = {}::oid AND objid = {}::oid \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        bits >> 32,
        bits & 0xffff_ffff
    )
}

/// The backend holding `key`, or 0.
async fn holder_pid(db: &TestDb, key: i64) -> i64 {
    let mut conn = db.raw().await;
    scalar(
        &mut conn,
        &format!(
            "COALESCE((SELECT pid FROM pg_locks WHERE {} LIMIT 1), 0)::bigint",
            lock_filter(key)
        ),
    )
    .await
}

/// Kills the session holding `key` (as a crash or a network cut would end it) and waits until
/// the server has let the lock go.
async fn kill_holder_of(db: &TestDb, key: i64) {
    let pid = holder_pid(db, key).await;
    assert_ne!(pid, 0, "somebody holds {key}");
    let mut conn = db.raw().await;
    scalar(
        &mut conn,
        &format!("pg_terminate_backend({pid})::int::bigint"),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while holder_pid(db, key).await == pid {
        assert!(Instant::now() < deadline, "backend {pid} did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn only_one_holder_gets_a_lock_until_it_unlocks() {
    let db = TestDb::new().await;
    let (a, b) = (holder(&db), holder(&db));
    let key = AdvisoryLocks::key("ranking-updater/order.paid/0");
    let other = AdvisoryLocks::key("ranking-updater/order.paid/1");

    assert!(a.try_lock(key).await.unwrap());
    assert!(!b.try_lock(key).await.unwrap(), "a holds it");
    assert!(b.try_lock(other).await.unwrap(), "other keys are free");
    assert!(!a.try_lock(other).await.unwrap());
    // Asking again confirms without taking it twice: one unlock frees it.
    assert!(a.try_lock(key).await.unwrap());
    assert!(a.try_lock(key).await.unwrap());
    assert_eq!(a.held().await, [key]);

    assert!(a.unlock(key).await.unwrap());
    assert!(!a.unlock(key).await.unwrap(), "not held any more");
    assert!(a.held().await.is_empty());
    assert!(b.try_lock(key).await.unwrap(), "free after one unlock");
    assert!(!a.try_lock(key).await.unwrap());
    assert_eq!(b.held().await, {
        let mut both = vec![key, other];
        both.sort_unstable();
        both
    });

    // Closing the holder releases everything it held.
    b.close().await;
    assert!(a.try_lock(key).await.unwrap());
    assert!(a.try_lock(other).await.unwrap());
    assert_eq!(a.lost_total(), 0);
}

#[tokio::test]
async fn a_lost_connection_releases_the_lock_and_the_holder_reports_it_lost() {
    let db = TestDb::new().await;
    let (a, b) = (holder(&db), holder(&db));
    let key = AdvisoryLocks::key("coupon-issuer/coupon.issue.requested/2");
    assert!(a.try_lock(key).await.unwrap());
    assert!(!b.try_lock(key).await.unwrap());

    kill_holder_of(&db, key).await;
    // The server released it with the session: the other holder gets it, without `a` doing
    // anything.
    assert!(b.try_lock(key).await.unwrap());
    // `a` notices on its next call: it reconnects, cannot take the lock back, reports it lost.
    assert!(!a.try_lock(key).await.unwrap());
    assert!(a.held().await.is_empty());
    assert_eq!(a.lost_total(), 1);
    // `a`'s new connection works for other locks.
    let free = AdvisoryLocks::key("coupon-issuer/coupon.issue.requested/0");
    assert!(a.try_lock(free).await.unwrap());
    let (a_pid, b_pid) = (holder_pid(&db, free).await, holder_pid(&db, key).await);
    assert!(
        a_pid != 0 && b_pid != 0 && a_pid != b_pid,
        "{a_pid} {b_pid}"
    );
}

#[tokio::test]
async fn after_a_reconnect_free_locks_are_taken_back_and_taken_ones_are_lost() {
    let db = TestDb::new().await;
    let (a, b) = (holder(&db), holder(&db));
    let kept = AdvisoryLocks::key("data-platform-forwarder/order.paid/0");
    let taken = AdvisoryLocks::key("data-platform-forwarder/order.paid/1");
    assert!(a.try_lock(kept).await.unwrap());
    assert!(a.try_lock(taken).await.unwrap());
    let old_pid = holder_pid(&db, kept).await;

    kill_holder_of(&db, kept).await;
    assert!(
        b.try_lock(taken).await.unwrap(),
        "freed by the lost connection"
    );

    // Confirming `kept` finds the connection dead, reconnects and takes `kept` back: the
    // caller keeps it without a gap it would have to notice.
    assert!(a.try_lock(kept).await.unwrap());
    let new_pid = holder_pid(&db, kept).await;
    assert_ne!(new_pid, 0);
    assert_ne!(new_pid, old_pid, "held by the new connection");
    assert!(!b.try_lock(kept).await.unwrap());
    // `taken` went to `b` in the meantime: lost.
    assert_eq!(a.held().await, [kept]);
    assert_eq!(a.lost_total(), 1);
    assert!(!a.try_lock(taken).await.unwrap());
}

#[tokio::test]
async fn an_unreachable_database_is_an_error_and_nothing_is_held() {
    let mut config = PgConfig::new("postgres://postgres@127.0.0.1:1/nowhere");
    config.connect_timeout = Duration::from_secs(2);
    let locks = AdvisoryLocks::new(&config);
    let refused = locks.try_lock(AdvisoryLocks::key("x")).await;
    assert!(
        matches!(refused, Err(domain::ports::RepoError::Unavailable(_))),
        "{refused:?}"
    );
    assert!(locks.held().await.is_empty());
}
