//! The JWKS cache of one method: fetched lazily, refreshed after `jwks_cache_ttl`, refetched
//! for an unknown `kid` at most once per `jwks_refresh_min_interval`, one fetch at a time
//! (concurrent logins wait for the fetch in flight and share its result).
//!
//! A failed, oversized or key-less fetch never replaces a good set: the old keys stay in use
//! (stale-if-error, at most [`MAX_STALE`]). With OIDC discovery, the discovery document is
//! refetched with every key set (a moved `jwks_uri` is followed) and its `issuer` must still
//! equal the configured URL.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use url::Url;

use super::config::{JwtMethodConfig, KeySource, upstream_url};
use super::keys::KeySet;
use crate::error::{Check, Class, Refusal, shown};
use crate::fetch::FetchClient;
use crate::upstream::{UpstreamGate, humanize};

/// Largest discovery document.
pub const MAX_DISCOVERY_BYTES: usize = 64 * 1024;
/// Largest JWKS document.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// How long a stale set is used while the issuer fails.
pub const MAX_STALE: Duration = Duration::from_secs(24 * 3600);

/// Where the keys are fetched from.
#[derive(Debug, Clone)]
enum Remote {
    /// The configured discovery URL, as written (the `issuer` must equal it).
    Discovery(String),
    Jwks(Url),
}

/// Refresh timing.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CacheSettings {
    /// Age after which a set is refetched.
    pub ttl: Duration,
    /// Least time between two fetches triggered by unknown `kid`s or failures.
    pub refresh_min_interval: Duration,
}

impl CacheSettings {
    /// The method's settings.
    pub fn of(config: &JwtMethodConfig) -> Self {
        Self {
            ttl: config.jwks_cache_ttl,
            refresh_min_interval: config.jwks_refresh_min_interval,
        }
    }

    /// Explicit settings (tests, tools).
    pub fn new(ttl: Duration, refresh_min_interval: Duration) -> Self {
        Self {
            ttl,
            refresh_min_interval,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    keys: Option<Arc<KeySet>>,
    fetched_at: Option<Instant>,
    attempted_at: Option<Instant>,
    /// Bumped by every fetch attempt; single-flight waiters compare it.
    generation: u64,
    last_error: Option<Refusal>,
}

/// Counters, for tests and metrics.
#[derive(Debug, Default)]
struct Counters {
    jwks: AtomicU64,
    discovery: AtomicU64,
    failures: AtomicU64,
}

/// The JWKS cache of one method.
///
/// Every fetch runs in a spawned task that holds the single-flight lock: a login that is
/// cancelled while it waits (client reset, client timeout) cancels neither the fetch nor
/// its bookkeeping, and the attempt is recorded before the fetch is awaited, so cancelling
/// requests cannot bypass the unknown-`kid` refetch interval.
#[derive(Debug)]
pub struct JwksCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    remote: Remote,
    client: FetchClient,
    gate: UpstreamGate,
    settings: CacheSettings,
    state: RwLock<State>,
    flight: Arc<tokio::sync::Mutex<()>>,
    counters: Counters,
}

struct Snapshot {
    keys: Option<Arc<KeySet>>,
    fetched_age: Option<Duration>,
    attempted_age: Option<Duration>,
    generation: u64,
    last_error: Option<Refusal>,
}

impl JwksCache {
    /// A cache for a remote key source (`None` for static keys).
    pub fn new(
        config: &JwtMethodConfig,
        client: FetchClient,
        gate: UpstreamGate,
        settings: CacheSettings,
    ) -> Option<Self> {
        let remote = match &config.key_source {
            KeySource::OidcDiscovery(u) => Remote::Discovery(u.clone()),
            KeySource::JwksUrl(u) => Remote::Jwks(Url::parse(u).ok()?),
            KeySource::Pubkeys(_) => return None,
        };
        Some(Self {
            inner: Arc::new(Inner {
                remote,
                client,
                gate,
                settings,
                state: RwLock::new(State::default()),
                flight: Arc::new(tokio::sync::Mutex::new(())),
                counters: Counters::default(),
            }),
        })
    }

    /// JWKS documents fetched (attempts, failed ones included).
    pub fn jwks_fetches(&self) -> u64 {
        self.inner.counters.jwks.load(Ordering::SeqCst)
    }

    /// Discovery documents fetched (attempts).
    pub fn discovery_fetches(&self) -> u64 {
        self.inner.counters.discovery.load(Ordering::SeqCst)
    }

    /// Refreshes that failed.
    pub fn failures(&self) -> u64 {
        self.inner.counters.failures.load(Ordering::SeqCst)
    }

    fn snapshot(&self) -> Snapshot {
        self.inner.snapshot()
    }

