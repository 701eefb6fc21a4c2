use crate::PgTransaction;
use crate::schema::{consumer_positions as positions, inbox_events as inbox};
use async_trait::async_trait;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;
use domain::ports::{InboxRepository, RepoError};
use time::OffsetDateTime;

#[async_trait]
impl InboxRepository for PgTransaction {
    async fn record(
        &mut self,
        consumer: &str,
        event_id: &str,
        at: OffsetDateTime,
    ) -> Result<bool, RepoError> {
        // A concurrent transaction recording the same event makes this one wait for its
        // outcome: after its commit this inserts nothing (false), after its rollback it
        // inserts the row (true). No error either way.
        let conn = self.conn()?;
        let inserted = diesel::insert_into(inbox::table)
            .values((
                inbox::consumer.eq(consumer),
                inbox::event_id.eq(event_id),
                inbox::handled_at.eq(at),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await;
        Ok(self.check(inserted)? == 1)
    }

    async fn position(
        &mut self,
        consumer: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, RepoError> {
        let conn = self.conn()?;
        let found = positions::table
            .find((consumer, topic, partition))
            .select(positions::next_offset)
            .first::<i64>(conn)
            .await
            .optional();
        self.check(found)
    }

    async fn save_position(
        &mut self,
        consumer: &str,
        topic: &str,
        partition: i32,
        next_offset: i64,
    ) -> Result<(), RepoError> {
        let conn = self.conn()?;
        let written = diesel::insert_into(positions::table)
            .values((
                positions::consumer.eq(consumer),
                positions::topic.eq(topic),
                positions::partition.eq(partition),
                positions::next_offset.eq(next_offset),
            ))
            .on_conflict((positions::consumer, positions::topic, positions::partition))
            .do_update()
            .set(positions::next_offset.eq(excluded(positions::next_offset)))
            .execute(conn)
            .await;
        self.check(written).map(drop)
    }
}
