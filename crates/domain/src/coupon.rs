//! First-come coupons (seed 002, 2-1): a coupon is a discount policy with a quantity cap; an
//! issue is one copy of it in one user's hands.
//!
//! Invariants: at most `total_quantity` issues ever exist for a coupon and no user holds more
//! than `per_user_limit` of them, whatever the burst. The first-come gate answers quickly, the
//! store's conditional counter is the source of truth.

use crate::product::FieldError;
use crate::{CouponId, CouponIssueId, OrderId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub const MAX_TOTAL_QUANTITY: i64 = 100_000_000;
pub const MAX_PER_USER_LIMIT: i64 = 1_000;
pub const MAX_DISCOUNT_AMOUNT: i64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiscountType {
    Amount,
    Percent,
}

impl DiscountType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Amount => "AMOUNT",
            Self::Percent => "PERCENT",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "AMOUNT" => Some(Self::Amount),
            "PERCENT" => Some(Self::Percent),
            _ => None,
        }
    }
}

/// How much a coupon takes off the eligible subtotal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discount {
    /// A fixed number of won, never more than the eligible subtotal.
    Amount(i64),
    /// `percent` (1..=100) of the eligible subtotal, rounded down, optionally capped.
    Percent {
        percent: i64,
        max_discount: Option<i64>,
    },
}

impl Discount {
    pub fn kind(self) -> DiscountType {
        match self {
            Self::Amount(_) => DiscountType::Amount,
            Self::Percent { .. } => DiscountType::Percent,
        }
    }

    /// The discount on `eligible` won. Never negative, never more than `eligible`.
    pub fn apply_to(self, eligible: i64) -> i64 {
        let eligible = eligible.max(0);
        match self {
            Self::Amount(amount) => amount.min(eligible),
            Self::Percent {
                percent,
                max_discount,
            } => {
                // i128: eligible can be up to 5e13 and percent up to 100, far from overflow,
                // but the widening keeps the arithmetic obviously safe.
                let raw = (i128::from(eligible) * i128::from(percent) / 100) as i64;
                let capped = max_discount.map_or(raw, |cap| raw.min(cap));
                capped.clamp(0, eligible)
            }
        }
    }
}

/// Which order items a coupon discounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CouponScope {
    /// A seller's coupon: only that seller's items.
    Seller(UserId),
    /// An admin's coupon: the whole order.
    Store,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    pub id: CouponId,
    /// The user who published it (a seller, or an admin for a store-wide coupon).
    pub seller_id: UserId,
    pub scope: CouponScope,
    pub name: String,
    pub discount: Discount,
    pub min_order_amount: i64,
    pub total_quantity: i64,
    pub issued_quantity: i64,
    pub per_user_limit: i64,
    pub starts_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
}

/// Why a coupon cannot be issued right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("coupon is not active yet")]
    NotStarted,
    #[error("coupon has expired")]
    Expired,
}

impl Coupon {
    pub fn remaining_quantity(&self) -> i64 {
        self.total_quantity
            .saturating_sub(self.issued_quantity)
            .max(0)
    }

    /// The validity window is `[starts_at, expires_at)`.
    pub fn check_window(&self, now: OffsetDateTime) -> Result<(), WindowError> {
        if now < self.starts_at {
            Err(WindowError::NotStarted)
        } else if now >= self.expires_at {
            Err(WindowError::Expired)
        } else {
            Ok(())
        }
    }

    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.check_window(now).is_ok()
    }

    /// Whether this coupon discounts an item sold by `seller`.
    pub fn covers_seller(&self, seller: UserId) -> bool {
        match self.scope {
            CouponScope::Store => true,
            CouponScope::Seller(owner) => owner == seller,
        }
    }
}

/// The raw fields of a coupon-creation request, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponDraft {
    pub name: String,
    pub discount_type: DiscountType,
    pub amount: Option<i64>,
    pub percent: Option<i64>,
    pub max_discount: Option<i64>,
    pub min_order_amount: Option<i64>,
    pub total_quantity: i64,
    pub per_user_limit: Option<i64>,
    pub starts_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// A validated coupon, ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCoupon {
    pub seller_id: UserId,
    pub scope: CouponScope,
    pub name: String,
    pub discount: Discount,
    pub min_order_amount: i64,
    pub total_quantity: i64,
    pub per_user_limit: i64,
    pub starts_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
}

