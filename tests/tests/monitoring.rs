//! The monitoring set-up in `deploy/monitoring` names only metrics the service exports: the
//! real binary runs on PostgreSQL + Redis + Kafka, serves a little of everything (sign-ups, a
//! product, a coupon drop, an order and its payment), and its `/metrics` must then hold every
//! metric an alert rule or a dashboard panel queries. A renamed metric fails here, not at 3 a.m.
//!
//! (`deploy/monitoring.sh` checks the rules themselves with `promtool`.)

#![allow(clippy::unwrap_used)]

mod common;

use common::Database;
use e2e::Shop;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const ADMIN: &str = "e2e-monitoring-admin-token-0123456789";

/// Metric names in PromQL expressions: identifiers with an underscore (label names and PromQL
/// functions have none, except `histogram_quantile`). A histogram's `_bucket` series is looked
/// up as exported, under that name.
fn metric_names(expression: &str) -> BTreeSet<String> {
    expression
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.contains('_') && *word != "histogram_quantile")
        .filter(|word| word.starts_with(|c: char| c.is_ascii_lowercase()))
        .map(str::to_owned)
        .collect()
}

/// Every metric the alert rules and the dashboard query.
fn monitored_metrics() -> BTreeSet<String> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/monitoring");
    let rules = std::fs::read_to_string(format!("{root}/alerts.yml")).unwrap();
    let mut names: BTreeSet<String> = rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("expr:"))
        .flat_map(metric_names)
        .collect();
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{root}/dashboard.json")).unwrap())
            .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            names.extend(metric_names(target["expr"].as_str().unwrap()));
        }
    }
    names
}

fn post(shop: &Shop, path: &str, token: Option<&str>, body: &Value) -> Value {
    let (status, text) = shop.request("POST", path, token, Some(&body.to_string()));
    assert!((200..300).contains(&status), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

/// Exported series names in Prometheus' text format.
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_metric_the_alerts_and_the_dashboard_query_is_exported() {
    let wanted = monitored_metrics();
    assert!(wanted.len() >= 15, "{wanted:?}");
    let db = Database::create("monitoring");
    // The database's own name is unique (process id and time): Redis keys and topics share it.
    let url = db.url();
    let unique = url.rsplit('/').next().unwrap_or("monitoring");
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let kafka = std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let shop = Shop::start(&[
        ("ADMIN_TOKEN", ADMIN),
        ("DATABASE_URL", &db.url()),
        ("REDIS_URL", &redis),
        ("REDIS_KEY_PREFIX", &format!("{unique}:")),
        ("KAFKA_BROKERS", &kafka),
        ("KAFKA_TOPIC_PREFIX", &format!("{unique}.")),
        ("ANON_RATE_LIMIT_PER_SECOND", "0"),
    ]);

    let seller = post(
        &shop,
        "/api/v1/users",
        Some(ADMIN),
        &json!({"name": "seller", "role": "SELLER"}),
    )["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let buyer = post(&shop, "/api/v1/users", None, &json!({"name": "buyer"}))["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let product = post(
        &shop,
        "/api/v1/products",
        Some(&seller),
        &json!({"name": "tea", "price": 1000, "stock": 5}),
    )["id"]
        .as_i64()
        .unwrap();
    let coupon = post(
        &shop,
        "/api/v1/coupons",
        Some(&seller),
        &json!({"name": "drop", "discountType": "AMOUNT", "amount": 100,
                "totalQuantity": 10, "perUserLimit": 1,
                "startsAt": "2020-01-01T00:00:00Z", "expiresAt": "2099-01-01T00:00:00Z"}),
    )["id"]
        .as_i64()
        .unwrap();
    post(
        &shop,
        &format!("/api/v1/coupons/{coupon}/issue"),
        Some(&buyer),
        &json!({}),
    );
    post(
        &shop,
        "/api/v1/balance/charge",
        Some(&buyer),
        &json!({"amount": 5000}),
    );
    let order = post(
        &shop,
        "/api/v1/orders",
        Some(&buyer),
        &json!({"items": [{"productId": product, "quantity": 1}]}),
    )["id"]
        .as_i64()
        .unwrap();
    post(
        &shop,
        "/api/v1/payments",
        Some(&buyer),
        &json!({"orderId": order}),
    );

    // Gauges are sampled every few seconds and the consumers report lag once they fetched.
    let deadline = Instant::now() + Duration::from_secs(60);
    let missing = loop {
        let (status, text) = shop.request("GET", "/metrics", None, None);
        assert_eq!(status, 200, "{text}");
        let have = exported(&text);
        let missing: Vec<&String> = wanted.iter().filter(|m| !have.contains(*m)).collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing.into_iter().cloned().collect::<Vec<_>>();
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        missing.is_empty(),
        "queried by deploy/monitoring but not exported: {missing:?}"
    );
}

#[test]
fn metric_names_are_read_out_of_expressions() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m]))) > 0.5 and max(outbox_failed_events{state="x"}) > 0"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "http_request_duration_seconds_bucket",
            "outbox_failed_events"
        ]
    );
}
