//! The repository ports, implemented on [`PgTransaction`](crate::PgTransaction): one module
//! per port, each with its row types and their conversion to domain types.

mod coupons;
mod inbox;
mod orders;
mod outbox;
mod payments;
mod products;
mod sales;
mod users;
mod wallets;

use domain::ports::RepoError;

/// A stored text that does not parse back into its domain enum: the schema's CHECK
/// constraints make this impossible unless the data was changed by hand.
pub(crate) fn corrupt(what: &str, raw: &str) -> RepoError {
    RepoError::Internal(format!("unexpected {what} {raw:?} in the database"))
}

/// The `LIMIT` of a keyset page: one row more than asked, to learn whether a next page exists.
pub(crate) fn overfetch(limit: u32) -> i64 {
    i64::from(limit) + 1
}
