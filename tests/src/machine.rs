//! Helpers of the machine-identity login tests (`tests/tests/machine_*.rs`): enabling auth
//! methods and login roles as root, logging in, hand-made tokens (unsigned, HMAC, odd
//! headers), SPKI PEMs of the test keys, and the audit events of logins read from the store.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Raw, Server, raw};

/// Server config for login tests: relaxed rate limits and a failure throttle that never
/// triggers (the refusal tables fail many logins of one role from one address).
pub const MACHINE_CONFIG: &str = "rate_limit:\n  per_ip: 100000\n  per_token: 100000\nauth:\n  login_throttle:\n    free_attempts: 100000\n";

/// A fresh temporary directory for a test server's PKI.
pub fn temp_dir(prefix: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS from a header and claims of the test's choosing and raw signature bytes
/// (for refusals decided before any signature check).
pub fn raw_jwt(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes()),
        b64url(signature)
    )
}

/// An HS256 token keyed with `secret` (the algorithm-confusion attack keys it with the
/// issuer's public key bytes).
pub fn hs256(secret: &[u8], kid: &str, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("hs256")
}

fn der_len(n: usize) -> Vec<u8> {
    if n < 0x80 {
        return vec![n as u8];
    }
    let bytes: Vec<u8> = n
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(body.len()));
    out.extend_from_slice(body);
    out
}

fn der_uint(be: &[u8]) -> Vec<u8> {
    let mut v: Vec<u8> = be.iter().copied().skip_while(|b| *b == 0).collect();
    if v.first().is_none_or(|b| b & 0x80 != 0) {
        v.insert(0, 0);
    }
    der(0x02, &v)
}

fn jwk_bytes(jwk: &Value, field: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(jwk[field].as_str().unwrap_or_else(|| panic!("jwk {field}")))
        .expect("base64url jwk field")
}

/// The `-----BEGIN PUBLIC KEY-----` (SPKI) PEM of a published JWK (RSA, P-256 or Ed25519),
/// what `jwt_validation_pubkeys` takes.
pub fn spki_pem(jwk: &Value) -> String {
    // OIDs: rsaEncryption, id-ecPublicKey + prime256v1, id-Ed25519.
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    const EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
    let (alg, key) = match jwk["kty"].as_str() {
        Some("RSA") => {
            let mut seq = der_uint(&jwk_bytes(jwk, "n"));
            seq.extend(der_uint(&jwk_bytes(jwk, "e")));
            let mut alg = der(0x06, RSA);
            alg.extend([0x05, 0x00]);
            (alg, der(0x30, &seq))
        }
        Some("EC") => {
            let mut alg = der(0x06, EC);
            alg.extend(der(0x06, P256));
            let mut point = vec![0x04];
            point.extend(jwk_bytes(jwk, "x"));
            point.extend(jwk_bytes(jwk, "y"));
            (alg, point)
        }
        Some("OKP") => (der(0x06, ED25519), jwk_bytes(jwk, "x")),
        other => panic!("no SPKI for a {other:?} key"),
    };
    let mut bits = vec![0x00];
    bits.extend(key);
    let mut spki = der(0x30, &alg);
    spki.extend(der(0x03, &bits));
    let b64 = STANDARD.encode(der(0x30, &spki));
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64
}

impl Server {
    /// Enables an auth method as root; panics unless 201. Returns the MethodInfo.
    pub async fn auth_method(&self, body: Value) -> Value {
        let (st, b) = self
            .call(
                Method::POST,
                "/api/v1/auth/methods",
                Some(&self.root),
                Some(body),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "enable auth method: {b}");
        b
    }

    /// Writes a login role with `token` (`PUT /auth/methods/{m}/roles/{r}`).
    pub async fn put_login_role(
        &self,
        token: &str,
        method: &str,
        role: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        self.call(
            Method::PUT,
            &format!("/api/v1/auth/methods/{method}/roles/{role}"),
            Some(token),
            Some(body),
        )
        .await
    }

    /// Writes a login role as root; panics unless 200. Returns the RoleInfo.
    pub async fn login_role(&self, method: &str, role: &str, body: Value) -> Value {
        let (st, b) = self.put_login_role(&self.root, method, role, body).await;
        assert_eq!(st, StatusCode::OK, "write login role {method}/{role}: {b}");
        b
    }

