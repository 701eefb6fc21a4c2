//! The first-come gate, measured: what it answered and how long it took, for the operator's
//! alerts (a gate that answers `unavailable` means no coupon can be issued) and dashboard.
//!
//! A decorator, so every gate (Redis, in-process) is measured the same way and the use cases
//! know nothing about metrics.

use async_trait::async_trait;
use domain::coupon::Coupon;
use domain::ports::{CouponGate, GateDecision, GateError, IssuedCounts};
use domain::{CouponId, UserId};
use std::sync::Arc;
use std::time::Instant;

/// `coupon_gate_answers_total{operation, outcome}` and
/// `coupon_gate_duration_seconds{operation}` around every call of the inner gate.
pub struct MeteredGate {
    inner: Arc<dyn CouponGate>,
}

impl MeteredGate {
    pub fn new(inner: Arc<dyn CouponGate>) -> Self {
        Self { inner }
    }

    /// Every series the alerts and the dashboard use exists from start-up (at 0), so that a
    /// rate over it is 0 rather than absent before the first drop.
    pub fn register_series() {
        for outcome in OUTCOMES {
            metrics::counter!("coupon_gate_answers_total", "operation" => "acquire", "outcome" => outcome)
                .increment(0);
        }
    }
}

const OUTCOMES: [&str; 5] = [
    "granted",
    "sold_out",
    "limit_reached",
    "unloaded",
    "unavailable",
];

fn record(operation: &'static str, outcome: &'static str, started: Instant) {
    metrics::counter!("coupon_gate_answers_total", "operation" => operation, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("coupon_gate_duration_seconds", "operation" => operation)
        .record(started.elapsed().as_secs_f64());
}

fn outcome_of<T>(result: &Result<T, GateError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(GateError::Unavailable(_)) => "unavailable",
    }
}

#[async_trait]
impl CouponGate for MeteredGate {
    async fn try_acquire(&self, coupon: &Coupon, user: UserId) -> Result<GateDecision, GateError> {
        let started = Instant::now();
        let decision = self.inner.try_acquire(coupon, user).await;
        let outcome = match &decision {
            Ok(GateDecision::Granted) => OUTCOMES[0],
            Ok(GateDecision::SoldOut) => OUTCOMES[1],
            Ok(GateDecision::LimitReached) => OUTCOMES[2],
            Ok(GateDecision::Unloaded) => OUTCOMES[3],
            Err(GateError::Unavailable(_)) => OUTCOMES[4],
        };
        record("acquire", outcome, started);
        decision
    }

    async fn release(&self, coupon: CouponId, user: UserId) -> Result<(), GateError> {
        let started = Instant::now();
        let result = self.inner.release(coupon, user).await;
        record("release", outcome_of(&result), started);
        result
    }

    async fn load(&self, coupon: &Coupon, counts: &IssuedCounts) -> Result<(), GateError> {
        let started = Instant::now();
        let result = self.inner.load(coupon, counts).await;
        record("load", outcome_of(&result), started);
        result
    }
}
