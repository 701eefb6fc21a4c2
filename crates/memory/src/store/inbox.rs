//! Consumer bookkeeping: which events each consumer handled, and where it reads next.
//!
//! Invariant: a (consumer, event id) pair is recorded at most once, so an effect written in the
//! same transaction as its record takes place once however often the event is delivered.

use super::MemoryTx;
use async_trait::async_trait;
use domain::ports::{InboxRepository, RepoError};
use std::collections::{HashMap, HashSet};
use time::OffsetDateTime;

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Clone, PartialEq))]
pub(super) struct InboxTable {
    handled: HashSet<(String, String)>,
    positions: HashMap<(String, String, i32), i64>,
}

#[async_trait]
impl InboxRepository for MemoryTx {
    async fn record(
        &mut self,
        consumer: &str,
        event_id: &str,
        _at: OffsetDateTime,
    ) -> Result<bool, RepoError> {
        let state = self.state_mut()?;
        let key = (consumer.to_owned(), event_id.to_owned());
        if state.inbox.handled.contains(&key) {
            return Ok(false);
        }
        state.inbox.handled.insert(key.clone());
        self.on_rollback(move |s| {
            s.inbox.handled.remove(&key);
        });
        Ok(true)
    }

    async fn position(
        &mut self,
        consumer: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, RepoError> {
        let key = (consumer.to_owned(), topic.to_owned(), partition);
        Ok(self.state().inbox.positions.get(&key).copied())
    }

    async fn save_position(
        &mut self,
        consumer: &str,
        topic: &str,
        partition: i32,
        next_offset: i64,
    ) -> Result<(), RepoError> {
        let state = self.state_mut()?;
        let key = (consumer.to_owned(), topic.to_owned(), partition);
        let previous = state.inbox.positions.insert(key.clone(), next_offset);
        self.on_rollback(move |s| match previous {
            Some(offset) => {
                s.inbox.positions.insert(key, offset);
            }
            None => {
                s.inbox.positions.remove(&key);
            }
        });
        Ok(())
    }
}
