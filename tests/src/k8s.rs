//! A Kubernetes API server reduced to what service-account login needs: the
//! `authentication.k8s.io/v1` TokenReview endpoint, over HTTPS, with the real contract.
//!
//! No Kubernetes API server can be installed on the test machines, so this implements the
//! endpoint the way kube-apiserver does:
//! - the caller authenticates with a bearer token: a static reviewer token or a valid
//!   service-account token of the cluster (so a pod may review its own token); an unknown
//!   bearer gets `401` with a `Status` object;
//! - the authenticated caller must be allowed to create TokenReviews (the
//!   `system:auth-delegator` cluster role); otherwise `403` with a `Status`;
//! - the body must be a `TokenReview` (`apiVersion: authentication.k8s.io/v1`); otherwise
//!   `400` with a `Status`;
//! - the reviewed token is verified against the cluster's signing key, its expiry, the
//!   service account's existence and the requested audiences (none requested: the API
//!   server's own audience); the answer is `201 Created` with the whole `TokenReview`:
//!   `spec` echoed, `status.authenticated`, `status.user` and `status.audiences`, or
//!   `authenticated: false` with an `error`.
//!
//! Request and response bodies are the `k8s-openapi` types, and
//! `tests/tests/machine_kubernetes.rs` checks this server against the official Python
//! client (`kubernetes.client.AuthenticationV1Api.create_token_review`). Knobs make it slow,
//! failing, lying about the user or unaware of audiences, and count the reviews it answered.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewStatus, UserInfo};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use salvo::prelude::*;
use serde_json::{Value, json};

use crate::receivers::{free_port, serve_https, test_pki};

/// The issuer of projected service-account tokens (what kube-apiserver uses by default).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// A service account of the test cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceAccount {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID (the `kubernetes.io.serviceaccount.uid` claim).
    pub uid: String,
}

