//! Liveness, readiness and Prometheus metrics.

use crate::ApiState;
use crate::dto::{DependencyDto, LiveDto, ReadyDto};
use actix_web::{HttpResponse, web};
use std::time::Duration;

/// How long one dependency check may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// 200 while the process runs.
#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses((status = 200, body = LiveDto)))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(LiveDto {
        status: "UP".into(),
    })
}

/// 200 when every configured dependency (database, cache, broker) answers, 503 otherwise.
/// Public: it shows each dependency as `UP` or `DOWN`; why one is down is only logged.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = ReadyDto),
        (status = 503, description = "A dependency is down", body = ReadyDto)))]
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

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String,
        content_type = "text/plain; version=0.0.4")))]
pub async fn metrics(state: web::Data<ApiState>) -> HttpResponse {
    // Histograms are drained into their buckets here, so no separate upkeep task is needed.
    state.metrics.run_upkeep();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
