use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::*;
use crate::error::Class;
use crate::testkeys::{TestKey, b64url, raw_token};

const ISS: &str = "https://token.actions.githubusercontent.com";
const SUB: &str = "repo:acme/api:ref:refs/heads/main";

fn now() -> f64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs_f64()
        .floor()
}

fn static_verifier(keys: &[&TestKey], algs: Option<&[&str]>) -> JwtVerifier {
    let pems: Vec<String> = keys.iter().map(|k| k.spki_pem.clone()).collect();
    let mut cfg = json!({"jwt_validation_pubkeys": pems, "bound_issuer": ISS});
    if let Some(a) = algs {
        cfg["jwt_supported_algs"] = json!(a);
    }
    let cfg: JwtMethodConfig = serde_json::from_value(cfg).expect("config");
    JwtVerifier::new(cfg, UpstreamGate::default()).expect("verifier")
}

fn role() -> JwtRoleConfig {
    serde_json::from_value(json!({
        "bound_audiences": ["https://github.com/acme"],
        "bound_subject": SUB,
        "bound_claims_type": "glob",
        "bound_claims": {"repository": "acme/api", "ref": ["refs/heads/main", "refs/tags/v*"],
            "ref_protected": "true"},
        "claim_mappings": {"repository": "repository", "run_id": "run_id", "/ctx/workflow": "workflow"},
        "max_age": "1h",
        "bound_cidrs": ["10.0.0.0/8", "127.0.0.1/32"],
    }))
    .expect("role")
}

fn claims() -> Value {
    let n = now();
    json!({"iss": ISS, "sub": SUB, "aud": "https://github.com/acme", "repository": "acme/api",
        "ref": "refs/heads/main", "ref_protected": "true", "run_id": 42, "ctx": {"workflow": "deploy"},
        "iat": n - 10.0, "nbf": n - 10.0, "exp": n + 300.0, "jti": "j1"})
}

fn with(mut c: Value, k: &str, v: Value) -> Value {
    c[k] = v;
    c
}

fn without(mut c: Value, k: &str) -> Value {
    c.as_object_mut().expect("obj").remove(k);
    c
}

fn ip() -> Option<IpAddr> {
    Some("10.1.2.3".parse().expect("ip"))
}

async fn check(v: &JwtVerifier, token: &str) -> Result<VerifiedIdentity, Refusal> {
    v.verify(token, &role(), &LoginContext::new("deploy", ip()))
        .await
}

async fn refused(v: &JwtVerifier, token: &str) -> Refusal {
    check(v, token).await.expect_err("refused")
}

#[tokio::test]
async fn a_good_token_yields_the_identity_for_every_key_type() {
    for k in [
        TestKey::rsa("r1"),
        TestKey::ps256("p1"),
        TestKey::es256("e1"),
        TestKey::es384("e2"),
        TestKey::ed25519("d1"),
    ] {
        let v = static_verifier(&[&k], None);
        let id = check(&v, &k.sign(&claims()))
            .await
            .unwrap_or_else(|e| panic!("{:?}: {e:?}", k.alg));
        assert_eq!(id.subject, SUB);
        assert_eq!(id.issuer, ISS);
        assert_eq!(id.audiences, vec!["https://github.com/acme"]);
        assert_eq!(id.alg, k.alg);
        let mapped: Vec<(&str, &str)> = id
            .claims
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(
            mapped,
            vec![
                ("repository", "acme/api"),
                ("run_id", "42"),
                ("workflow", "deploy")
            ]
        );
        assert!(id.expires_at > SystemTime::now());
    }
}

