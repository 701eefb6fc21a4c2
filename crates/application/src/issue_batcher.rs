//! Group commit of coupon grants: the concurrent grants of one coupon share one transaction.
//!
//! Why: every issue of a coupon takes that coupon's row lock and keeps it through its commit,
//! WAL flush included, so during a burst the grants queue on one lock, one flush each.
//! Persisting them together ([`CouponRepository::issue_batch`]) costs one lock, one commit and
//! one flush per batch instead.
//!
//! How, with no timer and no background worker: one queue per coupon. A submitter that finds no
//! batch of its coupon in flight starts a drain task; the task takes everything queued (at most
//! [`MAX_BATCH`]), persists it in one transaction, answers each waiter through its oneshot and
//! goes on while more are queued. What arrives while a batch commits forms the next batch, so
//! a lone grant is never delayed and a burst batches itself.
//!
//! The drain runs on a spawned task, not in the request that started it: a cancelled request
//! (client gone, timeout) must not strand the waiters queued behind it. A cancelled waiter's
//! grant is still persisted, like a grant whose commit was already on the wire: the gate has
//! counted it, so the store keeps agreeing with the gate; the user finds it among their coupons.
//!
//!
//! A keyed grant's answer is stored in its batch's transaction, like any keyed change (see
//! [`crate::idempotency`]). A grant whose claim was taken over is left out: the batch runs again
//! without it, and that waiter hears `IdempotencyInProgress`.
//!
//! [`CouponRepository::issue_batch`]: domain::ports::CouponRepository::issue_batch

use crate::ShopError;
use crate::coupons::IssueOutcome;
use crate::idempotency::Keyed;
use crate::support::retry_on_conflict;
use domain::CouponId;
use domain::coupon::{CouponIssue, NewCouponIssue};
use domain::ports::{IssueError, UnitOfWork};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::oneshot;
use tracing::Instrument;

/// The most grants one transaction persists: bounds the statement sizes and the time the
/// coupon row stays locked; the rest of the queue forms the next batch at once.
pub(crate) const MAX_BATCH: usize = 512;

/// One grant's answer: its issue or the store's refusal (`SoldOut`, `LimitReached`,
/// `NotFound`); the outer error fails the whole batch, every grant in it alike.
pub(crate) type BatchedIssue = Result<Result<CouponIssue, IssueError>, ShopError>;

/// One grant to persist, with its key when the request had one.
pub(crate) struct Grant {
    pub(crate) issue: NewCouponIssue,
    pub(crate) keyed: Option<Keyed<IssueOutcome>>,
}

struct Waiter {
    grant: Grant,
    reply: oneshot::Sender<BatchedIssue>,
}

/// The queues, shared by every clone of a `Shop`.
#[derive(Default)]
pub(crate) struct IssueBatcher {
    /// A coupon has an entry exactly while its drain task runs; the entry holds the grants
    /// waiting for the next batch (empty while a batch commits and nobody else came).
    queues: Mutex<HashMap<CouponId, Vec<Waiter>>>,
}

impl IssueBatcher {
    /// Persists one grant together with whatever grants of the same coupon are concurrent.
    pub(crate) async fn issue(
        self: &Arc<Self>,
        store: &Arc<dyn UnitOfWork>,
        issue: NewCouponIssue,
        keyed: Option<Keyed<IssueOutcome>>,
    ) -> BatchedIssue {
        let coupon = issue.coupon_id;
        let (reply, answer) = oneshot::channel();
        let waiter = Waiter {
            grant: Grant { issue, keyed },
            reply,
        };
        let starts_drain = match self.queues().entry(coupon) {
            Entry::Occupied(mut queue) => {
                queue.get_mut().push(waiter);
                false
            }
            Entry::Vacant(slot) => {
                slot.insert(vec![waiter]);
                true
            }
        };
        if starts_drain {
            // Its logs (conflict retries) belong to no one request: they get a span of their own.
            let span = tracing::info_span!("coupon_issue_batch", %coupon);
            tokio::spawn(self.clone().drain(store.clone(), coupon).instrument(span));
        }
        // The sender is dropped unanswered only if the drain task died (a panic, or the
        // runtime shutting down); nothing is known of that batch's commit.
        answer.await.unwrap_or_else(|_| {
            Err(ShopError::Internal(format!(
                "the issue batch of coupon {coupon} ended without an answer"
            )))
        })
    }

