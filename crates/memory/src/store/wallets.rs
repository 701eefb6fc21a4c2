//! Point wallets and their transaction rows.
//!
//! Invariant (RULES.md): a wallet's balance equals the sum of its transaction amounts and is
//! never negative. [`WalletRepository::apply`] is the only way the balance changes, and it
//! writes the balance and the row together or neither.

use super::{MemoryTx, Sequences, before, newest_first};
use async_trait::async_trait;
use domain::page::{CursorPage, Slice};
use domain::ports::{RepoError, WalletChange, WalletChangeError, WalletRepository};
use domain::wallet::{Wallet, WalletTransaction};
use domain::{UserId, WalletTransactionId};
use std::collections::{BTreeMap, HashMap};
use time::OffsetDateTime;

#[derive(Debug, Default)]
#[cfg_attr(test, derive(Clone, PartialEq))]
pub(super) struct WalletsTable {
    wallets: HashMap<UserId, Wallet>,
    /// Each user's transaction rows by id (ids grow with time: the last is the newest).
    transactions: HashMap<UserId, BTreeMap<WalletTransactionId, WalletTransaction>>,
}

impl WalletsTable {
    /// Creates the empty wallet of a new user.
    pub(super) fn open(&mut self, user: UserId, at: OffsetDateTime) {
        self.wallets.insert(
            user,
            Wallet {
                user_id: user,
                balance: 0,
                updated_at: at,
            },
        );
    }

    /// Removes a wallet opened in a rolled-back transaction (it has no rows yet).
    pub(super) fn close(&mut self, user: UserId) {
        self.wallets.remove(&user);
        self.transactions.remove(&user);
    }
}

/// The balance after `change`, or why it is refused.
fn balance_after(balance: i64, change: &WalletChange) -> Result<i64, WalletChangeError> {
    let Some(after) = balance.checked_add(change.amount) else {
        // Only an absurd amount overflows; refuse it on the side it overflowed.
        return Err(if change.amount > 0 {
            WalletChangeError::LimitExceeded { balance }
        } else {
            WalletChangeError::Insufficient { balance }
        });
    };
    if after < 0 {
        return Err(WalletChangeError::Insufficient { balance });
    }
    if change.max_balance.is_some_and(|max| after > max) {
        return Err(WalletChangeError::LimitExceeded { balance });
    }
    Ok(after)
}

#[async_trait]
impl WalletRepository for MemoryTx {
    async fn get(&mut self, user: UserId) -> Result<Option<Wallet>, RepoError> {
        Ok(self.state().wallets.wallets.get(&user).copied())
    }

    async fn apply(
        &mut self,
        change: WalletChange,
    ) -> Result<(Wallet, WalletTransaction), WalletChangeError> {
        let state = self.state_mut()?;
        let Some(wallet) = state.wallets.wallets.get_mut(&change.user_id) else {
            return Err(WalletChangeError::NotFound);
        };
        let after = balance_after(wallet.balance, &change)?;
        let previous = *wallet;
        wallet.balance = after;
        wallet.updated_at = change.at;
        let updated = *wallet;
        let id = WalletTransactionId(Sequences::next(&mut state.seq.wallet_transactions));
        let row = WalletTransaction {
            id,
            user_id: change.user_id,
            kind: change.kind,
            amount: change.amount,
            balance_after: after,
            order_id: change.order_id,
            created_at: change.at,
        };
        state
            .wallets
            .transactions
            .entry(change.user_id)
            .or_default()
            .insert(id, row);
        let user = change.user_id;
        self.on_rollback(move |s| {
            s.wallets.wallets.insert(user, previous);
            if let Some(rows) = s.wallets.transactions.get_mut(&user) {
                rows.remove(&id);
                if rows.is_empty() {
                    s.wallets.transactions.remove(&user);
                }
            }
        });
        Ok((updated, row))
    }

    async fn transactions(
        &mut self,
        user: UserId,
        page: CursorPage,
    ) -> Result<Slice<WalletTransaction>, RepoError> {
        let Some(rows) = self.state().wallets.transactions.get(&user) else {
            return Ok(Slice {
                items: Vec::new(),
                next: None,
            });
        };
        let window = rows.range(before(page.before)).map(|(_, row)| *row);
        Ok(newest_first(window, page.limit, |row| row.id.get()))
    }
}
