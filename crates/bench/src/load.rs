//! Driving load with goose, and recording what each request answered.
//!
//! Goose schedules the users (one HTTP client, so one keep-alive connection, per goose
//! user), runs the scenario's transactions and stops after the given iterations or run time.
//! Every request goes through [`send`], which times it to the last byte of the body in
//! microseconds (goose's own metrics are whole milliseconds to the first byte) and files its
//! outcome as `status` or `status CODE` (the problem+json `code`) in a [`Recorder`].

use anyhow::{Result, anyhow};
use goose::config::GooseConfiguration;
use goose::goose::{GooseMethod, GooseRequest, GooseUser, Scenario, TransactionError};
use goose::prelude::{GooseAttack, GooseDefault, GooseDefaultType};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Outcomes and latencies of one scenario's requests (or of one kind of request in it).
pub struct Recorder {
    inner: Mutex<Inner>,
}

struct Inner {
    latency_us: Histogram<u64>,
    outcomes: BTreeMap<String, u64>,
    by_outcome: BTreeMap<String, Histogram<u64>>,
    first_start: Option<Instant>,
    last_end: Option<Instant>,
}

/// What a [`Recorder`] saw, summarised.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub requests: u64,
    /// From the first request's start to the last one's end.
    pub elapsed_s: f64,
    pub throughput_rps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// `status` or `status CODE` → count.
    pub outcomes: BTreeMap<String, u64>,
    /// Latency per outcome (a grant and a refusal take different paths).
    pub by_outcome: BTreeMap<String, OutcomeLatency>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutcomeLatency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    /// Requests whose status is not in `expected` (e.g. transport errors, 5xx, an
    /// unexpected 4xx).
    pub fn unexpected(&self, expected: &[&str]) -> u64 {
        self.outcomes
            .iter()
            .filter(|(k, _)| !expected.contains(&k.as_str()))
            .map(|(_, v)| v)
            .sum()
    }

    pub fn count(&self, outcome: &str) -> u64 {
        self.outcomes.get(outcome).copied().unwrap_or(0)
    }
}

