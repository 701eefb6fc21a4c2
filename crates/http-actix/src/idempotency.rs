//! `Idempotency-Key` for the retry-safe POSTs, as one wrapper around a handler's work.
//!
//! With a key: claim it for (user, method, path) and the raw request body; a finished earlier
//! request is replayed byte for byte (status, content type, body); otherwise run the work,
//! capture the response bytes and store them. Nothing is stored for a 400 (the request was
//! invalid, so a corrected retry with the same key must run) nor for a 5xx (worth retrying);
//! a request abandoned mid-way (client gone) releases its key too.

use crate::error::ApiError;
use crate::extract::state;
use actix_web::body::{self, BoxBody};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use application::{Actor, Shop};
use domain::idempotency::{IdempotencyScope, IdempotencyStart, StoredResponse};
use std::future::Future;

pub const HEADER: &str = "Idempotency-Key";
/// Set on a replayed answer.
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";

/// Runs `work` under the request's `Idempotency-Key`, if it has one.
pub async fn idempotent<F, Fut>(
    req: &HttpRequest,
    actor: Actor,
    body: &[u8],
    work: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<HttpResponse, ApiError>>,
{
    let Some(raw_key) = req.headers().get(HEADER) else {
        return work().await;
    };
    let key = raw_key
        .to_str()
        .map_err(|_| ApiError::field(HEADER, "must be 1 to 255 printable ASCII characters"))?;
    let shop = state(req)?.shop.clone();
    let (scope, start) = shop
        .begin_idempotent(actor, req.method().as_str(), req.path(), key, body)
        .await?;
    match start {
        IdempotencyStart::Started => {}
        IdempotencyStart::Replay(stored) => return Ok(replay(stored)),
        IdempotencyStart::InProgress => {
            return Err(application::ShopError::IdempotencyInProgress.into());
        }
        IdempotencyStart::Mismatch => {
            return Err(application::ShopError::IdempotencyKeyReused.into());
        }
    }

    let mut claim = Claim {
        shop: Some(shop),
        scope: Some(scope),
    };
    let response = match work().await {
        Ok(response) => response,
        Err(error) => error.error_response(),
    };
    let (response, body) = response.into_parts();
    let bytes = match body::to_bytes(body).await {
        Ok(bytes) => bytes,
        Err(_) => {
            claim.release().await;
            return Err(application::ShopError::Internal(
                "could not buffer a response body".into(),
            )
            .into());
        }
    };
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    // The application decides what is worth replaying (not a 400, not a 5xx).
    claim
        .complete(StoredResponse {
            status: status.as_u16(),
            content_type,
            body: bytes.to_vec(),
        })
        .await;
    Ok(response.set_body(BoxBody::new(bytes)))
}

fn replay(stored: StoredResponse) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    if let Ok(ct) = HeaderValue::from_str(&stored.content_type) {
        response.insert_header((header::CONTENT_TYPE, ct));
    }
    response.insert_header((REPLAYED_HEADER, "true"));
    response.body(stored.body)
}

/// A claimed key: completed, released, or (if the request future is dropped before either)
/// released in the background so that the client's retry is not blocked until the lease ends.
struct Claim {
    shop: Option<Shop>,
    scope: Option<IdempotencyScope>,
}

impl Claim {
    async fn complete(&mut self, response: StoredResponse) {
        if let (Some(shop), Some(scope)) = (self.shop.take(), self.scope.take()) {
            shop.finish_idempotent(&scope, response).await;
        }
    }

    async fn release(&mut self) {
        if let (Some(shop), Some(scope)) = (self.shop.take(), self.scope.take()) {
            release(shop, scope).await;
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let (Some(shop), Some(scope)) = (self.shop.take(), self.scope.take()) {
            // The request future was dropped (client gone, server stopping): give the key back
            // in the background if a runtime is still there; otherwise the lease expires it.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(release(shop, scope));
            }
        }
    }
}

/// Gives the key back so that the client's retry runs instead of waiting for the lease.
async fn release(shop: Shop, scope: IdempotencyScope) {
    shop.abandon_idempotent(&scope).await;
}
