//! The one error type of the use cases.
//!
//! Policy: every variant is one stable code of API.md (the HTTP adapter maps each to its status
//! in one place). Business refusals carry a human `detail` safe to show to the client; store
//! and infrastructure failures become `Unavailable` (retry later) or `Internal` (a bug), whose
//! text is logged, never sent.

use domain::ports::{GateError, RepoError};
use domain::product::FieldError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShopError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    InvalidAmount(String),
    #[error("missing or invalid bearer token")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BalanceLimitExceeded(String),
    #[error("{0}")]
    InsufficientBalance(String),
    #[error("{0}")]
    OutOfStock(String),
    #[error("{0}")]
    ProductNotOnSale(String),
    #[error("{0}")]
    CouponSoldOut(String),
    #[error("{0}")]
    CouponAlreadyIssued(String),
    #[error("{0}")]
    CouponNotActive(String),
    #[error("{0}")]
    CouponNotApplicable(String),
    #[error("{0}")]
    OrderNotPayable(String),
    #[error("{0}")]
    InvalidOrderState(String),
    /// Only a FAILED outbox event can be re-driven; this one is READY or SENT.
    #[error("{0}")]
    OutboxEventNotFailed(String),
    #[error("a request with this Idempotency-Key is still running")]
    IdempotencyInProgress,
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    /// A dependency needed for a correct answer is down (fail closed).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or broken invariant; the text is for logs only.
    #[error("internal: {0}")]
    Internal(String),
}

impl ShopError {
    pub fn validation(field: &str, message: &str) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn not_found(what: &str, id: impl std::fmt::Display) -> Self {
        Self::NotFound(format!("{what} {id} not found"))
    }

    /// The stable code of API.md.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "VALIDATION_FAILED",
            Self::InvalidAmount(_) => "INVALID_AMOUNT",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::BalanceLimitExceeded(_) => "BALANCE_LIMIT_EXCEEDED",
            Self::InsufficientBalance(_) => "INSUFFICIENT_BALANCE",
            Self::OutOfStock(_) => "OUT_OF_STOCK",
            Self::ProductNotOnSale(_) => "PRODUCT_NOT_ON_SALE",
            Self::CouponSoldOut(_) => "COUPON_SOLD_OUT",
            Self::CouponAlreadyIssued(_) => "COUPON_ALREADY_ISSUED",
            Self::CouponNotActive(_) => "COUPON_NOT_ACTIVE",
            Self::CouponNotApplicable(_) => "COUPON_NOT_APPLICABLE",
            Self::OrderNotPayable(_) => "ORDER_NOT_PAYABLE",
            Self::InvalidOrderState(_) => "INVALID_ORDER_STATE",
            Self::OutboxEventNotFailed(_) => "OUTBOX_EVENT_NOT_FAILED",
            Self::IdempotencyInProgress => "IDEMPOTENCY_IN_PROGRESS",
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::Unavailable(_) => "UNAVAILABLE",
            Self::Internal(_) => "INTERNAL",
        }
    }
}

impl From<RepoError> for ShopError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Unavailable(m) => Self::Unavailable(m),
            // Use cases retry conflicts themselves; one that escapes means the store stayed
            // contended: the client may retry.
            RepoError::Conflict(m) => Self::Unavailable(format!("contention: {m}")),
            RepoError::Internal(m) => Self::Internal(m),
        }
    }
}

impl From<GateError> for ShopError {
    fn from(e: GateError) -> Self {
        match e {
            GateError::Unavailable(m) => Self::Unavailable(m),
        }
    }
}
