//! Paying an order from the wallet.

use super::{ApiResult, answer, ok};
use crate::ApiState;
use crate::dto::{PayRequest, PaymentDto};
use crate::extract::{Authenticated, JsonBody, path_id};
use crate::idempotency::change;
use crate::openapi::params::IdempotencyKeyHeader;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use domain::payment::Payment;
use domain::{OrderId, PaymentId};

/// Debits the wallet and marks the order PAID, atomically. On insufficient balance the order
/// stays CREATED and can be paid later. Idempotent with an `Idempotency-Key`.
#[utoipa::path(post, path = "/api/v1/payments", tag = "payments",
    operation_id = "payOrder",
    request_body = PayRequest,
    params(IdempotencyKeyHeader),
    responses((status = 201, body = PaymentDto)),
    security(("bearer" = [])))]
pub async fn pay(
    req: HttpRequest,
    state: web::Data<ApiState>,
    auth: Authenticated,
    body: JsonBody<PayRequest>,
) -> ApiResult {
    let actor = auth.0;
    let (body, raw) = body.into_parts()?;
    if body.order_id <= 0 {
        return Err(crate::ApiError::field("orderId", "must be a positive id"));
    }
    let order = OrderId(body.order_id);
    let shop = state.shop.clone();
    let render = answer(StatusCode::CREATED, |payment: &Payment| {
        PaymentDto::from(payment.clone())
    });
    change(&req, Some(actor), &raw, render, move |keyed| async move {
        shop.pay(actor, order, keyed.as_ref()).await
    })
    .await
}

/// One payment (its owner or an admin).
#[utoipa::path(get, path = "/api/v1/payments/{id}", tag = "payments",
    operation_id = "getPayment",
    params(("id" = i64, Path, minimum = 1, description = "Payment id")),
    responses((status = 200, body = PaymentDto)),
    security(("bearer" = [])))]
pub async fn get(req: HttpRequest, state: web::Data<ApiState>, auth: Authenticated) -> ApiResult {
    let id: PaymentId = path_id(&req)?;
    ok(PaymentDto::from(state.shop.get_payment(auth.0, id).await?))
}
