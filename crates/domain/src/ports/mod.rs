//! Ports: what the use cases need from the outside world, as traits.
//!
//! Adapters implement them (`memory` for tests and the embedded default, `persistence-diesel`,
//! `cache-redis`, `messaging-kafka` for production). Every method documents the errors it MUST
//! return, so that every adapter behaves the same and one use-case test suite can run against
//! all of them.

mod clock;
mod events;
mod gate;
mod health;
mod idempotency;
mod ranking;
mod rate_limit;
mod store;

pub use clock::*;
pub use events::*;
pub use gate::*;
pub use health::*;
pub use idempotency::*;
pub use ranking::*;
pub use rate_limit::*;
pub use store::*;

/// A store failure that is not a business outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoError {
    /// The store cannot be reached or is overloaded (pool timeout, connection refused). Clients
    /// get 503 `UNAVAILABLE`; retrying later is safe.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A concurrent transaction won (serialization failure, deadlock victim, unique race).
    /// Nothing was changed; the use case may retry.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Anything else: a bug or a broken invariant. Clients get 500 `INTERNAL`.
    #[error("store error: {0}")]
    Internal(String),
}
