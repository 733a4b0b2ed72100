//! The signature algorithms a method may allow. HMAC (`HS*`) and `none` are not variants, so
//! they can be neither configured nor accepted: a public key can never be used as an HMAC
//! secret (the classic RS256→HS256 confusion).

use std::fmt;
use std::str::FromStr;

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An asymmetric JWS algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(clippy::upper_case_acronyms)]
pub enum JwtAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

/// The family of key an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA (≥ 2048 bits).
    Rsa,
    /// EC P-256.
    P256,
    /// EC P-384.
    P384,
    /// OKP Ed25519.
    Ed25519,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyKind::Rsa => "RSA",
            KeyKind::P256 => "EC P-256",
            KeyKind::P384 => "EC P-384",
            KeyKind::Ed25519 => "Ed25519",
        })
    }
}

impl JwtAlg {
    /// Every algorithm, the default allowlist (Vault's effective default).
    pub const ALL: [JwtAlg; 9] = [
        JwtAlg::RS256,
        JwtAlg::RS384,
        JwtAlg::RS512,
        JwtAlg::PS256,
        JwtAlg::PS384,
        JwtAlg::PS512,
        JwtAlg::ES256,
        JwtAlg::ES384,
        JwtAlg::EdDSA,
    ];

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlg::RS256 => "RS256",
            JwtAlg::RS384 => "RS384",
            JwtAlg::RS512 => "RS512",
            JwtAlg::PS256 => "PS256",
            JwtAlg::PS384 => "PS384",
            JwtAlg::PS512 => "PS512",
            JwtAlg::ES256 => "ES256",
            JwtAlg::ES384 => "ES384",
            JwtAlg::EdDSA => "EdDSA",
        }
    }

    /// The key kind this algorithm verifies with.
    pub fn key_kind(self) -> KeyKind {
        match self {
            JwtAlg::ES256 => KeyKind::P256,
            JwtAlg::ES384 => KeyKind::P384,
            JwtAlg::EdDSA => KeyKind::Ed25519,
            _ => KeyKind::Rsa,
        }
    }

    /// jsonwebtoken's name for it.
    pub fn to_jsonwebtoken(self) -> Algorithm {
        match self {
            JwtAlg::RS256 => Algorithm::RS256,
            JwtAlg::RS384 => Algorithm::RS384,
            JwtAlg::RS512 => Algorithm::RS512,
            JwtAlg::PS256 => Algorithm::PS256,
            JwtAlg::PS384 => Algorithm::PS384,
            JwtAlg::PS512 => Algorithm::PS512,
            JwtAlg::ES256 => Algorithm::ES256,
            JwtAlg::ES384 => Algorithm::ES384,
            JwtAlg::EdDSA => Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for JwtAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An algorithm name that is not an accepted one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not supported (HMAC and `none` are never accepted; use one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)"
)]
pub struct UnsupportedAlg(pub String);

impl FromStr for JwtAlg {
    type Err = UnsupportedAlg;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JwtAlg::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnsupportedAlg(crate::error::shown(s, 32)))
    }
}

impl Serialize for JwtAlg {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for JwtAlg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_and_none_cannot_be_named() {
        for bad in ["HS256", "HS384", "HS512", "none", "None", "rs256", "ES512"] {
            assert!(bad.parse::<JwtAlg>().is_err(), "{bad}");
            assert!(serde_json::from_str::<JwtAlg>(&format!("\"{bad}\"")).is_err());
        }
        for a in JwtAlg::ALL {
            assert_eq!(a.as_str().parse::<JwtAlg>(), Ok(a));
            assert_eq!(format!("{:?}", a.to_jsonwebtoken()), a.as_str());
        }
    }
}
