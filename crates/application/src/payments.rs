//! Paying an order from the wallet.

use crate::events::{ORDER_AGGREGATE, OrderPaid, envelope};
use crate::idempotency::{Keyed, record_answer};
use crate::orders::sold_quantities;
use crate::support::{AttemptError, retry_on_conflict};
use crate::wallet::wallet_error;
use crate::{Actor, Shop, ShopError};
use domain::order::{Order, OrderStatus};
use domain::outbox::EventType;
use domain::payment::{NewPayment, Payment, PaymentStatus};
use domain::ports::{WalletChange, WalletChangeError};
use domain::wallet::WalletTransactionType;
use domain::{OrderId, PaymentId};
use time::OffsetDateTime;

/// The failure code of a payment refused for lack of balance.
pub const INSUFFICIENT_BALANCE: &str = "INSUFFICIENT_BALANCE";

/// How one payment attempt ended, short of an error.
enum PayOutcome {
    Paid(Payment),
    /// The wallet could not cover the order; the attempt's transaction was dropped.
    Insufficient {
        order: Order,
        balance: i64,
    },
}

impl Shop {
    /// One transaction: debit the wallet (PAYMENT row), SUCCEEDED payment, order PAID, daily
    /// sales roll-up, ORDER_PAID outbox event. On insufficient balance nothing of that happens;
    /// a FAILED payment is recorded for audit and the order stays CREATED.
    /// Only the owner pays (an admin sees others' orders but does not spend their money).
    /// Errors: `NotFound`, `OrderNotPayable`, `InsufficientBalance`.
    #[tracing::instrument(skip_all, fields(user = %actor.user_id, order = %order_id))]
    pub async fn pay(
        &self,
        actor: Actor,
        order_id: OrderId,
        keyed: Option<&Keyed<Payment>>,
    ) -> Result<Payment, ShopError> {
        match retry_on_conflict("pay", || self.pay_attempt(actor, order_id, keyed)).await? {
            PayOutcome::Paid(payment) => {
                metrics::counter!("payments_total", "status" => "SUCCEEDED").increment(1);
                tracing::info!(payment = %payment.id, amount = payment.amount, "order paid");
                Ok(payment)
            }
            PayOutcome::Insufficient { order, balance } => {
                self.record_failed_payment(&order).await;
                metrics::counter!("payments_total", "status" => "FAILED").increment(1);
                tracing::info!(
                    balance,
                    due = order.total_amount,
                    "payment refused: balance too low"
                );
                Err(ShopError::InsufficientBalance(format!(
                    "balance {balance} is not enough to pay {}",
                    order.total_amount
                )))
            }
        }
    }

    async fn pay_attempt(
        &self,
        actor: Actor,
        order_id: OrderId,
        keyed: Option<&Keyed<Payment>>,
    ) -> Result<PayOutcome, AttemptError> {
        let now = self.now();
        let mut tx = self.ports.store.begin().await?;
        let order = tx
            .orders()
            .get(order_id)
            .await?
            .filter(|order| order.user_id == actor.user_id)
            .ok_or_else(|| ShopError::not_found("order", order_id))?;
        check_payable(&order, now)?;
        // The compare-and-set goes first: the loser of a race with cancel, expiry or a second
        // payment stops here, before any money moves.
        let paid = tx
            .orders()
            .transition(order.id, OrderStatus::Created, OrderStatus::Paid, now)
            .await?
            .ok_or_else(|| {
                ShopError::OrderNotPayable(format!(
                    "order {order_id} was paid or canceled by a concurrent request"
                ))
            })?;
        // A fully discounted order moves no money, so it writes no wallet row.
        if order.total_amount > 0 {
            let debit = WalletChange {
                user_id: order.user_id,
                kind: WalletTransactionType::Payment,
                amount: -order.total_amount,
                max_balance: None,
                order_id: Some(order.id),
                at: now,
            };
            match tx.wallets().apply(debit).await {
                Ok(_) => {}
                Err(WalletChangeError::Insufficient { balance }) => {
                    // Roll back the status change: the order stays CREATED, payable later.
                    drop(tx);
                    return Ok(PayOutcome::Insufficient { order, balance });
                }
                Err(e) => return Err(wallet_error(order.user_id, e)),
            }
        }
        let payment = tx
            .payments()
            .insert(NewPayment {
                order_id: order.id,
                user_id: order.user_id,
                amount: order.total_amount,
                status: PaymentStatus::Succeeded,
                failure_code: None,
                created_at: now,
            })
            .await?;
        tx.sales()
            .add(
                self.config.calendar.day_of(now),
                &sold_quantities(&order, 1),
            )
            .await?;
        let event = envelope(
            EventType::OrderPaid,
            ORDER_AGGREGATE,
            order.id,
            &OrderPaid::new(&paid, payment.id, now),
            now,
        )?;
        tx.outbox().append(event, now).await?;
        record_answer(tx.as_mut(), keyed, &payment, now).await?;
        tx.commit().await?;
        Ok(PayOutcome::Paid(payment))
    }

    /// The audit row of a refused attempt, in its own small transaction (the attempt's own
    /// transaction was rolled back). Best effort: the client's answer is the refusal either way.
    async fn record_failed_payment(&self, order: &Order) {
        let now = self.now();
        let failed = NewPayment {
            order_id: order.id,
            user_id: order.user_id,
            amount: order.total_amount,
            status: PaymentStatus::Failed,
            failure_code: Some(INSUFFICIENT_BALANCE.to_owned()),
            created_at: now,
        };
        let recorded = retry_on_conflict("record_failed_payment", || async {
            let mut tx = self.ports.store.begin().await?;
            let payment = tx.payments().insert(failed.clone()).await?;
            tx.commit().await?;
            Ok(payment)
        })
        .await;
        if let Err(e) = recorded {
            tracing::error!(order = %order.id, error = %e, "could not record a failed payment");
        }
    }

    /// The payer or an admin; anyone else gets `NotFound`.
    pub async fn get_payment(&self, actor: Actor, id: PaymentId) -> Result<Payment, ShopError> {
        let mut tx = self.ports.store.read().await?;
        tx.payments()
            .get(id)
            .await?
            .filter(|payment| actor.can_see(payment.user_id))
            .ok_or_else(|| ShopError::not_found("payment", id))
    }
}

fn check_payable(order: &Order, now: OffsetDateTime) -> Result<(), ShopError> {
    if order.check_payable(now).is_ok() {
        return Ok(());
    }
    Err(ShopError::OrderNotPayable(
        if order.status == OrderStatus::Created {
            format!("the payment window of order {} has closed", order.id)
        } else {
            format!("order {} is {}", order.id, order.status.as_str())
        },
    ))
}
