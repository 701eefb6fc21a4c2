//! The inbound HTTP adapter: actix-web handlers for every endpoint of API.md, their DTOs, the
//! problem+json error mapping ([`ApiError`]), bearer authentication, `Idempotency-Key`
//! handling, the OpenAPI document ([`ApiDoc`]) with Swagger UI, health and Prometheus metrics.
//!
//! Entry points: [`app`] builds a complete actix `App` (middleware included) for an
//! `HttpServer`; [`configure`] registers the routes on a `ServiceConfig` for callers that build
//! their own `App`.

mod dto;
mod error;
mod extract;
mod handlers;
mod idempotency;
mod middleware;
mod openapi;
mod rate_limit;

pub use error::{ApiError, PROBLEM_JSON, Problem};
pub use extract::{BodyTimeout, MAX_BODY_BYTES};
pub use idempotency::{HEADER as IDEMPOTENCY_KEY_HEADER, REPLAYED_HEADER};
pub use middleware::{REQUEST_ID_HEADER, RequestId};
pub use openapi::ApiDoc;
pub use rate_limit::{TrustedProxies, client_address};

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpResponse, Resource, web};
use application::Shop;
use domain::ports::HealthCheck;
use handlers::{admin, coupons, ops, orders, payments, products, users, wallet};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub shop: Shop,
    /// The dependencies `/health/ready` reports on (none in the embedded mode).
    pub health: Vec<Arc<dyn HealthCheck>>,
    /// Renders `/metrics`; the recorder behind it is installed by the binary.
    pub metrics: PrometheusHandle,
    /// The request budgets (per user, and per client before authentication).
    pub rate_limits: Arc<application::rate_limits::RateLimits>,
    /// Whose `X-Forwarded-For` names the client (`TRUSTED_PROXIES`).
    pub trusted_proxies: TrustedProxies,
    /// When set, `/metrics` answers only to `Authorization: Bearer <this>` (`METRICS_TOKEN`).
    pub metrics_token: Option<Arc<str>>,
    /// How long a request body may take to arrive once its head has (`BODY_TIMEOUT_MS`).
    pub body_timeout: BodyTimeout,
}

/// The complete application: routes plus the request-id / tracing / metrics middleware.
pub fn app(
    state: ApiState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .wrap(actix_web::middleware::from_fn(middleware::observe))
        .configure(|cfg| configure(cfg, state))
}

/// A resource that answers 405 problem+json (with `Allow`) to the methods it does not have.
fn resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow })
    }))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}

/// Registers every route, the shared state, the body-size limit and the body timeout.
pub fn configure(cfg: &mut web::ServiceConfig, state: ApiState) {
    use web::{get, patch, post};
    let body_timeout = state.body_timeout;
    cfg.app_data(web::Data::new(state))
        .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .app_data(body_timeout)
        .service(
            web::scope("/api/v1")
                .service(resource("/users", "POST").route(post().to(users::sign_up)))
                .service(resource("/users/me", "GET").route(get().to(users::me)))
                .service(resource("/users/{id}", "GET").route(get().to(users::get_user)))
                // Before `/users/{id}/token`, which would otherwise take "me" as an id.
                .service(resource("/users/me/token", "POST").route(post().to(users::roll_token)))
                .service(
                    resource("/users/{id}/token", "POST").route(post().to(users::reissue_token)),
                )
                .service(resource("/balance", "GET").route(get().to(wallet::balance)))
                .service(resource("/balance/charge", "POST").route(post().to(wallet::charge)))
                .service(
                    resource("/balance/transactions", "GET").route(get().to(wallet::transactions)),
                )
                .service(
                    resource("/products", "GET, POST")
                        .route(get().to(products::list))
                        .route(post().to(products::create)),
                )
                // Before `/products/{id}`, which would otherwise take "popular" as an id.
                .service(resource("/products/popular", "GET").route(get().to(products::popular)))
                .service(
                    resource("/products/{id}", "GET, PATCH")
                        .route(get().to(products::get))
                        .route(patch().to(products::update)),
                )
                .service(
                    resource("/products/{id}/stock-adjustments", "POST")
                        .route(post().to(products::adjust_stock)),
                )
                .service(
                    resource("/products/{id}/stock-ledger", "GET")
                        .route(get().to(products::stock_ledger)),
                )
                .service(
                    resource("/coupons", "GET, POST")
                        .route(get().to(coupons::list))
                        .route(post().to(coupons::create)),
                )
                // Before `/coupons/{id}`.
                .service(resource("/coupons/my", "GET").route(get().to(coupons::mine)))
                .service(resource("/coupons/{id}", "GET").route(get().to(coupons::get)))
                .service(resource("/coupons/{id}/issue", "POST").route(post().to(coupons::issue)))
                .service(
                    resource("/orders", "GET, POST")
                        .route(get().to(orders::list))
                        .route(post().to(orders::place)),
                )
                .service(resource("/orders/{id}", "GET").route(get().to(orders::get)))
                .service(resource("/orders/{id}/cancel", "POST").route(post().to(orders::cancel)))
                .service(resource("/payments", "POST").route(post().to(payments::pay)))
                .service(resource("/payments/{id}", "GET").route(get().to(payments::get)))
                .service(resource("/admin/outbox", "GET").route(get().to(admin::outbox)))
                .service(
                    resource("/admin/outbox/{id}/retry", "POST").route(post().to(admin::retry)),
                ),
        )
        .service(resource("/health/live", "GET").route(get().to(ops::live)))
        .service(resource("/health/ready", "GET").route(get().to(ops::ready)))
        .service(resource("/metrics", "GET").route(get().to(ops::metrics)))
        .service(resource("/api-docs", "GET").route(get().to(|| async {
            HttpResponse::PermanentRedirect()
                .insert_header(("Location", "/api-docs/"))
                .finish()
        })))
        .service(
            SwaggerUi::new("/api-docs/{_:.*}").url("/api-docs/openapi.json", ApiDoc::openapi()),
        )
        .default_service(web::to(not_found));
}
