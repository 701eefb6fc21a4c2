//! Liveness, readiness and Prometheus metrics (behind `METRICS_TOKEN` when it is set).

use crate::ApiState;
use crate::dto::{DependencyDto, LiveDto, ReadyDto};
use crate::error::{ApiError, Problem};
use crate::rate_limit::guard_authentication;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use std::time::Duration;

/// How long one dependency check may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// 200 while the process runs.
#[utoipa::path(get, path = "/health/live", tag = "operations",
    operation_id = "getLiveness",
    responses((status = 200, body = LiveDto)),
    security(()))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(LiveDto {
        status: "UP".into(),
    })
}

/// 200 when every configured dependency (database, cache, broker) answers, 503 otherwise.
/// Public: it shows each dependency as `UP` or `DOWN`; why one is down is only logged.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    operation_id = "getReadiness",
    responses(
        (status = 200, description = "Ready", body = ReadyDto),
        (status = 503, description = "A dependency is down", body = ReadyDto)),
    security(()))]
pub async fn ready(state: web::Data<ApiState>) -> HttpResponse {
    let checks = state.health.iter().map(|check| async move {
        let result = match actix_web::rt::time::timeout(CHECK_TIMEOUT, check.check()).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
        };
        (check.name(), result)
    });
    let results = futures::future::join_all(checks).await;
    let up = results.iter().all(|(_, r)| r.is_ok());
    let checks = results
        .into_iter()
        .map(|(name, result)| {
            let status = match result {
                Ok(()) => "UP",
                Err(error) => {
                    // The reason goes to the log only (see `DependencyDto`).
                    tracing::warn!(dependency = name, %error, "readiness check failed");
                    "DOWN"
                }
            };
            let dto = DependencyDto {
                status: status.into(),
            };
            (name.to_owned(), dto)
        })
        .collect();
    let body = ReadyDto {
        status: if up { "UP" } else { "DOWN" }.into(),
        checks,
    };
    if up {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus text exposition. With `METRICS_TOKEN` set, only for
/// `Authorization: Bearer <METRICS_TOKEN>`.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    operation_id = "getMetrics",
    responses(
        (status = 200, description = "Prometheus text format", body = String,
            content_type = "text/plain; version=0.0.4"),
        (status = 401, description = "Problem: UNAUTHENTICATED (METRICS_TOKEN is set and the \
            bearer token is not it)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Problem: RATE_LIMITED (too many failed authentications \
            from this client; see Retry-After)", body = Problem,
            content_type = "application/problem+json")),
    security((), ("metrics_token" = [])))]
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    if let Some(expected) = state.metrics_token.clone() {
        // A wrong token counts as a failed authentication, like any other guess.
        guard_authentication(&req, true, async {
            if presented_bearer(&req).is_some_and(|token| same_secret(token, &expected)) {
                Ok(())
            } else {
                Err(ApiError::unauthenticated())
            }
        })
        .await?;
    }
    // Histograms are drained into their buckets here, so no separate upkeep task is needed.
    state.metrics.run_upkeep();
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render()))
}

/// The credential of an `Authorization: Bearer <token>` header.
fn presented_bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares without stopping at the first differing byte, so that the time taken does not tell
/// how much of a guess was right.
fn same_secret(presented: &str, expected: &str) -> bool {
    let (a, b) = (presented.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}
