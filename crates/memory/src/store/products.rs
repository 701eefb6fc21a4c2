//! Catalog products and the stock ledger.
//!
//! Invariants (RULES.md): a product's stock equals the sum of its ledger deltas and stays within
//! `0..=MAX_STOCK`; [`ProductRepository::change_stock`] moves both together or neither, so
//! there is no oversell. `by_status` holds every product id exactly once, under its current
//! status, so that a filtered page and its total count need no scan of other statuses.

use super::{MemoryTx, Sequences, before, newest_first};
use async_trait::async_trait;
use domain::page::{CursorPage, OffsetPage, Paged, Slice};
use domain::ports::{ProductRepository, RepoError, StockChangeError};
use domain::product::{
    MAX_STOCK, NewProduct, Product, ProductPatch, ProductStatus, StockChange, StockLedgerEntry,
    StockReason,
};
use domain::{ProductId, StockLedgerId};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use time::OffsetDateTime;

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Clone, PartialEq))]
pub(super) struct ProductsTable {
    rows: BTreeMap<ProductId, Product>,
    by_status: HashMap<ProductStatus, BTreeSet<ProductId>>,
    /// Each product's ledger rows by id (the last is the newest).
    ledger: HashMap<ProductId, BTreeMap<StockLedgerId, StockLedgerEntry>>,
}

impl ProductsTable {
    /// Stores `product` (new or replacing its previous version), keeping `by_status` in step.
    /// Returns the previous version.
    fn put(&mut self, product: Product) -> Option<Product> {
        let id = product.id;
        let status = product.status;
        let previous = self.rows.insert(id, product);
        if let Some(old) = &previous
            && old.status != status
        {
            self.unindex(old.status, id);
        }
        self.by_status.entry(status).or_default().insert(id);
        previous
    }

    fn unindex(&mut self, status: ProductStatus, id: ProductId) {
        if let Some(ids) = self.by_status.get_mut(&status) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_status.remove(&status);
            }
        }
    }

    fn remove(&mut self, id: ProductId) {
        if let Some(old) = self.rows.remove(&id) {
            self.unindex(old.status, id);
        }
        self.ledger.remove(&id);
    }

    /// Restores the version a rolled-back write replaced.
    fn restore(&mut self, previous: Product) {
        self.put(previous);
    }

    fn add_ledger_row(&mut self, row: StockLedgerEntry) {
        self.ledger
            .entry(row.product_id)
            .or_default()
            .insert(row.id, row);
    }

    fn remove_ledger_row(&mut self, product: ProductId, id: StockLedgerId) {
        if let Some(rows) = self.ledger.get_mut(&product) {
            rows.remove(&id);
            if rows.is_empty() {
                self.ledger.remove(&product);
            }
        }
    }

    /// The status of a product, for the sales ranking (OFF products are left out).
    pub(super) fn status_of(&self, id: ProductId) -> Option<ProductStatus> {
        self.rows.get(&id).map(|p| p.status)
    }
}

#[async_trait]
impl ProductRepository for MemoryTx {
    async fn insert(&mut self, product: NewProduct) -> Result<Product, RepoError> {
        let state = self.state_mut()?;
        let id = ProductId(Sequences::next(&mut state.seq.products));
        let row = Product {
            id,
            seller_id: product.seller_id,
            name: product.name,
            price: product.price,
            stock: product.stock,
            status: product.status,
            created_at: product.created_at,
            updated_at: product.created_at,
        };
        let ledger_id = StockLedgerId(Sequences::next(&mut state.seq.stock_ledger));
        state.products.put(row.clone());
        state.products.add_ledger_row(StockLedgerEntry {
            id: ledger_id,
            product_id: id,
            delta: row.stock,
            reason: StockReason::Initial,
            order_id: None,
            note: None,
            created_at: row.created_at,
        });
        self.on_rollback(move |s| s.products.remove(id));
        Ok(row)
    }

