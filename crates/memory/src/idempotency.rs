//! `Idempotency-Key` records, in process.
//!
//! Semantics (API.md, `domain::idempotency`, the port docs), decided under one lock so that two
//! concurrent first requests never both get `Started`:
//! - no record, or a record older than [`RETENTION`] → claim it: `Started`;
//! - a record with another body fingerprint → `Mismatch` (checked first: a key reused with a
//!   different body is refused whatever state the first request is in);
//! - a completed record → `Replay` of the stored response;
//! - a claim still running → `InProgress`, unless it is older than [`IN_PROGRESS_LEASE`] (its
//!   request died): then the new request takes it over (`Started`).
//!
//! `complete` keeps the response until `RETENTION` after completion; `abandon` drops a claim
//! (never a completed response). Expired records are swept at most once a minute of request
//! time, so memory stays bounded by one day of keys.

use async_trait::async_trait;
use domain::idempotency::{
    IN_PROGRESS_LEASE, IdempotencyRequest, IdempotencyScope, IdempotencyStart, RETENTION,
    StoredResponse,
};
use domain::ports::{IdempotencyStore, RepoError};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use time::{Duration, OffsetDateTime};

const SWEEP_EVERY: Duration = Duration::minutes(1);

#[derive(Debug)]
enum Progress {
    Running { started_at: OffsetDateTime },
    Done { response: StoredResponse },
}

#[derive(Debug)]
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
}

#[derive(Debug, Default)]
struct Records {
    by_scope: HashMap<IdempotencyScope, Record>,
    last_sweep: Option<OffsetDateTime>,
}

/// The in-process idempotency store.
#[derive(Debug, Default)]
pub struct MemoryIdempotencyStore {
    records: Mutex<Records>,
}

