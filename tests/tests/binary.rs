//! The real binary: start-up, configuration errors, graceful shutdown.

#![allow(clippy::unwrap_used)]

use e2e::{Shop, read_response, run_to_exit};
use std::io::Write;
use std::time::Duration;

#[test]
fn starts_and_serves_health_and_the_api() {
    let mut shop = Shop::start(&[("ADMIN_TOKEN", "e2e-admin-token-0123456789")]);
    let (status, body) = shop.request("GET", "/health/live", None, None);
    assert_eq!(status, 200);
    assert!(body.contains("UP"), "{body}");
    let (status, body) = shop.request(
        "GET",
        "/api/v1/users/me",
        Some("e2e-admin-token-0123456789"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""role":"ADMIN""#), "{body}");
    shop.terminate();
    assert_eq!(
        shop.wait(Duration::from_secs(20)).map(|s| s.code()),
        Some(Some(0))
    );
}

#[test]
fn a_generated_admin_token_is_printed_once_and_works() {
    let mut shop = Shop::start(&[]);
    std::thread::sleep(Duration::from_millis(200));
    let lines = shop.drain_stdout();
    let printed: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("ADMIN_TOKEN"))
        .collect();
    assert_eq!(printed.len(), 1, "{lines:?}");
    let token = printed[0].rsplit(' ').next().unwrap().to_owned();
    assert!(
        !lines
            .iter()
            .any(|l| !l.starts_with("ADMIN_TOKEN") && l.contains(&token)),
        "the token is never logged"
    );
    let (status, _) = shop.request("GET", "/api/v1/users/me", Some(&token), None);
    assert_eq!(status, 200);
    shop.terminate();
    assert_eq!(
        shop.wait(Duration::from_secs(20)).map(|s| s.code()),
        Some(Some(0))
    );
}

#[test]
fn a_bad_port_stops_start_up_with_one_line_naming_it() {
    let (status, stdout, stderr) = run_to_exit(&[("PORT", "abc")]);
    assert_eq!(status.code(), Some(2));
    assert_eq!(stderr, "error: PORT: invalid port \"abc\"\n");
    assert!(stdout.is_empty(), "{stdout}");
}

#[test]
fn other_bad_values_name_their_variable() {
    for (name, value) in [
        ("MIN_CHARGE", "zero"),
        ("BUSINESS_TZ_OFFSET", "Seoul"),
        ("COUPON_ISSUE_MODE", "sometimes"),
        ("DATABASE_URL", "mysql://db"),
    ] {
        let (status, _, stderr) = run_to_exit(&[(name, value)]);
        assert_eq!(status.code(), Some(2), "{name}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with(&format!("error: {name}: ")), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// SIGTERM while requests are in flight: they all complete, then the process exits 0.
#[test]
fn sigterm_lets_in_flight_requests_finish_and_exits_zero() {
    const TOKEN: &str = "e2e-admin-token-graceful-0001";
    let mut shop = Shop::start(&[("ADMIN_TOKEN", TOKEN)]);
    // Slow clients: each sends the head and half the body of a charge, then stalls.
    let body = r#"{"amount":1000}"#;
    let (first, rest) = body.split_at(7);
    let mut slow: Vec<_> = (0..5)
        .map(|_| {
            let mut stream = shop.connect();
            let head = format!(
                "POST /api/v1/balance/charge HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
                 Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{first}",
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.flush().unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    shop.terminate();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        shop.wait(Duration::from_millis(10)).is_none(),
        "the process waits for its in-flight requests"
    );

    // The clients finish their requests during the shutdown; every one succeeds.
    for stream in &mut slow {
        stream.write_all(rest.as_bytes()).unwrap();
        stream.flush().unwrap();
    }
    let balances: Vec<(u16, String)> = slow.iter_mut().map(read_response).collect();
    for (status, body) in &balances {
        assert_eq!(*status, 200, "{body}");
        assert!(body.contains(r#""type":"CHARGE""#), "{body}");
    }
    let status = shop
        .wait(Duration::from_secs(30))
        .expect("exits after draining");
    assert_eq!(status.code(), Some(0));
    // Once stopped, nothing listens any more.
    assert!(std::net::TcpStream::connect(("127.0.0.1", shop.port)).is_err());
}
