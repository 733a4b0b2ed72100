//! The service-account identity a Kubernetes token claims, read **without** verifying it (the
//! TokenReview verifies). Used only to refuse honest mistakes early — unbound names and
//! namespaces, expired tokens, wrong audiences — without a call to the API server, and to
//! compare with what the API server answers.
//!
//! Projected tokens (`kubernetes.io.{namespace, serviceaccount.{name, uid}, pod.name}`, `exp`
//! required) are accepted; legacy secret-based tokens (`iss: kubernetes/serviceaccount`,
//! `kubernetes.io/serviceaccount/*` claims, no `exp`) only when the method allows them.

use serde_json::{Map, Value};

use crate::error::{Check, Refusal};
use crate::jwt::alg::JwtAlg;
use crate::jwt::token;

/// Algorithms Kubernetes signs service-account tokens with (never HMAC, `none` or EdDSA).
pub const K8S_ALGS: [JwtAlg; 8] = [
    JwtAlg::RS256,
    JwtAlg::RS384,
    JwtAlg::RS512,
    JwtAlg::PS256,
    JwtAlg::PS384,
    JwtAlg::PS512,
    JwtAlg::ES256,
    JwtAlg::ES384,
];

/// What the token says about its service account (unverified).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ServiceAccountClaims {
    /// Namespace.
    pub namespace: String,
    /// Service-account name.
    pub name: String,
    /// Service-account uid.
    pub uid: Option<String>,
    /// Pod name (projected tokens bound to a pod).
    pub pod: Option<String>,
    /// `aud`.
    pub audiences: Vec<String>,
    /// `exp`, unix seconds (legacy tokens have none).
    pub exp: Option<f64>,
    /// A legacy secret-based token.
    pub legacy: bool,
}

fn not_sa() -> Refusal {
    Refusal::bad_request(
        Check::ServiceAccount,
        "jwt: not a Kubernetes service-account token",
    )
}

fn name_like(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 253 => Some(s.clone()),
        _ => None,
    }
}

fn audiences(claims: &Map<String, Value>) -> Vec<String> {
    match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(v)) => v
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        _ => vec![],
    }
}