#[tokio::test]
async fn every_claim_check_holds_and_is_violated() {
    let k = TestKey::es256("e1");
    let v = static_verifier(&[&k], None);
    let n = now();
    let cases: Vec<(&str, Value, Check, Class, &str)> = vec![
        (
            "exp missing",
            without(claims(), "exp"),
            Check::Exp,
            Class::Unauthorized,
            "exp: missing",
        ),
        (
            "exp past",
            with(claims(), "exp", json!(n - 120.0)),
            Check::Exp,
            Class::Unauthorized,
            "exp: expired at ",
        ),
        (
            "nbf future",
            with(claims(), "nbf", json!(n + 300.0)),
            Check::Nbf,
            Class::Unauthorized,
            "nbf: not valid before ",
        ),
        (
            "iat future",
            with(claims(), "iat", json!(n + 300.0)),
            Check::Iat,
            Class::Unauthorized,
            "iat: issued in the future",
        ),
        (
            "max_age",
            with(
                with(claims(), "iat", json!(n - 3.0 * 3600.0)),
                "nbf",
                json!(n - 3.0 * 3600.0),
            ),
            Check::MaxAge,
            Class::Unauthorized,
            // The seconds the test takes show in the age ("3h 1s ago"): the prefix only.
            "max_age: issued 3h",
        ),
        (
            "iss",
            with(claims(), "iss", json!("https://gitlab.com")),
            Check::Iss,
            Class::Unauthorized,
            "iss: `https://gitlab.com` is not the method's issuer",
        ),
        (
            "aud other",
            with(claims(), "aud", json!(["sts.amazonaws.com"])),
            Check::Aud,
            Class::Unauthorized,
            "aud: the token's audiences [sts.amazonaws.com] include none bound by role `deploy`",
        ),
        (
            "aud missing",
            without(claims(), "aud"),
            Check::Aud,
            Class::Unauthorized,
            "aud: the token has no audience",
        ),
        (
            "sub",
            with(claims(), "sub", json!("repo:evil/api:ref:refs/heads/main")),
            Check::Sub,
            Class::Forbidden,
            "sub: `repo:evil/api:ref:refs/heads/main` is not bound by role `deploy`",
        ),
        (
            "claim mismatch",
            with(claims(), "ref", json!("refs/heads/dev")),
            Check::Claim,
            Class::Forbidden,
            "claim `ref`: `refs/heads/dev` matches none of [refs/heads/main, refs/tags/v*]",
        ),
        (
            "claim glob crosses /",
            with(claims(), "ref", json!("refs/tags/v1/x")),
            Check::Claim,
            Class::Forbidden,
            "claim `ref`",
        ),
        (
            "claim missing",
            without(claims(), "repository"),
            Check::Claim,
            Class::Forbidden,
            "claim `repository`: missing",
        ),
        (
            "claim type",
            with(claims(), "ref_protected", json!(true)),
            Check::Claim,
            Class::Forbidden,
            "claim `ref_protected`",
        ),
        (
            "mapping type",
            with(claims(), "run_id", json!([1])),
            Check::Claim,
            Class::Forbidden,
            "claim `run_id`: cannot be mapped",
        ),
    ];
    for (name, c, check_, class, msg) in cases {
        let r = refused(&v, &k.sign(&c)).await;
        assert_eq!((r.check, r.class), (check_, class), "{name}: {}", r.message);
        assert!(r.message.starts_with(msg), "{name}: {}", r.message);
    }
    // Held: within the leeway, a tag glob, no nbf/jti.
    for c in [
        with(claims(), "exp", json!(n - 30.0)),
        with(claims(), "iat", json!(n + 30.0)),
        with(claims(), "ref", json!("refs/tags/v1.2")),
        without(without(claims(), "nbf"), "jti"),
    ] {
        check(&v, &k.sign(&c)).await.expect("held");
    }
    // bound_cidrs: outside and unknown client.
    let r = v
        .verify(
            &k.sign(&claims()),
            &role(),
            &LoginContext::new("deploy", Some("192.168.0.9".parse().expect("ip"))),
        )
        .await
        .expect_err("cidr");
    assert_eq!((r.check, r.class), (Check::Cidr, Class::Forbidden));
    assert!(
        r.message
            .starts_with("bound_cidrs: client 192.168.0.9 not in [10.0.0.0/8, 127.0.0.1/32]"),
        "{}",
        r.message
    );
    assert!(
        v.verify(
            &k.sign(&claims()),
            &role(),
            &LoginContext::new("deploy", None)
        )
        .await
        .is_err()
    );
    // The context's clock is the one checked.
    let later = SystemTime::now() + Duration::from_secs(3600);
    let r = v
        .verify(
            &k.sign(&claims()),
            &role(),
            &LoginContext::new("deploy", ip()).at(later),
        )
        .await
        .expect_err("later");
    assert_eq!(r.check, Check::Exp);
}

