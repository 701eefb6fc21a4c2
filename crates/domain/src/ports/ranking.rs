use crate::sales::ProductSales;
use async_trait::async_trait;
use time::Date;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RankingError {
    /// Redis is down: readers fall back to the store's roll-up.
    #[error("ranking store unavailable: {0}")]
    Unavailable(String),
}

/// What a ranking read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RankingRead {
    /// Net quantities summed over the days, best first (ties: lower product id first).
    Ranked(Vec<ProductSales>),
    /// These days have never been built: rebuild them from the roll-up and read again.
    MissingDays(Vec<Date>),
}

/// The fast read model behind "popular products": one sorted set per business day.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait RankingStore: Send + Sync {
    /// The top `limit` products over `days`.
    async fn top(&self, days: &[Date], limit: usize) -> Result<RankingRead, RankingError>;

    /// Replaces `day` with `totals` from the roll-up and marks it built.
    async fn rebuild_day(&self, day: Date, totals: &[ProductSales]) -> Result<(), RankingError>;
}
