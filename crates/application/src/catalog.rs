//! Products and stock.

use crate::{Actor, Shop, ShopError};
use domain::ProductId;
use domain::page::{CursorPage, OffsetPage, Paged, Slice};
use domain::product::{Product, ProductStatus, StockLedgerEntry};

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

impl Shop {
    /// Buyers (and anonymous callers) see only ON_SALE products and may not filter; sellers and
    /// admins may pass a status (none = every status).
    pub async fn list_products(
        &self,
        actor: Option<Actor>,
        status: Option<ProductStatus>,
        page: OffsetPage,
    ) -> Result<Paged<Product>, ShopError> {
        todo!("{actor:?} {status:?} {page:?}")
    }

    /// OFF products are `NotFound` for everyone but their seller and admins.
    pub async fn get_product(
        &self,
        actor: Option<Actor>,
        id: ProductId,
    ) -> Result<Product, ShopError> {
        todo!("{actor:?} {id}")
    }

    /// SELLER or ADMIN. Errors: `Forbidden`, `Validation`.
    pub async fn create_product(
        &self,
        actor: Actor,
        draft: ProductDraft,
    ) -> Result<Product, ShopError> {
        todo!("{actor:?} {draft:?}")
    }

    /// The owning seller or an admin. A buyer gets `Forbidden`; another seller `Forbidden`.
    pub async fn update_product(
        &self,
        actor: Actor,
        id: ProductId,
        update: ProductUpdate,
    ) -> Result<Product, ShopError> {
        todo!("{actor:?} {id} {update:?}")
    }

    /// ADJUST ledger row; stock never below 0 (`OutOfStock`).
    pub async fn adjust_stock(
        &self,
        actor: Actor,
        id: ProductId,
        delta: i64,
        note: Option<String>,
    ) -> Result<Product, ShopError> {
        todo!("{actor:?} {id} {delta} {note:?}")
    }

    pub async fn stock_ledger(
        &self,
        actor: Actor,
        id: ProductId,
        page: CursorPage,
    ) -> Result<Slice<StockLedgerEntry>, ShopError> {
        todo!("{actor:?} {id} {page:?}")
    }
}
