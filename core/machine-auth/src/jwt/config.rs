//! The configuration of a JWT/OIDC auth method: where keys come from, whom to trust for TLS,
//! which issuer and algorithms, and the time and cache bounds.
//!
//! Parsed once (`serde`, unknown keys refused) into [`JwtMethodConfig`], whose
//! [`KeySource`] makes "exactly one key source" a type fact.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use super::alg::JwtAlg;
use super::keys::KeySet;
use crate::duration::in_range;
use crate::error::ConfigError;
use crate::fetch;

/// Most static public keys.
pub const MAX_PUBKEYS: usize = 20;
/// Longest URL or issuer.
pub const MAX_URL_LEN: usize = 2048;

/// Where a method's verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySource {
    /// OIDC discovery: `{url}/.well-known/openid-configuration` names `jwks_uri`, and its
    /// `issuer` must equal `url` exactly.
    OidcDiscovery(String),
    /// A JWKS document.
    JwksUrl(String),
    /// PEM SPKI public keys (`-----BEGIN PUBLIC KEY-----`).
    Pubkeys(Vec<String>),
}

/// A validated JWT method configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "JwtMethodDoc", into = "JwtMethodDoc")]
#[non_exhaustive]
pub struct JwtMethodConfig {
    /// Exactly one key source.
    pub key_source: KeySource,
    /// PEM CA bundle, the only trust root for discovery and JWKS when set.
    pub ca_pem: Option<String>,
    /// The issuer tokens must name; defaults to the discovery URL, required otherwise.
    pub bound_issuer: Option<String>,
    /// Accepted algorithms (never HMAC or `none`); default all of [`JwtAlg::ALL`].
    pub jwt_supported_algs: Vec<JwtAlg>,
    /// Clock skew allowed on `exp`, `nbf`, `iat` (0–300 s, default 60 s).
    pub clock_skew_leeway: Duration,
    /// How long a fetched key set is used before it is refetched (1 s–24 h, default 1 h).
    pub jwks_cache_ttl: Duration,
    /// At most one refetch per this interval for unknown `kid`s (1 s–1 h, default 10 s).
    pub jwks_refresh_min_interval: Duration,
    /// Timeout of each upstream request (1–30 s, default 5 s).
    pub timeout: Duration,
}

impl JwtMethodConfig {
    /// The issuer tokens must carry.
    pub fn issuer(&self) -> &str {
        match (&self.bound_issuer, &self.key_source) {
            (Some(i), _) => i,
            (None, KeySource::OidcDiscovery(url)) => url,
            // Refused by validation; an empty issuer matches no token.
            (None, _) => "",
        }
    }
}

/// The wire form of [`JwtMethodConfig`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JwtMethodDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oidc_discovery_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jwks_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    jwt_validation_pubkeys: Vec<String>,
    #[serde(default)]
    ca_pem: Option<String>,
    #[serde(default)]
    bound_issuer: Option<String>,
    #[serde(default = "all_algs")]
    jwt_supported_algs: Vec<JwtAlg>,
    #[serde(default = "leeway", with = "arcan_util::duration")]
    clock_skew_leeway: Duration,
    #[serde(default = "cache_ttl", with = "arcan_util::duration")]
    jwks_cache_ttl: Duration,
    #[serde(default = "refresh_min", with = "arcan_util::duration")]
    jwks_refresh_min_interval: Duration,
    #[serde(default = "timeout", with = "arcan_util::duration")]
    timeout: Duration,
}

fn all_algs() -> Vec<JwtAlg> {
    JwtAlg::ALL.to_vec()
}
fn leeway() -> Duration {
    Duration::from_secs(60)
}
fn cache_ttl() -> Duration {
    Duration::from_secs(3600)
}
fn refresh_min() -> Duration {
    Duration::from_secs(10)
}
fn timeout() -> Duration {
    fetch::DEFAULT_TIMEOUT
}

