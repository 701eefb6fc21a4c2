use crate::common::fixtures::{NOW, product, shop, user};
use crate::common::{TestDb, scalar};
use domain::ProductId;
use domain::page::{CursorPage, OffsetPage};
use domain::ports::{StockChangeError, UnitOfWork};
use domain::product::{
    MAX_STOCK, NewProduct, ProductPatch, ProductStatus, StockChange, StockReason,
};
use domain::user::Role;

fn stock_change(product: ProductId, delta: i64, reason: StockReason) -> StockChange {
    StockChange {
        product_id: product,
        delta,
        reason,
        order_id: None,
        note: None,
        at: NOW + time::Duration::MINUTE,
    }
}

#[tokio::test]
async fn insert_writes_the_initial_ledger_row() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let seller = user(tx.as_mut(), Role::Seller).await;
    let created = tx
        .products()
        .insert(NewProduct {
            seller_id: seller.id,
            name: "Green tea".into(),
            price: 12_000,
            stock: 7,
            status: ProductStatus::Paused,
            created_at: NOW,
        })
        .await
        .unwrap();
    assert_eq!(
        (
            created.seller_id,
            created.name.as_str(),
            created.price,
            created.stock,
            created.status
        ),
        (seller.id, "Green tea", 12_000, 7, ProductStatus::Paused)
    );
    assert_eq!((created.created_at, created.updated_at), (NOW, NOW));
    let ledger = tx
        .products()
        .ledger(
            created.id,
            CursorPage {
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(ledger.items.len(), 1);
    let initial = &ledger.items[0];
    assert_eq!(
        (
            initial.product_id,
            initial.delta,
            initial.reason,
            initial.order_id
        ),
        (created.id, 7, StockReason::Initial, None)
    );
    tx.commit().await.unwrap();
    let mut read = db.store.read().await.unwrap();
    assert_eq!(
        read.products().get(created.id).await.unwrap(),
        Some(created)
    );
    assert_eq!(read.products().get(ProductId(999)).await.unwrap(), None);
}

#[tokio::test]
async fn get_many_returns_the_existing_ones() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let seller = user(tx.as_mut(), Role::Seller).await;
    let a = product(tx.as_mut(), &seller, 100, 1).await;
    let b = product(tx.as_mut(), &seller, 200, 1).await;
    let _c = product(tx.as_mut(), &seller, 300, 1).await;
    let mut found = tx
        .products()
        .get_many(&[b.id, ProductId(999), a.id])
        .await
        .unwrap();
    found.sort_by_key(|p| p.id);
    assert_eq!(found, vec![a, b]);
    assert!(tx.products().get_many(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn patch_changes_only_the_given_fields() {
    let db = TestDb::new().await;
    let (_, _, p) = shop(&db.store, 5).await;
    let later = NOW + time::Duration::HOUR;
    let mut tx = db.store.begin().await.unwrap();
    let patched = tx
        .products()
        .patch(
            p.id,
            &ProductPatch {
                name: None,
                price: Some(2_500),
                status: Some(ProductStatus::Off),
            },
            later,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            patched.name.as_str(),
            patched.price,
            patched.status,
            patched.stock
        ),
        (p.name.as_str(), 2_500, ProductStatus::Off, 5)
    );
    assert_eq!((patched.created_at, patched.updated_at), (NOW, later));
    let renamed = tx
        .products()
        .patch(
            p.id,
            &ProductPatch {
                name: Some("Black tea".into()),
                ..ProductPatch::default()
            },
            later,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((renamed.name.as_str(), renamed.price), ("Black tea", 2_500));
    assert_eq!(
        tx.products()
            .patch(ProductId(999), &ProductPatch::default(), later)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn change_stock_moves_stock_and_writes_the_ledger() {
    let db = TestDb::new().await;
    let (buyer, _, p) = shop(&db.store, 10).await;
    let mut tx = db.store.begin().await.unwrap();
    let order = crate::common::fixtures::order(tx.as_mut(), &buyer, &[(&p, 3)]).await;
    let reserved = tx
        .products()
        .change_stock(StockChange {
            order_id: Some(order.id),
            ..stock_change(p.id, -3, StockReason::Order)
        })
        .await
        .unwrap();
    assert_eq!(reserved.stock, 7);
    let adjusted = tx
        .products()
        .change_stock(StockChange {
            note: Some("found a box".into()),
            ..stock_change(p.id, 5, StockReason::Adjust)
        })
        .await
        .unwrap();
    assert_eq!(adjusted.stock, 12);
    tx.commit().await.unwrap();

    let mut read = db.store.read().await.unwrap();
    let ledger = read
        .products()
        .ledger(
            p.id,
            CursorPage {
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    let rows: Vec<_> = ledger
        .items
        .iter()
        .map(|e| (e.delta, e.reason, e.order_id, e.note.as_deref()))
        .collect();
    assert_eq!(
        rows,
        [
            (5, StockReason::Adjust, None, Some("found a box")),
            (-3, StockReason::Order, Some(order.id), None),
            (10, StockReason::Initial, None, None),
        ]
    );
    let mut raw = db.raw().await;
    let sum = scalar(
        &mut raw,
        &format!(
            "(SELECT sum(delta)::bigint FROM product_stock_ledger WHERE product_id = {})",
            p.id
        ),
    )
    .await;
    assert_eq!(sum, 12);
}

#[tokio::test]
async fn change_stock_refuses_to_leave_the_range_and_changes_nothing() {
    let db = TestDb::new().await;
    let (_, _, p) = shop(&db.store, 2).await;
    let mut tx = db.store.begin().await.unwrap();
    assert_eq!(
        tx.products()
            .change_stock(stock_change(p.id, -3, StockReason::Order))
            .await,
        Err(StockChangeError::Insufficient { available: 2 })
    );
    assert_eq!(
        tx.products()
            .change_stock(stock_change(p.id, MAX_STOCK, StockReason::Adjust))
            .await,
        Err(StockChangeError::Insufficient { available: 2 })
    );
    assert_eq!(
        tx.products()
            .change_stock(stock_change(ProductId(999), -1, StockReason::Order))
            .await,
        Err(StockChangeError::NotFound)
    );
    // Exactly down to zero is fine.
    let emptied = tx
        .products()
        .change_stock(stock_change(p.id, -2, StockReason::Order))
        .await
        .unwrap();
    assert_eq!(emptied.stock, 0);
    let ledger = tx
        .products()
        .ledger(
            p.id,
            CursorPage {
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(ledger.items.len(), 2, "refusals write no ledger row");
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn list_filters_by_status_and_pages_by_offset() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let seller = user(tx.as_mut(), Role::Seller).await;
    let mut on_sale = Vec::new();
    for price in 1..=5 {
        on_sale.push(product(tx.as_mut(), &seller, price, 1).await);
    }
    let paused = product(tx.as_mut(), &seller, 99, 1).await;
    tx.products()
        .patch(
            paused.id,
            &ProductPatch {
                status: Some(ProductStatus::Paused),
                ..ProductPatch::default()
            },
            NOW,
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut read = db.store.read().await.unwrap();
    let page2 = read
        .products()
        .list(Some(ProductStatus::OnSale), OffsetPage { page: 2, size: 2 })
        .await
        .unwrap();
    assert_eq!(page2.total_items, 5);
    assert_eq!(
        page2.items.iter().map(|p| p.id).collect::<Vec<_>>(),
        [on_sale[2].id, on_sale[3].id]
    );
    let all = read
        .products()
        .list(None, OffsetPage { page: 1, size: 100 })
        .await
        .unwrap();
    assert_eq!(all.total_items, 6);
    assert_eq!(all.items.last().map(|p| p.id), Some(paused.id));
    let paused_only = read
        .products()
        .list(
            Some(ProductStatus::Paused),
            OffsetPage { page: 1, size: 10 },
        )
        .await
        .unwrap();
    assert_eq!(
        paused_only.items.iter().map(|p| p.id).collect::<Vec<_>>(),
        [paused.id]
    );
    let beyond = read
        .products()
        .list(
            Some(ProductStatus::OnSale),
            OffsetPage { page: 9, size: 10 },
        )
        .await
        .unwrap();
    assert!(beyond.items.is_empty());
    assert_eq!(beyond.total_items, 5);
}

#[tokio::test]
async fn ledger_pages_newest_first() {
    let db = TestDb::new().await;
    let (_, _, p) = shop(&db.store, 0).await;
    let mut tx = db.store.begin().await.unwrap();
    for delta in 1..=4 {
        tx.products()
            .change_stock(stock_change(p.id, delta, StockReason::Adjust))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let mut read = db.store.read().await.unwrap();
    let first = read
        .products()
        .ledger(
            p.id,
            CursorPage {
                before: None,
                limit: 3,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        first.items.iter().map(|e| e.delta).collect::<Vec<_>>(),
        [4, 3, 2]
    );
    let rest = read
        .products()
        .ledger(
            p.id,
            CursorPage {
                before: first.next,
                limit: 3,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        rest.items.iter().map(|e| e.delta).collect::<Vec<_>>(),
        [1, 0]
    );
    assert_eq!(rest.next, None);
    assert!(
        read.products()
            .ledger(
                ProductId(999),
                CursorPage {
                    before: None,
                    limit: 3
                }
            )
            .await
            .unwrap()
            .items
            .is_empty()
    );
}
