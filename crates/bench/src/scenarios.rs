//! The scenarios: data preparation (plain HTTP), the load (goose), and the correctness checks
//! through the API after each one.

use crate::api::{Api, BenchProduct, BenchUser, SETUP_CONCURRENCY, field_i64};
use crate::load::{self, Answer, Length, Recorder, Summary, iterations_for, next_index, send};
use crate::rss::{RssPeak, RssSampler};
use anyhow::{Context, Result};
use futures::stream::{self, StreamExt, TryStreamExt};
use goose::goose::{GooseMethod, GooseUser, Scenario, Transaction, TransactionFunction};
use goose::prelude::TransactionResult;
use rand::Rng;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One correctness check and what it found.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

fn check(name: &str, passed: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.to_owned(),
        passed,
        detail: detail.into(),
    }
}

/// Everything measured for one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub id: String,
    pub title: String,
    pub connections: usize,
    pub size: String,
    /// Every request of the scenario.
    pub load: Summary,
    /// The scenario's unit when it is not one request (B2: a checkout = order + pay).
    pub unit: Option<(String, Summary)>,
    /// Per kind of request.
    pub requests: BTreeMap<String, Summary>,
    pub rss: Option<RssPeak>,
    pub checks: Vec<Check>,
    pub setup_s: f64,
}

impl ScenarioResult {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The rate compared with the ceiling: the unit's when there is one.
    pub fn rate(&self) -> f64 {
        match &self.unit {
            Some((_, s)) => s.throughput_rps,
            None => self.load.throughput_rps,
        }
    }
}

/// What every scenario needs.
pub struct Env {
    pub api: Api,
    pub host: String,
    pub pid: Option<u32>,
    /// Makes names unique per run (the database may be reused).
    pub tag: String,
}

impl Env {
    fn rss(&self) -> Option<RssSampler> {
        self.pid.map(RssSampler::start)
    }
}