    fn may_fetch(&self, snap: &Snapshot) -> bool {
        snap.attempted_age
            .is_none_or(|a| a >= self.inner.settings.refresh_min_interval)
    }

    /// The key set to verify a token naming `kid` with: refreshed when due, refetched for an
    /// unknown `kid` when the interval allows. An unknown `kid` that the (possibly refreshed)
    /// set still lacks is not an error here; the verifier names it.
    ///
    /// A set past its TTL that still holds the token's `kid` (or any key, for a kid-less
    /// token) is served at once while the refresh runs in the background
    /// (stale-while-revalidate), so a slow issuer never stalls logins it need not.
    pub async fn key_set(&self, kid: Option<&str>) -> Result<Arc<KeySet>, Refusal> {
        let snap = self.snapshot();
        let may_fetch = self.may_fetch(&snap);
        let keys = match (&snap.keys, snap.fetched_age) {
            (Some(keys), Some(age)) if age <= self.inner.settings.ttl => keys.clone(),
            (Some(keys), Some(age)) if age <= MAX_STALE && kid.is_none_or(|k| keys.has_kid(k)) => {
                if may_fetch {
                    self.refresh_in_background(snap.generation);
                }
                return Ok(keys.clone());
            }
            (Some(keys), Some(age)) => {
                // Due for refresh: try when allowed, else (or on failure) serve the stale set.
                if may_fetch {
                    let _ = self.refresh(snap.generation).await;
                }
                let now = self.snapshot();
                match now.keys {
                    Some(k) if now.fetched_age.is_some_and(|a| a <= MAX_STALE) => k,
                    _ if age <= MAX_STALE => keys.clone(),
                    _ => return Err(now.last_error.unwrap_or_else(stale_refusal)),
                }
            }
            _ => {
                if !may_fetch {
                    return Err(snap.last_error.unwrap_or_else(stale_refusal));
                }
                self.refresh(snap.generation).await?;
                self.snapshot().keys.ok_or_else(stale_refusal)?
            }
        };
        let Some(kid) = kid else { return Ok(keys) };
        if keys.has_kid(kid) {
            return Ok(keys);
        }
        let snap = self.snapshot();
        if !self.may_fetch(&snap) {
            // Whether the key exists cannot be told while the issuer fails: that is its error.
            return match snap.last_error {
                Some(e) => Err(e),
                None => Ok(keys),
            };
        }
        self.refresh(snap.generation).await?;
        Ok(self.snapshot().keys.unwrap_or(keys))
    }

    /// Seconds since the last fetch attempt, for messages.
    pub fn refreshed_ago(&self) -> Option<Duration> {
        self.snapshot().attempted_age
    }

    /// Fetches now, whatever the interval (method enable/update validation).
    pub async fn refresh_now(&self) -> Result<usize, Refusal> {
        let generation = self.snapshot().generation;
        self.refresh(generation).await?;
        Ok(self.snapshot().keys.map_or(0, |k| k.len()))
    }

    /// Starts a refresh without waiting for it, unless one is in flight already.
    fn refresh_in_background(&self, seen: u64) {
        if self.inner.flight.try_lock().is_err() {
            return;
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let _ = inner.refresh(seen).await;
        });
    }

    /// Runs (or joins) a refresh in a spawned task and waits for it, at most the fetch
    /// budget plus the upstream-slot wait. Dropping this future leaves the fetch running.
    async fn refresh(&self, seen: u64) -> Result<(), Refusal> {
        let inner = self.inner.clone();
        let bound = inner.wait_bound();
        let task = tokio::spawn(async move { inner.refresh(seen).await });
        match tokio::time::timeout(bound, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(stale_refusal()),
            Err(_) => Err(Refusal::new(
                Check::Upstream,
                Class::Busy,
                format!(
                    "upstream: busy, the issuer's key set is still being fetched after {}",
                    humanize(bound)
                ),
            )),
        }
    }
    /// The refusal for a `kid` the set lacks.
    pub fn unknown_kid(&self, kid: &str) -> Refusal {
        let ago = self
            .refreshed_ago()
            .map(|d| {
                format!(
                    " (refreshed {} ago)",
                    humanize(Duration::from_secs(d.as_secs()))
                )
            })
            .unwrap_or_default();
        Refusal::unauthorized(
            Check::Kid,
            format!(
                "kid: no key `{}` in the issuer's key set{ago}",
                shown(kid, 64)
            ),
        )
    }
}

impl Inner {
    fn snapshot(&self) -> Snapshot {
        let s = self.state.read().unwrap_or_else(|e| e.into_inner());
        Snapshot {
            keys: s.keys.clone(),
            fetched_age: s.fetched_at.map(|t| t.elapsed()),
            attempted_age: s.attempted_at.map(|t| t.elapsed()),
            generation: s.generation,
            last_error: s.last_error.clone(),
        }
    }

