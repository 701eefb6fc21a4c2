//! The in-memory transactional store: every repository of `domain::ports` behind one lock.
//!
//! Why one lock: in memory an operation takes microseconds, so serializing whole transactions
//! is cheap and makes every conditional operation (stock, wallet, coupon counters, order
//! status) trivially atomic, the way a serializable database would make them.
//!
//! Invariants:
//! - A [`Transaction`] holds the lock (an owned `tokio::sync::Mutex` guard) from `begin` until
//!   it is committed or dropped; nobody else sees the state in between.
//! - Every write changes the state in place *and* pushes its inverse onto the transaction's
//!   undo journal, in one step with nothing that can fail in between. Dropping the transaction
//!   without `commit` (an error, a panic, a cancelled future) replays the journal backwards,
//!   leaving the state exactly as it was. The cost is O(changes), never a copy of the state.
//! - `commit` only forgets the journal; then the guard is released.
//! - Id sequences are not rolled back (like database sequences): gaps after a rollback are
//!   expected.
//! - A [`UnitOfWork::read`] view holds the lock too (briefly, it is meant for one query) and
//!   refuses writes with `RepoError::Internal`, because a write through it is a bug.
//!
//! Caveats of the single lock: a use case that awaits slow I/O while holding a transaction
//! stalls every other request for that long (the outbox relay does not: it publishes between
//! its claim and its outcomes, with no transaction open). And a task that
//! opens a second transaction while holding one would wait for itself: `begin`/`read` give up
//! after a timeout ([`DEFAULT_LOCK_TIMEOUT`]) with `RepoError::Unavailable` instead of hanging.

mod coupons;
mod idempotency;
mod inbox;
mod orders;
mod outbox;
mod payments;
mod products;
mod sales;
mod users;
mod wallets;

#[cfg(test)]
mod tests;

use async_trait::async_trait;
use domain::page::Slice;
use domain::ports::{
    CouponRepository, IdempotencyRecords, InboxRepository, OrderRepository, OutboxRepository,
    PaymentRepository, ProductRepository, RepoError, SalesRepository, Transaction, UnitOfWork,
    UserRepository, WalletRepository,
};
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// How long `begin`/`read` wait for the lock by default before answering `Unavailable`.
///
/// Transactions take microseconds, so a wait this long means a bug (typically a use case that
/// opens a second transaction while holding one, which would otherwise hang forever).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the store holds. Each table lives in the module of its repository.
#[derive(Debug, Default)]
#[cfg_attr(test, derive(Clone, PartialEq))]
pub(crate) struct State {
    users: users::UsersTable,
    wallets: wallets::WalletsTable,
    products: products::ProductsTable,
    coupons: coupons::CouponsTable,
    orders: orders::OrdersTable,
    payments: payments::PaymentsTable,
    sales: sales::SalesTable,
    outbox: outbox::OutboxTable,
    inbox: inbox::InboxTable,
    idempotency: idempotency::KeysTable,
    seq: Sequences,
}

/// Per-table id counters; the first id of every table is 1.
#[derive(Debug, Default, Clone)]
#[cfg_attr(test, derive(PartialEq))]
struct Sequences {
    users: i64,
    wallet_transactions: i64,
    products: i64,
    stock_ledger: i64,
    coupons: i64,
    coupon_issues: i64,
    orders: i64,
    payments: i64,
    outbox: i64,
    /// Outbox lease tokens: one per claim.
    outbox_leases: i64,
}

impl Sequences {
    fn next(counter: &mut i64) -> i64 {
        *counter += 1;
        *counter
    }
}

/// The in-memory store. Cheap to clone: clones share the same state.
#[derive(Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    lock_timeout: Duration,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("lock_timeout", &self.lock_timeout)
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::with_lock_timeout(DEFAULT_LOCK_TIMEOUT)
    }

    /// An empty store whose `begin`/`read` give up with `RepoError::Unavailable` after waiting
    /// `timeout` for the lock (the equivalent of a pool's wait timeout).
    pub fn with_lock_timeout(timeout: Duration) -> Self {
        Self {
            state: Arc::new(Mutex::new(State::default())),
            lock_timeout: timeout,
        }
    }

    async fn lock(&self, writable: bool) -> Result<MemoryTx, RepoError> {
        let guard = tokio::time::timeout(self.lock_timeout, self.state.clone().lock_owned())
            .await
            .map_err(|_| {
                RepoError::Unavailable(format!(
                    "in-memory store lock not acquired within {:?} (is a transaction held \
                     across another begin?)",
                    self.lock_timeout
                ))
            })?;
        Ok(MemoryTx {
            state: guard,
            undo: Vec::new(),
            writable,
        })
    }

    /// A copy of the whole state, for tests that compare before and after.
    #[cfg(test)]
    pub(crate) async fn snapshot(&self) -> State {
        self.state.lock().await.clone()
    }
}

