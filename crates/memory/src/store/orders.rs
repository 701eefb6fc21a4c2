//! Orders and their status machine.
//!
//! Invariants: `by_user` lists every order of a user; `unpaid` holds exactly the CREATED orders,
//! keyed by (expires_at, id), so the expiry sweeper reads the due ones without scanning paid
//! history. A status changes only through [`OrderRepository::transition`], a compare-and-set
//! that also refuses moves the state machine does not have (final states are final).

use super::{MemoryTx, Sequences, before, newest_first};
use async_trait::async_trait;
use domain::order::{NewOrder, Order, OrderStatus};
use domain::page::{CursorPage, Slice};
use domain::ports::{OrderRepository, RepoError};
use domain::{OrderId, UserId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use time::OffsetDateTime;

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Clone, PartialEq))]
pub(super) struct OrdersTable {
    rows: BTreeMap<OrderId, Order>,
    by_user: HashMap<UserId, BTreeSet<OrderId>>,
    unpaid: BTreeSet<(OffsetDateTime, OrderId)>,
}

impl OrdersTable {
    fn remove(&mut self, id: OrderId) {
        if let Some(order) = self.rows.remove(&id) {
            self.unpaid.remove(&(order.expires_at, id));
            if let Some(ids) = self.by_user.get_mut(&order.user_id) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_user.remove(&order.user_id);
                }
            }
        }
    }

    /// Puts back the version a rolled-back transition replaced.
    fn restore(&mut self, previous: Order) {
        if previous.status == OrderStatus::Created {
            self.unpaid.insert((previous.expires_at, previous.id));
        }
        self.rows.insert(previous.id, previous);
    }
}

/// The moves of the state machine (domain::order).
fn is_legal(from: OrderStatus, to: OrderStatus) -> bool {
    matches!(
        (from, to),
        (OrderStatus::Created, OrderStatus::Paid)
            | (OrderStatus::Created, OrderStatus::Canceled)
            | (OrderStatus::Paid, OrderStatus::Refunded)
    )
}

#[async_trait]
impl OrderRepository for MemoryTx {
    async fn insert(&mut self, order: NewOrder) -> Result<Order, RepoError> {
        let state = self.state_mut()?;
        let id = OrderId(Sequences::next(&mut state.seq.orders));
        let row = Order {
            id,
            user_id: order.user_id,
            status: OrderStatus::Created,
            items: order.items,
            subtotal: order.subtotal,
            discount: order.discount,
            total_amount: order.total_amount,
            coupon_issue_id: order.coupon_issue_id,
            created_at: order.created_at,
            expires_at: order.expires_at,
            paid_at: None,
            canceled_at: None,
        };
        let table = &mut state.orders;
        table.rows.insert(id, row.clone());
        table.by_user.entry(row.user_id).or_default().insert(id);
        table.unpaid.insert((row.expires_at, id));
        self.on_rollback(move |s| s.orders.remove(id));
        Ok(row)
    }

    async fn get(&mut self, id: OrderId) -> Result<Option<Order>, RepoError> {
        Ok(self.state().orders.rows.get(&id).cloned())
    }

    async fn list_for_user(
        &mut self,
        user: UserId,
        status: Option<OrderStatus>,
        page: CursorPage,
    ) -> Result<Slice<Order>, RepoError> {
        let table = &self.state().orders;
        let Some(ids) = table.by_user.get(&user) else {
            return Ok(Slice {
                items: Vec::new(),
                next: None,
            });
        };
        let window = ids
            .range(before(page.before))
            .filter_map(|id| table.rows.get(id))
            .filter(|order| status.is_none_or(|s| order.status == s))
            .cloned();
        Ok(newest_first(window, page.limit, |order| order.id.get()))
    }

    async fn transition(
        &mut self,
        id: OrderId,
        from: OrderStatus,
        to: OrderStatus,
        at: OffsetDateTime,
    ) -> Result<Option<Order>, RepoError> {
        if !is_legal(from, to) {
            return Err(RepoError::Internal(format!(
                "order {id}: {from:?} -> {to:?} is not a move of the state machine"
            )));
        }
        let state = self.state_mut()?;
        let Some(order) = state.orders.rows.get_mut(&id) else {
            return Ok(None);
        };
        if order.status != from {
            return Ok(None);
        }
        let previous = order.clone();
        order.status = to;
        match to {
            OrderStatus::Paid => order.paid_at = Some(at),
            OrderStatus::Canceled | OrderStatus::Refunded => order.canceled_at = Some(at),
            OrderStatus::Created => {}
        }
        let updated = order.clone();
        if from == OrderStatus::Created {
            state.orders.unpaid.remove(&(previous.expires_at, id));
        }
        self.on_rollback(move |s| s.orders.restore(previous));
        Ok(Some(updated))
    }

    async fn claim_expired(
        &mut self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Order>, RepoError> {
        // The whole store is locked by this transaction: every due row is "claimed" by it.
        let table = &self.state().orders;
        Ok(table
            .unpaid
            .iter()
            .take_while(|(expires_at, _)| *expires_at <= now)
            .take(limit as usize)
            .filter_map(|(_, id)| table.rows.get(id).cloned())
            .collect())
    }
}
