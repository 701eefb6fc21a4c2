//! The OpenAPI 3.1 document of the API, generated from the handlers' `#[utoipa::path]`
//! annotations and the DTOs' schemas, so that schema-driven tools and generated clients agree
//! with the server on every rule a schema can state.
//!
//! - [`params`]: the parameters several operations share, with the server's bounds.
//! - [`answers`]: what is added to every operation in one place: its problem answers (from
//!   [`ERRORS`]: the stable codes each operation can answer with, grouped by status) and the
//!   headers of every answer (`X-Request-Id`, `Retry-After`, `Idempotent-Replayed`, ...).
//! - `tests`: keep [`ERRORS`] and the registered operations in step, compare the stated bounds
//!   with the constants the server validates with, and check the document's shape mechanically
//!   (unique operationIds, 429 everywhere it can happen, security declared, schemas named).

mod answers;
pub(crate) mod params;
#[cfg(test)]
mod tests;

use crate::error::Problem;
use crate::handlers::{admin, coupons, ops, orders, payments, products, users, wallet};
use answers::Answers;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Shop API",
        description = "Wallet, catalog, first-come coupons, orders and payments. Errors are RFC 9457 \
            problem details (`application/problem+json`) with a stable `code`.",
    ),
    paths(
        users::sign_up, users::me, users::get_user, users::roll_token, users::reissue_token,
        wallet::balance, wallet::charge, wallet::transactions,
        products::list, products::create, products::popular, products::get, products::update,
        products::adjust_stock, products::stock_ledger,
        coupons::create, coupons::list, coupons::mine, coupons::get, coupons::issue,
        orders::place, orders::list, orders::get, orders::cancel,
        payments::pay, payments::get,
        admin::outbox, admin::retry,
        ops::live, ops::ready, ops::metrics,
    ),
    components(schemas(Problem, crate::error::ProblemField)),
    modifiers(&Answers),
    // Relative: the document describes the server that serves it.
    servers((url = "/", description = "The server that serves this document")),
    tags(
        (name = "users", description = "Sign-up, profiles and bearer tokens"),
        (name = "balance", description = "The point wallet: balance, charges, history"),
        (name = "products", description = "The catalog, stock and the popular products"),
        (name = "coupons", description = "First-come coupons: publish, browse, issue, hold"),
        (name = "orders", description = "Placing, reading and canceling orders"),
        (name = "payments", description = "Paying orders from the wallet"),
        (name = "admin", description = "Operator views (ADMIN only)"),
        (name = "operations", description = "Health probes and Prometheus metrics"),
    ),
)]
pub struct ApiDoc;

