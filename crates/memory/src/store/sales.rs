//! The daily sales roll-up (business day, product, net quantity): the ranking's truth.
//!
//! Invariant: a (day, product) quantity is the sum of every delta committed for it. Rows are
//! kept even when they net to zero, like upserted database rows.

use super::MemoryTx;
use async_trait::async_trait;
use domain::ProductId;
use domain::ports::{RepoError, SalesRepository};
use domain::product::ProductStatus;
use domain::sales::{ProductSales, rank};
use std::collections::{BTreeMap, HashMap};
use time::Date;

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Clone, PartialEq))]
pub(super) struct SalesTable {
    days: BTreeMap<Date, BTreeMap<ProductId, i64>>,
}

impl SalesTable {
    /// Puts back the value a rolled-back delta changed (`None`: the row did not exist).
    fn restore(&mut self, day: Date, product: ProductId, previous: Option<i64>) {
        match previous {
            Some(quantity) => {
                self.days.entry(day).or_default().insert(product, quantity);
            }
            None => {
                if let Some(rows) = self.days.get_mut(&day) {
                    rows.remove(&product);
                    if rows.is_empty() {
                        self.days.remove(&day);
                    }
                }
            }
        }
    }
}

#[async_trait]
impl SalesRepository for MemoryTx {
    async fn add(&mut self, day: Date, deltas: &[ProductSales]) -> Result<(), RepoError> {
        self.state_mut()?;
        for delta in deltas {
            let state = self.state_mut()?;
            let row = state.sales.days.entry(day).or_default();
            let previous = row.get(&delta.product_id).copied();
            let product = delta.product_id;
            row.insert(product, previous.unwrap_or(0) + delta.quantity);
            self.on_rollback(move |s| s.sales.restore(day, product, previous));
        }
        Ok(())
    }

    async fn top(
        &mut self,
        from: Date,
        to: Date,
        limit: u32,
    ) -> Result<Vec<ProductSales>, RepoError> {
        if from > to {
            return Ok(Vec::new());
        }
        let state = self.state();
        let mut totals: HashMap<ProductId, i64> = HashMap::new();
        for rows in state.sales.days.range(from..=to).map(|(_, rows)| rows) {
            for (product, quantity) in rows {
                *totals.entry(*product).or_default() += quantity;
            }
        }
        let visible = totals
            .into_iter()
            .filter(|(product, _)| state.products.status_of(*product) != Some(ProductStatus::Off))
            .map(|(product_id, quantity)| ProductSales {
                product_id,
                quantity,
            })
            .collect();
        let mut ranked = rank(visible);
        ranked.truncate(limit as usize);
        Ok(ranked)
    }

    async fn day_totals(&mut self, day: Date) -> Result<Vec<ProductSales>, RepoError> {
        Ok(self
            .state()
            .sales
            .days
            .get(&day)
            .map(|rows| {
                rows.iter()
                    .map(|(product_id, quantity)| ProductSales {
                        product_id: *product_id,
                        quantity: *quantity,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}
