//! The Kubernetes pipeline against a local HTTPS TokenReview server that parses requests as
//! k8s-openapi `TokenReview`s, checks the bearer, verifies the service-account token with its
//! cluster key and answers like an API server (201 + TokenReview, or 401/403 `Status`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewStatus, UserInfo};
use serde_json::{Value, json};

use super::*;
use crate::error::Class;
use crate::kubernetes::claims::tests::{legacy, projected};
use crate::testkeys::TestKey;
use crate::testserver::{Request, Response, TestServer};

const REVIEWER: &str = "reviewer-ok";
const NO_DELEGATOR: &str = "reviewer-no-delegator";
const DEFAULT_AUD: &str = "https://kubernetes.default.svc";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    Fail503,
    Slow,
    LieUsername,
    AudienceUnaware,
    WrongKind,
}

struct Cluster {
    key: TestKey,
    mode: Mutex<Mode>,
    requests: AtomicU64,
    /// (bearer, spec audiences) of each review.
    seen: Mutex<Vec<(String, Option<Vec<String>>)>>,
    /// Service accounts bound to system:auth-delegator.
    delegators: Vec<&'static str>,
}

fn status(code: u16, reason: &str) -> Response {
    Response::json(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": "internal detail", "reason": reason, "code": code}),
    )
}

impl Cluster {
    /// A bearer's claims: like kube-apiserver, a service-account bearer must be valid for
    /// the API server's own audience.
    fn authenticate_bearer(&self, token: &str) -> Option<Value> {
        let c = self.authenticate(token)?;
        let aud_ok = match &c["aud"] {
            Value::String(a) => a == DEFAULT_AUD,
            Value::Array(a) => a.iter().any(|a| a == DEFAULT_AUD),
            _ => false,
        };
        aud_ok.then_some(c)
    }

    /// The token's claims if our cluster key signed it and it has not expired.
    fn authenticate(&self, token: &str) -> Option<Value> {
        let alg = self.key.alg.to_jsonwebtoken();
        let key = jsonwebtoken::DecodingKey::from_ec_pem(self.key.spki_pem.as_bytes()).ok()?;
        let mut v = jsonwebtoken::Validation::new(alg);
        v.validate_aud = false;
        v.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(token, &key, &v)
            .ok()
            .map(|d| d.claims)
    }

    fn sa_of(claims: &Value) -> String {
        claims["sub"].as_str().unwrap_or_default().to_owned()
    }

    fn answer(&self, req: Request) -> Response {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let mode = *self.mode.lock().expect("lock");
        if req.method != "POST" || req.path != "/apis/authentication.k8s.io/v1/tokenreviews" {
            return status(404, "NotFound");
        }
        let Ok(review) = serde_json::from_slice::<TokenReview>(&req.body) else {
            return status(400, "BadRequest");
        };
        let bearer = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or("")
            .to_owned();
        self.seen
            .lock()
            .expect("lock")
            .push((bearer.clone(), review.spec.audiences.clone()));
        match mode {
            Mode::Fail503 => return status(503, "ServiceUnavailable"),
            Mode::Slow => return Response::raw(201, "{}").delayed(Duration::from_secs(3)),
            Mode::WrongKind => {
                return Response::json(
                    201,
                    &json!({"apiVersion": "v1", "kind": "Status", "status": {}}),
                );
            }
            _ => {}
        }
        // Who is asking: a known reviewer, or a service-account token of this cluster.
        let allowed = if bearer == REVIEWER {
            true
        } else if bearer == NO_DELEGATOR {
            false
        } else if let Some(c) = self.authenticate_bearer(&bearer) {
            self.delegators.contains(&Self::sa_of(&c).as_str())
        } else {
            return status(401, "Unauthorized");
        };
        if !allowed {
            return status(403, "Forbidden");
        }
        let token = review.spec.token.clone().unwrap_or_default();
        let wanted = review
            .spec
            .audiences
            .clone()
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| vec![DEFAULT_AUD.into()]);
        let mut out = review.clone();
        out.status = Some(match self.authenticate(&token) {
            None => TokenReviewStatus {
                authenticated: Some(false),
                error: Some("invalid bearer token".into()),
                ..Default::default()
            },
            Some(c) => {
                let aud: Vec<String> = c["aud"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect();
                let granted: Vec<String> =
                    wanted.iter().filter(|w| aud.contains(w)).cloned().collect();
                if granted.is_empty() {
                    TokenReviewStatus {
                        authenticated: Some(false),
                        error: Some("token audiences are invalid for the target audiences".into()),
                        ..Default::default()
                    }
                } else {
                    let mut username = Self::sa_of(&c);
                    if mode == Mode::LieUsername {
                        username = "system:serviceaccount:kube-system:admin".into();
                    }
                    TokenReviewStatus {
                        authenticated: Some(true),
                        audiences: if mode == Mode::AudienceUnaware {
                            None
                        } else {
                            Some(granted)
                        },
                        user: Some(UserInfo {
                            username: Some(username),
                            uid: c["kubernetes.io"]["serviceaccount"]["uid"]
                                .as_str()
                                .map(str::to_owned),
                            groups: Some(vec![
                                "system:serviceaccounts".into(),
                                "system:authenticated".into(),
                            ]),
                            extra: None,
                        }),
                        error: None,
                    }
                }
            }
        });
        Response::json(201, &serde_json::to_value(&out).expect("review"))
    }
}