/// Validates an upstream URL: https, a host that is not a refused literal, no credentials,
/// no fragment.
pub(crate) fn upstream_url(field: &str, s: &str) -> Result<Url, ConfigError> {
    if s.len() > MAX_URL_LEN {
        return Err(ConfigError::new(
            field,
            format!("longer than {MAX_URL_LEN} bytes"),
        ));
    }
    let url = Url::parse(s).map_err(|e| ConfigError::new(field, format!("not a URL: {e}")))?;
    fetch::check_url(&url).map_err(|e| ConfigError::new(field, e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(
            field,
            "credentials in the URL are not accepted",
        ));
    }
    if url.fragment().is_some() {
        return Err(ConfigError::new(field, "a fragment is not accepted"));
    }
    Ok(url)
}

impl TryFrom<JwtMethodDoc> for JwtMethodConfig {
    type Error = ConfigError;

    fn try_from(d: JwtMethodDoc) -> Result<Self, ConfigError> {
        let key_source = match (d.oidc_discovery_url, d.jwks_url, d.jwt_validation_pubkeys) {
            (Some(u), None, k) if k.is_empty() => {
                upstream_url("oidc_discovery_url", &u)?;
                KeySource::OidcDiscovery(u)
            }
            (None, Some(u), k) if k.is_empty() => {
                upstream_url("jwks_url", &u)?;
                KeySource::JwksUrl(u)
            }
            (None, None, k) if !k.is_empty() => {
                if k.len() > MAX_PUBKEYS {
                    return Err(ConfigError::new(
                        "jwt_validation_pubkeys",
                        format!("at most {MAX_PUBKEYS} keys"),
                    ));
                }
                KeySet::from_pems(&k)?;
                KeySource::Pubkeys(k)
            }
            _ => {
                return Err(ConfigError::new(
                    "config",
                    "exactly one of oidc_discovery_url, jwks_url, jwt_validation_pubkeys is required",
                ));
            }
        };
        if let Some(pem) = &d.ca_pem {
            if matches!(key_source, KeySource::Pubkeys(_)) {
                return Err(ConfigError::new(
                    "ca_pem",
                    "applies only to oidc_discovery_url and jwks_url",
                ));
            }
            fetch::parse_ca_pem(pem).map_err(|e| ConfigError::new("ca_pem", e.to_string()))?;
        }
        match &d.bound_issuer {
            Some(i) if i.is_empty() || i.len() > MAX_URL_LEN => {
                return Err(ConfigError::new(
                    "bound_issuer",
                    format!("1-{MAX_URL_LEN} characters"),
                ));
            }
            None if !matches!(key_source, KeySource::OidcDiscovery(_)) => {
                return Err(ConfigError::new(
                    "bound_issuer",
                    "required with jwks_url or jwt_validation_pubkeys",
                ));
            }
            _ => {}
        }
        let mut algs = d.jwt_supported_algs;
        algs.sort();
        algs.dedup();
        if algs.is_empty() {
            return Err(ConfigError::new(
                "jwt_supported_algs",
                "at least one algorithm",
            ));
        }
        let s = Duration::from_secs;
        in_range(
            "clock_skew_leeway",
            d.clock_skew_leeway,
            Duration::ZERO,
            s(300),
        )?;
        in_range("jwks_cache_ttl", d.jwks_cache_ttl, s(1), s(24 * 3600))?;
        in_range(
            "jwks_refresh_min_interval",
            d.jwks_refresh_min_interval,
            s(1),
            s(3600),
        )?;
        in_range("timeout", d.timeout, s(1), fetch::MAX_TIMEOUT)?;
        Ok(Self {
            key_source,
            ca_pem: d.ca_pem,
            bound_issuer: d.bound_issuer,
            jwt_supported_algs: algs,
            clock_skew_leeway: d.clock_skew_leeway,
            jwks_cache_ttl: d.jwks_cache_ttl,
            jwks_refresh_min_interval: d.jwks_refresh_min_interval,
            timeout: d.timeout,
        })
    }
}

