//! Crash test (issue 3): `kill -9` the real `shop` binary on PostgreSQL while charges, orders,
//! payments, cancels, refunds and coupon issues run from several threads; restart it on the
//! same database; then check in SQL that every invariant of RULES.md holds and that every
//! answer the clients got before the kill is still true.
//!
//! What is recorded: every 2xx answer (ids, amounts, states) and every request the kill cut
//! (sent, no complete answer: its outcome is unknown, so it may or may not have committed).
//! What is checked after the restart, once the expiry sweeper and the outbox relay had time
//! to resume (polled, bounded):
//! - stock = sum of the product's ledger deltas, stock >= 0, one INITIAL row per product;
//! - balance = sum of the wallet's transactions, >= 0, and every `balanceAfter` is the running
//!   sum (no lost update);
//! - PAID: one SUCCEEDED payment of the total, one PAYMENT wallet row, one ORDER_PAID event and
//!   nothing refunded; REFUNDED: one REFUNDED payment, PAYMENT and REFUND rows, ORDER_PAID and
//!   ORDER_REFUNDED events; CANCELED (and CREATED): no money moved, no event;
//! - each order item has one ORDER ledger row of -quantity and, when the order was canceled or
//!   refunded, one CANCEL row of +quantity (none otherwise); no ledger row without its item;
//! - coupons: issued_quantity = issue rows <= totalQuantity, per-user limit kept, USED issues
//!   exactly those held by CREATED/PAID orders;
//! - the daily roll-up sums to the net paid quantity per product;
//! - no order is left CREATED past its deadline, no outbox row is left READY;
//! - every acknowledged charge, order, payment, cancel and coupon issue is there, with the state
//!   the client was told (or a later one the client's own unknown request explains); rows that
//!   nobody was told about are at most as many as the requests the kill cut;
//! - nothing answered 5xx, before the kill or after the restart.
//!
//! PostgreSQL: `TEST_DATABASE_URL` (server URL without a database, default
//! `postgres://postgres@127.0.0.1:5432`); the test creates its own database and drops it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Database;
use e2e::{Shop, try_request};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ADMIN: &str = "e2e-crash-admin-token-0123456789";
/// Short, so that orders left unpaid by the kill expire soon after the restart.
const PAYMENT_TTL_SECONDS: &str = "3";
const LOAD_THREADS: usize = 8;
/// 2xx answers seen before the kill is sent (plus a pid-derived jitter).
const KILL_AFTER_SUCCESSES: usize = 1_500;
const AFTER_RESTART_THREADS: usize = 4;
const AFTER_RESTART_ITERATIONS: usize = 25;

// ---------------------------------------------------------------------------------------------
// What the clients were told.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Charge,
    Issue,
    Order,
    Pay,
    Cancel,
}

#[derive(Debug)]
struct ChargeAck {
    id: i64,
    user: i64,
    amount: i64,
    balance_after: i64,
}

#[derive(Debug, Default)]
struct OrderAck {
    user: i64,
    total: i64,
    items: BTreeMap<i64, i64>,
    /// The payment's id and amount, when `POST /payments` answered 201.
    payment: Option<(i64, i64)>,
    /// The state `POST /orders/{id}/cancel` answered (CANCELED or REFUNDED).
    canceled: Option<String>,
    /// A pay or cancel of this order was cut by the kill.
    pay_unknown: bool,
    cancel_unknown: bool,
}

#[derive(Default)]
struct Log {
    charges: Vec<ChargeAck>,
    orders: BTreeMap<i64, OrderAck>,
    /// (issue id, coupon id, user id)
    issues: Vec<(i64, i64, i64)>,
    /// Requests cut by the kill, by kind.
    unknown: BTreeMap<Kind, usize>,
    /// Unexpected answers (5xx, 4xx other than the business refusals the load provokes).
    errors: Vec<String>,
    /// Business refusals, by code (for the report).
    refusals: BTreeMap<String, usize>,
}

#[derive(Clone)]
struct Buyer {
    id: i64,
    token: String,
}

struct Ctx {
    buyers: Vec<Buyer>,
    products: Vec<i64>,
    coupons: Vec<i64>,
    /// Coupon issues each buyer holds and has not tried to use yet.
    held: Mutex<HashMap<i64, Vec<i64>>>,
    log: Mutex<Log>,
    sent: AtomicUsize,
    succeeded: AtomicUsize,
    keys: AtomicUsize,
    restarted: AtomicBool,
}

enum Reply {
    Answer(u16, Value),
    /// No complete answer: the server went away under the request.
    Gone,
}

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