/// (method, path, codes) of every operation under `/api/v1`. 429 `RATE_LIMITED`, 500
/// `INTERNAL` and 503 `UNAVAILABLE` apply to all of them and are added without being listed
/// (every request can be over its budget: an authenticated one over its user's, any other that
/// carries a token over its client's failed-authentication budget); 408 `REQUEST_TIMEOUT` is
/// listed on the operations that read a JSON body, and the idempotency refusals on those that
/// take an `Idempotency-Key`.
pub(crate) const ERRORS: &[(&str, &str, &[&str])] = &[
    (
        "post",
        "/api/v1/users",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "FORBIDDEN",
            "REQUEST_TIMEOUT",
            "IDEMPOTENCY_IN_PROGRESS",
            "IDEMPOTENCY_KEY_REUSED",
        ],
    ),
    ("get", "/api/v1/users/me", &["UNAUTHENTICATED"]),
    (
        "get",
        "/api/v1/users/{id}",
        &["VALIDATION_FAILED", "UNAUTHENTICATED", "NOT_FOUND"],
    ),
    (
        "post",
        "/api/v1/users/me/token",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "FORBIDDEN",
            "IDEMPOTENCY_IN_PROGRESS",
            "IDEMPOTENCY_KEY_REUSED",
        ],
    ),
    (
        "post",
        "/api/v1/users/{id}/token",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "FORBIDDEN",
            "NOT_FOUND",
            "IDEMPOTENCY_IN_PROGRESS",
            "IDEMPOTENCY_KEY_REUSED",
        ],
    ),
    ("get", "/api/v1/balance", &["UNAUTHENTICATED"]),
    (
        "post",
        "/api/v1/balance/charge",
        &[
            "VALIDATION_FAILED",
            "INVALID_AMOUNT",
            "UNAUTHENTICATED",
            "BALANCE_LIMIT_EXCEEDED",
            "IDEMPOTENCY_IN_PROGRESS",
            "IDEMPOTENCY_KEY_REUSED",
            "REQUEST_TIMEOUT",
        ],
    ),
    (
        "get",
        "/api/v1/balance/transactions",
        &["VALIDATION_FAILED", "UNAUTHENTICATED"],
    ),
    (
        "get",
        "/api/v1/products",
        &["VALIDATION_FAILED", "UNAUTHENTICATED"],
    ),
    (
        "post",
        "/api/v1/products",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "FORBIDDEN",
            "REQUEST_TIMEOUT",
            "IDEMPOTENCY_IN_PROGRESS",
            "IDEMPOTENCY_KEY_REUSED",
        ],
    ),
    (
        "get",
        "/api/v1/products/popular",
        &["VALIDATION_FAILED", "UNAUTHENTICATED"],
    ),
    (
        "get",
        "/api/v1/products/{id}",
        &["VALIDATION_FAILED", "UNAUTHENTICATED", "NOT_FOUND"],
    ),
    (
        "patch",
        "/api/v1/products/{id}",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "FORBIDDEN",
            "NOT_FOUND",
            "REQUEST_TIMEOUT",
        ],
    ),
    (
        "post",
        "/api/v1/products/{id}/stock-adjustments",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "FORBIDDEN",
            "NOT_FOUND",
            "OUT_OF_STOCK",
            "REQUEST_TIMEOUT",
            "IDEMPOTENCY_IN_PROGRESS",
            "IDEMPOTENCY_KEY_REUSED",
        ],
    ),
    (
        "get",
        "/api/v1/products/{id}/stock-ledger",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "FORBIDDEN",
            "NOT_FOUND",
        ],
    ),
    (
        "post",
        "/api/v1/coupons",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "FORBIDDEN",
            "REQUEST_TIMEOUT",
            "IDEMPOTENCY_IN_PROGRESS",
            "IDEMPOTENCY_KEY_REUSED",
        ],
    ),
    (
        "get",
        "/api/v1/coupons",
        &["VALIDATION_FAILED", "UNAUTHENTICATED"],
    ),
    (
        "get",
        "/api/v1/coupons/my",
        &["VALIDATION_FAILED", "UNAUTHENTICATED"],
    ),
    (
        "get",
        "/api/v1/coupons/{id}",
        &["VALIDATION_FAILED", "UNAUTHENTICATED", "NOT_FOUND"],
    ),
    (
        "post",
        "/api/v1/coupons/{id}/issue",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "NOT_FOUND",
            "COUPON_SOLD_OUT",
            "COUPON_ALREADY_ISSUED",
            "COUPON_NOT_ACTIVE",
            "IDEMPOTENCY_IN_PROGRESS",
            "IDEMPOTENCY_KEY_REUSED",
        ],
    ),
    (
        "post",
        "/api/v1/orders",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "NOT_FOUND",
            "OUT_OF_STOCK",
            "PRODUCT_NOT_ON_SALE",
            "COUPON_NOT_APPLICABLE",
            "IDEMPOTENCY_IN_PROGRESS",
            "IDEMPOTENCY_KEY_REUSED",
            "REQUEST_TIMEOUT",
        ],
    ),
    (
        "get",
        "/api/v1/orders",
        &["VALIDATION_FAILED", "UNAUTHENTICATED"],
    ),
    (
        "get",
        "/api/v1/orders/{id}",
        &["VALIDATION_FAILED", "UNAUTHENTICATED", "NOT_FOUND"],
    ),
    (
        "post",
        "/api/v1/orders/{id}/cancel",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "NOT_FOUND",
            "INVALID_ORDER_STATE",
            "IDEMPOTENCY_IN_PROGRESS",
            "IDEMPOTENCY_KEY_REUSED",
        ],
    ),
    (
        "post",
        "/api/v1/payments",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "NOT_FOUND",
            "INSUFFICIENT_BALANCE",
            "ORDER_NOT_PAYABLE",
            "IDEMPOTENCY_IN_PROGRESS",
            "IDEMPOTENCY_KEY_REUSED",
            "REQUEST_TIMEOUT",
        ],
    ),
    (
        "get",
        "/api/v1/payments/{id}",
        &["VALIDATION_FAILED", "UNAUTHENTICATED", "NOT_FOUND"],
    ),
    (
        "get",
        "/api/v1/admin/outbox",
        &["VALIDATION_FAILED", "UNAUTHENTICATED", "FORBIDDEN"],
    ),
    (
        "post",
        "/api/v1/admin/outbox/{id}/retry",
        &[
            "VALIDATION_FAILED",
            "UNAUTHENTICATED",
            "FORBIDDEN",
            "NOT_FOUND",
            "OUTBOX_EVENT_NOT_FAILED",
            "IDEMPOTENCY_IN_PROGRESS",
            "IDEMPOTENCY_KEY_REUSED",
        ],
    ),
];

/// The HTTP status of a stable code (mirrors `ApiError`'s mapping; `tests` checks it does).
pub(crate) fn status_of(code: &str) -> u16 {
    match code {
        "VALIDATION_FAILED" | "INVALID_AMOUNT" => 400,
        "UNAUTHENTICATED" => 401,
        "FORBIDDEN" => 403,
        "NOT_FOUND" => 404,
        "REQUEST_TIMEOUT" => 408,
        "IDEMPOTENCY_KEY_REUSED" => 422,
        "RATE_LIMITED" => 429,
        "INTERNAL" => 500,
        "UNAVAILABLE" => 503,
        _ => 409,
    }
}
