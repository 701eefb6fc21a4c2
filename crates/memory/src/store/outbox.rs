//! The transactional outbox: events written with the change they tell about.
//!
//! Invariants: `by_status` holds every row id exactly once, under its current status, so the
//! relay reads READY rows (oldest first) and the admin lists one status without scanning the
//! SENT history. `leases` holds only READY rows: settling a row ends its lease.

use super::{MemoryTx, Sequences, before, newest_first};
use async_trait::async_trait;
use domain::OutboxId;
use domain::outbox::{
    EventEnvelope, OutboxBacklog, OutboxClaim, OutboxEvent, OutboxLease, OutboxOutcome,
    OutboxStatus,
};
use domain::page::{CursorPage, Slice};
use domain::ports::{OutboxRepository, OutboxRetry, RepoError};
use std::collections::HashSet;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use time::OffsetDateTime;

const STATUSES: [OutboxStatus; 3] = [
    OutboxStatus::Ready,
    OutboxStatus::Sent,
    OutboxStatus::Failed,
];

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Clone, PartialEq))]
pub(super) struct OutboxTable {
    rows: BTreeMap<OutboxId, OutboxEvent>,
    by_status: HashMap<OutboxStatus, BTreeSet<OutboxId>>,
    /// Leased rows: the lease of their last claim and when it expires. A row stays here until
    /// it is settled, expired or not (expiry only lets another claim take it over).
    leases: HashMap<OutboxId, (OutboxLease, OffsetDateTime)>,
}

impl OutboxTable {
    /// Stores `row` (new or replacing its previous version), keeping `by_status` in step.
    /// Returns the previous version.
    fn put(&mut self, row: OutboxEvent) -> Option<OutboxEvent> {
        let (id, status) = (row.id, row.status);
        let previous = self.rows.insert(id, row);
        if let Some(old) = &previous
            && old.status != status
        {
            self.unindex(old.status, id);
        }
        self.by_status.entry(status).or_default().insert(id);
        previous
    }

    fn unindex(&mut self, status: OutboxStatus, id: OutboxId) {
        if let Some(ids) = self.by_status.get_mut(&status) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_status.remove(&status);
            }
        }
    }

    fn remove(&mut self, id: OutboxId) {
        if let Some(old) = self.rows.remove(&id) {
            self.unindex(old.status, id);
        }
        self.leases.remove(&id);
    }

    /// Sets or clears the lease of row `id`; returns the previous one.
    fn set_lease(
        &mut self,
        id: OutboxId,
        lease: Option<(OutboxLease, OffsetDateTime)>,
    ) -> Option<(OutboxLease, OffsetDateTime)> {
        match lease {
            Some(lease) => self.leases.insert(id, lease),
            None => self.leases.remove(&id),
        }
    }
}

impl MemoryTx {
    /// Applies `change` to row `id` and registers its undo. `Internal` when the row does not
    /// exist: the relay only marks rows it claimed.
    fn update_outbox(
        &mut self,
        id: OutboxId,
        change: impl FnOnce(&mut OutboxEvent),
    ) -> Result<OutboxEvent, RepoError> {
        let state = self.state_mut()?;
        let Some(row) = state.outbox.rows.get(&id) else {
            return Err(RepoError::Internal(format!("no outbox row {id}")));
        };
        let mut updated = row.clone();
        change(&mut updated);
        if let Some(previous) = state.outbox.put(updated.clone()) {
            self.on_rollback(move |s| {
                s.outbox.put(previous);
            });
        }
        Ok(updated)
    }

    /// Sets or clears the lease of row `id` and registers its undo.
    fn lease_outbox(
        &mut self,
        id: OutboxId,
        lease: Option<(OutboxLease, OffsetDateTime)>,
    ) -> Result<(), RepoError> {
        let previous = self.state_mut()?.outbox.set_lease(id, lease);
        self.on_rollback(move |s| {
            s.outbox.set_lease(id, previous);
        });
        Ok(())
    }
}

#[async_trait]
impl OutboxRepository for MemoryTx {
    async fn append(
        &mut self,
        envelope: EventEnvelope,
        at: OffsetDateTime,
    ) -> Result<OutboxEvent, RepoError> {
        let state = self.state_mut()?;
        let id = OutboxId(Sequences::next(&mut state.seq.outbox));
        let row = OutboxEvent {
            id,
            envelope,
            status: OutboxStatus::Ready,
            attempts: 0,
            last_error: None,
            next_attempt_at: at,
            created_at: at,
            sent_at: None,
        };
        state.outbox.put(row.clone());
        self.on_rollback(move |s| s.outbox.remove(id));
        Ok(row)
    }

