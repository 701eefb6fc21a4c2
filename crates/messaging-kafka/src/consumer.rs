//! The consumer runner: rskafka has no consumer groups, so this module drives an
//! [`EventHandler`] over every partition of its topics itself, from positions kept behind the
//! [`PositionStore`] port.
//!
//! Per partition, one task loops: fetch from the stored position, hand each record to the
//! handler in offset order, advance, store the position after each fetched batch. Invariants:
//! - A record is handed over again until the handler answers `Ok` or `Poison`: on `Retry`
//!   the position stops at that record and the same offset is fetched again after a backoff.
//! - A position is stored only once every record before it was handled: a crash re-delivers
//!   at most the records of one fetch (handlers are idempotent on the event id).
//! - Undecodable records and `Poison` answers are logged at ERROR, counted in
//!   `kafka_consumer_poison_events_total`, and skipped.
//! - The end of the partition is the high watermark returned by the fetch itself, never
//!   `ListOffsets` (tansu answers it late).
//! - tansu returns nothing for a fetch that starts inside a multi-record batch; if a position
//!   ever lands there (batches produced by another client, or a retry inside a batch), the
//!   runner steps back offset by offset to the batch's first record and skips what it already
//!   handled.

use crate::connection::{Connection, is_unknown_topic};
use async_trait::async_trait;
use domain::outbox::EventEnvelope;
use domain::ports::{EventHandler, HandleError};
use rskafka::client::error::{Error as ClientError, ProtocolError};
use rskafka::client::partition::{OffsetAt, PartitionClient};
use rskafka::record::RecordAndOffset;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("position store: {0}")]
pub struct PositionError(pub String);

/// Where each consumer stands in each partition: the next offset it reads. Bootstrap backs it
/// with PostgreSQL (the inbox repository); [`InMemoryPositions`] serves tests.
#[async_trait]
pub trait PositionStore: Send + Sync {
    /// The next offset `consumer` reads in `topic`/`partition`, or `None` if it never stored
    /// one (it then starts at the beginning of the partition).
    async fn load(
        &self,
        consumer: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, PositionError>;

    /// Stores the next offset to read; every record before it has been handled.
    async fn save(
        &self,
        consumer: &str,
        topic: &str,
        partition: i32,
        next_offset: i64,
    ) -> Result<(), PositionError>;

    /// Whether this instance may consume the partition now, so that with several service
    /// instances each partition has one consumer at a time (e.g. a PostgreSQL advisory lock
    /// held by a dedicated connection). Asked before consuming and again every
    /// `ConsumerOptions::claim_interval`; `false` makes the runner stand by. Default: always.
    async fn claim(
        &self,
        _consumer: &str,
        _topic: &str,
        _partition: i32,
    ) -> Result<bool, PositionError> {
        Ok(true)
    }

    /// Gives the claim up (the runner stops, or lost it). Default: nothing to do.
    async fn release(&self, _consumer: &str, _topic: &str, _partition: i32) {}
}

/// Positions in memory (tests, and a service without a database).
#[derive(Debug, Default)]
pub struct InMemoryPositions {
    positions: Mutex<HashMap<(String, String, i32), i64>>,
}

impl InMemoryPositions {
    pub fn new() -> Self {
        Self::default()
    }

    /// The stored position, if any.
    pub fn get(&self, consumer: &str, topic: &str, partition: i32) -> Option<i64> {
        self.positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(consumer.to_owned(), topic.to_owned(), partition))
            .copied()
    }
}

#[async_trait]
impl PositionStore for InMemoryPositions {
    async fn load(
        &self,
        consumer: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, PositionError> {
        Ok(self.get(consumer, topic, partition))
    }

    async fn save(
        &self,
        consumer: &str,
        topic: &str,
        partition: i32,
        next_offset: i64,
    ) -> Result<(), PositionError> {
        self.positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                (consumer.to_owned(), topic.to_owned(), partition),
                next_offset,
            );
        Ok(())
    }
}

