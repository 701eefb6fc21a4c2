//! The one place where errors become HTTP answers: RFC 9457 problem details.
//!
//! Every refusal of the API, whether it comes from a use case ([`ShopError`]) or from this
//! adapter (bad JSON, unknown route, wrong method), goes through [`ApiError`]'s
//! [`ResponseError`] implementation, so the status, the stable `code`, the `type` URI and the
//! headers (`WWW-Authenticate`, `Retry-After`, `Allow`) are decided here and nowhere else.
//! Internal and unavailable errors are logged (inside the request's span, which carries the
//! request id) and answered with a generic detail: nothing internal reaches the client.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use application::ShopError;
use domain::product::FieldError;
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";
const TYPE_BASE: &str = "https://errors.shop.dev/";

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// A use-case refusal, or a validation error raised by this adapter (`ShopError::Validation`
    /// and `ShopError::InvalidAmount` are reused for malformed requests).
    Shop(ShopError),
    /// No route matches the path.
    RouteNotFound,
    /// The path exists but not with this method; `allow` lists the methods it has.
    MethodNotAllowed { allow: &'static str },
    /// Too many requests; the client may retry after `retry_after_secs`.
    RateLimited { retry_after_secs: u64 },
    /// The request body did not arrive within the body timeout (`BODY_TIMEOUT_MS`). The
    /// connection is closed after this answer: the rest of the body may still be on its way.
    RequestTimeout,
}

impl ApiError {
    /// A `VALIDATION_FAILED` error about one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Shop(ShopError::Validation(vec![FieldError::new(field, message)]))
    }

    pub fn unauthenticated() -> Self {
        Self::Shop(ShopError::Unauthenticated)
    }

    /// The stable code of API.md.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Shop(e) => e.code(),
            Self::RouteNotFound => "NOT_FOUND",
            Self::MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::RequestTimeout => "REQUEST_TIMEOUT",
        }
    }

    /// The problem document this error answers with.
    pub fn problem(&self) -> Problem {
        let status = self.status_code();
        let code = self.code();
        let (detail, errors) = match self {
            Self::Shop(ShopError::Validation(fields)) => (
                "the request is not valid: see errors".to_owned(),
                fields
                    .iter()
                    .map(|f| ProblemField {
                        field: f.field.clone(),
                        message: f.message.clone(),
                    })
                    .collect(),
            ),
            Self::Shop(ShopError::Internal(_)) => (
                "an internal error occurred; quote the X-Request-Id header when reporting it"
                    .to_owned(),
                Vec::new(),
            ),
            Self::Shop(ShopError::Unavailable(_)) => (
                "a dependency needed for a correct answer is unavailable; retry later".to_owned(),
                Vec::new(),
            ),
            Self::Shop(other) => (other.to_string(), Vec::new()),
            Self::RouteNotFound => ("no such resource".to_owned(), Vec::new()),
            Self::MethodNotAllowed { allow } => {
                (format!("this resource supports only {allow}"), Vec::new())
            }
            Self::RateLimited { retry_after_secs } => (
                format!("too many requests; retry after {retry_after_secs} seconds"),
                Vec::new(),
            ),
            Self::RequestTimeout => (
                "the request body did not arrive in time".to_owned(),
                Vec::new(),
            ),
        };
        Problem {
            r#type: format!("{TYPE_BASE}{}", code.to_ascii_lowercase().replace('_', "-")),
            title: title(code).to_owned(),
            status: status.as_u16(),
            code: code.to_owned(),
            detail,
            errors,
        }
    }
}

