//! Token-bucket rate limits (the `governor` crate): per token for authenticated requests,
//! per client IP for everything else, including requests bearing an invalid token (the
//! auth guardian charges those to the IP, so random tokens do not buy fresh buckets).

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use salvo::prelude::*;
use sha2::{Digest, Sha256};

use super::super::error::{ApiError, render_error};
use super::super::login_guard::client_network;
use super::super::state::state;
use arcan_config::RateLimitConfig;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// The limiters.
pub struct RateLimits {
    ip: Keyed<IpAddr>,
    token: Keyed<[u8; 16]>,
    clock: DefaultClock,
    /// Clients over their budget for invalid tokens, until when: their uncached bearers
    /// are refused without a store lookup.
    penalty: moka::sync::Cache<IpAddr, std::time::Instant>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

fn quota(per_second: u32) -> Quota {
    Quota::per_second(NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN))
}

impl RateLimits {
    /// Limiters from config.
    pub fn new(cfg: &RateLimitConfig) -> Self {
        Self {
            ip: RateLimiter::keyed(quota(cfg.per_ip)),
            token: RateLimiter::keyed(quota(cfg.per_token)),
            clock: DefaultClock::default(),
            penalty: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(60))
                .build(),
        }
    }

    /// Marks a client as over its budget for invalid tokens for `secs` seconds.
    pub fn penalise(&self, ip: IpAddr, secs: u64) {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(secs.min(60));
        self.penalty.insert(client_network(ip), until);
    }

    /// Seconds left of a client's penalty, if any.
    pub fn penalised(&self, ip: IpAddr) -> Option<u64> {
        let left = self
            .penalty
            .get(&client_network(ip))?
            .checked_duration_since(std::time::Instant::now())?;
        Some(left.as_secs() + 1)
    }

    /// Charges one request to a client (its IPv4 address or IPv6 /64); `Err(seconds)`
    /// when over the limit.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), u64> {
        self.ip
            .check_key(&client_network(ip))
            .map_err(|n| n.wait_time_from(self.clock.now()).as_secs() + 1)
    }

    /// Charges one request to a bearer token (keyed by a digest, never the token).
    pub fn check_token(&self, bearer: &str) -> Result<(), u64> {
        let digest = Sha256::digest(bearer.as_bytes());
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        self.token
            .check_key(&key)
            .map_err(|n| n.wait_time_from(self.clock.now()).as_secs() + 1)
    }

    /// Forgets idle buckets (called periodically).
    pub fn shrink(&self) {
        self.ip.retain_recent();
        self.token.retain_recent();
        self.ip.shrink_to_fit();
        self.token.shrink_to_fit();
    }
}

/// The bearer token of a request, if any.
pub fn bearer(req: &Request) -> Option<&str> {
    let v = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The client's address as the limits and the audit see it (put in the depot by the
/// rate-limit hoops).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

const UNSPECIFIED: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

/// The client address: the peer, or, when the peer is a trusted proxy, the nearest address
/// in `X-Forwarded-For` (read right to left) that is not itself a trusted proxy. A
/// malformed entry stops the walk at the last trusted hop, so a forged header from an
/// untrusted client never decides its bucket.
pub fn client_ip(req: &Request, trusted: &[ipnet::IpNet]) -> IpAddr {
    let peer = req.remote_addr().ip().unwrap_or(UNSPECIFIED).to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>().map(|ip| ip.to_canonical()) {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// The client address of a request: from the depot when a hoop computed it.
pub fn client_of(req: &Request, depot: &Depot) -> IpAddr {
    match depot.get_typed::<ClientIp>() {
        Ok(c) => c.0,
        Err(_) => req.remote_addr().ip().unwrap_or(UNSPECIFIED).to_canonical(),
    }
}

fn refuse(
    st: &super::super::state::AppState,
    secs: u64,
    depot: &Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    st.metrics.rate_limited.inc();
    render_error(&ApiError::rate_limited(secs), depot, res);
    ctrl.skip_rest();
}

/// The hoop of authenticated routes: a bearer is charged to its token's bucket (the auth
/// guardian charges an invalid one to the IP as well); no bearer, to the client IP.
#[handler]
pub async fn rate_limit(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let st = state(depot).clone();
    let ip = client_ip(req, &st.config.rate_limit.trusted_proxies);
    depot.insert_typed(ClientIp(ip));
    let verdict = match bearer(req) {
        Some(token) => st.limits.check_token(token),
        None => st.limits.check_ip(ip),
    };
    if let Err(secs) = verdict {
        refuse(&st, secs, depot, res, ctrl);
    }
}

/// The hoop of public routes (login, registration): always charged to the client IP,
/// whatever headers the request carries, so no header buys a fresh bucket.
#[handler]
pub async fn public(req: &mut Request, depot: &mut Depot, res: &mut Response, ctrl: &mut FlowCtrl) {
    let st = state(depot).clone();
    let ip = client_ip(req, &st.config.rate_limit.trusted_proxies);
    depot.insert_typed(ClientIp(ip));
    if let Err(secs) = st.limits.check_ip(ip) {
        refuse(&st, secs, depot, res, ctrl);
    }
}
