//! The JWKS cache against a local HTTPS issuer (discovery + JWKS) with counters and knobs.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::LoginContext;
use crate::error::{Check, Class};
use crate::jwt::{CacheSettings, JwtMethodConfig, JwtRoleConfig, JwtVerifier};
use crate::testkeys::TestKey;
use crate::testserver::{Response, TestServer};
use crate::upstream::UpstreamGate;

#[derive(Default)]
struct Issuer {
    base: OnceLock<String>,
    keys: Mutex<Vec<Value>>,
    jwks_hits: AtomicU64,
    discovery_hits: AtomicU64,
    /// Answer this status for the JWKS (0: serve it).
    fail: AtomicU16,
    /// Delay of the JWKS answer, ms.
    slow_ms: AtomicU64,
    /// Delay of the discovery answer, ms.
    slow_discovery_ms: AtomicU64,
    /// Another `issuer` in the discovery document.
    wrong_issuer: Mutex<Option<String>>,
    /// Another `jwks_uri` in the discovery document.
    jwks_uri: Mutex<Option<String>>,
    /// Pad the JWKS past the cap.
    oversize: AtomicU16,
}

impl Issuer {
    fn set_keys(&self, keys: &[&TestKey]) {
        *self.keys.lock().expect("lock") = keys.iter().map(|k| k.jwk.clone()).collect();
    }
}

async fn issuer() -> (TestServer, Arc<Issuer>) {
    let state = Arc::new(Issuer::default());
    let s = state.clone();
    let srv = TestServer::start(move |req| {
        let s = s.clone();
        async move {
            let base = s.base.get().cloned().unwrap_or_default();
            match req.path.as_str() {
                "/.well-known/openid-configuration" => {
                    s.discovery_hits.fetch_add(1, Ordering::SeqCst);
                    let delay = Duration::from_millis(s.slow_discovery_ms.load(Ordering::SeqCst));
                    let iss = s.wrong_issuer.lock().expect("lock").clone().unwrap_or(base.clone());
                    Response::json(200, &json!({"issuer": iss, "jwks_uri": s.jwks_uri.lock().expect("lock").clone().unwrap_or(format!("{base}/jwks")),
                        "id_token_signing_alg_values_supported": ["RS256"], "response_types_supported": ["id_token"],
                        "subject_types_supported": ["public", "pairwise"], "claims_supported": ["sub", "aud"]}))
                        .delayed(delay)
                }
                "/jwks" => {
                    s.jwks_hits.fetch_add(1, Ordering::SeqCst);
                    let delay = Duration::from_millis(s.slow_ms.load(Ordering::SeqCst));
                    let fail = s.fail.load(Ordering::SeqCst);
                    if fail != 0 {
                        return Response::raw(fail, "issuer failure detail").delayed(delay);
                    }
                    let keys = s.keys.lock().expect("lock").clone();
                    let mut doc = json!({"keys": keys});
                    if s.oversize.load(Ordering::SeqCst) != 0 {
                        doc["padding"] = json!("x".repeat(300 * 1024));
                    }
                    Response::json(200, &doc).delayed(delay)
                }
                _ => Response::raw(404, ""),
            }
        }
    })
    .await;
    let base = srv.url("");
    state.base.set(base).expect("base once");
    (srv, state)
}

fn discovery_config(srv: &TestServer) -> JwtMethodConfig {
    serde_json::from_value(json!({"oidc_discovery_url": srv.url(""), "ca_pem": srv.ca_pem}))
        .expect("config")
}

fn verifier(cfg: JwtMethodConfig, ttl_ms: u64, interval_ms: u64) -> JwtVerifier {
    JwtVerifier::with_cache_settings(
        cfg,
        UpstreamGate::default(),
        CacheSettings::new(
            Duration::from_millis(ttl_ms),
            Duration::from_millis(interval_ms),
        ),
    )
    .expect("verifier")
}

fn role() -> JwtRoleConfig {
    serde_json::from_value(json!({"bound_subject": "svc"})).expect("role")
}

fn token(k: &TestKey, iss: &str) -> String {
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("t")
        .as_secs();
    k.sign(&json!({"iss": iss, "sub": "svc", "exp": now + 300, "iat": now}))
}

