//! Products, visibility by role, stock adjustments and the ledger.

use super::{Kit, expect_code, invalid_fields};
use application::Shop;
use application::catalog::{ProductDraft, ProductUpdate};
use domain::ProductId;
use domain::page::{CursorPage, OffsetPage};
use domain::product::{MAX_STOCK, ProductStatus, StockReason};

fn draft(name: &str, price: i64, stock: i64, status: Option<ProductStatus>) -> ProductDraft {
    ProductDraft {
        name: name.into(),
        price,
        stock,
        status,
    }
}

pub async fn sellers_create_products_with_an_initial_ledger_row(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let product = kit
        .shop
        .create_product(seller, draft(" Green tea ", 4_500, 30, None), None)
        .await
        .unwrap();
    assert_eq!(product.seller_id, seller.user_id);
    assert_eq!(
        (product.name.as_str(), product.price, product.stock),
        ("Green tea", 4_500, 30)
    );
    assert_eq!(product.status, ProductStatus::OnSale);
    let ledger = kit.ledger(product.id).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!(
        (ledger[0].delta, ledger[0].reason),
        (30, StockReason::Initial)
    );
    // Admins sell too.
    let by_admin = kit
        .shop
        .create_product(
            kit.admin,
            draft("Mug", 1, 0, Some(ProductStatus::Paused)),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (by_admin.status, by_admin.stock),
        (ProductStatus::Paused, 0)
    );
    kit.assert_ledger_consistent(by_admin.id).await;
}

pub async fn buyers_cannot_create_products_and_drafts_are_validated(shop: Shop) {
    let kit = Kit::new(shop).await;
    let buyer = kit.buyer().await;
    expect_code(
        kit.shop
            .create_product(buyer, draft("Tea", 100, 1, None), None)
            .await,
        "FORBIDDEN",
    );
    let seller = kit.seller().await;
    let fields = invalid_fields(
        kit.shop
            .create_product(seller, draft(" ", 0, -1, None), None)
            .await,
    );
    assert_eq!(fields, ["name", "price", "stock"]);
    let listed = kit
        .shop
        .list_products(Some(kit.admin), None, OffsetPage { page: 1, size: 20 })
        .await
        .unwrap();
    assert_eq!(listed.total_items, 0);
}

pub async fn buyers_list_only_products_on_sale(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let mut on_sale = Vec::new();
    for i in 0..3 {
        on_sale.push(kit.product(seller, 1_000 + i, 5).await.id);
    }
    let paused = kit.product(seller, 10, 1).await.id;
    kit.set_status(paused, ProductStatus::Paused).await;
    let off = kit.product(seller, 10, 1).await.id;
    kit.set_status(off, ProductStatus::Off).await;
    let buyer = kit.buyer().await;
    let page = |page, size| OffsetPage { page, size };

    for (actor, asked) in [
        (Some(buyer), None),
        (Some(buyer), Some(ProductStatus::Off)),
        (None, None),
        (None, Some(ProductStatus::Paused)),
    ] {
        let listed = kit
            .shop
            .list_products(actor, asked, page(1, 20))
            .await
            .unwrap();
        let ids: Vec<_> = listed.items.iter().map(|p| p.id).collect();
        assert_eq!(ids, on_sale, "{actor:?} asking {asked:?}");
        assert_eq!(listed.total_items, 3);
    }
    let second = kit
        .shop
        .list_products(Some(buyer), None, page(2, 2))
        .await
        .unwrap();
    assert_eq!(
        second.items.iter().map(|p| p.id).collect::<Vec<_>>(),
        [on_sale[2]]
    );
    assert_eq!(second.total_items, 3);

    let sellers_view = kit
        .shop
        .list_products(Some(seller), Some(ProductStatus::Paused), page(1, 20))
        .await
        .unwrap();
    assert_eq!(
        sellers_view.items.iter().map(|p| p.id).collect::<Vec<_>>(),
        [paused]
    );
    let everything = kit
        .shop
        .list_products(Some(kit.admin), None, page(1, 20))
        .await
        .unwrap();
    assert_eq!(everything.total_items, 5);
    invalid_fields(kit.shop.list_products(None, None, page(0, 20)).await);
    invalid_fields(kit.shop.list_products(None, None, page(1, 101)).await);
}

