//! Hostile requests: input built to break the service (timestamps past the supported range,
//! control characters, trailing or reshaped JSON, made-up methods, doubled headers, truncated
//! tokens) answers problem+json, changes nothing and leaves the service serving.

use crate::helpers::TestApp;
use domain::ports::HealthCheck;
use serde_json::{Value, json};
use std::sync::Arc;

/// In RFC 3339 but past year 9999 once converted to UTC (or before year 1): a worker that
/// converted it unchecked panicked, and a stored one broke every later `GET /coupons`.
#[tokio::test]
async fn timestamps_outside_years_1_to_9999_in_utc_are_refused() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    for (field, extra) in [
        (
            "expiresAt",
            json!({"expiresAt": "9999-12-31T23:59:59-23:59"}),
        ),
        ("startsAt", json!({"startsAt": "0001-01-01T00:00:00+23:59"})),
        ("expiresAt", json!({"expiresAt": "10000-01-01T00:00:00Z"})),
    ] {
        app.coupon(&seller, extra).await.invalid(field);
    }
    // The edges themselves are fine.
    app.coupon(&seller, json!({"expiresAt": "9999-12-31T23:59:59Z"}))
        .await
        .ok(201);
    app.coupon(&seller, json!({"expiresAt": "9999-12-31T23:59:59+23:59"}))
        .await
        .ok(201);
    let list = app.get("/api/v1/coupons", Some(&seller.token)).await;
    let mut expiries: Vec<&str> = list.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["expiresAt"].as_str().unwrap())
        .collect();
    expiries.sort_unstable();
    assert_eq!(expiries, ["9999-12-31T00:00:59Z", "9999-12-31T23:59:59Z"]);
}

/// NUL and other control characters in any text field: 400 naming the field, nothing stored
/// (PostgreSQL refuses NUL in text, which answered 500).
#[tokio::test]
async fn control_characters_in_text_fields_are_refused() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let product = app.product(&seller, 100, 10).await;
    for bad in [
        "a\u{0}b",
        "a\u{7}b",
        "tab\tinside",
        "line\nbreak",
        "\u{1b}[31m",
        "x\u{9f}",
    ] {
        app.post("/api/v1/users", None, &json!({ "name": bad }))
            .await
            .invalid("name");
        app.post(
            "/api/v1/products",
            Some(&seller.token),
            &json!({"name": bad, "price": 1, "stock": 1}),
        )
        .await
        .invalid("name");
        app.patch(
            &format!("/api/v1/products/{product}"),
            Some(&seller.token),
            &json!({ "name": bad }),
        )
        .await
        .invalid("name");
        app.post(
            &format!("/api/v1/products/{product}/stock-adjustments"),
            Some(&seller.token),
            &json!({"delta": 1, "note": bad}),
        )
        .await
        .invalid("note");
        app.coupon(&seller, json!({ "name": bad }))
            .await
            .invalid("name");
    }
    assert_eq!(app.stock(product).await, 10);
    let products = app.get("/api/v1/products", None).await;
    assert_eq!(products.ok(200)["totalItems"], 1);
    assert_eq!(products.body["items"][0]["name"], "Widget");
    let coupons = app.get("/api/v1/coupons", Some(&seller.token)).await;
    assert_eq!(coupons.ok(200)["items"], json!([]));
    // Printable text from any script still passes.
    app.post("/api/v1/users", None, &json!({"name": "김 Ünïcødé ☕"}))
        .await
        .ok(201);
}