    /// Persists batch after batch of `coupon` until its queue is empty, then retires.
    async fn drain(self: Arc<Self>, store: Arc<dyn UnitOfWork>, coupon: CouponId) {
        let mut retire = Retire {
            batcher: &self,
            coupon,
            done: false,
        };
        while let Some(batch) = self.next_batch(coupon) {
            metrics::histogram!("coupon_issue_batch_size").record(batch.len() as f64);
            let (grants, replies): (Vec<Grant>, Vec<_>) =
                batch.into_iter().map(|w| (w.grant, w.reply)).unzip();
            match persist(store.as_ref(), &grants).await {
                Ok(results) => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        // A waiter that went away is simply not told.
                        let _ = reply.send(result);
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        }
        retire.done = true;
    }

    /// The next grants of `coupon` in arrival order, or `None` (and the queue removed, so that
    /// the next submitter starts a new drain) when nobody is waiting.
    fn next_batch(&self, coupon: CouponId) -> Option<Vec<Waiter>> {
        let mut queues = self.queues();
        let queue = queues.get_mut(&coupon)?;
        if queue.is_empty() {
            queues.remove(&coupon);
            return None;
        }
        let rest = queue.split_off(queue.len().min(MAX_BATCH));
        Some(std::mem::replace(queue, rest))
    }

    fn queues(&self) -> MutexGuard<'_, HashMap<CouponId, Vec<Waiter>>> {
        // The map stays consistent whatever panicked while holding the lock: every change to it
        // is a single push, insert or remove.
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn queued(&self, coupon: CouponId) -> usize {
        self.queues().get(&coupon).map_or(0, Vec::len)
    }
}

/// One transaction for the whole batch, run again from scratch on a store conflict, and
/// without the grants whose key was taken over (their answers could not be stored with them).
/// One answer per grant, in input order.
async fn persist(store: &dyn UnitOfWork, grants: &[Grant]) -> Result<Vec<BatchedIssue>, ShopError> {
    let lost: Vec<AtomicBool> = grants.iter().map(|_| AtomicBool::new(false)).collect();
    let results = retry_on_conflict("issue_coupon_batch", || async {
        loop {
            let kept: Vec<usize> = (0..grants.len())
                .filter(|&i| !lost[i].load(Ordering::Relaxed))
                .collect();
            let issues: Vec<NewCouponIssue> =
                kept.iter().map(|&i| grants[i].issue.clone()).collect();
            let mut tx = store.begin().await?;
            let results = tx.coupons().issue_batch(&issues).await?;
            if results.len() != issues.len() {
                // The answers cannot be matched to the waiters: a store bug.
                return Err(ShopError::Internal(format!(
                    "the store answered {} results for {} coupon issues",
                    results.len(),
                    issues.len()
                ))
                .into());
            }
            let mut claims_lost = false;
            for (&i, result) in kept.iter().zip(&results) {
                let (Ok(issue), Some(keyed)) = (result, &grants[i].keyed) else {
                    continue;
                };
                let answer = keyed.answer(&IssueOutcome::Issued(issue.clone()));
                let stored = tx
                    .idempotency()
                    .complete(keyed.claim(), &answer, grants[i].issue.issued_at)
                    .await?;
                if !stored {
                    lost[i].store(true, Ordering::Relaxed);
                    claims_lost = true;
                }
            }
            if claims_lost {
                // Dropping the transaction undoes the whole batch; it runs again without them.
                continue;
            }
            tx.commit().await?;
            return Ok((kept, results));
        }
    })
    .await?;
    let (kept, results) = results;
    let mut answers: Vec<BatchedIssue> = (0..grants.len())
        .map(|_| Err(ShopError::IdempotencyInProgress))
        .collect();
    for (i, result) in kept.into_iter().zip(results) {
        answers[i] = Ok(result);
    }
    Ok(answers)
}

/// Ends a drain task that did not finish normally (a panic, or the runtime dropping it): its
/// queue is removed, so that the grants waiting in it hear an error instead of waiting forever
/// and the next submitter starts a fresh drain.
struct Retire<'a> {
    batcher: &'a IssueBatcher,
    coupon: CouponId,
    done: bool,
}

