//! First-come coupons: publish, browse, issue (through the gate), list one's own.
//!
//! Issuance is decided by the first-come gate (Redis in production) so that a burst is shed
//! without touching the store; every grant is then persisted by the store's conditional
//! counter, which stays the source of truth. A grant that cannot be persisted is given back.

use crate::config::CouponIssueMode;
use crate::events::{COUPON_AGGREGATE, CouponIssueRequested, envelope};
use crate::idempotency::{Keyed, record_answer};
use crate::support::{AttemptError, retry_on_conflict};
use crate::{Actor, Shop, ShopError};
use domain::coupon::{
    Coupon, CouponDraft, CouponIssue, CouponIssueStatus, NewCoupon, NewCouponIssue, WindowError,
};
use domain::outbox::EventType;
use domain::ports::{GateDecision, IssueError, IssuedCounts};
use domain::{CouponId, UserId};

/// What `POST /coupons/{id}/issue` answers.
#[derive(Debug, Clone)]
pub enum IssueOutcome {
    /// The row exists (201).
    Issued(CouponIssue),
    /// The grant is final, the row is written by the async issuer (202).
    Pending {
        coupon_id: CouponId,
        user_id: UserId,
        request_id: String,
    },
}

/// One of the caller's coupons, with the status it shows now (ISSUED past expiry → EXPIRED).
#[derive(Debug, Clone)]
pub struct HeldCoupon {
    pub issue: CouponIssue,
    pub status: CouponIssueStatus,
    pub coupon: Coupon,
}

pub(crate) fn window_error(id: CouponId, e: WindowError) -> ShopError {
    ShopError::CouponNotActive(format!("coupon {id}: {e}"))
}

fn sold_out(id: CouponId) -> ShopError {
    ShopError::CouponSoldOut(format!("coupon {id} is sold out"))
}

fn already_issued(id: CouponId) -> ShopError {
    ShopError::CouponAlreadyIssued(format!(
        "you already hold the maximum number of coupon {id}"
    ))
}

impl Shop {
    /// SELLER or ADMIN. Registers the coupon's counters with the gate.
    pub async fn create_coupon(
        &self,
        actor: Actor,
        draft: CouponDraft,
        keyed: Option<&Keyed<Coupon>>,
    ) -> Result<Coupon, ShopError> {
        if !actor.role.can_sell() {
            return Err(ShopError::Forbidden(
                "only sellers and admins may create coupons".into(),
            ));
        }
        let now = self.now();
        let new = NewCoupon::new(actor.user_id, actor.is_admin(), draft, now)
            .map_err(ShopError::Validation)?;
        let coupon = retry_on_conflict("create_coupon", || async {
            let mut tx = self.ports.store.begin().await?;
            let coupon = tx.coupons().insert(new.clone()).await?;
            record_answer(tx.as_mut(), keyed, &coupon, now).await?;
            tx.commit().await?;
            Ok(coupon)
        })
        .await?;
        // Warming the gate is an optimisation: issuance rebuilds missing counters from the
        // store (`Unloaded`), so a gate failure here must not fail the creation.
        if let Err(e) = self
            .ports
            .gate
            .load(&coupon, &IssuedCounts::default())
            .await
        {
            tracing::warn!(coupon = %coupon.id, error = %e, "could not register coupon with the gate");
        }
        tracing::info!(coupon = %coupon.id, seller = %actor.user_id, "coupon created");
        Ok(coupon)
    }

    /// Active now with quantity left.
    pub async fn list_active_coupons(&self) -> Result<Vec<Coupon>, ShopError> {
        let now = self.now();
        let mut tx = self.ports.store.read().await?;
        Ok(tx.coupons().list_active(now).await?)
    }

    pub async fn get_coupon(&self, id: CouponId) -> Result<Coupon, ShopError> {
        let mut tx = self.ports.store.read().await?;
        tx.coupons()
            .get(id)
            .await?
            .ok_or_else(|| ShopError::not_found("coupon", id))
    }

    /// First come, first served. Errors: `NotFound`, `CouponNotActive`, `CouponSoldOut`,
    /// `CouponAlreadyIssued`, `Unavailable` (gate down: nothing issued).
    #[tracing::instrument(skip_all, fields(coupon = %id, user = %actor.user_id))]
    pub async fn issue_coupon(
        &self,
        actor: Actor,
        id: CouponId,
        keyed: Option<&Keyed<IssueOutcome>>,
    ) -> Result<IssueOutcome, ShopError> {
        let now = self.now();
        // Every request of a burst needs the same immutable policy: read it once per few
        // seconds, not once per request (the gate and the store hold the counters).
        let coupon = match self.caches.coupons.get(&id) {
            Some(coupon) => coupon,
            None => {
                let coupon = self.get_coupon(id).await?;
                self.caches.coupons.put(id, coupon.clone());
                coupon
            }
        };
        coupon.check_window(now).map_err(|e| window_error(id, e))?;
        match self.acquire_grant(&coupon, actor.user_id).await? {
            GateDecision::Granted => {}
            GateDecision::SoldOut => return Err(sold_out(id)),
            GateDecision::LimitReached => return Err(already_issued(id)),
            GateDecision::Unloaded => {
                // `acquire_grant` loads the counters before asking again; a second `Unloaded`
                // means the gate cannot keep them (evicted at once): fail closed.
                return Err(ShopError::Unavailable(format!(
                    "coupon gate lost the counters of coupon {id}"
                )));
            }
        }
        let outcome = match self.config.coupon_issue_mode {
            CouponIssueMode::Sync => self.persist_grant(&coupon, actor.user_id, now, keyed).await,
            CouponIssueMode::Async => self.request_issue(&coupon, actor.user_id, now).await,
        };
        if let Err(e) = &outcome {
            // The grant was not turned into an issue: give it back so that the quantity is
            // not lost to a failure.
            if let Err(release) = self.ports.gate.release(id, actor.user_id).await {
                tracing::error!(error = %release, "could not give a coupon grant back to the gate");
            }
            tracing::info!(code = e.code(), "coupon grant given back");
        }
        outcome
    }

