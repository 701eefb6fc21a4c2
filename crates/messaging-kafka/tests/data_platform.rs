//! The data-platform client against a tiny local HTTP server that answers from a script.
//! Needs no broker: runs with a plain `cargo test -p messaging-kafka`.

// clippy.toml allows unwrap in #[test] functions; the helpers here are test code too.
#![allow(clippy::unwrap_used)]

use domain::outbox::{EventEnvelope, EventType};
use domain::ports::{DataPlatform, DeliveryError};
use messaging_kafka::data_platform::HttpDataPlatform;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Received {
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the server does with the next request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    /// Reads the request and never answers.
    Hang,
}

struct Server {
    base_url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

async fn server(script: Vec<Reply>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let log = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (log, script) = (log.clone(), script.clone());
            tokio::spawn(async move { serve(stream, log, script).await });
        }
    });
    Server { base_url, received }
}

/// Serves the requests of one connection (keep-alive) from the script.
async fn serve(
    mut stream: TcpStream,
    log: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
) {
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        log.lock().unwrap().push(request);
        let reply = script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Reply::Status(200));
        match reply {
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
            Reply::Status(code) => {
                let body = format!("{{\"status\":{code}}}");
                let response = format!(
                    "HTTP/1.1 {code} Scripted\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if stream.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Received> {
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0_u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body_start = head_end + 4;
    while buffer.len() < body_start + length {
        let mut chunk = [0_u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer[body_start..body_start + length].to_vec();
    buffer.drain(..body_start + length);
    Some(Received {
        request_line,
        headers,
        body,
    })
}

fn envelope() -> EventEnvelope {
    EventEnvelope {
        event_id: "0b9f6f4e-8d5c-4c1e-9a57-2d1f1c7e0a11".into(),
        event_type: EventType::OrderPaid,
        aggregate_type: "ORDER".into(),
        aggregate_id: "42".into(),
        occurred_at: OffsetDateTime::now_utc(),
        payload: serde_json::json!({"orderId": 42, "totalAmount": 9000}),
    }
}

#[tokio::test]
async fn a_500_is_retryable_and_the_retry_delivers_the_envelope() {
    let server = server(vec![Reply::Status(500), Reply::Status(200)]).await;
    let platform = HttpDataPlatform::new(&format!("{}/", server.base_url)).unwrap();
    let event = envelope();

    let first = platform.deliver(&event).await;
    assert!(
        matches!(&first, Err(DeliveryError::Retryable(m)) if m.contains("500")),
        "{first:?}"
    );
    assert_eq!(platform.deliver(&event).await, Ok(()));

    let received = server.received.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    for request in &received {
        assert_eq!(request.request_line, "POST /events HTTP/1.1");
        assert_eq!(request.header("event-id"), Some(event.event_id.as_str()));
        assert_eq!(request.header("content-type"), Some("application/json"));
        let body: EventEnvelope = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body, event);
    }
}

#[tokio::test]
async fn a_400_is_rejected_as_poison() {
    let server = server(vec![Reply::Status(400)]).await;
    let platform = HttpDataPlatform::new(&server.base_url).unwrap();
    let answer = platform.deliver(&envelope()).await;
    assert!(
        matches!(&answer, Err(DeliveryError::Rejected(m)) if m.contains("400")),
        "{answer:?}"
    );
}

#[tokio::test]
async fn throttling_and_request_timeouts_are_retryable() {
    let server = server(vec![
        Reply::Status(429),
        Reply::Status(408),
        Reply::Status(503),
        Reply::Status(404),
    ])
    .await;
    let platform = HttpDataPlatform::new(&server.base_url).unwrap();
    let event = envelope();
    for expected in ["429", "408", "503"] {
        let answer = platform.deliver(&event).await;
        assert!(
            matches!(&answer, Err(DeliveryError::Retryable(m)) if m.contains(expected)),
            "{expected}: {answer:?}"
        );
    }
    assert!(matches!(
        platform.deliver(&event).await,
        Err(DeliveryError::Rejected(_))
    ));
}

#[tokio::test]
async fn an_unreachable_or_silent_platform_is_retryable() {
    let nobody = HttpDataPlatform::new("http://127.0.0.1:1").unwrap();
    assert!(matches!(
        nobody.deliver(&envelope()).await,
        Err(DeliveryError::Retryable(_))
    ));

    let server = server(vec![Reply::Hang]).await;
    let silent =
        HttpDataPlatform::with_timeout(&server.base_url, Duration::from_millis(300)).unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), silent.deliver(&envelope()))
        .await
        .expect("the client timeout must end the delivery");
    assert!(
        matches!(answer, Err(DeliveryError::Retryable(_))),
        "{answer:?}"
    );
}
