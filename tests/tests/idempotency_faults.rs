//! `Idempotency-Key` under faults, against the real `shop` binary: a keyed request that the
//! client, the database or the process cuts short, and that the client retries with the same
//! key until it gets a complete answer, has exactly one effect, and every later answer for that
//! key is the first complete one, byte for byte.
//!
//! | test | the fault | store |
//! |---|---|---|
//! | `client_resets_*_{postgres,embedded}` | the client resets its connection (RST) before the body, mid-body, right after it, or while the answer is on its way | PostgreSQL, embedded |
//! | `terminated_sessions_*` | a thread terminates the service's database sessions at random moments | PostgreSQL |
//! | `sigkill_*` | the process is SIGKILLed mid-load and restarted on the same database | PostgreSQL |
//!
//! How a run goes: every client thread owns one buyer and a list of keys. Phase A drives each
//! key until a complete answer (anything but a cut connection, a 5xx or
//! `409 IDEMPOTENCY_IN_PROGRESS`, which are retried with the same key and body). Then the
//! effects are counted (SQL on PostgreSQL, the public API on both stores): one per key, and
//! each key's answer names its effect. Phase B sends every key once more, cleanly: the answer
//! must be marked `Idempotent-Replayed: true` and equal the first complete answer (status and
//! body bytes), and must change nothing.
//!
//! Each key's request is told apart by its content, so that an effect can be traced to its
//! key: charge `i` of a buyer charges `1000 + i` won, order `i` buys `i + 1` units, payment and
//! cancel `i` act on the buyer's order `i` (created unkeyed during set-up), and every coupon
//! issue of a buyer is on the buyer's own coupon (per-user limit 1000, so a duplicate issue is
//! granted and shows up).
//!
//! Knobs (environment): `IDEM_FAULTS_KEYS` keys per endpoint (default 504), `IDEM_FAULTS_THREADS`
//! client threads (8), `IDEM_FAULTS_ABORT_PERCENT` chance that an attempt is reset (60),
//! `IDEM_FAULTS_MAX_ABORTS` resets per key at most (3), `IDEM_FAULTS_AMBIGUOUS_KEYS` and
//! `IDEM_FAULTS_KILL_KEYS` keys per endpoint in the two PostgreSQL fault tests (400 and 480),
//! `IDEM_FAULTS_KILL_SECONDS` how long sessions are terminated (25), `IDEM_FAULTS_KILL_GAP_MS`
//! the longest pause between two terminations (250), `IDEM_FAULTS_KILL_THREADS` client
//! threads of the SIGKILL test (16).
//!
//! PostgreSQL: `TEST_DATABASE_URL` (server URL without a database, default
//! `postgres://postgres@127.0.0.1:5432`); each test creates its own database and drops it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Database, connect};
use e2e::Shop;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ADMIN: &str = "e2e-idempotency-faults-admin-token-0123";
/// Every buyer's wallet before the test (payments cost 100 each).
const FUNDS: i64 = 10_000_000;
const PRICE: i64 = 100;
const STOCK: i64 = 5_000_000;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn keys_per_endpoint() -> usize {
    knob("IDEM_FAULTS_KEYS", 504)
}

fn threads() -> usize {
    knob("IDEM_FAULTS_THREADS", 8).max(1)
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client that can reset its connection at a chosen moment.

/// A complete answer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    replayed: bool,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or("").to_owned()
    }
}

/// Where an attempt is cut: the client closes with SO_LINGER 0, so the server sees an RST.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// Half of the request head.
    InHead,
    /// The head, no body.
    BeforeBody,
    /// The head and half the body.
    MidBody,
    /// The whole request, reset at once.
    AfterBody,
    /// The whole request, reset after waiting this long for the answer.
    Waiting(Duration),
}

fn request_bytes(method: &str, path: &str, token: &str, key: &str, body: &str) -> (Vec<u8>, usize) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nIdempotency-Key: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let head_len = head.len();
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    (bytes, head_len)
}

fn reset(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// One attempt on a fresh connection. `Ok(None)`: cut as planned. `Err`: no complete answer
/// (refused, reset by the server, cut short).
fn attempt(
    port: u16,
    request: &(Vec<u8>, usize),
    cut: Option<Cut>,
) -> std::io::Result<Option<Answer>> {
    let (bytes, head_len) = request;
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let sent = match cut {
        Some(Cut::InHead) => head_len / 2,
        Some(Cut::BeforeBody) => *head_len,
        Some(Cut::MidBody) => head_len + (bytes.len() - head_len) / 2,
        Some(Cut::AfterBody | Cut::Waiting(_)) | None => bytes.len(),
    };
    stream.write_all(&bytes[..sent])?;
    match cut {
        Some(Cut::Waiting(wait)) => {
            std::thread::sleep(wait);
            reset(stream);
            return Ok(None);
        }
        Some(_) => {
            reset(stream);
            return Ok(None);
        }
        None => {}
    }
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_answer(&raw)
        .map(Some)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "cut short"))
}

