//! Request budgets: who a budget belongs to, how large it is, and the arithmetic that decides
//! whether one more request fits.
//!
//! The arithmetic is GCRA (the generic cell rate algorithm, a token bucket kept as a single
//! number): a budget stores its *theoretical arrival time* (TAT), the instant at which it would
//! be full again if nothing else came. A request at `now` moves the TAT to
//! `max(TAT, now) + interval` and fits when that is at most `now + interval × burst`. One
//! number per budget means one `GET`/`SET` in Redis and nothing to refill; a budget whose TAT
//! has passed is full, so it can be forgotten (that is what keeps the tables bounded).
//!
//! The same arithmetic runs in process ([`Gcra::decide`], the memory adapter) and in Redis
//! (`cache-redis`'s `rate_limit.lua`, with the server's clock so that every instance agrees):
//! both use integer microseconds, so they decide identically.

use crate::UserId;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

/// A budget's size: `per_second` requests per second on average, at most `burst` at once.
/// `per_second == 0` disables the limit (every request fits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl RateLimit {
    pub const DISABLED: Self = Self {
        per_second: 0,
        burst: 1,
    };

    pub fn is_disabled(self) -> bool {
        self.per_second == 0
    }

    /// The GCRA parameters, or `None` when the limit is disabled.
    pub fn gcra(self) -> Option<Gcra> {
        if self.is_disabled() {
            return None;
        }
        // At least 1 µs, so that a huge rate still advances the TAT.
        let interval_us = (1_000_000 / u64::from(self.per_second)).max(1);
        Some(Gcra {
            interval_us,
            tolerance_us: interval_us * u64::from(self.burst.max(1)),
        })
    }
}

/// GCRA in integer microseconds: `interval_us` between requests at the sustained rate,
/// `tolerance_us` = `interval_us × burst` (how far ahead of `now` the TAT may run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    pub interval_us: u64,
    pub tolerance_us: u64,
}

/// What [`Gcra::decide`] concluded for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcraOutcome {
    /// The request fits; store `new_tat` (it may be forgotten once `now` passes it).
    Allowed { new_tat: u64 },
    /// It does not; the budget is unchanged and one request fits again after `wait_us`.
    Limited { wait_us: u64 },
}

impl Gcra {
    /// Decides one request at `now` (µs on any clock that never goes back) for a budget whose
    /// stored TAT is `tat` (`None`: never seen or forgotten, i.e. full).
    ///
    /// Invariant: from a full budget exactly `burst` requests fit at one instant, and after
    /// that one more per `interval_us`.
    pub fn decide(self, tat: Option<u64>, now: u64) -> GcraOutcome {
        let new_tat = tat.unwrap_or(now).max(now) + self.interval_us;
        let allowed_at = new_tat.saturating_sub(self.tolerance_us);
        if allowed_at <= now {
            GcraOutcome::Allowed { new_tat }
        } else {
            GcraOutcome::Limited {
                wait_us: allowed_at - now,
            }
        }
    }
}

/// The answer of a budget for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allowed,
    /// Over budget: nothing may change; the client may retry after `retry_after`.
    Limited {
        retry_after: Duration,
    },
}

impl RateDecision {
    pub fn from_wait_us(wait_us: u64) -> Self {
        Self::Limited {
            retry_after: Duration::from_micros(wait_us),
        }
    }
}

/// The address a client is known by before it authenticates. IPv4 addresses (also when mapped
/// into IPv6) stand for themselves; an IPv6 address stands for its /64 network, because one
/// subscriber usually holds a whole /64 and could otherwise take a fresh budget per address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddress(IpAddr);

impl ClientAddress {
    pub fn new(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let network = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(Ipv6Addr::from(network)))
                }
            },
        }
    }

    pub fn ip(self) -> IpAddr {
        self.0
    }
}

impl std::fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Whose budget a request is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// Every request of an authenticated user.
    User(UserId),
    /// Sign-ups without a token, per client address.
    SignUp(ClientAddress),
    /// Requests whose token is missing (where one is required) or invalid, per client address.
    FailedAuthentication(ClientAddress),
}

