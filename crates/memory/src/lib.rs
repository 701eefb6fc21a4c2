//! In-memory implementations of every outbound port of `domain::ports`.
//!
//! Two uses, one implementation: the fakes that use-case tests run against, and the embedded
//! default that `cargo run` serves when no PostgreSQL, Redis or Kafka is configured. Because the
//! HTTP server is multi-threaded, these are not toy fakes: they keep every guarantee of the
//! production adapters under real concurrency (no oversell, no double spend, exact first-come
//! counts, atomic units of work), and tests prove it with many tasks on a multi-thread runtime.
//!
//! [`MemoryStore`] implements `UnitOfWork` and every repository.

mod store;

pub use store::{DEFAULT_LOCK_TIMEOUT, MemoryStore};
