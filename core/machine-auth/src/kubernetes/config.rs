//! The configuration of a Kubernetes auth method (API server, CA, reviewer credentials,
//! audience, legacy tokens) and of its login roles (bound service-account names and
//! namespaces, audience override).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use url::Url;
use zeroize::Zeroizing;

use crate::duration::in_range;
use crate::error::ConfigError;
use crate::fetch;
use crate::globs::NameGlobs;
use crate::jwt::config::upstream_url;

/// Longest reviewer JWT.
pub const MAX_REVIEWER_JWT: usize = 16 * 1024;

/// A secret string: redacted in `Debug`, zeroed on drop, never serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(Zeroizing::new(s.into()))
    }

    /// The secret, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::new(String::deserialize(d)?))
    }
}

/// A validated Kubernetes method configuration. Serializing it leaves out
/// `token_reviewer_jwt` (the server stores it sealed and reports only whether it is set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "KubernetesMethodDoc", into = "KubernetesMethodDoc")]
#[non_exhaustive]
pub struct KubernetesMethodConfig {
    /// `https://host[:port][/prefix]`, without a trailing slash.
    pub kubernetes_host: String,
    /// PEM CA of the API server; the only trust root when set.
    pub kubernetes_ca_cert: Option<String>,
    /// The reviewer's bearer token; `None`: the caller's own JWT reviews itself (its service
    /// account then needs `system:auth-delegator`).
    pub token_reviewer_jwt: Option<Secret>,
    /// The audience TokenReviews ask for (roles may override); `None`: the API server's own.
    pub audience: Option<String>,
    /// Accept legacy (secret-based, non-expiring) service-account tokens.
    pub allow_legacy_tokens: bool,
    /// Timeout of each TokenReview (1–30 s, default 5 s).
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KubernetesMethodDoc {
    kubernetes_host: String,
    #[serde(default)]
    kubernetes_ca_cert: Option<String>,
    #[serde(default, skip_serializing)]
    token_reviewer_jwt: Option<Secret>,
    #[serde(default)]
    audience: Option<String>,
    #[serde(default)]
    allow_legacy_tokens: bool,
    #[serde(default = "default_timeout", with = "arcan_util::duration")]
    timeout: Duration,
}

fn default_timeout() -> Duration {
    fetch::DEFAULT_TIMEOUT
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Only reached if a caller serializes a Secret directly; configs skip it.
        s.serialize_str("<redacted>")
    }
}

/// Why `audience` needs `token_reviewer_jwt`: without a reviewer the caller's JWT is the
/// TokenReview's bearer, and the API server authenticates bearers only for its own
/// audiences (`--api-audiences`), so a token minted for another audience is always refused.
pub const AUDIENCE_NEEDS_REVIEWER: &str = "audience requires token_reviewer_jwt (the caller's token, minted for `audience`, cannot authenticate to the API server)";

fn audience_ok(field: &str, a: &Option<String>) -> Result<(), ConfigError> {
    match a {
        Some(a) if a.is_empty() || a.len() > 256 => {
            Err(ConfigError::new(field, "1-256 characters"))
        }
        _ => Ok(()),
    }
}

impl TryFrom<KubernetesMethodDoc> for KubernetesMethodConfig {
    type Error = ConfigError;

    fn try_from(d: KubernetesMethodDoc) -> Result<Self, ConfigError> {
        let url = upstream_url("kubernetes_host", &d.kubernetes_host)?;
        if url.query().is_some() {
            return Err(ConfigError::new(
                "kubernetes_host",
                "a query is not accepted",
            ));
        }
        if let Some(pem) = &d.kubernetes_ca_cert {
            fetch::parse_ca_pem(pem)
                .map_err(|e| ConfigError::new("kubernetes_ca_cert", e.to_string()))?;
        }
        if let Some(jwt) = &d.token_reviewer_jwt {
            let j = jwt.expose();
            if j.is_empty()
                || j.len() > MAX_REVIEWER_JWT
                || j.bytes().any(|b| !b.is_ascii_graphic())
            {
                return Err(ConfigError::new(
                    "token_reviewer_jwt",
                    format!("a token of 1-{MAX_REVIEWER_JWT} printable characters"),
                ));
            }
        }
        audience_ok("audience", &d.audience)?;
        if d.audience.is_some() && d.token_reviewer_jwt.is_none() {
            return Err(ConfigError::new("audience", AUDIENCE_NEEDS_REVIEWER));
        }
        in_range(
            "timeout",
            d.timeout,
            Duration::from_secs(1),
            fetch::MAX_TIMEOUT,
        )?;
        Ok(Self {
            kubernetes_host: d.kubernetes_host.trim_end_matches('/').to_owned(),
            kubernetes_ca_cert: d.kubernetes_ca_cert,
            token_reviewer_jwt: d.token_reviewer_jwt,
            audience: d.audience,
            allow_legacy_tokens: d.allow_legacy_tokens,
            timeout: d.timeout,
        })
    }
}

impl From<KubernetesMethodConfig> for KubernetesMethodDoc {
    fn from(c: KubernetesMethodConfig) -> Self {
        Self {
            kubernetes_host: c.kubernetes_host,
            kubernetes_ca_cert: c.kubernetes_ca_cert,
            token_reviewer_jwt: c.token_reviewer_jwt,
            audience: c.audience,
            allow_legacy_tokens: c.allow_legacy_tokens,
            timeout: c.timeout,
        }
    }
}

