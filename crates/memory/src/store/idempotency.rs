//! `Idempotency-Key` records, kept in the store's state so that a request's answer and its
//! effect are written under one lock and undone together.
//!
//! Semantics (API.md, `domain::idempotency`, the port docs):
//! - no record, or a record older than [`RETENTION`] → claim it with the request's token:
//!   `Started`;
//! - a record with another body fingerprint → `Mismatch` (checked first: a key reused with a
//!   different body is refused whatever state the first request is in);
//! - a completed record → `Replay` of the stored response;
//! - a claim still running → `InProgress`, unless it is older than [`IN_PROGRESS_LEASE`]: then
//!   the new request takes it over with its own token (`Started`).
//!
//! Completing and releasing are conditional on the token and on the record still running, so a
//! request whose claim was taken over changes nothing, and a stored answer is never released.
//! Expired records are swept at most once a minute of request time, so memory stays bounded by
//! one day of keys.

use super::{MemoryStore, MemoryTx};
use async_trait::async_trait;
use domain::idempotency::{
    ClaimToken, IN_PROGRESS_LEASE, IdempotencyClaim, IdempotencyRequest, IdempotencyScope,
    IdempotencyStart, RETENTION, StoredResponse,
};
use domain::ports::{IdempotencyRecords, IdempotencyStore, RepoError};
use std::collections::HashMap;
use time::{Duration, OffsetDateTime};

const SWEEP_EVERY: Duration = Duration::minutes(1);

#[derive(Debug, Clone, PartialEq)]
enum Progress {
    Running {
        token: ClaimToken,
        started_at: OffsetDateTime,
    },
    Done {
        response: StoredResponse,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Record {
    fingerprint: String,
    /// When the key was claimed, then when its response was stored.
    touched_at: OffsetDateTime,
    progress: Progress,
}

impl Record {
    fn expired(&self, now: OffsetDateTime) -> bool {
        now >= self.touched_at + RETENTION
    }

    fn held_by(&self, token: ClaimToken) -> bool {
        matches!(self.progress, Progress::Running { token: t, .. } if t == token)
    }
}

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Clone, PartialEq))]
pub(super) struct KeysTable {
    by_scope: HashMap<IdempotencyScope, Record>,
    last_sweep: Option<OffsetDateTime>,
}

impl KeysTable {
    fn sweep(&mut self, now: OffsetDateTime) {
        if self.last_sweep.is_some_and(|at| now < at + SWEEP_EVERY) {
            return;
        }
        self.last_sweep = Some(now);
        self.by_scope.retain(|_, record| !record.expired(now));
    }

    fn start(&mut self, request: &IdempotencyRequest) -> IdempotencyStart {
        let now = request.now;
        self.sweep(now);
        let claim = || Record {
            fingerprint: request.fingerprint.clone(),
            touched_at: now,
            progress: Progress::Running {
                token: request.token,
                started_at: now,
            },
        };
        let started = IdempotencyStart::Started(IdempotencyClaim {
            scope: request.scope.clone(),
            token: request.token,
        });
        let Some(record) = self.by_scope.get_mut(&request.scope) else {
            self.by_scope.insert(request.scope.clone(), claim());
            return started;
        };
        if record.expired(now) {
            *record = claim();
            return started;
        }
        if record.fingerprint != request.fingerprint {
            return IdempotencyStart::Mismatch;
        }
        match &record.progress {
            Progress::Done { response } => IdempotencyStart::Replay(response.clone()),
            Progress::Running { started_at, .. } if now >= *started_at + IN_PROGRESS_LEASE => {
                *record = claim();
                started
            }
            Progress::Running { .. } => IdempotencyStart::InProgress,
        }
    }

    /// Stores `response` if `claim` still holds the key; returns the record it replaced, for
    /// an undo.
    fn complete(
        &mut self,
        claim: &IdempotencyClaim,
        response: &StoredResponse,
        now: OffsetDateTime,
    ) -> Option<Record> {
        let record = self
            .by_scope
            .get_mut(&claim.scope)
            .filter(|r| r.held_by(claim.token))?;
        let before = record.clone();
        record.touched_at = now;
        record.progress = Progress::Done {
            response: response.clone(),
        };
        Some(before)
    }

    fn release(&mut self, claim: &IdempotencyClaim) -> bool {
        let held = self
            .by_scope
            .get(&claim.scope)
            .is_some_and(|r| r.held_by(claim.token));
        if held {
            self.by_scope.remove(&claim.scope);
        }
        held
    }
}

