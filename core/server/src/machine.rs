//! Machine-identity auth methods at run time: a stored method's configuration parsed into
//! its verifier (cached per method version), and a stored login role's definition parsed
//! into the bounds the verifier checks.
//!
//! What a method needs that is secret (the Kubernetes reviewer token) is sealed with the
//! system key, bound to the method's id, and only ever opened to build a verifier.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use arcan_config::MachineAuthConfig;
use arcan_crypto::{Keyring, open, seal};
use arcan_machine_auth::jwt::{JwtMethodConfig, JwtRoleConfig, JwtVerifier, VerifiedIdentity};
use arcan_machine_auth::kubernetes::{
    KubernetesIdentity, KubernetesMethodConfig, KubernetesRoleConfig, KubernetesVerifier,
};
use arcan_machine_auth::{LoginContext, Refusal, UpstreamGate};
use arcan_store::AuthMethod;

/// The type of an auth method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodKind {
    /// JWT/OIDC (CI/CD pipelines, any OIDC issuer).
    Jwt,
    /// Kubernetes service accounts (TokenReview).
    Kubernetes,
}

impl MethodKind {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodKind::Jwt => "jwt",
            MethodKind::Kubernetes => "kubernetes",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> ApiResult<Self> {
        match s {
            "jwt" => Ok(MethodKind::Jwt),
            "kubernetes" => Ok(MethodKind::Kubernetes),
            other => Err(ApiError::bad_request(format!(
                "type: `{}` is not an auth method type (jwt, kubernetes)",
                arcan_machine_auth::error::shown(other, 32)
            ))),
        }
    }

    /// The kind of a stored method.
    pub fn of(m: &AuthMethod) -> ApiResult<Self> {
        Self::parse(&m.kind).map_err(|_| ApiError::internal("stored auth method of unknown type"))
    }
}

/// Names of methods and login roles: 1–32 of `a-z 0-9 _ -`.
pub fn name_ok(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
}

const SECRETS_AAD: &[u8] = b"arcan:auth-method:v1:";

/// A method configuration as stored: the normalised JSON without secrets, and the sealed
/// secrets.
#[derive(Debug)]
pub struct StoredConfig {
    /// Normalised configuration (never a secret).
    pub config: String,
    /// Sealed secrets, if any.
    pub secrets: Option<Vec<u8>>,
}

fn config_error(e: serde_json::Error) -> ApiError {
    ApiError::bad_request(format!("config: {e}"))
}

/// Validates a method configuration and splits it into what is stored in clear and what
/// is sealed. `kept_secret` is the current reviewer token of a Kubernetes method being
/// updated, used when the new configuration omits it.
pub fn store_config(
    keyring: &Keyring,
    method_id: &str,
    kind: MethodKind,
    config: Value,
    kept_secret: Option<String>,
) -> ApiResult<StoredConfig> {
    match kind {
        MethodKind::Jwt => {
            let c: JwtMethodConfig = serde_json::from_value(config).map_err(config_error)?;
            Ok(StoredConfig {
                config: serde_json::to_string(&c).map_err(ApiError::internal)?,
                secrets: None,
            })
        }
        MethodKind::Kubernetes => {
            let mut config = config;
            if let (Value::Object(m), Some(kept)) = (&mut config, kept_secret)
                && !m.contains_key("token_reviewer_jwt")
            {
                m.insert("token_reviewer_jwt".into(), Value::String(kept));
            }
            let c: KubernetesMethodConfig = serde_json::from_value(config).map_err(config_error)?;
            let secrets = match &c.token_reviewer_jwt {
                Some(jwt) => {
                    let json = zeroize::Zeroizing::new(
                        serde_json::to_vec(
                            &serde_json::json!({"token_reviewer_jwt": jwt.expose()}),
                        )
                        .map_err(ApiError::internal)?,
                    );
                    Some(seal_secrets(keyring, method_id, &json)?)
                }
                None => None,
            };
            Ok(StoredConfig {
                config: serde_json::to_string(&c).map_err(ApiError::internal)?,
                secrets,
            })
        }
    }
}

fn aad(method_id: &str) -> Vec<u8> {
    [SECRETS_AAD, method_id.as_bytes()].concat()
}

fn seal_secrets(keyring: &Keyring, method_id: &str, json: &[u8]) -> ApiResult<Vec<u8>> {
    let key = keyring.system_key()?;
    Ok(seal(&key, json, &aad(method_id))?)
}

/// The method's secrets, opened (`{"token_reviewer_jwt": …}`), or an empty object.
pub fn open_secrets(keyring: &Keyring, m: &AuthMethod) -> ApiResult<Map<String, Value>> {
    let Some(sealed) = &m.secrets else {
        return Ok(Map::new());
    };
    let key = keyring.system_key()?;
    let json = zeroize::Zeroizing::new(open(&key, sealed, &aad(&m.id))?);
    match serde_json::from_slice(&json) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::internal(
            "sealed auth method secrets are not an object",
        )),
    }
}

/// The reviewer token of a stored Kubernetes method, if set.
pub fn reviewer_jwt(keyring: &Keyring, m: &AuthMethod) -> ApiResult<Option<String>> {
    Ok(open_secrets(keyring, m)?
        .remove("token_reviewer_jwt")
        .and_then(|v| v.as_str().map(str::to_owned)))
}

/// The stored (public) configuration as JSON.
pub fn public_config(m: &AuthMethod) -> ApiResult<Value> {
    serde_json::from_str(&m.config).map_err(ApiError::internal)
}

/// A method's verifier.
#[derive(Debug)]
pub enum Verifier {
    /// JWT/OIDC.
    Jwt(JwtVerifier),
    /// Kubernetes.
    Kubernetes(KubernetesVerifier),
}

