//! Plain HTTP calls for data preparation and for the correctness checks that follow each
//! scenario. This is set-up and verification, not load: the load goes through goose
//! (`load.rs`).

use anyhow::{Context, Result, bail};
use futures::stream::{self, StreamExt, TryStreamExt};
use reqwest_bench as reqwest;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// How many set-up or check calls run at once.
pub const SETUP_CONCURRENCY: usize = 32;

#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    admin_token: String,
}

/// A user created for a scenario.
#[derive(Clone, Debug)]
pub struct BenchUser {
    pub token: String,
}

/// A product created for a scenario.
#[derive(Clone, Debug)]
pub struct BenchProduct {
    pub id: i64,
    pub stock: i64,
}

impl Api {
    pub fn new(base: &str, admin_token: &str) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(SETUP_CONCURRENCY)
            .build()
            .context("building the set-up HTTP client")?;
        Ok(Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            admin_token: admin_token.to_owned(),
        })
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// One call; answers the status and the JSON body (`Null` when there is none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        // Set-up and checks are not the load: a 429 (per-user rate limit) is waited out.
        let mut attempts = 0;
        let response = loop {
            let mut request = self.client.request(method.clone(), self.url(path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .with_context(|| format!("{method} {path}"))?;
            attempts += 1;
            if response.status().as_u16() != 429 || attempts >= 30 {
                break response;
            }
            let wait = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 10);
            tokio::time::sleep(Duration::from_secs(wait)).await;
        };
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("{method} {path}: reading the body"))?;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Ok((status, value))
    }

    /// A call that must answer `expected`.
    pub async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        expected: u16,
    ) -> Result<Value> {
        let (status, value) = self.call(method.clone(), path, token, body).await?;
        if status != expected {
            bail!("{method} {path}: expected {expected}, got {status}: {value}");
        }
        Ok(value)
    }

    pub async fn get(&self, path: &str, token: &str) -> Result<Value> {
        self.expect(reqwest::Method::GET, path, Some(token), None, 200)
            .await
    }

    /// An anonymous GET (catalog reads allow it).
    pub async fn get_public(&self, path: &str) -> Result<Value> {
        self.expect(reqwest::Method::GET, path, None, None, 200)
            .await
    }

    /// Waits until `GET /health/live` answers 200.
    pub async fn wait_live(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok((200, _)) = self
                .call(reqwest::Method::GET, "/health/live", None, None)
                .await
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the service at {} did not become live", self.base);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Creates `count` buyers named `<prefix>-<n>`.
    pub async fn create_buyers(&self, prefix: &str, count: usize) -> Result<Vec<BenchUser>> {
        stream::iter(0..count)
            .map(|n| async move {
                let body = json!({ "name": format!("{prefix}-{n}") });
                let user = self
                    .expect(
                        reqwest::Method::POST,
                        "/api/v1/users",
                        None,
                        Some(&body),
                        201,
                    )
                    .await?;
                Ok::<_, anyhow::Error>(BenchUser {
                    token: field_str(&user, "token")?.to_owned(),
                })
            })
            .buffered(SETUP_CONCURRENCY)
            .try_collect()
            .await
    }

    /// Charges every user's wallet with `amount` (in steps the wallet limit allows).
    pub async fn fund(&self, users: &[BenchUser], amount: i64) -> Result<()> {
        stream::iter(users)
            .map(|user| async move {
                let body = json!({ "amount": amount });
                self.expect(
                    reqwest::Method::POST,
                    "/api/v1/balance/charge",
                    Some(&user.token),
                    Some(&body),
                    200,
                )
                .await
                .map(|_| ())
            })
            .buffer_unordered(SETUP_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }

    /// Creates products as the administrator.
    pub async fn create_products(
        &self,
        prefix: &str,
        prices_and_stock: &[(i64, i64)],
    ) -> Result<Vec<BenchProduct>> {
        stream::iter(prices_and_stock.iter().enumerate())
            .map(|(n, &(price, stock))| async move {
                let body =
                    json!({ "name": format!("{prefix}-{n}"), "price": price, "stock": stock });
                let product = self
                    .expect(
                        reqwest::Method::POST,
                        "/api/v1/products",
                        Some(&self.admin_token),
                        Some(&body),
                        201,
                    )
                    .await?;
                Ok::<_, anyhow::Error>(BenchProduct {
                    id: field_i64(&product, "id")?,
                    stock,
                })
            })
            .buffered(SETUP_CONCURRENCY)
            .try_collect()
            .await
    }

    /// Creates an admin (store-wide) AMOUNT coupon of `total` units, one per user, valid now.
    pub async fn create_coupon(&self, name: &str, total: i64) -> Result<i64> {
        let now = time::OffsetDateTime::now_utc();
        let fmt = &time::format_description::well_known::Rfc3339;
        let starts = (now - time::Duration::minutes(5)).format(fmt)?;
        let expires = (now + time::Duration::days(7)).format(fmt)?;
        let body = json!({
            "name": name,
            "discountType": "AMOUNT",
            "amount": 1000,
            "totalQuantity": total,
            "perUserLimit": 1,
            "startsAt": starts,
            "expiresAt": expires,
        });
        let coupon = self
            .expect(
                reqwest::Method::POST,
                "/api/v1/coupons",
                Some(&self.admin_token),
                Some(&body),
                201,
            )
            .await?;
        field_i64(&coupon, "id")
    }

    /// Every page of a cursor-paged list (`{items, nextCursor}`).
    pub async fn all_pages(&self, path: &str, token: &str) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let sep = if path.contains('?') { '&' } else { '?' };
        loop {
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit=100&cursor={c}"),
                None => format!("{path}{sep}limit=100"),
            };
            let page = self.get(&url, token).await?;
            if let Some(list) = page.get("items").and_then(Value::as_array) {
                items.extend(list.iter().cloned());
            }
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => cursor = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(items)
    }
}

pub fn field_i64(value: &Value, name: &str) -> Result<i64> {
    value
        .get(name)
        .and_then(Value::as_i64)
        .with_context(|| format!("no integer field {name:?} in {value}"))
}

pub fn field_str<'a>(value: &'a Value, name: &str) -> Result<&'a str> {
    value
        .get(name)
        .and_then(Value::as_str)
        .with_context(|| format!("no string field {name:?} in {value}"))
}
