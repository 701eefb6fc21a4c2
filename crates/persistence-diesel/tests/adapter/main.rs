//! Adapter tests against a real PostgreSQL: every repository method and documented error,
//! the unit of work's commit/rollback behaviour, and the idempotency store. Each test runs on
//! its own database cloned from the migrated template (see `common`).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

#[path = "../common/mod.rs"]
mod common;

mod coupons;
mod errors;
mod idempotency;
mod inbox;
mod orders;
mod outbox;
mod payments;
mod products;
mod sales;
mod unit_of_work;
mod users;
mod wallets;
