use super::{corrupt, overfetch};
use crate::PgTransaction;
use crate::schema::outbox_events as outbox;
use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;
use domain::OutboxId;
use domain::outbox::{
    EventEnvelope, EventType, OutboxBacklog, OutboxClaim, OutboxEvent, OutboxLease, OutboxOutcome,
    OutboxStatus,
};
use domain::page::{CursorPage, Slice};
use domain::ports::{OutboxRepository, OutboxRetry, RepoError};
use time::OffsetDateTime;

#[derive(Queryable, QueryableByName, Selectable)]
#[diesel(table_name = outbox, check_for_backend(diesel::pg::Pg))]
struct OutboxRow {
    id: i64,
    event_id: String,
    event_type: String,
    aggregate_type: String,
    aggregate_id: String,
    occurred_at: OffsetDateTime,
    payload: serde_json::Value,
    status: String,
    attempts: i32,
    last_error: Option<String>,
    next_attempt_at: OffsetDateTime,
    created_at: OffsetDateTime,
    sent_at: Option<OffsetDateTime>,
}

impl OutboxRow {
    fn into_domain(self) -> Result<OutboxEvent, RepoError> {
        Ok(OutboxEvent {
            id: OutboxId(self.id),
            envelope: EventEnvelope {
                event_type: EventType::parse(&self.event_type)
                    .ok_or_else(|| corrupt("event type", &self.event_type))?,
                event_id: self.event_id,
                aggregate_type: self.aggregate_type,
                aggregate_id: self.aggregate_id,
                occurred_at: self.occurred_at,
                payload: self.payload,
            },
            status: OutboxStatus::parse(&self.status)
                .ok_or_else(|| corrupt("outbox status", &self.status))?,
            attempts: self.attempts,
            last_error: self.last_error,
            next_attempt_at: self.next_attempt_at,
            created_at: self.created_at,
            sent_at: self.sent_at,
        })
    }
}

/// Leases up to `$2` READY rows due at `$1` whose lease is absent or expired, oldest first,
/// until `$3`, all under one new token. `candidates` locks them (skipping rows another claim is
/// locking this very moment) only until this statement's transaction commits, right after.
/// `claimable` then keeps only the candidates with no older READY row of the same aggregate
/// outside the candidates: such an older row is backing off, leased by another relay, or being
/// claimed by one, and publishing the newer row now could overtake it. If a candidate is left
/// out, so is every newer candidate of its aggregate (the same older row is older than them
/// too). Rows left out get no lease and are reconsidered on the next claim.
///
/// The token comes from a sequence, once per statement (a CTE with a volatile function is
/// evaluated once), so no two claims ever share it.
const CLAIM_READY: &str = "\
WITH lease AS (
    SELECT nextval('outbox_lease_token_seq') AS token
), candidates AS (
    SELECT id, aggregate_type, aggregate_id FROM outbox_events
    WHERE status = 'READY' AND next_attempt_at <= $1
      AND (lease_until IS NULL OR lease_until <= $1)
    ORDER BY id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), claimable AS (
    SELECT c.id FROM candidates c
    WHERE NOT EXISTS (
        SELECT 1 FROM outbox_events older
        WHERE older.status = 'READY'
          AND older.aggregate_id = c.aggregate_id
          AND older.aggregate_type = c.aggregate_type
          AND older.id < c.id
          AND older.id NOT IN (SELECT id FROM candidates)
    )
)
UPDATE outbox_events o
SET lease_token = (SELECT token FROM lease), lease_until = $3
FROM claimable c
WHERE o.id = c.id
RETURNING o.*";

/// Records the failed publishes of one round, each with its own error and, for a retry, its
/// next attempt (`NULL`: the retry budget is spent, FAILED), in one statement; only rows the
/// lease `$1` still holds.
const SETTLE_FAILURES: &str = "\
UPDATE outbox_events o
SET attempts = o.attempts + 1,
    last_error = f.error,
    status = CASE WHEN f.next_attempt_at IS NULL THEN 'FAILED' ELSE 'READY' END,
    next_attempt_at = COALESCE(f.next_attempt_at, o.next_attempt_at),
    lease_token = NULL,
    lease_until = NULL
FROM unnest($2::bigint[], $3::text[], $4::timestamptz[]) AS f(id, error, next_attempt_at)
WHERE o.id = f.id AND o.lease_token = $1";

/// A row returned by the claim, with the lease it was given.
#[derive(QueryableByName)]
#[diesel(check_for_backend(diesel::pg::Pg))]
struct ClaimedRow {
    #[diesel(embed)]
    event: OutboxRow,
    #[diesel(sql_type = Nullable<BigInt>)]
    lease_token: Option<i64>,
}

