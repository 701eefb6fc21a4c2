use super::{corrupt, overfetch};
use crate::PgTransaction;
use crate::schema::outbox_events as outbox;
use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamptz};
use diesel_async::RunQueryDsl;
use domain::OutboxId;
use domain::outbox::{EventEnvelope, EventType, OutboxEvent, OutboxStatus};
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

/// Locks up to `$2` due READY rows, oldest first, skipping rows another relay holds; then
/// keeps only those with no older READY row of the same aggregate outside this claim. Such an
/// older row is either backing off or held by another relay, and publishing the newer one now
/// could overtake it. The rows left out stay locked until this transaction ends (other relays
/// skip them too) and are reconsidered on the next claim.
const CLAIM_READY: &str = "\
WITH claimed AS (
    SELECT id FROM outbox_events
    WHERE status = 'READY' AND next_attempt_at <= $1
    ORDER BY id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
SELECT o.* FROM outbox_events o
JOIN claimed c ON c.id = o.id
WHERE NOT EXISTS (
    SELECT 1 FROM outbox_events older
    WHERE older.status = 'READY'
      AND older.aggregate_id = o.aggregate_id
      AND older.aggregate_type = o.aggregate_type
      AND older.id < o.id
      AND older.id NOT IN (SELECT id FROM claimed)
)
ORDER BY o.id";

/// A bookkeeping update of a row the relay claimed: the row must exist.
fn expect_one(updated: usize, id: OutboxId) -> Result<(), RepoError> {
    match updated {
        1 => Ok(()),
        _ => Err(RepoError::Internal(format!("no outbox row {id}"))),
    }
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
        limit: u32,
    ) -> Result<Vec<OutboxEvent>, RepoError> {
        let conn = self.conn()?;
        let rows = diesel::sql_query(CLAIM_READY)
            .bind::<Timestamptz, _>(now)
            .bind::<BigInt, _>(i64::from(limit))
            .load::<OutboxRow>(conn)
            .await;
        rows_into_domain(self.check(rows)?)
    }

    async fn mark_sent(&mut self, id: OutboxId, at: OffsetDateTime) -> Result<(), RepoError> {
        let conn = self.conn()?;
        let updated = diesel::update(outbox::table.find(id.0))
            .set((
                outbox::status.eq(OutboxStatus::Sent.as_str()),
                outbox::sent_at.eq(Some(at)),
            ))
            .execute(conn)
            .await;
        expect_one(self.check(updated)?, id)
    }

    async fn mark_retry(
        &mut self,
        id: OutboxId,
        error: &str,
        next_attempt_at: OffsetDateTime,
    ) -> Result<(), RepoError> {
        let conn = self.conn()?;
        let updated = diesel::update(outbox::table.find(id.0))
            .set((
                outbox::attempts.eq(outbox::attempts + 1),
                outbox::last_error.eq(Some(error)),
                outbox::next_attempt_at.eq(next_attempt_at),
            ))
            .execute(conn)
            .await;
        expect_one(self.check(updated)?, id)
    }

    async fn mark_failed(&mut self, id: OutboxId, error: &str) -> Result<(), RepoError> {
        let conn = self.conn()?;
        let updated = diesel::update(outbox::table.find(id.0))
            .set((
                outbox::status.eq(OutboxStatus::Failed.as_str()),
                outbox::attempts.eq(outbox::attempts + 1),
                outbox::last_error.eq(Some(error)),
            ))
            .execute(conn)
            .await;
        expect_one(self.check(updated)?, id)
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
}
