//! A typed test client: [`TestApp::spawn`] builds the real [`Application`] in-process on
//! 127.0.0.1, port 0, and every test talks real HTTP to it with reqwest.
//!
//! Profiles: `TEST_PROFILE` selects the adapters:
//! - `memory` (default): the embedded in-memory adapters;
//! - `full`: PostgreSQL (a fresh database cloned from a migrated template per app,
//!   `TEST_DATABASE_URL`), Redis (`REDIS_URL`, a unique key prefix per app) and Kafka
//!   (`KAFKA_BROKERS`, unique topic names per app), exactly as the binary wires them.
//!
//! Construction lives in [`TestApp::spawn_custom`] only. `TEST_LOG=1` prints the server's logs.

#![allow(dead_code)]

use application::Shop;
use async_trait::async_trait;
use bootstrap::wiring::{self, Wiring};
use bootstrap::{Application, Config, LogFormat, Secret};
use domain::coupon::Coupon;
use domain::ports::{CouponGate, GateDecision, GateError, IssuedCounts};
use domain::rate_limit::RateLimit;
use domain::{CouponId, UserId};
use persistence_diesel::test_db::FreshDatabase;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use tokio::sync::oneshot;

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub admin_token: String,
    pub shop: Shop,
    /// The gate as wired, behind a switch that simulates its outage.
    gate: Arc<SwitchableGate>,
    stop: Option<oneshot::Sender<()>>,
    /// The full profile's database, dropped after the application stops.
    database: Option<FreshDatabase>,
}

/// A gate that answers `Unavailable` while switched off, as a gate whose Redis is down does
/// (the real Redis outage is exercised in cache-redis's and the e2e failure tests).
pub struct SwitchableGate {
    inner: Arc<dyn CouponGate>,
    available: AtomicBool,
}

impl SwitchableGate {
    fn check(&self) -> Result<(), GateError> {
        if self.available.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(GateError::Unavailable("switched off by the test".into()))
        }
    }
}

#[async_trait]
impl CouponGate for SwitchableGate {
    async fn try_acquire(&self, coupon: &Coupon, user: UserId) -> Result<GateDecision, GateError> {
        self.check()?;
        self.inner.try_acquire(coupon, user).await
    }

    async fn release(&self, coupon: CouponId, user: UserId) -> Result<(), GateError> {
        self.check()?;
        self.inner.release(coupon, user).await
    }

    async fn load(&self, coupon: &Coupon, counts: &IssuedCounts) -> Result<(), GateError> {
        self.check()?;
        self.inner.load(coupon, counts).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An HTTP answer, with its body both raw and parsed.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub raw: Vec<u8>,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json answer with this status and code; returns the body.
    #[track_caller]
    pub fn problem(&self, status: u16, code: &str) -> &Value {
        assert_eq!(
            self.status, status,
            "expected {status} {code}, got {self:?}"
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{self:?}"
        );
        assert_eq!(self.body["code"], code, "{}", self.body);
        assert_eq!(self.body["status"], status);
        let kebab = code.to_ascii_lowercase().replace('_', "-");
        assert_eq!(
            self.body["type"],
            format!("https://errors.shop.dev/{kebab}")
        );
        assert!(self.body["title"].is_string() && self.body["detail"].is_string());
        &self.body
    }

    /// Asserts 400 VALIDATION_FAILED naming `field` among its errors.
    #[track_caller]
    pub fn invalid(&self, field: &str) -> &Value {
        let body = self.problem(400, "VALIDATION_FAILED");
        let fields: Vec<&str> = body["errors"]
            .as_array()
            .expect("errors array")
            .iter()
            .map(|e| e["field"].as_str().unwrap_or_default())
            .collect();
        assert!(fields.contains(&field), "{field} not in {fields:?}");
        body
    }

    #[track_caller]
    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "{self:?}");
        &self.body
    }
}

/// A signed-up user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub token: String,
}

static LOGS: Once = Once::new();

