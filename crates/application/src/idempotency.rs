//! `Idempotency-Key` handling shared by every state-changing POST.
//!
//! The guarantee: a key has at most one effect, and once a request's change may have
//! committed, a retry gets its answer (or `IDEMPOTENCY_IN_PROGRESS` while that is unknown),
//! never a second change. How:
//! 1. [`Shop::begin_idempotent`] claims the key with a random token, in its own statement, so a
//!    concurrent retry sees it at once.
//! 2. The use case receives a [`Keyed`] and stores the answer in the transaction of its change
//!    ([`record_answer`], right before commit): the answer and the change commit together or
//!    not at all. If the claim was taken over meanwhile, the transaction is dropped.
//! 3. [`Shop::finish_idempotent`] handles every other outcome: a refusal's answer is stored,
//!    an answer not worth keeping releases the key. Both are conditional on the token and on
//!    the key still being in progress, so after a committed change (whose transaction stored
//!    the answer) they change nothing, even when the client only saw an error.

use crate::support::{AttemptError, sha256_hex};
use crate::{Actor, Shop, ShopError};
use domain::idempotency::{
    ClaimToken, IdempotencyClaim, IdempotencyKey, IdempotencyRequest, IdempotencyScope,
    IdempotencyStart, StoredResponse,
};
use domain::ports::Transaction;
use std::sync::Arc;

/// Turns a use case's result into the bytes the client receives (the HTTP adapter's DTO and
/// status), so that the answer can be stored before the change commits.
pub type Render<T> = Arc<dyn Fn(&T) -> StoredResponse + Send + Sync>;

/// A request running under a claimed key: the claim, and how to render its answer.
pub struct Keyed<T> {
    claim: IdempotencyClaim,
    render: Render<T>,
}

impl<T> Clone for Keyed<T> {
    fn clone(&self) -> Self {
        Self {
            claim: self.claim.clone(),
            render: self.render.clone(),
        }
    }
}

impl<T> Keyed<T> {
    pub fn new(claim: IdempotencyClaim, render: Render<T>) -> Self {
        Self { claim, render }
    }

    pub fn claim(&self) -> &IdempotencyClaim {
        &self.claim
    }

    /// The answer to `value`, byte for byte as it is stored and sent.
    pub fn answer(&self, value: &T) -> StoredResponse {
        (self.render)(value)
    }
}

/// Stores the answer to `value` in `tx`, the transaction of the change it answers. Call it
/// right before `commit`. Without a key it does nothing.
///
/// # Errors
/// `IdempotencyInProgress` when the claim no longer holds the key (its lease ran out and a
/// retry took it over): the caller must drop `tx`, so that only the new owner's change counts.
pub(crate) async fn record_answer<T>(
    tx: &mut dyn Transaction,
    keyed: Option<&Keyed<T>>,
    value: &T,
    now: time::OffsetDateTime,
) -> Result<(), AttemptError> {
    let Some(keyed) = keyed else {
        return Ok(());
    };
    let stored = tx
        .idempotency()
        .complete(&keyed.claim, &keyed.answer(value), now)
        .await?;
    if stored {
        Ok(())
    } else {
        tracing::warn!(
            path = %keyed.claim.scope.path,
            "idempotency claim lost before commit (lease taken over); change dropped"
        );
        Err(ShopError::IdempotencyInProgress.into())
    }
}

/// Responses that are not kept for replay: a 400 (API.md: requests that fail validation are
/// not stored, so the client may fix the body and reuse the key) and every 5xx (nothing
/// happened that a retry should not redo: a change that did commit stored its own answer).
fn worth_replaying(status: u16) -> bool {
    status != 400 && status < 500
}

impl Shop {
    /// Claims the key of a request to `route` (the matched route with its parameters, so that
    /// two spellings of one path are one scope) with this body. Returns `Started` with the
    /// claim, or `Replay`; `InProgress` and `Mismatch` become their errors. An invalid key is
    /// `Validation` (field `Idempotency-Key`).
    pub async fn begin_idempotent(
        &self,
        actor: Actor,
        method: &str,
        route: &str,
        key: &str,
        body: &[u8],
    ) -> Result<IdempotencyStart, ShopError> {
        let key = IdempotencyKey::new(key)
            .map_err(|e| ShopError::validation("Idempotency-Key", &e.to_string()))?;
        let request = IdempotencyRequest {
            scope: IdempotencyScope {
                user_id: actor.user_id,
                method: method.to_ascii_uppercase(),
                path: route.to_owned(),
                key,
            },
            token: ClaimToken(rand::random()),
            fingerprint: sha256_hex(body),
            now: self.now(),
        };
        match self.ports.idempotency.start(&request).await? {
            IdempotencyStart::InProgress => Err(ShopError::IdempotencyInProgress),
            IdempotencyStart::Mismatch => Err(ShopError::IdempotencyKeyReused),
            started @ (IdempotencyStart::Started(_) | IdempotencyStart::Replay(_)) => Ok(started),
        }
    }

    /// Ends a claim after its request produced `response`: stores it (any status below 500
    /// except 400) or releases the key. Both only while the claim still holds the key in
    /// progress, so the answer a committed change stored in its own transaction is never
    /// replaced or released. Never fails the request: the response is already decided; if this
    /// step is lost, the key stays in progress until its lease ends, and a retry then runs
    /// afresh, which is safe because nothing was committed under it.
    pub async fn finish_idempotent(&self, claim: &IdempotencyClaim, response: &StoredResponse) {
        let store = &self.ports.idempotency;
        let (step, result) = if worth_replaying(response.status) {
            ("store", store.complete(claim, response, self.now()).await)
        } else {
            ("release", store.release(claim).await)
        };
        match result {
            Ok(true) => {}
            Ok(false) => tracing::debug!(
                path = %claim.scope.path, step,
                "idempotency key already answered or taken over; left as it is"
            ),
            Err(e) => tracing::error!(
                user = %claim.scope.user_id, path = %claim.scope.path, status = response.status,
                step, error = %e, "could not finish an idempotency record; it ends with its lease"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_final_non_validation_answers_are_replayed() {
        assert!(worth_replaying(200) && worth_replaying(201) && worth_replaying(409));
        assert!(worth_replaying(404) && worth_replaying(422));
        assert!(!worth_replaying(400) && !worth_replaying(500) && !worth_replaying(503));
    }
}