#[tokio::test]
async fn a_token_with_an_audience_needs_a_role_that_binds_one() {
    let k = TestKey::es256("e1");
    let v = static_verifier(&[&k], None);
    let no_aud_role: JwtRoleConfig =
        serde_json::from_value(json!({"bound_subject": SUB})).expect("role");
    let ctx = LoginContext::new("deploy", None);
    let r = v
        .verify(&k.sign(&claims()), &no_aud_role, &ctx)
        .await
        .expect_err("unbound aud");
    assert_eq!(
        r.message,
        "aud: the token has an audience but role `deploy` binds none"
    );
    v.verify(&k.sign(&without(claims(), "aud")), &no_aud_role, &ctx)
        .await
        .expect("no aud, none bound");
}

#[tokio::test]
async fn alg_confusion_none_hmac_and_crit_are_refused() {
    let rsa = TestKey::rsa("r1");
    let v = static_verifier(&[&rsa], None);
    // alg none with an empty signature.
    let none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(&serde_json::to_vec(&claims()).expect("c"))
    );
    let r = refused(&v, &none).await;
    assert_eq!((r.check, r.class), (Check::Alg, Class::Unauthorized));
    assert!(
        r.message.starts_with("alg: `none` is not accepted"),
        "{}",
        r.message
    );
    // HS256 keyed with the RSA public key's PEM (the classic confusion).
    let hmac = jsonwebtoken::EncodingKey::from_secret(rsa.spki_pem.as_bytes());
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(),
        &hmac,
    )
    .expect("hs");
    let r = refused(&v, &hs).await;
    assert_eq!((r.check, r.class), (Check::Alg, Class::Unauthorized));
    assert!(
        r.message.starts_with("alg: `HS256` is not accepted"),
        "{}",
        r.message
    );
    // crit, even signed by the right key.
    let crit = rsa.sign_with(
        &json!({"alg": "RS256", "crit": ["b64"], "b64": false}),
        &claims(),
    );
    assert_eq!(refused(&v, &crit).await.check, Check::Crit);
    // An algorithm the method does not allow, signed by a key it has.
    let rs_only = static_verifier(&[&rsa], Some(&["RS256"]));
    let ps = TestKey::ps256("p").sign(&claims());
    let r = refused(&rs_only, &ps).await;
    assert_eq!(r.message, "alg: `PS256` is not accepted (allowed: RS256)");
    // An ES256 token where the method has only an RSA key.
    let es = TestKey::es256("e").sign(&claims());
    let r = refused(&v, &es).await;
    assert_eq!((r.check, r.class), (Check::Kid, Class::Unauthorized));
}

#[tokio::test]
async fn signatures_must_verify() {
    let k = TestKey::es256("e1");
    let other = TestKey::es256("e1");
    let v = static_verifier(&[&k], None);
    let r = refused(&v, &other.sign(&claims())).await;
    assert_eq!(
        (r.check, r.class, r.message.as_str()),
        (
            Check::Signature,
            Class::Unauthorized,
            "signature: does not verify"
        )
    );
    // Tampered payload, original signature.
    let good = k.sign(&claims());
    let sig = good.rsplit('.').next().expect("sig");
    let tampered = format!(
        "{}.{}.{sig}",
        good.split('.').next().expect("h"),
        b64url(&serde_json::to_vec(&with(claims(), "sub", json!("x"))).expect("c"))
    );
    assert_eq!(refused(&v, &tampered).await.check, Check::Signature);
    // Garbage signature bytes.
    let junk = raw_token(&k.header(), &claims(), b"not a signature");
    assert_eq!(refused(&v, &junk).await.check, Check::Signature);
    // A signed payload that is not an object.
    let arr = k.sign(&json!([1, 2]));
    let r = refused(&v, &arr).await;
    assert_eq!((r.check, r.class), (Check::Claims, Class::BadRequest));
}

#[tokio::test]
async fn size_and_format_come_first() {
    let k = TestKey::es256("e1");
    let v = static_verifier(&[&k], None).max_jwt_bytes(100);
    let r = refused(&v, &k.sign(&claims())).await;
    assert_eq!(
        (r.check, r.class, r.message.as_str()),
        (
            Check::JwtSize,
            Class::BadRequest,
            "jwt: larger than 100 bytes"
        )
    );
    let v = static_verifier(&[&k], None);
    assert_eq!(refused(&v, "not-a-jwt").await.check, Check::JwtFormat);
}
