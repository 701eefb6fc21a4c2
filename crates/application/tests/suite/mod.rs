//! The use-case test suite, written against a ready [`Shop`] and nothing else.
//!
//! Every case is `async fn(Shop)`. A backend (the memory adapters in `tests/memory.rs`,
//! PostgreSQL + Redis later) provides a factory for a fresh, empty `Shop` and runs every case
//! with [`run_suite!`]. The suite never reaches behind the ports: it keeps the backend's store,
//! gate, ranking, bus and idempotency store, and only wraps them ([`Kit`]) to move the clock,
//! make the broker, the gate or the ranking store fail, and see what was published.
//!
//! Cases run on a multi-thread runtime so that the concurrency cases race for real.

// Each backend uses every helper; `dead_code` cannot see across the test binaries. The cases
// are test code, but not `#[test]` functions, so clippy's allow-unwrap-in-tests misses them.
#![allow(dead_code, clippy::unwrap_used)]

pub mod catalog;
pub mod concurrency;
pub mod coupons;
pub mod idempotency;
pub mod jobs;
pub mod orders;
pub mod payments;
pub mod popular;
pub mod users;
pub mod wallet;

use application::{Actor, Ports, Shop, ShopConfig, ShopError};
use async_trait::async_trait;
use domain::coupon::{Coupon, CouponDraft, DiscountType};
use domain::order::{Order, OrderLine};
use domain::outbox::{EventEnvelope, OutboxEvent, OutboxStatus};
use domain::page::CursorPage;
use domain::ports::{
    Clock, CouponGate, EventPublisher, GateDecision, GateError, IssuedCounts, PublishError,
    RankingError, RankingRead, RankingStore,
};
use domain::product::{Product, ProductStatus};
use domain::sales::ProductSales;
use domain::user::Role;
use domain::wallet::WalletTransaction;
use domain::{CouponId, ProductId, UserId};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use time::{Date, Duration, OffsetDateTime};

