//! First-come coupons: publish, browse, issue (through the gate), list one's own.

use crate::{Actor, Shop, ShopError};
use domain::coupon::{Coupon, CouponDraft, CouponIssue, CouponIssueStatus};
use domain::{CouponId, UserId};

/// What `POST /coupons/{id}/issue` answers.
#[derive(Debug, Clone)]
pub enum IssueOutcome {
    /// The row exists (201).
    Issued(CouponIssue),
    /// The grant is final, the row is written by the async issuer (202).
    Pending {
        coupon_id: CouponId,
        user_id: UserId,
        request_id: String,
    },
}

/// One of the caller's coupons, with the status it shows now (ISSUED past expiry → EXPIRED).
#[derive(Debug, Clone)]
pub struct HeldCoupon {
    pub issue: CouponIssue,
    pub status: CouponIssueStatus,
    pub coupon: Coupon,
}

impl Shop {
    /// SELLER or ADMIN. Registers the coupon's counters with the gate.
    pub async fn create_coupon(
        &self,
        actor: Actor,
        draft: CouponDraft,
    ) -> Result<Coupon, ShopError> {
        todo!("{actor:?} {draft:?}")
    }

    /// Active now with quantity left.
    pub async fn list_active_coupons(&self) -> Result<Vec<Coupon>, ShopError> {
        todo!()
    }

    pub async fn get_coupon(&self, id: CouponId) -> Result<Coupon, ShopError> {
        todo!("{id}")
    }

    /// First come, first served. Errors: `NotFound`, `CouponNotActive`, `CouponSoldOut`,
    /// `CouponAlreadyIssued`, `Unavailable` (gate down: nothing issued).
    pub async fn issue_coupon(
        &self,
        actor: Actor,
        id: CouponId,
    ) -> Result<IssueOutcome, ShopError> {
        todo!("{actor:?} {id}")
    }

    pub async fn my_coupons(
        &self,
        actor: Actor,
        status: Option<CouponIssueStatus>,
    ) -> Result<Vec<HeldCoupon>, ShopError> {
        todo!("{actor:?} {status:?}")
    }
}