    /// `POST /auth/methods/{method}/login` without a bearer.
    pub async fn machine_login(&self, method: &str, role: &str, jwt: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/api/v1/auth/methods/{method}/login"),
            None,
            Some(json!({"role": role, "jwt": jwt})),
        )
        .await
    }

    /// Logs in and returns the LoginResult; panics unless 200.
    pub async fn machine_login_ok(&self, method: &str, role: &str, jwt: &str) -> Value {
        let (st, b) = self.machine_login(method, role, jwt).await;
        assert_eq!(st, StatusCode::OK, "login {method}/{role}: {b}");
        assert!(
            b["token"].as_str().is_some_and(|t| t.starts_with("arc_")),
            "{b}"
        );
        b
    }

    /// Asserts that a login is refused with `want`, a message starting with `phrase`, and
    /// an audited refusal (outcome, status, `detail.check`, method and role); returns the
    /// answer.
    pub async fn login_refused(
        &self,
        method: &str,
        role: &str,
        jwt: &str,
        want: StatusCode,
        phrase: &str,
        check: &str,
    ) -> Value {
        let (st, body) = self.machine_login(method, role, jwt).await;
        crate::assert_refused(st, &body, want, phrase);
        let msg = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.starts_with(phrase),
            "the message starts with the check: {body}"
        );
        let event = self.login_event(&request_id(&body)).await;
        let outcome = match want.as_u16() {
            400 => "failure",
            s if s >= 500 => "error",
            _ => "denied",
        };
        assert_eq!(event["outcome"], outcome, "{event}");
        assert_eq!(event["status"], want.as_u16(), "{event}");
        assert_eq!(event["detail"]["check"], check, "{event}");
        assert_eq!(event["detail"]["method"], method, "{event}");
        assert_eq!(event["detail"]["role"], role, "{event}");
        assert!(
            !event.to_string().contains(jwt),
            "the refusal's event holds the JWT: {event}"
        );
        body
    }

    /// Every `auth.method.login` event in the store (read with SQL: adds no event).
    pub async fn login_events(&self) -> Vec<Value> {
        self.query_strings("SELECT body FROM audit_events WHERE action = 'auth.method.login'")
            .await
            .iter()
            .map(|b| serde_json::from_str(b).expect("event body is JSON"))
            .collect()
    }

    /// The `auth.method.login` event of the request that answered `body` (its
    /// `error.request_id`, or `request_id` passed directly), waiting up to 10 s for it.
    pub async fn login_event(&self, request_id: &str) -> Value {
        for _ in 0..100 {
            if let Some(e) = self
                .login_events()
                .await
                .into_iter()
                .find(|e| e["request_id"] == request_id)
            {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no auth.method.login event for request {request_id}")
    }

    /// The realm's audit events of `action` whose actor is the token `token_id`, waiting up
    /// to 10 s for at least one.
    pub async fn realm_events_of_token(
        &self,
        realm: &str,
        action: &str,
        token_id: &str,
    ) -> Vec<Value> {
        for _ in 0..100 {
            let (st, page) = self
                .get(
                    &format!("/api/v1/realms/{realm}/audit?limit=1000&action={action}"),
                    &self.root,
                )
                .await;
            assert_eq!(st, StatusCode::OK, "{page}");
            let mine: Vec<Value> = page["items"]
                .as_array()
                .expect("items")
                .iter()
                .filter(|e| e["actor"]["token_id"] == token_id)
                .cloned()
                .collect();
            if !mine.is_empty() {
                return mine;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no {action} event of token {token_id} in realm {realm}")
    }
}

/// The `identity` that `GET /tokens/self` reports for a machine login.
pub fn identity(me: &Value) -> &Value {
    &me["token"]["identity"]
}

/// The request id of an error answer.
pub fn request_id(body: &Value) -> String {
    body["error"]["request_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no request id in {body}"))
        .to_owned()
}

/// A login request with an optional `X-Forwarded-For`.
pub async fn raw_login(s: &Server, method: &str, body: Value, xff: Option<&str>) -> Raw {
    raw(
        s,
        Method::POST,
        &format!("/api/v1/auth/methods/{method}/login"),
        None,
        xff,
        Some(body),
    )
    .await
}

/// The audience the JWT tests' workflows request.
pub const AUD: &str = "https://arcan.example";

/// The `github` method: OIDC discovery at the test issuer, trusted through its CA only;
/// `extra` is merged into the config (cache timing).
pub fn github_method(issuer: &crate::oidc::Issuer, extra: Value) -> Value {
    let mut config = json!({"oidc_discovery_url": issuer.url, "ca_pem": issuer.ca_pem});
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    json!({"name": "github", "type": "jwt", "description": "GitHub Actions", "config": config})
}

/// The `deploy` role of `acme/api` on `main`: reads and lists `app/*` in `acme` prod.
pub fn deploy_role() -> Value {
    json!({
        "bound_audiences": [AUD],
        "bound_claims": {"repository": "acme/api", "ref": "refs/heads/main"},
        "claim_mappings": {"repository": "repository", "run_id": "run_id"},
        "grants": [{"realm": "acme", "capabilities": ["secrets:read", "secrets:list"],
                    "env": "prod", "key_glob": "app/*"}],
    })
}

/// A TokenReview server with one reviewer allowed to review (`system:auth-delegator`).
pub struct K8sCluster {
    /// The API server.
    pub api: crate::k8s::ApiServer,
    /// The reviewer's bearer token (what `token_reviewer_jwt` takes).
    pub reviewer: String,
    dir: std::path::PathBuf,
}

impl K8sCluster {
    /// Starts the API server and registers the reviewer.
    pub async fn start() -> Self {
        let dir = temp_dir("arcan-k8s");
        let api = crate::k8s::ApiServer::start(&dir).await;
        let reviewer = format!("reviewer-{}", uuid::Uuid::new_v4().simple());
        api.add_reviewer(&reviewer, "system:serviceaccount:arcan:reviewer", true);
        Self { api, reviewer, dir }
    }

    /// A service account that exists in the cluster.
    pub fn account(&self, namespace: &str, name: &str) -> crate::k8s::ServiceAccount {
        let sa = crate::k8s::ServiceAccount::new(namespace, name);
        self.api.add_account(&sa);
        sa
    }

    /// A projected token of `sa` for `audiences`, valid for 10 minutes.
    pub fn token(&self, sa: &crate::k8s::ServiceAccount, audiences: &[&str]) -> String {
        self.api
            .signer
            .projected(sa, audiences, Duration::from_secs(600))
    }

    /// TokenReviews answered so far.
    pub fn reviews(&self) -> u64 {
        self.api.with(|c| c.requests)
    }

    /// A `kubernetes` method on this cluster; `reviewer` is the `token_reviewer_jwt` (none:
    /// the caller's JWT reviews itself); `extra` is merged into the config.
    pub fn method(&self, name: &str, reviewer: Option<&str>, extra: Value) -> Value {
        let mut config = json!({"kubernetes_host": self.api.url,
                                "kubernetes_ca_cert": self.api.ca_pem});
        if let Some(r) = reviewer {
            config["token_reviewer_jwt"] = json!(r);
        }
        if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        json!({"name": name, "type": "kubernetes", "config": config})
    }
}

impl Drop for K8sCluster {
    fn drop(&mut self) {
        self.api.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `api` role: service accounts `api` and `worker-*` of namespace `prod` read `acme`.
pub fn k8s_role() -> Value {
    json!({
        "bound_service_account_names": ["api", "worker-*"],
        "bound_service_account_namespaces": ["prod"],
        "grants": [{"realm": "acme", "role": "viewer"}],
    })
}

/// The claims of a compact JWT, decoded without any check.
pub fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a payload segment");
    let bytes = URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// The issuer the static-key `github` method binds.
pub const STATIC_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// The `github` method with one static key (no network).
pub fn static_method(key: &crate::oidc::TestKey) -> Value {
    json!({"name": "github", "type": "jwt", "config": {
        "jwt_validation_pubkeys": [spki_pem(&key.jwk)], "bound_issuer": STATIC_ISSUER}})
}

/// A role of `acme/api` granting `grants`.
pub fn role(grants: Value) -> Value {
    json!({"bound_audiences": [AUD], "bound_claims": {"repository": "acme/api"},
           "claim_mappings": {"run_id": "run_id"}, "grants": grants})
}

/// A job's token for [`static_method`]: `acme/api` on main, run `run_id`.
pub fn job(key: &crate::oidc::TestKey, run_id: &str) -> String {
    let mut c = crate::oidc::github_actions(STATIC_ISSUER, "acme/api", "refs/heads/main", AUD);
    c["run_id"] = json!(run_id);
    key.sign(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PEMs the static-key tests configure must be the keys' real SPKI: checked against
    /// the `openssl` command's parse of them.
    #[test]
    fn spki_pem_is_what_openssl_reads() {
        for key in [
            crate::oidc::TestKey::rs256("r"),
            crate::oidc::TestKey::es256("e"),
            crate::oidc::TestKey::ed25519("d"),
        ] {
            let pem = spki_pem(&key.jwk);
            let mut child = std::process::Command::new("openssl")
                .args(["pkey", "-pubin", "-noout", "-text"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("openssl");
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(pem.as_bytes())
                .expect("write");
            let out = child.wait_with_output().expect("openssl output");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{pem}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let want = match key.jwk["kty"].as_str() {
                Some("RSA") => "Public-Key: (2048 bit)",
                Some("EC") => "NIST CURVE: P-256",
                _ => "ED25519 Public-Key",
            };
            assert!(text.contains(want), "{text}");
        }
    }
}
