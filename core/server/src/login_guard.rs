//! Abuse resistance of password authentication: per-account throttling of failed logins
//! and a bound on concurrent password hashing.
//!
//! Throttling is kept per account *and client network* (the IPv4 address, or the IPv6
//! /64), so an attacker who fails on a victim's account locks out only himself, never the
//! victim logging in from elsewhere. It counts an attempt *before* the password is checked
//! (and forgets it on success), so concurrent guesses cannot slip past the limit: once the
//! free attempts are used, each further attempt arms a lock of `base_delay · 2ⁿ` (at most
//! `max_delay`) during which logins are refused without hashing. Locks are always
//! temporary. Hashing runs on blocking threads behind a semaphore sized to the machine, so
//! a flood of logins costs a fast 503, not memory (each argon2 hash takes ~19 MiB).

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use arcan_config::AuthConfig;

/// Failures of one account.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

/// Why a login may not proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The account is locked for this long.
    Locked(Duration),
    /// No hashing slot became free in time.
    Busy,
}

/// The state of one login attempt that passed the throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// The lock this attempt armed should it fail (`None`: still within the free attempts).
    pub arms_lock: Option<Duration>,
}

/// Throttle and hashing bound, shared by every login and registration.
pub struct LoginGuard {
    failures: moka::sync::Cache<[u8; 32], Failures>,
    update: Mutex<()>,
    free_attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
    hashes: Arc<Semaphore>,
    hash_wait: Duration,
}

impl std::fmt::Debug for LoginGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginGuard").finish_non_exhaustive()
    }
}

/// The network a client is charged as: its IPv4 address, or its IPv6 /64 (one host
/// usually holds a whole /64).
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

fn account_key(account: &str, ip: IpAddr) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(account.as_bytes());
    h.update([0]);
    h.update(client_network(ip).to_string().as_bytes());
    h.finalize().into()
}