/// Size, format, header (`alg` in [`K8S_ALGS`]) and the service-account claims.
pub fn service_account_claims(
    jwt: &str,
    max_bytes: usize,
    allow_legacy: bool,
) -> Result<ServiceAccountClaims, Refusal> {
    let compact = token::parse(jwt, max_bytes, &K8S_ALGS)?;
    let claims: Map<String, Value> = match serde_json::from_slice(&compact.payload) {
        Ok(Value::Object(m)) => m,
        _ => return Err(not_sa()),
    };
    let exp = match claims.get("exp") {
        None => None,
        Some(v) => Some(
            v.as_f64()
                .filter(|f| crate::jwt::claims::in_numeric_range(*f))
                .ok_or_else(|| Refusal::unauthorized(Check::Exp, "exp: not a NumericDate"))?,
        ),
    };
    if let Some(k8s) = claims.get("kubernetes.io").and_then(Value::as_object) {
        let sa = k8s
            .get("serviceaccount")
            .and_then(Value::as_object)
            .ok_or_else(not_sa)?;
        let namespace = name_like(k8s.get("namespace")).ok_or_else(not_sa)?;
        let name = name_like(sa.get("name")).ok_or_else(not_sa)?;
        let exp = exp.ok_or_else(|| Refusal::unauthorized(Check::Exp, "exp: missing"))?;
        return Ok(ServiceAccountClaims {
            namespace,
            name,
            uid: name_like(sa.get("uid")),
            pod: k8s
                .get("pod")
                .and_then(Value::as_object)
                .and_then(|p| name_like(p.get("name"))),
            audiences: audiences(&claims),
            exp: Some(exp),
            legacy: false,
        });
    }
    let legacy_ns = claims.get("kubernetes.io/serviceaccount/namespace");
    if claims.get("iss").and_then(Value::as_str) == Some("kubernetes/serviceaccount")
        && legacy_ns.is_some()
    {
        if !allow_legacy {
            return Err(Refusal::unauthorized(
                Check::ServiceAccount,
                "jwt: legacy service-account tokens are not accepted by this method (allow_legacy_tokens)",
            ));
        }
        return Ok(ServiceAccountClaims {
            namespace: name_like(legacy_ns).ok_or_else(not_sa)?,
            name: name_like(claims.get("kubernetes.io/serviceaccount/service-account.name"))
                .ok_or_else(not_sa)?,
            uid: name_like(claims.get("kubernetes.io/serviceaccount/service-account.uid")),
            pod: None,
            audiences: audiences(&claims),
            exp,
            legacy: true,
        });
    }
    Err(not_sa())
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::Class;
    use crate::testkeys::{TestKey, raw_token};

    pub(crate) fn projected(ns: &str, name: &str, aud: &[&str], exp: f64) -> Value {
        json!({"iss": "https://kubernetes.default.svc.cluster.local", "aud": aud, "exp": exp,
            "iat": exp - 3600.0, "sub": format!("system:serviceaccount:{ns}:{name}"),
            "kubernetes.io": {"namespace": ns, "pod": {"name": "api-7f9", "uid": "p-1"},
                "serviceaccount": {"name": name, "uid": "sa-uid-1"}}})
    }

    pub(crate) fn legacy(ns: &str, name: &str) -> Value {
        json!({"iss": "kubernetes/serviceaccount", "sub": format!("system:serviceaccount:{ns}:{name}"),
            "kubernetes.io/serviceaccount/namespace": ns,
            "kubernetes.io/serviceaccount/secret.name": format!("{name}-token-x"),
            "kubernetes.io/serviceaccount/service-account.name": name,
            "kubernetes.io/serviceaccount/service-account.uid": "sa-uid-1"})
    }

    #[test]
    fn out_of_range_exp_is_refused() {
        for exp in [1e12, 9.3e18, 1e300, -1.0] {
            let t = TestKey::es256("c").sign(&projected("prod", "api", &["arcan"], exp));
            let r = service_account_claims(&t, 16384, false).expect_err("exp");
            assert_eq!(
                (r.check, r.message.as_str()),
                (Check::Exp, "exp: not a NumericDate"),
                "{exp}"
            );
        }
    }

    #[test]
    fn projected_tokens_parse() {
        let t = TestKey::es256("c").sign(&projected("prod", "api", &["arcan"], 2e9));
        let c = service_account_claims(&t, 16384, false).expect("claims");
        assert_eq!((c.namespace.as_str(), c.name.as_str()), ("prod", "api"));
        assert_eq!(c.uid.as_deref(), Some("sa-uid-1"));
        assert_eq!(c.pod.as_deref(), Some("api-7f9"));
        assert_eq!(c.audiences, vec!["arcan"]);
        assert!(!c.legacy);
        let mut no_exp = projected("prod", "api", &["arcan"], 2e9);
        no_exp.as_object_mut().expect("o").remove("exp");
        let t = TestKey::es256("c").sign(&no_exp);
        assert_eq!(
            service_account_claims(&t, 16384, false)
                .expect_err("exp")
                .check,
            Check::Exp
        );
    }

    #[test]
    fn legacy_tokens_only_when_allowed() {
        let t = TestKey::es256("c").sign(&legacy("prod", "api"));
        let r = service_account_claims(&t, 16384, false).expect_err("legacy");
        assert_eq!(
            (r.check, r.class),
            (Check::ServiceAccount, Class::Unauthorized)
        );
        let c = service_account_claims(&t, 16384, true).expect("allowed");
        assert!(c.legacy);
        assert_eq!(
            (c.namespace.as_str(), c.name.as_str(), c.exp),
            ("prod", "api", None)
        );
    }

    #[test]
    fn other_tokens_are_not_service_accounts() {
        let k = TestKey::es256("c");
        for claims in [
            json!({"sub": "repo:a/b", "iss": "https://token.actions.githubusercontent.com", "exp": 2e9}),
            json!({"kubernetes.io": {"namespace": "prod"}, "exp": 2e9}),
            json!({"kubernetes.io": {"namespace": "", "serviceaccount": {"name": "x"}}, "exp": 2e9}),
        ] {
            let r = service_account_claims(&k.sign(&claims), 16384, true).expect_err("not sa");
            assert_eq!(
                (r.check, r.class),
                (Check::ServiceAccount, Class::BadRequest),
                "{claims}"
            );
            assert_eq!(r.message, "jwt: not a Kubernetes service-account token");
        }
        let ed = TestKey::ed25519("e").sign(&projected("p", "a", &[], 2e9));
        assert_eq!(
            service_account_claims(&ed, 16384, true)
                .expect_err("eddsa")
                .check,
            Check::Alg
        );
        let hs = raw_token(
            &json!({"alg": "HS256"}),
            &projected("p", "a", &[], 2e9),
            b"x",
        );
        assert_eq!(
            service_account_claims(&hs, 16384, true)
                .expect_err("hs")
                .check,
            Check::Alg
        );
        assert_eq!(
            service_account_claims("x.y", 16384, true)
                .expect_err("fmt")
                .check,
            Check::JwtFormat
        );
        assert_eq!(
            service_account_claims(&"a".repeat(20), 10, true)
                .expect_err("size")
                .check,
            Check::JwtSize
        );
    }
}
