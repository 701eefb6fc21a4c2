//! Popular products: the ranking store, its rebuild from the roll-up, events, fallback.

use super::{Kit, invalid_fields};
use application::Shop;
use application::popular::Popular;
use domain::ProductId;
use domain::ports::EventHandler;
use domain::product::ProductStatus;
use std::sync::atomic::Ordering;
use time::Duration;

/// (product, sold quantity) in rank order, checking that ranks count from 1.
fn ranked(popular: &Popular) -> Vec<(ProductId, i64)> {
    for (i, item) in popular.items.iter().enumerate() {
        assert_eq!(item.rank as usize, i + 1);
    }
    popular
        .items
        .iter()
        .map(|i| (i.product.id, i.sold_quantity))
        .collect()
}

/// Places and pays one order of `quantity` units of `product`; returns the order id.
async fn sell(
    kit: &Kit,
    buyer: application::Actor,
    product: ProductId,
    quantity: i64,
) -> domain::OrderId {
    let order = kit.order(buyer, &[(product, quantity)]).await;
    kit.shop.pay(buyer, order.id, None).await.unwrap();
    order.id
}

/// Relays the outbox and feeds everything published to the ranking updater.
async fn feed_ranking(kit: &Kit, from: usize) -> usize {
    kit.shop.relay_outbox_once(100).await.unwrap();
    let updater = kit.shop.ranking_updater();
    let published = kit.publisher.published();
    for (topic, event) in &published[from..] {
        assert!(updater.topics().contains(&topic.as_str()));
        updater.handle(event).await.unwrap();
    }
    published.len()
}

pub async fn ranking_is_rebuilt_from_the_rollup_with_refunds_subtracted(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let a = kit.product(seller, 1_000, 100).await.id;
    let b = kit.product(seller, 1_000, 100).await.id;
    let c = kit.product(seller, 1_000, 100).await.id;
    let buyer = kit.funded_buyer(1_000_000).await;
    sell(&kit, buyer, a, 3).await;
    let refunded = sell(&kit, buyer, a, 3).await;
    sell(&kit, buyer, b, 4).await;
    sell(&kit, buyer, c, 3).await;
    // An unpaid order does not count.
    kit.order(buyer, &[(c, 50)]).await;
    kit.shop.cancel_order(buyer, refunded, None).await.unwrap();

    let popular = kit.shop.popular_products(3, 5).await.unwrap();
    // Net quantities; the tie between a and c goes to the lower id.
    assert_eq!(ranked(&popular), [(b, 4), (a, 3), (c, 3)]);
    let today = kit.shop.config().calendar.day_of(kit.now());
    assert_eq!(
        (popular.from, popular.to),
        (today - Duration::days(2), today)
    );
    assert_eq!(popular.items[0].product.price, 1_000);
    let top_one = kit.shop.popular_products(3, 1).await.unwrap();
    assert_eq!(ranked(&top_one), [(b, 4)]);
}

