//! The point wallet (seed 002, 1-1): one per user, changed only together with a transaction row.
//!
//! Invariant (checked by tests under concurrency): for every user, `balance` equals the sum of
//! that user's transaction amounts, and `balance` is never negative.

use crate::{OrderId, UserId, WalletTransactionId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wallet {
    pub user_id: UserId,
    pub balance: i64,
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WalletTransactionType {
    Charge,
    Payment,
    Refund,
}

impl WalletTransactionType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Charge => "CHARGE",
            Self::Payment => "PAYMENT",
            Self::Refund => "REFUND",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "CHARGE" => Some(Self::Charge),
            "PAYMENT" => Some(Self::Payment),
            "REFUND" => Some(Self::Refund),
            _ => None,
        }
    }
}

/// One change of a wallet. `amount` is signed: negative for a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalletTransaction {
    pub id: WalletTransactionId,
    pub user_id: UserId,
    pub kind: WalletTransactionType,
    pub amount: i64,
    pub balance_after: i64,
    pub order_id: Option<OrderId>,
    pub created_at: OffsetDateTime,
}

/// The wallet limits of RULES.md, configurable (`MIN_CHARGE`, `MAX_BALANCE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalletLimits {
    pub min_charge: i64,
    pub max_balance: i64,
}

impl Default for WalletLimits {
    fn default() -> Self {
        Self {
            min_charge: 1,
            max_balance: 1_000_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChargeError {
    #[error("amount must be at least {min}")]
    BelowMinimum { min: i64 },
    #[error("balance {balance} + {amount} would exceed the maximum of {max}")]
    BalanceLimitExceeded { balance: i64, amount: i64, max: i64 },
}

impl WalletLimits {
    /// Validates the amount alone (before any wallet is read).
    pub fn check_amount(&self, amount: i64) -> Result<(), ChargeError> {
        if amount < self.min_charge || amount <= 0 {
            return Err(ChargeError::BelowMinimum {
                min: self.min_charge.max(1),
            });
        }
        if amount > self.max_balance {
            // Can never succeed whatever the balance; answered without touching the wallet.
            return Err(ChargeError::BalanceLimitExceeded {
                balance: 0,
                amount,
                max: self.max_balance,
            });
        }
        Ok(())
    }

    /// The balance after charging `amount` onto `balance`; a charge is refused whole, never
    /// applied partially.
    pub fn charge(&self, balance: i64, amount: i64) -> Result<i64, ChargeError> {
        self.check_amount(amount)?;
        match balance.checked_add(amount) {
            Some(after) if after <= self.max_balance => Ok(after),
            _ => Err(ChargeError::BalanceLimitExceeded {
                balance,
                amount,
                max: self.max_balance,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charge_respects_minimum_and_maximum() {
        let limits = WalletLimits {
            min_charge: 100,
            max_balance: 1_000,
        };
        assert_eq!(limits.charge(0, 100), Ok(100));
        assert_eq!(limits.charge(900, 100), Ok(1_000));
        assert_eq!(
            limits.charge(0, 99),
            Err(ChargeError::BelowMinimum { min: 100 })
        );
        assert!(matches!(
            limits.charge(901, 100),
            Err(ChargeError::BalanceLimitExceeded { .. })
        ));
        assert!(matches!(
            limits.charge(0, i64::MAX),
            Err(ChargeError::BalanceLimitExceeded { .. })
        ));
    }

    #[test]
    fn zero_and_negative_amounts_are_refused_even_with_min_zero() {
        let limits = WalletLimits {
            min_charge: 0,
            max_balance: 10,
        };
        assert!(limits.check_amount(0).is_err());
        assert!(limits.check_amount(-5).is_err());
    }
}
