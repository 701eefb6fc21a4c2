use super::corrupt;
use crate::PgTransaction;
use crate::schema::payments;
use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::payment::{NewPayment, Payment, PaymentStatus, WALLET_METHOD};
use domain::ports::{PaymentRepository, RepoError};
use domain::{OrderId, PaymentId, UserId};
use time::OffsetDateTime;

#[derive(Queryable, Selectable)]
#[diesel(table_name = payments, check_for_backend(diesel::pg::Pg))]
struct PaymentRow {
    id: i64,
    order_id: i64,
    user_id: i64,
    amount: i64,
    status: String,
    failure_code: Option<String>,
    created_at: OffsetDateTime,
}

impl PaymentRow {
    fn into_domain(self) -> Result<Payment, RepoError> {
        Ok(Payment {
            id: PaymentId(self.id),
            order_id: OrderId(self.order_id),
            user_id: UserId(self.user_id),
            amount: self.amount,
            status: PaymentStatus::parse(&self.status)
                .ok_or_else(|| corrupt("payment status", &self.status))?,
            failure_code: self.failure_code,
            created_at: self.created_at,
        })
    }
}

#[async_trait]
impl PaymentRepository for PgTransaction {
    async fn insert(&mut self, payment: NewPayment) -> Result<Payment, RepoError> {
        // A second succeeded payment for the order violates the partial unique index
        // `payments_one_success_per_order`: RepoError::Conflict.
        let conn = self.conn()?;
        let inserted = diesel::insert_into(payments::table)
            .values((
                payments::order_id.eq(payment.order_id.0),
                payments::user_id.eq(payment.user_id.0),
                payments::method.eq(WALLET_METHOD),
                payments::amount.eq(payment.amount),
                payments::status.eq(payment.status.as_str()),
                payments::failure_code.eq(&payment.failure_code),
                payments::created_at.eq(payment.created_at),
            ))
            .returning(PaymentRow::as_returning())
            .get_result(conn)
            .await;
        self.check(inserted)?.into_domain()
    }

    async fn get(&mut self, id: PaymentId) -> Result<Option<Payment>, RepoError> {
        let conn = self.conn()?;
        let found = payments::table
            .find(id.0)
            .select(PaymentRow::as_select())
            .first(conn)
            .await
            .optional();
        self.check(found)?.map(PaymentRow::into_domain).transpose()
    }

    async fn succeeded_for_order(&mut self, order: OrderId) -> Result<Option<Payment>, RepoError> {
        let conn = self.conn()?;
        let found = payments::table
            .filter(payments::order_id.eq(order.0))
            .filter(payments::status.eq(PaymentStatus::Succeeded.as_str()))
            .select(PaymentRow::as_select())
            .first(conn)
            .await
            .optional();
        self.check(found)?.map(PaymentRow::into_domain).transpose()
    }

    async fn mark_refunded(&mut self, id: PaymentId) -> Result<(), RepoError> {
        let conn = self.conn()?;
        let updated = diesel::update(payments::table)
            .filter(payments::id.eq(id.0))
            .filter(payments::status.eq(PaymentStatus::Succeeded.as_str()))
            .set(payments::status.eq(PaymentStatus::Refunded.as_str()))
            .execute(conn)
            .await;
        match self.check(updated)? {
            1 => Ok(()),
            // The refund path reads the succeeded payment in the same transaction, after
            // winning the PAID → REFUNDED compare-and-set: anything else is a broken invariant.
            _ => Err(RepoError::Internal(format!(
                "payment {id} is not SUCCEEDED and cannot be refunded"
            ))),
        }
    }
}
