//! Operator views under `/api/v1/admin` (ADMIN only).

use super::{ApiResult, answer, ok};
use crate::ApiState;
use crate::dto::{OutboxEventDto, OutboxPage};
use crate::extract::{Authenticated, QueryParams, encode_cursor, path_id};
use crate::idempotency::change;
use crate::openapi::params::{CursorQuery, IdempotencyKeyHeader};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use domain::OutboxId;
use domain::outbox::{OutboxEvent, OutboxStatus};

/// Outbox rows, newest first.
#[utoipa::path(get, path = "/api/v1/admin/outbox", tag = "admin",
    operation_id = "listOutboxEvents",
    params(("status" = Option<crate::dto::OutboxStatusDto>, Query),
        CursorQuery),
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
    operation_id = "retryOutboxEvent",
    params(("id" = i64, Path, minimum = 1, description = "Outbox row id"),
        IdempotencyKeyHeader),
    responses((status = 200, body = OutboxEventDto)),
    security(("bearer" = [])))]
pub async fn retry(req: HttpRequest, state: web::Data<ApiState>, auth: Authenticated) -> ApiResult {
    let actor = auth.0;
    let id: OutboxId = path_id(&req)?;
    let shop = state.shop.clone();
    let render = answer(StatusCode::OK, |event: &OutboxEvent| {
        OutboxEventDto::from(event.clone())
    });
    // The request has no body: the key alone identifies it (the path carries the event id).
    change(&req, Some(actor), &[], render, move |keyed| async move {
        shop.retry_outbox(actor, id, keyed.as_ref()).await
    })
    .await
}
