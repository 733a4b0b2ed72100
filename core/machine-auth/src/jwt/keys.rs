//! Which keys are accepted for verification, from a JWKS document or static PEMs.
//!
//! JWKS rules: `use` absent or `sig`; `key_ops`, when present, includes `verify`; RSA with a
//! modulus of 2048–4096 bits that the `rsa` crate accepts as a public key (odd modulus, odd
//! exponent in `3..2^33`, smaller than the modulus; 4096 bits is also its verification
//! limit); EC `crv` P-256 or P-384 with coordinates of the curve's size; OKP `crv` Ed25519
//! with a 32-byte key that is not a small-order (weak) point; `alg`, when present, one we
//! accept and fitting the key. `oct` (HMAC secrets) and anything else are skipped, never
//! turned into keys. Every accepted key is also loaded by the verifier once, so a key that
//! cannot verify never enters a set. Static PEMs are SPKI `PUBLIC KEY` blocks typed by their
//! OID, under the same rules.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use serde_json::Value;

use super::alg::{JwtAlg, KeyKind};
use crate::error::ConfigError;

/// Most keys in one JWKS document.
pub const MAX_JWKS_KEYS: usize = 100;
/// Smallest RSA modulus accepted.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted: the `rsa` crate refuses larger keys when it verifies.
pub const MAX_RSA_BITS: usize = 4096;
/// Longest `kid`.
pub const MAX_KID: usize = 256;

/// One verification key.
#[derive(Clone)]
pub struct VerifyKey {
    /// The key id, if the key has one.
    pub kid: Option<String>,
    /// Which algorithms it can verify.
    pub kind: KeyKind,
    /// The JWK's `alg`, when it names one.
    pub alg: Option<JwtAlg>,
    pub(crate) key: DecodingKey,
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyKey {
    /// Whether the key may verify a token signed with `alg`.
    pub fn fits(&self, alg: JwtAlg) -> bool {
        self.kind == alg.key_kind() && self.alg.is_none_or(|a| a == alg)
    }
}

/// A set of accepted keys.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<VerifyKey>,
    skipped: usize,
}

/// Why a JWKS document gave no key set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// Not a JSON object with a `keys` array.
    #[error("not a JWKS document")]
    NotJwks,
    /// More keys than accepted.
    #[error("more than {MAX_JWKS_KEYS} keys")]
    TooMany,
    /// No key passed the acceptance rules.
    #[error("no usable signing key")]
    NoUsableKeys,
}

fn b64(v: &Value, field: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(v.get(field)?.as_str()?).ok()
}

/// Bits of a big-endian unsigned integer.
fn bit_len(n: &[u8]) -> usize {
    let n = &n[n.iter().take_while(|b| **b == 0).count()..];
    match n.first() {
        None => 0,
        Some(top) => n.len() * 8 - top.leading_zeros() as usize,
    }
}

/// An algorithm of `kind` the verifier can be probed with.
fn probe_alg(kind: KeyKind) -> JwtAlg {
    match kind {
        KeyKind::Rsa => JwtAlg::RS256,
        KeyKind::P256 => JwtAlg::ES256,
        KeyKind::P384 => JwtAlg::ES384,
        KeyKind::Ed25519 => JwtAlg::EdDSA,
    }
}

/// Whether the crypto provider loads `key` as a `kind` key.
fn loads(kind: KeyKind, key: &DecodingKey) -> bool {
    (DEFAULT_PROVIDER.verifier_factory)(&probe_alg(kind).to_jsonwebtoken(), key).is_ok()
}

/// Whether the RSA components form a public key the verifier accepts.
fn rsa_valid(n: &[u8], e: &[u8]) -> bool {
    let bits = bit_len(n);
    (MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits)
        && !e.is_empty()
        && e.len() <= 8
        && rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(n),
            rsa::BigUint::from_bytes_be(e),
        )
        .is_ok()
}

/// Whether `x` is an Ed25519 point that is not of small order.
fn ed25519_valid(x: &[u8]) -> bool {
    let Ok(bytes) = <[u8; 32]>::try_from(x) else {
        return false;
    };
    ed25519_dalek::VerifyingKey::from_bytes(&bytes).is_ok_and(|k| !k.is_weak())
}

