//! The Kubernetes login pipeline of one method: size → unverified service-account claims →
//! bound names and namespaces (403, no call) → `exp` (401, no call) → audience (401, no call)
//! → upstream slot → TokenReview → username and uid equal to the token's service account.

use std::time::SystemTime;

use url::Url;

use super::claims::{ServiceAccountClaims, service_account_claims};
use super::config::{KubernetesMethodConfig, KubernetesRoleConfig};
use super::review::{self, Reviewer};
use crate::context::LoginContext;
use crate::error::{Check, ConfigError, Refusal, shown};
use crate::fetch::FetchClient;
use crate::jwt::token::MAX_JWT_BYTES;
use crate::upstream::UpstreamGate;

/// What a token *claims* about its service account, before the API server has reviewed it:
/// nothing in it is proven. Only [`KubernetesVerifier::verify`] yields an identity
/// ([`KubernetesIdentity`]).
#[derive(Debug, Clone, PartialEq)]
pub struct UnverifiedServiceAccount(ServiceAccountClaims);

impl UnverifiedServiceAccount {
    /// The unverified claims (for messages and logs, never for decisions).
    pub fn unverified_claims(&self) -> &ServiceAccountClaims {
        &self.0
    }
}

/// A service account the API server authenticated.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct KubernetesIdentity {
    /// `system:serviceaccount:NS:NAME`, as the API server named it.
    pub username: String,
    /// Namespace.
    pub namespace: String,
    /// Service-account name.
    pub service_account: String,
    /// Service-account uid (from the API server, else the token).
    pub uid: Option<String>,
    /// Pod name, when the token is bound to a pod.
    pub pod: Option<String>,
    /// Audiences the API server granted.
    pub audiences: Vec<String>,
    /// The token's `exp` (legacy tokens: none).
    pub expires_at: Option<SystemTime>,
    /// Whether it was a legacy token.
    pub legacy: bool,
}

/// The verifier of one Kubernetes method.
#[derive(Debug)]
pub struct KubernetesVerifier {
    config: KubernetesMethodConfig,
    client: FetchClient,
    url: Url,
    gate: UpstreamGate,
    max_jwt_bytes: usize,
}

impl KubernetesVerifier {
    /// A verifier for `config`, its TokenReviews bounded by `gate`.
    pub fn new(config: KubernetesMethodConfig, gate: UpstreamGate) -> Result<Self, ConfigError> {
        let client = FetchClient::builder()
            .timeout(config.timeout)
            .ca_pem(config.kubernetes_ca_cert.as_deref())
            .build()
            .map_err(|e| ConfigError::new("config", e.to_string()))?;
        Self::with_client(config, client, gate)
    }

    /// A verifier with an explicit client (tests use sub-second timeouts).
    pub fn with_client(
        config: KubernetesMethodConfig,
        client: FetchClient,
        gate: UpstreamGate,
    ) -> Result<Self, ConfigError> {
        let url = config.review_url()?;
        Ok(Self {
            config,
            client,
            url,
            gate,
            max_jwt_bytes: MAX_JWT_BYTES,
        })
    }

    /// Sets the largest JWT accepted.
    pub fn max_jwt_bytes(mut self, n: usize) -> Self {
        self.max_jwt_bytes = n;
        self
    }

    /// The method's configuration.
    pub fn config(&self) -> &KubernetesMethodConfig {
        &self.config
    }

