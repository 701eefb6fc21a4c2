//! The transactional outbox (seed 003 `OUTBOX_EVENTS`) and the event envelope of EVENTS.md.
//!
//! An event is written in the same transaction as the change it tells about; the relay
//! publishes READY rows and marks them SENT, or FAILED once its retry budget is spent.

use crate::OutboxId;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboxStatus {
    Ready,
    Sent,
    Failed,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "READY",
            Self::Sent => "SENT",
            Self::Failed => "FAILED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "READY" => Some(Self::Ready),
            "SENT" => Some(Self::Sent),
            "FAILED" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// Event types and the topics they go to by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    OrderPaid,
    OrderRefunded,
    CouponIssueRequested,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderPaid => "ORDER_PAID",
            Self::OrderRefunded => "ORDER_REFUNDED",
            Self::CouponIssueRequested => "COUPON_ISSUE_REQUESTED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "ORDER_PAID" => Some(Self::OrderPaid),
            "ORDER_REFUNDED" => Some(Self::OrderRefunded),
            "COUPON_ISSUE_REQUESTED" => Some(Self::CouponIssueRequested),
            _ => None,
        }
    }

    pub const fn default_topic(self) -> &'static str {
        match self {
            Self::OrderPaid => "order.paid",
            Self::OrderRefunded => "order.refunded",
            Self::CouponIssueRequested => "coupon.issue.requested",
        }
    }
}

/// The JSON document that travels in the outbox and on Kafka.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventEnvelope {
    /// A UUID, unique per event: consumers de-duplicate on it.
    pub event_id: String,
    pub event_type: EventType,
    pub aggregate_type: String,
    /// Also the Kafka key, so that one order's events keep their order.
    pub aggregate_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    pub payload: serde_json::Value,
}

/// What is waiting in the outbox, for the operator's alerts: events not yet published, the
/// oldest of them, and events the relay gave up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxBacklog {
    pub ready: i64,
    /// `created_at` of the oldest READY event; `None` when nothing is READY.
    pub oldest_ready: Option<time::OffsetDateTime>,
    pub failed: i64,
}

/// A stored outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    pub id: OutboxId,
    pub envelope: EventEnvelope,
    pub status: OutboxStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub sent_at: Option<OffsetDateTime>,
}

impl OutboxEvent {
    pub fn topic(&self) -> &'static str {
        self.envelope.event_type.default_topic()
    }
}

/// The token of one relay's claim on outbox rows. While the claim's lease runs, no other relay
/// claims those rows; the relay records its outcomes under this token, so that a relay whose
/// lease ran out (and whose rows another relay claimed meanwhile) cannot overwrite the new
/// owner's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutboxLease(pub i64);

/// What one relay round claimed: the rows, oldest first, held by `lease` until `until`.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxClaim {
    pub lease: OutboxLease,
    /// After this instant the rows are claimable again (their relay is presumed dead).
    pub until: OffsetDateTime,
    pub events: Vec<OutboxEvent>,
}

/// What became of one claimed row in its relay round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxOutcome {
    /// Published: SENT.
    Sent,
    /// The publish failed: one more attempt counted, the error kept, due again at
    /// `next_attempt_at`, still READY.
    Retry {
        error: String,
        next_attempt_at: OffsetDateTime,
    },
    /// The publish failed and the retry budget is spent: one more attempt counted, the error
    /// kept, FAILED (an admin re-drives it).
    Failed { error: String },
    /// Not tried (an older event of its aggregate failed first, or the round ran out of time):
    /// released as it was, no attempt counted, claimable again at once.
    Untried,
}
