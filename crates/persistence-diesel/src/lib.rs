//! PostgreSQL adapter: every store port of `domain::ports` on diesel 2 + diesel-async +
//! deadpool, plus the embedded migrations of the top-level `migrations/` directory.
//!
//! - [`PgStore`] implements [`UnitOfWork`](domain::ports::UnitOfWork): `begin` checks a
//!   connection out of the pool and sends `BEGIN`; the [`PgTransaction`] it returns implements
//!   every repository trait on that one connection. Dropping it without `commit` rolls back
//!   (see [`transaction`] for how, and why a connection with an open transaction never goes
//!   back to the pool). `read` hands out a pooled connection without `BEGIN`.
//! - [`PgIdempotencyStore`] keeps `Idempotency-Key` records, outside any unit of work.
//! - [`PgHealthCheck`] is the `database` dependency of `/health/ready`.
//! - [`AdvisoryLocks`] holds PostgreSQL session advisory locks on a dedicated connection
//!   ("one instance at a time does X", e.g. one consumer per Kafka partition).
//!
//! Hot rows (stock, balances, coupon counters, order status) are changed by single conditional
//! `UPDATE ... WHERE <condition> RETURNING` statements under READ COMMITTED: the row lock is
//! held only from that statement to the commit, and the condition is re-checked on the newest
//! row version after any wait, so no read-modify-write race exists. Store failures are mapped
//! to [`RepoError`](domain::ports::RepoError) in one place, [`error`].

pub mod advisory;
mod config;
pub mod error;
mod health;
mod idempotency;
mod migrate;
mod pool;
mod recycle;
mod repos;
mod schema;
pub mod session;
#[cfg(feature = "test-support")]
pub mod test_db;
pub mod transaction;

pub use advisory::AdvisoryLocks;
pub use config::PgConfig;
pub use health::PgHealthCheck;
pub use idempotency::PgIdempotencyStore;
pub use migrate::{MIGRATIONS, MigrateError, migrate};
pub use pool::{ConnectError, PgStore, connect};
pub use session::Session;
pub use transaction::PgTransaction;