/// What a login proved.
#[derive(Debug)]
pub enum Proven {
    /// A verified JWT.
    Jwt(VerifiedIdentity),
    /// A reviewed service account.
    Kubernetes(KubernetesIdentity),
}

/// A login role's bounds, parsed from its stored definition.
#[derive(Debug)]
pub enum RoleBounds {
    /// JWT bounds.
    Jwt(JwtRoleConfig),
    /// Kubernetes bounds.
    Kubernetes(KubernetesRoleConfig),
}

impl RoleBounds {
    /// Parses a definition (API input or stored) for a method kind; 400 naming the field.
    pub fn parse(kind: MethodKind, definition: Value) -> ApiResult<Self> {
        let e = |e: serde_json::Error| ApiError::bad_request(format!("definition: {e}"));
        Ok(match kind {
            MethodKind::Jwt => RoleBounds::Jwt(serde_json::from_value(definition).map_err(e)?),
            MethodKind::Kubernetes => {
                RoleBounds::Kubernetes(serde_json::from_value(definition).map_err(e)?)
            }
        })
    }

    /// The normalised definition to store.
    pub fn to_json(&self) -> ApiResult<String> {
        match self {
            RoleBounds::Jwt(r) => serde_json::to_string(r),
            RoleBounds::Kubernetes(r) => serde_json::to_string(r),
        }
        .map_err(ApiError::internal)
    }
}

impl Verifier {
    /// Builds the verifier of a stored method.
    fn build(m: &AuthMethod, keyring: &Keyring, cfg: &MachineAuthConfig) -> ApiResult<Self> {
        let gate = UpstreamGate::new(cfg.upstream_concurrency, cfg.upstream_wait);
        let corrupt = |e: String| ApiError::internal(format!("stored auth method: {e}"));
        Ok(match MethodKind::of(m)? {
            MethodKind::Jwt => {
                let c: JwtMethodConfig =
                    serde_json::from_str(&m.config).map_err(|e| corrupt(e.to_string()))?;
                Verifier::Jwt(
                    JwtVerifier::new(c, gate)
                        .map_err(|e| corrupt(e.to_string()))?
                        .max_jwt_bytes(cfg.max_jwt_bytes),
                )
            }
            MethodKind::Kubernetes => {
                let mut v = public_config(m)?;
                if let Value::Object(map) = &mut v {
                    map.extend(open_secrets(keyring, m)?);
                }
                let c: KubernetesMethodConfig =
                    serde_json::from_value(v).map_err(|e| corrupt(e.to_string()))?;
                Verifier::Kubernetes(
                    KubernetesVerifier::new(c, gate)
                        .map_err(|e| corrupt(e.to_string()))?
                        .max_jwt_bytes(cfg.max_jwt_bytes),
                )
            }
        })
    }

    /// Runs the method's pipeline for `jwt` against the role's bounds.
    pub async fn verify(
        &self,
        jwt: &str,
        bounds: &RoleBounds,
        ctx: &LoginContext<'_>,
    ) -> Result<Proven, Refusal> {
        match (self, bounds) {
            (Verifier::Jwt(v), RoleBounds::Jwt(r)) => v.verify(jwt, r, ctx).await.map(Proven::Jwt),
            (Verifier::Kubernetes(v), RoleBounds::Kubernetes(r)) => {
                v.verify(jwt, r, ctx).await.map(Proven::Kubernetes)
            }
            _ => Err(Refusal::upstream(
                "upstream: the login role does not fit its method's type",
            )),
        }
    }

    /// For a JWT method with remote keys: fetches them now (enable/update), 400 on failure.
    pub async fn check_upstream(&self) -> ApiResult<()> {
        if let Verifier::Jwt(v) = self {
            let n = v.check_upstream().await.map_err(|r| {
                ApiError::bad_request(format!("config: the key source failed: {}", r.message))
            })?;
            if n == 0 {
                return Err(ApiError::bad_request(
                    "config: the key source has no usable key",
                ));
            }
        }
        Ok(())
    }
}

/// The verifiers of the methods in use, keyed by (method id, `updated_at`): an update
/// builds a fresh verifier (new keys, new bounds), the old one idles out.
pub struct MachineAuth {
    config: MachineAuthConfig,
    verifiers: moka::sync::Cache<(String, i64), Arc<Verifier>>,
}

impl std::fmt::Debug for MachineAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MachineAuth")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl MachineAuth {
    /// With the server's bounds.
    pub fn new(config: MachineAuthConfig) -> Self {
        Self {
            config,
            verifiers: moka::sync::Cache::builder()
                .max_capacity(1_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        }
    }

    /// A verifier for `m` that is not cached (enable/update checks before storing).
    pub fn fresh(&self, m: &AuthMethod, keyring: &Keyring) -> ApiResult<Arc<Verifier>> {
        Ok(Arc::new(Verifier::build(m, keyring, &self.config)?))
    }

    /// The cached verifier of `m`, built on first use.
    pub fn verifier(&self, m: &AuthMethod, keyring: &Keyring) -> ApiResult<Arc<Verifier>> {
        let key = (m.id.clone(), m.updated_at);
        if let Some(v) = self.verifiers.get(&key) {
            return Ok(v);
        }
        let v = self.fresh(m, keyring)?;
        self.verifiers.insert(key, v.clone());
        Ok(v)
    }

    /// Keeps a checked verifier for the method version just stored (its keys are warm).
    pub fn remember(&self, m: &AuthMethod, v: Arc<Verifier>) {
        self.verifiers.insert((m.id.clone(), m.updated_at), v);
    }
}