impl From<JwtMethodConfig> for JwtMethodDoc {
    fn from(c: JwtMethodConfig) -> Self {
        let (oidc_discovery_url, jwks_url, jwt_validation_pubkeys) = match c.key_source {
            KeySource::OidcDiscovery(u) => (Some(u), None, vec![]),
            KeySource::JwksUrl(u) => (None, Some(u), vec![]),
            KeySource::Pubkeys(k) => (None, None, k),
        };
        Self {
            oidc_discovery_url,
            jwks_url,
            jwt_validation_pubkeys,
            ca_pem: c.ca_pem,
            bound_issuer: c.bound_issuer,
            jwt_supported_algs: c.jwt_supported_algs,
            clock_skew_leeway: c.clock_skew_leeway,
            jwks_cache_ttl: c.jwks_cache_ttl,
            jwks_refresh_min_interval: c.jwks_refresh_min_interval,
            timeout: c.timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: serde_json::Value) -> Result<JwtMethodConfig, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_round_trip() {
        let c = parse(json!({"oidc_discovery_url": "https://token.actions.githubusercontent.com"}))
            .expect("config");
        assert_eq!(c.issuer(), "https://token.actions.githubusercontent.com");
        assert_eq!(c.jwt_supported_algs.len(), 9);
        assert_eq!(c.clock_skew_leeway, Duration::from_secs(60));
        assert_eq!(c.jwks_cache_ttl, Duration::from_secs(3600));
        assert_eq!(c.jwks_refresh_min_interval, Duration::from_secs(10));
        assert_eq!(c.timeout, Duration::from_secs(5));
        let back = serde_json::to_value(&c).expect("ser");
        assert_eq!(back["clock_skew_leeway"], "1m");
        assert_eq!(parse(back).expect("again"), c);
    }

    #[test]
    fn exactly_one_key_source() {
        let e = parse(json!({})).expect_err("none");
        assert!(e.contains("exactly one of"), "{e}");
        let e = parse(
            json!({"oidc_discovery_url": "https://a", "jwks_url": "https://b/jwks",
            "bound_issuer": "x"}),
        )
        .expect_err("two");
        assert!(e.contains("exactly one of"), "{e}");
    }

    #[test]
    fn field_bounds_are_enforced() {
        let base = || json!({"jwks_url": "https://issuer.example/jwks", "bound_issuer": "https://issuer.example"});
        assert!(parse(base()).is_ok());
        let cases: Vec<(&str, serde_json::Value, &str)> = vec![
            ("unknown", json!("x"), "unknown field"),
            ("jwt_supported_algs", json!(["HS256"]), "not supported"),
            ("jwt_supported_algs", json!(["none"]), "not supported"),
            ("jwt_supported_algs", json!([]), "at least one"),
            ("clock_skew_leeway", json!("301s"), "clock_skew_leeway"),
            ("clock_skew_leeway", json!("soon"), "expected number"),
            ("jwks_cache_ttl", json!("25h"), "jwks_cache_ttl"),
            (
                "jwks_refresh_min_interval",
                json!("500ms"),
                "jwks_refresh_min_interval",
            ),
            ("timeout", json!("31s"), "timeout"),
            ("timeout", json!("0s"), "timeout"),
            ("ca_pem", json!("nope"), "ca_pem"),
            ("bound_issuer", json!(""), "bound_issuer"),
        ];
        for (k, v, want) in cases {
            let mut c = base();
            c[k] = v;
            let e = parse(c).expect_err(k);
            assert!(e.contains(want), "{k}: {e}");
        }
        let mut no_iss = base();
        no_iss.as_object_mut().expect("obj").remove("bound_issuer");
        assert!(
            parse(no_iss)
                .expect_err("issuer")
                .contains("bound_issuer: required")
        );
        for url in [
            "http://issuer.example/jwks",
            "https://169.254.169.254/jwks",
            "https://user:pw@issuer.example/jwks",
            "not a url",
        ] {
            let mut c = base();
            c["jwks_url"] = json!(url);
            assert!(parse(c).expect_err(url).contains("jwks_url"), "{url}");
        }
    }

    #[test]
    fn static_keys_are_checked_at_parse() {
        let e = parse(json!({"jwt_validation_pubkeys": ["-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n"],
            "bound_issuer": "i"}))
        .expect_err("bad pem");
        assert!(e.contains("jwt_validation_pubkeys"), "{e}");
        let many = vec![json!("x"); 21];
        let e =
            parse(json!({"jwt_validation_pubkeys": many, "bound_issuer": "i"})).expect_err("21");
        assert!(e.contains("at most 20"), "{e}");
    }
}