    /// Asks the gate; when it holds no counters for the coupon, rebuilds them from the store
    /// and asks once more.
    async fn acquire_grant(
        &self,
        coupon: &Coupon,
        user: UserId,
    ) -> Result<GateDecision, ShopError> {
        let gate = &self.ports.gate;
        let decision = gate.try_acquire(coupon, user).await?;
        if decision != GateDecision::Unloaded {
            return Ok(decision);
        }
        let counts = {
            let mut tx = self.ports.store.read().await?;
            tx.coupons().issued_counts(coupon.id).await?
        };
        tracing::info!(
            issued = counts.issued,
            "rebuilding coupon gate counters from the store"
        );
        gate.load(coupon, &counts).await?;
        Ok(gate.try_acquire(coupon, user).await?)
    }

    /// Sync mode: the issue row is written before answering. The concurrent grants of one
    /// coupon are written together, one transaction per batch (see [`crate::issue_batcher`]).
    async fn persist_grant(
        &self,
        coupon: &Coupon,
        user: UserId,
        now: time::OffsetDateTime,
        keyed: Option<&Keyed<IssueOutcome>>,
    ) -> Result<IssueOutcome, ShopError> {
        let id = coupon.id;
        let grant = NewCouponIssue {
            coupon_id: id,
            user_id: user,
            issued_at: now,
        };
        let issue = self
            .issue_batcher
            .issue(&self.ports.store, grant, keyed.cloned())
            .await?
            .map_err(|refusal| ShopError::from(issue_error(id, refusal)))?;
        metrics::counter!("coupons_issued_total").increment(1);
        tracing::info!(issue = %issue.id, "coupon issued");
        Ok(IssueOutcome::Issued(issue))
    }

    /// Async mode: the grant is final; the `coupon.issue.requested` consumer writes the row.
    /// The request goes straight to the broker (not through the outbox): the gate decision
    /// lives outside the database, so there is no transaction to share with an outbox row, and
    /// an acknowledged publish is as durable as an outbox row.
    async fn request_issue(
        &self,
        coupon: &Coupon,
        user: UserId,
        now: time::OffsetDateTime,
    ) -> Result<IssueOutcome, ShopError> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let payload = CouponIssueRequested {
            request_id: request_id.clone(),
            coupon_id: coupon.id,
            user_id: user,
            requested_at: now,
        };
        let event = envelope(
            EventType::CouponIssueRequested,
            COUPON_AGGREGATE,
            coupon.id,
            &payload,
            now,
        )?;
        self.ports
            .publisher
            .publish(EventType::CouponIssueRequested.default_topic(), &event)
            .await
            .map_err(|e| ShopError::Unavailable(e.to_string()))?;
        tracing::info!(%request_id, "coupon grant queued for asynchronous issue");
        Ok(IssueOutcome::Pending {
            coupon_id: coupon.id,
            user_id: user,
            request_id,
        })
    }

    pub async fn my_coupons(
        &self,
        actor: Actor,
        status: Option<CouponIssueStatus>,
    ) -> Result<Vec<HeldCoupon>, ShopError> {
        let now = self.now();
        let mut tx = self.ports.store.read().await?;
        let held = tx.coupons().issues_of_user(actor.user_id).await?;
        Ok(held
            .into_iter()
            .map(|(issue, coupon)| HeldCoupon {
                status: issue.status_at(coupon.expires_at, now),
                issue,
                coupon,
            })
            .filter(|held| status.is_none_or(|wanted| held.status == wanted))
            .collect())
    }
}

/// The store refused a grant the gate made: the two disagree (the gate was rebuilt from a stale
/// count, or lost a release). The store is the truth, so its answer is the client's answer.
fn issue_error(id: CouponId, e: IssueError) -> AttemptError {
    match e {
        IssueError::SoldOut => {
            tracing::warn!(coupon = %id, "gate granted a coupon the store found sold out");
            sold_out(id).into()
        }
        IssueError::LimitReached => {
            tracing::warn!(coupon = %id, "gate granted a coupon beyond the per-user limit");
            already_issued(id).into()
        }
        IssueError::NotFound => ShopError::not_found("coupon", id).into(),
        IssueError::Repo(e) => e.into(),
    }
}
