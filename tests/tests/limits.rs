//! The request budgets of the real binary, over real HTTP: anonymous sign-ups and failed
//! authentications per client (also behind a trusted proxy), budgets shared by two instances
//! on one Redis, and the fallback when Redis is down.
//!
//! Every test is bounded in time by construction: a fixed number of requests, each on its own
//! connection with a 10 s read timeout, and no waiting loop without a deadline.

#![allow(clippy::unwrap_used)]

use e2e::Shop;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const ADMIN: &str = "e2e-limits-admin-token-0123456789";

/// A response: status, head (lower-cased header lines) and body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.head
            .lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .map(str::trim)
    }

    fn is_rate_limited(&self) -> bool {
        self.status == 429
            && self.body.contains(r#""code":"RATE_LIMITED""#)
            && self.head.contains("content-type: application/problem+json")
            && self
                .header("retry-after")
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|s| s >= 1)
    }
}

/// One request on a fresh connection, with extra headers.
fn call(
    shop: &Shop,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", shop.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = body.unwrap_or("");
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    Answer {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

fn sign_up(shop: &Shop, name: &str, headers: &[(&str, &str)]) -> Answer {
    call(
        shop,
        "POST",
        "/api/v1/users",
        headers,
        Some(&format!(r#"{{"name":"{name}"}}"#)),
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The most requests a budget of `burst` at `per_second` can have let through in `elapsed`.
fn budget(burst: u32, per_second: u32, elapsed: Duration) -> usize {
    burst as usize + (elapsed.as_secs_f64() * f64::from(per_second)).ceil() as usize
}

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}:{nanos:x}:{}:", std::process::id())
}

/// The defaults (5/s, burst 20) bound a sign-up flood from one client: 429 with Retry-After
/// once the burst is spent, and no user is created beyond the budget.
#[test]
fn a_sign_up_flood_from_one_client_is_refused_after_the_burst() {
    let shop = Shop::start(&[("ADMIN_TOKEN", ADMIN)]);
    let started = Instant::now();
    let answers: Vec<Answer> = (0..80)
        .map(|n| sign_up(&shop, &format!("flood {n}"), &[]))
        .collect();
    let elapsed = started.elapsed();
    let created: Vec<i64> = answers
        .iter()
        .filter(|a| a.status == 201)
        .map(|a| {
            let json: serde_json::Value = serde_json::from_str(&a.body).unwrap();
            json["id"].as_i64().unwrap()
        })
        .collect();
    let refused = answers.iter().filter(|a| a.is_rate_limited()).count();
    assert_eq!(created.len() + refused, 80, "only 201 and 429");
    assert!(created.len() >= 20, "the burst passes: {}", created.len());
    assert!(
        created.len() <= budget(20, 5, elapsed),
        "{} created in {elapsed:?}",
        created.len()
    );
    // Nothing was created for the refused ones: the next id does not exist.
    let next = created.iter().max().unwrap() + 1;
    let admin = bearer(ADMIN);
    let probe = call(
        &shop,
        "GET",
        &format!("/api/v1/users/{next}"),
        &[("Authorization", &admin)],
        None,
    );
    assert_eq!(probe.status, 404, "{}", probe.body);
}

/// Guessing tokens: once the budget is spent the guesses answer 429, and while the client is
/// refused its tokens are not even checked (a right guess would not get through either).
#[test]
fn a_token_guess_flood_gets_429() {
    let shop = Shop::start(&[("ADMIN_TOKEN", ADMIN)]);
    let started = Instant::now();
    let answers: Vec<Answer> = (0..60)
        .map(|n| {
            let guess = bearer(&format!("guess-{n:04}-abcdefghijklmnop"));
            call(
                &shop,
                "GET",
                "/api/v1/users/me",
                &[("Authorization", &guess)],
                None,
            )
        })
        .collect();
    let elapsed = started.elapsed();
    let checked = answers.iter().filter(|a| a.status == 401).count();
    let refused = answers.iter().filter(|a| a.is_rate_limited()).count();
    assert_eq!(checked + refused, 60);
    assert!(checked >= 20, "{checked}");
    assert!(
        checked <= budget(20, 5, elapsed),
        "{checked} in {elapsed:?}"
    );
    assert!(answers.last().unwrap().is_rate_limited());
    // Missing tokens count too.
    assert!(call(&shop, "GET", "/api/v1/balance", &[], None).is_rate_limited());
    let admin = bearer(ADMIN);
    assert!(
        call(
            &shop,
            "GET",
            "/api/v1/users/me",
            &[("Authorization", &admin)],
            None
        )
        .is_rate_limited()
    );
    // Reads that need no token are not touched.
    assert_eq!(
        call(&shop, "GET", "/api/v1/products", &[], None).status,
        200
    );
}

/// Behind a trusted proxy every forwarded client has its own budget; a peer that is not a
/// trusted proxy cannot choose its budget with `X-Forwarded-For`.
#[test]
fn forwarded_clients_have_their_own_budgets_only_behind_a_trusted_proxy() {
    let limits = [
        ("ADMIN_TOKEN", ADMIN),
        ("ANON_RATE_LIMIT_PER_SECOND", "1"),
        ("ANON_RATE_LIMIT_BURST", "3"),
    ];
    let trusted = Shop::start(&[limits.as_slice(), &[("TRUSTED_PROXIES", "127.0.0.1")]].concat());
    let a = [("X-Forwarded-For", "198.51.100.1, 203.0.113.10")];
    let b = [("X-Forwarded-For", "203.0.113.20")];
    for n in 0..3 {
        assert_eq!(sign_up(&trusted, &format!("a{n}"), &a).status, 201);
    }
    assert!(sign_up(&trusted, "a3", &a).is_rate_limited());
    // Same leftmost (client-written) hop, another real client: its own budget.
    for n in 0..3 {
        assert_eq!(sign_up(&trusted, &format!("b{n}"), &b).status, 201);
    }
    assert!(sign_up(&trusted, "b3", &b).is_rate_limited());

    // 127.0.0.1 is not a trusted proxy here: a new X-Forwarded-For per request buys nothing.
    let untrusted =
        Shop::start(&[limits.as_slice(), &[("TRUSTED_PROXIES", "10.0.0.0/8")]].concat());
    let answers: Vec<u16> = (0..6)
        .map(|n| {
            let forged = format!("203.0.113.{n}");
            sign_up(
                &untrusted,
                &format!("c{n}"),
                &[("X-Forwarded-For", &forged)],
            )
            .status
        })
        .collect();
    assert_eq!(
        answers.iter().filter(|s| **s == 201).count(),
        3,
        "{answers:?}"
    );
}

/// Two instances on one Redis (one key prefix): the accepted requests of both together stay
/// within one budget, for the per-user budget and for the anonymous one.
#[test]
fn two_instances_on_one_redis_share_every_budget() {
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = unique("e2e-limits");
    let env = [
        ("ADMIN_TOKEN", ADMIN),
        ("REDIS_URL", redis.as_str()),
        ("REDIS_KEY_PREFIX", prefix.as_str()),
        ("RATE_LIMIT_PER_SECOND", "1"),
        ("RATE_LIMIT_BURST", "10"),
        ("ANON_RATE_LIMIT_PER_SECOND", "1"),
        ("ANON_RATE_LIMIT_BURST", "10"),
    ];
    let shops = [Shop::start(&env), Shop::start(&env)];
    let admin = bearer(ADMIN);

    let started = Instant::now();
    let reads: Vec<Answer> = (0..40)
        .map(|n| {
            call(
                &shops[n % 2],
                "GET",
                "/api/v1/users/me",
                &[("Authorization", &admin)],
                None,
            )
        })
        .collect();
    let elapsed = started.elapsed();
    let served = reads.iter().filter(|a| a.status == 200).count();
    assert!(
        reads.iter().all(|a| a.status == 200 || a.is_rate_limited()),
        "only 200 and 429"
    );
    assert!(served >= 10, "{served}");
    assert!(
        served <= budget(10, 1, elapsed),
        "{served} served by two instances in {elapsed:?}: each kept its own budget"
    );

    let started = Instant::now();
    let sign_ups: Vec<Answer> = (0..40)
        .map(|n| sign_up(&shops[n % 2], &format!("shared {n}"), &[]))
        .collect();
    let elapsed = started.elapsed();
    let created = sign_ups.iter().filter(|a| a.status == 201).count();
    assert!(created >= 10, "{created}");
    assert!(
        created <= budget(10, 1, elapsed),
        "{created} created by two instances in {elapsed:?}"
    );
}

/// Redis unreachable: the shop still answers, and still limits, on each instance's own
/// budgets; the switch is logged once.
#[test]
fn with_redis_down_every_instance_falls_back_to_its_own_budgets() {
    let mut shop = Shop::start(&[
        ("ADMIN_TOKEN", ADMIN),
        // Nothing listens on port 1.
        ("REDIS_URL", "redis://127.0.0.1:1"),
        ("ANON_RATE_LIMIT_PER_SECOND", "1"),
        ("ANON_RATE_LIMIT_BURST", "3"),
    ]);
    let admin = bearer(ADMIN);
    for _ in 0..5 {
        let me = call(
            &shop,
            "GET",
            "/api/v1/users/me",
            &[("Authorization", &admin)],
            None,
        );
        assert_eq!(me.status, 200, "{}", me.body);
    }
    let answers: Vec<u16> = (0..6)
        .map(|n| sign_up(&shop, &format!("fallback {n}"), &[]).status)
        .collect();
    assert_eq!(
        answers.iter().filter(|s| **s == 201).count(),
        3,
        "still limited: {answers:?}"
    );
    assert!(answers.iter().all(|s| *s == 201 || *s == 429));
    std::thread::sleep(Duration::from_millis(200));
    let warnings = shop
        .drain_stdout()
        .into_iter()
        .filter(|line| line.contains("shared rate limits unavailable"))
        .count();
    assert_eq!(warnings, 1, "logged once");
}
