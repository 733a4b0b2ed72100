//! The first steps of every login, before any key or network: size, three base64url
//! segments, a JOSE header parsed by us, the `alg` allowlist, `crit` refused, `kid` read.
//! `jku`, `x5u`, `jwk` and `x5c` are ignored: keys never come from the token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::alg::JwtAlg;
use super::keys::MAX_KID;
use crate::error::{Check, Refusal, shown};

/// Default largest JWT accepted (bytes).
pub const MAX_JWT_BYTES: usize = 16 * 1024;
/// Largest decoded JOSE header.
pub const MAX_HEADER_BYTES: usize = 4 * 1024;

/// A compact JWS split and its header read (nothing verified).
#[derive(Debug, Clone)]
pub struct Compact<'a> {
    /// The whole token.
    pub token: &'a str,
    /// The header's `alg`, one of the allowed ones.
    pub alg: JwtAlg,
    /// The header's `kid`.
    pub kid: Option<String>,
    /// The decoded payload (claims) bytes.
    pub payload: Vec<u8>,
}

/// A list of algorithms for messages: `RS256, ES256`.
pub fn alg_list(algs: &[JwtAlg]) -> String {
    algs.iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn segment(s: &str) -> Result<Vec<u8>, Refusal> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| Refusal::bad_request(Check::JwtFormat, "jwt: not three base64url segments"))
}

