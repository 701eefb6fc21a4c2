//! First-come coupons: publish, browse, issue, list one's own.

use super::{ApiResult, created, ok};
use crate::ApiState;
use crate::dto::{
    CouponDto, CouponList, CreateCouponRequest, HeldCouponDto, HeldCouponList, IssueAnswer,
};
use crate::extract::{Authenticated, JsonBody, QueryParams, path_id};
use actix_web::{HttpRequest, HttpResponse, web};
use domain::CouponId;
use domain::coupon::CouponIssueStatus;

/// Publishes a coupon (SELLER: discounts that seller's items; ADMIN: the whole order).
#[utoipa::path(post, path = "/api/v1/coupons", tag = "coupons",
    request_body = CreateCouponRequest,
    responses((status = 201, body = CouponDto)),
    security(("bearer" = [])))]
pub async fn create(
    state: web::Data<ApiState>,
    auth: Authenticated,
    body: JsonBody<CreateCouponRequest>,
) -> ApiResult {
    let (body, _) = body.into_parts()?;
    created(CouponDto::from(
        state.shop.create_coupon(auth.0, body.into()).await?,
    ))
}

/// Coupons active now with quantity left.
#[utoipa::path(get, path = "/api/v1/coupons", tag = "coupons",
    responses((status = 200, body = CouponList)),
    security(("bearer" = [])))]
pub async fn list(req: HttpRequest, state: web::Data<ApiState>, _auth: Authenticated) -> ApiResult {
    QueryParams::new(&req).finish()?;
    let coupons = state.shop.list_active_coupons().await?;
    ok(CouponList {
        items: coupons.into_iter().map(CouponDto::from).collect(),
    })
}

/// One coupon.
#[utoipa::path(get, path = "/api/v1/coupons/{id}", tag = "coupons",
    params(("id" = i64, Path, description = "Coupon id")),
    responses((status = 200, body = CouponDto)),
    security(("bearer" = [])))]
pub async fn get(req: HttpRequest, state: web::Data<ApiState>, _auth: Authenticated) -> ApiResult {
    let id: CouponId = path_id(&req)?;
    ok(CouponDto::from(state.shop.get_coupon(id).await?))
}

/// First come, first served: 201 when the issue is written, 202 when the grant is final and
/// the record is written asynchronously (it shows in `GET /coupons/my` within 5 seconds).
#[utoipa::path(post, path = "/api/v1/coupons/{id}/issue", tag = "coupons",
    params(("id" = i64, Path, description = "Coupon id")),
    responses(
        (status = 201, description = "Issued", body = crate::dto::CouponIssueDto),
        (status = 202, description = "Granted; the record is being written",
            body = crate::dto::PendingIssueDto)),
    security(("bearer" = [])))]
pub async fn issue(req: HttpRequest, state: web::Data<ApiState>, auth: Authenticated) -> ApiResult {
    let id: CouponId = path_id(&req)?;
    match IssueAnswer::from(state.shop.issue_coupon(auth.0, id).await?) {
        IssueAnswer::Issued(issue) => created(issue),
        IssueAnswer::Pending(pending) => Ok(HttpResponse::Accepted().json(pending)),
    }
}

/// The caller's coupons, newest first.
#[utoipa::path(get, path = "/api/v1/coupons/my", tag = "coupons",
    params(("status" = Option<crate::dto::CouponIssueStatusDto>, Query)),
    responses((status = 200, body = HeldCouponList)),
    security(("bearer" = [])))]
pub async fn mine(req: HttpRequest, state: web::Data<ApiState>, auth: Authenticated) -> ApiResult {
    let mut query = QueryParams::new(&req);
    let status = query.one_of("status", CouponIssueStatus::parse, "ISSUED, USED, EXPIRED");
    query.finish()?;
    let held = state.shop.my_coupons(auth.0, status).await?;
    ok(HeldCouponList {
        items: held.into_iter().map(HeldCouponDto::from).collect(),
    })
}