fn unique_token() -> String {
    format!("test-admin-{}", uuid_like())
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos:x}-{}", N.fetch_add(1, Ordering::Relaxed))
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_custom(tweak, |_| {}).await
    }

    /// The one place where a test application is put together: `tweak` adjusts the
    /// configuration, `rewire` the adapters of the selected profile.
    pub async fn spawn_custom(
        tweak: impl FnOnce(&mut Config),
        rewire: impl FnOnce(&mut Wiring),
    ) -> Self {
        if std::env::var_os("TEST_LOG").is_some() {
            LOGS.call_once(|| {
                bootstrap::telemetry::init(LogFormat::Pretty, "info", std::io::stdout)
            });
        }
        let mut config = Config {
            host: "127.0.0.1".into(),
            port: 0,
            admin_token: Some(Secret::new(unique_token())),
            ..Config::default()
        };
        // Every test signs its users up from 127.0.0.1, many per test: the per-client budgets
        // before authentication are switched off here and enabled by the tests about them.
        config.rate_limits.anonymous = RateLimit::DISABLED;
        tweak(&mut config);
        let profile = std::env::var("TEST_PROFILE").unwrap_or_else(|_| "memory".into());
        let database = match profile.as_str() {
            "memory" => None,
            "full" => {
                let database = FreshDatabase::new().await;
                let unique = uuid_like().replace('-', "");
                config.database_url = Some(Secret::new(database.url.clone()));
                config.redis_url = Some(Secret::new(
                    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
                ));
                config.redis_key_prefix = format!("test:{unique}:");
                config.kafka_brokers = vec![
                    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into()),
                ];
                config.kafka_topic_prefix = format!("test.{unique}.");
                Some(database)
            }
            other => panic!("unknown TEST_PROFILE {other:?} (known: memory, full)"),
        };
        let mut wiring: Wiring = wiring::wire(&config).await.expect("wiring");
        let gate = Arc::new(SwitchableGate {
            inner: wiring.ports.gate.clone(),
            available: AtomicBool::new(true),
        });
        wiring.ports.gate = gate.clone();
        let mut wiring = wiring;
        rewire(&mut wiring);
        let admin_token = config
            .admin_token
            .as_ref()
            .map(|t| t.expose().to_owned())
            .expect("admin token");
        let app = Application::build_with(config, wiring)
            .await
            .expect("application builds");
        let port = app.port();
        let shop = app.shop().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            address: format!("http://127.0.0.1:{port}"),
            port,
            client,
            admin_token,
            shop,
            gate,
            stop: Some(stop),
            database,
        }
    }

    pub fn set_gate_available(&self, available: bool) {
        self.gate.available.store(available, Ordering::SeqCst);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Sends a request; `body` is sent as raw bytes with the given headers.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        for (name, value) in headers {
            req = req.header(*name, HeaderValue::from_str(value).expect("header"));
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let response = req.send().await.expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let raw = response.bytes().await.expect("body").to_vec();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            raw,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.send("GET", path, token, &[], None).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.post_raw(path, token, &body.to_string(), &[]).await
    }

    /// POST with a JSON body and an `Idempotency-Key`.
    pub async fn post_key(&self, path: &str, token: &str, key: &str, body: &Value) -> Resp {
        self.post_raw(
            path,
            Some(token),
            &body.to_string(),
            &[("Idempotency-Key", key)],
        )
        .await
    }

    /// POST of exactly these bytes as `application/json`, plus extra headers.
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut all = vec![("Content-Type", "application/json")];
        all.extend_from_slice(headers);
        self.send("POST", path, token, &all, Some(body.as_bytes().to_vec()))
            .await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.send(
            "PATCH",
            path,
            token,
            &[("Content-Type", "application/json")],
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    // ----------------------------------------------------------------- business shortcuts

    pub async fn sign_up(&self, name: &str, role: &str) -> User {
        let body = json!({"name": name, "role": role});
        let admin = (role != "BUYER").then_some(self.admin_token.as_str());
        let r = self.post("/api/v1/users", admin, &body).await;
        let body = r.ok(201);
        User {
            id: body["id"].as_i64().expect("id"),
            token: body["token"].as_str().expect("token").to_owned(),
        }
    }

    pub async fn buyer(&self) -> User {
        self.sign_up("buyer", "BUYER").await
    }

    pub async fn seller(&self) -> User {
        self.sign_up("seller", "SELLER").await
    }

    /// A buyer with `amount` won in the wallet.
    pub async fn funded_buyer(&self, amount: i64) -> User {
        let buyer = self.buyer().await;
        if amount > 0 {
            self.charge(&buyer.token, amount).await.ok(200);
        }
        buyer
    }

    pub async fn charge(&self, token: &str, amount: i64) -> Resp {
        self.post(
            "/api/v1/balance/charge",
            Some(token),
            &json!({"amount": amount}),
        )
        .await
    }

    pub async fn balance(&self, token: &str) -> i64 {
        let r = self.get("/api/v1/balance", Some(token)).await;
        r.ok(200)["balance"].as_i64().expect("balance")
    }

    /// A product of `seller` with this price and stock, ON_SALE; returns its id.
    pub async fn product(&self, seller: &User, price: i64, stock: i64) -> i64 {
        let r = self
            .post(
                "/api/v1/products",
                Some(&seller.token),
                &json!({"name": "Widget", "price": price, "stock": stock}),
            )
            .await;
        r.ok(201)["id"].as_i64().expect("product id")
    }

    pub async fn stock(&self, product: i64) -> i64 {
        let r = self
            .get(
                &format!("/api/v1/products/{product}"),
                Some(&self.admin_token),
            )
            .await;
        r.ok(200)["stock"].as_i64().expect("stock")
    }

    pub async fn order(&self, token: &str, items: &[(i64, i64)]) -> Resp {
        let items: Vec<Value> = items
            .iter()
            .map(|(p, q)| json!({"productId": p, "quantity": q}))
            .collect();
        self.post("/api/v1/orders", Some(token), &json!({"items": items}))
            .await
    }

    /// Places an order that must succeed; returns its id.
    pub async fn order_id(&self, token: &str, items: &[(i64, i64)]) -> i64 {
        self.order(token, items).await.ok(201)["id"]
            .as_i64()
            .expect("order id")
    }

    pub async fn pay(&self, token: &str, order: i64) -> Resp {
        self.post("/api/v1/payments", Some(token), &json!({"orderId": order}))
            .await
    }

    pub async fn cancel(&self, token: &str, order: i64) -> Resp {
        self.post_raw(
            &format!("/api/v1/orders/{order}/cancel"),
            Some(token),
            "",
            &[],
        )
        .await
    }

    /// A coupon of `owner` active now; `extra` fields override the defaults.
    pub async fn coupon(&self, owner: &User, extra: Value) -> Resp {
        let now = time::OffsetDateTime::now_utc();
        let fmt = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .expect("rfc3339")
        };
        let mut body = json!({
            "name": "Welcome",
            "discountType": "AMOUNT",
            "amount": 1000,
            "totalQuantity": 10,
            "startsAt": fmt(now - time::Duration::minutes(1)),
            "expiresAt": fmt(now + time::Duration::days(1)),
        });
        if let (Some(base), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                base.insert(k.clone(), v.clone());
            }
        }
        self.post("/api/v1/coupons", Some(&owner.token), &body)
            .await
    }

    pub async fn coupon_id(&self, owner: &User, extra: Value) -> i64 {
        self.coupon(owner, extra).await.ok(201)["id"]
            .as_i64()
            .expect("coupon id")
    }

    pub async fn issue(&self, token: &str, coupon: i64) -> Resp {
        self.post_raw(
            &format!("/api/v1/coupons/{coupon}/issue"),
            Some(token),
            "",
            &[],
        )
        .await
    }

    /// Waits (bounded) until `check` holds, for effects of background workers.
    pub async fn eventually<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..100 {
            if check().await {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("{what} did not happen within 10 seconds");
    }
}
