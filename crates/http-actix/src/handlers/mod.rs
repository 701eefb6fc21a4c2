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
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, HttpResponseBuilder};
use application::ShopError;
use serde::Serialize;

pub(crate) type ApiResult = Result<HttpResponse, ApiError>;

pub(crate) fn ok<T: Serialize>(body: T) -> ApiResult {
    json(HttpResponse::Ok(), &body)
}

pub(crate) fn created<T: Serialize>(body: T) -> ApiResult {
    json(HttpResponse::Created(), &body)
}

/// Serializes here rather than with `HttpResponseBuilder::json`, whose failure is a bare 500:
/// a body that cannot be written (a stored instant no RFC 3339 string can express) answers
/// 500 problem+json like every other internal error.
fn json<T: Serialize>(mut builder: HttpResponseBuilder, body: &T) -> ApiResult {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| ShopError::Internal(format!("response body not serializable: {e}")))?;
    Ok(builder.content_type(ContentType::json()).body(bytes))
}
