use super::{corrupt, overfetch};
use crate::PgTransaction;
use crate::schema::{wallet_transactions as tx, wallets};
use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::page::{CursorPage, Slice};
use domain::ports::{RepoError, WalletChange, WalletChangeError, WalletRepository};
use domain::wallet::{Wallet, WalletTransaction, WalletTransactionType};
use domain::{OrderId, UserId, WalletTransactionId};
use time::OffsetDateTime;

#[derive(Queryable, Selectable)]
#[diesel(table_name = wallets, check_for_backend(diesel::pg::Pg))]
struct WalletRow {
    user_id: i64,
    balance: i64,
    updated_at: OffsetDateTime,
}

impl From<WalletRow> for Wallet {
    fn from(row: WalletRow) -> Self {
        Wallet {
            user_id: UserId(row.user_id),
            balance: row.balance,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = tx, check_for_backend(diesel::pg::Pg))]
struct TransactionRow {
    id: i64,
    user_id: i64,
    kind: String,
    amount: i64,
    balance_after: i64,
    order_id: Option<i64>,
    created_at: OffsetDateTime,
}

impl TransactionRow {
    fn into_domain(self) -> Result<WalletTransaction, RepoError> {
        Ok(WalletTransaction {
            id: WalletTransactionId(self.id),
            user_id: UserId(self.user_id),
            kind: WalletTransactionType::parse(&self.kind)
                .ok_or_else(|| corrupt("wallet transaction type", &self.kind))?,
            amount: self.amount,
            balance_after: self.balance_after,
            order_id: self.order_id.map(OrderId),
            created_at: self.created_at,
        })
    }
}

#[async_trait]
impl WalletRepository for PgTransaction {
    async fn get(&mut self, user: UserId) -> Result<Option<Wallet>, RepoError> {
        let conn = self.conn()?;
        let found = wallets::table
            .find(user.0)
            .select(WalletRow::as_select())
            .first(conn)
            .await
            .optional();
        Ok(self.check(found)?.map(Wallet::from))
    }

    async fn apply(
        &mut self,
        change: WalletChange,
    ) -> Result<(Wallet, WalletTransaction), WalletChangeError> {
        // One conditional statement: the row lock is taken and the condition checked against
        // the newest balance, so concurrent changes of one wallet can neither lose an update
        // nor take the balance below 0 or above the maximum.
        let max = change.max_balance.unwrap_or(i64::MAX);
        let mut attempts = 0;
        let wallet = loop {
            let after = wallets::balance + change.amount;
            let conn = self.conn()?;
            let updated = diesel::update(wallets::table)
                .filter(wallets::user_id.eq(change.user_id.0))
                .filter(after.ge(0_i64))
                .filter(after.le(max))
                .set((
                    wallets::balance.eq(after),
                    wallets::updated_at.eq(change.at),
                ))
                .returning(WalletRow::as_returning())
                .get_result(conn)
                .await
                .optional();
            if let Some(wallet) = self.check(updated)? {
                break wallet;
            }
            // Refused: report the balance that refuses it. A concurrent commit may have moved
            // the balance since the update looked; if the change fits now, try again.
            let Some(balance) = self.balance(change.user_id).await? else {
                return Err(WalletChangeError::NotFound);
            };
            let fits = balance
                .checked_add(change.amount)
                .is_some_and(|after| (0..=max).contains(&after));
            attempts += 1;
            if !fits || attempts == 3 {
                return Err(if change.amount < 0 {
                    WalletChangeError::Insufficient { balance }
                } else {
                    WalletChangeError::LimitExceeded { balance }
                });
            }
        };
        let conn = self.conn()?;
        let written = diesel::insert_into(tx::table)
            .values((
                tx::user_id.eq(change.user_id.0),
                tx::kind.eq(change.kind.as_str()),
                tx::amount.eq(change.amount),
                tx::balance_after.eq(wallet.balance),
                tx::order_id.eq(change.order_id.map(|o| o.0)),
                tx::created_at.eq(change.at),
            ))
            .returning(TransactionRow::as_returning())
            .get_result(conn)
            .await;
        let row = self.check(written)?;
        Ok((wallet.into(), row.into_domain()?))
    }

    async fn transactions(
        &mut self,
        user: UserId,
        page: CursorPage,
    ) -> Result<Slice<WalletTransaction>, RepoError> {
        let mut query = tx::table
            .filter(tx::user_id.eq(user.0))
            .select(TransactionRow::as_select())
            .order(tx::id.desc())
            .limit(overfetch(page.limit))
            .into_boxed();
        if let Some(before) = page.before {
            query = query.filter(tx::id.lt(before));
        }
        let conn = self.conn()?;
        let rows = query.load(conn).await;
        let rows = self
            .check(rows)?
            .into_iter()
            .map(TransactionRow::into_domain)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Slice::from_overfetch(rows, page.limit, |t| t.id.0))
    }
}

impl PgTransaction {
    async fn balance(&mut self, user: UserId) -> Result<Option<i64>, RepoError> {
        let conn = self.conn()?;
        let found = wallets::table
            .find(user.0)
            .select(wallets::balance)
            .first::<i64>(conn)
            .await
            .optional();
        self.check(found)
    }
}
