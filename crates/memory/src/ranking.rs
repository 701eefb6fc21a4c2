//! The popular-products read model, in process: one board of net quantities per business day.
//!
//! Boards are written whole by `rebuild_day` (the ranking updater copies a day from the
//! roll-up). Which days count as built (the `MissingDays` contract):
//! - [`MemoryRankingStore::new`] treats **every day as built**. This is the embedded default:
//!   the board and the in-memory roll-up start empty together in the same process, and the
//!   updater refreshes a day whenever a payment or refund of it is published.
//! - [`MemoryRankingStore::cold`] starts with **no day built**, like a fresh Redis in front of a
//!   durable roll-up (PostgreSQL without Redis). A day becomes built only by `rebuild_day`.
//! - [`MemoryRankingStore::mark_missing`] and [`MemoryRankingStore::clear`] drop days (an evicted
//!   key, a restarted Redis) so tests can drive the rebuild path in either mode.
//!
//! Invariant: `top` reads all requested days under one lock.

use async_trait::async_trait;
use domain::ProductId;
use domain::ports::{RankingError, RankingRead, RankingStore};
use domain::sales::{ProductSales, rank};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use time::Date;

#[derive(Debug, Default)]
struct Boards {
    days: HashMap<Date, HashMap<ProductId, i64>>,
    /// `true`: every day is built except those in `missing`; `false`: only those in `built`.
    every_day_built: bool,
    built: HashSet<Date>,
    missing: HashSet<Date>,
}

impl Boards {
    fn is_built(&self, day: Date) -> bool {
        !self.missing.contains(&day) && (self.every_day_built || self.built.contains(&day))
    }
}

#[derive(Debug)]
struct Inner {
    boards: Mutex<Boards>,
    available: AtomicBool,
}

/// The in-process ranking store. Cheap to clone: clones share the boards.
#[derive(Debug, Clone)]
pub struct MemoryRankingStore {
    inner: Arc<Inner>,
}

impl Default for MemoryRankingStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRankingStore {
    /// Every day counts as built (the embedded default; see the module docs).
    pub fn new() -> Self {
        Self::with_mode(true)
    }

    /// No day counts as built until `rebuild_day` runs for it.
    pub fn cold() -> Self {
        Self::with_mode(false)
    }

