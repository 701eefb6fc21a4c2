//! The in-process event bus: the broker of the embedded mode (`KAFKA_BROKERS` unset).
//!
//! Why a queue per handler: each consumer gets every event of its topics in publish order
//! (per-order ordering, like one Kafka partition per key) and a slow or failing consumer never
//! holds up another.
//!
//! Invariants:
//! - `publish` enqueues the envelope for every subscribed handler of the topic before it returns
//!   `Ok` (in process, enqueued is as durable as it gets); it refuses while switched off
//!   ([`InProcessBus::set_available`]) and once the workers have stopped.
//! - One worker per handler delivers its queue in order: `Retry` is retried with a capped
//!   exponential backoff, `Poison` (and a panicking handler) is logged at ERROR and skipped.
//! - On shutdown a worker stops accepting events, delivers what is already queued and exits.
//!   Backoff waits are cut short: every event gets exactly one attempt that starts after the
//!   shutdown signal, and if its handler still answers `Retry` it is dropped with an ERROR log
//!   (the bus is not durable: its outbox row was already SENT when it was published).
//!
//! Subscribe every handler before [`InProcessBus::start`]; events published for a handler
//! wait in its queue until its worker starts.

use async_trait::async_trait;
use domain::outbox::EventEnvelope;
use domain::ports::{EventHandler, EventPublisher, HandleError, PublishError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The first retry delay of a worker by default; doubled per attempt up to the cap.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// The longest retry delay by default.
pub const DEFAULT_MAX_RETRY_BACKOFF: Duration = Duration::from_secs(5);

type Queued = Arc<EventEnvelope>;

struct Subscriber {
    handler: Arc<dyn EventHandler>,
    topics: Vec<&'static str>,
    queue: UnboundedSender<Queued>,
    /// Taken by the worker when the bus starts.
    pending: Option<UnboundedReceiver<Queued>>,
}

struct Inner {
    subscribers: Mutex<Vec<Subscriber>>,
    available: AtomicBool,
    backoff: Backoff,
}

#[derive(Debug, Clone, Copy)]
struct Backoff {
    initial: Duration,
    max: Duration,
}

/// The in-process bus. Cheap to clone: clones share the subscribers.
#[derive(Clone)]
pub struct InProcessBus {
    inner: Arc<Inner>,
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for InProcessBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.lock().iter().map(|s| s.handler.name()).collect();
        f.debug_struct("InProcessBus")
            .field("handlers", &names)
            .field("backoff", &self.inner.backoff)
            .finish_non_exhaustive()
    }
}

impl InProcessBus {
    pub fn new() -> Self {
        Self::with_backoff(DEFAULT_RETRY_BACKOFF, DEFAULT_MAX_RETRY_BACKOFF)
    }