impl Drop for Retire<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.batcher.queues().remove(&self.coupon);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use domain::UserId;
    use domain::coupon::{CouponScope, Discount, NewCoupon};
    use domain::ports::{RepoError, Transaction};
    use memory::MemoryStore;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use time::macros::datetime;
    use tokio::task::JoinHandle;

    const NOW: time::OffsetDateTime = datetime!(2026-11-21 09:30 UTC);

    /// The memory store, counting transactions. Its first `begin` waits until the test calls
    /// [`HeldStore::release`], so that the test can queue grants behind a batch in flight; with
    /// `dies` it then panics, like a drain task that crashes mid-batch.
    struct HeldStore {
        inner: MemoryStore,
        begins: AtomicUsize,
        hold: std::sync::Mutex<Option<oneshot::Receiver<()>>>,
        release: std::sync::Mutex<Option<oneshot::Sender<()>>>,
        dies: bool,
    }

    impl HeldStore {
        fn new(dies: bool) -> Arc<Self> {
            let (release, hold) = oneshot::channel();
            Arc::new(Self {
                inner: MemoryStore::new(),
                begins: AtomicUsize::new(0),
                hold: std::sync::Mutex::new(Some(hold)),
                release: std::sync::Mutex::new(Some(release)),
                dies,
            })
        }

        fn begins(&self) -> usize {
            self.begins.load(Ordering::SeqCst)
        }

        fn release(&self) {
            let release = self.release.lock().unwrap().take();
            release.expect("released once").send(()).unwrap();
        }
    }

    #[async_trait]
    impl UnitOfWork for HeldStore {
        async fn begin(&self) -> Result<Box<dyn Transaction>, RepoError> {
            self.begins.fetch_add(1, Ordering::SeqCst);
            let hold = self.hold.lock().unwrap().take();
            if let Some(hold) = hold {
                hold.await.unwrap();
                assert!(!self.dies, "the test kills the first batch");
            }
            self.inner.begin().await
        }

        async fn read(&self) -> Result<Box<dyn Transaction>, RepoError> {
            self.inner.read().await
        }
    }

    async fn coupon(store: &dyn UnitOfWork, total: i64, per_user: i64) -> CouponId {
        let mut tx = store.begin().await.unwrap();
        let coupon = tx
            .coupons()
            .insert(NewCoupon {
                seller_id: UserId(1),
                scope: CouponScope::Store,
                name: "burst".into(),
                discount: Discount::Amount(1_000),
                min_order_amount: 0,
                total_quantity: total,
                per_user_limit: per_user,
                starts_at: NOW - time::Duration::HOUR,
                expires_at: NOW + time::Duration::DAY,
                created_at: NOW,
            })
            .await
            .unwrap();
        tx.commit().await.unwrap();
        coupon.id
    }

    /// A store whose coupon already exists, its first `begin` not yet held (the fixture's own
    /// transaction went through the inner store).
    async fn held_store_with_coupon(
        dies: bool,
        total: i64,
        per_user: i64,
    ) -> (Arc<HeldStore>, CouponId) {
        let store = HeldStore::new(dies);
        let id = coupon(&store.inner, total, per_user).await;
        (store, id)
    }

    fn submit(
        batcher: &Arc<IssueBatcher>,
        store: &Arc<HeldStore>,
        coupon: CouponId,
        user: i64,
    ) -> JoinHandle<BatchedIssue> {
        let (batcher, store) = (batcher.clone(), store.clone() as Arc<dyn UnitOfWork>);
        tokio::spawn(async move {
            batcher
                .issue(
                    &store,
                    NewCouponIssue {
                        coupon_id: coupon,
                        user_id: UserId(user),
                        issued_at: NOW,
                    },
                    None,
                )
                .await
        })
    }

    async fn eventually(what: &str, condition: impl Fn() -> bool) {
        for _ in 0..5_000 {
            if condition() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!("never happened: {what}");
    }

    /// A bounded wait: a waiter nobody answers fails the test instead of hanging it.
    async fn answered(task: JoinHandle<BatchedIssue>) -> BatchedIssue {
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("the waiter was answered")
            .unwrap()
    }

    async fn cancel(task: JoinHandle<BatchedIssue>) {
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
    }

    async fn stored(store: &HeldStore, coupon: CouponId) -> (i64, Vec<(UserId, i64)>) {
        let mut read = store.inner.read().await.unwrap();
        let counter = read
            .coupons()
            .get(coupon)
            .await
            .unwrap()
            .unwrap()
            .issued_quantity;
        (
            counter,
            read.coupons().issued_counts(coupon).await.unwrap().per_user,
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn grants_queued_behind_a_batch_form_the_next_one_and_each_gets_its_own_answer() {
        let (store, coupon) = held_store_with_coupon(false, 10, 1).await;
        let batcher = Arc::new(IssueBatcher::default());
        // 15 users ask twice each: 10 copies, one per user.
        let first = submit(&batcher, &store, coupon, 1);
        eventually("the first batch is in flight", || store.begins() == 1).await;
        let mut tasks = vec![(1, first)];
        for n in 1..30 {
            let user = n % 15 + 1;
            tasks.push((user, submit(&batcher, &store, coupon, user)));
        }
        eventually("29 grants queued", || batcher.queued(coupon) == 29).await;
        store.release();

        let mut answers = Vec::new();
        for (user, task) in tasks {
            answers.push((user, answered(task).await.unwrap()));
        }
        // The first grant alone, then the 29 queued behind it together.
        assert_eq!(store.begins(), 2);
        let holders: Vec<i64> = answers
            .iter()
            .filter_map(|(user, answer)| {
                let issue = answer.as_ref().ok()?;
                // Each waiter gets the issue of its own grant.
                assert_eq!(
                    (issue.user_id, issue.coupon_id, issue.seq),
                    (UserId(*user), coupon, 1)
                );
                Some(*user)
            })
            .collect();
        let mut distinct = holders.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!((holders.len(), distinct.len()), (10, 10));
        // As `issue` one after the other: a holder asking again has reached its limit, everyone
        // else came too late.
        for (user, answer) in &answers {
            match answer {
                Ok(_) => {}
                Err(IssueError::LimitReached) => assert!(holders.contains(user)),
                Err(IssueError::SoldOut) => assert!(!holders.contains(user)),
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        let (counter, per_user) = stored(&store, coupon).await;
        assert_eq!(counter, 10);
        assert_eq!(per_user.len(), 10);
        assert!(batcher.queues().is_empty(), "the drain retired");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn dropped_waiters_neither_lose_nor_stall_anybody_elses_answer() {
        let (store, coupon) = held_store_with_coupon(false, 100, 1).await;
        let batcher = Arc::new(IssueBatcher::default());
        // The request that started the drain goes away while its batch is in flight...
        let starter = submit(&batcher, &store, coupon, 1);
        eventually("the first batch is in flight", || store.begins() == 1).await;
        cancel(starter).await;
        let mut tasks: Vec<(i64, JoinHandle<BatchedIssue>)> = (2..=20)
            .map(|user| (user, submit(&batcher, &store, coupon, user)))
            .collect();
        eventually("19 grants queued", || batcher.queued(coupon) == 19).await;
        // ...and so does one of those queued behind it.
        let (_, gone) = tasks.remove(3);
        cancel(gone).await;
        store.release();

        for (user, task) in tasks {
            let issue = answered(task).await.unwrap().unwrap();
            assert_eq!(issue.user_id, UserId(user));
        }
        // The cancelled requests' grants were persisted all the same: the gate counted them.
        let (counter, per_user) = stored(&store, coupon).await;
        assert_eq!((counter, per_user.len()), (20, 20));
        // The coupon's queue retired: the next grant starts a fresh batch.
        let late = answered(submit(&batcher, &store, coupon, 21)).await;
        assert_eq!(late.unwrap().unwrap().user_id, UserId(21));
        assert_eq!(store.begins(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_batch_that_dies_fails_its_waiters_and_the_coupon_keeps_issuing() {
        let (store, coupon) = held_store_with_coupon(true, 10, 1).await;
        let batcher = Arc::new(IssueBatcher::default());
        let in_flight = submit(&batcher, &store, coupon, 1);
        eventually("the first batch is in flight", || store.begins() == 1).await;
        let queued = [
            submit(&batcher, &store, coupon, 2),
            submit(&batcher, &store, coupon, 3),
        ];
        eventually("2 grants queued", || batcher.queued(coupon) == 2).await;
        store.release();

        assert!(matches!(
            answered(in_flight).await,
            Err(ShopError::Internal(_))
        ));
        for task in queued {
            assert!(matches!(answered(task).await, Err(ShopError::Internal(_))));
        }
        assert_eq!(stored(&store, coupon).await.0, 0, "nothing was committed");
        let next = answered(submit(&batcher, &store, coupon, 4)).await;
        assert_eq!(next.unwrap().unwrap().user_id, UserId(4));
    }

    #[tokio::test]
    async fn a_store_failure_fails_the_whole_batch() {
        struct Down;
        #[async_trait]
        impl UnitOfWork for Down {
            async fn begin(&self) -> Result<Box<dyn Transaction>, RepoError> {
                Err(RepoError::Unavailable("down".into()))
            }
            async fn read(&self) -> Result<Box<dyn Transaction>, RepoError> {
                Err(RepoError::Unavailable("down".into()))
            }
        }
        let store: Arc<dyn UnitOfWork> = Arc::new(Down);
        let batcher = Arc::new(IssueBatcher::default());
        let grant = NewCouponIssue {
            coupon_id: CouponId(1),
            user_id: UserId(1),
            issued_at: NOW,
        };
        assert!(matches!(
            batcher.issue(&store, grant, None).await,
            Err(ShopError::Unavailable(_))
        ));
        assert!(batcher.queues().is_empty());
    }
}
