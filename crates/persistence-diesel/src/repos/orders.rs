use super::{corrupt, overfetch};
use crate::PgTransaction;
use crate::schema::{order_items as items, orders};
use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::order::{NewOrder, Order, OrderItem, OrderStatus};
use domain::page::{CursorPage, Slice};
use domain::ports::{OrderRepository, RepoError};
use domain::{CouponIssueId, OrderId, ProductId, UserId};
use time::OffsetDateTime;

#[derive(Queryable, Selectable)]
#[diesel(table_name = orders, check_for_backend(diesel::pg::Pg))]
struct OrderRow {
    id: i64,
    user_id: i64,
    status: String,
    subtotal: i64,
    discount: i64,
    total_amount: i64,
    coupon_issue_id: Option<i64>,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    paid_at: Option<OffsetDateTime>,
    canceled_at: Option<OffsetDateTime>,
}

impl OrderRow {
    fn into_domain(self, items: Vec<OrderItem>) -> Result<Order, RepoError> {
        Ok(Order {
            id: OrderId(self.id),
            user_id: UserId(self.user_id),
            status: OrderStatus::parse(&self.status)
                .ok_or_else(|| corrupt("order status", &self.status))?,
            items,
            subtotal: self.subtotal,
            discount: self.discount,
            total_amount: self.total_amount,
            coupon_issue_id: self.coupon_issue_id.map(CouponIssueId),
            created_at: self.created_at,
            expires_at: self.expires_at,
            paid_at: self.paid_at,
            canceled_at: self.canceled_at,
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = items, check_for_backend(diesel::pg::Pg))]
struct ItemRow {
    order_id: i64,
    product_id: i64,
    seller_id: i64,
    name: String,
    unit_price: i64,
    quantity: i64,
    subtotal: i64,
}

impl From<ItemRow> for OrderItem {
    fn from(row: ItemRow) -> Self {
        OrderItem {
            product_id: ProductId(row.product_id),
            seller_id: UserId(row.seller_id),
            name: row.name,
            unit_price: row.unit_price,
            quantity: row.quantity,
            subtotal: row.subtotal,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = items)]
struct ItemInsert<'a> {
    order_id: i64,
    product_id: i64,
    seller_id: i64,
    name: &'a str,
    unit_price: i64,
    quantity: i64,
    subtotal: i64,
}

#[async_trait]
impl OrderRepository for PgTransaction {
    async fn insert(&mut self, order: NewOrder) -> Result<Order, RepoError> {
        let conn = self.conn()?;
        let inserted = diesel::insert_into(orders::table)
            .values((
                orders::user_id.eq(order.user_id.0),
                orders::status.eq(OrderStatus::Created.as_str()),
                orders::subtotal.eq(order.subtotal),
                orders::discount.eq(order.discount),
                orders::total_amount.eq(order.total_amount),
                orders::coupon_issue_id.eq(order.coupon_issue_id.map(|c| c.0)),
                orders::created_at.eq(order.created_at),
                orders::expires_at.eq(order.expires_at),
            ))
            .returning(OrderRow::as_returning())
            .get_result(conn)
            .await;
        let row = self.check(inserted)?;
        if !order.items.is_empty() {
            let values: Vec<ItemInsert<'_>> = order
                .items
                .iter()
                .map(|item| ItemInsert {
                    order_id: row.id,
                    product_id: item.product_id.0,
                    seller_id: item.seller_id.0,
                    name: &item.name,
                    unit_price: item.unit_price,
                    quantity: item.quantity,
                    subtotal: item.subtotal,
                })
                .collect();
            let conn = self.conn()?;
            let written = diesel::insert_into(items::table)
                .values(&values)
                .execute(conn)
                .await;
            self.check(written)?;
        }
        // The items are stored exactly as given, in this order (ids ascend with it).
        row.into_domain(order.items)
    }

    async fn get(&mut self, id: OrderId) -> Result<Option<Order>, RepoError> {
        let conn = self.conn()?;
        let found = orders::table
            .find(id.0)
            .select(OrderRow::as_select())
            .first(conn)
            .await
            .optional();
        match self.check(found)? {
            None => Ok(None),
            Some(row) => Ok(self.with_items(vec![row]).await?.pop()),
        }
    }

    async fn list_for_user(
        &mut self,
        user: UserId,
        status: Option<OrderStatus>,
        page: CursorPage,
    ) -> Result<Slice<Order>, RepoError> {
        let mut query = orders::table
            .filter(orders::user_id.eq(user.0))
            .select(OrderRow::as_select())
            .order(orders::id.desc())
            .limit(overfetch(page.limit))
            .into_boxed();
        if let Some(status) = status {
            query = query.filter(orders::status.eq(status.as_str()));
        }
        if let Some(before) = page.before {
            query = query.filter(orders::id.lt(before));
        }
        let conn = self.conn()?;
        let rows = query.load(conn).await;
        let rows = self.check(rows)?;
        let orders = self.with_items(rows).await?;
        Ok(Slice::from_overfetch(orders, page.limit, |o| o.id.0))
    }

    async fn transition(
        &mut self,
        id: OrderId,
        from: OrderStatus,
        to: OrderStatus,
        at: OffsetDateTime,
    ) -> Result<Option<Order>, RepoError> {
        // Compare-and-set: the status changes only if it is still `from` on the newest row
        // version, so of several racing transitions exactly one matches a row.
        let target = orders::table
            .filter(orders::id.eq(id.0))
            .filter(orders::status.eq(from.as_str()));
        let status = orders::status.eq(to.as_str());
        let conn = self.conn()?;
        let updated = match to {
            OrderStatus::Paid => {
                diesel::update(target)
                    .set((status, orders::paid_at.eq(Some(at))))
                    .returning(OrderRow::as_returning())
                    .get_result(conn)
                    .await
            }
            OrderStatus::Canceled | OrderStatus::Refunded => {
                diesel::update(target)
                    .set((status, orders::canceled_at.eq(Some(at))))
                    .returning(OrderRow::as_returning())
                    .get_result(conn)
                    .await
            }
            OrderStatus::Created => {
                diesel::update(target)
                    .set(status)
                    .returning(OrderRow::as_returning())
                    .get_result(conn)
                    .await
            }
        }
        .optional();
        match self.check(updated)? {
            None => Ok(None),
            Some(row) => Ok(self.with_items(vec![row]).await?.pop()),
        }
    }

    async fn claim_expired(
        &mut self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Order>, RepoError> {
        // Oldest deadline first; rows locked by another sweeper (or by a payment in flight)
        // are skipped, not waited for.
        let conn = self.conn()?;
        let rows = orders::table
            .filter(orders::status.eq(OrderStatus::Created.as_str()))
            .filter(orders::expires_at.le(now))
            .order((orders::expires_at, orders::id))
            .limit(i64::from(limit))
            .select(OrderRow::as_select())
            .for_update()
            .skip_locked()
            .load(conn)
            .await;
        let rows = self.check(rows)?;
        self.with_items(rows).await
    }
}

impl PgTransaction {
    /// Loads the items of `rows` (one query for those this unit of work has not loaded yet)
    /// and assembles the orders, in the rows' order.
    async fn with_items(&mut self, rows: Vec<OrderRow>) -> Result<Vec<Order>, RepoError> {
        let missing: Vec<i64> = rows
            .iter()
            .map(|r| r.id)
            .filter(|id| !self.order_items.contains_key(id))
            .collect();
        if !missing.is_empty() {
            let conn = self.conn()?;
            let loaded = items::table
                .filter(items::order_id.eq_any(&missing))
                .order((items::order_id, items::id))
                .select(ItemRow::as_select())
                .load(conn)
                .await;
            let loaded = self.check(loaded)?;
            for id in missing {
                self.order_items.entry(id).or_default();
            }
            for item in loaded {
                self.order_items
                    .entry(item.order_id)
                    .or_default()
                    .push(item.into());
            }
        }
        rows.into_iter()
            .map(|row| {
                let items = self.order_items.get(&row.id).cloned().unwrap_or_default();
                row.into_domain(items)
            })
            .collect()
    }
}