impl std::fmt::Display for RateKey {
    /// A stable name, used as (part of) a storage key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User(user) => write!(f, "user:{user}"),
            Self::SignUp(client) => write!(f, "sign-up:{client}"),
            Self::FailedAuthentication(client) => write!(f, "auth-failure:{client}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_second: u32, burst: u32) -> Gcra {
        RateLimit { per_second, burst }.gcra().unwrap()
    }

    /// Runs `times` requests at `now` against a stored TAT, like a store would.
    fn run(gcra: Gcra, tat: &mut Option<u64>, now: u64, times: usize) -> Vec<GcraOutcome> {
        (0..times)
            .map(|_| {
                let outcome = gcra.decide(*tat, now);
                if let GcraOutcome::Allowed { new_tat } = outcome {
                    *tat = Some(new_tat);
                }
                outcome
            })
            .collect()
    }

    #[test]
    fn a_full_budget_lets_exactly_the_burst_through_then_one_per_interval() {
        let gcra = limit(5, 20);
        assert_eq!(gcra.interval_us, 200_000);
        assert_eq!(gcra.tolerance_us, 4_000_000);
        let t0 = 1_700_000_000_000_000;
        let mut tat = None;
        let outcomes = run(gcra, &mut tat, t0, 21);
        assert!(
            outcomes[..20]
                .iter()
                .all(|o| matches!(o, GcraOutcome::Allowed { .. }))
        );
        assert_eq!(outcomes[20], GcraOutcome::Limited { wait_us: 200_000 });
        assert_eq!(tat, Some(t0 + 4_000_000));
        // A refusal changes nothing: the wait only shrinks with time.
        assert_eq!(
            gcra.decide(tat, t0 + 150_000),
            GcraOutcome::Limited { wait_us: 50_000 }
        );
        // One interval later exactly one more fits.
        let later = run(gcra, &mut tat, t0 + 200_000, 2);
        assert!(matches!(later[0], GcraOutcome::Allowed { .. }));
        assert!(matches!(later[1], GcraOutcome::Limited { .. }));
    }

    #[test]
    fn an_idle_budget_refills_to_the_burst_and_no_further() {
        let gcra = limit(2, 3);
        let t0 = 10_000_000;
        let mut tat = None;
        run(gcra, &mut tat, t0, 3);
        // An hour later the stored TAT lies in the past: the budget is full, not larger.
        let allowed = run(gcra, &mut tat, t0 + 3_600_000_000, 10)
            .iter()
            .filter(|o| matches!(o, GcraOutcome::Allowed { .. }))
            .count();
        assert_eq!(allowed, 3);
    }

    #[test]
    fn a_burst_of_one_is_a_plain_rate() {
        let gcra = limit(1, 1);
        let mut tat = None;
        let at = |s: u64| 5_000_000 + s * 1_000_000;
        assert!(matches!(
            gcra.decide(tat, at(0)),
            GcraOutcome::Allowed { .. }
        ));
        tat = Some(at(0) + 1_000_000);
        assert_eq!(
            gcra.decide(tat, at(0)),
            GcraOutcome::Limited { wait_us: 1_000_000 }
        );
        assert!(matches!(
            gcra.decide(tat, at(1)),
            GcraOutcome::Allowed { .. }
        ));
    }

    #[test]
    fn zero_per_second_disables_and_huge_rates_still_advance() {
        assert!(RateLimit::DISABLED.is_disabled());
        assert_eq!(
            RateLimit {
                per_second: 0,
                burst: 100
            }
            .gcra(),
            None
        );
        assert_eq!(limit(3, 1).interval_us, 333_333);
        assert_eq!(limit(5_000_000, 1).interval_us, 1);
    }

    #[test]
    fn ipv6_clients_are_their_64_network_and_mapped_ipv4_is_ipv4() {
        let a = ClientAddress::new("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ClientAddress::new("2001:db8:1:2:bbbb::7".parse().unwrap());
        let c = ClientAddress::new("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        let mapped = ClientAddress::new("::ffff:192.0.2.7".parse().unwrap());
        assert_eq!(mapped, ClientAddress::new("192.0.2.7".parse().unwrap()));
        assert_eq!(
            RateKey::FailedAuthentication(mapped).to_string(),
            "auth-failure:192.0.2.7"
        );
        assert_eq!(RateKey::User(UserId(42)).to_string(), "user:42");
    }
}