impl NewCoupon {
    /// `is_admin`: an admin's coupon is store-wide, a seller's covers that seller's items.
    pub fn new(
        seller_id: UserId,
        is_admin: bool,
        draft: CouponDraft,
        now: OffsetDateTime,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = draft.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            errors.push(FieldError::new("name", "must be 1 to 100 characters"));
        } else if let Err(e) = crate::text::check_printable("name", name) {
            errors.push(e);
        }
        let discount = match draft.discount_type {
            DiscountType::Amount => {
                if draft.percent.is_some() {
                    errors.push(FieldError::new("percent", "only for PERCENT coupons"));
                }
                if draft.max_discount.is_some() {
                    errors.push(FieldError::new("maxDiscount", "only for PERCENT coupons"));
                }
                match draft.amount {
                    Some(a) if (1..=MAX_DISCOUNT_AMOUNT).contains(&a) => Some(Discount::Amount(a)),
                    Some(_) => {
                        errors.push(FieldError::new(
                            "amount",
                            format!("must be between 1 and {MAX_DISCOUNT_AMOUNT}"),
                        ));
                        None
                    }
                    None => {
                        errors.push(FieldError::new("amount", "is required for AMOUNT coupons"));
                        None
                    }
                }
            }
            DiscountType::Percent => {
                if draft.amount.is_some() {
                    errors.push(FieldError::new("amount", "only for AMOUNT coupons"));
                }
                if let Some(cap) = draft.max_discount
                    && !(1..=MAX_DISCOUNT_AMOUNT).contains(&cap)
                {
                    errors.push(FieldError::new(
                        "maxDiscount",
                        format!("must be between 1 and {MAX_DISCOUNT_AMOUNT}"),
                    ));
                }
                match draft.percent {
                    Some(p) if (1..=100).contains(&p) => Some(Discount::Percent {
                        percent: p,
                        max_discount: draft.max_discount,
                    }),
                    Some(_) => {
                        errors.push(FieldError::new("percent", "must be between 1 and 100"));
                        None
                    }
                    None => {
                        errors.push(FieldError::new(
                            "percent",
                            "is required for PERCENT coupons",
                        ));
                        None
                    }
                }
            }
        };
        let min_order_amount = draft.min_order_amount.unwrap_or(0);
        if !(0..=MAX_DISCOUNT_AMOUNT * 1_000).contains(&min_order_amount) {
            errors.push(FieldError::new("minOrderAmount", "must be 0 or more"));
        }
        if !(1..=MAX_TOTAL_QUANTITY).contains(&draft.total_quantity) {
            errors.push(FieldError::new(
                "totalQuantity",
                format!("must be between 1 and {MAX_TOTAL_QUANTITY}"),
            ));
        }
        let per_user_limit = draft.per_user_limit.unwrap_or(1);
        if !(1..=MAX_PER_USER_LIMIT).contains(&per_user_limit) {
            errors.push(FieldError::new(
                "perUserLimit",
                format!("must be between 1 and {MAX_PER_USER_LIMIT}"),
            ));
        }
        // Both instants are stored and shown back: they must be representable everywhere
        // (years 1..=9999 in UTC, see `crate::text`). The order checks only make sense then.
        let starts_at = crate::text::check_instant("startsAt", draft.starts_at)
            .map_err(|e| errors.push(e))
            .ok();
        let expires_at = crate::text::check_instant("expiresAt", draft.expires_at)
            .map_err(|e| errors.push(e))
            .ok();
        if let (Some(starts_at), Some(expires_at)) = (starts_at, expires_at) {
            if expires_at <= starts_at {
                errors.push(FieldError::new("expiresAt", "must be after startsAt"));
            } else if expires_at <= now {
                errors.push(FieldError::new("expiresAt", "must be in the future"));
            }
        }
        match discount {
            Some(discount) if errors.is_empty() => Ok(Self {
                seller_id,
                scope: if is_admin {
                    CouponScope::Store
                } else {
                    CouponScope::Seller(seller_id)
                },
                name: name.to_owned(),
                discount,
                min_order_amount,
                total_quantity: draft.total_quantity,
                per_user_limit,
                starts_at: starts_at.unwrap_or(draft.starts_at),
                expires_at: expires_at.unwrap_or(draft.expires_at),
                created_at: now,
            }),
            _ => Err(errors),
        }
    }
}

/// The stored state of an issue. `EXPIRED` is never stored: it is how an `ISSUED` coupon past
/// its `expires_at` is reported ([`CouponIssue::status_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CouponIssueStatus {
    Issued,
    Used,
    Expired,
}

impl CouponIssueStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "ISSUED",
            Self::Used => "USED",
            Self::Expired => "EXPIRED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "ISSUED" => Some(Self::Issued),
            "USED" => Some(Self::Used),
            "EXPIRED" => Some(Self::Expired),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponIssue {
    pub id: CouponIssueId,
    pub coupon_id: CouponId,
    pub user_id: UserId,
    /// 1..=per_user_limit: the store keeps (coupon, user, seq) unique.
    pub seq: i64,
    /// `Issued` or `Used` as stored.
    pub status: CouponIssueStatus,
    pub issued_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
    pub order_id: Option<OrderId>,
}

