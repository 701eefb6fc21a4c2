use super::RepoError;
use crate::idempotency::{IdempotencyRequest, IdempotencyScope, IdempotencyStart, StoredResponse};
use async_trait::async_trait;
use time::OffsetDateTime;

/// Keeps `Idempotency-Key` records (API.md conventions).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Atomically claims the key or reports what the earlier request left. Two concurrent
    /// first requests MUST NOT both get `Started`. A claim older than
    /// [`crate::idempotency::IN_PROGRESS_LEASE`] that never completed may be taken over.
    async fn start(&self, request: &IdempotencyRequest) -> Result<IdempotencyStart, RepoError>;

    /// Stores the response for replay (kept at least [`crate::idempotency::RETENTION`]).
    async fn complete(
        &self,
        scope: &IdempotencyScope,
        response: &StoredResponse,
        now: OffsetDateTime,
    ) -> Result<(), RepoError>;

    /// Releases a claim whose request produced nothing worth replaying (a 5xx).
    async fn abandon(&self, scope: &IdempotencyScope) -> Result<(), RepoError>;
}
