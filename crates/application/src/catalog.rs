//! Products and stock.

use crate::cache::TtlCache;
use crate::idempotency::{Keyed, record_answer};
use crate::support::{AttemptError, check_cursor, check_offset, retry_on_conflict};
use crate::{Actor, Shop, ShopError};
use domain::ProductId;
use domain::page::{CursorPage, OffsetPage, Paged, Slice};
use domain::ports::{StockChangeError, Transaction};
use domain::product::{
    MAX_STOCK, NewProduct, Product, ProductPatch, ProductStatus, StockChange, StockLedgerEntry,
    StockReason, validate_note,
};

/// A product-creation request as the client sent it.
#[derive(Debug, Clone)]
pub struct ProductDraft {
    pub name: String,
    pub price: i64,
    pub stock: i64,
    pub status: Option<ProductStatus>,
}

/// A partial update as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct ProductUpdate {
    pub name: Option<String>,
    pub price: Option<i64>,
    pub status: Option<ProductStatus>,
}

fn is_seller(actor: Option<Actor>) -> bool {
    actor.is_some_and(|a| a.role.can_sell())
}

/// Products and coupons are published by sellers and admins only.
fn require_seller(actor: Actor, what: &str) -> Result<(), ShopError> {
    if actor.role.can_sell() {
        Ok(())
    } else {
        Err(ShopError::Forbidden(format!(
            "only sellers and admins may {what}"
        )))
    }
}

/// Loads a product the actor manages: `NotFound` when missing, `Forbidden` when it belongs to
/// another seller (the catalog is public, so its existence is no secret).
async fn managed_product(
    tx: &mut dyn Transaction,
    actor: Actor,
    id: ProductId,
) -> Result<Product, AttemptError> {
    let product = tx
        .products()
        .get(id)
        .await?
        .ok_or_else(|| ShopError::not_found("product", id))?;
    if !product.is_managed_by(actor.user_id, actor.is_admin()) {
        return Err(ShopError::Forbidden(format!("product {id} belongs to another seller")).into());
    }
    Ok(product)
}

/// The client-facing refusal of a stock movement, worded like API.md's example.
pub(crate) fn stock_error(id: ProductId, requested: i64, e: StockChangeError) -> AttemptError {
    match e {
        StockChangeError::Insufficient { available } => ShopError::OutOfStock(format!(
            "product {id} has {available} left, {requested} requested"
        ))
        .into(),
        StockChangeError::NotFound => ShopError::not_found("product", id).into(),
        StockChangeError::Repo(e) => e.into(),
    }
}

impl Shop {
    /// Buyers (and anonymous callers) see only ON_SALE products and may not filter; sellers and
    /// admins may pass a status (none = every status).
    ///
    /// A buyer's `status` is ignored rather than refused: the answer is the same public list
    /// whatever they ask for, which leaks nothing and breaks no client.
    pub async fn list_products(
        &self,
        actor: Option<Actor>,
        status: Option<ProductStatus>,
        page: OffsetPage,
    ) -> Result<Paged<Product>, ShopError> {
        let page = check_offset(page)?;
        let status = if is_seller(actor) {
            status
        } else {
            Some(ProductStatus::OnSale)
        };
        self.catalog_read(
            &self.caches.product_lists,
            (status, page.page, page.size),
            || async {
                let mut tx = self.ports.store.read().await?;
                Ok(tx.products().list(status, page).await?)
            },
        )
        .await
    }

    /// A catalog answer from `cache` if it was read at the current catalog version, else
    /// `load`ed and cached stamped with the version read *before* loading: a change that
    /// finishes meanwhile bumps the version, so the answer is never served after it.
    async fn catalog_read<K, V, F, Fut>(
        &self,
        cache: &TtlCache<K, (u64, V)>,
        key: K,
        load: F,
    ) -> Result<V, ShopError>
    where
        K: Eq + std::hash::Hash,
        V: Clone,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<V, ShopError>>,
    {
        let version = self.caches.catalog_version();
        if let Some((_, value)) = cache.get_if(&key, |(v, _)| *v == version) {
            return Ok(value);
        }
        let value = load().await?;
        cache.put(key, (version, value.clone()));
        Ok(value)
    }

    /// OFF products are `NotFound` for everyone but their seller and admins.
    pub async fn get_product(
        &self,
        actor: Option<Actor>,
        id: ProductId,
    ) -> Result<Product, ShopError> {
        let product = self
            .catalog_read(&self.caches.products, id, || async {
                let mut tx = self.ports.store.read().await?;
                tx.products()
                    .get(id)
                    .await?
                    .ok_or_else(|| ShopError::not_found("product", id))
            })
            .await?;
        let manages = actor.is_some_and(|a| product.is_managed_by(a.user_id, a.is_admin()));
        if product.status == ProductStatus::Off && !manages {
            return Err(ShopError::not_found("product", id));
        }
        Ok(product)
    }

