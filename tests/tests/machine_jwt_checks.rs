//! Every check of the JWT login, held and violated, end to end on both stores: for each, a
//! token that fails it gets the documented status and a message naming the check, and its
//! refusal is audited (`auth.method.login`, outcome, status, `detail.check`, never the JWT);
//! a token that just satisfies it logs in. A JWT replayed past its `exp` is refused, while
//! the Arcan token minted from it keeps its own TTL.

use arcan_tests::machine::{
    AUD, MACHINE_CONFIG, github_method, hs256, now_secs, raw_jwt, request_id, spki_pem, temp_dir,
};
use arcan_tests::oidc::{Issuer, TestKey, github_actions};
use arcan_tests::*;

const SUBJECT: &str = "repo:acme/api:ref:refs/heads/main";

/// One refused login: what, role, token, status, message phrase, audited check.
struct Refused {
    what: &'static str,
    role: &'static str,
    jwt: String,
    status: StatusCode,
    phrase: String,
    check: &'static str,
}

fn refused(
    what: &'static str,
    role: &'static str,
    jwt: String,
    status: StatusCode,
    phrase: &str,
    check: &'static str,
) -> Refused {
    Refused {
        what,
        role,
        jwt,
        status,
        phrase: phrase.to_owned(),
        check,
    }
}

/// Claims edited by `f`.
fn with(base: &Value, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut c = base.clone();
    f(c.as_object_mut().expect("claims object"));
    c
}