/// Size, format, header, `alg`, `crit`, `kid` — in that order.
pub fn parse<'a>(
    token: &'a str,
    max_bytes: usize,
    allowed: &[JwtAlg],
) -> Result<Compact<'a>, Refusal> {
    if token.len() > max_bytes {
        return Err(Refusal::bad_request(
            Check::JwtSize,
            format!("jwt: larger than {max_bytes} bytes"),
        ));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [h, p, s] = parts.as_slice() else {
        return Err(Refusal::bad_request(
            Check::JwtFormat,
            "jwt: not three base64url segments",
        ));
    };
    if h.is_empty() || p.is_empty() {
        return Err(Refusal::bad_request(
            Check::JwtFormat,
            "jwt: not three base64url segments",
        ));
    }
    let header_bytes = segment(h)?;
    let payload = segment(p)?;
    segment(s)?;
    if header_bytes.len() > MAX_HEADER_BYTES {
        return Err(Refusal::bad_request(
            Check::Header,
            format!("jwt: header larger than {MAX_HEADER_BYTES} bytes"),
        ));
    }
    let header: Map<String, Value> = match serde_json::from_slice(&header_bytes) {
        Ok(Value::Object(m)) => m,
        _ => {
            return Err(Refusal::bad_request(
                Check::Header,
                "jwt: header is not a JSON object",
            ));
        }
    };
    let alg = match header.get("alg") {
        Some(Value::String(a)) => a,
        Some(_) | None => {
            return Err(Refusal::bad_request(
                Check::Header,
                "jwt: header has no `alg` string",
            ));
        }
    };
    let alg = match alg.parse::<JwtAlg>() {
        Ok(a) if allowed.contains(&a) => a,
        _ => {
            return Err(Refusal::unauthorized(
                Check::Alg,
                format!(
                    "alg: `{}` is not accepted (allowed: {})",
                    shown(alg, 32),
                    alg_list(allowed)
                ),
            ));
        }
    };
    if header.contains_key("crit") {
        return Err(Refusal::unauthorized(
            Check::Crit,
            "crit: critical header parameters are not supported",
        ));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) if k.len() <= MAX_KID => Some(k.clone()),
        Some(_) => {
            return Err(Refusal::bad_request(
                Check::Header,
                format!("jwt: header `kid` is not a string of at most {MAX_KID} bytes"),
            ));
        }
    };
    // jsonwebtoken parses the header again for the signature check; refuse here what it
    // would refuse there, so the failure is named as a header problem.
    if jsonwebtoken::decode_header(token).is_err() {
        return Err(Refusal::bad_request(
            Check::Header,
            "jwt: header fields are malformed",
        ));
    }
    Ok(Compact {
        token,
        alg,
        kid,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::Class;
    use crate::testkeys::{TestKey, b64url, raw_token};

    const ALL: &[JwtAlg] = &JwtAlg::ALL;

    fn refused(t: &str) -> Refusal {
        parse(t, MAX_JWT_BYTES, ALL).expect_err(t)
    }

    #[test]
    fn a_good_token_parses() {
        let k = TestKey::es256("k1");
        let t = k.sign(&json!({"sub": "x"}));
        let c = parse(&t, MAX_JWT_BYTES, ALL).expect("parsed");
        assert_eq!((c.alg, c.kid.as_deref()), (JwtAlg::ES256, Some("k1")));
        assert_eq!(
            serde_json::from_slice::<Value>(&c.payload).expect("json"),
            json!({"sub": "x"})
        );
    }

    #[test]
    fn size_and_format_are_400() {
        let big = "a".repeat(MAX_JWT_BYTES + 1);
        let r = refused(&big);
        assert_eq!((r.check, r.class), (Check::JwtSize, Class::BadRequest));
        assert_eq!(r.message, "jwt: larger than 16384 bytes");
        for t in [
            "a.b",
            "a.b.c.d",
            ".e30.",
            "e30..x",
            "e30.e30.a+b",
            "e30=.e30.x",
        ] {
            let r = refused(t);
            assert_eq!(
                (r.check, r.class),
                (Check::JwtFormat, Class::BadRequest),
                "{t}"
            );
        }
        let arr = format!("{}.{}.", b64url(b"[1]"), b64url(b"{}"));
        assert_eq!(refused(&arr).message, "jwt: header is not a JSON object");
        let noalg = format!("{}.{}.", b64url(b"{\"typ\":\"JWT\"}"), b64url(b"{}"));
        assert_eq!(refused(&noalg).check, Check::Header);
        let big_header = raw_token(
            &json!({"alg": "RS256", "x": "y".repeat(5000)}),
            &json!({}),
            b"s",
        );
        assert_eq!(refused(&big_header).check, Check::Header);
    }

    #[test]
    fn none_hmac_and_unlisted_algs_are_401() {
        let none = format!("{}.{}.", b64url(br#"{"alg":"none"}"#), b64url(b"{}"));
        let r = refused(&none);
        assert_eq!((r.check, r.class), (Check::Alg, Class::Unauthorized));
        assert!(
            r.message
                .starts_with("alg: `none` is not accepted (allowed: RS256"),
            "{}",
            r.message
        );
        let hs = raw_token(&json!({"alg": "HS256"}), &json!({}), b"mac");
        assert_eq!(refused(&hs).check, Check::Alg);
        let es = TestKey::es256("k").sign(&json!({}));
        let r = parse(&es, MAX_JWT_BYTES, &[JwtAlg::RS256]).expect_err("not allowed");
        assert_eq!(r.message, "alg: `ES256` is not accepted (allowed: RS256)");
    }

    #[test]
    fn crit_is_refused_and_key_headers_are_ignored() {
        let k = TestKey::es256("k1");
        let crit = k.sign_with(
            &json!({"alg": "ES256", "kid": "k1", "crit": ["exp"], "exp": 1}),
            &json!({}),
        );
        let r = refused(&crit);
        assert_eq!((r.check, r.class), (Check::Crit, Class::Unauthorized));
        let other = TestKey::rsa("evil");
        let jku = k.sign_with(
            &json!({"alg": "ES256", "kid": "k1", "jku": "https://evil.example/jwks",
                "x5u": "https://evil.example/cert", "jwk": other.jwk}),
            &json!({}),
        );
        let c = parse(&jku, MAX_JWT_BYTES, ALL).expect("parsed, key headers ignored");
        assert_eq!(c.kid.as_deref(), Some("k1"));
        let badkid = raw_token(&json!({"alg": "ES256", "kid": 5}), &json!({}), b"s");
        assert_eq!(refused(&badkid).check, Check::Header);
    }
}
