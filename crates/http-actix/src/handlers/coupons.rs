//! First-come coupons: publish, browse, issue, list one's own.

use super::{ApiResult, answer, ok};
use crate::ApiState;
use crate::dto::{
    CouponDto, CouponList, CreateCouponRequest, HeldCouponDto, HeldCouponList, IssueAnswer,
};
use crate::extract::{Authenticated, JsonBody, QueryParams, path_id};
use crate::idempotency::{change, json_answer};
use crate::openapi::params::IdempotencyKeyHeader;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use application::coupons::IssueOutcome;
use domain::CouponId;
use domain::coupon::Coupon;
use domain::coupon::CouponIssueStatus;
use std::sync::Arc;

/// Publishes a coupon (SELLER: discounts that seller's items; ADMIN: the whole order).
#[utoipa::path(post, path = "/api/v1/coupons", tag = "coupons",
    operation_id = "createCoupon",
    request_body = CreateCouponRequest,
    params(IdempotencyKeyHeader),
    responses((status = 201, body = CouponDto)),
    security(("bearer" = [])))]
pub async fn create(
    req: HttpRequest,
    state: web::Data<ApiState>,
    auth: Authenticated,
    body: JsonBody<CreateCouponRequest>,
) -> ApiResult {
    let actor = auth.0;
    let (body, raw) = body.into_parts()?;
    let shop = state.shop.clone();
    let render = answer(StatusCode::CREATED, |coupon: &Coupon| {
        CouponDto::from(coupon.clone())
    });
    change(&req, Some(actor), &raw, render, move |keyed| async move {
        shop.create_coupon(actor, body.into(), keyed.as_ref()).await
    })
    .await
}

/// Coupons active now with quantity left.
#[utoipa::path(get, path = "/api/v1/coupons", tag = "coupons",
    operation_id = "listCoupons",
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
    operation_id = "getCoupon",
    params(("id" = i64, Path, minimum = 1, description = "Coupon id")),
    responses((status = 200, body = CouponDto)),
    security(("bearer" = [])))]
pub async fn get(req: HttpRequest, state: web::Data<ApiState>, _auth: Authenticated) -> ApiResult {
    let id: CouponId = path_id(&req)?;
    ok(CouponDto::from(state.shop.get_coupon(id).await?))
}

/// First come, first served: 201 when the issue is written, 202 when the grant is final and
/// the record is written asynchronously (it shows in `GET /coupons/my` within 5 seconds).
#[utoipa::path(post, path = "/api/v1/coupons/{id}/issue", tag = "coupons",
    operation_id = "issueCoupon",
    params(("id" = i64, Path, minimum = 1, description = "Coupon id"),
        IdempotencyKeyHeader),
    responses(
        (status = 201, description = "Issued", body = crate::dto::CouponIssueDto),
        (status = 202, description = "Granted; the record is being written",
            body = crate::dto::PendingIssueDto)),
    security(("bearer" = [])))]
pub async fn issue(req: HttpRequest, state: web::Data<ApiState>, auth: Authenticated) -> ApiResult {
    let actor = auth.0;
    let id: CouponId = path_id(&req)?;
    let shop = state.shop.clone();
    let render = Arc::new(
        |outcome: &IssueOutcome| match IssueAnswer::from(outcome.clone()) {
            IssueAnswer::Issued(issue) => json_answer(StatusCode::CREATED, &issue),
            IssueAnswer::Pending(pending) => json_answer(StatusCode::ACCEPTED, &pending),
        },
    );
    // The request has no body: the key alone identifies it (the path carries the coupon id).
    change(&req, Some(actor), &[], render, move |keyed| async move {
        shop.issue_coupon(actor, id, keyed.as_ref()).await
    })
    .await
}

/// The caller's coupons, newest first.
#[utoipa::path(get, path = "/api/v1/coupons/my", tag = "coupons",
    operation_id = "listMyCoupons",
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