    /// The checks that need no network call, on the token's *unverified* claims: bound
    /// namespace and name (403), `exp` (401) and audience (401), to spare the API server
    /// calls for honest mistakes (wrong role, expired or mis-targeted token).
    ///
    /// The early 403 answers before anything is proven, so a forged, unsigned token learns
    /// whether a namespace/name pair is bound to the role. That is accepted: it reveals only
    /// role bindings, and only to someone who can already reach the login route and name
    /// the role; it grants nothing, since every success still needs the TokenReview (and
    /// the username/uid match). The result is wrapped as [`UnverifiedServiceAccount`] so it
    /// cannot be mistaken for an identity.
    pub fn precheck(
        &self,
        jwt: &str,
        role: &KubernetesRoleConfig,
        ctx: &LoginContext<'_>,
    ) -> Result<UnverifiedServiceAccount, Refusal> {
        let sa = service_account_claims(jwt, self.max_jwt_bytes, self.config.allow_legacy_tokens)?;
        let who = format!("{}/{}", shown(&sa.namespace, 64), shown(&sa.name, 64));
        if !role.namespaces.contains(&sa.namespace) {
            return Err(Refusal::forbidden(
                Check::SaNamespace,
                format!(
                    "service account `{who}`: namespace is not bound by role `{}`",
                    ctx.role_name
                ),
            ));
        }
        if !role.names.contains(&sa.name) {
            return Err(Refusal::forbidden(
                Check::SaName,
                format!(
                    "service account `{who}`: name is not bound by role `{}`",
                    ctx.role_name
                ),
            ));
        }
        if let Some(exp) = sa.exp
            && ctx.now_secs() >= exp
        {
            return Err(Refusal::unauthorized(
                Check::Exp,
                format!(
                    "exp: expired at {}",
                    arcan_util::rfc3339((exp * 1000.0) as i64)
                ),
            ));
        }
        if let Some(aud) = self.audience(role)
            && !sa.audiences.iter().any(|a| a == aud)
        {
            return Err(Refusal::unauthorized(
                Check::Aud,
                format!("aud: the token is not for audience `{}`", shown(aud, 128)),
            ));
        }
        Ok(UnverifiedServiceAccount(sa))
    }

    fn audience<'a>(&'a self, role: &'a KubernetesRoleConfig) -> Option<&'a str> {
        role.audience.as_deref().or(self.config.audience.as_deref())
    }

    /// Runs the pipeline for `jwt` against `role`.
    pub async fn verify(
        &self,
        jwt: &str,
        role: &KubernetesRoleConfig,
        ctx: &LoginContext<'_>,
    ) -> Result<KubernetesIdentity, Refusal> {
        if self.config.check_role(role).is_err() {
            return Err(Refusal::upstream(format!(
                "upstream: role `{}` sets an audience but the method has no token_reviewer_jwt",
                ctx.role_name
            )));
        }
        let sa = self.precheck(jwt, role, ctx)?.0;
        let audiences: Option<Vec<String>> = self.audience(role).map(|a| vec![a.to_owned()]);
        let (bearer, reviewer) = match &self.config.token_reviewer_jwt {
            Some(s) => (s.expose(), Reviewer::Configured),
            None => (jwt, Reviewer::Caller),
        };
        let _slot = self.gate.acquire().await?;
        let user = review::review(
            &self.client,
            &self.url,
            bearer,
            reviewer,
            jwt,
            audiences.as_deref(),
        )
        .await?;
        let expected = format!("system:serviceaccount:{}:{}", sa.namespace, sa.name);
        if user.username != expected {
            return Err(Refusal::forbidden(
                Check::Username,
                format!(
                    "tokenreview: user `{}` is not the token's service account `{}/{}`",
                    shown(&user.username, 128),
                    shown(&sa.namespace, 64),
                    shown(&sa.name, 64)
                ),
            ));
        }
        if let (Some(a), Some(b)) = (&user.uid, &sa.uid)
            && a != b
        {
            return Err(Refusal::forbidden(
                Check::Username,
                "tokenreview: the user's uid is not the token's service-account uid",
            ));
        }
        Ok(KubernetesIdentity {
            username: user.username,
            namespace: sa.namespace,
            service_account: sa.name,
            uid: user.uid.or(sa.uid),
            pod: sa.pod,
            audiences: user.audiences,
            expires_at: sa.exp.and_then(crate::jwt::claims::secs_to_time),
            legacy: sa.legacy,
        })
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
