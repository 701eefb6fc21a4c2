use crate::common::TestDb;
use crate::common::fixtures::{NOW, product, user};
use domain::ProductId;
use domain::ports::UnitOfWork;
use domain::product::{ProductPatch, ProductStatus};
use domain::sales::ProductSales;
use domain::user::Role;
use time::macros::date;

fn s(product: ProductId, quantity: i64) -> ProductSales {
    ProductSales {
        product_id: product,
        quantity,
    }
}

#[tokio::test]
async fn add_upserts_signed_deltas_per_product_and_day() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let seller = user(tx.as_mut(), Role::Seller).await;
    let (a, b) = (
        product(tx.as_mut(), &seller, 1, 100).await.id,
        product(tx.as_mut(), &seller, 2, 100).await.id,
    );
    let day = date!(2026 - 11 - 21);
    // Repeated products within one call are merged; zero changes nothing.
    tx.sales()
        .add(day, &[s(b, 2), s(a, 3), s(b, 1)])
        .await
        .unwrap();
    tx.sales().add(day, &[s(a, -1), s(b, 0)]).await.unwrap();
    tx.sales()
        .add(date!(2026 - 11 - 22), &[s(a, 5)])
        .await
        .unwrap();
    tx.sales().add(day, &[]).await.unwrap();
    tx.commit().await.unwrap();

    let mut read = db.store.read().await.unwrap();
    assert_eq!(
        read.sales().day_totals(day).await.unwrap(),
        vec![s(a, 2), s(b, 3)]
    );
    assert_eq!(
        read.sales()
            .day_totals(date!(2026 - 11 - 22))
            .await
            .unwrap(),
        vec![s(a, 5)]
    );
    assert!(
        read.sales()
            .day_totals(date!(2026 - 11 - 23))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn top_ranks_net_quantities_over_the_window() {
    let db = TestDb::new().await;
    let mut tx = db.store.begin().await.unwrap();
    let seller = user(tx.as_mut(), Role::Seller).await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(product(tx.as_mut(), &seller, 1, 100).await.id);
    }
    let (d1, d2, d3, outside) = (
        date!(2026 - 11 - 19),
        date!(2026 - 11 - 20),
        date!(2026 - 11 - 21),
        date!(2026 - 11 - 18),
    );
    tx.sales()
        .add(d1, &[s(ids[0], 4), s(ids[1], 1)])
        .await
        .unwrap();
    tx.sales()
        .add(d2, &[s(ids[1], 3), s(ids[2], 4), s(ids[3], 9)])
        .await
        .unwrap();
    // Refunded to zero and below: left out. OFF products: left out.
    tx.sales()
        .add(d3, &[s(ids[4], 2), s(ids[3], 0)])
        .await
        .unwrap();
    tx.sales()
        .add(d3, &[s(ids[4], -2), s(ids[5], -1)])
        .await
        .unwrap();
    tx.sales().add(outside, &[s(ids[0], 100)]).await.unwrap();
    tx.products()
        .patch(
            ids[3],
            &ProductPatch {
                status: Some(ProductStatus::Off),
                ..ProductPatch::default()
            },
            NOW,
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut read = db.store.read().await.unwrap();
    // ids[0], ids[1] and ids[2] all have 4: ties go to the lower id.
    assert_eq!(
        read.sales().top(d1, d3, 10).await.unwrap(),
        vec![s(ids[0], 4), s(ids[1], 4), s(ids[2], 4)]
    );
    assert_eq!(
        read.sales().top(d1, d3, 2).await.unwrap(),
        vec![s(ids[0], 4), s(ids[1], 4)]
    );
    assert_eq!(
        read.sales().top(d2, d3, 10).await.unwrap(),
        vec![s(ids[2], 4), s(ids[1], 3)]
    );
    assert_eq!(
        read.sales().top(outside, outside, 10).await.unwrap(),
        vec![s(ids[0], 100)]
    );
}