/// Tuning of the runner; the defaults suit the service.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Upper bound of one fetch's record data.
    pub max_fetch_bytes: i32,
    /// How long the broker may hold a fetch open waiting for records.
    pub max_wait: Duration,
    /// Pause after a fetch that found nothing new (a broker that does not hold fetches open
    /// would otherwise be polled in a tight loop).
    pub idle_pause: Duration,
    /// First delay after `Retry` or a broker error; doubled each time up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// How often the partition claim is confirmed ([`PositionStore::claim`]).
    pub claim_interval: Duration,
    /// How far back the runner looks for the start of a batch it must re-read (tansu).
    pub max_step_back: i64,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            max_fetch_bytes: 1024 * 1024,
            max_wait: Duration::from_millis(500),
            idle_pause: Duration::from_millis(100),
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            claim_interval: Duration::from_secs(10),
            max_step_back: 10_000,
        }
    }
}

/// Drives one [`EventHandler`] over all partitions of its topics. Built by
/// [`crate::KafkaClients::consumer`].
#[derive(Clone)]
pub struct KafkaConsumerRunner {
    conn: Arc<Connection>,
    handler: Arc<dyn EventHandler>,
    positions: Arc<dyn PositionStore>,
    options: ConsumerOptions,
}

impl std::fmt::Debug for KafkaConsumerRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConsumerRunner")
            .field("consumer", &self.handler.name())
            .field("topics", &self.handler.topics())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl KafkaConsumerRunner {
    pub(crate) fn new(
        conn: Arc<Connection>,
        handler: Arc<dyn EventHandler>,
        positions: Arc<dyn PositionStore>,
    ) -> Self {
        Self {
            conn,
            handler,
            positions,
            options: ConsumerOptions::default(),
        }
    }

    pub fn with_options(mut self, options: ConsumerOptions) -> Self {
        self.options = options;
        self
    }

    /// Starts one task per topic (which starts one per partition) on the current runtime.
    /// Setting `shutdown` to `true` (or dropping its sender) stops them after the record in
    /// hand; the position reached is stored first. Partitions added to a topic later are
    /// picked up on the next start.
    pub fn start(&self, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        self.handler
            .topics()
            .into_iter()
            .map(|topic| {
                let runner = self.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move { runner.run_topic(topic, shutdown).await })
            })
            .collect()
    }

    async fn run_topic(self, topic: &'static str, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(&self.options);
        let partitions = loop {
            match self.conn.partition_count(topic).await {
                Ok(n) => break n,
                Err(e) => {
                    tracing::warn!(consumer = self.handler.name(), topic, error = %e,
                        "cannot list the topic's partitions yet");
                    if !pause(&mut shutdown, backoff.next()).await {
                        return;
                    }
                }
            }
        };
        let tasks: Vec<_> = (0..partitions)
            .map(|partition| {
                let consumer = PartitionConsumer {
                    runner: self.clone(),
                    topic,
                    partition,
                    shutdown: shutdown.clone(),
                };
                tokio::spawn(consumer.run())
            })
            .collect();
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(consumer = self.handler.name(), topic, error = %e,
                    "partition consumer panicked");
            }
        }
    }
}

/// Exponential backoff between `options.backoff` and `options.max_backoff`.
struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(options: &ConsumerOptions) -> Self {
        Self {
            first: options.backoff,
            max: options.max_backoff,
            next: options.backoff,
        }
    }

    fn next(&mut self) -> Duration {
        let current = self.next;
        self.next = (current * 2).min(self.max);
        current
    }

    fn reset(&mut self) {
        self.next = self.first;
    }
}

