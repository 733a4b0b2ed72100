//! Verification pipelines for machine-identity login: JWT/OIDC tokens (GitHub Actions, GitLab
//! CI, any OIDC issuer) and Kubernetes service-account tokens (TokenReview).
//!
//! This crate decides whether a presented token proves an identity that a login role accepts,
//! and answers either a verified identity or a [`Refusal`] naming the failed [`Check`] and its
//! [`Class`] (400/401/403/502/503 — never 500). It knows nothing of Arcan's store, server,
//! engines or config: the server keeps methods and roles, calls a verifier, mints the token
//! and writes the audit event.
//!
//! # JWT pipeline ([`jwt::JwtVerifier::verify`]; the first failure wins)
//! size → three base64url segments → header parsed by us → `alg` in the method's allowlist →
//! `crit` refused → key by `kid` (JWKS cache rules) → signature → `exp` (required), `nbf`,
//! `iat`, `max_age` with the clock-skew leeway → `iss` → audience rule → `sub` →
//! `bound_claims` → `bound_cidrs` → `claim_mappings`.
//!
//! # Kubernetes pipeline ([`kubernetes::KubernetesVerifier::verify`])
//! size → unverified service-account claims (projected; legacy only when allowed) → bound
//! names and namespaces (403 before any network call) → `exp` → audience → upstream slot →
//! TokenReview → authenticated, audiences, username and uid.
//!
//! # Attack-surface choices
//! - **jsonwebtoken checks the signature only** (`validate_exp/nbf/aud` off, no required
//!   claims). Every claim is checked here, on the one parsed claims object, with one leeway and
//!   messages that name the check; jsonwebtoken 11 checks neither `iat` nor `crit` and checks
//!   `iss`/`aud`/`sub` only when present, which is not the rule we want.
//! - **Keys never come from the token.** `jku`, `x5u`, `jwk` and `x5c` headers are ignored;
//!   keys come from the configured HTTPS origin (pinned CA when set) or static PEMs. A failed
//!   or key-less fetch never replaces a good key set; unknown `kid`s trigger at most one refetch
//!   per interval.
//! - **HMAC and `none` are unrepresentable.** [`jwt::JwtAlg`] has no such variant, so neither
//!   can be configured, and `oct` JWKs are skipped, never made into keys: a public key can never
//!   serve as an HMAC secret. Each key is used only with algorithms of its own family (and its
//!   JWK `alg`).
//! - **Upstreams are fenced** ([`fetch`]): https only, no redirects, no proxy, bounded time and
//!   body, no link-local/metadata/unspecified addresses; error messages never echo an upstream
//!   body, URL or the token.
//!
//! jsonwebtoken needs a process-wide crypto provider: [`install_crypto_provider`] installs the
//! RustCrypto one (idempotent; the verifiers call it too).

pub mod context;
pub mod duration;
pub mod error;
pub mod fetch;
pub mod globs;
pub mod ip;
pub mod jwt;
pub mod kubernetes;
pub mod upstream;

#[cfg(test)]
mod testkeys;
#[cfg(test)]
mod testserver;

use std::sync::OnceLock;

pub use context::LoginContext;
pub use error::{Check, Class, ConfigError, Refusal};
pub use upstream::UpstreamGate;

/// Installs jsonwebtoken's RustCrypto provider for the process, once. Without a provider (or
/// with two crypto features unified into the build) the first verification would panic.
pub fn install_crypto_provider() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        // `Err` means some other code installed one first: that provider stays.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    });
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::DecodingKey;

    /// A fixed Ed25519 token (RFC 8037 A.1 key), verified after installing the provider: the
    /// provider is in place and the jsonwebtoken build verifies.
    #[test]
    fn a_fixed_token_verifies_after_install() {
        super::install_crypto_provider();
        super::install_crypto_provider();
        // RFC 8037 appendix A.4: the JWS "Example of Ed25519 Signing", payload "Example of Ed25519 signing".
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let token = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
        let key = DecodingKey::from_ed_components(x).expect("key");
        let msg = token.rsplit_once('.').expect("dot").0;
        let sig = token.rsplit('.').next().expect("sig");
        assert!(
            jsonwebtoken::crypto::verify(sig, msg.as_bytes(), &key, jsonwebtoken::Algorithm::EdDSA)
                .expect("verify")
        );
        assert!(
            !jsonwebtoken::crypto::verify(sig, b"tampered", &key, jsonwebtoken::Algorithm::EdDSA)
                .expect("verify")
        );
    }
}
