//! Payments: every attempt is kept; an order has at most one SUCCEEDED payment.
//!
//! Invariant: `succeeded` maps an order to its SUCCEEDED payment and holds nothing else (the
//! in-memory twin of a partial unique index on `order_id WHERE status = 'SUCCEEDED'`).

use super::{MemoryTx, Sequences};
use async_trait::async_trait;
use domain::payment::{NewPayment, Payment, PaymentStatus};
use domain::ports::{PaymentRepository, RepoError};
use domain::{OrderId, PaymentId};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Clone, PartialEq))]
pub(super) struct PaymentsTable {
    rows: BTreeMap<PaymentId, Payment>,
    succeeded: HashMap<OrderId, PaymentId>,
}

#[async_trait]
impl PaymentRepository for MemoryTx {
    async fn insert(&mut self, payment: NewPayment) -> Result<Payment, RepoError> {
        let state = self.state_mut()?;
        let succeeded = payment.status == PaymentStatus::Succeeded;
        if succeeded && state.payments.succeeded.contains_key(&payment.order_id) {
            return Err(RepoError::Conflict(format!(
                "order {} already has a succeeded payment",
                payment.order_id
            )));
        }
        let id = PaymentId(Sequences::next(&mut state.seq.payments));
        let row = Payment {
            id,
            order_id: payment.order_id,
            user_id: payment.user_id,
            amount: payment.amount,
            status: payment.status,
            failure_code: payment.failure_code,
            created_at: payment.created_at,
        };
        state.payments.rows.insert(id, row.clone());
        if succeeded {
            state.payments.succeeded.insert(row.order_id, id);
        }
        let order = row.order_id;
        self.on_rollback(move |s| {
            s.payments.rows.remove(&id);
            if succeeded {
                s.payments.succeeded.remove(&order);
            }
        });
        Ok(row)
    }

    async fn get(&mut self, id: PaymentId) -> Result<Option<Payment>, RepoError> {
        Ok(self.state().payments.rows.get(&id).cloned())
    }

    async fn succeeded_for_order(&mut self, order: OrderId) -> Result<Option<Payment>, RepoError> {
        let table = &self.state().payments;
        Ok(table
            .succeeded
            .get(&order)
            .and_then(|id| table.rows.get(id))
            .cloned())
    }

    async fn mark_refunded(&mut self, id: PaymentId) -> Result<(), RepoError> {
        let state = self.state_mut()?;
        let Some(payment) = state.payments.rows.get_mut(&id) else {
            return Err(RepoError::Internal(format!("no payment {id} to refund")));
        };
        if payment.status != PaymentStatus::Succeeded {
            // The caller won PAID -> REFUNDED on the order, so its payment must be SUCCEEDED.
            return Err(RepoError::Internal(format!(
                "payment {id} is {:?}, only a SUCCEEDED payment can be refunded",
                payment.status
            )));
        }
        payment.status = PaymentStatus::Refunded;
        let order = payment.order_id;
        state.payments.succeeded.remove(&order);
        self.on_rollback(move |s| {
            if let Some(payment) = s.payments.rows.get_mut(&id) {
                payment.status = PaymentStatus::Succeeded;
            }
            s.payments.succeeded.insert(order, id);
        });
        Ok(())
    }
}