fn stopped(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

/// Sleeps unless shutdown comes first; `false` when it is time to stop.
async fn pause(shutdown: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    if stopped(shutdown) {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(delay) => !stopped(shutdown),
        _ = shutdown.changed() => !stopped(shutdown),
    }
}

/// Why a record was not handed to the handler as an event.
fn decode(record: &RecordAndOffset) -> Result<EventEnvelope, String> {
    let value = record
        .record
        .value
        .as_deref()
        .ok_or_else(|| "record without a value".to_owned())?;
    serde_json::from_slice(value).map_err(|e| format!("not an event envelope: {e}"))
}

/// What handling the records of one fetch came to.
enum Handled {
    /// Every record was handled (or skipped as poison).
    All,
    /// The handler asked to retry the record at the current position.
    Retry,
    /// Shutdown was requested; the current position is where to resume.
    Stopped,
}

struct PartitionConsumer {
    runner: KafkaConsumerRunner,
    topic: &'static str,
    partition: i32,
    shutdown: watch::Receiver<bool>,
}

impl PartitionConsumer {
    fn name(&self) -> &'static str {
        self.runner.handler.name()
    }

    async fn run(mut self) {
        while self.wait_for_claim().await {
            let Some(position) = self.load_position().await else {
                break;
            };
            let keep_going = self.consume_from(position).await;
            self.runner
                .positions
                .release(self.name(), self.topic, self.partition)
                .await;
            if !keep_going {
                return;
            }
        }
    }

    /// `false` when shutting down.
    async fn wait_for_claim(&mut self) -> bool {
        let mut backoff = Backoff::new(&self.runner.options);
        loop {
            match self
                .runner
                .positions
                .claim(self.name(), self.topic, self.partition)
                .await
            {
                Ok(true) => return true,
                Ok(false) => {
                    tracing::debug!(
                        consumer = self.name(),
                        topic = self.topic,
                        partition = self.partition,
                        "partition claimed elsewhere; standing by"
                    );
                    let every = self.runner.options.claim_interval;
                    if !pause(&mut self.shutdown, every).await {
                        return false;
                    }
                }
                Err(e) => {
                    tracing::warn!(consumer = self.name(), topic = self.topic,
                        partition = self.partition, error = %e, "cannot claim the partition");
                    if !pause(&mut self.shutdown, backoff.next()).await {
                        return false;
                    }
                }
            }
        }
    }

    /// `None` when shutting down.
    async fn load_position(&mut self) -> Option<i64> {
        let mut backoff = Backoff::new(&self.runner.options);
        loop {
            match self
                .runner
                .positions
                .load(self.name(), self.topic, self.partition)
                .await
            {
                Ok(position) => return Some(position.unwrap_or(0).max(0)),
                Err(e) => {
                    tracing::warn!(consumer = self.name(), topic = self.topic,
                        partition = self.partition, error = %e, "cannot load the position");
                    if !pause(&mut self.shutdown, backoff.next()).await {
                        return None;
                    }
                }
            }
        }
    }

    async fn save(&self, position: i64, saved: &mut i64) {
        if position == *saved {
            return;
        }
        match self
            .runner
            .positions
            .save(self.name(), self.topic, self.partition, position)
            .await
        {
            Ok(()) => *saved = position,
            // Not fatal: the next save stores a later position; a crash before it only
            // re-delivers (handlers are idempotent).
            Err(e) => tracing::warn!(consumer = self.name(), topic = self.topic,
                partition = self.partition, error = %e, "cannot store the position"),
        }
    }

    /// Consumes until shutdown (`false`) or until the claim is lost (`true`).
    async fn consume_from(&mut self, mut position: i64) -> bool {
        let options = self.runner.options.clone();
        let conn = self.runner.conn.clone();
        let mut saved = position;
        let mut backoff = Backoff::new(&options);
        let mut claimed_at = Instant::now();
        tracing::info!(
            consumer = self.name(),
            topic = self.topic,
            partition = self.partition,
            position,
            "consuming"
        );

        loop {
            if stopped(&self.shutdown) {
                self.save(position, &mut saved).await;
                return false;
            }
            if claimed_at.elapsed() >= options.claim_interval {
                match self
                    .runner
                    .positions
                    .claim(self.name(), self.topic, self.partition)
                    .await
                {
                    Ok(true) => claimed_at = Instant::now(),
                    Ok(false) => {
                        tracing::warn!(
                            consumer = self.name(),
                            topic = self.topic,
                            partition = self.partition,
                            "partition claim lost; standing by"
                        );
                        self.save(position, &mut saved).await;
                        return true;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot confirm the partition claim"),
                }
            }

            let client = match conn.partition(self.topic, self.partition).await {
                Ok(client) => client,
                Err(e) => {
                    self.broker_trouble(&e.to_string(), e.client_error()).await;
                    if !pause(&mut self.shutdown, backoff.next()).await {
                        return false;
                    }
                    continue;
                }
            };

            let fetched = self.fetch(&client, position).await;
            let (records, high_watermark) = match fetched {
                Ok(fetched) => fetched,
                Err(Fetch::OutOfRange) => {
                    position = self.rewind(&client, position).await;
                    self.save(position, &mut saved).await;
                    continue;
                }
                Err(Fetch::Failed(reason, unknown_topic)) => {
                    self.broker_trouble(&reason, None).await;
                    if unknown_topic {
                        // Recreates it when allowed (tansu restarted with memory storage).
                        let _ = conn.partition_count(self.topic).await;
                    }
                    if !pause(&mut self.shutdown, backoff.next()).await {
                        return false;
                    }
                    continue;
                }
            };
            metrics::gauge!("kafka_consumer_lag", "consumer" => self.name(),
                "topic" => self.topic, "partition" => self.partition.to_string())
            .set((high_watermark - position).max(0) as f64);

            let records: Vec<RecordAndOffset> = records
                .into_iter()
                .filter(|r| r.offset >= position)
                .collect();
            if records.is_empty() {
                if high_watermark < position {
                    // The partition ends before our position: the broker lost its data (a
                    // tansu restart) or the topic was recreated.
                    tracing::warn!(
                        consumer = self.name(),
                        topic = self.topic,
                        partition = self.partition,
                        position,
                        high_watermark,
                        "position beyond the end of the partition"
                    );
                    position = self.rewind(&client, position).await;
                    self.save(position, &mut saved).await;
                    continue;
                }
                if high_watermark > position {
                    // Records exist from `position` on, yet none came back: `position` is
                    // inside a record batch (tansu).
                    if let Some(found) = self.batch_start(&client, position).await {
                        let outcome = self.handle_all(found, &mut position).await;
                        self.save(position, &mut saved).await;
                        if !self.after(outcome, &mut backoff).await {
                            return false;
                        }
                        continue;
                    }
                }
                if !pause(&mut self.shutdown, options.idle_pause).await {
                    return false;
                }
                continue;
            }

            let outcome = self.handle_all(records, &mut position).await;
            self.save(position, &mut saved).await;
            if !self.after(outcome, &mut backoff).await {
                return false;
            }
        }
    }

    /// Backoff bookkeeping after handling; `false` when shutting down.
    async fn after(&mut self, outcome: Handled, backoff: &mut Backoff) -> bool {
        match outcome {
            Handled::All => {
                backoff.reset();
                true
            }
            Handled::Retry => pause(&mut self.shutdown, backoff.next()).await,
            Handled::Stopped => false,
        }
    }

    async fn fetch(
        &self,
        client: &PartitionClient,
        position: i64,
    ) -> Result<(Vec<RecordAndOffset>, i64), Fetch> {
        let options = &self.runner.options;
        let max_wait_ms = i32::try_from(options.max_wait.as_millis()).unwrap_or(i32::MAX);
        let fetched = self
            .runner
            .conn
            .bounded(
                "fetch",
                client.fetch_records(position, 1..options.max_fetch_bytes, max_wait_ms),
            )
            .await;
        fetched.map_err(|failure| match failure.client_error() {
            Some(ClientError::ServerError {
                protocol_error: ProtocolError::OffsetOutOfRange,
                ..
            }) => Fetch::OutOfRange,
            error => Fetch::Failed(failure.to_string(), error.is_some_and(is_unknown_topic)),
        })
    }

    /// Where to resume after the position fell out of the partition's range: its first
    /// record (everything from there is re-delivered; handlers de-duplicate).
    async fn rewind(&self, client: &PartitionClient, position: i64) -> i64 {
        let earliest = self
            .runner
            .conn
            .bounded("earliest offset", client.get_offset(OffsetAt::Earliest))
            .await
            .unwrap_or(0);
        tracing::warn!(
            consumer = self.name(),
            topic = self.topic,
            partition = self.partition,
            position,
            earliest,
            "position out of range; rewinding to the earliest record"
        );
        earliest
    }

    /// Finds the batch that holds `position` by fetching from the offsets before it, nearest
    /// first; returns its records from `position` on.
    async fn batch_start(
        &self,
        client: &PartitionClient,
        position: i64,
    ) -> Option<Vec<RecordAndOffset>> {
        let lowest = (position - self.runner.options.max_step_back).max(0);
        for start in (lowest..position).rev() {
            match self.fetch(client, start).await {
                Ok((records, _)) if !records.is_empty() => {
                    let from_position: Vec<_> = records
                        .into_iter()
                        .filter(|r| r.offset >= position)
                        .collect();
                    tracing::info!(
                        consumer = self.name(),
                        topic = self.topic,
                        partition = self.partition,
                        position,
                        batch_start = start,
                        "position was inside a record batch; re-read it from its start"
                    );
                    return (!from_position.is_empty()).then_some(from_position);
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        tracing::warn!(
            consumer = self.name(),
            topic = self.topic,
            partition = self.partition,
            position,
            "no record batch found before the position; waiting"
        );
        None
    }

    /// Hands the records to the handler in offset order, advancing `position` past each
    /// record handled or skipped.
    async fn handle_all(&self, mut records: Vec<RecordAndOffset>, position: &mut i64) -> Handled {
        records.sort_by_key(|r| r.offset);
        for record in records {
            if stopped(&self.shutdown) {
                return Handled::Stopped;
            }
            match decode(&record) {
                Err(reason) => self.poison(record.offset, None, &reason),
                Ok(envelope) => match self.runner.handler.handle(&envelope).await {
                    Ok(()) => {}
                    Err(HandleError::Poison(reason)) => {
                        self.poison(record.offset, Some(&envelope.event_id), &reason);
                    }
                    Err(HandleError::Retry(reason)) => {
                        tracing::warn!(consumer = self.name(), topic = self.topic,
                            partition = self.partition, offset = record.offset,
                            event_id = %envelope.event_id, %reason, "handler asked to retry");
                        metrics::counter!("kafka_consumer_retries_total",
                            "consumer" => self.name(), "topic" => self.topic)
                        .increment(1);
                        return Handled::Retry;
                    }
                },
            }
            *position = record.offset + 1;
        }
        Handled::All
    }

    fn poison(&self, offset: i64, event_id: Option<&str>, reason: &str) {
        tracing::error!(
            consumer = self.name(),
            topic = self.topic,
            partition = self.partition,
            offset,
            event_id,
            reason,
            "poison event skipped"
        );
        metrics::counter!("kafka_consumer_poison_events_total",
            "consumer" => self.name(), "topic" => self.topic)
        .increment(1);
    }

    async fn broker_trouble(&self, reason: &str, error: Option<&ClientError>) {
        tracing::warn!(
            consumer = self.name(),
            topic = self.topic,
            partition = self.partition,
            reason,
            "broker call failed; backing off"
        );
        self.runner.conn.forget(self.topic);
        if error.is_some_and(is_unknown_topic) {
            // Recreates it when allowed (tansu restarted with memory storage).
            let _ = self.runner.conn.partition_count(self.topic).await;
        }
    }
}

enum Fetch {
    OutOfRange,
    /// The reason, and whether the broker does not know the topic.
    Failed(String, bool),
}
