use crate::common::fixtures::{NOW, charge, user};
use crate::common::{TestDb, scalar};
use domain::UserId;
use domain::page::CursorPage;
use domain::ports::{UnitOfWork, WalletChange, WalletChangeError};
use domain::user::Role;
use domain::wallet::WalletTransactionType;

fn change(
    user: UserId,
    kind: WalletTransactionType,
    amount: i64,
    max: Option<i64>,
) -> WalletChange {
    WalletChange {
        user_id: user,
        kind,
        amount,
        max_balance: max,
        order_id: None,
        at: NOW + time::Duration::SECOND,
    }
}

#[tokio::test]
async fn apply_moves_the_balance_and_writes_the_transaction_row() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let u = user(tx.as_mut(), Role::Buyer).await;
    let (wallet, row) = tx
        .wallets()
        .apply(change(
            u.id,
            WalletTransactionType::Charge,
            5_000,
            Some(1_000_000),
        ))
        .await
        .unwrap();
    assert_eq!(wallet.balance, 5_000);
    assert_eq!(wallet.updated_at, NOW + time::Duration::SECOND);
    assert_eq!(
        (
            row.user_id,
            row.kind,
            row.amount,
            row.balance_after,
            row.order_id
        ),
        (u.id, WalletTransactionType::Charge, 5_000, 5_000, None)
    );
    let (wallet, row) = tx
        .wallets()
        .apply(change(u.id, WalletTransactionType::Payment, -3_000, None))
        .await
        .unwrap();
    assert_eq!(
        (wallet.balance, row.amount, row.balance_after),
        (2_000, -3_000, 2_000)
    );
    tx.commit().await.unwrap();
    let mut raw = db.raw().await;
    assert_eq!(
        scalar(
            &mut raw,
            &format!(
                "(SELECT sum(amount)::bigint FROM wallet_transactions WHERE user_id = {})",
                u.id
            )
        )
        .await,
        2_000
    );
}

#[tokio::test]
async fn a_debit_beyond_the_balance_is_refused_with_the_balance_and_changes_nothing() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let u = user(tx.as_mut(), Role::Buyer).await;
    charge(tx.as_mut(), &u, 1_000).await;
    let refused = tx
        .wallets()
        .apply(change(u.id, WalletTransactionType::Payment, -1_001, None))
        .await;
    assert_eq!(
        refused,
        Err(WalletChangeError::Insufficient { balance: 1_000 })
    );
    // The transaction is still usable after a refusal (no statement failed).
    let page = tx
        .wallets()
        .transactions(
            u.id,
            CursorPage {
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(
        tx.wallets().get(u.id).await.unwrap().unwrap().balance,
        1_000
    );
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_charge_beyond_the_maximum_is_refused_but_a_refund_may_exceed_it() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let u = user(tx.as_mut(), Role::Buyer).await;
    charge(tx.as_mut(), &u, 900).await;
    let refused = tx
        .wallets()
        .apply(change(
            u.id,
            WalletTransactionType::Charge,
            101,
            Some(1_000),
        ))
        .await;
    assert_eq!(
        refused,
        Err(WalletChangeError::LimitExceeded { balance: 900 })
    );
    let (exact, _) = tx
        .wallets()
        .apply(change(
            u.id,
            WalletTransactionType::Charge,
            100,
            Some(1_000),
        ))
        .await
        .unwrap();
    assert_eq!(exact.balance, 1_000);
    let (refunded, _) = tx
        .wallets()
        .apply(change(u.id, WalletTransactionType::Refund, 500, None))
        .await
        .unwrap();
    assert_eq!(refunded.balance, 1_500);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_user_without_wallet_is_not_found() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let refused = tx
        .wallets()
        .apply(change(UserId(4242), WalletTransactionType::Charge, 1, None))
        .await;
    assert_eq!(refused, Err(WalletChangeError::NotFound));
    assert_eq!(tx.wallets().get(UserId(4242)).await.unwrap(), None);
}

#[tokio::test]
async fn transactions_are_paged_newest_first_with_a_cursor() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let u = user(tx.as_mut(), Role::Buyer).await;
    let other = user(tx.as_mut(), Role::Buyer).await;
    for amount in 1..=5 {
        charge(tx.as_mut(), &u, amount).await;
    }
    charge(tx.as_mut(), &other, 77).await;
    tx.commit().await.unwrap();

    let mut read = db.store.read().await.unwrap();
    let first = read
        .wallets()
        .transactions(
            u.id,
            CursorPage {
                before: None,
                limit: 2,
            },
        )
        .await
        .unwrap();
    let amounts: Vec<_> = first.items.iter().map(|t| t.amount).collect();
    assert_eq!(amounts, [5, 4]);
    let second = read
        .wallets()
        .transactions(
            u.id,
            CursorPage {
                before: first.next,
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        second.items.iter().map(|t| t.amount).collect::<Vec<_>>(),
        [3, 2]
    );
    let last = read
        .wallets()
        .transactions(
            u.id,
            CursorPage {
                before: second.next,
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(last.items.iter().map(|t| t.amount).collect::<Vec<_>>(), [1]);
    assert_eq!(last.next, None);
}
