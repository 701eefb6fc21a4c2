//! `Idempotency-Key` handling shared by every retry-safe POST.

use crate::support::sha256_hex;
use crate::{Actor, Shop, ShopError};
use domain::idempotency::{
    IdempotencyKey, IdempotencyRequest, IdempotencyScope, IdempotencyStart, StoredResponse,
};

/// Responses that are not kept for replay: a 400 (API.md: requests that fail validation are
/// not stored, so the client may fix the body and reuse the key) and every 5xx (nothing
/// happened that a retry should not redo).
fn worth_replaying(status: u16) -> bool {
    status != 400 && status < 500
}

impl Shop {
    /// Claims the key for this request body. Returns `Started` or `Replay`; maps `InProgress`
    /// and `Mismatch` to their errors. Invalid keys are `Validation` (field `Idempotency-Key`).
    pub async fn begin_idempotent(
        &self,
        actor: Actor,
        method: &str,
        path: &str,
        key: &str,
        body: &[u8],
    ) -> Result<(IdempotencyScope, IdempotencyStart), ShopError> {
        let key = IdempotencyKey::new(key)
            .map_err(|e| ShopError::validation("Idempotency-Key", &e.to_string()))?;
        let scope = IdempotencyScope {
            user_id: actor.user_id,
            method: method.to_ascii_uppercase(),
            path: path.to_owned(),
            key,
        };
        let request = IdempotencyRequest {
            scope: scope.clone(),
            fingerprint: sha256_hex(body),
            now: self.now(),
        };
        match self.ports.idempotency.start(&request).await? {
            IdempotencyStart::InProgress => Err(ShopError::IdempotencyInProgress),
            IdempotencyStart::Mismatch => Err(ShopError::IdempotencyKeyReused),
            started @ (IdempotencyStart::Started | IdempotencyStart::Replay(_)) => {
                Ok((scope, started))
            }
        }
    }

    /// Stores the response (any status below 500 except 400) or releases the key (5xx: worth
    /// retrying; 400: not stored per API.md). Never fails the request: the response is already
    /// decided, and a lost record only means a retry runs the request again after the lease.
    /// Releases a claimed key whose request never produced an answer (client gone, body lost):
    /// the client's retry runs instead of waiting for the lease to end.
    pub async fn abandon_idempotent(&self, scope: &IdempotencyScope) {
        if let Err(e) = self.ports.idempotency.abandon(scope).await {
            tracing::warn!(
                user = %scope.user_id, path = %scope.path, error = %e,
                "could not release an idempotency key; it expires with its lease"
            );
        }
    }

    pub async fn finish_idempotent(&self, scope: &IdempotencyScope, response: StoredResponse) {
        let store = &self.ports.idempotency;
        let result = if worth_replaying(response.status) {
            store.complete(scope, &response, self.now()).await
        } else {
            store.abandon(scope).await
        };
        if let Err(e) = result {
            tracing::error!(
                user = %scope.user_id, path = %scope.path, status = response.status, error = %e,
                "could not finish an idempotency record"
            );
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
