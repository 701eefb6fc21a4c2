//! Parameters shared by several operations, described once with the bounds the server checks.
//!
//! These types only describe: the handlers read their parameters strictly with
//! [`crate::extract::QueryParams`] and [`crate::extract::path_id`], and the application checks
//! `Idempotency-Key` ([`domain::idempotency::IdempotencyKey`]). The bounds written here are
//! literals (attributes take no constants); `tests` compares them with the constants the
//! server validates with, so the two cannot drift apart silently.

// Never constructed: the derive reads the field types and attributes, nothing reads the values.
#![allow(dead_code)]

use utoipa::IntoParams;

/// `?limit&cursor` of the cursor-paged histories (`QueryParams::cursor_page`).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CursorQuery {
    /// Items per page.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u32>,
    /// `nextCursor` of the previous page (opaque).
    #[param(min_length = 1)]
    cursor: Option<String>,
}

/// `?page&size&status` of the product list (`products::list`).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductListQuery {
    /// 1-based page number.
    #[param(minimum = 1, maximum = 1_000_000, default = 1)]
    page: Option<u32>,
    /// Items per page.
    #[param(minimum = 1, maximum = 100, default = 20)]
    size: Option<u32>,
    /// Sellers and admins only; buyers and anonymous callers always see `ON_SALE` products.
    status: Option<crate::dto::ProductStatusDto>,
}

/// `?days&limit` of the popular products (`products::popular`).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PopularQuery {
    /// Business days covered, today included.
    #[param(minimum = 1, maximum = 30, default = 3)]
    days: Option<u32>,
    /// Products listed.
    #[param(minimum = 1, maximum = 50, default = 5)]
    limit: Option<u32>,
}

/// The `Idempotency-Key` header of a state-changing `POST`.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyHeader {
    /// 1..255 printable ASCII characters (0x20..0x7E), `IdempotencyKey::new`'s rule. A retry
    /// with the same key and body gets the first answer again (`Idempotent-Replayed: true`)
    /// for 24 hours; the same key with another body is 422 `IDEMPOTENCY_KEY_REUSED`, and while
    /// the first request runs 409 `IDEMPOTENCY_IN_PROGRESS`.
    // A header has a value or is absent: never null.
    #[param(
        rename = "Idempotency-Key",
        nullable = false,
        min_length = 1,
        max_length = 255,
        pattern = "^[ -~]+$"
    )]
    key: Option<String>,
}