async fn cluster() -> (TestServer, Arc<Cluster>) {
    let c = Arc::new(Cluster {
        key: TestKey::es256("cluster"),
        mode: Mutex::new(Mode::Normal),
        requests: AtomicU64::new(0),
        seen: Mutex::new(vec![]),
        delegators: vec!["system:serviceaccount:prod:delegating"],
    });
    let c2 = c.clone();
    let srv = TestServer::start(move |req| {
        let c = c2.clone();
        async move { c.answer(req) }
    })
    .await;
    (srv, c)
}

fn exp() -> f64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("t")
        .as_secs_f64()
        + 600.0
}

fn verifier(srv: &TestServer, reviewer: Option<&str>, extra: Value) -> KubernetesVerifier {
    let mut cfg = json!({"kubernetes_host": srv.url(""), "kubernetes_ca_cert": srv.ca_pem, "audience": "arcan"});
    if let Some(r) = reviewer {
        cfg["token_reviewer_jwt"] = json!(r);
    }
    for (k, v) in extra.as_object().expect("obj") {
        cfg[k] = v.clone();
    }
    let cfg: KubernetesMethodConfig = serde_json::from_value(cfg).expect("config");
    let client = FetchClient::builder()
        .timeout(Duration::from_millis(300))
        .ca_pem(cfg.kubernetes_ca_cert.as_deref())
        .build()
        .expect("client");
    KubernetesVerifier::with_client(cfg, client, UpstreamGate::default()).expect("verifier")
}

fn role(names: &[&str], namespaces: &[&str]) -> KubernetesRoleConfig {
    serde_json::from_value(json!({"bound_service_account_names": names,
        "bound_service_account_namespaces": namespaces}))
    .expect("role")
}

async fn login(
    v: &KubernetesVerifier,
    role: &KubernetesRoleConfig,
    t: &str,
) -> Result<KubernetesIdentity, Refusal> {
    v.verify(t, role, &LoginContext::new("api", None)).await
}

#[tokio::test]
async fn a_bound_service_account_logs_in_through_the_configured_reviewer() {
    let (srv, c) = cluster().await;
    let v = verifier(&srv, Some(REVIEWER), json!({}));
    let t = c.key.sign(&projected("prod", "api", &["arcan"], exp()));
    let id = login(&v, &role(&["api", "worker-*"], &["prod"]), &t)
        .await
        .expect("login");
    assert_eq!(id.username, "system:serviceaccount:prod:api");
    assert_eq!(
        (id.namespace.as_str(), id.service_account.as_str()),
        ("prod", "api")
    );
    assert_eq!(id.uid.as_deref(), Some("sa-uid-1"));
    assert_eq!(id.pod.as_deref(), Some("api-7f9"));
    assert_eq!(id.audiences, vec!["arcan"]);
    assert!(!id.legacy && id.expires_at.is_some());
    let seen = c.seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        vec![(REVIEWER.to_owned(), Some(vec!["arcan".to_owned()]))]
    );
    // Globs bind names.
    let w = c
        .key
        .sign(&projected("prod", "worker-3", &["arcan"], exp()));
    login(&v, &role(&["api", "worker-*"], &["prod"]), &w)
        .await
        .expect("glob");
    login(&v, &role(&["*"], &["*"]), &w).await.expect("any");
}

