//! Top sellers of the last days: the ranking store first, the roll-up as fallback and truth.
//!
//! The ranking store (Redis sorted sets, one per business day) answers the hot read; a day it
//! has never built is rebuilt from the store's daily roll-up; when it is down, the roll-up
//! answers directly. OFF products are left out here, whatever source answered, so that a
//! product switched OFF disappears at once.

use crate::{Shop, ShopError};
use domain::ProductId;
use domain::ports::RankingRead;
use domain::product::{FieldError, Product, ProductStatus};
use domain::sales::ProductSales;
use std::collections::HashMap;
use time::Date;

#[derive(Debug, Clone)]
pub struct PopularProduct {
    pub rank: u32,
    pub product: Product,
    pub sold_quantity: i64,
}

#[derive(Debug, Clone)]
pub struct Popular {
    pub from: Date,
    pub to: Date,
    pub items: Vec<PopularProduct>,
}

pub const MAX_DAYS: u32 = 30;
pub const MAX_LIMIT: u32 = 50;

/// The most rows asked of a source while looking past OFF products.
const MAX_FETCH: usize = 1_000;

fn check_bounds(days: u32, limit: u32) -> Result<(), ShopError> {
    let mut errors = Vec::new();
    if !(1..=MAX_DAYS).contains(&days) {
        errors.push(FieldError::new(
            "days",
            format!("must be between 1 and {MAX_DAYS}"),
        ));
    }
    if !(1..=MAX_LIMIT).contains(&limit) {
        errors.push(FieldError::new(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ShopError::Validation(errors))
    }
}

impl Shop {
    /// `days` 1..=30, `limit` 1..=50 (validated by the caller or here: `Validation`).
    pub async fn popular_products(&self, days: u32, limit: u32) -> Result<Popular, ShopError> {
        check_bounds(days, limit)?;
        let window = self.config.calendar.last_days(self.now(), days);
        let (Some(&from), Some(&to)) = (window.first(), window.last()) else {
            return Err(ShopError::Internal("empty business-day window".into()));
        };
        let key = (days, limit);
        // An answer from before midnight is stale whatever its age: its window is another one.
        if let Some(hit) = self.caches.popular.get_if(&key, |answer| answer.to == to) {
            return Ok(hit);
        }
        let items = self.rank_popular(&window, limit as usize).await?;
        let answer = Popular { from, to, items };
        self.caches.popular.put(key, answer.clone());
        Ok(answer)
    }

    /// The top `wanted` products that are not OFF. The sources rank every product, so when
    /// OFF products thin out a full page, the next, larger page is asked for.
    async fn rank_popular(
        &self,
        window: &[Date],
        wanted: usize,
    ) -> Result<Vec<PopularProduct>, ShopError> {
        let mut fetch = wanted;
        loop {
            let ranked = self.ranked_sales(window, fetch).await?;
            let may_have_more = ranked.len() >= fetch && fetch < MAX_FETCH;
            let ids: Vec<ProductId> = ranked.iter().map(|s| s.product_id).collect();
            let products: HashMap<ProductId, Product> = {
                let mut tx = self.ports.store.read().await?;
                tx.products()
                    .get_many(&ids)
                    .await?
                    .into_iter()
                    .map(|p| (p.id, p))
                    .collect()
            };
            let items: Vec<PopularProduct> = ranked
                .iter()
                .filter(|sale| sale.quantity > 0)
                .filter_map(|sale| {
                    let product = products.get(&sale.product_id)?;
                    (product.status != ProductStatus::Off).then(|| (product.clone(), sale.quantity))
                })
                .take(wanted)
                .zip(1..)
                .map(|((product, sold_quantity), rank)| PopularProduct {
                    rank,
                    product,
                    sold_quantity,
                })
                .collect();
            if items.len() >= wanted || !may_have_more {
                return Ok(items);
            }
            fetch = (fetch * 2).min(MAX_FETCH);
        }
    }

    /// Net quantities over `window`, best first: from the ranking store, rebuilding days it
    /// never built; from the roll-up when the ranking store cannot answer.
    async fn ranked_sales(
        &self,
        window: &[Date],
        n: usize,
    ) -> Result<Vec<ProductSales>, ShopError> {
        let ranking = &self.ports.ranking;
        let reason = match ranking.top(window, n).await {
            Ok(RankingRead::Ranked(sales)) => return Ok(sales),
            Ok(RankingRead::MissingDays(missing)) => {
                match self.rebuild_ranking_days(&missing).await? {
                    Err(e) => e,
                    Ok(()) => match ranking.top(window, n).await {
                        Ok(RankingRead::Ranked(sales)) => return Ok(sales),
                        Ok(RankingRead::MissingDays(still)) => {
                            format!("days {still:?} still missing after a rebuild")
                        }
                        Err(e) => e.to_string(),
                    },
                }
            }
            Err(e) => e.to_string(),
        };
        tracing::warn!(%reason, "ranking store cannot answer; reading the sales roll-up");
        metrics::counter!("popular_fallback_total").increment(1);
        self.top_from_rollup(window, n).await
    }

    /// Rebuilds `days` in the ranking store from the roll-up. The outer error is the store's
    /// (fatal: the fallback needs the store too), the inner one the ranking store's.
    async fn rebuild_ranking_days(&self, days: &[Date]) -> Result<Result<(), String>, ShopError> {
        let mut tx = self.ports.store.read().await?;
        for &day in days {
            let totals = tx.sales().day_totals(day).await?;
            if let Err(e) = self.ports.ranking.rebuild_day(day, &totals).await {
                return Ok(Err(e.to_string()));
            }
            tracing::debug!(%day, products = totals.len(), "ranking day rebuilt from the roll-up");
        }
        Ok(Ok(()))
    }

    async fn top_from_rollup(
        &self,
        window: &[Date],
        n: usize,
    ) -> Result<Vec<ProductSales>, ShopError> {
        let (Some(&from), Some(&to)) = (window.first(), window.last()) else {
            return Ok(Vec::new());
        };
        let mut tx = self.ports.store.read().await?;
        let limit = u32::try_from(n).unwrap_or(u32::MAX);
        Ok(tx.sales().top(from, to, limit).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_name_the_offending_fields() {
        let Err(ShopError::Validation(errors)) = check_bounds(0, 51) else {
            panic!("expected a validation error");
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["days", "limit"]);
        assert!(check_bounds(30, 50).is_ok() && check_bounds(1, 1).is_ok());
        assert!(check_bounds(31, 5).is_err());
    }
}