fn token_with_kid(k: &TestKey, kid: &str, iss: &str) -> String {
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("t")
        .as_secs();
    k.sign_with(
        &json!({"alg": k.alg.as_str(), "kid": kid}),
        &json!({"iss": iss, "sub": "svc", "exp": now + 300}),
    )
}
/// Waits until `done` holds (a background refresh has finished), at most 5 s.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "not within 5 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn login(v: &JwtVerifier, t: &str) -> Result<(), crate::Refusal> {
    v.verify(t, &role(), &LoginContext::new("r", None))
        .await
        .map(|_| ())
}

#[tokio::test]
async fn discovery_rotation_and_the_unknown_kid_rate_limit() {
    let (srv, iss) = issuer().await;
    let k1 = TestKey::es256("k1");
    let k2 = TestKey::ed25519("k2");
    iss.set_keys(&[&k1]);
    let v = verifier(discovery_config(&srv), 3_600_000, 300);
    let cache = v.cache().expect("remote");
    let base = srv.url("");
    login(&v, &token(&k1, &base)).await.expect("k1");
    login(&v, &token(&k1, &base)).await.expect("k1 cached");
    assert_eq!((cache.jwks_fetches(), cache.discovery_fetches()), (1, 1));
    // The issuer adds k2: a k2 token within the interval is refused without a fetch…
    iss.set_keys(&[&k1, &k2]);
    let r = login(&v, &token(&k2, &base)).await.expect_err("too soon");
    assert_eq!((r.check, r.class), (Check::Kid, Class::Unauthorized));
    assert!(
        r.message
            .starts_with("kid: no key `k2` in the issuer's key set (refreshed 0s ago)"),
        "{}",
        r.message
    );
    assert_eq!(cache.jwks_fetches(), 1);
    // …and accepted with exactly one extra fetch once the interval has passed.
    tokio::time::sleep(Duration::from_millis(350)).await;
    login(&v, &token(&k2, &base))
        .await
        .expect("k2 after refetch");
    assert_eq!((cache.jwks_fetches(), cache.discovery_fetches()), (2, 2));
    // A flood of random kids inside the interval costs no fetch.
    for i in 0..30 {
        let r = login(&v, &token_with_kid(&k1, &format!("rnd{i}"), &base))
            .await
            .expect_err("rnd");
        assert_eq!(r.check, Check::Kid);
    }
    assert_eq!(cache.jwks_fetches(), 2);
    // After the interval, at most one fetch for the next flood.
    tokio::time::sleep(Duration::from_millis(350)).await;
    for i in 0..10 {
        let _ = login(&v, &token_with_kid(&k1, &format!("again{i}"), &base)).await;
    }
    assert_eq!(cache.jwks_fetches(), 3);
    assert_eq!(iss.jwks_hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_failed_fetch_never_replaces_good_keys() {
    let (srv, iss) = issuer().await;
    let k1 = TestKey::es256("k1");
    iss.set_keys(&[&k1]);
    let v = verifier(discovery_config(&srv), 200, 100);
    let cache = v.cache().expect("remote");
    let base = srv.url("");
    login(&v, &token(&k1, &base)).await.expect("k1");
    // Issuer fails: past the TTL the stale set still verifies k1.
    iss.fail.store(500, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(250)).await;
    login(&v, &token(&k1, &base)).await.expect("stale k1");
    // (The refresh runs in the background while the stale set answers.)
    eventually("the failed refresh", || cache.failures() >= 1).await;
    assert_eq!(cache.failures(), 1);
    // An unknown kid while the issuer fails: 502, with no upstream body or URL in it.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let r = login(&v, &token_with_kid(&k1, "new", &base))
        .await
        .expect_err("down");
    assert_eq!((r.check, r.class), (Check::Upstream, Class::Upstream));
    assert_eq!(r.message, "upstream: the issuer's key set: HTTP 500");
    assert!(!r.message.contains("detail") && !r.message.contains("localhost"));
    // A key-less set (only an HMAC secret) is not a replacement either.
    iss.fail.store(0, Ordering::SeqCst);
    *iss.keys.lock().expect("lock") = vec![json!({"kty": "oct", "kid": "k1", "k": "c2VjcmV0"})];
    tokio::time::sleep(Duration::from_millis(250)).await;
    login(&v, &token(&k1, &base)).await.expect("still k1");
    eventually("the key-less refresh", || cache.failures() >= 3).await;
    // The issuer drops k1 for k2: after the TTL, k1 is refused and k2 verifies.
    let k2 = TestKey::es256("k2");
    iss.set_keys(&[&k2]);
    tokio::time::sleep(Duration::from_millis(250)).await;
    login(&v, &token(&k2, &base)).await.expect("k2");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let r = login(&v, &token(&k1, &base)).await.expect_err("k1 gone");
    assert_eq!(r.check, Check::Kid);
}

#[tokio::test]
async fn concurrent_cold_logins_share_one_fetch() {
    let (srv, iss) = issuer().await;
    let k1 = TestKey::es256("k1");
    iss.set_keys(&[&k1]);
    iss.slow_ms.store(200, Ordering::SeqCst);
    let v = Arc::new(verifier(discovery_config(&srv), 3_600_000, 1));
    let base = srv.url("");
    let t = token(&k1, &base);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (v, t) = (v.clone(), t.clone());
            tokio::spawn(async move { login(&v, &t).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("join").expect("login");
    }
    assert_eq!(v.cache().expect("remote").jwks_fetches(), 1);
    assert_eq!(iss.jwks_hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn discovery_issuer_mismatch_oversize_and_slow_issuers_are_upstream_failures() {
    let (srv, iss) = issuer().await;
    let k1 = TestKey::es256("k1");
    iss.set_keys(&[&k1]);
    *iss.wrong_issuer.lock().expect("lock") = Some("https://evil.example".into());
    let v = verifier(discovery_config(&srv), 3_600_000, 1000);
    let r = v.check_upstream().await.expect_err("mismatch");
    assert_eq!(r.class, Class::Upstream);
    assert_eq!(
        r.message,
        "upstream: the discovery document's `issuer` is not the configured oidc_discovery_url"
    );
    assert_eq!(
        iss.jwks_hits.load(Ordering::SeqCst),
        0,
        "no JWKS from an unverified issuer"
    );

    let jwks_cfg: JwtMethodConfig = serde_json::from_value(json!({"jwks_url": srv.url("/jwks"),
        "ca_pem": srv.ca_pem, "bound_issuer": "i", "timeout": "1s"}))
    .expect("config");
    iss.oversize.store(1, Ordering::SeqCst);
    let v = verifier(jwks_cfg.clone(), 3_600_000, 1000);
    let r = v.check_upstream().await.expect_err("big");
    assert_eq!(
        r.message,
        "upstream: the issuer's key set: response larger than 262144 bytes"
    );
    iss.oversize.store(0, Ordering::SeqCst);
    iss.slow_ms.store(3000, Ordering::SeqCst);
    let v = verifier(jwks_cfg.clone(), 3_600_000, 1000);
    let started = std::time::Instant::now();
    let r = login(&v, &token(&k1, "i")).await.expect_err("slow");
    assert_eq!(
        r.message,
        "upstream: the issuer's key set: timed out after 1s"
    );
    assert!(started.elapsed() < Duration::from_millis(2000));
    // The issuer recovers.
    iss.slow_ms.store(0, Ordering::SeqCst);
    assert_eq!(v.check_upstream().await.expect("now fine"), 1);
    // No slot free: busy, not a hang.
    let gate = UpstreamGate::new(1, Duration::from_millis(50));
    let v = JwtVerifier::with_cache_settings(
        jwks_cfg,
        gate.clone(),
        CacheSettings::new(Duration::from_secs(60), Duration::from_secs(1)),
    )
    .expect("verifier");
    let held = gate.acquire().await.expect("slot");
    let r = login(&v, &token(&k1, "i")).await.expect_err("busy");
    assert_eq!((r.check, r.class), (Check::Upstream, Class::Busy));
    drop(held);
    login(&v, &token(&k1, "i")).await.expect("slot free again");
}

#[tokio::test]
async fn oct_keys_in_a_jwks_never_verify_hmac_tokens() {
    let (srv, iss) = issuer().await;
    let k1 = TestKey::es256("k1");
    let mut keys = vec![json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0", "alg": "HS256"})];
    keys.push(k1.jwk.clone());
    *iss.keys.lock().expect("lock") = keys;
    let v = verifier(discovery_config(&srv), 3_600_000, 1000);
    let base = srv.url("");
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("t")
        .as_secs();
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some("h".into());
    let hs = jsonwebtoken::encode(
        &h,
        &json!({"iss": base, "sub": "svc", "exp": now + 60}),
        &jsonwebtoken::EncodingKey::from_secret(b"secret"),
    )
    .expect("hs");
    assert_eq!(login(&v, &hs).await.expect_err("hs").check, Check::Alg);
    // An ES256 header naming the oct key's kid finds no key.
    let r = login(&v, &token_with_kid(&k1, "h", &base))
        .await
        .expect_err("oct kid");
    assert_eq!(r.check, Check::Kid);
    login(&v, &token(&k1, &base))
        .await
        .expect("the EC key works");
}

#[tokio::test]
async fn a_cancelled_login_still_counts_against_the_refetch_interval() {
    let (srv, iss) = issuer().await;
    let k1 = TestKey::es256("k1");
    iss.set_keys(&[&k1]);
    let v = Arc::new(verifier(discovery_config(&srv), 3_600_000, 300));
    let base = srv.url("");
    login(&v, &token(&k1, &base)).await.expect("k1");
    tokio::time::sleep(Duration::from_millis(350)).await;
    // An unknown kid starts a (slow) refetch; the client goes away mid-fetch.
    iss.slow_ms.store(400, Ordering::SeqCst);
    let (v2, t) = (v.clone(), token_with_kid(&k1, "rnd0", &base));
    let task = tokio::spawn(async move { login(&v2, &t).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    task.abort();
    assert!(task.await.expect_err("aborted").is_cancelled());
    // The next unknown kid inside the interval costs no fetch.
    let r = login(&v, &token_with_kid(&k1, "rnd1", &base))
        .await
        .expect_err("rnd1");
    assert_eq!(r.check, Check::Kid);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(iss.jwks_hits.load(Ordering::SeqCst), 2);
    // The cancelled login's fetch finished and was recorded.
    assert_eq!(v.cache().expect("remote").jwks_fetches(), 2);
    assert_eq!(v.cache().expect("remote").failures(), 0);
}

#[tokio::test]
async fn a_slow_issuer_does_not_stall_logins_with_a_known_kid() {
    let (srv, iss) = issuer().await;
    let k1 = TestKey::es256("k1");
    iss.set_keys(&[&k1]);
    let v = verifier(discovery_config(&srv), 200, 1);
    let base = srv.url("");
    login(&v, &token(&k1, &base)).await.expect("k1");
    iss.slow_ms.store(2000, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(250)).await;
    // Past the TTL: the stale set answers at once while the refresh is in flight.
    for _ in 0..3 {
        let started = std::time::Instant::now();
        login(&v, &token(&k1, &base)).await.expect("stale k1");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        iss.jwks_hits.load(Ordering::SeqCst),
        2,
        "one refresh in flight"
    );
}

#[tokio::test]
async fn discovery_and_jwks_share_one_timeout() {
    let (srv, iss) = issuer().await;
    let k1 = TestKey::es256("k1");
    iss.set_keys(&[&k1]);
    iss.slow_discovery_ms.store(700, Ordering::SeqCst);
    iss.slow_ms.store(700, Ordering::SeqCst);
    let cfg: JwtMethodConfig = serde_json::from_value(
        json!({"oidc_discovery_url": srv.url(""), "ca_pem": srv.ca_pem, "timeout": "1s"}),
    )
    .expect("config");
    let v = verifier(cfg, 3_600_000, 1000);
    let started = std::time::Instant::now();
    let r = login(&v, &token(&k1, &srv.url("")))
        .await
        .expect_err("over budget");
    assert_eq!(r.class, Class::Upstream);
    assert_eq!(
        r.message,
        "upstream: the issuer's key set: timed out after 1s"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_jwks_uri_on_another_host_is_refused() {
    let (srv, iss) = issuer().await;
    let k1 = TestKey::es256("k1");
    iss.set_keys(&[&k1]);
    let port = srv.addr.port();
    // Same server, but named by another host (the certificate covers both): refused.
    for other in [
        format!("https://127.0.0.1:{port}/jwks"),
        format!("https://localhost:{}/jwks", port.wrapping_add(1)),
        "https://localhost/jwks".to_owned(),
    ] {
        *iss.jwks_uri.lock().expect("lock") = Some(other.clone());
        let v = verifier(discovery_config(&srv), 3_600_000, 1000);
        let r = v.check_upstream().await.expect_err(&other);
        assert_eq!(r.class, Class::Upstream);
        assert_eq!(
            r.message,
            "upstream: the discovery document's `jwks_uri` is not on the oidc_discovery_url's host"
        );
    }
    assert_eq!(iss.jwks_hits.load(Ordering::SeqCst), 0);
    *iss.jwks_uri.lock().expect("lock") = Some(srv.url("/jwks"));
    let v = verifier(discovery_config(&srv), 3_600_000, 1000);
    assert_eq!(v.check_upstream().await.expect("same host"), 1);
}