    /// How long a login waits for a refresh: the whole fetch budget plus a slot wait.
    fn wait_bound(&self) -> Duration {
        self.client.timeout() + self.gate.wait() + Duration::from_millis(250)
    }

    /// One fetch at a time: a task whose `seen` generation is outdated when it gets the
    /// lock takes the result of the fetch it waited for. The attempt is recorded (and the
    /// generation bumped) before the fetch is awaited, and again when it ends.
    async fn refresh(&self, seen: u64) -> Result<(), Refusal> {
        let _flight = self.flight.lock().await;
        {
            let s = self.state.read().unwrap_or_else(|e| e.into_inner());
            if s.generation != seen {
                return match &s.last_error {
                    Some(e) => Err(e.clone()),
                    None => Ok(()),
                };
            }
        }
        // No slot: not an attempt, the state stays as it was.
        let _permit = self.gate.acquire().await?;
        {
            let mut s = self.state.write().unwrap_or_else(|e| e.into_inner());
            s.generation += 1;
            s.attempted_at = Some(Instant::now());
        }
        // Discovery and JWKS share one budget.
        let budget = self.client.timeout();
        let result = match tokio::time::timeout(budget, self.fetch()).await {
            Ok(r) => r,
            Err(_) => Err(Refusal::upstream(format!(
                "upstream: the issuer's key set: timed out after {}",
                humanize(budget)
            ))),
        };
        let mut s = self.state.write().unwrap_or_else(|e| e.into_inner());
        s.generation += 1;
        match result {
            Ok(keys) => {
                s.keys = Some(Arc::new(keys));
                s.fetched_at = Some(Instant::now());
                s.last_error = None;
                Ok(())
            }
            Err(e) => {
                self.counters.failures.fetch_add(1, Ordering::SeqCst);
                tracing::warn!(reason = %e.message, "JWKS refresh failed; keeping the previous key set");
                s.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, Refusal> {
        let jwks_url = match &self.remote {
            Remote::Jwks(u) => u.clone(),
            Remote::Discovery(configured) => self.discover(configured).await?,
        };
        self.counters.jwks.fetch_add(1, Ordering::SeqCst);
        let body = self
            .client
            .get(&jwks_url, MAX_JWKS_BYTES)
            .await
            .map_err(|e| Refusal::upstream(format!("upstream: the issuer's key set: {e}")))?;
        KeySet::from_jwks(&body)
            .map_err(|e| Refusal::upstream(format!("upstream: the issuer's key set: {e}")))
    }

    async fn discover(&self, configured: &str) -> Result<Url, Refusal> {
        let doc_url = format!(
            "{}/.well-known/openid-configuration",
            configured.trim_end_matches('/')
        );
        let doc_url = Url::parse(&doc_url)
            .map_err(|_| Refusal::upstream("upstream: the discovery URL is not valid"))?;
        self.counters.discovery.fetch_add(1, Ordering::SeqCst);
        let body = self
            .client
            .get(&doc_url, MAX_DISCOVERY_BYTES)
            .await
            .map_err(|e| {
                Refusal::upstream(format!("upstream: the issuer's discovery document: {e}"))
            })?;
        let bad = || {
            Refusal::upstream(
                "upstream: the issuer's discovery document is not JSON with `issuer` and `jwks_uri`",
            )
        };
        let doc: Value = serde_json::from_slice(&body).map_err(|_| bad())?;
        let (Some(issuer), Some(jwks_uri)) = (
            doc.get("issuer").and_then(Value::as_str),
            doc.get("jwks_uri").and_then(Value::as_str),
        ) else {
            return Err(bad());
        };
        if issuer != configured {
            tracing::warn!(issuer = %shown(issuer, 200), "discovery document names another issuer");
            return Err(Refusal::upstream(
                "upstream: the discovery document's `issuer` is not the configured oidc_discovery_url",
            ));
        }
        let jwks = upstream_url("jwks_uri", jwks_uri)
            .map_err(|e| Refusal::upstream(format!("upstream: the discovery document's {e}")))?;
        // An issuer may not point Arcan at other hosts (internal ones included).
        if jwks.scheme() != doc_url.scheme()
            || jwks.host_str() != doc_url.host_str()
            || jwks.port_or_known_default() != doc_url.port_or_known_default()
        {
            tracing::warn!(jwks_uri = %shown(jwks_uri, 200), "discovery document points at another host");
            return Err(Refusal::upstream(
                "upstream: the discovery document's `jwks_uri` is not on the oidc_discovery_url's host",
            ));
        }
        Ok(jwks)
    }
}

fn stale_refusal() -> Refusal {
    Refusal::upstream("upstream: the issuer's key set is unavailable")
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
