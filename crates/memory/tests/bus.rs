//! The in-process bus: topic routing, ordering, retry, poison, outage and draining shutdown.

use async_trait::async_trait;
use domain::outbox::{EventEnvelope, EventType};
use domain::ports::{EventHandler, EventPublisher, HandleError, PublishError};
use memory::InProcessBus;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::macros::datetime;
use tokio::sync::{mpsc, watch};

fn envelope(id: &str, kind: EventType) -> EventEnvelope {
    EventEnvelope {
        event_id: id.into(),
        event_type: kind,
        aggregate_type: "ORDER".into(),
        aggregate_id: "1".into(),
        occurred_at: datetime!(2026-11-21 09:30 UTC),
        payload: serde_json::json!({}),
    }
}

/// What a [`Recorder`] does with one delivery attempt.
enum Step {
    Accept,
    Fail(HandleError),
    Panic,
}

/// Answers attempts from its script, then accepts everything; reports each accepted id.
struct Recorder {
    name: &'static str,
    topics: Vec<&'static str>,
    script: Mutex<VecDeque<Step>>,
    attempts: Mutex<Vec<String>>,
    accepted: mpsc::UnboundedSender<String>,
}

impl Recorder {
    fn new(
        name: &'static str,
        topics: Vec<&'static str>,
        script: Vec<Step>,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<String>) {
        let (accepted, rx) = mpsc::unbounded_channel();
        let recorder = Arc::new(Self {
            name,
            topics,
            script: Mutex::new(script.into()),
            attempts: Mutex::new(Vec::new()),
            accepted,
        });
        (recorder, rx)
    }

    fn attempts(&self) -> Vec<String> {
        self.attempts.lock().expect("recorder lock").clone()
    }
}

#[async_trait]
impl EventHandler for Recorder {
    fn name(&self) -> &'static str {
        self.name
    }
    fn topics(&self) -> Vec<&'static str> {
        self.topics.clone()
    }
    async fn handle(&self, envelope: &EventEnvelope) -> Result<(), HandleError> {
        self.attempts
            .lock()
            .expect("recorder lock")
            .push(envelope.event_id.clone());
        let step = self.script.lock().expect("recorder lock").pop_front();
        match step.unwrap_or(Step::Accept) {
            Step::Fail(error) => Err(error),
            Step::Panic => panic!("scripted panic"),
            Step::Accept => {
                self.accepted
                    .send(envelope.event_id.clone())
                    .expect("the test holds the receiver");
                Ok(())
            }
        }
    }
}

/// Receives `n` accepted ids (a generous bound only turns a hang into a failure).
async fn take(rx: &mut mpsc::UnboundedReceiver<String>, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("event not delivered")
            .expect("handler gone");
        ids.push(id);
    }
    ids
}