#[tokio::test]
async fn early_checks_refuse_without_calling_the_api_server() {
    let (srv, c) = cluster().await;
    let v = verifier(&srv, Some(REVIEWER), json!({}));
    let r = role(&["api"], &["prod"]);
    let cases: Vec<(Value, Check, Class, &str)> = vec![
        (
            projected("prod", "db", &["arcan"], exp()),
            Check::SaName,
            Class::Forbidden,
            "service account `prod/db`: name is not bound by role `api`",
        ),
        (
            projected("dev", "api", &["arcan"], exp()),
            Check::SaNamespace,
            Class::Forbidden,
            "service account `dev/api`: namespace is not bound by role `api`",
        ),
        (
            projected("prod", "api", &["arcan"], exp() - 1200.0),
            Check::Exp,
            Class::Unauthorized,
            "exp: expired at ",
        ),
        (
            projected("prod", "api", &["vault"], exp()),
            Check::Aud,
            Class::Unauthorized,
            "aud: the token is not for audience `arcan`",
        ),
        (
            legacy("prod", "api"),
            Check::ServiceAccount,
            Class::Unauthorized,
            "jwt: legacy service-account tokens are not accepted",
        ),
        (
            json!({"sub": "x", "exp": exp()}),
            Check::ServiceAccount,
            Class::BadRequest,
            "jwt: not a Kubernetes service-account token",
        ),
    ];
    for (claims, check, class, msg) in cases {
        let e = login(&v, &r, &c.key.sign(&claims))
            .await
            .expect_err("early");
        assert_eq!((e.check, e.class), (check, class), "{}", e.message);
        assert!(e.message.starts_with(msg), "{}", e.message);
    }
    assert_eq!(
        login(&v, &r, "x.y").await.expect_err("fmt").check,
        Check::JwtFormat
    );
    assert_eq!(
        c.requests.load(Ordering::SeqCst),
        0,
        "no TokenReview was sent"
    );
    // The role's audience overrides the method's.
    let vault_role: KubernetesRoleConfig =
        serde_json::from_value(json!({"bound_service_account_names": ["api"],
        "bound_service_account_namespaces": ["prod"], "audience": "vault"}))
        .expect("role");
    login(
        &v,
        &vault_role,
        &c.key.sign(&projected("prod", "api", &["vault"], exp())),
    )
    .await
    .expect("override");
}

#[tokio::test]
async fn legacy_tokens_when_allowed_and_no_audience_means_the_api_servers_own() {
    let (srv, c) = cluster().await;
    let v = verifier(&srv, Some(REVIEWER), json!({"allow_legacy_tokens": true}));
    let mut legacy_claims = legacy("prod", "api");
    legacy_claims["aud"] = json!([DEFAULT_AUD]);
    let t = c.key.sign(&legacy_claims);
    // With the method's audience `arcan`, a legacy token (no such aud) is refused early.
    assert_eq!(
        login(&v, &role(&["api"], &["prod"]), &t)
            .await
            .expect_err("aud")
            .check,
        Check::Aud
    );
    // Without an audience, the API server's default applies (spec sends none).
    let mut cfg: Value = serde_json::to_value(v.config()).expect("ser");
    cfg.as_object_mut().expect("obj").remove("audience");
    cfg["token_reviewer_jwt"] = json!(REVIEWER);
    let cfg: KubernetesMethodConfig = serde_json::from_value(cfg).expect("cfg");
    let v2 = KubernetesVerifier::new(cfg, UpstreamGate::default()).expect("v");
    let id = login(&v2, &role(&["api"], &["prod"]), &t)
        .await
        .expect("legacy");
    assert!(id.legacy && id.expires_at.is_none());
    assert_eq!(c.seen.lock().expect("lock").last().expect("seen").1, None);
    // A projected token for another service is refused by the API server's default audience.
    let other = c.key.sign(&projected("prod", "api", &["vault"], exp()));
    let e = login(&v2, &role(&["api"], &["prod"]), &other)
        .await
        .expect_err("default aud");
    assert_eq!(
        (e.check, e.class, e.message.as_str()),
        (
            Check::TokenReview,
            Class::Unauthorized,
            "tokenreview: not authenticated"
        )
    );
}

