//! Top sellers of the last days: the ranking store first, the roll-up as fallback and truth.

use crate::{Shop, ShopError};
use domain::product::Product;
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

/// Answers reused for `ShopConfig::popular_cache_ttl`.
#[derive(Default)]
pub struct PopularCache {
    entries: std::sync::Mutex<std::collections::HashMap<(u32, u32), (std::time::Instant, Popular)>>,
}

impl Shop {
    /// `days` 1..=30, `limit` 1..=50 (validated by the caller or here: `Validation`).
    pub async fn popular_products(&self, days: u32, limit: u32) -> Result<Popular, ShopError> {
        let _ = &self.popular_cache.entries;
        todo!("{days} {limit}")
    }
}
