//! The error policy on real server errors: each fault is provoked on plain sessions on a test
//! database and its diesel error goes through `persistence_diesel::error`, the one place every
//! repository maps errors, with the SQLSTATE the session heard.

use crate::common::TestDb;
use diesel::result::Error as DieselError;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use domain::ports::RepoError;
use persistence_diesel::Session;
use persistence_diesel::error::{ends_session, from_diesel, from_session, violated_constraint};
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
            let mut conn = Session::connect(&url).await.unwrap();
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
            outcome.err().map(|e| from_session(&conn, e))
        })
    };
    let (x, y) = (run(1, 2), run(2, 1));
    let errors: Vec<RepoError> = [x.await.unwrap(), y.await.unwrap()]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(errors.len(), 1, "one victim: {errors:?}");
    let mapped = errors.into_iter().next().unwrap();
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
    let mapped = from_session(&conn, error);
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
    let mapped = from_session(&waiter, error);
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
    let query = tokio::spawn(async move {
        let error = execute(&mut victim, "SELECT pg_sleep(5)")
            .await
            .unwrap_err();
        (
            ends_session(Some(&victim), &error),
            from_session(&victim, error),
        )
    });
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
    let (ended, mapped) = query.await.unwrap();
    // Either the server's own error (57P01) reached the statement, or the closed socket did:
    // both say the store is unavailable and the session is gone.
    assert!(matches!(mapped, RepoError::Unavailable(_)), "{mapped:?}");
    assert!(ended, "{mapped:?}");
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
    let mapped = from_session(&conn, duplicate);
    assert!(
        matches!(&mapped, RepoError::Conflict(detail) if detail.ends_with("(faults_pkey) [23505]")),
        "{mapped:?}"
    );
    let negative = execute(&mut conn, "UPDATE faults SET n = -1 WHERE id = 2")
        .await
        .unwrap_err();
    assert_eq!(violated_constraint(&negative), None);
    let mapped = from_session(&conn, negative);
    assert!(
        matches!(&mapped, RepoError::Internal(detail) if detail.ends_with("[23514]")),
        "{mapped:?}"
    );
}

/// The code, not the text: errors raised with one SQLSTATE and another code's English message
/// (and translated messages with the right code) are classified by the code.
#[tokio::test]
async fn the_sqlstate_decides_never_the_message() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let raise = |code: &str, message: &str| {
        format!("DO $$ BEGIN RAISE EXCEPTION '{message}' USING ERRCODE = '{code}'; END $$")
    };
    for (code, message, class) in [
        // English texts of other codes, raised with a code the policy calls a bug.
        ("P0001", "deadlock detected", "internal"),
        (
            "XX000",
            "canceling statement due to statement timeout",
            "internal",
        ),
        (
            "22012",
            "terminating connection due to administrator command",
            "internal",
        ),
        // The policy's codes with texts that name nothing (or another language).
        ("40P01", "Verklemmung entdeckt", "conflict"),
        ("55P03", "whatever", "conflict"),
        (
            "57014",
            "Abbruch der Anweisung wegen Statement-Timeout",
            "unavailable",
        ),
        ("53300", "trop de clients", "unavailable"),
    ] {
        let error = execute(&mut conn, &raise(code, message)).await.unwrap_err();
        let mapped = from_session(&conn, error);
        let got = match &mapped {
            RepoError::Conflict(_) => "conflict",
            RepoError::Unavailable(_) => "unavailable",
            _ => "internal",
        };
        assert_eq!(got, class, "{code} {message:?}: {mapped:?}");
        assert!(
            mapped.to_string().contains(&format!("[{code}]")),
            "{mapped:?}"
        );
    }
    // A session-ending code ends the session, whatever the text.
    let error = execute(&mut conn, &raise("57P01", "au revoir"))
        .await
        .unwrap_err();
    assert!(ends_session(Some(&conn), &error));
    // Without the session, the same `Unknown` error has no code: a bug, not a retry.
    let error = execute(&mut conn, &raise("40P01", "deadlock detected"))
        .await
        .unwrap_err();
    assert!(matches!(from_diesel(error), RepoError::Internal(_)));
}

async fn persistence_scalar(conn: &mut AsyncPgConnection, expression: &str) -> i32 {
    diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(expression))
        .get_result::<i32>(conn)
        .await
        .unwrap_or_else(|e| panic!("{expression}: {e}"))
}
