//! In-memory implementations of every outbound port of `domain::ports`.
//!
//! Two uses, one implementation: the fakes that use-case tests run against, and the embedded
//! default that `cargo run` serves when no PostgreSQL, Redis or Kafka is configured. Because the
//! HTTP server is multi-threaded, these are not toy fakes: they keep every guarantee of the
//! production adapters under real concurrency (no oversell, no double spend, exact first-come
//! counts, atomic units of work), and tests prove it with many tasks on a multi-thread runtime.
//!
//! | port | implementation |
//! |---|---|
//! | `UnitOfWork` and every repository | [`MemoryStore`] |
//! | `CouponGate` | [`MemoryCouponGate`] |
//! | `RankingStore` | [`MemoryRankingStore`] |
//! | `RateLimiter` | [`MemoryRateLimiter`] (bounded; also every instance's fallback while Redis is down) |
//! | `EventPublisher` (+ consumers) | [`InProcessBus`] |
//! | `IdempotencyStore` | [`MemoryStore`] (the records live in the store's state, so an answer commits with its effect) |
//! | `Clock` | [`SystemClock`], [`ManualClock`] |
//! | `DataPlatform` | [`LoggingDataPlatform`], [`RecordingDataPlatform`] |
//!
//! The adapters that stand in for a remote service (gate, ranking, bus) have a
//! `set_available(false)` switch so that tests can exercise the fail-closed paths.

mod bus;
mod clock;
mod data_platform;
mod gate;
mod ranking;
mod rate_limit;
mod store;

pub use bus::{DEFAULT_MAX_RETRY_BACKOFF, DEFAULT_RETRY_BACKOFF, InProcessBus};
pub use clock::{ManualClock, SystemClock};
pub use data_platform::{LoggingDataPlatform, RecordingDataPlatform};
pub use gate::MemoryCouponGate;
pub use ranking::MemoryRankingStore;
pub use rate_limit::MemoryRateLimiter;
pub use store::{DEFAULT_LOCK_TIMEOUT, MemoryStore};