fn transaction<C, F>(ctx: Arc<C>, name: &str, f: F) -> Transaction
where
    C: Send + Sync + 'static,
    F: for<'r> Fn(
            &'r mut GooseUser,
            Arc<C>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = TransactionResult> + Send + 'r>,
        > + Send
        + Sync
        + 'static,
{
    let function: TransactionFunction = Arc::new(move |user| f(user, ctx.clone()));
    Transaction::new(function).set_name(name)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn outcome(a: &Answer) -> String {
    match a.status {
        0 => "transport".into(),
        s if s >= 400 => match a.body.get("code").and_then(Value::as_str) {
            Some(code) => format!("{s} {code}"),
            None => s.to_string(),
        },
        s => s.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// B0: the ceiling of the service + generator: GET /health/live.

struct B0 {
    all: Recorder,
    connections: usize,
    /// A burst: this many requests in all (each goose user takes its share), like B1 and B3.
    burst: Option<usize>,
}

/// How B0 is run: for a fixed time (steady state), or as a burst of a fixed number of
/// requests shaped like B1 and B3 (all users start at once, the run ends with the last
/// request), so that start-up and tail weigh the same in the ceiling as in the scenario.
#[derive(Clone, Copy, Debug)]
pub enum B0Shape {
    Steady { seconds: usize },
    Burst { requests: usize },
}

pub fn b0_id(connections: usize, shape: B0Shape) -> String {
    match shape {
        B0Shape::Steady { .. } => format!("B0@{connections}"),
        B0Shape::Burst { requests } => format!("B0@{connections}x{requests}"),
    }
}

pub async fn b0(env: &Env, connections: usize, shape: B0Shape) -> Result<ScenarioResult> {
    let ctx = Arc::new(B0 {
        all: Recorder::new()?,
        connections,
        burst: match shape {
            B0Shape::Burst { requests } => Some(requests),
            B0Shape::Steady { .. } => None,
        },
    });
    let scenario =
        Scenario::new("B0").register_transaction(transaction(ctx.clone(), "live", |user, ctx| {
            Box::pin(async move {
                if let Some(total) = ctx.burst
                    && next_index(user, ctx.connections, total).is_none()
                {
                    return Ok(());
                }
                send(
                    user,
                    &[&ctx.all],
                    GooseMethod::Get,
                    "/health/live",
                    "live",
                    None,
                    None,
                )
                .await?;
                Ok(())
            })
        }));
    let (length, size) = match shape {
        B0Shape::Steady { seconds } => (Length::Seconds(seconds), format!("{seconds} s")),
        B0Shape::Burst { requests } => (
            Length::Iterations(iterations_for(requests, connections)),
            format!("burst of {requests}"),
        ),
    };
    let rss = env.rss();
    load::run(&env.host, scenario, connections, length).await?;
    let rss = rss.map(RssSampler::finish);
    let load = ctx.all.summary();
    let bad = load.unexpected(&["200"]);
    Ok(ScenarioResult {
        id: b0_id(connections, shape),
        title: "GET /health/live (ceiling)".into(),
        connections,
        size,
        requests: BTreeMap::from([("live".to_owned(), load.clone())]),
        load,
        unit: None,
        rss,
        checks: vec![check(
            "every answer 200",
            bad == 0,
            format!("{bad} other answers"),
        )],
        setup_s: 0.0,
    })
}

// ---------------------------------------------------------------------------------------------
// B1: first-come coupon burst.

struct B1 {
    coupon_id: i64,
    users: Vec<BenchUser>,
    connections: usize,
    all: Recorder,
    winners: Mutex<Vec<usize>>,
}

pub async fn b1(
    env: &Env,
    user_count: usize,
    total: usize,
    connections: usize,
) -> Result<ScenarioResult> {
    let setup_started = Instant::now();
    let users = env
        .api
        .create_buyers(&format!("b1-{}", env.tag), user_count)
        .await?;
    let coupon_id = env
        .api
        .create_coupon(&format!("b1-{}", env.tag), i64::try_from(total)?)
        .await?;
    let setup_s = setup_started.elapsed().as_secs_f64();
    let ctx = Arc::new(B1 {
        coupon_id,
        users,
        connections,
        all: Recorder::new()?,
        winners: Mutex::new(Vec::new()),
    });
    let scenario =
        Scenario::new("B1").register_transaction(transaction(ctx.clone(), "issue", |user, ctx| {
            Box::pin(async move {
                let Some(i) = next_index(user, ctx.connections, ctx.users.len()) else {
                    return Ok(());
                };
                let path = format!("/api/v1/coupons/{}/issue", ctx.coupon_id);
                let answer = send(
                    user,
                    &[&ctx.all],
                    GooseMethod::Post,
                    &path,
                    "issue",
                    Some(&ctx.users[i].token),
                    None,
                )
                .await?;
                if answer.status == 201 || answer.status == 202 {
                    lock(&ctx.winners).push(i);
                }
                Ok(())
            })
        }));
    let rss = env.rss();
    load::run(
        &env.host,
        scenario,
        connections,
        Length::Iterations(iterations_for(ctx.users.len(), connections)),
    )
    .await?;
    let rss = rss.map(RssSampler::finish);
    let load = ctx.all.summary();
    let checks = b1_checks(env, &ctx, &load, total).await?;
    Ok(ScenarioResult {
        id: "B1".into(),
        title: "coupon burst: POST /coupons/{id}/issue".into(),
        connections,
        size: format!("{user_count} users, coupon of {total}"),
        requests: BTreeMap::from([("issue".to_owned(), load.clone())]),
        load,
        unit: None,
        rss,
        checks,
        setup_s,
    })
}

async fn b1_checks(env: &Env, ctx: &B1, load: &Summary, total: usize) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    let granted = load.count("201") + load.count("202");
    checks.push(check(
        "exactly totalQuantity grants (201/202)",
        granted == total as u64,
        format!("{granted} granted of {total}"),
    ));
    let bad = load.unexpected(&["201", "202", "409 COUPON_SOLD_OUT"]);
    checks.push(check(
        "every other answer 409 COUPON_SOLD_OUT",
        bad == 0,
        format!("{bad} other answers: {:?}", load.outcomes),
    ));
    let winners = lock(&ctx.winners).clone();
    let distinct: HashSet<usize> = winners.iter().copied().collect();
    checks.push(check(
        "no user granted twice in the answers",
        distinct.len() == winners.len(),
        format!(
            "{} grants to {} distinct users",
            winners.len(),
            distinct.len()
        ),
    ));
    // The count is final at once in the sync mode; in the async mode (202) the records are
    // written by a consumer, so it is polled for up to 10 s and the delay is reported.
    let started = Instant::now();
    let (issued, remaining) = loop {
        let coupon = env
            .api
            .get(
                &format!("/api/v1/coupons/{}", ctx.coupon_id),
                env.api.admin_token(),
            )
            .await?;
        let issued = field_i64(&coupon, "issuedQuantity")?;
        let remaining = field_i64(&coupon, "remainingQuantity")?;
        if (issued == total as i64 && remaining == 0) || started.elapsed() > Duration::from_secs(10)
        {
            break (issued, remaining);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    checks.push(check(
        "GET /coupons/{id}: issuedQuantity == total, remainingQuantity == 0",
        issued == total as i64 && remaining == 0,
        format!(
            "issuedQuantity {issued}, remainingQuantity {remaining}, read {:.1} s after the burst",
            started.elapsed().as_secs_f64()
        ),
    ));
    // Each winner holds exactly one copy (async mode: within 5 s, so poll a little).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut pending: Vec<usize> = winners.clone();
    let mut wrong: Vec<(usize, usize)> = Vec::new();
    loop {
        let counts = held_counts(env, ctx, &pending).await?;
        wrong.clear();
        let mut still = Vec::new();
        for (i, n) in counts {
            match n {
                1 => {}
                0 => still.push(i),
                n => wrong.push((i, n)),
            }
        }
        pending = still;
        if pending.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    checks.push(check(
        "each winner's GET /coupons/my holds exactly one copy",
        pending.is_empty() && wrong.is_empty(),
        format!(
            "{} winners checked, {} without the coupon, {} with more than one",
            winners.len(),
            pending.len(),
            wrong.len()
        ),
    ));
    // A sample of the others holds none.
    let losers: Vec<usize> = (0..ctx.users.len())
        .filter(|i| !distinct.contains(i))
        .step_by(((ctx.users.len() - distinct.len()) / 500).max(1))
        .collect();
    let holding: usize = held_counts(env, ctx, &losers)
        .await?
        .iter()
        .filter(|(_, n)| *n > 0)
        .count();
    checks.push(check(
        "sampled refused users hold no copy",
        holding == 0,
        format!(
            "{} refused users sampled, {holding} hold a copy",
            losers.len()
        ),
    ));
    Ok(checks)
}

/// How many copies of the B1 coupon each of `indexes` holds, per `GET /coupons/my`.
async fn held_counts(env: &Env, ctx: &B1, indexes: &[usize]) -> Result<Vec<(usize, usize)>> {
    stream::iter(indexes.iter().copied())
        .map(|i| async move {
            let mine = env
                .api
                .get("/api/v1/coupons/my", &ctx.users[i].token)
                .await?;
            let n = mine
                .get("items")
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter(|it| {
                            it.get("couponId").and_then(Value::as_i64) == Some(ctx.coupon_id)
                        })
                        .count()
                })
                .unwrap_or(0);
            Ok::<_, anyhow::Error>((i, n))
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect()
        .await
}

// ---------------------------------------------------------------------------------------------
// B2: checkout (create an order of 1..3 items, then pay it).

/// A B2 order as created, and its payment if any.
#[derive(Debug, Clone)]
pub struct PlacedOrder {
    pub buyer: usize,
    pub order_id: i64,
    pub total: i64,
    pub lines: Vec<(i64, i64)>,
    pub paid: Option<i64>,
}

struct B2 {
    buyers: Vec<BenchUser>,
    products: Vec<BenchProduct>,
    connections: usize,
    all: Recorder,
    orders: Recorder,
    pays: Recorder,
    checkouts: Recorder,
    placed: Mutex<Vec<PlacedOrder>>,
}

/// The products and quantities of one random order (1..3 distinct products, 1..3 each).
fn random_lines(products: &[BenchProduct]) -> Vec<(i64, i64)> {
    let mut rng = rand::rng();
    let items = rng.random_range(1..=3usize).min(products.len());
    let mut picked: Vec<usize> = Vec::with_capacity(items);
    while picked.len() < items {
        let p = rng.random_range(0..products.len());
        if !picked.contains(&p) {
            picked.push(p);
        }
    }
    picked
        .into_iter()
        .map(|p| (products[p].id, rng.random_range(1..=3i64)))
        .collect()
}

/// Products B2 and B4 share: id, price, initial stock.
pub struct B2Outcome {
    pub result: ScenarioResult,
    pub products: Vec<BenchProduct>,
    pub placed: Vec<PlacedOrder>,
}

pub async fn b2(
    env: &Env,
    buyer_count: usize,
    product_count: usize,
    fund: i64,
    connections: usize,
) -> Result<B2Outcome> {
    let setup_started = Instant::now();
    let buyers = env
        .api
        .create_buyers(&format!("b2-{}", env.tag), buyer_count)
        .await?;
    env.api.fund(&buyers, fund).await?;
    let catalog: Vec<(i64, i64)> = {
        let mut rng = rand::rng();
        (0..product_count)
            .map(|_| (rng.random_range(10..=100i64) * 100, 100_000))
            .collect()
    };
    let products = env
        .api
        .create_products(&format!("b2-{}", env.tag), &catalog)
        .await?;
    let setup_s = setup_started.elapsed().as_secs_f64();
    let ctx = Arc::new(B2 {
        buyers,
        products,
        connections,
        all: Recorder::new()?,
        orders: Recorder::new()?,
        pays: Recorder::new()?,
        checkouts: Recorder::new()?,
        placed: Mutex::new(Vec::new()),
    });
    let scenario = Scenario::new("B2").register_transaction(transaction(
        ctx.clone(),
        "checkout",
        |user, ctx| Box::pin(b2_checkout(user, ctx)),
    ));
    let rss = env.rss();
    load::run(
        &env.host,
        scenario,
        connections,
        Length::Iterations(iterations_for(ctx.buyers.len(), connections)),
    )
    .await?;
    let rss = rss.map(RssSampler::finish);
    let placed = lock(&ctx.placed).clone();
    let load = ctx.all.summary();
    let unit = ctx.checkouts.summary();
    let mut checks = vec![check(
        "every checkout 201 + 201",
        unit.unexpected(&["201"]) == 0 && unit.requests == buyer_count as u64,
        format!("{} checkouts: {:?}", unit.requests, unit.outcomes),
    )];
    checks.extend(b2_checks(env, &ctx, &placed, fund).await?);
    Ok(B2Outcome {
        result: ScenarioResult {
            id: "B2".into(),
            title: "checkout: POST /orders (1..3 items) then POST /payments".into(),
            connections,
            size: format!("{buyer_count} funded buyers, {product_count} products"),
            requests: BTreeMap::from([
                ("order".to_owned(), ctx.orders.summary()),
                ("pay".to_owned(), ctx.pays.summary()),
            ]),
            load,
            unit: Some(("checkout".into(), unit)),
            rss,
            checks,
            setup_s,
        },
        products: ctx.products.clone(),
        placed,
    })
}

async fn b2_checkout(user: &mut GooseUser, ctx: Arc<B2>) -> TransactionResult {
    let Some(i) = next_index(user, ctx.connections, ctx.buyers.len()) else {
        return Ok(());
    };
    let token = ctx.buyers[i].token.clone();
    let lines = random_lines(&ctx.products);
    let body = json!({
        "items": lines.iter().map(|(p, q)| json!({"productId": p, "quantity": q})).collect::<Vec<_>>()
    });
    let started = Instant::now();
    let order = send(
        user,
        &[&ctx.all, &ctx.orders],
        GooseMethod::Post,
        "/api/v1/orders",
        "order",
        Some(&token),
        Some(&body),
    )
    .await?;
    let (Some(order_id), Some(total)) = (
        order.body.get("id").and_then(Value::as_i64),
        order.body.get("totalAmount").and_then(Value::as_i64),
    ) else {
        ctx.checkouts.record(
            started,
            Instant::now(),
            format!("order {}", outcome(&order)),
        );
        return Ok(());
    };
    let pay = send(
        user,
        &[&ctx.all, &ctx.pays],
        GooseMethod::Post,
        "/api/v1/payments",
        "pay",
        Some(&token),
        Some(&json!({ "orderId": order_id })),
    )
    .await?;
    let ended = Instant::now();
    let paid = if pay.status == 201 {
        pay.body.get("amount").and_then(Value::as_i64)
    } else {
        None
    };
    let label = if order.status == 201 && pay.status == 201 {
        "201".to_owned()
    } else {
        format!("pay {}", outcome(&pay))
    };
    ctx.checkouts.record(started, ended, label);
    lock(&ctx.placed).push(PlacedOrder {
        buyer: i,
        order_id,
        total,
        lines,
        paid,
    });
    Ok(())
}

async fn b2_checks(env: &Env, ctx: &B2, placed: &[PlacedOrder], fund: i64) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    let charged = fund * ctx.buyers.len() as i64;
    let paid_sum: i64 = placed.iter().filter_map(|o| o.paid).sum();
    let paid_totals_match = placed
        .iter()
        .filter(|o| o.paid.is_some())
        .all(|o| o.paid == Some(o.total));
    checks.push(check(
        "each payment's amount == its order's totalAmount",
        paid_totals_match,
        format!(
            "{} payments",
            placed.iter().filter(|o| o.paid.is_some()).count()
        ),
    ));

    // Wallets: balances + paid == charged, and one PAYMENT row per paid order.
    let by_buyer: HashMap<usize, Vec<&PlacedOrder>> =
        placed.iter().fold(HashMap::new(), |mut m, o| {
            m.entry(o.buyer).or_default().push(o);
            m
        });
    let wallets: Vec<(i64, bool, String)> = stream::iter(0..ctx.buyers.len())
        .map(|i| {
            let orders = by_buyer.get(&i).cloned().unwrap_or_default();
            async move {
                let token = &ctx.buyers[i].token;
                let balance = field_i64(&env.api.get("/api/v1/balance", token).await?, "balance")?;
                let txs = env
                    .api
                    .all_pages("/api/v1/balance/transactions", token)
                    .await?;
                let mut payments: HashMap<i64, Vec<i64>> = HashMap::new();
                for tx in &txs {
                    if tx.get("type").and_then(Value::as_str) == Some("PAYMENT") {
                        let order = tx.get("orderId").and_then(Value::as_i64).unwrap_or(-1);
                        let amount = tx.get("amount").and_then(Value::as_i64).unwrap_or(0);
                        payments.entry(order).or_default().push(amount);
                    }
                }
                let mut ok = true;
                let mut why = String::new();
                for o in &orders {
                    let rows = payments.remove(&o.order_id).unwrap_or_default();
                    let expected: Vec<i64> = o.paid.map(|p| vec![-p]).unwrap_or_default();
                    if rows != expected {
                        ok = false;
                        why = format!(
                            "order {}: PAYMENT rows {rows:?}, expected {expected:?}",
                            o.order_id
                        );
                    }
                }
                if !payments.is_empty() {
                    ok = false;
                    why = format!("PAYMENT rows for unknown orders: {payments:?}");
                }
                Ok::<_, anyhow::Error>((balance, ok, why))
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect()
        .await?;
    let balances: i64 = wallets.iter().map(|w| w.0).sum();
    checks.push(check(
        "sum of balances + sum paid == sum charged",
        balances + paid_sum == charged,
        format!(
            "balances {balances} + paid {paid_sum} = {} vs charged {charged}",
            balances + paid_sum
        ),
    ));
    let bad_wallets: Vec<&String> = wallets.iter().filter(|w| !w.1).map(|w| &w.2).collect();
    checks.push(check(
        "one PAYMENT wallet row per paid order, none for the others",
        bad_wallets.is_empty(),
        match bad_wallets.first() {
            Some(why) => format!("{} buyers wrong, e.g. {why}", bad_wallets.len()),
            None => format!("{} buyers' transaction histories checked", wallets.len()),
        },
    ));

    // Stock: current + taken by orders == initial.
    let mut taken: HashMap<i64, i64> = HashMap::new();
    for o in placed {
        for (p, q) in &o.lines {
            *taken.entry(*p).or_insert(0) += q;
        }
    }
    let stock_errors: Vec<String> = stream::iter(ctx.products.iter())
        .map(|p| {
            let taken = taken.get(&p.id).copied().unwrap_or(0);
            async move {
                let product = env
                    .api
                    .get_public(&format!("/api/v1/products/{}", p.id))
                    .await?;
                let stock = field_i64(&product, "stock")?;
                Ok::<_, anyhow::Error>(if stock + taken == p.stock {
                    None
                } else {
                    Some(format!(
                        "product {}: stock {stock} + ordered {taken} != {}",
                        p.id, p.stock
                    ))
                })
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .flatten()
        .collect();
    checks.push(check(
        "stock + ordered == initial, per product",
        stock_errors.is_empty(),
        match stock_errors.first() {
            Some(e) => format!("{} products wrong, e.g. {e}", stock_errors.len()),
            None => format!("{} products checked", ctx.products.len()),
        },
    ));

    // Orders: the paid ones are PAID.
    let not_paid: usize = stream::iter(placed.iter().filter(|o| o.paid.is_some()))
        .map(|o| async move {
            let order = env
                .api
                .get(
                    &format!("/api/v1/orders/{}", o.order_id),
                    &ctx.buyers[o.buyer].token,
                )
                .await?;
            Ok::<_, anyhow::Error>(order.get("status").and_then(Value::as_str) != Some("PAID"))
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<bool>>()
        .await?
        .into_iter()
        .filter(|b| *b)
        .count();
    checks.push(check(
        "every paid order reads PAID",
        not_paid == 0,
        format!("{not_paid} paid orders not PAID"),
    ));

    // Outbox: one ORDER_PAID per paid order, none for the others.
    let events = env
        .api
        .all_pages("/api/v1/admin/outbox", env.api.admin_token())
        .await
        .context("reading the outbox")?;
    let mut per_order: HashMap<i64, usize> = HashMap::new();
    for e in &events {
        if e.get("eventType").and_then(Value::as_str) == Some("ORDER_PAID") {
            let id = match e.get("aggregateId") {
                Some(Value::String(s)) => s.parse().unwrap_or(-1),
                Some(v) => v.as_i64().unwrap_or(-1),
                None => -1,
            };
            *per_order.entry(id).or_insert(0) += 1;
        }
    }
    let mut wrong = 0usize;
    for o in placed {
        let n = per_order.get(&o.order_id).copied().unwrap_or(0);
        let expected = usize::from(o.paid.is_some());
        if n != expected {
            wrong += 1;
        }
    }
    checks.push(check(
        "one ORDER_PAID outbox event per paid order, none for the others",
        wrong == 0,
        format!("{} outbox events read, {wrong} orders wrong", events.len()),
    ));
    Ok(checks)
}

// ---------------------------------------------------------------------------------------------
// B3: hot product.

struct B3 {
    product_id: i64,
    buyers: Vec<BenchUser>,
    connections: usize,
    all: Recorder,
    winners: Mutex<Vec<(usize, i64)>>,
}

pub async fn b3(
    env: &Env,
    buyer_count: usize,
    stock: i64,
    connections: usize,
) -> Result<(ScenarioResult, i64)> {
    let setup_started = Instant::now();
    let buyers = env
        .api
        .create_buyers(&format!("b3-{}", env.tag), buyer_count)
        .await?;
    let product = env
        .api
        .create_products(&format!("b3-{}", env.tag), &[(1000, stock)])
        .await?;
    let product_id = product.first().map(|p| p.id).context("no B3 product")?;
    let setup_s = setup_started.elapsed().as_secs_f64();
    let ctx = Arc::new(B3 {
        product_id,
        buyers,
        connections,
        all: Recorder::new()?,
        winners: Mutex::new(Vec::new()),
    });
    let scenario =
        Scenario::new("B3").register_transaction(transaction(ctx.clone(), "order", |user, ctx| {
            Box::pin(async move {
                let Some(i) = next_index(user, ctx.connections, ctx.buyers.len()) else {
                    return Ok(());
                };
                let body = json!({"items": [{"productId": ctx.product_id, "quantity": 1}]});
                let answer = send(
                    user,
                    &[&ctx.all],
                    GooseMethod::Post,
                    "/api/v1/orders",
                    "order",
                    Some(&ctx.buyers[i].token),
                    Some(&body),
                )
                .await?;
                if answer.status == 201 {
                    let id = answer.body.get("id").and_then(Value::as_i64).unwrap_or(-1);
                    lock(&ctx.winners).push((i, id));
                }
                Ok(())
            })
        }));
    let rss = env.rss();
    load::run(
        &env.host,
        scenario,
        connections,
        Length::Iterations(iterations_for(ctx.buyers.len(), connections)),
    )
    .await?;
    let rss = rss.map(RssSampler::finish);
    let load = ctx.all.summary();
    let mut checks = Vec::new();
    let created = load.count("201");
    checks.push(check(
        "exactly `stock` orders 201",
        created == stock as u64,
        format!("{created} orders created for a stock of {stock}"),
    ));
    let bad = load.unexpected(&["201", "409 OUT_OF_STOCK"]);
    checks.push(check(
        "every other answer 409 OUT_OF_STOCK",
        bad == 0,
        format!("{bad} other answers: {:?}", load.outcomes),
    ));
    let product = env
        .api
        .get_public(&format!("/api/v1/products/{product_id}"))
        .await?;
    let left = field_i64(&product, "stock")?;
    checks.push(check(
        "GET /products/{id}: stock == 0",
        left == 0,
        format!("stock {left}"),
    ));
    let winners = lock(&ctx.winners).clone();
    let readable = stream::iter(winners.iter())
        .map(|(i, id)| {
            let token = ctx.buyers[*i].token.clone();
            async move {
                let order = env.api.get(&format!("/api/v1/orders/{id}"), &token).await?;
                let q: i64 = order
                    .get("items")
                    .and_then(Value::as_array)
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(|it| it.get("quantity").and_then(Value::as_i64))
                            .sum()
                    })
                    .unwrap_or(0);
                Ok::<_, anyhow::Error>(q == 1)
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<bool>>()
        .await?
        .into_iter()
        .filter(|ok| *ok)
        .count();
    checks.push(check(
        "each winner's order reads back with one unit",
        readable == winners.len(),
        format!("{readable} of {} orders", winners.len()),
    ));
    Ok((
        ScenarioResult {
            id: "B3".into(),
            title: "hot product: POST /orders on one product".into(),
            connections,
            size: format!("{buyer_count} buyers, stock {stock}"),
            requests: BTreeMap::from([("order".to_owned(), load.clone())]),
            load,
            unit: None,
            rss,
            checks,
            setup_s,
        },
        product_id,
    ))
}

// ---------------------------------------------------------------------------------------------
// B4: catalog reads.

struct B4 {
    product_ids: Vec<i64>,
    all: Recorder,
    pages: Recorder,
    popular: Recorder,
    lists: Recorder,
}

fn pick(ids: &[i64]) -> i64 {
    ids[rand::rng().random_range(0..ids.len())]
}

pub async fn b4(
    env: &Env,
    mut product_ids: Vec<i64>,
    paid: &[PlacedOrder],
    seconds: usize,
    connections: usize,
) -> Result<ScenarioResult> {
    let setup_started = Instant::now();
    if product_ids.is_empty() {
        let catalog: Vec<(i64, i64)> = (0..100).map(|n| (1000 + n * 100, 1000)).collect();
        product_ids = env
            .api
            .create_products(&format!("b4-{}", env.tag), &catalog)
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect();
    }
    let pages = product_ids.len().div_ceil(20).max(1);
    let setup_s = setup_started.elapsed().as_secs_f64();
    let ctx = Arc::new(B4 {
        product_ids,
        all: Recorder::new()?,
        pages: Recorder::new()?,
        popular: Recorder::new()?,
        lists: Recorder::new()?,
    });
    let product_page = transaction(ctx.clone(), "product", |user, ctx| {
        Box::pin(async move {
            let path = format!("/api/v1/products/{}", pick(&ctx.product_ids));
            send(
                user,
                &[&ctx.all, &ctx.pages],
                GooseMethod::Get,
                &path,
                "product",
                None,
                None,
            )
            .await?;
            Ok(())
        })
    })
    .set_weight(8)
    .map_err(|e| anyhow::anyhow!("goose: {e}"))?;
    let popular = transaction(ctx.clone(), "popular", |user, ctx| {
        Box::pin(async move {
            send(
                user,
                &[&ctx.all, &ctx.popular],
                GooseMethod::Get,
                "/api/v1/products/popular?days=3&limit=5",
                "popular",
                None,
                None,
            )
            .await?;
            Ok(())
        })
    });
    let list = transaction(ctx.clone(), "list", move |user, ctx| {
        Box::pin(async move {
            let page = rand::rng().random_range(1..=pages);
            let path = format!("/api/v1/products?page={page}&size=20");
            send(
                user,
                &[&ctx.all, &ctx.lists],
                GooseMethod::Get,
                &path,
                "list",
                None,
                None,
            )
            .await?;
            Ok(())
        })
    });
    let scenario = Scenario::new("B4")
        .register_transaction(product_page)
        .register_transaction(popular)
        .register_transaction(list);
    let rss = env.rss();
    load::run(&env.host, scenario, connections, Length::Seconds(seconds)).await?;
    let rss = rss.map(RssSampler::finish);
    let load = ctx.all.summary();
    let bad = load.unexpected(&["200"]);
    let mut checks = vec![check(
        "every answer 200",
        bad == 0,
        format!("{bad} other answers: {:?}", load.outcomes),
    )];
    if !paid.is_empty() {
        checks.push(popular_check(env, paid).await?);
    }
    Ok(ScenarioResult {
        id: "B4".into(),
        title: "anonymous catalog reads: 80% GET /products/{id}, 10% /products/popular, 10% /products?page"
            .into(),
        connections,
        size: format!("{seconds} s, {} products", ctx.product_ids.len()),
        requests: BTreeMap::from([
            ("product".to_owned(), ctx.pages.summary()),
            ("popular".to_owned(), ctx.popular.summary()),
            ("list".to_owned(), ctx.lists.summary()),
        ]),
        load,
        unit: None,
        rss,
        checks,
        setup_s,
    })
}

/// `/products/popular` ranks what B2 paid (the only paid orders of a fresh database): the
/// top 5 by quantity, ties to the lower id.
async fn popular_check(env: &Env, placed: &[PlacedOrder]) -> Result<Check> {
    let mut sold: HashMap<i64, i64> = HashMap::new();
    for o in placed.iter().filter(|o| o.paid.is_some()) {
        for (p, q) in &o.lines {
            *sold.entry(*p).or_insert(0) += q;
        }
    }
    let mut expected: Vec<(i64, i64)> = sold.into_iter().collect();
    expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    expected.truncate(5);
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let popular = env
            .api
            .get_public("/api/v1/products/popular?days=3&limit=5")
            .await?;
        let got: Vec<(i64, i64)> = popular
            .get("items")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .map(|it| {
                        (
                            it.get("productId").and_then(Value::as_i64).unwrap_or(-1),
                            it.get("soldQuantity").and_then(Value::as_i64).unwrap_or(-1),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if got == expected || Instant::now() > deadline {
            return Ok(check(
                "/products/popular == top 5 of B2's paid quantities",
                got == expected,
                format!("expected {expected:?}, got {got:?}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_orders_have_one_to_three_distinct_products() {
        let products: Vec<BenchProduct> =
            (1..=5).map(|id| BenchProduct { id, stock: 10 }).collect();
        for _ in 0..1_000 {
            let lines = random_lines(&products);
            assert!((1..=3).contains(&lines.len()));
            let ids: HashSet<i64> = lines.iter().map(|l| l.0).collect();
            assert_eq!(ids.len(), lines.len());
            assert!(lines.iter().all(|(_, q)| (1..=3).contains(q)));
        }
        let one = vec![BenchProduct { id: 9, stock: 1 }];
        assert!(random_lines(&one).iter().all(|l| l.0 == 9));
    }
}