    async fn get(&mut self, id: ProductId) -> Result<Option<Product>, RepoError> {
        Ok(self.state().products.rows.get(&id).cloned())
    }

    async fn get_many(&mut self, ids: &[ProductId]) -> Result<Vec<Product>, RepoError> {
        let rows = &self.state().products.rows;
        let mut seen = HashSet::with_capacity(ids.len());
        Ok(ids
            .iter()
            .filter(|id| seen.insert(**id))
            .filter_map(|id| rows.get(id).cloned())
            .collect())
    }

    async fn patch(
        &mut self,
        id: ProductId,
        patch: &ProductPatch,
        at: OffsetDateTime,
    ) -> Result<Option<Product>, RepoError> {
        let state = self.state_mut()?;
        let Some(current) = state.products.rows.get(&id) else {
            return Ok(None);
        };
        let mut updated = current.clone();
        patch.apply(&mut updated, at);
        let previous = state.products.put(updated.clone());
        if let Some(previous) = previous {
            self.on_rollback(move |s| s.products.restore(previous));
        }
        Ok(Some(updated))
    }

    async fn change_stock(&mut self, change: StockChange) -> Result<Product, StockChangeError> {
        let state = self.state_mut()?;
        let Some(product) = state.products.rows.get_mut(&change.product_id) else {
            return Err(StockChangeError::NotFound);
        };
        let available = product.stock;
        let after = match available.checked_add(change.delta) {
            Some(after) if (0..=MAX_STOCK).contains(&after) => after,
            _ => return Err(StockChangeError::Insufficient { available }),
        };
        // Stock and `updated_at` change, status does not: `by_status` stays valid.
        let (previous_stock, previous_updated_at) = (product.stock, product.updated_at);
        product.stock = after;
        product.updated_at = change.at;
        let updated = product.clone();
        let ledger_id = StockLedgerId(Sequences::next(&mut state.seq.stock_ledger));
        state.products.add_ledger_row(StockLedgerEntry {
            id: ledger_id,
            product_id: change.product_id,
            delta: change.delta,
            reason: change.reason,
            order_id: change.order_id,
            note: change.note,
            created_at: change.at,
        });
        let id = change.product_id;
        self.on_rollback(move |s| {
            if let Some(product) = s.products.rows.get_mut(&id) {
                product.stock = previous_stock;
                product.updated_at = previous_updated_at;
            }
            s.products.remove_ledger_row(id, ledger_id);
        });
        Ok(updated)
    }

    async fn list(
        &mut self,
        status: Option<ProductStatus>,
        page: OffsetPage,
    ) -> Result<Paged<Product>, RepoError> {
        let products = &self.state().products;
        let offset = usize::try_from(page.offset()).unwrap_or(usize::MAX);
        let size = page.size as usize;
        let (items, total_items) = match status {
            None => (
                products
                    .rows
                    .values()
                    .skip(offset)
                    .take(size)
                    .cloned()
                    .collect(),
                products.rows.len(),
            ),
            Some(status) => match products.by_status.get(&status) {
                None => (Vec::new(), 0),
                Some(ids) => (
                    ids.iter()
                        .skip(offset)
                        .take(size)
                        .filter_map(|id| products.rows.get(id).cloned())
                        .collect(),
                    ids.len(),
                ),
            },
        };
        Ok(Paged {
            items,
            total_items: total_items as u64,
        })
    }

    async fn ledger(
        &mut self,
        id: ProductId,
        page: CursorPage,
    ) -> Result<Slice<StockLedgerEntry>, RepoError> {
        let Some(rows) = self.state().products.ledger.get(&id) else {
            return Ok(Slice {
                items: Vec::new(),
                next: None,
            });
        };
        let window = rows.range(before(page.before)).map(|(_, row)| row.clone());
        Ok(newest_first(window, page.limit, |row| row.id.get()))
    }
}