impl Ctx {
    fn send(
        &self,
        port: u16,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Reply {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let key = format!("crash-{}", self.keys.fetch_add(1, Ordering::Relaxed));
        let headers = [("Idempotency-Key", key.as_str())];
        let headers: &[(&str, &str)] = if method == "POST" { &headers } else { &[] };
        let body = body.map(Value::to_string);
        match try_request(port, method, path, Some(token), headers, body.as_deref()) {
            Ok((status, text)) => {
                let value = serde_json::from_str::<Value>(&text).unwrap_or(Value::Null);
                if (200..300).contains(&status) {
                    if !value.is_object() {
                        // Cut in the middle of the body: the outcome is unknown.
                        return Reply::Gone;
                    }
                    self.succeeded.fetch_add(1, Ordering::Relaxed);
                }
                Reply::Answer(status, value)
            }
            Err(_) => Reply::Gone,
        }
    }

    /// Records a 4xx/5xx answer: a refusal in `allowed` is counted, anything else is an error.
    fn refused(&self, what: &str, status: u16, body: &Value, allowed: &[&str]) {
        let code = body["code"].as_str().unwrap_or("").to_owned();
        let mut log = self.log.lock().unwrap();
        if status == 409 && allowed.contains(&code.as_str()) {
            *log.refusals.entry(code).or_default() += 1;
        } else {
            let phase = if self.restarted.load(Ordering::Relaxed) {
                "after the restart"
            } else {
                "before the kill"
            };
            log.errors
                .push(format!("{what} ({phase}): {status} {body}"));
        }
    }

    fn unknown(&self, kind: Kind) {
        *self.log.lock().unwrap().unknown.entry(kind).or_default() += 1;
    }

    /// One step of the load: a charge, a coupon issue, or an order followed by a payment, a
    /// cancel, a payment and a refund, or nothing (left to expire). Returns false once the
    /// server is gone.
    fn step(&self, port: u16, rng: &mut Rng) -> bool {
        let buyer = &self.buyers[rng.below(self.buyers.len())];
        let dice = rng.below(100);
        if dice < 15 {
            return self.charge(port, buyer, 10_000 * (1 + rng.below(8) as i64));
        }
        if dice < 22 {
            return self.issue(port, buyer, self.coupons[rng.below(self.coupons.len())]);
        }
        let mut items = BTreeMap::new();
        for _ in 0..=rng.below(3) {
            let product = self.products[rng.below(self.products.len())];
            items.insert(product, 1 + rng.below(3) as i64);
        }
        let coupon = if rng.below(3) == 0 {
            self.held
                .lock()
                .unwrap()
                .get_mut(&buyer.id)
                .and_then(Vec::pop)
        } else {
            None
        };
        let Some(order) = self.order(port, buyer, &items, coupon) else {
            return true;
        };
        let Some(order) = order else {
            return false;
        };
        let next = rng.below(100);
        if next < 60 {
            match self.pay(port, buyer, order) {
                None => false,
                Some(false) => true,
                Some(true) if rng.below(100) < 30 => self.cancel(port, buyer, order).is_some(),
                Some(true) => true,
            }
        } else if next < 80 {
            self.cancel(port, buyer, order).is_some()
        } else {
            true
        }
    }

    fn charge(&self, port: u16, buyer: &Buyer, amount: i64) -> bool {
        let body = json!({ "amount": amount });
        match self.send(
            port,
            "POST",
            "/api/v1/balance/charge",
            &buyer.token,
            Some(&body),
        ) {
            Reply::Answer(200, v) => {
                let tx = &v["transaction"];
                self.log.lock().unwrap().charges.push(ChargeAck {
                    id: tx["id"].as_i64().unwrap(),
                    user: buyer.id,
                    amount: tx["amount"].as_i64().unwrap(),
                    balance_after: tx["balanceAfter"].as_i64().unwrap(),
                });
                assert_eq!(tx["type"], "CHARGE", "{v}");
                true
            }
            Reply::Answer(status, v) => {
                self.refused("charge", status, &v, &["BALANCE_LIMIT_EXCEEDED"]);
                true
            }
            Reply::Gone => {
                self.unknown(Kind::Charge);
                false
            }
        }
    }

    fn issue(&self, port: u16, buyer: &Buyer, coupon: i64) -> bool {
        let path = format!("/api/v1/coupons/{coupon}/issue");
        match self.send(port, "POST", &path, &buyer.token, None) {
            Reply::Answer(201, v) => {
                let id = v["id"].as_i64().unwrap();
                self.log.lock().unwrap().issues.push((id, coupon, buyer.id));
                self.held
                    .lock()
                    .unwrap()
                    .entry(buyer.id)
                    .or_default()
                    .push(id);
                true
            }
            Reply::Answer(status, v) => {
                self.refused(
                    "issue",
                    status,
                    &v,
                    &["COUPON_SOLD_OUT", "COUPON_ALREADY_ISSUED"],
                );
                true
            }
            Reply::Gone => {
                self.unknown(Kind::Issue);
                false
            }
        }
    }

    /// `Some(Some(id))` placed, `Some(None)` server gone, `None` refused.
    fn order(
        &self,
        port: u16,
        buyer: &Buyer,
        items: &BTreeMap<i64, i64>,
        coupon: Option<i64>,
    ) -> Option<Option<i64>> {
        let lines: Vec<Value> = items
            .iter()
            .map(|(p, q)| json!({ "productId": p, "quantity": q }))
            .collect();
        let mut body = json!({ "items": lines });
        if let Some(issue) = coupon {
            body["couponIssueId"] = json!(issue);
        }
        match self.send(port, "POST", "/api/v1/orders", &buyer.token, Some(&body)) {
            Reply::Answer(201, v) => {
                let id = v["id"].as_i64().unwrap();
                assert_eq!(v["status"], "CREATED", "{v}");
                self.log.lock().unwrap().orders.insert(
                    id,
                    OrderAck {
                        user: buyer.id,
                        total: v["totalAmount"].as_i64().unwrap(),
                        items: items.clone(),
                        ..OrderAck::default()
                    },
                );
                Some(Some(id))
            }
            Reply::Answer(status, v) => {
                self.refused(
                    "order",
                    status,
                    &v,
                    &["OUT_OF_STOCK", "COUPON_NOT_APPLICABLE"],
                );
                None
            }
            Reply::Gone => {
                self.unknown(Kind::Order);
                Some(None)
            }
        }
    }

    /// `Some(true)` paid, `Some(false)` refused, `None` server gone.
    fn pay(&self, port: u16, buyer: &Buyer, order: i64) -> Option<bool> {
        let body = json!({ "orderId": order });
        match self.send(port, "POST", "/api/v1/payments", &buyer.token, Some(&body)) {
            Reply::Answer(201, v) => {
                assert_eq!(v["status"], "SUCCEEDED", "{v}");
                assert_eq!(v["orderId"], order, "{v}");
                let mut log = self.log.lock().unwrap();
                let ack = log.orders.get_mut(&order).unwrap();
                ack.payment = Some((v["id"].as_i64().unwrap(), v["amount"].as_i64().unwrap()));
                Some(true)
            }
            Reply::Answer(status, v) => {
                // ORDER_NOT_PAYABLE: the sweeper expired it first (short TTL under load).
                self.refused(
                    &format!("pay of order {order}"),
                    status,
                    &v,
                    &["INSUFFICIENT_BALANCE", "ORDER_NOT_PAYABLE"],
                );
                Some(false)
            }
            Reply::Gone => {
                self.unknown(Kind::Pay);
                if let Some(ack) = self.log.lock().unwrap().orders.get_mut(&order) {
                    ack.pay_unknown = true;
                }
                None
            }
        }
    }

    /// `Some(())` answered (accepted or refused), `None` server gone.
    fn cancel(&self, port: u16, buyer: &Buyer, order: i64) -> Option<()> {
        let path = format!("/api/v1/orders/{order}/cancel");
        match self.send(port, "POST", &path, &buyer.token, None) {
            Reply::Answer(200, v) => {
                let status = v["status"].as_str().unwrap().to_owned();
                assert!(status == "CANCELED" || status == "REFUNDED", "{v}");
                let mut log = self.log.lock().unwrap();
                log.orders.get_mut(&order).unwrap().canceled = Some(status);
                Some(())
            }
            Reply::Answer(status, v) => {
                // INVALID_ORDER_STATE: the sweeper canceled it first.
                self.refused(
                    &format!("cancel of order {order}"),
                    status,
                    &v,
                    &["INVALID_ORDER_STATE"],
                );
                Some(())
            }
            Reply::Gone => {
                self.unknown(Kind::Cancel);
                if let Some(ack) = self.log.lock().unwrap().orders.get_mut(&order) {
                    ack.cancel_unknown = true;
                }
                None
            }
        }
    }
}

/// Starts the load on `threads` threads: until the server is gone (`iterations: None`), or a
/// fixed number of steps each, where the server going away is an error.
fn load(
    ctx: &Arc<Ctx>,
    port: u16,
    threads: usize,
    iterations: Option<usize>,
    seed: u64,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..threads)
        .map(|t| {
            let ctx = Arc::clone(ctx);
            std::thread::spawn(move || {
                let mut rng = Rng::new(seed ^ 0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(t as u64 + 1));
                let mut done = 0;
                while iterations.is_none_or(|n| done < n) {
                    if !ctx.step(port, &mut rng) {
                        if iterations.is_some() {
                            ctx.log
                                .lock()
                                .unwrap()
                                .errors
                                .push("a request after the restart got no answer".into());
                        }
                        return;
                    }
                    done += 1;
                }
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Set-up over HTTP.

fn post(shop: &Shop, path: &str, token: Option<&str>, body: &Value) -> Value {
    let (status, text) = shop.request("POST", path, token, Some(&body.to_string()));
    assert!((200..300).contains(&status), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

fn sql_instant(db: &Database, offset: &str) -> String {
    db.rows(&format!(
        "SELECT to_char((now() + interval '{offset}') AT TIME ZONE 'UTC', \
         'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    ))[0]
        .get(0)
}

struct Prepared {
    ctx: Arc<Ctx>,
    sellers: Vec<String>,
}

fn prepare(shop: &Shop, db: &Database) -> Prepared {
    let mut sellers = Vec::new();
    let mut products = Vec::new();
    for s in 0..2 {
        let seller = post(
            shop,
            "/api/v1/users",
            Some(ADMIN),
            &json!({ "name": format!("seller {s}"), "role": "SELLER" }),
        );
        let token = seller["token"].as_str().unwrap().to_owned();
        for p in 0..7 {
            // One scarce product per seller, so that OUT_OF_STOCK happens under load.
            let stock = if p == 0 { 15 } else { 800 };
            let product = post(
                shop,
                "/api/v1/products",
                Some(&token),
                &json!({ "name": format!("product {s}-{p}"), "price": 1_000 + 700 * p, "stock": stock }),
            );
            products.push(product["id"].as_i64().unwrap());
        }
        sellers.push(token);
    }
    let (starts, expires) = (sql_instant(db, "-1 minute"), sql_instant(db, "1 hour"));
    let seller_coupon = post(
        shop,
        "/api/v1/coupons",
        Some(&sellers[0]),
        &json!({ "name": "seller 0 amount", "discountType": "AMOUNT", "amount": 1_000,
                 "minOrderAmount": 3_000, "totalQuantity": 15, "perUserLimit": 3,
                 "startsAt": starts, "expiresAt": expires }),
    );
    let admin_coupon = post(
        shop,
        "/api/v1/coupons",
        Some(ADMIN),
        &json!({ "name": "store percent", "discountType": "PERCENT", "percent": 10,
                 "maxDiscount": 3_000, "totalQuantity": 5, "perUserLimit": 1,
                 "startsAt": starts, "expiresAt": expires }),
    );
    let mut buyers = Vec::new();
    let mut charges = Vec::new();
    for b in 0..8 {
        let user = post(
            shop,
            "/api/v1/users",
            None,
            &json!({ "name": format!("buyer {b}") }),
        );
        let buyer = Buyer {
            id: user["id"].as_i64().unwrap(),
            token: user["token"].as_str().unwrap().to_owned(),
        };
        let charged = post(
            shop,
            "/api/v1/balance/charge",
            Some(&buyer.token),
            &json!({ "amount": 300_000 }),
        );
        charges.push(ChargeAck {
            id: charged["transaction"]["id"].as_i64().unwrap(),
            user: buyer.id,
            amount: 300_000,
            balance_after: 300_000,
        });
        buyers.push(buyer);
    }
    let ctx = Ctx {
        buyers,
        products,
        coupons: vec![
            seller_coupon["id"].as_i64().unwrap(),
            admin_coupon["id"].as_i64().unwrap(),
        ],
        held: Mutex::new(HashMap::new()),
        log: Mutex::new(Log {
            charges,
            ..Log::default()
        }),
        sent: AtomicUsize::new(0),
        succeeded: AtomicUsize::new(0),
        keys: AtomicUsize::new(0),
        restarted: AtomicBool::new(false),
    };
    Prepared {
        ctx: Arc::new(ctx),
        sellers,
    }
}

fn start(db: &Database) -> Shop {
    let url = db.url();
    Shop::start(&[
        ("ADMIN_TOKEN", ADMIN),
        ("DATABASE_URL", url.as_str()),
        ("ORDER_PAYMENT_TTL_SECONDS", PAYMENT_TTL_SECONDS),
        ("COUPON_ISSUE_MODE", "sync"),
        // The load and the read-back run a few tokens hard; the limiter is not under test.
        ("RATE_LIMIT_PER_SECOND", "0"),
        // The buyers sign up from 127.0.0.1 back to back; the per-client budget is not under
        // test either (its default would hold here, but a restart mid-load must not depend on it).
        ("ANON_RATE_LIMIT_PER_SECOND", "0"),
    ])
}

// ---------------------------------------------------------------------------------------------
// The invariants, each a query listing its violations.

const INVARIANTS: &[(&str, &str)] = &[
    (
        "stock = sum of ledger deltas, stock >= 0",
        "SELECT format('product %s: stock %s, ledger sum %s', p.id, p.stock, coalesce(l.s, 0))
         FROM products p
         LEFT JOIN (SELECT product_id, sum(delta)::bigint AS s FROM product_stock_ledger
                    GROUP BY product_id) l ON l.product_id = p.id
         WHERE p.stock <> coalesce(l.s, 0) OR p.stock < 0",
    ),
    (
        "one INITIAL ledger row per product",
        "SELECT format('product %s: %s INITIAL rows', p.id, count(l.id))
         FROM products p
         LEFT JOIN product_stock_ledger l ON l.product_id = p.id AND l.reason = 'INITIAL'
         GROUP BY p.id HAVING count(l.id) <> 1",
    ),
    (
        "balance = sum of wallet transactions, balance >= 0",
        "SELECT format('user %s: balance %s, transactions sum %s', w.user_id, w.balance,
                       coalesce(t.s, 0))
         FROM wallets w
         LEFT JOIN (SELECT user_id, sum(amount)::bigint AS s FROM wallet_transactions
                    GROUP BY user_id) t ON t.user_id = w.user_id
         WHERE w.balance <> coalesce(t.s, 0) OR w.balance < 0",
    ),
    (
        "every balanceAfter is the running sum (no lost update)",
        "SELECT format('wallet transaction %s of user %s: balance_after %s, running sum %s',
                       id, user_id, balance_after, run)
         FROM (SELECT id, user_id, balance_after,
                      sum(amount) OVER (PARTITION BY user_id ORDER BY id)::bigint AS run
               FROM wallet_transactions) t
         WHERE balance_after <> run",
    ),
    (
        "payments, wallet rows and outbox events match each order's state",
        "WITH o AS (
           SELECT o.id, o.status, o.total_amount,
             (SELECT count(*) FROM payments p WHERE p.order_id = o.id
                AND p.status = 'SUCCEEDED') AS succeeded,
             (SELECT count(*) FROM payments p WHERE p.order_id = o.id
                AND p.status = 'REFUNDED') AS refunded,
             (SELECT coalesce(sum(p.amount), 0)::bigint FROM payments p WHERE p.order_id = o.id
                AND p.status IN ('SUCCEEDED', 'REFUNDED')) AS paid_amount,
             (SELECT count(*) FROM outbox_events e WHERE e.aggregate_type = 'ORDER'
                AND e.aggregate_id = o.id::text AND e.event_type = 'ORDER_PAID') AS paid_events,
             (SELECT count(*) FROM outbox_events e WHERE e.aggregate_type = 'ORDER'
                AND e.aggregate_id = o.id::text AND e.event_type = 'ORDER_REFUNDED')
                AS refunded_events,
             (SELECT count(*) FROM wallet_transactions w WHERE w.order_id = o.id
                AND w.kind = 'PAYMENT') AS payment_rows,
             (SELECT coalesce(sum(w.amount), 0)::bigint FROM wallet_transactions w
                WHERE w.order_id = o.id AND w.kind = 'PAYMENT') AS payment_sum,
             (SELECT count(*) FROM wallet_transactions w WHERE w.order_id = o.id
                AND w.kind = 'REFUND') AS refund_rows,
             (SELECT coalesce(sum(w.amount), 0)::bigint FROM wallet_transactions w
                WHERE w.order_id = o.id AND w.kind = 'REFUND') AS refund_sum
           FROM orders o)
         SELECT format('order %s %s total %s: payments succeeded %s refunded %s (amount %s), \
                        events paid %s refunded %s, wallet payment %s (%s) refund %s (%s)',
                       id, status, total_amount, succeeded, refunded, paid_amount, paid_events,
                       refunded_events, payment_rows, payment_sum, refund_rows, refund_sum)
         FROM o
         WHERE NOT CASE status
           WHEN 'PAID' THEN succeeded = 1 AND refunded = 0 AND paid_amount = total_amount
             AND paid_events = 1 AND refunded_events = 0
             AND payment_rows = 1 AND payment_sum = -total_amount AND refund_rows = 0
           WHEN 'REFUNDED' THEN succeeded = 0 AND refunded = 1 AND paid_amount = total_amount
             AND paid_events = 1 AND refunded_events = 1
             AND payment_rows = 1 AND payment_sum = -total_amount
             AND refund_rows = 1 AND refund_sum = total_amount
           ELSE succeeded = 0 AND refunded = 0 AND paid_events = 0 AND refunded_events = 0
             AND payment_rows = 0 AND refund_rows = 0
         END",
    ),
    (
        "every order event and payment belongs to an order",
        "SELECT format('outbox %s %s for missing order %s', e.id, e.event_type, e.aggregate_id)
         FROM outbox_events e
         WHERE e.event_type IN ('ORDER_PAID', 'ORDER_REFUNDED')
           AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.id::text = e.aggregate_id)
         UNION ALL
         SELECT format('wallet transaction %s %s without an order', w.id, w.kind)
         FROM wallet_transactions w WHERE w.kind <> 'CHARGE' AND w.order_id IS NULL",
    ),
    (
        "order totals add up over their items",
        "SELECT format('order %s: subtotal %s, items %s', o.id, o.subtotal, coalesce(i.s, 0))
         FROM orders o
         LEFT JOIN (SELECT order_id, sum(subtotal)::bigint AS s FROM order_items
                    GROUP BY order_id) i ON i.order_id = o.id
         WHERE o.subtotal <> coalesce(i.s, 0) OR i.s IS NULL",
    ),
    (
        "each item: one ORDER ledger row, and one CANCEL row iff canceled or refunded",
        "SELECT format('order %s %s product %s quantity %s: ORDER rows %s (%s), CANCEL rows %s (%s)',
                       o.id, o.status, i.product_id, i.quantity, l.n_order, l.s_order,
                       l.n_cancel, l.s_cancel)
         FROM order_items i
         JOIN orders o ON o.id = i.order_id
         CROSS JOIN LATERAL (
           SELECT count(*) FILTER (WHERE reason = 'ORDER') AS n_order,
                  coalesce(sum(delta) FILTER (WHERE reason = 'ORDER'), 0)::bigint AS s_order,
                  count(*) FILTER (WHERE reason = 'CANCEL') AS n_cancel,
                  coalesce(sum(delta) FILTER (WHERE reason = 'CANCEL'), 0)::bigint AS s_cancel
           FROM product_stock_ledger l
           WHERE l.order_id = i.order_id AND l.product_id = i.product_id) l
         WHERE NOT (l.n_order = 1 AND l.s_order = -i.quantity AND
                    CASE WHEN o.status IN ('CANCELED', 'REFUNDED')
                         THEN l.n_cancel = 1 AND l.s_cancel = i.quantity
                         ELSE l.n_cancel = 0 END)",
    ),
    (
        "no ORDER/CANCEL ledger row without its order item",
        "SELECT format('ledger %s: %s %s product %s order %s', l.id, l.reason, l.delta,
                       l.product_id, l.order_id)
         FROM product_stock_ledger l
         WHERE l.reason IN ('ORDER', 'CANCEL')
           AND NOT EXISTS (SELECT 1 FROM order_items i
                           WHERE i.order_id = l.order_id AND i.product_id = l.product_id)",
    ),
    (
        "coupon issued_quantity = issue rows <= totalQuantity",
        "SELECT format('coupon %s: issued_quantity %s, issue rows %s, total %s', c.id,
                       c.issued_quantity, coalesce(i.n, 0), c.total_quantity)
         FROM coupons c
         LEFT JOIN (SELECT coupon_id, count(*) AS n FROM coupon_issues GROUP BY coupon_id) i
           ON i.coupon_id = c.id
         WHERE c.issued_quantity <> coalesce(i.n, 0) OR coalesce(i.n, 0) > c.total_quantity",
    ),
    (
        "no user beyond a coupon's perUserLimit",
        "SELECT format('coupon %s user %s: %s issues, limit %s', c.id, i.user_id, count(*),
                       c.per_user_limit)
         FROM coupon_issues i JOIN coupons c ON c.id = i.coupon_id
         GROUP BY c.id, i.user_id, c.per_user_limit HAVING count(*) > c.per_user_limit",
    ),
    (
        "USED coupon issues are exactly those of CREATED/PAID orders",
        "SELECT format('order %s %s holds issue %s, which is %s for order %s', o.id, o.status,
                       ci.id, ci.status, ci.order_id)
         FROM orders o JOIN coupon_issues ci ON ci.id = o.coupon_issue_id
         WHERE o.status IN ('CREATED', 'PAID') AND NOT (ci.status = 'USED' AND ci.order_id = o.id)
         UNION ALL
         SELECT format('issue %s USED by order %s, which is %s holding %s', ci.id, ci.order_id,
                       o.status, o.coupon_issue_id)
         FROM coupon_issues ci LEFT JOIN orders o ON o.id = ci.order_id
         WHERE ci.status = 'USED'
           AND NOT (o.coupon_issue_id IS NOT DISTINCT FROM ci.id
                    AND o.status IN ('CREATED', 'PAID'))
         UNION ALL
         SELECT format('order %s has a discount %s without a coupon', o.id, o.discount)
         FROM orders o WHERE o.discount > 0 AND o.coupon_issue_id IS NULL",
    ),
    (
        "daily roll-up = net paid quantity per product",
        "SELECT format('product %s: roll-up %s, net paid %s', p.id, coalesce(r.q, 0),
                       coalesce(s.q, 0))
         FROM products p
         LEFT JOIN (SELECT product_id, sum(quantity)::bigint AS q FROM product_sales_daily
                    GROUP BY product_id) r ON r.product_id = p.id
         LEFT JOIN (SELECT i.product_id, sum(i.quantity)::bigint AS q
                    FROM order_items i JOIN orders o ON o.id = i.order_id
                    WHERE o.status = 'PAID' GROUP BY i.product_id) s ON s.product_id = p.id
         WHERE coalesce(r.q, 0) <> coalesce(s.q, 0)",
    ),
    (
        "no unpaid order left past its deadline, no outbox row left READY",
        "SELECT format('order %s still CREATED, expired at %s', id, expires_at)
         FROM orders WHERE status = 'CREATED' AND expires_at < now() - interval '1 second'
         UNION ALL
         SELECT format('outbox %s %s still %s', id, event_type, status)
         FROM outbox_events WHERE status <> 'SENT'",
    ),
];