fn rows_into_domain(rows: Vec<OutboxRow>) -> Result<Vec<OutboxEvent>, RepoError> {
    rows.into_iter().map(OutboxRow::into_domain).collect()
}

#[async_trait]
impl OutboxRepository for PgTransaction {
    async fn append(
        &mut self,
        envelope: EventEnvelope,
        at: OffsetDateTime,
    ) -> Result<OutboxEvent, RepoError> {
        let conn = self.conn()?;
        let inserted = diesel::insert_into(outbox::table)
            .values((
                outbox::event_id.eq(&envelope.event_id),
                outbox::event_type.eq(envelope.event_type.as_str()),
                outbox::aggregate_type.eq(&envelope.aggregate_type),
                outbox::aggregate_id.eq(&envelope.aggregate_id),
                outbox::occurred_at.eq(envelope.occurred_at),
                outbox::payload.eq(&envelope.payload),
                outbox::status.eq(OutboxStatus::Ready.as_str()),
                outbox::next_attempt_at.eq(at),
                outbox::created_at.eq(at),
            ))
            .returning(OutboxRow::as_returning())
            .get_result(conn)
            .await;
        self.check(inserted)?.into_domain()
    }

    async fn claim_ready(
        &mut self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<OutboxClaim, RepoError> {
        let conn = self.conn()?;
        let rows = diesel::sql_query(CLAIM_READY)
            .bind::<Timestamptz, _>(now)
            .bind::<BigInt, _>(i64::from(limit))
            .bind::<Timestamptz, _>(lease_until)
            .load::<ClaimedRow>(conn)
            .await;
        let mut rows = self.check(rows)?;
        // RETURNING follows no ORDER BY: oldest first is restored here.
        rows.sort_unstable_by_key(|claimed| claimed.event.id);
        let lease = match rows.as_slice() {
            [first, ..] => OutboxLease(
                first
                    .lease_token
                    .ok_or_else(|| corrupt("outbox lease", "none on a claimed row"))?,
            ),
            // Nothing claimed: a token no claim gets (the sequence starts at 1), which
            // settles nothing.
            [] => OutboxLease(0),
        };
        let events = rows
            .into_iter()
            .map(|claimed| claimed.event.into_domain())
            .collect::<Result<_, _>>()?;
        Ok(OutboxClaim {
            lease,
            until: lease_until,
            events,
        })
    }

    async fn settle(
        &mut self,
        lease: OutboxLease,
        now: OffsetDateTime,
        outcomes: &[(OutboxId, OutboxOutcome)],
    ) -> Result<usize, RepoError> {
        let mut sent = Vec::new();
        let mut untried = Vec::new();
        let (mut failed, mut errors, mut next_attempts) = (Vec::new(), Vec::new(), Vec::new());
        for (id, outcome) in outcomes {
            match outcome {
                OutboxOutcome::Sent => sent.push(id.0),
                OutboxOutcome::Untried => untried.push(id.0),
                OutboxOutcome::Retry {
                    error,
                    next_attempt_at,
                } => {
                    failed.push(id.0);
                    errors.push(error.as_str());
                    next_attempts.push(Some(*next_attempt_at));
                }
                OutboxOutcome::Failed { error } => {
                    failed.push(id.0);
                    errors.push(error.as_str());
                    next_attempts.push(None);
                }
            }
        }
        // At most one statement per kind; `lease_token = $lease` in each is what keeps a relay
        // that outlived its lease off rows another relay has claimed since.
        let mut settled = 0;
        if !sent.is_empty() {
            let conn = self.conn()?;
            let updated = diesel::update(outbox::table)
                .filter(outbox::id.eq_any(&sent))
                .filter(outbox::lease_token.eq(lease.0))
                .set((
                    outbox::status.eq(OutboxStatus::Sent.as_str()),
                    outbox::sent_at.eq(Some(now)),
                    outbox::lease_token.eq(None::<i64>),
                    outbox::lease_until.eq(None::<OffsetDateTime>),
                ))
                .execute(conn)
                .await;
            settled += self.check(updated)?;
        }
        if !failed.is_empty() {
            let conn = self.conn()?;
            let updated = diesel::sql_query(SETTLE_FAILURES)
                .bind::<BigInt, _>(lease.0)
                .bind::<Array<BigInt>, _>(&failed)
                .bind::<Array<Text>, _>(&errors)
                .bind::<Array<Nullable<Timestamptz>>, _>(&next_attempts)
                .execute(conn)
                .await;
            settled += self.check(updated)?;
        }
        if !untried.is_empty() {
            let conn = self.conn()?;
            let updated = diesel::update(outbox::table)
                .filter(outbox::id.eq_any(&untried))
                .filter(outbox::lease_token.eq(lease.0))
                .set((
                    outbox::lease_token.eq(None::<i64>),
                    outbox::lease_until.eq(None::<OffsetDateTime>),
                ))
                .execute(conn)
                .await;
            settled += self.check(updated)?;
        }
        Ok(settled)
    }

    async fn list(
        &mut self,
        status: Option<OutboxStatus>,
        page: CursorPage,
    ) -> Result<Slice<OutboxEvent>, RepoError> {
        let mut query = outbox::table
            .select(OutboxRow::as_select())
            .order(outbox::id.desc())
            .limit(overfetch(page.limit))
            .into_boxed();
        if let Some(status) = status {
            query = query.filter(outbox::status.eq(status.as_str()));
        }
        if let Some(before) = page.before {
            query = query.filter(outbox::id.lt(before));
        }
        let conn = self.conn()?;
        let rows = query.load(conn).await;
        let events = rows_into_domain(self.check(rows)?)?;
        Ok(Slice::from_overfetch(events, page.limit, |e| e.id.0))
    }

    async fn retry(&mut self, id: OutboxId, now: OffsetDateTime) -> Result<OutboxRetry, RepoError> {
        // Conditional: only a FAILED row is put back, so two admins re-driving one event
        // requeue it once. The last error is kept for whoever looks next.
        let conn = self.conn()?;
        let requeued = diesel::update(outbox::table)
            .filter(outbox::id.eq(id.0))
            .filter(outbox::status.eq(OutboxStatus::Failed.as_str()))
            .set((
                outbox::status.eq(OutboxStatus::Ready.as_str()),
                outbox::attempts.eq(0),
                outbox::next_attempt_at.eq(now),
            ))
            .returning(OutboxRow::as_returning())
            .get_result(conn)
            .await
            .optional();
        if let Some(row) = self.check(requeued)? {
            return Ok(OutboxRetry::Requeued(Box::new(row.into_domain()?)));
        }
        let conn = self.conn()?;
        let status = outbox::table
            .find(id.0)
            .select(outbox::status)
            .first::<String>(conn)
            .await
            .optional();
        match self.check(status)? {
            None => Ok(OutboxRetry::NotFound),
            Some(raw) => Ok(OutboxRetry::NotFailed(
                OutboxStatus::parse(&raw).ok_or_else(|| corrupt("outbox status", &raw))?,
            )),
        }
    }

    async fn count_by_status(&mut self) -> Result<Vec<(OutboxStatus, i64)>, RepoError> {
        let conn = self.conn()?;
        let rows = outbox::table
            .group_by(outbox::status)
            .select((outbox::status, diesel::dsl::count_star()))
            .order(outbox::status)
            .load::<(String, i64)>(conn)
            .await;
        // Every status appears, zero included, so a gauge fed from it falls back to 0.
        let mut counts = vec![
            (OutboxStatus::Ready, 0),
            (OutboxStatus::Sent, 0),
            (OutboxStatus::Failed, 0),
        ];
        for (raw, n) in self.check(rows)? {
            let status = OutboxStatus::parse(&raw).ok_or_else(|| corrupt("outbox status", &raw))?;
            if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == status) {
                slot.1 = n;
            }
        }
        Ok(counts)
    }

    async fn backlog(&mut self) -> Result<OutboxBacklog, RepoError> {
        let conn = self.conn()?;
        // Served by `outbox_events_status_id_idx` (status, id): the SENT history is not read.
        let row = diesel::sql_query(BACKLOG)
            .get_result::<BacklogRow>(conn)
            .await;
        let row = self.check(row)?;
        Ok(OutboxBacklog {
            ready: row.ready,
            oldest_ready: row.oldest_ready,
            failed: row.failed,
        })
    }
}

const BACKLOG: &str = "SELECT count(*) FILTER (WHERE status = 'READY') AS ready, \
     min(created_at) FILTER (WHERE status = 'READY') AS oldest_ready, \
     count(*) FILTER (WHERE status = 'FAILED') AS failed \
     FROM outbox_events WHERE status IN ('READY', 'FAILED')";

#[derive(QueryableByName)]
struct BacklogRow {
    #[diesel(sql_type = BigInt)]
    ready: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    oldest_ready: Option<OffsetDateTime>,
    #[diesel(sql_type = BigInt)]
    failed: i64,
}
