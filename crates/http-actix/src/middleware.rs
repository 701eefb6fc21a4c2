//! The request envelope every route shares: a request id (accepted from `X-Request-Id` or
//! generated), a tracing span carrying it, Prometheus metrics by route pattern and status, and
//! the headers every answer carries (`X-Content-Type-Options: nosniff`; `Cache-Control:
//! no-store` on answers to authenticated requests, which are the caller's own data).
//!
//! Metric labels come from closed sets only (the standard methods or `OTHER`, the registered
//! route patterns or `unmatched`, the status code): nothing a client sends can create a new
//! time series.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use std::time::Instant;
use tracing::Instrument;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the current request, in its extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Accepts a client's id when it is short printable ASCII (so it is safe to log and echo).
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// The `method` label: a standard method's name, `OTHER` for any extension method.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "OTHER",
    }
}

/// The `route` label for a request no route pattern matched.
const UNMATCHED: &str = "unmatched";

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let id = request_id(&req);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = method_label(req.method());
    let authenticated = req.headers().contains_key(header::AUTHORIZATION);
    let span = tracing::info_span!(
        "http_request",
        request_id = %id,
        method = %req.method(),
        path = %req.path(),
        route = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    // Handlers and extractors turn their errors into responses, so `Err` only comes from a
    // failing inner middleware; it is counted and passed on. (The request must not be cloned
    // before `call`: routing needs it uniquely owned.)
    let mut response = match next.call(req).instrument(span.clone()).await {
        Ok(response) => response.map_into_boxed_body(),
        Err(error) => {
            let status = error.as_response_error().status_code().as_u16().to_string();
            let labels = [
                ("method", method.to_owned()),
                ("route", UNMATCHED.to_owned()),
                ("status", status),
            ];
            metrics::counter!("http_requests_total", &labels).increment(1);
            return Err(error);
        }
    };
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| UNMATCHED.to_owned());
    let status = response.status().as_u16();
    span.record("route", route.as_str());
    span.record("status", status);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    // Browsers must take the declared content type at its word (a problem document or a JSON
    // answer echoing client text is never sniffed into HTML).
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // An answer to a request with credentials is that caller's (or says they are invalid): no
    // shared or browser cache may keep it.
    if authenticated {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed);
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(elapsed_ms = elapsed * 1e3, "request failed");
        } else {
            tracing::info!(elapsed_ms = elapsed * 1e3, "request finished");
        }
    });
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_are_a_closed_set() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for made_up in ["BREW", "XMADEUP1", "get", "PROPFIND"] {
            let method = Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "OTHER", "{made_up}");
        }
    }
}
