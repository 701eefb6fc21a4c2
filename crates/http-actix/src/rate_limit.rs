//! Request budgets at the HTTP edge: which client a request comes from, and the three checks
//! of [`application::rate_limits`] mapped to 429 `RATE_LIMITED` with `Retry-After`.
//!
//! - Every authenticated request takes one from its user's budget, where the bearer token is
//!   resolved ([`crate::extract`]), so every authenticated endpoint is covered in one place.
//! - A sign-up without a token takes one from its client's sign-up budget
//!   ([`check_sign_up`]).
//! - A request whose token is missing (where one is required) or invalid takes one from its
//!   client's failed-authentication budget ([`guard_authentication`]); once that is spent, the
//!   client's tokens are not even checked until `Retry-After` has passed.
//!
//! A refused request answers before any use case runs, so nothing changes.
//!
//! # Which client
//! The peer address of the connection, unless the peer is a trusted proxy (`TRUSTED_PROXIES`):
//! then the rightmost `X-Forwarded-For` hop that is not itself a trusted proxy
//! ([`client_address`]). Hops further left were written by the client and prove nothing, and an
//! untrusted peer's `X-Forwarded-For` is ignored, so a client cannot pick its own budget.

use crate::ApiState;
use crate::error::ApiError;
use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web;
use application::ShopError;
use application::rate_limits::OverBudget;
use domain::UserId;
use domain::rate_limit::ClientAddress;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// One network of trusted proxies: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    fn contains(self, ip: IpAddr) -> bool {
        match (self.address, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4 addresses mapped into IPv6 (a dual-stack listener's view) compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`): IPs and CIDR networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Arc<[Network]>);

impl TrustedProxies {
    /// No proxy is trusted: the peer address is the client.
    pub fn none() -> Self {
        Self::default()
    }

    /// Comma-separated IPs and CIDRs (`10.0.0.0/8, 192.0.2.7, fd00::/8`); the error names the
    /// entry that is not one.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let networks = raw
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let bad = || format!("{entry:?} is not an IP address or CIDR network");
                let (address, prefix) = match entry.split_once('/') {
                    Some((address, prefix)) => (address, Some(prefix)),
                    None => (entry, None),
                };
                let address = canonical(address.parse::<IpAddr>().map_err(|_| bad())?);
                let max = if address.is_ipv4() { 32 } else { 128 };
                let prefix = match prefix {
                    Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
                    None => max,
                };
                Ok(Network { address, prefix })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self(networks.into()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(ip))
    }
}

/// One `X-Forwarded-For` hop: an IP, possibly with a port (`192.0.2.1:4711`, `[2001:db8::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (ip, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The client a request comes from: `peer` itself unless it is a trusted proxy; then, walking
/// `forwarded_for` (the `X-Forwarded-For` hops, leftmost first) from the right, the first hop
/// that is not a trusted proxy. A hop that is not an address ends the walk at the trusted hop
/// that forwarded it; if every hop is trusted, the leftmost one is the client.
pub fn client_address(peer: IpAddr, forwarded_for: &[&str], trusted: &TrustedProxies) -> IpAddr {
    let mut client = canonical(peer);
    if !trusted.contains(client) {
        return client;
    }
    for hop in forwarded_for.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            return client;
        };
        client = canonical(ip);
        if !trusted.contains(client) {
            return client;
        }
    }
    client
}

/// The client of `req` as a budget owner.
pub(crate) fn client_of(req: &HttpRequest, trusted: &TrustedProxies) -> ClientAddress {
    // Without a peer (never over TCP) every such request shares one budget: fail closed.
    let peer = req
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    let ip = if trusted.is_empty() || !trusted.contains(canonical(peer)) {
        canonical(peer)
    } else {
        let values: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .collect();
        let hops: Vec<&str> = values.iter().flat_map(|v| v.split(',')).collect();
        client_address(peer, &hops, trusted)
    };
    ClientAddress::new(ip)
}

fn refused(budget: &'static str, over: OverBudget) -> ApiError {
    metrics::counter!("http_rate_limited_total", "budget" => budget).increment(1);
    // Whole seconds, rounded up: a client that waits that long finds room.
    let retry_after_secs = over
        .retry_after
        .as_micros()
        .div_ceil(1_000_000)
        .max(1)
        .try_into()
        .unwrap_or(u64::MAX);
    ApiError::RateLimited { retry_after_secs }
}

