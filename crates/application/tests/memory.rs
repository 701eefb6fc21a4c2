//! The use-case suite against the in-memory adapters (`memory` crate).
//!
//! The factory gives each case a fresh, empty shop. Its clock stands still (`ManualClock`) so
//! that cases can compare timestamps exactly and move time themselves; its ranking store starts
//! cold (no day built), like a fresh Redis in front of a durable roll-up, so that the rebuild
//! path is exercised. The bus has no subscribers: cases feed handlers themselves.

#[macro_use]
mod suite;

use application::{Ports, Shop, ShopConfig};
use memory::{InProcessBus, ManualClock, MemoryCouponGate, MemoryRankingStore, MemoryStore};
use std::sync::Arc;
use time::macros::datetime;

async fn memory_shop() -> Shop {
    // Keyed answers live in the store's own state, as in the embedded profile.
    let store = MemoryStore::new();
    let ports = Ports {
        store: Arc::new(store.clone()),
        gate: Arc::new(MemoryCouponGate::new()),
        ranking: Arc::new(MemoryRankingStore::cold()),
        publisher: Arc::new(InProcessBus::new()),
        idempotency: Arc::new(store),
        // 10:30 in Seoul: business days are easy to reason about.
        clock: Arc::new(ManualClock::new(datetime!(2026-11-21 01:30:00.123456 UTC))),
    };
    Shop::new(ports, ShopConfig::default())
}

run_suite!(memory_shop);
