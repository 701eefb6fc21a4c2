//! The real binary against hostile clients: connections that stall in the body, and input that
//! PostgreSQL itself refuses (NUL in text) or cannot represent (timestamps past year 9999).
//!
//! PostgreSQL: `TEST_DATABASE_URL` (server URL without a database, default
//! `postgres://postgres@127.0.0.1:5432`); the PostgreSQL test creates its own database and
//! drops it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use e2e::Shop;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

const ADMIN: &str = "e2e-hostile-admin-token-0123456789";

/// Sends the head of a JSON POST announcing `length` body bytes and then only `partial`.
fn stall_in_body(shop: &Shop, path: &str, token: Option<&str>, partial: &str) -> TcpStream {
    let mut stream = shop.connect();
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n{partial}"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.flush().unwrap();
    stream
}

/// Reads until the server answers and closes, or `limit` passes; returns what was read and
/// whether the server closed the connection in time.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let deadline = Instant::now() + limit;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (String::from_utf8_lossy(&raw).into_owned(), false);
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&raw).into_owned(), true),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A reset after the answer is a close too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&raw).into_owned(), true);
            }
            Err(_) => return (String::from_utf8_lossy(&raw).into_owned(), false),
        }
    }
}

/// A client that sends the head and then stalls in the body gets 408 problem+json and a closed
/// connection within `BODY_TIMEOUT_MS`; many of them at once do not hold the server.
#[test]
fn connections_that_stall_in_the_body_are_answered_and_closed() {
    let shop = Shop::start(&[("ADMIN_TOKEN", ADMIN), ("BODY_TIMEOUT_MS", "700")]);
    let started = Instant::now();
    let mut stalled: Vec<TcpStream> = (0..100)
        .map(|i| match i % 3 {
            0 => stall_in_body(&shop, "/api/v1/users", None, r#"{"na"#),
            1 => stall_in_body(&shop, "/api/v1/balance/charge", Some(ADMIN), r#"{"amo"#),
            _ => stall_in_body(&shop, "/api/v1/products", Some(ADMIN), ""),
        })
        .collect();
    // Meanwhile the server keeps answering others.
    let (status, _) = shop.request("GET", "/health/live", None, None);
    assert_eq!(status, 200);
    for stream in &mut stalled {
        let (answer, closed) = read_until_closed(stream, Duration::from_secs(10));
        assert!(closed, "still open after 10 s: {answer:?}");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(
            answer.contains("application/problem+json") && answer.contains("REQUEST_TIMEOUT"),
            "{answer}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    // A body that arrives in time is read as before.
    let (status, body) = shop.request("POST", "/api/v1/users", None, Some(r#"{"name":"prompt"}"#));
    assert_eq!(status, 201, "{body}");
}

#[test]
fn a_bad_body_timeout_stops_start_up_naming_it() {
    for value in ["0", "abc", "-5", "600001"] {
        // Bounded: a server that ignored the variable would start and serve forever.
        let mut child = std::process::Command::new(e2e::shop_binary())
            .env_clear()
            .env("PORT", "0")
            .env("BODY_TIMEOUT_MS", value)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("BODY_TIMEOUT_MS={value} did not stop start-up");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert_eq!(status.code(), Some(2), "{value}: {stderr}");
        assert!(stderr.starts_with("error: BODY_TIMEOUT_MS: "), "{stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL.

/// A database of its own, dropped at the end (also when the test fails).
struct Database {
    server: String,
    name: String,
    runtime: tokio::runtime::Runtime,
}

impl Database {
    fn create() -> Self {
        let server = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
            .trim_end_matches('/')
            .to_owned();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("shop_hostile_{}_{nanos}", std::process::id());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let database = Self {
            server,
            name,
            runtime,
        };
        database.admin(&format!("CREATE DATABASE {}", database.name));
        database
    }

    fn admin(&self, sql: &str) {
        let url = format!("{}/postgres", self.server);
        self.runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, NoTls)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL must be running at {url}: {e}"));
            tokio::spawn(async move {
                let _ = connection.await;
            });
            client.batch_execute(sql).await.expect(sql);
        });
    }

    fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        self.admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

fn field_of(body: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    json["errors"][0]["field"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// On PostgreSQL, NUL in text answered 500 and a timestamp past year 9999 in UTC panicked
/// inside the insert: both are 400 naming the field, and the service keeps serving.
#[test]
fn postgresql_never_sees_nul_or_out_of_range_timestamps() {
    let database = Database::create();
    let url = database.url();
    let shop = Shop::start(&[("ADMIN_TOKEN", ADMIN), ("DATABASE_URL", url.as_str())]);
    let (status, body) = shop.request(
        "POST",
        "/api/v1/users",
        Some(ADMIN),
        Some(r#"{"name":"seller","role":"SELLER"}"#),
    );
    assert_eq!(status, 201, "{body}");
    let seller: serde_json::Value = serde_json::from_str(&body).unwrap();
    let seller = seller["token"].as_str().unwrap().to_owned();
    let (status, body) = shop.request(
        "POST",
        "/api/v1/products",
        Some(&seller),
        Some(r#"{"name":"Tea","price":100,"stock":5}"#),
    );
    assert_eq!(status, 201, "{body}");
    let product: serde_json::Value = serde_json::from_str(&body).unwrap();
    let product = product["id"].as_i64().unwrap();

    let coupon = |name: &str, expires: &str| {
        format!(
            r#"{{"name":"{name}","discountType":"AMOUNT","amount":100,"totalQuantity":5,
                "startsAt":"2020-01-01T00:00:00Z","expiresAt":"{expires}"}}"#
        )
    };
    let cases = [
        (
            "POST",
            "/api/v1/users".to_owned(),
            None,
            r#"{"name":"a\u0000b"}"#.to_owned(),
            "name",
        ),
        (
            "POST",
            "/api/v1/products".to_owned(),
            Some(seller.as_str()),
            r#"{"name":"a\u0000b","price":1,"stock":1}"#.to_owned(),
            "name",
        ),
        (
            "PATCH",
            format!("/api/v1/products/{product}"),
            Some(seller.as_str()),
            r#"{"name":"a\u0000b"}"#.to_owned(),
            "name",
        ),
        (
            "POST",
            format!("/api/v1/products/{product}/stock-adjustments"),
            Some(seller.as_str()),
            r#"{"delta":1,"note":"a\u0000b"}"#.to_owned(),
            "note",
        ),
        (
            "POST",
            "/api/v1/coupons".to_owned(),
            Some(seller.as_str()),
            coupon(r"a\u0000b", "2099-01-01T00:00:00Z"),
            "name",
        ),
        (
            "POST",
            "/api/v1/coupons".to_owned(),
            Some(seller.as_str()),
            coupon("Late", "9999-12-31T23:59:59-23:59"),
            "expiresAt",
        ),
    ];
    for (method, path, token, body, field) in &cases {
        let (status, answer) = shop.request(method, path, *token, Some(body));
        assert_eq!(status, 400, "{method} {path} {body}: {answer}");
        assert_eq!(field_of(&answer), *field, "{answer}");
    }
    // Still serving, and nothing was stored.
    let (status, body) = shop.request("GET", "/api/v1/coupons", Some(&seller), None);
    assert_eq!((status, body.as_str()), (200, r#"{"items":[]}"#));
    let (status, body) = shop.request("GET", &format!("/api/v1/products/{product}"), None, None);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#""name":"Tea""#) && body.contains(r#""stock":5"#),
        "{body}"
    );
}
