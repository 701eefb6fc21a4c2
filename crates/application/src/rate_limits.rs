//! Request budgets: what each kind of request may cost, and what happens when the shared
//! budgets cannot be reached.
//!
//! Three budgets ([`RateKey`]):
//! - every request of an authenticated user (`RATE_LIMIT_*`);
//! - sign-ups without a token, per client address (`ANON_RATE_LIMIT_*`): otherwise every
//!   sign-up is a fresh user budget, and the per-user limit means nothing;
//! - requests whose token is missing (where one is required) or invalid, per client address
//!   (`ANON_RATE_LIMIT_*` too): bounds token guessing.
//!
//! While a client is over its failed-authentication budget, its requests that carry a token are
//! refused *before* the token is checked ([`RateLimits::check_authentication_allowed`]):
//! checking first would still let a correct guess through, and would still cost the check.
//! Honest users behind the same address wait out `Retry-After`. The refusal is remembered in
//! process (a bounded list), so that it costs no round trip.
//!
//! # When the shared budgets are down
//! With Redis every budget is shared by all instances. When Redis does not answer, a request is
//! decided by this instance's own budgets (the in-process limiter) instead: limits hold per
//! instance, so N instances allow up to N budgets, but the shop keeps serving. Redis is then
//! left alone for [`SHARED_RETRY_AFTER`] so that requests do not each wait for its timeout.
//! The switch is logged once each way (WARN, then INFO) and counted in
//! `rate_limit_fallback_total`.

use domain::UserId;
use domain::ports::{RateLimitError, RateLimiter};
use domain::rate_limit::{ClientAddress, RateDecision, RateKey, RateLimit};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the shared budgets are skipped after they failed to answer.
pub const SHARED_RETRY_AFTER: Duration = Duration::from_secs(1);

/// At most this many clients are remembered as blocked; beyond it, a blocked client costs one
/// token check per request until the list has room (the shared budget still refuses it).
const BLOCKED_CAPACITY: usize = 100_000;

/// The budget sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Per authenticated user.
    pub per_user: RateLimit,
    /// Per client address, for sign-ups without a token and, separately, failed authentications.
    pub anonymous: RateLimit,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            // Generous for people and scripts, tight for a runaway client.
            per_user: RateLimit {
                per_second: 50,
                burst: 100,
            },
            // A person signs up once and mistypes a token a few times; a script that needs more
            // from one address is an abuser or a test harness, which raises it explicitly.
            anonymous: RateLimit {
                per_second: 5,
                burst: 20,
            },
        }
    }
}

/// A refusal: nothing was done; the client may retry after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    pub retry_after: Duration,
}

/// The budgets of this instance, shared through a [`RateLimiter`] when one is configured.
pub struct RateLimits {
    settings: RateLimitSettings,
    /// The budgets all instances share (Redis), if any.
    shared: Option<Arc<dyn RateLimiter>>,
    /// This instance's own budgets: the only ones without `shared`, the fallback with it.
    local: Arc<dyn RateLimiter>,
    /// While set and in the future, `shared` is not asked.
    shared_paused_until: Mutex<Option<Instant>>,
    /// Whether the last decision came from the fallback (for logging each switch once).
    degraded: AtomicBool,
    /// Clients over their failed-authentication budget, until when.
    blocked: Mutex<HashMap<ClientAddress, Instant>>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("settings", &self.settings)
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    /// Budgets kept by `local` alone (one instance, or limits per instance).
    pub fn local(settings: RateLimitSettings, local: Arc<dyn RateLimiter>) -> Self {
        Self::build(settings, None, local)
    }

    /// Budgets shared through `shared`, decided by `local` while `shared` is unavailable.
    pub fn shared(
        settings: RateLimitSettings,
        shared: Arc<dyn RateLimiter>,
        local: Arc<dyn RateLimiter>,
    ) -> Self {
        Self::build(settings, Some(shared), local)
    }

