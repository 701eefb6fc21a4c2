//! Coupons and their issues: the source of truth behind the first-come gate.
//!
//! Invariants (RULES.md): a coupon's `issued_quantity` equals the number of its issues and never
//! exceeds `total_quantity`; `per_user[coupon][user]` equals the number of issues the user holds
//! and never exceeds `per_user_limit`, and those issues carry the sequence numbers
//! `1..=per_user[coupon][user]` (unique (coupon, user, seq)). Issues are never deleted once
//! committed; only their status moves between ISSUED and USED.
//!
//! When both limits are reached the per-user limit is reported first (`LimitReached`), as the
//! gate does: telling a user "you already have it" is more useful than "sold out".

use super::{MemoryTx, Sequences};
use async_trait::async_trait;
use domain::coupon::{Coupon, CouponIssue, CouponIssueStatus, NewCoupon, NewCouponIssue};
use domain::ports::{CouponRepository, IssueError, IssuedCounts, RepoError};
use domain::{CouponId, CouponIssueId, OrderId, UserId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use time::OffsetDateTime;

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Clone, PartialEq))]
pub(super) struct CouponsTable {
    coupons: BTreeMap<CouponId, Coupon>,
    issues: BTreeMap<CouponIssueId, CouponIssue>,
    /// Issues held per coupon and user (the last sequence number given).
    per_user: HashMap<CouponId, HashMap<UserId, i64>>,
    /// Each user's issues (the last is the newest).
    by_user: HashMap<UserId, BTreeSet<CouponIssueId>>,
}

impl CouponsTable {
    fn remove_issue(&mut self, issue: &CouponIssue) {
        self.issues.remove(&issue.id);
        if let Some(coupon) = self.coupons.get_mut(&issue.coupon_id) {
            coupon.issued_quantity -= 1;
        }
        if let Some(users) = self.per_user.get_mut(&issue.coupon_id) {
            if let Some(held) = users.get_mut(&issue.user_id) {
                *held -= 1;
                if *held == 0 {
                    users.remove(&issue.user_id);
                }
            }
            if users.is_empty() {
                self.per_user.remove(&issue.coupon_id);
            }
        }
        if let Some(ids) = self.by_user.get_mut(&issue.user_id) {
            ids.remove(&issue.id);
            if ids.is_empty() {
                self.by_user.remove(&issue.user_id);
            }
        }
    }

    fn held(&self, coupon: CouponId, user: UserId) -> i64 {
        self.per_user
            .get(&coupon)
            .and_then(|users| users.get(&user))
            .copied()
            .unwrap_or(0)
    }
}

#[async_trait]
impl CouponRepository for MemoryTx {
    async fn insert(&mut self, coupon: NewCoupon) -> Result<Coupon, RepoError> {
        let state = self.state_mut()?;
        let id = CouponId(Sequences::next(&mut state.seq.coupons));
        let row = Coupon {
            id,
            seller_id: coupon.seller_id,
            scope: coupon.scope,
            name: coupon.name,
            discount: coupon.discount,
            min_order_amount: coupon.min_order_amount,
            total_quantity: coupon.total_quantity,
            issued_quantity: 0,
            per_user_limit: coupon.per_user_limit,
            starts_at: coupon.starts_at,
            expires_at: coupon.expires_at,
            created_at: coupon.created_at,
        };
        state.coupons.coupons.insert(id, row.clone());
        self.on_rollback(move |s| {
            s.coupons.coupons.remove(&id);
        });
        Ok(row)
    }

    async fn get(&mut self, id: CouponId) -> Result<Option<Coupon>, RepoError> {
        Ok(self.state().coupons.coupons.get(&id).cloned())
    }

    async fn list_active(&mut self, now: OffsetDateTime) -> Result<Vec<Coupon>, RepoError> {
        Ok(self
            .state()
            .coupons
            .coupons
            .values()
            .rev()
            .filter(|c| c.is_active(now) && c.remaining_quantity() > 0)
            .cloned()
            .collect())
    }

