//! Background work on timers: the outbox relay, the unpaid-order sweeper, the event consumers
//! and the operations gauges. All of it stops through one watch channel: on shutdown every loop finishes the
//! round it is in and exits, and the in-process consumers deliver what is already queued.

use crate::operations_metrics;
use crate::wiring::{Consumers, Samplers};
use application::Shop;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the relay publishes due outbox rows.
pub const RELAY_INTERVAL: Duration = Duration::from_millis(200);
/// How often unpaid orders past their payment window are canceled.
pub const EXPIRY_INTERVAL: Duration = Duration::from_secs(1);
/// Rows per round.
const BATCH: u32 = 100;
/// How long stopping waits for the workers before giving up on them.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Workers {
    shutdown: watch::Sender<bool>,
    handles: Vec<(&'static str, JoinHandle<()>)>,
}

impl Workers {
    /// Starts every worker on the current tokio runtime.
    pub fn start(shop: &Shop, consumers: &Consumers, samplers: &Samplers) -> Self {
        let (shutdown, stopped) = watch::channel(false);
        let mut handles = Vec::new();
        let relay = shop.clone();
        handles.push((
            "outbox-relay",
            every("outbox-relay", RELAY_INTERVAL, stopped.clone(), move || {
                let shop = relay.clone();
                async move { shop.relay_outbox_once(BATCH).await.map(|_| ()) }
            }),
        ));
        let sweeper = shop.clone();
        handles.push((
            "order-expiry",
            every(
                "order-expiry",
                EXPIRY_INTERVAL,
                stopped.clone(),
                move || {
                    let shop = sweeper.clone();
                    async move { shop.expire_orders_once(BATCH).await.map(|_| ()) }
                },
            ),
        ));
        let (gauges, samplers) = (shop.clone(), samplers.clone());
        handles.push((
            "operations-metrics",
            every(
                "operations-metrics",
                operations_metrics::SAMPLE_INTERVAL,
                stopped.clone(),
                move || {
                    let (shop, samplers) = (gauges.clone(), samplers.clone());
                    async move { operations_metrics::sample(&shop, &samplers).await }
                },
            ),
        ));
        match consumers {
            Consumers::InProcess(bus) => {
                for handle in bus.start(stopped.clone()) {
                    handles.push(("event-consumer", handle));
                }
            }
            Consumers::Kafka {
                clients,
                handlers,
                positions,
            } => {
                for handler in handlers {
                    let runner = clients.consumer(handler.clone(), positions.clone());
                    for handle in runner.start(stopped.clone()) {
                        handles.push(("kafka-consumer", handle));
                    }
                }
            }
        }
        Self { shutdown, handles }
    }

    /// Signals every worker and waits for them (bounded by [`STOP_TIMEOUT`]).
    pub async fn stop(self) {
        // Receivers may all be gone already (workers that ended); that is fine.
        let _ = self.shutdown.send(true);
        for (name, handle) in self.handles {
            match tokio::time::timeout(STOP_TIMEOUT, handle).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(worker = name, error = %e, "worker panicked"),
                Err(_) => tracing::error!(worker = name, "worker did not stop in time"),
            }
        }
        tracing::info!("background workers stopped");
    }
}

/// Runs `job` every `period` until `stopped` turns true. A failing round is logged and the
/// next one runs on schedule (the jobs are idempotent and resume where they left off).
fn every<F, Fut>(
    name: &'static str,
    period: Duration,
    mut stopped: watch::Receiver<bool>,
    job: F,
) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), application::ShopError>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = stopped.changed() => {
                    if changed.is_err() || *stopped.borrow() {
                        break;
                    }
                }
                _ = ticks.tick() => {
                    if let Err(e) = job().await {
                        tracing::warn!(worker = name, error = %e, code = e.code(), "background round failed");
                    }
                }
            }
        }
        tracing::debug!(worker = name, "stopped");
    })
}