impl From<ShopError> for ApiError {
    fn from(e: ShopError) -> Self {
        Self::Shop(e)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Shop(e) => write!(f, "{}: {e}", e.code()),
            other => f.write_str(other.code()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        let Self::Shop(e) = self else {
            return match self {
                Self::RouteNotFound => StatusCode::NOT_FOUND,
                Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
                Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
                _ => StatusCode::TOO_MANY_REQUESTS,
            };
        };
        match e {
            ShopError::Validation(_) | ShopError::InvalidAmount(_) => StatusCode::BAD_REQUEST,
            ShopError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ShopError::Forbidden(_) => StatusCode::FORBIDDEN,
            ShopError::NotFound(_) => StatusCode::NOT_FOUND,
            ShopError::BalanceLimitExceeded(_)
            | ShopError::InsufficientBalance(_)
            | ShopError::OutOfStock(_)
            | ShopError::ProductNotOnSale(_)
            | ShopError::CouponSoldOut(_)
            | ShopError::CouponAlreadyIssued(_)
            | ShopError::CouponNotActive(_)
            | ShopError::CouponNotApplicable(_)
            | ShopError::OrderNotPayable(_)
            | ShopError::InvalidOrderState(_)
            | ShopError::OutboxEventNotFailed(_)
            | ShopError::IdempotencyInProgress => StatusCode::CONFLICT,
            ShopError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ShopError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ShopError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        // This runs inside the request's span: the log line carries the request id.
        match self {
            Self::Shop(ShopError::Internal(message)) => {
                tracing::error!(error = %message, "internal error");
            }
            Self::Shop(ShopError::Unavailable(message)) => {
                tracing::warn!(error = %message, "dependency unavailable");
            }
            _ => {}
        }
        let problem = self.problem();
        let mut response = HttpResponse::build(self.status_code());
        response.content_type(PROBLEM_JSON);
        match self {
            Self::Shop(ShopError::Unauthenticated) => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            Self::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
            }
            Self::RateLimited { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            Self::Shop(ShopError::Unavailable(_)) => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            Self::RequestTimeout => {
                response.force_close();
            }
            _ => {}
        }
        // Serializing plain strings and numbers cannot fail; the fallback keeps it total.
        let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
        response.body(body)
    }
}

fn title(code: &str) -> &'static str {
    match code {
        "VALIDATION_FAILED" => "Validation failed",
        "INVALID_AMOUNT" => "Invalid amount",
        "UNAUTHENTICATED" => "Unauthenticated",
        "FORBIDDEN" => "Forbidden",
        "NOT_FOUND" => "Not found",
        "METHOD_NOT_ALLOWED" => "Method not allowed",
        "BALANCE_LIMIT_EXCEEDED" => "Balance limit exceeded",
        "INSUFFICIENT_BALANCE" => "Insufficient balance",
        "OUT_OF_STOCK" => "Out of stock",
        "PRODUCT_NOT_ON_SALE" => "Product not on sale",
        "COUPON_SOLD_OUT" => "Coupon sold out",
        "COUPON_ALREADY_ISSUED" => "Coupon already issued",
        "COUPON_NOT_ACTIVE" => "Coupon not active",
        "COUPON_NOT_APPLICABLE" => "Coupon not applicable",
        "ORDER_NOT_PAYABLE" => "Order not payable",
        "INVALID_ORDER_STATE" => "Invalid order state",
        "OUTBOX_EVENT_NOT_FAILED" => "Outbox event not failed",
        "REQUEST_TIMEOUT" => "Request timeout",
        "IDEMPOTENCY_IN_PROGRESS" => "Idempotency key in progress",
        "IDEMPOTENCY_KEY_REUSED" => "Idempotency key reused",
        "RATE_LIMITED" => "Rate limited",
        "UNAVAILABLE" => "Service unavailable",
        _ => "Internal error",
    }
}

/// An RFC 9457 problem document (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({"type":"https://errors.shop.dev/out-of-stock","title":"Out of stock",
    "status":409,"code":"OUT_OF_STOCK","detail":"product 7 has 2 left, 5 requested"}))]