#[async_trait]
impl UnitOfWork for MemoryStore {
    async fn begin(&self) -> Result<Box<dyn Transaction>, RepoError> {
        Ok(Box::new(self.lock(true).await?))
    }

    async fn read(&self) -> Result<Box<dyn Transaction>, RepoError> {
        Ok(Box::new(self.lock(false).await?))
    }
}

/// The inverse of one write, run when the transaction is dropped without commit.
type Undo = Box<dyn FnOnce(&mut State) + Send>;

/// One open transaction (or read view) on the [`MemoryStore`].
pub(crate) struct MemoryTx {
    state: OwnedMutexGuard<State>,
    /// Inverses of the writes made so far, oldest first.
    undo: Vec<Undo>,
    /// `false` for a read view.
    writable: bool,
}

impl MemoryTx {
    fn state(&self) -> &State {
        &self.state
    }

    /// The state, for a write. Refused on a read view.
    fn state_mut(&mut self) -> Result<&mut State, RepoError> {
        if self.writable {
            Ok(&mut self.state)
        } else {
            Err(RepoError::Internal(
                "write through a read-only view of the in-memory store".into(),
            ))
        }
    }

    /// Registers the inverse of a write that was just applied. Call it right after the write,
    /// with nothing fallible in between.
    fn on_rollback(&mut self, undo: impl FnOnce(&mut State) + Send + 'static) {
        self.undo.push(Box::new(undo));
    }
}

impl Drop for MemoryTx {
    fn drop(&mut self) {
        // Not committed: undo every write, newest first, while the lock is still held.
        while let Some(undo) = self.undo.pop() {
            undo(&mut self.state);
        }
    }
}

#[async_trait]
impl Transaction for MemoryTx {
    fn users(&mut self) -> &mut dyn UserRepository {
        self
    }
    fn wallets(&mut self) -> &mut dyn WalletRepository {
        self
    }
    fn products(&mut self) -> &mut dyn ProductRepository {
        self
    }
    fn coupons(&mut self) -> &mut dyn CouponRepository {
        self
    }
    fn orders(&mut self) -> &mut dyn OrderRepository {
        self
    }
    fn payments(&mut self) -> &mut dyn PaymentRepository {
        self
    }
    fn sales(&mut self) -> &mut dyn SalesRepository {
        self
    }
    fn outbox(&mut self) -> &mut dyn OutboxRepository {
        self
    }
    fn inbox(&mut self) -> &mut dyn InboxRepository {
        self
    }
    fn idempotency(&mut self) -> &mut dyn IdempotencyRecords {
        self
    }

    async fn commit(mut self: Box<Self>) -> Result<(), RepoError> {
        // The writes are already in place: forgetting their inverses makes them permanent.
        // Dropping `self` then releases the lock.
        self.undo.clear();
        Ok(())
    }
}

/// The id range of a newest-first keyset page: ids `< before`, or every id.
struct Before<K>(Option<K>);

impl<K> RangeBounds<K> for Before<K> {
    fn start_bound(&self) -> Bound<&K> {
        Bound::Unbounded
    }
    fn end_bound(&self) -> Bound<&K> {
        self.0.as_ref().map_or(Bound::Unbounded, Bound::Excluded)
    }
}

fn before<K: From<i64>>(cursor: Option<i64>) -> Before<K> {
    Before(cursor.map(K::from))
}

/// Takes a newest-first page from `rows` given in ascending id order (already restricted to
/// the cursor's range and filtered): at most `limit + 1` rows are materialized, the extra one
/// only proving that a next page exists.
fn newest_first<T>(
    rows: impl DoubleEndedIterator<Item = T>,
    limit: u32,
    id_of: impl Fn(&T) -> i64,
) -> Slice<T> {
    let fetched: Vec<T> = rows.rev().take(limit as usize + 1).collect();
    Slice::from_overfetch(fetched, limit, id_of)
}
