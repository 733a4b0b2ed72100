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

/// Every page of a listing as `token`: (keys, raw bodies). Panics after 50 pages.
async fn list_all(s: &Server, token: &str, query: &str) -> (Vec<String>, Vec<String>) {
    let (mut keys, mut bodies, mut cursor) = (Vec::new(), Vec::new(), None::<String>);
    for _ in 0..50 {
        let mut path = format!("/api/v1/realms/acme/secrets?env=prod&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (st, page) = s.get(&path, token).await;
        assert_eq!(st, StatusCode::OK, "{page}");
        bodies.push(page.to_string());
        for item in page["items"].as_array().expect("items") {
            keys.push(item["key"].as_str().expect("key").to_owned());
        }
        assert_eq!(page["has_more"], json!(page["next_cursor"].is_string()));
        match page["next_cursor"].as_str() {
            Some(c) => {
                // Whatever the cursor is, it does not carry a key in a readable form.
                use base64::Engine;
                let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(c)
                    .unwrap_or_default();
                bodies.push(String::from_utf8_lossy(&raw).into_owned());
                cursor = Some(c.to_owned());
            }
            None => return (keys, bodies),
        }
    }
    panic!("the listing did not terminate: {keys:?}");
}

/// A token narrowed to `app/*` pages through exactly its keys; no key outside the glob
/// appears in any body or cursor. An unrestricted token still sees everything, and a
/// cursor does not open in another environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrowed_listing_cursor_reveals_nothing() {
    let s = Server::start(Backend::Sqlite).await;
    s.realm("acme").await;
    let all = [
        "app/a",
        "app/b",
        "b/hidden-one",
        "b/hidden-two",
        "zzz/secret-name",
        "app/c",
    ];
    for key in all {
        let (st, b) = s.put(&s.root, "acme", "prod", key, "v").await;
        assert_eq!(st, StatusCode::OK, "{b}");
    }
    let (st, t) = s
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&s.root),
            Some(json!({"capabilities": ["secrets:list", "secrets:read"], "realm": "acme", "key_glob": "app/*", "ttl": "1h"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let narrow = t["token"].as_str().expect("token").to_owned();
    for limit in [1, 2, 100] {
        let (keys, bodies) = list_all(&s, &narrow, &format!("limit={limit}")).await;
        assert_eq!(keys, ["app/a", "app/b", "app/c"], "limit {limit}");
        for body in &bodies {
            for hidden in ["hidden", "zzz", "secret-name"] {
                assert!(
                    !body.contains(hidden),
                    "limit {limit}: `{hidden}` leaked in {body}"
                );
            }
        }
    }
    // The unrestricted view is unchanged.
    let (mut keys, _) = list_all(&s, &s.root, "limit=2").await;
    keys.sort();
    let mut want = all.map(str::to_owned).to_vec();
    want.sort();
    assert_eq!(keys, want);
    // A cursor belongs to its realm, environment and prefix.
    let (_, page) = s
        .get("/api/v1/realms/acme/secrets?env=prod&limit=1", &narrow)
        .await;
    let c = page["next_cursor"].as_str().expect("cursor");
    let (st, b) = s
        .get(
            &format!("/api/v1/realms/acme/secrets?env=dev&limit=1&cursor={c}"),
            &s.root,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
}
