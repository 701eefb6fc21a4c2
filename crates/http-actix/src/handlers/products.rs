//! The catalog: products, stock adjustments, the stock ledger and the popular products.

use super::{ApiResult, answer, ok};
use crate::ApiState;
use crate::dto::{
    CreateProductRequest, LedgerEntryDto, LedgerPage, PopularDto, ProductDto, ProductPage,
    StockAdjustmentRequest, UpdateProductRequest,
};
use crate::extract::{
    Authenticated, JsonBody, MaybeAuthenticated, QueryParams, encode_cursor, path_id,
};
use crate::idempotency::change;
use crate::openapi::params::{CursorQuery, IdempotencyKeyHeader, PopularQuery, ProductListQuery};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use application::catalog::{ProductDraft, ProductUpdate};
use domain::ProductId;
use domain::page::OffsetPage;
use domain::product::Product;
use domain::product::ProductStatus;

const STATUSES: &str = "ON_SALE, PAUSED, OFF";

/// Products by id ascending. Buyers and anonymous callers see only `ON_SALE` products;
/// sellers and admins may filter by `status`.
#[utoipa::path(get, path = "/api/v1/products", tag = "products",
    operation_id = "listProducts",
    params(ProductListQuery),
    responses((status = 200, body = ProductPage)),
    security((), ("bearer" = [])))]
pub async fn list(
    req: HttpRequest,
    state: web::Data<ApiState>,
    caller: MaybeAuthenticated,
) -> ApiResult {
    let mut query = QueryParams::new(&req);
    let page = query.int("page", 1, 1_000_000, 1);
    let size = query.int("size", 1, 100, 20);
    let status = query.one_of("status", ProductStatus::parse, STATUSES);
    query.finish()?;
    let paged = state
        .shop
        .list_products(caller.0, status, OffsetPage { page, size })
        .await?;
    ok(ProductPage {
        items: paged.items.into_iter().map(ProductDto::from).collect(),
        page,
        size,
        total_items: paged.total_items,
        total_pages: paged.total_items.div_ceil(u64::from(size)),
    })
}

/// One product (404 for buyers when it is `OFF`).
#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "products",
    operation_id = "getProduct",
    params(("id" = i64, Path, minimum = 1, description = "Product id")),
    responses((status = 200, body = ProductDto)),
    security((), ("bearer" = [])))]
pub async fn get(
    req: HttpRequest,
    state: web::Data<ApiState>,
    caller: MaybeAuthenticated,
) -> ApiResult {
    let id: ProductId = path_id(&req)?;
    ok(ProductDto::from(
        state.shop.get_product(caller.0, id).await?,
    ))
}

/// Lists a new product (SELLER, ADMIN); an `INITIAL` ledger row records its stock.
#[utoipa::path(post, path = "/api/v1/products", tag = "products",
    operation_id = "createProduct",
    request_body = CreateProductRequest,
    params(IdempotencyKeyHeader),
    responses((status = 201, body = ProductDto)),
    security(("bearer" = [])))]
pub async fn create(
    req: HttpRequest,
    state: web::Data<ApiState>,
    auth: Authenticated,
    body: JsonBody<CreateProductRequest>,
) -> ApiResult {
    let actor = auth.0;
    let (body, raw) = body.into_parts()?;
    let draft = ProductDraft {
        name: body.name,
        price: body.price,
        stock: body.stock,
        status: body.status.map(Into::into),
    };
    let shop = state.shop.clone();
    let render = answer(StatusCode::CREATED, |product: &Product| {
        ProductDto::from(product.clone())
    });
    change(&req, Some(actor), &raw, render, move |keyed| async move {
        shop.create_product(actor, draft, keyed.as_ref()).await
    })
    .await
}

/// Changes name, price or status (the owning seller or an admin).
#[utoipa::path(patch, path = "/api/v1/products/{id}", tag = "products",
    operation_id = "updateProduct",
    params(("id" = i64, Path, minimum = 1, description = "Product id")),
    request_body = UpdateProductRequest,
    responses((status = 200, body = ProductDto)),
    security(("bearer" = [])))]
pub async fn update(
    req: HttpRequest,
    state: web::Data<ApiState>,
    auth: Authenticated,
    body: JsonBody<UpdateProductRequest>,
) -> ApiResult {
    let id: ProductId = path_id(&req)?;
    let (body, _) = body.into_parts()?;
    let update = ProductUpdate {
        name: body.name,
        price: body.price,
        status: body.status.map(Into::into),
    };
    ok(ProductDto::from(
        state.shop.update_product(auth.0, id, update).await?,
    ))
}

/// Moves the stock by `delta` (the owning seller or an admin); an `ADJUST` ledger row records
/// it. The stock never goes below 0 (409 `OUT_OF_STOCK`).
#[utoipa::path(post, path = "/api/v1/products/{id}/stock-adjustments", tag = "products",
    operation_id = "adjustProductStock",
    params(("id" = i64, Path, minimum = 1, description = "Product id"),
        IdempotencyKeyHeader),
    request_body = StockAdjustmentRequest,
    responses((status = 200, body = ProductDto)),
    security(("bearer" = [])))]
pub async fn adjust_stock(
    req: HttpRequest,
    state: web::Data<ApiState>,
    auth: Authenticated,
    body: JsonBody<StockAdjustmentRequest>,
) -> ApiResult {
    let actor = auth.0;
    let id: ProductId = path_id(&req)?;
    let (body, raw) = body.into_parts()?;
    let shop = state.shop.clone();
    let render = answer(StatusCode::OK, |product: &Product| {
        ProductDto::from(product.clone())
    });
    change(&req, Some(actor), &raw, render, move |keyed| async move {
        shop.adjust_stock(actor, id, body.delta, body.note, keyed.as_ref())
            .await
    })
    .await
}

/// Every stock movement of a product, newest first (the owning seller or an admin).
#[utoipa::path(get, path = "/api/v1/products/{id}/stock-ledger", tag = "products",
    operation_id = "listProductStockLedger",
    params(("id" = i64, Path, minimum = 1, description = "Product id"),
        CursorQuery),
    responses((status = 200, body = LedgerPage)),
    security(("bearer" = [])))]
pub async fn stock_ledger(
    req: HttpRequest,
    state: web::Data<ApiState>,
    auth: Authenticated,
) -> ApiResult {
    let id: ProductId = path_id(&req)?;
    let mut query = QueryParams::new(&req);
    let page = query.cursor_page();
    query.finish()?;
    let slice = state.shop.stock_ledger(auth.0, id, page).await?;
    ok(LedgerPage {
        items: slice.items.into_iter().map(LedgerEntryDto::from).collect(),
        next_cursor: encode_cursor(slice.next),
    })
}

/// Top sellers by net paid quantity over the last `days` business days, today included.
#[utoipa::path(get, path = "/api/v1/products/popular", tag = "products",
    operation_id = "listPopularProducts",
    params(PopularQuery),
    responses((status = 200, body = PopularDto)),
    security((), ("bearer" = [])))]
pub async fn popular(
    req: HttpRequest,
    state: web::Data<ApiState>,
    _caller: MaybeAuthenticated,
) -> ApiResult {
    let mut query = QueryParams::new(&req);
    let days = query.int("days", 1, 30, 3);
    let limit = query.int("limit", 1, 50, 5);
    query.finish()?;
    ok(PopularDto::from(
        state.shop.popular_products(days, limit).await?,
    ))
}