/// Every case of the suite, as `module::case`. A backend runs them all with
/// `run_suite!(factory)`, where `factory` is an `async fn() -> Shop` giving a fresh shop.
macro_rules! run_suite {
    ($factory:path) => {
        run_suite!(@cases $factory;
            users::sign_up_creates_a_buyer_whose_token_authenticates,
            users::only_admins_create_sellers_and_admins,
            users::sign_up_rejects_bad_names,
            users::unknown_tokens_are_unauthenticated,
            users::ensure_admin_is_idempotent,
            users::users_see_themselves_and_admins_see_everyone,
            users::the_token_secret_is_stored_once_and_shared_by_every_shop,
            users::configured_keys_sign_and_the_stores_secret_mints_nothing,
            users::a_rolled_token_replaces_the_old_one_at_once,
            users::an_admin_reissues_a_lost_token_and_nobody_else_may,
            users::a_changed_admin_token_replaces_the_bootstrap_admins,
            users::concurrent_rolls_leave_exactly_one_working_token,
            wallet::charge_adds_to_the_balance_and_writes_a_charge_row,
            wallet::charges_below_the_minimum_are_invalid,
            wallet::charges_above_the_maximum_balance_are_refused_whole,
            wallet::history_is_newest_first_and_paged,
            wallet::concurrent_charges_never_lose_an_update,
            catalog::sellers_create_products_with_an_initial_ledger_row,
            catalog::a_product_page_never_shows_stock_from_before_a_change,
            catalog::a_list_page_never_shows_the_catalog_from_before_a_change,
            catalog::buyers_cannot_create_products_and_drafts_are_validated,
            catalog::buyers_list_only_products_on_sale,
            catalog::off_products_are_hidden_from_everyone_but_their_seller,
            catalog::only_the_owner_or_an_admin_changes_a_product,
            catalog::stock_adjustments_are_ledgered_and_never_go_negative,
            coupons::only_sellers_and_admins_create_coupons,
            coupons::issuing_persists_an_issued_coupon,
            coupons::issuance_respects_the_validity_window,
            coupons::per_user_limit_and_total_quantity_are_enforced,
            coupons::active_coupons_exclude_sold_out_and_inactive_ones,
            coupons::gate_down_issues_nothing,
            coupons::gate_counters_are_rebuilt_from_the_store,
            coupons::store_refusal_of_a_grant_is_answered_and_the_grant_returned,
            coupons::my_coupons_reports_expired_issues,
            coupons::async_issuance_answers_pending_and_persists_once,
            coupons::async_publish_failure_gives_the_grant_back,
            coupons::async_issuer_treats_a_store_refusal_as_poison,
            orders::placing_an_order_reserves_stock_and_snapshots_prices,
            orders::order_lines_are_validated,
            orders::unknown_products_are_not_found,
            orders::products_not_on_sale_cannot_be_ordered,
            orders::stock_reservation_is_all_or_nothing,
            orders::seller_coupon_discounts_only_that_sellers_items_end_to_end,
            orders::store_coupon_can_bring_the_total_to_zero,
            orders::percent_coupon_is_capped_and_minimum_is_enforced,
            orders::coupon_must_be_owned_unused_and_valid,
            orders::owners_and_admins_see_orders,
            orders::cancel_returns_stock_and_coupon,
            payments::paying_moves_money_and_records_everything_once,
            payments::insufficient_balance_records_a_failed_payment,
            payments::only_created_orders_within_their_window_are_payable,
            payments::only_the_owner_pays,
            payments::refund_gives_everything_back,
            payments::refund_may_exceed_the_maximum_balance,
            payments::refund_after_coupon_expiry_keeps_the_coupon_used,
            jobs::expiry_sweeper_cancels_only_due_orders,
            jobs::relay_publishes_each_ready_event_once,
            jobs::relay_backs_off_then_fails_and_an_admin_re_drives,
            jobs::relay_keeps_one_orders_events_in_order,
            jobs::outbox_admin_is_for_admins_only,
            popular::ranking_is_rebuilt_from_the_rollup_with_refunds_subtracted,
            popular::ranking_follows_events_and_ignores_redeliveries,
            popular::a_rebuild_racing_with_in_flight_events_counts_each_sale_once,
            popular::off_products_are_left_out,
            popular::rollup_answers_when_the_ranking_store_is_down,
            popular::window_follows_business_days,
            popular::bounds_are_validated,
            popular::answers_are_cached_briefly,
            idempotency::keys_replay_refuse_and_release,
            idempotency::a_committed_change_keeps_its_answer,
            idempotency::a_refused_change_leaves_the_key_to_its_refusal,
            idempotency::a_claim_taken_over_cannot_commit,
            concurrency::concurrent_orders_never_oversell,
            concurrency::concurrent_payments_never_overdraw,
            concurrency::coupon_burst_issues_exactly_the_quantity,
            concurrency::per_user_limit_holds_under_a_burst,
            concurrency::pay_and_cancel_race_has_one_winner,
            concurrency::double_payment_race_has_one_winner,
        );
    };
    (@cases $factory:path; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                suite::$module::$case($factory().await).await;
            }
        )*
    };
}

/// A clock that runs `offset` ahead of the backend's clock; cases move it forward.
pub struct ShiftedClock {
    inner: Arc<dyn Clock>,
    offset_ns: Mutex<i128>,
}

impl Clock for ShiftedClock {
    fn now(&self) -> OffsetDateTime {
        let offset = *self.offset_ns.lock().unwrap();
        self.inner.now() + Duration::nanoseconds_i128(offset)
    }
}

/// The backend's publisher, switchable to "broker down", remembering what it published.
pub struct SwitchPublisher {
    inner: Arc<dyn EventPublisher>,
    pub failing: AtomicBool,
    pub calls: AtomicUsize,
    published: Mutex<Vec<(String, EventEnvelope)>>,
}

#[async_trait]
impl EventPublisher for SwitchPublisher {
    async fn publish(&self, topic: &str, envelope: &EventEnvelope) -> Result<(), PublishError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(PublishError::Unavailable(
                "broker switched off by the test".into(),
            ));
        }
        self.inner.publish(topic, envelope).await?;
        self.published
            .lock()
            .unwrap()
            .push((topic.to_owned(), envelope.clone()));
        Ok(())
    }
}