// ---------------------------------------------------------------------------------------------

#[test]
fn kill_9_under_load_loses_nothing_committed_and_keeps_every_invariant() {
    let db = Database::create("crash");
    let mut first = start(&db);
    let prepared = prepare(&first, &db);
    let ctx = prepared.ctx;

    // Load until enough has been acknowledged, then SIGKILL in the middle of it.
    let seed = u64::from(std::process::id()) | 1;
    let threads = load(&ctx, first.port, LOAD_THREADS, None, seed);
    let kill_after = KILL_AFTER_SUCCESSES + (seed % 500) as usize;
    let deadline = Instant::now() + Duration::from_secs(300);
    while ctx.succeeded.load(Ordering::Relaxed) < kill_after {
        assert!(Instant::now() < deadline, "the load made no progress");
        assert!(
            !threads.iter().all(std::thread::JoinHandle::is_finished),
            "the load stopped before the kill: {:?}",
            ctx.log.lock().unwrap().errors
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed_pid = first.pid();
    let status = first.kill_9();
    let (sent_at_kill, ok_at_kill) = (
        ctx.sent.load(Ordering::Relaxed),
        ctx.succeeded.load(Ordering::Relaxed),
    );
    for handle in threads {
        handle.join().expect("load thread");
    }
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "killed by SIGKILL"
    );
    let cut: usize = ctx.log.lock().unwrap().unknown.values().sum();
    assert!(
        cut >= 1,
        "the kill cut no request: it did not land in the middle of the load"
    );
    let before = snapshot(&ctx);

    // Restart on the same database, and keep using it.
    ctx.restarted.store(true, Ordering::Relaxed);
    let mut shop = start(&db);
    let (status, body) = shop.request("GET", "/health/ready", None, None);
    assert_eq!(status, 200, "{body}");
    for handle in load(
        &ctx,
        shop.port,
        AFTER_RESTART_THREADS,
        Some(AFTER_RESTART_ITERATIONS),
        seed.rotate_left(17),
    ) {
        handle.join().expect("load thread");
    }

    // Let the expiry sweeper and the relay resume: every unpaid order expires (short TTL) and
    // every event is published. Bounded; what is left is reported by the invariants.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline
        && db.count(
            "SELECT (SELECT count(*) FROM orders WHERE status = 'CREATED')
                  + (SELECT count(*) FROM outbox_events WHERE status <> 'SENT')",
        ) > 0
    {
        std::thread::sleep(Duration::from_millis(200));
    }

    let mut failures = Vec::new();
    for (name, sql) in INVARIANTS {
        let found = db.violations(sql);
        if !found.is_empty() {
            let shown: Vec<_> = found.iter().take(10).collect();
            failures.push(format!(
                "{name}: {} violations, e.g. {shown:?}",
                found.len()
            ));
        }
    }
    failures.extend(check_acknowledged(&ctx, &db, &before));
    failures.extend(check_over_http(&ctx, &shop, &db, &prepared.sellers));
    failures.extend(ctx.log.lock().unwrap().errors.iter().cloned());

    let log = ctx.log.lock().unwrap();
    let states: Vec<(String, i64)> = db
        .rows("SELECT status, count(*) FROM orders GROUP BY status ORDER BY status")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    eprintln!(
        "crash test: pid {killed_pid} killed after {sent_at_kill} requests ({ok_at_kill} 2xx); \
         cut in flight {:?}; after restart {} requests in all; orders by state {states:?}; \
         payments {}, outbox events {}, wallet rows {}, coupon issues {}; refusals {:?}",
        log.unknown,
        ctx.sent.load(Ordering::Relaxed),
        db.count("SELECT count(*) FROM payments"),
        db.count("SELECT count(*) FROM outbox_events"),
        db.count("SELECT count(*) FROM wallet_transactions"),
        db.count("SELECT count(*) FROM coupon_issues"),
        log.refusals,
    );
    drop(log);
    if !failures.is_empty() {
        // The servers' own account (JSON log lines at WARN and above) helps explain a failure.
        for (name, server) in [("killed", &mut first), ("restarted", &mut shop)] {
            for line in server.drain_stdout() {
                if line.contains(r#""level":"ERROR""#) || line.contains(r#""level":"WARN""#) {
                    eprintln!("{name} shop: {line}");
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Not vacuous: each kind of outcome happened.
    for state in ["PAID", "REFUNDED", "CANCELED"] {
        assert!(
            states.iter().any(|(s, n)| s == state && *n > 0),
            "no {state} order: {states:?}"
        );
    }
    assert!(db.count("SELECT count(*) FROM coupon_issues") > 0);
    assert!(db.count("SELECT count(*) FROM orders WHERE coupon_issue_id IS NOT NULL") > 0);
}

/// What was acknowledged and cut before the kill (the after-restart load adds to the log).
struct Before {
    unknown: BTreeMap<Kind, usize>,
}

fn snapshot(ctx: &Ctx) -> Before {
    Before {
        unknown: ctx.log.lock().unwrap().unknown.clone(),
    }
}

/// Every acknowledged answer holds after the restart; unacknowledged rows are bounded by the
/// requests the kill cut.
fn check_acknowledged(ctx: &Ctx, db: &Database, before: &Before) -> Vec<String> {
    let log = ctx.log.lock().unwrap();
    let cut = |kind| before.unknown.get(&kind).copied().unwrap_or(0);
    let mut failures = Vec::new();

    let charges: HashMap<i64, (i64, String, i64, i64)> = db
        .rows("SELECT id, user_id, kind, amount, balance_after FROM wallet_transactions")
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3), r.get(4))))
        .collect();
    for ack in &log.charges {
        let expected = (ack.user, "CHARGE".to_owned(), ack.amount, ack.balance_after);
        if charges.get(&ack.id) != Some(&expected) {
            failures.push(format!(
                "acknowledged charge {ack:?} is {:?}",
                charges.get(&ack.id)
            ));
        }
    }
    let stored_charges = charges.values().filter(|c| c.1 == "CHARGE").count();
    if stored_charges > log.charges.len() + cut(Kind::Charge) {
        failures.push(format!(
            "{stored_charges} charges stored, {} acknowledged + {} cut",
            log.charges.len(),
            cut(Kind::Charge)
        ));
    }

    let issues: HashMap<i64, (i64, i64)> = db
        .rows("SELECT id, coupon_id, user_id FROM coupon_issues")
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    for (id, coupon, user) in &log.issues {
        if issues.get(id) != Some(&(*coupon, *user)) {
            failures.push(format!(
                "acknowledged issue {id} of coupon {coupon} to user {user} is {:?}",
                issues.get(id)
            ));
        }
    }
    if issues.len() > log.issues.len() + cut(Kind::Issue) {
        failures.push(format!(
            "{} coupon issues stored, {} acknowledged + {} cut",
            issues.len(),
            log.issues.len(),
            cut(Kind::Issue)
        ));
    }

    // (user, status, total, canceled at or after its deadline)
    let orders: HashMap<i64, (i64, String, i64, bool)> = db
        .rows(
            "SELECT id, user_id, status, total_amount,
                    coalesce(canceled_at >= expires_at, false) FROM orders",
        )
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3), r.get(4))))
        .collect();
    let mut items: HashMap<i64, BTreeMap<i64, i64>> = HashMap::new();
    for r in db.rows("SELECT order_id, product_id, quantity FROM order_items") {
        items
            .entry(r.get(0))
            .or_default()
            .insert(r.get(1), r.get(2));
    }
    // (order, amount, status)
    let payments: HashMap<i64, (i64, i64, String)> = db
        .rows("SELECT id, order_id, amount, status FROM payments")
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect();
    let mut refunded_unexplained = 0;
    let mut canceled_unexplained = 0;
    for (id, ack) in &log.orders {
        let Some((user, status, total, after_deadline)) = orders.get(id) else {
            failures.push(format!("acknowledged order {id} is missing"));
            continue;
        };
        if (*user, *total) != (ack.user, ack.total) || items.get(id) != Some(&ack.items) {
            failures.push(format!(
                "acknowledged order {id} {ack:?} is stored as user {user} total {total} items {:?}",
                items.get(id)
            ));
        }
        // The states the client's answers (and its own cut request, if any) allow.
        let allowed: &[&str] = match (&ack.canceled, ack.payment) {
            (Some(told), _) => &[told.as_str()][..],
            (None, Some(_)) if ack.cancel_unknown => &["PAID", "REFUNDED"],
            (None, Some(_)) => &["PAID"],
            // Only placed: expired by the sweeper, unless the cut request went through.
            (None, None) if ack.pay_unknown => &["CANCELED", "PAID"],
            (None, None) => &["CANCELED"],
        };
        if !allowed.contains(&status.as_str()) {
            failures.push(format!(
                "acknowledged order {id} {ack:?} is {status}, expected one of {allowed:?}"
            ));
        }
        if status == "REFUNDED" && ack.canceled.is_none() {
            refunded_unexplained += 1;
        }
        if status == "CANCELED" && ack.canceled.is_none() && !after_deadline {
            // Canceled before its deadline by nobody the client heard from.
            canceled_unexplained += 1;
        }
        if let Some((payment, amount)) = ack.payment {
            let expected_status = if status == "REFUNDED" {
                "REFUNDED"
            } else {
                "SUCCEEDED"
            };
            if payments.get(&payment) != Some(&(*id, amount, expected_status.to_owned())) {
                failures.push(format!(
                    "acknowledged payment {payment} of order {id} ({amount}) is {:?}, order {status}",
                    payments.get(&payment)
                ));
            }
        }
    }
    if refunded_unexplained + canceled_unexplained > cut(Kind::Cancel) {
        failures.push(format!(
            "{refunded_unexplained} refunds and {canceled_unexplained} early cancels nobody was \
             told about, {} cancels cut",
            cut(Kind::Cancel)
        ));
    }
    let unacknowledged_orders = orders.keys().filter(|id| !log.orders.contains_key(id));
    if unacknowledged_orders.count() > cut(Kind::Order) {
        failures.push(format!(
            "{} orders stored, {} acknowledged + {} cut",
            orders.len(),
            log.orders.len(),
            cut(Kind::Order)
        ));
    }
    let acknowledged_payments = log.orders.values().filter(|o| o.payment.is_some()).count();
    let succeeded = payments.values().filter(|p| p.2 != "FAILED").count();
    if succeeded > acknowledged_payments + cut(Kind::Pay) {
        failures.push(format!(
            "{succeeded} succeeded payments stored, {acknowledged_payments} acknowledged + {} cut",
            cut(Kind::Pay)
        ));
    }
    failures
}