impl ServiceAccount {
    /// A service account with a fresh UID.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// `system:serviceaccount:NS:NAME`, the username kube-apiserver reports.
    pub fn username(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

/// The cluster's service-account token signer (ES256, as kube-apiserver allows for
/// `--service-account-signing-key-file`).
pub struct Signer {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Signer {
    /// A fresh P-256 key.
    pub fn generate() -> Self {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let encoding = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).expect("ec key");
        let decoding =
            DecodingKey::from_ec_pem(key.public_key_pem().as_bytes()).expect("ec public key");
        Self {
            kid: uuid::Uuid::new_v4().simple().to_string(),
            encoding,
            decoding,
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }

    /// A projected (bound) service-account token, as the kubelet mounts it for a pod.
    pub fn projected(&self, sa: &ServiceAccount, audiences: &[&str], ttl: Duration) -> String {
        let now = now_secs();
        self.sign(&json!({
            "aud": audiences,
            "exp": now + ttl.as_secs() as i64,
            "iat": now,
            "nbf": now,
            "iss": ISSUER,
            "jti": uuid::Uuid::new_v4().to_string(),
            "kubernetes.io": {
                "namespace": sa.namespace,
                "node": {"name": "node-1", "uid": uuid::Uuid::new_v4().to_string()},
                "pod": {"name": format!("{}-7d9f8b6c5-x2x4z", sa.name),
                        "uid": uuid::Uuid::new_v4().to_string()},
                "serviceaccount": {"name": sa.name, "uid": sa.uid},
            },
            "sub": sa.username(),
        }))
    }

    /// A legacy (secret-based, non-expiring) service-account token.
    pub fn legacy(&self, sa: &ServiceAccount) -> String {
        self.sign(&json!({
            "iss": "kubernetes/serviceaccount",
            "kubernetes.io/serviceaccount/namespace": sa.namespace,
            "kubernetes.io/serviceaccount/secret.name": format!("{}-token-abcde", sa.name),
            "kubernetes.io/serviceaccount/service-account.name": sa.name,
            "kubernetes.io/serviceaccount/service-account.uid": sa.uid,
            "sub": sa.username(),
        }))
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64
}

/// What the server knows and how it misbehaves; tests change it while it runs.
#[derive(Debug, Default)]
pub struct Cluster {
    /// Static bearer tokens → the user they authenticate as.
    pub static_tokens: HashMap<String, String>,
    /// Users allowed to create TokenReviews (bound to `system:auth-delegator`).
    pub delegators: HashSet<String>,
    /// Service accounts that exist (a deleted one's tokens stop authenticating).
    pub accounts: HashSet<ServiceAccount>,
    /// Answer every request after this long.
    pub delay: Duration,
    /// Answer every request with this status and a `Status` body instead.
    pub fail_with: Option<u16>,
    /// Report this username instead of the token's.
    pub lie_username: Option<String>,
    /// Ignore requested audiences and report none (an API server that predates them).
    pub audience_unaware: bool,
    /// TokenReviews answered (any outcome, errors included).
    pub requests: u64,
    /// Bearer tokens seen, in order.
    pub bearers: Vec<String>,
}

struct Api {
    signer: Arc<Signer>,
    cluster: Arc<Mutex<Cluster>>,
}

impl Api {
    /// The user a token authenticates as, if it is a valid service-account token of the
    /// cluster for one of `audiences`; the audiences it is valid for.
    fn review(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<(ServiceAccount, Vec<String>), String> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::new();
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Value>(token, &self.signer.decoding, &validation)
            .map_err(|e| format!("invalid bearer token, {e}"))?;
        let c = data.claims;
        let (sa, token_aud) = if let Some(k) = c.get("kubernetes.io") {
            if c["exp"].as_i64().is_none_or(|exp| exp <= now_secs()) {
                return Err("invalid bearer token, service account token has expired".into());
            }
            let sa = ServiceAccount {
                namespace: k["namespace"].as_str().unwrap_or_default().to_owned(),
                name: k["serviceaccount"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                uid: k["serviceaccount"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            };
            let aud = match &c["aud"] {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            (sa, aud)
        } else {
            let field = |n: &str| {
                c[format!("kubernetes.io/serviceaccount/{n}")]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            };
            let sa = ServiceAccount {
                namespace: field("namespace"),
                name: field("service-account.name"),
                uid: field("service-account.uid"),
            };
            // Legacy tokens carry no audience: kube-apiserver treats them as valid for its
            // own audiences.
            (sa, vec![ISSUER.to_owned()])
        };
        let cluster = self.cluster.lock().expect("lock");
        if !cluster.accounts.contains(&sa) {
            return Err(format!(
                "invalid bearer token, service account {}/{} has been deleted",
                sa.namespace, sa.name
            ));
        }
        let wanted: Vec<String> = if audiences.is_empty() {
            vec![ISSUER.to_owned()]
        } else {
            audiences.to_vec()
        };
        let valid: Vec<String> = wanted
            .into_iter()
            .filter(|a| token_aud.contains(a))
            .collect();
        if valid.is_empty() {
            return Err(
                "invalid bearer token, token audiences is invalid for the target audiences".into(),
            );
        }
        Ok((sa, valid))
    }

    /// The user a bearer authenticates as.
    fn caller(&self, bearer: &str) -> Option<String> {
        if let Some(u) = self.cluster.lock().expect("lock").static_tokens.get(bearer) {
            return Some(u.clone());
        }
        self.review(bearer, &[]).ok().map(|(sa, _)| sa.username())
    }
}

fn status(res: &mut Response, code: u16, reason: &str, message: &str) {
    let body = Status {
        code: Some(code.into()),
        message: Some(message.to_owned()),
        reason: Some(reason.to_owned()),
        status: Some("Failure".to_owned()),
        ..Default::default()
    };
    res.status_code(StatusCode::from_u16(code).expect("status code"));
    res.render(Json(body));
}

#[async_trait]
impl Handler for Api {
    async fn handle(
        &self,
        req: &mut Request,
        _depot: &mut Depot,
        res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        let (delay, fail_with) = {
            let mut c = self.cluster.lock().expect("lock");
            c.requests += 1;
            (c.delay, c.fail_with)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if let Some(code) = fail_with {
            return status(
                res,
                code,
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
            );
        }
        let bearer = req
            .header::<String>("authorization")
            .and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned))
            .unwrap_or_default();
        self.cluster
            .lock()
            .expect("lock")
            .bearers
            .push(bearer.clone());
        let Some(user) = self.caller(&bearer) else {
            return status(res, 401, "Unauthorized", "Unauthorized");
        };
        if !self
            .cluster
            .lock()
            .expect("lock")
            .delegators
            .contains(&user)
        {
            let msg = format!(
                "tokenreviews.authentication.k8s.io is forbidden: User \"{user}\" cannot create \
                 resource \"tokenreviews\" in API group \"authentication.k8s.io\" at the cluster scope"
            );
            return status(res, 403, "Forbidden", &msg);
        }
        let body = req
            .payload_with_max_size(1 << 20)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        let mut review: TokenReview = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return status(
                    res,
                    400,
                    "BadRequest",
                    &format!("the body is not a TokenReview: {e}"),
                );
            }
        };
        let token = review.spec.token.clone().unwrap_or_default();
        let requested = review.spec.audiences.clone().unwrap_or_default();
        let (lie, unaware) = {
            let c = self.cluster.lock().expect("lock");
            (c.lie_username.clone(), c.audience_unaware)
        };
        let requested = if unaware { Vec::new() } else { requested };
        review.status = Some(match self.review(&token, &requested) {
            Ok((sa, audiences)) => TokenReviewStatus {
                authenticated: Some(true),
                audiences: (!unaware).then_some(audiences),
                user: Some(UserInfo {
                    username: Some(lie.unwrap_or_else(|| sa.username())),
                    uid: Some(sa.uid.clone()),
                    groups: Some(vec![
                        "system:serviceaccounts".to_owned(),
                        format!("system:serviceaccounts:{}", sa.namespace),
                        "system:authenticated".to_owned(),
                    ]),
                    extra: Some(BTreeMap::from([(
                        "authentication.kubernetes.io/credential-id".to_owned(),
                        vec![format!("JTI={}", uuid::Uuid::new_v4())],
                    )])),
                }),
                error: None,
            },
            Err(e) => TokenReviewStatus {
                authenticated: Some(false),
                error: Some(e),
                audiences: None,
                user: Some(UserInfo::default()),
            },
        });
        res.status_code(StatusCode::CREATED);
        res.render(Json(review));
    }
}

/// The TokenReview endpoint on a loopback HTTPS port.
pub struct ApiServer {
    /// `https://localhost:PORT`.
    pub url: String,
    /// PEM file of the CA that signed the server's certificate.
    pub ca_path: PathBuf,
    /// The CA as PEM text (what `kubernetes_ca_cert` takes).
    pub ca_pem: String,
    /// The token signer of the cluster.
    pub signer: Arc<Signer>,
    /// Shared, mutable cluster state.
    pub cluster: Arc<Mutex<Cluster>>,
    handle: salvo::server::ServerHandle,
}

impl ApiServer {
    /// Starts a server whose CA and certificate are written under `dir`.
    pub async fn start(dir: &Path) -> Self {
        let (ca_path, cert, key) = test_pki(dir);
        let ca_pem = std::fs::read_to_string(&ca_path).expect("ca pem");
        let signer = Arc::new(Signer::generate());
        let cluster = Arc::new(Mutex::new(Cluster::default()));
        let api = Api {
            signer: signer.clone(),
            cluster: cluster.clone(),
        };
        let port = free_port();
        let path = format!(
            "apis/{}/{}/tokenreviews",
            <TokenReview as k8s_openapi::Resource>::GROUP,
            <TokenReview as k8s_openapi::Resource>::VERSION
        );
        let router = Router::with_path(path).post(api);
        let handle = serve_https(port, cert, key, router, "the TokenReview server").await;
        Self {
            url: format!("https://localhost:{port}"),
            ca_path,
            ca_pem,
            signer,
            cluster,
            handle,
        }
    }

    /// Adds a service account.
    pub fn add_account(&self, sa: &ServiceAccount) {
        self.cluster
            .lock()
            .expect("lock")
            .accounts
            .insert(sa.clone());
    }

    /// Adds a static reviewer token authenticating as `user`, optionally allowed to review.
    pub fn add_reviewer(&self, token: &str, user: &str, delegator: bool) {
        let mut c = self.cluster.lock().expect("lock");
        c.static_tokens.insert(token.to_owned(), user.to_owned());
        if delegator {
            c.delegators.insert(user.to_owned());
        }
    }

    /// Changes the cluster state.
    pub fn with<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R {
        f(&mut self.cluster.lock().expect("lock"))
    }

    /// Stops serving (the port refuses connections afterwards).
    pub fn stop(&self) {
        self.handle.stop_forceful();
    }
}