impl MemoryIdempotencyStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys are held (running or completed), for tests.
    pub fn len(&self) -> usize {
        self.lock().by_scope.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Records> {
        // Every change under this lock is a single map operation: a poisoned lock is consistent.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Records {
    fn sweep(&mut self, now: OffsetDateTime) {
        if self.last_sweep.is_some_and(|at| now < at + SWEEP_EVERY) {
            return;
        }
        self.last_sweep = Some(now);
        self.by_scope.retain(|_, record| !record.expired(now));
    }
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn start(&self, request: &IdempotencyRequest) -> Result<IdempotencyStart, RepoError> {
        let now = request.now;
        let mut records = self.lock();
        records.sweep(now);
        let claim = || Record {
            fingerprint: request.fingerprint.clone(),
            touched_at: now,
            progress: Progress::Running { started_at: now },
        };
        let Some(record) = records.by_scope.get_mut(&request.scope) else {
            records.by_scope.insert(request.scope.clone(), claim());
            return Ok(IdempotencyStart::Started);
        };
        if record.expired(now) {
            *record = claim();
            return Ok(IdempotencyStart::Started);
        }
        if record.fingerprint != request.fingerprint {
            return Ok(IdempotencyStart::Mismatch);
        }
        match &record.progress {
            Progress::Done { response } => Ok(IdempotencyStart::Replay(response.clone())),
            Progress::Running { started_at } if now >= *started_at + IN_PROGRESS_LEASE => {
                *record = claim();
                Ok(IdempotencyStart::Started)
            }
            Progress::Running { .. } => Ok(IdempotencyStart::InProgress),
        }
    }

    async fn complete(
        &self,
        scope: &IdempotencyScope,
        response: &StoredResponse,
        now: OffsetDateTime,
    ) -> Result<(), RepoError> {
        let mut records = self.lock();
        match records.by_scope.get_mut(scope) {
            Some(record) => {
                record.touched_at = now;
                record.progress = Progress::Done {
                    response: response.clone(),
                };
            }
            None => {
                // The claim was abandoned or swept meanwhile: without its fingerprint there is
                // nothing safe to replay against, so the response is not kept.
                tracing::warn!(
                    user_id = scope.user_id.get(),
                    path = %scope.path,
                    "idempotency key completed without a claim; response not stored"
                );
            }
        }
        Ok(())
    }

    async fn abandon(&self, scope: &IdempotencyScope) -> Result<(), RepoError> {
        let mut records = self.lock();
        if records
            .by_scope
            .get(scope)
            .is_some_and(|r| matches!(r.progress, Progress::Running { .. }))
        {
            records.by_scope.remove(scope);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::UserId;
    use domain::idempotency::IdempotencyKey;
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

    fn request(key: &str, fingerprint: &str, now: OffsetDateTime) -> IdempotencyRequest {
        IdempotencyRequest {
            scope: scope(key),
            fingerprint: fingerprint.into(),
            now,
        }
    }

    fn response() -> StoredResponse {
        StoredResponse {
            status: 201,
            content_type: "application/json".into(),
            body: b"{\"id\":1}".to_vec(),
        }
    }

    #[tokio::test]
    async fn started_then_in_progress_then_replay_or_mismatch() {
        let store = MemoryIdempotencyStore::new();
        let first = request("k", "aa", T0);
        assert_eq!(store.start(&first).await, Ok(IdempotencyStart::Started));
        assert_eq!(store.start(&first).await, Ok(IdempotencyStart::InProgress));
        assert_eq!(
            store.start(&request("k", "bb", T0)).await,
            Ok(IdempotencyStart::Mismatch)
        );
        store.complete(&scope("k"), &response(), T0).await.unwrap();
        let later = request("k", "aa", T0 + Duration::hours(23));
        assert_eq!(
            store.start(&later).await,
            Ok(IdempotencyStart::Replay(response()))
        );
        assert_eq!(
            store
                .start(&request("k", "bb", T0 + Duration::hours(23)))
                .await,
            Ok(IdempotencyStart::Mismatch)
        );
        // Other scopes are other keys.
        let mut other_user = first.clone();
        other_user.scope.user_id = UserId(2);
        assert_eq!(
            store.start(&other_user).await,
            Ok(IdempotencyStart::Started)
        );
    }

    #[tokio::test]
    async fn records_expire_after_retention() {
        let store = MemoryIdempotencyStore::new();
        store.start(&request("k", "aa", T0)).await.unwrap();
        store.complete(&scope("k"), &response(), T0).await.unwrap();
        let just_before = T0 + RETENTION - Duration::SECOND;
        assert!(matches!(
            store.start(&request("k", "bb", just_before)).await,
            Ok(IdempotencyStart::Mismatch)
        ));
        assert_eq!(
            store.start(&request("k", "bb", T0 + RETENTION)).await,
            Ok(IdempotencyStart::Started)
        );
        // The sweep drops records nobody asks about again.
        store.start(&request("x", "aa", T0)).await.unwrap();
        store
            .start(&request("y", "aa", T0 + RETENTION * 3))
            .await
            .unwrap();
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn a_dead_claim_is_taken_over_after_the_lease_and_abandon_frees_the_key() {
        let store = MemoryIdempotencyStore::new();
        store.start(&request("k", "aa", T0)).await.unwrap();
        let within = T0 + IN_PROGRESS_LEASE - Duration::SECOND;
        assert_eq!(
            store.start(&request("k", "aa", within)).await,
            Ok(IdempotencyStart::InProgress)
        );
        let after = T0 + IN_PROGRESS_LEASE;
        assert_eq!(
            store.start(&request("k", "aa", after)).await,
            Ok(IdempotencyStart::Started)
        );
        // The taker-over holds a fresh lease.
        assert_eq!(
            store.start(&request("k", "aa", after)).await,
            Ok(IdempotencyStart::InProgress)
        );
        store.abandon(&scope("k")).await.unwrap();
        assert_eq!(
            store.start(&request("k", "bb", after)).await,
            Ok(IdempotencyStart::Started)
        );
        // Abandon never drops a completed response.
        store
            .complete(&scope("k"), &response(), after)
            .await
            .unwrap();
        store.abandon(&scope("k")).await.unwrap();
        assert_eq!(
            store.start(&request("k", "bb", after)).await,
            Ok(IdempotencyStart::Replay(response()))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_first_requests_yield_exactly_one_started() {
        for round in 0..20 {
            let store = std::sync::Arc::new(MemoryIdempotencyStore::new());
            let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(64));
            let mut set = tokio::task::JoinSet::new();
            for i in 0..64 {
                let (store, barrier) = (store.clone(), barrier.clone());
                // A few requests reuse the key with another body.
                let fingerprint = if i % 8 == 7 { "other" } else { "same" };
                set.spawn(async move {
                    barrier.wait().await;
                    let request = request(&format!("k{round}"), fingerprint, T0);
                    (fingerprint, store.start(&request).await.unwrap())
                });
            }
            let outcomes = set.join_all().await;
            let started: Vec<_> = outcomes
                .iter()
                .filter(|(_, o)| *o == IdempotencyStart::Started)
                .collect();
            assert_eq!(started.len(), 1, "round {round}");
            let winner = started[0].0;
            for (fingerprint, outcome) in &outcomes {
                match outcome {
                    IdempotencyStart::Started => {}
                    IdempotencyStart::InProgress => assert_eq!(*fingerprint, winner),
                    IdempotencyStart::Mismatch => assert_ne!(*fingerprint, winner),
                    IdempotencyStart::Replay(_) => panic!("nothing was completed"),
                }
            }
        }
    }
}
