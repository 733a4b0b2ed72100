use serde_json::json;

use super::*;
use crate::testkeys::TestKey;

fn one(jwk: Value) -> Result<KeySet, JwksError> {
    KeySet::from_jwks(&serde_json::to_vec(&json!({"keys": [jwk]})).expect("json"))
}

#[test]
fn rsa_ec_and_okp_jwks_are_accepted() {
    for k in [
        TestKey::rsa("r"),
        TestKey::es256("e"),
        TestKey::es384("p"),
        TestKey::ed25519("d"),
    ] {
        let set = one(k.jwk.clone()).expect("accepted");
        assert_eq!(set.len(), 1);
        let key = set.with_kid(&k.kid).next().expect("by kid");
        assert!(key.fits(k.alg), "{:?}", k.alg);
        assert_eq!(key.alg, Some(k.alg));
    }
}

#[test]
fn oct_and_unknown_key_types_are_skipped() {
    let hmac = json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0", "alg": "HS256"});
    assert_eq!(one(hmac.clone()).err(), Some(JwksError::NoUsableKeys));
    assert_eq!(
        one(json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"})).err(),
        Some(JwksError::NoUsableKeys)
    );
    assert_eq!(
        one(json!({"kty": "XYZ", "kid": "x"})).err(),
        Some(JwksError::NoUsableKeys)
    );
    let rsa = TestKey::rsa("r");
    let doc = json!({"keys": [hmac, rsa.jwk]});
    let set = KeySet::from_jwks(&serde_json::to_vec(&doc).expect("json")).expect("set");
    assert_eq!((set.len(), set.skipped()), (1, 1));
    assert!(!set.has_kid("h"));
}

#[test]
fn use_ops_alg_and_sizes_are_enforced() {
    let rsa = TestKey::rsa("r");
    let with = |k: &str, v: Value| {
        let mut j = rsa.jwk.clone();
        j[k] = v;
        one(j)
    };
    assert_eq!(
        with("use", json!("enc")).err(),
        Some(JwksError::NoUsableKeys)
    );
    assert!(with("use", json!("sig")).is_ok());
    assert_eq!(
        with("key_ops", json!(["encrypt"])).err(),
        Some(JwksError::NoUsableKeys)
    );
    assert!(with("key_ops", json!(["verify"])).is_ok());
    assert_eq!(
        with("alg", json!("HS256")).err(),
        Some(JwksError::NoUsableKeys)
    );
    assert_eq!(
        with("alg", json!("ES256")).err(),
        Some(JwksError::NoUsableKeys)
    );
    assert_eq!(
        with("alg", json!("RSA-OAEP")).err(),
        Some(JwksError::NoUsableKeys)
    );
    assert_eq!(with("kid", json!(7)).err(), Some(JwksError::NoUsableKeys));
    assert_eq!(
        one(TestKey::rsa_1024("small").jwk).err(),
        Some(JwksError::NoUsableKeys)
    );
    // EC: wrong curve name, wrong coordinate size, point not on the curve.
    let ec = TestKey::es256("e");
    let mut j = ec.jwk.clone();
    j["crv"] = json!("P-521");
    assert_eq!(one(j).err(), Some(JwksError::NoUsableKeys));
    let mut j = ec.jwk.clone();
    j["crv"] = json!("P-384");
    assert_eq!(one(j).err(), Some(JwksError::NoUsableKeys));
    let mut j = ec.jwk.clone();
    j["y"] = json!(crate::testkeys::b64url(&[7u8; 32]));
    assert_eq!(one(j).err(), Some(JwksError::NoUsableKeys));
    // OKP: short key (would panic in the verifier), other curve.
    let ed = TestKey::ed25519("d");
    let mut j = ed.jwk.clone();
    j["x"] = json!(crate::testkeys::b64url(&[1u8; 16]));
    assert_eq!(one(j).err(), Some(JwksError::NoUsableKeys));
    let mut j = ed.jwk.clone();
    j["crv"] = json!("Ed448");
    assert_eq!(one(j).err(), Some(JwksError::NoUsableKeys));
}

#[test]
fn malformed_and_oversized_documents_are_refused() {
    assert_eq!(
        KeySet::from_jwks(b"not json").err(),
        Some(JwksError::NotJwks)
    );
    assert_eq!(
        KeySet::from_jwks(b"{\"keys\": 1}").err(),
        Some(JwksError::NotJwks)
    );
    assert_eq!(KeySet::from_jwks(b"[]").err(), Some(JwksError::NotJwks));
    let ed = TestKey::ed25519("d");
    let many: Vec<Value> = (0..101).map(|_| ed.jwk.clone()).collect();
    let doc = serde_json::to_vec(&json!({"keys": many})).expect("json");
    assert_eq!(KeySet::from_jwks(&doc).err(), Some(JwksError::TooMany));
}

#[test]
fn static_pems_are_typed_by_oid() {
    let keys = [
        TestKey::rsa("r"),
        TestKey::es256("e"),
        TestKey::es384("p"),
        TestKey::ed25519("d"),
    ];
    let pems: Vec<String> = keys.iter().map(|k| k.spki_pem.clone()).collect();
    let set = KeySet::from_pems(&pems).expect("pems");
    let kinds: Vec<KeyKind> = set.iter().map(|k| k.kind).collect();
    assert_eq!(
        kinds,
        vec![KeyKind::Rsa, KeyKind::P256, KeyKind::P384, KeyKind::Ed25519]
    );
    let small = TestKey::rsa_1024("s").spki_pem;
    let e = KeySet::from_pems(&[small]).expect_err("1024");
    assert!(e.to_string().contains("2048-4096"), "{e}");
    let two = format!("{}{}", pems[0], pems[1]);
    assert!(KeySet::from_pems(&[two]).is_err());
    // A private key is not a public key.
    let private = rcgen::KeyPair::generate().expect("k").serialize_pem();
    assert!(KeySet::from_pems(&[private]).is_err());
}

#[test]
fn rsa_keys_that_cannot_verify_are_skipped() {
    let rsa = TestKey::rsa("r");
    let with = |n: Option<Vec<u8>>, e: &[u8]| {
        let mut j = rsa.jwk.clone();
        if let Some(n) = n {
            j["n"] = json!(crate::testkeys::b64url(&n));
        }
        j["e"] = json!(crate::testkeys::b64url(e));
        one(j)
    };
    assert!(with(None, &[1, 0, 1]).is_ok(), "e = 65537");
    // 4097 and 8192 bits (odd, top bit set): beyond what the verifier accepts.
    for len in [513, 1024] {
        let mut n = vec![0xffu8; len];
        n[0] = if len == 513 { 0x01 } else { 0xff };
        assert_eq!(
            with(Some(n), &[1, 0, 1]).err(),
            Some(JwksError::NoUsableKeys),
            "{len}"
        );
    }
    // Even exponent, e = 1, e = 0.
    for e in [&[1u8, 0, 0][..], &[1], &[0], &[2]] {
        assert_eq!(with(None, e).err(), Some(JwksError::NoUsableKeys), "{e:?}");
    }
    // Even modulus.
    let mut n = vec![0xffu8; 256];
    n[255] = 0xfe;
    assert_eq!(
        with(Some(n), &[1, 0, 1]).err(),
        Some(JwksError::NoUsableKeys)
    );
    // A bad key next to a good one: only the good one is kept.
    let mut bad = rsa.jwk.clone();
    bad["kid"] = json!("bad");
    bad["e"] = json!(crate::testkeys::b64url(&[1]));
    let doc = json!({"keys": [bad, rsa.jwk]});
    let set = KeySet::from_jwks(&serde_json::to_vec(&doc).expect("json")).expect("set");
    assert_eq!((set.len(), set.skipped()), (1, 1));
    assert!(set.has_kid("r") && !set.has_kid("bad"));
}

#[test]
fn weak_ed25519_keys_are_skipped() {
    let ed = TestKey::ed25519("d");
    let mut identity = [0u8; 32];
    identity[0] = 1;
    // The identity and another small-order point (order 2: y = -1).
    let mut order2 = [0xffu8; 32];
    order2[0] = 0xec;
    order2[31] = 0x7f;
    for x in [identity, order2] {
        let mut j = ed.jwk.clone();
        j["x"] = json!(crate::testkeys::b64url(&x));
        assert_eq!(one(j).err(), Some(JwksError::NoUsableKeys), "{x:?}");
        // As a static PEM too: SPKI prefix for Ed25519 + the 32 bytes.
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(&x);
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&der)
        );
        assert!(KeySet::from_pems(&[pem]).is_err());
    }
    assert!(one(ed.jwk.clone()).is_ok());
}
