use crate::PgTransaction;
use crate::schema::product_sales_daily as daily;
use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date as SqlDate};
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;
use domain::ProductId;
use domain::ports::{RepoError, SalesRepository};
use domain::sales::ProductSales;
use std::collections::BTreeMap;
use time::Date;

#[derive(QueryableByName)]
struct SalesRow {
    #[diesel(sql_type = BigInt)]
    product_id: i64,
    #[diesel(sql_type = BigInt)]
    quantity: i64,
}

impl From<SalesRow> for ProductSales {
    fn from(row: SalesRow) -> Self {
        ProductSales {
            product_id: ProductId(row.product_id),
            quantity: row.quantity,
        }
    }
}

#[async_trait]
impl SalesRepository for PgTransaction {
    async fn add(&mut self, day: Date, deltas: &[ProductSales]) -> Result<(), RepoError> {
        // Merge repeated products (one upsert may touch a row only once) and go in ascending
        // product id order, so that concurrent payments lock the roll-up rows in the same
        // order and never deadlock.
        let mut merged: BTreeMap<i64, i64> = BTreeMap::new();
        for delta in deltas {
            *merged.entry(delta.product_id.0).or_default() += delta.quantity;
        }
        merged.retain(|_, quantity| *quantity != 0);
        if merged.is_empty() {
            return Ok(());
        }
        let values: Vec<_> = merged
            .into_iter()
            .map(|(product, quantity)| {
                (
                    daily::product_id.eq(product),
                    daily::day.eq(day),
                    daily::quantity.eq(quantity),
                )
            })
            .collect();
        let conn = self.conn()?;
        let written = diesel::insert_into(daily::table)
            .values(&values)
            .on_conflict((daily::product_id, daily::day))
            .do_update()
            .set(daily::quantity.eq(daily::quantity + excluded(daily::quantity)))
            .execute(conn)
            .await;
        self.check(written).map(drop)
    }

    async fn top(
        &mut self,
        from: Date,
        to: Date,
        limit: u32,
    ) -> Result<Vec<ProductSales>, RepoError> {
        // SUM(bigint) is numeric in PostgreSQL; the cast keeps it an i64 (the sums are far
        // below 2^63).
        let conn = self.conn()?;
        let rows = diesel::sql_query(
            "SELECT s.product_id, SUM(s.quantity)::bigint AS quantity \
             FROM product_sales_daily s \
             JOIN products p ON p.id = s.product_id \
             WHERE s.day BETWEEN $1 AND $2 AND p.status <> 'OFF' \
             GROUP BY s.product_id \
             HAVING SUM(s.quantity) > 0 \
             ORDER BY quantity DESC, s.product_id ASC \
             LIMIT $3",
        )
        .bind::<SqlDate, _>(from)
        .bind::<SqlDate, _>(to)
        .bind::<BigInt, _>(i64::from(limit))
        .load::<SalesRow>(conn)
        .await;
        Ok(self.check(rows)?.into_iter().map(Into::into).collect())
    }

    async fn day_totals(&mut self, day: Date) -> Result<Vec<ProductSales>, RepoError> {
        let conn = self.conn()?;
        let rows = daily::table
            .filter(daily::day.eq(day))
            .order(daily::product_id)
            .select((daily::product_id, daily::quantity))
            .load::<(i64, i64)>(conn)
            .await;
        Ok(self
            .check(rows)?
            .into_iter()
            .map(|(product, quantity)| ProductSales {
                product_id: ProductId(product),
                quantity,
            })
            .collect())
    }
}