async fn every_check_holds_and_is_violated(b: Backend) {
    let dir = temp_dir("arcan-oidc");
    let key = TestKey::rs256("gh-1");
    let issuer = Issuer::start(&dir, &[&key]).await;
    let s = Server::start_with(b, MACHINE_CONFIG).await;
    s.realm("acme").await;
    s.auth_method(github_method(&issuer, json!({}))).await;
    let grants = json!([{"realm": "acme", "role": "viewer"}]);
    let bound = json!({"repository": "acme/api", "ref": "refs/heads/main"});
    s.login_role(
        "github",
        "deploy",
        json!({"bound_audiences": [AUD], "bound_subject": SUBJECT, "bound_claims": bound,
               "grants": grants}),
    )
    .await;
    s.login_role(
        "github",
        "noaud",
        json!({"bound_subject": SUBJECT, "grants": grants}),
    )
    .await;
    s.login_role(
        "github",
        "fresh",
        json!({"bound_audiences": [AUD], "bound_subject": SUBJECT, "max_age": "1m",
               "grants": grants}),
    )
    .await;
    s.login_role(
        "github",
        "office",
        json!({"bound_audiences": [AUD], "bound_subject": SUBJECT,
               "bound_cidrs": ["10.0.0.0/8"], "grants": grants}),
    )
    .await;
    s.login_role(
        "github",
        "local",
        json!({"bound_audiences": [AUD], "bound_subject": SUBJECT,
               "bound_cidrs": ["127.0.0.0/8", "::1/128"], "grants": grants}),
    )
    .await;

    let now = now_secs();
    let base = github_actions(&issuer.url, "acme/api", "refs/heads/main", AUD);
    let sign = |c: &Value| key.sign(c);
    let times = |exp: i64, nbf: i64, iat: i64| {
        with(&base, |c| {
            c.insert("exp".into(), json!(exp));
            c.insert("nbf".into(), json!(nbf));
            c.insert("iat".into(), json!(iat));
        })
    };
    let mut unknown_kid = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    unknown_kid.kid = Some("unknown-kid".into());
    let impostor = TestKey::rs256("gh-1");
    let rsa_public_pem = spki_pem(&key.jwk);
    let bad_request = StatusCode::BAD_REQUEST;
    let unauthorized = StatusCode::UNAUTHORIZED;
    let forbidden = StatusCode::FORBIDDEN;

    let cases = vec![
        refused(
            "one segment",
            "deploy",
            "not-a-jwt".into(),
            bad_request,
            "jwt: not three base64url segments",
            "jwt_format",
        ),
        refused(
            "four segments",
            "deploy",
            format!("{}.x", sign(&base)),
            bad_request,
            "jwt: not three base64url segments",
            "jwt_format",
        ),
        refused(
            "oversized",
            "deploy",
            sign(&with(&base, |c| {
                c.insert("padding".into(), json!("x".repeat(17 * 1024)));
            })),
            bad_request,
            "jwt: larger than 16384 bytes",
            "jwt_size",
        ),
        refused(
            "alg none",
            "deploy",
            raw_jwt(&json!({"alg": "none", "typ": "JWT"}), &base, b""),
            unauthorized,
            "alg: `none` is not accepted",
            "alg",
        ),
        refused(
            "HS256 keyed with the issuer's RSA public key",
            "deploy",
            hs256(rsa_public_pem.as_bytes(), "gh-1", &base),
            unauthorized,
            "alg: `HS256` is not accepted",
            "alg",
        ),
        refused(
            "crit header",
            "deploy",
            raw_jwt(
                &json!({"alg": "RS256", "typ": "JWT", "kid": "gh-1", "crit": ["exp"]}),
                &base,
                b"not checked",
            ),
            unauthorized,
            "crit: critical header parameters are not supported",
            "crit",
        ),
        refused(
            "unknown kid",
            "deploy",
            key.sign_with(&unknown_kid, &base),
            unauthorized,
            "kid: no key `unknown-kid`",
            "kid",
        ),
        refused(
            "another key under the published kid",
            "deploy",
            impostor.sign(&base),
            unauthorized,
            "signature: does not verify",
            "signature",
        ),
        refused(
            "expired beyond the leeway",
            "deploy",
            sign(&times(now - 120, now - 400, now - 400)),
            unauthorized,
            "exp: expired at",
            "exp",
        ),
        refused(
            "no exp",
            "deploy",
            sign(&with(&base, |c| {
                c.remove("exp");
            })),
            unauthorized,
            "exp: missing",
            "exp",
        ),
        refused(
            "nbf beyond the leeway",
            "deploy",
            sign(&times(now + 600, now + 120, now)),
            unauthorized,
            "nbf: not valid before",
            "nbf",
        ),
        refused(
            "iat beyond the leeway",
            "deploy",
            sign(&times(now + 600, now - 5, now + 120)),
            unauthorized,
            "iat: issued in the future",
            "iat",
        ),
        refused(
            "too old for max_age",
            "fresh",
            sign(&times(now + 300, now - 600, now - 600)),
            unauthorized,
            "max_age: issued 10m",
            "max_age",
        ),
        refused(
            "another issuer",
            "deploy",
            sign(&with(&base, |c| {
                c.insert("iss".into(), json!("https://evil.example"));
            })),
            unauthorized,
            "iss: `https://evil.example` is not the method's issuer",
            "iss",
        ),
        refused(
            "an audience the role does not bind",
            "deploy",
            sign(&with(&base, |c| {
                c.insert("aud".into(), json!("sts.amazonaws.com"));
            })),
            unauthorized,
            "aud: the token's audiences [sts.amazonaws.com] include none bound by role `deploy`",
            "aud",
        ),
        refused(
            "an audience where the role binds none",
            "noaud",
            sign(&base),
            unauthorized,
            "aud: the token has an audience but role `noaud` binds none",
            "aud",
        ),
        refused(
            "another subject",
            "deploy",
            sign(&with(&base, |c| {
                c.insert("sub".into(), json!("repo:acme/api:ref:refs/heads/dev"));
            })),
            forbidden,
            "sub: `repo:acme/api:ref:refs/heads/dev` is not bound by role `deploy`",
            "sub",
        ),
        refused(
            "a claim that does not match",
            "deploy",
            sign(&with(&base, |c| {
                c.insert("ref".into(), json!("refs/heads/dev"));
            })),
            forbidden,
            "claim `ref`: `refs/heads/dev` matches none of",
            "claim",
        ),
        refused(
            "a missing claim",
            "deploy",
            sign(&with(&base, |c| {
                c.remove("repository");
            })),
            forbidden,
            "claim `repository`: missing",
            "claim",
        ),
        refused(
            "a client outside bound_cidrs",
            "office",
            sign(&base),
            forbidden,
            "bound_cidrs: client 127.0.0.1 not in",
            "cidr",
        ),
    ];
    for c in &cases {
        let (st, body) = s.machine_login("github", c.role, &c.jwt).await;
        assert_eq!(st, c.status, "{}: {body}", c.what);
        assert_refused(st, &body, c.status, &c.phrase);
        let msg = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.starts_with(&c.phrase),
            "{}: the message starts with the check: {body}",
            c.what
        );
        let event = s.login_event(&request_id(&body)).await;
        let outcome = if c.status == bad_request {
            "failure"
        } else {
            "denied"
        };
        assert_eq!(event["outcome"], outcome, "{}: {event}", c.what);
        assert_eq!(event["status"], c.status.as_u16(), "{}: {event}", c.what);
        let d = &event["detail"];
        assert_eq!(d["method"], "github", "{}: {event}", c.what);
        assert_eq!(d["role"], c.role, "{}: {event}", c.what);
        assert_eq!(d["check"], c.check, "{}: {event}", c.what);
        assert!(
            d["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{}: {event}",
            c.what
        );
        // What the token claimed, marked unverified, for pipelines' owners to recognise it.
        if c.check == "aud" || c.check == "claim" || c.check == "iss" {
            let claims: Value = arcan_tests::machine::claims_of(&c.jwt);
            assert_eq!(d["unverified"]["sub"], claims["sub"], "{}: {event}", c.what);
            assert_eq!(d["unverified"]["iss"], claims["iss"], "{}: {event}", c.what);
        }
        let signature = c.jwt.rsplit('.').next().unwrap_or_default();
        assert!(
            signature.len() < 16 || !event.to_string().contains(signature),
            "{}: the event holds the JWT",
            c.what
        );
    }

    // Each check held: tokens that just satisfy it log in.
    let held = [
        ("a well-formed token", "deploy", sign(&base)),
        (
            "expired within the leeway",
            "deploy",
            sign(&times(now - 30, now - 400, now - 400)),
        ),
        (
            "nbf within the leeway",
            "deploy",
            sign(&times(now + 600, now + 30, now)),
        ),
        (
            "iat within the leeway",
            "deploy",
            sign(&times(now + 600, now - 5, now + 30)),
        ),
        ("young enough for max_age", "fresh", sign(&base)),
        (
            "one of several audiences bound",
            "deploy",
            sign(&with(&base, |c| {
                c.insert("aud".into(), json!(["sts.amazonaws.com", AUD]));
            })),
        ),
        (
            "no audience where the role binds none",
            "noaud",
            sign(&with(&base, |c| {
                c.remove("aud");
            })),
        ),
        ("a client inside bound_cidrs", "local", sign(&base)),
    ];
    for (what, role, jwt) in held {
        let (st, body) = s.machine_login("github", role, &jwt).await;
        assert_eq!(st, StatusCode::OK, "{what}: {body}");
        let token = body["token"].as_str().expect("token");
        let (st, me) = s.get("/api/v1/tokens/self", token).await;
        assert_eq!(st, StatusCode::OK, "{what}: {me}");
    }
    // An unknown role and an unknown method: refused before the token is looked at, and
    // audited like every other refusal (`detail` names the check and the reason).
    for (what, method, role, want, phrase) in [
        (
            "an unknown role",
            "github",
            "nope",
            bad_request,
            "role: no login role `nope` in auth method `github`",
        ),
        (
            "an unknown method",
            "nomethod",
            "deploy",
            StatusCode::NOT_FOUND,
            "auth method not found",
        ),
    ] {
        let (st, body) = s.machine_login(method, role, &sign(&base)).await;
        assert_refused(st, &body, want, phrase);
        let event = s.login_event(&request_id(&body)).await;
        let outcome = if want == bad_request {
            "failure"
        } else {
            "denied"
        };
        assert_eq!(event["outcome"], outcome, "{what}: {event}");
        assert_eq!(event["status"], want.as_u16(), "{what}: {event}");
        assert_eq!(event["detail"]["method"], method, "{what}: {event}");
        assert_eq!(event["detail"]["role"], role, "{what}: {event}");
        assert!(event["detail"]["check"].is_string(), "{what}: {event}");
        assert!(event["detail"]["reason"].is_string(), "{what}: {event}");
    }
    issuer.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

async fn replay_past_exp(b: Backend) {
    let dir = temp_dir("arcan-oidc");
    let key = TestKey::rs256("gh-1");
    let issuer = Issuer::start(&dir, &[&key]).await;
    let s = Server::start_with(b, MACHINE_CONFIG).await;
    s.realm("acme").await;
    s.auth_method(github_method(&issuer, json!({"clock_skew_leeway": "0s"})))
        .await;
    s.login_role(
        "github",
        "deploy",
        json!({"bound_audiences": [AUD], "bound_subject": SUBJECT,
               "grants": [{"realm": "acme", "role": "viewer"}], "token_ttl": "15m"}),
    )
    .await;
    let mut claims = github_actions(&issuer.url, "acme/api", "refs/heads/main", AUD);
    claims["exp"] = json!(now_secs() + 2);
    let jwt = key.sign(&claims);
    let login = s.machine_login_ok("github", "deploy", &jwt).await;
    let token = login["token"].as_str().expect("token");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    s.login_refused(
        "github",
        "deploy",
        &jwt,
        StatusCode::UNAUTHORIZED,
        "exp: expired at",
        "exp",
    )
    .await;
    // The Arcan token has its own TTL, not the JWT's.
    let (st, me) = s.get("/api/v1/tokens/self", token).await;
    assert_eq!(st, StatusCode::OK, "{me}");
    issuer.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

both_backends!(every_check_holds_and_is_violated, replay_past_exp);
