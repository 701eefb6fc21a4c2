//! Operator views under `/api/v1/admin` (ADMIN only).

use super::{ApiResult, ok};
use crate::ApiState;
use crate::dto::{OutboxEventDto, OutboxPage};
use crate::extract::{Authenticated, QueryParams, encode_cursor, path_id};
use actix_web::{HttpRequest, web};
use domain::OutboxId;
use domain::outbox::OutboxStatus;

/// Outbox rows, newest first.
#[utoipa::path(get, path = "/api/v1/admin/outbox", tag = "admin",
    params(
        ("status" = Option<crate::dto::OutboxStatusDto>, Query),
        ("limit" = Option<u32>, Query, description = "1..100, default 20"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page")),
    responses((status = 200, body = OutboxPage)),
    security(("bearer" = [])))]
pub async fn outbox(
    req: HttpRequest,
    state: web::Data<ApiState>,
    auth: Authenticated,
) -> ApiResult {
    let mut query = QueryParams::new(&req);
    let status = query.one_of("status", OutboxStatus::parse, "READY, SENT, FAILED");
    let page = query.cursor_page();
    query.finish()?;
    let slice = state.shop.outbox(auth.0, status, page).await?;
    ok(OutboxPage {
        items: slice.items.into_iter().map(OutboxEventDto::from).collect(),
        next_cursor: encode_cursor(slice.next),
    })
}

/// Puts a FAILED event back to READY.
#[utoipa::path(post, path = "/api/v1/admin/outbox/{id}/retry", tag = "admin",
    params(("id" = i64, Path, description = "Outbox row id")),
    responses((status = 200, body = OutboxEventDto)),
    security(("bearer" = [])))]
pub async fn retry(req: HttpRequest, state: web::Data<ApiState>, auth: Authenticated) -> ApiResult {
    let id: OutboxId = path_id(&req)?;
    ok(OutboxEventDto::from(
        state.shop.retry_outbox(auth.0, id).await?,
    ))
}
