//! The JWT login pipeline of one method, in order (the first failure wins):
//! size → three base64url segments → header (parsed by us) → `alg` allowlist → `crit` refused
//! → key by `kid` (JWKS refresh rules; without `kid` at most four keys of the algorithm's
//! family) → signature (jsonwebtoken, signature only) → claims object → `exp`/`nbf`/`iat`/
//! `max_age` → `iss` → `aud` → `sub` → `bound_claims` → `bound_cidrs` → `claim_mappings`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode};
use serde_json::{Map, Value};

use super::alg::JwtAlg;
use super::cache::{CacheSettings, JwksCache};
use super::claims;
use super::config::{JwtMethodConfig, KeySource};
use super::keys::{KeySet, VerifyKey};
use super::role::JwtRoleConfig;
use super::token::{self, Compact, MAX_JWT_BYTES};
use crate::context::LoginContext;
use crate::error::{Check, ConfigError, Refusal, shown};
use crate::fetch::FetchClient;
use crate::upstream::UpstreamGate;

/// Keys tried for a token without `kid`.
pub const MAX_KIDLESS_TRIES: usize = 4;

/// Who a verified token says it is.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct VerifiedIdentity {
    /// `sub`.
    pub subject: String,
    /// `iss`.
    pub issuer: String,
    /// `aud` (empty when the token has none).
    pub audiences: Vec<String>,
    /// The role's `claim_mappings`, applied.
    pub claims: BTreeMap<String, String>,
    /// `exp`.
    pub expires_at: std::time::SystemTime,
    /// `iat`, when present.
    pub issued_at: Option<std::time::SystemTime>,
    /// The algorithm that verified.
    pub alg: JwtAlg,
    /// The key id that verified, when the token named one.
    pub kid: Option<String>,
}

enum Keys {
    Static(Arc<KeySet>),
    Remote(Box<JwksCache>),
}

/// The verifier of one JWT method.
pub struct JwtVerifier {
    config: JwtMethodConfig,
    keys: Keys,
    max_jwt_bytes: usize,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.config.issuer())
            .finish_non_exhaustive()
    }
}

fn secs_to_time(s: f64) -> std::time::SystemTime {
    // `s` is a range-checked NumericDate, so this never falls back.
    super::claims::secs_to_time(s).unwrap_or(UNIX_EPOCH)
}

impl JwtVerifier {
    /// A verifier with the method's cache settings.
    pub fn new(config: JwtMethodConfig, gate: UpstreamGate) -> Result<Self, ConfigError> {
        let settings = CacheSettings::of(&config);
        Self::with_cache_settings(config, gate, settings)
    }

    /// A verifier with explicit cache timing (tests use sub-second intervals).
    pub fn with_cache_settings(
        config: JwtMethodConfig,
        gate: UpstreamGate,
        settings: CacheSettings,
    ) -> Result<Self, ConfigError> {
        crate::install_crypto_provider();
        let keys = match &config.key_source {
            KeySource::Pubkeys(pems) => Keys::Static(Arc::new(KeySet::from_pems(pems)?)),
            _ => {
                let client = FetchClient::builder()
                    .timeout(config.timeout)
                    .ca_pem(config.ca_pem.as_deref())
                    .build()
                    .map_err(|e| ConfigError::new("config", e.to_string()))?;
                let cache = JwksCache::new(&config, client, gate, settings)
                    .ok_or_else(|| ConfigError::new("config", "the key source URL is not valid"))?;
                Keys::Remote(Box::new(cache))
            }
        };
        Ok(Self {
            config,
            keys,
            max_jwt_bytes: MAX_JWT_BYTES,
        })
    }

    /// Sets the largest JWT accepted (server config `auth.machine.max_jwt_bytes`).
    pub fn max_jwt_bytes(mut self, n: usize) -> Self {
        self.max_jwt_bytes = n;
        self
    }

    /// The method's configuration.
    pub fn config(&self) -> &JwtMethodConfig {
        &self.config
    }

    /// The JWKS cache, for remote key sources.
    pub fn cache(&self) -> Option<&JwksCache> {
        match &self.keys {
            Keys::Remote(c) => Some(c),
            Keys::Static(_) => None,
        }
    }

    /// Fetches the remote keys now (method enable/update); static keys: their count.
    pub async fn check_upstream(&self) -> Result<usize, Refusal> {
        match &self.keys {
            Keys::Static(k) => Ok(k.len()),
            Keys::Remote(c) => c.refresh_now().await,
        }
    }

