use crate::helpers::TestApp;
use domain::ports::HealthCheck;
use domain::rate_limit::RateLimit;
use std::sync::Arc;

struct Dependency {
    name: &'static str,
    up: bool,
}

#[async_trait::async_trait]
impl HealthCheck for Dependency {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn check(&self) -> Result<(), String> {
        if self.up {
            Ok(())
        } else {
            Err("connection refused".into())
        }
    }
}

#[tokio::test]
async fn liveness_and_readiness() {
    let app = TestApp::spawn().await;
    let r = app.get("/health/live", None).await;
    assert_eq!(r.ok(200)["status"], "UP");
    let r = app.get("/health/ready", None).await;
    let body = r.ok(200);
    assert_eq!(body["status"], "UP");
    assert!(
        body["checks"].is_object(),
        "embedded mode has no remote dependency"
    );
}

#[tokio::test]
async fn readiness_is_503_while_a_dependency_is_down() {
    let app = TestApp::spawn_custom(
        |_| {},
        |wiring| {
            wiring.health = vec![
                Arc::new(Dependency {
                    name: "database",
                    up: true,
                }),
                Arc::new(Dependency {
                    name: "cache",
                    up: false,
                }),
            ];
        },
    )
    .await;
    let r = app.get("/health/ready", None).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body["status"], "DOWN");
    assert_eq!(r.body["checks"]["database"]["status"], "UP");
    assert_eq!(r.body["checks"]["cache"]["status"], "DOWN");
    // Why it is down is logged, not shown (the endpoint is public).
    assert_eq!(
        r.body["checks"]["cache"],
        serde_json::json!({"status": "DOWN"})
    );
    assert!(!String::from_utf8_lossy(&r.raw).contains("connection refused"));
    // Liveness does not depend on the dependencies.
    app.get("/health/live", None).await.ok(200);
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern() {
    let app = TestApp::spawn().await;
    let buyer = app.buyer().await;
    app.get("/api/v1/users/me", Some(&buyer.token))
        .await
        .ok(200);
    app.get("/api/v1/users/12345", Some(&buyer.token))
        .await
        .problem(404, "NOT_FOUND");
    let r = app.get("/metrics", None).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = String::from_utf8(r.raw).unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total")
            && l.contains(r#"route="/api/v1/users/{id}""#)
            && l.contains(r#"status="404""#)),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        !text.contains("/api/v1/users/12345"),
        "ids never become labels"
    );
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = TestApp::spawn().await;
    let r = app
        .send(
            "GET",
            "/health/live",
            None,
            &[("X-Request-Id", "req-abc-123")],
            None,
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("req-abc-123"));
    let r = app.get("/health/live", None).await;
    let generated = r.header("x-request-id").unwrap();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    let r = app.get("/nowhere", None).await;
    r.problem(404, "NOT_FOUND");
    assert!(r.header("x-request-id").is_some());
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = TestApp::spawn().await;
    app.get("/api/v1/nothing-here", None)
        .await
        .problem(404, "NOT_FOUND");
    app.get("/api/v2/balance", None)
        .await
        .problem(404, "NOT_FOUND");
    let r = app.send("DELETE", "/api/v1/balance", None, &[], None).await;
    r.problem(405, "METHOD_NOT_ALLOWED");
    assert_eq!(r.header("allow"), Some("GET"));
    let r = app.send("PUT", "/api/v1/products/1", None, &[], None).await;
    r.problem(405, "METHOD_NOT_ALLOWED");
    assert_eq!(r.header("allow"), Some("GET, PATCH"));
}

/// Every path of API.md, with its methods, as the OpenAPI document must list them.
const API_PATHS: &[(&str, &[&str])] = &[
    ("/api/v1/users", &["post"]),
    ("/api/v1/users/me", &["get"]),
    ("/api/v1/users/{id}", &["get"]),
    ("/api/v1/users/me/token", &["post"]),
    ("/api/v1/users/{id}/token", &["post"]),
    ("/api/v1/balance", &["get"]),
    ("/api/v1/balance/charge", &["post"]),
    ("/api/v1/balance/transactions", &["get"]),
    ("/api/v1/products", &["get", "post"]),
    ("/api/v1/products/popular", &["get"]),
    ("/api/v1/products/{id}", &["get", "patch"]),
    ("/api/v1/products/{id}/stock-adjustments", &["post"]),
    ("/api/v1/products/{id}/stock-ledger", &["get"]),
    ("/api/v1/coupons", &["get", "post"]),
    ("/api/v1/coupons/my", &["get"]),
    ("/api/v1/coupons/{id}", &["get"]),
    ("/api/v1/coupons/{id}/issue", &["post"]),
    ("/api/v1/orders", &["get", "post"]),
    ("/api/v1/orders/{id}", &["get"]),
    ("/api/v1/orders/{id}/cancel", &["post"]),
    ("/api/v1/payments", &["post"]),
    ("/api/v1/payments/{id}", &["get"]),
    ("/api/v1/admin/outbox", &["get"]),
    ("/api/v1/admin/outbox/{id}/retry", &["post"]),
    ("/health/live", &["get"]),
    ("/health/ready", &["get"]),
    ("/metrics", &["get"]),
];

#[tokio::test]
async fn the_openapi_document_describes_every_endpoint() {
    let app = TestApp::spawn().await;
    let r = app.get("/api-docs/openapi.json", None).await;
    let doc = r.ok(200);
    assert!(doc["openapi"].as_str().unwrap().starts_with('3'));
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in API_PATHS {
        let item = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is missing"));
        for method in *methods {
            let op = &item[*method];
            assert!(op.is_object(), "{method} {path} is missing");
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path} has no success response"
            );
            if path.starts_with("/api/v1") {
                let problem = &responses["500"]["content"]["application/problem+json"];
                assert_eq!(problem["schema"]["$ref"], "#/components/schemas/Problem");
                if *path != "/api/v1/users" || *method != "post" {
                    assert!(responses.contains_key("401"), "{method} {path} lacks 401");
                }
            }
        }
    }
    assert_eq!(paths.len(), API_PATHS.len(), "no undocumented extras");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let charge = &doc["paths"]["/api/v1/balance/charge"]["post"];
    assert!(
        charge["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap()
            .ends_with("ChargeRequest")
    );
    for schema in [
        "OrderDto",
        "ProductDto",
        "CouponDto",
        "PaymentDto",
        "Problem",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
}

#[tokio::test]
async fn swagger_ui_is_served() {
    let app = TestApp::spawn().await;
    let r = app.get("/api-docs/", None).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let html = String::from_utf8(r.raw).unwrap();
    assert!(html.contains("swagger"), "{html}");
    let r = app.get("/api-docs", None).await;
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some("/api-docs/"));
}