/// Outside a transaction: each call takes the store's lock for one map operation, so it waits
/// for (and sees the outcome of) any transaction that is completing the same key.
#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn start(&self, request: &IdempotencyRequest) -> Result<IdempotencyStart, RepoError> {
        let mut tx = self.lock(true).await?;
        Ok(tx.state_mut()?.idempotency.start(request))
    }

    async fn complete(
        &self,
        claim: &IdempotencyClaim,
        response: &StoredResponse,
        now: OffsetDateTime,
    ) -> Result<bool, RepoError> {
        let mut tx = self.lock(true).await?;
        let completed = tx
            .state_mut()?
            .idempotency
            .complete(claim, response, now)
            .is_some();
        Ok(completed)
    }

    async fn release(&self, claim: &IdempotencyClaim) -> Result<bool, RepoError> {
        let mut tx = self.lock(true).await?;
        Ok(tx.state_mut()?.idempotency.release(claim))
    }
}

#[async_trait]
impl IdempotencyRecords for MemoryTx {
    async fn complete(
        &mut self,
        claim: &IdempotencyClaim,
        response: &StoredResponse,
        now: OffsetDateTime,
    ) -> Result<bool, RepoError> {
        let state = self.state_mut()?;
        let Some(before) = state.idempotency.complete(claim, response, now) else {
            return Ok(false);
        };
        let scope = claim.scope.clone();
        self.on_rollback(move |s| {
            s.idempotency.by_scope.insert(scope, before);
        });
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::UserId;
    use domain::idempotency::IdempotencyKey;
    use domain::ports::UnitOfWork;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-21 09:30 UTC);

    fn scope(key: &str) -> IdempotencyScope {
        IdempotencyScope {
            user_id: UserId(1),
            method: "POST".into(),
            path: "/api/v1/orders".into(),
            key: IdempotencyKey::new(key).unwrap(),
        }
    }

    fn request(
        key: &str,
        fingerprint: &str,
        now: OffsetDateTime,
        token: i64,
    ) -> IdempotencyRequest {
        IdempotencyRequest {
            scope: scope(key),
            token: ClaimToken(token),
            fingerprint: fingerprint.into(),
            now,
        }
    }

    fn claim(key: &str, token: i64) -> IdempotencyClaim {
        IdempotencyClaim {
            scope: scope(key),
            token: ClaimToken(token),
        }
    }

    fn started(key: &str, token: i64) -> IdempotencyStart {
        IdempotencyStart::Started(claim(key, token))
    }

    fn response() -> StoredResponse {
        StoredResponse {
            status: 201,
            content_type: "application/json".into(),
            body: b"{\"id\":1}".to_vec(),
        }
    }

    async fn len(store: &MemoryStore) -> usize {
        store.snapshot().await.idempotency.by_scope.len()
    }

    #[tokio::test]
    async fn started_then_in_progress_then_replay_or_mismatch() {
        let store = MemoryStore::new();
        let first = request("k", "aa", T0, 1);
        assert_eq!(store.start(&first).await, Ok(started("k", 1)));
        assert_eq!(
            store.start(&request("k", "aa", T0, 2)).await,
            Ok(IdempotencyStart::InProgress)
        );
        assert_eq!(
            store.start(&request("k", "bb", T0, 3)).await,
            Ok(IdempotencyStart::Mismatch)
        );
        assert_eq!(
            store.complete(&claim("k", 1), &response(), T0).await,
            Ok(true)
        );
        let later = request("k", "aa", T0 + Duration::hours(23), 4);
        assert_eq!(
            store.start(&later).await,
            Ok(IdempotencyStart::Replay(response()))
        );
        assert_eq!(
            store
                .start(&request("k", "bb", T0 + Duration::hours(23), 5))
                .await,
            Ok(IdempotencyStart::Mismatch)
        );
        // Other scopes are other keys.
        let mut other_user = first.clone();
        other_user.scope.user_id = UserId(2);
        assert!(matches!(
            store.start(&other_user).await,
            Ok(IdempotencyStart::Started(_))
        ));
    }

