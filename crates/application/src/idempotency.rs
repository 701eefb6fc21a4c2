//! `Idempotency-Key` handling shared by every retry-safe POST.

use crate::{Actor, Shop, ShopError};
use domain::idempotency::{IdempotencyScope, IdempotencyStart, StoredResponse};

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
        todo!("{actor:?} {method} {path} {key} {}", body.len())
    }

    /// Stores the response (any status below 500) or releases the key (5xx: worth retrying).
    pub async fn finish_idempotent(&self, scope: &IdempotencyScope, response: StoredResponse) {
        todo!("{scope:?} {response:?}")
    }
}
