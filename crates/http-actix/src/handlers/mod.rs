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
use serde::Serialize;

pub(crate) type ApiResult = Result<HttpResponse, ApiError>;

pub(crate) fn ok<T: Serialize>(body: T) -> ApiResult {
    Ok(HttpResponse::Ok().json(body))
}

pub(crate) fn created<T: Serialize>(body: T) -> ApiResult {
    Ok(HttpResponse::Created().json(body))
}
