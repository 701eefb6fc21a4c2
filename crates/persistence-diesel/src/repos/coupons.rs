use super::corrupt;
use crate::PgTransaction;
use crate::schema::{coupon_issues as issues, coupons};
use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::coupon::{
    Coupon, CouponIssue, CouponIssueStatus, CouponScope, Discount, DiscountType, NewCoupon,
    NewCouponIssue,
};
use domain::ports::{CouponRepository, IssueError, IssuedCounts, RepoError};
use domain::{CouponId, CouponIssueId, OrderId, UserId};
use std::collections::HashMap;
use time::OffsetDateTime;

#[derive(Queryable, Selectable)]
#[diesel(table_name = coupons, check_for_backend(diesel::pg::Pg))]
struct CouponRow {
    id: i64,
    seller_id: i64,
    scope_seller_id: Option<i64>,
    name: String,
    discount_type: String,
    amount: Option<i64>,
    percent: Option<i64>,
    max_discount: Option<i64>,
    min_order_amount: i64,
    total_quantity: i64,
    issued_quantity: i64,
    per_user_limit: i64,
    starts_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    created_at: OffsetDateTime,
}

impl CouponRow {
    fn into_domain(self) -> Result<Coupon, RepoError> {
        let discount = match (
            DiscountType::parse(&self.discount_type),
            self.amount,
            self.percent,
        ) {
            (Some(DiscountType::Amount), Some(amount), _) => Discount::Amount(amount),
            (Some(DiscountType::Percent), _, Some(percent)) => Discount::Percent {
                percent,
                max_discount: self.max_discount,
            },
            _ => return Err(corrupt("coupon discount", &self.discount_type)),
        };
        Ok(Coupon {
            id: CouponId(self.id),
            seller_id: UserId(self.seller_id),
            scope: match self.scope_seller_id {
                Some(seller) => CouponScope::Seller(UserId(seller)),
                None => CouponScope::Store,
            },
            name: self.name,
            discount,
            min_order_amount: self.min_order_amount,
            total_quantity: self.total_quantity,
            issued_quantity: self.issued_quantity,
            per_user_limit: self.per_user_limit,
            starts_at: self.starts_at,
            expires_at: self.expires_at,
            created_at: self.created_at,
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = issues, check_for_backend(diesel::pg::Pg))]
struct IssueRow {
    id: i64,
    coupon_id: i64,
    user_id: i64,
    seq: i64,
    status: String,
    issued_at: OffsetDateTime,
    used_at: Option<OffsetDateTime>,
    order_id: Option<i64>,
}

impl IssueRow {
    fn into_domain(self) -> Result<CouponIssue, RepoError> {
        Ok(CouponIssue {
            id: CouponIssueId(self.id),
            coupon_id: CouponId(self.coupon_id),
            user_id: UserId(self.user_id),
            seq: self.seq,
            status: CouponIssueStatus::parse(&self.status)
                .ok_or_else(|| corrupt("coupon issue status", &self.status))?,
            issued_at: self.issued_at,
            used_at: self.used_at,
            order_id: self.order_id.map(OrderId),
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = coupons)]
struct CouponInsert<'a> {
    seller_id: i64,
    scope_seller_id: Option<i64>,
    name: &'a str,
    discount_type: &'static str,
    amount: Option<i64>,
    percent: Option<i64>,
    max_discount: Option<i64>,
    min_order_amount: i64,
    total_quantity: i64,
    per_user_limit: i64,
    starts_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    created_at: OffsetDateTime,
}

impl<'a> CouponInsert<'a> {
    fn new(coupon: &'a NewCoupon) -> Self {
        let (amount, percent, max_discount) = match coupon.discount {
            Discount::Amount(amount) => (Some(amount), None, None),
            Discount::Percent {
                percent,
                max_discount,
            } => (None, Some(percent), max_discount),
        };
        Self {
            seller_id: coupon.seller_id.0,
            scope_seller_id: match coupon.scope {
                CouponScope::Seller(seller) => Some(seller.0),
                CouponScope::Store => None,
            },
            name: &coupon.name,
            discount_type: coupon.discount.kind().as_str(),
            amount,
            percent,
            max_discount,
            min_order_amount: coupon.min_order_amount,
            total_quantity: coupon.total_quantity,
            per_user_limit: coupon.per_user_limit,
            starts_at: coupon.starts_at,
            expires_at: coupon.expires_at,
            created_at: coupon.created_at,
        }
    }
}

#[async_trait]
impl CouponRepository for PgTransaction {
    async fn insert(&mut self, coupon: NewCoupon) -> Result<Coupon, RepoError> {
        let conn = self.conn()?;
        let inserted = diesel::insert_into(coupons::table)
            .values(CouponInsert::new(&coupon))
            .returning(CouponRow::as_returning())
            .get_result(conn)
            .await;
        self.check(inserted)?.into_domain()
    }

    async fn get(&mut self, id: CouponId) -> Result<Option<Coupon>, RepoError> {
        let conn = self.conn()?;
        let found = coupons::table
            .find(id.0)
            .select(CouponRow::as_select())
            .first(conn)
            .await
            .optional();
        self.check(found)?.map(CouponRow::into_domain).transpose()
    }

    async fn list_active(&mut self, now: OffsetDateTime) -> Result<Vec<Coupon>, RepoError> {
        let conn = self.conn()?;
        let rows = coupons::table
            .filter(coupons::expires_at.gt(now))
            .filter(coupons::starts_at.le(now))
            .filter(coupons::issued_quantity.lt(coupons::total_quantity))
            .select(CouponRow::as_select())
            .order(coupons::id.desc())
            .load(conn)
            .await;
        self.check(rows)?
            .into_iter()
            .map(CouponRow::into_domain)
            .collect()
    }

    async fn issue(&mut self, issue: NewCouponIssue) -> Result<CouponIssue, IssueError> {
        // 1. Take one unit of the counter, only while some are left. This also locks the
        //    coupon row until commit, so issues of one coupon are serialized from here on.
        let conn = self.conn()?;
        let taken = diesel::update(coupons::table)
            .filter(coupons::id.eq(issue.coupon_id.0))
            .filter(coupons::issued_quantity.lt(coupons::total_quantity))
            .set(coupons::issued_quantity.eq(coupons::issued_quantity + 1_i64))
            .returning(coupons::per_user_limit)
            .get_result::<i64>(conn)
            .await
            .optional();
        let Some(per_user_limit) = self.check(taken)? else {
            return Err(self.issue_refusal(&issue).await);
        };
        // 2. The user's next number. Every issue of this coupon is written by a transaction
        //    that held the coupon row lock until it committed, and this statement runs after
        //    we acquired it, so the count is exact.
        let held = self.issues_held(&issue).await?;
        if held >= per_user_limit {
            // Give the unit back; nobody saw it (we hold the row lock).
            let conn = self.conn()?;
            let restored = diesel::update(coupons::table.find(issue.coupon_id.0))
                .set(coupons::issued_quantity.eq(coupons::issued_quantity - 1_i64))
                .execute(conn)
                .await;
            self.check(restored)?;
            return Err(IssueError::LimitReached);
        }
        // 3. The row; unique (coupon_id, user_id, seq) is the backstop (a violation is a
        //    Conflict, never a second copy).
        let conn = self.conn()?;
        let inserted = diesel::insert_into(issues::table)
            .values(IssueInsert::new(&issue, held + 1))
            .returning(IssueRow::as_returning())
            .get_result(conn)
            .await;
        Ok(self.check(inserted)?.into_domain()?)
    }

    async fn issue_batch(
        &mut self,
        batch: &[NewCouponIssue],
    ) -> Result<Vec<Result<CouponIssue, IssueError>>, RepoError> {
        // Four statements whatever the batch size, so that a burst's grants share one
        // transaction and one commit instead of queueing one by one on the coupon row lock.
        let Some(coupon) = one_coupon(batch)? else {
            return Ok(Vec::new());
        };
        // 1. Lock the counter row until commit: from here on nobody else issues this coupon,
        //    so the counts below stay exact (as in `issue`).
        let conn = self.conn()?;
        let locked = coupons::table
            .find(coupon.0)
            .select((
                coupons::issued_quantity,
                coupons::total_quantity,
                coupons::per_user_limit,
            ))
            .for_update()
            .first::<(i64, i64, i64)>(conn)
            .await
            .optional();
        let Some((issued, total, per_user_limit)) = self.check(locked)? else {
            return Ok(batch.iter().map(|_| Err(IssueError::NotFound)).collect());
        };
        // 2. What the batch's users already hold.
        let mut users: Vec<i64> = batch.iter().map(|issue| issue.user_id.0).collect();
        users.sort_unstable();
        users.dedup();
        let conn = self.conn()?;
        let counts = issues::table
            .filter(issues::coupon_id.eq(coupon.0))
            .filter(issues::user_id.eq_any(&users))
            .group_by(issues::user_id)
            .select((issues::user_id, diesel::dsl::count_star()))
            .load::<(i64, i64)>(conn)
            .await;
        let held: HashMap<i64, i64> = self.check(counts)?.into_iter().collect();
        // 3. Decide in input order, exactly as `issue` one after the other would.
        let decisions = decide(batch, held, total - issued, per_user_limit);
        let accepted: Vec<IssueInsert> = batch
            .iter()
            .zip(&decisions)
            .filter_map(|(issue, decision)| match decision {
                Decision::Issue { seq } => Some(IssueInsert::new(issue, *seq)),
                Decision::Refuse(_) => None,
            })
            .collect();
        let mut rows = self.write_accepted(coupon, &accepted).await?;
        // RETURNING order is not guaranteed: match rows back by (user, seq).
        batch
            .iter()
            .zip(decisions)
            .map(|(issue, decision)| match decision {
                Decision::Issue { seq } => rows
                    .remove(&(issue.user_id.0, seq))
                    .ok_or_else(|| {
                        RepoError::Internal(format!(
                            "coupon issue ({}, {seq}) missing from the insert's rows",
                            issue.user_id
                        ))
                    })?
                    .into_domain()
                    .map(Ok),
                Decision::Refuse(refusal) => Ok(Err(refusal)),
            })
            .collect()
    }

    async fn issued_counts(&mut self, id: CouponId) -> Result<IssuedCounts, RepoError> {
        // One statement, one snapshot: `issued` is the sum of the per-user counts, which
        // equals the coupon's counter (both change in the same transactions).
        let conn = self.conn()?;
        let rows = issues::table
            .filter(issues::coupon_id.eq(id.0))
            .group_by(issues::user_id)
            .select((issues::user_id, diesel::dsl::count_star()))
            .order(issues::user_id)
            .load::<(i64, i64)>(conn)
            .await;
        let per_user: Vec<(UserId, i64)> = self
            .check(rows)?
            .into_iter()
            .map(|(user, n)| (UserId(user), n))
            .collect();
        Ok(IssuedCounts {
            issued: per_user.iter().map(|(_, n)| n).sum(),
            per_user,
        })
    }

    async fn get_issue(&mut self, id: CouponIssueId) -> Result<Option<CouponIssue>, RepoError> {
        let conn = self.conn()?;
        let found = issues::table
            .find(id.0)
            .select(IssueRow::as_select())
            .first(conn)
            .await
            .optional();
        self.check(found)?.map(IssueRow::into_domain).transpose()
    }

    async fn issues_of_user(
        &mut self,
        user: UserId,
    ) -> Result<Vec<(CouponIssue, Coupon)>, RepoError> {
        let conn = self.conn()?;
        let rows = issues::table
            .inner_join(coupons::table)
            .filter(issues::user_id.eq(user.0))
            .order(issues::id.desc())
            .select((IssueRow::as_select(), CouponRow::as_select()))
            .load::<(IssueRow, CouponRow)>(conn)
            .await;
        self.check(rows)?
            .into_iter()
            .map(|(issue, coupon)| Ok((issue.into_domain()?, coupon.into_domain()?)))
            .collect()
    }

    async fn use_issue(
        &mut self,
        id: CouponIssueId,
        order: OrderId,
        at: OffsetDateTime,
    ) -> Result<Option<CouponIssue>, RepoError> {
        let conn = self.conn()?;
        let updated = diesel::update(issues::table)
            .filter(issues::id.eq(id.0))
            .filter(issues::status.eq(CouponIssueStatus::Issued.as_str()))
            .set((
                issues::status.eq(CouponIssueStatus::Used.as_str()),
                issues::used_at.eq(Some(at)),
                issues::order_id.eq(Some(order.0)),
            ))
            .returning(IssueRow::as_returning())
            .get_result(conn)
            .await
            .optional();
        self.check(updated)?.map(IssueRow::into_domain).transpose()
    }

    async fn release_issue(&mut self, id: CouponIssueId, order: OrderId) -> Result<(), RepoError> {
        // Only the order that used it can give it back. The caller won that order's status
        // change, so the issue must be its own: anything else is a bug, and nothing changes.
        let conn = self.conn()?;
        let updated = diesel::update(issues::table)
            .filter(issues::id.eq(id.0))
            .filter(issues::status.eq(CouponIssueStatus::Used.as_str()))
            .filter(issues::order_id.eq(order.0))
            .set((
                issues::status.eq(CouponIssueStatus::Issued.as_str()),
                issues::used_at.eq(None::<OffsetDateTime>),
                issues::order_id.eq(None::<i64>),
            ))
            .execute(conn)
            .await;
        match self.check(updated)? {
            1 => Ok(()),
            _ => Err(RepoError::Internal(format!(
                "coupon issue {id} is not USED by order {order}"
            ))),
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = issues)]
struct IssueInsert {
    coupon_id: i64,
    user_id: i64,
    seq: i64,
    status: &'static str,
    issued_at: OffsetDateTime,
}

impl IssueInsert {
    fn new(issue: &NewCouponIssue, seq: i64) -> Self {
        Self {
            coupon_id: issue.coupon_id.0,
            user_id: issue.user_id.0,
            seq,
            status: CouponIssueStatus::Issued.as_str(),
            issued_at: issue.issued_at,
        }
    }
}

/// What `issue` would have answered for one item of a batch.
enum Decision {
    Issue { seq: i64 },
    Refuse(IssueError),
}

/// The coupon every item of a batch is for (`None` for an empty batch). A batch mixing
/// coupons is a caller bug: the lock and the counts below are per coupon.
fn one_coupon(batch: &[NewCouponIssue]) -> Result<Option<CouponId>, RepoError> {
    let Some(first) = batch.first() else {
        return Ok(None);
    };
    if batch.iter().any(|issue| issue.coupon_id != first.coupon_id) {
        return Err(RepoError::Internal(
            "a coupon issue batch must hold issues of one coupon".into(),
        ));
    }
    Ok(Some(first.coupon_id))
}

/// `issue`'s rules applied item after item: a user at the limit hears `LimitReached` (even
/// when the coupon is sold out as well), otherwise the next unit left is theirs.
fn decide(
    batch: &[NewCouponIssue],
    mut held: HashMap<i64, i64>,
    mut left: i64,
    per_user_limit: i64,
) -> Vec<Decision> {
    batch
        .iter()
        .map(|issue| {
            let mine = held.entry(issue.user_id.0).or_insert(0);
            if *mine >= per_user_limit {
                Decision::Refuse(IssueError::LimitReached)
            } else if left <= 0 {
                Decision::Refuse(IssueError::SoldOut)
            } else {
                *mine += 1;
                left -= 1;
                Decision::Issue { seq: *mine }
            }
        })
        .collect()
}

impl PgTransaction {
    /// Steps 4 and 5 of `issue_batch`: the accepted rows in one insert, then the counter by
    /// as many. The rows come back keyed by (user, seq), since RETURNING has no order.
    async fn write_accepted(
        &mut self,
        coupon: CouponId,
        accepted: &[IssueInsert],
    ) -> Result<HashMap<(i64, i64), IssueRow>, RepoError> {
        if accepted.is_empty() {
            return Ok(HashMap::new());
        }
        // Unique (coupon_id, user_id, seq) stays the backstop: a violation is a Conflict.
        let conn = self.conn()?;
        let inserted = diesel::insert_into(issues::table)
            .values(accepted)
            .returning(IssueRow::as_returning())
            .get_results::<IssueRow>(conn)
            .await;
        let rows: HashMap<(i64, i64), IssueRow> = self
            .check(inserted)?
            .into_iter()
            .map(|row| ((row.user_id, row.seq), row))
            .collect();
        // The CHECK (issued_quantity <= total_quantity) stays the backstop of the counter.
        let taken = i64::try_from(accepted.len())
            .map_err(|_| RepoError::Internal("coupon issue batch too large".into()))?;
        let conn = self.conn()?;
        let updated = diesel::update(coupons::table.find(coupon.0))
            .set(coupons::issued_quantity.eq(coupons::issued_quantity + taken))
            .execute(conn)
            .await;
        self.check(updated)?;
        Ok(rows)
    }

    async fn issues_held(&mut self, issue: &NewCouponIssue) -> Result<i64, RepoError> {
        let conn = self.conn()?;
        let held = issues::table
            .filter(issues::coupon_id.eq(issue.coupon_id.0))
            .filter(issues::user_id.eq(issue.user_id.0))
            .count()
            .get_result::<i64>(conn)
            .await;
        self.check(held)
    }

    /// Why the counter could not be taken: no coupon, or none left. A user already at the
    /// limit hears `LimitReached` even when the coupon is sold out as well.
    async fn issue_refusal(&mut self, issue: &NewCouponIssue) -> IssueError {
        let conn = match self.conn() {
            Ok(conn) => conn,
            Err(e) => return e.into(),
        };
        let found = coupons::table
            .find(issue.coupon_id.0)
            .select(coupons::per_user_limit)
            .first::<i64>(conn)
            .await
            .optional();
        let per_user_limit = match self.check(found) {
            Err(e) => return e.into(),
            Ok(None) => return IssueError::NotFound,
            Ok(Some(limit)) => limit,
        };
        match self.issues_held(issue).await {
            Err(e) => e.into(),
            Ok(held) if held >= per_user_limit => IssueError::LimitReached,
            Ok(_) => IssueError::SoldOut,
        }
    }
}
