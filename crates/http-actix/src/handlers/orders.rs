//! Placing, reading and canceling orders (a paid order is refunded).

use super::{ApiResult, answer, ok};
use crate::ApiState;
use crate::dto::{OrderDto, OrderPage, PlaceOrderRequest};
use crate::extract::{Authenticated, JsonBody, QueryParams, encode_cursor, path_id};
use crate::idempotency::change;
use crate::openapi::params::{CursorQuery, IdempotencyKeyHeader};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use domain::order::{Order, OrderLine, OrderStatus};
use domain::{CouponIssueId, OrderId, ProductId};

/// Reserves stock for every line (all or nothing), snapshots prices, applies the coupon.
/// Idempotent with an `Idempotency-Key`.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders",
    operation_id = "placeOrder",
    request_body = PlaceOrderRequest,
    params(IdempotencyKeyHeader),
    responses((status = 201, body = OrderDto)),
    security(("bearer" = [])))]
pub async fn place(
    req: HttpRequest,
    state: web::Data<ApiState>,
    auth: Authenticated,
    body: JsonBody<PlaceOrderRequest>,
) -> ApiResult {
    let actor = auth.0;
    let (body, raw) = body.into_parts()?;
    let lines: Vec<OrderLine> = body
        .items
        .iter()
        .map(|l| OrderLine {
            product_id: ProductId(l.product_id),
            quantity: l.quantity,
        })
        .collect();
    // Shape errors (no items, duplicates, quantity range) are 400 before the key is claimed.
    domain::order::validate_lines(&lines).map_err(application::ShopError::Validation)?;
    let coupon = body.coupon_issue_id.map(CouponIssueId);
    let shop = state.shop.clone();
    let render = answer(StatusCode::CREATED, |order: &Order| {
        OrderDto::from(order.clone())
    });
    change(&req, Some(actor), &raw, render, move |keyed| async move {
        shop.place_order(actor, lines, coupon, keyed.as_ref()).await
    })
    .await
}

/// One order (its owner or an admin).
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders",
    operation_id = "getOrder",
    params(("id" = i64, Path, minimum = 1, description = "Order id")),
    responses((status = 200, body = OrderDto)),
    security(("bearer" = [])))]
pub async fn get(req: HttpRequest, state: web::Data<ApiState>, auth: Authenticated) -> ApiResult {
    let id: OrderId = path_id(&req)?;
    ok(OrderDto::from(state.shop.get_order(auth.0, id).await?))
}

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders",
    operation_id = "listOrders",
    params(("status" = Option<crate::dto::OrderStatusDto>, Query),
        CursorQuery),
    responses((status = 200, body = OrderPage)),
    security(("bearer" = [])))]
pub async fn list(req: HttpRequest, state: web::Data<ApiState>, auth: Authenticated) -> ApiResult {
    let mut query = QueryParams::new(&req);
    let status = query.one_of(
        "status",
        OrderStatus::parse,
        "CREATED, PAID, CANCELED, REFUNDED",
    );
    let page = query.cursor_page();
    query.finish()?;
    let slice = state.shop.list_orders(auth.0, status, page).await?;
    ok(OrderPage {
        items: slice.items.into_iter().map(OrderDto::from).collect(),
        next_cursor: encode_cursor(slice.next),
    })
}

/// CREATED becomes CANCELED; PAID becomes REFUNDED (the wallet is credited). Idempotent with
/// an `Idempotency-Key`.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders",
    operation_id = "cancelOrder",
    params(
        ("id" = i64, Path, minimum = 1, description = "Order id"),
        IdempotencyKeyHeader),
    responses((status = 200, body = OrderDto)),
    security(("bearer" = [])))]
pub async fn cancel(
    req: HttpRequest,
    state: web::Data<ApiState>,
    auth: Authenticated,
) -> ApiResult {
    let actor = auth.0;
    let id: OrderId = path_id(&req)?;
    // The request has no body: the key alone identifies it (the path carries the order id).
    let shop = state.shop.clone();
    let render = answer(StatusCode::OK, |order: &Order| {
        OrderDto::from(order.clone())
    });
    change(&req, Some(actor), &[], render, move |keyed| async move {
        shop.cancel_order(actor, id, keyed.as_ref()).await
    })
    .await
}
