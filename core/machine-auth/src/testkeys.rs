//! Signing keys for the unit tests (not shipped): RSA-2048 from `rsa` (generated once per
//! test binary), ES256/ES384/Ed25519 from rcgen (ring) as PKCS#8, each with its public JWK
//! and SPKI PEM.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

use crate::jwt::alg::JwtAlg;

/// A test signing key.
pub struct TestKey {
    pub alg: JwtAlg,
    pub kid: String,
    pub enc: EncodingKey,
    /// The public JWK (with `kid`, `alg`, `use`).
    pub jwk: Value,
    /// SPKI `PUBLIC KEY` PEM.
    pub spki_pem: String,
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn rsa_key(bits: usize) -> rsa::RsaPrivateKey {
    rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits).expect("rsa keygen")
}

static RSA_2048: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();

impl TestKey {
    fn from_rsa(k: &rsa::RsaPrivateKey, alg: JwtAlg, kid: &str) -> Self {
        let pem = k.to_pkcs1_pem(LineEnding::LF).expect("pem");
        let enc = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("enc");
        let public = k.to_public_key();
        let jwk = json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": alg.as_str(),
            "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be())});
        let spki_pem = public.to_public_key_pem(LineEnding::LF).expect("spki");
        Self {
            alg,
            kid: kid.into(),
            enc,
            jwk,
            spki_pem,
        }
    }

    /// RSA-2048 (the same key for every call in this test binary).
    pub fn rsa(kid: &str) -> Self {
        Self::from_rsa(RSA_2048.get_or_init(|| rsa_key(2048)), JwtAlg::RS256, kid)
    }

    /// RSA-2048 used with PS256.
    pub fn ps256(kid: &str) -> Self {
        Self::from_rsa(RSA_2048.get_or_init(|| rsa_key(2048)), JwtAlg::PS256, kid)
    }

    /// A 1024-bit RSA key (too small to be accepted).
    pub fn rsa_1024(kid: &str) -> Self {
        Self::from_rsa(&rsa_key(1024), JwtAlg::RS256, kid)
    }

    fn from_rcgen(alg: JwtAlg, kid: &str) -> Self {
        let rc_alg = match alg {
            JwtAlg::ES256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            JwtAlg::ES384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            _ => &rcgen::PKCS_ED25519,
        };
        let kp = rcgen::KeyPair::generate_for(rc_alg).expect("keygen");
        let pkcs8 = kp.serialize_pem();
        let raw = kp.public_key_raw().to_vec();
        let (enc, jwk) = match alg {
            JwtAlg::EdDSA => (
                EncodingKey::from_ed_pem(pkcs8.as_bytes()).expect("ed"),
                json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "x": b64(&raw)}),
            ),
            _ => {
                let size = (raw.len() - 1) / 2;
                let crv = if size == 32 { "P-256" } else { "P-384" };
                (
                    EncodingKey::from_ec_pem(pkcs8.as_bytes()).expect("ec"),
                    json!({"kty": "EC", "crv": crv, "kid": kid, "alg": alg.as_str(), "use": "sig",
                        "x": b64(&raw[1..1 + size]), "y": b64(&raw[1 + size..])}),
                )
            }
        };
        Self {
            alg,
            kid: kid.into(),
            enc,
            jwk,
            spki_pem: kp.public_key_pem(),
        }
    }

    /// A fresh P-256 key.
    pub fn es256(kid: &str) -> Self {
        Self::from_rcgen(JwtAlg::ES256, kid)
    }

    /// A fresh P-384 key.
    pub fn es384(kid: &str) -> Self {
        Self::from_rcgen(JwtAlg::ES384, kid)
    }

    /// A fresh Ed25519 key.
    pub fn ed25519(kid: &str) -> Self {
        Self::from_rcgen(JwtAlg::EdDSA, kid)
    }

    /// The header this key signs with by default.
    pub fn header(&self) -> Value {
        json!({"alg": self.alg.as_str(), "typ": "JWT", "kid": self.kid})
    }

    /// Signs `claims` under `header` as given (any fields, any `alg` string).
    pub fn sign_with(&self, header: &Value, claims: &Value) -> String {
        let msg = format!(
            "{}.{}",
            b64(&serde_json::to_vec(header).expect("header")),
            b64(&serde_json::to_vec(claims).expect("claims"))
        );
        let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), &self.enc, self.alg.to_jsonwebtoken())
            .expect("sign");
        format!("{msg}.{sig}")
    }

    /// Signs `claims` under the default header.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(&self.header(), claims)
    }
}

/// A compact token of arbitrary segments (for malformed-token cases).
pub fn raw_token(header: &Value, claims: &Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(&serde_json::to_vec(header).expect("h")),
        b64(&serde_json::to_vec(claims).expect("c")),
        b64(sig)
    )
}

/// Base64url without padding.
pub fn b64url(b: &[u8]) -> String {
    b64(b)
}