    #[tokio::test]
    async fn records_expire_after_retention() {
        let store = MemoryStore::new();
        store.start(&request("k", "aa", T0, 1)).await.unwrap();
        store
            .complete(&claim("k", 1), &response(), T0)
            .await
            .unwrap();
        let just_before = T0 + RETENTION - Duration::SECOND;
        assert_eq!(
            store.start(&request("k", "bb", just_before, 2)).await,
            Ok(IdempotencyStart::Mismatch)
        );
        assert_eq!(
            store.start(&request("k", "bb", T0 + RETENTION, 3)).await,
            Ok(started("k", 3))
        );
        // The sweep drops records nobody asks about again.
        store.start(&request("x", "aa", T0, 4)).await.unwrap();
        store
            .start(&request("y", "aa", T0 + RETENTION * 3, 5))
            .await
            .unwrap();
        assert_eq!(len(&store).await, 1);
    }

    #[tokio::test]
    async fn a_taken_over_claim_can_neither_complete_nor_release() {
        let store = MemoryStore::new();
        store.start(&request("k", "aa", T0, 1)).await.unwrap();
        let within = T0 + IN_PROGRESS_LEASE - Duration::SECOND;
        assert_eq!(
            store.start(&request("k", "aa", within, 2)).await,
            Ok(IdempotencyStart::InProgress)
        );
        let after = T0 + IN_PROGRESS_LEASE;
        assert_eq!(
            store.start(&request("k", "aa", after, 3)).await,
            Ok(started("k", 3))
        );
        // The first owner lost the key: its answer and its release change nothing.
        assert_eq!(store.release(&claim("k", 1)).await, Ok(false));
        assert_eq!(
            store.complete(&claim("k", 1), &response(), after).await,
            Ok(false)
        );
        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.idempotency()
                .complete(&claim("k", 1), &response(), after)
                .await,
            Ok(false)
        );
        drop(tx);
        assert_eq!(
            store.start(&request("k", "aa", after, 4)).await,
            Ok(IdempotencyStart::InProgress)
        );
        // The owner releases; a new body may then use the key.
        assert_eq!(store.release(&claim("k", 3)).await, Ok(true));
        assert_eq!(
            store.start(&request("k", "bb", after, 5)).await,
            Ok(started("k", 5))
        );
        // A stored answer is never released.
        store
            .complete(&claim("k", 5), &response(), after)
            .await
            .unwrap();
        assert_eq!(store.release(&claim("k", 5)).await, Ok(false));
        assert_eq!(
            store.start(&request("k", "bb", after, 6)).await,
            Ok(IdempotencyStart::Replay(response()))
        );
    }

    #[tokio::test]
    async fn an_answer_stored_in_a_transaction_is_undone_with_it() {
        let store = MemoryStore::new();
        store.start(&request("k", "aa", T0, 1)).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        assert_eq!(
            tx.idempotency()
                .complete(&claim("k", 1), &response(), T0)
                .await,
            Ok(true)
        );
        drop(tx);
        assert_eq!(
            store.start(&request("k", "aa", T0, 2)).await,
            Ok(IdempotencyStart::InProgress),
            "rolled back: still the first claim"
        );
        let mut tx = store.begin().await.unwrap();
        tx.idempotency()
            .complete(&claim("k", 1), &response(), T0)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            store.start(&request("k", "aa", T0, 3)).await,
            Ok(IdempotencyStart::Replay(response()))
        );
        assert_eq!(store.release(&claim("k", 1)).await, Ok(false));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_first_requests_yield_exactly_one_started() {
        for round in 0..20 {
            let store = MemoryStore::new();
            let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(64));
            let mut set = tokio::task::JoinSet::new();
            for i in 0..64 {
                let (store, barrier) = (store.clone(), barrier.clone());
                // A few requests reuse the key with another body.
                let fingerprint = if i % 8 == 7 { "other" } else { "same" };
                set.spawn(async move {
                    barrier.wait().await;
                    let request = request(&format!("k{round}"), fingerprint, T0, i);
                    (fingerprint, store.start(&request).await.unwrap())
                });
            }
            let outcomes = set.join_all().await;
            let started: Vec<_> = outcomes
                .iter()
                .filter(|(_, o)| matches!(o, IdempotencyStart::Started(_)))
                .collect();
            assert_eq!(started.len(), 1, "round {round}");
            let winner = started[0].0;
            for (fingerprint, outcome) in &outcomes {
                match outcome {
                    IdempotencyStart::Started(_) => {}
                    IdempotencyStart::InProgress => assert_eq!(*fingerprint, winner),
                    IdempotencyStart::Mismatch => assert_ne!(*fingerprint, winner),
                    IdempotencyStart::Replay(_) => panic!("nothing was completed"),
                }
            }
        }
    }
}