    async fn claim_ready(
        &mut self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<OutboxClaim, RepoError> {
        let state = self.state_mut()?;
        // From a sequence, not rolled back: a token is never handed out twice.
        let lease = OutboxLease(Sequences::next(&mut state.seq.outbox_leases));
        let table = &state.outbox;
        let mut events = Vec::new();
        if let Some(ready) = table.by_status.get(&OutboxStatus::Ready) {
            // Walk READY rows oldest first; an aggregate whose oldest READY row is not
            // claimable (not due yet, or leased by another relay) is blocked for the rest of
            // the walk, so its later events cannot overtake it.
            let mut blocked: HashSet<(&str, &str)> = HashSet::new();
            for row in ready.iter().filter_map(|id| table.rows.get(id)) {
                if events.len() >= limit as usize {
                    break;
                }
                let aggregate = (
                    row.envelope.aggregate_type.as_str(),
                    row.envelope.aggregate_id.as_str(),
                );
                if blocked.contains(&aggregate) {
                    continue;
                }
                let leased = table
                    .leases
                    .get(&row.id)
                    .is_some_and(|(_, until)| *until > now);
                if row.next_attempt_at <= now && !leased {
                    events.push(row.clone());
                } else {
                    blocked.insert(aggregate);
                }
            }
        }
        for row in &events {
            self.lease_outbox(row.id, Some((lease, lease_until)))?;
        }
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
        let mut settled = 0;
        for (id, outcome) in outcomes {
            let held = self
                .state()
                .outbox
                .leases
                .get(id)
                .is_some_and(|(holder, _)| *holder == lease);
            if !held {
                continue;
            }
            match outcome {
                OutboxOutcome::Sent => {
                    self.update_outbox(*id, |row| {
                        row.status = OutboxStatus::Sent;
                        row.sent_at = Some(now);
                    })?;
                }
                OutboxOutcome::Retry {
                    error,
                    next_attempt_at,
                } => {
                    self.update_outbox(*id, |row| {
                        row.attempts += 1;
                        row.last_error = Some(error.clone());
                        row.next_attempt_at = *next_attempt_at;
                    })?;
                }
                OutboxOutcome::Failed { error } => {
                    self.update_outbox(*id, |row| {
                        row.attempts += 1;
                        row.last_error = Some(error.clone());
                        row.status = OutboxStatus::Failed;
                    })?;
                }
                OutboxOutcome::Untried => {}
            }
            self.lease_outbox(*id, None)?;
            settled += 1;
        }
        Ok(settled)
    }

    async fn list(
        &mut self,
        status: Option<OutboxStatus>,
        page: CursorPage,
    ) -> Result<Slice<OutboxEvent>, RepoError> {
        let table = &self.state().outbox;
        let slice = match status {
            None => {
                let window = table
                    .rows
                    .range(before(page.before))
                    .map(|(_, row)| row.clone());
                newest_first(window, page.limit, |row| row.id.get())
            }
            Some(status) => match table.by_status.get(&status) {
                None => Slice {
                    items: Vec::new(),
                    next: None,
                },
                Some(ids) => {
                    let window = ids
                        .range(before(page.before))
                        .filter_map(|id| table.rows.get(id))
                        .cloned();
                    newest_first(window, page.limit, |row| row.id.get())
                }
            },
        };
        Ok(slice)
    }

    async fn retry(&mut self, id: OutboxId, now: OffsetDateTime) -> Result<OutboxRetry, RepoError> {
        let status = match self.state().outbox.rows.get(&id) {
            None => return Ok(OutboxRetry::NotFound),
            Some(row) => row.status,
        };
        if status != OutboxStatus::Failed {
            return Ok(OutboxRetry::NotFailed(status));
        }
        let requeued = self.update_outbox(id, |row| {
            // The last error stays for the record; the retry budget starts again.
            row.status = OutboxStatus::Ready;
            row.attempts = 0;
            row.next_attempt_at = now;
        })?;
        Ok(OutboxRetry::Requeued(Box::new(requeued)))
    }

    async fn count_by_status(&mut self) -> Result<Vec<(OutboxStatus, i64)>, RepoError> {
        let table = &self.state().outbox;
        Ok(STATUSES
            .iter()
            .map(|status| {
                let count = table.by_status.get(status).map_or(0, BTreeSet::len);
                (*status, count as i64)
            })
            .collect())
    }

    async fn backlog(&mut self) -> Result<OutboxBacklog, RepoError> {
        let table = &self.state().outbox;
        let ids = |status| table.by_status.get(&status);
        let ready = ids(OutboxStatus::Ready);
        Ok(OutboxBacklog {
            ready: ready.map_or(0, BTreeSet::len) as i64,
            // Ids grow with creation: the smallest READY id is the oldest READY event.
            oldest_ready: ready
                .and_then(|ids| ids.first())
                .and_then(|id| table.rows.get(id))
                .map(|row| row.created_at),
            failed: ids(OutboxStatus::Failed).map_or(0, BTreeSet::len) as i64,
        })
    }
}