/// A body is one JSON object and nothing after it, and a nested object is never accepted in
/// array form.
#[tokio::test]
async fn a_body_is_exactly_one_json_object_at_every_level() {
    let app = TestApp::spawn().await;
    let buyer = app.funded_buyer(5_000).await;
    let seller = app.seller().await;
    let product = app.product(&seller, 100, 10).await;
    for body in [
        r#"{"amount":100}{"amount":999}"#,
        r#"{"amount":100}xyz"#,
        r#"{"amount":100} ,"#,
        r#"{"amount":100}]"#,
        r#"{"amount":100} 1"#,
    ] {
        app.post_raw("/api/v1/balance/charge", Some(&buyer.token), body, &[])
            .await
            .invalid("body");
    }
    // Trailing whitespace is not content.
    app.post_raw(
        "/api/v1/balance/charge",
        Some(&buyer.token),
        "{\"amount\":100} \r\n\t ",
        &[],
    )
    .await
    .ok(200);
    assert_eq!(app.balance(&buyer.token).await, 5_100);

    let r = app
        .post_raw(
            "/api/v1/orders",
            Some(&buyer.token),
            &format!(r#"{{"items":[[{product},1]]}}"#),
            &[],
        )
        .await;
    r.invalid("items[0]");
    assert_eq!(app.stock(product).await, 10);
    let orders = app.get("/api/v1/orders", Some(&buyer.token)).await;
    assert_eq!(orders.ok(200)["items"], json!([]));
}

/// Methods are a closed set of label values: made-up methods share one, `OTHER`.
#[tokio::test]
async fn made_up_methods_do_not_create_metric_labels() {
    let app = TestApp::spawn().await;
    for i in 0..25 {
        let method = format!("XMADEUP{i}");
        let r = app.send(&method, "/api/v1/products", None, &[], None).await;
        assert_eq!(r.status, 405, "{r:?}");
        let r = app
            .send(&method, &format!("/no/such/path/{i}"), None, &[], None)
            .await;
        assert_eq!(r.status, 404, "{r:?}");
    }
    let r = app.get("/metrics", None).await;
    let text = String::from_utf8(r.raw).unwrap();
    assert!(!text.contains("XMADEUP"), "{text}");
    assert!(!text.contains("/no/such/path"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total")
            && l.contains(r#"method="OTHER""#)
            && l.contains(r#"route="/api/v1/products""#)
            && l.contains(r#"status="405""#)),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total")
            && l.contains(r#"method="OTHER""#)
            && l.contains(r#"route="unmatched""#)),
        "{text}"
    );
}

/// Two `Authorization` headers are ambiguous: neither is believed.
#[tokio::test]
async fn two_authorization_headers_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let buyer = app.buyer().await;
    let admin = format!("Bearer {}", app.admin_token);
    let buyer_auth = format!("Bearer {}", buyer.token);
    for second in [buyer_auth.as_str(), "Bearer nope", admin.as_str()] {
        let r = app
            .send(
                "GET",
                "/api/v1/users/me",
                None,
                &[("Authorization", &admin), ("Authorization", second)],
                None,
            )
            .await;
        r.problem(401, "UNAUTHENTICATED");
    }
    // Also where a token is optional.
    let r = app
        .send(
            "GET",
            "/api/v1/products",
            None,
            &[("Authorization", &admin), ("Authorization", &buyer_auth)],
            None,
        )
        .await;
    r.problem(401, "UNAUTHENTICATED");
    app.get("/api/v1/users/me", Some(&app.admin_token))
        .await
        .ok(200);
}

/// Only a complete signed token (or `ADMIN_TOKEN`) authenticates: its random part alone, whose
/// hash the users row holds, does not.
#[tokio::test]
async fn only_complete_signed_tokens_and_the_admin_token_authenticate() {
    let app = TestApp::spawn().await;
    let buyer = app.buyer().await;
    let random = buyer.token.split('.').next().unwrap();
    assert_eq!(random.len(), 43);
    let (claims, _) = buyer.token.rsplit_once('.').unwrap();
    for token in [random, &buyer.token[..43], claims, "anything-at-all"] {
        app.get("/api/v1/users/me", Some(token))
            .await
            .problem(401, "UNAUTHENTICATED");
    }
    app.get("/api/v1/users/me", Some(&buyer.token))
        .await
        .ok(200);
    let me = app.get("/api/v1/users/me", Some(&app.admin_token)).await;
    assert_eq!(me.ok(200)["role"], "ADMIN");
}

#[tokio::test]
async fn answers_are_nosniff_and_authenticated_ones_are_not_stored() {
    let app = TestApp::spawn().await;
    let buyer = app.buyer().await;
    let answers = [
        app.get("/health/live", None).await,
        app.get("/api/v1/products", None).await,
        app.get("/no/such/path", None).await,
        app.get("/api/v1/users/me", None).await,
        app.get("/api/v1/users/me", Some(&buyer.token)).await,
    ];
    for r in &answers {
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{r:?}");
    }
    let me = app.get("/api/v1/users/me", Some(&buyer.token)).await;
    assert_eq!(me.header("cache-control"), Some("no-store"), "{me:?}");
    let missing = app.get("/api/v1/users/99999", Some(&buyer.token)).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("cache-control"), Some("no-store"));
    // The sign-up answer carries the only copy of a token, with or without a caller.
    let r = app
        .post("/api/v1/users", None, &json!({"name": "new"}))
        .await;
    assert!(r.ok(201)["token"].is_string());
    assert_eq!(r.header("cache-control"), Some("no-store"), "{r:?}");
}

struct Leaky;

#[async_trait::async_trait]
impl HealthCheck for Leaky {
    fn name(&self) -> &'static str {
        "database"
    }

    async fn check(&self) -> Result<(), String> {
        Err("password authentication failed for user shop at 10.1.2.3:5432".into())
    }
}

/// Readiness shows each dependency's state to anyone; why it is down goes to the log only.
#[tokio::test]
async fn readiness_never_shows_dependency_errors() {
    let app = TestApp::spawn_custom(|_| {}, |wiring| wiring.health = vec![Arc::new(Leaky)]).await;
    let r = app.get("/health/ready", None).await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.body,
        json!({"status": "DOWN", "checks": {"database": {"status": "DOWN"}}})
    );
    let raw = String::from_utf8_lossy(&r.raw);
    assert!(
        !raw.contains("10.1.2.3") && !raw.contains("password"),
        "{raw}"
    );
}

/// Re-driving an event that is not FAILED is a state conflict (409), not a malformed request.
#[tokio::test]
async fn retrying_an_outbox_event_that_is_not_failed_is_a_conflict() {
    let app = TestApp::spawn().await;
    let seller = app.seller().await;
    let product = app.product(&seller, 1_000, 5).await;
    let buyer = app.funded_buyer(10_000).await;
    let order = app.order_id(&buyer.token, &[(product, 1)]).await;
    app.pay(&buyer.token, order).await.ok(201);
    let list = app
        .get("/api/v1/admin/outbox", Some(&app.admin_token))
        .await;
    let event = list.ok(200)["items"][0].clone();
    assert_ne!(event["status"], "FAILED");
    let id = event["id"].as_i64().unwrap();
    let r = app
        .post_raw(
            &format!("/api/v1/admin/outbox/{id}/retry"),
            Some(&app.admin_token),
            "",
            &[],
        )
        .await;
    let problem = r.problem(409, "OUTBOX_EVENT_NOT_FAILED");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("FAILED")),
        "{problem}"
    );
    let after = app
        .get("/api/v1/admin/outbox", Some(&app.admin_token))
        .await;
    assert_eq!(after.ok(200)["items"][0]["id"], Value::from(id));
}