/// One JWK, or `None` when the rules skip it.
fn accept_jwk(jwk: &Value) -> Option<VerifyKey> {
    let str_field = |f: &str| jwk.get(f).and_then(Value::as_str);
    if jwk.get("use").is_some() && str_field("use") != Some("sig") {
        return None;
    }
    if let Some(ops) = jwk.get("key_ops") {
        let ops = ops.as_array()?;
        if !ops.iter().any(|o| o.as_str() == Some("verify")) {
            return None;
        }
    }
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(k)) if k.len() <= MAX_KID => Some(k.clone()),
        Some(_) => return None,
    };
    let alg = match jwk.get("alg") {
        None => None,
        Some(Value::String(a)) => Some(a.parse::<JwtAlg>().ok()?),
        Some(_) => return None,
    };
    let (kind, key) = match str_field("kty")? {
        "RSA" => {
            let n = b64(jwk, "n")?;
            let e = b64(jwk, "e")?;
            if !rsa_valid(&n, &e) {
                tracing::warn!(kid = ?kid, "JWKS: skipping an RSA key that cannot verify");
                return None;
            }
            (KeyKind::Rsa, DecodingKey::from_rsa_raw_components(&n, &e))
        }
        "EC" => {
            let (kind, size) = match str_field("crv")? {
                "P-256" => (KeyKind::P256, 32),
                "P-384" => (KeyKind::P384, 48),
                _ => return None,
            };
            let (x, y) = (b64(jwk, "x")?, b64(jwk, "y")?);
            if x.len() != size || y.len() != size {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (kind, DecodingKey::from_ec_der(&point))
        }
        "OKP" => {
            if str_field("crv")? != "Ed25519" {
                return None;
            }
            // Exactly 32 bytes: the verifier slices `[..32]` and would panic on less.
            let x = b64(jwk, "x")?;
            if x.len() != 32 {
                return None;
            }
            if !ed25519_valid(&x) {
                tracing::warn!(kid = ?kid, "JWKS: skipping a weak or invalid Ed25519 key");
                return None;
            }
            (KeyKind::Ed25519, DecodingKey::from_ed_der(&x))
        }
        // `oct` is an HMAC secret: never a verification key here. Others are unknown.
        _ => return None,
    };
    if alg.is_some_and(|a| a.key_kind() != kind) || !loads(kind, &key) {
        return None;
    }
    Some(VerifyKey {
        kid,
        kind,
        alg,
        key,
    })
}

/// The kind and key of one SPKI PEM.
fn accept_pem(pem: &str) -> Result<(KeyKind, DecodingKey), &'static str> {
    let t = pem.trim();
    if !t.starts_with("-----BEGIN PUBLIC KEY-----")
        || !t.ends_with("-----END PUBLIC KEY-----")
        || t.matches("-----BEGIN").count() != 1
    {
        return Err("not one `PUBLIC KEY` PEM block");
    }
    let b = t.as_bytes();
    if let Ok(k) = DecodingKey::from_ed_pem(b) {
        let raw = k.try_get_as_bytes().map_err(|_| "unreadable Ed25519 key")?;
        if raw.len() != 32 {
            return Err("not an Ed25519 key");
        }
        if !ed25519_valid(raw) {
            return Err("weak or invalid Ed25519 key");
        }
        let key = DecodingKey::from_ed_der(raw);
        return loads(KeyKind::Ed25519, &key)
            .then_some((KeyKind::Ed25519, key))
            .ok_or("not an Ed25519 key");
    }
    if let Ok(k) = DecodingKey::from_ec_pem(b) {
        let kind = match k.try_get_as_bytes().map(<[u8]>::len) {
            Ok(65) => KeyKind::P256,
            Ok(97) => KeyKind::P384,
            _ => return Err("EC keys must be P-256 or P-384"),
        };
        return loads(kind, &k)
            .then_some((kind, k))
            .ok_or("EC keys must be P-256 or P-384");
    }
    if let Ok(k) = DecodingKey::from_rsa_pem(b) {
        let der = k.try_get_as_bytes().map_err(|_| "unreadable RSA key")?;
        let (n, e) = (DEFAULT_PROVIDER
            .key_utils
            .rsa_pub_components_from_public_key)(der)
        .map_err(|_| "unreadable RSA key")?;
        let bits = bit_len(&n);
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err("RSA keys must have 2048-4096 bits");
        }
        if !rsa_valid(&n, &e) {
            return Err("not a valid RSA public key");
        }
        return loads(KeyKind::Rsa, &k)
            .then_some((KeyKind::Rsa, k))
            .ok_or("unreadable RSA key");
    }
    Err("not an RSA, EC (P-256/P-384) or Ed25519 public key")
}

impl KeySet {
    /// Parses a JWKS document, skipping keys the rules refuse.
    pub fn from_jwks(body: &[u8]) -> Result<Self, JwksError> {
        let doc: Value = serde_json::from_slice(body).map_err(|_| JwksError::NotJwks)?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NotJwks)?;
        if keys.len() > MAX_JWKS_KEYS {
            return Err(JwksError::TooMany);
        }
        let accepted: Vec<VerifyKey> = keys.iter().filter_map(accept_jwk).collect();
        if accepted.is_empty() {
            return Err(JwksError::NoUsableKeys);
        }
        let skipped = keys.len() - accepted.len();
        if skipped > 0 {
            tracing::info!(skipped, "JWKS keys skipped (unsupported type, use or size)");
        }
        Ok(Self {
            keys: accepted,
            skipped,
        })
    }

    /// Loads static SPKI PEM keys (each must be accepted).
    pub fn from_pems(pems: &[String]) -> Result<Self, ConfigError> {
        let mut keys = Vec::with_capacity(pems.len());
        for (i, pem) in pems.iter().enumerate() {
            let (kind, key) = accept_pem(pem).map_err(|reason| {
                ConfigError::new(format!("jwt_validation_pubkeys[{i}]"), reason)
            })?;
            keys.push(VerifyKey {
                kid: None,
                kind,
                alg: None,
                key,
            });
        }
        Ok(Self { keys, skipped: 0 })
    }

    /// Accepted keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Keys the rules skipped.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Whether any key has this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The keys with this `kid`.
    pub fn with_kid<'a>(&'a self, kid: &'a str) -> impl Iterator<Item = &'a VerifyKey> + 'a {
        self.keys
            .iter()
            .filter(move |k| k.kid.as_deref() == Some(kid))
    }

    /// Every key.
    pub fn iter(&self) -> impl Iterator<Item = &VerifyKey> {
        self.keys.iter()
    }
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