impl CouponIssue {
    /// What the user sees: an unused issue past the coupon's expiry is `EXPIRED`.
    pub fn status_at(
        &self,
        coupon_expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> CouponIssueStatus {
        match self.status {
            CouponIssueStatus::Issued if now >= coupon_expires_at => CouponIssueStatus::Expired,
            other => other,
        }
    }
}

/// A grant to persist: the gate (or the async issuer) hands it to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCouponIssue {
    pub coupon_id: CouponId,
    pub user_id: UserId,
    pub issued_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-21 09:30 UTC);

    fn draft() -> CouponDraft {
        CouponDraft {
            name: "Welcome".into(),
            discount_type: DiscountType::Percent,
            amount: None,
            percent: Some(10),
            max_discount: Some(5_000),
            min_order_amount: Some(10_000),
            total_quantity: 1_000,
            per_user_limit: None,
            starts_at: NOW,
            expires_at: NOW + time::Duration::days(1),
        }
    }

    #[test]
    fn percent_discount_rounds_down_and_is_capped() {
        let d = Discount::Percent {
            percent: 10,
            max_discount: Some(5_000),
        };
        assert_eq!(d.apply_to(12_345), 1_234);
        assert_eq!(d.apply_to(1_000_000), 5_000);
        let full = Discount::Percent {
            percent: 100,
            max_discount: None,
        };
        assert_eq!(full.apply_to(7), 7);
    }

    #[test]
    fn amount_discount_never_exceeds_eligible_subtotal() {
        assert_eq!(Discount::Amount(3_000).apply_to(10_000), 3_000);
        assert_eq!(Discount::Amount(3_000).apply_to(2_000), 2_000);
        assert_eq!(Discount::Amount(3_000).apply_to(-5), 0);
    }

    #[test]
    fn window_is_half_open() {
        let c = NewCoupon::new(UserId(1), false, draft(), NOW).unwrap();
        let coupon = Coupon {
            id: CouponId(1),
            seller_id: c.seller_id,
            scope: c.scope,
            name: c.name,
            discount: c.discount,
            min_order_amount: c.min_order_amount,
            total_quantity: c.total_quantity,
            issued_quantity: 0,
            per_user_limit: c.per_user_limit,
            starts_at: c.starts_at,
            expires_at: c.expires_at,
            created_at: NOW,
        };
        assert_eq!(
            coupon.check_window(NOW - time::Duration::SECOND),
            Err(WindowError::NotStarted)
        );
        assert_eq!(coupon.check_window(NOW), Ok(()));
        assert_eq!(
            coupon.check_window(coupon.expires_at),
            Err(WindowError::Expired)
        );
        assert!(coupon.covers_seller(UserId(1)) && !coupon.covers_seller(UserId(2)));
    }

    #[test]
    fn draft_validation_reports_each_bad_field() {
        let mut bad = draft();
        bad.percent = Some(101);
        bad.amount = Some(5);
        bad.total_quantity = 0;
        bad.expires_at = bad.starts_at;
        let fields: Vec<_> = NewCoupon::new(UserId(1), false, bad, NOW)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["amount", "percent", "totalQuantity", "expiresAt"]);
    }

    #[test]
    fn names_must_be_printable_and_instants_representable() {
        let mut bad = draft();
        bad.name = "Wel\0come".into();
        bad.starts_at = time::macros::datetime!(0001-01-01 00:00 +01:00);
        bad.expires_at = time::macros::datetime!(9999-12-31 23:59:59 -23:59);
        let fields: Vec<_> = NewCoupon::new(UserId(1), false, bad, NOW)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["name", "startsAt", "expiresAt"]);
        // Instants are kept in UTC.
        let mut other_offset = draft();
        other_offset.expires_at = time::macros::datetime!(2026-11-23 09:00 +09:00);
        let c = NewCoupon::new(UserId(1), false, other_offset, NOW).unwrap();
        assert_eq!(c.expires_at.offset(), time::UtcOffset::UTC);
        assert_eq!(c.expires_at, time::macros::datetime!(2026-11-23 00:00 UTC));
    }

    #[test]
    fn admin_coupons_are_store_wide() {
        let c = NewCoupon::new(UserId(9), true, draft(), NOW).unwrap();
        assert_eq!(c.scope, CouponScope::Store);
        assert_eq!(c.per_user_limit, 1);
    }

    #[test]
    fn expired_issue_is_reported_as_expired() {
        let issue = CouponIssue {
            id: CouponIssueId(1),
            coupon_id: CouponId(1),
            user_id: UserId(1),
            seq: 1,
            status: CouponIssueStatus::Issued,
            issued_at: NOW,
            used_at: None,
            order_id: None,
        };
        let exp = NOW + time::Duration::HOUR;
        assert_eq!(issue.status_at(exp, NOW), CouponIssueStatus::Issued);
        assert_eq!(issue.status_at(exp, exp), CouponIssueStatus::Expired);
    }
}