pub async fn ranking_follows_events_and_ignores_redeliveries(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let a = kit.product(seller, 1_000, 100).await.id;
    let b = kit.product(seller, 1_000, 100).await.id;
    let buyer = kit.funded_buyer(1_000_000).await;
    // Build the window first: from now on the ranking store only learns through events.
    assert!(
        kit.shop
            .popular_products(3, 5)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    sell(&kit, buyer, a, 2).await;
    let refunded = sell(&kit, buyer, b, 5).await;
    let seen = feed_ranking(&kit, 0).await;
    assert_eq!(seen, 2);
    assert_eq!(
        ranked(&kit.shop.popular_products(3, 5).await.unwrap()),
        [(b, 5), (a, 2)]
    );

    // A redelivered event counts once.
    let updater = kit.shop.ranking_updater();
    for (_, event) in kit.publisher.published() {
        updater.handle(&event).await.unwrap();
    }
    assert_eq!(
        ranked(&kit.shop.popular_products(3, 5).await.unwrap()),
        [(b, 5), (a, 2)]
    );

    kit.shop.cancel_order(buyer, refunded, None).await.unwrap();
    feed_ranking(&kit, seen).await;
    assert_eq!(
        ranked(&kit.shop.popular_products(3, 5).await.unwrap()),
        [(a, 2)]
    );
}

/// A day rebuilt from the roll-up while payment events are still on their way must not count
/// those payments again when the events arrive (the bench found 81 units ranked for 45 sold).
pub async fn a_rebuild_racing_with_in_flight_events_counts_each_sale_once(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let a = kit.product(seller, 1_000, 100).await.id;
    let buyer = kit.funded_buyer(1_000_000).await;
    sell(&kit, buyer, a, 2).await;
    // The first read rebuilds the window from the roll-up, which already holds the sale...
    assert_eq!(
        ranked(&kit.shop.popular_products(3, 5).await.unwrap()),
        [(a, 2)]
    );
    // ...and then its event arrives (other limits: the answers are not cached).
    feed_ranking(&kit, 0).await;
    assert_eq!(
        ranked(&kit.shop.popular_products(3, 6).await.unwrap()),
        [(a, 2)]
    );
    sell(&kit, buyer, a, 1).await;
    feed_ranking(&kit, 1).await;
    assert_eq!(
        ranked(&kit.shop.popular_products(3, 7).await.unwrap()),
        [(a, 3)]
    );
}

pub async fn off_products_are_left_out(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let buyer = kit.funded_buyer(1_000_000).await;
    let mut products = Vec::new();
    for quantity in [5, 4, 3, 2] {
        let p = kit.product(seller, 1_000, 100).await.id;
        sell(&kit, buyer, p, quantity).await;
        products.push(p);
    }
    let [a, b, c, d] = products[..] else {
        unreachable!()
    };
    kit.set_status(a, ProductStatus::Off).await;
    kit.set_status(c, ProductStatus::Paused).await;
    // The top two are asked for; the first page (a, b) loses a, so more are fetched.
    assert_eq!(
        ranked(&kit.shop.popular_products(3, 2).await.unwrap()),
        [(b, 4), (c, 3)]
    );
    assert_eq!(
        ranked(&kit.shop.popular_products(3, 5).await.unwrap()),
        [(b, 4), (c, 3), (d, 2)]
    );
    kit.ranking.down.store(true, Ordering::SeqCst);
    assert_eq!(
        ranked(&kit.shop.popular_products(3, 2).await.unwrap()),
        [(b, 4), (c, 3)]
    );
}

pub async fn rollup_answers_when_the_ranking_store_is_down(shop: Shop) {
    let kit = Kit::new(shop).await;
    let seller = kit.seller().await;
    let a = kit.product(seller, 1_000, 100).await.id;
    let b = kit.product(seller, 1_000, 100).await.id;
    let buyer = kit.funded_buyer(1_000_000).await;
    kit.ranking.down.store(true, Ordering::SeqCst);
    sell(&kit, buyer, a, 2).await;
    let refunded = sell(&kit, buyer, b, 7).await;
    sell(&kit, buyer, b, 1).await;
    assert_eq!(
        ranked(&kit.shop.popular_products(3, 5).await.unwrap()),
        [(b, 8), (a, 2)]
    );
    kit.shop.cancel_order(buyer, refunded, None).await.unwrap();
    // Straight from the roll-up: the refund shows at once, without any event.
    assert_eq!(
        ranked(&kit.shop.popular_products(3, 5).await.unwrap()),
        [(a, 2), (b, 1)]
    );
    // Back up: the ranking store is rebuilt from the same roll-up and agrees.
    kit.ranking.down.store(false, Ordering::SeqCst);
    assert_eq!(
        ranked(&kit.shop.popular_products(3, 5).await.unwrap()),
        [(a, 2), (b, 1)]
    );
}

pub async fn window_follows_business_days(shop: Shop) {
    let kit = Kit::new(shop).await;
    let calendar = kit.shop.config().calendar;
    let seller = kit.seller().await;
    let a = kit.product(seller, 1_000, 100).await.id;
    let b = kit.product(seller, 1_000, 100).await.id;
    let buyer = kit.funded_buyer(1_000_000).await;
    let first_day = calendar.day_of(kit.now());
    sell(&kit, buyer, a, 2).await;
    kit.advance(Duration::days(1));
    sell(&kit, buyer, b, 1).await;
    kit.advance(Duration::days(2));
    let today = calendar.day_of(kit.now());
    assert_eq!(today, first_day + Duration::days(3));
    let three = kit.shop.popular_products(3, 5).await.unwrap();
    assert_eq!((three.from, three.to), (today - Duration::days(2), today));
    assert_eq!(ranked(&three), [(b, 1)]);
    let four = kit.shop.popular_products(4, 5).await.unwrap();
    assert_eq!(four.from, first_day);
    assert_eq!(ranked(&four), [(a, 2), (b, 1)]);
    let one = kit.shop.popular_products(1, 5).await.unwrap();
    assert_eq!((one.from, one.to, one.items.len()), (today, today, 0));
}

pub async fn bounds_are_validated(shop: Shop) {
    let kit = Kit::new(shop).await;
    assert_eq!(
        invalid_fields(kit.shop.popular_products(0, 5).await),
        ["days"]
    );
    assert_eq!(
        invalid_fields(kit.shop.popular_products(31, 5).await),
        ["days"]
    );
    assert_eq!(
        invalid_fields(kit.shop.popular_products(3, 0).await),
        ["limit"]
    );
    assert_eq!(
        invalid_fields(kit.shop.popular_products(3, 51).await),
        ["limit"]
    );
    assert!(kit.shop.popular_products(30, 50).await.is_ok());
    assert!(kit.shop.popular_products(1, 1).await.is_ok());
}

pub async fn answers_are_cached_briefly(shop: Shop) {
    let kit = Kit::with(shop, |c| {
        c.popular_cache_ttl = std::time::Duration::from_secs(600)
    })
    .await;
    let seller = kit.seller().await;
    let a = kit.product(seller, 1_000, 100).await.id;
    let b = kit.product(seller, 1_000, 100).await.id;
    let buyer = kit.funded_buyer(1_000_000).await;
    // Reads go to the roll-up, which sees every payment at once: any staleness is the cache.
    kit.ranking.down.store(true, Ordering::SeqCst);
    sell(&kit, buyer, a, 1).await;
    assert_eq!(
        ranked(&kit.shop.popular_products(3, 5).await.unwrap()),
        [(a, 1)]
    );
    sell(&kit, buyer, b, 2).await;
    assert_eq!(
        ranked(&kit.shop.popular_products(3, 5).await.unwrap()),
        [(a, 1)]
    );
    // Another (days, limit) is another answer.
    assert_eq!(
        ranked(&kit.shop.popular_products(3, 4).await.unwrap()),
        [(b, 2), (a, 1)]
    );
    // A new business day is another window, whatever the cache's age.
    kit.advance(Duration::days(1));
    assert_eq!(
        ranked(&kit.shop.popular_products(3, 5).await.unwrap()),
        [(b, 2), (a, 1)]
    );
}