    /// SELLER or ADMIN. Errors: `Forbidden`, `Validation`.
    pub async fn create_product(
        &self,
        actor: Actor,
        draft: ProductDraft,
        keyed: Option<&Keyed<Product>>,
    ) -> Result<Product, ShopError> {
        require_seller(actor, "create products")?;
        let now = self.now();
        let new = NewProduct::new(
            actor.user_id,
            &draft.name,
            draft.price,
            draft.stock,
            draft.status,
            now,
        )
        .map_err(ShopError::Validation)?;
        // A new product changes list pages (and their totals).
        let _changes_catalog = self.caches.catalog_write();
        let product = retry_on_conflict("create_product", || async {
            let mut tx = self.ports.store.begin().await?;
            let product = tx.products().insert(new.clone()).await?;
            record_answer(tx.as_mut(), keyed, &product, now).await?;
            tx.commit().await?;
            Ok(product)
        })
        .await?;
        tracing::info!(product = %product.id, seller = %actor.user_id, "product created");
        Ok(product)
    }

    /// The owning seller or an admin. A buyer gets `Forbidden`; another seller `Forbidden`.
    pub async fn update_product(
        &self,
        actor: Actor,
        id: ProductId,
        update: ProductUpdate,
    ) -> Result<Product, ShopError> {
        require_seller(actor, "change products")?;
        let _changes_catalog = self.caches.catalog_write();
        let patch = ProductPatch::new(update.name.as_deref(), update.price, update.status)
            .map_err(ShopError::Validation)?;
        let now = self.now();
        retry_on_conflict("update_product", || async {
            let mut tx = self.ports.store.begin().await?;
            managed_product(tx.as_mut(), actor, id).await?;
            let product = tx
                .products()
                .patch(id, &patch, now)
                .await?
                .ok_or_else(|| ShopError::not_found("product", id))?;
            tx.commit().await?;
            Ok(product)
        })
        .await
    }

    /// ADJUST ledger row; stock never below 0 (`OutOfStock`).
    pub async fn adjust_stock(
        &self,
        actor: Actor,
        id: ProductId,
        delta: i64,
        note: Option<String>,
        keyed: Option<&Keyed<Product>>,
    ) -> Result<Product, ShopError> {
        require_seller(actor, "adjust stock")?;
        let _changes_catalog = self.caches.catalog_write();
        if delta == 0 || delta.unsigned_abs() > MAX_STOCK.unsigned_abs() {
            return Err(ShopError::validation(
                "delta",
                &format!("must be non-zero and between -{MAX_STOCK} and {MAX_STOCK}"),
            ));
        }
        let note = validate_note(note.as_deref()).map_err(|e| ShopError::Validation(vec![e]))?;
        let now = self.now();
        let product = retry_on_conflict("adjust_stock", || async {
            let mut tx = self.ports.store.begin().await?;
            managed_product(tx.as_mut(), actor, id).await?;
            let change = StockChange {
                product_id: id,
                delta,
                reason: StockReason::Adjust,
                order_id: None,
                note: note.clone(),
                at: now,
            };
            let product = tx.products().change_stock(change).await.map_err(|e| {
                match e {
                    // Raising stock can only fail at the upper bound: the request is invalid,
                    // not a shortage.
                    StockChangeError::Insufficient { .. } if delta > 0 => {
                        ShopError::validation("delta", &format!("stock would exceed {MAX_STOCK}"))
                            .into()
                    }
                    other => stock_error(id, -delta, other),
                }
            })?;
            record_answer(tx.as_mut(), keyed, &product, now).await?;
            tx.commit().await?;
            Ok(product)
        })
        .await?;
        tracing::info!(product = %id, delta, stock = product.stock, "stock adjusted");
        Ok(product)
    }

    /// The owning seller or an admin.
    pub async fn stock_ledger(
        &self,
        actor: Actor,
        id: ProductId,
        page: CursorPage,
    ) -> Result<Slice<StockLedgerEntry>, ShopError> {
        require_seller(actor, "read stock ledgers")?;
        let page = check_cursor(page)?;
        let mut tx = self.ports.store.read().await?;
        managed_product(tx.as_mut(), actor, id).await?;
        Ok(tx.products().ledger(id, page).await?)
    }
}