#[tokio::test]
async fn a_user_over_its_rate_limit_gets_429_with_retry_after_and_changes_nothing() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limits.per_user = RateLimit {
            per_second: 1,
            burst: 3,
        };
    })
    .await;
    let buyer = app.buyer().await;
    // The burst: three requests pass (one charge among them).
    app.charge(&buyer.token, 1_000).await.ok(200);
    assert_eq!(app.balance(&buyer.token).await, 1_000);
    app.get("/api/v1/users/me", Some(&buyer.token))
        .await
        .ok(200);

    let refused = app.charge(&buyer.token, 1_000).await;
    refused.problem(429, "RATE_LIMITED");
    let retry_after: u64 = refused
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(retry_after >= 1, "{retry_after}");

    // Another user is not affected; the refused charge left no trace.
    let other = app.buyer().await;
    app.get("/api/v1/users/me", Some(&other.token))
        .await
        .ok(200);
    tokio::time::sleep(std::time::Duration::from_secs(retry_after)).await;
    assert_eq!(app.balance(&buyer.token).await, 1_000);
}

#[tokio::test]
async fn a_metrics_token_closes_metrics_to_everyone_else() {
    let app = TestApp::spawn_with(|c| {
        c.metrics_token = Some(bootstrap::Secret::new("scrape-token-0123"));
    })
    .await;
    app.get("/metrics", None)
        .await
        .problem(401, "UNAUTHENTICATED");
    app.get("/metrics", Some("scrape-token-0124"))
        .await
        .problem(401, "UNAUTHENTICATED");
    // A user's token is no metrics token either.
    let buyer = app.buyer().await;
    app.get("/metrics", Some(&buyer.token))
        .await
        .problem(401, "UNAUTHENTICATED");
    let r = app.get("/metrics", Some("scrape-token-0123")).await;
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.raw).contains("http_requests_total"));
}

#[tokio::test]
async fn anonymous_sign_ups_and_failed_authentications_have_per_client_budgets() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limits.anonymous = RateLimit {
            per_second: 1,
            burst: 3,
        };
    })
    .await;
    for n in 0..3 {
        app.post(
            "/api/v1/users",
            None,
            &serde_json::json!({"name": format!("u{n}")}),
        )
        .await
        .ok(201);
    }
    let refused = app
        .post("/api/v1/users", None, &serde_json::json!({"name": "u3"}))
        .await;
    refused.problem(429, "RATE_LIMITED");
    assert!(refused.header("retry-after").is_some());
    // Guessing tokens has a budget of its own, and the admin (a valid token) is not affected.
    for _ in 0..3 {
        app.get("/api/v1/users/me", Some("guess"))
            .await
            .problem(401, "UNAUTHENTICATED");
    }
    app.get("/api/v1/users/me", Some("guess"))
        .await
        .problem(429, "RATE_LIMITED");
    app.get("/api/v1/balance", None)
        .await
        .problem(429, "RATE_LIMITED");
    // Public reads without a token are never touched.
    app.get("/api/v1/products", None).await.ok(200);
}
