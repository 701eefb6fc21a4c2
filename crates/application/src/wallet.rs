//! The point wallet: balance, charge, history.

use crate::{Actor, Shop, ShopError};
use domain::page::{CursorPage, Slice};
use domain::wallet::{Wallet, WalletTransaction};

impl Shop {
    pub async fn balance(&self, actor: Actor) -> Result<Wallet, ShopError> {
        todo!("{actor:?}")
    }

    /// Errors: `InvalidAmount` (below `MIN_CHARGE` or not positive), `BalanceLimitExceeded`.
    pub async fn charge(
        &self,
        actor: Actor,
        amount: i64,
    ) -> Result<(Wallet, WalletTransaction), ShopError> {
        todo!("{actor:?} {amount}")
    }

    pub async fn wallet_transactions(
        &self,
        actor: Actor,
        page: CursorPage,
    ) -> Result<Slice<WalletTransaction>, ShopError> {
        todo!("{actor:?} {page:?}")
    }
}
