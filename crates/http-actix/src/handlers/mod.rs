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
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use application::idempotency::Render;
use serde::Serialize;
use std::sync::Arc;

pub(crate) type ApiResult = Result<HttpResponse, ApiError>;

pub(crate) fn ok<T: Serialize>(body: T) -> ApiResult {
    Ok(HttpResponse::Ok().json(body))
}

/// How a change's result is answered: `to_dto` of it, as JSON with `status`.
pub(crate) fn answer<T, D: Serialize>(
    status: StatusCode,
    to_dto: impl Fn(&T) -> D + Send + Sync + 'static,
) -> Render<T> {
    Arc::new(move |value| crate::idempotency::json_answer(status, &to_dto(value)))
}
