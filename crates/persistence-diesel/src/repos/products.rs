use super::{corrupt, overfetch};
use crate::PgTransaction;
use crate::schema::{product_stock_ledger as ledger, products};
use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::page::{CursorPage, OffsetPage, Paged, Slice};
use domain::ports::{ProductRepository, RepoError, StockChangeError};
use domain::product::{
    MAX_STOCK, NewProduct, Product, ProductPatch, ProductStatus, StockChange, StockLedgerEntry,
    StockReason,
};
use domain::{OrderId, ProductId, StockLedgerId, UserId};
use time::OffsetDateTime;

#[derive(Queryable, Selectable)]
#[diesel(table_name = products, check_for_backend(diesel::pg::Pg))]
pub(crate) struct ProductRow {
    id: i64,
    seller_id: i64,
    name: String,
    price: i64,
    stock: i64,
    status: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl ProductRow {
    pub(crate) fn into_domain(self) -> Result<Product, RepoError> {
        Ok(Product {
            id: ProductId(self.id),
            seller_id: UserId(self.seller_id),
            status: ProductStatus::parse(&self.status)
                .ok_or_else(|| corrupt("product status", &self.status))?,
            name: self.name,
            price: self.price,
            stock: self.stock,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = ledger, check_for_backend(diesel::pg::Pg))]
struct LedgerRow {
    id: i64,
    product_id: i64,
    delta: i64,
    reason: String,
    order_id: Option<i64>,
    note: Option<String>,
    created_at: OffsetDateTime,
}

impl LedgerRow {
    fn into_domain(self) -> Result<StockLedgerEntry, RepoError> {
        Ok(StockLedgerEntry {
            id: StockLedgerId(self.id),
            product_id: ProductId(self.product_id),
            delta: self.delta,
            reason: StockReason::parse(&self.reason)
                .ok_or_else(|| corrupt("stock reason", &self.reason))?,
            order_id: self.order_id.map(OrderId),
            note: self.note,
            created_at: self.created_at,
        })
    }
}

/// A partial update: `None` fields are left out of the `SET` list.
#[derive(AsChangeset)]
#[diesel(table_name = products)]
struct ProductChanges<'a> {
    name: Option<&'a str>,
    price: Option<i64>,
    status: Option<&'static str>,
    updated_at: OffsetDateTime,
}

fn rows_into_domain(rows: Vec<ProductRow>) -> Result<Vec<Product>, RepoError> {
    rows.into_iter().map(ProductRow::into_domain).collect()
}

#[async_trait]
impl ProductRepository for PgTransaction {
    async fn insert(&mut self, product: NewProduct) -> Result<Product, RepoError> {
        let conn = self.conn()?;
        let inserted = diesel::insert_into(products::table)
            .values((
                products::seller_id.eq(product.seller_id.0),
                products::name.eq(&product.name),
                products::price.eq(product.price),
                products::stock.eq(product.stock),
                products::status.eq(product.status.as_str()),
                products::created_at.eq(product.created_at),
                products::updated_at.eq(product.created_at),
            ))
            .returning(ProductRow::as_returning())
            .get_result(conn)
            .await;
        let row = self.check(inserted)?;
        self.write_ledger(
            row.id,
            product.stock,
            StockReason::Initial,
            None,
            None,
            product.created_at,
        )
        .await?;
        row.into_domain()
    }

    async fn get(&mut self, id: ProductId) -> Result<Option<Product>, RepoError> {
        let conn = self.conn()?;
        let found = products::table
            .find(id.0)
            .select(ProductRow::as_select())
            .first(conn)
            .await
            .optional();
        self.check(found)?.map(ProductRow::into_domain).transpose()
    }

    async fn get_many(&mut self, ids: &[ProductId]) -> Result<Vec<Product>, RepoError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let raw: Vec<i64> = ids.iter().map(|id| id.0).collect();
        let conn = self.conn()?;
        let rows = products::table
            .filter(products::id.eq_any(raw))
            .select(ProductRow::as_select())
            .order(products::id)
            .load(conn)
            .await;
        rows_into_domain(self.check(rows)?)
    }

    async fn patch(
        &mut self,
        id: ProductId,
        patch: &ProductPatch,
        at: OffsetDateTime,
    ) -> Result<Option<Product>, RepoError> {
        let changes = ProductChanges {
            name: patch.name.as_deref(),
            price: patch.price,
            status: patch.status.map(ProductStatus::as_str),
            updated_at: at,
        };
        let conn = self.conn()?;
        let updated = diesel::update(products::table.find(id.0))
            .set(changes)
            .returning(ProductRow::as_returning())
            .get_result(conn)
            .await
            .optional();
        self.check(updated)?
            .map(ProductRow::into_domain)
            .transpose()
    }

    async fn change_stock(&mut self, change: StockChange) -> Result<Product, StockChangeError> {
        // The no-oversell guarantee: one conditional statement, re-checked by PostgreSQL on
        // the newest row version after waiting for a concurrent writer.
        let mut attempts = 0;
        let row = loop {
            let after = products::stock + change.delta;
            let conn = self.conn()?;
            let updated = diesel::update(products::table)
                .filter(products::id.eq(change.product_id.0))
                .filter(after.between(0_i64, MAX_STOCK))
                .set((
                    products::stock.eq(after),
                    products::updated_at.eq(change.at),
                ))
                .returning(ProductRow::as_returning())
                .get_result(conn)
                .await
                .optional();
            if let Some(row) = self.check(updated)? {
                break row;
            }
            // Refused: report the stock that refuses it. A concurrent commit (a cancel giving
            // stock back) may have moved it since the update looked; if it fits now, retry.
            let conn = self.conn()?;
            let found = products::table
                .find(change.product_id.0)
                .select(products::stock)
                .first::<i64>(conn)
                .await
                .optional();
            let Some(available) = self.check(found)? else {
                return Err(StockChangeError::NotFound);
            };
            let fits = available
                .checked_add(change.delta)
                .is_some_and(|after| (0..=MAX_STOCK).contains(&after));
            attempts += 1;
            if !fits || attempts == 3 {
                return Err(StockChangeError::Insufficient { available });
            }
        };
        self.write_ledger(
            row.id,
            change.delta,
            change.reason,
            change.order_id,
            change.note.as_deref(),
            change.at,
        )
        .await?;
        Ok(row.into_domain()?)
    }

    async fn list(
        &mut self,
        status: Option<ProductStatus>,
        page: OffsetPage,
    ) -> Result<Paged<Product>, RepoError> {
        let mut rows = products::table
            .select(ProductRow::as_select())
            .order(products::id)
            .limit(i64::from(page.size))
            .offset(i64::try_from(page.offset()).unwrap_or(i64::MAX))
            .into_boxed();
        let mut count = products::table.count().into_boxed();
        if let Some(status) = status {
            rows = rows.filter(products::status.eq(status.as_str()));
            count = count.filter(products::status.eq(status.as_str()));
        }
        let conn = self.conn()?;
        let total = count.get_result::<i64>(conn).await;
        let total = self.check(total)?;
        let conn = self.conn()?;
        let rows = rows.load(conn).await;
        Ok(Paged {
            items: rows_into_domain(self.check(rows)?)?,
            total_items: u64::try_from(total).unwrap_or(0),
        })
    }

    async fn ledger(
        &mut self,
        id: ProductId,
        page: CursorPage,
    ) -> Result<Slice<StockLedgerEntry>, RepoError> {
        let mut query = ledger::table
            .filter(ledger::product_id.eq(id.0))
            .select(LedgerRow::as_select())
            .order(ledger::id.desc())
            .limit(overfetch(page.limit))
            .into_boxed();
        if let Some(before) = page.before {
            query = query.filter(ledger::id.lt(before));
        }
        let conn = self.conn()?;
        let rows = query.load(conn).await;
        let entries = self
            .check(rows)?
            .into_iter()
            .map(LedgerRow::into_domain)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Slice::from_overfetch(entries, page.limit, |e| e.id.0))
    }
}

impl PgTransaction {
    async fn write_ledger(
        &mut self,
        product: i64,
        delta: i64,
        reason: StockReason,
        order: Option<OrderId>,
        note: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<(), RepoError> {
        let conn = self.conn()?;
        let written = diesel::insert_into(ledger::table)
            .values((
                ledger::product_id.eq(product),
                ledger::delta.eq(delta),
                ledger::reason.eq(reason.as_str()),
                ledger::order_id.eq(order.map(|o| o.0)),
                ledger::note.eq(note),
                ledger::created_at.eq(at),
            ))
            .execute(conn)
            .await;
        self.check(written).map(drop)
    }
}
