//! `Idempotency-Key` records in PostgreSQL.
//!
//! [`PgIdempotencyStore`] runs each call on its own pooled connection in autocommit mode,
//! outside any unit of work: the claim must be visible to a concurrent retry at once, and must
//! survive the request's own transaction rolling back. The answer of a change is stored by the
//! change's own transaction ([`IdempotencyRecords`] on [`PgTransaction`]), with the same
//! conditional `UPDATE` as [`IdempotencyStore::complete`]: whichever runs first holds the row
//! lock, and the other waits for it and re-checks `status` and `claim_token` on the row it
//! leaves (READ COMMITTED re-evaluates the `WHERE` of a blocked `UPDATE`/`DELETE`). So a
//! release or a refusal's answer can never undo the answer of a committed change.

use crate::error;
use crate::recycle::PgPool;
use crate::transaction::PgTransaction;
use async_trait::async_trait;
use diesel::OptionalExtension;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::idempotency::{
    IN_PROGRESS_LEASE, IdempotencyClaim, IdempotencyRequest, IdempotencyScope, IdempotencyStart,
    RETENTION, StoredResponse,
};
use domain::ports::{IdempotencyRecords, IdempotencyStore, RepoError};
use time::OffsetDateTime;

use crate::schema::idempotency_keys as keys;

/// The [`IdempotencyStore`] on the shared pool.
#[derive(Clone)]
pub struct PgIdempotencyStore {
    pool: PgPool,
}

const IN_PROGRESS: &str = "IN_PROGRESS";
const COMPLETED: &str = "COMPLETED";

/// One statement decides who starts: a new key is inserted with the request's claim token; an
/// existing one is taken over (with the new token) only
/// if its first request died (an `IN_PROGRESS` claim older than the lease, same body) or its
/// record is past retention, counted from the claim or the completion (then it behaves as if
/// purged, whatever the body). Everything else leaves the row
/// alone and returns no row. The primary key serializes concurrent first requests: the second
/// waits for the first's insert and then finds a fresh claim it may not take.
const CLAIM: &str = "\
INSERT INTO idempotency_keys
    (user_id, method, path, key, fingerprint, status, started_at, claim_token)
VALUES ($1, $2, $3, $4, $5, 'IN_PROGRESS', $6, $9)
ON CONFLICT (user_id, method, path, key) DO UPDATE
SET fingerprint = EXCLUDED.fingerprint, status = 'IN_PROGRESS', started_at = EXCLUDED.started_at,
    claim_token = EXCLUDED.claim_token,
    completed_at = NULL, response_status = NULL, content_type = NULL, body = NULL
WHERE (idempotency_keys.status = 'IN_PROGRESS'
       AND idempotency_keys.started_at <= $7
       AND idempotency_keys.fingerprint = EXCLUDED.fingerprint)
   OR (idempotency_keys.status = 'IN_PROGRESS' AND idempotency_keys.started_at <= $8)
   OR (idempotency_keys.status = 'COMPLETED' AND idempotency_keys.completed_at <= $8)
RETURNING started_at";

#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = Timestamptz)]
    #[allow(dead_code)]
    started_at: OffsetDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = keys, check_for_backend(diesel::pg::Pg))]
struct KeyRow {
    fingerprint: String,
    status: String,
    response_status: Option<i32>,
    content_type: Option<String>,
    body: Option<Vec<u8>>,
}

impl PgIdempotencyStore {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Deletes records past [`RETENTION`] (completed or never completed). Returns how many.
    /// Not part of the port: the bootstrap may run it periodically to keep the table small.
    ///
    /// # Errors
    /// `Unavailable` when the database cannot be reached.
    pub async fn purge_expired(&self, now: OffsetDateTime) -> Result<usize, RepoError> {
        let cutoff = now - RETENTION;
        let mut conn = self.pool.get().await.map_err(error::from_pool)?;
        diesel::delete(keys::table)
            .filter(keys::started_at.le(cutoff))
            .filter(
                keys::status
                    .eq(IN_PROGRESS)
                    .or(keys::completed_at.le(cutoff)),
            )
            .execute(&mut conn)
            .await
            .map_err(|e| error::from_session(&conn, e))
    }
}

/// The primary key of a scope's record.
fn pk(scope: &IdempotencyScope) -> (i64, &str, &str, &str) {
    (
        scope.user_id.0,
        scope.method.as_str(),
        scope.path.as_str(),
        scope.key.as_str(),
    )
}