fn quick_bus() -> InProcessBus {
    InProcessBus::with_backoff(Duration::from_millis(1), Duration::from_millis(4))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_handler_gets_its_topics_in_publish_order() {
    let bus = quick_bus();
    let (ranking, mut ranking_rx) =
        Recorder::new("ranking", vec!["order.paid", "order.refunded"], vec![]);
    let (issuer, mut issuer_rx) = Recorder::new("issuer", vec!["coupon.issue.requested"], vec![]);
    bus.subscribe(ranking.clone());
    bus.subscribe(issuer.clone());
    // Published before the workers start: queued, not lost.
    bus.publish("order.paid", &envelope("p1", EventType::OrderPaid))
        .await
        .unwrap();
    let (stop, stopped) = watch::channel(false);
    let handles = bus.start(stopped);
    assert_eq!(handles.len(), 2);
    for id in ["r1", "p2"] {
        let topic = if id.starts_with('r') {
            "order.refunded"
        } else {
            "order.paid"
        };
        bus.publish(topic, &envelope(id, EventType::OrderPaid))
            .await
            .unwrap();
    }
    bus.publish(
        "coupon.issue.requested",
        &envelope("c1", EventType::CouponIssueRequested),
    )
    .await
    .unwrap();
    // A topic nobody consumes is accepted and dropped.
    bus.publish("nobody", &envelope("x", EventType::OrderPaid))
        .await
        .unwrap();
    assert_eq!(take(&mut ranking_rx, 3).await, ["p1", "r1", "p2"]);
    assert_eq!(take(&mut issuer_rx, 1).await, ["c1"]);
    stop.send(true).unwrap();
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(ranking.attempts(), ["p1", "r1", "p2"]);
    assert_eq!(issuer.attempts(), ["c1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_is_retried_poison_and_panics_are_skipped_and_order_is_kept() {
    let bus = quick_bus();
    let retry = || Step::Fail(HandleError::Retry("down".into()));
    let script = vec![
        retry(),                                       // e1
        retry(),                                       // e1 again
        Step::Accept,                                  // e1 at last
        Step::Fail(HandleError::Poison("bad".into())), // e2: skipped
        Step::Panic,                                   // e3: skipped
    ];
    let (handler, mut accepted) = Recorder::new("h", vec!["t"], script);
    bus.subscribe(handler.clone());
    let (stop, stopped) = watch::channel(false);
    let handles = bus.start(stopped);
    for id in ["e1", "e2", "e3", "e4"] {
        bus.publish("t", &envelope(id, EventType::OrderPaid))
            .await
            .unwrap();
    }
    assert_eq!(take(&mut accepted, 2).await, ["e1", "e4"]);
    assert_eq!(handler.attempts(), ["e1", "e1", "e1", "e2", "e3", "e4"]);
    stop.send(true).unwrap();
    for handle in handles {
        handle.await.unwrap();
    }
}

#[tokio::test]
async fn an_outage_refuses_publishing_and_queues_nothing() {
    let bus = quick_bus();
    let (handler, mut accepted) = Recorder::new("h", vec!["t"], vec![]);
    bus.subscribe(handler.clone());
    bus.set_available(false);
    assert!(matches!(
        bus.publish("t", &envelope("lost", EventType::OrderPaid))
            .await,
        Err(PublishError::Unavailable(_))
    ));
    bus.set_available(true);
    bus.publish("t", &envelope("kept", EventType::OrderPaid))
        .await
        .unwrap();
    let (stop, stopped) = watch::channel(false);
    let handles = bus.start(stopped);
    assert_eq!(take(&mut accepted, 1).await, ["kept"]);
    stop.send(true).unwrap();
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(handler.attempts(), ["kept"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_the_queue_then_refuses_new_events() {
    let bus = quick_bus();
    let (handler, _accepted) = Recorder::new("h", vec!["t"], vec![]);
    bus.subscribe(handler.clone());
    let ids: Vec<String> = (0..200).map(|i| format!("e{i}")).collect();
    for id in &ids {
        bus.publish("t", &envelope(id, EventType::OrderPaid))
            .await
            .unwrap();
    }
    // Stopped before it even starts: the worker still delivers everything queued.
    let (stop, stopped) = watch::channel(false);
    stop.send(true).unwrap();
    let handles = bus.start(stopped);
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(handler.attempts(), ids);
    assert!(matches!(
        bus.publish("t", &envelope("late", EventType::OrderPaid))
            .await,
        Err(PublishError::Unavailable(_))
    ));
    // Starting again spawns nothing: every subscriber already has its worker.
    let (_stop, stopped) = watch::channel(false);
    assert!(bus.start(stopped).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_keeps_failing_does_not_block_shutdown() {
    let bus = InProcessBus::with_backoff(Duration::from_secs(3600), Duration::from_secs(3600));
    let (handler, _accepted) = Recorder::new(
        "h",
        vec!["t"],
        (0..5)
            .map(|_| Step::Fail(HandleError::Retry("down".into())))
            .collect(),
    );
    bus.subscribe(handler.clone());
    let (stop, stopped) = watch::channel(false);
    let handles = bus.start(stopped);
    bus.publish("t", &envelope("stuck", EventType::OrderPaid))
        .await
        .unwrap();
    // Wait for the first attempt: the worker is now in its hour-long backoff.
    while handler.attempts().is_empty() {
        tokio::task::yield_now().await;
    }
    stop.send(true).unwrap();
    for handle in handles {
        tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("the worker must not sit out its backoff at shutdown")
            .unwrap();
    }
    // One attempt before the signal, exactly one after it, then the event is dropped.
    assert_eq!(handler.attempts(), ["stuck", "stuck"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishers_lose_nothing() {
    let bus = quick_bus();
    let (handler, mut accepted) = Recorder::new("h", vec!["t"], vec![]);
    bus.subscribe(handler.clone());
    let (stop, stopped) = watch::channel(false);
    let handles = bus.start(stopped);
    let mut publishers = tokio::task::JoinSet::new();
    for p in 0..8 {
        let bus = bus.clone();
        publishers.spawn(async move {
            for i in 0..100 {
                bus.publish("t", &envelope(&format!("{p}-{i}"), EventType::OrderPaid))
                    .await
                    .unwrap();
            }
        });
    }
    publishers.join_all().await;
    let mut got = take(&mut accepted, 800).await;
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 800);
    // Per publisher, the order of publishing is kept.
    let attempts = handler.attempts();
    for p in 0..8 {
        let prefix = format!("{p}-");
        let seq: Vec<usize> = attempts
            .iter()
            .filter_map(|id| id.strip_prefix(&prefix))
            .map(|i| i.parse().unwrap())
            .collect();
        assert_eq!(seq, (0..100).collect::<Vec<_>>());
    }
    stop.send(true).unwrap();
    for handle in handles {
        handle.await.unwrap();
    }
}