    fn with_mode(every_day_built: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                boards: Mutex::new(Boards {
                    every_day_built,
                    ..Boards::default()
                }),
                available: AtomicBool::new(true),
            }),
        }
    }

    /// While `false`, every call answers `RankingError::Unavailable` (Redis down).
    pub fn set_available(&self, available: bool) {
        self.inner.available.store(available, Ordering::SeqCst);
    }

    /// Drops `day`'s board; `top` reports it missing until it is rebuilt.
    pub fn mark_missing(&self, day: Date) {
        let mut boards = self.lock();
        boards.days.remove(&day);
        boards.built.remove(&day);
        boards.missing.insert(day);
    }

    /// Drops everything (a Redis restarted empty): no day is built any more, whatever the mode.
    pub fn clear(&self) {
        let mut boards = self.lock();
        *boards = Boards::default();
    }

    fn check_available(&self) -> Result<(), RankingError> {
        if self.inner.available.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(RankingError::Unavailable(
                "in-process ranking store switched off".into(),
            ))
        }
    }

    fn lock(&self) -> MutexGuard<'_, Boards> {
        // Updates under this lock cannot panic half-way in a way that matters for a read model
        // that is rebuilt from the roll-up anyway.
        self.inner
            .boards
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl RankingStore for MemoryRankingStore {
    async fn top(&self, days: &[Date], limit: usize) -> Result<RankingRead, RankingError> {
        self.check_available()?;
        let boards = self.lock();
        let missing: Vec<Date> = days
            .iter()
            .copied()
            .filter(|day| !boards.is_built(*day))
            .collect();
        if !missing.is_empty() {
            return Ok(RankingRead::MissingDays(missing));
        }
        let mut totals: HashMap<ProductId, i64> = HashMap::new();
        let unique_days: HashSet<Date> = days.iter().copied().collect();
        for board in unique_days.iter().filter_map(|day| boards.days.get(day)) {
            for (product, quantity) in board {
                *totals.entry(*product).or_default() += quantity;
            }
        }
        let mut ranked = rank(
            totals
                .into_iter()
                .map(|(product_id, quantity)| ProductSales {
                    product_id,
                    quantity,
                })
                .collect(),
        );
        ranked.truncate(limit);
        Ok(RankingRead::Ranked(ranked))
    }

    async fn rebuild_day(&self, day: Date, totals: &[ProductSales]) -> Result<(), RankingError> {
        self.check_available()?;
        let mut boards = self.lock();
        let mut board = HashMap::with_capacity(totals.len());
        for total in totals {
            *board.entry(total.product_id).or_default() += total.quantity;
        }
        boards.days.insert(day, board);
        boards.missing.remove(&day);
        boards.built.insert(day);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn s(id: i64, quantity: i64) -> ProductSales {
        ProductSales {
            product_id: ProductId(id),
            quantity,
        }
    }

    const D1: Date = date!(2026 - 11 - 20);
    const D2: Date = date!(2026 - 11 - 21);

    #[tokio::test]
    async fn ranks_over_days_with_ties_to_the_lower_id() {
        let ranking = MemoryRankingStore::new();
        ranking.rebuild_day(D1, &[s(1, 3), s(2, 5)]).await.unwrap();
        ranking.rebuild_day(D2, &[s(1, 2), s(3, 0)]).await.unwrap();
        let read = ranking.top(&[D1, D2], 10).await.unwrap();
        // 1 and 2 tie at 5: the lower id first; 3 nets to zero and is left out.
        assert_eq!(read, RankingRead::Ranked(vec![s(1, 5), s(2, 5)]));
        assert_eq!(
            ranking.top(&[D1, D2], 1).await.unwrap(),
            RankingRead::Ranked(vec![s(1, 5)])
        );
    }

    #[tokio::test]
    async fn cold_store_reports_unbuilt_days_until_rebuilt() {
        let ranking = MemoryRankingStore::cold();
        assert_eq!(
            ranking.top(&[D1, D2], 5).await.unwrap(),
            RankingRead::MissingDays(vec![D1, D2])
        );
        ranking.rebuild_day(D1, &[s(2, 7)]).await.unwrap();
        ranking.rebuild_day(D2, &[s(1, 1)]).await.unwrap();
        assert_eq!(
            ranking.top(&[D1, D2], 5).await.unwrap(),
            RankingRead::Ranked(vec![s(2, 7), s(1, 1)])
        );
        // A rebuild replaces the day, it never adds to it.
        ranking.rebuild_day(D2, &[s(1, 3)]).await.unwrap();
        assert_eq!(
            ranking.top(&[D2], 5).await.unwrap(),
            RankingRead::Ranked(vec![s(1, 3)])
        );
    }

    #[tokio::test]
    async fn missing_days_and_outages_can_be_simulated() {
        let ranking = MemoryRankingStore::new();
        ranking.rebuild_day(D1, &[s(1, 1)]).await.unwrap();
        ranking.mark_missing(D1);
        assert_eq!(
            ranking.top(&[D1, D2], 5).await.unwrap(),
            RankingRead::MissingDays(vec![D1])
        );
        ranking.rebuild_day(D1, &[s(1, 2)]).await.unwrap();
        assert_eq!(
            ranking.top(&[D1], 5).await.unwrap(),
            RankingRead::Ranked(vec![s(1, 2)])
        );
        ranking.set_available(false);
        assert!(ranking.top(&[D1], 5).await.is_err());
        assert!(ranking.rebuild_day(D1, &[]).await.is_err());
        ranking.set_available(true);
        ranking.clear();
        assert_eq!(
            ranking.top(&[D2], 5).await.unwrap(),
            RankingRead::MissingDays(vec![D2])
        );
    }
}