pub async fn off_products_are_hidden_from_everyone_but_their_seller(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let other_seller = kit.seller().await;
    let buyer = kit.buyer().await;
    let product = kit.product(seller, 100, 1).await.id;
    kit.set_status(product, ProductStatus::Paused).await;
    // PAUSED is visible: it exists, it just cannot be bought now.
    assert!(kit.shop.get_product(Some(buyer), product).await.is_ok());
    kit.set_status(product, ProductStatus::Off).await;
    expect_code(
        kit.shop.get_product(Some(buyer), product).await,
        "NOT_FOUND",
    );
    expect_code(kit.shop.get_product(None, product).await, "NOT_FOUND");
    expect_code(
        kit.shop.get_product(Some(other_seller), product).await,
        "NOT_FOUND",
    );
    assert!(kit.shop.get_product(Some(seller), product).await.is_ok());
    assert!(kit.shop.get_product(Some(kit.admin), product).await.is_ok());
    expect_code(
        kit.shop
            .get_product(Some(kit.admin), ProductId(999_999))
            .await,
        "NOT_FOUND",
    );
}

pub async fn only_the_owner_or_an_admin_changes_a_product(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let product = kit.product(seller, 100, 1).await;
    let rename = |name: &str| ProductUpdate {
        name: Some(name.into()),
        ..Default::default()
    };
    let other = kit.seller().await;
    let buyer = kit.buyer().await;
    expect_code(
        kit.shop
            .update_product(other, product.id, rename("x"))
            .await,
        "FORBIDDEN",
    );
    expect_code(
        kit.shop
            .update_product(buyer, product.id, rename("x"))
            .await,
        "FORBIDDEN",
    );
    expect_code(
        kit.shop
            .update_product(seller, ProductId(999_999), rename("x"))
            .await,
        "NOT_FOUND",
    );
    let bad = ProductUpdate {
        name: Some(String::new()),
        price: Some(0),
        status: None,
    };
    assert_eq!(
        invalid_fields(kit.shop.update_product(seller, product.id, bad).await),
        ["name", "price"]
    );
    kit.advance(time::Duration::minutes(1));
    let updated = kit
        .shop
        .update_product(
            seller,
            product.id,
            ProductUpdate {
                price: Some(250),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (updated.price, updated.name.as_str()),
        (250, product.name.as_str())
    );
    assert_eq!(updated.updated_at, kit.now());
    let by_admin = kit
        .shop
        .update_product(kit.admin, product.id, rename("Renamed"))
        .await;
    assert_eq!(by_admin.unwrap().name, "Renamed");
    expect_code(
        kit.shop
            .adjust_stock(other, product.id, 1, None, None)
            .await,
        "FORBIDDEN",
    );
    expect_code(
        kit.shop
            .stock_ledger(
                other,
                product.id,
                CursorPage {
                    before: None,
                    limit: 10,
                },
            )
            .await,
        "FORBIDDEN",
    );
    expect_code(
        kit.shop
            .stock_ledger(
                buyer,
                product.id,
                CursorPage {
                    before: None,
                    limit: 10,
                },
            )
            .await,
        "FORBIDDEN",
    );
}

pub async fn stock_adjustments_are_ledgered_and_never_go_negative(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let product = kit.product(seller, 100, 10).await.id;
    let raised = kit
        .shop
        .adjust_stock(seller, product, 5, Some("restock".into()), None)
        .await
        .unwrap();
    assert_eq!(raised.stock, 15);
    assert_eq!(
        kit.shop
            .adjust_stock(kit.admin, product, -3, None, None)
            .await
            .unwrap()
            .stock,
        12
    );
    let detail = expect_code(
        kit.shop
            .adjust_stock(seller, product, -13, None, None)
            .await,
        "OUT_OF_STOCK",
    );
    assert!(detail.contains("12 left"), "{detail}");
    assert_eq!(kit.stock(product).await, 12);
    assert_eq!(
        invalid_fields(kit.shop.adjust_stock(seller, product, 0, None, None).await),
        ["delta"]
    );
    invalid_fields(
        kit.shop
            .adjust_stock(seller, product, MAX_STOCK + 1, None, None)
            .await,
    );
    invalid_fields(
        kit.shop
            .adjust_stock(seller, product, MAX_STOCK, None, None)
            .await,
    );
    invalid_fields(
        kit.shop
            .adjust_stock(seller, product, 1, Some("x".repeat(501)), None)
            .await,
    );
    expect_code(
        kit.shop
            .adjust_stock(seller, ProductId(999_999), 1, None, None)
            .await,
        "NOT_FOUND",
    );

    let ledger = kit.ledger(product).await;
    let rows: Vec<_> = ledger.iter().map(|e| (e.delta, e.reason)).collect();
    assert_eq!(
        rows,
        [
            (-3, StockReason::Adjust),
            (5, StockReason::Adjust),
            (10, StockReason::Initial)
        ]
    );
    assert_eq!(ledger[1].note.as_deref(), Some("restock"));
    kit.assert_ledger_consistent(product).await;
}

/// Product pages are cached briefly; every local change (order, cancel, expiry, adjustment,
/// update) must show on the very next read.
pub async fn a_product_page_never_shows_stock_from_before_a_change(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let p = kit.product(seller, 1_000, 10).await.id;
    let buyer = kit.funded_buyer(100_000).await;
    let stock = |kit: &Kit| {
        let shop = kit.shop.clone();
        async move { shop.get_product(None, p).await.unwrap().stock }
    };
    assert_eq!(stock(&kit).await, 10);
    let order = kit.order(buyer, &[(p, 3)]).await;
    assert_eq!(stock(&kit).await, 7);
    kit.shop.cancel_order(buyer, order.id, None).await.unwrap();
    assert_eq!(stock(&kit).await, 10);
    kit.shop
        .adjust_stock(seller, p, -4, None, None)
        .await
        .unwrap();
    assert_eq!(stock(&kit).await, 6);
    let update = ProductUpdate {
        price: Some(2_000),
        ..ProductUpdate::default()
    };
    kit.shop.update_product(seller, p, update).await.unwrap();
    assert_eq!(kit.shop.get_product(None, p).await.unwrap().price, 2_000);
}

/// List pages are cached like product pages: a new product, an order's stock movement and a
/// status change must show on the very next list read.
pub async fn a_list_page_never_shows_the_catalog_from_before_a_change(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let page = OffsetPage { page: 1, size: 100 };
    let listed = |kit: &Kit| {
        let shop = kit.shop.clone();
        async move {
            let paged = shop.list_products(None, None, page).await.unwrap();
            let rows: Vec<_> = paged.items.iter().map(|p| (p.id, p.stock)).collect();
            (paged.total_items, rows)
        }
    };
    let first = kit.product(seller, 1_000, 10).await.id;
    assert_eq!(listed(&kit).await, (1, vec![(first, 10)]));
    let second = kit.product(seller, 500, 4).await.id;
    let (total, rows) = listed(&kit).await;
    assert_eq!(total, 2, "a new product shows at once: {rows:?}");
    let buyer = kit.funded_buyer(100_000).await;
    kit.order(buyer, &[(first, 3)]).await;
    let (_, rows) = listed(&kit).await;
    assert!(
        rows.contains(&(first, 7)),
        "stock after the order: {rows:?}"
    );
    let off = ProductUpdate {
        status: Some(ProductStatus::Off),
        ..ProductUpdate::default()
    };
    kit.shop.update_product(seller, second, off).await.unwrap();
    assert_eq!(listed(&kit).await, (1, vec![(first, 7)]));
}
