//! The use-case suite of `crates/application/tests/suite`, the very same cases the memory
//! adapters pass, run against PostgreSQL: the store and the idempotency records are this
//! crate's; the gate, ranking, bus and clock are the in-process ones of the `memory` crate
//! (their Redis and Kafka counterparts are tested in their own crates).
//!
//! Each case gets a fresh database cloned from the migrated template (see `common`). The
//! clock stands still at a microsecond-precision instant, as PostgreSQL stores timestamps with
//! microsecond precision.

#[path = "common/mod.rs"]
mod common;

#[macro_use]
#[path = "../../application/tests/suite/mod.rs"]
mod suite;

use application::{Ports, Shop, ShopConfig};
use common::TestDb;
use domain::ports::{RepoError, Transaction, UnitOfWork};
use memory::{InProcessBus, ManualClock, MemoryCouponGate, MemoryRankingStore};
use std::sync::Arc;
use time::macros::datetime;

/// The store of one case, owning that case's database: when the case drops its `Shop`, the
/// database goes with it.
struct CaseStore(TestDb);

#[async_trait::async_trait]
impl UnitOfWork for CaseStore {
    async fn begin(&self) -> Result<Box<dyn Transaction>, RepoError> {
        self.0.store.begin().await
    }

    async fn read(&self) -> Result<Box<dyn Transaction>, RepoError> {
        self.0.store.read().await
    }
}

async fn postgres_shop() -> Shop {
    let db = TestDb::with_config(|c| c.wait_timeout = std::time::Duration::from_secs(30)).await;
    let idempotency = db.store.idempotency();
    let ports = Ports {
        store: Arc::new(CaseStore(db)),
        gate: Arc::new(MemoryCouponGate::new()),
        ranking: Arc::new(MemoryRankingStore::cold()),
        publisher: Arc::new(InProcessBus::new()),
        idempotency: Arc::new(idempotency),
        // 10:30 in Seoul: business days are easy to reason about.
        clock: Arc::new(ManualClock::new(datetime!(2026-11-21 01:30:00.123456 UTC))),
    };
    Shop::new(ports, ShopConfig::default())
}

run_suite!(postgres_shop);