/// One request of an authenticated user.
pub(crate) async fn check_user(state: &ApiState, user: UserId) -> Result<(), ApiError> {
    state
        .rate_limits
        .check_user(user)
        .await
        .map_err(|over| refused("user", over))
}

/// One sign-up without a token.
pub(crate) async fn check_sign_up(req: &HttpRequest, state: &ApiState) -> Result<(), ApiError> {
    let client = client_of(req, &state.trusted_proxies);
    state
        .rate_limits
        .check_sign_up(client)
        .await
        .map_err(|over| refused("sign_up", over))
}

/// Runs an authentication `attempt` under the client's failed-authentication budget:
/// refused at once while the client is blocked (when the request carries a token or
/// `required` says one is needed), and a 401 from the attempt is counted, becoming 429 once
/// the budget is spent. Requests without a token where none is needed are not touched.
pub(crate) async fn guard_authentication<T>(
    req: &HttpRequest,
    required: bool,
    attempt: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let Some(state) = req.app_data::<web::Data<ApiState>>().cloned() else {
        return attempt.await;
    };
    let client = client_of(req, &state.trusted_proxies);
    if required || req.headers().contains_key(header::AUTHORIZATION) {
        state
            .rate_limits
            .check_authentication_allowed(client)
            .map_err(|over| refused("failed_authentication", over))?;
    }
    match attempt.await {
        Err(ApiError::Shop(ShopError::Unauthenticated)) => {
            state
                .rate_limits
                .record_failed_authentication(client)
                .await
                .map_err(|over| refused("failed_authentication", over))?;
            Err(ApiError::unauthenticated())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(raw: &str) -> IpAddr {
        raw.parse().unwrap()
    }

    #[test]
    fn trusted_proxies_parse_ips_and_networks_and_name_a_bad_entry() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 192.0.2.7,fd00::/8").unwrap();
        assert!(trusted.contains(ip("10.200.3.4")));
        assert!(trusted.contains(ip("192.0.2.7")));
        assert!(!trusted.contains(ip("192.0.2.8")));
        assert!(trusted.contains(ip("fd12::1")));
        assert!(trusted.contains(ip("::ffff:10.1.1.1")), "mapped IPv4");
        assert!(!trusted.contains(ip("11.0.0.1")));
        assert!(
            TrustedProxies::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("8.8.8.8"))
        );
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        for bad in ["10.0.0.0/33", "proxy.local", "10.0.0.1/x", "::1/129"] {
            let e = TrustedProxies::parse(bad).unwrap_err();
            assert!(e.contains(bad.split('/').next().unwrap()), "{e}");
        }
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop_behind_a_trusted_peer() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        // The client wrote the leftmost hop itself; the proxies appended the rest.
        let hops = ["6.6.6.6", "203.0.113.9", "10.0.0.5"];
        assert_eq!(
            client_address(ip("10.0.0.1"), &hops, &trusted),
            ip("203.0.113.9")
        );
        // Ports and brackets are tolerated.
        assert_eq!(
            client_address(ip("10.0.0.1"), &["203.0.113.9:5555"], &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), &[" [2001:db8::1]:443"], &trusted),
            ip("2001:db8::1")
        );
        // Every hop trusted: the leftmost is the client. No header: the proxy itself.
        assert_eq!(
            client_address(ip("10.0.0.1"), &["10.9.9.9", "10.0.0.5"], &trusted),
            ip("10.9.9.9")
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), &[], &trusted),
            ip("10.0.0.1")
        );
        // Garbage stops the walk at the trusted hop that forwarded it.
        assert_eq!(
            client_address(ip("10.0.0.1"), &["203.0.113.9", "unknown"], &trusted),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn an_untrusted_peers_forwarded_for_is_ignored() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(
            client_address(ip("198.51.100.4"), &["203.0.113.9"], &trusted),
            ip("198.51.100.4")
        );
        assert_eq!(
            client_address(
                ip("198.51.100.4"),
                &["203.0.113.9"],
                &TrustedProxies::none()
            ),
            ip("198.51.100.4")
        );
    }
}