impl LoginGuard {
    /// From the auth config.
    pub fn new(cfg: &AuthConfig) -> Self {
        let t = &cfg.login_throttle;
        let slots = cfg.max_concurrent_hashes.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        });
        Self {
            // Counters are forgotten after a quiet period twice the longest lock.
            failures: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_idle((t.max_delay * 2).max(Duration::from_secs(60)))
                .build(),
            update: Mutex::new(()),
            free_attempts: t.free_attempts,
            base_delay: t.base_delay,
            max_delay: t.max_delay,
            hashes: Arc::new(Semaphore::new(slots.max(1))),
            hash_wait: cfg.hash_wait,
        }
    }

    fn delay(&self, over: u32) -> Duration {
        let factor = 1u32.checked_shl(over.min(31)).unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// The remaining lock of `account` from `ip`, without counting an attempt.
    pub fn locked(&self, account: &str, ip: IpAddr, now: Instant) -> Option<Duration> {
        let f = self.failures.get(&account_key(account, ip))?;
        f.locked_until.filter(|u| *u > now).map(|u| u - now)
    }

    /// Counts an attempt for `account` from `ip`, or refuses it while that is locked.
    pub fn begin(&self, account: &str, ip: IpAddr, now: Instant) -> Result<Attempt, Refusal> {
        let key = account_key(account, ip);
        let _one_at_a_time = self.update.lock().unwrap_or_else(|p| p.into_inner());
        let mut f = self.failures.get(&key).unwrap_or(Failures {
            count: 0,
            locked_until: None,
        });
        if let Some(until) = f.locked_until
            && until > now
        {
            return Err(Refusal::Locked(until - now));
        }
        f.count = f.count.saturating_add(1);
        let arms_lock = (f.count >= self.free_attempts).then(|| {
            let d = self.delay(f.count - self.free_attempts);
            f.locked_until = Some(now + d);
            d
        });
        self.failures.insert(key, f);
        Ok(Attempt { arms_lock })
    }

    /// Takes back an attempt that ended without judging the caller (an upstream outage):
    /// it no longer counts, and a lock it armed is lifted.
    pub fn refund(&self, account: &str, ip: IpAddr, attempt: &Attempt) {
        let key = account_key(account, ip);
        let _one_at_a_time = self.update.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut f) = self.failures.get(&key) {
            f.count = f.count.saturating_sub(1);
            if attempt.arms_lock.is_some() {
                f.locked_until = None;
            }
            self.failures.insert(key, f);
        }
    }

    /// A successful login: the counter of the account from this network starts over.
    pub fn succeeded(&self, account: &str, ip: IpAddr) {
        let _one_at_a_time = self.update.lock().unwrap_or_else(|p| p.into_inner());
        self.failures.invalidate(&account_key(account, ip));
    }

    /// Waits (at most `hash_wait`) for a hashing slot.
    pub async fn hash_slot(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        let sem = self.hashes.clone();
        if self.hash_wait.is_zero() {
            return sem.try_acquire_owned().map_err(|_| Refusal::Busy);
        }
        match tokio::time::timeout(self.hash_wait, sem.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Refusal::Busy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arcan_config::LoginThrottleConfig;

    fn guard(free: u32, base: u64, max: u64) -> LoginGuard {
        LoginGuard::new(&AuthConfig {
            login_throttle: LoginThrottleConfig {
                free_attempts: free,
                base_delay: Duration::from_secs(base),
                max_delay: Duration::from_secs(max),
            },
            max_concurrent_hashes: Some(1),
            hash_wait: Duration::ZERO,
            ..AuthConfig::default()
        })
    }

    const ATTACKER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const VICTIM: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));

    #[test]
    fn the_attackers_failures_do_not_lock_the_victims_network() {
        let g = guard(2, 60, 60);
        let t0 = Instant::now();
        let _ = g.begin("v@x.io", ATTACKER, t0);
        let _ = g.begin("v@x.io", ATTACKER, t0);
        assert!(g.locked("v@x.io", ATTACKER, t0).is_some());
        assert_eq!(g.locked("v@x.io", VICTIM, t0), None);
        assert!(g.begin("v@x.io", VICTIM, t0).is_ok());
        let v6a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let v6b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        assert_eq!(
            client_network(v6a),
            client_network(v6b),
            "one /64 is one client"
        );
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        assert_eq!(client_network(mapped), ATTACKER);
    }

    #[test]
    fn locks_after_the_free_attempts_and_doubles_up_to_the_cap() {
        let g = guard(3, 2, 5);
        let t0 = Instant::now();
        for _ in 0..2 {
            assert_eq!(
                g.begin("a@x.io", ATTACKER, t0).expect("free").arms_lock,
                None
            );
        }
        let third = g
            .begin("a@x.io", ATTACKER, t0)
            .expect("third is still tried");
        assert_eq!(third.arms_lock, Some(Duration::from_secs(2)));
        assert_eq!(
            g.begin("a@x.io", ATTACKER, t0 + Duration::from_secs(1)),
            Err(Refusal::Locked(Duration::from_secs(1)))
        );
        assert!(
            g.begin("b@x.io", ATTACKER, t0).is_ok(),
            "other accounts are not affected"
        );
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(
            g.begin("a@x.io", ATTACKER, t1)
                .expect("lock expired")
                .arms_lock,
            Some(Duration::from_secs(4))
        );
        let t2 = t1 + Duration::from_secs(4);
        assert_eq!(
            g.begin("a@x.io", ATTACKER, t2)
                .expect("lock expired")
                .arms_lock,
            Some(Duration::from_secs(5)),
            "capped at max_delay"
        );
        g.succeeded("a@x.io", ATTACKER);
        assert_eq!(
            g.begin("a@x.io", ATTACKER, t2).expect("reset").arms_lock,
            None
        );
    }

    #[tokio::test]
    async fn hashing_slots_are_bounded() {
        let g = guard(3, 1, 1);
        let held = g.hash_slot().await.expect("one slot");
        assert_eq!(g.hash_slot().await.err(), Some(Refusal::Busy));
        drop(held);
        assert!(g.hash_slot().await.is_ok());
    }
}
