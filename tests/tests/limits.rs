//! Limits on peer-controlled numbers and listings, each held and violated: absurd ttls
//! (tokens, roles, credentials, renewals) never wrap or fail with 500, and a listing
//! narrowed by a key glob reveals no key outside it, not even in its cursor.

use arcan_tests::*;

fn message(b: &Value) -> String {
    b["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// `10000000000000d` is 8.64e17 seconds: a valid `u64`, but not as milliseconds in an `i64`.
const ABSURD: &str = "10000000000000d";

/// Token ttls: within the ceiling works; beyond the ceiling is 400; a ceiling so large
/// that the expiry overflows is still 400 (checked arithmetic), never a wrapped expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_token_ttls_are_refused() {
    let s = Server::start(Backend::Sqlite).await;
    let token = |ttl: &str| {
        s.call(
            Method::POST,
            "/api/v1/tokens",
            Some(&s.root),
            Some(json!({"ttl": ttl})),
        )
    };
    let (st, b) = token("1h").await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    for ttl in [ABSURD, "18446744073709551615s", "99999999999999999999999d"] {
        let (st, b) = token(ttl).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{ttl}: {b}");
        assert!(message(&b).contains("ttl"), "{ttl}: {b}");
    }
    drop(s);
    // An operator ceiling beyond what an expiry can hold: the arithmetic is checked.
    let cfg = format!("{RELAXED}auth:\n  max_token_ttl: 20000000000000d\n");
    let s = Server::start_with(Backend::Sqlite, &cfg).await;
    let (st, b) = s
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&s.root),
            Some(json!({"ttl": ABSURD})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    assert!(message(&b).contains("too large"), "{b}");
    let (st, b) = s
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&s.root),
            Some(json!({"ttl": "3650d"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let (st, _) = s.get("/health", &s.root).await;
    assert_eq!(st, StatusCode::OK);
}

/// Role and lease ttls: an unrepresentable max_ttl is refused at role creation, an absurd
/// credential ttl is 400, and an absurd renewal is clipped to the max ttl (the renewal
/// semantics) while the lease stays valid and renewable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_lease_ttls_never_wrap() {
    let s = Server::start_with(Backend::Sqlite, &plugin_config("")).await;
    s.realm("acme").await;
    let (st, b) = s.mount("acme", "hi", "hello", &[], Value::Null).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let role = |max: &str| {
        s.call(
            Method::PUT,
            "/api/v1/realms/acme/engines/hi/roles/dev",
            Some(&s.root),
            Some(json!({"definition": {}, "default_ttl": "5m", "max_ttl": max})),
        )
    };
    let (st, b) = role(ABSURD).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    assert!(message(&b).contains("max_ttl"), "{b}");
    let (st, b) = role("10m").await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, b) = s.creds("acme", "hi", "dev", Some(ABSURD)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
    assert!(message(&b).contains("max_ttl"), "{b}");
    let (st, c) = s.creds("acme", "hi", "dev", Some("1m")).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    let id = c["lease_id"].as_str().expect("lease id").to_owned();
    let renew = |ttl: &'static str| {
        s.call(
            Method::POST,
            "/api/v1/realms/acme/leases/renew",
            Some(&s.root),
            Some(json!({"lease_id": id, "ttl": ttl})),
        )
    };
    for ttl in [ABSURD, "18446744073709551615s"] {
        let (st, l) = renew(ttl).await;
        assert_eq!(st, StatusCode::OK, "{ttl}: {l}");
        assert_eq!(l["expires_at"], l["max_expires_at"], "clipped: {l}");
        assert_eq!(l["state"], "active", "{l}");
    }
    let (st, l) = renew("99999999999999999999999d").await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{l}");
    let l = s.lease("acme", &id).await;
    assert_eq!(l["state"], "active", "{l}");
    assert!(
        l["expires_at"].as_str() > l["issued_at"].as_str(),
        "a sane expiry: {l}"
    );
    // A renewal sets the expiry to `ttl` from now (within the max ttl): it still works.
    let (st, l) = renew("1m").await;
    assert_eq!(
        (st, l["state"].clone()),
        (StatusCode::OK, json!("active")),
        "{l}"
    );
}