pub struct Problem {
    /// `https://errors.shop.dev/<kebab-case code>`.
    #[serde(rename = "type")]
    pub r#type: String,
    pub title: String,
    pub status: u16,
    /// One of the stable codes of the API (`OUT_OF_STOCK`, `VALIDATION_FAILED`, ...).
    pub code: String,
    pub detail: String,
    /// Present on `VALIDATION_FAILED`: which fields are wrong and why (absent otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub errors: Vec<ProblemField>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProblemField {
    /// A JSON path into the request body (`items[0].quantity`), a query parameter or a header.
    pub field: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_of(e: &ApiError) -> serde_json::Value {
        let bytes = e.error_response().into_body().try_into_bytes().unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn every_shop_error_has_its_status_and_kebab_type() {
        let cases = [
            (
                ShopError::validation("name", "bad"),
                400,
                "validation-failed",
            ),
            (ShopError::InvalidAmount("x".into()), 400, "invalid-amount"),
            (ShopError::Unauthenticated, 401, "unauthenticated"),
            (ShopError::Forbidden("x".into()), 403, "forbidden"),
            (ShopError::NotFound("x".into()), 404, "not-found"),
            (
                ShopError::BalanceLimitExceeded("x".into()),
                409,
                "balance-limit-exceeded",
            ),
            (
                ShopError::InsufficientBalance("x".into()),
                409,
                "insufficient-balance",
            ),
            (ShopError::OutOfStock("x".into()), 409, "out-of-stock"),
            (
                ShopError::ProductNotOnSale("x".into()),
                409,
                "product-not-on-sale",
            ),
            (ShopError::CouponSoldOut("x".into()), 409, "coupon-sold-out"),
            (
                ShopError::CouponAlreadyIssued("x".into()),
                409,
                "coupon-already-issued",
            ),
            (
                ShopError::CouponNotActive("x".into()),
                409,
                "coupon-not-active",
            ),
            (
                ShopError::CouponNotApplicable("x".into()),
                409,
                "coupon-not-applicable",
            ),
            (
                ShopError::OrderNotPayable("x".into()),
                409,
                "order-not-payable",
            ),
            (
                ShopError::InvalidOrderState("x".into()),
                409,
                "invalid-order-state",
            ),
            (
                ShopError::OutboxEventNotFailed("x".into()),
                409,
                "outbox-event-not-failed",
            ),
            (
                ShopError::IdempotencyInProgress,
                409,
                "idempotency-in-progress",
            ),
            (
                ShopError::IdempotencyKeyReused,
                422,
                "idempotency-key-reused",
            ),
            (ShopError::Unavailable("db".into()), 503, "unavailable"),
            (ShopError::Internal("boom".into()), 500, "internal"),
        ];
        for (error, status, kebab) in cases {
            let api = ApiError::from(error.clone());
            let response = api.error_response();
            assert_eq!(response.status().as_u16(), status, "{error:?}");
            assert_eq!(
                response.headers().get(header::CONTENT_TYPE).unwrap(),
                PROBLEM_JSON
            );
            let body = body_of(&api);
            assert_eq!(body["type"], format!("https://errors.shop.dev/{kebab}"));
            assert_eq!(body["code"], error.code());
            assert_eq!(body["status"], status);
            assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
        }
    }

    #[test]
    fn internals_never_leak() {
        let body = body_of(&ShopError::Internal("SELECT * FROM secret".into()).into());
        assert!(!body.to_string().contains("SELECT"));
        let body = body_of(&ShopError::Unavailable("pg at 10.0.0.1 refused".into()).into());
        assert!(!body.to_string().contains("10.0.0.1"));
    }

    #[test]
    fn headers_for_401_429_405() {
        let r = ApiError::unauthenticated().error_response();
        assert_eq!(r.headers().get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
        let r = ApiError::RateLimited {
            retry_after_secs: 3,
        }
        .error_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers().get(header::RETRY_AFTER).unwrap(), "3");
        let r = ApiError::MethodNotAllowed { allow: "GET" }.error_response();
        assert_eq!(r.headers().get(header::ALLOW).unwrap(), "GET");
        let r = ApiError::RequestTimeout.error_response();
        assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(
            body_of(&ApiError::RequestTimeout)["code"],
            "REQUEST_TIMEOUT"
        );
    }

    #[test]
    fn validation_lists_fields() {
        let body = body_of(&ApiError::field("items[0].quantity", "must be at least 1"));
        assert_eq!(body["errors"][0]["field"], "items[0].quantity");
        assert_eq!(body["errors"][0]["message"], "must be at least 1");
    }
}
