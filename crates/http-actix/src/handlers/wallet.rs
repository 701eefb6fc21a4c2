//! `GET /balance`, `POST /balance/charge`, `GET /balance/transactions`.

use super::{ApiResult, answer, ok};
use crate::ApiState;
use crate::dto::{BalanceDto, ChargeDto, ChargeRequest, TransactionDto, TransactionPage};
use crate::error::ApiError;
use crate::extract::{Authenticated, JsonBody, QueryParams, encode_cursor};
use crate::idempotency::change;
use crate::openapi::params::{CursorQuery, IdempotencyKeyHeader};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use application::ShopError;
use domain::wallet::{Wallet, WalletTransaction};

/// The caller's balance.
#[utoipa::path(get, path = "/api/v1/balance", tag = "balance",
    operation_id = "getBalance",
    responses((status = 200, body = BalanceDto)),
    security(("bearer" = [])))]
pub async fn balance(state: web::Data<ApiState>, auth: Authenticated) -> ApiResult {
    ok(BalanceDto::from(state.shop.balance(auth.0).await?))
}

/// Adds won to the caller's wallet. Idempotent with an `Idempotency-Key`.
#[utoipa::path(post, path = "/api/v1/balance/charge", tag = "balance",
    operation_id = "chargeBalance",
    request_body = ChargeRequest,
    params(IdempotencyKeyHeader),
    responses((status = 200, description = "Charged", body = ChargeDto)),
    security(("bearer" = [])))]
pub async fn charge(
    req: HttpRequest,
    state: web::Data<ApiState>,
    auth: Authenticated,
    body: JsonBody<ChargeRequest>,
) -> ApiResult {
    let actor = auth.0;
    let (body, raw) = body.into_parts()?;
    // Money is an integer number of won: a fraction, a string or an integer beyond i64 is
    // refused as INVALID_AMOUNT, like an amount below the minimum. `1000.0` and `1e3` are the
    // integer 1000 (JSON Schema's reading, and so the OpenAPI document's), as in every body.
    let amount = crate::extract::integral(&body.amount).ok_or_else(|| {
        ApiError::from(ShopError::InvalidAmount(
            "amount must be an integer number of won".into(),
        ))
    })?;
    let shop = state.shop.clone();
    let render = answer(
        StatusCode::OK,
        |(wallet, transaction): &(Wallet, WalletTransaction)| ChargeDto {
            user_id: wallet.user_id.get(),
            balance: wallet.balance,
            transaction: (*transaction).into(),
        },
    );
    change(&req, Some(actor), &raw, render, move |keyed| async move {
        shop.charge(actor, amount, keyed.as_ref()).await
    })
    .await
}

/// The caller's wallet history, newest first.
#[utoipa::path(get, path = "/api/v1/balance/transactions", tag = "balance",
    operation_id = "listBalanceTransactions",
    params(CursorQuery),
    responses((status = 200, body = TransactionPage)),
    security(("bearer" = [])))]
pub async fn transactions(
    req: HttpRequest,
    state: web::Data<ApiState>,
    auth: Authenticated,
) -> ApiResult {
    let mut query = QueryParams::new(&req);
    let page = query.cursor_page();
    query.finish()?;
    let slice = state.shop.wallet_transactions(auth.0, page).await?;
    ok(TransactionPage {
        items: slice.items.into_iter().map(TransactionDto::from).collect(),
        next_cursor: encode_cursor(slice.next),
    })
}