#[tokio::test]
async fn reviewer_rejections_are_upstream_failures_naming_the_reviewer() {
    let (srv, c) = cluster().await;
    let t = c.key.sign(&projected("prod", "api", &["arcan"], exp()));
    let r = role(&["api"], &["prod"]);
    let e = login(&verifier(&srv, Some("stolen"), json!({})), &r, &t)
        .await
        .expect_err("401");
    assert_eq!((e.check, e.class), (Check::Upstream, Class::Upstream));
    assert_eq!(
        e.message,
        "upstream: the Kubernetes API server rejected the token reviewer's credentials (401)"
    );
    let e = login(&verifier(&srv, Some(NO_DELEGATOR), json!({})), &r, &t)
        .await
        .expect_err("403");
    assert_eq!(e.class, Class::Upstream);
    assert_eq!(
        e.message,
        "upstream: the token reviewer may not create TokenReviews (403): bind it to system:auth-delegator"
    );
    assert!(!e.message.contains("internal detail"));
}

#[tokio::test]
async fn the_caller_reviews_itself_without_a_configured_reviewer() {
    let (srv, c) = cluster().await;
    // Caller mode: no audience (the token must be valid for the API server's own).
    let v = verifier(&srv, None, json!({"audience": null}));
    let ok = c
        .key
        .sign(&projected("prod", "delegating", &[DEFAULT_AUD], exp()));
    login(&v, &role(&["delegating"], &["prod"]), &ok)
        .await
        .expect("delegator");
    assert_eq!(
        c.seen.lock().expect("lock")[0],
        (ok, None),
        "the caller's JWT is the bearer; no audiences asked for"
    );
    // A token minted for another audience cannot authenticate as the bearer.
    let other = c
        .key
        .sign(&projected("prod", "delegating", &["arcan"], exp()));
    let e = login(&v, &role(&["delegating"], &["prod"]), &other)
        .await
        .expect_err("bearer for another audience");
    assert_eq!(
        (e.check, e.class),
        (Check::TokenReview, Class::Unauthorized)
    );
    let plain = c.key.sign(&projected("prod", "api", &[DEFAULT_AUD], exp()));
    let e = login(&v, &role(&["api"], &["prod"]), &plain)
        .await
        .expect_err("no delegator");
    assert_eq!((e.check, e.class), (Check::TokenReview, Class::Forbidden));
    assert!(e.message.contains("system:auth-delegator"), "{}", e.message);
    let forged = TestKey::es256("other").sign(&projected("prod", "api", &[DEFAULT_AUD], exp()));
    let e = login(&v, &role(&["api"], &["prod"]), &forged)
        .await
        .expect_err("forged");
    assert_eq!(
        (e.check, e.class),
        (Check::TokenReview, Class::Unauthorized)
    );
    // A role audience in caller mode is refused before any call.
    let n = c.requests.load(Ordering::SeqCst);
    let aud_role: KubernetesRoleConfig = serde_json::from_value(json!({
        "bound_service_account_names": ["delegating"],
        "bound_service_account_namespaces": ["prod"], "audience": "arcan"}))
    .expect("role");
    assert_eq!(
        v.config().check_role(&aud_role).expect_err("config").field,
        "audience"
    );
    let e = login(&v, &aud_role, &other).await.expect_err("role aud");
    assert_eq!(e.class, Class::Upstream);
    assert_eq!(c.requests.load(Ordering::SeqCst), n);
}

#[test]
fn caller_mode_with_an_audience_is_refused_at_config() {
    let e = serde_json::from_value::<KubernetesMethodConfig>(
        json!({"kubernetes_host": "https://k8s", "audience": "arcan"}),
    )
    .expect_err("caller + audience");
    let msg = e.to_string();
    assert!(
        msg.contains("audience")
            && msg.contains("audience requires token_reviewer_jwt (the caller's token, minted for `audience`, cannot authenticate to the API server)"),
        "{msg}"
    );
    serde_json::from_value::<KubernetesMethodConfig>(
        json!({"kubernetes_host": "https://k8s", "audience": "arcan", "token_reviewer_jwt": "r"}),
    )
    .expect("with a reviewer");
}

