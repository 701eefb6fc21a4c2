//! The transactional store: repositories reached through a unit of work.
//!
//! A use case that changes several aggregates (place order, pay, cancel) opens one
//! [`Transaction`], works through its repositories and commits; dropping it without commit
//! rolls everything back. Hot rows (stock, wallet balance, coupon counters, order status) are
//! changed by *conditional* operations (`UPDATE ... WHERE stock + delta >= 0 RETURNING`), never
//! read-modify-write, so transactions stay short and correct under any concurrency. When a use
//! case changes several rows of one kind it does so in ascending id order, so that concurrent
//! transactions never deadlock.

use super::RepoError;
use crate::coupon::{Coupon, CouponIssue, NewCoupon, NewCouponIssue};
use crate::order::{NewOrder, Order, OrderStatus};
use crate::outbox::{EventEnvelope, OutboxEvent, OutboxStatus};
use crate::page::{CursorPage, OffsetPage, Paged, Slice};
use crate::payment::{NewPayment, Payment};
use crate::product::{
    NewProduct, Product, ProductPatch, ProductStatus, StockChange, StockLedgerEntry,
};
use crate::sales::ProductSales;
use crate::user::{NewUser, TokenHash, TokenSecret, TokenVersion, User};
use crate::wallet::{Wallet, WalletTransaction, WalletTransactionType};
use crate::{CouponId, CouponIssueId, OrderId, OutboxId, PaymentId, ProductId, UserId};
use async_trait::async_trait;
use time::{Date, OffsetDateTime};

/// Opens transactions on the store.
#[async_trait]
pub trait UnitOfWork: Send + Sync {
    /// Starts an atomic unit: changes made through it become visible together on
    /// [`Transaction::commit`], or not at all when it is dropped.
    ///
    /// # Errors
    /// `RepoError::Unavailable` when the store cannot be reached within its wait timeout.
    async fn begin(&self) -> Result<Box<dyn Transaction>, RepoError>;

    /// A read-only view for queries that need no atomicity (cheaper: no BEGIN/COMMIT on a
    /// database). Writes through it are a bug; its `commit` is a no-op.
    async fn read(&self) -> Result<Box<dyn Transaction>, RepoError>;
}

/// One open unit of work.
#[async_trait]
pub trait Transaction: Send {
    fn users(&mut self) -> &mut dyn UserRepository;
    fn wallets(&mut self) -> &mut dyn WalletRepository;
    fn products(&mut self) -> &mut dyn ProductRepository;
    fn coupons(&mut self) -> &mut dyn CouponRepository;
    fn orders(&mut self) -> &mut dyn OrderRepository;
    fn payments(&mut self) -> &mut dyn PaymentRepository;
    fn sales(&mut self) -> &mut dyn SalesRepository;
    fn outbox(&mut self) -> &mut dyn OutboxRepository;
    fn inbox(&mut self) -> &mut dyn InboxRepository;
    /// `Idempotency-Key` answers stored with the change they answer.
    fn idempotency(&mut self) -> &mut dyn super::IdempotencyRecords;

    /// Makes every change visible at once.
    ///
    /// # Errors
    /// `Conflict` when the store aborted the transaction (nothing was applied), `Unavailable`
    /// when the connection was lost (the outcome is then unknown to the caller).
    async fn commit(self: Box<Self>) -> Result<(), RepoError>;
}

#[async_trait]
pub trait UserRepository: Send {
    /// Creates the user and its empty wallet (balance 0).
    async fn insert(&mut self, user: NewUser) -> Result<User, RepoError>;
    async fn get(&mut self, id: UserId) -> Result<Option<User>, RepoError>;
    async fn find_by_token(&mut self, token: &TokenHash) -> Result<Option<User>, RepoError>;

    /// The store's token-signing secret: the stored one, or `proposed` once it has been stored
    /// because there was none (first start). Every caller, concurrent first starts included,
    /// gets the same secret; it never changes afterwards. Needs a transaction from `begin()`.
    ///
    /// # Errors
    /// `Conflict` when a concurrent first start made this attempt fail (run it again).
    async fn token_secret(&mut self, proposed: TokenSecret) -> Result<TokenSecret, RepoError>;

    /// The user's current token version (`None` for an unknown user). A signed token is valid
    /// only while the version it carries is this one.
    async fn token_version(&mut self, id: UserId) -> Result<Option<TokenVersion>, RepoError>;

