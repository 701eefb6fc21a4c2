//! The point wallet: limits, history, concurrency.

use super::{Kit, expect_code};
use application::Shop;
use domain::page::CursorPage;
use domain::wallet::WalletTransactionType;

pub async fn charge_adds_to_the_balance_and_writes_a_charge_row(shop: Shop) {
    let kit = Kit::new(shop).await;
    let buyer = kit.buyer().await;
    let (wallet, row) = kit.shop.charge(buyer, 10_000, None).await.unwrap();
    assert_eq!((wallet.user_id, wallet.balance), (buyer.user_id, 10_000));
    assert_eq!(row.kind, WalletTransactionType::Charge);
    assert_eq!(
        (row.amount, row.balance_after, row.order_id),
        (10_000, 10_000, None)
    );
    assert_eq!(row.created_at, kit.now());
    let (wallet, row) = kit.shop.charge(buyer, 2_500, None).await.unwrap();
    assert_eq!((wallet.balance, row.balance_after), (12_500, 12_500));
    assert_eq!(kit.balance(buyer).await, 12_500);
    kit.assert_wallet_consistent(buyer).await;
}

pub async fn charges_below_the_minimum_are_invalid(shop: Shop) {
    let kit = Kit::with(shop, |c| c.wallet.min_charge = 10_000).await;
    let buyer = kit.buyer().await;
    for amount in [0, -1, 9_999] {
        expect_code(kit.shop.charge(buyer, amount, None).await, "INVALID_AMOUNT");
    }
    assert!(kit.shop.charge(buyer, 10_000, None).await.is_ok());
    assert_eq!(kit.wallet_rows(buyer).await.len(), 1);
}

pub async fn charges_above_the_maximum_balance_are_refused_whole(shop: Shop) {
    let kit = Kit::with(shop, |c| c.wallet.max_balance = 1_000_000).await;
    let buyer = kit.buyer().await;
    expect_code(
        kit.shop.charge(buyer, 1_000_001, None).await,
        "BALANCE_LIMIT_EXCEEDED",
    );
    kit.shop.charge(buyer, 900_000, None).await.unwrap();
    let detail = expect_code(
        kit.shop.charge(buyer, 100_001, None).await,
        "BALANCE_LIMIT_EXCEEDED",
    );
    assert!(detail.contains("900000"), "{detail}");
    // Refused whole: no partial charge, no row.
    assert_eq!(kit.balance(buyer).await, 900_000);
    assert_eq!(kit.wallet_rows(buyer).await.len(), 1);
    // Exactly the maximum is allowed.
    assert_eq!(
        kit.shop
            .charge(buyer, 100_000, None)
            .await
            .unwrap()
            .0
            .balance,
        1_000_000
    );
    kit.assert_wallet_consistent(buyer).await;
}

pub async fn history_is_newest_first_and_paged(shop: Shop) {
    let kit = Kit::new(shop).await;
    let buyer = kit.buyer().await;
    let other = kit.funded_buyer(7).await;
    for amount in [100, 200, 300] {
        kit.shop.charge(buyer, amount, None).await.unwrap();
    }
    let first = kit
        .shop
        .wallet_transactions(
            buyer,
            CursorPage {
                before: None,
                limit: 2,
            },
        )
        .await
        .unwrap();
    let amounts: Vec<_> = first.items.iter().map(|t| t.amount).collect();
    assert_eq!(amounts, [300, 200]);
    let next = first.next.expect("a second page");
    let second = kit
        .shop
        .wallet_transactions(
            buyer,
            CursorPage {
                before: Some(next),
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        second.items.iter().map(|t| t.amount).collect::<Vec<_>>(),
        [100]
    );
    assert_eq!(second.next, None);
    assert!(
        second
            .items
            .iter()
            .chain(&first.items)
            .all(|t| t.user_id == buyer.user_id)
    );
    assert_eq!(kit.wallet_rows(other).await.len(), 1);
    expect_code(
        kit.shop
            .wallet_transactions(
                buyer,
                CursorPage {
                    before: None,
                    limit: 0,
                },
            )
            .await,
        "VALIDATION_FAILED",
    );
}

pub async fn concurrent_charges_never_lose_an_update(shop: Shop) {
    let kit = Kit::with(shop, |c| c.wallet.max_balance = 5_000).await;
    let buyer = kit.buyer().await;
    // 80 charges of 100 race for a limit that lets exactly 50 through.
    let tasks: Vec<_> = (0..80)
        .map(|_| {
            let shop = kit.shop.clone();
            tokio::spawn(async move { shop.charge(buyer, 100, None).await })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e.code(), "BALANCE_LIMIT_EXCEEDED"),
        }
    }
    assert_eq!(ok, 50);
    assert_eq!(kit.balance(buyer).await, 5_000);
    assert_eq!(kit.wallet_rows(buyer).await.len(), 50);
    kit.assert_wallet_consistent(buyer).await;
}
