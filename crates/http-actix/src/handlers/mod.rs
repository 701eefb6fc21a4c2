//! Request handlers, one module per area of API.md. Each handler authenticates, reads and
//! validates its input, calls one [`application::Shop`] method and maps the result to a DTO;
//! every error leaves through [`crate::ApiError`].

pub mod admin;
pub mod coupons;
pub mod ops;
pub mod orders;
pub mod payments;
pub mod products;
pub mod users;
pub mod wallet;

use crate::error::ApiError;
use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, HttpResponseBuilder};
use application::ShopError;
use application::idempotency::Render;
use serde::Serialize;
use std::sync::Arc;

pub(crate) type ApiResult = Result<HttpResponse, ApiError>;

pub(crate) fn ok<T: Serialize>(body: T) -> ApiResult {
    json(HttpResponse::Ok(), &body)
}

/// How a change's result is answered: `to_dto` of it, as JSON with `status`.
pub(crate) fn answer<T, D: Serialize>(
    status: StatusCode,
    to_dto: impl Fn(&T) -> D + Send + Sync + 'static,
) -> Render<T> {
    Arc::new(move |value| crate::idempotency::json_answer(status, &to_dto(value)))
}

/// Serializes here rather than with `HttpResponseBuilder::json`, whose failure is a bare 500:
/// a body that cannot be written (a stored instant no RFC 3339 string can express) answers
/// 500 problem+json like every other internal error.
fn json<T: Serialize>(mut builder: HttpResponseBuilder, body: &T) -> ApiResult {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| ShopError::Internal(format!("response body not serializable: {e}")))?;
    Ok(builder.content_type(ContentType::json()).body(bytes))
}
