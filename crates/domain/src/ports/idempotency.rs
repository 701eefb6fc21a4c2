use super::RepoError;
use crate::idempotency::{IdempotencyClaim, IdempotencyRequest, IdempotencyStart, StoredResponse};
use async_trait::async_trait;
use time::OffsetDateTime;

/// Keeps `Idempotency-Key` records (API.md conventions), outside any unit of work.
///
/// The life of a key: [`Self::start`] claims it (visible to concurrent retries at once). A
/// request that changes something stores its answer in the transaction of that change
/// ([`IdempotencyRecords::complete`]), so the answer and the effect commit together or not at
/// all. A request refused without a change stores its answer here ([`Self::complete`]); one
/// whose answer is not kept (a 400, a 5xx) releases the key ([`Self::release`]). Both are
/// conditional on the claim's token and on the key still being in progress: once the answer
/// of a committed change is stored, nothing can release or overwrite it.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Atomically claims the key or reports what the earlier request left. Two concurrent
    /// first requests MUST NOT both get `Started`. A claim older than
    /// [`crate::idempotency::IN_PROGRESS_LEASE`] that never completed may be taken over (with
    /// the new request's token).
    async fn start(&self, request: &IdempotencyRequest) -> Result<IdempotencyStart, RepoError>;

    /// Stores the answer of a request that changed nothing (kept at least
    /// [`crate::idempotency::RETENTION`]). `Ok(false)`, with nothing written, when `claim` no
    /// longer holds the key in progress (taken over, released, or already answered).
    ///
    /// MUST wait for a transaction that is completing the same key (it holds the record's
    /// lock) and decide on what that transaction left.
    async fn complete(
        &self,
        claim: &IdempotencyClaim,
        response: &StoredResponse,
        now: OffsetDateTime,
    ) -> Result<bool, RepoError>;

    /// Gives the key back so that a retry runs the request afresh: only while `claim` holds it
    /// in progress (`Ok(false)` otherwise). Same waiting rule as [`Self::complete`], which is
    /// what makes a release after an ambiguous commit safe.
    async fn release(&self, claim: &IdempotencyClaim) -> Result<bool, RepoError>;
}

/// The idempotency records inside a unit of work.
#[async_trait]
pub trait IdempotencyRecords: Send {
    /// Stores the answer of the change this transaction makes. `Ok(false)`, with nothing
    /// written, when `claim` no longer holds the key in progress: the caller MUST then drop the
    /// transaction, because another request owns the key now.
    async fn complete(
        &mut self,
        claim: &IdempotencyClaim,
        response: &StoredResponse,
        now: OffsetDateTime,
    ) -> Result<bool, RepoError>;
}
