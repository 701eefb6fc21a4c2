//! HTTP API tests: the real application in-process, real HTTP. One binary, one module per area.

// The whole binary is test code (helpers included), where a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod helpers;

mod admin;
mod concurrency;
mod coupons;
mod hostile;
mod idempotency;
mod ops;
mod orders;
mod payments;
mod products;
mod users;
mod validation;
mod wallet;