#[tokio::test]
async fn api_server_answers_map_to_refusals() {
    let (srv, c) = cluster().await;
    let v = verifier(&srv, Some(REVIEWER), json!({}));
    let r = role(&["api"], &["prod"]);
    let t = c.key.sign(&projected("prod", "api", &["arcan"], exp()));
    let set = |m: Mode| *c.mode.lock().expect("lock") = m;
    // A token the cluster did not sign: not authenticated.
    let forged = TestKey::es256("other").sign(&projected("prod", "api", &["arcan"], exp()));
    let e = login(&v, &r, &forged).await.expect_err("forged");
    assert_eq!(
        (e.check, e.class, e.message.as_str()),
        (
            Check::TokenReview,
            Class::Unauthorized,
            "tokenreview: not authenticated"
        )
    );
    set(Mode::LieUsername);
    let e = login(&v, &r, &t).await.expect_err("username");
    assert_eq!((e.check, e.class), (Check::Username, Class::Forbidden));
    assert_eq!(
        e.message,
        "tokenreview: user `system:serviceaccount:kube-system:admin` is not the token's service account `prod/api`"
    );
    set(Mode::AudienceUnaware);
    let e = login(&v, &r, &t).await.expect_err("aud-unaware");
    assert_eq!(
        (e.check, e.class, e.message.as_str()),
        (
            Check::TokenReview,
            Class::Unauthorized,
            "tokenreview: not valid for audience `arcan`"
        )
    );
    set(Mode::Fail503);
    let e = login(&v, &r, &t).await.expect_err("503");
    assert_eq!(
        (e.class, e.message.as_str()),
        (
            Class::Upstream,
            "upstream: the Kubernetes API server failed (HTTP 503)"
        )
    );
    set(Mode::WrongKind);
    let e = login(&v, &r, &t).await.expect_err("kind");
    assert_eq!(
        e.message,
        "upstream: the Kubernetes API server answered something that is not a TokenReview"
    );
    set(Mode::Slow);
    let started = std::time::Instant::now();
    let e = login(&v, &r, &t).await.expect_err("slow");
    assert_eq!(
        (e.class, e.message.as_str()),
        (
            Class::Upstream,
            "upstream: the Kubernetes API server timed out after 300ms"
        )
    );
    assert!(started.elapsed() < Duration::from_millis(1500));
    set(Mode::Normal);
    login(&v, &r, &t).await.expect("recovered");
    // Stopped server: unavailable.
    let url = srv.url("");
    drop(srv);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut cfg: Value = serde_json::to_value(v.config()).expect("ser");
    cfg["kubernetes_host"] = json!(url);
    cfg["token_reviewer_jwt"] = json!(REVIEWER);
    let stopped = KubernetesVerifier::new(
        serde_json::from_value(cfg).expect("cfg"),
        UpstreamGate::default(),
    )
    .expect("v");
    let e = login(&stopped, &r, &t).await.expect_err("stopped");
    assert_eq!(
        (e.class, e.message.as_str()),
        (
            Class::Upstream,
            "upstream: the Kubernetes API server is unavailable (connection failed)"
        )
    );
}

#[tokio::test]
async fn a_full_upstream_gate_is_busy() {
    let (srv, c) = cluster().await;
    let cfg: KubernetesMethodConfig =
        serde_json::from_value(json!({"kubernetes_host": srv.url(""),
        "kubernetes_ca_cert": srv.ca_pem, "token_reviewer_jwt": REVIEWER}))
        .expect("cfg");
    let gate = UpstreamGate::new(1, Duration::from_millis(50));
    let v = KubernetesVerifier::new(cfg, gate.clone()).expect("v");
    let held = gate.acquire().await.expect("slot");
    let t = c.key.sign(&projected("prod", "api", &[DEFAULT_AUD], exp()));
    let e = login(&v, &role(&["api"], &["prod"]), &t)
        .await
        .expect_err("busy");
    assert_eq!(e.class, Class::Busy);
    assert_eq!(c.requests.load(Ordering::SeqCst), 0);
    drop(held);
    login(&v, &role(&["api"], &["prod"]), &t)
        .await
        .expect("free");
}

#[tokio::test]
async fn an_untrusted_api_server_certificate_names_kubernetes_ca_cert() {
    let (srv, c) = cluster().await;
    let cfg: KubernetesMethodConfig = serde_json::from_value(json!({
        "kubernetes_host": srv.url(""), "token_reviewer_jwt": REVIEWER}))
    .expect("config");
    let client = FetchClient::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let v = KubernetesVerifier::with_client(cfg, client, UpstreamGate::default()).expect("v");
    let t = c.key.sign(&projected("prod", "api", &["arcan"], exp()));
    let e = login(&v, &role(&["api"], &["prod"]), &t)
        .await
        .expect_err("untrusted");
    assert_eq!(e.class, Class::Upstream);
    assert_eq!(
        e.message,
        "upstream: the Kubernetes API server TLS: certificate not trusted (set kubernetes_ca_cert)"
    );
}