/// A complete `Connection: close` response: status line, headers, and as many body bytes as
/// its `Content-Length` says (a shorter body is no answer).
fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines
        .next()?
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()?;
    let mut replayed = false;
    let mut length = None;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("idempotent-replayed") {
            replayed = value.eq_ignore_ascii_case("true");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        }
    }
    if length.is_some_and(|n| n != body.len()) {
        return None;
    }
    Some(Answer {
        status,
        replayed,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

// ---------------------------------------------------------------------------------------------
// Driving keys to an answer.

/// How clients misbehave.
#[derive(Clone, Copy)]
struct Faults {
    /// Chance (percent) that an attempt is reset.
    abort_percent: u64,
    /// Resets per key at most (then the client waits for the answer).
    max_aborts: usize,
}

impl Faults {
    const NONE: Self = Self {
        abort_percent: 0,
        max_aborts: 0,
    };

    fn from_env() -> Self {
        Self {
            abort_percent: knob("IDEM_FAULTS_ABORT_PERCENT", 60) as u64,
            max_aborts: knob("IDEM_FAULTS_MAX_ABORTS", 3),
        }
    }
}

/// One keyed request and what became of it.
struct Job {
    endpoint: Endpoint,
    /// The client thread (= buyer) and the key's index among that thread's keys.
    thread: usize,
    index: usize,
    method: &'static str,
    path: String,
    body: String,
    key: String,
    /// The first complete answer (phase A).
    first: Option<Answer>,
    /// The answer to the clean retry of phase B.
    replay: Option<Answer>,
    /// Resets so far, the last incomplete answer, and since when the key answers in progress.
    aborts: usize,
    last: String,
    busy_since: Option<Instant>,
}

impl Job {
    fn describe(&self) -> String {
        format!(
            "{:?} key {} ({} {}): no complete answer before the deadline",
            self.endpoint, self.key, self.method, self.path
        )
    }
}

#[derive(Default)]
struct Stats {
    attempts: AtomicUsize,
    aborts: AtomicUsize,
    in_progress: AtomicUsize,
    server_errors: AtomicUsize,
    connection_errors: AtomicUsize,
    /// Typical time to a complete answer (µs), for the reset delays.
    latency_us: AtomicU64,
    /// Keys that answered in progress for 5 s or more before their answer, and the longest
    /// such wait (ms).
    stuck_keys: AtomicUsize,
    longest_busy_ms: AtomicU64,
}

impl Stats {
    fn new() -> Self {
        let stats = Self::default();
        stats.latency_us.store(5_000, Ordering::Relaxed);
        stats
    }

    fn summary(&self) -> String {
        format!(
            "{} attempts, {} reset by the client, {} answered 409 in progress, {} answered 5xx, \
             {} without an answer from the server; {} keys in progress for 5 s or more \
             (longest {} ms)",
            self.attempts.load(Ordering::Relaxed),
            self.aborts.load(Ordering::Relaxed),
            self.in_progress.load(Ordering::Relaxed),
            self.server_errors.load(Ordering::Relaxed),
            self.connection_errors.load(Ordering::Relaxed),
            self.stuck_keys.load(Ordering::Relaxed),
            self.longest_busy_ms.load(Ordering::Relaxed),
        )
    }
}

/// What one round of [`drive`] got.
enum Step {
    Answered(Answer),
    /// `409 IDEMPOTENCY_IN_PROGRESS`: come back later (other keys go on meanwhile).
    Busy(String),
}

/// Sends the job's request until a complete answer or a `409 IDEMPOTENCY_IN_PROGRESS`: cut
/// attempts (by `faults`, or by the server or the network) and 5xx are retried at once with the
/// same key and body. `Err` when `deadline` passes first.
fn drive(
    job: &mut Job,
    token: &str,
    port: &AtomicU16,
    faults: Faults,
    rng: &mut Rng,
    stats: &Stats,
    deadline: Instant,
) -> Result<Step, String> {
    let request = request_bytes(job.method, &job.path, token, &job.key, &job.body);
    loop {
        if Instant::now() >= deadline {
            return Err(format!("{}; last: {}", job.describe(), job.last));
        }
        let cut = if job.aborts < faults.max_aborts && rng.below(100) < faults.abort_percent {
            job.aborts += 1;
            let typical = stats.latency_us.load(Ordering::Relaxed);
            Some(match rng.below(100) {
                0..10 => Cut::InHead,
                10..20 => Cut::BeforeBody,
                20..30 => Cut::MidBody,
                30..40 => Cut::AfterBody,
                // Spread over the time an answer takes, so that some resets land while the
                // transaction commits.
                _ => Cut::Waiting(Duration::from_micros(rng.below(2 * typical + 1))),
            })
        } else {
            None
        };
        stats.attempts.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        match attempt(port.load(Ordering::SeqCst), &request, cut) {
            Ok(None) => {
                stats.aborts.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                stats.connection_errors.fetch_add(1, Ordering::Relaxed);
                job.last = format!("connection: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(Some(answer)) if answer.status >= 500 => {
                stats.server_errors.fetch_add(1, Ordering::Relaxed);
                job.last = format!("{} {}", answer.status, answer.body);
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(Some(answer))
                if answer.status == 409 && answer.code() == "IDEMPOTENCY_IN_PROGRESS" =>
            {
                stats.in_progress.fetch_add(1, Ordering::Relaxed);
                job.busy_since.get_or_insert_with(Instant::now);
                return Ok(Step::Busy(answer.body));
            }
            Ok(Some(answer)) => {
                let took = started.elapsed().as_micros() as u64;
                let typical = stats.latency_us.load(Ordering::Relaxed);
                stats
                    .latency_us
                    .store((typical * 7 + took) / 8, Ordering::Relaxed);
                if let Some(since) = job.busy_since.take() {
                    let waited = since.elapsed().as_millis() as u64;
                    stats.longest_busy_ms.fetch_max(waited, Ordering::Relaxed);
                    if waited >= 5_000 {
                        stats.stuck_keys.fetch_add(1, Ordering::Relaxed);
                    }
                }
                return Ok(Step::Answered(answer));
            }
        }
    }
}

/// Runs phase A (`replay == false`: every job to its first complete answer) or phase B (a clean
/// retry of every job) on one thread per buyer. A key answered `409 IDEMPOTENCY_IN_PROGRESS` is
/// set aside and retried with a growing pause while the thread goes on with its other keys, so
/// that a key stuck for a whole lease does not hold the others up. Returns the keys that got
/// no complete answer within `within`.
fn run_jobs(
    jobs: &mut [Job],
    tokens: &[String],
    port: &AtomicU16,
    faults: Faults,
    stats: &Stats,
    replay: bool,
    within: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut per_thread: BTreeMap<usize, Vec<&mut Job>> = BTreeMap::new();
    for job in jobs.iter_mut() {
        per_thread.entry(job.thread).or_default().push(job);
    }
    let failures = Mutex::new(Vec::new());
    let base = seed();
    let faults = if replay { Faults::NONE } else { faults };
    std::thread::scope(|s| {
        for (thread, mut mine) in per_thread {
            let failures = &failures;
            let token = &tokens[thread];
            s.spawn(move || {
                let mut rng = Rng::new(base ^ (thread as u64 + 1).rotate_left(17));
                // (job, not before, pauses so far)
                let mut pending: std::collections::VecDeque<(usize, Instant, u32)> =
                    (0..mine.len()).map(|i| (i, Instant::now(), 0)).collect();
                while !pending.is_empty() {
                    let now = Instant::now();
                    let Some(pos) = pending.iter().position(|(_, at, _)| *at <= now) else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    let (i, _, pauses) = pending.remove(pos).unwrap();
                    let job = &mut *mine[i];
                    match drive(job, token, port, faults, &mut rng, stats, deadline) {
                        Ok(Step::Answered(answer)) if replay => job.replay = Some(answer),
                        Ok(Step::Answered(answer)) => job.first = Some(answer),
                        Ok(Step::Busy(body)) => {
                            job.last = format!("409 {body}");
                            let pause = Duration::from_millis(25 << pauses.min(4));
                            pending.push_back((i, Instant::now() + pause, pauses + 1));
                        }
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                }
            });
        }
    });
    failures.into_inner().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Endpoints and their fixtures.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Endpoint {
    Charge,
    Order,
    Pay,
    Cancel,
    Issue,
}

impl Endpoint {
    /// The status of a first execution.
    fn success(self) -> u16 {
        match self {
            Self::Charge | Self::Cancel => 200,
            Self::Order | Self::Pay | Self::Issue => 201,
        }
    }
}

struct Buyer {
    id: i64,
    token: String,
}

/// What the set-up made: per client thread a buyer, a product, a coupon and (for payments and
/// cancels) one unpaid order per key.
struct Fixture {
    seller: String,
    buyers: Vec<Buyer>,
    products: Vec<i64>,
    coupons: Vec<i64>,
    orders: Vec<Vec<i64>>,
}

fn post(shop: &Shop, path: &str, token: Option<&str>, body: &Value) -> Value {
    let (status, text) = shop.request("POST", path, token, Some(&body.to_string()));
    assert!((200..300).contains(&status), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

/// A read for the checks. A 503 is retried for a while: right after its sessions were
/// terminated the service may still hand out a dead connection once.
fn get(shop: &Shop, path: &str, token: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, text) = shop.request("GET", path, Some(token), None);
        if status == 503 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        assert_eq!(status, 200, "GET {path}: {text}");
        return serde_json::from_str(&text).unwrap();
    }
}

/// Every item of a cursor-paged list.
fn all_pages(shop: &Shop, path: &str, token: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let separator = if path.contains('?') { '&' } else { '?' };
        let page_path = match &cursor {
            Some(c) => format!("{path}{separator}limit=100&cursor={c}"),
            None => format!("{path}{separator}limit=100"),
        };
        let page = get(shop, &page_path, token);
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

fn rfc3339_in(seconds: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + seconds;
    let (days, secs) = (now.div_euclid(86_400), now.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn prepare(shop: &Shop, threads: usize, unpaid_orders_per_thread: usize) -> Fixture {
    let seller = post(
        shop,
        "/api/v1/users",
        Some(ADMIN),
        &json!({"name": "faults seller", "role": "SELLER"}),
    )["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut fixture = Fixture {
        seller,
        buyers: Vec::new(),
        products: Vec::new(),
        coupons: Vec::new(),
        orders: Vec::new(),
    };
    for t in 0..threads {
        let user = post(
            shop,
            "/api/v1/users",
            None,
            &json!({"name": format!("buyer {t}")}),
        );
        let buyer = Buyer {
            id: user["id"].as_i64().unwrap(),
            token: user["token"].as_str().unwrap().to_owned(),
        };
        post(
            shop,
            "/api/v1/balance/charge",
            Some(&buyer.token),
            &json!({"amount": FUNDS}),
        );
        let product = post(
            shop,
            "/api/v1/products",
            Some(&fixture.seller),
            &json!({"name": format!("tea {t}"), "price": PRICE, "stock": STOCK}),
        )["id"]
            .as_i64()
            .unwrap();
        let coupon = post(
            shop,
            "/api/v1/coupons",
            Some(&fixture.seller),
            &json!({"name": format!("coupon {t}"), "discountType": "AMOUNT", "amount": 10,
                    "totalQuantity": 1_000_000, "perUserLimit": 1_000,
                    "startsAt": rfc3339_in(-60), "expiresAt": rfc3339_in(3_600)}),
        )["id"]
            .as_i64()
            .unwrap();
        let orders = (0..unpaid_orders_per_thread)
            .map(|_| {
                post(
                    shop,
                    "/api/v1/orders",
                    Some(&buyer.token),
                    &json!({"items": [{"productId": product, "quantity": 1}]}),
                )["id"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        fixture.buyers.push(buyer);
        fixture.products.push(product);
        fixture.coupons.push(coupon);
        fixture.orders.push(orders);
    }
    fixture
}

fn shop_env(db: Option<&Database>) -> Vec<(String, String)> {
    let mut env = vec![
        ("ADMIN_TOKEN".to_owned(), ADMIN.to_owned()),
        // The clients run a few tokens hard; the limiter is not under test.
        ("RATE_LIMIT_PER_SECOND".to_owned(), "0".to_owned()),
        // Every thread's buyer signs up from 127.0.0.1; the per-client budget is not under test.
        ("ANON_RATE_LIMIT_PER_SECOND".to_owned(), "0".to_owned()),
        ("COUPON_ISSUE_MODE".to_owned(), "sync".to_owned()),
        ("MAX_BALANCE".to_owned(), "1000000000000".to_owned()),
    ];
    if let Some(db) = db {
        env.push(("DATABASE_URL".to_owned(), db.url()));
    }
    env
}

fn start(env: &[(String, String)]) -> Shop {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Shop::start(&env)
}

/// The keyed requests: `per_thread` keys of `endpoint` for each thread.
fn jobs(endpoint: Endpoint, fixture: &Fixture, per_thread: usize, tag: &str) -> Vec<Job> {
    assert!(
        per_thread <= 1_000,
        "order quantities tell keys apart: at most 1000 a buyer"
    );
    let nonce = seed() % 1_000_000_007;
    let mut jobs = Vec::new();
    for thread in 0..fixture.buyers.len() {
        for index in 0..per_thread {
            let (method, path, body) = match endpoint {
                Endpoint::Charge => (
                    "POST",
                    "/api/v1/balance/charge".to_owned(),
                    json!({"amount": 1_000 + index}).to_string(),
                ),
                Endpoint::Order => (
                    "POST",
                    "/api/v1/orders".to_owned(),
                    json!({"items": [{"productId": fixture.products[thread],
                                      "quantity": index + 1}]})
                    .to_string(),
                ),
                Endpoint::Pay => (
                    "POST",
                    "/api/v1/payments".to_owned(),
                    json!({"orderId": fixture.orders[thread][index]}).to_string(),
                ),
                Endpoint::Cancel => (
                    "POST",
                    format!("/api/v1/orders/{}/cancel", fixture.orders[thread][index]),
                    String::new(),
                ),
                Endpoint::Issue => (
                    "POST",
                    format!("/api/v1/coupons/{}/issue", fixture.coupons[thread]),
                    String::new(),
                ),
            };
            jobs.push(Job {
                endpoint,
                thread,
                index,
                method,
                path,
                body,
                key: format!("{tag}-{endpoint:?}-{nonce}-{thread}-{index}"),
                first: None,
                replay: None,
                aborts: 0,
                last: "nothing".to_owned(),
                busy_since: None,
            });
        }
    }
    jobs
}

// ---------------------------------------------------------------------------------------------
// Counting effects through the public API (both stores).

/// What one endpoint's keys left behind.
#[derive(Default)]
struct Verdict {
    failures: Vec<String>,
    /// Effects beyond one per key.
    doubles: usize,
    /// Keys whose first complete answer is not the answer of their (single) effect: the
    /// request ran again and was refused (`ORDER_NOT_PAYABLE`, `INVALID_ORDER_STATE`).
    wrong_answers: usize,
    /// A summary of the effects, compared before and after phase B.
    effects: BTreeMap<String, usize>,
}

impl Verdict {
    fn fail(&mut self, failure: String) {
        self.failures.push(failure);
    }
}

fn verify_api(shop: &Shop, fixture: &Fixture, jobs: &[Job]) -> Verdict {
    let mut verdict = Verdict::default();
    let mut by_thread: BTreeMap<usize, Vec<&Job>> = BTreeMap::new();
    for job in jobs {
        by_thread.entry(job.thread).or_default().push(job);
    }
    for (thread, mine) in by_thread {
        let buyer = &fixture.buyers[thread];
        let transactions = all_pages(shop, "/api/v1/balance/transactions", &buyer.token);
        let orders = all_pages(shop, "/api/v1/orders", &buyer.token);
        let balance = get(shop, "/api/v1/balance", &buyer.token)["balance"]
            .as_i64()
            .unwrap();
        let sum: i64 = transactions
            .iter()
            .map(|t| t["amount"].as_i64().unwrap())
            .sum();
        if sum != balance {
            verdict.fail(format!(
                "buyer {}: balance {balance}, transactions sum {sum}",
                buyer.id
            ));
        }
        *verdict
            .effects
            .entry(format!("buyer {} wallet rows", buyer.id))
            .or_default() += transactions.len();
        *verdict
            .effects
            .entry(format!("buyer {} orders", buyer.id))
            .or_default() += orders.len();
        for job in &mine {
            verify_job(shop, fixture, job, &transactions, &orders, &mut verdict);
        }
        // Stock: every order of this buyer's product took its quantity, every cancel gave it
        // back; nobody else buys it.
        let product = fixture.products[thread];
        let stock = get(
            shop,
            &format!("/api/v1/products/{product}"),
            &fixture.seller,
        )["stock"]
            .as_i64()
            .unwrap();
        let held: i64 = orders
            .iter()
            .filter(|o| o["status"] != "CANCELED")
            .flat_map(|o| o["items"].as_array().unwrap().iter())
            .filter(|i| i["productId"] == product)
            .map(|i| i["quantity"].as_i64().unwrap())
            .sum();
        if stock != STOCK - held {
            verdict.fail(format!(
                "product {product}: stock {stock}, expected {STOCK} - {held} held by live orders"
            ));
        }
        if mine[0].endpoint == Endpoint::Issue {
            let coupon = fixture.coupons[thread];
            let mine_issues: Vec<i64> = get(shop, "/api/v1/coupons/my", &buyer.token)["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["couponId"] == coupon)
                .map(|i| i["id"].as_i64().unwrap())
                .collect();
            verdict
                .effects
                .insert(format!("buyer {} issues", buyer.id), mine_issues.len());
            let keys = mine.len();
            if mine_issues.len() > keys {
                verdict.doubles += mine_issues.len() - keys;
                verdict.fail(format!(
                    "buyer {}: {} issues of coupon {coupon} for {keys} keys",
                    buyer.id,
                    mine_issues.len()
                ));
            }
            let answered: BTreeSet<i64> = mine
                .iter()
                .filter_map(|j| j.first.as_ref()?.json()["id"].as_i64())
                .collect();
            let stored: BTreeSet<i64> = mine_issues.iter().copied().collect();
            if answered.len() != keys || !answered.is_subset(&stored) {
                verdict.fail(format!(
                    "buyer {}: {} distinct issue ids answered for {keys} keys, {} of them \
                     stored",
                    buyer.id,
                    answered.len(),
                    answered.intersection(&stored).count()
                ));
            }
        }
    }
    if let Some(Endpoint::Cancel) = jobs.first().map(|j| j.endpoint) {
        verify_cancel_ledger(shop, fixture, jobs, &mut verdict);
    }
    verdict
}

/// The effects of one key, traced by the content of its request.
fn verify_job(
    _shop: &Shop,
    fixture: &Fixture,
    job: &Job,
    transactions: &[Value],
    orders: &[Value],
    verdict: &mut Verdict,
) {
    let Some(first) = &job.first else {
        return; // reported by the runner
    };
    let answer = first.json();
    let expected = job.endpoint.success();
    if first.status != expected {
        verdict.wrong_answers += 1;
        verdict.fail(format!(
            "key {}: first complete answer {} {} (expected {expected})",
            job.key, first.status, first.body
        ));
    }
    match job.endpoint {
        Endpoint::Charge => {
            let amount = 1_000 + job.index as i64;
            let rows: Vec<i64> = transactions
                .iter()
                .filter(|t| t["type"] == "CHARGE" && t["amount"] == amount)
                .map(|t| t["id"].as_i64().unwrap())
                .collect();
            check_one(verdict, job, &rows, answer["transaction"]["id"].as_i64());
        }
        Endpoint::Order => {
            let quantity = job.index as i64 + 1;
            let rows: Vec<i64> = orders
                .iter()
                .filter(|o| o["items"][0]["quantity"] == quantity)
                .map(|o| o["id"].as_i64().unwrap())
                .collect();
            check_one(verdict, job, &rows, answer["id"].as_i64());
        }
        Endpoint::Pay => {
            let order = fixture.orders[job.thread][job.index];
            let rows: Vec<i64> = transactions
                .iter()
                .filter(|t| t["type"] == "PAYMENT" && t["orderId"] == order)
                .map(|t| t["id"].as_i64().unwrap())
                .collect();
            check_one(verdict, job, &rows, None);
            if first.status == 201
                && (answer["orderId"] != order || answer["status"] != "SUCCEEDED")
            {
                verdict.fail(format!("key {}: answered {}", job.key, first.body));
            }
            let state = orders
                .iter()
                .find(|o| o["id"] == order)
                .map(|o| &o["status"]);
            if state != Some(&json!("PAID")) {
                verdict.fail(format!(
                    "order {order} paid under key {} is {state:?}",
                    job.key
                ));
            }
        }
        Endpoint::Cancel => {
            let order = fixture.orders[job.thread][job.index];
            if first.status == 200 && (answer["id"] != order || answer["status"] != "CANCELED") {
                verdict.fail(format!("key {}: answered {}", job.key, first.body));
            }
            let state = orders
                .iter()
                .find(|o| o["id"] == order)
                .map(|o| &o["status"]);
            if state != Some(&json!("CANCELED")) {
                verdict.fail(format!(
                    "order {order} canceled under key {} is {state:?}",
                    job.key
                ));
            }
        }
        Endpoint::Issue => {} // per buyer, in `verify_api`
    }
}

/// Exactly one effect for the key; the answer names it (when it names one).
fn check_one(verdict: &mut Verdict, job: &Job, rows: &[i64], answered: Option<i64>) {
    match rows.len() {
        0 => verdict.fail(format!("key {}: no effect", job.key)),
        1 => {}
        n => {
            verdict.doubles += n - 1;
            verdict.fail(format!("key {}: {n} effects {rows:?}", job.key));
        }
    }
    if let Some(id) = answered
        && !rows.contains(&id)
    {
        verdict.fail(format!(
            "key {}: the answer names {id}, the effects are {rows:?}",
            job.key
        ));
    }
}

/// One CANCEL ledger row per canceled order.
fn verify_cancel_ledger(shop: &Shop, fixture: &Fixture, jobs: &[Job], verdict: &mut Verdict) {
    let mut cancels: BTreeMap<i64, usize> = BTreeMap::new();
    for product in &fixture.products {
        for row in all_pages(
            shop,
            &format!("/api/v1/products/{product}/stock-ledger"),
            &fixture.seller,
        ) {
            if row["reason"] == "CANCEL" {
                *cancels.entry(row["orderId"].as_i64().unwrap()).or_default() += 1;
            }
        }
    }
    verdict
        .effects
        .insert("CANCEL ledger rows".into(), cancels.values().sum());
    for job in jobs {
        let order = fixture.orders[job.thread][job.index];
        match cancels.get(&order).copied().unwrap_or(0) {
            1 => {}
            n => {
                verdict.doubles += n.saturating_sub(1);
                verdict.fail(format!(
                    "order {order} (key {}): {n} CANCEL ledger rows",
                    job.key
                ));
            }
        }
    }
}

/// Phase B: every clean retry is a replay of the first complete answer, byte for byte.
fn verify_replays(jobs: &[Job]) -> Vec<String> {
    jobs.iter()
        .filter_map(|job| {
            let (first, replay) = (job.first.as_ref()?, job.replay.as_ref()?);
            let same =
                replay.replayed && replay.status == first.status && replay.body == first.body;
            (!same).then(|| {
                format!(
                    "key {}: first answer {} {}, retry answered {} (replayed: {}) {}",
                    job.key, first.status, first.body, replay.status, replay.replayed, replay.body
                )
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL checks.

const SQL_CHECKS: &[(&str, &str)] = &[
    (
        "no key left IN_PROGRESS",
        "SELECT format('key %s of user %s still %s', key, user_id, status)
         FROM idempotency_keys WHERE status <> 'COMPLETED'",
    ),
    (
        "at most one SUCCEEDED payment per order",
        "SELECT format('order %s: %s succeeded payments', order_id, count(*))
         FROM payments WHERE status = 'SUCCEEDED' GROUP BY order_id HAVING count(*) > 1",
    ),
    (
        "stock = sum of ledger deltas",
        "SELECT format('product %s: stock %s, ledger sum %s', p.id, p.stock, coalesce(l.s, 0))
         FROM products p
         LEFT JOIN (SELECT product_id, sum(delta)::bigint AS s FROM product_stock_ledger
                    GROUP BY product_id) l ON l.product_id = p.id
         WHERE p.stock <> coalesce(l.s, 0)",
    ),
    (
        "each item: one ORDER ledger row, and one CANCEL row iff canceled",
        "SELECT format('order %s %s product %s: ORDER rows %s, CANCEL rows %s',
                       o.id, o.status, i.product_id, l.n_order, l.n_cancel)
         FROM order_items i JOIN orders o ON o.id = i.order_id
         CROSS JOIN LATERAL (
           SELECT count(*) FILTER (WHERE reason = 'ORDER') AS n_order,
                  count(*) FILTER (WHERE reason = 'CANCEL') AS n_cancel
           FROM product_stock_ledger l
           WHERE l.order_id = i.order_id AND l.product_id = i.product_id) l
         WHERE l.n_order <> 1
            OR l.n_cancel <> CASE WHEN o.status IN ('CANCELED', 'REFUNDED') THEN 1 ELSE 0 END",
    ),
    (
        "balance = sum of wallet transactions",
        "SELECT format('user %s: balance %s, transactions sum %s', w.user_id, w.balance,
                       coalesce(t.s, 0))
         FROM wallets w
         LEFT JOIN (SELECT user_id, sum(amount)::bigint AS s FROM wallet_transactions
                    GROUP BY user_id) t ON t.user_id = w.user_id
         WHERE w.balance <> coalesce(t.s, 0)",
    ),
    (
        "issued_quantity = issue rows",
        "SELECT format('coupon %s: issued_quantity %s, rows %s', c.id, c.issued_quantity,
                       (SELECT count(*) FROM coupon_issues ci WHERE ci.coupon_id = c.id))
         FROM coupons c
         WHERE c.issued_quantity <> (SELECT count(*) FROM coupon_issues ci
                                     WHERE ci.coupon_id = c.id)",
    ),
];

fn verify_sql(db: &Database) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, sql) in SQL_CHECKS {
        let found = db.violations(sql);
        if !found.is_empty() {
            let shown: Vec<_> = found.iter().take(5).collect();
            failures.push(format!(
                "{name}: {} violations, e.g. {shown:?}",
                found.len()
            ));
        }
    }
    failures
}

/// Row counts of every table a keyed request writes to.
fn sql_effects(db: &Database) -> BTreeMap<String, usize> {
    [
        "wallet_transactions",
        "orders",
        "payments",
        "product_stock_ledger",
        "coupon_issues",
    ]
    .iter()
    .map(|table| {
        let n = db.count(&format!("SELECT count(*) FROM {table}"));
        ((*table).to_owned(), usize::try_from(n).unwrap())
    })
    .collect()
}

// ---------------------------------------------------------------------------------------------
// Test 1: clients that reset their connections.

fn client_resets(endpoint: Endpoint, postgres: bool) {
    let db = postgres.then(|| Database::create("idem"));
    let env = shop_env(db.as_ref());
    let mut shop = start(&env);
    let threads = threads();
    let per_thread = keys_per_endpoint().div_ceil(threads);
    let unpaid = if matches!(endpoint, Endpoint::Pay | Endpoint::Cancel) {
        per_thread
    } else {
        0
    };
    let fixture = prepare(&shop, threads, unpaid);
    let tokens: Vec<String> = fixture.buyers.iter().map(|b| b.token.clone()).collect();
    let mut jobs = jobs(endpoint, &fixture, per_thread, "resets");
    let port = AtomicU16::new(shop.port);
    let stats = Stats::new();
    let started = Instant::now();

    let mut failures = run_jobs(
        &mut jobs,
        &tokens,
        &port,
        Faults::from_env(),
        &stats,
        false,
        Duration::from_secs(100),
    );
    let after_a = verify_api(&shop, &fixture, &jobs);
    let sql_after_a = db.as_ref().map(sql_effects);
    let store = if postgres { "PostgreSQL" } else { "embedded" };
    eprintln!(
        "{endpoint:?} on {store}: {} keys in {:?}: {}; doubled effects {}, wrong first answers {}",
        jobs.len(),
        started.elapsed(),
        stats.summary(),
        after_a.doubles,
        after_a.wrong_answers,
    );

    let replay_stats = Stats::new();
    failures.extend(run_jobs(
        &mut jobs,
        &tokens,
        &port,
        Faults::NONE,
        &replay_stats,
        true,
        Duration::from_secs(60),
    ));
    failures.extend(after_a.failures.iter().take(20).cloned());
    failures.extend(verify_replays(&jobs).into_iter().take(20));
    let after_b = verify_api(&shop, &fixture, &jobs);
    if after_b.effects != after_a.effects {
        failures.push(format!(
            "the clean retries changed the effects: {:?} became {:?}",
            after_a.effects, after_b.effects
        ));
    }
    if let Some(db) = &db {
        failures.extend(verify_sql(db));
        let sql_after_b = sql_effects(db);
        if sql_after_a.as_ref() != Some(&sql_after_b) {
            failures.push(format!(
                "the clean retries changed the rows: {sql_after_a:?} became {sql_after_b:?}"
            ));
        }
    }
    // Not vacuous: the resets happened, and some of them while the answer was on its way.
    assert!(
        stats.aborts.load(Ordering::Relaxed) >= jobs.len() / 2,
        "too few resets: {}",
        stats.summary()
    );
    report(&mut shop, &failures);
}

fn report(shop: &mut Shop, failures: &[String]) {
    if failures.is_empty() {
        return;
    }
    for line in shop.drain_stdout() {
        if line.contains(r#""level":"ERROR""#) {
            eprintln!("shop: {line}");
        }
    }
    panic!("{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn client_resets_charge_postgres() {
    client_resets(Endpoint::Charge, true);
}

#[test]
fn client_resets_place_order_postgres() {
    client_resets(Endpoint::Order, true);
}

#[test]
fn client_resets_pay_postgres() {
    client_resets(Endpoint::Pay, true);
}

#[test]
fn client_resets_cancel_postgres() {
    client_resets(Endpoint::Cancel, true);
}

#[test]
fn client_resets_coupon_issue_postgres() {
    client_resets(Endpoint::Issue, true);
}

#[test]
fn client_resets_charge_embedded() {
    client_resets(Endpoint::Charge, false);
}

#[test]
fn client_resets_place_order_embedded() {
    client_resets(Endpoint::Order, false);
}

#[test]
fn client_resets_pay_embedded() {
    client_resets(Endpoint::Pay, false);
}

#[test]
fn client_resets_cancel_embedded() {
    client_resets(Endpoint::Cancel, false);
}

#[test]
fn client_resets_coupon_issue_embedded() {
    client_resets(Endpoint::Issue, false);
}

// ---------------------------------------------------------------------------------------------
// Tests 2 and 3: commits whose outcome the service cannot know, and a process killed between
// commit and answer. Charges and orders, interleaved: each thread owns a buyer and alternates.

/// Charges and orders for every thread, interleaved per thread.
fn mixed_jobs(fixture: &Fixture, per_endpoint: usize, tag: &str) -> Vec<Job> {
    let per_thread = per_endpoint.div_ceil(fixture.buyers.len());
    let charges = jobs(Endpoint::Charge, fixture, per_thread, tag);
    let orders = jobs(Endpoint::Order, fixture, per_thread, tag);
    let mut mixed = Vec::new();
    for (charge, order) in charges.into_iter().zip(orders) {
        mixed.push(charge);
        mixed.push(order);
    }
    mixed
}

/// Terminates every session of the service on `db` at random intervals until `stop` or
/// `until`. Bounded in time so that the keys a termination left claimed (a claim that
/// committed but whose answer was lost stays in progress for its 60 s lease) are answered
/// within the test's deadline once the kills stop.
fn session_killer(
    url: String,
    spare: i32,
    stop: Arc<AtomicBool>,
    until: Instant,
    kills: Arc<AtomicUsize>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = runtime.block_on(connect(&url));
    let mut rng = Rng::new(seed());
    let max_gap = knob("IDEM_FAULTS_KILL_GAP_MS", 250) as u64;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10 + rng.below(max_gap)));
        let killed = runtime
            .block_on(client.query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> $1",
                &[&spare],
            ))
            .map(|rows| rows.len())
            .unwrap_or(0);
        kills.fetch_add(killed, Ordering::Relaxed);
    }
}

fn verify_mixed(
    shop: &Shop,
    db: &Database,
    fixture: &Fixture,
    jobs: &[Job],
) -> (Vec<String>, BTreeMap<Endpoint, (usize, usize)>) {
    let mut failures = Vec::new();
    let mut figures = BTreeMap::new();
    for endpoint in [Endpoint::Charge, Endpoint::Order] {
        let subset: Vec<&Job> = jobs.iter().filter(|j| j.endpoint == endpoint).collect();
        let mut verdict = Verdict::default();
        let mut by_thread: BTreeMap<usize, Vec<&Job>> = BTreeMap::new();
        for job in subset {
            by_thread.entry(job.thread).or_default().push(job);
        }
        for (thread, mine) in by_thread {
            let buyer = &fixture.buyers[thread];
            let transactions = all_pages(shop, "/api/v1/balance/transactions", &buyer.token);
            let orders = all_pages(shop, "/api/v1/orders", &buyer.token);
            for job in mine {
                verify_job(shop, fixture, job, &transactions, &orders, &mut verdict);
            }
        }
        figures.insert(endpoint, (verdict.doubles, verdict.wrong_answers));
        failures.extend(verdict.failures.into_iter().take(20));
    }
    failures.extend(verify_sql(db));
    (failures, figures)
}

#[test]
fn terminated_sessions_during_keyed_charges_and_orders_leave_one_effect_per_key() {
    let db = Database::create("idem");
    let env = shop_env(Some(&db));
    let mut shop = start(&env);
    let fixture = prepare(&shop, threads(), 0);
    let tokens: Vec<String> = fixture.buyers.iter().map(|b| b.token.clone()).collect();
    let mut jobs = mixed_jobs(
        &fixture,
        knob("IDEM_FAULTS_AMBIGUOUS_KEYS", 400),
        "terminated",
    );
    let port = AtomicU16::new(shop.port);
    let stats = Stats::new();

    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(knob("IDEM_FAULTS_KILL_SECONDS", 25) as u64);
    let killer = {
        // The test's own session (its checks) is spared by the killer.
        let spare: i32 = db.rows("SELECT pg_backend_pid()")[0].get(0);
        let (url, stop, kills) = (db.url(), stop.clone(), kills.clone());
        std::thread::spawn(move || session_killer(url, spare, stop, until, kills))
    };
    // A few client resets too, so that some retries overlap a request still running.
    let faults = Faults {
        abort_percent: 20,
        max_aborts: 1,
    };
    let started = Instant::now();
    let mut failures = run_jobs(
        &mut jobs,
        &tokens,
        &port,
        faults,
        &stats,
        false,
        Duration::from_secs(100),
    );
    stop.store(true, Ordering::Relaxed);
    killer.join().unwrap();
    eprintln!(
        "terminated sessions: {} keys in {:?}, {} sessions terminated; {}",
        jobs.len(),
        started.elapsed(),
        kills.load(Ordering::Relaxed),
        stats.summary()
    );

    let (found, figures) = verify_mixed(&shop, &db, &fixture, &jobs);
    eprintln!("terminated sessions: (doubled effects, wrong first answers) {figures:?}");
    failures.extend(found);
    let replay_stats = Stats::new();
    failures.extend(run_jobs(
        &mut jobs,
        &tokens,
        &port,
        Faults::NONE,
        &replay_stats,
        true,
        Duration::from_secs(60),
    ));
    failures.extend(verify_replays(&jobs).into_iter().take(20));
    assert!(
        kills.load(Ordering::Relaxed) > 0 && stats.server_errors.load(Ordering::Relaxed) > 0,
        "the killer never hit a request: {}",
        stats.summary()
    );
    report(&mut shop, &failures);
}

#[test]
fn sigkill_between_commit_and_answer_leaves_one_effect_per_key() {
    let db = Database::create("idem");
    let env = shop_env(Some(&db));
    let mut first = start(&env);
    let fixture = prepare(&first, knob("IDEM_FAULTS_KILL_THREADS", 16), 0);
    let tokens: Vec<String> = fixture.buyers.iter().map(|b| b.token.clone()).collect();
    let mut jobs = mixed_jobs(&fixture, knob("IDEM_FAULTS_KILL_KEYS", 480), "sigkill");
    let port = AtomicU16::new(first.port);
    let stats = Stats::new();
    let total = jobs.len();

    let mut rng = Rng::new(seed());
    // Somewhere in the first half of the load, after it is in full swing.
    let kill_after = total / 8 + rng.below(total as u64 / 3) as usize;
    let mut second: Option<Shop> = None;
    let mut failures = Vec::new();
    std::thread::scope(|s| {
        let load = s.spawn(|| {
            // The lease of a key whose request died with the process is 60 s; the retries
            // outlast it.
            run_jobs(
                &mut jobs,
                &tokens,
                &port,
                Faults::NONE,
                &stats,
                false,
                Duration::from_secs(100),
            )
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while stats.attempts.load(Ordering::Relaxed) < kill_after && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        first.kill_9();
        let restarted = start(&env);
        port.store(restarted.port, Ordering::SeqCst);
        second = Some(restarted);
        failures = load.join().unwrap();
    });
    let mut shop = second.unwrap();
    let (found, figures) = verify_mixed(&shop, &db, &fixture, &jobs);
    eprintln!(
        "SIGKILL after {kill_after} attempts: {total} keys; {}; (doubled effects, wrong first \
         answers) per endpoint {figures:?}",
        stats.summary()
    );
    failures.extend(found);
    let replay_stats = Stats::new();
    failures.extend(run_jobs(
        &mut jobs,
        &tokens,
        &port,
        Faults::NONE,
        &replay_stats,
        true,
        Duration::from_secs(30),
    ));
    failures.extend(verify_replays(&jobs).into_iter().take(20));
    assert!(
        stats.connection_errors.load(Ordering::Relaxed) > 0,
        "the kill cut no request: {}",
        stats.summary()
    );
    report(&mut shop, &failures);
}
