//! Test databases come from `persistence_diesel::test_db` (one migrated template, one fresh
//! clone per test); [`TestDb`] adds the store under test and raw connections for assertions.
#![allow(dead_code, clippy::unwrap_used)]

use diesel_async::AsyncPgConnection;
use persistence_diesel::test_db::FreshDatabase;
use persistence_diesel::{PgConfig, PgStore, Session};

/// A fresh, migrated database for one test with a store on it, dropped with this value.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub store: PgStore,
    database: FreshDatabase,
}

impl TestDb {
    pub async fn new() -> Self {
        Self::with_config(|_| {}).await
    }

    pub async fn with_config(adjust: impl FnOnce(&mut PgConfig)) -> Self {
        let database = FreshDatabase::new().await;
        let mut config = PgConfig::new(database.url.clone());
        adjust(&mut config);
        let store = persistence_diesel::connect(&config)
            .await
            .expect("connect to the test database");
        Self {
            name: database.name.clone(),
            url: database.url.clone(),
            store,
            database,
        }
    }

    /// A plain session on this database, outside the store's pool (for assertions).
    pub async fn raw(&self) -> Session {
        Session::connect(&self.url).await.expect("raw connection")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Close the pool first; `database` then drops the database itself.
        self.store.close();
    }
}

/// One `bigint` from an arbitrary SQL expression, on a raw connection.
pub async fn scalar(conn: &mut AsyncPgConnection, expression: &str) -> i64 {
    use diesel_async::RunQueryDsl;
    diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(expression))
        .get_result::<i64>(conn)
        .await
        .unwrap_or_else(|e| panic!("{expression}: {e}"))
}

pub mod fixtures {
    //! Rows every test needs, created through the ports themselves.
    use domain::coupon::{Coupon, CouponScope, Discount, NewCoupon};
    use domain::order::{NewOrder, Order, OrderItem};
    use domain::ports::{Transaction, UnitOfWork, WalletChange};
    use domain::product::{NewProduct, Product, ProductStatus};
    use domain::user::{NewUser, Role, TokenHash, User, UserName};
    use domain::wallet::WalletTransactionType;
    use time::OffsetDateTime;
    use time::macros::datetime;

    pub const NOW: OffsetDateTime = datetime!(2026-11-21 09:30 UTC);

    pub async fn user(tx: &mut dyn Transaction, role: Role) -> User {
        let token = uuid::Uuid::new_v4().simple().to_string();
        tx.users()
            .insert(NewUser {
                name: UserName::new("kim").unwrap(),
                role,
                token_hash: TokenHash(token),
                created_at: NOW,
            })
            .await
            .unwrap()
    }

    pub async fn product(
        tx: &mut dyn Transaction,
        seller: &User,
        price: i64,
        stock: i64,
    ) -> Product {
        tx.products()
            .insert(NewProduct {
                seller_id: seller.id,
                name: format!("tea {price}"),
                price,
                stock,
                status: ProductStatus::OnSale,
                created_at: NOW,
            })
            .await
            .unwrap()
    }

    pub fn new_coupon(seller: &User, total: i64, per_user: i64) -> NewCoupon {
        NewCoupon {
            seller_id: seller.id,
            scope: CouponScope::Seller(seller.id),
            name: "welcome".into(),
            discount: Discount::Amount(1_000),
            min_order_amount: 0,
            total_quantity: total,
            per_user_limit: per_user,
            starts_at: NOW - time::Duration::HOUR,
            expires_at: NOW + time::Duration::DAY,
            created_at: NOW,
        }
    }

    pub async fn coupon(
        tx: &mut dyn Transaction,
        seller: &User,
        total: i64,
        per_user: i64,
    ) -> Coupon {
        tx.coupons()
            .insert(new_coupon(seller, total, per_user))
            .await
            .unwrap()
    }

    pub fn new_order(buyer: &User, lines: &[(&Product, i64)]) -> NewOrder {
        let items: Vec<OrderItem> = lines
            .iter()
            .map(|(p, quantity)| OrderItem {
                product_id: p.id,
                seller_id: p.seller_id,
                name: p.name.clone(),
                unit_price: p.price,
                quantity: *quantity,
                subtotal: p.price * quantity,
            })
            .collect();
        let subtotal = items.iter().map(|i| i.subtotal).sum();
        NewOrder {
            user_id: buyer.id,
            items,
            subtotal,
            discount: 0,
            total_amount: subtotal,
            coupon_issue_id: None,
            created_at: NOW,
            expires_at: NOW + time::Duration::minutes(15),
        }
    }

    pub async fn order(tx: &mut dyn Transaction, buyer: &User, lines: &[(&Product, i64)]) -> Order {
        tx.orders().insert(new_order(buyer, lines)).await.unwrap()
    }

    pub async fn charge(tx: &mut dyn Transaction, user: &User, amount: i64) {
        tx.wallets()
            .apply(WalletChange {
                user_id: user.id,
                kind: WalletTransactionType::Charge,
                amount,
                max_balance: None,
                order_id: None,
                at: NOW,
            })
            .await
            .unwrap();
    }

    /// A committed buyer, seller and product with `stock`.
    pub async fn shop(store: &dyn UnitOfWork, stock: i64) -> (User, User, Product) {
        let mut tx = store.begin().await.unwrap();
        let seller = user(tx.as_mut(), Role::Seller).await;
        let buyer = user(tx.as_mut(), Role::Buyer).await;
        let product = product(tx.as_mut(), &seller, 1_000, stock).await;
        tx.commit().await.unwrap();
        (buyer, seller, product)
    }
}
