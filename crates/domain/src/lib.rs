//! The shop's business core.
//!
//! Everything here is pure: entities and value objects that validate themselves, the rules of
//! `RULES.md` that need no I/O (wallet limits, discount arithmetic, the order state machine,
//! coupon windows, the business calendar) and the ports ([`ports`]) that outbound adapters
//! implement. Nothing in this crate knows about HTTP, SQL, Redis or Kafka, and nothing spawns a
//! task: `cargo tree -p domain` must never show tokio, diesel or actix.

pub mod coupon;
pub mod idempotency;
pub mod ids;
pub mod order;
pub mod outbox;
pub mod page;
pub mod payment;
pub mod ports;
pub mod product;
pub mod rate_limit;
pub mod sales;
pub mod text;
pub mod user;
pub mod wallet;

pub use ids::*;
