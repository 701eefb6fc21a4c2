//! Tests of the store: rollback of every kind of change, repository behaviour, concurrency.

mod behaviour;
mod concurrency;
mod fixtures;
mod rollback;