    fn build(
        settings: RateLimitSettings,
        shared: Option<Arc<dyn RateLimiter>>,
        local: Arc<dyn RateLimiter>,
    ) -> Self {
        Self {
            settings,
            shared,
            local,
            shared_paused_until: Mutex::new(None),
            degraded: AtomicBool::new(false),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> RateLimitSettings {
        self.settings
    }

    /// One request of an authenticated user.
    pub async fn check_user(&self, user: UserId) -> Result<(), OverBudget> {
        self.take(&RateKey::User(user), self.settings.per_user)
            .await
    }

    /// One sign-up without a token from `client`.
    pub async fn check_sign_up(&self, client: ClientAddress) -> Result<(), OverBudget> {
        self.take(&RateKey::SignUp(client), self.settings.anonymous)
            .await
    }

    /// Before a token from `client` is checked: refused while the client is over its
    /// failed-authentication budget (no round trip: the refusal is remembered in process).
    pub fn check_authentication_allowed(&self, client: ClientAddress) -> Result<(), OverBudget> {
        if self.settings.anonymous.is_disabled() {
            return Ok(());
        }
        let now = Instant::now();
        let blocked = lock(&self.blocked);
        match blocked.get(&client) {
            Some(until) if *until > now => Err(OverBudget {
                retry_after: *until - now,
            }),
            _ => Ok(()),
        }
    }

    /// A request from `client` whose token was missing (where required) or invalid. `Err`
    /// when the client is over its budget: the request answers 429 rather than 401, and the
    /// client's tokens are not checked until `retry_after` has passed.
    pub async fn record_failed_authentication(
        &self,
        client: ClientAddress,
    ) -> Result<(), OverBudget> {
        let refused = self
            .take(
                &RateKey::FailedAuthentication(client),
                self.settings.anonymous,
            )
            .await;
        if let Err(over) = refused {
            let now = Instant::now();
            let mut blocked = lock(&self.blocked);
            if blocked.len() >= BLOCKED_CAPACITY {
                blocked.retain(|_, until| *until > now);
            }
            if blocked.len() < BLOCKED_CAPACITY {
                blocked.insert(client, now + over.retry_after);
            }
        }
        refused
    }

    async fn take(&self, key: &RateKey, limit: RateLimit) -> Result<(), OverBudget> {
        if limit.is_disabled() {
            return Ok(());
        }
        let decision = match self.shared_now() {
            Some(shared) => match shared.acquire(key, limit).await {
                Ok(decision) => {
                    self.shared_answered();
                    decision
                }
                Err(RateLimitError::Unavailable(reason)) => {
                    self.shared_failed(&reason);
                    self.local_decision(key, limit).await
                }
            },
            None => self.local_decision(key, limit).await,
        };
        match decision {
            RateDecision::Allowed => Ok(()),
            RateDecision::Limited { retry_after } => Err(OverBudget { retry_after }),
        }
    }

    async fn local_decision(&self, key: &RateKey, limit: RateLimit) -> RateDecision {
        if self.shared.is_some() {
            metrics::counter!("rate_limit_fallback_total").increment(1);
        }
        // The in-process limiter has no storage to lose; should it ever fail, the request
        // passes: a limiter must not turn into an outage.
        self.local
            .acquire(key, limit)
            .await
            .unwrap_or(RateDecision::Allowed)
    }

    /// The shared limiter, unless it failed less than [`SHARED_RETRY_AFTER`] ago.
    fn shared_now(&self) -> Option<&Arc<dyn RateLimiter>> {
        let shared = self.shared.as_ref()?;
        let mut paused = lock(&self.shared_paused_until);
        match *paused {
            Some(until) if until > Instant::now() => None,
            Some(_) => {
                *paused = None;
                Some(shared)
            }
            None => Some(shared),
        }
    }

    fn shared_failed(&self, reason: &str) {
        *lock(&self.shared_paused_until) = Some(Instant::now() + SHARED_RETRY_AFTER);
        if !self.degraded.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                %reason,
                "shared rate limits unavailable; each instance now limits on its own"
            );
        }
    }

    fn shared_answered(&self) {
        if self.degraded.swap(false, Ordering::SeqCst) {
            tracing::info!("shared rate limits available again");
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section here leaves its map or instant consistent.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use std::sync::atomic::AtomicUsize;

    const TIGHT: RateLimitSettings = RateLimitSettings {
        per_user: RateLimit {
            per_second: 1,
            burst: 2,
        },
        anonymous: RateLimit {
            per_second: 1,
            burst: 2,
        },
    };

    /// A shared limiter that is down, counting how often it was asked.
    #[derive(Default)]
    struct Down(AtomicUsize);

    #[async_trait]
    impl RateLimiter for Down {
        async fn acquire(&self, _: &RateKey, _: RateLimit) -> Result<RateDecision, RateLimitError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Err(RateLimitError::Unavailable("connection refused".into()))
        }
    }

    fn client() -> ClientAddress {
        ClientAddress::new("192.0.2.1".parse().unwrap())
    }

    #[tokio::test]
    async fn a_shared_outage_falls_back_to_local_budgets_and_is_not_asked_on_every_request() {
        let down = Arc::new(Down::default());
        let limits = RateLimits::shared(
            TIGHT,
            down.clone(),
            Arc::new(memory::MemoryRateLimiter::new()),
        );
        assert!(limits.check_user(UserId(1)).await.is_ok());
        assert!(limits.check_user(UserId(1)).await.is_ok());
        // Still limited, by this instance's own budget.
        assert!(limits.check_user(UserId(1)).await.is_err());
        assert_eq!(down.0.load(Ordering::SeqCst), 1, "paused after a failure");
    }

    #[tokio::test]
    async fn failed_authentications_block_token_checks_until_retry_after() {
        let limits = RateLimits::local(TIGHT, Arc::new(memory::MemoryRateLimiter::new()));
        assert!(limits.check_authentication_allowed(client()).is_ok());
        assert!(limits.record_failed_authentication(client()).await.is_ok());
        assert!(limits.record_failed_authentication(client()).await.is_ok());
        let over = limits
            .record_failed_authentication(client())
            .await
            .unwrap_err();
        assert!(over.retry_after <= Duration::from_secs(1));
        assert!(limits.check_authentication_allowed(client()).is_err());
        // Another address, and sign-ups from this one, have budgets of their own.
        let other = ClientAddress::new("192.0.2.2".parse().unwrap());
        assert!(limits.check_authentication_allowed(other).is_ok());
        assert!(limits.check_sign_up(client()).await.is_ok());
    }

    #[tokio::test]
    async fn disabled_budgets_always_pass() {
        let limits = RateLimits::local(
            RateLimitSettings {
                per_user: RateLimit::DISABLED,
                anonymous: RateLimit::DISABLED,
            },
            Arc::new(memory::MemoryRateLimiter::new()),
        );
        for _ in 0..1_000 {
            assert!(limits.check_sign_up(client()).await.is_ok());
            assert!(limits.record_failed_authentication(client()).await.is_ok());
        }
        assert!(limits.check_authentication_allowed(client()).is_ok());
    }
}