impl KubernetesMethodConfig {
    /// The TokenReview endpoint.
    pub fn review_url(&self) -> Result<Url, ConfigError> {
        use k8s_openapi::Resource;
        use k8s_openapi::api::authentication::v1::TokenReview;
        let s = format!(
            "{}/apis/{}/{}/{}",
            self.kubernetes_host,
            TokenReview::GROUP,
            TokenReview::VERSION,
            TokenReview::URL_PATH_SEGMENT
        );
        Url::parse(&s).map_err(|e| ConfigError::new("kubernetes_host", e.to_string()))
    }

    /// Whether `role` can work with this method: a role `audience` needs
    /// `token_reviewer_jwt` like the method's (the server checks this at role write; the
    /// verifier again at login, for a method whose reviewer was removed later).
    pub fn check_role(&self, role: &KubernetesRoleConfig) -> Result<(), ConfigError> {
        if role.audience.is_some() && self.token_reviewer_jwt.is_none() {
            return Err(ConfigError::new("audience", AUDIENCE_NEEDS_REVIEWER));
        }
        Ok(())
    }
}

/// A validated Kubernetes login role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "KubernetesRoleDoc", into = "KubernetesRoleDoc")]
#[non_exhaustive]
pub struct KubernetesRoleConfig {
    /// Bound service-account names (globs; `"*"` alone for any).
    pub names: NameGlobs,
    /// Bound namespaces (globs; `"*"` alone for any).
    pub namespaces: NameGlobs,
    /// Overrides the method's audience.
    pub audience: Option<String>,
    doc: KubernetesRoleDoc,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KubernetesRoleDoc {
    bound_service_account_names: Vec<String>,
    bound_service_account_namespaces: Vec<String>,
    #[serde(default)]
    audience: Option<String>,
}

impl TryFrom<KubernetesRoleDoc> for KubernetesRoleConfig {
    type Error = ConfigError;

    fn try_from(d: KubernetesRoleDoc) -> Result<Self, ConfigError> {
        let names = NameGlobs::new(
            "bound_service_account_names",
            &d.bound_service_account_names,
        )?;
        let namespaces = NameGlobs::new(
            "bound_service_account_namespaces",
            &d.bound_service_account_namespaces,
        )?;
        audience_ok("audience", &d.audience)?;
        Ok(Self {
            names,
            namespaces,
            audience: d.audience.clone(),
            doc: d,
        })
    }
}

impl From<KubernetesRoleConfig> for KubernetesRoleDoc {
    fn from(c: KubernetesRoleConfig) -> Self {
        c.doc
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn method_config_parses_bounds_and_redacts() {
        let c: KubernetesMethodConfig = serde_json::from_value(json!({
            "kubernetes_host": "https://10.0.0.1:6443/", "token_reviewer_jwt": "eyJhbGciOi.x.y",
            "audience": "arcan"}))
        .expect("config");
        assert_eq!(c.kubernetes_host, "https://10.0.0.1:6443");
        assert_eq!(
            c.review_url().expect("url").as_str(),
            "https://10.0.0.1:6443/apis/authentication.k8s.io/v1/tokenreviews"
        );
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert!(!format!("{c:?}").contains("eyJhbGciOi"));
        let out = serde_json::to_value(&c).expect("ser");
        assert!(out.get("token_reviewer_jwt").is_none());
        assert!(!out.to_string().contains("eyJhbGciOi"));
        for (v, want) in [
            (
                json!({"kubernetes_host": "http://k8s:6443"}),
                "kubernetes_host",
            ),
            (
                json!({"kubernetes_host": "https://169.254.169.254"}),
                "kubernetes_host",
            ),
            (
                json!({"kubernetes_host": "https://k8s", "kubernetes_ca_cert": "x"}),
                "kubernetes_ca_cert",
            ),
            (
                json!({"kubernetes_host": "https://k8s", "timeout": "40s"}),
                "timeout",
            ),
            (
                json!({"kubernetes_host": "https://k8s", "token_reviewer_jwt": ""}),
                "token_reviewer_jwt",
            ),
            (
                json!({"kubernetes_host": "https://k8s", "token_reviewer_path": "/etc/x"}),
                "unknown field",
            ),
        ] {
            let e = serde_json::from_value::<KubernetesMethodConfig>(v.clone())
                .expect_err("bad")
                .to_string();
            assert!(e.contains(want), "{v}: {e}");
        }
    }

    #[test]
    fn role_config_uses_name_globs() {
        let r: KubernetesRoleConfig = serde_json::from_value(json!({
            "bound_service_account_names": ["api", "worker-*"],
            "bound_service_account_namespaces": ["prod"]}))
        .expect("role");
        assert!(r.names.contains("worker-1") && !r.names.contains("db"));
        assert!(r.namespaces.contains("prod") && !r.namespaces.contains("dev"));
        for v in [
            json!({"bound_service_account_names": ["*", "api"], "bound_service_account_namespaces": ["p"]}),
            json!({"bound_service_account_names": [], "bound_service_account_namespaces": ["p"]}),
            json!({"bound_service_account_names": ["a"]}),
        ] {
            assert!(
                serde_json::from_value::<KubernetesRoleConfig>(v.clone()).is_err(),
                "{v}"
            );
        }
    }
}