impl SwitchPublisher {
    pub fn published(&self) -> Vec<(String, EventEnvelope)> {
        self.published.lock().unwrap().clone()
    }
}

/// The backend's ranking store, switchable to "Redis down".
pub struct SwitchRanking {
    inner: Arc<dyn RankingStore>,
    pub down: AtomicBool,
}

impl SwitchRanking {
    fn check(&self) -> Result<(), RankingError> {
        if self.down.load(Ordering::SeqCst) {
            Err(RankingError::Unavailable(
                "ranking switched off by the test".into(),
            ))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl RankingStore for SwitchRanking {
    async fn top(&self, days: &[Date], limit: usize) -> Result<RankingRead, RankingError> {
        self.check()?;
        self.inner.top(days, limit).await
    }

    async fn rebuild_day(&self, day: Date, totals: &[ProductSales]) -> Result<(), RankingError> {
        self.check()?;
        self.inner.rebuild_day(day, totals).await
    }
}

/// The backend's gate, switchable to "Redis down", counting what was given back.
pub struct SwitchGate {
    inner: Arc<dyn CouponGate>,
    pub down: AtomicBool,
    pub releases: AtomicUsize,
}

impl SwitchGate {
    fn check(&self) -> Result<(), GateError> {
        if self.down.load(Ordering::SeqCst) {
            Err(GateError::Unavailable(
                "gate switched off by the test".into(),
            ))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl CouponGate for SwitchGate {
    async fn try_acquire(&self, coupon: &Coupon, user: UserId) -> Result<GateDecision, GateError> {
        self.check()?;
        self.inner.try_acquire(coupon, user).await
    }

    async fn release(&self, coupon: CouponId, user: UserId) -> Result<(), GateError> {
        self.check()?;
        self.releases.fetch_add(1, Ordering::SeqCst);
        self.inner.release(coupon, user).await
    }

    async fn load(&self, coupon: &Coupon, counts: &IssuedCounts) -> Result<(), GateError> {
        self.check()?;
        self.inner.load(coupon, counts).await
    }
}

/// A shop wired to the backend's adapters through the test switches, plus helpers.
pub struct Kit {
    pub shop: Shop,
    pub clock: Arc<ShiftedClock>,
    pub publisher: Arc<SwitchPublisher>,
    pub ranking: Arc<SwitchRanking>,
    pub gate: Arc<SwitchGate>,
    pub admin: Actor,
    names: AtomicU64,
}

impl Kit {
    /// The backend's shop with the suite's switches and a test configuration (no popular
    /// cache, so that reads see every payment at once).
    pub async fn new(shop: Shop) -> Self {
        Self::with(shop, |_| {}).await
    }

    pub async fn with(shop: Shop, tune: impl FnOnce(&mut ShopConfig)) -> Self {
        let base = shop.ports().clone();
        let clock = Arc::new(ShiftedClock {
            inner: base.clock.clone(),
            offset_ns: Mutex::new(0),
        });
        let publisher = Arc::new(SwitchPublisher {
            inner: base.publisher.clone(),
            failing: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
            published: Mutex::new(Vec::new()),
        });
        let ranking = Arc::new(SwitchRanking {
            inner: base.ranking.clone(),
            down: AtomicBool::new(false),
        });
        let gate = Arc::new(SwitchGate {
            inner: base.gate.clone(),
            down: AtomicBool::new(false),
            releases: AtomicUsize::new(0),
        });
        let mut config = shop.config().clone();
        config.popular_cache_ttl = std::time::Duration::ZERO;
        tune(&mut config);
        let shop = Shop::new(
            Ports {
                store: base.store.clone(),
                gate: gate.clone(),
                ranking: ranking.clone(),
                publisher: publisher.clone(),
                idempotency: base.idempotency.clone(),
                clock: clock.clone(),
            },
            config,
        );
        let token = format!("suite-admin-{}", uuid::Uuid::new_v4());
        let admin = shop.ensure_admin(&token).await.expect("bootstrap admin");
        Self {
            shop,
            clock,
            publisher,
            ranking,
            gate,
            admin: Actor {
                user_id: admin.id,
                role: Role::Admin,
            },
            names: AtomicU64::new(0),
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub fn advance(&self, by: Duration) {
        *self.clock.offset_ns.lock().unwrap() += by.whole_nanoseconds();
    }

    pub async fn user(&self, role: Role) -> Actor {
        let n = self.names.fetch_add(1, Ordering::SeqCst);
        let name = format!("{}-{n}", role.as_str().to_lowercase());
        let signed = self
            .shop
            .sign_up(Some(self.admin), &name, Some(role), None)
            .await
            .expect("sign up");
        Actor {
            user_id: signed.user.id,
            role,
        }
    }

    pub async fn buyer(&self) -> Actor {
        self.user(Role::Buyer).await
    }

    pub async fn seller(&self) -> Actor {
        self.user(Role::Seller).await
    }

    /// A buyer whose wallet holds `balance`.
    pub async fn funded_buyer(&self, balance: i64) -> Actor {
        let buyer = self.buyer().await;
        if balance > 0 {
            self.shop
                .charge(buyer, balance, None)
                .await
                .expect("charge");
        }
        buyer
    }

    pub async fn product(&self, seller: Actor, price: i64, stock: i64) -> Product {
        self.shop
            .create_product(
                seller,
                application::catalog::ProductDraft {
                    name: format!("product-{}", self.names.fetch_add(1, Ordering::SeqCst)),
                    price,
                    stock,
                    status: None,
                },
                None,
            )
            .await
            .expect("create product")
    }

    pub async fn set_status(&self, product: ProductId, status: ProductStatus) -> Product {
        self.shop
            .update_product(
                self.admin,
                product,
                application::catalog::ProductUpdate {
                    status: Some(status),
                    ..Default::default()
                },
            )
            .await
            .expect("update product")
    }

    pub async fn stock(&self, product: ProductId) -> i64 {
        self.shop
            .get_product(Some(self.admin), product)
            .await
            .expect("product")
            .stock
    }

    pub async fn balance(&self, actor: Actor) -> i64 {
        self.shop.balance(actor).await.expect("balance").balance
    }

    pub async fn order(&self, buyer: Actor, lines: &[(ProductId, i64)]) -> Order {
        self.try_order(buyer, lines, None)
            .await
            .expect("place order")
    }

    pub async fn try_order(
        &self,
        buyer: Actor,
        lines: &[(ProductId, i64)],
        coupon: Option<domain::CouponIssueId>,
    ) -> Result<Order, ShopError> {
        self.shop
            .place_order(buyer, order_lines(lines), coupon, None)
            .await
    }

    /// An AMOUNT or PERCENT coupon active from now for a day.
    pub async fn coupon(&self, owner: Actor, shape: CouponShape) -> Coupon {
        self.shop
            .create_coupon(owner, shape.draft(self.now()), None)
            .await
            .expect("create coupon")
    }

    /// Issues `coupon` to `user` (sync mode) and returns the issue id.
    pub async fn issue(&self, coupon: CouponId, user: Actor) -> domain::CouponIssueId {
        match self
            .shop
            .issue_coupon(user, coupon, None)
            .await
            .expect("issue")
        {
            application::coupons::IssueOutcome::Issued(issue) => issue.id,
            other => panic!("expected a synchronous issue, got {other:?}"),
        }
    }

    /// Every wallet transaction of `actor`, newest first.
    pub async fn wallet_rows(&self, actor: Actor) -> Vec<WalletTransaction> {
        let mut rows = Vec::new();
        let mut before = None;
        loop {
            let page = self
                .shop
                .wallet_transactions(actor, CursorPage { before, limit: 100 })
                .await
                .expect("wallet history");
            rows.extend(page.items);
            match page.next {
                Some(next) => before = Some(next),
                None => return rows,
            }
        }
    }

    /// Every ledger row of `product`, newest first.
    pub async fn ledger(&self, product: ProductId) -> Vec<domain::product::StockLedgerEntry> {
        let mut rows = Vec::new();
        let mut before = None;
        loop {
            let page = self
                .shop
                .stock_ledger(self.admin, product, CursorPage { before, limit: 100 })
                .await
                .expect("ledger");
            rows.extend(page.items);
            match page.next {
                Some(next) => before = Some(next),
                None => return rows,
            }
        }
    }

    /// Every outbox row, newest first, optionally of one status.
    pub async fn outbox(&self, status: Option<OutboxStatus>) -> Vec<OutboxEvent> {
        let mut rows = Vec::new();
        let mut before = None;
        loop {
            let page = self
                .shop
                .outbox(self.admin, status, CursorPage { before, limit: 100 })
                .await
                .expect("outbox");
            rows.extend(page.items);
            match page.next {
                Some(next) => before = Some(next),
                None => return rows,
            }
        }
    }

    /// RULES.md: balance = sum of the wallet's transaction amounts, never negative.
    pub async fn assert_wallet_consistent(&self, actor: Actor) {
        let balance = self.balance(actor).await;
        let sum: i64 = self.wallet_rows(actor).await.iter().map(|t| t.amount).sum();
        assert_eq!(
            balance, sum,
            "balance of user {} vs its transactions",
            actor.user_id
        );
        assert!(balance >= 0);
    }

    /// RULES.md: stock = sum of the product's ledger deltas, never negative.
    pub async fn assert_ledger_consistent(&self, product: ProductId) {
        let stock = self.stock(product).await;
        let sum: i64 = self.ledger(product).await.iter().map(|e| e.delta).sum();
        assert_eq!(stock, sum, "stock of product {product} vs its ledger");
        assert!(stock >= 0);
    }
}

pub fn order_lines(lines: &[(ProductId, i64)]) -> Vec<OrderLine> {
    lines
        .iter()
        .map(|&(product_id, quantity)| OrderLine {
            product_id,
            quantity,
        })
        .collect()
}

/// The shape of a test coupon.
#[derive(Debug, Clone, Copy)]
pub struct CouponShape {
    pub discount_type: DiscountType,
    pub amount: Option<i64>,
    pub percent: Option<i64>,
    pub max_discount: Option<i64>,
    pub min_order_amount: Option<i64>,
    pub total_quantity: i64,
    pub per_user_limit: Option<i64>,
    /// Starts this long after now (may be zero).
    pub starts_in: Duration,
    pub lasts: Duration,
}

impl CouponShape {
    pub fn amount(amount: i64, total_quantity: i64) -> Self {
        Self {
            discount_type: DiscountType::Amount,
            amount: Some(amount),
            percent: None,
            max_discount: None,
            min_order_amount: None,
            total_quantity,
            per_user_limit: None,
            starts_in: Duration::ZERO,
            lasts: Duration::days(1),
        }
    }

    pub fn percent(percent: i64, max_discount: Option<i64>, total_quantity: i64) -> Self {
        Self {
            discount_type: DiscountType::Percent,
            amount: None,
            percent: Some(percent),
            max_discount,
            ..Self::amount(0, total_quantity)
        }
    }

    pub fn draft(self, now: OffsetDateTime) -> CouponDraft {
        let starts_at = now + self.starts_in;
        CouponDraft {
            name: "suite coupon".into(),
            discount_type: self.discount_type,
            amount: self.amount,
            percent: self.percent,
            max_discount: self.max_discount,
            min_order_amount: self.min_order_amount,
            total_quantity: self.total_quantity,
            per_user_limit: self.per_user_limit,
            starts_at,
            expires_at: starts_at + self.lasts,
        }
    }
}

/// Asserts that `result` is the error `code` and returns its detail text.
#[track_caller]
pub fn expect_code<T: std::fmt::Debug>(result: Result<T, ShopError>, code: &str) -> String {
    match result {
        Err(e) if e.code() == code => e.to_string(),
        other => panic!("expected {code}, got {other:?}"),
    }
}

/// The fields named by a `Validation` error.
#[track_caller]
pub fn invalid_fields<T: std::fmt::Debug>(result: Result<T, ShopError>) -> Vec<String> {
    match result {
        Err(ShopError::Validation(errors)) => errors.into_iter().map(|e| e.field).collect(),
        other => panic!("expected VALIDATION_FAILED, got {other:?}"),
    }
}