/// After the restart the API serves what SQL shows, without a 5xx: every acknowledged order,
/// every buyer's balance, every product.
fn check_over_http(ctx: &Ctx, shop: &Shop, db: &Database, sellers: &[String]) -> Vec<String> {
    let mut failures = Vec::new();
    let orders: HashMap<i64, String> = db
        .rows("SELECT id, status FROM orders")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let ids: Vec<i64> = ctx.log.lock().unwrap().orders.keys().copied().collect();
    for id in ids {
        let (status, body) =
            shop.request("GET", &format!("/api/v1/orders/{id}"), Some(ADMIN), None);
        let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if status != 200 || json["status"].as_str() != orders.get(&id).map(String::as_str) {
            failures.push(format!("GET /orders/{id}: {status} {body}"));
        }
    }
    for buyer in &ctx.buyers {
        let (status, body) = shop.request("GET", "/api/v1/balance", Some(&buyer.token), None);
        let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let stored = db.count(&format!(
            "SELECT balance FROM wallets WHERE user_id = {}",
            buyer.id
        ));
        if status != 200 || json["balance"].as_i64() != Some(stored) {
            failures.push(format!(
                "GET /balance of {}: {status} {body}, stored {stored}",
                buyer.id
            ));
        }
    }
    for product in &ctx.products {
        let (status, body) = shop.request(
            "GET",
            &format!("/api/v1/products/{product}"),
            Some(&sellers[0]),
            None,
        );
        let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let stored = db.count(&format!("SELECT stock FROM products WHERE id = {product}"));
        if status != 200 || json["stock"].as_i64() != Some(stored) {
            failures.push(format!(
                "GET /products/{product}: {status} {body}, stored {stored}"
            ));
        }
    }
    failures
}