    /// Runs the pipeline for `jwt` against `role`.
    pub async fn verify(
        &self,
        jwt: &str,
        role: &JwtRoleConfig,
        ctx: &LoginContext<'_>,
    ) -> Result<VerifiedIdentity, Refusal> {
        let compact = token::parse(jwt, self.max_jwt_bytes, &self.config.jwt_supported_algs)?;
        let set = match &self.keys {
            Keys::Static(k) => k.clone(),
            Keys::Remote(c) => c.key_set(compact.kid.as_deref()).await?,
        };
        let claims = self.verify_signature(&compact, &set)?;
        let times = claims::check_times(
            &claims,
            ctx.now_secs(),
            self.config.clock_skew_leeway,
            role.max_age,
            ctx.role_name,
        )?;
        let issuer = claims::check_issuer(&claims, self.config.issuer())?;
        let audiences = claims::check_audience(&claims, &role.bound_audiences, ctx.role_name)?;
        let subject = claims::check_subject(&claims, role.bound_subject.as_deref(), ctx.role_name)?;
        claims::check_bound_claims(&claims, role)?;
        claims::check_cidrs(role, ctx.client_ip)?;
        let mapped = claims::map_claims(&claims, role)?;
        Ok(VerifiedIdentity {
            subject,
            issuer,
            audiences,
            claims: mapped,
            expires_at: secs_to_time(times.exp),
            issued_at: times.iat.map(secs_to_time),
            alg: compact.alg,
            kid: compact.kid,
        })
    }

    /// The candidate keys and the signature check; returns the claims object.
    fn verify_signature(
        &self,
        c: &Compact<'_>,
        set: &KeySet,
    ) -> Result<Map<String, Value>, Refusal> {
        // Static PEM keys have no `kid`: a token's `kid` cannot select among them.
        let kid = match &self.keys {
            Keys::Static(_) => None,
            Keys::Remote(_) => c.kid.as_ref(),
        };
        let limit = match &self.keys {
            Keys::Static(_) => super::config::MAX_PUBKEYS,
            Keys::Remote(_) => MAX_KIDLESS_TRIES,
        };
        let candidates: Vec<&VerifyKey> = match kid {
            Some(kid) => {
                let with_kid: Vec<&VerifyKey> = set.with_kid(kid).collect();
                if with_kid.is_empty() {
                    return Err(match &self.keys {
                        Keys::Remote(cache) => cache.unknown_kid(kid),
                        Keys::Static(_) => Refusal::unauthorized(
                            Check::Kid,
                            format!("kid: no key `{}` among the method's keys", shown(kid, 64)),
                        ),
                    });
                }
                let fitting: Vec<&VerifyKey> =
                    with_kid.into_iter().filter(|k| k.fits(c.alg)).collect();
                if fitting.is_empty() {
                    return Err(Refusal::unauthorized(
                        Check::Alg,
                        format!("alg: `{}` does not fit key `{}`", c.alg, shown(kid, 64)),
                    ));
                }
                fitting
            }
            None => {
                let fitting: Vec<&VerifyKey> =
                    set.iter().filter(|k| k.fits(c.alg)).take(limit).collect();
                if fitting.is_empty() {
                    return Err(Refusal::unauthorized(
                        Check::Kid,
                        format!("kid: no {} key among the method's keys", c.alg),
                    ));
                }
                fitting
            }
        };
        // Signature only: every claim is checked by Arcan afterwards.
        let mut validation = Validation::new(c.alg.to_jsonwebtoken());
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        for key in candidates {
            match decode::<Value>(c.token, &key.key, &validation) {
                Ok(data) => {
                    return match data.claims {
                        Value::Object(m) => Ok(m),
                        _ => Err(Refusal::bad_request(
                            Check::Claims,
                            "claims: not a JSON object",
                        )),
                    };
                }
                Err(e) => match e.kind() {
                    ErrorKind::InvalidSignature => continue,
                    ErrorKind::Json(_) | ErrorKind::Utf8(_) | ErrorKind::Base64(_) => {
                        return Err(Refusal::bad_request(
                            Check::Claims,
                            "claims: not a JSON object",
                        ));
                    }
                    _ => {
                        return Err(Refusal::unauthorized(
                            Check::Signature,
                            "signature: does not verify",
                        ));
                    }
                },
            }
        }
        Err(Refusal::unauthorized(
            Check::Signature,
            "signature: does not verify",
        ))
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