#[async_trait]
impl IdempotencyStore for PgIdempotencyStore {
    async fn start(&self, request: &IdempotencyRequest) -> Result<IdempotencyStart, RepoError> {
        let scope = &request.scope;
        let mut conn = self.pool.get().await.map_err(error::from_pool)?;
        // The loop only repeats if the row vanished between the two statements (the first
        // request abandoned its key meanwhile); then the next claim usually succeeds.
        for _ in 0..3 {
            let claimed = diesel::sql_query(CLAIM)
                .bind::<BigInt, _>(scope.user_id.0)
                .bind::<Text, _>(&scope.method)
                .bind::<Text, _>(&scope.path)
                .bind::<Text, _>(scope.key.as_str())
                .bind::<Text, _>(&request.fingerprint)
                .bind::<Timestamptz, _>(request.now)
                .bind::<Timestamptz, _>(request.now - IN_PROGRESS_LEASE)
                .bind::<Timestamptz, _>(request.now - RETENTION)
                .bind::<BigInt, _>(request.token.0)
                .get_result::<Claimed>(&mut conn)
                .await
                .optional()
                .map_err(|e| error::from_session(&conn, e))?;
            if claimed.is_some() {
                return Ok(IdempotencyStart::Started(IdempotencyClaim {
                    scope: scope.clone(),
                    token: request.token,
                }));
            }
            let existing = keys::table
                .find(pk(scope))
                .select(KeyRow::as_select())
                .first(&mut conn)
                .await
                .optional()
                .map_err(|e| error::from_session(&conn, e))?;
            let Some(row) = existing else {
                continue;
            };
            if row.fingerprint != request.fingerprint {
                return Ok(IdempotencyStart::Mismatch);
            }
            if row.status == IN_PROGRESS {
                return Ok(IdempotencyStart::InProgress);
            }
            return match (row.response_status, row.content_type, row.body) {
                (Some(status), Some(content_type), Some(body)) => {
                    Ok(IdempotencyStart::Replay(StoredResponse {
                        status: u16::try_from(status).map_err(|_| {
                            RepoError::Internal(format!("stored status {status} out of range"))
                        })?,
                        content_type,
                        body,
                    }))
                }
                _ => Err(RepoError::Internal(
                    "completed idempotency record without a response".into(),
                )),
            };
        }
        Err(RepoError::Conflict(
            "idempotency key kept changing under this request".into(),
        ))
    }

    async fn complete(
        &self,
        claim: &IdempotencyClaim,
        response: &StoredResponse,
        now: OffsetDateTime,
    ) -> Result<bool, RepoError> {
        let mut conn = self.pool.get().await.map_err(error::from_pool)?;
        store_answer(&mut conn, claim, response, now)
            .await
            .map_err(|e| error::from_session(&conn, e))
    }

    async fn release(&self, claim: &IdempotencyClaim) -> Result<bool, RepoError> {
        let mut conn = self.pool.get().await.map_err(error::from_pool)?;
        diesel::delete(
            keys::table
                .find(pk(&claim.scope))
                .filter(keys::status.eq(IN_PROGRESS))
                .filter(keys::claim_token.eq(claim.token.0)),
        )
        .execute(&mut conn)
        .await
        .map(|deleted| deleted == 1)
        .map_err(|e| error::from_session(&conn, e))
    }
}

#[async_trait]
impl IdempotencyRecords for PgTransaction {
    async fn complete(
        &mut self,
        claim: &IdempotencyClaim,
        response: &StoredResponse,
        now: OffsetDateTime,
    ) -> Result<bool, RepoError> {
        let result = store_answer(self.conn()?, claim, response, now).await;
        self.check(result)
    }
}

/// Stores the answer, only while `claim` holds the key in progress; `false` when it does not
/// (taken over, released, or already answered).
async fn store_answer(
    conn: &mut AsyncPgConnection,
    claim: &IdempotencyClaim,
    response: &StoredResponse,
    now: OffsetDateTime,
) -> QueryResult<bool> {
    diesel::update(
        keys::table
            .find(pk(&claim.scope))
            .filter(keys::status.eq(IN_PROGRESS))
            .filter(keys::claim_token.eq(claim.token.0)),
    )
    .set((
        keys::status.eq(COMPLETED),
        keys::completed_at.eq(Some(now)),
        keys::response_status.eq(Some(i32::from(response.status))),
        keys::content_type.eq(Some(response.content_type.as_str())),
        keys::body.eq(Some(response.body.as_slice())),
    ))
    .execute(conn)
    .await
    .map(|updated| updated == 1)
}