    /// A bus whose workers wait `initial` before the first retry, doubling up to `max`.
    pub fn with_backoff(initial: Duration, max: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                subscribers: Mutex::new(Vec::new()),
                available: AtomicBool::new(true),
                backoff: Backoff {
                    initial,
                    max: max.max(initial),
                },
            }),
        }
    }

    /// Registers `handler` for its topics. Events published from now on are queued for it.
    pub fn subscribe(&self, handler: Arc<dyn EventHandler>) {
        let (queue, pending) = unbounded_channel();
        let topics = handler.topics();
        self.lock().push(Subscriber {
            handler,
            topics,
            queue,
            pending: Some(pending),
        });
    }

    /// While `false`, `publish` answers `PublishError::Unavailable` (a broker outage).
    pub fn set_available(&self, available: bool) {
        self.inner.available.store(available, Ordering::SeqCst);
    }

    /// Spawns one worker per subscribed handler not started yet (on the current tokio
    /// runtime). Setting `shutdown` to `true` (or dropping its sender) makes every worker
    /// deliver what is queued and exit; await the handles to know they are done.
    pub fn start(&self, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        let mut subscribers = self.lock();
        subscribers
            .iter_mut()
            .filter_map(|s| {
                let queue = s.pending.take()?;
                let worker = Worker {
                    handler: s.handler.clone(),
                    backoff: self.inner.backoff,
                    shutdown: shutdown.clone(),
                };
                Some(tokio::spawn(worker.run(queue)))
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Subscriber>> {
        // Only pushes and `Option::take` happen under this lock: a poisoned lock is consistent.
        self.inner
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl EventPublisher for InProcessBus {
    async fn publish(&self, topic: &str, envelope: &EventEnvelope) -> Result<(), PublishError> {
        if !self.inner.available.load(Ordering::SeqCst) {
            return Err(PublishError::Unavailable(
                "in-process bus switched off".into(),
            ));
        }
        let queued = Arc::new(envelope.clone());
        let subscribers = self.lock();
        let mut stopped = Vec::new();
        for s in subscribers.iter().filter(|s| s.topics.contains(&topic)) {
            if s.queue.send(queued.clone()).is_err() {
                stopped.push(s.handler.name());
            }
        }
        if stopped.is_empty() {
            Ok(())
        } else {
            // Handlers that got it will see it again on the retry: delivery is at least once.
            Err(PublishError::Unavailable(format!(
                "in-process bus stopped for {}",
                stopped.join(", ")
            )))
        }
    }
}

/// Delivers one handler's queue.
struct Worker {
    handler: Arc<dyn EventHandler>,
    backoff: Backoff,
    shutdown: watch::Receiver<bool>,
}

impl Worker {
    fn stopping(&self) -> bool {
        // A dropped sender means the owner is gone: stop as well.
        *self.shutdown.borrow() || self.shutdown.has_changed().is_err()
    }

    async fn run(mut self, mut queue: UnboundedReceiver<Queued>) {
        while !self.stopping() {
            tokio::select! {
                biased;
                next = queue.recv() => match next {
                    Some(envelope) => self.deliver(&envelope).await,
                    None => return,
                },
                // Wakes the loop, which then sees `stopping()`.
                _ = self.shutdown.changed() => {}
            }
        }
        // Refuse new events, then deliver what is already queued.
        queue.close();
        while let Some(envelope) = queue.recv().await {
            self.deliver(&envelope).await;
        }
        tracing::debug!(handler = self.handler.name(), "event worker stopped");
    }

    async fn deliver(&mut self, envelope: &Queued) {
        let mut delay = self.backoff.initial;
        let mut attempt = 1u32;
        loop {
            let last_chance = self.stopping();
            let error = match self.handle_once(envelope).await {
                Ok(()) => return,
                Err(HandleError::Poison(reason)) => {
                    tracing::error!(
                        handler = self.handler.name(),
                        event_id = %envelope.event_id,
                        event_type = envelope.event_type.as_str(),
                        %reason,
                        "poison event skipped"
                    );
                    return;
                }
                Err(HandleError::Retry(reason)) => reason,
            };
            if last_chance {
                // This attempt started after shutdown was signalled: give up on the event.
                tracing::error!(
                    handler = self.handler.name(),
                    event_id = %envelope.event_id,
                    event_type = envelope.event_type.as_str(),
                    attempt,
                    reason = %error,
                    "event dropped at shutdown: its handler still asks to retry"
                );
                return;
            }
            tracing::warn!(
                handler = self.handler.name(),
                event_id = %envelope.event_id,
                attempt,
                retry_in_ms = delay.as_millis() as u64,
                reason = %error,
                "event handling failed, will retry"
            );
            if !self.stopping() {
                // Shutdown cuts the wait short: one last attempt follows right away.
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = self.shutdown.changed() => {}
                }
            }
            delay = (delay * 2).min(self.backoff.max);
            attempt = attempt.saturating_add(1);
        }
    }

    /// Runs the handler in its own task so that a panic is contained and reported as poison.
    async fn handle_once(&self, envelope: &Queued) -> Result<(), HandleError> {
        let handler = self.handler.clone();
        let envelope = envelope.clone();
        match tokio::spawn(async move { handler.handle(&envelope).await }).await {
            Ok(outcome) => outcome,
            Err(join) if join.is_panic() => Err(HandleError::Poison("handler panicked".into())),
            Err(_) => Err(HandleError::Retry("handler task cancelled".into())),
        }
    }
}
