//! The point wallet: balance, charge, history.

use crate::idempotency::{Keyed, record_answer};
use crate::support::{AttemptError, check_cursor, retry_on_conflict};
use crate::{Actor, Shop, ShopError};
use domain::page::{CursorPage, Slice};
use domain::ports::{WalletChange, WalletChangeError};
use domain::wallet::{ChargeError, Wallet, WalletTransaction, WalletTransactionType};

impl Shop {
    pub async fn balance(&self, actor: Actor) -> Result<Wallet, ShopError> {
        let mut tx = self.ports.store.read().await?;
        tx.wallets()
            .get(actor.user_id)
            .await?
            .ok_or_else(|| ShopError::not_found("wallet of user", actor.user_id))
    }

    /// Errors: `InvalidAmount` (below `MIN_CHARGE` or not positive), `BalanceLimitExceeded`.
    /// With `keyed`, the answer is stored in the charge's transaction.
    pub async fn charge(
        &self,
        actor: Actor,
        amount: i64,
        keyed: Option<&Keyed<(Wallet, WalletTransaction)>>,
    ) -> Result<(Wallet, WalletTransaction), ShopError> {
        let limits = self.config.wallet;
        limits.check_amount(amount).map_err(charge_error)?;
        let now = self.now();
        let result = retry_on_conflict("charge", || async {
            let mut tx = self.ports.store.begin().await?;
            // The maximum is enforced by the store's conditional update, not by reading the
            // balance first: two concurrent charges can never both slip under the limit.
            let applied = tx
                .wallets()
                .apply(WalletChange {
                    user_id: actor.user_id,
                    kind: WalletTransactionType::Charge,
                    amount,
                    max_balance: Some(limits.max_balance),
                    order_id: None,
                    at: now,
                })
                .await
                .map_err(|e| match e {
                    WalletChangeError::LimitExceeded { balance } => {
                        charge_error(ChargeError::BalanceLimitExceeded {
                            balance,
                            amount,
                            max: limits.max_balance,
                        })
                        .into()
                    }
                    other => wallet_error(actor.user_id, other),
                })?;
            record_answer(tx.as_mut(), keyed, &applied, now).await?;
            tx.commit().await?;
            Ok(applied)
        })
        .await?;
        tracing::info!(user = %actor.user_id, amount, balance = result.0.balance, "wallet charged");
        Ok(result)
    }

    pub async fn wallet_transactions(
        &self,
        actor: Actor,
        page: CursorPage,
    ) -> Result<Slice<WalletTransaction>, ShopError> {
        let page = check_cursor(page)?;
        let mut tx = self.ports.store.read().await?;
        Ok(tx.wallets().transactions(actor.user_id, page).await?)
    }
}

fn charge_error(e: ChargeError) -> ShopError {
    match e {
        ChargeError::BelowMinimum { .. } => ShopError::InvalidAmount(e.to_string()),
        ChargeError::BalanceLimitExceeded { .. } => ShopError::BalanceLimitExceeded(e.to_string()),
    }
}

/// The wallet failures that are not the caller's business outcome of the moment.
pub(crate) fn wallet_error(user: domain::UserId, e: WalletChangeError) -> AttemptError {
    match e {
        WalletChangeError::NotFound => ShopError::not_found("wallet of user", user).into(),
        WalletChangeError::Repo(e) => e.into(),
        WalletChangeError::Insufficient { balance } => {
            ShopError::InsufficientBalance(format!("balance {balance} is not enough")).into()
        }
        WalletChangeError::LimitExceeded { balance } => {
            ShopError::BalanceLimitExceeded(format!("balance {balance} would exceed the maximum"))
                .into()
        }
    }
}