    async fn issue(&mut self, issue: NewCouponIssue) -> Result<CouponIssue, IssueError> {
        let state = self.state_mut()?;
        let held = state.coupons.held(issue.coupon_id, issue.user_id);
        let Some(coupon) = state.coupons.coupons.get_mut(&issue.coupon_id) else {
            return Err(IssueError::NotFound);
        };
        if held >= coupon.per_user_limit {
            return Err(IssueError::LimitReached);
        }
        if coupon.issued_quantity >= coupon.total_quantity {
            return Err(IssueError::SoldOut);
        }
        coupon.issued_quantity += 1;
        let id = CouponIssueId(Sequences::next(&mut state.seq.coupon_issues));
        let row = CouponIssue {
            id,
            coupon_id: issue.coupon_id,
            user_id: issue.user_id,
            seq: held + 1,
            status: CouponIssueStatus::Issued,
            issued_at: issue.issued_at,
            used_at: None,
            order_id: None,
        };
        let table = &mut state.coupons;
        table.issues.insert(id, row.clone());
        table
            .per_user
            .entry(issue.coupon_id)
            .or_default()
            .insert(issue.user_id, held + 1);
        table.by_user.entry(issue.user_id).or_default().insert(id);
        let undo = row.clone();
        self.on_rollback(move |s| s.coupons.remove_issue(&undo));
        Ok(row)
    }

    async fn issued_counts(&mut self, id: CouponId) -> Result<IssuedCounts, RepoError> {
        let table = &self.state().coupons;
        let issued = table.coupons.get(&id).map_or(0, |c| c.issued_quantity);
        let mut per_user: Vec<(UserId, i64)> = table
            .per_user
            .get(&id)
            .map(|users| users.iter().map(|(u, n)| (*u, *n)).collect())
            .unwrap_or_default();
        per_user.sort_unstable();
        Ok(IssuedCounts { issued, per_user })
    }

    async fn get_issue(&mut self, id: CouponIssueId) -> Result<Option<CouponIssue>, RepoError> {
        Ok(self.state().coupons.issues.get(&id).cloned())
    }

    async fn issues_of_user(
        &mut self,
        user: UserId,
    ) -> Result<Vec<(CouponIssue, Coupon)>, RepoError> {
        let table = &self.state().coupons;
        let Some(ids) = table.by_user.get(&user) else {
            return Ok(Vec::new());
        };
        ids.iter()
            .rev()
            .map(|id| {
                let issue = table.issues.get(id);
                let coupon = issue.and_then(|i| table.coupons.get(&i.coupon_id));
                match (issue, coupon) {
                    (Some(issue), Some(coupon)) => Ok((issue.clone(), coupon.clone())),
                    _ => Err(RepoError::Internal(format!(
                        "coupon issue index points at missing issue {id}"
                    ))),
                }
            })
            .collect()
    }

    async fn use_issue(
        &mut self,
        id: CouponIssueId,
        order: OrderId,
        at: OffsetDateTime,
    ) -> Result<Option<CouponIssue>, RepoError> {
        let state = self.state_mut()?;
        let Some(issue) = state.coupons.issues.get_mut(&id) else {
            return Ok(None);
        };
        if issue.status != CouponIssueStatus::Issued {
            return Ok(None);
        }
        let previous = issue.clone();
        issue.status = CouponIssueStatus::Used;
        issue.used_at = Some(at);
        issue.order_id = Some(order);
        let updated = issue.clone();
        self.on_rollback(move |s| {
            s.coupons.issues.insert(id, previous);
        });
        Ok(Some(updated))
    }

    async fn release_issue(&mut self, id: CouponIssueId, order: OrderId) -> Result<(), RepoError> {
        let state = self.state_mut()?;
        let Some(issue) = state.coupons.issues.get_mut(&id) else {
            return Err(RepoError::Internal(format!(
                "no coupon issue {id} to release"
            )));
        };
        if issue.status != CouponIssueStatus::Used || issue.order_id != Some(order) {
            // Only the order that took the issue may give it back; anything else is a bug in
            // the caller (it won the order's status change, so the issue must be its own).
            return Err(RepoError::Internal(format!(
                "coupon issue {id} is {:?} for order {:?}, not USED by order {order}",
                issue.status, issue.order_id
            )));
        }
        let previous = issue.clone();
        issue.status = CouponIssueStatus::Issued;
        issue.used_at = None;
        issue.order_id = None;
        self.on_rollback(move |s| {
            s.coupons.issues.insert(id, previous);
        });
        Ok(())
    }
}
