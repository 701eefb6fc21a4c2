//! The error policy on real server errors: each fault is provoked on plain connections to a
//! test database and its diesel error goes through `persistence_diesel::error`, the one place
//! every repository maps errors.

use crate::common::TestDb;
use diesel::result::Error as DieselError;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use domain::ports::RepoError;
use persistence_diesel::error::{from_diesel, violated_constraint};
use std::sync::Arc;
use tokio::sync::Barrier;

async fn execute(conn: &mut AsyncPgConnection, sql: &str) -> Result<usize, DieselError> {
    diesel::sql_query(sql).execute(conn).await
}

async fn table(db: &TestDb) {
    let mut conn = db.raw().await;
    conn.batch_execute(
        "CREATE TABLE faults (id BIGINT PRIMARY KEY, n BIGINT NOT NULL CHECK (n >= 0));
         INSERT INTO faults VALUES (1, 0), (2, 0);",
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_deadlock_is_a_conflict() {
    let db = TestDb::new().await;
    table(&db).await;
    let barrier = Arc::new(Barrier::new(2));
    let run = |first: i64, second: i64| {
        let (url, barrier) = (db.url.clone(), barrier.clone());
        tokio::spawn(async move {
            let mut conn = <AsyncPgConnection as diesel_async::AsyncConnection>::establish(&url)
                .await
                .unwrap();
            // Detect the cycle fast; the default is a second.
            conn.batch_execute("SET deadlock_timeout = '50ms'; BEGIN")
                .await
                .unwrap();
            execute(
                &mut conn,
                &format!("UPDATE faults SET n = n + 1 WHERE id = {first}"),
            )
            .await
            .unwrap();
            barrier.wait().await;
            let outcome = execute(
                &mut conn,
                &format!("UPDATE faults SET n = n + 1 WHERE id = {second}"),
            )
            .await;
            let _ = conn.batch_execute("ROLLBACK").await;
            outcome.err()
        })
    };
    let (x, y) = (run(1, 2), run(2, 1));
    let errors: Vec<DieselError> = [x.await.unwrap(), y.await.unwrap()]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(errors.len(), 1, "one victim: {errors:?}");
    let mapped = from_diesel(errors.into_iter().next().unwrap());
    assert!(
        matches!(&mapped, RepoError::Conflict(detail) if detail.ends_with("[40P01]")),
        "{mapped:?}"
    );
}

#[tokio::test]
async fn a_statement_timeout_is_unavailable() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    conn.batch_execute("SET statement_timeout = 50")
        .await
        .unwrap();
    let error = execute(&mut conn, "SELECT pg_sleep(2)").await.unwrap_err();
    let mapped = from_diesel(error);
    assert!(
        matches!(&mapped, RepoError::Unavailable(detail) if detail.ends_with("[57014]")),
        "{mapped:?}"
    );
    // The session survives a canceled statement.
    execute(&mut conn, "SELECT 1").await.unwrap();
}

#[tokio::test]
async fn a_lock_timeout_is_a_conflict() {
    let db = TestDb::new().await;
    table(&db).await;
    let mut holder = db.raw().await;
    holder.batch_execute("BEGIN").await.unwrap();
    execute(&mut holder, "UPDATE faults SET n = 1 WHERE id = 1")
        .await
        .unwrap();
    let mut waiter = db.raw().await;
    waiter.batch_execute("SET lock_timeout = 50").await.unwrap();
    let error = execute(&mut waiter, "UPDATE faults SET n = 2 WHERE id = 1")
        .await
        .unwrap_err();
    let mapped = from_diesel(error);
    assert!(
        matches!(&mapped, RepoError::Conflict(detail) if detail.ends_with("[55P03]")),
        "{mapped:?}"
    );
    holder.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_session_is_unavailable() {
    let db = TestDb::new().await;
    let mut victim = db.raw().await;
    let pid = persistence_scalar(&mut victim, "pg_backend_pid()").await;
    let query = tokio::spawn(async move { execute(&mut victim, "SELECT pg_sleep(5)").await });
    let mut killer = db.raw().await;
    // Wait until the victim runs its statement, then end its session.
    for _ in 0..100 {
        let running = persistence_scalar(
            &mut killer,
            &format!(
                "(SELECT count(*)::int FROM pg_stat_activity WHERE pid = {pid} \
                 AND query LIKE 'SELECT pg_sleep%' AND state = 'active')"
            ),
        )
        .await;
        if running == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    execute(&mut killer, &format!("SELECT pg_terminate_backend({pid})"))
        .await
        .unwrap();
    let error = query.await.unwrap().unwrap_err();
    // Either the server's own error (57P01) reached the statement, or the closed socket did:
    // both say the store is unavailable.
    let mapped = from_diesel(error);
    assert!(matches!(mapped, RepoError::Unavailable(_)), "{mapped:?}");
}

#[tokio::test]
async fn unique_violations_name_their_constraint_and_checks_are_internal() {
    let db = TestDb::new().await;
    table(&db).await;
    let mut conn = db.raw().await;
    let duplicate = execute(&mut conn, "INSERT INTO faults VALUES (1, 0)")
        .await
        .unwrap_err();
    assert_eq!(violated_constraint(&duplicate), Some("faults_pkey"));
    let mapped = from_diesel(duplicate);
    assert!(
        matches!(&mapped, RepoError::Conflict(detail) if detail.ends_with("(faults_pkey) [23505]")),
        "{mapped:?}"
    );
    let negative = execute(&mut conn, "UPDATE faults SET n = -1 WHERE id = 2")
        .await
        .unwrap_err();
    assert_eq!(violated_constraint(&negative), None);
    let mapped = from_diesel(negative);
    assert!(
        matches!(&mapped, RepoError::Internal(detail) if detail.ends_with("[23514]")),
        "{mapped:?}"
    );
}

async fn persistence_scalar(conn: &mut AsyncPgConnection, expression: &str) -> i32 {
    diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(expression))
        .get_result::<i32>(conn)
        .await
        .unwrap_or_else(|e| panic!("{expression}: {e}"))
}