    /// Replaces the user's token: stores `token_hash` and increments the token version by one,
    /// atomically, returning the user and the new version (`None` for an unknown user, nothing
    /// changed). Concurrent replacements of one user are serialized and each gets a distinct
    /// version, so the last one to commit holds the highest version and the only valid token.
    ///
    /// # Errors
    /// `Conflict` when `token_hash` is another user's (hashes are unique).
    async fn replace_token(
        &mut self,
        id: UserId,
        token_hash: TokenHash,
    ) -> Result<Option<(User, TokenVersion)>, RepoError>;

    /// The oldest ADMIN named `name` (the bootstrap administrator is the first user a shop
    /// creates, with a fixed name), if any.
    async fn oldest_admin_named(&mut self, name: &str) -> Result<Option<User>, RepoError>;
}

/// A signed change of one wallet, applied only if its conditions hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletChange {
    pub user_id: UserId,
    pub kind: WalletTransactionType,
    /// Negative for a payment.
    pub amount: i64,
    /// Refuse if the balance after the change would exceed this (charges); `None` for refunds,
    /// which give back money the user already had.
    pub max_balance: Option<i64>,
    pub order_id: Option<OrderId>,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalletChangeError {
    #[error("balance {balance} is not enough")]
    Insufficient { balance: i64 },
    #[error("balance {balance} would exceed the maximum")]
    LimitExceeded { balance: i64 },
    #[error("no wallet")]
    NotFound,
    #[error(transparent)]
    Repo(#[from] RepoError),
}

#[async_trait]
pub trait WalletRepository: Send {
    async fn get(&mut self, user: UserId) -> Result<Option<Wallet>, RepoError>;

    /// Adds `change.amount` to the balance and writes the transaction row, atomically and only
    /// if the balance stays `>= 0` and (when set) `<= max_balance`.
    ///
    /// # Errors
    /// MUST return `Insufficient`/`LimitExceeded` with the current balance and change nothing
    /// when a condition fails; `NotFound` when the user has no wallet.
    async fn apply(
        &mut self,
        change: WalletChange,
    ) -> Result<(Wallet, WalletTransaction), WalletChangeError>;

    /// Newest first.
    async fn transactions(
        &mut self,
        user: UserId,
        page: CursorPage,
    ) -> Result<Slice<WalletTransaction>, RepoError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockChangeError {
    /// The stock would leave `0..=MAX_STOCK`.
    #[error("only {available} left")]
    Insufficient { available: i64 },
    #[error("no such product")]
    NotFound,
    #[error(transparent)]
    Repo(#[from] RepoError),
}

#[async_trait]
pub trait ProductRepository: Send {
    /// Creates the product and its `INITIAL` ledger row (delta = initial stock).
    async fn insert(&mut self, product: NewProduct) -> Result<Product, RepoError>;
    async fn get(&mut self, id: ProductId) -> Result<Option<Product>, RepoError>;
    /// The products that exist among `ids`, in any order.
    async fn get_many(&mut self, ids: &[ProductId]) -> Result<Vec<Product>, RepoError>;
    /// `Ok(None)` when the product does not exist.
    async fn patch(
        &mut self,
        id: ProductId,
        patch: &ProductPatch,
        at: OffsetDateTime,
    ) -> Result<Option<Product>, RepoError>;

    /// Moves stock by `change.delta` and writes the ledger row, only if the stock stays within
    /// `0..=MAX_STOCK` (a conditional update: no oversell under any concurrency).
    ///
    /// # Errors
    /// MUST return `Insufficient { available }` and change nothing when the condition fails.
    async fn change_stock(&mut self, change: StockChange) -> Result<Product, StockChangeError>;

    /// Ordered by id ascending; `status: None` means every status.
    async fn list(
        &mut self,
        status: Option<ProductStatus>,
        page: OffsetPage,
    ) -> Result<Paged<Product>, RepoError>;

    /// Newest first.
    async fn ledger(
        &mut self,
        id: ProductId,
        page: CursorPage,
    ) -> Result<Slice<StockLedgerEntry>, RepoError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    #[error("sold out")]
    SoldOut,
    #[error("per-user limit reached")]
    LimitReached,
    #[error("no such coupon")]
    NotFound,
    #[error(transparent)]
    Repo(#[from] RepoError),
}

#[async_trait]
pub trait CouponRepository: Send {
    async fn insert(&mut self, coupon: NewCoupon) -> Result<Coupon, RepoError>;
    async fn get(&mut self, id: CouponId) -> Result<Option<Coupon>, RepoError>;
    /// Coupons with `starts_at <= now < expires_at` and quantity left, newest first.
    async fn list_active(&mut self, now: OffsetDateTime) -> Result<Vec<Coupon>, RepoError>;

    /// Persists one issue: increments `issued_quantity` only while it is below
    /// `total_quantity`, and gives the user the next sequence number only while it is below
    /// `per_user_limit` (unique (coupon, user, seq)). This is the source of truth behind the gate.
    ///
    /// # Errors
    /// `SoldOut` / `LimitReached` with nothing changed.
    async fn issue(&mut self, issue: NewCouponIssue) -> Result<CouponIssue, IssueError>;

    /// Persists many issues of one coupon at once (a burst's grants, grouped so that they
    /// share one transaction and one commit). Exactly as if [`Self::issue`] were called for
    /// each item in input order inside this transaction: one result per item, in input order,
    /// each an issue or a refusal (`SoldOut`, `LimitReached`, `NotFound`) that changed nothing
    /// for that item. Adapters may override it to take the coupon row once for the batch.
    ///
    /// # Errors
    /// A store failure ends the whole batch (`Err`), never one item: the transaction must then
    /// be dropped, as nothing of it may be committed.
    async fn issue_batch(
        &mut self,
        issues: &[NewCouponIssue],
    ) -> Result<Vec<Result<CouponIssue, IssueError>>, RepoError> {
        let mut results = Vec::with_capacity(issues.len());
        for issue in issues {
            match self.issue(issue.clone()).await {
                Err(IssueError::Repo(e)) => return Err(e),
                refused_or_issued => results.push(refused_or_issued),
            }
        }
        Ok(results)
    }

    /// What the gate is rebuilt from.
    async fn issued_counts(&mut self, id: CouponId) -> Result<super::IssuedCounts, RepoError>;

    async fn get_issue(&mut self, id: CouponIssueId) -> Result<Option<CouponIssue>, RepoError>;

    /// Every issue the user holds with its coupon, newest first.
    async fn issues_of_user(
        &mut self,
        user: UserId,
    ) -> Result<Vec<(CouponIssue, Coupon)>, RepoError>;

    /// ISSUED → USED by `order`. `Ok(None)` when the issue is not ISSUED any more (a concurrent
    /// order took it): nothing changed.
    async fn use_issue(
        &mut self,
        id: CouponIssueId,
        order: OrderId,
        at: OffsetDateTime,
    ) -> Result<Option<CouponIssue>, RepoError>;

    /// USED by `order` → ISSUED (the order was canceled or refunded).
    async fn release_issue(&mut self, id: CouponIssueId, order: OrderId) -> Result<(), RepoError>;
}

#[async_trait]
pub trait OrderRepository: Send {
    async fn insert(&mut self, order: NewOrder) -> Result<Order, RepoError>;
    async fn get(&mut self, id: OrderId) -> Result<Option<Order>, RepoError>;
    /// The user's orders, newest first, optionally of one status.
    async fn list_for_user(
        &mut self,
        user: UserId,
        status: Option<OrderStatus>,
        page: CursorPage,
    ) -> Result<Slice<Order>, RepoError>;

    /// Compare-and-set of the status: changes `from` → `to` (stamping `paid_at` for PAID,
    /// `canceled_at` for CANCELED/REFUNDED) and returns the new order; `Ok(None)` when the
    /// order is not in `from` any more (another request won the race), with nothing changed.
    async fn transition(
        &mut self,
        id: OrderId,
        from: OrderStatus,
        to: OrderStatus,
        at: OffsetDateTime,
    ) -> Result<Option<Order>, RepoError>;

    /// Claims up to `limit` CREATED orders with `expires_at <= now` for this transaction,
    /// skipping rows another transaction holds (`FOR UPDATE SKIP LOCKED`), oldest first.
    async fn claim_expired(
        &mut self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Order>, RepoError>;
}

#[async_trait]
pub trait PaymentRepository: Send {
    /// # Errors
    /// `Conflict` when a second SUCCEEDED payment would be written for the order.
    async fn insert(&mut self, payment: NewPayment) -> Result<Payment, RepoError>;
    async fn get(&mut self, id: PaymentId) -> Result<Option<Payment>, RepoError>;
    async fn succeeded_for_order(&mut self, order: OrderId) -> Result<Option<Payment>, RepoError>;
    /// SUCCEEDED → REFUNDED.
    async fn mark_refunded(&mut self, id: PaymentId) -> Result<(), RepoError>;
}

/// The daily sales roll-up (product, business day, net quantity): the ranking's truth.
#[async_trait]
pub trait SalesRepository: Send {
    /// Adds signed deltas to `day` (upsert per product).
    async fn add(&mut self, day: Date, deltas: &[ProductSales]) -> Result<(), RepoError>;
    /// Net quantities over `from..=to`, ranked (quantity desc, product id asc), positive only,
    /// OFF products left out, at most `limit`.
    async fn top(
        &mut self,
        from: Date,
        to: Date,
        limit: u32,
    ) -> Result<Vec<ProductSales>, RepoError>;
    /// Every product's net quantity on `day` (to rebuild a ranking day).
    async fn day_totals(&mut self, day: Date) -> Result<Vec<ProductSales>, RepoError>;
}

/// What the admin re-drive found.
#[derive(Debug, Clone, PartialEq)]
pub enum OutboxRetry {
    Requeued(Box<OutboxEvent>),
    NotFailed(OutboxStatus),
    NotFound,
}

#[async_trait]
pub trait OutboxRepository: Send {
    /// Writes a READY event, due now.
    async fn append(
        &mut self,
        envelope: EventEnvelope,
        at: OffsetDateTime,
    ) -> Result<OutboxEvent, RepoError>;

    /// Claims up to `limit` READY rows due at `now`, oldest first, under a new lease that lasts
    /// until `lease_until`. Meant to be the only statement of a short transaction that commits
    /// at once: the lease, not a row lock, keeps other relays off the rows while they are
    /// published, so nothing waits on the broker inside a transaction.
    ///
    /// MUST give each claim that returns rows a lease token no earlier claim had.
    /// MUST NOT return a row whose lease (another claim's) has not expired at `now`, so several
    /// relays never publish one row at once; a row whose lease has expired (its relay died or
    /// stalled mid-publish) MUST be claimable again.
    /// MUST NOT return a row while an older READY row of the same aggregate is still waiting
    /// (backing off, or leased by another relay): one order's events are published in order.
    async fn claim_ready(
        &mut self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<crate::outbox::OutboxClaim, RepoError>;
    /// Records each row's outcome of a relay round and ends its lease (`Sent` rows are SENT
    /// at `now`); returns how many rows it changed.
    ///
    /// A row stays held by the last lease that claimed it until it is settled; expiry only
    /// makes it claimable by another lease. So a relay past its lease whose rows nobody took
    /// over still records its outcomes.
    ///
    /// MUST change nothing for a row that `lease` does not hold (claimed since by another
    /// relay after this lease expired, already settled, or never claimed by it): a relay that
    /// outlived its lease never overwrites the new owner's outcome.
    async fn settle(
        &mut self,
        lease: crate::outbox::OutboxLease,
        now: OffsetDateTime,
        outcomes: &[(OutboxId, crate::outbox::OutboxOutcome)],
    ) -> Result<usize, RepoError>;
    /// Newest first, optionally of one status.
    async fn list(
        &mut self,
        status: Option<OutboxStatus>,
        page: CursorPage,
    ) -> Result<Slice<OutboxEvent>, RepoError>;
    /// FAILED → READY, due now, attempts reset.
    async fn retry(&mut self, id: OutboxId, now: OffsetDateTime) -> Result<OutboxRetry, RepoError>;
    /// Per status, for metrics.
    async fn count_by_status(&mut self) -> Result<Vec<(OutboxStatus, i64)>, RepoError>;
    /// READY and FAILED counts and the oldest READY event, without reading the SENT history.
    async fn backlog(&mut self) -> Result<crate::outbox::OutboxBacklog, RepoError>;
}

/// Consumer bookkeeping: de-duplication records and broker positions, written in the same
/// transaction as a consumer's effect so that each event takes effect once.
#[async_trait]
pub trait InboxRepository: Send {
    /// Records that `consumer` handled `event_id`; `Ok(false)` when it already had (skip).
    async fn record(
        &mut self,
        consumer: &str,
        event_id: &str,
        at: OffsetDateTime,
    ) -> Result<bool, RepoError>;
    /// The next offset `consumer` reads from (topic, partition), if it ever stored one.
    async fn position(
        &mut self,
        consumer: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, RepoError>;
    async fn save_position(
        &mut self,
        consumer: &str,
        topic: &str,
        partition: i32,
        next_offset: i64,
    ) -> Result<(), RepoError>;
}