impl Recorder {
    pub fn new() -> Result<Self> {
        // 1 µs .. 60 s at 3 significant digits.
        let latency_us = Histogram::new_with_bounds(1, 60_000_000, 3)?;
        Ok(Self {
            inner: Mutex::new(Inner {
                latency_us,
                outcomes: BTreeMap::new(),
                by_outcome: BTreeMap::new(),
                first_start: None,
                last_end: None,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn record(&self, started: Instant, ended: Instant, outcome: String) {
        let us = ended.duration_since(started).as_micros();
        let us = u64::try_from(us).unwrap_or(u64::MAX).max(1);
        let mut inner = self.lock();
        inner.latency_us.saturating_record(us);
        if !inner.by_outcome.contains_key(&outcome)
            && let Ok(h) = Histogram::new_with_bounds(1, 60_000_000, 3)
        {
            inner.by_outcome.insert(outcome.clone(), h);
        }
        if let Some(h) = inner.by_outcome.get_mut(&outcome) {
            h.saturating_record(us);
        }
        *inner.outcomes.entry(outcome).or_insert(0) += 1;
        inner.first_start = Some(inner.first_start.map_or(started, |f| f.min(started)));
        inner.last_end = Some(inner.last_end.map_or(ended, |l| l.max(ended)));
    }

    pub fn summary(&self) -> Summary {
        let inner = self.lock();
        let requests = inner.latency_us.len();
        let elapsed_s = match (inner.first_start, inner.last_end) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        let ms = |q: f64| inner.latency_us.value_at_quantile(q) as f64 / 1000.0;
        Summary {
            requests,
            elapsed_s,
            throughput_rps: if elapsed_s > 0.0 {
                requests as f64 / elapsed_s
            } else {
                0.0
            },
            p50_ms: ms(0.50),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
            max_ms: inner.latency_us.max() as f64 / 1000.0,
            outcomes: inner.outcomes.clone(),
            by_outcome: inner
                .by_outcome
                .iter()
                .map(|(k, h)| {
                    (
                        k.clone(),
                        OutcomeLatency {
                            count: h.len(),
                            p50_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
                            p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
                            max_ms: h.max() as f64 / 1000.0,
                        },
                    )
                })
                .collect(),
        }
    }
}

/// One request's answer as the scenarios need it.
pub struct Answer {
    pub status: u16,
    /// The parsed body when it is JSON (the created object, or a problem+json).
    pub body: Value,
}

/// Sends one request through goose with a bearer token, times it to the end of the body and
/// records the outcome in each of `recorders`. A transport error is recorded as
/// `transport` and answers status 0.
pub async fn send(
    user: &mut GooseUser,
    recorders: &[&Recorder],
    method: GooseMethod,
    path: &str,
    name: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Answer, Box<TransactionError>> {
    let mut builder = user.get_request_builder(&method, path)?;
    if let Some(token) = token {
        builder = builder.bearer_auth(token);
    }
    if let Some(body) = body {
        builder = builder.json(body);
    }
    let request = GooseRequest::builder()
        .method(method)
        .path(path)
        .name(name)
        .set_request_builder(builder)
        .build();
    let started = Instant::now();
    let response = user.request(request).await?;
    let (status, body) = match response.response {
        Ok(r) => {
            let status = r.status().as_u16();
            match r.bytes().await {
                Ok(bytes) => {
                    let body = if bytes.is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
                    };
                    (status, body)
                }
                Err(_) => (0, Value::Null),
            }
        }
        Err(_) => (0, Value::Null),
    };
    let ended = Instant::now();
    let outcome = match status {
        0 => "transport".to_owned(),
        s if s >= 400 => match body.get("code").and_then(Value::as_str) {
            Some(code) => format!("{s} {code}"),
            None => s.to_string(),
        },
        s => s.to_string(),
    };
    for recorder in recorders {
        recorder.record(started, ended, outcome.clone());
    }
    Ok(Answer { status, body })
}

/// How long a goose run lasts.
#[derive(Clone, Copy, Debug)]
pub enum Length {
    /// Each goose user runs the scenario this many times, then stops.
    Iterations(usize),
    /// The run stops after this many seconds.
    Seconds(usize),
}

/// Runs one goose attack: `users` goose users (each with its own client and connection),
/// all started at once, against `host`.
pub async fn run(host: &str, scenario: Scenario, users: usize, length: Length) -> Result<()> {
    let attack = GooseAttack::initialize_with_config(GooseConfiguration::default())
        .map_err(|e| anyhow!("goose: {e}"))?;
    let attack = attack
        .register_scenario(scenario)
        .set_default(GooseDefault::Host, host)
        .and_then(|a| a.set_default(GooseDefault::Users, users))
        // Start every user within a fraction of a second: a burst, not a ramp.
        .and_then(|a| a.set_default(GooseDefault::IncreaseRate, "100000"))
        // Request metrics are kept by `send` (µs, to the last byte); goose's own per-request
        // channel would only add work to the generator that shares the 2 cores.
        .and_then(|a| a.set_default(GooseDefault::NoMetrics, true))
        .and_then(|a| a.set_default(GooseDefault::NoPrintMetrics, true))
        .and_then(|a| a.set_default(GooseDefault::NoTelnet, true))
        .and_then(|a| a.set_default(GooseDefault::Quiet, 1))
        .and_then(|a| a.set_default(GooseDefault::Timeout, "60"))
        .map_err(|e| anyhow!("goose: {e}"))?;
    let attack = match length {
        Length::Iterations(n) => attack.set_default(GooseDefault::Iterations, n),
        Length::Seconds(s) => attack.set_default(GooseDefault::RunTime, s),
    }
    .map_err(|e| anyhow!("goose: {e}"))?;
    attack.execute().await.map_err(|e| anyhow!("goose: {e}"))?;
    // Let keep-alive connections of the finished users close before the next phase.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(())
}

/// The per-goose-user cursor over a scenario's prepared users: goose user `i` of `n` takes
/// prepared users `i`, `i + n`, `i + 2n`, ... so every prepared user is used exactly once.
#[derive(Clone, Debug)]
pub struct Cursor {
    next: usize,
}

/// The next prepared-user index for this goose user, or `None` when its share is done.
pub fn next_index(user: &mut GooseUser, users: usize, total: usize) -> Option<usize> {
    let first = user.weighted_users_index;
    let cursor = match user.get_session_data_mut::<Cursor>() {
        Some(c) => c,
        None => {
            user.set_session_data(Cursor { next: first });
            user.get_session_data_mut::<Cursor>()?
        }
    };
    let index = cursor.next;
    if index >= total {
        return None;
    }
    cursor.next += users;
    Some(index)
}

/// Iterations each goose user needs so that `users` of them cover `total` prepared users.
pub fn iterations_for(total: usize, users: usize) -> usize {
    total.div_ceil(users.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterations_cover_every_prepared_user() {
        assert_eq!(iterations_for(20_000, 256), 79);
        assert_eq!(iterations_for(2_000, 64), 32);
        assert_eq!(iterations_for(10, 256), 1);
        assert_eq!(iterations_for(0, 8), 1);
        // goose users i, i + n, ... take every index below the total exactly once.
        let (total, users) = (1_000usize, 64usize);
        let mut seen = vec![0u8; total];
        for first in 0..users {
            for k in 0..iterations_for(total, users) {
                let i = first + k * users;
                if i < total {
                    seen[i] += 1;
                }
            }
        }
        assert!(seen.iter().all(|n| *n == 1));
    }

    #[test]
    fn summary_counts_outcomes_and_percentiles() {
        let rec = Recorder::new().unwrap();
        let t0 = Instant::now();
        for ms in 1..=100u64 {
            let outcome = if ms <= 95 {
                "201"
            } else {
                "409 COUPON_SOLD_OUT"
            };
            rec.record(t0, t0 + Duration::from_millis(ms), outcome.to_owned());
        }
        rec.record(t0, t0 + Duration::from_millis(1), "transport".to_owned());
        let s = rec.summary();
        assert_eq!(s.requests, 101);
        assert_eq!(s.count("201"), 95);
        assert_eq!(s.unexpected(&["201", "409 COUPON_SOLD_OUT"]), 1);
        assert_eq!(s.by_outcome["201"].count, 95);
        assert!(s.by_outcome["409 COUPON_SOLD_OUT"].p50_ms >= 96.0);
        assert!((49.0..=51.0).contains(&s.p50_ms), "p50 {}", s.p50_ms);
        assert!((98.0..=100.1).contains(&s.p99_ms), "p99 {}", s.p99_ms);
        assert!((s.elapsed_s - 0.1).abs() < 0.001);
        assert!((s.throughput_rps - 1010.0).abs() < 10.0);
    }
}
