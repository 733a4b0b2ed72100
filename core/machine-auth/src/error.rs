//! Why a login is refused: which check failed, how the server classifies it, and a message
//! that names the check.
//!
//! There is deliberately no "internal error" class: every way a verification can end is one
//! of the five classes below, so a login never answers 500. Messages are built from fixed
//! phrases and bounded, sanitised token values; they never carry the JWT, an upstream's
//! response body or an upstream URL.

use std::fmt;

/// The check that refused a login. [`Check::as_str`] is the name audit events carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Check {
    /// The JWT is larger than the limit.
    JwtSize,
    /// Not three base64url segments.
    JwtFormat,
    /// The JOSE header is not a JSON object of the expected shape.
    Header,
    /// The header's `alg` is not allowed by the method.
    Alg,
    /// The header names critical extensions (`crit`).
    Crit,
    /// No acceptable key for the header's `kid` (or, without `kid`, for its algorithm).
    Kid,
    /// The signature does not verify.
    Signature,
    /// The claims segment is not a JSON object of bounded size.
    Claims,
    /// `exp` missing or past.
    Exp,
    /// `nbf` in the future.
    Nbf,
    /// `iat` in the future.
    Iat,
    /// `iat` older than the role's `max_age`.
    MaxAge,
    /// `iss` is not the method's issuer.
    Iss,
    /// The audience rule.
    Aud,
    /// `sub` is not the role's `bound_subject`.
    Sub,
    /// A `bound_claims` entry or a `claim_mappings` value.
    Claim,
    /// The client address is outside the role's `bound_cidrs`.
    Cidr,
    /// Not a (permitted kind of) Kubernetes service-account token.
    ServiceAccount,
    /// The service-account name is not bound by the role.
    SaName,
    /// The service-account namespace is not bound by the role.
    SaNamespace,
    /// The Kubernetes API server did not authenticate the token.
    TokenReview,
    /// The authenticated user is not the token's service account.
    Username,
    /// An upstream (issuer, JWKS, Kubernetes API server) failed or no slot was free.
    Upstream,
}

impl Check {
    /// The stable name of the check (audit `check` field).
    pub fn as_str(self) -> &'static str {
        match self {
            Check::JwtSize => "jwt_size",
            Check::JwtFormat => "jwt_format",
            Check::Header => "header",
            Check::Alg => "alg",
            Check::Crit => "crit",
            Check::Kid => "kid",
            Check::Signature => "signature",
            Check::Claims => "claims",
            Check::Exp => "exp",
            Check::Nbf => "nbf",
            Check::Iat => "iat",
            Check::MaxAge => "max_age",
            Check::Iss => "iss",
            Check::Aud => "aud",
            Check::Sub => "sub",
            Check::Claim => "claim",
            Check::Cidr => "cidr",
            Check::ServiceAccount => "service_account",
            Check::SaName => "sa_name",
            Check::SaNamespace => "sa_namespace",
            Check::TokenReview => "tokenreview",
            Check::Username => "username",
            Check::Upstream => "upstream",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the server answers a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// 400: the request is malformed (not a JWT, too large).
    BadRequest,
    /// 401: the token proves no identity to us.
    Unauthorized,
    /// 403: the identity is proven, the role refuses it.
    Forbidden,
    /// 502: an upstream failed; the message says how (status, timeout, TLS), never its body.
    Upstream,
    /// 503: no upstream slot was free in time.
    Busy,
}

impl Class {
    /// The HTTP status the server maps this class to.
    pub fn http_status(self) -> u16 {
        match self {
            Class::BadRequest => 400,
            Class::Unauthorized => 401,
            Class::Forbidden => 403,
            Class::Upstream => 502,
            Class::Busy => 503,
        }
    }
}

/// A refused login.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct Refusal {
    /// The check that failed.
    pub check: Check,
    /// How to answer.
    pub class: Class,
    /// Human-readable, starts with the check's subject (`exp: expired at …`).
    pub message: String,
}

impl Refusal {
    /// A refusal.
    pub fn new(check: Check, class: Class, message: impl Into<String>) -> Self {
        Self {
            check,
            class,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(check: Check, message: impl Into<String>) -> Self {
        Self::new(check, Class::BadRequest, message)
    }

    /// 401.
    pub fn unauthorized(check: Check, message: impl Into<String>) -> Self {
        Self::new(check, Class::Unauthorized, message)
    }

    /// 403.
    pub fn forbidden(check: Check, message: impl Into<String>) -> Self {
        Self::new(check, Class::Forbidden, message)
    }

    /// 502.
    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(Check::Upstream, Class::Upstream, message)
    }
}

/// A value taken from a token or an upstream, fit for a message: at most `max` characters,
/// control characters replaced, an ellipsis when cut.
pub fn shown(value: &str, max: usize) -> String {
    let mut out: String = value
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if value.chars().count() > max {
        out.push('…');
    }
    out
}

/// A configuration that cannot be used (the server answers 400 with the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
#[non_exhaustive]
pub struct ConfigError {
    /// The offending field (`jwks_url`, `bound_claims./ref`).
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl ConfigError {
    /// A configuration error for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_map_to_client_or_gateway_statuses_only() {
        for c in [
            Class::BadRequest,
            Class::Unauthorized,
            Class::Forbidden,
            Class::Upstream,
            Class::Busy,
        ] {
            let s = c.http_status();
            assert!(s != 500 && (400..=503).contains(&s), "{c:?} → {s}");
        }
        assert_eq!(Class::Upstream.http_status(), 502);
        assert_eq!(Class::Busy.http_status(), 503);
    }

    #[test]
    fn shown_cuts_and_sanitises() {
        assert_eq!(shown("abc", 5), "abc");
        assert_eq!(shown("abcdef", 3), "abc…");
        assert_eq!(shown("a\nb", 5), "a?b");
    }

    #[test]
    fn check_names_are_distinct() {
        let all = [
            Check::JwtSize,
            Check::JwtFormat,
            Check::Header,
            Check::Alg,
            Check::Crit,
            Check::Kid,
            Check::Signature,
            Check::Claims,
            Check::Exp,
            Check::Nbf,
            Check::Iat,
            Check::MaxAge,
            Check::Iss,
            Check::Aud,
            Check::Sub,
            Check::Claim,
            Check::Cidr,
            Check::ServiceAccount,
            Check::SaName,
            Check::SaNamespace,
            Check::TokenReview,
            Check::Username,
            Check::Upstream,
        ];
        let names: std::collections::BTreeSet<_> = all.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), all.len());
    }
}
